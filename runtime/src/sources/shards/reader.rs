//! The shards of a stream source, read by one worker of its group: what
//! the `kinesis` and `dynamodb_streams` sources share. A [`ShardReader`]
//! reads the shards whose leases the worker holds, round robin, each from
//! its checkpoint on; it backs off a throttled shard while the others go
//! on, renews an expired iterator, and ends each batch with the
//! [`Checkpoint`] that acknowledges it. What differs between the two APIs
//! is a [`ShardApi`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::lease::Shared;
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, Policy, error::classify};
use crate::record::RawRecord;

/// Where to start reading a shard.
#[derive(Clone)]
pub(crate) enum At {
    /// After this sequence number.
    After(String),
    /// At the oldest record kept (a child shard of a resharding).
    TrimHorizon,
    /// At the source's `start_position`.
    Configured,
}

/// One `GetRecords` answer.
pub(crate) struct Page {
    /// The records, each with its position (and sequence number).
    pub(crate) records: Vec<RawRecord>,
    /// `None` once a closed shard is read to its end.
    pub(crate) next_iterator: Option<String>,
    /// How far the last record read is from the tip (Kinesis only).
    pub(crate) millis_behind: Option<i64>,
}

/// Why a `GetRecords` failed.
pub(crate) enum GetError {
    /// The iterator was unused for 5 minutes (a stalled sink held the reader back).
    Expired,
    /// Any other failure, classified for the retry policy.
    Failed(Error),
}

impl GetError {
    /// `ExpiredIteratorException` (the same code in Kinesis and DynamoDB
    /// Streams) is [`GetError::Expired`]; any other error is classified.
    pub(crate) fn of<E>(shard: &str, err: &SdkError<E, HttpResponse>) -> GetError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if err.as_service_error().and_then(|e| e.code()) == Some("ExpiredIteratorException") {
            GetError::Expired
        } else {
            GetError::Failed(classify(&format!("get_records of shard `{shard}`"), err))
        }
    }
}

/// What a [`ShardReader`] asks of its stream's API.
pub(crate) trait ShardApi {
    /// `PIPELINE/STREAM/SHARD`: the shard's item in the checkpoint table.
    fn checkpoint_key(&self, shard: &str) -> String;
    /// An iterator on `shard` at `at`; `None` when the shard has nothing more.
    async fn iterator(&self, shard: &str, at: At) -> Result<Option<String>, Error>;
    /// One `GetRecords` call of at most `limit` records.
    async fn get_records(
        &self,
        shard: &Arc<str>,
        iterator: String,
        limit: i32,
    ) -> Result<Page, GetError>;
}

/// A running stream source: the shards this worker holds leases of.
pub struct ShardReader<A> {
    pub(crate) api: A,
    aws: Arc<Clients>,
    checkpoint_table: String,
    max_records: i32,
    poll_interval: Duration,
    shards: Vec<Shard>,
    next: usize,
    /// The leases this worker holds in its group, and its name.
    leases: (Arc<Shared>, String),
    lag: Arc<Lag>,
    /// How each call but `GetRecords` (backed off per shard) is retried.
    retry: Policy,
}

/// Where a stream source is in one shard.
struct Shard {
    id: Arc<str>,
    /// The aggregate windows' mark saved with the checkpoint the shard
    /// started from, for its first batch.
    restored: Option<WindowMark>,
    /// `None` once a closed shard is read to its end.
    iterator: Option<String>,
    /// The sequence number of the last record read.
    last_read: Option<String>,
    backoff: ShardBackoff,
}

// The API side is this crate's own (Kinesis or DynamoDB Streams): users name
// `kinesis::Reader` or `dynamodb_streams::Reader`, never the bound.
#[allow(private_bounds)]
impl<A: ShardApi> ShardReader<A> {
    /// A reader that reads nothing until the coordinator of `leases` takes some.
    pub(crate) fn with_api(
        api: A,
        aws: Arc<Clients>,
        leases: (Arc<Shared>, String),
        retry: Policy,
        checkpoint_table: &str,
        max_records: i32,
        poll_interval: Duration,
    ) -> ShardReader<A> {
        ShardReader {
            api,
            aws,
            checkpoint_table: checkpoint_table.to_owned(),
            max_records,
            poll_interval,
            shards: Vec::new(),
            next: 0,
            leases,
            lag: Arc::default(),
            retry,
        }
    }

    /// How far behind each shard is.
    pub fn lag(&self) -> Arc<Lag> {
        Arc::clone(&self.lag)
    }

