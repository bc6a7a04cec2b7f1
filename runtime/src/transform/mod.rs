//! Transform: Rhai scripts over records, in a sandbox.
//!
//! A script sees `record` (the record; a map for JSON objects) and `meta`
//! (read-only facts about the record: source, position, batch time). It
//! returns the record to continue with, `()` to filter it out, or an array to
//! fan out into several records; a thrown error dead-letters the record with
//! stage `transform`. Scripts compile once per worker at start-up. The
//! [`Limits`] bound operations, call depth, expression depth, data sizes, the
//! heap one record's scripts hold and the time they take; scripts have no
//! module loading, no `eval`, no clock, no way to wait, and no file or
//! network access.

pub mod builtins;
pub mod convert;
pub mod explain;
pub mod lint;
pub mod meta;
pub mod native;
pub mod syntax;

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::duration::Dur;

pub use meta::Meta;

/// One transform step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Transform")]
pub struct Config {
    /// Name of the step, unique in the pipeline, shown in dead-letter
    /// envelopes (`step`) and diagnostics.
    pub name: String,
    /// The Rhai script, inline (a YAML block scalar, `script: |`, for more
    /// than one line). Give either `script` or `file`.
    #[serde(default)]
    pub script: Option<String>,
    /// Path of a `.rhai` file, relative to the pipeline file's folder. Give
    /// either `script` or `file`.
    #[serde(default)]
    pub file: Option<String>,
}

/// Sandbox limits for every script of the pipeline. A record whose script
/// exceeds one is dead-lettered with stage `transform` (`route` for a condition).
///
/// The data size limits count what a script builds, not what it was given:
/// any one value may hold the input record's own string bytes, array items
/// and map entries plus up to the limit more. `max_memory_bytes` and
/// `max_time_per_record` bound all of one record's scripts together.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub struct Limits {
    /// Operations one script run may take (stops endless loops).
    #[serde(default = "default_max_operations")]
    pub max_operations: u64,
    /// Depth of nested function calls.
    #[serde(default = "default_max_call_levels")]
    pub max_call_levels: usize,
    /// Nesting depth of expressions in a script.
    #[serde(default = "default_max_expr_depth")]
    pub max_expr_depth: usize,
    /// String bytes any one value may hold beyond what the input record holds (1 MiB).
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Array items any one value may hold beyond the input record's.
    #[serde(default = "default_max_array_len")]
    pub max_array_len: usize,
    /// Object entries any one value may hold beyond the input record's.
    #[serde(default = "default_max_map_len")]
    pub max_map_len: usize,
    /// Heap memory one record's scripts may hold at once, beyond the input record, whatever
    /// holds it (64 MiB).
    #[serde(default = "default_max_memory_bytes")]
    pub max_memory_bytes: u64,
    /// Time one record's scripts (every transform and route condition) may take in all.
    #[serde(default = "default_max_time_per_record")]
    pub max_time_per_record: Dur,
}

fn default_max_operations() -> u64 {
    100_000
}
fn default_max_call_levels() -> usize {
    32
}
fn default_max_expr_depth() -> usize {
    64
}
fn default_max_string_bytes() -> usize {
    1024 * 1024
}
fn default_max_array_len() -> usize {
    10_000
}
fn default_max_map_len() -> usize {
    10_000
}
fn default_max_memory_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_time_per_record() -> Dur {
    Dur(Duration::from_secs(1))
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: default_max_operations(),
            max_call_levels: default_max_call_levels(),
            max_expr_depth: default_max_expr_depth(),
            max_string_bytes: default_max_string_bytes(),
            max_array_len: default_max_array_len(),
            max_map_len: default_max_map_len(),
            max_memory_bytes: default_max_memory_bytes(),
            max_time_per_record: default_max_time_per_record(),
        }
    }
}

