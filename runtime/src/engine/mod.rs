//! The engine: runs a built pipeline over batches of raw records.
//!
//! [`Built`] is what start-up produces once from a checked pipeline: compiled
//! schemas, script sources, routes resolved to sink indexes. Each thread owns
//! a [`Worker`] (a sandboxed Rhai engine with the scripts compiled once) and
//! turns a batch into a [`BatchOutput`]: encoded lines per sink, dead-letter
//! envelopes, and counts. Writing those out is the runner's job ([`run`]).

pub mod acks;
pub mod aggregate;
pub mod budget;
pub mod commit;
pub mod open;
pub mod reasons;
pub mod run;

use std::sync::Arc;

use rhai::{AST, Dynamic, Engine};

use crate::config::Loaded;
use crate::decode::Format;
use crate::delivery::envelope::{Envelope, encode_data};
use crate::metrics::Counts;
use crate::record::tree::{At, Tree};
use crate::record::{Cut, RawRecord, Stage};
use crate::route::Unrouted;
use crate::transform::KeepRecord;
use crate::transform::native::{self, Compare};
use crate::transform::{self, Limits, Meta, RecordScope, convert};
use crate::validate::{OnInvalid, Validator};

/// A route: its condition's source, if any, and its sinks' indexes.
pub type Route = (Option<String>, Vec<usize>);

/// A pipeline ready to run: everything compiled or resolved once at start-up.
pub struct Built {
    /// The pipeline's name.
    pub name: Arc<str>,
    /// The source type, for `meta.source` and envelopes.
    pub source_type: &'static str,
    /// How record bytes are parsed.
    pub format: Format,
    /// The schema records are checked against, and what to do when they fail.
    pub validator: Option<(Validator, OnInvalid)>,
    /// Transform names and Rhai sources, in order.
    pub transforms: Vec<(String, String)>,
    /// Where each transform is written, for the positions of its errors.
    pub transform_places: Vec<transform::Place>,
    /// Where each route's condition is written.
    pub route_places: Vec<transform::Place>,
    /// Routes: optional condition source, and sink indexes.
    pub routes: Vec<Route>,
    /// What happens to records no route takes.
    pub unrouted: Unrouted,
    /// Sink names, in the order of `sinks:`.
    pub sink_names: Vec<String>,
    /// Per sink, the record fields it needs besides the JSON (S3 key parts, SQS group ids …).
    pub sink_keys: Vec<Vec<String>>,
    /// The sandbox limits.
    pub limits: Limits,
    /// Whether scripts' `print` and `debug` write to standard error.
    pub debug: bool,
    /// How a record's deduplication key is read, when the pipeline has `dedup:`.
    pub dedup: Option<crate::dedup::Key>,
    /// The tables scripts read with `lookup`.
    pub lookups: Arc<crate::lookup::Tables>,
    /// The DynamoDB lookups whose key a script reads from the record
    /// (`lookup("name", record.field)`): table and field path, read ahead
    /// for each batch.
    pub prefetch: Vec<(String, String)>,
    /// The aggregate, and the pipeline its records go through (the routes
    /// that take them, no schema, no transforms).
    pub aggregate: Option<(crate::aggregate::Aggregate, Arc<Built>)>,
}

impl Built {
    /// Builds from a loaded (and so already checked) pipeline.
    pub fn new(loaded: &Loaded) -> Result<Built, String> {
        let p = &loaded.pipeline;
        let validator = match &p.validate {
            Some(v) => {
                let schema = loaded
                    .schemas
                    .get(&v.schema)
                    .ok_or_else(|| format!("schema `{}` is not defined", v.schema))?;
                Some((crate::validate::compile(schema)?, v.on_invalid))
            }
            None => None,
        };
        let sink_names: Vec<String> = p.sinks.keys().cloned().collect();
        let sink_keys = p
            .sinks
            .values()
            .map(crate::sinks::Config::key_fields)
            .collect();
        // The source's records take the routes without `from`; an
        // aggregate's, those that name it.
        let routes_from = |from: Option<&str>| -> (Vec<Route>, Vec<transform::Place>) {
            p.routes
                .iter()
                .zip(
                    loaded
                        .places
                        .routes
                        .iter()
                        .cloned()
                        .chain(std::iter::repeat_with(Default::default)),
                )
                .filter(|(r, _)| r.from.as_deref() == from)
                .map(|(r, place)| {
                    let mut idx: Vec<usize> =
                        r.to.iter()
                            .filter_map(|name| sink_names.iter().position(|s| s == name))
                            .collect();
                    idx.sort_unstable();
                    idx.dedup();
                    ((r.when.clone(), idx), place)
                })
                .unzip()
        };
        let (routes, route_places) = routes_from(None);
        // The scripts and places of the source's transforms, then of the aggregate's.
        let n = p.transforms.len();
        let (scripts, after_scripts) = loaded.scripts.split_at(n.min(loaded.scripts.len()));
        let places = &loaded.places.transforms;
        let (places, after_places) = places.split_at(n.min(places.len()));
        let aggregate = match &p.aggregate {
            None => None,
            Some(c) => {
                let a = crate::aggregate::Aggregate::new(c, &p.limits).map_err(|e| e.join("; "))?;
                let (routes, route_places) = routes_from(Some(&c.name));
                let outputs = Built {
                    name: Arc::from(p.name.as_str()),
                    source_type: "aggregate",
                    format: Format::Json,
                    validator: None,
                    transforms: c
                        .transforms
                        .iter()
                        .zip(after_scripts)
                        .map(|(t, src)| (t.name.clone(), src.clone()))
                        .collect(),
                    transform_places: after_places.to_vec(),
                    route_places,
                    routes,
                    unrouted: p.unrouted,
                    sink_names: sink_names.clone(),
                    sink_keys: p
                        .sinks
                        .values()
                        .map(crate::sinks::Config::key_fields)
                        .collect(),
                    limits: p.limits.clone(),
                    debug: false,
                    dedup: None,
                    lookups: Arc::clone(&loaded.lookups),
                    prefetch: Vec::new(),
                    aggregate: None,
                };
                Some((a, Arc::new(outputs)))
            }
        };
        Ok(Built {
            name: Arc::from(p.name.as_str()),
            source_type: p.source.type_name(),
            format: p.decode.format,
            validator,
            transforms: p
                .transforms
                .iter()
                .zip(scripts)
                .map(|(t, src)| (t.name.clone(), src.clone()))
                .collect(),
            routes,
            transform_places: places.to_vec(),
            route_places,
            unrouted: p.unrouted,
            sink_names,
            sink_keys,
            limits: p.limits.clone(),
            debug: false,
            dedup: p.dedup.as_ref().map(|d| crate::dedup::Key::parse(&d.key)),
            lookups: Arc::clone(&loaded.lookups),
            prefetch: prefetch(scripts, &loaded.lookups),
            aggregate,
        })
    }
}

