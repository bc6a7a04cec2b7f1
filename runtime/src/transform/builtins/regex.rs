//! Regular expressions (the `regex` crate's syntax, matched in linear time).
//! Each worker compiles a pattern once and keeps it: a call site with a
//! literal pattern compiles it on its first record only.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::{Regex, RegexBuilder};
use rhai::{Array, Dynamic, Engine};

use super::{Out, fail};

/// Patterns a worker keeps compiled; past this, the cache starts over (a
/// pattern built from data must not grow it without bound).
const CACHED: usize = 256;

/// Compiled size a pattern may take (`a{1000}{1000}` is refused, not built).
const MAX_PATTERN_BYTES: usize = 1 << 20;

thread_local! {
    static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Why `pattern` is not a regular expression, in one line.
pub fn pattern_error(pattern: &str) -> Option<String> {
    build(pattern).err()
}

fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_BYTES)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            // The syntax error's text draws the pattern over several lines;
            // its last line says what is wrong.
            let why = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.lines().next().unwrap_or("invalid"));
            format!("{pattern:?} is not a valid regular expression: {why}")
        })
}

fn compiled(function: &str, pattern: &str) -> Out<Regex> {
    if let Some(re) = CACHE.with_borrow(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    match build(pattern) {
        Ok(re) => {
            CACHE.with_borrow_mut(|c| {
                if c.len() >= CACHED {
                    c.clear();
                }
                c.insert(pattern.to_owned(), re.clone());
            });
            Ok(re)
        }
        Err(why) => fail(function, why),
    }
}

pub fn register(e: &mut Engine) {
    e.register_fn("regex_match", |s: &str, re: &str| -> Out<bool> {
        Ok(compiled("regex_match", re)?.is_match(s))
    })
    .register_fn("regex_captures", |s: &str, re: &str| -> Out<Dynamic> {
        let re = compiled("regex_captures", re)?;
        Ok(match re.captures(s) {
            None => Dynamic::UNIT,
            Some(c) => c
                .iter()
                .map(|m| m.map_or(Dynamic::UNIT, |m| m.as_str().into()))
                .collect::<Array>()
                .into(),
        })
    })
    .register_fn(
        "regex_named_captures",
        |s: &str, re: &str| -> Out<Dynamic> {
            let re = compiled("regex_named_captures", re)?;
            Ok(match re.captures(s) {
                None => Dynamic::UNIT,
                Some(c) => {
                    let mut map = rhai::Map::new();
                    for name in re.capture_names().flatten() {
                        let v = c.name(name).map_or(Dynamic::UNIT, |m| m.as_str().into());
                        map.insert(name.into(), v);
                    }
                    map.into()
                }
            })
        },
    )
    .register_fn("regex_find_all", |s: &str, re: &str| -> Out<Array> {
        let re = compiled("regex_find_all", re)?;
        Ok(re.find_iter(s).map(|m| m.as_str().into()).collect())
    })
    .register_fn(
        "regex_replace",
        |s: &str, re: &str, with: &str| -> Out<String> {
            Ok(compiled("regex_replace", re)?
                .replace_all(s, with)
                .into_owned())
        },
    )
    .register_fn("regex_split", |s: &str, re: &str| -> Out<Array> {
        let re = compiled("regex_split", re)?;
        Ok(re.split(s).map(|p| Dynamic::from(p.to_owned())).collect())
    });
}

#[cfg(test)]
mod tests {
    use super::super::testing::{error, json};

    #[test]
    fn matches_captures_replaces_and_splits() {
        assert_eq!(json(r#"regex_match("order-42", "^order-\\d+$")"#), "true");
        assert_eq!(json(r#"regex_match("refund-42", "^order-")"#), "false");
        assert_eq!(
            json(r#"regex_captures("v1.20.3", "v(\\d+)\\.(\\d+)(-rc)?")"#),
            r#"["v1.20","1","20",null]"#
        );
        assert_eq!(json(r#"regex_captures("none", "\\d")"#), "null");
        assert_eq!(
            json(r#"regex_named_captures("eu-west-1", "(?P<area>[a-z]+)-(?P<dir>[a-z]+)")"#),
            r#"{"area":"eu","dir":"west"}"#
        );
        assert_eq!(
            json(r#"regex_find_all("a1 b22 c333", "\\d+")"#),
            r#"["1","22","333"]"#
        );
        assert_eq!(
            json(r#"regex_replace("2026-01-02", "(\\d+)-(\\d+)-(\\d+)", "$3/$2/$1")"#),
            r#""02/01/2026""#
        );
        assert_eq!(
            json(r#"regex_replace("a  b   c", "\\s+", " ")"#),
            r#""a b c""#
        );
        assert_eq!(
            json(r#"regex_split("a, b;c", "[,;]\\s*")"#),
            r#"["a","b","c"]"#
        );
        // As methods too.
        assert_eq!(json(r#""abc".regex_match("b")"#), "true");
    }

    #[test]
    fn an_invalid_pattern_fails_with_the_reason() {
        assert_eq!(
            error(r#"regex_match("x", "(unclosed")"#),
            r#"regex_match: "(unclosed" is not a valid regular expression: unclosed group"#
        );
        assert!(
            error(r#"regex_match("x", "a{1000}{1000}")"#)
                .starts_with(r#"regex_match: "a{1000}{1000}" is not a valid regular expression"#)
        );
    }
}
