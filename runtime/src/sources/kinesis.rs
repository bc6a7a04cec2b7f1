//! The `kinesis` source: reads every shard of a stream, each in order, and
//! checkpoints each shard in a DynamoDB table once every record up to the
//! checkpoint reached its sinks or the DLQ. A restarted run resumes after the
//! checkpoints.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_kinesis::types::ShardIteratorType;
use schemars::JsonSchema;
use serde::Deserialize;

use super::Shard;
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

/// A running Kinesis source.
pub struct Reader {
    config: Config,
    pipeline: String,
    stream: Arc<str>,
    shards: Vec<Shard>,
    next: usize,
    aws: Arc<Clients>,
    /// The leases this worker holds in its group, and its name.
    leases: (Arc<super::lease::Shared>, String),
    lag: Arc<Lag>,
}

/// How far behind each shard read by this worker is.
#[derive(Debug, Default)]
pub struct Lag {
    shards: Mutex<BTreeMap<String, ShardLag>>,
    /// Shards no longer read whose records are still in flight.
    dropped: Mutex<std::collections::BTreeSet<String>>,
}

/// How far behind one shard is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardLag {
    /// `MillisBehindLatest` of the last read: how far the last record read is from the tip.
    pub millis_behind: i64,
    /// Records read and not yet checkpointed.
    pub records_in_flight: u64,
}

impl Lag {
    /// Per shard read, its lag.
    pub fn snapshot(&self) -> BTreeMap<String, ShardLag> {
        self.shards.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn update(&self, shard: &str, f: impl FnOnce(&mut ShardLag)) {
        if let Ok(mut d) = self.dropped.lock() {
            d.remove(shard);
        }
        if let Ok(mut s) = self.shards.lock() {
            f(s.entry(shard.to_owned()).or_default());
        }
    }

    /// `records` of a shard are checkpointed (or given up): no longer in flight.
    /// A shard no longer read is left out.
    fn settle(&self, shard: &str, records: u64) {
        let Ok(mut s) = self.shards.lock() else {
            return;
        };
        let Some(l) = s.get_mut(shard) else {
            return;
        };
        l.records_in_flight = l.records_in_flight.saturating_sub(records);
        if l.records_in_flight == 0 && self.dropped.lock().is_ok_and(|mut d| d.remove(shard)) {
            s.remove(shard);
        }
    }

    /// Records of `shard` read and not yet checkpointed.
    pub fn in_flight(&self, shard: &str) -> u64 {
        self.shards
            .lock()
            .ok()
            .and_then(|s| s.get(shard).map(|l| l.records_in_flight))
            .unwrap_or(0)
    }

    /// Whether a shard no longer read (handed over, or its lease lost)
    /// still has records read and not checkpointed.
    pub(crate) fn awaits_checkpoint(&self) -> bool {
        self.dropped.lock().is_ok_and(|d| !d.is_empty())
    }

    /// The shard is no longer read: it leaves the gauges once its records
    /// in flight are checkpointed.
    pub(crate) fn forget(&self, shard: &str) {
        let Ok(mut s) = self.shards.lock() else {
            return;
        };
        if s.get(shard).is_some_and(|l| l.records_in_flight > 0) {
            if let Ok(mut d) = self.dropped.lock() {
                d.insert(shard.to_owned());
            }
        } else {
            s.remove(shard);
        }
    }
}

/// A shard's checkpoint, written once its batch is delivered.
pub struct Checkpoint {
    pub(crate) table: String,
    pub(crate) key: String,
    /// Empty when the batch is the empty last read of a closed shard.
    pub(crate) sequence_number: String,
    /// The shard is closed and this batch ends it.
    pub(crate) shard_end: bool,
    /// The worker reading the shard: written only while it holds the lease.
    pub(crate) owner: String,
    /// The shard and its records, for the lag in records.
    pub(crate) progress: (Arc<Lag>, String, u64),
}

/// A shard's checkpoint item.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// The sequence number of the last record delivered.
    pub(crate) sequence_number: Option<String>,
    /// The closed shard was read to its end.
    pub(crate) shard_end: bool,
    /// A child shard of a resharding: it starts where its parents ended.
    pub(crate) trim_horizon: bool,
}

/// A shard's checkpoint, if it has one.
pub(crate) async fn saved_checkpoint(
    aws: &Clients,
    table: &str,
    key: &str,
) -> Result<Saved, String> {
    let item = aws
        .dynamodb()
        .get_item()
        .table_name(table)
        .key("shard_key", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify(&format!("get_item on `{table}`"), &e).message)?
        .item
        .unwrap_or_default();
    Ok(Saved {
        sequence_number: item
            .get("sequence_number")
            .and_then(|v| v.as_s().ok())
            .cloned(),
        shard_end: item
            .get(super::lease::SHARD_END)
            .is_some_and(|v| v.as_bool().is_ok_and(|b| *b)),
        trim_horizon: item
            .get(super::lease::START)
            .is_some_and(|v| v.as_s().is_ok_and(|s| s == "trim_horizon")),
    })
}

