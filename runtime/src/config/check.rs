//! Cross-reference and file checks that a schema cannot express: routes to
//! sinks that exist, unused sinks, schema files, and every script compiled
//! with its errors mapped to the line and column inside the YAML file.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use saphyr_parser::ScalarStyle;
use serde_json::Value;

use super::pipeline::Pipeline;
use super::resolve;
use super::yaml::SpanMap;
use crate::diagnostics::{
    At, Code, Diagnostic, Diagnostics, FileId, Finding, SourceFile, did_you_mean,
};
use crate::transform::{self, SyntaxError};
use crate::validate::{self, SchemaSource};

/// What the passes need to point into the pipeline file.
pub struct Cx<'a> {
    /// The pipeline file.
    pub file: FileId,
    /// Origins by JSON pointer.
    pub spans: &'a SpanMap,
    /// The pipeline as JSON.
    pub value: &'a Value,
    /// The pipeline file's text.
    pub text: &'a str,
}

/// The span of the value at `pointer` in `spans`, or of its nearest ancestor.
pub fn value_span(spans: &SpanMap, pointer: &str) -> Range<usize> {
    let mut p = pointer;
    loop {
        if let Some(o) = spans.get(p) {
            return o.value.clone();
        }
        match p.rfind('/') {
            Some(i) => p = &p[..i],
            None => return 0..0,
        }
    }
}

impl Cx<'_> {
    /// The span of the value at `pointer`, or of its nearest ancestor.
    pub fn value_span(&self, pointer: &str) -> Range<usize> {
        value_span(self.spans, pointer)
    }

    /// The span of the key at `pointer` (the value's when there is no key;
    /// for the whole document, its first line).
    pub fn key_span(&self, pointer: &str) -> Range<usize> {
        match self.spans.get(pointer).and_then(|o| o.key.clone()) {
            Some(k) => k,
            None if pointer.is_empty() => {
                let all = self.value_span("");
                all.start..all.start + self.first_line_len(all.start)
            }
            None => self.value_span(pointer),
        }
    }

    /// A component's finding about its config at `pointer`, as a diagnostic
    /// at its place in the file; one about the whole component names it.
    pub fn finding(&self, pointer: &str, f: Finding) -> Diagnostic {
        let (message, span) = match f.at {
            At::Whole => (
                format!(
                    "{}: {}",
                    super::shape::describe(self.value, pointer),
                    f.message
                ),
                self.key_span(pointer),
            ),
            At::Key(field) => (f.message, self.key_span(&format!("{pointer}/{field}"))),
            At::Value(field) => (f.message, self.value_span(&format!("{pointer}/{field}"))),
        };
        let d = Diagnostic::error(f.code, message).at(self.file, span);
        match f.help {
            Some(h) => d.help(h),
            None => d,
        }
    }

    fn first_line_len(&self, start: usize) -> usize {
        let root = self.spans.get("").map_or(0..0, |o| o.value.clone());
        let len = root.end.saturating_sub(start);
        self.text
            .get(start..start + len)
            .map_or(0, |t| t.find('\n').unwrap_or(t.len()))
    }
}

/// Runs the checks. Returns the loaded schema documents and the transform sources.
pub fn check(
    cx: &Cx<'_>,
    p: &Pipeline,
    dir: &Path,
    diags: &mut Diagnostics,
) -> (
    HashMap<String, Value>,
    Vec<String>,
    Places,
    crate::lookup::Tables,
) {
    let schemas = check_schemas(cx, p, dir, diags);
    if let Some(v) = &p.validate
        && !p.schemas.contains_key(&v.schema)
    {
        let mut d = Diagnostic::error(
            Code::UnknownReference,
            format!("schema `{}` is not defined under `schemas`", v.schema),
        )
        .at(cx.file, cx.value_span("/validate/schema"));
        if let Some(s) = did_you_mean(&v.schema, p.schemas.keys().map(String::as_str)) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        diags.push(d);
    }
    let engine = transform::engine(&p.limits);
    let scripts = check_transforms(cx, p, dir, &engine, diags);
    check_routes(cx, p, &engine, diags);
    check_dedup(cx, p, &engine, diags);
    check_aggregate(cx, p, &engine, diags);
    check_source(cx, p, diags);
    let places = places(cx, p, dir, &scripts, diags);
    let lookups = check_lookups(cx, p, dir, &scripts, &places, diags);
    (schemas, scripts, places, lookups)
}

