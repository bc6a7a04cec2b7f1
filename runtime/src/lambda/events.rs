//! Lambda events as records, and the partial batch responses that name the
//! records to deliver again.
//!
//! Each event record becomes one [`RawRecord`] (a KPL aggregate several) whose
//! position carries what identifies it to the event source mapping: the
//! sequence number (Kinesis, DynamoDB Streams), the message id (SQS), or the
//! topic-partition and offset (Kafka).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::kafka::KafkaEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::event::streams::{
    DynamoDbBatchItemFailure, DynamoDbEventResponse, KinesisEventResponse,
};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::record::{Position, RawRecord};

/// The kinds of events the pipeline's `source.type` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Kinesis Data Streams.
    Kinesis,
    /// DynamoDB Streams.
    DynamodbStreams,
    /// SQS, standard or FIFO.
    Sqs,
    /// Kafka: Amazon MSK or a self-managed cluster.
    Kafka,
}

impl Kind {
    /// The kind for a pipeline source, if Lambda can deliver it.
    pub fn of(source: &crate::sources::Config) -> Option<Kind> {
        match source {
            crate::sources::Config::Kinesis(_) => Some(Kind::Kinesis),
            crate::sources::Config::DynamodbStreams(_) => Some(Kind::DynamodbStreams),
            crate::sources::Config::Sqs(_) => Some(Kind::Sqs),
            crate::sources::Config::Kafka(_) => Some(Kind::Kafka),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Kinesis => "kinesis",
            Kind::DynamodbStreams => "dynamodb_streams",
            Kind::Sqs => "sqs",
            Kind::Kafka => "kafka",
        }
    }
}

/// One event record: what identifies it in a response, and its message group (SQS FIFO).
#[derive(Debug, Clone)]
pub struct Item {
    /// Sequence number, message id, or (Kafka) `topic-partition@offset`: see [`item_id`].
    pub id: String,
    /// The SQS FIFO message group, or the Kafka topic-partition (`orders-0`).
    pub group: Option<String>,
    /// The Kafka offset.
    pub offset: Option<i64>,
}

/// The id of the event record a record came from, as in [`Item::id`].
pub fn item_id(p: &crate::record::Position) -> Option<String> {
    if let (Some(topic), Some(partition), Some(offset)) = (&p.stream, p.partition, p.offset) {
        return Some(format!("{topic}-{partition}@{offset}"));
    }
    p.message_id.clone().or_else(|| p.sequence_number.clone())
}

/// An event turned into records.
#[derive(Debug)]
pub struct Batch {
    /// The records, in event order (a KPL aggregate gives several in a row).
    pub records: Vec<RawRecord>,
    /// For each record, the index of its event record in `items`.
    pub item_of: Vec<usize>,
    /// The event records.
    pub items: Vec<Item>,
    /// Whether the event came from an SQS FIFO queue.
    pub fifo: bool,
}

/// What kind of event a JSON payload is, judged by its `eventSource`
/// (Kafka) or its first record's.
fn event_kind(event: &Value) -> Option<&'static str> {
    let source = match event.get("eventSource").and_then(Value::as_str) {
        Some(s) => s,
        None => {
            let first = event.get("Records")?.get(0)?;
            first
                .get("eventSource")
                .or_else(|| first.get("EventSource"))
                .and_then(Value::as_str)?
        }
    };
    Some(match source {
        "aws:kinesis" => "kinesis",
        "aws:dynamodb" => "dynamodb_streams",
        "aws:sqs" => "sqs",
        "aws:kafka" | "SelfManagedKafka" => "kafka",
        _ => "unknown",
    })
}

fn ms_rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

