//! The running `file` sink.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::Mode;
use crate::delivery::{Error, error::classify_io};
use crate::sinks::OutRecord;

/// An open file sink.
pub struct Writer {
    out: BufWriter<File>,
    name: String,
}

impl Writer {
    /// Opens (and creates) the file.
    pub fn open(path: &Path, mode: Mode) -> Result<Self, Error> {
        let open = || -> std::io::Result<File> {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            OpenOptions::new()
                .create(true)
                .write(true)
                .append(mode == Mode::Append)
                .truncate(mode == Mode::Truncate)
                .open(path)
        };
        let file = open().map_err(|e| {
            Error::fatal(format!("cannot open `{}` for writing: {e}", path.display()))
        })?;
        Ok(Writer {
            out: BufWriter::with_capacity(256 * 1024, file),
            name: path.display().to_string(),
        })
    }
}

impl crate::sinks::Write for Writer {
    /// Writes the records as lines. They are durable once `flush` returns.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        crate::sinks::write_lines(
            &mut self.out,
            records,
            &format!("writing to `{}`", self.name),
        )
    }

    /// Flushes and syncs the data to disk: after this the records are durable.
    async fn flush(&mut self) -> Result<(), Error> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(|e| classify_io(&format!("syncing `{}`", self.name), &e))
    }
}
