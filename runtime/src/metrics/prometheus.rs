//! Prometheus text exposition (format 0.0.4) of a daemon's metrics, served at
//! `/metrics`. The names follow the Lambda EMF metrics in snake case, with
//! the `sluice_` prefix and `_total` on counters; every name, and the
//! metrics only the daemon serves (its shards and its worker group), comes
//! from the one list in [`super::names`], which also gives the table of
//! `docs/daemon.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::emf::SinkStats;
use super::{Counts, names};
use crate::record::Stage;
use crate::sources::shards::ShardLag;
use crate::sources::shards::lease::Status;

/// Counts a run updates as it commits batches, read by `/metrics`.
#[derive(Debug, Default)]
pub struct Live {
    inner: Mutex<(Counts, Vec<SinkStats>, SinkStats)>,
}

impl Live {
    /// Stores the run's totals so far: per sink, and the DLQ's.
    pub fn set(&self, counts: &Counts, sinks: &[SinkStats], dlq: &SinkStats) {
        if let Ok(mut g) = self.inner.lock() {
            g.0.clone_from(counts);
            g.1 = sinks.to_vec();
            g.2 = dlq.clone();
        }
    }

    /// The totals so far.
    pub fn get(&self) -> (Counts, Vec<SinkStats>, SinkStats) {
        self.inner.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// What `/metrics` shows.
pub struct Snapshot<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// Totals so far.
    pub counts: &'a Counts,
    /// Sink names, in the order of `sinks:`.
    pub sinks: &'a [String],
    /// Per sink, in the same order.
    pub sink_stats: &'a [SinkStats],
    /// The DLQ's.
    pub dlq_stats: &'a SinkStats,
    /// Per shard read by this worker.
    pub shards: &'a BTreeMap<String, ShardLag>,
    /// The worker group, when there is one.
    pub group: Option<(&'a str, &'a Status)>,
    /// The DynamoDB lookups: name, cache hits, misses (and calls).
    pub lookups: &'a [(&'a str, u64, u64, u64)],
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
    }
}

