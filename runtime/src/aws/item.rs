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

/// An item as the DynamoDB client gives it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// What [`batch_get`] asks for besides the keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct Read<'a> {
    /// Strongly consistent reads.
    pub consistent: bool,
    /// Only these attributes (their names).
    pub attributes: &'a [&'a str],
}

/// Reads the items of `keys` (at most 100) from `table` with
/// `BatchGetItem`, each call retried as `retry` says; the keys DynamoDB
/// leaves unprocessed are asked again after the policy's backoff for as
/// many rounds as it allows. The items found, and the keys still
/// unprocessed then.
pub async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    read: Read<'_>,
    retry: &crate::delivery::Policy,
) -> Result<(Vec<Item>, Vec<Item>), crate::delivery::Error> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let what = format!("batch_get_item on table `{table}`");
    let mut found = Vec::new();
    let mut ask = keys;
    let mut rounds = 0u32;
    while !ask.is_empty() {
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut ask)))
            .consistent_read(read.consistent);
        if !read.attributes.is_empty() {
            let names: Vec<String> = (0..read.attributes.len())
                .map(|i| format!("#a{i}"))
                .collect();
            request = request.projection_expression(names.join(", "));
            for (n, a) in names.iter().zip(read.attributes) {
                request = request.expression_attribute_names(n, *a);
            }
        }
        let request = request
            .build()
            .map_err(|e| crate::delivery::Error::fatal(format!("{what}: {e}")))?;
        let out = retry
            .send(&what, || {
                client
                    .batch_get_item()
                    .request_items(table, request.clone())
                    .send()
            })
            .await?;
        if let Some(items) = out.responses().and_then(|r| r.get(table)) {
            found.extend(items.iter().cloned());
        }
        let left = out
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        rounds += 1;
        if left.is_empty() || !retry.may_retry(rounds, std::time::Duration::ZERO) {
            return Ok((found, left));
        }
        tokio::time::sleep(retry.backoff(rounds + 1, true)).await;
        ask = left;
    }
    Ok((found, Vec::new()))
}
