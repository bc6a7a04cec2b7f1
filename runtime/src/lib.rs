//! Sluice: declarative stream pipelines.
//!
//! A pipeline (YAML) names a source, JSON Schemas, Rhai transforms, routes,
//! sinks and a dead-letter queue. `config` loads and checks it, `engine` runs
//! it over batches of records, and `entry` starts one of the three entries:
//! `cli` (the `sluice` commands), `daemon` (`sluice daemon`) or `lambda`.
//!
//! Dependencies point one way: entries → `engine` → stages (`decode`,
//! `validate`, `transform`, `route`, `dedup`, `sinks`, `delivery`) → `record`.

pub mod aggregate;
pub mod aws;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod dedup;
pub mod delivery;
pub mod deploy;
pub mod diagnostics;
pub mod duration;
pub mod engine;
pub mod entry;
pub mod exit;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod heap;
pub mod lambda;
pub mod logs;
pub mod lookup;
pub mod metrics;
pub mod panics;
pub mod record;
pub mod route;
pub mod secrets;
pub mod sinks;
pub mod sources;
pub mod transform;
pub mod validate;

// The unit tests count the heap as the binary does, so the sandbox's memory
// limit is tested too.
#[cfg(test)]
#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;
