//! After shape errors, the rest of the pipeline is still checked: the broken
//! parts are made unknown, and what is left goes through the later passes
//! (references, schemas, scripts, sources), so one pass reports every
//! problem it can find.
//!
//! An unknown key is left out; a part that is still broken (a sink without
//! its `path`, a transform whose `script` is a list) is replaced by a
//! harmless stand-in that keeps its name, so routes to it and references
//! to it are still checked. Diagnostics the later passes report inside a
//! replaced part are dropped: they would be about the stand-in.

use std::ops::Range;

use jsonschema::error::ValidationErrorKind;
use serde_json::{Value, json};

use super::check::Cx;

/// A pipeline value the later passes can take, and the spans of the parts
/// that were replaced; `None` when nothing could be salvaged.
pub fn salvage(
    cx: &Cx<'_>,
    validator: &jsonschema::Validator,
) -> Option<(Value, Vec<Range<usize>>)> {
    let mut value = cx.value.clone();
    // Unknown keys first: what remains of their object may be fine.
    let unknown: Vec<(String, Vec<String>)> = validator
        .iter_errors(&value)
        .filter_map(|e| match e.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                Some((e.instance_path().as_str().to_owned(), unexpected.clone()))
            }
            _ => None,
        })
        .collect();
    for (pointer, keys) in unknown {
        if let Some(obj) = value.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            for k in keys {
                obj.remove(&k);
            }
        }
    }
    let mut replaced = Vec::new();
    // A stand-in may itself need a required key at the root: a few rounds.
    for _ in 0..3 {
        let broken: Vec<(String, Option<String>)> = validator
            .iter_errors(&value)
            .map(|e| {
                let missing = match e.kind() {
                    ValidationErrorKind::Required { property } => {
                        property.as_str().map(str::to_owned)
                    }
                    _ => None,
                };
                (e.instance_path().as_str().to_owned(), missing)
            })
            .collect();
        if broken.is_empty() {
            return Some((value, replaced));
        }
        for (pointer, missing) in broken {
            let part = component(&pointer);
            if part.is_empty() {
                // The root: a required key is missing, or it is not a mapping.
                let obj = value.as_object_mut()?;
                let key = missing?;
                obj.insert(key.clone(), stand_in(&key, None));
                continue;
            }
            if !replaced.contains(&cx.value_span(&part)) {
                replaced.push(cx.value_span(&part));
            }
            replace(&mut value, &part, cx.value);
        }
    }
    None
}

/// The part an error at `pointer` belongs to: a sink, schema, transform or
/// route (`/sinks/archive`), else its top-level section (`/source`).
fn component(pointer: &str) -> String {
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    match parts.as_slice() {
        [] => String::new(),
        [s, name, ..] if ["sinks", "schemas", "transforms", "routes"].contains(s) => {
            format!("/{s}/{name}")
        }
        [s, ..] => format!("/{s}"),
    }
}

/// Replaces the part at `pointer` by its stand-in (a required section), or
/// leaves it out (an optional one, whose default then applies).
fn replace(value: &mut Value, pointer: &str, original: &Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let key = key.replace("~1", "/").replace("~0", "~");
    let section = pointer.split('/').nth(1).unwrap_or_default().to_owned();
    let Some(container) = value.pointer_mut(parent) else {
        return;
    };
    let old = original.pointer(pointer);
    match container {
        Value::Object(obj) if parent.is_empty() && !REQUIRED.contains(&key.as_str()) => {
            obj.remove(&key);
        }
        Value::Object(obj) => {
            let name = (!parent.is_empty()).then_some(key.as_str());
            let with = stand_in(&section, name);
            obj.insert(key.clone(), with);
        }
        Value::Array(items) => {
            if let Ok(i) = key.parse::<usize>()
                && let Some(slot) = items.get_mut(i)
            {
                *slot = item_stand_in(&section, i, old);
            }
        }
        _ => {}
    }
}

/// The sections a pipeline must have.
const REQUIRED: [&str; 6] = ["version", "name", "source", "routes", "sinks", "dlq"];

/// A stand-in for a required section, or (`name`) for one sink or schema.
fn stand_in(section: &str, name: Option<&str>) -> Value {
    match (section, name) {
        ("sinks", Some(name)) => {
            json!({ "type": "file", "path": format!("\u{0}unknown sink {name}") })
        }
        ("schemas", Some(_)) => json!({}),
        ("version", _) => json!(1),
        ("name", _) => json!("pipeline"),
        ("source", _) => json!({ "type": "stdin" }),
        ("routes", _) => json!([]),
        ("sinks", None) => json!({}),
        ("dlq", _) => json!({ "type": "file", "path": "\u{0}unknown dlq" }),
        _ => Value::Null,
    }
}

/// A stand-in for a transform or route of a list, keeping what can be kept.
fn item_stand_in(section: &str, index: usize, old: Option<&Value>) -> Value {
    match section {
        "transforms" => {
            let name = old
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
                .map_or_else(|| format!("transform #{}", index + 1), str::to_owned);
            json!({ "name": name, "script": "record" })
        }
        "routes" => {
            let to: Vec<Value> = old
                .and_then(|r| r.get("to"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter(|v| v.is_string()).cloned().collect())
                .unwrap_or_default();
            json!({ "to": to })
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_belongs_to_its_component_or_section() {
        assert_eq!(component("/sinks/archive/path"), "/sinks/archive");
        assert_eq!(component("/transforms/2"), "/transforms/2");
        assert_eq!(component("/routes/0/when"), "/routes/0");
        assert_eq!(component("/source/queue_url"), "/source");
        assert_eq!(component("/limits"), "/limits");
        assert_eq!(component(""), "");
    }

    #[test]
    fn a_broken_route_keeps_its_sinks() {
        let old = json!({ "when": 3, "to": ["archive", 7] });
        assert_eq!(
            item_stand_in("routes", 0, Some(&old)),
            json!({ "to": ["archive"] })
        );
        let old = json!({ "name": "price", "script": ["x"] });
        assert_eq!(
            item_stand_in("transforms", 1, Some(&old)),
            json!({ "name": "price", "script": "record" })
        );
        assert_eq!(
            item_stand_in("transforms", 1, None),
            json!({ "name": "transform #2", "script": "record" })
        );
    }
}
