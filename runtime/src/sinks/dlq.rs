//! The sinks a dead-letter queue may be: the DLQ is written by the same
//! writers as the sinks, with the envelopes as its records.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Config, file, s3, sqs, stdout};

/// Where dead-lettered records go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Dlq")]
pub enum DlqConfig {
    /// Write envelopes, one JSON document per line, to a local file.
    File(file::Config),
    /// Write envelopes to standard output.
    Stdout(stdout::Config),
    /// Write envelopes as JSON Lines objects to Amazon S3 (any record fits).
    S3(s3::Config),
    /// Send each envelope as a message to Amazon SQS.
    Sqs(sqs::Config),
}

impl DlqConfig {
    /// The DLQ as a sink config.
    pub fn as_sink(&self) -> Config {
        match self {
            DlqConfig::File(c) => Config::File(c.clone()),
            DlqConfig::Stdout(c) => Config::Stdout(c.clone()),
            DlqConfig::S3(c) => Config::S3(c.clone()),
            DlqConfig::Sqs(c) => Config::Sqs(c.clone()),
        }
    }
}
