//! Lambda mode: the same binary, as the `bootstrap` of a `provided.al2023`
//! function behind a Kinesis, DynamoDB Streams, SQS or Kafka event source mapping.
//!
//! The pipeline named by `SLUICE_PIPELINE` is loaded, checked and compiled
//! once, during init; a broken pipeline fails the init with the diagnostics
//! `sluice check` prints. Each invocation turns the event into records, runs
//! them through the pipeline in chunks, writes every sink buffer out, and
//! answers with the records the event source mapping must deliver again
//! (`batchItemFailures`, see [`events::EventSource::response`]). A record that was
//! dead-lettered counts as handled; one that a sink or the DLQ did not accept
//! after retries is reported failed. When the invocation's time left falls
//! below the safety margin, no further chunk is started and its records are
//! reported failed too.

pub mod events;

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation, Runtime, Service, service_fn};
use serde_json::Value;

use crate::aws::Clients;
use crate::config::{self, Env, LoadError};
use crate::diagnostics::render::{self, Format};
use crate::engine::commit::{Failure, Outputs};
use crate::engine::run::now_rfc3339;
use crate::engine::{BatchOutput, Built, Fatal, Worker};
use crate::metrics::Counts;
use crate::record::RawRecord;
use crate::sources::Ack;
use crate::sources::event::{Outcome, Returned};
use events::Kind;

/// Records processed at a time at most; the deadline is checked before each chunk.
const CHUNK: usize = 500;

/// The smallest chunk a batch is split into to keep every worker busy.
const MIN_CHUNK: usize = 16;

/// Default time kept free before the invocation's deadline.
const DEFAULT_MARGIN: Duration = Duration::from_millis(500);

/// Whether the process runs inside AWS Lambda (or its emulator).
pub fn detected() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves invocations until the runtime stops; returns the exit code.
pub fn main() -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let state = match rt.block_on(State::init()) {
        Ok(s) => Arc::new(tokio::sync::Mutex::new(s)),
        Err(message) => {
            // The init fails; the message is in the function's log.
            crate::err!("{message}");
            return 1;
        }
    };
    let handler = service_fn(move |event: LambdaEvent<Payload>| {
        let state = Arc::clone(&state);
        async move { state.lock().await.handle(event).await }
    });
    // As `lambda_runtime::run` builds it, with the event kept for the handler.
    let runtime = Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(KeepEvent);
    let served = rt.block_on(runtime.run());
    match served {
        Ok(()) => 0,
        Err(e) => {
            crate::errln!("error: {e}");
            1
        }
    }
}

/// An invocation's event, as the Runtime API sent it. [`KeepEvent`] takes
/// it from the invocation before the Runtime API client deserializes it, so
/// that it is read once, by the source's decoder, straight from the
/// client's buffer: neither scanned to find its end nor copied first.
pub struct Payload(Bytes);

/// The event [`KeepEvent`] took, until [`Payload`] is deserialized from its
/// placeholder. Invocations come one at a time.
static EVENT: Mutex<Option<Bytes>> = Mutex::new(None);

/// What [`KeepEvent`] leaves for the client to deserialize.
const PLACEHOLDER: &[u8] = b"null";

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        let event = EVENT.lock().unwrap_or_else(PoisonError::into_inner).take();
        event
            .map(Payload)
            .ok_or_else(|| serde::de::Error::custom("the invocation's event was not kept"))
    }
}

/// Moves each invocation's event out of the invocation, for [`Payload`].
struct KeepEvent;

impl<S> Layer<S> for KeepEvent {
    type Service = KeptEvent<S>;

    fn layer(&self, inner: S) -> KeptEvent<S> {
        KeptEvent(inner)
    }
}

/// The service of [`KeepEvent`].
struct KeptEvent<S>(S);

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for KeptEvent<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> S::Future {
        let event = std::mem::replace(&mut invocation.body, Bytes::from_static(PLACEHOLDER));
        *EVENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(event);
        self.0.call(invocation)
    }
}

