//! Committing batches: every sink, the envelopes of the records a sink
//! rejected for good, the DLQ, and only then the batch's acknowledgement.
//!
//! Most sinks write a batch as soon as it is committed. A sink that buffers
//! across batches (S3, whose objects hold up to `max_records`) keeps a batch's
//! lines until its buffer is full or `max_age` old. The acknowledgement of
//! that batch — and of every later batch, so that a checkpoint never moves
//! past a record that is not yet written — waits until the buffer is written.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::acks::{self, Acks};
use super::{BatchOutput, SinkLines};
use crate::delivery::{self, Envelope, Error, Outcome, Policy, envelope};
use crate::metrics::Counts;
use crate::metrics::emf::SinkStats;
use crate::record::{Cut, Position, RawRecord, Stage};
pub use crate::sinks::BufferLimits;
use crate::sinks::{OutRecord, Writer};
use crate::sources::Ack;

/// One batch's lines held by a buffering sink.
struct Held {
    seq: u64,
    lines: SinkLines,
    keys_per_line: usize,
    /// The source records the lines came from (`lines.raw` indexes them).
    raw: Arc<Vec<RawRecord>>,
    batch_time: Arc<str>,
    /// The batch's fan-out cuts by routed record id (shared by its sinks).
    fan_out: Arc<HashMap<u32, Vec<Cut>>>,
}

/// What a buffering sink holds.
struct Buffer {
    limits: BufferLimits,
    held: Vec<Held>,
    records: usize,
    bytes: usize,
    since: Option<Instant>,
}

impl Buffer {
    fn new(limits: BufferLimits) -> Buffer {
        Buffer {
            limits,
            held: Vec::new(),
            records: 0,
            bytes: 0,
            since: None,
        }
    }

    fn due(&self, now: Instant) -> bool {
        !self.held.is_empty()
            && (self.records >= self.limits.max_records
                || self.bytes >= self.limits.max_bytes
                || self.deadline().is_some_and(|d| now >= d))
    }

    fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + self.limits.max_age)
    }
}

/// A record that was not delivered: a sink or the DLQ did not accept it
/// after retries. `sluice run` stops at the first; Lambda mode reports the
/// record to the event source mapping, which delivers it again.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Where the record came from.
    pub position: Position,
    /// What went wrong.
    pub reason: String,
}

/// What releasing acknowledgements did.
#[derive(Debug, Default)]
pub struct Released {
    /// Batches acknowledged.
    pub batches: usize,
    /// Batches no sink buffer holds any longer, oldest first (their records
    /// are written; an aggregate's windows may still hold back their
    /// acknowledgement).
    pub freed: usize,
    /// Acknowledgements that failed (their records will be delivered again).
    pub warnings: Vec<String>,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The source could not be read.
    #[error("reading the source failed: {0}")]
    Source(crate::delivery::Error),
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

/// The sinks (in the order of `sinks:`) and the DLQ of a run, with the retry
/// policies and the acknowledgements that wait for buffered writes.
pub struct Outputs {
    /// Sink writers, with their names.
    pub sinks: Vec<(String, Writer)>,
    /// The dead-letter queue.
    pub dlq: Writer,
    /// The pipeline's retry policy (the source's, when it retries).
    pub policy: Policy,
    sink_policies: Vec<Policy>,
    dlq_policy: Policy,
    /// The sink and DLQ policies as configured, once [`retry_until`](Self::retry_until) bounded them.
    configured: Option<(Vec<Policy>, Policy)>,
    pipeline: Arc<str>,
    /// Per sink, its buffer when it buffers across batches.
    buffers: Vec<Option<Buffer>>,
    /// Per sink: retries and time spent writing (for metrics).
    pub sink_stats: Vec<SinkStats>,
    /// The DLQ's retries and time spent writing.
    pub dlq_stats: SinkStats,
    /// The first reasons records were dead-lettered for.
    pub reasons: super::reasons::Reasons,
    /// Committed batches not yet acknowledged, oldest first.
    acks: Acks<Ack>,
    /// What an aggregate's windows hold back, per shard.
    pub window_holds: Option<acks::WindowHolds<Option<crate::sources::shards::WindowMark>>>,
    /// Every batch before this one is free of the buffers.
    freed_upto: u64,
    /// Records of held batches already dead-lettered (batch, record id): one envelope each.
    dead: BTreeSet<(u64, u32)>,
    next_seq: u64,
    /// The pipeline's deduplication, when it has `dedup:`.
    pub dedup: Option<crate::dedup::Dedup>,
}

/// The records of one sink's lines, ready for a writer.
fn out_records<'a>(
    lines: &'a SinkLines,
    keys_per_line: usize,
    raw: &'a [RawRecord],
    batch_time: &'a str,
) -> impl Iterator<Item = OutRecord<'a>> {
    (0..lines.ends.len()).map(move |i| OutRecord {
        json: lines.line(i),
        keys: &lines.keys[(i * keys_per_line).min(lines.keys.len())
            ..((i + 1) * keys_per_line).min(lines.keys.len())],
        position: &raw[lines.raw[i] as usize].position,
        batch_time,
    })
}

