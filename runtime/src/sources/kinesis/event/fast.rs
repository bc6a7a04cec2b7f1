//! Kinesis events read straight from their text: every field borrowed from
//! the event where it has no escapes, each record's data base64-decoded once
//! into its own buffer, the stream and shard names shared by every record of
//! the shard. This path takes the common event only, every record of which
//! the general path ([`super::push`]) would decode too; it gives the same
//! batch. Anything else (a record that is not a Kinesis record, data that is
//! not base64, a timestamp given as text …) goes down the general path,
//! which says what is wrong with which record.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::super::{position, push_records, stream_name};
use crate::sources::event::{Batch, Item};

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<Record<'a>>,
    // An event naming its source at the top is left to the general path.
    #[serde(rename = "eventSource")]
    event_source: Option<IgnoredAny>,
    #[serde(rename = "deliveryStreamArn")]
    delivery_stream_arn: Option<IgnoredAny>,
}

/// The fields of `aws_lambda_events`' `KinesisEventRecord`, with the same
/// types, so that a record read here is one that the general path reads.
#[derive(Deserialize)]
#[expect(dead_code, reason = "some fields are read for their types only")]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(borrow)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventSourceARN", borrow)]
    event_source_arn: Option<Cow<'a, str>>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kinesis: Kinesis<'a>,
    // Read for their types only, from here on.
    #[serde(borrow)]
    aws_region: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    invoke_identity_arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "some fields are read for their types only")]
struct Kinesis<'a> {
    approximate_arrival_timestamp: f64,
    #[serde(borrow)]
    data: Cow<'a, str>,
    #[serde(default, borrow)]
    partition_key: Cow<'a, str>,
    #[serde(default, borrow)]
    sequence_number: Cow<'a, str>,
    // Read for their types only.
    #[serde(default)]
    encryption_type: Encryption,
    #[serde(borrow)]
    kinesis_schema_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Encryption {
    #[default]
    None,
    Kms,
}

