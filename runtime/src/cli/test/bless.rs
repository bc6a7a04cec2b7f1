//! `sluice test --bless`: a failing case's `expect` is rewritten as what
//! the case produced, for review in the diff. The rest of the file (other
//! cases, comments, the inputs) is left as it is.

use std::ops::Range;

use serde_json::Value;

use super::expect::Actual;
use super::file::{Case, Read};
use crate::engine::Built;
use crate::record::Stage;

/// The new text of a test file whose cases at `failed` (indexes into the
/// file's cases) produced `actual`.
pub fn rewrite(read: &Read, failed: &[(usize, &Case, Actual)], built: &Built) -> String {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for (i, case, actual) in failed {
        let pointer = format!("/tests/{i}/expect");
        let Some(origin) = read.spans.get(&pointer) else {
            continue;
        };
        let mut start = origin.value.start;
        // The value ends at its last character: trailing line breaks and
        // comments after it stay.
        let end = start
            + read.text[start..origin.value.end.max(start)]
                .trim_end()
                .len();
        let key_column = origin
            .key
            .as_ref()
            .map_or(0, |k| column(&read.text, k.start));
        let flow = read.text[start..].starts_with('{');
        let (lead, indent) = if flow {
            // `expect: { … }` becomes a block under the key.
            start = read.text[..start].trim_end_matches(' ').len();
            let indent = key_column + 2;
            (format!("\n{}", " ".repeat(indent)), indent)
        } else {
            (String::new(), column(&read.text, start))
        };
        let body = expectation(case, actual, built)
            .lines()
            .collect::<Vec<_>>()
            .join(&format!("\n{}", " ".repeat(indent)));
        edits.push((start..end, format!("{lead}{body}")));
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut text = read.text.clone();
    for (range, with) in edits {
        text.replace_range(range, &with);
    }
    text
}

/// The 0-based column of a byte offset.
fn column(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..offset].chars().count()
}

/// The `expect` mapping of `actual`, in YAML at column 0: records as JSON
/// flow mappings, one per line.
fn expectation(case: &Case, actual: &Actual, built: &Built) -> String {
    let json = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    let mut out = String::new();
    if let Some(fatal) = &actual.fatal {
        out.push_str(&format!("fails: {}\n", json(&Value::from(fatal.as_str()))));
        return out;
    }
    // A sink the case gave by parts stays given by parts: each record is
    // cut down to the keys its part names.
    let (parts, whole): (Vec<_>, Vec<_>) = built
        .sink_names
        .iter()
        .zip(&actual.sinks)
        .filter(|(_, records)| !records.is_empty())
        .partition(|(name, _)| case.expect.contains.contains_key(*name));
    for (key, sinks) in [("sinks", whole), ("contains", parts)] {
        if sinks.is_empty() {
            continue;
        }
        out.push_str(&format!("{key}:\n"));
        for (name, records) in sinks {
            out.push_str(&format!("  {}:\n", yaml_key(name)));
            let given = case.expect.contains.get(name.as_str());
            for (i, r) in records.iter().enumerate() {
                // Records past the given parts take the shape of the last one.
                let part = given.and_then(|g| g.get(i).or(g.last()));
                let r = part.map_or_else(|| r.clone(), |p| cut_to(r, p));
                out.push_str(&format!("    - {}\n", json(&r)));
            }
        }
    }
    if !actual.dlq.is_empty() {
        out.push_str("dlq:\n");
        for e in &actual.dlq {
            out.push_str(&format!(
                "  - stage: {}\n",
                e["stage"].as_str().unwrap_or("?")
            ));
            if let Some(step) = e["step"].as_str() {
                out.push_str(&format!("    step: {}\n", json(&Value::from(step))));
            }
            if let Some(error) = e["error"].as_str() {
                // Without the position, which names the pipeline file as
                // it was given: the text is matched as a part.
                let error = match error.rfind(" (at ") {
                    Some(i) if error.ends_with(')') => &error[..i],
                    _ => error,
                };
                out.push_str(&format!("    error: {}\n", json(&Value::from(error))));
            }
        }
    }
    let c = &actual.counts;
    let e = &case.expect;
    for (key, value, write) in [
        ("filtered", c.filtered, c.filtered > 0),
        ("dropped_invalid", c.dropped_invalid, c.dropped_invalid > 0),
        ("unrouted", c.unrouted, c.unrouted > 0),
        ("deduplicated", c.deduplicated, c.deduplicated > 0),
        ("aggregated", c.aggregated, c.aggregated > 0),
        ("fanned_out", c.fanned_out, e.fanned_out.is_some()),
        ("delivered", c.delivered, e.delivered.is_some()),
    ] {
        if write {
            out.push_str(&format!("{key}: {value}\n"));
        }
    }
    if e.dead_lettered.is_some() {
        let stages: Vec<String> = Stage::ALL
            .iter()
            .zip(c.dead_lettered)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{}: {n}", s.as_str()))
            .collect();
        out.push_str(&format!("dead_lettered: {{ {} }}\n", stages.join(", ")));
    }
    if out.is_empty() {
        // Nothing came out and nothing was counted: every sink empty.
        out.push_str("sinks: {}\n");
    }
    out
}

/// `actual` with only what `part` names: the keys of a mapping (at every
/// depth), each item of a list as long as the part's.
fn cut_to(actual: &Value, part: &Value) -> Value {
    match (actual, part) {
        (Value::Object(a), Value::Object(p)) => Value::Object(
            p.iter()
                .filter_map(|(k, pv)| a.get(k).map(|av| (k.clone(), cut_to(av, pv))))
                .collect(),
        ),
        (Value::Array(a), Value::Array(p)) if a.len() == p.len() => {
            Value::Array(a.iter().zip(p).map(|(x, y)| cut_to(x, y)).collect())
        }
        _ => actual.clone(),
    }
}

/// A sink name as a YAML key: plain when it is safe, else quoted.
fn yaml_key(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if plain {
        name.to_owned()
    } else {
        serde_json::to_string(name).unwrap_or_default()
    }
}
