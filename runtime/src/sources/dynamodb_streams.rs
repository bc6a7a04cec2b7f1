//! The `dynamodb_streams` source: the change records of a DynamoDB table,
//! every shard in order, as plain JSON (`eventName`, `Keys`, `NewImage`,
//! `OldImage`), checkpointed per shard like the `kinesis` source.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::shards::ensure_table;
use super::shards::{At, GetError, Page, ShardApi, ShardReader};
use crate::aws::Clients;
use crate::config::duration::Dur;
use crate::delivery::{Policy, SinkError, error::classify};
use crate::record::time::rfc3339_millis;
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
pub type Reader = ShardReader<Api>;

/// The DynamoDB Streams side of a [`ShardReader`].
pub struct Api {
    config: Config,
    pipeline: String,
    stream_arn: Arc<str>,
    aws: Arc<Clients>,
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
        retry: Policy,
    ) -> Result<Reader, String> {
        ensure_table(&aws, &config.checkpoint_table, &retry).await?;
        let req = aws.dynamodb().describe_table().table_name(&config.table);
        let what = format!("describe_table of `{}`", config.table);
        let table = retry
            .send(&what, || req.clone().send())
            .await
            .map_err(|e| e.message)?;
        let arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                format!(
                    "table `{}` has no stream: enable DynamoDB Streams on it",
                    config.table
                )
            })?;
        let (checkpoint_table, max_records, poll) = (
            config.checkpoint_table.clone(),
            config.max_records,
            config.poll_interval.0,
        );
        let api = Api {
            config,
            pipeline: pipeline.to_owned(),
            stream_arn: Arc::from(arn.as_str()),
            aws: Arc::clone(&aws),
        };
        Ok(ShardReader::with_api(
            api,
            aws,
            leases,
            retry,
            &checkpoint_table,
            max_records,
            poll,
        ))
    }

    /// The stream's ARN.
    pub fn stream_arn(&self) -> &str {
        &self.api.stream_arn
    }
}

impl ShardApi for Api {
    fn checkpoint_key(&self, shard: &str) -> String {
        format!("{}/{}/{shard}", self.pipeline, self.config.table)
    }

    async fn iterator(&self, shard: &str, at: At) -> Result<Option<String>, SinkError> {
        let req = self
            .aws
            .streams()
            .get_shard_iterator()
            .stream_arn(&*self.stream_arn)
            .shard_id(shard);
        let req = match (at, self.config.start_position) {
            (At::After(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            (At::TrimHorizon, _) | (At::Configured, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (At::Configured, StartPosition::Latest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
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
            .streams()
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| GetError::of(shard, &e))?;
        let records = out
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
                        shard: Some(Arc::clone(shard)),
                        sequence_number: d.sequence_number().map(str::to_owned),
                        arrival_time: d
                            .approximate_creation_date_time()
                            .map(|t| rfc3339_millis(t.to_millis().unwrap_or(0))),
                        ..Position::default()
                    },
                    rejected: None,
                    attributes: None,
                    fan_out: Vec::new(),
                })
            })
            .collect();
        Ok(Page {
            records,
            next_iterator: out.next_shard_iterator().map(str::to_owned),
            millis_behind: None,
        })
    }
}