/// What init prepared, kept across invocations.
struct State {
    built: Arc<Built>,
    metrics: crate::metrics::emf::Config,
    kind: Kind,
    outputs: Outputs,
    /// One per vCPU (or `SLUICE_WORKERS`).
    workers: Vec<WorkerThread>,
    margin: Duration,
    /// The pipeline's source.
    source: crate::sources::Config,
    /// The sink whose records are the invocation's answer (`firehose_response`).
    answer_sink: Option<(usize, crate::sinks::Config)>,
    /// The DynamoDB lookups' cache hits and misses before this invocation.
    lookups_before: Vec<(u64, u64)>,
    /// With `aggregate:`, the worker that routes the records a window makes.
    aggregate_worker: Option<WorkerThread>,
}

impl State {
    async fn init() -> Result<State, String> {
        let path = std::env::var("SLUICE_PIPELINE").map_err(|_| {
            "error: SLUICE_PIPELINE is not set: set it to the pipeline file's path in the deployment package, or to an s3://bucket/key URL\n"
                .to_owned()
        })?;
        let path = match path.strip_prefix("s3://") {
            Some(url) => crate::config::fetch::pipeline(url)
                .await
                .map_err(|e| format!("error: SLUICE_PIPELINE {path}: {e}\n"))?,
            None => PathBuf::from(path),
        };
        let loaded = config::load(&path, &Env::process()).map_err(|e| match e {
            LoadError::Unreadable(_) | LoadError::Invalid(_) => {
                render::text(e.diagnostics(), Format::Human)
            }
        })?;
        if !loaded.diagnostics.list.is_empty() {
            crate::err!("{}", render::text(&loaded.diagnostics, Format::Human));
        }
        let p = &loaded.pipeline;
        if let Some(why) = p.refusal(crate::sources::RunMode::Lambda) {
            return Err(format!("error: {why}\n"));
        }
        let kind = Kind::of(&p.source).ok_or_else(|| {
            format!(
                "error: a `{}` source has no Lambda event decoder\n",
                p.source.type_name()
            )
        })?;
        let built = Arc::new(Built::new(&loaded).map_err(|e| format!("error: {e}\n"))?);
        let dlq = p.dlq.as_sink();
        let aws = if p.outputs_use_aws() {
            Some(Arc::new(
                Clients::load(&p.aws, p.retry.attempt_timeout.0).await,
            ))
        } else {
            None
        };
        let outputs = crate::engine::open::open_outputs(
            &loaded,
            &dlq,
            crate::engine::open::Mode::Source,
            aws,
        )
        .await
        .map_err(|e| format!("error: {e}\n"))?;
        let margin = std::env::var("SLUICE_DEADLINE_MARGIN")
            .ok()
            .and_then(|m| humantime::parse_duration(&m).ok())
            .unwrap_or(DEFAULT_MARGIN);
        let workers = match std::env::var("SLUICE_WORKERS") {
            Ok(n) => n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("error: SLUICE_WORKERS is `{n}`, not a number of workers (1 or more)\n")
            })?,
            Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let workers =
            WorkerThread::start_many(&built, workers).map_err(|e| format!("error: {e}\n"))?;
        let aggregate_worker = match &built.aggregate {
            Some((_, outputs)) => Some(WorkerThread::start(Arc::clone(outputs)).map_err(|e| {
                format!(
                    "error: {e}
"
                )
            })?),
            None => None,
        };
        Ok(State {
            aggregate_worker,
            lookups_before: Vec::new(),
            metrics: p.metrics.clone(),
            built,
            kind,
            outputs,
            workers,
            margin,
            answer_sink: p
                .sinks
                .values()
                .enumerate()
                .find(|(_, s)| s.answers())
                .map(|(i, s)| (i, s.clone())),
            source: p.source.clone(),
        })
    }

    async fn handle(&mut self, event: LambdaEvent<Payload>) -> Result<Value, Diagnostic> {
        let LambdaEvent { payload, context } = event;
        let deadline = deadline(context.deadline);
        let request = context.request_id;
        let Payload(event) = payload;
        let parsed = events::parse_bytes(self.kind, &event);
        // The event is not needed once it is records: up to 6 MB less held
        // while they run.
        drop(event);
        let mut batch = match parsed {
            Ok(b) => b,
            Err(events::WrongEvent(e)) => {
                log("ERROR", &request, &e);
                return Err(failure(events::WrongEvent::ERROR_TYPE, e));
            }
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // Arrival times are all written by `rfc3339_millis`, in one width:
        // the earliest is the smallest text.
        let batch_age_ms = batch
            .records
            .iter()
            .filter_map(|r| r.position.arrival_time.as_deref())
            .min()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|t| now_ms.saturating_sub(t.as_millis() as u64));
        // Event records by id, for failures (built at the first).
        let index: OnceCell<HashMap<&str, usize>> = OnceCell::new();
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        let mut dead_lettered: BTreeSet<usize> = BTreeSet::new();
        let mut returned: Vec<Returned> = Vec::new();
        let mark = |failures: Vec<Failure>, failed: &mut BTreeSet<usize>| {
            for f in failures {
                let id = events::item_id(&f.position);
                let index = index.get_or_init(|| {
                    let ids = batch.items.iter().map(|item| item.id.as_str());
                    ids.enumerate().rev().map(|(i, id)| (id, i)).collect()
                });
                if let Some(&i) = id.as_deref().and_then(|id| index.get(id)) {
                    failed.insert(i);
                }
                log("ERROR", &request, &f.reason);
            }
        };
        let mut counts = Counts::new(self.built.sink_names.len());
        if self.built.aggregate.is_some() && batch.window.is_none() {
            return Err(failure(
                "NoWindow",
                "the pipeline aggregates, but the event has no `window`: give the event source mapping `TumblingWindowInSeconds` (`sluice deploy template` does)".into(),
            ));
        }
        // With `aggregate:`, each record's part in its window, by event
        // record; with a script reducer, which can fail on a record, the
        // record too when no route took it (to dead-letter it then).
        let mut contributions: Vec<Contributed> = Vec::new();
        let scripted = self.built.aggregate.as_ref().is_some_and(|(a, _)| {
            a.spec
                .reducers
                .iter()
                .any(|(_, r)| matches!(r, crate::aggregate::reduce::Reducer::Script(_)))
        });
        let records = std::mem::take(&mut batch.records);
        // Once a record of a shard, FIFO message group or Kafka partition
        // failed, the source delivers it and everything after it again: no
        // later record of that unit is started.
        let kind = self.kind;
        let unit = |item: usize| kind.events.ordering_unit(&batch, item);
        let mut stopped: HashSet<&str> = HashSet::new();
        let mut skipped = 0usize;
        // Records written to a sink after an earlier record of their unit
        // failed in the same chunk: they will arrive again (duplicates).
        let mut written_twice = 0usize;
        let mut rest = records.into_iter().enumerate();
        // Chunks run on every worker at once and are committed in order, so
        // sinks see the records in event order. A small batch is split
        // among the workers too.
        let workers = self.workers.len();
        let chunk_size = rest.len().div_ceil(workers).clamp(MIN_CHUNK, CHUNK);
        let mut inflight: VecDeque<(Vec<usize>, Pending)> = VecDeque::new();
        let mut next_worker = 0;
        let mut exhausted = false;
        loop {
            while !exhausted && inflight.len() < workers {
                let mut chunk: Vec<RawRecord> = Vec::with_capacity(chunk_size);
                let mut chunk_items: Vec<usize> = Vec::with_capacity(chunk_size);
                while chunk.len() < chunk_size {
                    let Some((i, r)) = rest.next() else { break };
                    let item = batch.item_of[i];
                    if unit(item).is_some_and(|u| stopped.contains(u)) {
                        failed.insert(item);
                        skipped += 1;
                        continue;
                    }
                    chunk.push(r);
                    chunk_items.push(item);
                }
                if chunk.is_empty() {
                    exhausted = true;
                    break;
                }
                let left = deadline
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                if left < self.margin {
                    // Too close to the deadline to start: these and the rest go back to the source.
                    let n = give_back(&mut failed, &chunk_items, &mut rest, &batch.item_of);
                    log(
                        "WARN",
                        &request,
                        &format!(
                            "{n} records were not started: {} ms left is below the {} ms margin",
                            left.as_millis(),
                            self.margin.as_millis()
                        ),
                    );
                    exhausted = true;
                    break;
                }
                let pending = self.workers[next_worker].submit(chunk);
                next_worker = (next_worker + 1) % workers;
                inflight.push_back((chunk_items, pending));
            }
            let Some((chunk_items, pending)) = inflight.pop_front() else {
                break;
            };
            let mut out = match pending.wait().await {
                Ok(Ok(out)) => out,
                Ok(Err(Fatal(m))) => {
                    log("ERROR", &request, &m);
                    return Err(failure("RecordStoppedThePipeline", m));
                }
                Err(e) => {
                    // These records, the chunks after them and the rest go
                    // back to the source; a stopped worker is replaced.
                    let mut n = give_back(&mut failed, &chunk_items, &mut rest, &batch.item_of);
                    for (items, _) in inflight.drain(..) {
                        n += items.len();
                        failed.extend(items);
                    }
                    log(
                        "ERROR",
                        &request,
                        &format!("{e}: {n} records will be delivered again"),
                    );
                    for w in &mut self.workers {
                        if !w.alive() {
                            *w = WorkerThread::start(Arc::clone(&self.built))
                                .map_err(|e| failure("WorkerFailed", e))?;
                        }
                    }
                    break;
                }
            };
            // A chunk processed while an earlier one of its shard, message
            // group or partition failed: when every record of it is of a
            // stopped unit, none is written (all are delivered again).
            if chunk_items
                .iter()
                .all(|&item| unit(item).is_some_and(|u| stopped.contains(u)))
            {
                failed.extend(chunk_items.iter().copied());
                skipped += chunk_items.len();
                continue;
            }
            // What the answer needs: the records routed to it, and which
            // event records the DLQ took a record of.
            dead_lettered.extend(out.dlq.raw.iter().map(|&r| chunk_items[r as usize]));
            contributions.extend(out.contributions.drain(..).map(|t| {
                let kept =
                    (scripted && !t.routed).then(|| (out.raw[t.raw as usize].clone(), t.cuts));
                (chunk_items[t.raw as usize], t.contribution, kept)
            }));
            // Retries stop in time to answer before the margin.
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            self.outputs.retry_until(Some(
                std::time::Instant::now() + left.saturating_sub(self.margin),
            ));
            let failures = self
                .outputs
                .commit(&mut out, Ack::None, &self.built.sink_keys)
                .await;
            mark(failures, &mut failed);
            // After the commit, which took duplicates out.
            if let Some((a, sink)) = &self.answer_sink {
                let lines = &out.sinks[*a];
                let n = self.built.sink_keys[*a].len();
                for j in 0..lines.ends.len() {
                    let mut r = sink.answer(lines.line(j), &lines.keys[j * n..(j + 1) * n]);
                    r.item = chunk_items[lines.raw[j] as usize];
                    returned.push(r);
                }
            }
            counts.add(&out.counts);
            let mut failed_units: HashSet<&str> = HashSet::new();
            for &item in &chunk_items {
                let Some(u) = unit(item) else { continue };
                if failed.contains(&item) {
                    failed_units.insert(u);
                } else if failed_units.contains(u) || stopped.contains(u) {
                    written_twice += 1;
                }
            }
            stopped.extend(failed_units);
        }
        if skipped > 0 || written_twice > 0 {
            log(
                "WARN",
                &request,
                &format!(
                    "after a failed record: {skipped} later records of its shard, message group or partition were not started, and {written_twice} were already written and will be written again when the source delivers them again"
                ),
            );
        }
        // The window's groups so far: the state for its next invocation, or,
        // at its last, its records, delivered before the answer.
        let built = Arc::clone(&self.built);
        let state = match (&batch.window, &built.aggregate) {
            (Some(window), Some((aggregate, _))) => Some(
                self.window(
                    window,
                    &aggregate.spec,
                    &contributions,
                    &failed,
                    &mut counts,
                )
                .await
                .map_err(|e| {
                    log("ERROR", &request, &e);
                    failure("AggregateNotDelivered", e)
                })?,
            ),
            _ => None,
        };
        // Every sink buffer is written before the invocation returns.
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        self.outputs.retry_until(Some(
            std::time::Instant::now() + left.saturating_sub(self.margin),
        ));
        if let Err(failures) = self.outputs.flush_buffers(true, &mut counts).await {
            mark(failures, &mut failed);
        }
        if let Err(e) = self.outputs.sync().await {
            // What the local files hold is not known to be durable: every
            // record goes back to the source.
            log(
                "ERROR",
                &request,
                &format!("{e}: every record of the batch will be delivered again"),
            );
            failed.extend(0..batch.items.len());
            // Their keys are not remembered as delivered.
            if let Some(d) = &mut self.outputs.dedup {
                d.claims.abandon();
            }
        }
        let outcome = Outcome {
            failed: &failed,
            dead_lettered: &dead_lettered,
            returned: &returned,
            source: &self.source,
            state: state.as_ref(),
        };
        let response = self.kind.events.response(&batch, &outcome);
        // Records the source delivers again.
        let retried = self.kind.events.redelivered(&batch, &failed);
        let sink_stats = std::mem::replace(
            &mut self.outputs.sink_stats,
            vec![Default::default(); self.built.sink_names.len()],
        );
        let dlq_stats = std::mem::take(&mut self.outputs.dlq_stats);
        // The lookups' counts are the process's: this invocation's are the difference.
        let stats = self.built.lookups.stats();
        self.lookups_before.resize(stats.len(), (0, 0));
        let lookups: Vec<(&str, u64, u64)> = stats
            .iter()
            .zip(&mut self.lookups_before)
            .map(|((name, hits, misses, _), before)| {
                let now = (hits - before.0, misses - before.1);
                *before = (*hits, *misses);
                (*name, now.0, now.1)
            })
            .collect();
        let report = crate::metrics::emf::Report {
            lookups: &lookups,
            pipeline: &self.built.name,
            counts: &counts,
            failed: retried as u64,
            batch_age_ms,
            sinks: &self.built.sink_names,
            sink_stats: &sink_stats,
            dlq_stats: &dlq_stats,
            timestamp_ms: now_ms,
            dedup: self.built.dedup.is_some(),
        };
        let mut out = std::io::stdout().lock();
        for line in crate::metrics::emf::lines(&self.metrics, &report) {
            let _ = writeln!(out, "{}", crate::secrets::redact(&line));
        }
        let _ = out.flush();
        response.map_err(|m| {
            log("ERROR", &request, &m);
            failure("RecordsNotDelivered", m)
        })
    }
}