/// Loads the lookup tables, reporting a file that cannot be read at its
/// `path`; and reports a `lookup("name", …)` of a script whose table does
/// not exist.
fn check_lookups(
    cx: &Cx<'_>,
    p: &Pipeline,
    dir: &Path,
    scripts: &[String],
    places: &Places,
    diags: &mut Diagnostics,
) -> crate::lookup::Tables {
    let mut tables = crate::lookup::Tables::default();
    for (name, config) in &p.lookups {
        match crate::lookup::Tables::load_one(name, config, &|path| resolve(dir, path)) {
            Ok(table) => tables.insert(name, table),
            Err(e) => {
                let pointer = format!(
                    "/lookups/{}/path",
                    name.replace('~', "~0").replace('/', "~1")
                );
                diags.push(Diagnostic::error(Code::Io, e).at(cx.file, cx.value_span(&pointer)));
            }
        }
    }
    let names: Vec<&str> = p.lookups.keys().map(String::as_str).collect();
    let all = p.all_transforms();
    let sources = all
        .iter()
        .zip(scripts)
        .zip(&places.transforms)
        .map(|(((_, t), src), place)| (Some(t.name.as_str()), src.as_str(), place))
        .chain(
            p.routes
                .iter()
                .zip(&places.routes)
                .filter_map(|(r, place)| r.when.as_deref().map(|w| (None, w, place))),
        );
    for (transform, src, place) in sources {
        for call in transform::lint::lookup_calls(src) {
            if names.contains(&call.name.as_str()) {
                continue;
            }
            let mut d = Diagnostic::error(
                Code::UnknownReference,
                format!(
                    "{} reads lookup `{}`, which is not defined under `lookups`",
                    match transform {
                        Some(t) => format!("transform `{t}`"),
                        None => "a route's condition".to_owned(),
                    },
                    call.name
                ),
            );
            if let Some((file, span)) = place_span(diags, place, call.line, call.column) {
                // The name with its quotes.
                d = d.at(file, span.start..span.start + call.name.len() + 2);
            }
            d = match did_you_mean(&call.name, names.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None if names.is_empty() => d.help("add the table under `lookups:`"),
                None => d.help(format!(
                    "the lookups are: {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            diags.push(d);
        }
    }
    tables
}

/// Where line `line`, column `column` of a script is, in the file that
/// holds it (the script file, or the pipeline file for an inline script).
fn place_span(
    diags: &mut Diagnostics,
    place: &transform::Place,
    line: usize,
    column: usize,
) -> Option<(FileId, Range<usize>)> {
    let id = diags.sources.find(&place.file)?;
    let f = diags.sources.get(id);
    let off = match place.lines.get(line.saturating_sub(1)) {
        // Inline: the line's start in the pipeline file, then the column.
        Some((l, c)) => f.offset(*l, c.saturating_sub(1) + column.saturating_sub(1)),
        None => f.offset(line, column.saturating_sub(1)),
    };
    Some((id, off..word_end(&f.text, off)))
}

/// Where the pipeline's scripts are written.
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// Per transform.
    pub transforms: Vec<transform::Place>,
    /// Per route (an empty place for a route without a condition).
    pub routes: Vec<transform::Place>,
}

/// Each script's place: a script file is its own; an inline script or
/// condition maps each of its lines to the pipeline file's line and column.
fn places(
    cx: &Cx<'_>,
    p: &Pipeline,
    dir: &Path,
    scripts: &[String],
    diags: &Diagnostics,
) -> Places {
    let file = diags.sources.get(cx.file);
    let inline = |pointer: &str, source: &str| transform::Place {
        file: file.name.clone(),
        lines: (1..=source.lines().count().max(1))
            .map(|line| {
                let at = SyntaxError {
                    message: String::new(),
                    line,
                    column: 1,
                };
                file.line_col(script_span(cx, file, pointer, &at).start)
            })
            .collect(),
    };
    let transforms = p
        .all_transforms()
        .into_iter()
        .zip(scripts)
        .map(|((pointer, t), src)| match &t.file {
            Some(path) => transform::Place {
                file: resolve(dir, path).display().to_string(),
                lines: Vec::new(),
            },
            None => inline(&format!("{pointer}/script"), src),
        })
        .collect();
    let routes = p
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| match &r.when {
            Some(w) => inline(&format!("/routes/{i}/when"), w),
            None => transform::Place::default(),
        })
        .collect();
    Places { transforms, routes }
}

/// The aggregate's reducers, the routes that take its records, and the
/// sources it runs with.
fn check_aggregate(cx: &Cx<'_>, p: &Pipeline, engine: &rhai::Engine, diags: &mut Diagnostics) {
    let name = p.aggregate.as_ref().map(|a| a.name.as_str());
    for (i, r) in p.routes.iter().enumerate() {
        if let Some(from) = &r.from
            && Some(from.as_str()) != name
        {
            let d = Diagnostic::error(
                Code::UnknownReference,
                format!(
                    "route #{} takes the records of aggregate `{from}`, which is not defined",
                    i + 1
                ),
            )
            .at(cx.file, cx.value_span(&format!("/routes/{i}/from")));
            diags.push(match name {
                Some(n) => d.help(format!("the aggregate is `{n}`")),
                None => d.help("define it under `aggregate:`"),
            });
        }
    }
    let Some(a) = &p.aggregate else {
        return;
    };
    if !p
        .routes
        .iter()
        .any(|r| r.from.as_deref() == Some(a.name.as_str()))
    {
        diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("no route takes the records of aggregate `{}`", a.name),
            )
            .at(cx.file, cx.value_span("/aggregate/name"))
            .help(format!(
                "add a route such as `{{ from: {}, to: [SINK] }}`",
                a.name
            )),
        );
    }
    let source = p.source.type_name();
    if !matches!(source, "file" | "stdin" | "kinesis" | "dynamodb_streams") {
        diags.push(
            Diagnostic::error(
                Code::UnsupportedMode,
                format!("`aggregate` runs with a `file`, `stdin`, `kinesis` or `dynamodb_streams` source, not with `{source}`: its records are in no order to keep windows by (and in Lambda, its event source mapping has no tumbling windows)"),
            )
            .at(cx.file, cx.key_span("/aggregate"))
            .help("docs/aggregate.md says what runs where"),
        );
    }

    for (name, emit) in &a.emit {
        let pointer = format!(
            "/aggregate/emit/{}",
            name.replace('~', "~0").replace('/', "~1")
        );
        match emit {
            crate::aggregate::Emit::Reducer(written) => {
                if let Err(e) = crate::aggregate::reduce::parse(written) {
                    diags.push(
                        Diagnostic::error(Code::InvalidValue, e)
                            .at(cx.file, cx.value_span(&pointer)),
                    );
                }
            }
            crate::aggregate::Emit::Script(s) => {
                for (part, text) in s.parts() {
                    let pointer = format!("{pointer}/{}", part.name());
                    let syntax = transform::syntax::brackets(text)
                        .or_else(|| crate::aggregate::script::compile(engine, part, text).err());
                    if let Some(err) = syntax {
                        let span = script_span(cx, diags.sources.get(cx.file), &pointer, &err);
                        diags.push(
                            Diagnostic::error(
                                Code::ScriptSyntax,
                                format!("reducer `{name}` ({}): {}", part.name(), err.message),
                            )
                            .at(cx.file, span),
                        );
                    }
                }
            }
        }
    }
    if a.window.tumbling.0.is_zero() {
        diags.push(
            Diagnostic::error(Code::InvalidValue, "`window.tumbling` is zero")
                .at(cx.file, cx.value_span("/aggregate/window/tumbling")),
        );
    }
}

