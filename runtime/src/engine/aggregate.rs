//! Running an aggregate: the records of each batch go into their windows in
//! the order batches are committed, and the windows that close are emitted
//! as records, which go through the routes that name the aggregate into the
//! same batch's sinks.
//!
//! Over a stream, windows are kept per shard (a shard's records are in
//! order; its watermark is its own), and the batches of a shard from the
//! first one a window still open took a record of are not acknowledged
//! (see [`WindowHolds`](super::acks::WindowHolds)): a restart reads them
//! again and computes those windows again. The checkpoint saves the
//! windows' [`WindowMark`], so that the windows that had closed are not
//! emitted again with only the records read again.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{BatchOutput, Built, Worker, push_envelope};
use crate::aggregate::window::{Emitted, Windows};
use crate::delivery::envelope::{Envelope, encode_data};
use crate::record::{Cut, Position, RawRecord, Stage};
use crate::sources::shards::{Checkpoint, WindowMark};

/// An aggregate's open windows, and the worker that routes what they emit.
pub struct Aggregation {
    spec: crate::aggregate::window::Spec,
    /// By shard (`""` for a file, standard input or a redrive).
    parts: BTreeMap<String, Part>,
    worker: Worker,
    outputs: Arc<Built>,
    name: Arc<str>,
    /// Records a route took that came too late for their window.
    pub late_routed: u64,
    /// A redrive: records do not join windows (see [`redriving`](Self::redriving)).
    redrive: bool,
}

/// Why a redriven record is not taken into a window.
const REDRIVEN: &str = "redriven: the aggregate's windows were emitted already, and a record read again does not join its window";

/// The windows of one shard.
struct Part {
    windows: Windows,
    /// Records up to this sequence number were taken before a restart: one
    /// whose window had closed is not taken again.
    replay_through: Option<String>,
    /// The sequence number of the last record taken.
    last: Option<String>,
}

/// What the windows of a shard hold after a batch: the first batch a
/// window still open took a record of, and the mark to save with the
/// shard's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The shard.
    pub shard: String,
    /// The first batch a window still open took a record of.
    pub oldest_open: Option<u64>,
    /// Where the windows are (`None` before their first record).
    pub mark: Option<WindowMark>,
}

impl Aggregation {
    /// The aggregate of `built`, if it has one.
    pub fn new(built: &Built) -> Result<Option<Aggregation>, String> {
        let Some((a, outputs)) = &built.aggregate else {
            return Ok(None);
        };
        // The reducer scripts compile (checked again for each shard).
        Windows::new(a.spec.clone())?;
        Ok(Some(Aggregation {
            spec: a.spec.clone(),
            parts: BTreeMap::new(),
            worker: Worker::new(Arc::clone(outputs))?,
            outputs: Arc::clone(outputs),
            name: Arc::from(a.name.as_str()),
            late_routed: 0,
            redrive: false,
        }))
    }

    /// The records are dead letters read back (`sluice dlq redrive`): their
    /// windows were emitted already, and one emitted again with only the
    /// redriven records would replace the whole window's record where its
    /// identity names it (an S3 object, a DynamoDB item). So no record
    /// joins a window: one that no route took is dead-lettered again,
    /// saying so; its routes deliver the others.
    pub fn redriving(&mut self) {
        self.redrive = true;
    }

