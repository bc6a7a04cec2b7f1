//! The `dynamodb_streams` source: the change records of a DynamoDB table,
//! every shard in order, as plain JSON (`eventName`, `Keys`, `NewImage`,
//! `OldImage`), checkpointed per shard like the `kinesis` source.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Shard;
use super::kinesis::{Checkpoint, Lag, ensure_table, saved_checkpoint};
use crate::aws::Clients;
use crate::config::duration::Dur;
use crate::delivery::{ErrorClass, Policy, SinkError, error::classify};
use crate::record::{Position, RawRecord};

/// Read the change records of an Amazon DynamoDB table's stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DynamodbStreamsSource")]
pub struct Config {
    /// The table whose stream (its latest) is read.
    pub table: String,
    /// Where a shard without a checkpoint starts: `latest` or `trim_horizon`.
    #[serde(default)]
    pub start_position: StartPosition,
    /// DynamoDB table of checkpoints (created when missing).
    #[serde(default = "default_checkpoint_table")]
    pub checkpoint_table: String,
    /// Most records per `GetRecords` call (at most 1 000).
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_records: i32,
    /// Wait before reading again when no shard had new records.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Dur,
}

/// Where reading starts on a shard that has no checkpoint yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "StreamsStartPosition")]
pub enum StartPosition {
    /// Only changes made from now on.
    #[default]
    Latest,
    /// The oldest change the stream still holds (24 hours).
    TrimHorizon,
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

/// A DynamoDB attribute value as plain JSON: numbers as numbers, sets as arrays, binary as base64.
pub fn plain(v: &AttributeValue) -> Value {
    let number =
        |n: &str| serde_json::from_str::<Value>(n).unwrap_or_else(|_| Value::String(n.to_owned()));
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b64(b.as_ref()),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Ss(v) => Value::Array(v.iter().map(|s| Value::String(s.clone())).collect()),
        AttributeValue::Ns(v) => Value::Array(v.iter().map(|n| number(n)).collect()),
        AttributeValue::Bs(v) => Value::Array(v.iter().map(|b| b64(b.as_ref())).collect()),
        AttributeValue::L(l) => Value::Array(l.iter().map(plain).collect()),
        AttributeValue::M(m) => image(m),
        _ => Value::Null,
    }
}

fn image(m: &std::collections::HashMap<String, AttributeValue>) -> Value {
    let mut out = Map::new();
    for (k, v) in m {
        out.insert(k.clone(), plain(v));
    }
    Value::Object(out)
}

/// A running DynamoDB Streams source.
pub struct Reader {
    config: Config,
    pipeline: String,
    stream_arn: Arc<str>,
    shards: Vec<Shard>,
    next: usize,
    aws: Arc<Clients>,
    /// The leases this worker holds in its group, and its name.
    leases: (Arc<super::lease::Shared>, String),
    lag: Arc<Lag>,
}

