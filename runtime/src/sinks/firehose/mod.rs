//! The `firehose` sink: each record to an Amazon Data Firehose delivery
//! stream, with `PutRecordBatch`. Firehose buffers the records and delivers
//! them to its destination (S3, Redshift, OpenSearch …); a record counts as
//! delivered once `PutRecordBatch` accepted it.

mod config;
mod sink;

pub use config::*;
pub use sink::*;
