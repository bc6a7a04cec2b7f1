//! `sluice test PIPELINE...`: run the test cases in the `tests/` folder
//! beside each pipeline and show a diff for every case that fails.
//!
//! A test file holds `tests:`, a list of cases. Each case gives input
//! records and the exact expected outcome: the records in every sink (sinks
//! not named must receive nothing), the dead-lettered records' stages (and
//! optionally a part of their error text), and the filtered and unrouted
//! counts (0 when not given). Sources and sinks are replaced by memory: the
//! case's records go through the real engine, parse to routes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use similar::TextDiff;

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::config::{self, Env, LoadError, yaml};
use crate::diagnostics::Diagnostics;
use crate::diagnostics::render::{self, Format};
use crate::engine::{Built, Worker};
use crate::record::{Position, RawRecord, Stage};

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    tests: Vec<Case>,
}

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// `meta.batch_time` for the case.
    #[serde(default = "default_now")]
    now: String,
    /// Records, each written as one compact JSON line (a string under
    /// `decode: text`: the line itself).
    #[serde(default)]
    input: Vec<Value>,
    /// Raw lines, exactly as the source would read them (after `input`).
    #[serde(default)]
    input_lines: Vec<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    sinks: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    dlq: Vec<ExpectDlq>,
    #[serde(default)]
    filtered: u64,
    #[serde(default)]
    dropped_invalid: u64,
    #[serde(default)]
    unrouted: u64,
    /// The case stops the run with an error containing this text.
    #[serde(default)]
    fails: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDlq {
    stage: Stage,
    /// A part of the error text.
    #[serde(default)]
    error: Option<String>,
}

fn default_now() -> String {
    "2026-01-01T00:00:00.000Z".into()
}

/// Runs the tests of every pipeline (with `filter`, only the cases whose
/// name contains it). Prints one line per case and a `N passed, N failed`
/// summary; exit code 1 when a case fails.
pub fn main(files: &[PathBuf], filter: Option<&str>) -> i32 {
    let env = Env::process();
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut code = EXIT_OK;
    for f in files {
        let loaded = match config::load(f, &env) {
            Ok(l) => l,
            Err(e) => {
                crate::err!("{}", render::text(e.diagnostics(), Format::Human));
                code = code.max(match e {
                    LoadError::Unreadable(_) => EXIT_UNREADABLE,
                    LoadError::Invalid(_) => EXIT_INVALID,
                });
                continue;
            }
        };
        let built = match Built::new(&loaded) {
            // `print` and `debug` in scripts write to standard error.
            Ok(b) => Arc::new(Built { debug: true, ..b }),
            Err(e) => {
                crate::errln!("error: {}: {e}", f.display());
                code = code.max(EXIT_INVALID);
                continue;
            }
        };
        if !loaded.diagnostics.list.is_empty() {
            crate::err!("{}", render::text(&loaded.diagnostics, Format::Human));
        }
        let tests_dir = loaded.dir.join("tests");
        let test_files = match test_files(&tests_dir) {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                crate::errln!(
                    "error: {}: no test files in {}",
                    f.display(),
                    loaded.dir.join("tests").display()
                );
                code = code.max(EXIT_INVALID);
                continue;
            }
            Err(e) => {
                crate::errln!(
                    "error: {}: cannot read the test folder {}: {e}",
                    f.display(),
                    tests_dir.display()
                );
                code = code.max(EXIT_UNREADABLE);
                continue;
            }
        };
        for tf in test_files {
            let cases = match read_cases(&tf) {
                Ok(c) => c,
                Err(e) => {
                    crate::errln!("error: {e}");
                    code = code.max(EXIT_INVALID);
                    continue;
                }
            };
            for case in cases {
                if filter.is_some_and(|f| !case.name.contains(f)) {
                    skipped += 1;
                    continue;
                }
                match run_case(&built, &case) {
                    Ok(()) => {
                        passed += 1;
                        crate::outln!("ok    {}: {}", tf.display(), case.name);
                    }
                    Err(diff) => {
                        failed += 1;
                        crate::outln!("FAIL  {}: {}\n{diff}", tf.display(), case.name);
                    }
                }
            }
        }
    }
    if filter.is_some() {
        crate::outln!("{passed} passed, {failed} failed, {skipped} filtered out");
    } else {
        crate::outln!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        code.max(EXIT_INVALID)
    } else {
        code
    }
}

fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    out.sort();
    Ok(out)
}

