//! Records as the engine sees them: the raw bytes a source read, where they
//! came from, and what finally happened to them.

pub mod time;
pub mod tree;

use std::sync::Arc;

use serde::Serialize;

/// Where a record came from; printed in dead-letter envelopes and given to scripts as `meta`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Position {
    /// The source type (`file`, `stdin`, `sqs` …).
    #[serde(rename = "type")]
    pub source: &'static str,
    /// The file, for file sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Arc<str>>,
    /// 1-based line number, for line sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The queue URL or stream, for stream sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<Arc<str>>,
    /// The shard (Kinesis, DynamoDB Streams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Arc<str>>,
    /// The message id (SQS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The Kafka partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i64>,
    /// The Kafka offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The partition key (Kinesis), message group id (SQS FIFO) or record key (Kafka).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// The sequence number (Kinesis, DynamoDB Streams, SQS FIFO).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// When the service received the record, RFC 3339 UTC with milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival_time: Option<String>,
    /// For a record an aggregate made: its window's start and its group's
    /// values (`2026-11-24T08:00:00.000Z ["room-0101"]`), and which part of
    /// the window's output it is when the window was emitted in parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

impl Position {
    /// A short, stable name of the position for object keys: the same record
    /// always gives the same token (`orders-3f2a9c1e-000000000017` for line 17
    /// of a file named orders.jsonl; the hash tells files of the same name apart).
    pub fn token(&self) -> String {
        let line = self.line.unwrap_or(0);
        if let Some(window) = &self.window {
            // The aggregate, the shard, the window's start, and a hash of the
            // whole (its group): the same window always has the same token.
            let mut out = key_safe(self.stream.as_deref().unwrap_or(self.source));
            if let Some(shard) = &self.shard {
                out.push('-');
                out.push_str(&key_safe(shard));
            }
            let start: String = window
                .split(' ')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            return format!("{out}-{start}-{:016x}", fnv1a(window.as_bytes()));
        }
        if let Some(id) = &self.message_id {
            return format!("{}-{id}", self.source);
        }
        if let (Some(topic), Some(partition), Some(offset)) =
            (&self.stream, self.partition, self.offset)
        {
            return format!("{topic}-{partition}-{offset:020}");
        }
        if let (Some(shard), Some(seq)) = (&self.shard, &self.sequence_number) {
            return format!("{shard}-{seq}");
        }
        match &self.file {
            Some(f) => {
                let stem = std::path::Path::new(&**f)
                    .file_stem()
                    .map_or("file".into(), |s| s.to_string_lossy().into_owned());
                let stem = key_safe(&stem);
                format!("{stem}-{:08x}-{line:012}", fnv1a(f.as_bytes()) as u32)
            }
            None => format!("{}-{line:012}", self.source),
        }
    }
}

/// `text` with every character but ASCII letters, digits and `-` made `_`.
fn key_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// FNV-1a, 64 bits: a hash that is the same in every build and on every machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Named text values a source attaches to a record (SQS message attributes;
/// binary values in base64), in the order the source gave them.
pub type Attributes = Vec<(String, String)>;

/// A record as read, before decoding.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The bytes, without the line break.
    pub data: Vec<u8>,
    /// Where it came from.
    pub position: Position,
    /// Set by the source when it could not frame the record (for example a
    /// line longer than `max_record_bytes`): the record is dead-lettered with
    /// stage `decode` and this reason.
    pub rejected: Option<String>,
    /// Attributes the source attaches (SQS message attributes), for `meta.attributes`.
    pub attributes: Option<Arc<Attributes>>,
    /// For a record redriven from the DLQ: which of the records it fanned
    /// out into failed (the others were delivered the first time).
    pub fan_out: Vec<Cut>,
}

impl RawRecord {
    /// A record of `data` read at `position`, not rejected, without attributes.
    pub fn new(data: Vec<u8>, position: Position) -> RawRecord {
        RawRecord {
            data,
            position,
            rejected: None,
            attributes: None,
            fan_out: Vec::new(),
        }
    }

    /// The record with the attributes a source attaches (sorted by name; none when empty).
    pub fn with_attributes(mut self, mut attributes: Attributes) -> RawRecord {
        attributes.sort();
        self.attributes = (!attributes.is_empty()).then(|| Arc::new(attributes));
        self
    }
}

/// Which one of the records a fan-out made failed: `index` of the `of`
/// records that reached `transform` (or, without it, the routes). A redrive
/// runs only that one from there, so the others are not delivered twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cut {
    /// The transform the records reached; `None` for the routes and sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// The failed record's place among them, from 0.
    pub index: u32,
    /// How many records reached that point.
    pub of: u32,
}

/// The stage of the pipeline where a record was dead-lettered.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Framing the record (size limits, base64).
    Decode,
    /// Parsing its bytes (JSON, UTF-8).
    Parse,
    /// Checking it against its schema.
    Validate,
    /// Running a transform script.
    Transform,
    /// Reading a lookup table a script asked for.
    Lookup,
    /// Adding it to its aggregate's window.
    Aggregate,
    /// Choosing its sinks.
    Route,
    /// Reading its deduplication key.
    Dedup,
    /// Writing it to a sink.
    Sink,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Decode,
        Stage::Parse,
        Stage::Validate,
        Stage::Transform,
        Stage::Lookup,
        Stage::Aggregate,
        Stage::Route,
        Stage::Dedup,
        Stage::Sink,
    ];

    /// The stage's name as written in envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Parse => "parse",
            Stage::Validate => "validate",
            Stage::Transform => "transform",
            Stage::Lookup => "lookup",
            Stage::Aggregate => "aggregate",
            Stage::Route => "route",
            Stage::Dedup => "dedup",
            Stage::Sink => "sink",
        }
    }
}

/// A record routed to the answer, as the answering sink gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returned {
    /// Its event record.
    pub item: usize,
    /// The bytes to answer with.
    pub data: Vec<u8>,
    /// Named values that go with it (Firehose's dynamic partitioning keys).
    pub keys: Vec<(String, String)>,
}

/// One encoded record handed to a writer.
#[derive(Debug, Clone, Copy)]
pub struct OutRecord<'a> {
    /// The record as compact JSON, without a line break.
    pub json: &'a [u8],
    /// The values of the sink's `key_fields`, in order (empty when a field is missing).
    pub keys: &'a [String],
    /// Where the record came from.
    pub position: &'a Position,
    /// When its batch was processed (RFC 3339).
    pub batch_time: &'a str,
}
