//! The `sqs` sink: one message per record, sent with `SendMessageBatch`.

mod config;
mod sink;

pub use config::*;
pub use sink::*;
