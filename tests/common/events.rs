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

/// The event of an event source mapping that lists its records under `Records`.
pub fn records(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// The region of an ARN (`arn:aws:SERVICE:REGION:…`).
fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or("us-east-1")
}
