//! Leases: how the workers of `sluice daemon` (and `sluice run`, as one
//! more worker) share the shards of a stream.
//!
//! The lease table is the source's checkpoint table: one item per shard,
//! keyed `PIPELINE/STREAM/SHARD`, holding the checkpoint (`sequence_number`,
//! `shard_end` once the closed shard is read to its end), the owner
//! (`lease_owner`), a counter the owner increments on every renewal
//! (`lease_counter`), and the shard's parents (`parent_shards`).
//!
//! Every worker runs the same loop, every third of the failover time:
//!
//! 1. renew its own leases (a conditional write on `lease_owner`: a lease
//!    another worker took is dropped at once, and so is one that could not be
//!    renewed for the failover time);
//! 2. list the shards and create the leases that are missing;
//! 3. take leases that have no owner, or whose counter has not moved for the
//!    failover time (their owner died), up to its fair share: the leases
//!    that may be read, divided by the workers that hold live leases;
//! 4. if still below its share, ask the most loaded worker to hand leases
//!    over: that worker stops reading the shard, waits until what it read is
//!    checkpointed (at most the failover time), and then makes the asking
//!    worker the owner, so the shard moves without records read twice. An
//!    owner declines a request that would leave it fewer leases than the
//!    asker (workers asking at once, each from its own view, may ask for
//!    more than it has to spare); a lease handed over is taken by its new
//!    owner whatever its share.
//!
//! A shard may be read only once each of its parents is read to its end
//! (split and merge), so per-key order holds across resharding. Expiry is
//! judged by each worker's own clock (the counter did not change for the
//! failover time), so clocks need not agree across hosts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::balance;
use crate::aws::Clients;
use crate::delivery::{Error, Policy, error::classify};
use crate::sources::kinesis::{StartPosition, is_arn, stream_name};

/// Attribute names of a lease item.
pub(crate) const OWNER: &str = "lease_owner";
const COUNTER: &str = "lease_counter";
const PARENTS: &str = "parent_shards";
/// The worker that asked for the lease to be handed over to it.
const HANDOFF: &str = "lease_handoff_to";
pub(crate) const SHARD_END: &str = "shard_end";
/// `trim_horizon` on the lease of a child shard (it starts where its parents ended).
pub(crate) const START: &str = "start";

/// How a worker takes part in a group.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This worker's name, unique in the group.
    pub worker: String,
    /// A lease whose counter did not move for this long is free to take.
    pub failover: Duration,
    /// How each call to the lease table and the stream's shard listing is
    /// retried (the pipeline's `retry`).
    pub retry: Policy,
}

impl Settings {
    /// How often leases are renewed and balanced.
    pub fn interval(&self) -> Duration {
        (self.failover / 3).max(Duration::from_millis(100))
    }
}

/// One shard's lease, as read from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The item's key.
    pub key: String,
    /// The shard id.
    pub shard: String,
    /// Who holds it.
    pub owner: Option<String>,
    /// Renewals so far.
    pub counter: u64,
    /// The sequence number of the last record delivered.
    pub checkpoint: Option<String>,
    /// Whether the (closed) shard was read to its end.
    pub shard_end: bool,
    /// The shards it was split or merged from.
    pub parents: Vec<String>,
    /// The worker that asked for it.
    pub handoff_to: Option<String>,
}

impl Lease {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let key = s("shard_key")?;
        let shard = key.rsplit('/').next()?.to_owned();
        Some(Lease {
            shard,
            owner: s(OWNER),
            counter: item
                .get(COUNTER)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            checkpoint: s("sequence_number"),
            handoff_to: s(HANDOFF),
            shard_end: item
                .get(SHARD_END)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            parents: item
                .get(PARENTS)
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
                .unwrap_or_default(),
            key,
        })
    }
}

/// What the coordinator and the reader share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The shards this worker holds and may read.
    owned: Mutex<BTreeSet<String>>,
    /// Once set, no lease is taken any more.
    stopping: AtomicBool,
    /// The last view of the group, for metrics and readiness.
    status: Mutex<Status>,
}

/// The group as this worker last saw it.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// When a pass over the leases last succeeded.
    pub last_pass: Option<Instant>,
    /// Leases per live worker (this one included).
    pub per_worker: BTreeMap<String, usize>,
    /// Leases that may be read now (open, or closed and not yet read to the end, with their parents done).
    pub readable: usize,
    /// Leases waiting for their parents.
    pub waiting: usize,
    /// Shards read to their end.
    pub finished: usize,
}

