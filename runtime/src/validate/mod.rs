//! Validate: records against the pipeline's JSON Schemas.
//!
//! Schemas are compiled once, when the pipeline is built; a record that does
//! not match is dead-lettered (stage `validate`) with the first error's
//! message and instance path, dropped, or stops the run, as `on_invalid` says.

pub mod tree;

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Check every record against a schema before the transforms run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Validate")]
pub struct Config {
    /// Name of a schema under `schemas:`.
    pub schema: String,
    /// What to do with a record that does not match.
    #[serde(default)]
    pub on_invalid: OnInvalid,
}

/// What happens to a record that fails validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "OnInvalid")]
pub enum OnInvalid {
    /// Dead-letter it with stage `validate` and the reason.
    #[default]
    Dlq,
    /// Drop it, counted as `dropped_invalid`.
    Drop,
    /// Stop the run with an error; nothing after it is acknowledged.
    Fail,
}

/// A schema as written under `schemas:`: a path to a JSON file, or the schema inline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "SchemaSource")]
pub enum SchemaSource {
    /// Path of a JSON Schema file, relative to the pipeline file's folder.
    Path(String),
    /// The schema itself, written in YAML.
    Inline(serde_json::Map<String, Value>),
}

/// Why a record is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The error message.
    pub message: String,
    /// JSON pointer to the offending part of the record (`""` for the whole record).
    pub instance_path: String,
}

/// Options every schema is compiled with: draft 2020-12 unless the schema
/// says otherwise, `format` as an annotation (not asserted).
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options_for::<tree::TreeJson>()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(schema)
        .map(|v| Validator(Arc::new(v)))
        .map_err(|e| e.to_string())
}

/// Checks that a document is a valid JSON Schema (against its meta-schema).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a JSON Schema is an object or a boolean".into());
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        let path = e.instance_path().as_str().to_owned();
        return Err(if path.is_empty() {
            e.to_string()
        } else {
            format!("{e} at {path}")
        });
    }
    compile(schema).map(|_| ())
}

/// A compiled schema, cheap to clone and share between workers. It reads
/// records as their parsed [`Tree`](crate::record::tree::Tree).
#[derive(Clone)]
pub struct Validator(Arc<jsonschema::Validator<tree::TreeJson>>);

impl Validator {
    /// `Ok` when the record matches; otherwise the first error.
    pub fn validate(&self, record: crate::record::tree::At<'_>) -> Result<(), Invalid> {
        // Most records match: the check that tracks no location comes first.
        if self.0.is_valid(record) {
            return Ok(());
        }
        self.0.validate(record).map_err(|e| Invalid {
            message: e.to_string(),
            instance_path: e.instance_path().as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tree::Tree;
    use serde_json::json;

    impl Validator {
        fn validate_value(&self, record: &Value) -> Result<(), Invalid> {
            let text = record.to_string();
            let mut tree = Tree::default();
            tree.parse(&text).unwrap();
            self.validate(tree.root(&text))
        }
    }

    /// For the same document, the tree gives the validator's answer for a
    /// `serde_json::Value`, message and path included.
    #[test]
    fn a_tree_validates_as_a_value_does() {
        let schema: Value = serde_json::from_str(include_str!(
            "../../../pipelines/orders/schemas/order.schema.json"
        ))
        .unwrap();
        let by_value = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(&schema)
            .unwrap();
        let v = compile(&schema).unwrap();
        let good = json!({"order_id": "3eb13b90-4668-4257-bdd6-40fb06671ad1", "customer_id": "c",
            "region": "eu", "ts": "2026-01-01T00:00:00Z", "currency": "EUR", "channel": "web",
            "items": [{"sku": "SKU-1", "qty": 2, "price": 1.5}], "tags": ["a", "b"],
            "payment": {"method": "card"}, "shipping": {"method": "x", "address": {"country": "DE"}}});
        let mut cases = vec![good.clone()];
        for (pointer, bad) in [
            ("/currency", json!("XXX")),
            ("/channel", json!(5)),
            ("/order_id", json!("nope")),
            ("/items", json!([])),
            ("/items/0/qty", json!(0)),
            ("/items/0/price", json!("1")),
            ("/tags", json!(["a", "a"])),
            ("/payment/method", json!("cash")),
            ("/shipping/address/country", json!("DEU")),
            ("/extra", json!(1)),
            ("/customer_id", json!("")),
            ("/gift", json!(null)),
        ] {
            let mut c = good.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match c.pointer_mut(parent).unwrap() {
                Value::Object(m) => {
                    m.insert(key.to_owned(), bad);
                }
                Value::Array(a) => a[key.parse::<usize>().unwrap()] = bad,
                _ => unreachable!(),
            }
            cases.push(c);
        }
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("items");
        cases.extend([missing, json!([]), json!("text"), json!(null)]);
        for case in cases {
            let expected = by_value.validate(&case).map_err(|e| Invalid {
                message: e.to_string(),
                instance_path: e.instance_path().as_str().to_owned(),
            });
            assert_eq!(v.validate_value(&case), expected, "{case}");
        }
    }

    #[test]
    fn reports_message_and_instance_path() {
        let v = compile(
            &json!({"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}),
        )
        .unwrap();
        assert_eq!(v.validate_value(&json!({"qty": 2})), Ok(()));
        let err = v.validate_value(&json!({"qty": -3})).unwrap_err();
        assert_eq!(err.instance_path, "/qty");
        assert_eq!(err.message, "-3 is less than the minimum of 1");
    }

    #[test]
    fn formats_are_annotations() {
        let v = compile(&json!({"type": "string", "format": "date-time"})).unwrap();
        assert_eq!(v.validate_value(&json!("not a date")), Ok(()));
    }

    #[test]
    fn rejects_invalid_schemas() {
        assert!(check_schema(&json!({"type": "strnig"})).is_err());
        assert!(check_schema(&json!({"type": "string"})).is_ok());
        assert!(check_schema(&json!(3)).is_err());
    }
}
