//! `sluice plan PIPELINE`: how many shards a pipeline's Kinesis stream needs
//! for a given load, and what that means for Lambda and for daemon workers.
//!
//! Kinesis limits, per shard (provisioned mode): 1 MB/s or 1 000 records/s
//! written; 2 MB/s read, shared by every consumer that does not use enhanced
//! fan-out. A Kinesis event source mapping runs one invocation per shard at
//! a time (up to 10 with `ParallelizationFactor`); in daemon mode a shard is
//! read by one worker at a time, so workers beyond the shard count idle.

use serde_json::json;

use super::{EXIT_INVALID, EXIT_OK};
use crate::engine::open::load;
use crate::sources;

/// Arguments of `sluice plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (its source: `kinesis`).
    pub file: std::path::PathBuf,
    /// Peak rate written to the stream, in MB/s.
    #[arg(long, value_name = "MB/S")]
    pub write_mb_s: f64,
    /// Rate each consumer reads, in MB/s (default: the write rate).
    #[arg(long, value_name = "MB/S")]
    pub read_mb_s: Option<f64>,
    /// Peak records written per second.
    #[arg(long, value_name = "N")]
    pub records_s: f64,
    /// Consumers of the stream without enhanced fan-out, this pipeline included.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub consumers: u32,
    /// Records per second one daemon worker sustains with this pipeline
    /// (measure it: see docs/daemon.md).
    #[arg(long, default_value_t = 5000.0, value_name = "N")]
    pub worker_records_s: f64,
    /// How to print the plan.
    #[arg(long, value_enum, default_value_t = super::run::SummaryFormat::Human)]
    pub format: super::run::SummaryFormat,
}

/// Per shard: MB/s written.
const SHARD_WRITE_MB_S: f64 = 1.0;
/// Per shard: records/s written.
const SHARD_WRITE_RECORDS_S: f64 = 1000.0;
/// Per shard: MB/s read, shared by the consumers without enhanced fan-out.
const SHARD_READ_MB_S: f64 = 2.0;
/// Most concurrent invocations per shard (`ParallelizationFactor`).
const MAX_PARALLELIZATION: u64 = 10;

/// What a load needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Shards for the writes in bytes.
    pub for_write_mb: u64,
    /// Shards for the writes in records.
    pub for_records: u64,
    /// Shards for the reads of every consumer.
    pub for_reads: u64,
    /// The shard count: the largest of the three.
    pub shards: u64,
    /// Lambda invocations at once, one per shard.
    pub lambda_concurrency: u64,
    /// Daemon workers for the record rate, at least two (one can fail over).
    pub workers_for_load: u64,
    /// Daemon workers to run: the above, capped at one per shard (but two,
    /// so that one stands by, when there is a single shard).
    pub workers: u64,
}

fn ceil(x: f64) -> u64 {
    // Rates are small positive numbers: the cast cannot truncate meaningfully.
    (x - 1e-9).ceil().max(1.0) as u64
}

/// The plan for a load.
pub fn plan(a: &Args) -> Plan {
    let read = a.read_mb_s.unwrap_or(a.write_mb_s);
    let for_write_mb = ceil(a.write_mb_s / SHARD_WRITE_MB_S);
    let for_records = ceil(a.records_s / SHARD_WRITE_RECORDS_S);
    let for_reads = ceil(read * f64::from(a.consumers.max(1)) / SHARD_READ_MB_S);
    let shards = for_write_mb.max(for_records).max(for_reads);
    let workers_for_load = ceil(a.records_s / a.worker_records_s.max(1.0)).max(2);
    Plan {
        for_write_mb,
        for_records,
        for_reads,
        shards,
        lambda_concurrency: shards,
        workers_for_load,
        workers: workers_for_load.min(shards.max(2)),
    }
}

