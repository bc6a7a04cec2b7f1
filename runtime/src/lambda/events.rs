//! Lambda events as records, and the partial batch responses that name the
//! records to deliver again.
//!
//! Each event record becomes one record (a KPL aggregate several), decoded
//! by its source (`sources/<name>/event.rs`) with the record builder its
//! reader uses in the other modes. Its position carries what identifies it
//! to the event source mapping: the sequence number (Kinesis, DynamoDB
//! Streams), the message id (SQS), or the topic-partition and offset (Kafka).

use serde_json::{Map, Value};

use crate::sources::event::origin;
pub use crate::sources::event::{Batch, EventSource, Item, item_id};

/// What Lambda mode reads: the pipeline's source, by its `type`, and its
/// event decoder.
#[derive(Clone, Copy)]
pub struct Kind {
    /// The source's `type`.
    pub name: &'static str,
    /// Its events.
    pub events: &'static dyn EventSource,
}

impl Kind {
    /// The kind for a pipeline source, if Lambda can deliver it.
    pub fn of(source: &crate::sources::Config) -> Option<Kind> {
        Some(Kind {
            name: source.type_name(),
            events: source.events()?,
        })
    }
}

/// Which source's event a JSON payload is, judged by its `eventSource` (or
/// its first record's): `Some("unknown")` for an event of a source Sluice
/// does not read, `None` when it names none.
fn event_kind(event: &Value) -> Option<&'static str> {
    let origin = origin(event)?;
    Some(
        crate::sources::EVENTS
            .iter()
            .find(|(_, e)| e.is_some_and(|e| e.origins().contains(&origin)))
            .map_or("unknown", |(name, _)| *name),
    )
}

/// An event that is not of the pipeline's kind at all: the invocation fails
/// (with this word as its `errorType`), since no record of it can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongEvent(pub String);

impl WrongEvent {
    /// The invocation error's `errorType`.
    pub const ERROR_TYPE: &'static str = "WrongEventKind";
}

/// Turns an event into records. Each event record is decoded on its own: one
/// that cannot be (data that is not base64, a missing field, an unknown
/// DynamoDB type …) becomes a record rejected at stage `decode`, holding the
/// event record's JSON, and the rest of the batch is read as usual. Only an
/// event that is not of the pipeline's kind at all is an error.
///
/// The event comes as the Runtime API sent it: a source with a fast path
/// reads its common events straight from it ([`EventSource::decode_bytes`]);
/// any other event is parsed into a JSON tree first.
pub fn parse_bytes(kind: Kind, event: &[u8]) -> Result<Batch, WrongEvent> {
    if let Some(batch) = kind.events.decode_bytes(event) {
        return Ok(batch);
    }
    let event: Value = serde_json::from_slice(event)
        .map_err(|e| WrongEvent(format!("the event is not JSON: {e}")))?;
    parse(kind, event)
}

