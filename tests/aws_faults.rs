//! Throttling and partial failures, injected by a proxy between `sluice` and
//! `moto_server` (moto never throttles and never fails part of a batch): only
//! the failed entries are sent again, throttled calls are retried with
//! backoff, and a sink that stays throttled leaves the batch unacknowledged.

mod common;

use std::path::Path;

use common::aws::{
    create_bucket, create_queue, create_stream, jsonl, objects, rt, s3_client, stream_records,
    table_request,
};
use common::faults::Proxy;
use common::moto::Moto;
use common::{outcome, read_jsonl, run, sluice};
use serde_json::{Value, json};

/// A pipeline reading `in.jsonl` (records `{"i": 0..n}`) into the given sinks.
fn pipeline(dir: &Path, sinks: &str, n: usize) -> std::path::PathBuf {
    let input: Vec<Value> = (0..n)
        .map(|i| json!({ "i": i, "k": format!("k{}", i % 3) }))
        .collect();
    common::write_jsonl(dir, "in.jsonl", &input);
    common::write_pipeline(
        dir,
        "t",
        &format!(
            "source: {{ type: file, path: in.jsonl }}\n\
             routes: [{{ to: [out] }}]\nsinks:\n  out: {sinks}\n\
             dlq: {{ type: file, path: dlq.jsonl }}\n\
             retry: {{ initial_backoff: 10ms, max_backoff: 200ms }}\n"
        ),
    )
}

fn run_through(proxy: &Proxy, moto: &Moto, p: &Path, extra: &[&str]) -> (i32, Value, String) {
    let o = run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json"])
        .args(extra)
        .envs(proxy.env(moto)));
    outcome(&o)
}

/// Messages in a queue, visible or in flight.
fn messages_in(rt: &tokio::runtime::Runtime, sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = rt
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send(),
        )
        .unwrap();
    let count = |n: &str| -> u64 {
        attrs.attributes().unwrap()[&QueueAttributeName::from(n)]
            .parse()
            .unwrap()
    };
    count("ApproximateNumberOfMessages") + count("ApproximateNumberOfMessagesNotVisible")
}

fn ids(records: impl IntoIterator<Item = Value>) -> Vec<i64> {
    let mut ids: Vec<i64> = records
        .into_iter()
        .map(|r| r["i"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn kinesis_put_records_sends_again_only_the_failed_entries() {
    let moto = Moto::start();
    let rt = rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_stream(&kinesis, "out", 1));
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "Kinesis_20131202.PutRecords", "calls": [1], "fault": "partial", "every": 2 }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "{ type: kinesis, stream: out, partition_key: k }",
        10,
    );
    let (code, s, err) = run_through(&proxy, &moto, &p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["sinks"]["out"].as_u64(), s["api_calls"]["out"].as_u64()),
        (Some(10), Some(2))
    );
    assert_eq!(
        proxy.calls_of("Kinesis_20131202.PutRecords"),
        vec![(Some(10), Some("partial".into())), (Some(5), None)],
        "the second call holds just the 5 entries that failed"
    );
    let records = rt.block_on(stream_records(&kinesis, "out"));
    assert_eq!(
        ids(records.into_iter().map(|(_, data)| data)),
        (0..10).collect::<Vec<_>>(),
        "each record once"
    );
}

#[test]
fn sqs_send_message_batch_sends_again_only_the_failed_entries() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "out"));
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "AmazonSQS.SendMessageBatch", "calls": [1], "fault": "partial", "every": 3 }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "{ type: sqs, queue: out }", 10);
    let (code, s, err) = run_through(&proxy, &moto, &p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["sinks"]["out"], 10);
    assert_eq!(
        proxy.calls_of("AmazonSQS.SendMessageBatch"),
        vec![(Some(10), Some("partial".into())), (Some(4), None)],
        "entries 0, 3, 6 and 9 are sent again, alone"
    );
    let mut bodies = Vec::new();
    loop {
        let got = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .send(),
            )
            .unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            bodies.push(serde_json::from_str::<Value>(m.body().unwrap()).unwrap());
        }
    }
    assert_eq!(
        ids(bodies),
        (0..10).collect::<Vec<_>>(),
        "each message once"
    );
}

