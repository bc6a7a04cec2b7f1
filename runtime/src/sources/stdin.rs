//! The `stdin` source: one record per line of standard input.

use schemars::JsonSchema;
use serde::Deserialize;

/// Read standard input, one record per line. Empty lines are skipped.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StdinSource")]
pub struct Config {
    /// A longer line is dead-lettered (stage `decode`) instead of processed.
    #[serde(default = "super::default_max_record_bytes")]
    pub max_record_bytes: u64,
}