    /// Adds a batch's records to their windows, dead-letters those refused
    /// (late, too many windows, a value a reducer cannot take) that went to
    /// no route, and adds the windows that closed to the batch. `batch` is
    /// the batch's sequence; `checkpoint` its shard's, over a stream (the
    /// windows are then that shard's). Returns what the windows hold after
    /// the batch. A shard no longer read (handed over) takes nothing: its
    /// next reader computes its windows again. The end of a closed shard
    /// emits every window of it. Duplicates (`out.removed`) count in no
    /// window.
    pub fn apply(
        &mut self,
        out: &mut BatchOutput,
        batch: u64,
        checkpoint: Option<&Checkpoint>,
    ) -> Option<Hold> {
        let contributions = std::mem::take(&mut out.contributions);
        if checkpoint.is_some_and(Checkpoint::shard_dropped) {
            return None;
        }
        if self.redrive {
            for t in contributions.iter().filter(|t| !t.routed) {
                if t.id.is_some_and(|id| out.removed.contains(&id)) {
                    continue; // a duplicate, counted so
                }
                out.removed.extend(t.id);
                out.counts.aggregated -= 1;
                refused_envelope(
                    out,
                    &self.outputs.name,
                    t.raw as usize,
                    &t.cuts,
                    REDRIVEN.into(),
                );
            }
            return None;
        }
        let shard = checkpoint.map_or("", Checkpoint::shard);
        if !self.parts.contains_key(shard) {
            let mut windows = match Windows::new(self.spec.clone()) {
                Ok(w) => w,
                Err(_) => return None, // compiled once already, in `new`
            };
            let restored = checkpoint.and_then(|c| c.restored.clone());
            if let Some(m) = &restored {
                windows.resume_at(m.watermark_ms);
            }
            // A restored shard's mark goes on from where it was saved, also
            // while it takes nothing new (every record read again skipped).
            let last = restored.as_ref().map(|m| m.through.clone());
            self.parts.insert(
                shard.to_owned(),
                Part {
                    windows,
                    replay_through: restored.map(|m| m.through),
                    last,
                },
            );
        }
        let part = self.parts.get_mut(shard)?;
        // Duplicates (taken out before, counted so) count in no window; their
        // time still moves the watermark, as the first of them did, so that
        // the same input gives the same late records however often it is read.
        let removed: std::collections::HashSet<u32> = out.removed.iter().copied().collect();
        for t in &contributions {
            if t.id.is_some_and(|id| removed.contains(&id)) {
                part.windows.observe(t.contribution.time_ms);
                continue;
            }
            let (c, raw_index, routed, cuts) = (&t.contribution, &t.raw, &t.routed, &t.cuts);
            let sequence = out.raw[*raw_index as usize]
                .position
                .sequence_number
                .as_deref();
            if let (Some(through), Some(seq)) = (&part.replay_through, sequence) {
                if !sequence_after(seq, through) {
                    // Read again after a restart: its window, closed then,
                    // was emitted (or it was dead-lettered as late) already.
                    if part.windows.is_closed(c.time_ms) {
                        continue;
                    }
                } else {
                    part.replay_through = None;
                }
            }
            if let Some(seq) = sequence {
                part.last = Some(seq.to_owned());
            }
            let Err(refused) = part.windows.add_in(c, batch) else {
                continue;
            };
            if *routed {
                self.late_routed += 1;
                continue;
            }
            // Dead-lettered: its dedup key is not claimed.
            out.removed.extend(t.id);
            out.counts.aggregated -= 1;
            refused_envelope(
                out,
                &self.outputs.name,
                *raw_index as usize,
                cuts,
                refused.reason(),
            );
        }
        let ends = checkpoint.is_some_and(Checkpoint::ends_shard);
        let done = if ends {
            part.windows.all()
        } else {
            part.windows.closed()
        };
        let hold =
            Some(Hold {
                shard: shard.to_owned(),
                oldest_open: part.windows.oldest_batch(),
                mark: part.windows.watermark().zip(part.last.clone()).map(
                    |(watermark_ms, through)| WindowMark {
                        watermark_ms,
                        through,
                    },
                ),
            });
        if ends {
            self.parts.remove(shard);
        }
        let shard = checkpoint.map(|c| Arc::from(c.shard()));
        self.emit(out, shard.as_ref(), done);
        hold
    }

    /// Forgets the windows of a shard no longer read: its next reader
    /// computes them again from the shard's checkpoint.
    pub fn drop_shard(&mut self, shard: &str) {
        self.parts.remove(shard);
    }

    /// How many windows are open.
    pub fn open(&self) -> usize {
        self.parts.values().map(|p| p.windows.open()).sum()
    }

