//! Kafka records of a Lambda event (`records: {"TOPIC-PARTITION": [...]}`,
//! `eventSource: aws:kafka` or `SelfManagedKafka`).

use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::super::event::{Batch, Item, decode, item_id, text_at};
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