/// A Rhai engine set up as the sandbox: limits applied, no module loading,
/// no `eval`, no clock and no `sleep`, `print`/`debug` silenced, `meta` registered.
pub fn engine(limits: &Limits) -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_bytes)
        .set_max_array_size(limits.max_array_len)
        .set_max_map_size(limits.max_map_len)
        .set_max_modules(0)
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new())
        .set_strict_variables(true)
        .on_print(|_| {})
        .on_debug(|_, _, _| {});
    e.disable_symbol("eval");
    // Rhai's core package can block the thread; functions registered on the
    // engine are found before the packages', so these replace it. (The
    // clock, `timestamp()`, is left out of the build: the `no_time` feature.)
    e.register_fn("sleep", |_: rhai::INT| -> Result<(), Box<EvalAltResult>> {
        Err(NO_SLEEP.into())
    });
    e.register_fn(
        "sleep",
        |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> { Err(NO_SLEEP.into()) },
    );
    let max_memory = i64::try_from(limits.max_memory_bytes).unwrap_or(i64::MAX);
    let max_time = limits.max_time_per_record.0;
    e.on_progress(move |ops| budget_exceeded(ops, max_memory, max_time));
    meta::register(&mut e);
    builtins::register(&mut e);
    e.register_fn(KEEP_RECORD, || KeepRecord);
    #[cfg(feature = "fault-injection")]
    crate::faults::register(&mut e);
    e
}

/// Makes `print` and `debug` write to standard error (for `sluice eval`,
/// `sluice test` and `sluice run --debug`; production runs drop them).
pub fn debug_to_stderr(e: &mut Engine) {
    e.on_print(crate::logs::script_output);
    e.on_debug(|text, _, pos| match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => {
            crate::logs::script_output(&format!("debug (script line {l}, column {c}): {text}"));
        }
        _ => crate::logs::script_output(&format!("debug: {text}")),
    });
}

const NO_SLEEP: &str = "sleep() is not available: a script cannot wait";

/// How often the time budget is looked at, in operations: an operation
/// takes at most a few milliseconds (the data size limits bound it).
const TIME_CHECK_OPS: u64 = 32;

thread_local! {
    /// When the current record's scripts started, and the thread's heap then.
    static BUDGET: Cell<Option<(Instant, i64)>> = const { Cell::new(None) };
}

/// Starts the time and memory budget of one record's scripts, on this thread.
pub fn start_budget() {
    BUDGET.set(Some((Instant::now(), crate::heap::thread_bytes())));
}

/// Rhai's progress callback: stops the script when the record's scripts hold
/// more heap than allowed (looked at every operation: one operation can only
/// double what a script holds) or ran too long.
fn budget_exceeded(ops: u64, max_memory: i64, max_time: Duration) -> Option<Dynamic> {
    let (start, heap) = BUDGET.get()?;
    if crate::heap::thread_bytes() - heap > max_memory {
        return Some(Dynamic::from(Exceeded::Memory));
    }
    if ops.is_multiple_of(TIME_CHECK_OPS) && start.elapsed() > max_time {
        return Some(Dynamic::from(Exceeded::Time));
    }
    None
}

/// Which budget stopped a script (the value of Rhai's `ErrorTerminated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exceeded {
    Memory,
    Time,
}

/// Sets the data size limits of `engine` for one record that holds `sizes`:
/// the configured limits count what scripts add to the record.
pub fn size_limits_for(engine: &mut Engine, limits: &Limits, sizes: convert::Sizes) {
    // 0 means no limit, and stays so.
    let above = |limit: usize, held: usize| {
        if limit == 0 {
            0
        } else {
            limit.saturating_add(held)
        }
    };
    engine
        .set_max_string_size(above(limits.max_string_bytes, sizes.string_bytes))
        .set_max_array_size(above(limits.max_array_len, sizes.array_items))
        .set_max_map_size(above(limits.max_map_len, sizes.map_entries));
}

/// A script syntax error with its 1-based line and column inside the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// 1-based line in the script.
    pub line: usize,
    /// 1-based column in the script.
    pub column: usize,
}

fn syntax_error(e: rhai::ParseError) -> SyntaxError {
    SyntaxError {
        message: e.0.to_string(),
        line: e.1.line().unwrap_or(1),
        column: e.1.position().unwrap_or(1),
    }
}