#[test]
fn dynamodb_unprocessed_items_are_written_again_alone() {
    use aws_sdk_dynamodb::types::ScalarAttributeType;
    let moto = Moto::start();
    let rt = rt();
    let dynamodb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(table_request(&dynamodb, "items", "i", ScalarAttributeType::N).send())
        .unwrap();
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "DynamoDB_20120810.BatchWriteItem", "calls": [1], "fault": "partial", "every": 2 }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "{ type: dynamodb, table: items }", 10);
    let (code, s, err) = run_through(&proxy, &moto, &p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["sinks"]["out"], 10);
    assert_eq!(
        proxy.calls_of("DynamoDB_20120810.BatchWriteItem"),
        vec![(Some(10), Some("partial".into())), (Some(5), None)],
        "the 5 unprocessed items are written again, alone"
    );
    let items = rt
        .block_on(dynamodb.scan().table_name("items").send())
        .unwrap();
    let mut got: Vec<(i64, String)> = items
        .items()
        .iter()
        .map(|i| {
            (
                i["i"].as_n().unwrap().parse().unwrap(),
                i["k"].as_s().unwrap().clone(),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<(i64, String)> = (0..10).map(|i| (i, format!("k{}", i % 3))).collect();
    assert_eq!(got, expected);
}

#[test]
fn throttled_s3_puts_are_retried_until_accepted() {
    let moto = Moto::start();
    let rt = rt();
    let s3 = s3_client(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_bucket(&s3, "lake"));
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "S3.PUT", "calls": [1, 2], "fault": "error", "status": 503,
                 "code": "SlowDown", "message": "Please reduce your request rate." }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "{ type: s3, bucket: lake, key: \"o/{part}.jsonl\" }",
        5,
    );
    let (code, s, err) = run_through(&proxy, &moto, &p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["sinks"]["out"].as_u64(),
            s["api_calls"]["out"].as_u64(),
            s["dead_lettered"]["total"].as_u64()
        ),
        (Some(5), Some(3), Some(0))
    );
    assert_eq!(
        proxy.calls_of("S3.PUT"),
        vec![
            (None, Some("error".into())),
            (None, Some("error".into())),
            (None, None)
        ]
    );
    let objects = rt.block_on(objects(&s3, "lake"));
    assert_eq!(objects.len(), 1);
    let records = jsonl(&objects[0].1);
    assert_eq!(ids(records), (0..5).collect::<Vec<_>>());
}

/// A sink still throttled when its retry policy runs out: the run stops with
/// exit code 3, nothing is dead-lettered (throttling is not the record's
/// fault), and the SQS messages of the batch are not deleted.
#[test]
fn a_sink_throttled_past_its_retry_policy_leaves_the_batch_unacknowledged() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    rt.block_on(create_stream(&kinesis, "out", 1));
    let url = rt.block_on(create_queue(&sqs, "in"));
    for i in 0..3 {
        rt.block_on(
            sqs.send_message()
                .queue_url(&url)
                .message_body(json!({ "i": i, "k": "a" }).to_string())
                .send(),
        )
        .unwrap();
    }
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "Kinesis_20131202.PutRecords", "fault": "error",
                 "code": "ProvisionedThroughputExceededException",
                 "message": "Rate exceeded for shard shardId-000000000000" }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pipeline.yaml");
    common::write_pipeline_file(
        &p,
        "t",
        "source: { type: sqs, queue: in, wait_time: 1s, visibility_timeout: 30s }\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: kinesis, stream: out, partition_key: k, retry: { max_attempts: 3, initial_backoff: 10ms } }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
    );
    let (code, s, err) = run_through(&proxy, &moto, &p, &["--stop-when-idle", "2s"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        common::logged(&err, "error"),
        [
            "the run stopped early: sink `out` did not accept a record after 3 attempts: \
          put_records to stream `out` failed: ProvisionedThroughputExceededException (HTTP 400): \
          Rate exceeded for shard shardId-000000000000"
        ],
        "{err}"
    );
    assert_eq!(s["dead_lettered"]["total"], 0);
    assert_eq!(
        proxy.calls_of("Kinesis_20131202.PutRecords").len(),
        3,
        "three attempts, then the run stops"
    );
    assert!(
        proxy.calls_of("AmazonSQS.DeleteMessageBatch").is_empty(),
        "nothing deleted"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("dlq.jsonl")).unwrap(),
        ""
    );
    assert_eq!(
        messages_in(&rt, &sqs, &url),
        3,
        "the messages stay in the queue and are delivered again"
    );
}

