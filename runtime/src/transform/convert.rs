//! Moving records between JSON and Rhai values without going through serde's
//! generic machinery: JSON values are consumed, so strings move instead of being copied.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

use crate::record::tree::{At, Node, cmp_keys};

/// What a value holds, counted as Rhai's data size limits count it: array
/// items, object-map entries and string bytes, at every depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Array items.
    pub array_items: usize,
    /// Object-map entries.
    pub map_entries: usize,
    /// String bytes.
    pub string_bytes: usize,
}

/// A parsed JSON value as a Rhai value. `null` becomes `()`; integers that do
/// not fit in an `i64` become floats.
pub fn to_dynamic(v: Value) -> Dynamic {
    to_dynamic_sized(v, &mut Sizes::default())
}

/// [`to_dynamic`], adding what the value holds to `sizes` on the way.
pub fn to_dynamic_sized(v: Value, sizes: &mut Sizes) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
            sizes.string_bytes += s.len();
            Dynamic::from(s)
        }
        Value::Array(a) => {
            sizes.array_items += a.len();
            Dynamic::from_array(
                a.into_iter()
                    .map(|v| to_dynamic_sized(v, sizes))
                    .collect::<Array>(),
            )
        }
        Value::Object(o) => {
            sizes.map_entries += o.len();
            // Key by key: for a record's few keys, cheaper than collecting
            // them and building the tree in bulk (measured).
            let mut m = Map::new();
            for (k, v) in o {
                m.insert(k.into(), to_dynamic_sized(v, sizes));
            }
            Dynamic::from_map(m)
        }
    }
}

/// A parsed record as a Rhai value, as [`to_dynamic_sized`] gives it for
/// the same document, adding what it holds to `sizes`.
pub fn tree_to_dynamic_sized(at: At<'_>, sizes: &mut Sizes) -> Dynamic {
    match at.node() {
        Node::Null => Dynamic::UNIT,
        Node::Bool(b) => Dynamic::from_bool(*b),
        Node::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Node::Str(t) => {
            let s = at.str(*t);
            sizes.string_bytes += s.len();
            s.into()
        }
        Node::Array { start, len } => {
            sizes.array_items += *len as usize;
            Dynamic::from_array(
                at.items(*start, *len)
                    .map(|v| tree_to_dynamic_sized(v, sizes))
                    .collect::<Array>(),
            )
        }
        Node::Object { start, len } => {
            sizes.map_entries += *len as usize;
            let mut m = Map::new();
            for (k, v) in at.members(*start, *len) {
                m.insert(k.into(), tree_to_dynamic_sized(v, sizes));
            }
            Dynamic::from_map(m)
        }
    }
}

/// What a parsed record holds, as [`to_dynamic_sized`] counts it.
pub fn tree_sizes(at: At<'_>) -> Sizes {
    fn add(at: At<'_>, sizes: &mut Sizes) {
        match at.node() {
            Node::Str(t) => sizes.string_bytes += at.str(*t).len(),
            Node::Array { start, len } => {
                sizes.array_items += *len as usize;
                for item in at.items(*start, *len) {
                    add(item, sizes);
                }
            }
            Node::Object { start, len } => {
                sizes.map_entries += *len as usize;
                for (_, v) in at.members(*start, *len) {
                    add(v, sizes);
                }
            }
            Node::Null | Node::Bool(_) | Node::Number(_) => {}
        }
    }
    if let Some(c) = at.counts() {
        return Sizes {
            array_items: c.array_items,
            map_entries: c.map_entries,
            string_bytes: c.string_bytes,
        };
    }
    let mut sizes = Sizes::default();
    add(at, &mut sizes);
    sizes
}

/// Where field `key` is among the fields a script wrote over a parsed
/// record (kept sorted by name): `Ok` its index, `Err` where it would go.
pub fn find_written(written: &[(rhai::Identifier, Dynamic)], key: &str) -> Result<usize, usize> {
    written.binary_search_by(|(k, _)| cmp_keys(k, key))
}

/// A parsed record (an object) with the fields `written` over it, as a
/// Rhai map.
pub fn tree_to_dynamic_with(root: At<'_>, written: &[(rhai::Identifier, Dynamic)]) -> Dynamic {
    let mut record = tree_to_dynamic_sized(root, &mut Sizes::default());
    if let Some(mut map) = record.write_lock::<Map>() {
        for (k, v) in written {
            map.insert(k.clone(), v.clone());
        }
    }
    record
}