/// Compiles a transform script.
pub fn compile_script(engine: &Engine, source: &str) -> Result<AST, SyntaxError> {
    engine
        .compile_with_scope(&scope_template(), source)
        .map_err(syntax_error)
}

/// What a transform returns, compiled by [`keep_record`], when it ends with
/// the variable `record`: the record is then taken out of the scope.
#[derive(Debug, Clone, Copy)]
pub struct KeepRecord;

/// The function that gives [`KeepRecord`].
const KEEP_RECORD: &str = "__sluice_keep_record";

/// A transform as it runs: when its last statement is `record` (as most
/// transforms end), that statement gives [`KeepRecord`] instead, and the
/// caller takes `record` out of the scope. A script's value is a copy of
/// the variable it names, so this spares a copy of the whole record, and
/// dropping the original, for every record; the value is the same.
pub fn keep_record(engine: &Engine, ast: AST) -> AST {
    use rhai::{Expr, Stmt};
    let statements = ast.statements();
    let ends_with_record = matches!(
        statements.last(),
        Some(Stmt::Expr(e)) if matches!(&**e, Expr::Variable(v, ..) if v.1 == "record" && v.2.is_empty())
    );
    if !ends_with_record || ast.resolver().is_some() {
        return ast;
    }
    let Ok(keep) = engine.compile(format!("{KEEP_RECORD}()")) else {
        return ast;
    };
    let body = AST::new(
        statements[..statements.len() - 1].iter().cloned(),
        ast.shared_lib().clone(),
    );
    let mut kept = body.merge(&keep);
    if let Some(source) = ast.source() {
        kept.set_source(source);
    }
    kept
}

/// Compiles a route condition (one expression).
pub fn compile_condition(engine: &Engine, source: &str) -> Result<AST, SyntaxError> {
    engine
        .compile_expression_with_scope(&scope_template(), source)
        .map_err(syntax_error)
}

/// Compiles a script that sees the variables `vars` (an aggregate's
/// reducer scripts: `state`, `record`).
pub fn compile_with_vars(engine: &Engine, source: &str, vars: &[&str]) -> Result<AST, SyntaxError> {
    let mut scope = Scope::new();
    for v in vars {
        scope.push(*v, ());
    }
    engine
        .compile_with_scope(&scope, source)
        .map_err(syntax_error)
}

/// The variables scripts see, for compiling with strict variables.
fn scope_template() -> Scope<'static> {
    let mut s = Scope::new();
    // Not constants: the optimizer would fold a constant `meta` into `()`.
    s.push("record", ());
    s.push("meta", ());
    s
}

/// The variables of one record's scripts: `record` and `meta`.
///
/// Set up once per record; each transform replaces `record` in place, so the
/// record is neither cloned nor walked (as pushing a new variable would) between steps.
#[derive(Default)]
pub struct RecordScope {
    scope: Scope<'static>,
}

impl RecordScope {
    /// Starts a record: `record` is `()` until [`set`](Self::set), `meta` is read-only.
    pub fn begin(&mut self, meta: Meta) {
        self.scope.clear();
        self.scope.push("record", ());
        self.scope.push_constant("meta", meta);
    }

    /// Sets `record`. A script that declared a constant `record` of its
    /// own gets a new variable over it.
    pub fn set(&mut self, record: Dynamic) {
        match self.scope.get_mut("record") {
            Some(r) => *r = record,
            None => {
                self.scope.push("record", record);
            }
        }
    }

    /// Takes `record` out (leaving `()`); a constant `record` is copied.
    pub fn take(&mut self) -> Dynamic {
        match self.scope.get_mut("record") {
            Some(r) => std::mem::take(r),
            None => self.scope.get("record").cloned().unwrap_or_default(),
        }
    }

