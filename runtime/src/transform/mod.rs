//! Transform: Rhai scripts over records, in a sandbox.
//!
//! A script sees `record` (the record; a map for JSON objects) and `meta`
//! (read-only facts about the record: source, position, batch time). It
//! returns the record to continue with, `()` to filter it out, or an array to
//! fan out into several records; a thrown error dead-letters the record with
//! stage `transform`. Scripts compile once per worker at start-up. The
//! [`Limits`] bound operations, call depth, expression depth and data sizes,
//! and scripts have no module loading, no `eval`, and no file or network access.

pub mod convert;
pub mod meta;

use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};
use schemars::JsonSchema;
use serde::Deserialize;

pub use meta::Meta;

/// One transform step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Transform")]
pub struct Config {
    /// Name of the step, shown in dead-letter envelopes and diagnostics.
    pub name: String,
    /// The Rhai script, inline. Give either `script` or `file`.
    #[serde(default)]
    pub script: Option<String>,
    /// Path of a `.rhai` file, relative to the pipeline file's folder.
    #[serde(default)]
    pub file: Option<String>,
}

/// Sandbox limits for every script of the pipeline. A record whose script
/// exceeds one is dead-lettered with stage `transform`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub struct Limits {
    /// Most operations one script run may take (stops endless loops).
    #[serde(default = "default_max_operations")]
    pub max_operations: u64,
    /// Deepest function call nesting.
    #[serde(default = "default_max_call_levels")]
    pub max_call_levels: usize,
    /// Deepest expression nesting in a script (checked when the script compiles).
    #[serde(default = "default_max_expr_depth")]
    pub max_expr_depth: usize,
    /// Longest string a script may build, in bytes.
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Longest array a script may build.
    #[serde(default = "default_max_array_len")]
    pub max_array_len: usize,
    /// Most keys in a map a script may build.
    #[serde(default = "default_max_map_len")]
    pub max_map_len: usize,
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: default_max_operations(),
            max_call_levels: default_max_call_levels(),
            max_expr_depth: default_max_expr_depth(),
            max_string_bytes: default_max_string_bytes(),
            max_array_len: default_max_array_len(),
            max_map_len: default_max_map_len(),
        }
    }
}

/// A Rhai engine set up as the sandbox: limits applied, no module loading,
/// no `eval`, `print`/`debug` silenced, `meta` registered.
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
    meta::register(&mut e);
    e
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

/// Compiles a route condition (one expression).
pub fn compile_condition(engine: &Engine, source: &str) -> Result<AST, SyntaxError> {
    engine
        .compile_expression_with_scope(&scope_template(), source)
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
    pub fn begin(&mut self, meta: &Meta) {
        self.scope.clear();
        self.scope.push("record", ());
        self.scope.push_constant("meta", meta.clone());
    }

    fn record(&mut self) -> &mut Dynamic {
        // `begin` pushed `record` as a writable variable; scripts cannot remove it.
        self.scope.get_mut("record").expect("`record` is in scope")
    }

    /// Sets `record`.
    pub fn set(&mut self, record: Dynamic) {
        *self.record() = record;
    }

    /// Takes `record` out (leaving `()`).
    pub fn take(&mut self) -> Dynamic {
        std::mem::take(self.record())
    }

    /// Runs a compiled script or condition on the current `record`.
    pub fn eval(&mut self, engine: &Engine, ast: &AST) -> Result<Dynamic, Box<EvalAltResult>> {
        engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, ast)
    }
}

/// A runtime error as dead-letter text: which limit was hit, or what the script threw, with its position.
pub fn error_text(e: &EvalAltResult, limits: &Limits) -> String {
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
            "script exceeded a data size limit: {what} (max_string_bytes {}, max_array_len {}, max_map_len {})",
            limits.max_string_bytes, limits.max_array_len, limits.max_map_len
        ),
        E::ErrorRuntime(value, _) => format!("script threw: {value}"),
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
        (Some(l), Some(c)) => format!("{text} (script line {l}, column {c})"),
        (Some(l), None) => format!("{text} (script line {l})"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn meta() -> Meta {
        let position = crate::record::Position {
            source: "file",
            file: Some(Arc::from("in.jsonl")),
            line: Some(1),
            ..Default::default()
        };
        Meta::new(&position, None, "2026-01-01T00:00:00.000Z".into())
    }

    fn run_src(src: &str, record: Dynamic) -> Result<Dynamic, String> {
        let limits = Limits::default();
        let e = engine(&limits);
        let ast = compile_script(&e, src).map_err(|e| e.message)?;
        let mut scope = RecordScope::default();
        scope.begin(&meta());
        scope.set(record);
        scope
            .eval(&e, &ast)
            .map_err(|err| error_text(&err, &limits))
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