/// The dedup key compiles (when it is an expression) and the time to live is not zero.
fn check_dedup(cx: &Cx<'_>, p: &Pipeline, engine: &rhai::Engine, diags: &mut Diagnostics) {
    let Some(d) = &p.dedup else {
        return;
    };
    if p.source.type_name() == "firehose" {
        diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                "`dedup` cannot be used with a `firehose` source: Firehose delivers the records the function answers with, so a key would be remembered before Firehose has its record, and a retried invocation would lose it",
            )
            .at(cx.file, cx.key_span("/dedup"))
            .help("drop duplicates where Firehose delivers them, or read the records from a stream"),
        );
    }
    if d.ttl.0.is_zero() {
        diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                "`dedup.ttl` is zero: no key would be remembered",
            )
            .at(cx.file, cx.value_span("/dedup/ttl"))
            .help("give how long a delivered key is remembered, such as `24h`"),
        );
    }
    if let crate::dedup::Key::Expr(e) = crate::dedup::Key::parse(&d.key) {
        let syntax = transform::syntax::brackets(&e)
            .or_else(|| transform::compile_condition(engine, &e).err());
        if let Some(err) = syntax {
            let span = script_span(cx, diags.sources.get(cx.file), "/dedup/key", &err);
            diags.push(
                Diagnostic::error(Code::ScriptSyntax, format!("dedup key: {}", err.message))
                    .at(cx.file, span)
                    .help("a field path (`order_id`, `record.customer.id`) or a Rhai expression over `record` and `meta`"),
            );
        }
    }
}

