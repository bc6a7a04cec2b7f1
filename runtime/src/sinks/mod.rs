//! Sinks: where delivered records go.
//!
//! Each sink type is one module with a `Config` and a writer; [`Config`] is the
//! `type`-tagged list the pipeline format accepts. A sink receives encoded
//! records (one JSON document or text line each) and reports whether it
//! accepted them; it never decides about retries or the dead-letter queue.

pub mod file;
pub mod stdout;

use schemars::JsonSchema;
use serde::Deserialize;

/// A destination for records.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Sink")]
pub enum Config {
    /// Write JSON Lines to a local file.
    File(file::Config),
    /// Write JSON Lines to standard output.
    Stdout(stdout::Config),
}

impl Config {
    /// The `type` name of the sink.
    pub fn type_name(&self) -> &'static str {
        match self {
            Config::File(_) => "file",
            Config::Stdout(_) => "stdout",
        }
    }
}
