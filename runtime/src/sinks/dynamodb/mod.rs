//! The `dynamodb` sink: each record as an item (`put`, with `BatchWriteItem`),
//! or added to counters of an item (`update`, `UpdateItem ... ADD`).

mod config;
mod sink;

pub use config::*;
pub use sink::*;
