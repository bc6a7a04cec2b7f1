//! The `file` source: one record per line of a local file.

use schemars::JsonSchema;
use std::io::BufReader;
use std::sync::Arc;

use serde::Deserialize;

use super::lines::LineReader;
use super::shards::group::Member;
use super::{OpenCx, READ_A_STREAM, Reader, RunMode, Source};
use crate::delivery::Error;

/// Read a local file, one record per line (`\n` or `\r\n`). Empty lines are skipped.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileSource")]
pub struct Config {
    /// The file to read, relative to the pipeline's folder unless absolute.
    pub path: String,
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

    async fn open(&self, cx: OpenCx<'_>) -> Result<(Reader, Option<Member>), Error> {
        let path = (cx.resolve)(&self.path);
        let f = std::fs::File::open(&path).map_err(|e| {
            Error::fatal(format!(
                "cannot read the source file `{}`: {e}",
                path.display()
            ))
        })?;
        // A regular file's size is known: the progress bar shows how far
        // through it the run is (a pipe or a device has no size).
        let size = f
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len());
        let reader = LineReader::new(
            Box::new(BufReader::with_capacity(256 * 1024, f)),
            "file",
            Some(Arc::from(self.path.as_str())),
            self.max_record_bytes,
        );
        let reader = match size {
            Some(size) => reader.sized(size),
            None => reader,
        };
        Ok((Reader::Lines(reader), None))
    }
}
