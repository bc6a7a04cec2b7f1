//! What the pipeline format reads for a `stdout` sink.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Writer;
use crate::delivery::Error;
use crate::sinks::{BuildCx, Sink};

/// Write records to standard output as JSON Lines.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StdoutSink")]
pub struct Config {}

impl Sink for Config {
    type Writer = Writer;

    fn uses_aws(&self) -> bool {
        false
    }

    async fn open(&self, _cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Ok(Writer::default())
    }
}