/// A record's part in the mapping's window: its event record, its part,
/// and, when a script reducer may refuse it and no route took it, the
/// record and its place in a fan-out, to dead-letter it then.
type Contributed = (
    usize,
    crate::aggregate::window::Contribution,
    Option<(RawRecord, Vec<crate::record::Cut>)>,
);

/// Reports a chunk not processed and every record after it as failed (the
/// source delivers them again); how many records that is.
fn give_back(
    failed: &mut BTreeSet<usize>,
    chunk_items: &[usize],
    rest: &mut impl ExactSizeIterator<Item = (usize, RawRecord)>,
    item_of: &[usize],
) -> usize {
    let n = chunk_items.len() + rest.len();
    failed.extend(chunk_items.iter().copied());
    failed.extend(rest.map(|(i, _)| item_of[i]));
    n
}

impl State {
    /// Adds the invocation's records to the mapping window's groups (only
    /// those before its first failed record: the mapping delivers that one
    /// and the rest again), and gives the state for the window's next
    /// invocation. At the window's last invocation (or when the state would
    /// pass Lambda's 1 MB), the groups are emitted as records and delivered
    /// first, and the state is empty; when they cannot all be delivered,
    /// the invocation fails, so that the mapping hands the same records and
    /// state again.
    async fn window(
        &mut self,
        window: &crate::sources::event::MappingWindow,
        spec: &crate::aggregate::window::Spec,
        contributions: &[Contributed],
        failed: &BTreeSet<usize>,
        counts: &mut Counts,
    ) -> Result<serde_json::Value, String> {
        use crate::aggregate::esm::{Groups, MAX_STATE_BYTES};
        let mut groups = Groups::from_state(spec, &window.state)?;
        let first_failed = failed.first().copied().unwrap_or(usize::MAX);
        let n = self.built.sink_names.len();
        let mut out = BatchOutput {
            sinks: vec![Default::default(); n],
            counts: Counts::new(n),
            batch_time: now_rfc3339(),
            ..BatchOutput::default()
        };
        for (_, c, kept) in contributions
            .iter()
            .filter(|(item, _, _)| *item < first_failed)
        {
            let Err(why) = groups.add(c) else {
                continue;
            };
            // A script reducer failed on the record: dead-lettered when no
            // route took it; else it was delivered and is left out.
            if let Some((raw, cuts)) = kept {
                crate::engine::aggregate::dead_letter_refused(
                    &mut out,
                    &self.built.name,
                    raw.clone(),
                    cuts,
                    why,
                );
                counts.aggregated -= 1;
            }
        }
        let state = groups.to_state();
        let full = state.to_string().len() > MAX_STATE_BYTES;
        let last = window.final_invoke || window.terminated_early;
        let next_state = match (last || full, groups.is_empty()) {
            (false, _) => state,
            (true, true) => serde_json::json!({}),
            (true, false) => {
                // After an early emission, the window's next one is its next part.
                let next = if last {
                    serde_json::json!({})
                } else {
                    groups.emptied()
                };
                let records = groups.emit(window.start_ms, window.end_ms);
                let name: Arc<str> = self.built.aggregate.as_ref().map_or_else(
                    || Arc::from("aggregate"),
                    |(a, _)| Arc::from(a.name.as_str()),
                );
                let shard = window.shard.as_deref().map(Arc::from);
                let (raws, unfinished) =
                    crate::engine::aggregate::to_route(&name, shard.as_ref(), &records);
                let worker = self
                    .aggregate_worker
                    .as_ref()
                    .ok_or("the aggregate's worker is not running")?;
                let made = worker
                    .submit(raws.clone())
                    .wait()
                    .await?
                    .map_err(|Fatal(m)| m)?;
                crate::engine::aggregate::add_routed(
                    &mut out,
                    &self.built.name,
                    (made, raws),
                    unfinished,
                );
                next
            }
        };
        if out.raw.is_empty() {
            return Ok(next_state);
        }
        let failures = self
            .outputs
            .commit(&mut out, Ack::None, &self.built.sink_keys)
            .await;
        counts.add(&out.counts);
        if let Some(f) = failures.first() {
            return Err(format!(
                "the window's records, or the records a reducer script refused, were not all delivered or dead-lettered ({}): the invocation fails, so that the window's last records and state come again",
                f.reason
            ));
        }
        Ok(next_state)
    }
}