/// The envelope of a record a sink rejected, as one line (no `\n`).
fn sink_envelope(
    pipeline: &str,
    raw: &RawRecord,
    fan_out: &[Cut],
    sink: &str,
    err: &Error,
    attempts: u32,
    batch_time: &str,
) -> Vec<u8> {
    let (data, encoding) = envelope::encode_data(&raw.data);
    let env = Envelope {
        pipeline,
        stage: Stage::Sink,
        step: Some(sink),
        error: envelope::clip_error(err.message.clone()),
        instance_path: None,
        data,
        encoding,
        source: &raw.position,
        attempts,
        timestamp: batch_time,
        fan_out,
    };
    // An envelope holds only strings and numbers: serializing it cannot fail.
    serde_json::to_vec(&env).unwrap_or_default()
}

impl Outputs {
    /// Outputs over opened writers. `sink_policies` has one policy per sink.
    pub fn new(
        sinks: Vec<(String, Writer)>,
        dlq: Writer,
        policy: Policy,
        sink_policies: Vec<Policy>,
        dlq_policy: Policy,
        pipeline: Arc<str>,
    ) -> Outputs {
        let buffers = sinks
            .iter()
            .map(|(_, w)| w.buffering().map(Buffer::new))
            .collect();
        Outputs {
            sink_stats: vec![SinkStats::default(); sinks.len()],
            dlq_stats: SinkStats::default(),
            reasons: Default::default(),
            sinks,
            dlq,
            policy,
            sink_policies,
            dlq_policy,
            configured: None,
            pipeline,
            buffers,
            acks: Acks::default(),
            window_holds: None,
            freed_upto: 0,
            dead: BTreeSet::new(),
            next_seq: 0,
            dedup: None,
        }
    }

    /// Bounds the time every later delivery may spend retrying, sinks and
    /// DLQ alike, to end by `until` (in Lambda: the invocation's deadline less
    /// its safety margin); `None` restores the configured policies.
    pub fn retry_until(&mut self, until: Option<Instant>) {
        let configured = self
            .configured
            .get_or_insert_with(|| (self.sink_policies.clone(), self.dlq_policy.clone()));
        let bound = |p: &Policy| {
            let mut p = p.clone();
            if let Some(until) = until {
                p.max_elapsed.0 = p
                    .max_elapsed
                    .0
                    .min(until.saturating_duration_since(Instant::now()));
            }
            p
        };
        self.sink_policies = configured.0.iter().map(bound).collect();
        self.dlq_policy = bound(&configured.1);
    }

