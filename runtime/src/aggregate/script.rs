//! The Rhai reducer, for what the built-in reducers do not compute: an
//! `init` script gives a window's first state, `add` takes each record into
//! it (`state` and `record` in scope), and `finish` makes the output value
//! of the last state. They run in the same sandbox as transforms (the
//! pipeline's `limits`: operations, data sizes, memory and time per call).
//!
//! Between records the state is kept as JSON, so that it is what a Lambda
//! window's state carries, and a state JSON cannot hold (a function
//! pointer, a NaN) is the script's error, told at once.

use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, Scope};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::transform::{self, Limits, SyntaxError, convert};

/// A reducer written as scripts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AggregateScript")]
pub struct Source {
    /// The window's first state: a Rhai expression (`#{ n: 0, sum: 0.0 }`).
    pub init: String,
    /// Takes one record into the state: `state` and `record` are in scope;
    /// the script changes `state` (`state.n += 1`), or its value, when it
    /// is not `()`, is the new state.
    pub add: String,
    /// The output value of the window's last state (`state` in scope).
    /// Default: the state itself.
    #[serde(default)]
    pub finish: Option<String>,
}

/// Which of a reducer's scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `init`.
    Init,
    /// `add`.
    Add,
    /// `finish`.
    Finish,
}

impl Part {
    /// The script's key.
    pub fn name(self) -> &'static str {
        match self {
            Part::Init => "init",
            Part::Add => "add",
            Part::Finish => "finish",
        }
    }

    /// The variables the script sees.
    fn vars(self) -> &'static [&'static str] {
        match self {
            Part::Init => &[],
            Part::Add => &["state", "record"],
            Part::Finish => &["state"],
        }
    }
}

impl Source {
    /// Each script with its part.
    pub fn parts(&self) -> impl Iterator<Item = (Part, &str)> {
        [
            (Part::Init, Some(self.init.as_str())),
            (Part::Add, Some(self.add.as_str())),
            (Part::Finish, self.finish.as_deref()),
        ]
        .into_iter()
        .filter_map(|(p, s)| s.map(|s| (p, s)))
    }
}

/// Compiles one script of a reducer, with its variables declared.
pub fn compile(engine: &Engine, part: Part, source: &str) -> Result<AST, SyntaxError> {
    transform::compile_with_vars(engine, source, part.vars())
}

struct Compiled {
    source: Arc<Source>,
    init: AST,
    add: AST,
    finish: Option<AST>,
}

/// The script reducers of an aggregate, compiled, with their sandbox.
pub struct Scripts {
    engine: Engine,
    limits: Limits,
    /// Per reducer (in `emit` order), its scripts when it is one.
    compiled: Vec<Option<Compiled>>,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts")
            .field("reducers", &self.compiled.iter().flatten().count())
            .finish()
    }
}

impl Scripts {
    /// Compiles the script reducers among `reducers`.
    pub fn new(
        reducers: &[(String, super::reduce::Reducer)],
        limits: &Limits,
    ) -> Result<Scripts, String> {
        let engine = transform::engine(limits);
        let mut compiled = Vec::new();
        for (name, r) in reducers {
            let super::reduce::Reducer::Script(source) = r else {
                compiled.push(None);
                continue;
            };
            let one = |part: Part, text: &str| {
                compile(&engine, part, text)
                    .map_err(|e| format!("`emit.{name}.{}`: {}", part.name(), e.message))
            };
            compiled.push(Some(Compiled {
                source: Arc::clone(source),
                init: one(Part::Init, &source.init)?,
                add: one(Part::Add, &source.add)?,
                finish: match &source.finish {
                    Some(f) => Some(one(Part::Finish, f)?),
                    None => None,
                },
            }));
        }
        Ok(Scripts {
            engine,
            limits: limits.clone(),
            compiled,
        })
    }

    /// No script reducer: nothing to run.
    pub fn none() -> Scripts {
        Scripts {
            engine: Engine::new_raw(),
            limits: Limits::default(),
            compiled: Vec::new(),
        }
    }

    /// Whether reducer `i` is a script.
    pub fn is_script(&self, i: usize) -> bool {
        self.compiled.get(i).is_some_and(Option::is_some)
    }

    /// Reducer `i`'s first state.
    pub fn init(&mut self, i: usize) -> Result<Value, String> {
        let Some(c) = self.compiled.get(i).and_then(Option::as_ref) else {
            return Ok(Value::Null);
        };
        let mut scope = Scope::new();
        let (ast, source) = (&c.init, &c.source.init);
        let value = run(&self.engine, &self.limits, &mut scope, ast, source)?;
        state_json(&value)
    }

