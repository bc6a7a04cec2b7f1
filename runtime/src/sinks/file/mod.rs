//! The `file` sink: JSON Lines in a local file.

mod config;
mod sink;

pub use config::*;
pub use sink::*;