fn read_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut diags = Diagnostics::default();
    let file = diags.sources.add(path.display().to_string(), text.clone());
    // Test files are not interpolated: they describe data, exactly.
    let node = yaml::parse(&text, file, &Env::from_pairs([]), &mut diags);
    let Some(node) = node.filter(|_| !diags.has_errors()) else {
        return Err(render::text(&diags, Format::Human));
    };
    let value = yaml::to_json(&node, &mut yaml::SpanMap::new());
    serde_json::from_value::<TestFile>(value)
        .map(|t| t.tests)
        .map_err(|e| format!("{}: not a valid test file: {e}", path.display()))
}

/// The line an `input` record is read as: its compact JSON, except a
/// string under `decode: text`, which is the line itself.
fn input_line(format: crate::decode::Format, v: &Value) -> Vec<u8> {
    match (format, v) {
        (crate::decode::Format::Text, Value::String(s)) => s.as_bytes().to_vec(),
        _ => serde_json::to_vec(v).unwrap_or_default(),
    }
}

fn run_case(built: &Arc<Built>, case: &Case) -> Result<(), String> {
    let mut worker = Worker::new(Arc::clone(built))?;
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
        })
        .collect();
    let out = match worker.process(&batch, &case.now) {
        Ok(out) => out,
        Err(fatal) => {
            return match &case.expect.fails {
                Some(part) if fatal.0.contains(part.as_str()) => Ok(()),
                _ => Err(format!("  the run stopped: {}", fatal.0)),
            };
        }
    };
    let mut problems = String::new();
    if let Some(part) = &case.expect.fails {
        problems.push_str(&format!(
            "  expected the run to stop with an error containing {part:?}, but it did not\n"
        ));
    }
    for name in case.expect.sinks.keys() {
        if !built.sink_names.contains(name) {
            problems.push_str(&format!(
                "  the test expects sink `{name}`, which the pipeline does not have\n"
            ));
        }
    }
    for (i, name) in built.sink_names.iter().enumerate() {
        let actual: Vec<Value> = out.sinks[i]
            .bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
            .collect();
        let expected = case.expect.sinks.get(name).cloned().unwrap_or_default();
        if !same_records(&expected, &actual) {
            problems.push_str(&format!("  sink `{name}` (- expected, + actual):\n"));
            problems.push_str(&diff(&expected, &actual));
        }
    }
    let dlq: Vec<Value> = out
        .dlq
        .bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
        .collect();
    let entry_ok = |a: &Value, e: &ExpectDlq| {
        a["stage"] == Value::String(e.stage.as_str().into())
            && e.error.as_ref().is_none_or(|part| {
                a["error"]
                    .as_str()
                    .is_some_and(|t| t.contains(part.as_str()))
            })
    };
    let dlq_ok = dlq.len() == case.expect.dlq.len()
        && dlq
            .iter()
            .zip(&case.expect.dlq)
            .all(|(a, e)| entry_ok(a, e));
    if !dlq_ok {
        problems.push_str("  dlq:\n");
        for i in 0..dlq.len().max(case.expect.dlq.len()) {
            let want = case.expect.dlq.get(i).map(|e| match &e.error {
                Some(part) => format!("stage {}, error containing {part:?}", e.stage.as_str()),
                None => format!("stage {}", e.stage.as_str()),
            });
            let got = dlq.get(i).map(|a| {
                format!(
                    "stage {}, error {}",
                    a["stage"].as_str().unwrap_or("?"),
                    a["error"]
                )
            });
            let line = match (want, got) {
                (Some(_), Some(g)) if entry_ok(&dlq[i], &case.expect.dlq[i]) => {
                    format!("    #{} ok: {g}\n", i + 1)
                }
                (Some(w), Some(g)) => format!("    #{} expected {w}\n       got      {g}\n", i + 1),
                (Some(w), None) => {
                    format!("    #{} expected {w}\n       got      nothing\n", i + 1)
                }
                (None, Some(g)) => format!("    #{} unexpected: {g}\n", i + 1),
                (None, None) => String::new(),
            };
            problems.push_str(&line);
        }
    }
    let c = &out.counts;
    for (what, expected, actual) in [
        ("filtered", case.expect.filtered, c.filtered),
        (
            "dropped_invalid",
            case.expect.dropped_invalid,
            c.dropped_invalid,
        ),
        ("unrouted", case.expect.unrouted, c.unrouted),
    ] {
        if expected != actual {
            problems.push_str(&format!("  {what}: expected {expected}, got {actual}\n"));
        }
    }
    if !c.balanced() {
        problems.push_str("  the counts do not add up\n");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Records compare as JSON values, with numbers compared by value: `120`
/// and `120.0` are the same number (as in JavaScript or Python).
fn same_records(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
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
}
