//! Kafka records of a Lambda event (`records: {"TOPIC-PARTITION": [...]}`,
//! `eventSource: aws:kafka` or `SelfManagedKafka`).

use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine as _;
use serde_json::{Map, Value};

use std::collections::{BTreeSet, HashMap};

use super::super::event::{Batch, EventSource, Item, Outcome, decode, fields, item_id, text_at};
use crate::record::time::rfc3339_millis;
use crate::record::{Position, RawRecord};

/// Adds every record of the event's topic-partitions (`records`) to the batch.
pub fn push(partitions: Map<String, Value>, batch: &mut Batch) {
    // Partitions in a stable order; each one's records in offset order, as delivered.
    let mut partitions: Vec<(String, Value)> = partitions.into_iter().collect();
    partitions.sort_by(|a, b| a.0.cmp(&b.0));
    let b64 = base64::engine::general_purpose::STANDARD;
    for (key, records) in partitions {
        let records = match records {
            Value::Array(records) => records,
            other => vec![other],
        };
        let default_topic = key.rsplit_once('-').map_or(&*key, |(t, _)| t).to_owned();
        for r in &records {
            let topic = text_at(r, "/topic").unwrap_or_else(|| default_topic.clone());
            let partition = r.get("partition").and_then(Value::as_i64);
            let offset = r.get("offset").and_then(Value::as_i64);
            let mut position = Position {
                source: "kafka",
                stream: Some(Arc::from(topic.as_str())),
                partition,
                offset,
                ..Position::default()
            };
            let item = Item {
                id: item_id(&position).unwrap_or_default(),
                group: Some(key.clone()),
                offset,
                original: None,
            };
            let decoded = decode::<KafkaRecord>(r).and_then(|k| {
                let decode = |field: &str, v: Option<&String>| -> Result<Vec<u8>, String> {
                    v.map_or(Ok(Vec::new()), |v| {
                        b64.decode(v)
                            .map_err(|e| format!("its {field} is not base64: {e}"))
                    })
                };
                let value = decode("value", k.value.as_ref())?;
                let key = match k.key.as_ref() {
                    Some(_) => {
                        let bytes = decode("key", k.key.as_ref())?;
                        Some(String::from_utf8(bytes).unwrap_or_else(|e| b64.encode(e.as_bytes())))
                    }
                    None => None,
                };
                Ok((k, value, key))
            });
            let (k, value, record_key) = match decoded {
                Ok(d) => d,
                Err(e) => {
                    batch.undecodable(r, "Kafka record", e, position, item);
                    continue;
                }
            };
            let headers: Vec<(String, String)> = k
                .headers
                .iter()
                .flat_map(|h| h.iter())
                .map(|(k, v)| {
                    let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                    (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
                })
                .collect();
            let ts = k.timestamp.0.timestamp_millis();
            position.partition_key = record_key;
            position.arrival_time = (ts > 0).then(|| rfc3339_millis(ts));
            let record = RawRecord::new(value, position).with_attributes(headers);
            batch.push(record, item);
        }
    }
}

/// Kafka events in Lambda mode: order is kept per topic-partition; the
/// answer names, for each topic-partition with a failure, its first failed
/// offset (`{"partition": "orders-0", "offset": 17}`), where the mapping
/// resumes it.
pub struct Events;

impl EventSource for Events {
    fn origins(&self) -> &'static [&'static str] {
        &["aws:kafka", "SelfManagedKafka"]
    }

    fn decode(&self, mut event: Value) -> Result<Batch, String> {
        let partitions = match event.get_mut("records").map(Value::take) {
            Some(Value::Object(partitions)) => partitions,
            Some(Value::Null) => Map::new(),
            _ => {
                return Err(format!(
                    "has no `records` object of topic-partitions ({})",
                    fields(&event)
                ));
            }
        };
        let mut batch = Batch::default();
        push(partitions, &mut batch);
        Ok(batch)
    }

    fn ordering_unit<'a>(&self, batch: &'a Batch, item: usize) -> Option<&'a str> {
        Some(batch.items[item].group.as_deref().unwrap_or(""))
    }

    fn response(&self, batch: &Batch, outcome: &Outcome<'_>) -> Result<Value, String> {
        let failures: Vec<Value> = first_failed(batch, outcome.failed)
            .into_iter()
            .map(|(p, (_, o))| serde_json::json!({ "itemIdentifier": { "partition": p, "offset": o } }))
            .collect();
        Ok(serde_json::json!({ "batchItemFailures": failures }))
    }

    fn redelivered(&self, batch: &Batch, failed: &BTreeSet<usize>) -> usize {
        let from = first_failed(batch, failed);
        batch
            .items
            .iter()
            .enumerate()
            .filter(|(i, item)| {
                item.group
                    .as_deref()
                    .and_then(|g| from.iter().find(|(p, _)| *p == g))
                    .is_some_and(|(_, (f, _))| i >= f)
            })
            .count()
    }
}

/// Per topic-partition with a failure, in order of first failure: the
/// index of its first failed event record and the lowest failed offset.
fn first_failed<'a>(batch: &'a Batch, failed: &BTreeSet<usize>) -> Vec<(&'a str, (usize, i64))> {
    let mut first: Vec<(&str, (usize, i64))> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for &i in failed {
        let item = &batch.items[i];
        let (Some(p), Some(o)) = (item.group.as_deref(), item.offset) else {
            continue;
        };
        match seen.get(p) {
            Some(&at) => first[at].1.1 = first[at].1.1.min(o),
            None => {
                seen.insert(p, first.len());
                first.push((p, (i, o)));
            }
        }
    }
    first
}
