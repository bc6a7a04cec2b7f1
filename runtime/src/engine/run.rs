//! The runner: reads batches from a line source, processes them on worker
//! threads, and writes each batch's output to the sinks and the DLQ in input
//! order. Output order equals input order, so per-key order holds too.
//!
//! A batch is done when its sink lines and envelopes are written; at the end
//! every sink and the DLQ are synced to disk before the run reports success.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{BatchOutput, Built, Fatal, SinkLines, Worker};
use crate::delivery::{self, Envelope, Outcome, Policy, SinkError, envelope};
use crate::metrics::Counts;
use crate::record::{Position, RawRecord, Stage};
use crate::sinks::{OutRecord, Writer};
use crate::sources::{Ack, Reader, Stop};

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
                    ..Position::default()
                },
                rejected,
                attributes: None,
            });
        }
        Ok(batch)
    }
}

/// The sinks (in the order of `sinks:`) and the DLQ of a run, with the retry policy.
pub struct Outputs {
    /// Sink writers, with their names.
    pub sinks: Vec<(String, Writer)>,
    /// The dead-letter queue.
    pub dlq: Writer,
    /// How failed writes are retried: the pipeline's policy (the DLQ's, and
    /// the source's when it retries).
    pub policy: Policy,
    /// Per sink, its own policy (the pipeline's unless the sink sets `retry`).
    pub sink_policies: Vec<Policy>,
    /// The DLQ's policy.
    pub dlq_policy: Policy,
    /// The pipeline's name, for envelopes.
    pub pipeline: Arc<str>,
}

/// The records of one sink's lines, ready for a writer.
fn out_records<'a>(
    lines: &'a SinkLines,
    keys_per_line: usize,
    raw: &'a [RawRecord],
    batch_time: &'a str,
) -> Vec<OutRecord<'a>> {
    (0..lines.ends.len())
        .map(|i| OutRecord {
            json: lines.line(i),
            keys: &lines.keys[(i * keys_per_line).min(lines.keys.len())
                ..((i + 1) * keys_per_line).min(lines.keys.len())],
            position: &raw[lines.raw[i] as usize].position,
            batch_time,
        })
        .collect()
}

impl Outputs {
    /// Delivers one batch: every sink, then the envelopes of the records a sink
    /// rejected for good, then the DLQ. `Ok` means the whole batch may be acknowledged.
    pub async fn commit(
        &mut self,
        out: &mut BatchOutput,
        sink_keys: &[Vec<String>],
    ) -> Result<(), RunError> {
        let mut rejected: Vec<(u32, usize, String, SinkError, u32)> = Vec::new();
        // The sinks are independent: write them all at once.
        let policies = &self.sink_policies;
        let batch: &BatchOutput = out;
        let deliveries = self
            .sinks
            .iter_mut()
            .enumerate()
            .filter(|(si, _)| batch.sinks[*si].count > 0)
            .map(|(si, (name, writer))| async move {
                let lines = &batch.sinks[si];
                let records =
                    out_records(lines, sink_keys[si].len(), &batch.raw, &batch.batch_time);
                (
                    si,
                    name.clone(),
                    delivery::deliver(writer, &records, &policies[si]).await,
                )
            });
        let done = futures_util::future::join_all(deliveries).await;
        for (si, name, outcomes) in done {
            for (k, outcome) in outcomes.into_iter().enumerate() {
                match outcome {
                    Outcome::Delivered => {}
                    Outcome::Poison(e, attempts) => {
                        out.counts.per_sink[si] -= 1;
                        let lines = &out.sinks[si];
                        rejected.push((
                            lines.ids[k],
                            lines.raw[k] as usize,
                            name.clone(),
                            e,
                            attempts,
                        ));
                    }
                    Outcome::Exhausted(e, attempts) => {
                        return Err(RunError::Sink(format!(
                            "sink `{name}` did not accept a record after {attempts} attempts: {e}"
                        )));
                    }
                }
            }
        }
        // One envelope per rejected record, for the first sink that rejected it.
        rejected.sort_by_key(|r| r.0);
        rejected.dedup_by_key(|r| r.0);
        for (_, raw_index, sink, err, attempts) in &rejected {
            let raw = &out.raw[*raw_index];
            let (data, encoding) = envelope::encode_data(&raw.data);
            let env = Envelope {
                pipeline: &self.pipeline,
                stage: Stage::Sink,
                step: Some(sink),
                error: err.message.clone(),
                instance_path: None,
                data,
                encoding,
                source: &raw.position,
                attempts: *attempts,
                timestamp: &out.batch_time,
            };
            super::push_envelope(&mut out.dlq, &env, *raw_index);
            out.counts.delivered -= 1;
            out.counts.dead_letter(Stage::Sink);
        }
        if out.dlq.count > 0 {
            let records = out_records(&out.dlq, 0, &out.raw, &out.batch_time);
            let outcomes = delivery::deliver(&mut self.dlq, &records, &self.dlq_policy).await;
            if let Some((e, attempts)) = outcomes.into_iter().find_map(|o| match o {
                Outcome::Delivered => None,
                Outcome::Poison(e, a) | Outcome::Exhausted(e, a) => Some((e, a)),
            }) {
                return Err(RunError::Sink(format!(
                    "the dead-letter queue did not accept a record after {attempts} attempts, so the batch is not acknowledged: {e}"
                )));
            }
        }
        Ok(())
    }

