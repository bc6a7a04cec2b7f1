//! Firehose data-transformation events (`deliveryStreamArn`, `records[]`)
//! and their answers: one entry per `recordId`, `Ok` with the transformed
//! record, `Dropped` or `ProcessingFailed`.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_lambda_events::event::firehose::KinesisFirehoseEventRecord;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::super::event::{Batch, EventSource, Item, Outcome, decode, fields, text_at};
use super::{DeadLettered, stream_name};
use crate::record::time::rfc3339_millis;
use crate::record::{Position, RawRecord, Returned};

/// The largest answer Lambda returns: 6 MB.
const MAX_ANSWER_BYTES: usize = 6 * 1024 * 1024;

/// Room kept for the answer's framing (`{"records":[` … `]}`).
const FRAMING_BYTES: usize = 64;

/// Firehose events in Lambda mode.
pub struct Events;

impl EventSource for Events {
    fn origins(&self) -> &'static [&'static str] {
        &["aws:firehose"]
    }

    fn decode(&self, mut event: Value) -> Result<Batch, String> {
        let stream: Option<Arc<str>> =
            text_at(&event, "/deliveryStreamArn").map(|arn| Arc::from(stream_name(&arn)));
        let Some(Value::Array(records)) = event.get_mut("records").map(Value::take) else {
            return Err(format!("has no `records` list ({})", fields(&event)));
        };
        let mut batch = Batch::default();
        for r in &records {
            push(r, stream.clone(), &mut batch);
        }
        Ok(batch)
    }

    /// The invocation is answered as a whole: after a failure, nothing more is started.
    fn ordering_unit<'a>(&self, _batch: &'a Batch, _item: usize) -> Option<&'a str> {
        Some("")
    }

    fn response(&self, batch: &Batch, outcome: &Outcome<'_>) -> Result<Value, String> {
        if !outcome.failed.is_empty() {
            // Firehose has no partial answer: it invokes again with the whole batch.
            return Err(format!(
                "{} of {} records were not delivered: Firehose will send the batch again",
                outcome.failed.len(),
                batch.items.len()
            ));
        }
        let dead_lettered = match outcome.source {
            crate::sources::Config::Firehose(c) => c.dead_lettered,
            _ => DeadLettered::default(),
        };
        answer(
            batch,
            outcome.returned,
            outcome.dead_lettered,
            dead_lettered,
        )
    }

    fn redelivered(&self, batch: &Batch, failed: &BTreeSet<usize>) -> usize {
        if failed.is_empty() {
            0
        } else {
            batch.items.len()
        }
    }
}

/// Adds one Firehose record to the batch.
fn push(r: &Value, stream: Option<Arc<str>>, batch: &mut Batch) {
    let id = text_at(r, "/recordId").unwrap_or_default();
    let mut item = Item::new(id.clone());
    item.original = text_at(r, "/data");
    let ms = |pointer: &str| r.pointer(pointer).and_then(Value::as_i64);
    let position = Position {
        source: "firehose",
        stream,
        message_id: Some(id),
        shard: text_at(r, "/kinesisRecordMetadata/shardId").map(Arc::from),
        partition_key: text_at(r, "/kinesisRecordMetadata/partitionKey"),
        sequence_number: text_at(r, "/kinesisRecordMetadata/sequenceNumber"),
        arrival_time: ms("/approximateArrivalTimestamp").map(rfc3339_millis),
        ..Position::default()
    };
    match decode::<KinesisFirehoseEventRecord>(r) {
        Ok(record) => batch.push(RawRecord::new(record.data.0, position), item),
        Err(e) => batch.undecodable(r, "Firehose record", e, position, item),
    }
}

/// One entry of the answer.
fn entry(id: &str, result: &str, data: &str, keys: &[(String, String)]) -> Value {
    let mut e = json!({ "recordId": id, "result": result, "data": data });
    if !keys.is_empty() {
        let keys: Map<String, Value> = keys
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        e["metadata"] = json!({ "partitionKeys": keys });
    }
    e
}

