//! The `stdout` sink: JSON Lines on standard output.

use std::io::Write;

use schemars::JsonSchema;
use serde::Deserialize;

use super::OutRecord;
use crate::delivery::{SinkError, error::classify_io};

/// Write records to standard output as JSON Lines.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StdoutSink")]
pub struct Config {}

/// Standard output, buffered.
pub struct Writer {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }
}

impl Writer {
    /// Writes the records as lines.
    pub fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), SinkError>> {
        super::write_lines(&mut self.out, records, "writing to standard output")
    }

    /// Flushes standard output.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| classify_io("flushing standard output", &e))
    }
}