    /// Emits every open window into `out` (the end of the input); what
    /// the windows hold then, per shard: nothing.
    pub fn close_all(&mut self, out: &mut BatchOutput) -> Vec<Hold> {
        let parts = std::mem::take(&mut self.parts);
        let mut holds = Vec::new();
        for (shard, mut part) in parts {
            holds.push(Hold {
                shard: shard.clone(),
                oldest_open: None,
                mark: None,
            });
            let all = part.windows.all();
            let shard: Option<Arc<str>> = (!shard.is_empty()).then(|| Arc::from(shard.as_str()));
            self.emit(out, shard.as_ref(), all);
        }
        holds
    }

    /// Routes emitted records and adds them to the batch: their lines after
    /// the batch's, their records after its records.
    fn emit(&mut self, out: &mut BatchOutput, shard: Option<&Arc<str>>, records: Vec<Emitted>) {
        if records.is_empty() {
            return;
        }
        let (raws, unfinished) = to_route(&self.name, shard, &records);
        // Routing cannot stop the run: no schema, no `on_invalid: fail`.
        if let Ok(made) = self.worker.process(&raws, &out.batch_time) {
            add_routed(out, &self.outputs.name, (made, raws), unfinished);
        }
    }
}

/// The records windows emitted, as records of the aggregate `name` (of
/// `shard`) to route, and those a script reducer's `finish` failed on.
pub fn to_route(
    name: &Arc<str>,
    shard: Option<&Arc<str>>,
    records: &[Emitted],
) -> (Vec<RawRecord>, Vec<(RawRecord, String)>) {
    split(emitted(name, shard, records), records)
}

/// Adds to a batch what the windows' records became (`made` by routing
/// `raws`), and dead-letters those `finish` failed on.
pub fn add_routed(
    out: &mut BatchOutput,
    pipeline: &str,
    (made, raws): (BatchOutput, Vec<RawRecord>),
    unfinished: Vec<(RawRecord, String)>,
) {
    merge(out, made, raws);
    dead_letter_unfinished(out, pipeline, unfinished);
}

/// Whether stream sequence number `a` comes after `b`: both are decimal
/// numbers, too large for an integer, maybe with leading zeros.
fn sequence_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}

/// The records of windows (`raws`, made from `records`) to route, and
/// those a script reducer's `finish` failed on, with why.
fn split(raws: Vec<RawRecord>, records: &[Emitted]) -> (Vec<RawRecord>, Vec<(RawRecord, String)>) {
    let mut ok = Vec::with_capacity(raws.len());
    let mut failed = Vec::new();
    for (raw, e) in raws.into_iter().zip(records) {
        match &e.error {
            None => ok.push(raw),
            Some(why) => failed.push((raw, why.clone())),
        }
    }
    (ok, failed)
}

/// Dead-letters with stage `aggregate` the record `raw_index` of the batch,
/// which its window refused (counted as dead-lettered; the caller takes it
/// out of the records only aggregated).
fn refused_envelope(
    out: &mut BatchOutput,
    pipeline: &str,
    raw_index: usize,
    cuts: &[Cut],
    why: String,
) {
    let raw = &out.raw[raw_index];
    let (data, encoding) = encode_data(&raw.data);
    let env = Envelope {
        pipeline,
        stage: Stage::Aggregate,
        step: None,
        error: why,
        instance_path: None,
        data,
        encoding,
        source: &raw.position,
        attempts: 1,
        timestamp: &out.batch_time,
        fan_out: cuts,
    };
    push_envelope(&mut out.dlq, &env, raw_index);
    out.counts.dead_letter(Stage::Aggregate);
}

/// Adds to `out` a record its window refused, dead-lettered with stage
/// `aggregate` (Lambda, where the windows take records after their batch
/// was committed).
pub fn dead_letter_refused(
    out: &mut BatchOutput,
    pipeline: &str,
    raw: RawRecord,
    cuts: &[Cut],
    why: String,
) {
    out.raw.push(raw);
    refused_envelope(out, pipeline, out.raw.len() - 1, cuts, why);
}

/// Dead-letters, with stage `aggregate`, the records of windows a script
/// reducer's `finish` failed on: counted as made by the aggregate.
fn dead_letter_unfinished(out: &mut BatchOutput, pipeline: &str, failed: Vec<(RawRecord, String)>) {
    for (raw, why) in failed {
        out.counts.aggregates_out += 1;
        dead_letter_refused(out, pipeline, raw, &[], why);
    }
}