    /// The wait between rounds that found nothing.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Drops the shards whose leases were given up, and starts reading the
    /// shards whose leases were taken.
    async fn follow_leases(&mut self) {
        let owned = self.leases.0.owned();
        let lag = &self.lag;
        self.shards.retain(|s| {
            let keep = owned.contains(&*s.id);
            if !keep {
                lag.forget(&s.id);
            }
            keep
        });
        for id in owned {
            if self.shards.iter().any(|s| *s.id == *id) {
                continue;
            }
            // A shard whose checkpoint cannot be read now is tried again at the next read.
            match self.start(&id).await {
                Ok((iterator, restored)) => self.shards.push(Shard {
                    id: Arc::from(id.as_str()),
                    restored,
                    iterator,
                    last_read: None,
                    backoff: ShardBackoff::default(),
                }),
                Err(e) => {
                    crate::logs::json("warn", &format!("cannot start reading shard {id} yet: {e}"))
                }
            }
        }
        self.next %= self.shards.len().max(1);
    }

    /// An iterator after the shard's checkpoint, or at the start position
    /// (`None` when the shard was read to its end), and the aggregate
    /// windows' mark saved with the checkpoint.
    async fn start(&self, shard: &str) -> Result<(Option<String>, Option<WindowMark>), Error> {
        let key = self.api.checkpoint_key(shard);
        let saved = saved_checkpoint(&self.aws, &self.checkpoint_table, &key, &self.retry).await?;
        if saved.shard_end {
            return Ok((None, None));
        }
        let at = match (saved.sequence_number, saved.trim_horizon) {
            (Some(seq), _) => At::After(seq),
            (None, true) => At::TrimHorizon,
            (None, false) => At::Configured,
        };
        Ok((self.iterator(shard, at).await?, saved.windows))
    }

    /// An iterator on `shard` at `at`, retried with the policy.
    async fn iterator(&self, shard: &str, at: At) -> Result<Option<String>, Error> {
        self.retry
            .call(|| self.api.iterator(shard, at.clone()))
            .await
    }

    /// Reads the next shard (round robin) that has records; `Ok(None)` when
    /// a whole round found none.
    pub async fn read(
        &mut self,
        max: usize,
        policy: &Policy,
    ) -> Result<Option<(Vec<RawRecord>, Checkpoint)>, Error> {
        self.follow_leases().await;
        for _ in 0..self.shards.len() {
            let i = self.next;
            self.next = (self.next + 1) % self.shards.len().max(1);
            let Some(iterator) = self.shards[i].iterator.clone() else {
                continue;
            };
            if !self.shards[i].backoff.ready() {
                continue;
            }
            let id = Arc::clone(&self.shards[i].id);
            let limit = self.max_records.min(max as i32).max(1);
            let page = match self.api.get_records(&id, iterator, limit).await {
                Ok(page) => page,
                Err(GetError::Expired) => {
                    // Start again after the last record read.
                    let resumed = match self.shards[i].last_read.clone() {
                        Some(seq) => self.iterator(&id, At::After(seq)).await,
                        None => self.start(&id).await.map(|(iterator, _)| iterator),
                    };
                    // Not renewed: the shard backs off and its next read tries again.
                    match resumed {
                        Ok(iterator) => self.shards[i].iterator = iterator,
                        Err(err) => self.shards[i].backoff.failed(err, policy)?,
                    }
                    continue;
                }
                Err(GetError::Failed(err)) => {
                    self.shards[i].backoff.failed(err, policy)?;
                    continue;
                }
            };
            self.shards[i].backoff.succeeded();
            self.shards[i].iterator = page.next_iterator;
            // A closed shard read to its end: its last checkpoint says so,
            // even without records, so that its children may be read.
            let shard_end = self.shards[i].iterator.is_none();
            let shard_id = id.to_string();
            if let Some(ms) = page.millis_behind {
                self.lag.update(&shard_id, |l| l.millis_behind = ms);
            }
            let last = page
                .records
                .last()
                .and_then(|r| r.position.sequence_number.clone());
            let sequence_number = match last {
                Some(seq) => seq,
                None if shard_end => String::new(),
                None => continue,
            };
            if !sequence_number.is_empty() {
                self.shards[i].last_read = Some(sequence_number.clone());
            }
            let read = page.records.len() as u64;
            self.lag.update(&shard_id, |l| l.records_in_flight += read);
            let checkpoint = Checkpoint {
                table: self.checkpoint_table.clone(),
                key: self.api.checkpoint_key(&id),
                sequence_number,
                shard_end,
                owner: self.leases.1.clone(),
                progress: (Arc::clone(&self.lag), shard_id, read),
                restored: self.shards[i].restored.take(),
                windows: None,
            };
            return Ok(Some((page.records, checkpoint)));
        }
        Ok(None)
    }
}

