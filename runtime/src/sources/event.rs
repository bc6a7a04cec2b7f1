//! What every source's Lambda decoder shares: an event turned into records,
//! the event records they came from, and how one event record that cannot
//! be decoded becomes a record rejected at stage `decode` (the rest of the
//! event is read as usual).
//!
//! Each source decodes its own event records (`sources/<name>/event.rs`)
//! with the same record builder its reader uses under `sluice run` and
//! `sluice daemon`, so a record and its `meta` are the same in every mode.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

pub use crate::record::Returned;
use crate::record::{Position, RawRecord};

/// Lambda mode's side of a source: how its events become records, and how
/// an invocation is answered. One per source (`event::Events`, or for a
/// stream of shards a [`ShardEvents`]),
/// named by the source's [`Source::EVENTS`](super::Source::EVENTS).
pub trait EventSource: Sync {
    /// The `eventSource` values of its event records (`aws:kinesis`).
    fn origins(&self) -> &'static [&'static str];

    /// The event's records. `Err` says what the event lacks, when it has no
    /// list of records at all ("has no `Records` list (fields …)").
    fn decode(&self, event: Value) -> Result<Batch, String>;

    /// The event's records read straight from its bytes, without building a
    /// JSON tree first: `Some` only when the event is plainly this source's
    /// and every record decodes, with exactly the batch [`decode`](Self::decode)
    /// gives; `None` sends the event down the general path. By default there
    /// is no such path.
    fn decode_bytes(&self, _event: &[u8]) -> Option<Batch> {
        None
    }

    /// The unit whose order the source keeps for event record `item`: after
    /// a failure, the source delivers the failed record and every later
    /// record of its unit again. `None`: the source keeps no order.
    fn ordering_unit<'a>(&self, batch: &'a Batch, item: usize) -> Option<&'a str>;

    /// The invocation's answer, as AWS documents it for the source: for
    /// most, the partial batch response naming the event records in
    /// `outcome.failed`. `Err` fails the invocation (the source delivers the
    /// whole event again) with this message.
    fn response(&self, batch: &Batch, outcome: &Outcome<'_>) -> Result<Value, String>;

    /// How many event records the source delivers again after `response`.
    fn redelivered(&self, batch: &Batch, failed: &BTreeSet<usize>) -> usize;
}

/// The answer of a stream's event (Kinesis, DynamoDB Streams: one shard):
/// the first failed record's sequence number, from which the mapping
/// delivers the shard again, so order is kept.
pub fn first_failure(batch: &Batch, failed: &BTreeSet<usize>) -> Result<Value, String> {
    let mut r = aws_lambda_events::event::streams::KinesisEventResponse::default();
    if let Some(&first) = failed.first() {
        r.add_failure(batch.items[first].id.clone());
    }
    serde_json::to_value(r).map_err(|e| e.to_string())
}

/// A source's fast path: the batch of an event read straight from its
/// bytes, or `None` for the general path.
pub type FastPath = fn(&[u8]) -> Option<Batch>;

/// The events of a stream in Lambda mode (Kinesis, DynamoDB Streams): its
/// records listed under `Records`, a batch of one shard (one ordering
/// unit), answered with the first failed record's sequence number.
pub struct ShardEvents {
    /// The `eventSource` of its records.
    pub origins: &'static [&'static str],
    /// Adds one event record to the batch.
    pub push: fn(&Value, &mut Batch),
    /// The fast path of [`EventSource::decode_bytes`], if the source has one.
    pub fast: Option<FastPath>,
}

impl EventSource for ShardEvents {
    fn origins(&self) -> &'static [&'static str] {
        self.origins
    }

    fn decode(&self, event: Value) -> Result<Batch, String> {
        let window = mapping_window(&event)?;
        let mut batch = records(event, self.push)?;
        batch.window = window;
        Ok(batch)
    }

    fn decode_bytes(&self, event: &[u8]) -> Option<Batch> {
        self.fast.and_then(|decode| decode(event))
    }

    fn ordering_unit<'a>(&self, _batch: &'a Batch, _item: usize) -> Option<&'a str> {
        Some("")
    }

    fn response(&self, batch: &Batch, outcome: &Outcome<'_>) -> Result<Value, String> {
        let mut answer = first_failure(batch, outcome.failed)?;
        // A windowed mapping's answer carries the window's state.
        if batch.window.is_some()
            && let Value::Object(m) = &mut answer
        {
            m.insert(
                "state".into(),
                outcome
                    .state
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
            );
        }
        Ok(answer)
    }

    fn redelivered(&self, batch: &Batch, failed: &BTreeSet<usize>) -> usize {
        from_first_failure(batch, failed)
    }
}