/// The DynamoDB lookups the scripts make with a key read from the record.
fn prefetch(scripts: &[String], tables: &crate::lookup::Tables) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = scripts
        .iter()
        .flat_map(|s| transform::lint::lookup_calls(s))
        .filter(|c| tables.is_remote(&c.name))
        .filter_map(|c| c.key_path.map(|p| (c.name, p)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads ahead, for the DynamoDB lookups, the keys each record of a batch
/// holds where the scripts read them: one `BatchGetItem` per 100 keys
/// instead of a `GetItem` per record.
fn prefetch_lookups(built: &Built, batch: &[RawRecord]) {
    let mut keys: Vec<Vec<String>> = vec![Vec::new(); built.prefetch.len()];
    for raw in batch {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&raw.data) else {
            continue;
        };
        for ((_, path), keys) in built.prefetch.iter().zip(&mut keys) {
            let found = path.split('.').try_fold(&value, |v, part| v.get(part));
            if let Some(v) = found.filter(|v| !v.is_null()) {
                keys.push(crate::lookup::key_text_json(v));
            }
        }
    }
    for ((table, _), keys) in built.prefetch.iter().zip(keys) {
        if !keys.is_empty() {
            built.lookups.prefetch(table, keys);
        }
    }
}

/// Encoded records for one sink (or the DLQ) from one batch.
#[derive(Debug, Default, Clone)]
pub struct SinkLines {
    /// JSON Lines, each ending in `\n`.
    pub bytes: Vec<u8>,
    /// How many lines.
    pub count: u64,
    /// Where each line ends in `bytes` (after its `\n`).
    pub ends: Vec<usize>,
    /// For each line, the index of its source record in the batch.
    pub raw: Vec<u32>,
    /// For each line, the id of the routed record (the same in every sink it went to).
    pub ids: Vec<u32>,
    /// For each line, the sink's key fields, flattened (`key_fields().len()` per line).
    pub keys: Vec<String>,
}

impl SinkLines {
    fn push(&mut self, line: &[u8], raw: usize, id: u32) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
        self.raw.push(raw as u32);
        self.ids.push(id);
        self.count += 1;
    }

    /// The line at `i`, without its `\n`.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i] - 1]
    }
}

/// What a worker made of one batch.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Per sink, in the order of `sinks:`.
    pub sinks: Vec<SinkLines>,
    /// Dead-letter envelopes as JSON Lines.
    pub dlq: SinkLines,
    /// Outcome counts.
    pub counts: Counts,
    /// The batch's source records (envelopes of sink failures need their bytes).
    pub raw: Vec<RawRecord>,
    /// When the batch was processed.
    pub batch_time: String,
    /// For routed records (by id) that one of a fan-out made: which one,
    /// for the envelope of a sink that rejects it.
    pub fan_out: std::collections::HashMap<u32, Vec<Cut>>,
    /// Each routed record's deduplication key, by id (empty without `dedup:`).
    pub dedup_keys: Vec<String>,
    /// Records (by id) not delivered after all, whose keys are not
    /// claimed: duplicates and records the dedup store could not be asked
    /// about (taken out of the sinks' lines), and records only the
    /// aggregate took that it refused.
    pub removed: Vec<u32>,
    /// With `aggregate:`, each record's part in it, in order: with its
    /// index in the batch, whether a route took it too, and which record
    /// of a fan-out it is (for its envelope).
    pub contributions: Vec<Taken>,
    /// Duplicates were taken out already (before the aggregate took its
    /// records); committing does not look again.
    pub dedup_done: bool,
    /// How many records were routed (the ids given).
    pub routed: u32,
}

