//! The shape pass: the YAML (as JSON) against the format's JSON Schema, every
//! error turned into a diagnostic at the offending key or value.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::check::Cx;
use super::schema::pipeline_schema;
use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};

/// A file format the shape pass checks: its schema, and how to name the
/// thing at a JSON pointer in a diagnostic.
pub struct FileFormat {
    /// The format's JSON Schema.
    pub schema: fn() -> &'static Value,
    /// The format's schema, compiled.
    pub validator: fn() -> &'static jsonschema::Validator,
    /// "sink `archive` (type file)" for `/sinks/archive`.
    pub describe: fn(&Value, &str) -> String,
}

/// The pipeline format.
pub const PIPELINE: FileFormat = FileFormat {
    schema: pipeline_schema,
    validator,
    describe,
};

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| compile(pipeline_schema()))
}

/// A generated schema, compiled.
pub fn compile(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .expect("a generated schema compiles")
}

/// Reports every shape error of the pipeline.
pub fn check(cx: &Cx<'_>, diags: &mut Diagnostics) {
    check_as(&PIPELINE, cx, diags);
}

/// Reports every shape error of a file of `format`.
pub fn check_as(format: &FileFormat, cx: &Cx<'_>, diags: &mut Diagnostics) {
    let mut seen = std::collections::HashSet::new();
    for err in (format.validator)().iter_errors(cx.value) {
        let pointer = err.instance_path().as_str().to_owned();
        let schema_path = err.schema_path().as_str().to_owned();
        for d in diagnose(
            format,
            cx,
            &pointer,
            &schema_path,
            err.kind(),
            err.instance(),
            &err.to_string(),
        ) {
            if seen.insert((d.message.clone(), d.span.clone().map(|s| s.1.start))) {
                diags.push(d);
            }
        }
    }
}