/// The records a stream delivers again after [`first_failure`]: all from the first failed one.
pub fn from_first_failure(batch: &Batch, failed: &BTreeSet<usize>) -> usize {
    failed.first().map_or(0, |&f| batch.items.len() - f)
}

/// What became of an event's records, for the answer. Indexes are into
/// `Batch::items`.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// Event records to be delivered again (a sink or the DLQ did not take
    /// one of their records, or they were not started).
    pub failed: &'a BTreeSet<usize>,
    /// Event records one of whose records the DLQ took.
    pub dead_lettered: &'a BTreeSet<usize>,
    /// The records routed to the answer itself (a `firehose_response` sink),
    /// in order.
    pub returned: &'a [Returned],
    /// The pipeline's source (its settings).
    pub source: &'a super::Config,
    /// A windowed mapping's state for the window's next invocation.
    pub state: Option<&'a Value>,
}

/// The `eventSource` of an event: its own (Kafka) or its first record's
/// (`eventSource`, or `EventSource` as SNS writes it); `aws:firehose` for a
/// Firehose data-transformation event.
pub fn origin(event: &Value) -> Option<&str> {
    // A Firehose data-transformation event names its delivery stream instead.
    if event.get("deliveryStreamArn").is_some() {
        return Some("aws:firehose");
    }
    match event.get("eventSource").and_then(Value::as_str) {
        Some(s) => Some(s),
        None => {
            let first = event.get("Records")?.get(0)?;
            first
                .get("eventSource")
                .or_else(|| first.get("EventSource"))
                .and_then(Value::as_str)
        }
    }
}

/// The records of an event that lists them under `Records`, each added by `push`.
pub fn records(mut event: Value, push: impl Fn(&Value, &mut Batch)) -> Result<Batch, String> {
    let Some(Value::Array(records)) = event.get_mut("Records").map(Value::take) else {
        return Err(format!("has no `Records` list ({})", fields(&event)));
    };
    let mut batch = Batch::default();
    for r in &records {
        push(r, &mut batch);
    }
    Ok(batch)
}