    /// Commits one batch: writes it to every sink that does not buffer, its
    /// envelopes to the DLQ, and hands its lines to the buffering sinks. The
    /// batch's `ack` is applied once every sink holds none of its records
    /// (see [`release`](Self::release)).
    ///
    /// Returns the records that were not delivered (empty when all were).
    pub async fn commit(
        &mut self,
        out: &mut BatchOutput,
        ack: Ack,
        sink_keys: &[Vec<String>],
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        let seq = self.next_seq;
        self.next_seq += 1;
        if !out.dedup_done {
            self.drop_duplicates(out, sink_keys, &mut failures).await;
        }
        let mut rejected: Vec<(u32, usize, String, Error, u32)> = Vec::new();
        let mut exhausted: Vec<u32> = Vec::new();
        // The sinks are independent: write them all at once.
        let policies = &self.sink_policies;
        let buffers = &self.buffers;
        let batch: &BatchOutput = out;
        let deliveries = self
            .sinks
            .iter_mut()
            .enumerate()
            .filter(|(si, _)| batch.sinks[*si].count > 0 && buffers[*si].is_none())
            .map(|(si, (name, writer))| async move {
                let lines = &batch.sinks[si];
                let records: Vec<OutRecord<'_>> =
                    out_records(lines, sink_keys[si].len(), &batch.raw, &batch.batch_time)
                        .collect();
                let start = Instant::now();
                let (outcomes, retries) =
                    delivery::deliver_counted(writer, &records, &policies[si]).await;
                (si, name.clone(), outcomes, retries, start.elapsed())
            });
        let done = futures_util::future::join_all(deliveries).await;
        for (si, name, outcomes, retries, took) in done {
            self.sink_stats[si].retries += retries;
            self.sink_stats[si].millis += took.as_secs_f64() * 1000.0;
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
                        out.counts.per_sink[si] -= 1;
                        exhausted.push(out.sinks[si].ids[k]);
                        failures.push(Failure {
                            position: out.raw[out.sinks[si].raw[k] as usize].position.clone(),
                            reason: format!(
                                "sink `{name}` did not accept a record after {attempts} attempts: {e}"
                            ),
                        });
                    }
                }
            }
        }
        // One envelope per rejected record, for the first sink that rejected it.
        rejected.sort_by_key(|r| r.0);
        rejected.dedup_by_key(|r| r.0);
        // A record some sink did not take is not delivered (unless it is dead-lettered).
        exhausted.sort_unstable();
        exhausted.dedup();
        let exhausted_ids = exhausted.clone();
        for id in exhausted {
            if rejected.binary_search_by_key(&id, |r| r.0).is_err() {
                out.counts.delivered -= 1;
                out.counts.failed += 1;
            }
        }
        for (id, raw_index, sink, err, attempts) in &rejected {
            let raw = &out.raw[*raw_index];
            let fan_out = out.fan_out.get(id).map_or(&[][..], Vec::as_slice);
            let mut line = sink_envelope(
                &self.pipeline,
                raw,
                fan_out,
                sink,
                err,
                *attempts,
                &out.batch_time,
            );
            line.push(b'\n');
            let id = out.dlq.count as u32;
            out.dlq.push(&line, *raw_index, id);
            out.counts.delivered -= 1;
            out.counts.dead_letter(Stage::Sink);
        }
        if out.dlq.count > 0 {
            let records: Vec<OutRecord<'_>> =
                out_records(&out.dlq, 0, &out.raw, &out.batch_time).collect();
            failures.extend(
                Self::deliver_to_dlq(
                    &mut self.dlq,
                    &self.dlq_policy,
                    (&mut self.dlq_stats, &mut self.reasons),
                    &records,
                )
                .await,
            );
        }
        if let Some(d) = &mut self.dedup {
            // Keys are claimed once their batch is acknowledged: not those of
            // records a sink rejected or did not take.
            let undelivered: BTreeSet<u32> = rejected
                .iter()
                .map(|r| r.0)
                .chain(exhausted_ids.iter().copied())
                .chain(out.removed.iter().copied())
                .collect();
            let keys = std::mem::take(&mut out.dedup_keys);
            d.claims.add(
                seq,
                keys.into_iter()
                    .enumerate()
                    .map(|(id, k)| (id as u32, k))
                    .filter(|(id, _)| !undelivered.contains(id))
                    .collect(),
            );
        }
        self.hold(seq, out, sink_keys, &rejected);
        self.acks.push(seq, ack);
        failures
    }

    /// [`drop_duplicates`](Self::drop_duplicates) before the batch is
    /// committed (before an aggregate takes its records, so that a duplicate
    /// does not count in its window); the records that failed.
    pub async fn take_duplicates(
        &mut self,
        out: &mut BatchOutput,
        sink_keys: &[Vec<String>],
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        self.drop_duplicates(out, sink_keys, &mut failures).await;
        out.dedup_done = true;
        failures
    }

    /// Takes out of the batch the records whose deduplication key was
    /// delivered or is in flight, or belongs to an earlier record of it.
    /// When the store cannot be asked, every routed record of the batch
    /// fails (the source delivers it again).
    async fn drop_duplicates(
        &mut self,
        out: &mut BatchOutput,
        sink_keys: &[Vec<String>],
        failures: &mut Vec<Failure>,
    ) {
        let Some(d) = &self.dedup else {
            return;
        };
        if out.dedup_keys.is_empty() {
            return;
        }
        match crate::dedup::find_duplicates(d, &out.dedup_keys, std::time::SystemTime::now()).await
        {
            Ok(drop) => {
                out.drop_duplicates(&drop, sink_keys);
                out.removed.extend(
                    drop.iter()
                        .enumerate()
                        .filter(|(_, d)| **d)
                        .map(|(id, _)| id as u32),
                );
            }
            Err(e) => {
                let all = vec![true; out.dedup_keys.len()];
                let mut positions: Vec<(u32, usize)> = out
                    .sinks
                    .iter()
                    .flat_map(|l| l.ids.iter().copied().zip(l.raw.iter().map(|r| *r as usize)))
                    .chain(
                        out.contributions
                            .iter()
                            .filter(|t| !t.routed)
                            .filter_map(|t| t.id.map(|id| (id, t.raw as usize))),
                    )
                    .collect();
                positions.sort_unstable();
                positions.dedup_by_key(|p| p.0);
                let aggregated = out.only_aggregated(&all);
                let n = out.remove_routed(&all, sink_keys);
                out.counts.delivered -= n - aggregated;
                out.counts.aggregated -= aggregated;
                out.counts.failed += n;
                out.removed.extend(0..all.len() as u32);
                failures.extend(positions.into_iter().map(|(_, raw)| Failure {
                    position: out.raw[raw].position.clone(),
                    reason: format!("the dedup store could not be read: {e}"),
                }));
            }
        }
    }

    /// Hands a committed batch's lines to the buffering sinks.
    fn hold(
        &mut self,
        seq: u64,
        out: &mut BatchOutput,
        sink_keys: &[Vec<String>],
        rejected: &[(u32, usize, String, Error, u32)],
    ) {
        let takers: Vec<usize> = (0..self.sinks.len())
            .filter(|&si| self.buffers[si].is_some() && out.sinks[si].count > 0)
            .collect();
        if takers.is_empty() {
            return;
        }
        for r in rejected {
            self.dead.insert((seq, r.0));
        }
        let batch_time: Arc<str> = Arc::from(out.batch_time.as_str());
        let fan_out = Arc::new(out.fan_out.clone());
        let held_lines: usize = takers.iter().map(|&si| out.sinks[si].ends.len()).sum();
        // Keep the whole batch when most of it is held; otherwise copy just the
        // records the held lines came from, so a sink that takes few records
        // does not keep every batch alive.
        let whole = held_lines * 2 >= out.raw.len();
        let shared = whole.then(|| Arc::new(std::mem::take(&mut out.raw)));
        let now = Instant::now();
        for si in takers {
            let mut lines = std::mem::take(&mut out.sinks[si]);
            let raw = match &shared {
                Some(raw) => Arc::clone(raw),
                None => {
                    let mut copied = Vec::with_capacity(lines.raw.len());
                    for r in &mut lines.raw {
                        copied.push(out.raw[*r as usize].clone());
                        *r = (copied.len() - 1) as u32;
                    }
                    Arc::new(copied)
                }
            };
            let Some(buf) = self.buffers[si].as_mut() else {
                continue;
            };
            buf.records += lines.ends.len();
            buf.bytes += lines.bytes.len();
            buf.since.get_or_insert(now);
            buf.held.push(Held {
                seq,
                lines,
                keys_per_line: sink_keys[si].len(),
                raw,
                batch_time: Arc::clone(&batch_time),
                fan_out: Arc::clone(&fan_out),
            });
        }
    }

    /// Writes the buffers that are due (all that hold anything when `all`),
    /// then applies the acknowledgements no buffer holds back any more.
    ///
    /// When a buffer could not be written, returns its records that were not
    /// delivered and applies no acknowledgement.
    pub async fn flush_buffers(
        &mut self,
        all: bool,
        counts: &mut Counts,
    ) -> Result<Released, Vec<Failure>> {
        let now = Instant::now();
        let mut failures = Vec::new();
        for si in 0..self.buffers.len() {
            let due = self.buffers[si]
                .as_ref()
                .is_some_and(|b| b.due(now) || (all && !b.held.is_empty()));
            if due {
                failures.extend(self.write_buffer(si, counts).await);
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        Ok(self.release().await)
    }

    /// Writes the buffers that `out` would overfill, so that objects end
    /// where batches end; then applies the acknowledgements that frees.
    pub async fn make_room(
        &mut self,
        out: &BatchOutput,
        counts: &mut Counts,
    ) -> Result<Released, Vec<Failure>> {
        let mut failures = Vec::new();
        for si in 0..self.buffers.len() {
            let full = self.buffers[si].as_ref().is_some_and(|b| {
                let lines = &out.sinks[si];
                !b.held.is_empty()
                    && lines.count > 0
                    && (b.records + lines.ends.len() > b.limits.max_records
                        || b.bytes + lines.bytes.len() > b.limits.max_bytes)
            });
            if full {
                failures.extend(self.write_buffer(si, counts).await);
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        Ok(self.release().await)
    }

    /// When the oldest buffered record reaches its sink's `max_age`.
    pub fn deadline(&self) -> Option<Instant> {
        self.buffers
            .iter()
            .flatten()
            .filter_map(Buffer::deadline)
            .min()
    }

    /// Committed batches not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.acks.len()
    }

    /// Committed batches a sink buffer still holds.
    pub fn unfreed(&self) -> usize {
        (self.next_seq - self.freed_upto) as usize
    }

    /// The sequence the next batch committed gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What an aggregate's windows hold after a batch of a shard.
    pub fn hold_windows(&mut self, batch: u64, hold: super::aggregate::Hold) {
        self.window_holds.get_or_insert_with(Default::default).set(
            &hold.shard,
            batch,
            hold.oldest_open,
            hold.mark,
        );
    }

    /// Gives up the batches of shards this worker no longer reads (handed
    /// over, or their leases lost) that wait for their acknowledgement:
    /// their next reader reads them again from the checkpoint saved before,
    /// and computes their windows again. Returns the shards.
    pub fn give_up_dropped_shards(&mut self) -> Vec<String> {
        let dropped = self
            .acks
            .take_where(|a| a.checkpoint().is_some_and(|c| c.shard_dropped()));
        let mut shards: Vec<String> = Vec::new();
        for (seq, ack) in dropped {
            // Its records are read again by the shard's next reader: their
            // keys are not claimed.
            if let Some(d) = &mut self.dedup {
                d.claims.forget_batch(seq);
            }
            if let Some(c) = ack.checkpoint() {
                c.discard();
                if !shards.iter().any(|s| s == c.shard()) {
                    shards.push(c.shard().to_owned());
                }
            }
        }
        if let Some(h) = &mut self.window_holds {
            for s in &shards {
                h.forget(s);
            }
        }
        shards
    }

    /// Writes everything one buffering sink holds, dead-lettering what it rejects.
    async fn write_buffer(&mut self, si: usize, counts: &mut Counts) -> Vec<Failure> {
        let mut failures = Vec::new();
        let Some(buf) = self.buffers[si].as_mut() else {
            return failures;
        };
        let held = std::mem::take(&mut buf.held);
        buf.records = 0;
        buf.bytes = 0;
        buf.since = None;
        let mut index = Vec::new();
        let mut records = Vec::new();
        for (b, h) in held.iter().enumerate() {
            for (i, r) in out_records(&h.lines, h.keys_per_line, &h.raw, &h.batch_time).enumerate()
            {
                index.push((b, i));
                records.push(r);
            }
        }
        let (name, writer) = &mut self.sinks[si];
        let start = Instant::now();
        let (outcomes, retries) =
            delivery::deliver_counted(writer, &records, &self.sink_policies[si]).await;
        self.sink_stats[si].retries += retries;
        self.sink_stats[si].millis += start.elapsed().as_secs_f64() * 1000.0;
        let mut envelopes: Vec<(Vec<u8>, &Position, &str)> = Vec::new();
        for (k, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Delivered => {}
                Outcome::Poison(e, attempts) => {
                    let (b, i) = index[k];
                    let h = &held[b];
                    counts.per_sink[si] -= 1;
                    if let Some(d) = &mut self.dedup {
                        d.claims.forget(h.seq, h.lines.ids[i]);
                    }
                    if !self.dead.insert((h.seq, h.lines.ids[i])) {
                        continue; // another sink dead-lettered it already
                    }
                    let raw = &h.raw[h.lines.raw[i] as usize];
                    let fan_out = h
                        .fan_out
                        .get(&h.lines.ids[i])
                        .map_or(&[][..], Vec::as_slice);
                    let line = sink_envelope(
                        &self.pipeline,
                        raw,
                        fan_out,
                        name,
                        &e,
                        attempts,
                        &h.batch_time,
                    );
                    envelopes.push((line, &raw.position, &h.batch_time));
                    counts.delivered -= 1;
                    counts.dead_letter(Stage::Sink);
                }
                Outcome::Exhausted(e, attempts) => {
                    let (b, i) = index[k];
                    let h = &held[b];
                    counts.per_sink[si] -= 1;
                    if let Some(d) = &mut self.dedup {
                        d.claims.forget(h.seq, h.lines.ids[i]);
                    }
                    if self.dead.insert((h.seq, h.lines.ids[i])) {
                        counts.delivered -= 1;
                        counts.failed += 1;
                    }
                    failures.push(Failure {
                        position: h.raw[h.lines.raw[i] as usize].position.clone(),
                        reason: format!(
                            "sink `{name}` did not accept a record after {attempts} attempts: {e}"
                        ),
                    });
                }
            }
        }
        if !envelopes.is_empty() {
            let records: Vec<OutRecord<'_>> = envelopes
                .iter()
                .map(|(line, position, batch_time)| OutRecord {
                    json: line,
                    keys: &[],
                    position,
                    batch_time,
                })
                .collect();
            let (dlq, policy) = (&mut self.dlq, &self.dlq_policy);
            let noted = (&mut self.dlq_stats, &mut self.reasons);
            failures.extend(Self::deliver_to_dlq(dlq, policy, noted, &records).await);
        }
        failures
    }

    /// Writes envelopes to the DLQ, noting their reasons; returns the
    /// records whose envelope it did not accept.
    async fn deliver_to_dlq(
        dlq: &mut Writer,
        policy: &Policy,
        (stats, reasons): (&mut SinkStats, &mut super::reasons::Reasons),
        records: &[OutRecord<'_>],
    ) -> Vec<Failure> {
        for r in records {
            reasons.note(r.json);
        }
        let start = Instant::now();
        let (outcomes, retries) = delivery::deliver_counted(dlq, records, policy).await;
        stats.retries += retries;
        stats.millis += start.elapsed().as_secs_f64() * 1000.0;
        outcomes
            .into_iter()
            .zip(records)
            .filter_map(|(o, r)| match o {
                Outcome::Delivered => None,
                Outcome::Poison(e, attempts) | Outcome::Exhausted(e, attempts) => Some(Failure {
                    position: r.position.clone(),
                    reason: format!(
                        "the dead-letter queue did not accept a record after {attempts} attempts, so the batch is not acknowledged: {e}"
                    ),
                }),
            })
            .collect()
    }

    /// Applies, in order, the acknowledgements of the batches no buffer holds.
    async fn release(&mut self) -> Released {
        let oldest_held = acks::oldest_held(
            self.buffers
                .iter()
                .flatten()
                .filter_map(|b| b.held.first().map(|h| h.seq)),
        );
        let mut released = Released::default();
        let free_to = oldest_held
            .unwrap_or(self.next_seq)
            .min(self.next_seq)
            .max(self.freed_upto);
        released.freed = (free_to - self.freed_upto) as usize;
        self.freed_upto = free_to;
        // An aggregate's open windows hold back their shard's batches, as
        // of the latest batch written (the state saved with a checkpoint
        // is that batch's too).
        let windows = self.window_holds.as_mut().map(|h| h.as_of(free_to));
        let held = |seq: u64, ack: &Ack| {
            windows.as_ref().is_some_and(|w| {
                ack.checkpoint()
                    .is_some_and(|c| acks::window_holds(w, c.shard(), seq))
            })
        };
        // A source position moves only once what its records became is on
        // disk: local files (sinks and DLQ) are synced first.
        let positions = self
            .acks
            .any_due_unless(oldest_held, held, |ack| !matches!(ack, Ack::None));
        // A record's key is claimed once its window's record is written too:
        // not while a window holds its batch back.
        let window_hold = windows
            .as_ref()
            .and_then(|w| w.values().filter_map(|(oldest, _)| *oldest).min());
        let before = oldest_held
            .unwrap_or(u64::MAX)
            .min(window_hold.unwrap_or(u64::MAX));
        let claims = self
            .dedup
            .as_ref()
            .is_some_and(|d| d.claims.any_due(before));
        if (positions || claims)
            && let Err(e) = self.sync().await
        {
            released.warnings.push(format!(
                "no batch is acknowledged until the local files are synced: {e}"
            ));
            return released;
        }
        // Delivered keys are remembered before their source position moves:
        // a crash in between delivers them again, never loses them.
        if let Some(d) = &mut self.dedup {
            let keys = d.claims.take_due(before);
            if !keys.is_empty() {
                if let Err(e) = d
                    .store
                    .claim(&keys, std::time::SystemTime::now(), d.ttl)
                    .await
                {
                    released.warnings.push(format!(
                        "remembering {} delivered dedup keys failed, so a duplicate of them may be delivered: {e}",
                        keys.len()
                    ));
                }
                d.claims.claimed(&keys);
            }
        }
        let due = self.acks.take_due_unless(oldest_held, held);
        // A checkpoint saves where its shard's windows are, as of the
        // latest batch whose records and windows are written.
        for mut ack in due {
            if let (Some(w), Some(c)) = (&windows, ack.checkpoint_mut()) {
                c.windows = w.get(c.shard()).and_then(|(_, mark)| mark.clone());
            }
            if let Err(e) = ack.apply(&self.policy).await {
                released
                    .warnings
                    .push(format!("acknowledging a batch failed: {e}"));
            }
            released.batches += 1;
        }
        self.dead = self.dead.split_off(&(oldest_held.unwrap_or(u64::MAX), 0));
        released
    }

    /// Makes everything written durable (file sinks sync to disk).
    pub async fn sync(&mut self) -> Result<(), RunError> {
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
