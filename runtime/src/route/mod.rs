//! Route: which sinks a record goes to.
//!
//! Every route whose `when` condition holds (or that has none) adds its sinks;
//! a record goes to each named sink once. A record no route takes is
//! dead-lettered (stage `route`) or counted as unrouted, as `unrouted` says.

use schemars::JsonSchema;
use serde::Deserialize;

/// Send records to sinks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Route")]
pub struct Config {
    /// A Rhai expression over `record` and `meta`; the route applies when it is `true`.
    /// Without `when`, the route applies to every record.
    #[serde(default)]
    pub when: Option<String>,
    /// Names of sinks under `sinks:`.
    #[schemars(length(min = 1))]
    pub to: Vec<String>,
    /// The aggregate whose records the route takes (its `name`); without
    /// it, the route takes the source's records.
    #[serde(default)]
    pub from: Option<String>,
}

/// What happens to a record that no route takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "Unrouted")]
pub enum Unrouted {
    /// Dead-letter it with stage `route`.
    #[default]
    Dlq,
    /// Drop it, counted as unrouted.
    Drop,
}
