//! The dead-letter envelope: one JSON document per rejected record.
//!
//! ```json
//! {"pipeline":"orders","stage":"validate","error":"-3 is less than the minimum of 1 at /items/0/qty",
//!  "instance_path":"/items/0/qty","data":"{\"order_id\":…}","encoding":"utf-8",
//!  "source":{"type":"file","file":"data/orders.jsonl","line":17},
//!  "attempts":1,"timestamp":"2026-11-22T18:00:00.123Z"}
//! ```
//! `data` holds the original record: its text when it is UTF-8 (`encoding:
//! "utf-8"`), otherwise base64 (`encoding: "base64"`), so the record can be
//! replayed byte for byte.

use base64::Engine as _;
use serde::Serialize;

use crate::record::{Cut, Position, Stage};

/// One dead-lettered record.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// The pipeline's `name`.
    pub pipeline: &'a str,
    /// Where it failed.
    pub stage: Stage,
    /// The transform or sink that failed, when the stage has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<&'a str>,
    /// What went wrong.
    pub error: String,
    /// For `validate`: JSON pointer to the offending part of the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_path: Option<String>,
    /// The original record.
    pub data: String,
    /// `utf-8` when `data` is the record's text, `base64` otherwise.
    pub encoding: &'static str,
    /// Where the record came from.
    pub source: &'a Position,
    /// How many times delivery was attempted (1 for records rejected before any sink).
    pub attempts: u32,
    /// When the record's batch was processed, RFC 3339 UTC with milliseconds.
    pub timestamp: &'a str,
    /// When the record fanned out into several and one of them failed:
    /// which one, so that a redrive runs only it.
    #[serde(skip_serializing_if = "<[Cut]>::is_empty")]
    pub fan_out: &'a [Cut],
}

/// Longest `error` text an envelope holds, in bytes.
pub const MAX_ERROR_BYTES: usize = 1024;

/// An error text as an envelope holds it: one longer than
/// [`MAX_ERROR_BYTES`] (a message that repeats a huge value) keeps its start
/// and its end, which say what failed, and drops its middle.
/// Secrets in it are masked first.
pub fn clip_error(text: String) -> String {
    let text = crate::secrets::redact_owned(text);
    if text.len() <= MAX_ERROR_BYTES {
        return text;
    }
    let keep = MAX_ERROR_BYTES / 2 - 32;
    let mut head = keep;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - keep;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}… ({} bytes left out) …{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// The original bytes as envelope `data` and its `encoding`.
pub fn encode_data(bytes: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), "utf-8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "base64",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_and_base64s_the_rest() {
        assert_eq!(encode_data(b"{\"a\":1}"), ("{\"a\":1}".to_owned(), "utf-8"));
        assert_eq!(encode_data(&[0xff, 0xfe]), ("//4=".to_owned(), "base64"));
    }

    #[test]
    fn long_errors_keep_their_start_and_end() {
        assert_eq!(clip_error("short".into()), "short");
        let long = format!(
            "\"{}é\" is longer than 10 characters",
            "x".repeat(5_000_000)
        );
        let clipped = clip_error(long);
        assert!(clipped.len() <= MAX_ERROR_BYTES + 40, "{}", clipped.len());
        assert!(clipped.starts_with("\"xxxx"));
        assert!(
            clipped.ends_with("xxé\" is longer than 10 characters"),
            "{clipped}"
        );
        assert!(
            clipped.contains("… (4999") && clipped.contains(" bytes left out) …"),
            "{clipped}"
        );
    }

    #[test]
    fn serializes_the_documented_shape() {
        let pos = Position {
            source: "file",
            file: Some("in.jsonl".into()),
            line: Some(3),
            ..Position::default()
        };
        let e = Envelope {
            pipeline: "p",
            stage: Stage::Parse,
            step: None,
            error: "bad".into(),
            instance_path: None,
            data: "x".into(),
            encoding: "utf-8",
            source: &pos,
            attempts: 1,
            timestamp: "2026-01-01T00:00:00.000Z",
            fan_out: &[],
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"pipeline":"p","stage":"parse","error":"bad","data":"x","encoding":"utf-8","source":{"type":"file","file":"in.jsonl","line":3},"attempts":1,"timestamp":"2026-01-01T00:00:00.000Z"}"#
        );
    }
}
