//! What the pipeline format reads for a `sqs` sink.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Writer;
use crate::aws::iam::{queue_arn, statement};
use crate::delivery::{Error, Policy};
use crate::diagnostics::{At, Code, Findings};
use crate::sinks::{BuildCx, CheckCx, Sink};

/// Send each record to an Amazon SQS queue as one message (its JSON).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SqsSink")]
pub struct Config {
    /// The queue's URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`) or its name. A name is
    /// resolved to the URL once, when the run starts (`GetQueueUrl`); if that fails, the run
    /// stops before reading any record (exit code 2).
    pub queue: String,
    /// FIFO queues: the record field (dotted path, such as `customer.id`) whose value is each
    /// message's `MessageGroupId`.
    #[serde(default)]
    pub message_group_id: Option<String>,
    /// FIFO queues: the record field whose value is each message's `MessageDeduplicationId`
    /// (default: the queue's content-based deduplication).
    #[serde(default)]
    pub deduplication_id: Option<String>,
    /// The largest message body (256 KiB). A larger record is not sent: it is dead-lettered
    /// with stage `sink`. Values above 256 KiB count as 256 KiB.
    #[serde(default = "default_max_message_bytes")]
    #[schemars(range(min = 1))]
    pub max_message_bytes: usize,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<crate::delivery::Policy>,
}

fn default_max_message_bytes() -> usize {
    256 * 1024
}

impl Sink for Config {
    type Writer = Writer;

    /// The record fields the sink reads: group id, then deduplication id.
    fn key_fields(&self) -> Vec<String> {
        self.message_group_id
            .iter()
            .chain(&self.deduplication_id)
            .cloned()
            .collect()
    }

    fn retry(&self) -> Option<&Policy> {
        self.retry.as_ref()
    }

    fn check(&self, cx: &CheckCx<'_>, findings: &mut Findings) {
        if cx.dlq && !self.key_fields().is_empty() {
            let field = if self.message_group_id.is_some() {
                "message_group_id"
            } else {
                "deduplication_id"
            };
            findings
                .error(
                    Code::InvalidValue,
                    At::Key(field),
                    "a dead-letter queue has no record fields: envelopes are not records",
                )
                .help("use a standard queue, or a FIFO queue with content-based deduplication and one group");
        }
    }

    fn permissions(&self, _pipeline: &str) -> Vec<Value> {
        vec![statement(
            &["sqs:SendMessage", "sqs:GetQueueUrl"],
            vec![queue_arn(&self.queue)],
        )]
    }

    /// A queue given by name is created; one given by URL or ARN exists already.
    fn dlq_resource(&self) -> Option<(&'static str, Value)> {
        (!self.queue.starts_with("arn:") && !self.queue.contains('/')).then(|| {
            (
                "DeadLetterQueue",
                serde_json::json!({ "Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                                    "Properties": { "QueueName": self.queue, "MessageRetentionPeriod": 1_209_600 } }),
            )
        })
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Writer::new(self.clone(), cx.aws()?, cx.retry).await
    }
}