impl Shared {
    /// The shards this worker holds.
    pub fn owned(&self) -> BTreeSet<String> {
        self.owned.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Whether this worker holds `shard`.
    pub fn holds(&self, shard: &str) -> bool {
        self.owned.lock().is_ok_and(|o| o.contains(shard))
    }

    /// The last view of the group.
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Takes no more leases (shutdown has begun).
    pub fn stop_taking(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn set_owned(&self, f: impl FnOnce(&mut BTreeSet<String>)) {
        if let Ok(mut o) = self.owned.lock() {
            f(&mut o);
        }
    }
}

/// The stream whose shards are leased.
#[derive(Debug, Clone)]
pub enum Stream {
    /// A Kinesis data stream.
    Kinesis(crate::sources::kinesis::Config),
    /// A DynamoDB table's stream (shards split, never merge, and close every few hours).
    DynamodbStreams {
        /// The source.
        config: crate::sources::dynamodb_streams::Config,
        /// The stream's ARN.
        arn: String,
    },
}

impl Stream {
    /// The lease table (the source's checkpoint table).
    fn table(&self) -> &str {
        match self {
            Stream::Kinesis(c) => &c.checkpoint_table,
            Stream::DynamodbStreams { config, .. } => &config.checkpoint_table,
        }
    }

    /// The middle of the lease keys: the stream name, or the table name.
    fn name(&self) -> &str {
        match self {
            Stream::Kinesis(c) => stream_name(&c.stream),
            Stream::DynamodbStreams { config, .. } => &config.table,
        }
    }

    /// Whether shards without a checkpoint start at the tip.
    fn starts_at_latest(&self) -> bool {
        match self {
            Stream::Kinesis(c) => c.start_position == StartPosition::Latest,
            Stream::DynamodbStreams { config, .. } => {
                config.start_position == crate::sources::dynamodb_streams::StartPosition::Latest
            }
        }
    }
}

/// A shard as listed by the stream: its id, parents, and whether it is closed.
struct Listed {
    id: String,
    parents: Vec<String>,
    closed: bool,
}

/// Keeps this worker's leases and balances the group.
pub struct Coordinator {
    aws: Arc<Clients>,
    table: String,
    stream: Stream,
    /// `PIPELINE/STREAM/`: the prefix of this stream's lease keys.
    prefix: String,
    settings: Settings,
    shared: Arc<Shared>,
    /// Per lease: the owner and counter last seen, and since when.
    seen: HashMap<String, (Option<String>, u64, Instant)>,
    /// Per lease held: its counter and when it was last renewed.
    held: HashMap<String, (u64, Instant)>,
    /// Leases held that another worker asked for: to whom, and since when.
    handing_off: HashMap<String, (String, Instant)>,
    /// Records read and not yet checkpointed, per shard.
    lag: Arc<super::Lag>,
}

/// The error of a conditional write whose condition did not hold.
fn lost_race<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl Coordinator {
    /// Sends a conditional write to the lease table, retried with the
    /// pipeline's policy: `Ok(None)` when its condition did not hold. A
    /// write whose answer was lost is sent again and finds its own change:
    /// each caller reads `None` as "the lease is not as it was seen".
    async fn write<T, E, F, Fut>(&self, op: &str, mut send: F) -> Result<Option<T>, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, aws_sdk_dynamodb::error::SdkError<E, HttpResponse>>>,
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let what = format!("{op} on `{}`", self.table);
        self.settings
            .retry
            .call(|| {
                let sent = send();
                let what = &what;
                async move {
                    match sent.await {
                        Ok(out) => Ok(Some(out)),
                        Err(e) if lost_race(&e) => Ok(None),
                        Err(e) => Err(classify(what, &e)),
                    }
                }
            })
            .await
    }

    /// A coordinator for `pipeline`'s stream source.
    pub fn new(
        aws: Arc<Clients>,
        stream: Stream,
        pipeline: &str,
        settings: Settings,
        shared: Arc<Shared>,
        lag: Arc<super::Lag>,
    ) -> Coordinator {
        Coordinator {
            table: stream.table().to_owned(),
            prefix: format!("{pipeline}/{}/", stream.name()),
            stream,
            aws,
            settings,
            shared,
            seen: HashMap::new(),
            held: HashMap::new(),
            handing_off: HashMap::new(),
            lag,
        }
    }

    /// An update of the lease `key`.
    fn update(
        &self,
        key: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.aws
            .dynamodb()
            .update_item()
            .table_name(&self.table)
            .key("shard_key", AttributeValue::S(key.to_owned()))
    }

    /// Renews, discovers, takes and steals once.
    pub async fn pass(&mut self) -> Result<(), Error> {
        self.renew().await;
        let mut leases = self.scan().await?;
        self.discover(&mut leases).await?;
        self.balance(&leases).await;
        let held = self.held.len();
        if let Ok(mut s) = self.shared.status.lock() {
            s.per_worker.insert(self.settings.worker.clone(), held);
        }
        Ok(())
    }

    /// Renews every lease held; drops those another worker took and those
    /// that could not be renewed for the failover time.
    async fn renew(&mut self) {
        let held: Vec<(String, u64, Instant)> = self
            .held
            .iter()
            .map(|(k, (c, t))| (k.clone(), *c, *t))
            .collect();
        for (key, counter, renewed) in held {
            let req = self
                .update(&key)
                .update_expression("SET #c = if_not_exists(#c, :zero) + :one")
                .condition_expression("#o = :me")
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_names("#c", COUNTER)
                .expression_attribute_names("#o", OWNER)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":me", AttributeValue::S(self.settings.worker.clone()))
                .return_values(ReturnValue::AllNew);
            let sent = self.write("update_item", || req.clone().send()).await;
            match sent {
                Ok(Some(out)) => {
                    let lease = out.attributes.as_ref().and_then(Lease::from_item);
                    let counter = lease.as_ref().map_or(counter + 1, |l| l.counter);
                    self.held.insert(key.clone(), (counter, Instant::now()));
                    match lease {
                        Some(l) if l.shard_end => {
                            self.drop_lease(&key, "its shard was read to its end");
                        }
                        Some(Lease {
                            handoff_to: Some(to),
                            shard,
                            ..
                        }) if to != self.settings.worker => {
                            self.hand_over(&key, &shard, to).await;
                        }
                        _ => {}
                    }
                }
                Ok(None) => {
                    self.drop_lease(&key, "another worker took it");
                }
                Err(e) => {
                    if renewed.elapsed() >= self.settings.failover {
                        let why = format!(
                            "it could not be renewed for {:?}: {}",
                            self.settings.failover, e.message
                        );
                        self.drop_lease(&key, &why);
                    }
                }
            }
        }
    }

