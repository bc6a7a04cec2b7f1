//! `${VAR}` and `${VAR:-default}` in pipeline values; `${secret:VAR}` is
//! the same, and marks the value secret (see [`crate::secrets`]): it is
//! masked in everything Sluice writes about its work.
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

/// Why a reference cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The variable is unset and has no default.
    Unset(String),
    /// The secret is shorter than [`crate::secrets::MIN_LEN`].
    ShortSecret(String),
}

/// Replaces `${VAR}` references. `Ok(None)` when the text has none;
/// `Err` lists the references that cannot be replaced.
pub fn interpolate(text: &str, env: &Env) -> Result<Option<String>, Vec<Problem>> {
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
            let (secret, inner) = match inner.strip_prefix("secret:") {
                Some(rest) => (true, rest),
                None => (false, inner),
            };
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let value = match (env.get(name), default) {
                (Some(v), _) if !(v.is_empty() && default.is_some()) => Some(v),
                (_, Some(d)) => Some(d),
                (Some(v), None) => Some(v),
                (None, None) => None,
            };
            match value {
                Some(v) if secret && !crate::secrets::register(v) => {
                    missing.push(Problem::ShortSecret(name.to_owned()));
                }
                Some(v) => out.push_str(v),
                None => missing.push(Problem::Unset(name.to_owned())),
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
            Err(vec![Problem::Unset("B".into()), Problem::Unset("C".into())])
        );
    }

    #[test]
    fn a_secret_is_replaced_and_masked_from_then_on() {
        let env = Env::from_pairs([("TOKEN", "tok-41c9e2"), ("PIN", "123")]);
        assert_eq!(
            interpolate("https://${secret:TOKEN}@host", &env),
            Ok(Some("https://tok-41c9e2@host".into()))
        );
        assert_eq!(
            crate::secrets::redact("failed: https://tok-41c9e2@host"),
            "failed: https://***@host"
        );
        assert_eq!(
            interpolate("${secret:PIN}", &env),
            Err(vec![Problem::ShortSecret("PIN".into())])
        );
        assert_eq!(
            interpolate("${secret:UNSET}", &env),
            Err(vec![Problem::Unset("UNSET".into())])
        );
    }
}