    /// Runs a transform compiled by [`native::Script`] on the current
    /// `record`: its value as [`eval`](Self::eval) would give it
    /// ([`KeepRecord`] when the record itself is), or `None`, the record
    /// unchanged, when the interpreter must run the script.
    pub fn run_native(
        &mut self,
        script: &native::Script,
        engine: &Engine,
        limits: &Limits,
    ) -> Option<Dynamic> {
        let mut record = self.take();
        let outcome = self
            .scope
            .get("meta")
            .and_then(|m| m.read_lock::<Meta>())
            .and_then(|meta| script.run(&mut record, &meta, engine, limits));
        self.set(record);
        Some(match outcome? {
            native::Outcome::Keep => Dynamic::from(KeepRecord),
            native::Outcome::Value(v) => v,
        })
    }

    /// Runs a transform compiled by [`native::Script`] on a parsed record
    /// with the fields `written` over it (see [`native::Script::run_tree`]).
    pub fn run_native_tree(
        &self,
        script: &native::Script,
        root: crate::record::tree::At<'_>,
        written: &mut Vec<(rhai::Identifier, Dynamic)>,
        engine: &Engine,
        limits: &Limits,
    ) -> Option<native::Outcome> {
        let meta = self.scope.get("meta")?.read_lock::<Meta>()?;
        script.run_tree(root, written, &meta, engine, limits)
    }

    /// Runs a compiled script or condition on the current `record`.
    pub fn eval(&mut self, engine: &Engine, ast: &AST) -> Result<Dynamic, Box<EvalAltResult>> {
        engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, ast)
    }
}

/// Where a script is written: a runtime error's position is told in the
/// user's file (the pipeline, or the script file), not in the script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// The file, as the user named it.
    pub file: String,
    /// Per script line, the file's line and the column of its first
    /// character; empty when the file is the script itself.
    pub lines: Vec<(usize, usize)>,
}

impl Place {
    /// `FILE:LINE:COL` of the script's 1-based `line` and `column`.
    pub fn at(&self, line: usize, column: usize) -> String {
        if self.lines.is_empty() {
            return format!("{}:{line}:{column}", self.file);
        }
        match self.lines.get(line.wrapping_sub(1)) {
            Some(&(l, c)) => format!("{}:{l}:{}", self.file, c + column.saturating_sub(1)),
            None => format!("{}, script line {line}, column {column}", self.file),
        }
    }
}

/// A runtime error of `source` as dead-letter text: which limit was hit,
/// what the script threw, or which value was missing, with its position
/// (in `place` when known, else in the script).
pub fn error_text(
    e: &EvalAltResult,
    limits: &Limits,
    source: &str,
    place: Option<&Place>,
) -> String {
    use EvalAltResult as E;
    // An error inside a called function (a callback of `map`, a function of
    // the script) is told as itself, and where it was called from.
    let mut e = e;
    let mut called = None;
    while let E::ErrorInFunctionCall(name, _, inner, _) = e {
        called.get_or_insert(name.clone());
        e = inner;
    }
    // Inside a called function the position is in the function, which is
    // also in `source`.
    let text = error_text_of(e, limits, source, place);
    match called {
        Some(name) if !name.is_empty() => format!("{text}, in a call to `{name}`"),
        _ => text,
    }
}

