//! The JSON Schema of the pipeline format, generated from the config types.
//!
//! `schema/pipeline.schema.json` is this output; a test fails when the
//! checked-in file is stale. `type`-tagged unions are rewritten from `oneOf`
//! into `if`/`then` on the tag, so a validator (and an editor) reports the
//! errors of the variant the user chose instead of "matches none of oneOf".

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::pipeline::Pipeline;

/// The schema's `$id`.
pub const SCHEMA_ID: &str = "https://sluice.dev/schema/pipeline.schema.json";

/// The pipeline format's JSON Schema, generated once.
pub fn pipeline_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate)
}

/// Generates the schema.
pub fn generate() -> Value {
    generate_for::<Pipeline>(SCHEMA_ID)
}

/// Generates the schema of a file format whose root type is `T`.
pub fn generate_for<T: schemars::JsonSchema>(id: &str) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("$id".into(), json!(id));
    }
    rewrite_tagged_unions(&mut value);
    value
}

/// The schema as the checked-in file holds it.
pub fn generate_text() -> String {
    let mut s = serde_json::to_string_pretty(&generate()).unwrap_or_default();
    s.push('\n');
    s
}

fn rewrite_tagged_unions(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            collapse_optional(obj);
            if let Some(rewritten) = obj
                .get("oneOf")
                .and_then(|o| o.as_array())
                .and_then(|branches| tagged(branches))
            {
                obj.remove("oneOf");
                for (k, val) in rewritten {
                    obj.insert(k, val);
                }
            }
            for child in obj.values_mut() {
                rewrite_tagged_unions(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_tagged_unions),
        _ => {}
    }
}

/// `Option<T>` fields come out as `anyOf: [T, null]`; a validator then reports
/// "not valid under any of anyOf" instead of T's own errors. An absent key
/// already means "none", so the field's schema becomes T alone.
fn collapse_optional(obj: &mut Map<String, Value>) {
    let Some(branches) = obj.get("anyOf").and_then(Value::as_array) else {
        return;
    };
    let is_null = |b: &Value| b.get("type").and_then(Value::as_str) == Some("null");
    if branches.len() != 2 || !branches.iter().any(is_null) {
        return;
    }
    let Some(Value::Object(other)) = branches.iter().find(|b| !is_null(b)).cloned() else {
        return;
    };
    obj.remove("anyOf");
    for (k, v) in other {
        obj.entry(k).or_insert(v);
    }
}

/// For `oneOf` branches that each pin `type` to a constant: `type` must be one
/// of the names, and `if type == name then <branch>` per branch.
fn tagged(branches: &[Value]) -> Option<Map<String, Value>> {
    let mut names = Vec::new();
    let mut rules = Vec::new();
    for b in branches {
        let name = b.pointer("/properties/type/const")?.as_str()?.to_owned();
        let mut then = b.clone();
        if let Some(desc) = then.as_object_mut().and_then(|o| o.remove("description")) {
            // Keep the variant's description on its `type` value, where editors show it.
            if let Some(t) = then
                .pointer_mut("/properties/type")
                .and_then(|t| t.as_object_mut())
            {
                t.insert("description".into(), desc);
            }
        }
        rules.push(json!({
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": then,
        }));
        names.push(Value::String(name));
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("required".into(), json!(["type"]));
    out.insert("properties".into(), json!({"type": {"enum": names}}));
    out.insert("allOf".into(), Value::Array(rules));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schema/pipeline.schema.json` is what `sluice schema` prints. After
    /// changing a config type, run `cargo run -- schema > schema/pipeline.schema.json`.
    #[test]
    fn checked_in_schema_is_up_to_date() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/pipeline.schema.json");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generate_text(),
            "schema/pipeline.schema.json is stale: run `cargo run -- schema > schema/pipeline.schema.json`"
        );
    }

    #[test]
    fn tagged_unions_become_if_then_on_the_tag() {
        let s = generate();
        let source = s.pointer("/properties/source").unwrap();
        let source = match source.get("$ref").and_then(Value::as_str) {
            Some(r) => s.pointer(r.trim_start_matches('#')).unwrap(),
            None => source,
        };
        assert_eq!(
            source["properties"]["type"]["enum"],
            json!(crate::sources::TYPES)
        );
        assert_eq!(
            source["allOf"][0]["if"]["properties"]["type"]["const"],
            "file"
        );
        assert!(source.get("oneOf").is_none());
    }
}