/// [`parse_bytes`] for an event already parsed.
pub fn parse(kind: Kind, event: Value) -> Result<Batch, WrongEvent> {
    let empty = event
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        || event
            .get("records")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty);
    if !empty
        && let Some(got) = event_kind(&event)
        && got != kind.name
    {
        let what = match got {
            "firehose" => {
                "a Firehose data-transformation event (`deliveryStreamArn`, `records`)".to_owned()
            }
            "unknown" => "an event of another source".to_owned(),
            got => format!("a `{got}` event"),
        };
        return Err(WrongEvent(format!(
            "the pipeline reads a `{}` source, but the event is {what}",
            kind.name
        )));
    }
    kind.events.decode(event).map_err(|lacks| {
        WrongEvent(format!(
            "the pipeline reads a `{}` source, but the event {lacks}",
            kind.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The answer for the event records in `failed`.
    fn respond(kind: Kind, batch: &Batch, failed: &BTreeSet<usize>) -> Value {
        let source: crate::sources::Config = serde_json::from_value(
            json!({ "type": kind.name, "queue": "q", "stream": "s", "table": "t", "topic": "t" }),
        )
        .unwrap_or_else(|_| serde_json::from_value(json!({ "type": "stdin" })).unwrap());
        let outcome = crate::sources::event::Outcome {
            failed,
            dead_lettered: &BTreeSet::new(),
            returned: &[],
            source: &source,
            state: None,
        };
        kind.events.response(batch, &outcome).unwrap()
    }

    const SQS: Kind = Kind {
        name: "sqs",
        events: &crate::sources::sqs::event::Events,
    };
    const KINESIS: Kind = Kind {
        name: "kinesis",
        events: &crate::sources::kinesis::event::EVENTS,
    };
    const KAFKA: Kind = Kind {
        name: "kafka",
        events: &crate::sources::kafka::event::Events,
    };
    const DYNAMODB_STREAMS: Kind = Kind {
        name: "dynamodb_streams",
        events: &crate::sources::dynamodb_streams::event::EVENTS,
    };
    use base64::Engine as _;
    use serde_json::json;

    fn sqs_event(fifo: bool, messages: &[(&str, &str)]) -> Value {
        let arn = if fifo {
            "arn:aws:sqs:us-east-1:123456789012:in.fifo"
        } else {
            "arn:aws:sqs:us-east-1:123456789012:in"
        };
        json!({ "Records": messages.iter().map(|(id, group)| json!({
            "messageId": id, "receiptHandle": "h", "body": "{}",
            "attributes": { "MessageGroupId": group, "SentTimestamp": "1700000000000" },
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": "us-east-1"
        })).collect::<Vec<_>>() })
    }

    fn failures(v: &Value) -> Vec<&str> {
        v["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_fifo_failure_fails_the_rest_of_its_group_only() {
        let msgs = [
            ("m1", "a"),
            ("m2", "b"),
            ("m3", "a"),
            ("m4", "b"),
            ("m5", "a"),
        ];
        let batch = parse(SQS, sqs_event(true, &msgs)).unwrap();
        assert!(batch.fifo);
        let r = respond(SQS, &batch, &BTreeSet::from([2]));
        assert_eq!(failures(&r), vec!["m3", "m5"]);
        let batch = parse(SQS, sqs_event(false, &msgs)).unwrap();
        let r = respond(SQS, &batch, &BTreeSet::from([2]));
        assert_eq!(
            failures(&r),
            vec!["m3"],
            "a standard queue: that message only"
        );
    }

    #[test]
    fn kinesis_reports_the_first_failed_sequence_number() {
        let event = json!({ "Records": (1..=3).map(|i| json!({
            "kinesis": { "partitionKey": "k", "sequenceNumber": format!("{i}"), "data": "e30=",
                         "approximateArrivalTimestamp": 1_700_000_000.5, "kinesisSchemaVersion": "1.0" },
            "eventSource": "aws:kinesis", "eventID": format!("shardId-000000000007:{i}"),
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
        })).collect::<Vec<_>>() });
        let batch = parse(KINESIS, event).unwrap();
        assert_eq!(batch.records[0].data, b"{}");
        let p = &batch.records[2].position;
        assert_eq!(
            (
                p.stream.as_deref(),
                p.shard.as_deref(),
                p.sequence_number.as_deref()
            ),
            (Some("orders"), Some("shardId-000000000007"), Some("3"))
        );
        assert_eq!(p.arrival_time.as_deref(), Some("2023-11-14T22:13:20.500Z"));
        let r = respond(KINESIS, &batch, &BTreeSet::from([1, 2]));
        assert_eq!(failures(&r), vec!["2"]);
        let r = respond(KINESIS, &batch, &BTreeSet::new());
        assert!(failures(&r).is_empty());
    }

    fn kafka_event(source: &str) -> Value {
        let record = |partition: i64, offset: i64, value: &str| {
            json!({ "topic": "orders", "partition": partition, "offset": offset,
                    "timestamp": 1_700_000_000_250_i64, "timestampType": "CREATE_TIME",
                    "key": base64::engine::general_purpose::STANDARD.encode(format!("k{offset}")),
                    "value": base64::engine::general_purpose::STANDARD.encode(value),
                    "headers": [{ "trace": [116, 49] }] })
        };
        json!({
            "eventSource": source,
            "bootstrapServers": "b-1.example:9092",
            "records": {
                "orders-1": [record(1, 7, "{\"a\":7}"), record(1, 8, "{\"a\":8}")],
                "orders-0": [record(0, 15, "{\"a\":15}"), record(0, 16, "{\"a\":16}"), record(0, 17, "{}")]
            }
        })
    }

    #[test]
    fn kafka_records_carry_topic_partition_offset_key_and_headers() {
        for source in ["aws:kafka", "SelfManagedKafka"] {
            let batch = parse(KAFKA, kafka_event(source)).unwrap();
            let ids: Vec<&str> = batch.items.iter().map(|i| i.id.as_str()).collect();
            assert_eq!(
                ids,
                vec![
                    "orders-0@15",
                    "orders-0@16",
                    "orders-0@17",
                    "orders-1@7",
                    "orders-1@8"
                ]
            );
            assert_eq!(batch.records[0].data, b"{\"a\":15}");
            let p = &batch.records[3].position;
            assert_eq!(
                (
                    p.source,
                    p.stream.as_deref(),
                    p.partition,
                    p.offset,
                    p.partition_key.as_deref(),
                    p.arrival_time.as_deref()
                ),
                (
                    "kafka",
                    Some("orders"),
                    Some(1),
                    Some(7),
                    Some("k7"),
                    Some("2023-11-14T22:13:20.250Z")
                )
            );
            assert_eq!(p.token(), "orders-1-00000000000000000007");
            assert_eq!(
                batch.records[3].attributes.as_deref(),
                Some(&vec![("trace".to_owned(), "t1".to_owned())])
            );
            assert_eq!(item_id(p).as_deref(), Some("orders-1@7"));
        }
    }

    #[test]
    fn kafka_reports_the_first_failed_offset_of_each_partition() {
        let batch = parse(KAFKA, kafka_event("aws:kafka")).unwrap();
        let r = respond(KAFKA, &batch, &BTreeSet::from([1, 2, 4]));
        assert_eq!(
            r,
            json!({ "batchItemFailures": [
                { "itemIdentifier": { "partition": "orders-0", "offset": 16 } },
                { "itemIdentifier": { "partition": "orders-1", "offset": 8 } }
            ] })
        );
        let r = respond(KAFKA, &batch, &BTreeSet::new());
        assert_eq!(r, json!({ "batchItemFailures": [] }));
        let e = parse(SQS, kafka_event("aws:kafka")).unwrap_err();
        assert_eq!(
            e.0,
            "the pipeline reads a `sqs` source, but the event is a `kafka` event"
        );
    }

    #[test]
    fn an_event_of_another_kind_is_an_error() {
        let e = parse(KINESIS, sqs_event(false, &[("m1", "a")])).unwrap_err();
        assert_eq!(
            e.0,
            "the pipeline reads a `kinesis` source, but the event is a `sqs` event"
        );
    }

    #[test]
    fn an_event_that_is_not_json_is_an_error_naming_where() {
        for (bytes, why) in [
            (
                &b"{\"Records\": ["[..],
                "EOF while parsing a list at line 1 column 13",
            ),
            (&b"\xff"[..], "expected value at line 1 column 1"),
        ] {
            let e = parse_bytes(KINESIS, bytes).unwrap_err();
            assert_eq!(e.0, format!("the event is not JSON: {why}"));
        }
    }

    #[test]
    fn the_fast_and_the_general_path_read_an_event_alike() {
        let event = json!({ "Records": [
            { "kinesis": { "partitionKey": "k", "sequenceNumber": "7", "data": "eyJuIjoxfQ==",
                           "approximateArrivalTimestamp": 1_700_000_000.5 },
              "eventSource": "aws:kinesis", "eventID": "shardId-000000000001:7",
              "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s" }
        ] });
        let text = event.to_string();
        assert!(KINESIS.events.decode_bytes(text.as_bytes()).is_some());
        let fast = parse_bytes(KINESIS, text.as_bytes()).unwrap();
        assert_eq!(
            format!("{fast:?}"),
            format!("{:?}", parse(KINESIS, event).unwrap())
        );
    }

    fn rejected(batch: &Batch) -> Vec<(String, String)> {
        batch
            .records
            .iter()
            .filter_map(|r| {
                r.rejected
                    .clone()
                    .map(|why| (String::from_utf8(r.data.clone()).unwrap(), why))
            })
            .collect()
    }

    #[test]
    fn a_kinesis_record_that_cannot_be_decoded_is_rejected_alone() {
        let good = |seq: &str| {
            json!({ "kinesis": { "partitionKey": "k", "sequenceNumber": seq, "data": "e30=",
                                 "approximateArrivalTimestamp": 1_700_000_000.5,
                                 "kinesisSchemaVersion": "1.0" },
                    "eventSource": "aws:kinesis", "eventID": format!("shardId-000000000001:{seq}"),
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s" })
        };
        let mut bad_data = good("2");
        bad_data["kinesis"]["data"] = json!("not base64!");
        let mut no_data = good("3");
        no_data["kinesis"].as_object_mut().unwrap().remove("data");
        let event = json!({ "Records": [good("1"), bad_data, no_data, good("4")] });
        let batch = parse(KINESIS, event).unwrap();
        assert_eq!(batch.records.len(), 4);
        let ids: Vec<&str> = batch.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, vec!["1", "2", "3", "4"]);
        let r = rejected(&batch);
        assert_eq!(r.len(), 2);
        assert!(
            r[0].1
                .starts_with("the Kinesis event record cannot be decoded: "),
            "{r:?}"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&r[0].0).unwrap()["kinesis"]["data"],
            "not base64!"
        );
        assert!(r[1].1.contains("missing field `data`"), "{r:?}");
        assert_eq!(
            batch.records[1].position.sequence_number.as_deref(),
            Some("2")
        );
        assert_eq!(batch.records[3].data, b"{}");
    }

    #[test]
    fn kafka_sqs_and_dynamodb_records_that_cannot_be_decoded_are_rejected_alone() {
        let mut event = kafka_event("aws:kafka");
        event["records"]["orders-0"][1]["value"] = json!("%%%");
        event["records"]["orders-0"][2]["key"] = json!("%%%");
        event["records"]["orders-1"][0]["headers"] = json!([{ "h": [300] }]);
        let batch = parse(KAFKA, event).unwrap();
        assert_eq!(batch.records.len(), 5);
        let r = rejected(&batch);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(
            r[0].1
                .starts_with("the Kafka record cannot be decoded: its value is not base64"),
            "{r:?}"
        );
        assert!(
            r[1].1
                .starts_with("the Kafka record cannot be decoded: its key is not base64"),
            "{r:?}"
        );
        assert!(
            r[2].1.starts_with("the Kafka record cannot be decoded: "),
            "{r:?}"
        );
        assert_eq!(batch.items[3].id, "orders-1@7");

        let mut event = sqs_event(false, &[("m1", "a"), ("m2", "a")]);
        event["Records"][0]["messageAttributes"] =
            json!({ "b": { "dataType": "Binary", "binaryValue": "%%%" } });
        let batch = parse(SQS, event).unwrap();
        let r = rejected(&batch);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].1.starts_with("the SQS message cannot be decoded: "),
            "{r:?}"
        );
        assert_eq!(batch.records[0].position.message_id.as_deref(), Some("m1"));
        assert_eq!(batch.records[1].rejected, None);

        let record = |seq: &str, image: Value| {
            json!({ "eventID": "e", "eventName": "INSERT", "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                    "dynamodb": { "Keys": { "id": { "S": "1" } }, "NewImage": image,
                                  "SequenceNumber": seq, "SizeBytes": 10,
                                  "StreamViewType": "NEW_IMAGE" },
                    "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x" })
        };
        let event = json!({ "Records": [
            record("1", json!({ "id": { "S": "1" } })),
            record("2", json!({ "id": { "Q": "1" } })),
        ] });
        let batch = parse(DYNAMODB_STREAMS, event).unwrap();
        let r = rejected(&batch);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].1
                .starts_with("the DynamoDB Streams event record cannot be decoded: "),
            "{r:?}"
        );
        assert_eq!(batch.items[1].id, "2");
        assert_eq!(batch.records[0].rejected, None);
    }

    #[test]
    fn an_event_that_is_not_the_pipelines_kind_names_what_arrived() {
        let firehose = json!({
            "invocationId": "i", "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/d",
            "region": "us-east-1",
            "records": [{ "recordId": "r1", "data": "e30=", "approximateArrivalTimestamp": 1 }]
        });
        assert_eq!(
            parse(KINESIS, firehose).unwrap_err().0,
            "the pipeline reads a `kinesis` source, but the event is a Firehose data-transformation event (`deliveryStreamArn`, `records`)"
        );
        assert_eq!(
            parse(SQS, json!({ "hello": 1 })).unwrap_err().0,
            "the pipeline reads a `sqs` source, but the event has no `Records` list (fields `hello`)"
        );
        assert_eq!(
            parse(KAFKA, json!([1])).unwrap_err().0,
            "the pipeline reads a `kafka` source, but the event has no `records` object of topic-partitions (not an object but an array)"
        );
    }
}