/// A record's part in the aggregate, as its batch keeps it.
#[derive(Debug, Clone)]
pub struct Taken {
    /// What it gives its window.
    pub contribution: crate::aggregate::window::Contribution,
    /// Its index in the batch.
    pub raw: u32,
    /// Whether a route took it too.
    pub routed: bool,
    /// Which record of a fan-out it is (for its envelope).
    pub cuts: Vec<Cut>,
    /// With `dedup:`, its id among the records with a key (`dedup_keys`).
    pub id: Option<u32>,
}

impl BatchOutput {
    /// Takes the records `drop` marks (by id) out of every sink's lines and
    /// out of the aggregate, counted as deduplicated.
    pub fn drop_duplicates(&mut self, drop: &[bool], sink_keys: &[Vec<String>]) {
        let dropped = self.remove_routed(drop, sink_keys);
        let aggregated = self.only_aggregated(drop);
        self.counts.delivered -= dropped - aggregated;
        self.counts.aggregated -= aggregated;
        self.counts.deduplicated += dropped;
    }

    /// How many of the records `drop` marks went only into the aggregate.
    pub fn only_aggregated(&self, drop: &[bool]) -> u64 {
        self.contributions
            .iter()
            .filter(|t| {
                !t.routed
                    && t.id
                        .is_some_and(|id| drop.get(id as usize).copied().unwrap_or(false))
            })
            .count() as u64
    }

    /// Takes the routed records `drop` marks (by id) out of every sink's
    /// lines; how many records that was.
    pub fn remove_routed(&mut self, drop: &[bool], sink_keys: &[Vec<String>]) -> u64 {
        let dropped = |id: u32| drop.get(id as usize).copied().unwrap_or(false);
        for (si, lines) in self.sinks.iter_mut().enumerate() {
            if !lines.ids.iter().any(|&id| dropped(id)) {
                continue;
            }
            let per_line = sink_keys.get(si).map_or(0, Vec::len);
            let old = std::mem::take(lines);
            for i in 0..old.ends.len() {
                if dropped(old.ids[i]) {
                    self.counts.per_sink[si] -= 1;
                    continue;
                }
                let start = if i == 0 { 0 } else { old.ends[i - 1] };
                lines.push(
                    &old.bytes[start..old.ends[i]],
                    old.raw[i] as usize,
                    old.ids[i],
                );
                lines.keys.extend_from_slice(
                    &old.keys[(i * per_line).min(old.keys.len())
                        ..((i + 1) * per_line).min(old.keys.len())],
                );
            }
        }
        drop.iter().filter(|d| **d).count() as u64
    }
}

/// A record that stops the run (`on_invalid: fail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

/// One thread's share of the engine: a sandboxed Rhai engine and the compiled scripts.
pub struct Worker {
    built: Arc<Built>,
    engine: Engine,
    scripts: Vec<AST>,
    /// Per transform, the script compiled to run natively, where it can be.
    natives: Vec<Option<native::Script>>,
    /// The record being parsed, its vectors reused from record to record.
    tree: Tree,
    /// Whether every transform runs natively: records then go through
    /// [`Worker::fast`].
    fast: bool,
    /// The fields the transforms wrote over a record's tree, sorted by name.
    written: Vec<(rhai::Identifier, Dynamic)>,
    /// Each route's condition: compiled, and run natively when it is simple.
    conditions: Vec<Option<(AST, Option<Compare>)>>,
    /// The deduplication key's expression, when it is not a field path.
    dedup_key: Option<AST>,
    scope: RecordScope,
    scratch: Vec<u8>,
    /// Where the record in progress is: its stage, and the transform's index.
    at: (Stage, Option<usize>),
    /// The batch's output before the record in progress, to undo its part
    /// when it panics: per sink, then the DLQ.
    marks: Vec<LinesMark>,
    counts_mark: Counts,
}

/// How long a [`SinkLines`] was.
#[derive(Debug, Clone, Copy, Default)]
struct LinesMark {
    bytes: usize,
    lines: usize,
    keys: usize,
}

impl LinesMark {
    fn of(l: &SinkLines) -> LinesMark {
        LinesMark {
            bytes: l.bytes.len(),
            lines: l.ends.len(),
            keys: l.keys.len(),
        }
    }

    fn restore(self, l: &mut SinkLines) {
        l.bytes.truncate(self.bytes);
        l.ends.truncate(self.lines);
        l.raw.truncate(self.lines);
        l.ids.truncate(self.lines);
        l.keys.truncate(self.keys);
        l.count = self.lines as u64;
    }
}