fn error_text_of(
    e: &EvalAltResult,
    limits: &Limits,
    source: &str,
    place: Option<&Place>,
) -> String {
    use EvalAltResult as E;
    let text = match e {
        E::ErrorTooManyOperations(_) => {
            format!("script exceeded max_operations ({})", limits.max_operations)
        }
        E::ErrorStackOverflow(_) => {
            format!(
                "script exceeded max_call_levels ({})",
                limits.max_call_levels
            )
        }
        E::ErrorDataTooLarge(what, _) => format!(
            "script exceeded a data size limit: {what} (max_string_bytes {}, max_array_len {}, max_map_len {}, beyond the input record's own)",
            limits.max_string_bytes, limits.max_array_len, limits.max_map_len
        ),
        E::ErrorTerminated(token, _) => match token.clone().try_cast::<Exceeded>() {
            Some(Exceeded::Memory) => format!(
                "script exceeded max_memory_bytes ({})",
                limits.max_memory_bytes
            ),
            Some(Exceeded::Time) => format!(
                "script exceeded max_time_per_record ({})",
                humantime::format_duration(limits.max_time_per_record.0)
            ),
            None => "script was stopped".into(),
        },
        E::ErrorRuntime(value, _) => match value.read_lock::<builtins::Failed>() {
            Some(f) => f.0.clone(),
            None => format!("script threw: {value}"),
        },
        E::ErrorFunctionNotFound(sig, pos) => pos
            .line()
            .zip(pos.position())
            .and_then(|(l, c)| explain::not_found(sig, source, l, c))
            .unwrap_or_else(|| format!("Function not found: {sig}")),
        other => {
            // Rhai's own text ends in "(line L, position C)"; the position is added below.
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    };
    let pos = e.position();
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => match place {
            Some(p) => format!("{text} (at {})", p.at(l, c)),
            None => format!("{text} (script line {l}, column {c})"),
        },
        (Some(l), None) => format!("{text} (script line {l})"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        crate::transform::meta::sample()
    }

    fn run_src(src: &str, record: Dynamic) -> Result<Dynamic, String> {
        run_with(&Limits::default(), src, record)
    }

    /// Runs a script as the engine runs a record's scripts: budget started,
    /// size limits above the record's own.
    fn run_with(limits: &Limits, src: &str, record: Dynamic) -> Result<Dynamic, String> {
        let mut e = engine(limits);
        let ast = compile_script(&e, src).map_err(|e| e.message)?;
        let mut sizes = convert::Sizes::default();
        let json = serde_json::to_value(&record).unwrap();
        let record = convert::to_dynamic_sized(json, &mut sizes);
        size_limits_for(&mut e, limits, sizes);
        let mut scope = RecordScope::default();
        scope.begin(meta());
        scope.set(record);
        start_budget();
        scope
            .eval(&e, &ast)
            .map_err(|err| error_text(&err, limits, src, None))
    }

    #[test]
    fn a_position_is_told_in_the_file_the_script_is_written_in() {
        let inline = Place {
            file: "pipeline.yaml".into(),
            lines: vec![(7, 7), (8, 7)],
        };
        assert_eq!(inline.at(1, 27), "pipeline.yaml:7:33");
        assert_eq!(inline.at(2, 1), "pipeline.yaml:8:7");
        assert_eq!(inline.at(3, 2), "pipeline.yaml, script line 3, column 2");
        let file = Place {
            file: "transforms/price.rhai".into(),
            lines: Vec::new(),
        };
        assert_eq!(file.at(3, 5), "transforms/price.rhai:3:5");
    }

    #[test]
    fn scripts_cannot_wait_or_read_the_clock() {
        for src in [
            "sleep(1e30); 1",
            "sleep(9223372036854775807); 1",
            "sleep(0.001); 1",
        ] {
            let err = run_src(src, ().into()).unwrap_err();
            assert_eq!(
                err,
                "script threw: sleep() is not available: a script cannot wait (script line 1, column 1)",
                "{src}"
            );
        }
        let err = run_src("timestamp()", ().into()).unwrap_err();
        assert_eq!(
            err,
            "Function not found: timestamp () (script line 1, column 1)"
        );
    }

    #[test]
    fn the_time_budget_stops_a_script_that_no_other_limit_stops() {
        let limits = Limits {
            max_operations: 0,
            max_time_per_record: Dur(Duration::from_millis(20)),
            ..Limits::default()
        };
        let err = run_with(&limits, "loop {}", ().into()).unwrap_err();
        assert!(
            err.starts_with("script exceeded max_time_per_record (20ms) (script line 1"),
            "{err}"
        );
    }

    #[test]
    fn the_memory_budget_counts_map_keys_and_curried_values() {
        // No time budget to race: memory must stop these however busy the machine.
        let limits = Limits {
            max_time_per_record: Dur(Duration::from_secs(3600)),
            ..Limits::default()
        };
        // Map keys are not counted by Rhai's own limits: 1 000 keys of 100 kB each.
        let keys = "let m = #{}; let k = \"\"; k.pad(100000, \"x\"); for i in 0..1000 { m[k + i] = i; } m.len()";
        let err = run_with(&limits, keys, ().into()).unwrap_err();
        assert!(
            err.starts_with("script exceeded max_memory_bytes (67108864)"),
            "{err}"
        );
        // Nor are the values a curried function captures.
        let curry = "let s = \"\"; s.pad(1000000, \"x\"); let fs = []; for i in 0..100 { fs.push(Fn(\"x\").curry(s + i)); } fs.len()";
        let err = run_with(&limits, curry, ().into()).unwrap_err();
        assert!(
            err.starts_with("script exceeded max_memory_bytes (67108864)"),
            "{err}"
        );
        // A smaller budget stops the same shape sooner; a small script passes.
        let small = Limits {
            max_memory_bytes: 1024 * 1024,
            ..limits.clone()
        };
        assert!(run_with(&small, keys, ().into()).is_err());
        assert_eq!(
            run_with(&small, "let m = #{}; m.a = 1; m.a", ().into())
                .unwrap()
                .as_int(),
            Ok(1)
        );
    }

    #[test]
    fn size_limits_count_what_a_script_adds_to_its_record() {
        // A 2 MiB string and 20 000 items: over every default limit, but given.
        let big = serde_json::json!({
            "text": "x".repeat(2 * 1024 * 1024),
            "items": vec![1; 20_000],
        });
        let record = convert::to_dynamic(big);
        let r = run_src(
            "record.n = record.items.len() + record.text.len(); record",
            record.clone(),
        )
        .unwrap();
        assert_eq!(
            r.cast::<rhai::Map>()["n"].as_int(),
            Ok(20_000 + 2 * 1024 * 1024)
        );
        // Adding more than the limit on top is still stopped.
        let err = run_src(
            "let s = \"\"; s.pad(1048577, \"y\"); record.more = s; record",
            record,
        )
        .unwrap_err();
        assert!(
            err.starts_with("script exceeded a data size limit"),
            "{err}"
        );
    }

    #[test]
    fn modifies_and_returns_the_record() {
        let r = run_src("record.x = 2; record", rhai::Map::new().into()).unwrap();
        assert_eq!(r.cast::<rhai::Map>()["x"].as_int().unwrap(), 2);
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let e = engine(&Limits::default());
        let err = compile_script(&e, "let a = 1;\nlet = 2;").unwrap_err();
        assert_eq!((err.line, err.column), (2, 5));
        let err = compile_script(&e, "recrod.x").unwrap_err();
        assert_eq!(err.message, "Undefined variable: recrod");
    }

    #[test]
    fn stops_endless_loops_and_deep_recursion() {
        assert_eq!(
            run_src("loop {}", ().into()).unwrap_err(),
            "script exceeded max_operations (100000) (script line 1, column 6)"
        );
        let err = run_src("fn f(x) { f(x) } f(1)", ().into()).unwrap_err();
        assert!(
            err.starts_with("script exceeded max_call_levels (32)"),
            "{err}"
        );
    }

    #[test]
    fn stops_huge_data() {
        let err = run_src("let s = \"x\"; loop { s += s; }", ().into()).unwrap_err();
        assert!(
            err.starts_with("script exceeded a data size limit"),
            "{err}"
        );
        let err = run_src("let a = []; loop { a.push(1); }", ().into()).unwrap_err();
        assert!(
            err.starts_with("script exceeded a data size limit"),
            "{err}"
        );
    }

    #[test]
    fn has_no_eval_and_no_modules() {
        let err = run_src("eval(\"1\")", ().into()).unwrap_err();
        assert_eq!(err, "reserved keyword 'eval' is disabled");
        let err = run_src("import \"x\" as y; 1", ().into()).unwrap_err();
        assert_eq!(err, "Too many modules imported (script line 1, column 1)");
    }

    #[test]
    fn meta_is_read_only() {
        assert_eq!(
            run_src("meta.line", ().into()).unwrap().as_int().unwrap(),
            1
        );
        assert!(run_src("meta.line = 5; 1", ().into()).is_err());
    }
}