/// Turns an event into records; an event of another kind than the
/// pipeline's source is an error.
pub fn parse(kind: Kind, event: Value) -> Result<Batch, String> {
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
        && got != kind.name()
    {
        return Err(format!(
            "the pipeline reads a `{}` source, but the event is a `{got}` event",
            kind.name()
        ));
    }
    let mut batch = Batch {
        records: Vec::new(),
        item_of: Vec::new(),
        items: Vec::new(),
        fifo: false,
    };
    match kind {
        Kind::Kinesis => {
            let arrivals = times(&event, "kinesis", "approximateArrivalTimestamp");
            let event: KinesisEvent = serde_json::from_value(event)
                .map_err(|e| format!("the event is not a Kinesis event: {e}"))?;
            for (n, r) in event.records.into_iter().enumerate() {
                let k = r.kinesis;
                let stream: Option<Arc<str>> = r
                    .event_source_arn
                    .as_deref()
                    .map(|arn| Arc::from(arn.rsplit_once(":stream/").map_or(arn, |(_, n)| n)));
                let shard: Option<Arc<str>> = r
                    .event_id
                    .as_deref()
                    .and_then(|id| id.split_once(':'))
                    .map(|(shard, _)| Arc::from(shard));
                let position = Position {
                    source: "kinesis",
                    stream,
                    shard,
                    partition_key: Some(k.partition_key.clone()),
                    sequence_number: Some(k.sequence_number.clone()),
                    arrival_time: arrivals.get(n).copied().flatten().map(ms_rfc3339),
                    ..Position::default()
                };
                let item = batch.items.len();
                batch.items.push(Item {
                    id: k.sequence_number.clone(),
                    group: None,
                    offset: None,
                });
                let n = crate::decode::kpl::push_records(&mut batch.records, k.data.0, position);
                batch.item_of.extend(std::iter::repeat_n(item, n));
            }
        }
        Kind::DynamodbStreams => {
            let created = times(&event, "dynamodb", "ApproximateCreationDateTime");
            let event: DynamoDbEvent = serde_json::from_value(event)
                .map_err(|e| format!("the event is not a DynamoDB Streams event: {e}"))?;
            for (n, r) in event.records.into_iter().enumerate() {
                let c = &r.change;
                let mut doc = Map::new();
                doc.insert("eventName".into(), Value::String(r.event_name.clone()));
                doc.insert("eventID".into(), Value::String(r.event_id.clone()));
                for (name, img) in [
                    ("Keys", &c.keys),
                    ("NewImage", &c.new_image),
                    ("OldImage", &c.old_image),
                ] {
                    if !img.is_empty() {
                        doc.insert(name.into(), item_json(img));
                    }
                }
                let seq = c.sequence_number.clone().unwrap_or_default();
                batch.records.push(RawRecord {
                    data: serde_json::to_vec(&Value::Object(doc)).unwrap_or_default(),
                    position: Position {
                        source: "dynamodb_streams",
                        stream: r.event_source_arn.as_deref().map(Arc::from),
                        sequence_number: Some(seq.clone()),
                        arrival_time: created.get(n).copied().flatten().map(ms_rfc3339),
                        ..Position::default()
                    },
                    rejected: None,
                    attributes: None,
                });
                batch.item_of.push(batch.items.len());
                batch.items.push(Item {
                    id: seq,
                    group: None,
                    offset: None,
                });
            }
        }
        Kind::Sqs => {
            let event: SqsEvent = serde_json::from_value(event)
                .map_err(|e| format!("the event is not an SQS event: {e}"))?;
            for m in event.records {
                batch.fifo |= m
                    .event_source_arn
                    .as_deref()
                    .is_some_and(|a| a.ends_with(".fifo"));
                let group = m.attributes.get("MessageGroupId").cloned();
                let mut attributes: Vec<(String, String)> = m
                    .message_attributes
                    .iter()
                    .map(|(k, v)| {
                        let text = v.string_value.clone().unwrap_or_else(|| {
                            v.binary_value
                                .as_ref()
                                .map(|b| base64::engine::general_purpose::STANDARD.encode(&b.0))
                                .unwrap_or_default()
                        });
                        (k.clone(), text)
                    })
                    .collect();
                attributes.sort();
                let id = m.message_id.clone().unwrap_or_default();
                batch.records.push(RawRecord {
                    data: m.body.clone().unwrap_or_default().into_bytes(),
                    position: Position {
                        source: "sqs",
                        stream: m
                            .event_source_arn
                            .as_deref()
                            .map(|a| Arc::from(a.rsplit(':').next().unwrap_or(a))),
                        message_id: Some(id.clone()),
                        partition_key: group.clone(),
                        sequence_number: m.attributes.get("SequenceNumber").cloned(),
                        arrival_time: m
                            .attributes
                            .get("SentTimestamp")
                            .and_then(|t| t.parse::<i64>().ok())
                            .map(ms_rfc3339),
                        ..Position::default()
                    },
                    rejected: None,
                    attributes: (!attributes.is_empty()).then(|| Arc::new(attributes)),
                });
                batch.item_of.push(batch.items.len());
                batch.items.push(Item {
                    id,
                    group,
                    offset: None,
                });
            }
        }
        Kind::Kafka => {
            let event: KafkaEvent = serde_json::from_value(event)
                .map_err(|e| format!("the event is not a Kafka event: {e}"))?;
            // Partitions in a stable order; each one's records in offset order, as delivered.
            let mut partitions: Vec<_> = event.records.into_iter().collect();
            partitions.sort_by(|a, b| a.0.cmp(&b.0));
            let b64 = base64::engine::general_purpose::STANDARD;
            for (key, records) in partitions {
                for r in records {
                    let topic = r
                        .topic
                        .clone()
                        .unwrap_or_else(|| key.rsplit_once('-').map_or(&*key, |(t, _)| t).into());
                    let decode = |field: &str, v: Option<&String>| -> Result<Vec<u8>, String> {
                        v.map_or(Ok(Vec::new()), |v| {
                            b64.decode(v).map_err(|e| {
                                format!(
                                    "the {field} of {topic}-{}@{} is not base64: {e}",
                                    r.partition, r.offset
                                )
                            })
                        })
                    };
                    let value = decode("value", r.value.as_ref())?;
                    let record_key = match r.key.as_ref() {
                        Some(_) => {
                            let k = decode("key", r.key.as_ref())?;
                            Some(String::from_utf8(k).unwrap_or_else(|e| b64.encode(e.as_bytes())))
                        }
                        None => None,
                    };
                    let mut headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .flat_map(|h| h.iter())
                        .map(|(k, v)| {
                            let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                            (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
                        })
                        .collect();
                    headers.sort();
                    let ts = r.timestamp.0.timestamp_millis();
                    let position = Position {
                        source: "kafka",
                        stream: Some(Arc::from(topic.as_str())),
                        partition: Some(r.partition),
                        offset: Some(r.offset),
                        partition_key: record_key,
                        arrival_time: (ts > 0).then(|| ms_rfc3339(ts)),
                        ..Position::default()
                    };
                    let id = item_id(&position).unwrap_or_default();
                    batch.records.push(RawRecord {
                        data: value,
                        position,
                        rejected: None,
                        attributes: (!headers.is_empty()).then(|| Arc::new(headers)),
                    });
                    batch.item_of.push(batch.items.len());
                    batch.items.push(Item {
                        id,
                        group: Some(key.clone()),
                        offset: Some(r.offset),
                    });
                }
            }
        }
    }
    Ok(batch)
}

/// Each record's `Records[i][part][field]` time, in seconds since 1970 with
/// decimals, as milliseconds. Read from the JSON because aws_lambda_events
/// reads the decimals as a number of milliseconds (`.5` as 5 ms).
fn times(event: &Value, part: &str, field: &str) -> Vec<Option<i64>> {
    event["Records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| r[part][field].as_f64().map(|s| (s * 1000.0).round() as i64))
                .collect()
        })
        .unwrap_or_default()
}