fn diagnose(
    format: &FileFormat,
    cx: &Cx<'_>,
    pointer: &str,
    schema_path: &str,
    kind: &ValidationErrorKind,
    instance: &Value,
    fallback: &str,
) -> Vec<Diagnostic> {
    let what = (format.describe)(cx.value, pointer);
    let schema = (format.schema)();
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_properties(schema, schema_path);
            unexpected
                .iter()
                .map(|name| {
                    let child = format!("{pointer}/{}", escape(name));
                    let mut d = Diagnostic::error(Code::UnknownField, format!("`{name}` is not a field of {what}"))
                        .at(cx.file, cx.key_span(&child));
                    if let Some(s) = did_you_mean(name, allowed.iter().map(String::as_str)) {
                        d = d.help(format!("did you mean `{s}`?"));
                    } else if !allowed.is_empty() {
                        d = d.help(format!("the fields of {what} are: {}", list(&allowed)));
                    }
                    d
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![
                Diagnostic::error(Code::MissingField, format!("{what} is missing `{name}`"))
                    .at(cx.file, cx.key_span(pointer)),
            ]
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => article(&t.to_string()),
                TypeKind::Multiple(ts) => ts.iter().map(|t| article(&t.to_string())).collect::<Vec<_>>().join(" or "),
            };
            vec![
                Diagnostic::error(
                    Code::WrongType,
                    format!("{what} must be {expected}, not {}", json_type(instance)),
                )
                .at(cx.file, cx.value_span(pointer)),
            ]
        }
        ValidationErrorKind::Enum { options } => {
            let names: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned)).collect())
                .unwrap_or_default();
            vec![not_one_of(cx, pointer, &what, instance, &names)]
        }
        ValidationErrorKind::Constant { expected_value } if pointer == "/version" => vec![
            Diagnostic::error(
                Code::UnsupportedVersion,
                format!("pipeline format version {instance} is not supported: this sluice reads version {expected_value}"),
            )
            .at(cx.file, cx.value_span(pointer))
            .help(format!("write `version: {expected_value}`")),
        ],
        ValidationErrorKind::MinItems { .. } | ValidationErrorKind::MinProperties { .. } => vec![
            Diagnostic::error(Code::MissingField, format!("{what} must not be empty")).at(cx.file, cx.value_span(pointer)),
        ],
        ValidationErrorKind::MinLength { .. } => vec![
            Diagnostic::error(Code::InvalidValue, format!("{what} must not be empty")).at(cx.file, cx.value_span(pointer)),
        ],
        ValidationErrorKind::Minimum { limit } => vec![
            Diagnostic::error(Code::InvalidValue, format!("{what} must be at least {limit}"))
                .at(cx.file, cx.value_span(pointer)),
        ],
        ValidationErrorKind::OneOfNotValid { .. } if !consts_at(schema, schema_path).is_empty() => {
            vec![not_one_of(cx, pointer, &what, instance, &consts_at(schema, schema_path))]
        }
        ValidationErrorKind::Pattern { pattern } if pattern.contains("[a-zµ]") => {
            let given = instance.as_str().unwrap_or_default();
            vec![
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{given}` is not a valid {what}: write a duration with its unit"),
                )
                .at(cx.file, cx.value_span(pointer))
                .help("for example `100ms`, `30s`, `5m` or `1h`"),
            ]
        }
        // `if`/`then` and `allOf` wrappers report their branch's own errors separately.
        ValidationErrorKind::FalseSchema => vec![],
        _ => vec![
            Diagnostic::error(Code::InvalidValue, format!("{what}: {fallback}")).at(cx.file, cx.value_span(pointer)),
        ],
    }
}

/// "`x` is not a valid <what>: expected one of …", with a suggestion when one is close.
fn not_one_of(
    cx: &Cx<'_>,
    pointer: &str,
    what: &str,
    instance: &Value,
    names: &[String],
) -> Diagnostic {
    let given = instance
        .as_str()
        .map_or_else(|| instance.to_string(), str::to_owned);
    let d = Diagnostic::error(
        Code::InvalidValue,
        format!(
            "`{given}` is not a valid {what}: expected one of {}",
            list(names)
        ),
    )
    .at(cx.file, cx.value_span(pointer));
    match did_you_mean(&given, names.iter().map(String::as_str)) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d,
    }
}

/// The constants of a `oneOf` whose branches are all `const` (documented enums).
fn consts_at(schema: &Value, schema_path: &str) -> Vec<String> {
    let Some(branches) = schema.pointer(schema_path).and_then(Value::as_array) else {
        return Vec::new();
    };
    let consts: Vec<String> = branches
        .iter()
        .filter_map(|b| b.get("const").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if consts.len() == branches.len() {
        consts
    } else {
        Vec::new()
    }
}

/// The property names the schema allows where `additionalProperties` failed.
fn allowed_properties(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    schema
        .pointer(&format!("{parent}/properties"))
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// A readable name for the thing at a JSON pointer: "sink `archive` (type file)".
pub fn describe(root: &Value, pointer: &str) -> String {
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let type_of = |ptr: &str| {
        root.pointer(&format!("{ptr}/type"))
            .and_then(Value::as_str)
            .map(|t| format!(" (type {t})"))
            .unwrap_or_default()
    };
    match parts.as_slice() {
        [] => "the pipeline".into(),
        [s] if s == "source" || s == "dlq" => format!("`{s}`{}", type_of(pointer)),
        [s, name] if s == "sinks" => format!("sink `{name}`{}", type_of(pointer)),
        [s, i] if s == "transforms" => {
            let name = root
                .pointer(&format!("{pointer}/name"))
                .and_then(Value::as_str);
            match name {
                Some(n) => format!("transform `{n}`"),
                None => format!("transform #{}", i.parse::<usize>().map_or(0, |i| i + 1)),
            }
        }
        [s, i] if s == "routes" => format!("route #{}", i.parse::<usize>().map_or(0, |i| i + 1)),
        [s, name] if s == "schemas" => format!("schema `{name}`"),
        // A field inside a component: "`path` of sink `archive` (type file)".
        [s, _, rest @ ..] if ["sinks", "transforms", "routes", "schemas"].contains(&s.as_str()) => {
            let component = pointer.split('/').take(3).collect::<Vec<_>>().join("/");
            field_of(rest, &describe(root, &component))
        }
        [s, rest @ ..] if s == "source" || s == "dlq" => {
            field_of(rest, &describe(root, &format!("/{s}")))
        }
        _ => format!("`{}`", parts.join(".")),
    }
}

/// "`path` of sink `archive` (type file)"; for the `type` field itself, without the type.
fn field_of(field: &[String], component: &str) -> String {
    let component = match field {
        [f] if f == "type" => component.split(" (type ").next().unwrap_or(component),
        _ => component,
    };
    format!("`{}` of {component}", field.join("."))
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn article(t: &str) -> String {
    match t {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "an integer".into(),
        "null" => "empty".into(),
        "boolean" => "true or false".into(),
        other => format!("a {other}"),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
