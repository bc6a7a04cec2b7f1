//! `sluice eval`: try a script, or a pipeline's transforms and routes, on
//! records from standard input, with the engine, sandbox and builtins of
//! `sluice run`.
//!
//! Each input line is one record (JSON, or the pipeline's `decode`). For each
//! record, standard output gets what came of it, as JSON lines: the records
//! the transforms returned (with `--route`, each as `{"sinks": […],
//! "record": …}`), or its dead-letter envelope. A filtered or unrouted
//! record gets a note on standard error. `print` and `debug` write to
//! standard error. `-i` keeps a session instead: each line typed is a
//! script run on the current record, whose changes and `let` variables stay.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::config::{self, Env, LoadError};
use crate::diagnostics::render::{self, Format};
use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::engine::{Built, Worker};
use crate::record::{Position, RawRecord};
use crate::transform::{self, Limits};

/// `sluice eval` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  echo '{\"a\":1}' | sluice eval 'record.b = record.a + 1; record'
  sluice eval --pipeline pipeline.yaml --route < records.jsonl
  sluice eval -i --record '{\"name\":\" Ana \"}'")]
pub struct Args {
    /// The script to run on each record (not with `--pipeline`).
    pub script: Option<String>,
    /// Run this pipeline's validation and transforms on each record.
    #[arg(long, value_name = "FILE", conflicts_with = "script")]
    pub pipeline: Option<PathBuf>,
    /// With `--pipeline`: run only this transform (validation is skipped).
    #[arg(long, value_name = "NAME", requires = "pipeline")]
    pub transform: Option<String>,
    /// With `--pipeline`: also evaluate the routes, and print the sinks each
    /// record would go to.
    #[arg(long, requires = "pipeline", conflicts_with = "transform")]
    pub route: bool,
    /// Keep a session: each line typed is a script run on the current record.
    #[arg(short, long)]
    pub interactive: bool,
    /// With `-i`: the record the session starts with (JSON; `{}` by default).
    #[arg(long, value_name = "JSON", requires = "interactive")]
    pub record: Option<String>,
}

/// Runs `sluice eval`. Exit code 0 when every record was processed (filtered
/// ones too), 1 when the script does not compile or a record was
/// dead-lettered, 2 when the pipeline cannot be read.
pub fn main(args: &Args) -> i32 {
    if args.interactive {
        return session(args);
    }
    let built = match build(args) {
        Ok(b) => Arc::new(b),
        Err(code) => return code,
    };
    let mut worker = match Worker::new(Arc::clone(&built)) {
        Ok(w) => w,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_INVALID;
        }
    };
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        crate::errln!("reading records from standard input, one per line (Ctrl-D ends)");
    }
    let now = crate::engine::run::now_rfc3339();
    let mut code = EXIT_OK;
    // The records are the pipeline's, read from standard input.
    let stdin_name: Option<Arc<str>> = (built.source_type == "file").then(|| Arc::from("<stdin>"));
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                crate::errln!("error: cannot read standard input: {e}");
                return EXIT_UNREADABLE;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let n = i as u64 + 1;
        let raw = RawRecord {
            data: line.into_bytes(),
            position: Position {
                source: built.source_type,
                file: stdin_name.clone(),
                line: Some(n),
                ..Position::default()
            },
            rejected: None,
            attributes: None,
            fan_out: Vec::new(),
        };
        match worker.process(std::slice::from_ref(&raw), &now) {
            Ok(out) => {
                if !print(&built, args.route, &out, n) {
                    code = EXIT_INVALID;
                }
            }
            Err(fatal) => {
                crate::errln!("error: record {n} stops the run: {}", fatal.0);
                return EXIT_INVALID;
            }
        }
    }
    code
}

/// Prints what came of one record; false when it was dead-lettered.
fn print(built: &Built, route: bool, out: &crate::engine::BatchOutput, n: u64) -> bool {
    let c = &out.counts;
    if route {
        // One line per routed record, with every sink it went to.
        let mut routed: Vec<(u32, Vec<&str>, &[u8])> = Vec::new();
        for (s, lines) in out.sinks.iter().enumerate() {
            for i in 0..lines.ends.len() {
                let id = lines.ids[i];
                match routed.iter_mut().find(|r| r.0 == id) {
                    Some(r) => r.1.push(&built.sink_names[s]),
                    None => routed.push((id, vec![&built.sink_names[s]], lines.line(i))),
                }
            }
        }
        routed.sort_by_key(|r| r.0);
        for (_, sinks, record) in routed {
            let record: Value = serde_json::from_slice(record).unwrap_or(Value::Null);
            crate::outln!(
                "{}",
                serde_json::json!({ "sinks": sinks, "record": record })
            );
        }
    } else {
        for i in 0..out.sinks[0].ends.len() {
            crate::outln!("{}", String::from_utf8_lossy(out.sinks[0].line(i)));
        }
    }
    for i in 0..out.dlq.ends.len() {
        crate::outln!("{}", String::from_utf8_lossy(out.dlq.line(i)));
    }
    if c.filtered > 0 {
        crate::errln!("record {n}: filtered (a script returned `()` or `[]`)");
    }
    if c.dropped_invalid > 0 {
        crate::errln!("record {n}: dropped: it failed validation and `on_invalid` is `drop`");
    }
    if c.unrouted > 0 {
        crate::errln!("record {n}: no route takes it (`unrouted: drop`)");
    }
    out.dlq.ends.is_empty()
}