fn check_source(cx: &Cx<'_>, p: &Pipeline, diags: &mut Diagnostics) {
    for f in p.source.check().list {
        diags.push(cx.finding("/source", f));
    }
}

fn check_schemas(
    cx: &Cx<'_>,
    p: &Pipeline,
    dir: &Path,
    diags: &mut Diagnostics,
) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for (name, src) in &p.schemas {
        let pointer = format!("/schemas/{}", name.replace('~', "~0").replace('/', "~1"));
        let at = cx.value_span(&pointer);
        let doc = match src {
            SchemaSource::Inline(map) => Value::Object(map.clone()),
            SchemaSource::Path(path) => {
                let full = resolve(dir, path);
                let text = match super::read_regular(&full) {
                    Ok(t) => t,
                    Err(e) => {
                        diags.push(
                            Diagnostic::error(
                                Code::InvalidSchema,
                                format!("schema file `{path}` cannot be read: {e}"),
                            )
                            .at(cx.file, at),
                        );
                        continue;
                    }
                };
                match serde_json::from_str::<Value>(&text) {
                    Ok(v) => v,
                    Err(e) => {
                        let id = diags.sources.add(full.display().to_string(), text);
                        let f = diags.sources.get(id);
                        let off = f.offset(e.line(), e.column().saturating_sub(1));
                        diags.push(
                            Diagnostic::error(
                                Code::InvalidSchema,
                                format!("schema file `{path}` is not valid JSON: {e}"),
                            )
                            .at(id, off..(off + 1).min(f.text.len())),
                        );
                        continue;
                    }
                }
            }
        };
        match validate::check_schema(&doc) {
            Ok(()) => {
                out.insert(name.clone(), doc);
            }
            Err(e) => diags.push(
                Diagnostic::error(
                    Code::InvalidSchema,
                    format!("schema `{name}` is not a valid JSON Schema: {e}"),
                )
                .at(cx.file, at),
            ),
        }
    }
    out
}

