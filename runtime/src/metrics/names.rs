//! The one list of metric names: each metric that Lambda mode writes as
//! CloudWatch EMF and the daemon serves as Prometheus text is named here
//! once, with both spellings (the Prometheus one is the EMF name in snake
//! case, with the `sluice_` prefix and `_total` on counters), and so is each
//! metric only the daemon serves. The metrics table of `docs/daemon.md` is
//! generated from this list ([`table`]).

/// What kind of value a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    /// The Prometheus `# TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The EMF name (Lambda mode); empty for a metric only the daemon serves.
    pub emf: &'static str,
    /// The Prometheus name (the daemon's `/metrics`).
    pub prometheus: &'static str,
    /// The Prometheus labels (EMF: the dimensions, capitalized).
    pub labels: &'static [&'static str],
    /// Counter or gauge.
    pub kind: Kind,
    /// What it counts.
    pub help: &'static str,
}

const PIPELINE: &[&str] = &["pipeline"];
const STAGE: &[&str] = &["pipeline", "stage"];
const SINK: &[&str] = &["pipeline", "sink"];
const SHARD: &[&str] = &["pipeline", "shard"];
const LOOKUP: &[&str] = &["pipeline", "lookup"];

/// Records read from the source.
pub const RECORDS_IN: Metric = Metric {
    emf: "RecordsIn",
    prometheus: "sluice_records_in_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Records read from the source.",
};
/// Records delivered to every sink their routes named.
pub const DELIVERED: Metric = Metric {
    emf: "Delivered",
    prometheus: "sluice_delivered_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Records delivered to every sink their routes named.",
};
/// Records filtered on purpose (or dropped invalid).
pub const FILTERED: Metric = Metric {
    emf: "Filtered",
    prometheus: "sluice_filtered_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Records filtered on purpose (or dropped invalid with on_invalid: drop).",
};
/// Records dead-lettered (per stage).
pub const DEAD_LETTERED: Metric = Metric {
    emf: "DeadLettered",
    prometheus: "sluice_dead_lettered_total",
    labels: STAGE,
    kind: Kind::Counter,
    help: "Records dead-lettered, per stage.",
};
/// Records no route took.
pub const UNROUTED: Metric = Metric {
    emf: "Unrouted",
    prometheus: "sluice_unrouted_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Records no route took.",
};
/// Records dropped as duplicates.
pub const DEDUPLICATED: Metric = Metric {
    emf: "Deduplicated",
    prometheus: "sluice_deduplicated_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Records dropped because a record with the same dedup key was delivered within its time to live.",
};
/// Records not delivered, given back to the source.
pub const FAILED: Metric = Metric {
    emf: "Failed",
    prometheus: "sluice_failed_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Records not delivered, given back to the source (it delivers them again).",
};
/// Retried writes to the dead-letter queue.
pub const DLQ_RETRIES: Metric = Metric {
    emf: "DlqRetries",
    prometheus: "sluice_dlq_retries_total",
    labels: PIPELINE,
    kind: Kind::Counter,
    help: "Retried writes to the dead-letter queue.",
};
/// Records written to a sink.
pub const SINK_DELIVERED: Metric = Metric {
    emf: "Delivered",
    prometheus: "sluice_sink_delivered_total",
    labels: SINK,
    kind: Kind::Counter,
    help: "Records written to the sink.",
};
/// Retried writes to a sink.
pub const SINK_RETRIES: Metric = Metric {
    emf: "Retries",
    prometheus: "sluice_sink_retries_total",
    labels: SINK,
    kind: Kind::Counter,
    help: "Retried writes to the sink.",
};
/// Time spent writing to a sink (EMF in milliseconds, Prometheus in seconds).
pub const SINK_LATENCY: Metric = Metric {
    emf: "SinkLatency",
    prometheus: "sluice_sink_latency_seconds_total",
    labels: SINK,
    kind: Kind::Counter,
    help: "Time spent writing to the sink (EMF: milliseconds per invocation; Prometheus: seconds in all).",
};
/// How far behind the source the records are (EMF: the batch's oldest
/// record's age; Prometheus: per shard, from its tip).
pub const BATCH_AGE: Metric = Metric {
    emf: "BatchAge",
    prometheus: "sluice_shard_millis_behind_latest",
    labels: SHARD,
    kind: Kind::Gauge,
    help: "How far behind the source the records are, in milliseconds (EMF: since the batch's oldest record arrived, the analogue of IteratorAge; Prometheus: per shard, from the last record read to the shard's tip).",
};

/// Every metric both modes report.
pub const ALL: [Metric; 14] = [
    RECORDS_IN,
    DELIVERED,
    FILTERED,
    DEAD_LETTERED,
    UNROUTED,
    DEDUPLICATED,
    FAILED,
    DLQ_RETRIES,
    SINK_DELIVERED,
    SINK_RETRIES,
    SINK_LATENCY,
    BATCH_AGE,
    LOOKUP_HITS,
    LOOKUP_MISSES,
];