/// A DynamoDB item as plain JSON: numbers as numbers, sets as arrays, binary as base64.
fn item_json(item: &serde_dynamo::Item) -> Value {
    let mut out = Map::new();
    for (k, v) in item.iter() {
        out.insert(k.clone(), attribute_json(v));
    }
    Value::Object(out)
}

fn attribute_json(v: &serde_dynamo::AttributeValue) -> Value {
    use serde_dynamo::AttributeValue as A;
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
        A::M(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), attribute_json(v));
            }
            Value::Object(out)
        }
    }
}

/// The partial batch response for the event records in `failed` (indexes
/// into `batch.items`), as AWS documents it for each event source:
///
/// - Kinesis and DynamoDB Streams: the first failed record's sequence
///   number; the mapping retries from there, so order is kept.
/// - SQS: every failed message id; for a FIFO queue, every message of a
///   group from its first failed message on.
/// - Kafka: for each topic-partition with a failure, its first failed
///   offset (`{"partition": "orders-0", "offset": 17}`); the mapping resumes
///   each of them there, so order within a partition is kept.
pub fn response(kind: Kind, batch: &Batch, failed: &BTreeSet<usize>) -> Value {
    match kind {
        Kind::Kafka => {
            let mut first: Vec<(&str, i64)> = Vec::new();
            for &i in failed {
                let item = &batch.items[i];
                let (Some(p), Some(o)) = (item.group.as_deref(), item.offset) else {
                    continue;
                };
                match first.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, lowest)) => *lowest = (*lowest).min(o),
                    None => first.push((p, o)),
                }
            }
            let failures: Vec<Value> = first
                .into_iter()
                .map(|(p, o)| serde_json::json!({ "itemIdentifier": { "partition": p, "offset": o } }))
                .collect();
            Ok(serde_json::json!({ "batchItemFailures": failures }))
        }
        Kind::Kinesis => {
            let mut r = KinesisEventResponse::default();
            if let Some(&first) = failed.first() {
                r.add_failure(batch.items[first].id.clone());
            }
            serde_json::to_value(r)
        }
        Kind::DynamodbStreams => {
            let mut r = DynamoDbEventResponse::default();
            if let Some(&first) = failed.first() {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = Some(batch.items[first].id.clone());
                r.batch_item_failures.push(f);
            }
            serde_json::to_value(r)
        }
        Kind::Sqs => {
            let mut ids: Vec<&str> = Vec::new();
            if batch.fifo {
                let mut stopped: HashSet<Option<&str>> = HashSet::new();
                for (i, item) in batch.items.iter().enumerate() {
                    let group = item.group.as_deref();
                    if failed.contains(&i) {
                        stopped.insert(group);
                    }
                    if stopped.contains(&group) {
                        ids.push(&item.id);
                    }
                }
            } else {
                ids = failed.iter().map(|&i| batch.items[i].id.as_str()).collect();
            }
            let mut r = SqsBatchResponse::default();
            r.batch_item_failures = ids
                .into_iter()
                .map(|id| {
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = id.to_owned();
                    f
                })
                .collect();
            serde_json::to_value(r)
        }
    }
    .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let batch = parse(Kind::Sqs, sqs_event(true, &msgs)).unwrap();
        assert!(batch.fifo);
        let r = response(Kind::Sqs, &batch, &BTreeSet::from([2]));
        assert_eq!(failures(&r), vec!["m3", "m5"]);
        let batch = parse(Kind::Sqs, sqs_event(false, &msgs)).unwrap();
        let r = response(Kind::Sqs, &batch, &BTreeSet::from([2]));
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
        let batch = parse(Kind::Kinesis, event).unwrap();
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
        let r = response(Kind::Kinesis, &batch, &BTreeSet::from([1, 2]));
        assert_eq!(failures(&r), vec!["2"]);
        let r = response(Kind::Kinesis, &batch, &BTreeSet::new());
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
            let batch = parse(Kind::Kafka, kafka_event(source)).unwrap();
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
        let batch = parse(Kind::Kafka, kafka_event("aws:kafka")).unwrap();
        let r = response(Kind::Kafka, &batch, &BTreeSet::from([1, 2, 4]));
        assert_eq!(
            r,
            json!({ "batchItemFailures": [
                { "itemIdentifier": { "partition": "orders-0", "offset": 16 } },
                { "itemIdentifier": { "partition": "orders-1", "offset": 8 } }
            ] })
        );
        let r = response(Kind::Kafka, &batch, &BTreeSet::new());
        assert_eq!(r, json!({ "batchItemFailures": [] }));
        let e = parse(Kind::Sqs, kafka_event("aws:kafka")).unwrap_err();
        assert_eq!(
            e,
            "the pipeline reads a `sqs` source, but the event is a `kafka` event"
        );
    }

    #[test]
    fn an_event_of_another_kind_is_an_error() {
        let e = parse(Kind::Kinesis, sqs_event(false, &[("m1", "a")])).unwrap_err();
        assert_eq!(
            e,
            "the pipeline reads a `kinesis` source, but the event is a `sqs` event"
        );
    }
}
