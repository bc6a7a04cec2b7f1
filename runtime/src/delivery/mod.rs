//! Delivery: the dead-letter queue and its envelope.
//!
//! Every record that cannot be delivered ends here with the stage and the
//! reason, as one [`Envelope`] per record. The DLQ is written and synced
//! before a batch counts as done; if it cannot be written the run fails and
//! nothing after it is acknowledged.

pub mod envelope;

pub use envelope::Envelope;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::sinks;

/// Where dead-lettered records go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Dlq")]
pub enum DlqConfig {
    /// Write envelopes, one JSON document per line, to a local file.
    File(sinks::file::Config),
    /// Write envelopes to standard output.
    Stdout(sinks::stdout::Config),
}