fn check_transforms(
    cx: &Cx<'_>,
    p: &Pipeline,
    dir: &Path,
    engine: &rhai::Engine,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut names = HashSet::new();
    let mut scripts = Vec::new();
    for (pointer, t) in p.all_transforms() {
        if !names.insert(t.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    Code::DuplicateName,
                    format!("two transforms are named `{}`", t.name),
                )
                .at(cx.file, cx.value_span(&format!("{pointer}/name")))
                .help("give each transform its own name"),
            );
        }
        match (&t.script, &t.file) {
            (Some(src), None) => {
                let errors = transform::syntax::errors(engine, src);
                for e in &errors {
                    let span = script_span(
                        cx,
                        diags.sources.get(cx.file),
                        &format!("{pointer}/script"),
                        e,
                    );
                    diags.push(script_error(&t.name, e, cx.file, span));
                }
                // A script that does not compile has its errors reported; only
                // one that does is looked at for mistakes.
                let mistakes = if errors.is_empty() {
                    transform::lint::transform(src)
                } else {
                    Vec::new()
                };
                for f in mistakes {
                    let at = SyntaxError {
                        message: String::new(),
                        line: f.line,
                        column: f.column,
                    };
                    let span = script_span(
                        cx,
                        diags.sources.get(cx.file),
                        &format!("{pointer}/script"),
                        &at,
                    );
                    diags.push(script_mistake(&t.name, f, cx.file, span));
                }
                scripts.push(src.clone());
            }
            (None, Some(path)) => {
                let full = resolve(dir, path);
                match super::read_regular(&full) {
                    Ok(src) => {
                        let id = diags.sources.add(full.display().to_string(), src.clone());
                        let errors = transform::syntax::errors(engine, &src);
                        for e in &errors {
                            let f = diags.sources.get(id);
                            let off = f.offset(e.line, e.column.saturating_sub(1));
                            let span = off..word_end(&f.text, off);
                            diags.push(script_error(&t.name, e, id, span));
                        }
                        let mistakes = if errors.is_empty() {
                            transform::lint::transform(&src)
                        } else {
                            Vec::new()
                        };
                        for m in mistakes {
                            let f = diags.sources.get(id);
                            let off = f.offset(m.line, m.column.saturating_sub(1));
                            let span = off..word_end(&f.text, off);
                            diags.push(script_mistake(&t.name, m, id, span));
                        }
                        scripts.push(src);
                    }
                    Err(e) => {
                        diags.push(
                            Diagnostic::error(
                                Code::Io,
                                format!("script file `{path}` cannot be read: {e}"),
                            )
                            .at(cx.file, cx.value_span(&format!("{pointer}/file"))),
                        );
                        scripts.push(String::new());
                    }
                }
            }
            (Some(_), Some(_)) => {
                diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("transform `{}` has both `script` and `file`", t.name),
                    )
                    .at(cx.file, cx.key_span(&format!("{pointer}/file")))
                    .help("keep one of them"),
                );
                scripts.push(String::new());
            }
            (None, None) => {
                diags.push(
                    Diagnostic::error(
                        Code::MissingField,
                        format!("transform `{}` has neither `script` nor `file`", t.name),
                    )
                    .at(cx.file, cx.key_span(&pointer))
                    .help("add `script: |` with Rhai code, or `file: path/to/script.rhai`"),
                );
                scripts.push(String::new());
            }
        }
    }
    scripts
}