/// How far behind each shard read by this worker is.
#[derive(Debug, Default)]
pub struct Lag {
    shards: Mutex<BTreeMap<String, ShardLag>>,
    /// Shards no longer read whose records are still in flight.
    dropped: Mutex<BTreeSet<String>>,
}

/// How far behind one shard is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardLag {
    /// `MillisBehindLatest` of the last read: how far the last record read is from the tip.
    pub millis_behind: i64,
    /// Records read and not yet checkpointed.
    pub records_in_flight: u64,
}

impl Lag {
    /// Per shard read, its lag.
    pub fn snapshot(&self) -> BTreeMap<String, ShardLag> {
        self.shards.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn update(&self, shard: &str, f: impl FnOnce(&mut ShardLag)) {
        if let Ok(mut d) = self.dropped.lock() {
            d.remove(shard);
        }
        if let Ok(mut s) = self.shards.lock() {
            f(s.entry(shard.to_owned()).or_default());
        }
    }

    /// `records` of a shard are checkpointed (or given up): no longer in flight.
    /// A shard no longer read is left out.
    fn settle(&self, shard: &str, records: u64) {
        let Ok(mut s) = self.shards.lock() else {
            return;
        };
        let Some(l) = s.get_mut(shard) else {
            return;
        };
        l.records_in_flight = l.records_in_flight.saturating_sub(records);
        if l.records_in_flight == 0 && self.dropped.lock().is_ok_and(|mut d| d.remove(shard)) {
            s.remove(shard);
        }
    }

    /// Records of `shard` read and not yet checkpointed.
    pub fn in_flight(&self, shard: &str) -> u64 {
        self.shards
            .lock()
            .ok()
            .and_then(|s| s.get(shard).map(|l| l.records_in_flight))
            .unwrap_or(0)
    }

    /// Whether `shard` is no longer read by this worker (handed over, or
    /// its lease lost) while records of it are in flight.
    pub fn is_dropped(&self, shard: &str) -> bool {
        self.dropped.lock().is_ok_and(|d| d.contains(shard))
    }

    /// Whether a shard no longer read (handed over, or its lease lost)
    /// still has records read and not checkpointed.
    pub(crate) fn awaits_checkpoint(&self) -> bool {
        self.dropped.lock().is_ok_and(|d| !d.is_empty())
    }

    /// The shard is no longer read: it leaves the gauges once its records
    /// in flight are checkpointed.
    pub(crate) fn forget(&self, shard: &str) {
        let Ok(mut s) = self.shards.lock() else {
            return;
        };
        if s.get(shard).is_some_and(|l| l.records_in_flight > 0) {
            if let Ok(mut d) = self.dropped.lock() {
                d.insert(shard.to_owned());
            }
        } else {
            s.remove(shard);
        }
    }
}

/// A shard's checkpoint, written once its batch is delivered.
pub struct Checkpoint {
    pub(crate) table: String,
    pub(crate) key: String,
    /// Empty when the batch is the empty last read of a closed shard.
    pub(crate) sequence_number: String,
    /// The shard is closed and this batch ends it.
    pub(crate) shard_end: bool,
    /// The worker reading the shard: written only while it holds the lease.
    pub(crate) owner: String,
    /// The shard and its records, for the lag in records.
    pub(crate) progress: (Arc<Lag>, String, u64),
    /// The first batch after the shard started: the aggregate windows' mark
    /// its checkpoint was saved with.
    pub restored: Option<WindowMark>,
    /// The aggregate windows' mark to save with this checkpoint.
    pub windows: Option<WindowMark>,
}

/// Where an aggregate's windows over a shard were when a checkpoint was
/// saved: their watermark (the latest event time taken), and the sequence
/// number of the last record they had taken. After a restart, a record
/// read again up to `through` whose window had closed under `watermark`
/// was emitted already (or dead-lettered as late): it is not taken again,
/// so that its window is not emitted a second time with only a part of
/// its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMark {
    /// The watermark, in milliseconds since 1970.
    pub watermark_ms: i64,
    /// The sequence number of the last record taken.
    pub through: String,
}

/// The checkpoint item's attributes of a [`WindowMark`].
const WINDOW_WATERMARK: &str = "window_watermark_ms";
const WINDOW_THROUGH: &str = "window_through";

