//! Running one case through the real engine, and comparing what came of it
//! with what the case expects.

use std::sync::Arc;

use serde_json::Value;
use similar::TextDiff;

use super::file::{Case, ExpectDlq};
use crate::engine::{Built, Worker};
use crate::metrics::Counts;
use crate::record::{Position, RawRecord, Stage};

/// What came of a case.
#[derive(Debug)]
pub struct Actual {
    /// Per sink, in the order of `sinks:`, the records it received.
    pub sinks: Vec<Vec<Value>>,
    /// The dead-letter envelopes.
    pub dlq: Vec<Value>,
    /// The counts.
    pub counts: Counts,
    /// Why the run stopped, when it did.
    pub fatal: Option<String>,
}

/// Runs a case's records, as one batch, through the engine.
pub fn run(built: &Arc<Built>, case: &Case) -> Result<Actual, String> {
    let mut worker = Worker::new(Arc::clone(built))?;
    if !case.lookups.is_empty() {
        worker.set_lookups(Arc::new(built.lookups.with_rows(&case.lookups)?));
    }
    let lines = case
        .input
        .iter()
        .map(|v| input_line(built.format, v))
        .chain(case.input_lines.iter().map(|l| l.as_bytes().to_vec()));
    // Line sources that read a file name it in `meta.file`; stdin does not.
    let file: Option<Arc<str>> = (built.source_type == "file").then(|| Arc::from("test input"));
    let batch: Vec<RawRecord> = lines
        .enumerate()
        .map(|(i, data)| RawRecord {
            data,
            position: Position {
                source: built.source_type,
                file: file.clone(),
                line: Some(i as u64 + 1),
                ..Position::default()
            },
            rejected: None,
            attributes: None,
            fan_out: Vec::new(),
        })
        .collect();
    let lines_of = |bytes: &[u8]| -> Vec<Value> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
            .collect()
    };
    Ok(match worker.process(&batch, &case.now) {
        Ok(mut out) => {
            // A case's records are one batch, and its dedup store starts
            // empty; a duplicate takes no part in a window either.
            if built.dedup.is_some() {
                let drop = crate::dedup::duplicates(&out.dedup_keys, |_| false);
                out.drop_duplicates(&drop, &built.sink_keys);
                out.removed.extend(
                    drop.iter()
                        .enumerate()
                        .filter(|(_, d)| **d)
                        .map(|(id, _)| id as u32),
                );
            }
            // Then the end of the input: its windows are emitted.
            if let Some(mut a) = crate::engine::aggregate::Aggregation::new(built)? {
                out.raw = batch.clone();
                a.apply(&mut out, 0, None);
                a.close_all(&mut out);
            }
            Actual {
                sinks: out.sinks.iter().map(|s| lines_of(&s.bytes)).collect(),
                dlq: lines_of(&out.dlq.bytes),
                counts: out.counts,
                fatal: None,
            }
        }
        Err(fatal) => Actual {
            sinks: vec![Vec::new(); built.sink_names.len()],
            dlq: Vec::new(),
            counts: Counts::new(built.sink_names.len()),
            fatal: Some(fatal.0),
        },
    })
}

/// The line an `input` record is read as: its compact JSON, except a
/// string under `decode: text`, which is the line itself.
fn input_line(format: crate::decode::Format, v: &Value) -> Vec<u8> {
    match (format, v) {
        (crate::decode::Format::Text, Value::String(s)) => s.as_bytes().to_vec(),
        _ => serde_json::to_vec(v).unwrap_or_default(),
    }
}

/// What differs between the case's expectation and `actual`, one problem
/// per paragraph; empty when the case passes.
pub fn compare(built: &Built, case: &Case, actual: &Actual) -> String {
    let expect = &case.expect;
    if let Some(fatal) = &actual.fatal {
        return match &expect.fails {
            Some(part) if fatal.contains(part.as_str()) => String::new(),
            _ => format!("  the run stopped: {fatal}\n"),
        };
    }
    let mut problems = String::new();
    if let Some(part) = &expect.fails {
        problems.push_str(&format!(
            "  expected the run to stop with an error containing {part:?}, but it did not\n"
        ));
    }
    for (i, name) in built.sink_names.iter().enumerate() {
        let got = &actual.sinks[i];
        if let Some(parts) = expect.contains.get(name) {
            if !(parts.len() == got.len() && parts.iter().zip(got).all(|(p, a)| contains(a, p))) {
                problems.push_str(&format!(
                    "  sink `{name}` (- expected parts, + actual records):\n"
                ));
                problems.push_str(&diff(parts, got));
            }
            continue;
        }
        let wanted = expect.sinks.get(name).map_or(&[][..], Vec::as_slice);
        if !same_records(wanted, got) {
            problems.push_str(&format!("  sink `{name}` (- expected, + actual):\n"));
            problems.push_str(&diff(wanted, got));
        }
    }
    problems.push_str(&dlq_problems(&expect.dlq, &actual.dlq));
    let c = &actual.counts;
    let mut counts = vec![
        ("filtered", Some(expect.filtered), c.filtered),
        (
            "dropped_invalid",
            Some(expect.dropped_invalid),
            c.dropped_invalid,
        ),
        ("unrouted", Some(expect.unrouted), c.unrouted),
        ("deduplicated", Some(expect.deduplicated), c.deduplicated),
        ("aggregated", Some(expect.aggregated), c.aggregated),
        ("fanned_out", expect.fanned_out, c.fanned_out),
        ("delivered", expect.delivered, c.delivered),
    ];
    let per_stage: Vec<(String, u64)> = Stage::ALL
        .iter()
        .map(|s| (format!("dead_lettered.{}", s.as_str()), 0))
        .collect();
    if let Some(d) = &expect.dead_lettered {
        for (i, (what, _)) in per_stage.iter().enumerate() {
            counts.push((what.as_str(), Some(d.as_array()[i]), c.dead_lettered[i]));
        }
    }
    for (what, expected, got) in counts {
        if let Some(expected) = expected
            && expected != got
        {
            problems.push_str(&format!("  {what}: expected {expected}, got {got}\n"));
        }
    }
    if !c.balanced() {
        problems.push_str("  the counts do not add up\n");
    }
    problems
}

