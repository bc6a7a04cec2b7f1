//! Decode and parse: a record's bytes → a structured value.
//!
//! `json` reads one JSON document per record; `text` makes the record a
//! string. Failures are dead-lettered by the engine with stage `parse`.

use schemars::JsonSchema;
use serde::Deserialize;

/// How record bytes become a record.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Decode")]
pub struct Config {
    /// `json`: one JSON document per record. `text`: the record is the line as a string.
    #[serde(default)]
    pub format: Format,
}

/// The record format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "DecodeFormat")]
pub enum Format {
    /// One JSON document per record.
    #[default]
    Json,
    /// The record is its text, as a string (must be UTF-8).
    Text,
}
