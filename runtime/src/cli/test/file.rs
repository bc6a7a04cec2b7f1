//! The test file format, its JSON Schema, and reading a test file with the
//! diagnostics of `sluice check`: every error at once, at its line and
//! column, with did-you-mean; a broken case does not keep the others from
//! running.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::Env;
use crate::config::check::Cx;
use crate::config::shape::{self, FileFormat};
use crate::config::yaml::{self, SpanMap};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::record::Stage;

/// A test file: the cases of a pipeline (`tests/*.yaml` beside it).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TestFile", title = "Sluice test file")]
pub struct TestFile {
    /// The cases, run in order.
    pub tests: Vec<Case>,
}

/// One test case: input records and the outcome expected for them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in the output; `sluice test --filter` selects by it.
    pub name: String,
    /// `meta.batch_time` for the case, and the envelopes' `timestamp`.
    #[serde(default = "default_now")]
    pub now: String,
    /// Records, each read as one line of compact JSON (a string under
    /// `decode: text`: the line itself).
    #[serde(default)]
    pub input: Vec<Value>,
    /// Raw lines, exactly as the source would read them (after `input`).
    #[serde(default)]
    pub input_lines: Vec<String>,
    /// Rows of lookup tables for this case, by table name, instead of the
    /// table's own: each row an object with the table's key field.
    #[serde(default)]
    pub lookups: BTreeMap<String, Vec<Value>>,
    /// The expected outcome.
    pub expect: Expect,
}

/// The expected outcome of a case.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Per sink, the exact records it receives, in order. A sink named
    /// neither here nor in `contains` must receive nothing.
    #[serde(default)]
    pub sinks: BTreeMap<String, Vec<Value>>,
    /// Per sink, its records in order, each given by a part of it: the keys
    /// named must be there with these values (at every depth); others may be too.
    #[serde(default)]
    pub contains: BTreeMap<String, Vec<Value>>,
    /// The dead-lettered records, in order.
    #[serde(default)]
    pub dlq: Vec<ExpectDlq>,
    /// How many records the transforms filtered.
    #[serde(default)]
    pub filtered: u64,
    /// How many invalid records were dropped (`on_invalid: drop`).
    #[serde(default)]
    pub dropped_invalid: u64,
    /// How many records no route took (`unrouted: drop`).
    #[serde(default)]
    pub unrouted: u64,
    /// How many records were dropped as duplicates (`dedup:`).
    #[serde(default)]
    pub deduplicated: u64,
    /// How many records went into the aggregate and to no route.
    #[serde(default)]
    pub aggregated: u64,
    /// How many extra records transforms made by returning arrays (compared when given).
    #[serde(default)]
    pub fanned_out: Option<u64>,
    /// How many records every sink they were routed to received (compared when given).
    #[serde(default)]
    pub delivered: Option<u64>,
    /// Dead-lettered records per stage (compared when given; a stage not named: 0).
    #[serde(default)]
    pub dead_lettered: Option<StageCounts>,
    /// The case stops the run with an error containing this text.
    #[serde(default)]
    pub fails: Option<String>,
}

/// An expected dead letter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectDlq {
    /// The stage the record was dead-lettered at.
    pub stage: Stage,
    /// The transform or sink (the envelope's `step`).
    #[serde(default)]
    pub step: Option<String>,
    /// A part of the envelope's error text.
    #[serde(default)]
    pub error: Option<String>,
}

/// Dead-lettered records per stage.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageCounts {
    /// Framing (size limits, base64).
    #[serde(default)]
    pub decode: u64,
    /// Parsing (JSON, UTF-8).
    #[serde(default)]
    pub parse: u64,
    /// The schema.
    #[serde(default)]
    pub validate: u64,
    /// A transform.
    #[serde(default)]
    pub transform: u64,
    /// The routes.
    #[serde(default)]
    pub route: u64,
    /// The deduplication key.
    #[serde(default)]
    pub dedup: u64,
    /// A lookup table that could not be read.
    #[serde(default)]
    pub lookup: u64,
    /// The aggregate (no event time, late, too many windows).
    #[serde(default)]
    pub aggregate: u64,
    /// A sink's rejection.
    #[serde(default)]
    pub sink: u64,
}

impl StageCounts {
    /// In the order of [`Stage::ALL`].
    pub fn as_array(&self) -> [u64; 9] {
        [
            self.decode,
            self.parse,
            self.validate,
            self.transform,
            self.lookup,
            self.aggregate,
            self.route,
            self.dedup,
            self.sink,
        ]
    }
}

fn default_now() -> String {
    "2026-01-01T00:00:00.000Z".into()
}

/// The schema's `$id`.
pub const SCHEMA_ID: &str = "https://sluice.dev/schema/test.schema.json";

/// The test file format's JSON Schema (`schema/test.schema.json`).
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| crate::config::schema::generate_for::<TestFile>(SCHEMA_ID))
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| shape::compile(schema()))
}