/// Whether an envelope is the expected dead letter.
fn dead_letter_is(a: &Value, e: &ExpectDlq) -> bool {
    a["stage"] == e.stage.as_str()
        && e.step.as_ref().is_none_or(|s| a["step"] == s.as_str())
        && e.error.as_ref().is_none_or(|part| {
            a["error"]
                .as_str()
                .is_some_and(|t| t.contains(part.as_str()))
        })
}

fn dlq_problems(expected: &[ExpectDlq], got: &[Value]) -> String {
    let ok =
        expected.len() == got.len() && got.iter().zip(expected).all(|(a, e)| dead_letter_is(a, e));
    if ok {
        return String::new();
    }
    let mut out = String::from("  dlq:\n");
    for i in 0..got.len().max(expected.len()) {
        let want = expected.get(i).map(|e| {
            let mut w = format!("stage {}", e.stage.as_str());
            if let Some(step) = &e.step {
                w.push_str(&format!(", step {step:?}"));
            }
            if let Some(part) = &e.error {
                w.push_str(&format!(", error containing {part:?}"));
            }
            w
        });
        let have = got.get(i).map(|a| {
            let step = match a["step"].as_str() {
                Some(s) => format!(", step {s:?}"),
                None => String::new(),
            };
            format!(
                "stage {}{step}, error {}",
                a["stage"].as_str().unwrap_or("?"),
                a["error"]
            )
        });
        out.push_str(&match (want, have) {
            (Some(_), Some(g)) if dead_letter_is(&got[i], &expected[i]) => {
                format!("    #{} ok: {g}\n", i + 1)
            }
            (Some(w), Some(g)) => format!("    #{} expected {w}\n       got      {g}\n", i + 1),
            (Some(w), None) => format!("    #{} expected {w}\n       got      nothing\n", i + 1),
            (None, Some(g)) => format!("    #{} unexpected: {g}\n", i + 1),
            (None, None) => String::new(),
        });
    }
    out
}

/// Records compare as JSON values, with numbers compared by value: `120`
/// and `120.0` are the same number (as in JavaScript or Python).
fn same_records(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn same_number(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (x.as_i64(), y.as_i64()) {
        (Some(i), Some(j)) => i == j,
        _ => x.as_f64() == y.as_f64(),
    }
}

/// Whether `actual` holds `part`: an object every key of the part with a
/// value that holds the part's value, a list of the same length whose items
/// hold the part's items, or an equal scalar.
fn contains(actual: &Value, part: &Value) -> bool {
    match (actual, part) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, p)| contains(a, p))
        }
        (Value::Object(x), Value::Object(y)) => y
            .iter()
            .all(|(k, p)| x.get(k).is_some_and(|a| contains(a, p))),
        _ => actual == part,
    }
}

/// A line diff of two record lists, one pretty-printed record per block.
fn diff(expected: &[Value], actual: &[Value]) -> String {
    let render = |v: &[Value]| {
        v.iter()
            .map(|r| serde_json::to_string_pretty(r).unwrap_or_default() + "\n")
            .collect::<String>()
    };
    let (e, a) = (render(expected), render(actual));
    let diff = TextDiff::from_lines(&e, &a);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(&format!("    {sign} {change}"));
        if change.missing_newline() {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(
            &json!({"a": [120, 1.5]}),
            &json!({"a": [120.0, 1.5]})
        ));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1.5})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }

    #[test]
    fn a_part_is_contained_at_every_depth() {
        let record = json!({"id": 7, "total": 12.0, "customer": {"id": "c1", "tier": "gold"}, "items": [{"sku": "a", "qty": 1}]});
        for part in [
            json!({}),
            json!({"id": 7}),
            json!({"total": 12}),
            json!({"customer": {"tier": "gold"}}),
            json!({"items": [{"sku": "a"}]}),
        ] {
            assert!(contains(&record, &part), "{part}");
        }
        for part in [
            json!({"id": 8}),
            json!({"missing": null}),
            json!({"customer": {"tier": "silver"}}),
            json!({"items": []}),
            json!({"items": [{"sku": "a"}, {"sku": "b"}]}),
            json!({"id": "7"}),
        ] {
            assert!(!contains(&record, &part), "{part}");
        }
    }
}
