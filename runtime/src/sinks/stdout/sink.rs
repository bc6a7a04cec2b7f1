//! The running `stdout` sink.

use std::io::Write;

use crate::delivery::{Error, error::classify_io};
use crate::sinks::OutRecord;

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

impl crate::sinks::Write for Writer {
    /// Writes the records as lines.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        crate::sinks::write_lines(&mut self.out, records, "writing to standard output")
    }

    /// Flushes standard output.
    async fn flush(&mut self) -> Result<(), Error> {
        self.out
            .flush()
            .map_err(|e| classify_io("flushing standard output", &e))
    }
}