/// A shard's checkpoint item.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// The sequence number of the last record delivered.
    pub(crate) sequence_number: Option<String>,
    /// The closed shard was read to its end.
    pub(crate) shard_end: bool,
    /// A child shard of a resharding: it starts where its parents ended.
    pub(crate) trim_horizon: bool,
    /// The aggregate windows' mark saved with the checkpoint.
    pub(crate) windows: Option<WindowMark>,
}

/// A shard's checkpoint, if it has one.
pub(crate) async fn saved_checkpoint(
    aws: &Clients,
    table: &str,
    key: &str,
    retry: &Policy,
) -> Result<Saved, Error> {
    let req = aws
        .dynamodb()
        .get_item()
        .table_name(table)
        .key("shard_key", AttributeValue::S(key.to_owned()))
        .consistent_read(true);
    let item = retry
        .send(&format!("get_item on `{table}`"), || req.clone().send())
        .await?
        .item
        .unwrap_or_default();
    Ok(Saved {
        sequence_number: item
            .get("sequence_number")
            .and_then(|v| v.as_s().ok())
            .cloned(),
        shard_end: item
            .get(super::lease::SHARD_END)
            .is_some_and(|v| v.as_bool().is_ok_and(|b| *b)),
        trim_horizon: item
            .get(super::lease::START)
            .is_some_and(|v| v.as_s().is_ok_and(|s| s == "trim_horizon")),
        windows: match (
            item.get(WINDOW_WATERMARK).and_then(|v| v.as_n().ok()),
            item.get(WINDOW_THROUGH).and_then(|v| v.as_s().ok()),
        ) {
            (Some(w), Some(t)) => w.parse().ok().map(|watermark_ms| WindowMark {
                watermark_ms,
                through: t.clone(),
            }),
            _ => None,
        },
    })
}

impl Checkpoint {
    /// Gives the batch up without saving: its records are read again by
    /// the shard's next reader, from the checkpoint saved before.
    pub fn discard(&self) {
        let (lag, shard, records) = &self.progress;
        lag.settle(shard, *records);
    }

    /// The shard whose checkpoint this is.
    pub fn shard(&self) -> &str {
        &self.progress.1
    }

    /// Whether this batch ends a closed shard.
    pub fn ends_shard(&self) -> bool {
        self.shard_end
    }

    /// Whether this worker no longer reads the shard (it was handed over,
    /// or its lease lost) while its records are in flight.
    pub fn shard_dropped(&self) -> bool {
        self.progress.0.is_dropped(&self.progress.1)
    }

    /// Writes the checkpoint, only while this worker holds the shard's
    /// lease: a worker that lost it cannot overwrite the new owner's
    /// checkpoint.
    /// Each attempt is retried with `retry`; one whose answer was lost is
    /// sent again and writes the same values.
    pub async fn save(&self, aws: &Clients, retry: &Policy) -> Result<(), Error> {
        let mut set = vec!["updated_at = :t"];
        let mut req = aws
            .dynamodb()
            .update_item()
            .table_name(&self.table)
            .key("shard_key", AttributeValue::S(self.key.clone()))
            .expression_attribute_values(
                ":t",
                AttributeValue::S(crate::record::time::now_rfc3339()),
            );
        if !self.sequence_number.is_empty() {
            set.push("sequence_number = :s");
            req = req
                .expression_attribute_values(":s", AttributeValue::S(self.sequence_number.clone()));
        }
        if self.shard_end {
            set.push("shard_end = :end");
            req = req.expression_attribute_values(":end", AttributeValue::Bool(true));
        }
        if let Some(w) = &self.windows {
            set.push("#wm = :wm, #wt = :wt");
            req = req
                .expression_attribute_names("#wm", WINDOW_WATERMARK)
                .expression_attribute_names("#wt", WINDOW_THROUGH);
            req = req
                .expression_attribute_values(":wm", AttributeValue::N(w.watermark_ms.to_string()))
                .expression_attribute_values(":wt", AttributeValue::S(w.through.clone()));
        }
        let req = req
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .update_expression(format!("SET {}", set.join(", ")));
        let what = format!("checkpoint of `{}` in `{}`", self.key, self.table);
        let sent = retry
            .call(|| {
                let sent = req.clone().send();
                let what = &what;
                async move {
                    match sent.await {
                        Ok(_) => Ok(true),
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                        {
                            Ok(false)
                        }
                        Err(e) => Err(classify(what, &e)),
                    }
                }
            })
            .await;
        let (lag, shard, records) = &self.progress;
        lag.settle(shard, *records);
        match sent {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::fatal(format!(
                "the checkpoint of `{}` was not written: another worker holds its lease now and reads these records again",
                self.key
            ))),
            Err(e) => Err(Error {
                message: e.message + " (the batch will be read again after a restart)",
                ..e
            }),
        }
    }
}

