//! The tests' own calls to the emulated services: clients, and the set-ups
//! and read-backs many tests share.

use aws_config::SdkConfig;
use serde_json::{Value, json};

/// A runtime for a synchronous test's SDK calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An S3 client with path-style addressing, as the emulators need.
pub fn s3_client(conf: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    )
}

/// Creates a bucket.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket().bucket(name).send().await.unwrap();
}

/// Every object of `bucket` with its body, in key order.
pub async fn objects(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let list = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut out = Vec::new();
    for o in list.contents() {
        let key = o.key().unwrap().to_owned();
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        out.push((key, body.into_bytes().to_vec()));
    }
    out
}

/// The JSON values of a JSON Lines body.
pub fn jsonl(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Creates a queue; returns its URL. A name ending in `.fifo` makes a FIFO
/// queue with content-based deduplication.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut req = sqs.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        req = req
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
    }
    req.send().await.unwrap().queue_url.unwrap()
}

/// Creates a Kinesis stream of `shards` shards.
pub async fn create_stream(kinesis: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    kinesis
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
}

/// Every record of every shard of a stream as (partition key, JSON data),
/// each shard's in order.
pub async fn stream_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<(String, Value)> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut it = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        loop {
            let got = kinesis
                .get_records()
                .shard_iterator(&it)
                .send()
                .await
                .unwrap();
            for r in got.records() {
                out.push((
                    r.partition_key().unwrap_or_default().to_owned(),
                    serde_json::from_slice(r.data().as_ref()).unwrap(),
                ));
            }
            if got.records().is_empty()
                || got.millis_behind_latest() == Some(0) && got.records().len() < 10_000
            {
                break;
            }
            it = got.next_shard_iterator.unwrap();
        }
    }
    out
}

/// A request for an on-demand DynamoDB table whose hash key is `key`, of
/// type `kind`: send it as it is, or add a stream first.
pub fn table_request(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &str,
    kind: aws_sdk_dynamodb::types::ScalarAttributeType,
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType};
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(kind)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
}

/// A table stream of `view` records, for [`table_request`].
pub fn table_stream(
    view: aws_sdk_dynamodb::types::StreamViewType,
) -> aws_sdk_dynamodb::types::StreamSpecification {
    aws_sdk_dynamodb::types::StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(view)
        .build()
        .unwrap()
}

/// Creates an on-demand DynamoDB table with the string hash key `key`.
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, key: &str) {
    use aws_sdk_dynamodb::types::ScalarAttributeType;
    table_request(ddb, name, key, ScalarAttributeType::S)
        .send()
        .await
        .unwrap();
}

/// Every item of a table as JSON values, sorted by the string key `key`.
pub async fn items(ddb: &aws_sdk_dynamodb::Client, table: &str, key: &str) -> Vec<Value> {
    use aws_sdk_dynamodb::types::AttributeValue;
    fn to_json(v: &AttributeValue) -> Value {
        match v {
            AttributeValue::S(s) => json!(s),
            AttributeValue::N(n) => serde_json::from_str(n).unwrap(),
            AttributeValue::Bool(b) => json!(b),
            AttributeValue::Null(_) => Value::Null,
            AttributeValue::L(l) => Value::Array(l.iter().map(to_json).collect()),
            AttributeValue::M(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let out = ddb.scan().table_name(table).send().await.unwrap();
    let mut rows: Vec<Value> = out
        .items()
        .iter()
        .map(|i| Value::Object(i.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()))
        .collect();
    rows.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
    rows
}

/// Puts `records` (partition key, data) on a Kinesis stream, in order, 500
/// per `PutRecords`; every one must be accepted. Their sequence numbers.
pub async fn put_records(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    records: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let records: Vec<(String, String)> = records.into_iter().collect();
    let mut sequence_numbers = Vec::with_capacity(records.len());
    for chunk in records.chunks(500) {
        let entries = chunk
            .iter()
            .map(|(key, data)| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(data.as_bytes()))
                    .partition_key(key)
                    .build()
                    .unwrap()
            })
            .collect();
        let out = kinesis
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
        sequence_numbers.extend(
            out.records()
                .iter()
                .map(|r| r.sequence_number().unwrap_or_default().to_owned()),
        );
    }
    sequence_numbers
}

/// Puts `lines` on a Kinesis stream, 500 per `PutRecords`, with partition
/// keys `k0` … `k15` in turn.
pub async fn put_lines(kinesis: &aws_sdk_kinesis::Client, stream: &str, lines: &[String]) {
    let records = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("k{}", i % 16), l.clone()));
    put_records(kinesis, stream, records).await;
}

/// Receives every message of a queue (until two receives in a row come
/// back empty), as JSON values of their bodies. The messages are not deleted.
pub async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            empty += 1;
        }
        out.extend(
            got.messages()
                .iter()
                .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()),
        );
    }
    out
}