    /// Another worker asked for a lease: stop reading the shard now, and
    /// once what was read of it is checkpointed (or the failover time has
    /// passed), make that worker the owner.
    async fn hand_over(&mut self, key: &str, shard: &str, to: String) {
        let Some((_, since)) = self.handing_off.get(key) else {
            // Workers that asked at once, each from its own view of the group,
            // may ask for more than this worker has to spare: a lease moves
            // only while this worker keeps at least as many as the asker gets.
            let giving = self.handing_off.values().filter(|(w, _)| *w == to).count();
            let mine_after = self.held.len().saturating_sub(self.handing_off.len() + 1);
            let theirs_after = self
                .shared
                .status()
                .per_worker
                .get(&to)
                .copied()
                .unwrap_or(0)
                + giving
                + 1;
            if mine_after < theirs_after {
                self.decline(key, shard, &to).await;
                return;
            }
            // Checked from the next renewal on: a read under way now is counted by then.
            self.shared.set_owned(|o| {
                o.remove(shard);
            });
            crate::logs::json(
                "info",
                &format!(
                    "handing shard {shard} over to worker {to} once what was read of it is checkpointed"
                ),
            );
            self.handing_off
                .insert(key.to_owned(), (to, Instant::now()));
            return;
        };
        let waiting = self.lag.in_flight(shard);
        if waiting > 0 && since.elapsed() < self.settings.failover {
            return;
        }
        let req = self
            .update(key)
            .update_expression("SET #o = :to, #c = #c + :one REMOVE #h")
            .condition_expression("#o = :me AND #h = :to")
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#c", COUNTER)
            .expression_attribute_names("#h", HANDOFF)
            .expression_attribute_values(":to", AttributeValue::S(to.clone()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":me", AttributeValue::S(self.settings.worker.clone()));
        let sent = self.write("update_item", || req.clone().send()).await;
        match sent {
            Ok(Some(_)) => {
                self.handing_off.remove(key);
                self.held.remove(key);
                // Counted at once: a request handled later in this renewal
                // sees the lease where it went.
                if let Ok(mut s) = self.shared.status.lock() {
                    *s.per_worker.entry(to.clone()).or_insert(0) += 1;
                }
                let how = if waiting > 0 {
                    format!(
                        ", {waiting} records read and not checkpointed within the failover time will be read again"
                    )
                } else {
                    String::new()
                };
                crate::logs::json(
                    "info",
                    &format!("handed shard {shard} over to worker {to}{how}"),
                );
            }
            Ok(None) => {
                self.handing_off.remove(key);
                self.drop_lease(key, "another worker took it");
            }
            Err(_) => {} // tried again at the next renewal
        }
    }

    /// Withdraws another worker's request for a lease this worker keeps, so
    /// that it asks elsewhere.
    async fn decline(&self, key: &str, shard: &str, to: &str) {
        let req = self
            .update(key)
            .update_expression("REMOVE #h")
            .condition_expression("#o = :me AND #h = :to")
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#h", HANDOFF)
            .expression_attribute_values(":to", AttributeValue::S(to.to_owned()))
            .expression_attribute_values(":me", AttributeValue::S(self.settings.worker.clone()));
        let sent = self.write("update_item", || req.clone().send()).await;
        if let Ok(Some(_)) = sent {
            crate::logs::json(
                "info",
                &format!(
                    "kept shard {shard}: handing it to worker {to} would leave this worker fewer leases than {to}"
                ),
            );
        }
    }

    fn drop_lease(&mut self, key: &str, why: &str) {
        self.handing_off.remove(key);
        self.held.remove(key);
        let shard = key.rsplit('/').next().unwrap_or(key).to_owned();
        self.shared.set_owned(|o| {
            o.remove(&shard);
        });
        // Another worker taking a lease is how the group balances; a lease
        // that could not be renewed is worth a warning.
        let level = if why.starts_with("it could not be renewed") {
            "warn"
        } else {
            "info"
        };
        if !why.contains("read to its end") {
            crate::logs::json(level, &format!("lost the lease of shard {shard}: {why}"));
        }
    }

    /// This stream's leases.
    async fn scan(&self) -> Result<Vec<Lease>, Error> {
        let mut leases = Vec::new();
        let mut start = None;
        let what = format!("scan of `{}`", self.table);
        loop {
            let req = self
                .aws
                .dynamodb()
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(shard_key, :p)")
                .expression_attribute_values(":p", AttributeValue::S(self.prefix.clone()))
                .set_exclusive_start_key(start);
            let out = self
                .settings
                .retry
                .send(&what, || req.clone().send())
                .await?;
            leases.extend(out.items().iter().filter_map(Lease::from_item));
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(leases);
            }
        }
    }

