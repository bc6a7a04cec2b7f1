//! The `kinesis` source: the Kinesis side of a
//! [`ShardReader`](super::shards::ShardReader), which reads the shards this
//! worker holds leases of, each in order, and checkpoints each shard once
//! every record up to the checkpoint reached its sinks or the DLQ. Here:
//! shard iterators, `GetRecords`, and records (aggregates of the Kinesis
//! Producer Library split into their user records).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_kinesis::types::ShardIteratorType;
use schemars::JsonSchema;
use serde::Deserialize;

use super::shards::{At, GetError, Page, ShardApi, ShardReader, ensure_table};
use crate::aws::Clients;
use crate::config::duration::Dur;
use crate::delivery::{ErrorClass, Policy, SinkError, error::classify};
use crate::record::Position;
use crate::record::time::rfc3339_millis;

/// Read the records of an Amazon Kinesis data stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KinesisSource")]
pub struct Config {
    /// Stream name or ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
    pub stream: String,
    /// Where a shard without a checkpoint starts.
    #[serde(default)]
    pub start_position: StartPosition,
    /// `at_timestamp`: the time to start at (RFC 3339, `2026-11-22T18:00:00Z`).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// DynamoDB table of checkpoints (created when missing; partition key `shard_key`, a string).
    #[serde(default = "default_checkpoint_table")]
    pub checkpoint_table: String,
    /// Most records per `GetRecords` call (at most 10 000).
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_records: i32,
    /// Wait before reading again when no shard had new records.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Dur,
}

/// Where reading starts on a shard that has no checkpoint yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
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

fn default_checkpoint_table() -> String {
    "sluice-checkpoints".into()
}
fn default_max_records() -> i32 {
    1000
}
fn default_poll_interval() -> Dur {
    Dur(Duration::from_secs(1))
}

/// A running Kinesis source.
pub type Reader = ShardReader<Api>;

/// The Kinesis side of a [`ShardReader`].
pub struct Api {
    config: Config,
    pipeline: String,
    stream: Arc<str>,
    aws: Arc<Clients>,
}

impl Reader {
    /// A reader of the shards whose leases this worker holds in its group
    /// (`leases`), as they come and go, each from its checkpoint on.
    pub async fn new(
        config: Config,
        pipeline: &str,
        aws: Arc<Clients>,
        leases: (Arc<super::lease::Shared>, String),
        retry: Policy,
    ) -> Result<Reader, String> {
        ensure_table(&aws, &config.checkpoint_table, &retry).await?;
        let (table, max_records, poll) = (
            config.checkpoint_table.clone(),
            config.max_records,
            config.poll_interval.0,
        );
        let api = Api {
            stream: Arc::from(config.stream.as_str()),
            config,
            pipeline: pipeline.to_owned(),
            aws: Arc::clone(&aws),
        };
        Ok(ShardReader::with_api(
            api,
            aws,
            leases,
            retry,
            &table,
            max_records,
            poll,
        ))
    }
}

impl Api {
    fn shard_iterator(
        &self,
        shard: &str,
    ) -> aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder
    {
        let req = self.aws.kinesis().get_shard_iterator().shard_id(shard);
        if is_arn(&self.config.stream) {
            req.stream_arn(&self.config.stream)
        } else {
            req.stream_name(&self.config.stream)
        }
    }
}

impl ShardApi for Api {
    /// `PIPELINE/STREAM/SHARD`, with the stream's name even when the
    /// pipeline names it by ARN, so the checkpoints hold either way.
    fn checkpoint_key(&self, shard: &str) -> String {
        format!(
            "{}/{}/{shard}",
            self.pipeline,
            stream_name(&self.config.stream)
        )
    }

    async fn iterator(&self, shard: &str, at: At) -> Result<Option<String>, SinkError> {
        let req = self.shard_iterator(shard);
        let req = match (at, self.config.start_position) {
            (At::After(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (At::TrimHorizon, _) | (At::Configured, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (At::Configured, StartPosition::Latest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
            (At::Configured, StartPosition::AtTimestamp) => {
                let t = self.config.timestamp.as_deref().unwrap_or_default();
                let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
                    SinkError::new(
                        ErrorClass::Poison,
                        format!("`timestamp` {t:?} is not an RFC 3339 time: {e}"),
                    )
                })?;
                let secs = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                req.shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from_secs_f64(secs))
            }
        };
        req.send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e))
            .map(|o| o.shard_iterator)
    }

    async fn get_records(
        &self,
        shard: &Arc<str>,
        iterator: String,
        limit: i32,
    ) -> Result<Page, GetError> {
        let out = self
            .aws
            .kinesis()
            .get_records()
            .shard_iterator(iterator)
            .set_stream_arn(is_arn(&self.config.stream).then(|| self.config.stream.clone()))
            .limit(limit)
            .send()
            .await
            .map_err(|e| GetError::of(shard, &e))?;
        let mut records = Vec::with_capacity(out.records.len());
        for r in out.records {
            let position = Position {
                source: "kinesis",
                stream: Some(Arc::clone(&self.stream)),
                shard: Some(Arc::clone(shard)),
                partition_key: r.partition_key,
                sequence_number: Some(r.sequence_number),
                arrival_time: r
                    .approximate_arrival_timestamp
                    .map(|t| rfc3339_millis(t.to_millis().unwrap_or(0))),
                ..Position::default()
            };
            // The data is moved, not copied, into the record.
            crate::decode::kpl::push_records(&mut records, r.data.into_inner(), position);
        }
        Ok(Page {
            records,
            next_iterator: out.next_shard_iterator,
            millis_behind: out.millis_behind_latest,
        })
    }
}

/// Whether a stream is named by its ARN.
pub(crate) fn is_arn(stream: &str) -> bool {
    stream.starts_with("arn:")
}

/// The stream's name, when it is given by name or by ARN.
pub(crate) fn stream_name(stream: &str) -> &str {
    match stream.split_once(":stream/") {
        Some((_, name)) if is_arn(stream) => name,
        _ => stream,
    }
}
