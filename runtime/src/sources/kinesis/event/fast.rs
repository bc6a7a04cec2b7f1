//! Kinesis events read straight from their bytes: every field borrowed from
//! the event where it has no escapes, each record's data base64-decoded once
//! into its own buffer, the stream and shard names shared by every record of
//! the shard. This path takes the common event only, every record of which
//! the general path ([`super::push`]) would decode too; it gives the same
//! batch. Anything else (a record that is not a Kinesis record, data that is
//! not base64, a timestamp given as text …) goes down the general path,
//! which says what is wrong with which record.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::super::{position, push_records, stream_name};
use crate::sources::event::{Batch, Item};

/// The fields of `aws_lambda_events`' `KinesisEventRecord`, with the same
/// types, so that a record read here is one that the general path reads.
/// Texts are borrowed from the event: one with an escape (which this path
/// leaves to the general one) is rare, and copying every text of every
/// record took as long as reading the event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    event_source: Option<&'a str>,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: Option<&'a str>,
    #[serde(rename = "eventID")]
    event_id: Option<&'a str>,
    #[serde(borrow)]
    kinesis: Kinesis<'a>,
    // Read for their types only, from here on.
    #[serde(rename = "awsRegion")]
    _aws_region: Option<Text>,
    #[serde(rename = "eventName")]
    _event_name: Option<Text>,
    #[serde(rename = "eventVersion")]
    _event_version: Option<Text>,
    #[serde(rename = "invokeIdentityArn")]
    _invoke_identity_arn: Option<Text>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kinesis<'a> {
    approximate_arrival_timestamp: f64,
    #[serde(borrow)]
    data: Data<'a>,
    #[serde(default)]
    partition_key: &'a str,
    #[serde(default)]
    sequence_number: &'a str,
    // Read for their types only.
    #[serde(default, rename = "encryptionType")]
    _encryption_type: Encryption,
    #[serde(rename = "kinesisSchemaVersion")]
    _kinesis_schema_version: Option<Text>,
}

/// A text, checked to be one and not kept.
struct Text;

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        struct Check;
        impl Visitor<'_> for Check {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Text, E> {
                Ok(Text)
            }
        }
        d.deserialize_str(Check)
    }
}

/// A record's base64 text, as the bytes the decoder takes.
struct Data<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data<'a>, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Data<'de>, E> {
                Ok(Data(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Data<'de>, E> {
                Ok(Data(Cow::Owned(v.to_vec())))
            }
        }
        d.deserialize_bytes(Text)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Encryption {
    #[default]
    None,
    Kms,
}

/// The batch of a Kinesis event, or `None` for the general path. The event
/// is read in one pass: each record is added to the batch as soon as it is
/// read, and the first one this path does not take ends the reading.
pub fn decode(event: &[u8]) -> Option<Batch> {
    // Checked as UTF-8 once, in one pass: read from bytes, each of a
    // record's ten texts was checked on its own.
    let event = std::str::from_utf8(event).ok()?;
    let event: Event = serde_json::from_str(event).ok()?;
    if event.event_source.is_some() || event.delivery_stream_arn.is_some() || event.window.is_some()
    {
        return None;
    }
    let Records(batch) = event.records;
    (!batch.items.is_empty()).then_some(batch)
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "Records")]
    records: Records,
    // An event naming its source at the top is left to the general path.
    #[serde(rename = "eventSource")]
    event_source: Option<IgnoredAny>,
    #[serde(rename = "deliveryStreamArn")]
    delivery_stream_arn: Option<IgnoredAny>,
    // A mapping's tumbling window (with its state) too.
    window: Option<IgnoredAny>,
}

/// The `Records` list, each record added to the batch as it is read.
struct Records(Batch);

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Records, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Records;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of Kinesis records")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Records, S::Error> {
                let mut reader = Reader::default();
                while let Some(r) = seq.next_element::<Record<'de>>()? {
                    if !reader.push(r) {
                        return Err(de::Error::custom("not a plain Kinesis record"));
                    }
                }
                Ok(Records(reader.batch))
            }
        }
        d.deserialize_seq(List)
    }
}

