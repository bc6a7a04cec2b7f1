//! The `dynamodb_streams` source: the change records of a DynamoDB table,
//! as plain JSON (`eventName`, `eventID`, `Keys`, `NewImage`, `OldImage`).
//!
//! Read by [`reader`] under `sluice run` and `sluice daemon` (every shard in
//! order, checkpointed in DynamoDB) and by [`event`] from a Lambda event
//! source mapping; both build records with [`position`] and [`record`], and
//! one conversion of attribute values ([`item_json`]), so a change is the
//! same record in every mode. A Lambda event does not name the shard:
//! `meta.shard` is only set under `sluice run` and `sluice daemon`.

pub mod event;
pub mod reader;

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub use reader::Reader;

use super::shards::group::Member;
use super::{EventSource, OpenCx, RunMode, Source};
use crate::aws::iam::{arn, dynamodb_stream_read, lease_table, statement, table_arn};
use crate::aws::sam::Fragment;
use crate::duration::Dur;
use crate::record::time::rfc3339_millis;
use crate::record::{Position, RawRecord};

/// Read the change records of an Amazon DynamoDB table's stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DynamodbStreamsSource")]
pub struct Config {
    /// The table whose stream is read.
    pub table: String,
    /// Where a shard without a checkpoint starts: `latest` or `trim_horizon` (the last 24
    /// hours).
    #[serde(default)]
    pub start_position: StartPosition,
    /// The DynamoDB table of checkpoints and leases, created when missing (as for `kinesis`).
    #[serde(default = "super::shards::default_checkpoint_table")]
    pub checkpoint_table: String,
    /// Most records per `GetRecords` call.
    #[serde(default = "super::shards::default_max_records")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_records: i32,
    /// Wait before reading again when no shard had new records.
    #[serde(default = "super::shards::default_poll_interval")]
    pub poll_interval: Dur,
}

/// Where reading starts on a shard that has no checkpoint yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "StreamsStartPosition")]
pub enum StartPosition {
    /// Only changes made from now on.
    #[default]
    Latest,
    /// The oldest change the stream still holds (24 hours).
    TrimHorizon,
}

/// Where a change record came from: the stream's ARN, the shard, the
/// sequence number, and when the change was made (ms).
pub fn position(
    stream: Option<Arc<str>>,
    shard: Option<Arc<str>>,
    sequence_number: Option<String>,
    created_ms: Option<i64>,
) -> Position {
    Position {
        source: "dynamodb_streams",
        stream,
        shard,
        sequence_number,
        arrival_time: created_ms.map(rfc3339_millis),
        ..Position::default()
    }
}

/// A change as a record: `{eventName, eventID, Keys, NewImage, OldImage}`,
/// each image present when the change has it (`images`: keys, new, old).
pub fn record(
    position: Position,
    event_name: &str,
    event_id: Option<&str>,
    images: [Option<serde_dynamo::Item>; 3],
) -> RawRecord {
    let mut doc = Map::new();
    doc.insert("eventName".into(), Value::String(event_name.to_owned()));
    doc.insert(
        "eventID".into(),
        event_id.map_or(Value::Null, |e| Value::String(e.to_owned())),
    );
    for (name, image) in ["Keys", "NewImage", "OldImage"].into_iter().zip(images) {
        if let Some(image) = image.filter(|i| !i.is_empty()) {
            doc.insert(name.into(), item_json(&image));
        }
    }
    RawRecord::new(
        serde_json::to_vec(&Value::Object(doc)).unwrap_or_default(),
        position,
    )
}

pub use crate::aws::item::{attribute_json, item_json};

impl Source for Config {
    const MODES: &'static [RunMode] = &[RunMode::Run, RunMode::Daemon, RunMode::Lambda];
    const EVENTS: Option<&'static dyn EventSource> = Some(&event::EVENTS);

    fn lambda_template(&self, _pipeline: &str, t: &mut Fragment) -> Result<(), String> {
        t.parameters.insert(
            "StreamArn".into(),
            json!({ "Type": "String", "AllowedPattern": "arn:.+:dynamodb:.+/stream/.+",
                    "Description": format!("The stream of table `{}`: aws dynamodb describe-table --table-name {} --query Table.LatestStreamArn", self.table, self.table) }),
        );
        t.policy
            .push(dynamodb_stream_read(json!({ "Ref": "StreamArn" })));
        let start = match self.start_position {
            StartPosition::Latest => "LATEST",
            StartPosition::TrimHorizon => "TRIM_HORIZON",
        };
        t.event = Some(t.stream_event("DynamoDB", json!({ "Ref": "StreamArn" }), start));
        Ok(())
    }

    fn daemon_permissions(&self) -> Vec<Value> {
        vec![
            // The table's description names its latest stream.
            statement(&["dynamodb:DescribeTable"], vec![table_arn(&self.table)]),
            dynamodb_stream_read(arn("dynamodb", &format!("table/{}/stream/*", self.table))),
            lease_table(&self.checkpoint_table),
        ]
    }

    /// Read as a member of the pipeline's worker group.
    async fn open(
        &self,
        cx: OpenCx<'_>,
    ) -> Result<(super::Reader, Option<Member>), crate::delivery::Error> {
        let aws = cx.aws()?;
        let source = super::Config::DynamodbStreams(self.clone());
        let (reader, member) =
            super::shards::group::join(&source, cx.pipeline, &aws, cx.worker).await?;
        Ok((reader, Some(member)))
    }
}