/// What to run: the script alone (records to one output), or the pipeline.
fn build(args: &Args) -> Result<Built, i32> {
    let Some(path) = &args.pipeline else {
        let Some(script) = &args.script else {
            crate::errln!("error: give a script, or --pipeline FILE");
            return Err(EXIT_INVALID);
        };
        if !compiles(script) {
            return Err(EXIT_INVALID);
        }
        return Ok(alone(script));
    };
    let loaded = match config::load(path, &Env::process()) {
        Ok(l) => l,
        Err(e) => {
            crate::err!("{}", render::text(e.diagnostics(), Format::Human));
            return Err(match e {
                LoadError::Unreadable(_) => EXIT_UNREADABLE,
                LoadError::Invalid(_) => EXIT_INVALID,
            });
        }
    };
    if !loaded.diagnostics.list.is_empty() {
        crate::err!("{}", render::text(&loaded.diagnostics, Format::Human));
    }
    let mut built = match Built::new(&loaded) {
        Ok(b) => b,
        Err(e) => {
            crate::errln!("error: {}: {e}", path.display());
            return Err(EXIT_INVALID);
        }
    };
    built.debug = true;
    if let Some(name) = &args.transform {
        let Some(i) = built.transforms.iter().position(|(n, _)| n == name) else {
            let names: Vec<&str> = built.transforms.iter().map(|(n, _)| n.as_str()).collect();
            crate::errln!(
                "error: {} has no transform `{name}`; it has: {}",
                path.display(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            );
            return Err(EXIT_INVALID);
        };
        built.transforms = vec![built.transforms.swap_remove(i)];
        built.transform_places = built.transform_places.get(i).cloned().into_iter().collect();
        built.validator = None;
    }
    if !args.route {
        to_one_output(&mut built);
    }
    Ok(built)
}

/// Sends every record the transforms return to one output, in order.
fn to_one_output(built: &mut Built) {
    built.routes = vec![(None, vec![0])];
    built.route_places = Vec::new();
    built.sink_names = vec!["output".into()];
    built.sink_keys = vec![Vec::new()];
    // What the transforms make, each record: duplicates are the run's to
    // drop, windows its to aggregate.
    built.dedup = None;
    built.aggregate = None;
}

/// A pipeline of one transform, `script`, reading JSON lines.
fn alone(script: &str) -> Built {
    let mut built = Built {
        name: Arc::from("eval"),
        source_type: "stdin",
        format: crate::decode::Format::Json,
        validator: None,
        transforms: vec![("eval".into(), script.to_owned())],
        transform_places: Vec::new(),
        route_places: Vec::new(),
        routes: Vec::new(),
        unrouted: crate::route::Unrouted::Dlq,
        sink_names: Vec::new(),
        sink_keys: Vec::new(),
        limits: Limits::default(),
        debug: true,
        dedup: None,
        lookups: Default::default(),
        prefetch: Vec::new(),
        aggregate: None,
    };
    to_one_output(&mut built);
    built
}

/// Whether `script` compiles; prints its syntax error, or its mistakes as
/// warnings, as `sluice check` would.
fn compiles(script: &str) -> bool {
    let mut diags = Diagnostics::default();
    let file = diags.sources.add("<script>", script);
    let at = |diags: &Diagnostics, line: usize, column: usize| {
        let f = diags.sources.get(file);
        let start = f.offset(line, column.saturating_sub(1));
        start..(start + 1).min(script.len()).max(start)
    };
    let engine = transform::engine(&Limits::default());
    let ok = match transform::compile_script(&engine, script) {
        Ok(_) => {
            for f in transform::lint::transform(script) {
                let span = at(&diags, f.line, f.column);
                diags.push(
                    Diagnostic::warning(Code::ScriptMistake, f.message)
                        .at(file, span)
                        .help(f.help),
                );
            }
            true
        }
        Err(e) => {
            let span = at(&diags, e.line, e.column);
            diags.push(Diagnostic::error(Code::ScriptSyntax, e.message).at(file, span));
            false
        }
    };
    if !diags.list.is_empty() {
        crate::err!("{}", render::text(&diags, Format::Human));
    }
    ok
}

/// `-i`: a session over one record. A line is a script; `:record` prints
/// the record, `:set JSON` replaces it, `:help` lists these, `:quit` ends.
fn session(args: &Args) -> i32 {
    let record: Value = match args.record.as_deref().map(serde_json::from_str).transpose() {
        Ok(r) => r.unwrap_or_else(|| Value::Object(Default::default())),
        Err(e) => {
            crate::errln!("error: --record is not JSON: {e}");
            return EXIT_INVALID;
        }
    };
    let limits = Limits::default();
    let mut engine = transform::engine(&limits);
    transform::debug_to_stderr(&mut engine);
    let mut scope = rhai::Scope::new();
    scope.push("record", transform::convert::to_dynamic(record));
    let position = Position {
        source: "stdin",
        line: Some(1),
        ..Position::default()
    };
    let meta = transform::Meta::new(&position, None, crate::engine::run::now_rfc3339().into());
    scope.push_constant("meta", meta);
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            crate::errln!("error: cannot read the terminal: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let tty = std::io::stdin().is_terminal();
    if tty {
        crate::errln!(
            "sluice eval: each line is a script run on `record` (:help for commands, Ctrl-D ends)"
        );
    }
    let prompt = if tty { "> " } else { "" };
    loop {
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => return EXIT_OK,
            Err(e) => {
                crate::errln!("error: {e}");
                return EXIT_UNREADABLE;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        match session_line(line, &engine, &mut scope, &limits) {
            Step::Print(text) => crate::outln!("{text}"),
            Step::Error(text) => crate::errln!("error: {text}"),
            Step::Quit => return EXIT_OK,
        }
    }
}

/// What a session line comes to.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Print(String),
    Error(String),
    Quit,
}

fn session_line(
    line: &str,
    engine: &rhai::Engine,
    scope: &mut rhai::Scope<'static>,
    limits: &Limits,
) -> Step {
    let record = |scope: &rhai::Scope<'static>| {
        let v = scope
            .get_value::<rhai::Dynamic>("record")
            .unwrap_or_default();
        json_text(&v)
    };
    match line {
        ":q" | ":quit" | ":exit" => return Step::Quit,
        ":record" | ":r" => return record(scope),
        ":help" | ":h" => {
            return Step::Print(
                "a line is a script run on `record`; its changes and `let` variables stay\n\
                 :record      print the record\n\
                 :set JSON    replace the record\n\
                 :quit        end (or Ctrl-D)"
                    .into(),
            );
        }
        _ => {}
    }
    if let Some(json) = line.strip_prefix(":set ") {
        return match serde_json::from_str::<Value>(json) {
            Ok(v) => {
                scope.set_value("record", transform::convert::to_dynamic(v));
                record(scope)
            }
            Err(e) => Step::Error(format!("not JSON: {e}")),
        };
    }
    if line.starts_with(':') {
        return Step::Error(format!("unknown command `{line}` (:help lists them)"));
    }
    let ast = match engine.compile_with_scope(scope, line) {
        Ok(a) => a,
        Err(e) => return Step::Error(e.to_string()),
    };
    transform::start_budget();
    match engine.eval_ast_with_scope::<rhai::Dynamic>(scope, &ast) {
        Ok(v) => json_text(&v),
        Err(e) => Step::Error(transform::error_text(&e, limits, line, None)),
    }
}

fn json_text(v: &rhai::Dynamic) -> Step {
    let mut out = Vec::new();
    match transform::convert::write_json_of(&mut out, v, "value") {
        Ok(()) => Step::Print(String::from_utf8_lossy(&out).into_owned()),
        Err(e) => Step::Error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_the_record_and_its_variables() {
        let limits = Limits::default();
        let engine = transform::engine(&limits);
        let mut scope = rhai::Scope::new();
        scope.push(
            "record",
            transform::convert::to_dynamic(serde_json::json!({"a": 1})),
        );
        let mut step = |line: &str| session_line(line, &engine, &mut scope, &limits);
        assert_eq!(step("let k = 10"), Step::Print("null".into()));
        assert_eq!(step("record.b = record.a + k"), Step::Print("null".into()));
        assert_eq!(step(":record"), Step::Print(r#"{"a":1,"b":11}"#.into()));
        assert_eq!(step("record.b * 2"), Step::Print("22".into()));
        assert_eq!(
            step(":set {\"x\": \"  hi \"}"),
            Step::Print(r#"{"x":"  hi "}"#.into())
        );
        assert_eq!(
            step("record.x.trim(); record"),
            Step::Print(r#"{"x":"hi"}"#.into())
        );
        assert_eq!(
            step("record.y * 2"),
            Step::Error(
                "`record.y` is () (missing or null), so `record.y * 2` cannot be computed: `*` takes no () (() * i64) (script line 1, column 10)"
                    .into()
            )
        );
        assert_eq!(
            step("nope"),
            Step::Error("Undefined variable: nope (line 1, position 1)".into())
        );
        assert_eq!(
            step(":what"),
            Step::Error("unknown command `:what` (:help lists them)".into())
        );
        assert_eq!(step(":quit"), Step::Quit);
    }
}