fn check_routes(cx: &Cx<'_>, p: &Pipeline, engine: &rhai::Engine, diags: &mut Diagnostics) {
    let mut used = HashSet::new();
    for (i, r) in p.routes.iter().enumerate() {
        for (j, name) in r.to.iter().enumerate() {
            if p.sinks.contains_key(name) {
                used.insert(name.as_str());
                continue;
            }
            let mut d = Diagnostic::error(
                Code::UnknownReference,
                format!(
                    "route #{} sends to sink `{name}`, which is not defined",
                    i + 1
                ),
            )
            .at(cx.file, cx.value_span(&format!("/routes/{i}/to/{j}")));
            if let Some(s) = did_you_mean(name, p.sinks.keys().map(String::as_str)) {
                d = d.help(format!("did you mean `{s}`?"));
            } else {
                d = d.help(format!(
                    "the sinks are: {}",
                    p.sinks
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            diags.push(d);
        }
        let when_pointer = format!("/routes/{i}/when");
        let empty = match &r.when {
            None => cx.spans.contains_key(&when_pointer),
            Some(w) => w.trim().is_empty(),
        };
        if empty {
            diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!(
                        "route #{} has an empty `when`, which sends every record",
                        i + 1
                    ),
                )
                .at(cx.file, cx.key_span(&when_pointer))
                .help("give a condition, or remove `when` to send every record on purpose"),
            );
        }
        let when = r.when.as_ref().filter(|_| !empty);
        if let Some(when) = when
            && let Some(f) = transform::lint::condition(when).into_iter().next()
        {
            let at = SyntaxError {
                message: String::new(),
                line: f.line,
                column: f.column,
            };
            let span = script_span(cx, diags.sources.get(cx.file), &when_pointer, &at);
            diags.push(
                Diagnostic::error(
                    Code::ScriptMistake,
                    format!("condition of route #{}: {}", i + 1, f.message),
                )
                .at(cx.file, span)
                .help(f.help),
            );
        }
        let syntax = when.and_then(|w| {
            transform::syntax::brackets(w).or_else(|| transform::compile_condition(engine, w).err())
        });
        if let Some(e) = syntax {
            let span = script_span(
                cx,
                diags.sources.get(cx.file),
                &format!("/routes/{i}/when"),
                &e,
            );
            diags.push(
                Diagnostic::error(
                    Code::ScriptSyntax,
                    format!("condition of route #{}: {}", i + 1, e.message),
                )
                .at(cx.file, span),
            );
        }
    }
    let dlq = p.dlq.as_sink();
    let with_pointers = p
        .sinks
        .iter()
        .map(|(name, c)| {
            (
                format!("/sinks/{}", name.replace('~', "~0").replace('/', "~1")),
                c,
            )
        })
        .chain(std::iter::once(("/dlq".to_owned(), &dlq)));
    for (pointer, sink) in with_pointers {
        let findings = sink.check(&crate::sinks::CheckCx {
            dlq: pointer == "/dlq",
            source: p.source.type_name(),
        });
        for f in findings.list {
            diags.push(cx.finding(&pointer, f));
        }
    }
    check_answer(cx, p, diags);
    if p.sinks.is_empty() {
        diags.push(
            Diagnostic::error(Code::MissingField, "`sinks` must not be empty")
                .at(cx.file, cx.key_span("/sinks"))
                .help("add a sink, for example `out: { type: stdout }`"),
        );
    }
    for name in p.sinks.keys() {
        if !used.contains(name.as_str()) {
            let pointer = format!("/sinks/{}", name.replace('~', "~0").replace('/', "~1"));
            diags.push(
                Diagnostic::warning(
                    Code::UnusedSink,
                    format!("sink `{name}` is not used by any route"),
                )
                .at(cx.file, cx.key_span(&pointer))
                .help(format!(
                    "add `{name}` to a route's `to`, or remove the sink"
                )),
            );
        }
    }
}

/// A source answered with its records (Firehose data transformation) needs
/// exactly one sink that answers, and every route sending there: a record
/// that reached no answer could not be told to the caller.
fn check_answer(cx: &Cx<'_>, p: &Pipeline, diags: &mut Diagnostics) {
    let answering: Vec<&String> = p
        .sinks
        .iter()
        .filter(|(_, s)| s.answers())
        .map(|(name, _)| name)
        .collect();
    if !p.source.answered_by_sink() {
        return;
    }
    let source = p.source.type_name();
    let Some(answer) = answering.first() else {
        diags.push(
            Diagnostic::error(
                Code::MissingField,
                format!("a `{source}` source answers with the transformed records, but no sink gives them"),
            )
            .at(cx.file, cx.key_span("/source"))
            .help("add a sink `{ type: firehose_response }` and send every route to it"),
        );
        return;
    };
    for extra in &answering[1..] {
        diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("sink `{extra}`: the records answer once, and sink `{answer}` gives them already"),
            )
            .at(cx.file, cx.key_span(&sink_pointer(extra))),
        );
    }
    for (i, r) in p.routes.iter().enumerate() {
        if !r.to.iter().any(|t| t == *answer) {
            diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!(
                        "route #{} does not send to `{answer}`: a record it takes would have no answer for the `{source}` source",
                        i + 1
                    ),
                )
                .at(cx.file, cx.key_span(&format!("/routes/{i}/to")))
                .help(format!("add `{answer}` to its `to` (other sinks may get copies)")),
            );
        }
    }
}

fn sink_pointer(name: &str) -> String {
    format!("/sinks/{}", name.replace('~', "~0").replace('/', "~1"))
}

