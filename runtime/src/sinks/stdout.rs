//! The `stdout` sink: JSON Lines on standard output.

use schemars::JsonSchema;
use serde::Deserialize;

/// Write records to standard output as JSON Lines.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StdoutSink")]
pub struct Config {}