impl Worker {
    /// Compiles the scripts and conditions for this worker.
    pub fn new(built: Arc<Built>) -> Result<Worker, String> {
        let mut engine = transform::engine(&built.limits);
        crate::lookup::register(&mut engine, Arc::clone(&built.lookups));
        if built.debug {
            transform::debug_to_stderr(&mut engine);
        }
        let (scripts, natives) = built
            .transforms
            .iter()
            .map(|(name, src)| {
                transform::compile_script(&engine, src)
                    .map(|ast| {
                        let native = native::Script::compile(&ast);
                        (transform::keep_record(&engine, ast), native)
                    })
                    .map_err(|e| format!("transform `{name}`: {}", e.message))
            })
            .collect::<Result<(Vec<_>, Vec<_>), _>>()?;
        let conditions = built
            .routes
            .iter()
            .map(|(when, _)| {
                when.as_deref()
                    .map(|w| {
                        transform::compile_condition(&engine, w)
                            .map(|ast| (ast, Compare::parse(w)))
                            .map_err(|e| e.message)
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        let fast = natives.iter().all(Option::is_some);
        let dedup_key = match &built.dedup {
            Some(crate::dedup::Key::Expr(e)) => Some(
                transform::compile_condition(&engine, e)
                    .map_err(|e| format!("dedup key: {}", e.message))?,
            ),
            _ => None,
        };
        Ok(Worker {
            dedup_key,
            marks: vec![LinesMark::default(); built.sink_names.len() + 1],
            counts_mark: Counts::new(built.sink_names.len()),
            built,
            engine,
            scripts,
            natives,
            tree: Tree::default(),
            fast,
            written: Vec::new(),
            conditions,
            scope: RecordScope::default(),
            scratch: Vec::with_capacity(4096),
            at: (Stage::Decode, None),
        })
    }

    /// Makes the scripts' `lookup` read `tables` instead of the pipeline's.
    pub fn set_lookups(&mut self, tables: Arc<crate::lookup::Tables>) {
        crate::lookup::register(&mut self.engine, tables);
    }

    /// Runs every record of a batch through parse, validate, transforms and
    /// routes. `batch_time` is `meta.batch_time` and the envelopes' timestamp.
    ///
    /// A panic while one record is processed (a bug) undoes that record's
    /// part of the output and dead-letters it with the stage it was in; the
    /// other records are not affected.
    pub fn process(&mut self, batch: &[RawRecord], batch_time: &str) -> Result<BatchOutput, Fatal> {
        let built = Arc::clone(&self.built);
        let mut out = BatchOutput {
            sinks: vec![SinkLines::default(); built.sink_names.len()],
            dlq: SinkLines::default(),
            counts: Counts::new(built.sink_names.len()),
            raw: Vec::new(),
            batch_time: batch_time.to_owned(),
            fan_out: Default::default(),
            dedup_keys: Vec::new(),
            removed: Vec::new(),
            contributions: Vec::new(),
            dedup_done: false,
            routed: 0,
        };
        if !built.prefetch.is_empty() {
            prefetch_lookups(&built, batch);
        }
        let batch_time_rhai: rhai::ImmutableString = batch_time.into();
        let mut cx = Cx {
            built: &built,
            out: &mut out,
            batch_time,
            batch_time_ms: chrono::DateTime::parse_from_rfc3339(batch_time)
                .map_or(0, |t| t.timestamp_millis()),
            raw_index: 0,
            routed: 0,
            fan_out: Vec::new(),
        };
        for (raw_index, raw) in batch.iter().enumerate() {
            cx.raw_index = raw_index;
            cx.out.counts.records_in += 1;
            self.mark(&cx);
            let routed = cx.routed;
            let contributions = cx.out.contributions.len();
            self.at = (Stage::Decode, None);
            match crate::panics::catch(|| self.record(raw, &mut cx, &batch_time_rhai)) {
                Ok(Ok(())) => {}
                Ok(Err(fatal)) => return Err(fatal),
                Err(message) => {
                    self.undo(&mut cx);
                    cx.routed = routed;
                    cx.out.fan_out.retain(|id, _| *id < routed);
                    cx.out.dedup_keys.truncate(routed as usize);
                    cx.out.contributions.truncate(contributions);
                    self.scope = RecordScope::default();
                    let (stage, step) = self.at;
                    let step = step.map(|i| built.transforms[i].0.as_str());
                    let text = format!("internal error: {message}");
                    cx.dead_letter(raw, stage, step, text, None);
                }
            }
        }
        out.routed = cx.routed;
        Ok(out)
    }

    /// Remembers how far the batch's output is before a record.
    fn mark(&mut self, cx: &Cx<'_>) {
        for (m, l) in self.marks.iter_mut().zip(&cx.out.sinks) {
            *m = LinesMark::of(l);
        }
        if let Some(m) = self.marks.last_mut() {
            *m = LinesMark::of(&cx.out.dlq);
        }
        self.counts_mark.copy_from(&cx.out.counts);
    }

    /// Undoes the current record's part of the output.
    fn undo(&self, cx: &mut Cx<'_>) {
        for (m, l) in self.marks.iter().zip(&mut cx.out.sinks) {
            m.restore(l);
        }
        if let Some(m) = self.marks.last() {
            m.restore(&mut cx.out.dlq);
        }
        cx.out.counts.copy_from(&self.counts_mark);
    }

    /// One record through parse, validate, transforms and routes.
    fn record(
        &mut self,
        raw: &RawRecord,
        cx: &mut Cx<'_>,
        batch_time: &rhai::ImmutableString,
    ) -> Result<(), Fatal> {
        // The tree is the worker's, reused; it is read while the worker runs.
        let mut tree = std::mem::take(&mut self.tree);
        let done = self.record_in(raw, cx, batch_time, &mut tree);
        self.tree = tree;
        done
    }

    /// [`record`](Self::record), parsing into `tree`.
    fn record_in(
        &mut self,
        raw: &RawRecord,
        cx: &mut Cx<'_>,
        batch_time: &rhai::ImmutableString,
        tree: &mut Tree,
    ) -> Result<(), Fatal> {
        let built = cx.built;
        cx.fan_out.clone_from(&raw.fan_out);
        if let Some(reason) = &raw.rejected {
            cx.dead_letter(raw, Stage::Decode, None, reason.clone(), None);
            return Ok(());
        }
        if raw.position.source == "aggregate" && built.source_type != "aggregate" {
            // A window's dead-lettered record, read back by a redrive: the
            // source's stages are not its own.
            cx.dead_letter(
                raw,
                Stage::Aggregate,
                None,
                "a window's record is not run through the pipeline again: deliver it from its dead letter (its `data` is the record)".into(),
                None,
            );
            return Ok(());
        }
        self.at = (Stage::Parse, None);
        let Some(text) = self.parse(raw, cx, tree) else {
            return Ok(());
        };
        let value = tree.root(text);
        self.at = (Stage::Validate, None);
        if let Some((validator, on_invalid)) = &built.validator
            && let Err(invalid) = validator.validate(value)
        {
            match on_invalid {
                OnInvalid::Dlq => {
                    let text = if invalid.instance_path.is_empty() {
                        invalid.message
                    } else {
                        format!("{} at {}", invalid.message, invalid.instance_path)
                    };
                    cx.dead_letter(
                        raw,
                        Stage::Validate,
                        None,
                        text,
                        Some(invalid.instance_path),
                    );
                }
                OnInvalid::Drop => cx.out.counts.dropped_invalid += 1,
                OnInvalid::Fail => {
                    return Err(Fatal(format!(
                        "{} failed validation and `on_invalid` is `fail`: {} at {}",
                        describe(raw),
                        invalid.message,
                        if invalid.instance_path.is_empty() {
                            "/"
                        } else {
                            &invalid.instance_path
                        }
                    )));
                }
            }
            return Ok(());
        }
        self.at = (Stage::Transform, None);
        self.scope.begin(Meta::new(
            &raw.position,
            raw.attributes.clone(),
            batch_time.clone(),
        ));
        // The limits count what scripts build beyond the record they were given.
        let fast = self.fast
            && raw.fan_out.is_empty()
            && matches!(value.node(), crate::record::tree::Node::Object { .. });
        let (record, from) = if fast {
            transform::size_limits_for(&mut self.engine, &built.limits, convert::tree_sizes(value));
            transform::start_budget();
            match self.fast(value, cx) {
                None => return Ok(()),
                Some(from) => (convert::tree_to_dynamic_with(value, &self.written), from),
            }
        } else {
            let mut sizes = convert::Sizes::default();
            let record = convert::tree_to_dynamic_sized(value, &mut sizes);
            transform::size_limits_for(&mut self.engine, &built.limits, sizes);
            transform::start_budget();
            (record, 0)
        };
        // Each record with the fan-outs it came out of: which of the records
        // an array made it is (for a redrive of it alone).
        let mut records: Vec<(Dynamic, Vec<Cut>)> = vec![(record, Vec::new())];
        // A redriven record that failed after a fan-out replays only the
        // one record it was: these cuts, in order, pick it out again.
        let mut pending: &[Cut] = &raw.fan_out;
        for (i, ast) in self.scripts.iter().enumerate().skip(from) {
            self.at = (Stage::Transform, Some(i));
            let name = built.transforms[i].0.as_str();
            let mut next = Vec::with_capacity(records.len());
            for (record, path) in records {
                self.scope.set(record);
                let native = self.natives[i]
                    .as_ref()
                    .and_then(|n| self.scope.run_native(n, &self.engine, &built.limits));
                let result = match native {
                    Some(value) => Ok(value),
                    None => self.scope.eval(&self.engine, ast),
                };
                match result {
                    Ok(r) if r.is::<KeepRecord>() => next.push((self.scope.take(), path)),
                    Ok(r) if r.is_unit() => cx.out.counts.filtered += 1,
                    Ok(r) if r.is_array() => {
                        let items = r.cast::<rhai::Array>();
                        let n = items.len();
                        let replay = pending
                            .split_first()
                            .filter(|(c, _)| c.transform.as_deref() == Some(name));
                        if let Some((cut, rest)) = replay {
                            pending = rest;
                            let index = cut.index as usize;
                            if n != cut.of as usize || index >= n {
                                let text = format!(
                                    "the redriven record now makes {n} records at transform `{name}`, not {} as when it was dead-lettered: it is dead-lettered again whole, so that none of them is delivered twice",
                                    cut.of
                                );
                                cx.fan_out.clone_from(&raw.fan_out);
                                cx.dead_letter(raw, Stage::Transform, Some(name), text, None);
                                continue;
                            }
                            let mut path = path;
                            path.push(cut.clone());
                            next.extend(items.into_iter().nth(index).map(|item| (item, path)));
                            continue;
                        }
                        match n {
                            0 => cx.out.counts.filtered += 1,
                            n => cx.out.counts.fanned_out += n as u64 - 1,
                        }
                        if n == 1 {
                            next.extend(items.into_iter().next().map(|item| (item, path)));
                            continue;
                        }
                        for (k, item) in items.into_iter().enumerate() {
                            let mut p = path.clone();
                            p.push(Cut {
                                transform: Some(name.to_owned()),
                                index: u32::try_from(k).unwrap_or(u32::MAX),
                                of: u32::try_from(n).unwrap_or(u32::MAX),
                            });
                            next.push((item, p));
                        }
                    }
                    Ok(r) => next.push((r, path)),
                    Err(e) => {
                        // Which record of a fan-out it is: a redrive runs only it.
                        cx.fan_out = path;
                        if let Some(reason) = crate::lookup::failure(&e) {
                            cx.dead_letter(raw, Stage::Lookup, Some(name), reason, None);
                            continue;
                        }
                        let text = transform::error_text(
                            &e,
                            &built.limits,
                            &built.transforms[i].1,
                            built.transform_places.get(i),
                        );
                        cx.dead_letter(raw, Stage::Transform, Some(name), text, None);
                    }
                }
            }
            records = next;
        }
        if let Some(cut) = pending.first() {
            // The fan-out the record was cut from did not happen again.
            if let Some(made) = (records.len() as u64).checked_sub(1) {
                cx.out.counts.fanned_out = cx.out.counts.fanned_out.saturating_sub(made);
                let text = format!(
                    "the redriven record was one of {} records that transform `{}` made, but it made none this time: it is dead-lettered again whole, so that none of them is delivered twice",
                    cut.of,
                    cut.transform.as_deref().unwrap_or_default()
                );
                cx.fan_out.clone_from(&raw.fan_out);
                cx.dead_letter(raw, Stage::Transform, cut.transform.as_deref(), text, None);
            }
            return Ok(());
        }
        for (record, path) in records {
            cx.fan_out = path;
            self.route(raw, record, cx);
        }
        Ok(())
    }

    /// Parses the record into the worker's tree; its text, or `None` when
    /// it was dead-lettered.
    fn parse<'r>(
        &mut self,
        raw: &'r RawRecord,
        cx: &mut Cx<'_>,
        tree: &mut Tree,
    ) -> Option<&'r str> {
        let text = match std::str::from_utf8(&raw.data) {
            Ok(t) => t,
            Err(e) => {
                let reason = format!(
                    "record is not valid UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                );
                cx.dead_letter(raw, Stage::Parse, None, reason, None);
                return None;
            }
        };
        match self.built.format {
            Format::Text => tree.string(text),
            Format::Json => {
                if let Err(e) = tree.parse(text) {
                    cx.dead_letter(raw, Stage::Parse, None, format!("invalid JSON: {e}"), None);
                    return None;
                }
            }
        }
        Some(text)
    }

    fn route(&mut self, raw: &RawRecord, record: Dynamic, cx: &mut Cx<'_>) {
        let built = cx.built;
        self.at = (Stage::Route, None);
        let mut targets: Vec<usize> = Vec::new();
        // The record goes into the scripts' scope only for a condition that
        // is not run natively.
        let mut record = record;
        let mut in_scope = false;
        for (i, ((_, sinks), cond)) in built.routes.iter().zip(&self.conditions).enumerate() {
            let take = match cond {
                None => true,
                Some((ast, native)) => {
                    let answer = native
                        .as_ref()
                        .filter(|_| !in_scope)
                        .and_then(|n| n.eval(&record));
                    match answer {
                        Some(b) => b,
                        None => {
                            if !in_scope {
                                self.scope
                                    .set(std::mem::replace(&mut record, Dynamic::UNIT));
                                in_scope = true;
                            }
                            match condition(&mut self.scope, &self.engine, i, ast, raw, cx) {
                                Some(b) => b,
                                // Dead-lettered.
                                None => return,
                            }
                        }
                    }
                }
            };
            if take {
                targets.extend(sinks);
            }
        }
        let mut record = if in_scope { self.scope.take() } else { record };
        let contribution = match &built.aggregate {
            None => None,
            Some((a, _)) => {
                self.at = (Stage::Aggregate, None);
                let value = serde_json::to_value(&record).unwrap_or_default();
                match a.contribution(&value, cx.batch_time_ms) {
                    Ok(c) => Some(c),
                    Err(why) => {
                        cx.dead_letter(raw, Stage::Aggregate, None, why, None);
                        return;
                    }
                }
            }
        };
        if targets.is_empty()
            && let Some(c) = contribution
        {
            // Into the aggregate only; with `dedup:`, with a key too.
            let id = match &built.dedup {
                None => None,
                Some(_) => {
                    let Ok(key) = self.dedup_key(raw, &mut record, cx) else {
                        return;
                    };
                    cx.out.dedup_keys.extend(key);
                    cx.routed += 1;
                    Some(cx.routed - 1)
                }
            };
            let cuts = cx.fan_out.clone();
            cx.out.contributions.push(Taken {
                contribution: c,
                raw: cx.raw_index as u32,
                routed: false,
                cuts,
                id,
            });
            cx.out.counts.aggregated += 1;
            return;
        }
        if targets.is_empty() {
            match built.unrouted {
                Unrouted::Dlq => cx.dead_letter(
                    raw,
                    Stage::Route,
                    None,
                    "no route matched the record".into(),
                    None,
                ),
                Unrouted::Drop => cx.out.counts.unrouted += 1,
            }
            return;
        }
        targets.sort_unstable();
        targets.dedup();
        let Ok(key) = self.dedup_key(raw, &mut record, cx) else {
            return;
        };
        // Writing the record is the last part of its transforms.
        let last = built.transforms.len().checked_sub(1);
        self.at = (Stage::Transform, last);
        self.scratch.clear();
        if let Err(e) = convert::write_json(&mut self.scratch, &record) {
            let text = format!("the transformed record cannot be written as JSON: {e}");
            let step = last.map(|i| built.transforms[i].0.as_str());
            cx.dead_letter(raw, Stage::Transform, step, text, None);
            return;
        }
        self.scratch.push(b'\n');
        self.at = (Stage::Route, None);
        self.deliver(
            &targets,
            &|field| crate::sinks::field_text(&record, field),
            key,
            cx,
        );
        if let Some(c) = contribution {
            let id = built.dedup.as_ref().map(|_| cx.routed - 1);
            cx.out.contributions.push(Taken {
                contribution: c,
                raw: cx.raw_index as u32,
                routed: true,
                cuts: Vec::new(),
                id,
            });
        }
    }

    /// The record's deduplication key (`None` without `dedup:`); `Err` when
    /// it has none, and was dead-lettered.
    fn dedup_key(
        &mut self,
        raw: &RawRecord,
        record: &mut Dynamic,
        cx: &mut Cx<'_>,
    ) -> Result<Option<String>, ()> {
        let Some(how) = &cx.built.dedup else {
            return Ok(None);
        };
        self.at = (Stage::Dedup, None);
        let key = match (how, &self.dedup_key) {
            (crate::dedup::Key::Path(path), _) => Ok(crate::sinks::field_text(record, path)),
            (crate::dedup::Key::Expr(src), Some(ast)) => {
                self.scope.set(std::mem::take(record));
                let value = self.scope.eval(&self.engine, ast);
                *record = self.scope.take();
                value
                    .map(|v| crate::sinks::field_text(&v, ""))
                    .map_err(|e| {
                        format!(
                            "the dedup key `{src}` failed: {}",
                            transform::error_text(&e, &cx.built.limits, src, None)
                        )
                    })
            }
            (crate::dedup::Key::Expr(_), None) => Ok(String::new()),
        };
        let text = match key {
            Ok(k) if !k.is_empty() => {
                self.at = (Stage::Route, None);
                return Ok(Some(k));
            }
            Ok(_) => {
                let written = match how {
                    crate::dedup::Key::Path(p) | crate::dedup::Key::Expr(p) => p,
                };
                format!("the record has no dedup key: `{written}` is missing, `()` or empty")
            }
            Err(text) => text,
        };
        cx.dead_letter(raw, Stage::Dedup, None, text, None);
        Err(())
    }

    /// Hands the record written in the scratch buffer to the `targets`
    /// sinks, with the record's fields the sinks need (`field` reads one).
    fn deliver(
        &self,
        targets: &[usize],
        field: &dyn Fn(&str) -> String,
        key: Option<String>,
        cx: &mut Cx<'_>,
    ) {
        let built = cx.built;
        let id = cx.routed;
        cx.routed += 1;
        if let Some(key) = key {
            cx.out.dedup_keys.push(key);
        }
        if !cx.fan_out.is_empty() {
            cx.out.fan_out.insert(id, cx.fan_out.clone());
        }
        for &t in targets {
            let sink = &mut cx.out.sinks[t];
            sink.push(&self.scratch, cx.raw_index, id);
            for path in &built.sink_keys[t] {
                sink.keys.push(field(path));
            }
            cx.out.counts.per_sink[t] += 1;
        }
        cx.out.counts.delivered += 1;
    }

    /// A record whose transforms all run natively, carried through them,
    /// its routes and its sinks as its parsed tree with the fields the
    /// transforms wrote over it, never built into a Rhai map. `None` when
    /// the record was delivered or filtered; `Some(i)` when it goes on as a
    /// Rhai map from transform `i` (`i` = the number of transforms: from its
    /// routes) because something needs the interpreter: a script the native
    /// run left to it, a condition it cannot answer, no route, or a value
    /// JSON cannot hold. The interpreter then gives the same
    /// result it would have given from the start.
    fn fast(&mut self, root: At<'_>, cx: &mut Cx<'_>) -> Option<usize> {
        let built = cx.built;
        self.written.clear();
        for (i, native) in self.natives.iter().enumerate() {
            self.at = (Stage::Transform, Some(i));
            let Some(native) = native else {
                return Some(i);
            };
            let outcome = self.scope.run_native_tree(
                native,
                root,
                &mut self.written,
                &self.engine,
                &built.limits,
            );
            match outcome {
                Some(native::Outcome::Keep) => {}
                // `()`: filtered.
                Some(native::Outcome::Value(_)) => {
                    cx.out.counts.filtered += 1;
                    return None;
                }
                None => return Some(i),
            }
        }
        let all = self.natives.len();
        if built.aggregate.is_some() {
            // The aggregate reads the record as JSON: the interpreter's way.
            return Some(all);
        }
        self.at = (Stage::Route, None);
        let mut targets: Vec<usize> = Vec::new();
        for ((_, sinks), cond) in built.routes.iter().zip(&self.conditions) {
            let take = match cond {
                None => true,
                Some((_, Some(native))) => match native.eval_tree(root, &self.written) {
                    Some(b) => b,
                    None => return Some(all),
                },
                Some((_, None)) => return Some(all),
            };
            if take {
                targets.extend(sinks);
            }
        }
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            return Some(all);
        }
        // A key that is not a field path, or is missing, takes the
        // interpreter's way (which dead-letters a record without one).
        let key = match &built.dedup {
            None => None,
            Some(crate::dedup::Key::Path(path)) => {
                let key = crate::sinks::tree_field_text(root, &self.written, path);
                if key.is_empty() {
                    return Some(all);
                }
                Some(key)
            }
            Some(crate::dedup::Key::Expr(_)) => return Some(all),
        };
        self.at = (Stage::Transform, all.checked_sub(1));
        self.scratch.clear();
        if convert::write_tree_json(&mut self.scratch, root, &self.written).is_err() {
            return Some(all);
        }
        self.scratch.push(b'\n');
        self.at = (Stage::Route, None);
        let written = &self.written;
        self.deliver(
            &targets,
            &|path| crate::sinks::tree_field_text(root, written, path),
            key,
            cx,
        );
        None
    }
}

/// Runs route `i`'s condition script on the record in the scope; `None`
/// when it failed or gave no bool, and the record was dead-lettered.
fn condition(
    scope: &mut RecordScope,
    engine: &Engine,
    i: usize,
    ast: &AST,
    raw: &RawRecord,
    cx: &mut Cx<'_>,
) -> Option<bool> {
    let built = cx.built;
    let text = match scope.eval(engine, ast) {
        Ok(v) => match v.as_bool() {
            Ok(b) => return Some(b),
            Err(type_name) => {
                format!(
                    "condition of route #{} returned {type_name}, not a bool",
                    i + 1
                )
            }
        },
        Err(e) => {
            if let Some(reason) = crate::lookup::failure(&e) {
                cx.dead_letter(raw, Stage::Lookup, None, reason, None);
                return None;
            }
            format!(
                "condition of route #{} failed: {}",
                i + 1,
                transform::error_text(
                    &e,
                    &built.limits,
                    built.routes[i].0.as_deref().unwrap_or_default(),
                    built.route_places.get(i),
                )
            )
        }
    };
    cx.dead_letter(raw, Stage::Route, None, text, None);
    None
}

/// Where a record came from, for messages.
fn describe(raw: &RawRecord) -> String {
    match (&raw.position.file, raw.position.line) {
        (Some(f), Some(l)) => format!("the record at {f}:{l}"),
        (None, Some(l)) => format!("the record at line {l}"),
        _ => "a record".into(),
    }
}

struct Cx<'a> {
    built: &'a Built,
    out: &'a mut BatchOutput,
    batch_time: &'a str,
    /// `batch_time` in milliseconds since 1970 (processing time).
    batch_time_ms: i64,
    /// Index of the current record in the batch.
    raw_index: usize,
    /// Routed records so far.
    routed: u32,
    /// The record in progress's cuts, for its envelopes ([`Cut`]).
    fan_out: Vec<Cut>,
}

impl Cx<'_> {
    fn dead_letter(
        &mut self,
        raw: &RawRecord,
        stage: Stage,
        step: Option<&str>,
        error: String,
        path: Option<String>,
    ) {
        let (data, encoding) = encode_data(&raw.data);
        let env = Envelope {
            pipeline: &self.built.name,
            stage,
            step,
            error: crate::delivery::envelope::clip_error(error),
            instance_path: path,
            data,
            encoding,
            source: &raw.position,
            attempts: 1,
            timestamp: self.batch_time,
            fan_out: &self.fan_out,
        };
        push_envelope(&mut self.out.dlq, &env, self.raw_index);
        self.out.counts.dead_letter(stage);
    }
}

/// Appends an envelope to the DLQ lines of a batch.
pub fn push_envelope(dlq: &mut SinkLines, env: &Envelope<'_>, raw_index: usize) {
    let mut line = serde_json::to_vec(env).unwrap_or_default();
    // An envelope holds only strings and numbers: serializing it cannot fail.
    line.push(b'\n');
    let id = dlq.count as u32;
    dlq.push(&line, raw_index, id);
}
