//! The function library scripts get on top of Rhai's own: timestamps,
//! regular expressions, hashing and encodings, URLs, CSV, JSON, UUIDs and
//! safe field access. Each function is documented with an example in the
//! pipeline format reference (Scripting → Builtins).
//!
//! A call that cannot do what it was asked (an unparsable timestamp, an
//! invalid regular expression) throws a [`Failed`] that names the function
//! and the reason; the record is dead-lettered at stage `transform` (or
//! `route` in a condition) with that reason and the call's position.

mod codec;
mod data;
mod regex;
mod time;

use rhai::{Dynamic, Engine, EvalAltResult, Position};

pub use self::regex::pattern_error;
pub use self::time::format_error;

/// The error a builtin throws: `function: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What builtins return.
type Out<T> = Result<T, Box<EvalAltResult>>;

/// Fails the call of `function` for `why`.
fn fail<T>(function: &str, why: impl std::fmt::Display) -> Out<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(Failed(format!("{function}: {why}"))),
        Position::NONE,
    )))
}

/// Registers every builtin on `e`.
pub fn register(e: &mut Engine) {
    // A caught failure reads as its text: `catch (err) { record.why = `${err}`; }`.
    e.register_type_with_name::<Failed>("Failed")
        .register_fn("to_string", |f: &mut Failed| f.0.clone())
        .register_fn("to_debug", |f: &mut Failed| f.0.clone());
    time::register(e);
    regex::register(e);
    codec::register(e);
    data::register(e);
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs a one-line script with the builtins, as a transform would.
    use rhai::Dynamic;

    /// The value of `src`, or the failure's text.
    pub fn eval(src: &str) -> Result<Dynamic, String> {
        let e = crate::transform::engine(&crate::transform::Limits::default());
        e.eval::<Dynamic>(src).map_err(|err| match *err {
            rhai::EvalAltResult::ErrorRuntime(v, _) => match v.try_cast::<super::Failed>() {
                Some(f) => f.0,
                None => "(not a builtin's failure)".into(),
            },
            other => other.to_string(),
        })
    }

    /// The value of `src` as JSON text.
    pub fn json(src: &str) -> String {
        let v = eval(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let mut out = Vec::new();
        crate::transform::convert::write_json(&mut out, &v).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The failure's text of `src`.
    pub fn error(src: &str) -> String {
        match eval(src) {
            Ok(v) => panic!("{src} returned {v:?}"),
            Err(e) => e,
        }
    }
}
