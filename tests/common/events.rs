//! Lambda event records for the tests, built from the sample records under
//! `tests/fixtures/events/` (one record each, in the shapes AWS documents)
//! with the fields a test sets, so that every event a test sends has AWS's
//! shape and no test writes one inline.

use serde_json::{Value, json};

use super::root;

/// A sample event record of `tests/fixtures/events/NAME-record.json`.
fn sample(name: &str) -> Value {
    let path = root().join(format!("tests/fixtures/events/{name}-record.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("a JSON sample record")
}

/// A Kinesis event record of `stream_arn`'s shard `shard`.
pub fn kinesis_record(
    stream_arn: &str,
    shard: &str,
    sequence_number: &str,
    partition_key: &str,
    data_base64: &str,
    arrival_seconds: f64,
) -> Value {
    let mut r = sample("kinesis");
    r["kinesis"]["sequenceNumber"] = json!(sequence_number);
    r["kinesis"]["partitionKey"] = json!(partition_key);
    r["kinesis"]["data"] = json!(data_base64);
    r["kinesis"]["approximateArrivalTimestamp"] = json!(arrival_seconds);
    r["eventID"] = json!(format!("{shard}:{sequence_number}"));
    r["eventSourceARN"] = json!(stream_arn);
    r["awsRegion"] = json!(region_of(stream_arn));
    r
}

/// An SQS event record of the queue `queue_arn`; `attributes` and
/// `message_attributes` replace the sample's.
pub fn sqs_record(
    queue_arn: &str,
    message_id: &str,
    receipt_handle: &str,
    body: &str,
    attributes: Value,
    message_attributes: Value,
) -> Value {
    let mut r = sample("sqs");
    r["messageId"] = json!(message_id);
    r["receiptHandle"] = json!(receipt_handle);
    r["body"] = json!(body);
    r["attributes"] = attributes;
    r["messageAttributes"] = message_attributes;
    r["eventSourceARN"] = json!(queue_arn);
    r["awsRegion"] = json!(region_of(queue_arn));
    r
}

/// A Kafka event record (Amazon MSK or self-managed: the same shape) of
/// `topic`'s `partition`; `key` and `value` are the record's bytes, base64
/// in the event, and `headers` replaces the sample's.
pub fn kafka_record(
    topic: &str,
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    value: &[u8],
    headers: Value,
) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut r = sample("kafka");
    r["topic"] = json!(topic);
    r["partition"] = json!(partition);
    r["offset"] = json!(offset);
    r["timestamp"] = json!(timestamp_ms);
    r["value"] = json!(b64.encode(value));
    match key {
        Some(k) => r["key"] = json!(b64.encode(k)),
        None => {
            r.as_object_mut().unwrap().remove("key");
        }
    }
    r["headers"] = headers;
    r
}

/// The event of a Kafka event source mapping for the cluster `cluster_arn`:
/// its records grouped under `TOPIC-PARTITION`, in the order given.
pub fn kafka_event(cluster_arn: &str, records: Vec<Value>) -> Value {
    let mut event = sample_event("kafka-event");
    event["eventSourceArn"] = json!(cluster_arn);
    let mut groups = serde_json::Map::new();
    for r in records {
        let group = format!("{}-{}", r["topic"].as_str().unwrap(), r["partition"]);
        groups
            .entry(group)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(r);
    }
    event["records"] = Value::Object(groups);
    event
}

/// A DynamoDB Streams event record of the stream `stream_arn`: `change`
/// replaces the sample's `dynamodb` (keys, images, sequence number …).
pub fn dynamodb_record(stream_arn: &str, event_id: &str, event_name: &str, change: Value) -> Value {
    let mut r = sample("dynamodb");
    r["eventID"] = json!(event_id);
    r["eventName"] = json!(event_name);
    r["dynamodb"] = change;
    r["eventSourceARN"] = json!(stream_arn);
    r["awsRegion"] = json!(region_of(stream_arn));
    r
}

/// A sample event of `tests/fixtures/events/NAME.json`.
pub fn sample_event(name: &str) -> Value {
    let path = root().join(format!("tests/fixtures/events/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("a JSON sample event")
}

/// A Firehose data-transformation function's answer, record by record:
/// `(recordId, result)`.
pub fn firehose_results(answer: &Value) -> Vec<(&str, &str)> {
    answer["records"]
        .as_array()
        .expect("an answer lists its records")
        .iter()
        .map(|r| {
            (
                r["recordId"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect()
}

/// The event of an event source mapping that lists its records under `Records`.
pub fn records(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// The region of an ARN (`arn:aws:SERVICE:REGION:…`).
fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or("us-east-1")
}