impl Reader {
    /// A reader of the shards whose leases this worker holds in its group
    /// (`leases`), as they come and go, each from its checkpoint on.
    pub async fn new(
        config: Config,
        pipeline: &str,
        aws: Arc<Clients>,
        leases: (Arc<super::lease::Shared>, String),
    ) -> Result<Reader, String> {
        ensure_table(&aws, &config.checkpoint_table).await?;
        Ok(Reader {
            stream: Arc::from(config.stream.as_str()),
            config,
            pipeline: pipeline.to_owned(),
            shards: Vec::new(),
            next: 0,
            aws,
            leases,
            lag: Arc::default(),
        })
    }

    /// `PIPELINE/STREAM/SHARD`, with the stream's name even when the
    /// pipeline names it by ARN, so the checkpoints hold either way.
    fn checkpoint_key(&self, shard: &str) -> String {
        format!(
            "{}/{}/{shard}",
            self.pipeline,
            stream_name(&self.config.stream)
        )
    }

    /// How far behind each shard is.
    pub fn lag(&self) -> Arc<Lag> {
        Arc::clone(&self.lag)
    }

    /// Starts reading the shards whose leases were taken, and stops
    /// reading those given up.
    async fn follow_leases(&mut self) {
        let owned = self.leases.0.owned();
        for id in super::follow_leases(&mut self.shards, &owned, &self.lag) {
            // A shard whose checkpoint cannot be read now is tried again at the next read.
            let iterator = match self.iterator(&id).await {
                Ok(i) => i,
                Err(e) => {
                    crate::logs::json("warn", &format!("cannot start reading shard {id} yet: {e}"));
                    continue;
                }
            };
            self.shards.push(Shard::new(&id, iterator));
        }
        self.next %= self.shards.len().max(1);
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
            return self.iterator(shard).await;
        };
        self.shard_iterator(shard)
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq)
            .send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e).message)
            .map(|o| o.shard_iterator)
    }

    /// An iterator after the shard's checkpoint, or at the start position;
    /// `None` when the shard was read to its end.
    async fn iterator(&self, shard: &str) -> Result<Option<String>, String> {
        let saved = saved_checkpoint(
            &self.aws,
            &self.config.checkpoint_table,
            &self.checkpoint_key(shard),
        )
        .await?;
        if saved.shard_end {
            return Ok(None);
        }
        let start = if saved.trim_horizon {
            StartPosition::TrimHorizon
        } else {
            self.config.start_position
        };
        let saved = saved.sequence_number;
        let mut req = self.shard_iterator(shard);
        req = match (saved, start) {
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
            .map(|o| o.shard_iterator)
    }

    /// Reads the next shard (round robin) that has records; `Ok(None)` when
    /// a whole round found none.
    pub async fn read(
        &mut self,
        max: usize,
        policy: &Policy,
    ) -> Result<Option<(Vec<RawRecord>, Checkpoint)>, SinkError> {
        self.follow_leases().await;
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
            // A closed shard read to its end: in a worker group its last
            // checkpoint says so, even without records, so that its
            // children may be read.
            let shard_end = self.shards[i].iterator.is_none();
            let shard_id = self.shards[i].id.to_string();
            let read = out.records().len() as u64;
            if let Some(ms) = out.millis_behind_latest() {
                self.lag.update(&shard_id, |l| l.millis_behind = ms);
            }
            let sequence_number = match out.records().last() {
                Some(last) => last.sequence_number().to_owned(),
                None if shard_end => String::new(),
                None => continue,
            };
            if !sequence_number.is_empty() {
                self.shards[i].last_read = Some(sequence_number.clone());
            }
            self.lag.update(&shard_id, |l| l.records_in_flight += read);
            let checkpoint = Checkpoint {
                table: self.config.checkpoint_table.clone(),
                key: self.checkpoint_key(&self.shards[i].id),
                sequence_number,
                shard_end,
                owner: self.leases.1.clone(),
                progress: (Arc::clone(&self.lag), shard_id, read),
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
    /// Writes the checkpoint, only while this worker holds the shard's
    /// lease: a worker that lost it cannot overwrite the new owner's
    /// checkpoint.
    pub async fn save(&self, aws: &Clients) -> Result<(), String> {
        let mut set = vec!["updated_at = :t"];
        let mut req = aws
            .dynamodb()
            .update_item()
            .table_name(&self.table)
            .key("shard_key", AttributeValue::S(self.key.clone()))
            .expression_attribute_values(
                ":t",
                AttributeValue::S(crate::engine::run::now_rfc3339()),
            );
        if !self.sequence_number.is_empty() {
            set.push("sequence_number = :s");
            req = req
                .expression_attribute_values(":s", AttributeValue::S(self.sequence_number.clone()));
        }
        if self.shard_end {
            set.push("shard_end = :end");
            req = req.expression_attribute_values(":end", AttributeValue::Bool(true));
        }
        let sent = req
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await;
        let (lag, shard, records) = &self.progress;
        lag.settle(shard, *records);
        match sent {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(format!(
                    "the checkpoint of `{}` was not written: another worker holds its lease now and reads these records again",
                    self.key
                ))
            }
            Err(e) => Err(classify(
                &format!("checkpoint of `{}` in `{}`", self.key, self.table),
                &e,
            )
            .message
                + " (the batch will be read again after a restart)"),
        }
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
    let created = ddb
        .create_table()
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
        .await;
    match created {
        Ok(_) => {}
        // Another worker of the group created it at the same time.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(classify(&format!("create_table `{table}`"), &e).message),
    }
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
