//! The typed pipeline: what a `pipeline.yaml` says, after checking.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    aggregate, aws, decode, dedup, delivery, lookup, metrics, route, sinks, sources, transform,
    validate,
};

/// A Sluice pipeline: a source, optional schemas and transforms, routes, sinks and a dead-letter queue.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Sluice pipeline")]
pub struct Pipeline {
    /// Version of the pipeline format. This runtime reads version 1.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// Name of the pipeline, not empty: the run summary, every dead-letter
    /// envelope and the metrics name it.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Where records come from.
    pub source: sources::Config,
    /// How record bytes become records.
    #[serde(default)]
    pub decode: decode::Config,
    /// JSON Schemas by name: a path to a JSON file (relative to this file) or the schema inline.
    #[serde(default)]
    pub schemas: IndexMap<String, validate::SchemaSource>,
    /// Check every record against one of the `schemas`; without it, records
    /// are not validated.
    #[serde(default)]
    pub validate: Option<validate::Config>,
    /// Tables scripts read with `lookup("name", key)`, by name.
    #[serde(default)]
    pub lookups: IndexMap<String, lookup::Config>,
    /// Rhai scripts run on every record, in order.
    #[serde(default)]
    pub transforms: Vec<transform::Config>,
    /// Which sinks records go to: at least one route. Every route that
    /// matches applies.
    #[schemars(length(min = 1))]
    pub routes: Vec<route::Config>,
    /// What happens to a record no route takes: `dlq` (default) or `drop` (counted as unrouted).
    #[serde(default)]
    pub unrouted: route::Unrouted,
    /// One record per group and window of time, made from the records the
    /// transforms left; routes take them with `from: NAME`.
    #[serde(default)]
    pub aggregate: Option<aggregate::Config>,
    /// Drop a record whose key was delivered within a time to live, counted
    /// as deduplicated; without it, every record goes on.
    #[serde(default)]
    pub dedup: Option<dedup::Config>,
    /// Destinations by name. Summaries list them in this order.
    #[schemars(length(min = 1))]
    pub sinks: IndexMap<String, sinks::Config>,
    /// Where records that cannot be delivered go, with the stage and the reason.
    pub dlq: crate::sinks::DlqConfig,
    /// Sandbox limits for every script; each has a default.
    #[serde(default)]
    pub limits: transform::Limits,
    /// How failed writes to sinks and the DLQ are retried; each field has a
    /// default.
    #[serde(default)]
    pub retry: delivery::Policy,
    /// AWS connection settings (region, endpoint) for AWS sources and sinks;
    /// by default, the standard AWS configuration (environment, profile,
    /// instance or task role).
    #[serde(default)]
    pub aws: aws::Config,
    /// Metrics of Lambda mode (CloudWatch Embedded Metric Format on standard
    /// output): the namespace, and which dimension sets are written.
    #[serde(default)]
    pub metrics: metrics::emf::Config,
}

/// Something a mode does differently from what the pipeline may expect:
/// where it is written (a JSON pointer), what, and what to do.
pub struct ModeNote {
    /// The value it is about.
    pub pointer: &'static str,
    /// What the mode does.
    pub message: &'static str,
    /// What to write instead.
    pub help: &'static str,
}

impl Pipeline {
    /// What `mode` does differently from what the pipeline may expect
    /// (`sluice check --mode` warns).
    pub fn mode_notes(&self, mode: sources::RunMode) -> Vec<ModeNote> {
        let mut notes = Vec::new();
        if mode != sources::RunMode::Lambda {
            return notes;
        }
        if self
            .dedup
            .as_ref()
            .is_some_and(|d| matches!(d.store, dedup::StoreConfig::Memory(_)))
        {
            notes.push(ModeNote {
                pointer: "/dedup/store/type",
                message: "`dedup` with the `memory` store remembers keys in one Lambda execution environment only: concurrent invocations and new environments do not see each other's keys",
                help: "use `store: { type: dynamodb, table: ... }` to drop duplicates across invocations",
            });
        }
        if self
            .aggregate
            .as_ref()
            .is_some_and(|a| matches!(a.time, aggregate::TimeConfig::Event(_)))
        {
            notes.push(ModeNote {
                pointer: "/aggregate/time",
                message: "in Lambda, the aggregate's windows are the event source mapping's, by the records' arrival in the stream: `time.field` is only checked to be there, not used to place records",
                help: "write `time: processing` to say so, or run the pipeline with `sluice daemon`, whose windows follow the records' own time",
            });
        }
        notes
    }

    /// Every transform, with the JSON pointer of its place: the source's
    /// (`/transforms/I`), then the aggregate's (`/aggregate/transforms/I`).
    /// `Loaded::scripts` and `Places::transforms` are in this order.
    pub fn all_transforms(&self) -> Vec<(String, &transform::Config)> {
        let main = self
            .transforms
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("/transforms/{i}"), t));
        let after = self.aggregate.iter().flat_map(|a| {
            a.transforms
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("/aggregate/transforms/{i}"), t))
        });
        main.chain(after).collect()
    }

    /// Why `mode` cannot run the pipeline, if it cannot: its source is not
    /// read there, or its aggregate is not kept there.
    pub fn refusal(&self, mode: sources::RunMode) -> Option<String> {
        self.refusal_at(mode).map(|(_, why)| why)
    }

    /// [`refusal`](Self::refusal), with the pointer of what is refused.
    pub fn refusal_at(&self, mode: sources::RunMode) -> Option<(&'static str, String)> {
        if let Some(why) = self.source.refusal(mode) {
            return Some(("/source/type", why));
        }
        if mode == sources::RunMode::Lambda && self.aggregate.is_some() && self.dedup.is_some() {
            return Some(("/dedup", "in Lambda, `dedup` and `aggregate` cannot be used together: a window's records are kept in the state the function's answer carries, so a key claimed before the event source mapping has that answer would drop its record from the window when the mapping retries; run the pipeline with `sluice daemon`".to_owned()));
        }
        // The event source mapping's tumbling windows are at most 15 minutes.
        let window = self.aggregate.as_ref().map(|a| a.window.tumbling.0);
        (mode == sources::RunMode::Lambda && window.is_some_and(|w| w.as_secs() > 900)).then(|| {
            ("/aggregate/window/tumbling", "in Lambda, an aggregate's window is the event source mapping's, which is at most 15 minutes (`TumblingWindowInSeconds` ≤ 900): run the pipeline with `sluice daemon` for longer windows".to_owned())
        })
    }

    /// Whether the sinks, the DLQ, the dedup store or a lookup call AWS.
    pub fn outputs_use_aws(&self) -> bool {
        let dlq = self.dlq.as_sink();
        self.sinks
            .values()
            .chain(std::iter::once(&dlq))
            .any(sinks::Config::uses_aws)
            || self
                .dedup
                .as_ref()
                .is_some_and(|d| matches!(d.store, dedup::StoreConfig::Dynamodb(_)))
            || self.lookups.values().any(lookup::Config::uses_aws)
    }
}
