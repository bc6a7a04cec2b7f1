//! The `file` sink: JSON Lines in a local file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

use super::OutRecord;
use crate::delivery::{SinkError, error::classify_io};

/// Write records to a local file as JSON Lines, one compact document per line.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileSink")]
pub struct Config {
    /// Path of the file, relative to the pipeline file's folder unless absolute.
    /// Missing parent folders are created.
    pub path: String,
    /// `truncate` starts the file afresh on every run; `append` adds to it.
    #[serde(default)]
    pub mode: Mode,
}

/// What happens to an existing file when a run starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "FileSinkMode")]
pub enum Mode {
    /// Empty the file first.
    #[default]
    Truncate,
    /// Keep what is there and add to it.
    Append,
}

/// An open file sink.
pub struct Writer {
    out: BufWriter<File>,
    name: String,
}

impl Writer {
    /// Opens (and creates) the file.
    pub fn open(path: &Path, mode: Mode) -> Result<Self, String> {
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
        let file =
            open().map_err(|e| format!("cannot open `{}` for writing: {e}", path.display()))?;
        Ok(Writer {
            out: BufWriter::with_capacity(256 * 1024, file),
            name: path.display().to_string(),
        })
    }

    /// Writes the records as lines. They are durable once [`sync`](Self::sync) returns.
    pub fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), SinkError>> {
        super::write_lines(
            &mut self.out,
            records,
            &format!("writing to `{}`", self.name),
        )
    }

    /// Flushes and syncs the data to disk: after this the records are durable.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(|e| classify_io(&format!("syncing `{}`", self.name), &e))
    }
}
