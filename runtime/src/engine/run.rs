//! The runner: reads batches from a line source, processes them on worker
//! threads, and writes each batch's output to the sinks and the DLQ in input
//! order. Output order equals input order, so per-key order holds too.
//!
//! A batch is done when its sink lines and envelopes are written; at the end
//! every sink and the DLQ are synced to disk before the run reports success.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::budget::Budget;
pub use super::commit::{Outputs, RunError};
use super::{BatchOutput, Built, Fatal, Worker};
use crate::metrics::Counts;
use crate::record::RawRecord;
use crate::sources::lines::InputSize;
use crate::sources::{Ack, Poll, Reader, Stop};

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
    /// Where the totals go as batches are committed (the daemon's `/metrics`).
    pub live: Option<Arc<crate::metrics::prometheus::Live>>,
    /// Write warnings as JSON log lines.
    pub json_logs: bool,
    /// Most bytes of source records read and not yet acknowledged (see [`Budget`]).
    pub max_in_flight_bytes: u64,
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
    /// The most bytes of source records that were in flight at once.
    pub peak_in_flight_bytes: u64,
}

/// Stack for worker threads: deeply nested records and scripts recurse.
const WORKER_STACK: usize = 256 * 1024 * 1024;

pub use crate::record::time::now_rfc3339;

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
    let input_size = match &reader {
        Reader::Lines(l) => l.input_size(),
        _ => None,
    };
    // A stream does not end: its open windows are computed again, from the
    // shards' checkpoints, at the next start.
    let ends = !matches!(
        reader,
        Reader::Kinesis(..) | Reader::DynamodbStreams(..) | Reader::Sqs(..)
    );
    let redrive = matches!(reader, Reader::Dlq(_));
    let mut error = None;
    // Batches read but not yet acknowledged.
    let in_flight = Arc::new(AtomicUsize::new(0));
    // Set when the writer stops early: the reader then stops too.
    let halted = Arc::new(AtomicBool::new(false));
    // Set by the reader when the source is idle while batches wait in buffers.
    let flush_requested = Arc::new(AtomicBool::new(false));
    // Set by the reader while a shard it no longer reads waits for its
    // checkpoint, or while it waits for the byte budget.
    let flush_now = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(Budget::new(opts.max_in_flight_bytes));

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
        let reader_flush = Arc::clone(&flush_requested);
        let reader_flush_now = Arc::clone(&flush_now);
        let reader_budget = Arc::clone(&budget);
        let reader_thread = std::thread::Builder::new()
            .name("sluice-reader".into())
            .spawn_scoped(s, move || -> Result<(), crate::delivery::Error> {
                let mut seq = 0;
                let stopping =
                    || stopping.load(Ordering::Relaxed) || reader_halted.load(Ordering::Relaxed);
                let pending = || reader_in_flight.load(Ordering::Acquire);
                let request_flush = || reader_flush.store(true, Ordering::Release);
                let flush_at_once = || reader_flush_now.store(true, Ordering::Release);
                loop {
                    if stopping() {
                        return Ok(());
                    }
                    let poll = Poll {
                        stop,
                        stopping: &stopping,
                        in_flight: &pending,
                        request_flush: &request_flush,
                        flush_now: &flush_at_once,
                    };
                    let Some((batch, ack)) = reader.next_batch(
                        batch_records,
                        reader_budget.batch_bytes(),
                        &handle,
                        &policy,
                        &poll,
                    )?
                    else {
                        return Ok(());
                    };
                    // Wait for room: the writer is asked to write its buffers
                    // meanwhile, since what they hold counts.
                    let bytes = batch.iter().map(|r| r.data.len() as u64).sum();
                    reader_budget.take(bytes, &stopping, &flush_at_once);
                    reader_in_flight.fetch_add(1, Ordering::AcqRel);
                    // Records arrived: the source is not idle after all.
                    reader_flush.store(false, Ordering::Release);
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
        let mut aggregation = match super::aggregate::Aggregation::new(&built) {
            Ok(Some(mut a)) if redrive => {
                a.redriving();
                Some(a)
            }
            Ok(a) => a,
            Err(e) => {
                error = Some(RunError::Worker(e));
                halted.store(true, Ordering::Relaxed);
                return;
            }
        };
        error = write_in_order(
            &done_rx,
            outputs,
            aggregation.as_mut(),
            &built.sink_keys,
            &mut counts,
            (&progress, input_size.as_ref()),
            rt,
            (&in_flight, &budget),
            [&flush_requested, &flush_now],
            (opts, ends),
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
        error = rt.block_on(outputs.sync()).err();
    }
    progress.finish_and_clear();
    Report {
        counts,
        elapsed: start.elapsed(),
        error,
        peak_in_flight_bytes: budget.peak(),
    }
}

fn worker_loop(
    built: Arc<Built>,
    jobs: &Mutex<Receiver<Job>>,
    done: &std::sync::mpsc::SyncSender<Done>,
    started: &std::sync::mpsc::SyncSender<Result<(), String>>,
) {
    let mut worker = match Worker::new(Arc::clone(&built)) {
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
        // A panic in one record's work dead-letters that record; one outside
        // it stops the run (nothing of the batch is acknowledged).
        let out = match crate::panics::catch(|| worker.process(&batch, &batch_time)) {
            Ok(out) => out.map(|mut out| {
                out.raw = batch;
                out
            }),
            Err(m) => {
                if let Ok(w) = Worker::new(Arc::clone(&built)) {
                    worker = w;
                }
                Err(Fatal(format!("internal error in a worker: {m}")))
            }
        };
        if done.send((seq, out, ack)).is_err() {
            return;
        }
    }
}

/// `sluice run` stops at the first record that was not delivered.
fn stop(failures: Vec<super::commit::Failure>) -> RunError {
    RunError::Sink(
        failures
            .into_iter()
            .next()
            .map(|f| f.reason)
            .unwrap_or_default(),
    )
}

/// How often the writer looks at buffer ages and flush requests while no batch arrives.
const TICK: Duration = Duration::from_millis(100);

/// Commits batches in sequence order as they complete, writes buffers when
/// they are due (or when the reader asks, having found the source idle), and
/// acknowledges what was written. At the end, every buffer is written.
#[allow(clippy::too_many_arguments)]
fn write_in_order(
    done: &Receiver<Done>,
    outputs: &mut Outputs,
    mut aggregation: Option<&mut super::aggregate::Aggregation>,
    sink_keys: &[Vec<String>],
    counts: &mut Counts,
    (progress, input_size): (&ProgressBar, Option<&InputSize>),
    rt: &tokio::runtime::Runtime,
    (in_flight, budget): (&AtomicUsize, &Budget),
    [flush_requested, flush_now]: [&AtomicBool; 2],
    (opts, ends): (&Options, bool),
) -> Result<(), RunError> {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, (Result<BatchOutput, Fatal>, Ack)> = BTreeMap::new();
    // A message, as a JSON log line or on standard error.
    let say = |level: &str, message: &str| {
        if opts.json_logs {
            crate::logs::json(level, message);
        } else if level == "warn" {
            progress.suspend(|| crate::errln!("warning: {message}"));
        } else {
            progress.suspend(|| crate::errln!("{message}"));
        }
    };
    let released = |r: super::commit::Released| {
        in_flight.fetch_sub(r.freed, Ordering::AcqRel);
        budget.give_back(r.freed);
        for w in r.warnings {
            say("warn", &w);
        }
    };
    loop {
        let wait = outputs
            .deadline()
            .map_or(TICK, |d| d.saturating_duration_since(Instant::now()))
            .min(TICK);
        match done.recv_timeout(wait) {
            Ok((seq, out, ack)) => {
                pending.insert(seq, (out, ack));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if !pending.is_empty() {
                    // A batch never came back: its worker stopped.
                    return Err(RunError::Worker(
                        "a worker stopped before its batch was done".into(),
                    ));
                }
                break;
            }
        }
        while let Some((out, ack)) = pending.remove(&next) {
            let mut out = out.map_err(|Fatal(m)| RunError::Fatal(m))?;
            if let Some(a) = aggregation.as_deref_mut() {
                // A duplicate takes no part in a window: duplicates are
                // taken out before the aggregate takes the batch.
                if outputs.dedup.is_some() {
                    let failures = rt.block_on(outputs.take_duplicates(&mut out, sink_keys));
                    if !failures.is_empty() {
                        counts.add(&out.counts);
                        return Err(stop(failures));
                    }
                }
                let batch = outputs.next_seq();
                if let Some(hold) = a.apply(&mut out, batch, ack.checkpoint()) {
                    outputs.hold_windows(batch, hold);
                }
            }
            released(rt.block_on(outputs.make_room(&out, counts)).map_err(stop)?);
            let failures = rt.block_on(outputs.commit(&mut out, ack, sink_keys));
            if !failures.is_empty() {
                // The summary shows the batch's records, those not written as failed.
                counts.add(&out.counts);
                return Err(stop(failures));
            }
            counts.add(&out.counts);
            if let Some(live) = &opts.live {
                live.set(counts, &outputs.sink_stats, &outputs.dlq_stats);
            }
            released(
                rt.block_on(outputs.flush_buffers(false, counts))
                    .map_err(stop)?,
            );
            next += 1;
            progress.set_position(counts.records_in);
            // What was read and is still in flight is not done yet.
            let done = input_size.map(|i| {
                let read = i.read.load(Ordering::Relaxed);
                (read.saturating_sub(budget.used()), i.total)
            });
            progress.set_message(progress_message(counts, progress.elapsed(), done));
        }
        // A batch is acknowledged only once every record of it was delivered
        // or dead-lettered: buffers that are old, or that the idle reader
        // asks for, are written now.
        // The idle reader's request is granted once every batch read is
        // committed, so that only the buffers hold records back. A shard
        // being handed over cannot wait for the buffers' age: its request
        // is granted at once (and made again while records of it are in flight).
        // The windows of a shard handed over to another worker are its
        // to compute again: their batches are given up, not acknowledged.
        if let Some(a) = aggregation.as_deref_mut() {
            for shard in outputs.give_up_dropped_shards() {
                a.drop_shard(&shard);
                say(
                    "info",
                    &format!(
                        "shard {shard} is read by another worker now: its open windows are left to it, which reads their records again from the shard's checkpoint"
                    ),
                );
            }
        }
        let idle = flush_requested.load(Ordering::Acquire)
            && in_flight.load(Ordering::Acquire) == outputs.unfreed();
        if idle {
            flush_requested.store(false, Ordering::Release);
        }
        let all = flush_now.swap(false, Ordering::AcqRel) || idle;
        released(
            rt.block_on(outputs.flush_buffers(all, counts))
                .map_err(stop)?,
        );
    }
    // The end of the input: every window still open is emitted. A stream
    // stops: its open windows are not emitted; their records, whose
    // batches were not acknowledged, are read again at the next start.
    if let Some(a) = aggregation.as_deref()
        && !ends
        && a.open() > 0
    {
        say(
            "info",
            &format!(
                "{} windows were open when the run stopped: they are not emitted, and their records are read again from the shards' checkpoints at the next start",
                a.open()
            ),
        );
    }
    if let Some(a) = aggregation.filter(|_| ends) {
        let mut out = BatchOutput {
            sinks: vec![Default::default(); sink_keys.len()],
            counts: Counts::new(sink_keys.len()),
            batch_time: crate::record::time::now_rfc3339(),
            ..BatchOutput::default()
        };
        let holds = a.close_all(&mut out);
        // Nothing is held any longer once this batch is written.
        let batch = outputs.next_seq();
        for hold in holds {
            outputs.hold_windows(batch, hold);
        }
        released(rt.block_on(outputs.make_room(&out, counts)).map_err(stop)?);
        let failures = rt.block_on(outputs.commit(&mut out, Ack::None, sink_keys));
        counts.add(&out.counts);
        if !failures.is_empty() {
            return Err(stop(failures));
        }
    }
    released(
        rt.block_on(outputs.flush_buffers(true, counts))
            .map_err(stop)?,
    );
    Ok(())
}

/// The progress bar's line: records so far, elapsed time, and with the
/// input's size (bytes done of the total) the percentage and the time left;
/// numbers as the summary writes them.
fn progress_message(counts: &Counts, elapsed: Duration, done: Option<(u64, u64)>) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let whole = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    let mut out = String::new();
    if let Some((done, total)) = done
        && total > 0
    {
        let share = (done as f64 / total as f64).min(1.0);
        out.push_str(&format!("{:.0}%  ", share * 100.0));
    }
    out.push_str(&format!(
        "{} records  {}",
        counts.records_in,
        whole(elapsed)
    ));
    if let Some((done, total)) = done
        && done > 0
        && total > done
    {
        let left = secs * (total - done) as f64 / done as f64;
        out.push_str(&format!(
            ", {} left",
            whole(Duration::from_secs_f64(left.min(1e9)))
        ));
    }
    out.push_str(&format!(
        "  {:.0} records/s  delivered {}, filtered {}, dead-lettered {}",
        counts.records_in as f64 / secs,
        counts.delivered,
        counts.filtered + counts.dropped_invalid,
        counts.dead_lettered_total()
    ));
    out
}

fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> Counts {
        Counts {
            records_in: 2500,
            delivered: 2400,
            filtered: 60,
            dropped_invalid: 15,
            dead_lettered: [0, 5, 10, 10, 0, 0, 0, 0, 0],
            ..Counts::new(1)
        }
    }

    #[test]
    fn progress_shows_the_share_done_and_the_time_left_when_the_size_is_known() {
        assert_eq!(
            progress_message(&counts(), Duration::from_secs(10), Some((250, 1000))),
            "25%  2500 records  10s, 30s left  250 records/s  delivered 2400, filtered 75, dead-lettered 25"
        );
        // Done, or further than the size said (the file grew): 100 %, no time left.
        assert_eq!(
            progress_message(&counts(), Duration::from_secs(65), Some((1200, 1000))),
            "100%  2500 records  1m 5s  38 records/s  delivered 2400, filtered 75, dead-lettered 25"
        );
        // Nothing done yet: no estimate.
        assert_eq!(
            progress_message(&counts(), Duration::from_secs(1), Some((0, 1000))),
            "0%  2500 records  1s  2500 records/s  delivered 2400, filtered 75, dead-lettered 25"
        );
    }

    #[test]
    fn progress_without_a_size_shows_counts_and_time() {
        assert_eq!(
            progress_message(&counts(), Duration::from_millis(2500), None),
            "2500 records  2s  1000 records/s  delivered 2400, filtered 75, dead-lettered 25"
        );
    }
}