/// What the records read so far gave.
#[derive(Default)]
struct Reader<'a> {
    batch: Batch,
    /// The stream's ARN and name, shared by every record of the event.
    stream: Option<(&'a str, Arc<str>)>,
    /// The shard's id and name.
    shard: Option<(&'a str, Arc<str>)>,
}

impl<'a> Reader<'a> {
    /// Adds a record; `false` when this path does not take it.
    fn push(&mut self, r: Record<'a>) -> bool {
        if r.event_source != Some("aws:kinesis") {
            return false;
        }
        let k = r.kinesis;
        let Some(arrival_ms) = arrival_ms(k.approximate_arrival_timestamp) else {
            return false;
        };
        let Ok(data) = base64_simd::STANDARD.decode_to_vec(&k.data.0) else {
            return false;
        };
        let stream = match (r.event_source_arn, &mut self.stream) {
            (None, _) => None,
            (Some(arn), Some((last, name))) if *last == arn => Some(Arc::clone(name)),
            (Some(arn), slot) => {
                let name: Arc<str> = Arc::from(stream_name(arn));
                *slot = Some((arn, Arc::clone(&name)));
                Some(name)
            }
        };
        let shard = match r.event_id.and_then(|id| id.split_once(':')) {
            None => None,
            Some((id, _)) => match &mut self.shard {
                Some((last, name)) if *last == id => Some(Arc::clone(name)),
                slot => {
                    let name: Arc<str> = Arc::from(id);
                    *slot = Some((id, Arc::clone(&name)));
                    Some(name)
                }
            },
        };
        let seq = k.sequence_number.to_owned();
        let position = position(
            stream,
            shard,
            Some(k.partition_key.to_owned()),
            seq.clone(),
            Some(arrival_ms),
        );
        self.batch.push_many(Item::new(seq), |records| {
            push_records(records, data, position)
        });
        true
    }
}

/// The arrival time in milliseconds, as the general path reads it, for a
/// timestamp the typed record accepts: a plain decimal number of seconds
/// with at most three decimals. `None` for anything else.
fn arrival_ms(seconds: f64) -> Option<i64> {
    if !(0.0..1e11).contains(&seconds) {
        return None;
    }
    let whole = (seconds * 1000.0).round();
    // At most three decimals (the typed record reads the decimals as
    // given): the number of thousandths nearest to `seconds` is `seconds`
    // itself exactly when its shortest decimal form has three or fewer.
    (whole / 1000.0 == seconds).then_some(whole as i64)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
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

    #[test]
    fn an_arrival_time_is_taken_with_three_decimals_at_most() {
        // What the shortest decimal form says, for every number tried.
        let by_text = |seconds: f64| {
            let text = seconds.to_string();
            let decimals = text.split_once('.').map_or(0, |(_, frac)| frac.len());
            (decimals <= 3).then(|| (seconds * 1000.0).round() as i64)
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..100_000 {
            let ms = rng.i64(0..100_000_000_000_000);
            for seconds in [
                ms as f64 / 1000.0,
                ms as f64 / 100.0 / 1000.0,
                (ms as f64 + rng.f64()) / 1000.0,
                ms as f64 / 10_000.0,
            ] {
                if seconds < 1e11 {
                    assert_eq!(arrival_ms(seconds), by_text(seconds), "{seconds}");
                }
            }
        }
        assert_eq!(arrival_ms(1_545_084_650.987), Some(1_545_084_650_987));
        assert_eq!(arrival_ms(1_700_000_000.123_4), None);
        assert_eq!(arrival_ms(-1.0), None);
        assert_eq!(arrival_ms(1e11), None);
    }

    #[test]
    fn data_is_decoded_as_the_general_path_decodes_it() {
        // Short texts over base64's alphabet, its padding, the URL-safe
        // alphabet's letters and white space: accepted and refused alike.
        let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n";
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..200_000 {
            let text: Vec<u8> = (0..rng.usize(0..14))
                .map(|_| match rng.u8(0..5) {
                    0 => chars[rng.usize(..chars.len())],
                    _ => chars[rng.usize(..64)],
                })
                .collect();
            let general = base64::engine::general_purpose::STANDARD.decode(&text).ok();
            let fast = base64_simd::STANDARD.decode_to_vec(&text).ok();
            assert_eq!(fast, general, "{}", String::from_utf8_lossy(&text));
            if general.is_some() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            accepted > 10_000 && refused > 10_000,
            "{accepted} {refused}"
        );
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
        // Data with escapes (`\/` in base64) is read the same way.
        let mut text = event.to_string();
        for r in event["Records"].as_array().unwrap() {
            let data = r["kinesis"]["data"].as_str().unwrap();
            text = text.replace(data, &data.replace('/', "\\/"));
        }
        assert!(text.contains("\\/"), "{text}");
        let fast = decode(text.as_bytes()).expect("the fast path takes a plain Kinesis event");
        let general = general(&event);
        assert_eq!(format!("{fast:?}"), format!("{general:?}"));
        assert_eq!(fast.records.len(), 4, "the aggregate gives two records");
        assert_eq!(fast.item_of, vec![0, 1, 1, 2]);
        // Any other text with an escape is left to the general path.
        let escaped = event.to_string().replace("stream/", "stream\\/");
        assert!(decode(escaped.as_bytes()).is_none());
    }

    #[test]
    fn anything_unusual_takes_the_general_path() {
        let ok = record("1", "e30=", json!(1_700_000_000.5));
        // The unusual record first; the same event with it last is tested too.
        let with = |f: &dyn Fn(&mut Value)| {
            let mut r = ok.clone();
            f(&mut r);
            json!({ "Records": [r, ok.clone()] }).to_string()
        };
        let last = |text: &str| {
            let mut event: Value = serde_json::from_str(text).unwrap();
            if let Some(records) = event["Records"].as_array_mut() {
                records.reverse();
            }
            event.to_string()
        };
        assert!(decode(with(&|_| {}).as_bytes()).is_some());
        let ts = "approximateArrivalTimestamp";
        let unusual: [(&str, String); 10] = [
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
            (
                "the source named at the top",
                format!("{{\"eventSource\":\"aws:kinesis\",{}", &with(&|_| {})[1..]),
            ),
            ("no records", json!({ "Records": [] }).to_string()),
            (
                "another source",
                with(&|r| r["eventSource"] = json!("aws:sqs")),
            ),
        ];
        for (what, text) in unusual {
            assert!(decode(text.as_bytes()).is_none(), "{what}");
            assert!(decode(last(&text).as_bytes()).is_none(), "{what}, last");
        }
        // Data that is not UTF-8, or holds an escaped character outside base64.
        let good = with(&|_| {});
        let at = good.find("e30=").unwrap();
        let mut bytes = good.clone().into_bytes();
        bytes[at + 2] = 0xff;
        assert!(decode(&bytes).is_none(), "data not UTF-8");
        assert!(decode(good.replacen("e30=", "e3\\u0000", 1).as_bytes()).is_none());
        // And anything after the event.
        assert!(decode(format!("{good} {{}}").as_bytes()).is_none());
        let twice = good.replacen("{", "{\"Records\":[],", 1);
        assert!(decode(twice.as_bytes()).is_none(), "Records twice");
    }
}
