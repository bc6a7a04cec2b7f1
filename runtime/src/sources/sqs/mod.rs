//! The `sqs` source: messages of an Amazon SQS queue, standard or FIFO.
//!
//! Read by [`reader`] under `sluice run` and `sluice daemon` (each message
//! is deleted once delivered) and by [`event`] from a Lambda event source
//! mapping; both build records with [`record`], so a message is the same
//! record with the same `meta` in every mode.

pub mod event;
pub mod reader;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;

pub use reader::{Reader, Receipts};

use serde_json::{Value, json};

use super::shards::group::Member;
use super::{EventSource, OpenCx, RunMode, Source};
use crate::aws::iam::{queue_arn, sqs_consume, statement};
use crate::aws::sam::Fragment;
use crate::duration::Dur;
use crate::record::time::rfc3339_millis;
use crate::record::{Attributes, Position, RawRecord};

/// ReceiveMessage and DeleteMessageBatch: at most 10 messages per call.
const MAX_PER_CALL: usize = 10;

/// Read messages from an Amazon SQS queue (standard or FIFO).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SqsSource")]
pub struct Config {
    /// Queue URL, or queue name (resolved with `GetQueueUrl`).
    pub queue: String,
    /// Long-polling wait of a receive that finds the queue empty (at most 20 s).
    #[serde(default = "default_wait_time")]
    pub wait_time: Dur,
    /// Visibility timeout of received messages (default: the queue's). Sluice extends it while
    /// a batch is in flight.
    #[serde(default)]
    pub visibility_timeout: Option<Dur>,
}

fn default_wait_time() -> Dur {
    Dur(Duration::from_secs(20))
}

/// The queue's name from its URL (`sluice run`, `sluice daemon`) or its ARN
/// (Lambda): `meta.stream` of its records in every mode.
pub fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url_or_arn)
}

/// Where a message came from. `system` reads one of its system attributes
/// by name (`MessageGroupId`, `SequenceNumber`, `SentTimestamp`).
pub fn position(
    queue: Option<Arc<str>>,
    message_id: Option<String>,
    system: impl Fn(&str) -> Option<String>,
) -> Position {
    Position {
        source: "sqs",
        stream: queue,
        message_id,
        partition_key: system("MessageGroupId"),
        sequence_number: system("SequenceNumber"),
        arrival_time: system("SentTimestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .map(rfc3339_millis),
        ..Position::default()
    }
}

/// A message as a record: its body, its position and its message
/// attributes (`meta.attributes`; see [`attribute_text`]).
pub fn record(
    queue: Option<Arc<str>>,
    message_id: Option<String>,
    body: Vec<u8>,
    system: impl Fn(&str) -> Option<String>,
    attributes: Attributes,
) -> RawRecord {
    RawRecord::new(body, position(queue, message_id, system)).with_attributes(attributes)
}

/// A message attribute's value as text: a string as it is, binary in base64.
pub fn attribute_text(string: Option<&str>, binary: Option<&[u8]>) -> String {
    match (string, binary) {
        (Some(s), _) => s.to_owned(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        (None, None) => String::new(),
    }
}

impl Source for Config {
    const MODES: &'static [RunMode] = &[RunMode::Run, RunMode::Daemon, RunMode::Lambda];
    const EVENTS: Option<&'static dyn EventSource> = Some(&event::Events);

    fn lambda_template(&self, _pipeline: &str, t: &mut Fragment) -> Result<(), String> {
        t.policy.push(sqs_consume(&self.queue));
        t.event = Some(json!({
            "Type": "SQS",
            "Properties": {
                "Queue": queue_arn(&self.queue),
                "BatchSize": { "Ref": "BatchSize" },
                "MaximumBatchingWindowInSeconds": { "Ref": "MaximumBatchingWindowInSeconds" },
                "FunctionResponseTypes": ["ReportBatchItemFailures"]
            }
        }));
        Ok(())
    }

    fn daemon_permissions(&self) -> Vec<Value> {
        vec![
            sqs_consume(&self.queue),
            statement(&["sqs:GetQueueUrl"], vec![queue_arn(&self.queue)]),
        ]
    }

    async fn open(
        &self,
        cx: OpenCx<'_>,
    ) -> Result<(super::Reader, Option<Member>), crate::delivery::Error> {
        let aws = cx.aws()?;
        let reader = Reader::new(self.clone(), Arc::clone(&aws), &cx.worker.retry)
            .await
            .map_err(|e| e.context("the source queue"))?;
        Ok((super::Reader::Sqs(reader, aws), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_name_is_the_same_from_its_url_and_its_arn() {
        for (given, name) in [
            (
                "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                "orders",
            ),
            ("http://127.0.0.1:4566/000000000000/in.fifo", "in.fifo"),
            ("arn:aws:sqs:us-east-1:123456789012:orders", "orders"),
            ("orders", "orders"),
        ] {
            assert_eq!(queue_name(given), name, "{given}");
        }
    }
}
