//! DynamoDB items as plain JSON, for the DynamoDB Streams source (its
//! images) and DynamoDB lookups (their rows).

use base64::Engine as _;
use serde_dynamo::AttributeValue;
use serde_json::Value;

/// A DynamoDB item as plain JSON: numbers as numbers, sets as arrays, binary as base64.
pub fn item_json(item: &serde_dynamo::Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

/// One attribute value as plain JSON (see [`item_json`]). A number too
/// large or too precise for JSON stays its text.
pub fn attribute_json(v: &AttributeValue) -> Value {
    use AttributeValue as A;
    let number =
        |n: &str| serde_json::from_str::<Value>(n).unwrap_or_else(|_| Value::String(n.to_owned()));
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    match v {
        A::S(s) => Value::String(s.clone()),
        A::N(n) => number(n),
        A::B(b) => b64(b),
        A::Bool(b) => Value::Bool(*b),
        A::Null(_) => Value::Null,
        A::Ss(v) => Value::Array(v.iter().map(|s| Value::String(s.clone())).collect()),
        A::Ns(v) => Value::Array(v.iter().map(|n| number(n)).collect()),
        A::Bs(v) => Value::Array(v.iter().map(|b| b64(b)).collect()),
        A::L(l) => Value::Array(l.iter().map(attribute_json).collect()),
        A::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect(),
        ),
    }
}