/// A failed invocation's answer: `errorType` is a word, not a Rust type.
fn failure(error_type: &str, message: String) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: crate::secrets::redact_owned(message),
    }
}

/// Writes a structured log line (JSON, with the request id) to standard
/// error, which Lambda sends to CloudWatch Logs.
fn log(level: &str, request_id: &str, message: &str) {
    crate::errln!(
        "{}",
        crate::logs::line_with(level, message, &[("requestId", request_id)])
    );
}

/// The invocation's deadline from `Lambda-Runtime-Deadline-Ms`: milliseconds
/// since 1970. A value before 2001 cannot be that; local emulators send the
/// function's timeout there, so it is taken as milliseconds from now.
fn deadline(ms: u64) -> SystemTime {
    if ms < 1_000_000_000_000 {
        SystemTime::now() + Duration::from_millis(ms)
    } else {
        UNIX_EPOCH + Duration::from_millis(ms)
    }
}

type Answer = Result<Result<BatchOutput, Fatal>, String>;

type Job = (Vec<RawRecord>, tokio::sync::oneshot::Sender<Answer>);

/// A chunk handed to a worker: its output, once the worker is done.
struct Pending(Result<tokio::sync::oneshot::Receiver<Answer>, String>);

impl Pending {
    /// The chunk's output; `Err` when the worker failed outside any one record's work.
    async fn wait(self) -> Answer {
        self.0?
            .await
            .map_err(|_| "the worker thread stopped".to_owned())?
    }
}

