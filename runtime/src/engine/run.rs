//! The runner: reads batches from a line source, processes them on worker
//! threads, and writes each batch's output to the sinks and the DLQ in input
//! order. Output order equals input order, so per-key order holds too.
//!
//! A batch is done when its sink lines and envelopes are written; at the end
//! every sink and the DLQ are synced to disk before the run reports success.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{BatchOutput, Built, Fatal, Worker};
use crate::metrics::Counts;
use crate::record::{Position, RawRecord};

/// Reads one record per line from a buffered reader.
pub struct LineReader {
    input: Box<dyn BufRead + Send>,
    source: &'static str,
    file: Option<Arc<str>>,
    line: u64,
    max_record_bytes: u64,
    buf: Vec<u8>,
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
        }
    }

    /// Up to `max` records; an empty batch means the input is exhausted.
    /// Empty lines are skipped (but counted for line numbers).
    pub fn next_batch(&mut self, max: usize) -> std::io::Result<Vec<RawRecord>> {
        let mut batch = Vec::with_capacity(max.min(4096));
        while batch.len() < max {
            self.buf.clear();
            if self.input.read_until(b'\n', &mut self.buf)? == 0 {
                break;
            }
            self.line += 1;
            let mut data = self.buf.as_slice();
            if let Some(d) = data.strip_suffix(b"\n") {
                data = d;
            }
            if let Some(d) = data.strip_suffix(b"\r") {
                data = d;
            }
            if data.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let rejected = (data.len() as u64 > self.max_record_bytes).then(|| {
                format!(
                    "record of {} bytes is larger than max_record_bytes ({})",
                    data.len(),
                    self.max_record_bytes
                )
            });
            batch.push(RawRecord {
                data: data.to_vec(),
                position: Position {
                    source: self.source,
                    file: self.file.clone(),
                    line: Some(self.line),
                },
                rejected,
            });
        }
        Ok(batch)
    }
}

/// Where a sink's or the DLQ's lines go.
pub enum Output {
    /// A local file.
    File(crate::sinks::file::Writer),
    /// Standard output.
    Stdout(std::io::BufWriter<std::io::Stdout>),
    /// Kept in memory (tests).
    Memory(Vec<u8>),
}

impl Output {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::File(w) => w.write(bytes),
            Output::Stdout(w) => w.write_all(bytes),
            Output::Memory(v) => {
                v.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Output::File(w) => w.sync(),
            Output::Stdout(w) => w.flush(),
            Output::Memory(_) => Ok(()),
        }
    }
}

/// The sinks (in the order of `sinks:`) and the DLQ of a run, with their names for messages.
pub struct Outputs {
    /// Sink outputs.
    pub sinks: Vec<(String, Output)>,
    /// The dead-letter queue.
    pub dlq: Output,
}