impl Reader {
    /// Finds the table's stream; reads the shards whose leases this worker
    /// holds in its group (`leases`), as they come and go, each from its
    /// checkpoint on.
    pub async fn new(
        config: Config,
        pipeline: &str,
        aws: Arc<Clients>,
        leases: (Arc<super::lease::Shared>, String),
    ) -> Result<Reader, String> {
        ensure_table(&aws, &config.checkpoint_table).await?;
        let table = aws
            .dynamodb()
            .describe_table()
            .table_name(&config.table)
            .send()
            .await
            .map_err(|e| classify(&format!("describe_table of `{}`", config.table), &e).message)?;
        let arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                format!(
                    "table `{}` has no stream: enable DynamoDB Streams on it",
                    config.table
                )
            })?;
        Ok(Reader {
            config,
            pipeline: pipeline.to_owned(),
            stream_arn: Arc::from(arn.as_str()),
            shards: Vec::new(),
            next: 0,
            aws,
            leases,
            lag: Arc::default(),
        })
    }

    /// The stream's ARN.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// How far behind each shard is (records read and not yet checkpointed).
    pub fn lag(&self) -> Arc<Lag> {
        Arc::clone(&self.lag)
    }

    /// Starts reading the shards whose leases were taken, and stops
    /// reading those given up.
    async fn follow_leases(&mut self) {
        let owned = self.leases.0.owned();
        for id in super::follow_leases(&mut self.shards, &owned, &self.lag) {
            // A shard whose checkpoint cannot be read now is tried again at the next read.
            match self.iterator(&id).await {
                Ok(iterator) => self.shards.push(Shard::new(&id, iterator)),
                Err(e) => {
                    crate::logs::json("warn", &format!("cannot start reading shard {id} yet: {e}"))
                }
            }
        }
        self.next %= self.shards.len().max(1);
    }

    fn checkpoint_key(&self, shard: &str) -> String {
        format!("{}/{}/{shard}", self.pipeline, self.config.table)
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
        self.aws
            .streams()
            .get_shard_iterator()
            .stream_arn(&*self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq)
            .send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e).message)
            .map(|o| o.shard_iterator)
    }

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
        let req = self
            .aws
            .streams()
            .get_shard_iterator()
            .stream_arn(&*self.stream_arn)
            .shard_id(shard);
        let req = match (saved.sequence_number, start) {
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            (None, StartPosition::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
        };
        req.send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e).message)
            .map(|o| o.shard_iterator)
    }

    /// Reads the next shard (round robin) that has records; `Ok(None)` when a whole round found none.
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
                .streams()
                .get_records()
                .shard_iterator(iterator)
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
            let records: Vec<RawRecord> = out
                .records()
                .iter()
                .filter_map(|r| {
                    let d = r.dynamodb()?;
                    let mut doc = Map::new();
                    doc.insert(
                        "eventName".into(),
                        Value::String(r.event_name()?.as_str().to_owned()),
                    );
                    doc.insert(
                        "eventID".into(),
                        r.event_id()
                            .map_or(Value::Null, |e| Value::String(e.to_owned())),
                    );
                    for (name, img) in [
                        ("Keys", d.keys()),
                        ("NewImage", d.new_image()),
                        ("OldImage", d.old_image()),
                    ] {
                        if let Some(img) = img {
                            doc.insert(name.into(), image(img));
                        }
                    }
                    Some(RawRecord {
                        data: serde_json::to_vec(&Value::Object(doc)).unwrap_or_default(),
                        position: Position {
                            source: "dynamodb_streams",
                            stream: Some(Arc::clone(&self.stream_arn)),
                            shard: Some(Arc::clone(&self.shards[i].id)),
                            sequence_number: d.sequence_number().map(str::to_owned),
                            arrival_time: d.approximate_creation_date_time().map(|t| {
                                let ms = t.to_millis().unwrap_or(0).max(0) as u64;
                                humantime::format_rfc3339_millis(
                                    UNIX_EPOCH + Duration::from_millis(ms),
                                )
                                .to_string()
                            }),
                            ..Position::default()
                        },
                        rejected: None,
                        attributes: None,
                    })
                })
                .collect();
            // A closed shard read to its end: in a worker group its last
            // checkpoint says so, even without records, so that its
            // children may be read.
            let shard_end = self.shards[i].iterator.is_none();
            let last = match records
                .last()
                .and_then(|r| r.position.sequence_number.clone())
            {
                Some(last) => last,
                None if shard_end => String::new(),
                None => continue,
            };
            if !last.is_empty() {
                self.shards[i].last_read = Some(last.clone());
            }
            let shard_id = self.shards[i].id.to_string();
            let read = records.len() as u64;
            self.lag.update(&shard_id, |l| l.records_in_flight += read);
            let checkpoint = Checkpoint {
                table: self.config.checkpoint_table.clone(),
                key: self.checkpoint_key(&self.shards[i].id),
                sequence_number: last,
                shard_end,
                owner: self.leases.1.clone(),
                progress: (Arc::clone(&self.lag), shard_id, read),
            };
            return Ok(Some((records, checkpoint)));
        }
        Ok(None)
    }

    /// The wait between rounds that found nothing.
    pub fn poll_interval(&self) -> Duration {
        self.config.poll_interval.0
    }
}