/// The names of an object's fields, for messages.
pub fn fields(v: &Value) -> String {
    match v.as_object() {
        Some(m) if m.is_empty() => "no fields".into(),
        Some(m) => {
            let names: Vec<String> = m.keys().take(8).map(|k| format!("`{k}`")).collect();
            format!("fields {}", names.join(", "))
        }
        None => format!("not an object but {}", json_type(v)),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One event record: what identifies it in a response, and its message group (SQS FIFO).
#[derive(Debug, Clone)]
pub struct Item {
    /// Sequence number, message id, or (Kafka) `topic-partition@offset`: see [`item_id`].
    pub id: String,
    /// The SQS FIFO message group, or the Kafka topic-partition (`orders-0`).
    pub group: Option<String>,
    /// The Kafka offset.
    pub offset: Option<i64>,
    /// The event record's data as the event gave it, for an answer that
    /// must repeat it (Firehose: a record dropped or failed).
    pub original: Option<String>,
}

impl Item {
    /// An event record identified by `id` alone.
    pub fn new(id: String) -> Item {
        Item {
            id,
            group: None,
            offset: None,
            original: None,
        }
    }
}

/// The id of the event record a record came from, as in [`Item::id`].
pub fn item_id(p: &Position) -> Option<String> {
    if let (Some(topic), Some(partition), Some(offset)) = (&p.stream, p.partition, p.offset) {
        return Some(format!("{topic}-{partition}@{offset}"));
    }
    p.message_id.clone().or_else(|| p.sequence_number.clone())
}

/// An event turned into records.
#[derive(Debug, Default)]
pub struct Batch {
    /// The records, in event order (a KPL aggregate gives several in a row).
    pub records: Vec<RawRecord>,
    /// For each record, the index of its event record in `items`.
    pub item_of: Vec<usize>,
    /// The event records.
    pub items: Vec<Item>,
    /// Whether the event came from an SQS FIFO queue.
    pub fifo: bool,
    /// The event source mapping's tumbling window, when it has one.
    pub window: Option<MappingWindow>,
}

/// A Kinesis or DynamoDB Streams event of a mapping with tumbling windows:
/// its window, the state the window's previous invocation returned, and
/// whether this is the window's last invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingWindow {
    /// The window's start, in milliseconds since 1970.
    pub start_ms: i64,
    /// Its end.
    pub end_ms: i64,
    /// The state returned by the previous invocation (`{}` at first).
    pub state: Value,
    /// `isFinalInvokeForWindow`.
    pub final_invoke: bool,
    /// `isWindowTerminatedEarly` (a reshard, or the state reached its limit).
    pub terminated_early: bool,
    /// `shardId`: the mapping keeps windows per shard.
    pub shard: Option<String>,
}

/// The tumbling window of a stream event (`window`, `state`,
/// `isFinalInvokeForWindow`, `isWindowTerminatedEarly`), if it has one.
pub fn mapping_window(event: &Value) -> Result<Option<MappingWindow>, String> {
    let Some(w) = event.get("window") else {
        return Ok(None);
    };
    let time = |name: &str| -> Result<i64, String> {
        let text = w
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("has a `window` without `{name}`"))?;
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .map_err(|_| format!("has a `window.{name}` that is not a time: {text}"))
    };
    Ok(Some(MappingWindow {
        start_ms: time("start")?,
        end_ms: time("end")?,
        state: match event.get("state") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(s) => s.clone(),
        },
        final_invoke: event
            .get("isFinalInvokeForWindow")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        terminated_early: event
            .get("isWindowTerminatedEarly")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        shard: event
            .get("shardId")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }))
}

impl Batch {
    /// Adds an event record that is one record.
    pub fn push(&mut self, record: RawRecord, item: Item) {
        self.records.push(record);
        self.item_of.push(self.items.len());
        self.items.push(item);
    }

    /// Adds an event record that holds several records (a KPL aggregate):
    /// `push` adds them to the list it is given.
    pub fn push_many(&mut self, item: Item, push: impl FnOnce(&mut Vec<RawRecord>) -> usize) {
        let index = self.items.len();
        self.items.push(item);
        let n = push(&mut self.records);
        self.item_of.extend(std::iter::repeat_n(index, n));
    }

    /// Adds an event record that could not be decoded: its JSON is the
    /// data, rejected at stage `decode` with the reason.
    pub fn undecodable(
        &mut self,
        r: &Value,
        what: &str,
        e: impl std::fmt::Display,
        position: Position,
        item: Item,
    ) {
        let mut record = RawRecord::new(r.to_string().into_bytes(), position);
        record.rejected = Some(format!("the {what} cannot be decoded: {e}"));
        self.push(record, item);
    }
}

/// One event record as its typed form. A panic in the deserializer (the
/// time parser of a Kafka timestamp has one) is an error of this record.
pub fn decode<T: serde::de::DeserializeOwned>(r: &Value) -> Result<T, String> {
    match crate::panics::catch(|| T::deserialize(r)) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(m) => Err(format!("its decoder failed: {m}")),
    }
}

/// The text at a JSON pointer of an event record.
pub fn text_at(r: &Value, pointer: &str) -> Option<String> {
    r.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A time in seconds since 1970 with decimals, as milliseconds. Read from the
/// JSON because aws_lambda_events reads the decimals as a number of
/// milliseconds (`.5` as 5 ms).
pub fn seconds_at(r: &Value, pointer: &str) -> Option<i64> {
    r.pointer(pointer)
        .and_then(Value::as_f64)
        .map(|s| (s * 1000.0).round() as i64)
}
