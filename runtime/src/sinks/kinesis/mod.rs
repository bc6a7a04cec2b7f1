//! The `kinesis` sink: each record to an Amazon Kinesis data stream, with `PutRecords`.

mod config;
mod sink;

pub use config::*;
pub use sink::*;