    /// Lists the shards and creates the missing leases. On a new table with
    /// `start_position: latest`, closed shards get none (there is nothing
    /// new to read in them); a shard whose parent has a lease starts at the
    /// trim horizon, where its parents ended.
    async fn discover(&self, leases: &mut Vec<Lease>) -> Result<(), Error> {
        let shards = self.list().await?;
        let fresh = leases.is_empty();
        let mut known: BTreeSet<String> = leases.iter().map(|l| l.shard.clone()).collect();
        for Listed {
            id,
            parents,
            closed,
        } in shards
        {
            if known.contains(&id) {
                continue;
            }
            if fresh && closed && self.stream.starts_at_latest() {
                continue;
            }
            let child = parents.iter().any(|p| known.contains(p));
            let key = format!("{}{id}", self.prefix);
            let mut req = self
                .aws
                .dynamodb()
                .put_item()
                .table_name(&self.table)
                .item("shard_key", AttributeValue::S(key.clone()))
                .item(COUNTER, AttributeValue::N("0".into()))
                .item(
                    PARENTS,
                    AttributeValue::L(parents.iter().cloned().map(AttributeValue::S).collect()),
                )
                .condition_expression("attribute_not_exists(shard_key)");
            if child {
                req = req.item(START, AttributeValue::S("trim_horizon".into()));
            }
            // `None`: another worker created it.
            self.write("put_item", || req.clone().send()).await?;
            known.insert(id.clone());
            leases.push(Lease {
                key,
                shard: id,
                owner: None,
                counter: 0,
                checkpoint: None,
                shard_end: false,
                parents,
                handoff_to: None,
            });
        }
        Ok(())
    }