/// The answer: every event record once, in order. A record routed to the
/// answer is `Ok` with it; one filtered on purpose `Dropped`; one
/// dead-lettered as `dead_lettered` says; one that became several records
/// `ProcessingFailed` (Firehose takes one record back for each). A
/// transformed record that would take the answer past Lambda's 6 MB is
/// `ProcessingFailed` too, so that Firehose's error output keeps it.
fn answer(
    batch: &Batch,
    returned: &[Returned],
    dead: &BTreeSet<usize>,
    dead_lettered: DeadLettered,
) -> Result<Value, String> {
    let mut by_item: Vec<Vec<&Returned>> = vec![Vec::new(); batch.items.len()];
    for r in returned {
        if let Some(slot) = by_item.get_mut(r.item) {
            slot.push(r);
        }
    }
    let original = |i: usize| batch.items[i].original.as_deref().unwrap_or("");
    let failed = |i: usize| entry(&batch.items[i].id, "ProcessingFailed", original(i), &[]);
    let size = |v: &Value| v.to_string().len() + 1;
    // What the answer takes if every record from `i` on is answered with
    // its original data: the room the records before `i` must leave.
    let mut fallback: Vec<usize> = (0..batch.items.len()).map(|i| size(&failed(i))).collect();
    for i in (0..fallback.len().saturating_sub(1)).rev() {
        fallback[i] += fallback[i + 1];
    }
    if fallback.first().copied().unwrap_or(0) + FRAMING_BYTES > MAX_ANSWER_BYTES {
        return Err("the records' answer would be larger than Lambda's 6 MB".to_owned());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut used = FRAMING_BYTES;
    let mut records = Vec::with_capacity(batch.items.len());
    let mut too_large = 0usize;
    for (i, got) in by_item.iter().enumerate() {
        let id = &batch.items[i].id;
        let e = match got.as_slice() {
            [one] => entry(id, "Ok", &b64.encode(&one.data), &one.keys),
            [] if dead.contains(&i) => match dead_lettered {
                DeadLettered::ProcessingFailed => failed(i),
                DeadLettered::Dropped => entry(id, "Dropped", original(i), &[]),
            },
            [] => entry(id, "Dropped", original(i), &[]),
            _ => failed(i),
        };
        let rest = fallback.get(i + 1).copied().unwrap_or(0);
        let e = if used + size(&e) + rest > MAX_ANSWER_BYTES {
            too_large += 1;
            failed(i)
        } else {
            e
        };
        used += size(&e);
        records.push(e);
    }
    if too_large > 0 {
        crate::logs::json(
            "warn",
            &format!(
                "{too_large} transformed records did not fit in Lambda's 6 MB answer: they are answered ProcessingFailed (Firehose's error output keeps them)"
            ),
        );
    }
    Ok(json!({ "records": records }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::firehose::Config;

    fn batch(n: usize) -> Batch {
        let records: Vec<Value> = (0..n)
            .map(|i| json!({ "recordId": format!("r{i}"), "approximateArrivalTimestamp": 1_700_000_000_000_i64, "data": "e30=" }))
            .collect();
        Events
            .decode(json!({ "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/s", "records": records }))
            .unwrap()
    }

    fn returned(item: usize, data: &str) -> Returned {
        Returned {
            item,
            data: data.as_bytes().to_vec(),
            keys: vec![("customer".into(), "c-1".into())],
        }
    }

    fn results(v: &Value) -> Vec<(&str, &str)> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["recordId"].as_str().unwrap(),
                    r["result"].as_str().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn each_record_is_answered_once_by_what_became_of_it() {
        let b = batch(4);
        assert_eq!(b.records[0].position.message_id.as_deref(), Some("r0"));
        assert_eq!(b.records[0].position.stream.as_deref(), Some("s"));
        // r0 transformed, r1 filtered, r2 dead-lettered, r3 fanned out into two.
        let got = [
            returned(0, "{\"a\":1}\n"),
            returned(3, "{}"),
            returned(3, "{}"),
        ];
        let dead = BTreeSet::from([2]);
        let v = answer(&b, &got, &dead, DeadLettered::ProcessingFailed).unwrap();
        assert_eq!(
            results(&v),
            [
                ("r0", "Ok"),
                ("r1", "Dropped"),
                ("r2", "ProcessingFailed"),
                ("r3", "ProcessingFailed")
            ]
        );
        assert_eq!(v["records"][0]["data"], "eyJhIjoxfQo=");
        assert_eq!(
            v["records"][0]["metadata"],
            json!({ "partitionKeys": { "customer": "c-1" } })
        );
        assert_eq!(v["records"][2]["data"], "e30=", "the original record");
        let v = answer(&b, &got, &dead, DeadLettered::Dropped).unwrap();
        assert_eq!(results(&v)[2], ("r2", "Dropped"));
    }

    #[test]
    fn records_past_six_megabytes_are_answered_processing_failed() {
        let b = batch(4);
        let big = "x".repeat(2 * 1024 * 1024);
        let got: Vec<Returned> = (0..4).map(|i| returned(i, &big)).collect();
        let v = answer(&b, &got, &BTreeSet::new(), DeadLettered::default()).unwrap();
        // Base64 makes 2 MiB 2.7 MiB: two fit, the others keep their originals.
        assert_eq!(
            results(&v),
            [
                ("r0", "Ok"),
                ("r1", "Ok"),
                ("r2", "ProcessingFailed"),
                ("r3", "ProcessingFailed")
            ]
        );
        assert!(v.to_string().len() <= MAX_ANSWER_BYTES);
    }

    #[test]
    fn an_arrival_time_past_year_9999_is_kept_to_its_record() {
        let b = Events
            .decode(json!({ "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/s", "records": [
                { "recordId": "r0", "approximateArrivalTimestamp": 253_402_300_800_000_i64, "data": "e30=" }
            ] }))
            .unwrap();
        assert_eq!(
            b.records[0].position.arrival_time.as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
    }

    #[test]
    fn a_failed_record_fails_the_invocation() {
        let b = batch(2);
        let failed = BTreeSet::from([1]);
        let source = crate::sources::Config::Firehose(Config::default());
        let outcome = Outcome {
            failed: &failed,
            dead_lettered: &BTreeSet::new(),
            returned: &[],
            source: &source,
            state: None,
        };
        assert_eq!(
            Events.response(&b, &outcome).unwrap_err(),
            "1 of 2 records were not delivered: Firehose will send the batch again"
        );
        assert_eq!(Events.redelivered(&b, &failed), 2);
    }
}
