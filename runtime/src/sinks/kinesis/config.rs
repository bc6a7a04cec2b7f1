//! What the pipeline format reads for a `kinesis` sink.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Writer;
use crate::aws::iam::{statement, stream_arn};
use crate::delivery::{Error, Policy};
use crate::sinks::{BuildCx, Sink};

/// Write each record to an Amazon Kinesis data stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KinesisSink")]
pub struct Config {
    /// Stream name or ARN.
    pub stream: String,
    /// The record field (dotted path) whose value is the partition key. Records with the same
    /// key go to the same shard, in order.
    pub partition_key: String,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<crate::delivery::Policy>,
}

impl Sink for Config {
    type Writer = Writer;

    /// The record fields the sink reads: the partition key.
    fn key_fields(&self) -> Vec<String> {
        vec![self.partition_key.clone()]
    }

    fn retry(&self) -> Option<&Policy> {
        self.retry.as_ref()
    }

    fn permissions(&self, _pipeline: &str) -> Vec<Value> {
        vec![statement(
            &["kinesis:PutRecords", "kinesis:PutRecord"],
            vec![stream_arn(&self.stream)],
        )]
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Ok(Writer::new(self.clone(), cx.aws()?))
    }
}