/// Appends a parsed record (an object) with the fields `written` over it
/// (sorted by name) to `out` as compact JSON: what [`write_json`] writes for
/// the same record as a Rhai map, errors included.
pub fn write_tree_json(
    out: &mut Vec<u8>,
    root: At<'_>,
    written: &[(rhai::Identifier, Dynamic)],
) -> Result<(), String> {
    let Node::Object { start, len } = root.node() else {
        write_node(out, root);
        return Ok(());
    };
    let record = Path::Root("record");
    let mut members = root.members(*start, *len).with_texts().peekable();
    let mut written = written.iter().peekable();
    out.push(b'{');
    let mut first = true;
    loop {
        let from_written = match (members.peek(), written.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((k, _)), Some((w, _))) => match cmp_keys(w.as_str(), root.str(*k)) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => {
                    members.next();
                    true
                }
                std::cmp::Ordering::Greater => false,
            },
        };
        if !first {
            out.push(b',');
        }
        first = false;
        if from_written {
            if let Some((k, v)) = written.next() {
                json_to(out, k.as_str());
                out.push(b':');
                write_value(out, v, &Path::Key(&record, k.as_str()))?;
            }
        } else if let Some((k, v)) = members.next() {
            root.write_json_str(out, k);
            out.push(b':');
            write_node(out, v);
        }
    }
    out.push(b'}');
    Ok(())
}

/// A parsed value as JSON, as [`write_json`] writes its Rhai value.
pub fn write_node(out: &mut Vec<u8>, at: At<'_>) {
    match at.node() {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // As a Rhai value holds it: an integer if it fits, else a float.
        Node::Number(n) => match n.as_i64() {
            Some(i) => json_to(out, &i),
            None => json_to(out, &n.as_f64().unwrap_or(f64::NAN)),
        },
        Node::Str(t) => at.write_json_str(out, *t),
        Node::Array { start, len } => {
            out.push(b'[');
            for (i, item) in at.items(*start, *len).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_node(out, item);
            }
            out.push(b']');
        }
        Node::Object { start, len } => {
            out.push(b'{');
            for (i, (k, v)) in at.members(*start, *len).with_texts().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                at.write_json_str(out, k);
                out.push(b':');
                write_node(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Appends a Rhai value to `out` as compact JSON. A value JSON cannot hold
/// (an infinite or NaN number, a function pointer, a range, a custom type)
/// is an error that names where it is (`record.items[2].total`); `out` then
/// holds a part of the document.
pub fn write_json(out: &mut Vec<u8>, v: &Dynamic) -> Result<(), String> {
    write_json_of(out, v, "record")
}

/// [`write_json`], naming the value `root` in an error.
pub fn write_json_of(out: &mut Vec<u8>, v: &Dynamic, root: &str) -> Result<(), String> {
    write_value(out, v, &Path::Root(root))
}

/// Where a value is in the document, written out only for an error.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Path::Root(root) => f.write_str(root),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
            Path::Key(parent, k) => {
                let plain = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit());
                if plain {
                    write!(f, "{parent}.{k}")
                } else {
                    write!(f, "{parent}[{}]", serde_json::Value::from(k))
                }
            }
        }
    }
}

fn write_value(out: &mut Vec<u8>, v: &Dynamic, path: &Path<'_>) -> Result<(), String> {
    if v.is_shared() {
        return write_value(out, &v.flatten_clone(), path);
    }
    // Strings first, the most common; each test looks at the type only.
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        json_to(out, s.as_str());
    } else if v.is_unit() {
        out.extend_from_slice(b"null");
    } else if v.is_bool()
        && let Ok(b) = v.as_bool()
    {
        out.extend_from_slice(if b { b"true" } else { b"false" });
    } else if v.is_int()
        && let Ok(i) = v.as_int()
    {
        json_to(out, &i);
    } else if v.is_float()
        && let Ok(f) = v.as_float()
    {
        if !f.is_finite() {
            let what = if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "infinite"
            } else {
                "negative infinite"
            };
            return Err(format!("`{path}` is {what}, which JSON cannot hold"));
        }
        json_to(out, &f);
    } else if let Ok(c) = v.as_char() {
        json_to(out, &c);
    } else if let Some(a) = v.read_lock::<Array>() {
        out.push(b'[');
        for (i, item) in a.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(out, item, &Path::Index(path, i))?;
        }
        out.push(b']');
    } else if let Some(m) = v.read_lock::<Map>() {
        out.push(b'{');
        for (i, (k, item)) in m.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_to(out, k.as_str());
            out.push(b':');
            write_value(out, item, &Path::Key(path, k.as_str()))?;
        }
        out.push(b'}');
    } else {
        return Err(format!(
            "`{path}` is a value of type `{}`, which has no JSON form",
            script_type_name(v.type_name())
        ));
    }
    Ok(())
}

