//! The `file` source: one record per line of a local file.

use schemars::JsonSchema;
use serde::Deserialize;

/// Read a local file, one record per line (`\n` or `\r\n`). Empty lines are skipped.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileSource")]
pub struct Config {
    /// Path of the file, relative to the pipeline file's folder unless absolute.
    pub path: String,
    /// A longer line is dead-lettered (stage `decode`) instead of processed.
    #[serde(default = "super::default_max_record_bytes")]
    pub max_record_bytes: u64,
}