/// Runs `sluice plan`.
pub fn main(a: &Args) -> i32 {
    let (loaded, _) = match load(&a.file, false) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let p = &loaded.pipeline;
    let sources::Config::Kinesis(source) = &p.source else {
        crate::errln!(
            "error: `sluice plan` sizes a Kinesis stream; the source of `{}` is `{}`",
            p.name,
            p.source.type_name()
        );
        return EXIT_INVALID;
    };
    for (name, v) in [
        ("--write-mb-s", a.write_mb_s),
        ("--records-s", a.records_s),
        ("--read-mb-s", a.read_mb_s.unwrap_or(1.0)),
        ("--worker-records-s", a.worker_records_s),
    ] {
        if !(v.is_finite() && v > 0.0) {
            crate::errln!("error: {name} must be a positive number, not {v}");
            return EXIT_INVALID;
        }
    }
    let plan = plan(a);
    let read = a.read_mb_s.unwrap_or(a.write_mb_s);
    match a.format {
        super::run::SummaryFormat::Json => crate::outln!(
            "{}",
            json!({
                "pipeline": p.name,
                "stream": source.stream,
                "shards": plan.shards,
                "shards_for": {
                    "write_mb_s": plan.for_write_mb,
                    "records_s": plan.for_records,
                    "read_mb_s": plan.for_reads,
                },
                "lambda_concurrency": plan.lambda_concurrency,
                "lambda_concurrency_max": plan.shards * MAX_PARALLELIZATION,
                "daemon_workers": plan.workers,
                "daemon_workers_for_load": plan.workers_for_load,
            })
        ),
        super::run::SummaryFormat::Human => {
            crate::outln!(
                "pipeline `{}` reads the Kinesis stream `{}`",
                p.name,
                source.stream
            );
            crate::outln!();
            crate::outln!("shards: {}", plan.shards);
            let rows = [
                (
                    format!("writes   {} MB/s", a.write_mb_s),
                    "1 MB/s per shard",
                    plan.for_write_mb,
                ),
                (
                    format!("records  {} records/s", a.records_s),
                    "1 000 records/s per shard",
                    plan.for_records,
                ),
                (
                    format!(
                        "reads    {read} MB/s x {} consumer{}",
                        a.consumers,
                        if a.consumers == 1 { "" } else { "s" }
                    ),
                    "2 MB/s per shard",
                    plan.for_reads,
                ),
            ];
            for (need, per, n) in rows {
                crate::outln!("  {need:<32} / {per:<26} = {n}");
            }
            crate::outln!();
            crate::outln!(
                "Lambda: {} concurrent invocations (one per shard; up to {} with ParallelizationFactor 10)",
                plan.lambda_concurrency,
                plan.shards * MAX_PARALLELIZATION
            );
            crate::outln!(
                "daemon: {} workers (`sluice daemon`; {} records/s at {} per worker, at least 2 for failover, at most one per shard)",
                plan.workers,
                a.records_s,
                a.worker_records_s
            );
            if plan.workers_for_load > plan.workers {
                crate::outln!(
                    "  note: the load needs {} workers but only {} shards can be read at once: add shards (or raise --worker-records-s with bigger tasks)",
                    plan.workers_for_load,
                    plan.shards
                );
            }
            if a.consumers > 2 {
                crate::outln!(
                    "  note: {} consumers share each shard's 5 GetRecords calls per second; enhanced fan-out gives each its own 2 MB/s",
                    a.consumers
                );
            }
        }
    }
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(write: f64, read: Option<f64>, records: f64, consumers: u32) -> Args {
        Args {
            file: "p.yaml".into(),
            write_mb_s: write,
            read_mb_s: read,
            records_s: records,
            consumers,
            worker_records_s: 5000.0,
            format: crate::cli::run::SummaryFormat::Human,
        }
    }

    #[test]
    fn the_largest_need_sets_the_shard_count() {
        // Bytes: 2.5 MB/s needs 3 shards; records: 3 500/s needs 4.
        let p = plan(&args(2.5, None, 3500.0, 1));
        assert_eq!(
            (p.for_write_mb, p.for_records, p.for_reads, p.shards),
            (3, 4, 2, 4)
        );
        assert_eq!(
            (p.lambda_concurrency, p.workers_for_load, p.workers),
            (4, 2, 2)
        );
        // Three consumers reading 2 MB/s each need 3 shards for the reads.
        let p = plan(&args(1.0, Some(2.0), 500.0, 3));
        assert_eq!(
            (p.for_write_mb, p.for_records, p.for_reads, p.shards),
            (1, 1, 3, 3)
        );
        // Exact multiples need no extra shard.
        let p = plan(&args(4.0, None, 4000.0, 1));
        assert_eq!(p.shards, 4);
    }

    #[test]
    fn workers_follow_the_record_rate_but_not_past_the_shards() {
        let p = plan(&args(12.0, None, 24_000.0, 1));
        assert_eq!((p.shards, p.workers_for_load, p.workers), (24, 5, 5));
        // One shard: a second worker stands by to take over.
        let p = plan(&args(0.1, None, 100.0, 1));
        assert_eq!((p.shards, p.workers_for_load, p.workers), (1, 2, 2));
        let p = plan(&args(1.0, None, 30_000.0, 1));
        assert_eq!((p.shards, p.workers_for_load, p.workers), (30, 6, 6));
    }
}