/// The pipeline's CPU stages on a thread of their own (a Rhai engine stays
/// on the thread that made it), with a deep stack like `sluice run`'s workers.
/// There is one per vCPU: chunks of a batch run on all of them at once.
///
/// A panic in one record's work dead-letters that record (see
/// [`Worker::process`]); one outside it fails the chunk, and the worker is
/// built afresh on the same thread. Should the thread itself stop, the
/// handler starts a new one.
struct WorkerThread {
    jobs: std::sync::mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

type Ready = std::sync::mpsc::Receiver<Result<(), String>>;

impl WorkerThread {
    fn start(built: Arc<Built>) -> Result<WorkerThread, String> {
        let (worker, ready) = Self::spawn(built)?;
        Self::ready(&ready)?;
        Ok(worker)
    }

    /// `n` workers, built at the same time. Init waits for the first only:
    /// the others compile the scripts on the other vCPUs meanwhile, and a
    /// chunk handed to one of them waits until it is ready.
    fn start_many(built: &Arc<Built>, n: usize) -> Result<Vec<WorkerThread>, String> {
        let started = (0..n)
            .map(|_| Self::spawn(Arc::clone(built)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut workers = Vec::with_capacity(n);
        for (i, (worker, ready)) in started.into_iter().enumerate() {
            if i == 0 {
                Self::ready(&ready)?;
            }
            workers.push(worker);
        }
        Ok(workers)
    }

    fn ready(ready: &Ready) -> Result<(), String> {
        ready.recv().map_err(|_| "the worker stopped".to_owned())?
    }

    fn spawn(built: Arc<Built>) -> Result<(WorkerThread, Ready), String> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sluice-worker".into())
            .stack_size(256 * 1024 * 1024)
            .spawn(move || {
                let mut worker = match Worker::new(Arc::clone(&built)) {
                    Ok(w) => {
                        let _ = ready_tx.send(Ok(()));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok((batch, done)) = rx.recv() {
                    let time = now_rfc3339();
                    let out = match crate::panics::catch(|| worker.process(&batch, &time)) {
                        Ok(out) => Ok(out.map(|mut out| {
                            out.raw = batch;
                            out
                        })),
                        Err(m) => {
                            // Start again from a clean worker (it compiled once already).
                            if let Ok(w) = Worker::new(Arc::clone(&built)) {
                                worker = w;
                            }
                            Err(format!("internal error in the worker: {m}"))
                        }
                    };
                    let _ = done.send(out);
                }
            })
            .map_err(|e| format!("starting the worker failed: {e}"))?;
        Ok((WorkerThread { jobs, thread }, ready_rx))
    }

    /// Whether the worker's thread still runs.
    fn alive(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Hands a chunk to the worker.
    fn submit(&self, batch: Vec<RawRecord>) -> Pending {
        let (tx, rx) = tokio::sync::oneshot::channel();
        Pending(
            self.jobs
                .send((batch, tx))
                .map(|()| rx)
                .map_err(|_| "the worker thread stopped".to_owned()),
        )
    }
}
