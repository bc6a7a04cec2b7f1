//! The `kinesis` source: reads every shard of a stream, each in order, and
//! checkpoints each shard in a DynamoDB table once every record up to the
//! checkpoint reached its sinks or the DLQ. A restarted run resumes after the
//! checkpoints.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_kinesis::types::ShardIteratorType;
use schemars::JsonSchema;
use serde::Deserialize;

use super::ShardBackoff;
use crate::aws::Clients;
use crate::config::duration::Dur;
use crate::delivery::{ErrorClass, Policy, SinkError, error::classify};
use crate::record::{Position, RawRecord};

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

struct Shard {
    id: Arc<str>,
    /// `None` once a closed shard is read to its end.
    iterator: Option<String>,
    /// The sequence number of the last record read.
    last_read: Option<String>,
    backoff: ShardBackoff,
}

/// A running Kinesis source.
pub struct Reader {
    config: Config,
    pipeline: String,
    stream: Arc<str>,
    shards: Vec<Shard>,
    next: usize,
    aws: Arc<Clients>,
}

/// A shard's checkpoint, written once its batch is delivered.
pub struct Checkpoint {
    pub(crate) table: String,
    pub(crate) key: String,
    pub(crate) sequence_number: String,
}

/// The sequence number a shard's checkpoint holds, if it has one.
pub(crate) async fn saved_checkpoint(
    aws: &Clients,
    table: &str,
    key: &str,
) -> Result<Option<String>, String> {
    Ok(aws
        .dynamodb()
        .get_item()
        .table_name(table)
        .key("shard_key", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify(&format!("get_item on `{table}`"), &e).message)?
        .item
        .and_then(|i| {
            i.get("sequence_number")
                .and_then(|v| v.as_s().ok())
                .cloned()
        }))
}

impl Reader {
    /// Lists the shards and positions each one after its checkpoint.
    pub async fn new(config: Config, pipeline: &str, aws: Arc<Clients>) -> Result<Reader, String> {
        ensure_table(&aws, &config.checkpoint_table).await?;
        let mut list = aws.kinesis().list_shards();
        list = if is_arn(&config.stream) {
            list.stream_arn(&config.stream)
        } else {
            list.stream_name(&config.stream)
        };
        let listed = list
            .send()
            .await
            .map_err(|e| classify(&format!("list_shards of `{}`", config.stream), &e).message)?;
        let mut reader = Reader {
            stream: Arc::from(config.stream.as_str()),
            config,
            pipeline: pipeline.to_owned(),
            shards: Vec::new(),
            next: 0,
            aws,
        };
        for shard in listed.shards() {
            let id: Arc<str> = Arc::from(shard.shard_id());
            let iterator = reader.iterator(&id).await?;
            reader.shards.push(Shard {
                id,
                iterator: Some(iterator),
                last_read: None,
                backoff: ShardBackoff::default(),
            });
        }
        Ok(reader)
    }

    /// `PIPELINE/STREAM/SHARD`, with the stream's name even when the
    /// pipeline names it by ARN, so the checkpoints hold either way.
    fn checkpoint_key(&self, shard: &str) -> String {
        let name = match self.config.stream.split_once(":stream/") {
            Some((_, name)) if is_arn(&self.config.stream) => name,
            _ => &self.config.stream,
        };
        format!("{}/{name}/{shard}", self.pipeline)
    }

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

