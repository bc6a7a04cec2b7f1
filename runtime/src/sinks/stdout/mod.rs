//! The `stdout` sink: JSON Lines on standard output.

mod config;
mod sink;

pub use config::*;
pub use sink::*;
