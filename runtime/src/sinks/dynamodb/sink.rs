//! The running `dynamodb` sink.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

use super::{Config, Mode};
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, error::classify};
use crate::sinks::{OutRecord, Write};

/// BatchWriteItem: at most 25 items per call.
const MAX_BATCH_ITEMS: usize = 25;

/// A running DynamoDB sink.
pub struct Writer {
    config: Config,
    aws: Arc<Clients>,
    /// Requests made, for the summary's API call counts.
    calls: AtomicU64,
}

/// A JSON value as a DynamoDB attribute value.
pub fn to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attribute).collect()),
        Value::Object(o) => AttributeValue::M(
            o.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

fn field<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(record, |v, p| v.get(p))
}

impl Writer {
    /// A writer; makes no request.
    pub fn new(config: Config, aws: Arc<Clients>) -> Writer {
        Writer {
            config,
            aws,
            calls: AtomicU64::new(0),
        }
    }

    async fn put_batch(
        &self,
        chunk: &[(usize, HashMap<String, AttributeValue>)],
        results: &mut [Result<(), Error>],
    ) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .filter_map(|(_, item)| {
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .ok()
            })
            .map(|p| WriteRequest::builder().put_request(p).build())
            .collect();
        let what = format!("batch_write_item to table `{}`", self.config.table);
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self
            .aws
            .dynamodb()
            .batch_write_item()
            .request_items(&self.config.table, requests)
            .send()
            .await
        {
            Ok(out) => {
                // Items DynamoDB did not process (throttling) are retried, alone.
                let unprocessed: Vec<&HashMap<String, AttributeValue>> = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&self.config.table))
                    .map(|reqs| {
                        reqs.iter()
                            .filter_map(|w| w.put_request().map(|p| p.item()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (i, item) in chunk {
                    if unprocessed.contains(&item) {
                        results[*i] = Err(Error::new(
                            ErrorClass::Throttled,
                            format!("{what}: item not processed"),
                        ));
                    }
                }
            }
            Err(e) => {
                let err = classify(&what, &e);
                if err.class == ErrorClass::Poison && chunk.len() > 1 {
                    // One invalid item fails the whole call: write them one by
                    // one so that only the invalid ones are dead-lettered.
                    for (i, item) in chunk {
                        results[*i] = self.put_one(item.clone()).await;
                    }
                } else {
                    for (i, _) in chunk {
                        results[*i] = Err(err.clone());
                    }
                }
            }
        }
    }

    async fn put_one(&self, item: HashMap<String, AttributeValue>) -> Result<(), Error> {
        let mut req = self
            .aws
            .dynamodb()
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item));
        if let Some(c) = &self.config.condition {
            req = req.condition_expression(c);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        idempotent(
            &format!("put_item to table `{}`", self.config.table),
            req.send().await,
        )
    }

    async fn update(&self, record: &Value) -> Result<(), Error> {
        let poison = |m: String| Error::new(ErrorClass::Poison, m);
        let mut key = HashMap::new();
        for f in &self.config.key {
            let v = field(record, f)
                .ok_or_else(|| poison(format!("the record has no key field `{f}`")))?;
            key.insert(
                f.rsplit('.').next().unwrap_or(f).to_owned(),
                to_attribute(v),
            );
        }
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut adds = Vec::new();
        let mut sets = Vec::new();
        for (n, (attr, f)) in self.config.add.iter().enumerate() {
            let v = field(record, f)
                .ok_or_else(|| poison(format!("the record has no field `{f}` to add")))?;
            if !v.is_number() {
                return Err(poison(format!("field `{f}` is {v}, not a number to add")));
            }
            names.insert(format!("#a{n}"), attr.clone());
            values.insert(format!(":a{n}"), to_attribute(v));
            adds.push(format!("#a{n} :a{n}"));
        }
        for (n, (attr, f)) in self.config.set.iter().enumerate() {
            let Some(v) = field(record, f) else { continue };
            names.insert(format!("#s{n}"), attr.clone());
            values.insert(format!(":s{n}"), to_attribute(v));
            sets.push(format!("#s{n} = :s{n}"));
        }
        let mut expression = String::new();
        if !adds.is_empty() {
            expression.push_str(&format!("ADD {}", adds.join(", ")));
        }
        if !sets.is_empty() {
            expression.push_str(&format!(" SET {}", sets.join(", ")));
        }
        let mut req = self
            .aws
            .dynamodb()
            .update_item()
            .table_name(&self.config.table)
            .set_key(Some(key))
            .update_expression(expression.trim())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
        if let Some(c) = &self.config.condition {
            req = req.condition_expression(c);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        idempotent(
            &format!("update_item on table `{}`", self.config.table),
            req.send().await,
        )
    }
}

impl Write for Writer {
    /// Requests made so far.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Writes the records; one outcome per record.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Result<(), Error>> = vec![Ok(()); records.len()];
        let mut items: Vec<(usize, HashMap<String, AttributeValue>)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let record: Value = match serde_json::from_slice(r.json) {
                Ok(v) => v,
                Err(e) => {
                    results[i] = Err(Error::new(
                        ErrorClass::Poison,
                        format!("not a JSON record: {e}"),
                    ));
                    continue;
                }
            };
            match self.config.mode {
                Mode::Put => match to_attribute(&record) {
                    AttributeValue::M(item) => items.push((i, item)),
                    _ => {
                        results[i] = Err(Error::new(
                            ErrorClass::Poison,
                            "a DynamoDB item must be a JSON object",
                        ));
                    }
                },
                Mode::Update => results[i] = self.update(&record).await,
            }
        }
        if self.config.condition.is_some() {
            for (i, item) in items {
                results[i] = self.put_one(item).await;
            }
        } else {
            for chunk in items.chunks(MAX_BATCH_ITEMS) {
                self.put_batch(chunk, &mut results).await;
            }
        }
        results
    }
}

/// The outcome of a conditional write: a failed condition guards an
/// idempotent write, so it means the write was done before.
fn idempotent<T, E>(what: &str, result: Result<T, SdkError<E, HttpResponse>>) -> Result<(), Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().and_then(|s| s.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(())
        }
        Err(e) => Err(classify(what, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_json_to_attribute_values() {
        let v = to_attribute(
            &json!({"s": "x", "n": 1.5, "b": true, "z": null, "l": [1], "m": {"k": "v"}}),
        );
        let AttributeValue::M(m) = v else {
            panic!("a map")
        };
        assert_eq!(m["s"], AttributeValue::S("x".into()));
        assert_eq!(m["n"], AttributeValue::N("1.5".into()));
        assert_eq!(m["b"], AttributeValue::Bool(true));
        assert_eq!(m["z"], AttributeValue::Null(true));
        assert_eq!(
            m["l"],
            AttributeValue::L(vec![AttributeValue::N("1".into())])
        );
        assert_eq!(
            m["m"],
            AttributeValue::M(HashMap::from([(
                "k".to_owned(),
                AttributeValue::S("v".into())
            )]))
        );
    }
}
