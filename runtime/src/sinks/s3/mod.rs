//! The `s3` sink: JSON Lines objects in Amazon S3.
//!
//! The engine buffers records for this sink across batches until
//! `max_records`, `max_bytes` or `max_age` is reached (and holds back those
//! batches' acknowledgements until then). Each call then writes the records it
//! is given as one object per key (records whose key template gives the same
//! key share an object), split at `max_records` / `max_bytes`. The key's
//! `{part}` is derived from the first record's source position, so records
//! that are written again overwrite their objects instead of duplicating them.

mod config;
mod sink;

pub use config::*;
pub use sink::*;