/// Records read from a shard and not yet checkpointed.
pub const SHARD_RECORDS_IN_FLIGHT: Metric = Metric {
    emf: "",
    prometheus: "sluice_shard_records_in_flight",
    labels: SHARD,
    kind: Kind::Gauge,
    help: "Records read from the shard and not yet checkpointed.",
};
/// Shard leases a worker holds.
pub const LEASES_HELD: Metric = Metric {
    emf: "",
    prometheus: "sluice_leases_held",
    labels: &["pipeline", "worker"],
    kind: Kind::Gauge,
    help: "Shard leases this worker holds.",
};
/// Workers of the group.
pub const WORKERS: Metric = Metric {
    emf: "",
    prometheus: "sluice_workers",
    labels: PIPELINE,
    kind: Kind::Gauge,
    help: "Workers of the group holding live leases, this one included.",
};
/// Shards that may be read.
pub const SHARDS_READABLE: Metric = Metric {
    emf: "",
    prometheus: "sluice_shards_readable",
    labels: PIPELINE,
    kind: Kind::Gauge,
    help: "Shards that may be read now.",
};
/// Child shards waiting for their parents.
pub const SHARDS_WAITING: Metric = Metric {
    emf: "",
    prometheus: "sluice_shards_waiting",
    labels: PIPELINE,
    kind: Kind::Gauge,
    help: "Child shards waiting for their parents to be read to the end.",
};
/// Lookups a DynamoDB lookup's cache answered.
pub const LOOKUP_HITS: Metric = Metric {
    emf: "LookupCacheHits",
    prometheus: "sluice_lookup_cache_hits_total",
    labels: LOOKUP,
    kind: Kind::Counter,
    help: "Lookups of a DynamoDB lookup table that its cache answered.",
};
/// Lookups a DynamoDB lookup's cache could not answer.
pub const LOOKUP_MISSES: Metric = Metric {
    emf: "LookupCacheMisses",
    prometheus: "sluice_lookup_cache_misses_total",
    labels: LOOKUP,
    kind: Kind::Counter,
    help: "Lookups of a DynamoDB lookup table that its cache could not answer (read from the table).",
};
/// Closed shards read to their end.
pub const SHARDS_FINISHED: Metric = Metric {
    emf: "",
    prometheus: "sluice_shards_finished",
    labels: PIPELINE,
    kind: Kind::Gauge,
    help: "Closed shards read to their end.",
};

/// The metrics only the daemon serves: its shards and its worker group.
pub const DAEMON_ONLY: [Metric; 6] = [
    SHARD_RECORDS_IN_FLIGHT,
    LEASES_HELD,
    WORKERS,
    SHARDS_READABLE,
    SHARDS_WAITING,
    SHARDS_FINISHED,
];

/// The metrics table of the docs: each metric's EMF name (with the
/// dimension it is written per), Prometheus sample, kind and meaning.
pub fn table() -> String {
    let mut rows = String::from(
        "| Lambda (EMF) | Prometheus (daemon) | Type | Meaning |\n|---|---|---|---|\n",
    );
    for m in ALL.iter().chain(&DAEMON_ONLY) {
        let per = m
            .labels
            .iter()
            .find(|l| **l == "stage" || **l == "sink" || **l == "lookup")
            .map(|l| format!(" per {l}"))
            .unwrap_or_default();
        let emf = if m.emf.is_empty() {
            String::new()
        } else {
            format!("`{}`{per}", m.emf)
        };
        rows.push_str(&format!(
            "| {emf} | `{}{{{}}}` | {} | {} |\n",
            m.prometheus,
            m.labels.join(","),
            m.kind.as_str(),
            m.help
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_spelled_from_the_emf_one_and_named_once() {
        let snake = |s: &str| {
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        };
        for m in ALL {
            // A counter ends in `_total`; the EMF name is in it, in snake case
            // (`SinkLatency` → `sink_latency_seconds_total`).
            assert_eq!(
                m.kind == Kind::Counter,
                m.prometheus.ends_with("_total"),
                "{m:?}"
            );
            if m.kind == Kind::Counter
                && m != DEAD_LETTERED
                && !m.prometheus.starts_with("sluice_sink_")
            {
                assert_eq!(
                    m.prometheus,
                    format!("sluice_{}_total", snake(m.emf)),
                    "{m:?}"
                );
            }
        }
        let mut names: Vec<&str> = ALL
            .iter()
            .chain(&DAEMON_ONLY)
            .map(|m| m.prometheus)
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len() + DAEMON_ONLY.len());
        assert!(DAEMON_ONLY.iter().all(|m| m.emf.is_empty()));
    }

    #[test]
    fn the_table_has_a_row_per_metric() {
        let t = table();
        assert_eq!(t.lines().count(), 2 + ALL.len() + DAEMON_ONLY.len());
        assert!(
            t.contains("| `Delivered` per sink | `sluice_sink_delivered_total{pipeline,sink}` | counter | Records written to the sink. |"),
            "{t}"
        );
        assert!(
            t.contains("|  | `sluice_workers{pipeline}` | gauge |"),
            "{t}"
        );
    }
}