/// The records an aggregate emitted, as source records of its name, each
/// with its window's identity (and the shard whose window it is): a window
/// emitted again has the same position, so an S3 object named after it
/// (`{part}`) is written again in place.
fn emitted(name: &Arc<str>, shard: Option<&Arc<str>>, records: &[Emitted]) -> Vec<RawRecord> {
    records
        .iter()
        .map(|e| RawRecord {
            data: e.record.to_string().into_bytes(),
            position: Position {
                source: "aggregate",
                stream: Some(Arc::clone(name)),
                shard: shard.cloned(),
                window: Some(e.window.clone()),
                ..Position::default()
            },
            rejected: None,
            attributes: None,
            fan_out: Vec::new(),
        })
        .collect()
}

/// Adds what the aggregate's records became (`made`, from `raws`) to a
/// batch: their lines after its lines, their records after its records,
/// and their count as records the aggregate made.
fn merge(out: &mut BatchOutput, made: BatchOutput, raws: Vec<RawRecord>) {
    let raw_base = out.raw.len() as u32;
    let id_base = out.routed;
    for (into, from) in out.sinks.iter_mut().zip(&made.sinks) {
        append(into, from, raw_base, id_base);
    }
    let dlq_base = out.dlq.count as u32;
    append(&mut out.dlq, &made.dlq, raw_base, dlq_base);
    out.routed += made.routed;
    let mut counts = made.counts;
    counts.aggregates_out = counts.records_in;
    counts.records_in = 0;
    out.counts.add(&counts);
    out.raw.extend(raws);
}

/// Appends `from`'s lines to `into`, their records and ids moved by the bases.
fn append(into: &mut super::SinkLines, from: &super::SinkLines, raw_base: u32, id_base: u32) {
    for i in 0..from.ends.len() {
        let start = if i == 0 { 0 } else { from.ends[i - 1] };
        into.bytes
            .extend_from_slice(&from.bytes[start..from.ends[i]]);
        into.ends.push(into.bytes.len());
        into.raw.push(raw_base + from.raw[i]);
        into.ids.push(id_base + from.ids[i]);
        into.count += 1;
    }
    into.keys.extend_from_slice(&from.keys);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn window(start: &str, group: &str) -> Emitted {
        Emitted {
            record: json!({}),
            error: None,
            window: format!("{start} [\"{group}\"]"),
        }
    }

    #[test]
    fn each_window_of_each_group_and_shard_has_a_token_of_its_own_that_it_keeps() {
        let name: Arc<str> = Arc::from("per device");
        let shard: Arc<str> = Arc::from("shardId-000000000001");
        let windows = [
            window("2026-11-24T08:00:00.000Z", "a"),
            window("2026-11-24T08:00:00.000Z", "b"),
            window("2026-11-24T08:05:00.000Z", "a"),
        ];
        let tokens = |shard: Option<&Arc<str>>| -> Vec<String> {
            emitted(&name, shard, &windows)
                .iter()
                .map(|r| r.position.token())
                .collect()
        };
        let plain = tokens(None);
        let sharded = tokens(Some(&shard));
        assert_eq!(plain, tokens(None), "the same windows, the same tokens");
        let mut all: Vec<&String> = plain.iter().chain(&sharded).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6, "{plain:?} {sharded:?}");
        assert!(
            plain[0].starts_with("per_device-20261124T080000000Z-"),
            "{}",
            plain[0]
        );
        assert!(
            sharded[2].starts_with("per_device-shardId-000000000001-20261124T080500000Z-"),
            "{}",
            sharded[2]
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after(
            "49590338271490256608559692540925702759324208523137515618",
            "49590338271490256608559692538361252235813393347813982210"
        ));
        assert!(!sequence_after("100", "100"));
        assert!(sequence_after("1000", "999"));
        assert!(!sequence_after("0999", "1000"));
        assert!(sequence_after("0000000000000000000002", "1"));
    }
}