/// The batch of a Kinesis event, or `None` for the general path.
pub fn decode(text: &str) -> Option<Batch> {
    let event: Event<'_> = serde_json::from_str(text).ok()?;
    if event.event_source.is_some() || event.delivery_stream_arn.is_some() {
        return None;
    }
    let first = event.records.first()?;
    if first.event_source.as_deref() != Some("aws:kinesis") {
        return None;
    }
    let n = event.records.len();
    let mut batch = Batch {
        records: Vec::with_capacity(n),
        item_of: Vec::with_capacity(n),
        items: Vec::with_capacity(n),
        fifo: false,
    };
    // Every record of an event comes from one shard of one stream.
    let mut stream: Option<(Cow<'_, str>, Arc<str>)> = None;
    let mut shard: Option<(&str, Arc<str>)> = None;
    for r in &event.records {
        let k = &r.kinesis;
        let arrival_ms = arrival_ms(k.approximate_arrival_timestamp)?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(k.data.as_bytes())
            .ok()?;
        let stream = match (&r.event_source_arn, &mut stream) {
            (None, _) => None,
            (Some(arn), Some((last, name))) if last == arn => Some(Arc::clone(name)),
            (Some(arn), slot) => {
                let name: Arc<str> = Arc::from(stream_name(arn));
                *slot = Some((arn.clone(), Arc::clone(&name)));
                Some(name)
            }
        };
        let shard = match r.event_id.as_deref().and_then(|id| id.split_once(':')) {
            None => None,
            Some((id, _)) => match &mut shard {
                Some((last, name)) if *last == id => Some(Arc::clone(name)),
                slot => {
                    let name: Arc<str> = Arc::from(id);
                    *slot = Some((id, Arc::clone(&name)));
                    Some(name)
                }
            },
        };
        let seq = k.sequence_number.clone().into_owned();
        let position = position(
            stream,
            shard,
            Some(k.partition_key.clone().into_owned()),
            seq.clone(),
            Some(arrival_ms),
        );
        batch.push_many(Item::new(seq), |records| {
            push_records(records, data, position)
        });
    }
    Some(batch)
}

/// The arrival time in milliseconds, as the general path reads it, for a
/// timestamp the typed record accepts: a plain decimal number of seconds
/// with at most three decimals. `None` for anything else.
fn arrival_ms(seconds: f64) -> Option<i64> {
    if !(0.0..1e11).contains(&seconds) {
        return None;
    }
    let ms = seconds * 1000.0;
    let whole = ms.round();
    // At most three decimals: the typed record reads the decimals as given.
    if (ms - whole).abs() > 1e-3 {
        return None;
    }
    let text = seconds.to_string();
    if text.split_once('.').is_some_and(|(_, frac)| frac.len() > 3) {
        return None;
    }
    Some(whole as i64)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::sources::event::EventSource as _;

    fn general(event: &Value) -> Batch {
        super::super::EVENTS.decode(event.clone()).unwrap()
    }

    fn record(seq: &str, data: &str, arrival: Value) -> Value {
        json!({
            "kinesis": { "kinesisSchemaVersion": "1.0", "partitionKey": format!("pk-{seq}"),
                         "sequenceNumber": seq, "data": data,
                         "approximateArrivalTimestamp": arrival },
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": format!("shardId-000000000006:{seq}"), "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role", "awsRegion": "us-east-2",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
        })
    }

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    #[test]
    fn the_fast_path_gives_the_general_paths_batch() {
        let aggregate = crate::sources::kinesis::kpl::tests::aggregate(&[
            ("a", b"{\"n\":1}"),
            ("b", b"{\"n\":2}"),
        ]);
        let event = json!({ "Records": [
            record("1", &b64(b"{\"a\":1}"), json!(1_545_084_650.987)),
            record("2", &b64(&aggregate), json!(1_545_084_651)),
            record("3", &b64(b"not json \xff"), json!(1_545_084_651.5)),
        ] });
        // Escaped text (`\/` in base64) is read the same way.
        let text = event.to_string().replace("/", "\\/");
        let fast = decode(&text).expect("the fast path takes a plain Kinesis event");
        let general = general(&event);
        assert_eq!(format!("{fast:?}"), format!("{general:?}"));
        assert_eq!(fast.records.len(), 4, "the aggregate gives two records");
        assert_eq!(fast.item_of, vec![0, 1, 1, 2]);
    }

    #[test]
    fn anything_unusual_takes_the_general_path() {
        let ok = record("1", "e30=", json!(1_700_000_000.5));
        let with = |f: &dyn Fn(&mut Value)| {
            let mut r = ok.clone();
            f(&mut r);
            json!({ "Records": [r, ok.clone()] }).to_string()
        };
        assert!(decode(&with(&|_| {})).is_some());
        let ts = "approximateArrivalTimestamp";
        let unusual: [(&str, String); 9] = [
            (
                "data not base64",
                with(&|r| r["kinesis"]["data"] = json!("%%%")),
            ),
            (
                "a timestamp as text",
                with(&|r| r["kinesis"][ts] = json!("1700000000")),
            ),
            (
                "four decimals",
                with(&|r| r["kinesis"][ts] = json!(1_700_000_000.123_4)),
            ),
            (
                "a negative timestamp",
                with(&|r| r["kinesis"][ts] = json!(-1.0)),
            ),
            ("no data", with(&|r| r["kinesis"] = json!({ ts: 1.0 }))),
            (
                "another encryption",
                with(&|r| r["kinesis"]["encryptionType"] = json!("X")),
            ),
            ("a region not text", with(&|r| r["awsRegion"] = json!(7))),
            ("no records", json!({ "Records": [] }).to_string()),
            (
                "another source",
                with(&|r| r["eventSource"] = json!("aws:sqs")),
            ),
        ];
        for (what, text) in unusual {
            assert!(decode(&text).is_none(), "{what}");
        }
    }
}
