//! What the two stream sources (`kinesis`, `dynamodb_streams`) share under
//! `sluice run` and `sluice daemon`: reading the shards a worker holds and
//! checkpointing them ([`reader`]), the lease table that shares the shards
//! among the workers of a group ([`lease`]: its I/O and the coordinator),
//! the fair-share decision the coordinator follows ([`balance`], pure and
//! unit-tested), and a worker's membership of the group ([`group`]).

pub mod balance;
pub mod group;
pub mod lease;
pub mod reader;

pub use reader::*;
