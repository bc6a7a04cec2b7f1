//! `${VAR}` and `${VAR:-default}` in pipeline values.
//!
//! `$${` writes a literal `${`. Script fields (`script`, `when`) are not
//! interpolated: `${...}` is Rhai's own string interpolation there.

use std::collections::HashMap;

/// The environment variables interpolation reads.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment from explicit pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// Sets a variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_owned(), value.to_owned());
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Replaces `${VAR}` references. `Ok(None)` when the text has none;
/// `Err(names)` lists the variables that are unset and have no default.
pub fn interpolate(text: &str, env: &Env) -> Result<Option<String>, Vec<String>> {
    if !text.contains("${") {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                out.push_str(after);
                rest = "";
                break;
            };
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (env.get(name), default) {
                (Some(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(v),
                (_, Some(d)) => out.push_str(d),
                (Some(v), None) => out.push_str(v),
                (None, None) => missing.push(name.to_owned()),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(Some(out))
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_defaults_and_escapes() {
        let env = Env::from_pairs([("A", "x"), ("EMPTY", "")]);
        assert_eq!(interpolate("no vars", &env), Ok(None));
        assert_eq!(interpolate("${A}/${B:-d}", &env), Ok(Some("x/d".into())));
        assert_eq!(interpolate("${EMPTY:-d}", &env), Ok(Some("d".into())));
        assert_eq!(interpolate("$${A} $5", &env), Ok(Some("${A} $5".into())));
        assert_eq!(
            interpolate("${B}${C}", &env),
            Err(vec!["B".into(), "C".into()])
        );
    }
}
