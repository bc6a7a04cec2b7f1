//! Structured logs: one JSON object per line on standard error, for the
//! long-running daemon (CloudWatch Logs, Loki and the like parse them).
//! `sluice run` writes the same messages for a person instead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

static FIELDS: OnceLock<Map<String, Value>> = OnceLock::new();
static HUMAN: AtomicBool = AtomicBool::new(false);
static SCRIPTS_AS_JSON: AtomicBool = AtomicBool::new(false);

/// From now on, what scripts `print` and `debug` (under `sluice run
/// --debug`) is written as JSON log lines of level `debug`.
pub fn scripts_as_json() {
    SCRIPTS_AS_JSON.store(true, Ordering::Relaxed);
}

/// Writes what a script printed: as it is, or as a JSON log line after
/// [`scripts_as_json`].
pub fn script_output(text: &str) {
    if SCRIPTS_AS_JSON.load(Ordering::Relaxed) {
        crate::errln!("{}", line("debug", text));
    } else {
        crate::errln!("{text}");
    }
}

/// From now on, warnings and errors are written as `warning: …` and
/// `error: …`, and `info` messages are left out.
pub fn human() {
    HUMAN.store(true, Ordering::Relaxed);
}

/// Fields every later line carries (the pipeline, the worker's name); set once.
pub fn set_fields(fields: &[(&str, &str)]) {
    let _ = FIELDS.set(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect(),
    );
}

/// The line of a message, as written by [`json`].
pub fn line(level: &str, message: &str) -> String {
    line_with(level, message, &[])
}

/// The line of a message with fields of its own (a Lambda request's id).
pub fn line_with(level: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let mut m = Map::new();
    m.insert(
        "timestamp".into(),
        Value::String(crate::record::time::now_rfc3339()),
    );
    m.insert("level".into(), Value::String(level.into()));
    if let Some(f) = FIELDS.get() {
        m.extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    m.extend(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))),
    );
    m.insert("message".into(), Value::String(message.into()));
    Value::Object(m).to_string()
}

/// Writes a log line: `level` is `info`, `warn` or `error`.
pub fn json(level: &str, message: &str) {
    if !HUMAN.load(Ordering::Relaxed) {
        crate::errln!("{}", line(level, message));
    } else if level != "info" {
        let level = if level == "warn" { "warning" } else { level };
        crate::errln!("{level}: {message}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_object_per_line() {
        let v: serde_json::Value =
            serde_json::from_str(&super::line("warn", "a \"b\"\nc")).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["message"], "a \"b\"\nc");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