    /// The stream's shards.
    async fn list(&self) -> Result<Vec<Listed>, Error> {
        let mut listed = Vec::new();
        match &self.stream {
            Stream::Kinesis(c) => {
                let mut token: Option<String> = None;
                loop {
                    let mut req = self.aws.kinesis().list_shards();
                    req = match &token {
                        Some(t) => req.next_token(t),
                        None if is_arn(&c.stream) => req.stream_arn(&c.stream),
                        None => req.stream_name(&c.stream),
                    };
                    let what = format!("list_shards of `{}`", c.stream);
                    let out = self
                        .settings
                        .retry
                        .send(&what, || req.clone().send())
                        .await?;
                    listed.extend(out.shards().iter().map(|s| {
                        Listed {
                            id: s.shard_id().to_owned(),
                            parents: [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                                .into_iter()
                                .flatten()
                                .map(str::to_owned)
                                .collect(),
                            closed: s
                                .sequence_number_range()
                                .is_some_and(|r| r.ending_sequence_number().is_some()),
                        }
                    }));
                    token = out.next_token;
                    if token.is_none() {
                        return Ok(listed);
                    }
                }
            }
            Stream::DynamodbStreams { arn, .. } => {
                let mut start: Option<String> = None;
                loop {
                    let req = self
                        .aws
                        .streams()
                        .describe_stream()
                        .stream_arn(arn)
                        .set_exclusive_start_shard_id(start.take());
                    let what = format!("describe_stream of `{arn}`");
                    let out = self
                        .settings
                        .retry
                        .send(&what, || req.clone().send())
                        .await?;
                    let Some(desc) = out.stream_description else {
                        return Ok(listed);
                    };
                    listed.extend(desc.shards().iter().filter_map(|s| {
                        Some(Listed {
                            id: s.shard_id()?.to_owned(),
                            parents: s.parent_shard_id().map(str::to_owned).into_iter().collect(),
                            closed: s
                                .sequence_number_range()
                                .is_some_and(|r| r.ending_sequence_number().is_some()),
                        })
                    }));
                    match desc.last_evaluated_shard_id {
                        Some(last) => start = Some(last),
                        None => return Ok(listed),
                    }
                }
            }
        }
    }

    /// Takes free and expired leases up to this worker's share, then asks
    /// the most loaded worker for leases if still below it (see [`balance`]).
    async fn balance(&mut self, leases: &[Lease]) {
        let now = Instant::now();
        for l in leases {
            let e = self
                .seen
                .entry(l.key.clone())
                .or_insert((l.owner.clone(), l.counter, now));
            if e.0 != l.owner || e.1 != l.counter {
                *e = (l.owner.clone(), l.counter, now);
            }
        }
        let me = self.settings.worker.clone();
        // Expiry by this worker's own clock: the counter did not move for the failover time.
        let expired: BTreeSet<String> = leases
            .iter()
            .filter(|l| {
                l.owner.as_deref().is_some_and(|o| o != me)
                    && self
                        .seen
                        .get(&l.key)
                        .is_some_and(|(_, _, since)| since.elapsed() >= self.settings.failover)
            })
            .map(|l| l.key.clone())
            .collect();
        let held: BTreeSet<String> = self.held.keys().cloned().collect();
        let plan = balance::plan(&balance::View {
            me: &me,
            leases,
            held: &held,
            expired: &expired,
        });
        let status = Status {
            last_pass: Some(now),
            per_worker: plan
                .per_worker
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.len()))
                .collect(),
            readable: plan.readable,
            waiting: plan.waiting,
            finished: plan.finished,
        };
        if let Ok(mut s) = self.shared.status.lock() {
            *s = status;
        }
        if self.shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let adopt: Vec<Lease> = plan.adopt.iter().map(|l| (*l).clone()).collect();
        let free: Vec<Lease> = plan.free.iter().map(|l| (*l).clone()).collect();
        let mut adopted = 0;
        for l in &adopt {
            if self.take(l).await {
                adopted += 1;
            }
        }
        let mine = plan.mine() + adopted;
        let mut taken = 0;
        for l in &free {
            if taken == plan.want(mine) {
                return;
            }
            if self.take(l).await {
                taken += 1;
            }
        }
        let asks: Vec<Lease> = plan.asks(mine, taken).into_iter().cloned().collect();
        for l in &asks {
            self.ask(l).await;
        }
    }

    /// Asks the owner of a lease to hand it over to this worker.
    async fn ask(&mut self, l: &Lease) {
        let Some(owner) = &l.owner else {
            return;
        };
        let req = self
            .update(&l.key)
            .update_expression("SET #h = :me")
            .condition_expression("#o = :owner AND attribute_not_exists(#h)")
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#h", HANDOFF)
            .expression_attribute_values(":me", AttributeValue::S(self.settings.worker.clone()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.clone()));
        let sent = self.write("update_item", || req.clone().send()).await;
        match sent {
            Ok(Some(_)) => crate::logs::json(
                "info",
                &format!(
                    "asked worker {owner} to hand shard {} over, to balance the group",
                    l.shard
                ),
            ),
            Ok(None) => {}
            Err(e) => crate::logs::json(
                "warn",
                &format!("asking for shard {} failed: {}", l.shard, e.message),
            ),
        }
    }

    /// Takes a lease if it still has the owner and counter it was seen with.
    async fn take(&mut self, l: &Lease) -> bool {
        let mut req = self
            .update(&l.key)
            .update_expression("SET #o = :me, #c = if_not_exists(#c, :zero) + :one REMOVE #h")
            .expression_attribute_names("#h", HANDOFF)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#c", COUNTER)
            .expression_attribute_values(":me", AttributeValue::S(self.settings.worker.clone()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew);
        req = match &l.owner {
            None => req.condition_expression("attribute_not_exists(#o)"),
            // Only if nobody renewed or took it since it was seen.
            Some(o) => req
                .condition_expression("#o = :old AND #c = :n")
                .expression_attribute_values(":old", AttributeValue::S(o.clone()))
                .expression_attribute_values(":n", AttributeValue::N(l.counter.to_string())),
        };
        match self.write("update_item", || req.clone().send()).await {
            Ok(Some(out)) => {
                let counter = out
                    .attributes
                    .as_ref()
                    .and_then(Lease::from_item)
                    .map_or(l.counter + 1, |n| n.counter);
                self.held.insert(l.key.clone(), (counter, Instant::now()));
                self.shared.set_owned(|o| {
                    o.insert(l.shard.clone());
                });
                let from = match &l.owner {
                    Some(o) if *o != self.settings.worker => format!(" from worker {o}"),
                    _ => String::new(),
                };
                crate::logs::json(
                    "info",
                    &format!("took the lease of shard {}{from}", l.shard),
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                crate::logs::json(
                    "warn",
                    &format!(
                        "taking the lease of shard {} failed: {}",
                        l.shard, e.message
                    ),
                );
                false
            }
        }
    }

    /// Gives up every lease held, so other workers take them at once.
    pub async fn release_all(&mut self) -> usize {
        self.shared.stop_taking();
        let keys: Vec<String> = self.held.keys().cloned().collect();
        let mut released = 0;
        for key in keys {
            let req = self
                .update(&key)
                .update_expression("REMOVE #o, #h")
                .condition_expression("#o = :me")
                .expression_attribute_names("#o", OWNER)
                .expression_attribute_names("#h", HANDOFF)
                .expression_attribute_values(
                    ":me",
                    AttributeValue::S(self.settings.worker.clone()),
                );
            let sent = self.write("update_item", || req.clone().send()).await;
            match sent {
                Ok(Some(_)) => released += 1,
                Ok(None) => {}
                Err(e) => crate::logs::json(
                    "warn",
                    &format!(
                        "releasing the lease `{key}` failed (it expires after the failover time): {}",
                        e.message
                    ),
                ),
            }
            self.held.remove(&key);
        }
        self.shared.set_owned(BTreeSet::clear);
        released
    }
}
