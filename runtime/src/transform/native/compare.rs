//! Route conditions simple enough to run without the interpreter: a field of
//! the record compared with a string (`record.tier == "big"`, `!=`), the
//! most common condition there is. Each gives exactly what Rhai gives for a
//! record that is an object map; for anything else (a record that is not
//! a map, a field holding a character or a custom type) it gives no answer
//! and the compiled script runs instead, with its own errors.

use rhai::{Dynamic, Identifier, ImmutableString, Map};

use crate::record::tree::{At, Node};
use crate::transform::convert::find_written;

/// `record.FIELD == "TEXT"` or `record.FIELD != "TEXT"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    field: String,
    text: ImmutableString,
    equal: bool,
}

impl Compare {
    /// The condition, if it is one of these comparisons (spaces around the
    /// operator allowed; the text without escapes).
    pub fn parse(condition: &str) -> Option<Compare> {
        let (left, equal, right) = ["==", "!="].iter().find_map(|op| {
            let (l, r) = condition.split_once(op)?;
            Some((l.trim(), *op == "==", r.trim()))
        })?;
        let field = left.strip_prefix("record.")?;
        let mut chars = field.chars();
        let identifier = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        let text = right.strip_prefix('"')?.strip_suffix('"')?;
        if !identifier || text.contains(['"', '\\']) {
            return None;
        }
        Some(Compare {
            field: field.to_owned(),
            text: text.into(),
            equal,
        })
    }

    /// The condition's value for a parsed record (an object) with the
    /// fields `written` over it, as [`eval`](Self::eval) gives it for the
    /// same record as a Rhai map; `None` when the script must decide.
    pub fn eval_tree(&self, root: At<'_>, written: &[(Identifier, Dynamic)]) -> Option<bool> {
        let Node::Object { start, len } = root.node() else {
            return None;
        };
        if let Ok(i) = find_written(written, &self.field) {
            return self.answer(Some(&written[i].1));
        }
        let same = match root.member(*start, *len, &self.field).map(|at| at.node()) {
            Some(Node::Str(t)) => root.str(*t) == self.text.as_str(),
            // Every other JSON value is unequal to a string.
            _ => false,
        };
        Some(same == self.equal)
    }

    /// The condition's value for `record`, or `None` when the script must
    /// decide.
    pub fn eval(&self, record: &Dynamic) -> Option<bool> {
        if record.is_shared() {
            return None;
        }
        let map = record.read_lock::<Map>()?;
        self.answer(map.get(self.field.as_str()))
    }

    /// The condition's value when the field holds `value` (`None`: absent).
    fn answer(&self, value: Option<&Dynamic>) -> Option<bool> {
        let same = match value {
            None => false,
            Some(v) if v.is_shared() => return None,
            Some(v) => match v.read_lock::<ImmutableString>() {
                Some(s) => *s == self.text,
                // Rhai's `==` between a string and these is false.
                None if v.is_unit()
                    || v.is_bool()
                    || v.is_int()
                    || v.is_float()
                    || v.is_array()
                    || v.is_map() =>
                {
                    false
                }
                None => return None,
            },
        };
        Some(same == self.equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::convert::to_dynamic;
    use serde_json::json;

    #[test]
    fn only_a_field_compared_with_plain_text_is_taken() {
        let c = Compare::parse(r#"record.tier == "big""#).unwrap();
        assert_eq!(
            (c.field.as_str(), c.text.as_str(), c.equal),
            ("tier", "big", true)
        );
        assert!(!Compare::parse(r#"record.tier!="big""#).unwrap().equal);
        for other in [
            r#"record.tier == "big" && record.n > 1"#,
            r#"record.a.b == "x""#,
            r#"record["tier"] == "big""#,
            r#"record.tier == "a\"b""#,
            r#"record.tier == 'b'"#,
            r#"meta.source == "x""#,
            r#"record.1x == "x""#,
            "record.tier == big",
        ] {
            assert_eq!(Compare::parse(other), None, "{other}");
        }
    }

    /// The answer is Rhai's own, for every kind of JSON value in the field.
    #[test]
    fn it_answers_as_the_script_does() {
        let engine = crate::transform::engine(&crate::transform::Limits::default());
        for condition in [r#"record.tier == "big""#, r#"record.tier != "big""#] {
            let native = Compare::parse(condition).unwrap();
            let ast = crate::transform::compile_condition(&engine, condition).unwrap();
            for record in [
                json!({ "tier": "big" }),
                json!({ "tier": "small" }),
                json!({ "tier": "" }),
                json!({}),
                json!({ "tier": null }),
                json!({ "tier": true }),
                json!({ "tier": 5 }),
                json!({ "tier": 5.5 }),
                json!({ "tier": ["big"] }),
                json!({ "tier": { "big": 1 } }),
            ] {
                let mut scope = rhai::Scope::new();
                scope.push("record", to_dynamic(record.clone()));
                scope.push("meta", ());
                let script: bool = engine.eval_ast_with_scope(&mut scope, &ast).unwrap();
                let fast = native.eval(&to_dynamic(record.clone()));
                assert_eq!(fast, Some(script), "{condition} on {record}");
            }
            // On a parsed tree, with and without the field written over it.
            for record in [
                json!({ "tier": "big" }),
                json!({ "tier": "small" }),
                json!({ "tier": 5 }),
                json!({ "tier": null }),
                json!({ "tier": ["big"] }),
                json!({}),
            ] {
                let text = record.to_string();
                let mut tree = crate::record::tree::Tree::default();
                tree.parse(&text).unwrap();
                let want = native.eval(&to_dynamic(record.clone()));
                assert_eq!(native.eval_tree(tree.root(&text), &[]), want, "{record}");
                let over = [("tier".into(), Dynamic::from("big"))];
                let mut with = record.clone();
                with["tier"] = json!("big");
                let want = native.eval(&to_dynamic(with));
                assert_eq!(native.eval_tree(tree.root(&text), &over), want, "{record}");
            }
            // Not a map: the script decides (and fails).
            assert_eq!(native.eval(&Dynamic::from("big")), None);
            assert_eq!(native.eval(&Dynamic::from_array(vec![])), None);
            let mut with_char = Map::new();
            with_char.insert("tier".into(), Dynamic::from('b'));
            assert_eq!(native.eval(&Dynamic::from_map(with_char)), None);
        }
    }
}