/// A type's name as scripts know it: `range` for Rust's ranges, the last
/// segment of a Rust path otherwise (`Meta`, `Fn`, `blob`).
fn script_type_name(rust: &str) -> &str {
    if rust.contains("::Range") {
        return "range";
    }
    let plain = rust.split('<').next().unwrap_or(rust);
    plain.rsplit("::").next().unwrap_or(plain)
}

/// Writes an integer, string, char or finite float as serde_json does.
fn json_to<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Writing these to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tree with fields written over it is written as the same record
    /// as a Rhai map is, errors included.
    #[test]
    fn a_tree_and_its_written_fields_are_written_as_the_map_is() {
        let written: Vec<(rhai::Identifier, Dynamic)> = vec![
            ("a".into(), Dynamic::from_int(5)),
            ("m".into(), Dynamic::from("new")),
            ("zz".into(), Dynamic::from_float(1.5)),
        ];
        for text in [
            r#"{"b": [1, 2.5, {"y": null, "x": "\u00e9\n"}], "m": {"old": true}, "c": 18446744073709551615, "d": -3}"#,
            r#"{}"#,
            r#"{"zz": 1, "a": "x"}"#,
            r#"{"k": "aaa", "k": {"x": [1, 2], "y": "\t"}, "j": ["s"]}"#,
            r#"{"k": {"x": [1, 2]}, "k": "aaa", "j": [["s", {"q": "r"}]]}"#,
            // Strings copied as they are, and escaped ones, keys too.
            "{\"s\": \"a\u{2028}b\u{7f}c\u{1F600}\u{e9}\", \"\\u00e9\": \"\\/\", \"\\\"\": [\"\\u0001\"]}",
        ] {
            let mut tree = crate::record::tree::Tree::default();
            tree.parse(text).unwrap();
            let root = tree.root(text);
            let mut by_tree = Vec::new();
            write_tree_json(&mut by_tree, root, &written).unwrap();
            let mut by_map = Vec::new();
            write_json(&mut by_map, &tree_to_dynamic_with(root, &written)).unwrap();
            assert_eq!(
                String::from_utf8(by_tree).unwrap(),
                String::from_utf8(by_map).unwrap()
            );
            // Counted while parsing, unless a duplicate key dropped a value.
            assert_eq!(root.counts().is_some(), !text.contains(r#""k""#), "{text}");
            assert_eq!(tree_sizes(root), {
                let mut s = Sizes::default();
                drop(to_dynamic_sized(
                    serde_json::from_str(text).unwrap(),
                    &mut s,
                ));
                s
            });
        }
        let nan = vec![("n".into(), Dynamic::from_float(f64::NAN))];
        let mut tree = crate::record::tree::Tree::default();
        tree.parse("{}").unwrap();
        let mut out = Vec::new();
        let err = write_tree_json(&mut out, tree.root("{}"), &nan).unwrap_err();
        assert_eq!(err, "`record.n` is NaN, which JSON cannot hold");
    }

    #[test]
    fn round_trips_json() {
        let v = json!({"a": [1, 2.5, "x\n\"", null, true], "b": {"c": -7, "d e": 1e300}});
        let mut sizes = Sizes::default();
        let d = to_dynamic_sized(v.clone(), &mut sizes);
        assert_eq!(
            sizes,
            Sizes {
                array_items: 5,
                map_entries: 4,
                string_bytes: 3
            }
        );
        let mut out = Vec::new();
        write_json(&mut out, &d).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), v);
        // The same text serde_json writes.
        assert_eq!(out, serde_json::to_vec(&v).unwrap());
    }

    fn written(script: &str) -> Result<String, String> {
        let e = crate::transform::engine(&crate::transform::Limits::default());
        let v: Dynamic = e.eval(script).unwrap();
        let mut out = Vec::new();
        write_json(&mut out, &v).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn values_without_a_json_form_are_errors_that_name_the_field() {
        assert_eq!(
            written("#{total: 1e308 * 10.0}"),
            Err("`record.total` is infinite, which JSON cannot hold".into())
        );
        assert_eq!(
            written("#{items: [1, #{x: -1e308 * 10.0}]}"),
            Err("`record.items[1].x` is negative infinite, which JSON cannot hold".into())
        );
        assert_eq!(
            written("#{\"a b\": 0.0 / 0.0}"),
            Err("`record[\"a b\"]` is NaN, which JSON cannot hold".into())
        );
        assert_eq!(
            written("#{f: Fn(\"x\")}"),
            Err("`record.f` is a value of type `Fn`, which has no JSON form".into())
        );
        assert_eq!(
            written("#{r: 1..3}"),
            Err("`record.r` is a value of type `range`, which has no JSON form".into())
        );
        assert_eq!(
            written("#{c: 'x', u: ()}"),
            Ok(r#"{"c":"x","u":null}"#.into())
        );
    }
}