impl Outputs {
    /// Writes one batch: sinks first, then the DLQ.
    pub fn commit(&mut self, out: &BatchOutput) -> Result<(), RunError> {
        for ((name, sink), lines) in self.sinks.iter_mut().zip(&out.sinks) {
            if lines.count > 0 {
                sink.write(&lines.bytes)
                    .map_err(|e| RunError::Sink(format!("writing to sink `{name}` failed: {e}")))?;
            }
        }
        if out.dlq.count > 0 {
            self.dlq.write(&out.dlq.bytes).map_err(|e| {
                RunError::Sink(format!("writing to the dead-letter queue failed: {e}"))
            })?;
        }
        Ok(())
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> Result<(), RunError> {
        for (name, sink) in &mut self.sinks {
            sink.sync()
                .map_err(|e| RunError::Sink(format!("syncing sink `{name}` failed: {e}")))?;
        }
        self.dlq
            .sync()
            .map_err(|e| RunError::Sink(format!("syncing the dead-letter queue failed: {e}")))
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The source could not be read.
    #[error("reading the source failed: {0}")]
    Source(std::io::Error),
    /// A sink or the DLQ could not be written.
    #[error("{0}")]
    Sink(String),
    /// A record stopped the run (`on_invalid: fail`).
    #[error("{0}")]
    Fatal(String),
    /// A worker could not start.
    #[error("starting a worker failed: {0}")]
    Worker(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads for parse, validate and transform.
    pub workers: usize,
    /// Records per batch (`meta.batch_time` is taken once per batch).
    pub batch_records: usize,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Outcome counts.
    pub counts: Counts,
    /// How long it took.
    pub elapsed: Duration,
    /// Why it stopped early, if it did.
    pub error: Option<RunError>,
}

/// Stack for worker threads: deeply nested records and scripts recurse.
const WORKER_STACK: usize = 256 * 1024 * 1024;

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

type Job = (u64, Vec<RawRecord>, String);
type Done = (u64, Result<BatchOutput, Fatal>);

/// Runs the pipeline over the whole input.
pub fn run(
    built: Arc<Built>,
    mut reader: LineReader,
    outputs: &mut Outputs,
    opts: &Options,
) -> Report {
    let start = Instant::now();
    let workers = opts.workers.max(1);
    let mut counts = Counts::new(built.sink_names.len());
    let progress = progress_bar(opts.progress);
    let mut error = None;

    std::thread::scope(|s| {
        let (job_tx, job_rx) = sync_channel::<Job>(workers * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = sync_channel::<Done>(workers * 2);
        let (start_tx, start_rx) = sync_channel::<Result<(), String>>(workers);
        for _ in 0..workers {
            let built = Arc::clone(&built);
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let start_tx = start_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("sluice-worker".into())
                .stack_size(WORKER_STACK)
                .spawn_scoped(s, move || worker_loop(built, &job_rx, &done_tx, &start_tx));
            if let Err(e) = spawned {
                error = Some(RunError::Worker(e.to_string()));
                return;
            }
        }
        drop(done_tx);
        drop(start_tx);
        for _ in 0..workers {
            if let Ok(Err(e)) = start_rx.recv() {
                error = Some(RunError::Worker(e));
                return;
            }
        }
        let batch_records = opts.batch_records.max(1);
        let reader_thread = std::thread::Builder::new()
            .name("sluice-reader".into())
            .spawn_scoped(s, move || -> Result<(), std::io::Error> {
                let mut seq = 0;
                loop {
                    let batch = reader.next_batch(batch_records)?;
                    if batch.is_empty() {
                        return Ok(());
                    }
                    if job_tx.send((seq, batch, now_rfc3339())).is_err() {
                        return Ok(()); // the writer stopped early
                    }
                    seq += 1;
                }
            });
        let reader_thread = match reader_thread {
            Ok(t) => t,
            Err(e) => {
                error = Some(RunError::Worker(e.to_string()));
                return;
            }
        };
        error = write_in_order(&done_rx, outputs, &mut counts, &progress).err();
        drop(done_rx);
        match reader_thread.join() {
            Ok(Err(e)) if error.is_none() => error = Some(RunError::Source(e)),
            _ => {}
        }
    });
    if error.is_none() {
        error = outputs.sync().err();
    }
    progress.finish_and_clear();
    Report {
        counts,
        elapsed: start.elapsed(),
        error,
    }
}

fn worker_loop(
    built: Arc<Built>,
    jobs: &Mutex<Receiver<Job>>,
    done: &std::sync::mpsc::SyncSender<Done>,
    started: &std::sync::mpsc::SyncSender<Result<(), String>>,
) {
    let mut worker = match Worker::new(built) {
        Ok(w) => {
            let _ = started.send(Ok(()));
            w
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, batch, batch_time)) = job else {
            return;
        };
        let out = worker.process(&batch, &batch_time);
        if done.send((seq, out)).is_err() {
            return;
        }
    }
}

/// Commits batches in sequence order as they complete.
fn write_in_order(
    done: &Receiver<Done>,
    outputs: &mut Outputs,
    counts: &mut Counts,
    progress: &ProgressBar,
) -> Result<(), RunError> {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Result<BatchOutput, Fatal>> = BTreeMap::new();
    for (seq, out) in done {
        pending.insert(seq, out);
        while let Some(out) = pending.remove(&next) {
            let out = out.map_err(|Fatal(m)| RunError::Fatal(m))?;
            outputs.commit(&out)?;
            counts.add(&out.counts);
            next += 1;
            progress.set_position(counts.records_in);
            let secs = progress.elapsed().as_secs_f64().max(1e-3);
            progress.set_message(format!(
                "{:.0} records/s  delivered {}, filtered {}, dead-lettered {}",
                counts.records_in as f64 / secs,
                counts.delivered,
                counts.filtered + counts.dropped_invalid,
                counts.dead_lettered_total()
            ));
        }
    }
    Ok(())
}

fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} records  {elapsed}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
