//! Sources: where records come from.
//!
//! Each source type is one module with a `Config`; the [`Config`] enum below is
//! the `type`-tagged list the pipeline format accepts. A source yields
//! [`RawRecord`](crate::record::RawRecord)s in batches; it knows nothing of
//! decoding, scripts or sinks.

pub mod file;
pub mod stdin;

use schemars::JsonSchema;
use serde::Deserialize;

/// Where the pipeline reads records from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Source")]
pub enum Config {
    /// Read a local file, one record per line.
    File(file::Config),
    /// Read standard input, one record per line.
    Stdin(stdin::Config),
}

impl Config {
    /// The `type` name of the source.
    pub fn type_name(&self) -> &'static str {
        match self {
            Config::File(_) => "file",
            Config::Stdin(_) => "stdin",
        }
    }
}

/// Default largest record a line source accepts: 10 MiB.
pub fn default_max_record_bytes() -> u64 {
    10 * 1024 * 1024
}