/// Creates the checkpoint table when it does not exist.
/// Each call is retried with `retry`.
pub(crate) async fn ensure_table(aws: &Clients, table: &str, retry: &Policy) -> Result<(), Error> {
    let ddb = aws.dynamodb();
    let what = format!("describe_table of `{table}`");
    let exists = retry
        .call(|| async {
            match ddb.describe_table().table_name(table).send().await {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(classify(&what, &e)),
            }
        })
        .await?;
    if exists {
        return Ok(());
    }
    let create = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("shard_key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| Error::fatal(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("shard_key")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| Error::fatal(e.to_string()))?,
        );
    let what = format!("create_table `{table}`");
    retry
        .call(|| async {
            match create.clone().send().await {
                Ok(_) => Ok(()),
                // Another worker of the group created it at the same time
                // (or this one did, and its answer was lost).
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(classify(&what, &e)),
            }
        })
        .await?;
    // Wait until the table is active (a new table takes a few seconds on AWS).
    for _ in 0..120 {
        let status = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|d| d.table.and_then(|t| t.table_status));
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::new(
        ErrorClass::Retryable,
        format!("the checkpoint table `{table}` did not become active"),
    ))
}

/// The checkpoint table a stream source uses unless it names one.
pub(crate) fn default_checkpoint_table() -> String {
    "sluice-checkpoints".into()
}

/// The most records one read of a shard asks for, unless the source says.
pub(crate) fn default_max_records() -> i32 {
    1000
}

/// How long a stream source waits before reading a shard that had nothing
/// new, unless it says.
pub(crate) fn default_poll_interval() -> crate::duration::Dur {
    crate::duration::Dur(Duration::from_secs(1))
}

/// Backoff of one shard whose reads fail with a retryable error (throttling:
/// `GetRecords` allows 5 calls per second per shard). The other shards are
/// read meanwhile; the run stops only when the policy runs out.
#[derive(Debug, Default)]
struct ShardBackoff {
    failures: u32,
    since: Option<Instant>,
    retry_at: Option<Instant>,
}

impl ShardBackoff {
    /// Whether the shard may be read now.
    fn ready(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// A read succeeded.
    fn succeeded(&mut self) {
        *self = ShardBackoff::default();
    }

    /// A read failed: `Ok` when it will be tried again later, the error when
    /// it is not retryable or the policy ran out.
    fn failed(&mut self, err: crate::delivery::Error, policy: &Policy) -> Result<(), Error> {
        let since = *self.since.get_or_insert_with(Instant::now);
        self.failures += 1;
        if !err.is_retryable() || !policy.may_retry(self.failures, since.elapsed()) {
            return Err(err);
        }
        let throttled = err.class == crate::delivery::ErrorClass::Throttled;
        self.retry_at = Some(Instant::now() + policy.backoff(self.failures + 1, throttled));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::GetError;
    use crate::delivery::ErrorClass;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("m").build()
    }

    #[test]
    fn an_expired_iterator_is_told_from_other_failures_in_both_apis() {
        use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError as StreamsError;
        use aws_sdk_kinesis::operation::get_records::GetRecordsError as KinesisError;

        let kinesis = KinesisError::ExpiredIteratorException(
            aws_sdk_kinesis::types::error::ExpiredIteratorException::builder()
                .meta(meta("ExpiredIteratorException"))
                .build(),
        );
        let e = SdkError::service_error(kinesis, response(400));
        assert!(matches!(GetError::of("s", &e), GetError::Expired));

        let streams = StreamsError::ExpiredIteratorException(
            aws_sdk_dynamodbstreams::types::error::ExpiredIteratorException::builder()
                .meta(meta("ExpiredIteratorException"))
                .build(),
        );
        let e = SdkError::service_error(streams, response(400));
        assert!(matches!(GetError::of("s", &e), GetError::Expired));

        let throttled = KinesisError::ProvisionedThroughputExceededException(
            aws_sdk_kinesis::types::error::ProvisionedThroughputExceededException::builder()
                .meta(meta("ProvisionedThroughputExceededException"))
                .build(),
        );
        let e = SdkError::service_error(throttled, response(400));
        match GetError::of("shardId-1", &e) {
            GetError::Failed(err) => {
                assert_eq!(err.class, ErrorClass::Throttled);
                assert_eq!(
                    err.message,
                    "get_records of shard `shardId-1` failed: \
                     ProvisionedThroughputExceededException (HTTP 400): m"
                );
            }
            GetError::Expired => panic!("a throttled call is not an expired iterator"),
        }
    }
}
