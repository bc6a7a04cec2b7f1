//! CloudWatch Embedded Metric Format: metrics as JSON log lines that
//! CloudWatch Logs turns into metrics, so a Lambda function needs no
//! `PutMetricData` call. One line per dimension set:
//!
//! - `Pipeline`: `RecordsIn`, `Delivered`, `Filtered`, `DeadLettered`,
//!   `Unrouted`, `Failed` (reported back to the event source for retry),
//!   `BatchAge` (milliseconds since the oldest record arrived in the source,
//!   the analogue of `IteratorAge`);
//! - `Pipeline`, `Stage`: `DeadLettered` for each stage that had any;
//! - `Pipeline`, `Sink`: `Delivered`, `Retries`, `SinkLatency` (milliseconds
//!   spent writing to the sink) for each sink.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Counts, names};
use crate::record::Stage;

/// Where metrics go, and how they are split.
#[derive(Debug, Clone, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Metrics")]
pub struct Config {
    /// CloudWatch namespace of the metrics.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Which dimension sets to publish: `pipeline` (totals), `stage` (dead
    /// letters per stage), `sink` (per sink). Each is one EMF line.
    #[serde(default = "default_dimensions")]
    pub dimensions: Vec<Dimension>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: default_namespace(),
            dimensions: default_dimensions(),
        }
    }
}

fn default_namespace() -> String {
    "Sluice".into()
}

fn default_dimensions() -> Vec<Dimension> {
    vec![
        Dimension::Pipeline,
        Dimension::Stage,
        Dimension::Sink,
        Dimension::Lookup,
    ]
}

/// A dimension set of the published metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "MetricDimension")]
pub enum Dimension {
    /// Totals per pipeline.
    Pipeline,
    /// Dead letters per pipeline and stage.
    Stage,
    /// Deliveries, retries and latency per pipeline and sink.
    Sink,
    /// Cache hits and misses per pipeline and DynamoDB lookup.
    Lookup,
}

/// What one sink did during an invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkStats {
    /// Retried writes.
    pub retries: u64,
    /// Time spent writing, in milliseconds.
    pub millis: f64,
}

/// What an invocation did, for its metrics.
#[derive(Debug)]
pub struct Report<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// Outcome counts.
    pub counts: &'a Counts,
    /// Records reported back to the event source.
    pub failed: u64,
    /// Milliseconds since the oldest record arrived in the source.
    pub batch_age_ms: Option<u64>,
    /// Sink names, in the order of `sinks:`.
    pub sinks: &'a [String],
    /// Per sink, in the same order.
    pub sink_stats: &'a [SinkStats],
    /// The DLQ's.
    pub dlq_stats: &'a SinkStats,
    /// When, in milliseconds since 1970.
    pub timestamp_ms: u64,
    /// Whether the pipeline drops duplicates (`Deduplicated` is written then only).
    pub dedup: bool,
    /// The DynamoDB lookups' cache hits and misses in the invocation.
    pub lookups: &'a [(&'a str, u64, u64)],
}

fn document(
    config: &Config,
    timestamp_ms: u64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, Value)],
) -> String {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": config.namespace,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).into(), Value::String((*v).into()));
    }
    for (name, _, value) in metrics {
        doc.insert((*name).into(), value.clone());
    }
    Value::Object(doc).to_string()
}