    /// An iterator after the last record read, or (none read yet) after the checkpoint.
    async fn resume_iterator(
        &self,
        shard: &str,
        last: Option<String>,
    ) -> Result<Option<String>, String> {
        let Some(seq) = last else {
            return self.iterator(shard).await.map(Some);
        };
        self.shard_iterator(shard)
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq)
            .send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e).message)
            .map(|o| o.shard_iterator)
    }

    async fn iterator(&self, shard: &str) -> Result<String, String> {
        let key = self.checkpoint_key(shard);
        let saved = self
            .aws
            .dynamodb()
            .get_item()
            .table_name(&self.config.checkpoint_table)
            .key("shard_key", AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("get_item on `{}`", self.config.checkpoint_table),
                    &e,
                )
                .message
            })?
            .item
            .and_then(|i| {
                i.get("sequence_number")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
            });
        let mut req = self.shard_iterator(shard);
        req = match (saved, self.config.start_position) {
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, StartPosition::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, StartPosition::AtTimestamp) => {
                let t = self.config.timestamp.as_deref().unwrap_or_default();
                let at = humantime::parse_rfc3339_weak(t)
                    .map_err(|e| format!("`timestamp` {t:?} is not an RFC 3339 time: {e}"))?;
                let secs = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                req.shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from_secs_f64(secs))
            }
        };
        req.send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e).message)
            .map(|o| o.shard_iterator.unwrap_or_default())
    }

    /// Reads the next shard (round robin) that has records; `Ok(None)` when
    /// a whole round found none.
    pub async fn read(
        &mut self,
        max: usize,
        policy: &Policy,
    ) -> Result<Option<(Vec<RawRecord>, Checkpoint)>, SinkError> {
        for _ in 0..self.shards.len() {
            let i = self.next;
            self.next = (self.next + 1) % self.shards.len().max(1);
            let Some(iterator) = self.shards[i].iterator.clone() else {
                continue;
            };
            if !self.shards[i].backoff.ready() {
                continue;
            }
            let sent = self
                .aws
                .kinesis()
                .get_records()
                .shard_iterator(iterator)
                .set_stream_arn(is_arn(&self.config.stream).then(|| self.config.stream.clone()))
                .limit(self.config.max_records.min(max as i32).max(1))
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) => {
                    let expired = e
                        .as_service_error()
                        .is_some_and(|s| s.is_expired_iterator_exception());
                    let err =
                        classify(&format!("get_records of shard `{}`", self.shards[i].id), &e);
                    if expired {
                        // Unused for 5 minutes (a stalled sink): start again after the last record read.
                        let id = Arc::clone(&self.shards[i].id);
                        let last = self.shards[i].last_read.clone();
                        self.shards[i].iterator = self
                            .resume_iterator(&id, last)
                            .await
                            .map_err(|m| SinkError::new(ErrorClass::Retryable, m))?;
                        continue;
                    }
                    self.shards[i].backoff.failed(err, policy)?;
                    continue;
                }
            };
            self.shards[i].backoff.succeeded();
            self.shards[i].iterator = out.next_shard_iterator().map(str::to_owned);
            let Some(last) = out.records().last() else {
                continue;
            };
            self.shards[i].last_read = Some(last.sequence_number().to_owned());
            let checkpoint = Checkpoint {
                table: self.config.checkpoint_table.clone(),
                key: self.checkpoint_key(&self.shards[i].id),
                sequence_number: last.sequence_number().to_owned(),
            };
            let mut records = Vec::with_capacity(out.records().len());
            for r in out.records() {
                let position = Position {
                    source: "kinesis",
                    stream: Some(Arc::clone(&self.stream)),
                    shard: Some(Arc::clone(&self.shards[i].id)),
                    partition_key: r.partition_key().map(str::to_owned),
                    sequence_number: Some(r.sequence_number().to_owned()),
                    arrival_time: r.approximate_arrival_timestamp().map(|t| {
                        let ms = t.to_millis().unwrap_or(0).max(0) as u64;
                        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms))
                            .to_string()
                    }),
                    ..Position::default()
                };
                // A KPL-aggregated record holds several user records, each with
                // its own partition key; they share the aggregate's sequence number.
                match crate::decode::kpl::deaggregate(r.data().as_ref()) {
                    Some(users) => records.extend(users.into_iter().map(|u| RawRecord {
                        data: u.data,
                        position: Position {
                            partition_key: Some(u.partition_key),
                            ..position.clone()
                        },
                        rejected: None,
                        attributes: None,
                    })),
                    None => records.push(RawRecord {
                        data: r.data().as_ref().to_vec(),
                        position,
                        rejected: None,
                        attributes: None,
                    }),
                }
            }
            return Ok(Some((records, checkpoint)));
        }
        Ok(None)
    }

    /// The wait between rounds that found nothing.
    pub fn poll_interval(&self) -> Duration {
        self.config.poll_interval.0
    }
}

impl Checkpoint {
    /// Writes the checkpoint.
    pub async fn save(&self, aws: &Clients) -> Result<(), String> {
        aws.dynamodb()
            .put_item()
            .table_name(&self.table)
            .item("shard_key", AttributeValue::S(self.key.clone()))
            .item(
                "sequence_number",
                AttributeValue::S(self.sequence_number.clone()),
            )
            .item(
                "updated_at",
                AttributeValue::S(crate::engine::run::now_rfc3339()),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                classify(
                    &format!("checkpoint of `{}` in `{}`", self.key, self.table),
                    &e,
                )
                .message
                    + " (the batch will be read again after a restart)"
            })
    }
}

/// Creates the checkpoint table when it does not exist.
pub(crate) async fn ensure_table(aws: &Clients, table: &str) -> Result<(), String> {
    let ddb = aws.dynamodb();
    match ddb.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(classify(&format!("describe_table of `{table}`"), &e).message),
    }
    ddb.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("shard_key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("shard_key")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| classify(&format!("create_table `{table}`"), &e).message)?;
    // Wait until the table is active (a new table takes a few seconds on AWS).
    for _ in 0..120 {
        let status = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|d| d.table.and_then(|t| t.table_status));
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "the checkpoint table `{table}` did not become active"
    ))
}

/// Whether a stream is named by its ARN.
fn is_arn(stream: &str) -> bool {
    stream.starts_with("arn:")
}
