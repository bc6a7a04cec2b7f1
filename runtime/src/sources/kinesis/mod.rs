//! The `kinesis` source: the records of an Amazon Kinesis data stream,
//! aggregates of the Kinesis Producer Library split into their user records
//! ([`kpl`]).
//!
//! Read by [`reader`] under `sluice run` and `sluice daemon` (shards leased
//! and checkpointed in DynamoDB) and by [`event`] from a Lambda event source
//! mapping; both build records with [`position`] and [`push_records`], so a
//! record and its `meta` are the same in every mode.

pub mod event;
pub mod kpl;
pub mod reader;

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

pub use kpl::push_records;
pub use reader::Reader;

use serde_json::{Value, json};

use super::shards::group::Member;
use super::{EventSource, OpenCx, RunMode, Source};
use crate::aws::iam::{kinesis_read, lease_table, stream_arn};
use crate::aws::sam::Fragment;
use crate::duration::Dur;
use crate::record::Position;
use crate::record::time::rfc3339_millis;

/// Read the records of an Amazon Kinesis data stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KinesisSource")]
pub struct Config {
    /// Stream name, or ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`, for a stream of
    /// another account). Checkpoints are keyed by the name either way.
    pub stream: String,
    /// Where a shard without a checkpoint starts: `latest`, `trim_horizon` (the oldest record
    /// kept) or `at_timestamp`.
    #[serde(default)]
    pub start_position: StartPosition,
    /// With `at_timestamp`: the start time, RFC 3339 (`2026-11-22T18:00:00Z`).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The DynamoDB table of checkpoints and leases, created when missing (partition key
    /// `shard_key`, a string; one item per pipeline, stream and shard).
    #[serde(default = "super::shards::default_checkpoint_table")]
    pub checkpoint_table: String,
    /// Most records per `GetRecords` call.
    #[serde(default = "super::shards::default_max_records")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_records: i32,
    /// Wait before reading again when no shard had new records.
    #[serde(default = "super::shards::default_poll_interval")]
    pub poll_interval: Dur,
}

/// Where reading starts on a shard that has no checkpoint yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "StartPosition")]
pub enum StartPosition {
    /// Only records written from now on.
    #[default]
    Latest,
    /// The oldest record the stream still holds.
    TrimHorizon,
    /// The first record at or after `timestamp`.
    AtTimestamp,
}

/// Whether a stream is named by its ARN.
pub fn is_arn(stream: &str) -> bool {
    stream.starts_with("arn:")
}

/// The stream's name, when it is given by name or by ARN.
pub fn stream_name(stream: &str) -> &str {
    match stream.split_once(":stream/") {
        Some((_, name)) if is_arn(stream) => name,
        _ => stream,
    }
}

/// Where a Kinesis record came from: the stream's name, the shard, the
/// partition key, the sequence number, and when the stream received it (ms).
pub fn position(
    stream: Option<Arc<str>>,
    shard: Option<Arc<str>>,
    partition_key: Option<String>,
    sequence_number: String,
    arrival_ms: Option<i64>,
) -> Position {
    Position {
        source: "kinesis",
        stream,
        shard,
        partition_key,
        sequence_number: Some(sequence_number),
        arrival_time: arrival_ms.map(rfc3339_millis),
        ..Position::default()
    }
}

impl Source for Config {
    const MODES: &'static [RunMode] = &[RunMode::Run, RunMode::Daemon, RunMode::Lambda];
    const EVENTS: Option<&'static dyn EventSource> = Some(&event::EVENTS);

    fn lambda_template(&self, _pipeline: &str, t: &mut Fragment) -> Result<(), String> {
        t.policy.push(kinesis_read(&self.stream));
        let start = match self.start_position {
            StartPosition::Latest => "LATEST",
            StartPosition::TrimHorizon => "TRIM_HORIZON",
            StartPosition::AtTimestamp => "AT_TIMESTAMP",
        };
        let mut e = t.stream_event("Kinesis", stream_arn(&self.stream), start);
        if let (Some(ts), "AT_TIMESTAMP") = (&self.timestamp, start) {
            let secs = humantime::parse_rfc3339_weak(ts)
                .map_err(|e| format!("`timestamp` {ts:?}: {e}"))?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            e["Properties"]["StartingPositionTimestamp"] = json!(secs);
        }
        t.event = Some(e);
        Ok(())
    }

    fn daemon_permissions(&self) -> Vec<Value> {
        vec![
            kinesis_read(&self.stream),
            lease_table(&self.checkpoint_table),
        ]
    }

    /// Read as a member of the pipeline's worker group.
    async fn open(
        &self,
        cx: OpenCx<'_>,
    ) -> Result<(super::Reader, Option<Member>), crate::delivery::Error> {
        let aws = cx.aws()?;
        let source = super::Config::Kinesis(self.clone());
        let (reader, member) =
            super::shards::group::join(&source, cx.pipeline, &aws, cx.worker).await?;
        Ok((reader, Some(member)))
    }
}
