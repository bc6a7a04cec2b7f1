//! Faults the tests inject into a build with the `fault-injection` feature
//! (never part of a release): a way to make per-record work panic, so that
//! the tests can show a bug hit by one record costs that record only.
//!
//! - Scripts get `fault_panic(text)`, which panics with `text`.
//! - The `file` and `stdout` sinks panic on a record whose JSON starts with
//!   [`SINK_PANIC`] (a record whose first field, in key order, is
//!   `"fault": "sink-panic"`; an envelope never starts so). The AWS sinks
//!   panic on a batch that holds one, before any request, as a bug in
//!   their encoders would.

/// A record whose JSON starts with this makes the sinks panic.
pub const SINK_PANIC: &[u8] = b"{\"fault\":\"sink-panic\"";

/// Registers the script functions that inject faults.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_fn("fault_panic", |text: &str| -> rhai::Dynamic {
        panic!("{text}");
    });
}

/// Called by the local sinks before writing a record.
pub fn sink_write(json: &[u8]) {
    if json.starts_with(SINK_PANIC) {
        panic!("injected sink fault");
    }
}
