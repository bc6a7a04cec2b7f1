//! The one list of metric names: each metric that Lambda mode writes as
//! CloudWatch EMF and the daemon serves as Prometheus text is named here
//! once, with both spellings (the Prometheus one is the EMF name in snake
//! case, with the `sluice_` prefix and `_total` on counters).

/// A metric both modes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The EMF name (Lambda mode).
    pub emf: &'static str,
    /// The Prometheus name (the daemon's `/metrics`).
    pub prometheus: &'static str,
    /// What it counts.
    pub help: &'static str,
}

/// Records read from the source.
pub const RECORDS_IN: Metric = Metric {
    emf: "RecordsIn",
    prometheus: "sluice_records_in_total",
    help: "Records read from the source.",
};
/// Records delivered to every sink their routes named.
pub const DELIVERED: Metric = Metric {
    emf: "Delivered",
    prometheus: "sluice_delivered_total",
    help: "Records delivered to every sink their routes named.",
};
/// Records filtered on purpose (or dropped invalid).
pub const FILTERED: Metric = Metric {
    emf: "Filtered",
    prometheus: "sluice_filtered_total",
    help: "Records filtered on purpose (or dropped invalid with on_invalid: drop).",
};
/// Records dead-lettered (per stage).
pub const DEAD_LETTERED: Metric = Metric {
    emf: "DeadLettered",
    prometheus: "sluice_dead_lettered_total",
    help: "Records dead-lettered, per stage.",
};
/// Records no route took.
pub const UNROUTED: Metric = Metric {
    emf: "Unrouted",
    prometheus: "sluice_unrouted_total",
    help: "Records no route took.",
};
/// Records not delivered, given back to the source.
pub const FAILED: Metric = Metric {
    emf: "Failed",
    prometheus: "sluice_failed_total",
    help: "Records not delivered, given back to the source.",
};
/// Retried writes to the dead-letter queue.
pub const DLQ_RETRIES: Metric = Metric {
    emf: "DlqRetries",
    prometheus: "sluice_dlq_retries_total",
    help: "Retried writes to the dead-letter queue.",
};
/// Records written to a sink.
pub const SINK_DELIVERED: Metric = Metric {
    emf: "Delivered",
    prometheus: "sluice_sink_delivered_total",
    help: "Records written to the sink.",
};
/// Retried writes to a sink.
pub const SINK_RETRIES: Metric = Metric {
    emf: "Retries",
    prometheus: "sluice_sink_retries_total",
    help: "Retried writes to the sink.",
};
/// Time spent writing to a sink (EMF in milliseconds, Prometheus in seconds).
pub const SINK_LATENCY: Metric = Metric {
    emf: "SinkLatency",
    prometheus: "sluice_sink_latency_seconds_total",
    help: "Time spent writing to the sink.",
};
/// How far behind the source the records are (EMF: the batch's oldest
/// record's age; Prometheus: per shard, from its tip).
pub const BATCH_AGE: Metric = Metric {
    emf: "BatchAge",
    prometheus: "sluice_shard_millis_behind_latest",
    help: "How far the last record read from the shard is from its tip, in milliseconds.",
};

/// Every metric both modes report.
pub const ALL: [Metric; 11] = [
    RECORDS_IN,
    DELIVERED,
    FILTERED,
    DEAD_LETTERED,
    UNROUTED,
    FAILED,
    DLQ_RETRIES,
    SINK_DELIVERED,
    SINK_RETRIES,
    SINK_LATENCY,
    BATCH_AGE,
];
