//! Line sources (a file, standard input, a file DLQ read back): one record
//! per line, a line over the size limit skipped rather than held in memory.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{Position, RawRecord};

/// Reads one record per line from a buffered reader.
pub struct LineReader {
    input: Box<dyn BufRead + Send>,
    source: &'static str,
    file: Option<Arc<str>>,
    line: u64,
    max_record_bytes: u64,
    buf: Vec<u8>,
    /// Bytes read so far, and the input's size when it is known.
    consumed: Arc<AtomicU64>,
    total: Option<u64>,
}

/// How far through an input of known size a reader is: for the progress
/// bar's percentage and time left.
#[derive(Debug, Clone)]
pub struct InputSize {
    /// The input's size in bytes.
    pub total: u64,
    /// Bytes read so far.
    pub read: Arc<AtomicU64>,
}

impl LineReader {
    /// A reader over `input`; `file` names it in positions.
    pub fn new(
        input: Box<dyn BufRead + Send>,
        source: &'static str,
        file: Option<Arc<str>>,
        max_record_bytes: u64,
    ) -> Self {
        LineReader {
            input,
            source,
            file,
            line: 0,
            max_record_bytes,
            buf: Vec::new(),
            consumed: Arc::new(AtomicU64::new(0)),
            total: None,
        }
    }

    /// The same reader, over an input of `total` bytes.
    pub fn sized(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }

    /// How far through its input the reader is, when the size is known.
    pub fn input_size(&self) -> Option<InputSize> {
        self.total.map(|total| InputSize {
            total,
            read: Arc::clone(&self.consumed),
        })
    }

    /// Up to `max` records; an empty batch means the input is exhausted.
    /// Empty lines are skipped (but counted for line numbers).
    ///
    /// A line longer than `max_record_bytes` is not held whole: reading
    /// keeps its first [`HEAD_BYTES`] bytes and skips the rest up to the next
    /// line break, and the record is rejected (stage `decode`) with its size.
    ///
    /// A batch ends after `max` records, or once it holds `max_bytes` (it
    /// always holds at least one record).
    pub fn next_batch(&mut self, max: usize, max_bytes: u64) -> std::io::Result<Vec<RawRecord>> {
        let mut batch = Vec::with_capacity(max.min(4096));
        let mut bytes = 0u64;
        while batch.len() < max && bytes < max_bytes {
            let Some(size) = self.read_line()? else {
                break;
            };
            self.line += 1;
            let over = size > self.max_record_bytes;
            let mut data = self.buf.as_slice();
            if let Some(d) = data.strip_suffix(b"\n") {
                data = d;
            }
            if let Some(d) = data.strip_suffix(b"\r") {
                data = d;
            }
            if !over && data.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let rejected = over.then(|| {
                format!(
                    "record of {size} bytes is larger than max_record_bytes ({}); the envelope holds its first {} bytes",
                    self.max_record_bytes,
                    data.len().min(HEAD_BYTES)
                )
            });
            if over {
                data = &data[..data.len().min(HEAD_BYTES)];
            }
            bytes += data.len() as u64;
            batch.push(RawRecord {
                data: data.to_vec(),
                position: Position {
                    source: self.source,
                    file: self.file.clone(),
                    line: Some(self.line),
                    ..Position::default()
                },
                rejected,
                attributes: None,
                fan_out: Vec::new(),
            });
        }
        Ok(batch)
    }

    /// Reads one line into `buf`, keeping at most `max_record_bytes` (or
    /// [`HEAD_BYTES`], if more) and its line break, and only the first
    /// [`HEAD_BYTES`] of a longer line; the line's size
    /// without its line break, or `None` at the end of the input.
    fn read_line(&mut self) -> std::io::Result<Option<u64>> {
        self.buf.clear();
        // The limit and the line break, and never less than the head kept
        // of a longer line.
        let keep = usize::try_from(self.max_record_bytes)
            .unwrap_or(usize::MAX)
            .max(HEAD_BYTES)
            .saturating_add(2);
        let mut size: u64 = 0;
        let mut read_any = false;
        let mut over = false;
        // The last two bytes read, for the `\r\n` of a line not kept whole.
        let mut last = [0u8; 2];
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            read_any = true;
            let (take, ends) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let part = &chunk[..take];
            if !over {
                let room = keep - self.buf.len();
                self.buf.extend_from_slice(&part[..take.min(room)]);
                if self.buf.len() >= keep {
                    // Over the limit: only the head is kept.
                    over = true;
                    self.buf.truncate(HEAD_BYTES);
                }
            }
            for &b in part.iter().rev().take(2).rev() {
                last = [last[1], b];
            }
            size += take as u64;
            self.input.consume(take);
            self.consumed.fetch_add(take as u64, Ordering::Relaxed);
            if ends {
                break;
            }
        }
        if !read_any {
            return Ok(None);
        }
        // The size leaves out the line break, and a `\r` before it (or at
        // the very end), as the record's data does.
        if last[1] == b'\n' {
            size -= 1;
            if last[0] == b'\r' && size > 0 {
                size -= 1;
            }
        } else if last[1] == b'\r' {
            size -= 1;
        }
        Ok(Some(size))
    }
}

/// How much of a record over `max_record_bytes` its envelope keeps.
pub const HEAD_BYTES: usize = 1024;