/// The test file format, for the shape pass.
const TESTS: FileFormat = FileFormat {
    schema,
    validator,
    describe,
};

/// "`expect.sinks` of case `paid plans`" for `/tests/0/expect/sinks`.
fn describe(root: &Value, pointer: &str) -> String {
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    match parts.as_slice() {
        [] => "the test file".into(),
        ["tests", i, rest @ ..] => {
            let case = case_name(root, i);
            if rest.is_empty() {
                case
            } else {
                format!("`{}` of {case}", rest.join("."))
            }
        }
        _ => format!("`{}`", parts.join(".")),
    }
}

fn case_name(root: &Value, index: &str) -> String {
    match root
        .pointer(&format!("/tests/{index}/name"))
        .and_then(Value::as_str)
    {
        Some(n) => format!("case `{n}`"),
        None => format!("case #{}", index.parse::<usize>().map_or(0, |i| i + 1)),
    }
}

/// A test file read: its cases (`None` for one that is broken), and every
/// problem found in it.
pub struct Read {
    /// Per case in the file, in order: the case, or its name when it is broken.
    pub cases: Vec<Result<Case, String>>,
    /// Problems of the file; errors make it fail.
    pub diags: Diagnostics,
    /// The file's text, for rewriting it (`--bless`).
    pub text: String,
    /// Where each value is in the text.
    pub spans: SpanMap,
}

/// Reads a test file of the pipeline whose sinks are `sinks`. An error
/// when the file cannot be read at all.
pub fn read(path: &Path, sinks: &[String]) -> Result<Read, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut diags = Diagnostics::default();
    let file = diags.sources.add(path.display().to_string(), text.clone());
    // Test files are not interpolated: they describe data, exactly.
    let node = yaml::parse(&text, file, &Env::from_pairs([]), &mut diags);
    let mut spans = SpanMap::new();
    let Some(node) = node else {
        return Ok(Read {
            cases: Vec::new(),
            diags,
            text,
            spans,
        });
    };
    let value = yaml::to_json(&node, &mut spans);
    let cx = Cx {
        file,
        spans: &spans,
        value: &value,
        text: &text,
    };
    shape::check_as(&TESTS, &cx, &mut diags);
    let mut cases = Vec::new();
    for (i, case) in value
        .get("tests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = case_name(&value, &i.to_string());
        match serde_json::from_value::<Case>(case.clone()) {
            Ok(c) => {
                let known = known_sinks(&cx, i, &c, sinks, &mut diags);
                cases.push(if known { Ok(c) } else { Err(name) });
            }
            Err(_) => cases.push(Err(name)),
        }
    }
    diags.sort();
    Ok(Read {
        cases,
        diags,
        text,
        spans,
    })
}

/// Whether every sink the case names is one of the pipeline's, once in
/// `sinks` and `contains` together; reports those that are not.
fn known_sinks(
    cx: &Cx<'_>,
    i: usize,
    case: &Case,
    sinks: &[String],
    diags: &mut Diagnostics,
) -> bool {
    let mut ok = true;
    let what = case_name(cx.value, &i.to_string());
    for (key, names) in [
        ("sinks", &case.expect.sinks),
        ("contains", &case.expect.contains),
    ] {
        for name in names.keys() {
            let pointer = format!(
                "/tests/{i}/expect/{key}/{}",
                name.replace('~', "~0").replace('/', "~1")
            );
            if !sinks.contains(name) {
                ok = false;
                let mut d = Diagnostic::error(
                    Code::UnknownReference,
                    format!(
                        "{what} expects records in sink `{name}`, which the pipeline does not have"
                    ),
                )
                .at(cx.file, cx.key_span(&pointer));
                d = match did_you_mean(name, sinks.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!(
                        "the pipeline's sinks are: {}",
                        sinks
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                diags.push(d);
            } else if key == "contains" && case.expect.sinks.contains_key(name) {
                ok = false;
                diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("{what} gives sink `{name}` in both `sinks` and `contains`"),
                    )
                    .at(cx.file, cx.key_span(&pointer))
                    .help("keep one: `sinks` for the exact records, `contains` for parts of them"),
                );
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schema/test.schema.json` is what `sluice schema --tests` prints.
    #[test]
    fn checked_in_schema_is_up_to_date() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/test.schema.json");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let mut text = serde_json::to_string_pretty(schema()).unwrap();
        text.push('\n');
        assert!(
            on_disk == text,
            "schema/test.schema.json is stale: run `cargo run -- schema --tests > schema/test.schema.json`"
        );
    }

    #[test]
    fn a_case_is_named_in_diagnostics() {
        let root = serde_json::json!({"tests": [{"name": "paid"}, {}]});
        assert_eq!(
            describe(&root, "/tests/0/expect/sinks"),
            "`expect.sinks` of case `paid`"
        );
        assert_eq!(describe(&root, "/tests/1"), "case #2");
        assert_eq!(describe(&root, ""), "the test file");
        assert_eq!(describe(&root, "/tsets"), "`tsets`");
    }
}