/// The EMF lines of an invocation.
pub fn lines(config: &Config, r: &Report<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let c = r.counts;
    let pipeline = [("Pipeline", r.pipeline)];
    if config.dimensions.contains(&Dimension::Pipeline) {
        let mut metrics = vec![
            (names::RECORDS_IN.emf, "Count", json!(c.records_in)),
            (names::DELIVERED.emf, "Count", json!(c.delivered)),
            (
                names::FILTERED.emf,
                "Count",
                json!(c.filtered + c.dropped_invalid),
            ),
            (
                names::DEAD_LETTERED.emf,
                "Count",
                json!(c.dead_lettered_total()),
            ),
            (names::UNROUTED.emf, "Count", json!(c.unrouted)),
            (names::FAILED.emf, "Count", json!(r.failed)),
            (names::DLQ_RETRIES.emf, "Count", json!(r.dlq_stats.retries)),
        ];
        if r.dedup {
            metrics.push((names::DEDUPLICATED.emf, "Count", json!(c.deduplicated)));
        }
        if let Some(age) = r.batch_age_ms {
            metrics.push((names::BATCH_AGE.emf, "Milliseconds", json!(age)));
        }
        out.push(document(config, r.timestamp_ms, &pipeline, &metrics));
    }
    for (table, hits, misses) in r
        .lookups
        .iter()
        .filter(|_| config.dimensions.contains(&Dimension::Lookup))
    {
        out.push(document(
            config,
            r.timestamp_ms,
            &[("Pipeline", r.pipeline), ("Lookup", table)],
            &[
                (names::LOOKUP_HITS.emf, "Count", json!(hits)),
                (names::LOOKUP_MISSES.emf, "Count", json!(misses)),
            ],
        ));
    }
    if config.dimensions.contains(&Dimension::Stage) {
        for stage in Stage::ALL {
            let n = c.dead_lettered[stage as usize];
            if n > 0 {
                out.push(document(
                    config,
                    r.timestamp_ms,
                    &[("Pipeline", r.pipeline), ("Stage", stage.as_str())],
                    &[(names::DEAD_LETTERED.emf, "Count", json!(n))],
                ));
            }
        }
    }
    if config.dimensions.contains(&Dimension::Sink) {
        for (i, name) in r.sinks.iter().enumerate() {
            let stats = r.sink_stats.get(i).cloned().unwrap_or_default();
            out.push(document(
                config,
                r.timestamp_ms,
                &[("Pipeline", r.pipeline), ("Sink", name)],
                &[
                    (
                        names::SINK_DELIVERED.emf,
                        "Count",
                        json!(c.per_sink.get(i).copied().unwrap_or(0)),
                    ),
                    (names::SINK_RETRIES.emf, "Count", json!(stats.retries)),
                    (
                        names::SINK_LATENCY.emf,
                        "Milliseconds",
                        json!((stats.millis * 1000.0).round() / 1000.0),
                    ),
                ],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_dimension_set() {
        let mut counts = Counts::new(1);
        counts.records_in = 3;
        counts.delivered = 2;
        counts.per_sink = vec![2];
        counts.dead_letter(Stage::Parse);
        let sinks = vec!["out".to_owned()];
        let stats = vec![SinkStats {
            retries: 1,
            millis: 2.5,
        }];
        let report = Report {
            pipeline: "p",
            counts: &counts,
            failed: 0,
            batch_age_ms: Some(1500),
            sinks: &sinks,
            sink_stats: &stats,
            dlq_stats: &SinkStats::default(),
            timestamp_ms: 1_764_000_000_000,
            dedup: false,
            lookups: &[],
        };
        let lines: Vec<Value> = lines(&Config::default(), &report)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            json!({
                "_aws": {"Timestamp": 1_764_000_000_000u64, "CloudWatchMetrics": [{
                    "Namespace": "Sluice", "Dimensions": [["Pipeline"]],
                    "Metrics": [
                        {"Name": "RecordsIn", "Unit": "Count"}, {"Name": "Delivered", "Unit": "Count"},
                        {"Name": "Filtered", "Unit": "Count"}, {"Name": "DeadLettered", "Unit": "Count"},
                        {"Name": "Unrouted", "Unit": "Count"}, {"Name": "Failed", "Unit": "Count"},
                        {"Name": "DlqRetries", "Unit": "Count"},
                        {"Name": "BatchAge", "Unit": "Milliseconds"}]}]},
                "Pipeline": "p", "RecordsIn": 3, "Delivered": 2, "Filtered": 0, "DeadLettered": 1,
                "Unrouted": 0, "Failed": 0, "DlqRetries": 0, "BatchAge": 1500
            })
        );
        assert_eq!(
            (&lines[1]["Stage"], &lines[1]["DeadLettered"]),
            (&json!("parse"), &json!(1))
        );
        assert_eq!(
            (
                &lines[2]["Sink"],
                &lines[2]["Retries"],
                &lines[2]["SinkLatency"]
            ),
            (&json!("out"), &json!(1), &json!(2.5))
        );
        assert!(lines[0].get(names::DEDUPLICATED.emf).is_none());
        // Every metric of the one list, under its EMF name (`Deduplicated`
        // for a pipeline with `dedup:`).
        let report = Report {
            dedup: true,
            lookups: &[("customers", 3, 1)],
            ..report
        };
        let lines: Vec<Value> = super::lines(&Config::default(), &report)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for m in names::ALL {
            assert!(lines.iter().any(|l| l.get(m.emf).is_some()), "{}", m.emf);
        }
        let only_totals = Config {
            namespace: "N".into(),
            dimensions: vec![Dimension::Pipeline],
        };
        assert_eq!(super::lines(&only_totals, &report).len(), 1);
    }
}
