//! Records as the engine sees them: the raw bytes a source read, where they
//! came from, and what finally happened to them.

use std::sync::Arc;

use serde::Serialize;

/// Where a record came from; printed in dead-letter envelopes and given to scripts as `meta`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Position {
    /// The source type (`file`, `stdin`, …).
    #[serde(rename = "type")]
    pub source: &'static str,
    /// The file, for file sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Arc<str>>,
    /// 1-based line number, for line sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

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
}

/// The stage of the pipeline where a record was dead-lettered.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
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
    /// Choosing its sinks.
    Route,
    /// Writing it to a sink.
    Sink,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] = [
        Stage::Decode,
        Stage::Parse,
        Stage::Validate,
        Stage::Transform,
        Stage::Route,
        Stage::Sink,
    ];

    /// The stage's name as written in envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Parse => "parse",
            Stage::Validate => "validate",
            Stage::Transform => "transform",
            Stage::Route => "route",
            Stage::Sink => "sink",
        }
    }
}