/// The exposition text.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut o = Out(String::new());
    let p = [("pipeline", s.pipeline)];
    let c = s.counts;
    for (m, value) in [
        (names::RECORDS_IN, c.records_in),
        (names::DELIVERED, c.delivered),
        (names::FILTERED, c.filtered + c.dropped_invalid),
        (names::UNROUTED, c.unrouted),
        (names::DEDUPLICATED, c.deduplicated),
        (names::FAILED, c.failed),
        (names::DLQ_RETRIES, s.dlq_stats.retries),
    ] {
        o.family(m.prometheus, m.kind.as_str(), m.help);
        o.sample(m.prometheus, &p, value);
    }
    let m = names::DEAD_LETTERED;
    o.family(m.prometheus, m.kind.as_str(), m.help);
    for stage in Stage::ALL {
        o.sample(
            names::DEAD_LETTERED.prometheus,
            &[("pipeline", s.pipeline), ("stage", stage.as_str())],
            c.dead_lettered[stage as usize],
        );
    }
    let sink_families = [
        names::SINK_DELIVERED,
        names::SINK_RETRIES,
        names::SINK_LATENCY,
    ];
    for (k, m) in sink_families.iter().enumerate() {
        let name = m.prometheus;
        o.family(name, m.kind.as_str(), m.help);
        for (i, sink) in s.sinks.iter().enumerate() {
            let stats = s.sink_stats.get(i).cloned().unwrap_or_default();
            let labels = [("pipeline", s.pipeline), ("sink", sink.as_str())];
            match k {
                0 => o.sample(name, &labels, c.per_sink.get(i).copied().unwrap_or(0)),
                1 => o.sample(name, &labels, stats.retries),
                _ => o.sample(name, &labels, stats.millis / 1000.0),
            }
        }
    }
    for (k, m) in [names::LOOKUP_HITS, names::LOOKUP_MISSES]
        .iter()
        .enumerate()
    {
        if s.lookups.is_empty() {
            break;
        }
        o.family(m.prometheus, m.kind.as_str(), m.help);
        for (table, hits, misses, _) in s.lookups {
            let labels = [("pipeline", s.pipeline), ("lookup", *table)];
            o.sample(m.prometheus, &labels, if k == 0 { *hits } else { *misses });
        }
    }
    let m = names::BATCH_AGE;
    o.family(m.prometheus, m.kind.as_str(), m.help);
    for (shard, lag) in s.shards {
        o.sample(
            names::BATCH_AGE.prometheus,
            &[("pipeline", s.pipeline), ("shard", shard)],
            lag.millis_behind,
        );
    }
    let m = names::SHARD_RECORDS_IN_FLIGHT;
    o.family(m.prometheus, m.kind.as_str(), m.help);
    for (shard, lag) in s.shards {
        o.sample(
            m.prometheus,
            &[("pipeline", s.pipeline), ("shard", shard)],
            lag.records_in_flight,
        );
    }
    if let Some((worker, g)) = s.group {
        let w = [("pipeline", s.pipeline), ("worker", worker)];
        let m = names::LEASES_HELD;
        o.family(m.prometheus, m.kind.as_str(), m.help);
        o.sample(
            m.prometheus,
            &w,
            g.per_worker.get(worker).copied().unwrap_or(0),
        );
        for (m, value) in [
            (names::WORKERS, g.per_worker.len().max(1)),
            (names::SHARDS_READABLE, g.readable),
            (names::SHARDS_WAITING, g.waiting),
            (names::SHARDS_FINISHED, g.finished),
        ] {
            o.family(m.prometheus, m.kind.as_str(), m.help);
            o.sample(m.prometheus, &p, value);
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_escapes_labels() {
        let mut counts = Counts::new(1);
        counts.records_in = 5;
        counts.delivered = 4;
        counts.per_sink = vec![4];
        counts.dead_letter(Stage::Validate);
        let mut shards = BTreeMap::new();
        shards.insert(
            "shardId-000000000001".to_owned(),
            ShardLag {
                millis_behind: 1200,
                records_in_flight: 30,
            },
        );
        let status = Status {
            per_worker: [("w1".to_owned(), 2), ("w2".to_owned(), 2)].into(),
            readable: 4,
            ..Status::default()
        };
        let text = render(&Snapshot {
            lookups: &[("customers", 5, 2, 1)],
            pipeline: "or\"ders",
            counts: &counts,
            sinks: &["archive".to_owned()],
            sink_stats: &[SinkStats {
                retries: 3,
                millis: 1500.0,
            }],
            dlq_stats: &SinkStats {
                retries: 2,
                millis: 0.0,
            },
            shards: &shards,
            group: Some(("w1", &status)),
        });
        // Every metric of the one list, under its Prometheus name.
        for m in names::ALL {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# TYPE {} ", m.prometheus))),
                "{}",
                m.prometheus
            );
        }
        for line in [
            "# TYPE sluice_records_in_total counter",
            r#"sluice_records_in_total{pipeline="or\"ders"} 5"#,
            r#"sluice_dead_lettered_total{pipeline="or\"ders",stage="validate"} 1"#,
            r#"sluice_dead_lettered_total{pipeline="or\"ders",stage="parse"} 0"#,
            r#"sluice_sink_delivered_total{pipeline="or\"ders",sink="archive"} 4"#,
            r#"sluice_sink_retries_total{pipeline="or\"ders",sink="archive"} 3"#,
            r#"sluice_sink_latency_seconds_total{pipeline="or\"ders",sink="archive"} 1.5"#,
            r#"sluice_dlq_retries_total{pipeline="or\"ders"} 2"#,
            r#"sluice_shard_millis_behind_latest{pipeline="or\"ders",shard="shardId-000000000001"} 1200"#,
            r#"sluice_shard_records_in_flight{pipeline="or\"ders",shard="shardId-000000000001"} 30"#,
            r#"sluice_leases_held{pipeline="or\"ders",worker="w1"} 2"#,
            r#"sluice_workers{pipeline="or\"ders"} 2"#,
            r#"sluice_shards_readable{pipeline="or\"ders"} 4"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