/// `GetRecords` throttled twice: the shard is read again after a backoff and
/// every record arrives.
#[test]
fn a_throttled_kinesis_source_backs_off_and_reads_on() {
    let moto = Moto::start();
    let rt = rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_stream(&kinesis, "in", 1));
    let records = (0..20).map(|i| ("a".to_owned(), json!({ "i": i }).to_string()));
    rt.block_on(common::aws::put_records(&kinesis, "in", records));
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "Kinesis_20131202.GetRecords", "calls": [1, 2], "fault": "error",
                 "code": "ProvisionedThroughputExceededException", "message": "Rate exceeded for shard" }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pipeline.yaml");
    common::write_pipeline_file(
        &p,
        "t",
        "source: { type: kinesis, stream: in, start_position: trim_horizon, checkpoint_table: cp, poll_interval: 100ms }\n\
         routes: [{ to: [out] }]\nsinks:\n  out: { type: file, path: out.jsonl }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
    );
    let (code, s, err) = run_through(&proxy, &moto, &p, &["--stop-when-idle", "1s"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 20);
    let calls = proxy.calls_of("Kinesis_20131202.GetRecords");
    assert_eq!(
        calls[..3],
        [
            (None, Some("error".into())),
            (None, Some("error".into())),
            (None, None)
        ]
    );
    let out = read_jsonl(&t.path().join("out.jsonl"));
    let got: Vec<i64> = out.iter().map(|r| r["i"].as_i64().unwrap()).collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "in order, each once");
}

/// A slow sink keeps batches in flight after the source ran dry: the idle
/// source's request to write the S3 buffer waits until every batch read is
/// committed, so the buffer still becomes one object.
#[test]
fn an_idle_source_writes_the_s3_buffer_once_every_batch_is_committed() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let s3 = s3_client(&conf);
    rt.block_on(create_bucket(&s3, "lake"));
    rt.block_on(create_queue(&sqs, "slow"));
    rt.block_on(create_stream(&kinesis, "in", 1));
    let records = (0..30).map(|i| ("a".to_owned(), json!({ "i": i }).to_string()));
    rt.block_on(common::aws::put_records(&kinesis, "in", records));
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "AmazonSQS.SendMessageBatch", "fault": "latency", "ms": 700 }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pipeline.yaml");
    common::write_pipeline_file(
        &p,
        "t",
        "source: { type: kinesis, stream: in, start_position: trim_horizon, checkpoint_table: cp, poll_interval: 100ms }\n\
         routes: [{ to: [lake, slow] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, key: \"o/{part}.jsonl\" }\n  slow: { type: sqs, queue: slow }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
    );
    // 6 batches of 5 take the SQS sink over 4 s; the source is idle after 1 s.
    let (code, s, err) = run_through(
        &proxy,
        &moto,
        &p,
        &["--stop-when-idle", "1s", "--batch-records", "5"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["sinks"]["lake"].as_u64(), s["api_calls"]["lake"].as_u64()),
        (Some(30), Some(1)),
        "{s}"
    );
}

/// The deletes of an SQS source: the call that failed is sent again, and so
/// are the entries SQS failed on its side; every message is deleted once
/// its batch is delivered, none is delivered twice.
#[test]
fn failed_sqs_deletes_are_sent_again_until_every_message_is_deleted() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "in"));
    let entries = (0..10).map(|i| {
        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(json!({ "i": i }).to_string())
            .build()
            .unwrap()
    });
    rt.block_on(
        sqs.send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries.collect()))
            .send(),
    )
    .unwrap();
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "AmazonSQS.DeleteMessageBatch", "calls": [1], "fault": "reset" },
               { "op": "AmazonSQS.DeleteMessageBatch", "calls": [2], "fault": "partial", "every": 2 },
               { "op": "AmazonSQS.DeleteMessageBatch", "calls": [3], "fault": "partial", "every": 2 }]),
    );
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pipeline.yaml");
    common::write_pipeline_file(
        &p,
        "t",
        "source: { type: sqs, queue: in, wait_time: 1s, visibility_timeout: 5s }\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl }\n\
         dlq: { type: file, path: dlq.jsonl }\n\
         retry: { initial_backoff: 10ms, max_backoff: 100ms }\n",
    );
    let (code, s, err) = run_through(&proxy, &moto, &p, &["--stop-when-idle", "2s"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not deleted"), "{err}");
    assert_eq!(s["records_in"], 10, "{s}");
    assert_eq!(
        ids(read_jsonl(&t.path().join("out.jsonl"))),
        (0..10).collect::<Vec<_>>()
    );
    // The batch of 10: reset, sent again whole (10 entries, 5 failed), the
    // 5 failed (3 fail again), the 3 (all deleted).
    assert_eq!(
        proxy.calls_of("AmazonSQS.DeleteMessageBatch"),
        vec![
            (Some(10), Some("reset".into())),
            (Some(10), Some("partial".into())),
            (Some(5), Some("partial".into())),
            (Some(3), None),
        ]
    );
    // Nothing is left in the queue, visible or in flight.
    assert_eq!(messages_in(&rt, &sqs, &url), 0);
}