    /// Reducer `i`'s state once it took `record`.
    pub fn add(&mut self, i: usize, state: &Value, record: &Value) -> Result<Value, String> {
        let Some(c) = self.compiled.get(i).and_then(Option::as_ref) else {
            return Ok(state.clone());
        };
        let mut sizes = convert::Sizes::default();
        let state = convert::to_dynamic_sized(state.clone(), &mut sizes);
        let record = convert::to_dynamic_sized(record.clone(), &mut sizes);
        transform::size_limits_for(&mut self.engine, &self.limits, sizes);
        let mut scope = Scope::new();
        scope.push("state", state);
        scope.push("record", record);
        let value = run(
            &self.engine,
            &self.limits,
            &mut scope,
            &c.add,
            &c.source.add,
        )?;
        if value.is_unit() {
            let state = scope.get("state").cloned().unwrap_or_default();
            return state_json(&state);
        }
        state_json(&value)
    }

    /// Reducer `i`'s output value of its last state.
    pub fn finish(&mut self, i: usize, state: Value) -> Result<Value, String> {
        let Some(c) = self.compiled.get(i).and_then(Option::as_ref) else {
            return Ok(state);
        };
        let Some(ast) = &c.finish else {
            return Ok(state);
        };
        let source = c.source.finish.as_deref().unwrap_or_default();
        let mut sizes = convert::Sizes::default();
        let state = convert::to_dynamic_sized(state, &mut sizes);
        transform::size_limits_for(&mut self.engine, &self.limits, sizes);
        let mut scope = Scope::new();
        scope.push("state", state);
        let value = run(&self.engine, &self.limits, &mut scope, ast, source)?;
        let mut out = Vec::new();
        convert::write_json_of(&mut out, &value, "the value")?;
        serde_json::from_slice(&out).map_err(|e| e.to_string())
    }
}

/// Runs one script in the sandbox: its own budget of time and memory.
fn run(
    engine: &Engine,
    limits: &Limits,
    scope: &mut Scope<'static>,
    ast: &AST,
    source: &str,
) -> Result<Dynamic, String> {
    transform::start_budget();
    engine
        .eval_ast_with_scope::<Dynamic>(scope, ast)
        .map_err(|e| transform::error_text(&e, limits, source, None))
}

/// A state as JSON: an error names the part JSON cannot hold.
fn state_json(v: &Dynamic) -> Result<Value, String> {
    let mut out = Vec::new();
    convert::write_json_of(&mut out, v, "state")?;
    serde_json::from_slice(&out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::reduce::Reducer;
    use serde_json::json;

    fn scripts(init: &str, add: &str, finish: Option<&str>) -> Scripts {
        let source = Source {
            init: init.into(),
            add: add.into(),
            finish: finish.map(str::to_owned),
        };
        Scripts::new(
            &[
                ("n".into(), Reducer::Count),
                ("s".into(), Reducer::Script(Arc::new(source))),
            ],
            &Limits::default(),
        )
        .unwrap()
    }

    fn reduce(s: &mut Scripts, records: &[Value]) -> Result<Value, String> {
        let mut state = s.init(1)?;
        for r in records {
            state = s.add(1, &state, r)?;
        }
        s.finish(1, state)
    }

    #[test]
    fn init_add_and_finish_give_the_windows_value() {
        let mut s = scripts(
            "#{ lo: (), hi: () }",
            "if state.lo == () || record.v < state.lo { state.lo = record.v }\n\
             if state.hi == () || record.v > state.hi { state.hi = record.v }",
            Some("if state.hi == () { () } else { state.hi - state.lo }"),
        );
        assert!(!s.is_script(0) && s.is_script(1));
        let records = [json!({"v": 4}), json!({"v": 9}), json!({"v": 2})];
        assert_eq!(reduce(&mut s, &records), Ok(json!(7)));
        assert_eq!(reduce(&mut s, &[]), Ok(json!(null)));
    }

    #[test]
    fn the_value_of_add_is_the_new_state_and_without_finish_the_state_is_the_output() {
        let mut s = scripts("[]", "state + [record.v]", None);
        let records = [json!({"v": "a"}), json!({"v": "b"})];
        assert_eq!(reduce(&mut s, &records), Ok(json!(["a", "b"])));
    }

    #[test]
    fn a_script_error_says_which_limit_or_what_was_thrown() {
        let mut s = scripts(
            "0",
            "if record.v < 0 { throw \"negative\" } state + record.v",
            None,
        );
        assert_eq!(
            reduce(&mut s, &[json!({"v": 1}), json!({"v": -1})]),
            Err("script threw: negative (script line 1, column 19)".into())
        );
        let mut s = scripts("0", "loop { state += 1 }", None);
        assert_eq!(
            reduce(&mut s, &[json!({})]),
            Err("script exceeded max_operations (100000) (script line 1, column 14)".into())
        );
        let mut s = scripts("0", "state + 1", Some("state / 0.0"));
        assert!(
            reduce(&mut s, &[json!({})])
                .unwrap_err()
                .contains("the value"),
        );
        let mut s = scripts("|| 1", "state", None);
        assert!(s.init(1).unwrap_err().contains("state"));
    }

    #[test]
    fn a_syntax_error_names_the_reducer_and_the_script() {
        let source = Source {
            init: "0".into(),
            add: "state +".into(),
            finish: None,
        };
        let err = Scripts::new(
            &[("p95".into(), Reducer::Script(Arc::new(source)))],
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.starts_with("`emit.p95.add`: "), "{err}");
    }
}
