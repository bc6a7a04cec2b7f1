//! The `stdin` source: one record per line of standard input.

use schemars::JsonSchema;
use std::io::BufReader;

use serde::Deserialize;

use super::lines::LineReader;
use super::shards::group::Member;
use super::{OpenCx, READ_A_STREAM, Reader, RunMode, Source};

/// Read standard input, one record per line. Empty lines are skipped.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StdinSource")]
pub struct Config {
    /// The longest line accepted, in bytes, without the line break (10 MiB); a longer one is
    /// dead-lettered (stage `decode`) instead of processed.
    #[serde(default = "super::default_max_record_bytes")]
    pub max_record_bytes: u64,
}

impl Source for Config {
    const MODES: &'static [RunMode] = &[RunMode::Run];

    fn refusal_hint(&self) -> &'static str {
        READ_A_STREAM
    }

    fn uses_aws(&self) -> bool {
        false
    }

    fn is_stream(&self) -> bool {
        false
    }

    async fn open(
        &self,
        _cx: OpenCx<'_>,
    ) -> Result<(Reader, Option<Member>), crate::delivery::Error> {
        let reader = LineReader::new(
            Box::new(BufReader::with_capacity(256 * 1024, std::io::stdin())),
            "stdin",
            None,
            self.max_record_bytes,
        );
        Ok((Reader::Lines(reader), None))
    }
}
