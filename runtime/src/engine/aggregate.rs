//! Running an aggregate: the records of each batch go into their windows in
//! the order batches are committed, and the windows that close are emitted
//! as records, which go through the routes that name the aggregate into the
//! same batch's sinks.

use std::sync::Arc;

use super::{BatchOutput, Built, Worker, push_envelope};
use crate::aggregate::window::{Emitted, Windows};
use crate::delivery::envelope::{Envelope, encode_data};
use crate::record::{Cut, Position, RawRecord, Stage};

/// An aggregate's open windows, and the worker that routes what they emit.
pub struct Aggregation {
    windows: Windows,
    worker: Worker,
    outputs: Arc<Built>,
    name: Arc<str>,
    /// Records a route took that came too late for their window.
    pub late_routed: u64,
}

impl Aggregation {
    /// The aggregate of `built`, if it has one.
    pub fn new(built: &Built) -> Result<Option<Aggregation>, String> {
        let Some((a, outputs)) = &built.aggregate else {
            return Ok(None);
        };
        Ok(Some(Aggregation {
            windows: Windows::new(a.spec.clone())?,
            worker: Worker::new(Arc::clone(outputs))?,
            outputs: Arc::clone(outputs),
            name: Arc::from(a.name.as_str()),
            late_routed: 0,
        }))
    }

    /// Adds a batch's records to their windows, dead-letters those refused
    /// (late, too many windows, a value a reducer cannot take) that went to
    /// no route, and adds the windows that closed to the batch.
    pub fn apply(&mut self, out: &mut BatchOutput) {
        let contributions = std::mem::take(&mut out.contributions);
        for (c, raw_index, routed, cuts) in &contributions {
            let Err(refused) = self.windows.add(c) else {
                continue;
            };
            if *routed {
                self.late_routed += 1;
                continue;
            }
            out.counts.aggregated -= 1;
            refused_envelope(
                out,
                &self.outputs.name,
                *raw_index as usize,
                cuts,
                refused.reason(),
            );
        }
        let closed = self.windows.closed();
        self.emit(out, closed);
    }

    /// Emits every open window into `out` (the end of the input).
    pub fn close_all(&mut self, out: &mut BatchOutput) {
        let all = self.windows.all();
        self.emit(out, all);
    }

    /// Routes emitted records and adds them to the batch: their lines after
    /// the batch's, their records after its records.
    fn emit(&mut self, out: &mut BatchOutput, records: Vec<Emitted>) {
        if records.is_empty() {
            return;
        }
        let (raws, unfinished) = split(emitted(&self.name, None, &records), &records);
        // Routing cannot stop the run: no schema, no `on_invalid: fail`.
        if let Ok(made) = self.worker.process(&raws, &out.batch_time) {
            merge(out, made, raws);
        }
        dead_letter_unfinished(out, &self.outputs.name, unfinished);
    }
}

/// The records of windows (`raws`, made from `records`) to route, and
/// those a script reducer's `finish` failed on, with why.
pub fn split(
    raws: Vec<RawRecord>,
    records: &[Emitted],
) -> (Vec<RawRecord>, Vec<(RawRecord, String)>) {
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
pub fn dead_letter_unfinished(
    out: &mut BatchOutput,
    pipeline: &str,
    failed: Vec<(RawRecord, String)>,
) {
    for (raw, why) in failed {
        out.counts.aggregates_out += 1;
        dead_letter_refused(out, pipeline, raw, &[], why);
    }
}

/// The records an aggregate emitted, as source records of its name, each
/// with its window's identity (and the shard whose window it is): a window
/// emitted again has the same position, so an S3 object named after it
/// (`{part}`) is written again in place.
pub fn emitted(name: &Arc<str>, shard: Option<&Arc<str>>, records: &[Emitted]) -> Vec<RawRecord> {
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
pub fn merge(out: &mut BatchOutput, made: BatchOutput, raws: Vec<RawRecord>) {
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
}