    /// Makes everything written durable.
    pub async fn flush(&mut self) -> Result<(), RunError> {
        for (name, sink) in &mut self.sinks {
            sink.flush()
                .await
                .map_err(|e| RunError::Sink(format!("flushing sink `{name}` failed: {e}")))?;
        }
        self.dlq
            .flush()
            .await
            .map_err(|e| RunError::Sink(format!("flushing the dead-letter queue failed: {e}")))
    }
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The source could not be read.
    #[error("reading the source failed: {0}")]
    Source(String),
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
    /// When a stream source stops by itself.
    pub stop: Stop,
    /// Set (by a signal handler) to stop reading; what was read is still delivered.
    pub stopping: Arc<AtomicBool>,
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

type Job = (u64, Vec<RawRecord>, String, Ack);
type Done = (u64, Result<BatchOutput, Fatal>, Ack);

/// Runs the pipeline over the whole input. `rt` drives the sinks' requests.
pub fn run(
    built: Arc<Built>,
    mut reader: Reader,
    outputs: &mut Outputs,
    opts: &Options,
    rt: &tokio::runtime::Runtime,
) -> Report {
    let start = Instant::now();
    let workers = opts.workers.max(1);
    let mut counts = Counts::new(built.sink_names.len());
    let progress = progress_bar(opts.progress);
    let mut error = None;
    // Batches read but not yet acknowledged.
    let in_flight = Arc::new(AtomicUsize::new(0));
    // Set when the writer stops early: the reader then stops too.
    let halted = Arc::new(AtomicBool::new(false));

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
        let handle = rt.handle().clone();
        let policy = outputs.policy.clone();
        let stop = opts.stop;
        let stopping = Arc::clone(&opts.stopping);
        let reader_in_flight = Arc::clone(&in_flight);
        let reader_halted = Arc::clone(&halted);
        let reader_thread = std::thread::Builder::new()
            .name("sluice-reader".into())
            .spawn_scoped(s, move || -> Result<(), String> {
                let mut seq = 0;
                let stopping =
                    || stopping.load(Ordering::Relaxed) || reader_halted.load(Ordering::Relaxed);
                let pending = || reader_in_flight.load(Ordering::Acquire);
                loop {
                    if stopping() {
                        return Ok(());
                    }
                    let Some((batch, ack)) = reader.next_batch(
                        batch_records,
                        &handle,
                        &policy,
                        stop,
                        &stopping,
                        &pending,
                    )?
                    else {
                        return Ok(());
                    };
                    reader_in_flight.fetch_add(1, Ordering::AcqRel);
                    if job_tx.send((seq, batch, now_rfc3339(), ack)).is_err() {
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
        error = write_in_order(
            &done_rx,
            outputs,
            &built.sink_keys,
            &mut counts,
            &progress,
            rt,
            &in_flight,
        )
        .err();
        halted.store(true, Ordering::Relaxed);
        drop(done_rx);
        match reader_thread.join() {
            Ok(Err(e)) if error.is_none() => error = Some(RunError::Source(e)),
            _ => {}
        }
    });
    if error.is_none() {
        error = rt.block_on(outputs.flush()).err();
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
        let Ok((seq, batch, batch_time, ack)) = job else {
            return;
        };
        let out = worker.process(&batch, &batch_time).map(|mut out| {
            out.raw = batch;
            out
        });
        if done.send((seq, out, ack)).is_err() {
            return;
        }
    }
}

/// Commits batches in sequence order as they complete.
fn write_in_order(
    done: &Receiver<Done>,
    outputs: &mut Outputs,
    sink_keys: &[Vec<String>],
    counts: &mut Counts,
    progress: &ProgressBar,
    rt: &tokio::runtime::Runtime,
    in_flight: &AtomicUsize,
) -> Result<(), RunError> {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, (Result<BatchOutput, Fatal>, Ack)> = BTreeMap::new();
    for (seq, out, ack) in done {
        pending.insert(seq, (out, ack));
        while let Some((out, ack)) = pending.remove(&next) {
            let mut out = out.map_err(|Fatal(m)| RunError::Fatal(m))?;
            rt.block_on(outputs.commit(&mut out, sink_keys))?;
            // Only now, with every record delivered or dead-lettered, is the batch acknowledged.
            if let Err(e) = rt.block_on(ack.apply()) {
                progress.suspend(|| eprintln!("warning: acknowledging a batch failed: {e}"));
            }
            in_flight.fetch_sub(1, Ordering::AcqRel);
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