fn script_mistake(
    name: &str,
    f: transform::lint::Finding,
    file: FileId,
    span: Range<usize>,
) -> Diagnostic {
    Diagnostic::error(
        Code::ScriptMistake,
        format!("transform `{name}`: {}", f.message),
    )
    .at(file, span)
    .help(f.help)
}

fn script_error(name: &str, e: &SyntaxError, file: FileId, span: Range<usize>) -> Diagnostic {
    Diagnostic::error(
        Code::ScriptSyntax,
        format!("transform `{name}`: {}", e.message),
    )
    .at(file, span)
}

/// Maps a line and column inside a script to a span in the YAML file.
fn script_span(cx: &Cx<'_>, file: &SourceFile, pointer: &str, e: &SyntaxError) -> Range<usize> {
    let Some(origin) = cx.spans.get(pointer) else {
        return cx.value_span(pointer);
    };
    let (start_line, start_col) = file.line_col(origin.value.start);
    let folded = match origin.style {
        Some(ScalarStyle::Folded) => cx
            .value
            .pointer(pointer)
            .and_then(Value::as_str)
            .and_then(|src| folded_position(file, start_line, src, e)),
        _ => None,
    };
    let (line, col0) = match origin.style {
        _ if folded.is_some() => folded.unwrap_or_default(),
        Some(ScalarStyle::Literal | ScalarStyle::Folded) => {
            // The span starts at the block's first content line; its content is
            // indented by that line's indentation.
            let indent = (start_line..start_line + 10_000)
                .map(|l| file.line(l))
                .find(|l| !l.trim().is_empty())
                .map_or(0, |l| l.len() - l.trim_start().len());
            (start_line + e.line - 1, indent + e.column.saturating_sub(1))
        }
        Some(ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) if e.line == 1 => {
            (start_line, start_col + e.column.saturating_sub(1))
        }
        _ if e.line == 1 => (start_line, start_col - 1 + e.column.saturating_sub(1)),
        _ => (start_line + e.line - 1, e.column.saturating_sub(1)),
    };
    let off = file.offset(line, col0);
    off..word_end(&file.text, off)
}

/// Where a position of a folded (`>`) script is in the file: folding joins
/// lines with spaces, so each file line is found in the script text, in
/// order, and the position is mapped into the line that holds it.
fn folded_position(
    file: &SourceFile,
    start_line: usize,
    src: &str,
    e: &SyntaxError,
) -> Option<(usize, usize)> {
    let first = (start_line..start_line + 10_000)
        .map(|l| file.line(l))
        .find(|l| !l.trim().is_empty())?;
    let indent = first.len() - first.trim_start().len();
    // (offset in the script, file line, the content's length)
    let mut segments = Vec::new();
    let mut cursor = 0;
    let last = file.text.split('\n').count();
    for l in start_line..=last {
        let text = file.line(l);
        if !text.trim().is_empty() {
            if text.len() - text.trim_start().len() < indent {
                break;
            }
            let content = &text[indent..];
            let found = src.get(cursor..).and_then(|rest| rest.find(content))?;
            segments.push((cursor + found, l, content.len()));
            cursor += found + content.len();
        }
    }
    let line_start: usize = src
        .split_inclusive('\n')
        .take(e.line.saturating_sub(1))
        .map(str::len)
        .sum();
    let in_line = src.get(line_start..)?;
    let target = line_start
        + in_line
            .char_indices()
            .nth(e.column.saturating_sub(1))
            .map_or(in_line.len(), |(i, _)| i);
    let &(at, line, len) = segments.iter().rev().find(|(at, ..)| *at <= target)?;
    let within = target.min(at + len) - at;
    let chars = src
        .get(at..at + within)
        .map_or(within, |t| t.chars().count());
    Some((line, indent + chars))
}

/// The end of the identifier (or single character) starting at `off`.
fn word_end(text: &str, off: usize) -> usize {
    let rest = &text[off.min(text.len())..];
    let len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    let len = if len == 0 {
        rest.chars().next().map_or(0, char::len_utf8)
    } else {
        len
    };
    off + len
}
