//! Lambda mode: the `sluice` binary under a Lambda Runtime API emulator,
//! invoked with events in the shapes AWS documents, writing to files, to
//! `moto_server`, and through a fault-injecting proxy. Each test asserts the
//! response (`batchItemFailures`), the sinks and the DLQ.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use common::events;
use common::faults::Proxy;
use common::lambda::Lambda;
use common::moto::Moto;
use common::read_jsonl;
use serde_json::{Value, json};

fn pipeline(dir: &Path, body: &str) -> PathBuf {
    common::write_pipeline(dir, "fn", body)
}

/// A Kinesis event, one record per `data`, sequence numbers `100`, `101` …
fn kinesis_event(data: &[&str]) -> Value {
    kinesis_event_from(0, data)
}

/// A Kinesis event of the shard's records from the `first`th on (sequence
/// numbers `100 + first` …): what the mapping hands again after a failure.
fn kinesis_event_from(first: usize, data: &[&str]) -> Value {
    let records: Vec<Value> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let i = first + i;
            events::kinesis_record(
                "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
                "shardId-000000000003",
                &format!("{}", 100 + i),
                &format!("k{}", i % 2),
                &base64::engine::general_purpose::STANDARD.encode(d),
                1_764_000_000.25,
            )
        })
        .collect();
    events::records(records)
}

/// A Kinesis event of `n` records `{"n":0}`, `{"n":1}` …
fn numbered_event(n: u64) -> Value {
    numbered_event_from(0, n)
}

/// The records `{"n":from}` … `{"n":to - 1}` of the shard of [`numbered_event`].
fn numbered_event_from(from: u64, to: u64) -> Value {
    let data: Vec<String> = (from..to).map(|i| format!("{{\"n\":{i}}}")).collect();
    kinesis_event_from(
        from as usize,
        &data.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

/// An SQS event from a FIFO queue: (message id, group, body) each.
fn sqs_fifo_event(messages: &[(&str, &str, Value)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, (id, group, body))| {
            events::sqs_record(
                "arn:aws:sqs:us-east-1:123456789012:orders.fifo",
                id,
                &format!("handle-{id}"),
                &body.to_string(),
                json!({
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1764000000000",
                    "SequenceNumber": format!("{}", 1000 + i),
                    "MessageGroupId": group,
                    "SenderId": "AIDAEXAMPLE",
                    "MessageDeduplicationId": id,
                    "ApproximateFirstReceiveTimestamp": "1764000000001"
                }),
                json!({}),
            )
        })
        .collect();
    events::records(records)
}

/// A proxy in front of `moto` that throttles every Kinesis `PutRecords`.
fn throttling_put_records(moto: &Moto) -> Proxy {
    Proxy::start(
        moto,
        json!([{ "op": "Kinesis_20131202.PutRecords", "fault": "error",
                 "code": "ProvisionedThroughputExceededException", "message": "Rate exceeded" }]),
    )
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// The function's log lines (JSON) at `level`: their messages.
fn logged(lambda: &Lambda, level: &str) -> Vec<String> {
    lambda
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == level)
        .map(|l| {
            assert!(
                l["requestId"].is_string() && l["timestamp"].is_string(),
                "{l}"
            );
            l["message"].as_str().unwrap().to_owned()
        })
        .collect()
}

const FILES: &str = "source: { type: kinesis, stream: orders }\n\
routes: [{ to: [out] }]\n\
sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
dlq: { type: file, path: dlq.jsonl, mode: append }\n";

#[test]
fn a_kinesis_batch_with_a_poison_record_is_handled_whole() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), FILES);
    let lambda = Lambda::start(&p, &[]);
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, "{broken", r#"{"n":3}"#]))
        .unwrap();
    assert_eq!(
        response,
        json!({ "batchItemFailures": [] }),
        "{}",
        lambda.stderr()
    );
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        vec![json!({"n": 1}), json!({"n": 3})]
    );
    let mut dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    dlq[0].as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        dlq[0],
        json!({
            "pipeline": "fn", "stage": "parse",
            "error": "invalid JSON: key must be a string at line 1 column 2",
            "data": "{broken", "encoding": "utf-8",
            "source": { "type": "kinesis", "stream": "orders", "shard": "shardId-000000000003",
                        "partition_key": "k1", "sequence_number": "101",
                        "arrival_time": "2025-11-24T16:00:00.250Z" },
            "attempts": 1
        })
    );
    let emf = lambda.emf();
    assert_eq!(emf.len(), 3, "totals, parse, sink `out`: {emf:?}");
    let totals = &emf[0];
    assert_eq!(
        totals["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Sluice"
    );
    assert_eq!(
        [
            &totals["Pipeline"],
            &totals["RecordsIn"],
            &totals["Delivered"],
            &totals["DeadLettered"],
            &totals["Failed"]
        ],
        [&json!("fn"), &json!(3), &json!(2), &json!(1), &json!(0)]
    );
    assert!(totals["BatchAge"].as_u64().unwrap() > 0, "{totals}");
    assert_eq!(
        (&emf[1]["Stage"], &emf[1]["DeadLettered"]),
        (&json!("parse"), &json!(1))
    );
    assert_eq!(
        (&emf[2]["Sink"], &emf[2]["Delivered"]),
        (&json!("out"), &json!(2))
    );
    // The function stays up for the next invocation.
    let response = lambda.invoke(&kinesis_event(&[r#"{"n":4}"#])).unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")).len(), 3);
}

/// A sink still throttled when its retries run out: the first record it did
/// not take is reported, so the mapping retries from there, in order.
#[test]
fn a_throttled_sink_reports_the_first_record_it_did_not_take() {
    let moto = Moto::start();
    let proxy = throttling_put_records(&moto);
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes:\n  - { when: 'record.n == 2', to: [events] }\n  - { to: [out] }\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         \x20 events: { type: kinesis, stream: events, partition_key: n, retry: { max_attempts: 2, initial_backoff: 10ms } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &proxy.env(&moto));
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]))
        .unwrap();
    assert_eq!(failures(&response), vec!["101"], "{}", lambda.stderr());
    assert_eq!(
        logged(&lambda, "ERROR"),
        vec![
            "sink `events` did not accept a record after 2 attempts: put_records to stream `events` failed: ProvisionedThroughputExceededException (HTTP 400): Rate exceeded"
        ]
    );
    let emf = lambda.emf();
    let sink = emf.iter().find(|m| m["Sink"] == "events").unwrap();
    assert_eq!(
        (&sink["Retries"], &sink["Delivered"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(emf[0]["Failed"], 2, "records 101 and 102 come again");
    assert!(
        !t.path().join("dlq.jsonl").exists() || read_jsonl(&t.path().join("dlq.jsonl")).is_empty()
    );
}

/// A DLQ that does not accept an envelope: the record it should have taken
/// is reported failed, not lost.
#[test]
fn records_an_unreachable_dlq_did_not_take_are_reported() {
    let moto = Moto::start();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: s3, bucket: no-such-bucket, retry: { max_attempts: 1 } }\n",
    );
    let lambda = Lambda::start(&p, &moto.env());
    let response = lambda
        .invoke(&kinesis_event(&[
            r#"{"n":1}"#,
            r#"{"n":2}"#,
            "{broken",
            r#"{"n":4}"#,
        ]))
        .unwrap();
    assert_eq!(failures(&response), vec!["102"], "{}", lambda.stderr());
    let errors = logged(&lambda, "ERROR");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "the dead-letter queue did not accept a record after 1 attempts, so the batch is not acknowledged: put_object of "
        ),
        "{errors:?}"
    );
}

/// A FIFO message that failed mid-group: it and the later messages of its
/// group are reported; the other group's messages are not.
#[test]
fn a_fifo_failure_reports_the_rest_of_its_group() {
    let moto = Moto::start();
    let proxy = throttling_put_records(&moto);
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: sqs, queue: orders.fifo }\n\
         routes:\n  - { when: 'record.fail == true', to: [events] }\n  - { to: [out] }\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         \x20 events: { type: kinesis, stream: events, partition_key: id, retry: { max_attempts: 1 } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &proxy.env(&moto));
    let response = lambda
        .invoke(&sqs_fifo_event(&[
            ("m1", "a", json!({"id": 1})),
            ("m2", "b", json!({"id": 2})),
            ("m3", "a", json!({"id": 3, "fail": true})),
            ("m4", "b", json!({"id": 4})),
            ("m5", "a", json!({"id": 5})),
        ]))
        .unwrap();
    assert_eq!(failures(&response), vec!["m3", "m5"], "{}", lambda.stderr());
}

/// Too close to the deadline to start: every record goes back to the source.
#[test]
fn records_are_not_started_past_the_deadline_margin() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), FILES);
    // The emulator gives each invocation 600 s.
    let lambda = Lambda::start(&p, &[("SLUICE_DEADLINE_MARGIN", "700s".into())]);
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, r#"{"n":2}"#]))
        .unwrap();
    assert_eq!(failures(&response), vec!["100"]);
    assert!(
        !t.path().join("out.jsonl").exists() || read_jsonl(&t.path().join("out.jsonl")).is_empty()
    );
    let warnings = logged(&lambda, "WARN");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("2 records were not started: "),
        "{warnings:?}"
    );
}

#[test]
fn an_event_of_another_kind_fails_the_invocation() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), FILES);
    let lambda = Lambda::start(&p, &[]);
    let err = lambda
        .invoke(&sqs_fifo_event(&[("m1", "a", json!({}))]))
        .unwrap_err();
    assert!(
        err.contains("the pipeline reads a `kinesis` source, but the event is a `sqs` event"),
        "{err}"
    );
}

#[test]
fn a_broken_pipeline_fails_the_init_with_its_diagnostics() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\nroutes: [{ to: [nowhere] }]\nsinks: {}\ndlq: { type: stdout }\n",
    );
    let mut lambda = Lambda::start(&p, &[]);
    assert_eq!(lambda.wait_exit(Duration::from_secs(30)), Some(1));
    let check = common::run(common::sluice().arg("check").arg(&p));
    let diagnostics = common::stderr(&check);
    assert!(diagnostics.contains(":4:17"), "{diagnostics}");
    assert_eq!(
        lambda.stderr(),
        diagnostics,
        "the diagnostics of `sluice check`"
    );
}

/// An Amazon MSK event: records of two partitions. `meta` gives each
/// record's topic, partition, offset, key and headers; a poison record is
/// dead-lettered with its offset; a sink failure reports its partition's
/// first failed offset, and only that partition's.
#[test]
fn a_kafka_batch_reports_the_first_failed_offset_per_partition() {
    let moto = Moto::start();
    let proxy = throttling_put_records(&moto);
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kafka, topic: orders, cluster_arn: 'arn:aws:kafka:us-east-1:123456789012:cluster/c/1' }\n\
         transforms:\n  - name: where\n    script: |\n      \
         record.at = `${meta.topic}/${meta.partition}/${meta.offset}`;\n      \
         record.key = meta.partition_key;\n      \
         record.trace = meta.attributes.trace;\n      \
         record\n\
         routes:\n  - { when: 'record.fail == true', to: [events] }\n  - { to: [out] }\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         \x20 events: { type: kinesis, stream: events, partition_key: n, retry: { max_attempts: 1 } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let record = |partition: u32, offset: u64, value: &str| {
        common::events::kafka_record(
            "orders",
            partition,
            offset,
            1_764_000_000_250,
            Some(format!("key-{offset}").as_bytes()),
            value.as_bytes(),
            json!([{ "trace": [116, 45, 55] }]),
        )
    };
    let event = common::events::kafka_event(
        "arn:aws:kafka:us-east-1:123456789012:cluster/c/1",
        vec![
            record(0, 15, r#"{"n":15}"#),
            record(0, 16, r#"{"n":16,"fail":true}"#),
            record(0, 17, r#"{"n":17}"#),
            record(1, 7, "{broken"),
            record(1, 8, r#"{"n":8}"#),
        ],
    );
    let lambda = Lambda::start(&p, &proxy.env(&moto));
    let response = lambda.invoke(&event).unwrap();
    assert_eq!(
        response,
        json!({ "batchItemFailures": [
            { "itemIdentifier": { "partition": "orders-0", "offset": 16 } }
        ] }),
        "{}",
        lambda.stderr()
    );
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        vec![
            json!({"n": 15, "at": "orders/0/15", "key": "key-15", "trace": "t-7"}),
            // Both routes match 16: `out` took it, `events` did not.
            json!({"n": 16, "fail": true, "at": "orders/0/16", "key": "key-16", "trace": "t-7"}),
            json!({"n": 17, "at": "orders/0/17", "key": "key-17", "trace": "t-7"}),
            json!({"n": 8, "at": "orders/1/8", "key": "key-8", "trace": "t-7"}),
        ]
    );
    let mut dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    dlq[0].as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        dlq[0],
        json!({
            "pipeline": "fn", "stage": "parse",
            "error": "invalid JSON: key must be a string at line 1 column 2",
            "data": "{broken", "encoding": "utf-8",
            "source": { "type": "kafka", "stream": "orders", "partition": 1, "offset": 7,
                        "partition_key": "key-7", "arrival_time": "2025-11-24T16:00:00.250Z" },
            "attempts": 1
        })
    );
    assert_eq!(lambda.emf()[0]["Failed"], 2, "offsets 16 and 17 come again");
}

/// `SLUICE_PIPELINE=s3://…`: the pipeline and the schema file beside it are
/// copied from S3 at init; a missing object fails the init, saying which.
#[test]
fn the_pipeline_can_come_from_s3() {
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s3 = common::aws::s3_client(&rt.block_on(moto.sdk_config()));
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out.jsonl");
    let dlq = t.path().join("dlq.jsonl");
    let put = |key: &str, body: String| {
        rt.block_on(
            s3.put_object()
                .bucket("conf")
                .key(key)
                .body(body.into_bytes().into())
                .send(),
        )
        .unwrap();
    };
    rt.block_on(common::aws::create_bucket(&s3, "conf"));
    put(
        "fn/pipeline.yaml",
        format!(
            "version: 1\nname: fn\nsource: {{ type: kinesis, stream: orders }}\n\
             schemas: {{ n: schemas/n.json }}\nvalidate: {{ schema: n }}\n\
             routes: [{{ to: [out] }}]\nsinks:\n  out: {{ type: file, path: '{}', mode: append }}\n\
             dlq: {{ type: file, path: '{}', mode: append }}\n",
            out.display(),
            dlq.display()
        ),
    );
    put(
        "fn/schemas/n.json",
        r#"{"type": "object", "required": ["n"]}"#.into(),
    );
    put("other/pipeline.yaml", "not this one".into());
    let lambda = Lambda::start(
        Path::new("unused"),
        &[
            moto.env(),
            vec![("SLUICE_PIPELINE", "s3://conf/fn/pipeline.yaml".into())],
        ]
        .concat(),
    );
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, r#"{"m":2}"#]))
        .unwrap();
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "{}",
        lambda.stderr()
    );
    assert_eq!(read_jsonl(&out), vec![json!({"n": 1})]);
    assert_eq!(read_jsonl(&dlq)[0]["stage"], "validate");

    let mut missing = Lambda::start(
        Path::new("unused"),
        &[
            moto.env(),
            vec![("SLUICE_PIPELINE", "s3://conf/fn/missing.yaml".into())],
        ]
        .concat(),
    );
    assert_eq!(missing.wait_exit(Duration::from_secs(30)), Some(1));
    assert_eq!(
        missing.stderr(),
        "error: SLUICE_PIPELINE s3://conf/fn/missing.yaml: no such object\n"
    );
}

/// Retries end in time to answer: a sink that keeps throttling under a
/// generous retry policy is given up on when the invocation's time left
/// reaches the margin, and its records are reported, not cut off by a timeout.
#[test]
fn retries_stop_at_the_deadline_margin() {
    let moto = Moto::start();
    let proxy = throttling_put_records(&moto);
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes: [{ to: [events] }]\n\
         sinks:\n  events: { type: kinesis, stream: events, partition_key: n,\n\
         \x20   retry: { max_attempts: 1000, max_elapsed: 10m, initial_backoff: 50ms, max_backoff: 200ms } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    // The emulator gives each invocation 600 s: 597 s of margin leaves 3 s.
    let env = [
        proxy.env(&moto),
        vec![("SLUICE_DEADLINE_MARGIN", "597s".into())],
    ]
    .concat();
    let lambda = Lambda::start(&p, &env);
    let started = std::time::Instant::now();
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, r#"{"n":2}"#]))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(failures(&response), vec!["100"], "{}", lambda.stderr());
    assert!(
        took < Duration::from_secs(20),
        "the retries ran past the margin: {took:?}"
    );
    let errors = logged(&lambda, "ERROR");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("sink `events` did not accept a record after "),
        "{errors:?}"
    );
    let attempts: u32 = errors[0]
        .trim_start_matches("sink `events` did not accept a record after ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3..1000).contains(&attempts),
        "retried until the margin, not to max_attempts: {attempts}"
    );
}

/// A record the event cannot be decoded into (data that is not base64, or
/// no data at all) is dead-lettered at `decode` with its JSON; the rest of
/// the batch is delivered and nothing is reported failed.
#[test]
fn an_event_record_that_cannot_be_decoded_is_dead_lettered_alone() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), FILES);
    let lambda = Lambda::start(&p, &[]);
    let mut event = kinesis_event(&[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    event["Records"][1]["kinesis"]["data"] = json!("*not base64*");
    let bad = event["Records"][1].clone();
    let response = lambda.invoke(&event).unwrap();
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "{}",
        lambda.stderr()
    );
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        vec![json!({"n": 1}), json!({"n": 3})]
    );
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (&dlq[0]["stage"], &dlq[0]["source"]["sequence_number"]),
        (&json!("decode"), &json!("101"))
    );
    assert!(
        dlq[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("the Kinesis event record cannot be decoded: "),
        "{}",
        dlq[0]
    );
    let data: Value = serde_json::from_str(dlq[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, bad);
}

/// A Firehose data-transformation event sent to a Kinesis pipeline: the
/// invocation fails, naming what arrived, with a one-word error type.
#[test]
fn a_firehose_event_is_named_when_it_is_not_what_the_pipeline_reads() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), FILES);
    let lambda = Lambda::start(&p, &[]);
    let event = json!({
        "invocationId": "i-1",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/d",
        "region": "us-east-1",
        "records": [{ "recordId": "r1", "data": "e30=", "approximateArrivalTimestamp": 1_764_000_000_000_i64 }]
    });
    let err = lambda.invoke(&event).unwrap_err();
    assert!(err.contains("Error: WrongEventKind"), "{err}");
    assert_eq!(
        logged(&lambda, "ERROR"),
        vec![
            "the pipeline reads a `kinesis` source, but the event is a Firehose data-transformation event (`deliveryStreamArn`, `records`)"
        ]
    );
}

/// A file sink whose writes fail only when its buffer is written out (a
/// full disk): the records are reported failed, not answered as delivered.
#[test]
fn records_a_full_disk_did_not_take_are_reported() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: /dev/full, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[]);
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, r#"{"n":2}"#]))
        .unwrap();
    assert_eq!(failures(&response), vec!["100"], "{}", lambda.stderr());
    let errors = logged(&lambda, "ERROR");
    assert!(
        errors[0].starts_with("sink `out` did not accept a record after 1 attempts: writing to `/dev/full` failed: No space left on device"),
        "{errors:?}"
    );
    assert_eq!(lambda.emf()[0]["Failed"], 2);
}

/// Once a record of the shard failed at a sink, no later chunk of the
/// event is started: only the records that shared a sink call with it are
/// written before the source delivers them all again.
#[test]
fn after_a_failed_record_the_rest_of_the_shard_is_not_written() {
    let moto = Moto::start();
    let proxy = throttling_put_records(&moto);
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes:\n  - { when: 'record.n == 9', to: [events] }\n  - { to: [out] }\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         \x20 events: { type: kinesis, stream: events, partition_key: n, retry: { max_attempts: 1 } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &proxy.env(&moto));
    let response = lambda.invoke(&numbered_event(1200)).unwrap();
    assert_eq!(failures(&response), vec!["109"], "{}", lambda.stderr());
    // The first chunk (500 records, record 9 among them: every record goes
    // to `out`) was written; nothing after it.
    let out = read_jsonl(&t.path().join("out.jsonl"));
    let written: Vec<u64> = out.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    assert!(
        written == (0..500).collect::<Vec<u64>>(),
        "{} records written, from {:?} to {:?}",
        written.len(),
        written.first(),
        written.last()
    );
    assert_eq!(
        logged(&lambda, "WARN"),
        vec![
            "after a failed record: 700 later records of its shard, message group or partition were not started, and 490 were already written and will be written again when the source delivers them again"
        ]
    );
}

/// Chunks of one batch run on every worker at once (one per vCPU, here
/// `SLUICE_WORKERS`); the sinks still get the records in event order.
#[test]
fn chunks_run_on_every_worker_and_sinks_keep_event_order() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         transforms: [{ name: t, script: 'record.twice = record.n * 2; record' }]\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[("SLUICE_WORKERS", "3".into())]);
    for n in [1700, 40] {
        let response = lambda.invoke(&numbered_event(n)).unwrap();
        assert_eq!(
            failures(&response),
            Vec::<String>::new(),
            "{}",
            lambda.stderr()
        );
    }
    let out = read_jsonl(&t.path().join("out.jsonl"));
    let written: Vec<(u64, u64)> = out
        .iter()
        .map(|r| (r["n"].as_u64().unwrap(), r["twice"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(u64, u64)> = (0..1700).chain(0..40).map(|n| (n, n * 2)).collect();
    assert!(
        written == expected,
        "{} records, not in event order",
        written.len()
    );
    let records_in: Vec<u64> = lambda
        .emf()
        .iter()
        .filter_map(|m| m["RecordsIn"].as_u64())
        .collect();
    assert_eq!(records_in, vec![1700, 40]);
    // Init is over: every worker has started.
    let workers = lambda
        .threads()
        .into_iter()
        .filter(|n| n == "sluice-worker")
        .count();
    assert_eq!(workers, 3);
}

/// A panic in one record's script dead-letters that record; the batch and
/// the next invocations go on in the same execution environment.
#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature, which scripts/test turns on"
)]
fn a_panic_in_one_record_dead_letters_it_and_the_function_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         transforms:\n  - name: buggy\n    script: 'if record.n == 2 { fault_panic(\"bug\"); } record'\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[]);
    for _ in 0..2 {
        let response = lambda
            .invoke(&kinesis_event(&[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]))
            .unwrap();
        assert_eq!(
            failures(&response),
            Vec::<String>::new(),
            "{}",
            lambda.stderr()
        );
    }
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        vec![
            json!({"n": 1}),
            json!({"n": 3}),
            json!({"n": 1}),
            json!({"n": 3})
        ]
    );
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 2);
    for d in &dlq {
        assert_eq!(
            (&d["stage"], &d["step"]),
            (&json!("transform"), &json!("buggy"))
        );
        assert!(
            d["error"]
                .as_str()
                .unwrap()
                .starts_with("internal error: bug (at "),
            "{d}"
        );
    }
}

/// Credentials from the environment never appear in the function's logs,
/// metrics or envelopes, even when every AWS call fails.
#[test]
fn credentials_never_appear_in_logs_metrics_or_envelopes() {
    const SECRET: &str = "sluice-test-secret-2b7e151628";
    const TOKEN: &str = "sluice-test-session-token-ae2d8a";
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, retry: { max_attempts: 2, initial_backoff: 10ms } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n\
         aws: { region: us-east-1, endpoint_url: 'http://127.0.0.1:9' }\n",
    );
    let lambda = Lambda::start(
        &p,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIASLUICETESTKEY0002".into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_SESSION_TOKEN", TOKEN.into()),
        ],
    );
    let response = lambda
        .invoke(&kinesis_event(&[r#"{"n":1}"#, "{broken"]))
        .unwrap();
    assert_eq!(failures(&response), vec!["100"], "{}", lambda.stderr());
    let written = [
        lambda.stderr(),
        lambda.stdout(),
        std::fs::read_to_string(t.path().join("dlq.jsonl")).unwrap_or_default(),
    ]
    .concat();
    assert!(written.contains("put_object"), "{written}");
    for secret in ["AKIASLUICETESTKEY0002", SECRET, TOKEN] {
        assert!(!written.contains(secret), "{secret} in: {written}");
    }
}

/// A Firehose data-transformation event (as AWS documents it, from a
/// delivery stream reading a Kinesis stream): every record is answered once,
/// in order: `Ok` with the transformed record and its partition keys,
/// `Dropped` when filtered, `ProcessingFailed` when dead-lettered (its
/// original data given back); the DLQ holds the envelope.
#[test]
fn a_firehose_batch_is_answered_record_by_record() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: firehose }\n\
         transforms:\n  - name: t\n    script: |\n      if record.skip == true { return (); }\n      \
         record.id = meta.message_id; record.stream = meta.stream; record.key = meta.partition_key;\n      \
         record.shard = meta.shard; record.arrived = meta.arrival_time;\n      record\n\
         routes: [{ to: [back] }]\n\
         sinks:\n  back: { type: firehose_response, partition_keys: { user: user_id } }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
    );
    let event = common::events::sample_event("firehose-kinesis-transformation");
    let lambda = Lambda::start(&p, &[]);
    let answer = lambda.invoke(&event).unwrap();
    let records = answer["records"].as_array().unwrap();
    let ids: Vec<&str> = event["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recordId"].as_str().unwrap())
        .collect();
    assert_eq!(
        common::events::firehose_results(&answer),
        [
            (ids[0], "Ok"),
            (ids[1], "Dropped"),
            (ids[2], "ProcessingFailed"),
            (ids[3], "Ok")
        ]
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = |i: usize| {
        String::from_utf8(b64.decode(records[i]["data"].as_str().unwrap()).unwrap()).unwrap()
    };
    assert_eq!(
        data(0),
        format!(
            "{}\n",
            json!({ "user_id": "u-1", "n": 1, "id": ids[0], "stream": "clicks", "key": "u-1",
                    "shard": "shardId-000000000000", "arrived": "2017-05-18T02:02:29.453Z" })
        )
    );
    assert_eq!(
        records[0]["metadata"],
        json!({ "partitionKeys": { "user": "u-1" } })
    );
    assert_eq!(
        records[3]["metadata"],
        json!({ "partitionKeys": { "user": "u-4" } })
    );
    assert_eq!(
        data(2),
        "not json",
        "a failed record gives its original back"
    );
    assert_eq!(records[2]["data"], event["records"][2]["data"]);
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["stage"], "parse");
    assert_eq!(dlq[0]["source"]["message_id"], ids[2]);
    assert_eq!(dlq[0]["source"]["type"], "firehose");
}

/// `dedup` with the memory store in Lambda: duplicates within an event and
/// across the invocations of one execution environment are dropped, and
/// counted in the metrics.
#[test]
fn duplicates_are_dropped_across_the_invocations_of_one_environment() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), &format!("{FILES}dedup: {{ key: id, ttl: 1h }}\n"));
    let lambda = Lambda::start(&p, &[]);
    let response = lambda
        .invoke(&kinesis_event(&[
            r#"{"id":"a","v":1}"#,
            r#"{"id":"b","v":2}"#,
            r#"{"id":"a","v":3}"#,
        ]))
        .unwrap();
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "{}",
        lambda.stderr()
    );
    let response = lambda
        .invoke(&kinesis_event(&[
            r#"{"id":"b","v":4}"#,
            r#"{"id":"c","v":5}"#,
        ]))
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        [
            json!({"id": "a", "v": 1}),
            json!({"id": "b", "v": 2}),
            json!({"id": "c", "v": 5})
        ]
    );
    let totals: Vec<(Value, Value)> = lambda
        .emf()
        .iter()
        .filter(|l| l.get("RecordsIn").is_some())
        .map(|l| (l["Delivered"].clone(), l["Deduplicated"].clone()))
        .collect();
    assert_eq!(totals, [(json!(2), json!(1)), (json!(1), json!(1))]);
}

/// moto with a Kinesis stream `events`, behind a proxy that throttles only
/// the first `PutRecords`.
fn events_throttled_once() -> (Moto, Proxy) {
    let moto = Moto::start();
    let rt = common::aws::rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(common::aws::create_stream(&kinesis, "events", 1));
    let proxy = Proxy::start(
        &moto,
        json!([{ "op": "Kinesis_20131202.PutRecords", "calls": [1], "fault": "error",
                 "code": "ProvisionedThroughputExceededException", "message": "Rate exceeded" }]),
    );
    (moto, proxy)
}

/// A record one of its sinks did not take is not remembered: when the
/// mapping hands the shard again from it, it is delivered, and the records
/// after it that were written the first time are dropped as duplicates
/// instead of being written again.
#[test]
fn a_record_a_sink_did_not_take_is_delivered_again_and_the_rest_is_not() {
    let (moto, proxy) = events_throttled_once();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         routes:\n  - { when: 'record.n == 9', to: [events] }\n  - { to: [out] }\n\
         dedup: { key: n, ttl: 1h }\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         \x20 events: { type: kinesis, stream: events, partition_key: n, retry: { max_attempts: 1 } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &proxy.env(&moto));
    let response = lambda.invoke(&numbered_event(1200)).unwrap();
    assert_eq!(failures(&response), vec!["109"], "{}", lambda.stderr());
    let response = lambda.invoke(&numbered_event_from(9, 1200)).unwrap();
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "{}",
        lambda.stderr()
    );
    let written: Vec<u64> = read_jsonl(&t.path().join("out.jsonl"))
        .iter()
        .map(|r| r["n"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..500).chain([9]).chain(500..1200).collect();
    assert_eq!(written, expected);
    let second = lambda
        .emf()
        .into_iter()
        .filter(|l| l.get("RecordsIn").is_some())
        .nth(1)
        .unwrap();
    assert_eq!(
        (
            &second["RecordsIn"],
            &second["Delivered"],
            &second["Deduplicated"]
        ),
        (&json!(1191), &json!(701), &json!(490))
    );
}

/// A Kinesis event of the mapping's tumbling window `[start, end)`, with
/// the state the window's previous invocation returned.
fn window_event(data: &[&str], first: usize, state: Value, last: bool, early: bool) -> Value {
    let mut event = kinesis_event_from(first, data);
    let e = event.as_object_mut().unwrap();
    e.insert(
        "window".into(),
        json!({"start": "2026-11-24T08:00:00Z", "end": "2026-11-24T08:05:00Z"}),
    );
    e.insert("state".into(), state);
    e.insert("shardId".into(), json!("shardId-000000000003"));
    e.insert(
        "eventSourceARN".into(),
        json!("arn:aws:kinesis:us-east-1:123456789012:stream/orders"),
    );
    e.insert("isFinalInvokeForWindow".into(), json!(last));
    e.insert("isWindowTerminatedEarly".into(), json!(early));
    event
}

/// Per device: how many readings and their sum, computed here.
fn totals(readings: &[(&str, i64)]) -> Vec<Value> {
    let mut by: std::collections::BTreeMap<&str, (u64, i64)> = Default::default();
    for (d, v) in readings {
        let t = by.entry(d).or_default();
        t.0 += 1;
        t.1 += v;
    }
    by.into_iter()
        .map(|(d, (n, total))| {
            json!({"device": d, "window_start": "2026-11-24T08:00:00.000Z",
                   "window_end": "2026-11-24T08:05:00.000Z", "n": n, "total": total})
        })
        .collect()
}

/// An aggregate in Lambda: the mapping's tumbling window, its state carried
/// from invocation to invocation (across a new execution environment), its
/// records delivered at its last one.
#[test]
fn a_windows_state_goes_round_and_its_last_invocation_emits_it() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         aggregate:\n\
         \x20 name: per_device\n\
         \x20 group_by: [device]\n\
         \x20 window: { tumbling: 5m }\n\
         \x20 time: processing\n\
         \x20 emit: { n: count(), total: sum(v) }\n\
         routes: [{ from: per_device, to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[]);
    let first = [
        r#"{"device":"a","v":1}"#,
        r#"{"device":"b","v":2}"#,
        r#"{"device":"a","v":3}"#,
    ];
    let response = lambda
        .invoke(&window_event(&first, 0, json!({}), false, false))
        .unwrap();
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "{}",
        lambda.stderr()
    );
    let state = response["state"].clone();
    assert!(state["groups"].is_array(), "{response}");
    assert_eq!(
        std::fs::read_to_string(t.path().join("out.jsonl")).unwrap_or_default(),
        "",
        "nothing is emitted before the window's end"
    );

    // The function is started afresh (a new execution environment): the
    // window's groups come with the event's state, nothing is lost.
    drop(lambda);
    let lambda = Lambda::start(&p, &[]);
    // The last invocation: the state and one more record.
    let last = [r#"{"device":"b","v":4}"#, r#"{"device":"c","v":"x"}"#];
    let response = lambda
        .invoke(&window_event(&last, 3, state, true, false))
        .unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [], "state": {}}),
        "{}",
        lambda.stderr()
    );
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        totals(&[("a", 1), ("b", 2), ("a", 3), ("b", 4)])
    );
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(
        (dlq[0]["stage"].as_str(), dlq[0]["error"].as_str()),
        (Some("aggregate"), Some("`total`: \"x\" is not a number"))
    );

    // A window ended early (a reshard) emits what it has.
    let early = [r#"{"device":"z","v":5}"#];
    let response = lambda
        .invoke(&window_event(&early, 5, json!({}), false, true))
        .unwrap();
    assert_eq!(response["state"], json!({}));
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")).last(),
        totals(&[("z", 5)]).last()
    );

    // Without `TumblingWindowInSeconds` on the mapping, the invocation fails
    // saying so.
    let err = lambda
        .invoke(&kinesis_event(&[r#"{"device":"a","v":1}"#]))
        .unwrap_err();
    assert!(
        err.contains("NoWindow") && err.contains("TumblingWindowInSeconds"),
        "{err}"
    );
}

/// A Rhai reducer's state travels in the window's state between
/// invocations; a record its `add` throws on is dead-lettered (no route
/// took it), and the window's record comes out of `finish`.
#[test]
fn a_script_reducers_state_goes_round_and_a_record_it_throws_on_is_dead_lettered() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         aggregate:\n\
         \x20 name: per_device\n\
         \x20 group_by: [device]\n\
         \x20 window: { tumbling: 5m }\n\
         \x20 time: processing\n\
         \x20 emit:\n\
         \x20   n: count()\n\
         \x20   values:\n\
         \x20     init: '[]'\n\
         \x20     add: 'if record.v < 0 { throw \"negative\" } state + [record.v]'\n\
         \x20     finish: 'state.sort(); state'\n\
         routes: [{ from: per_device, to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[]);
    let first = [r#"{"device":"a","v":3}"#, r#"{"device":"a","v":-1}"#];
    let response = lambda
        .invoke(&window_event(&first, 0, json!({}), false, false))
        .unwrap();
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "{}",
        lambda.stderr()
    );
    assert_eq!(
        response["state"],
        json!({"groups": [{"g": ["a"], "a": [1, [3]]}]}),
        "{response}"
    );
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(
        (
            dlq.len(),
            dlq[0]["stage"].as_str(),
            dlq[0]["error"].as_str(),
            dlq[0]["data"].as_str()
        ),
        (
            1,
            Some("aggregate"),
            Some("`values` (add): script threw: negative (script line 1, column 19)"),
            Some(r#"{"device":"a","v":-1}"#)
        )
    );
    let last = [r#"{"device":"a","v":1}"#];
    let response = lambda
        .invoke(&window_event(
            &last,
            2,
            response["state"].clone(),
            true,
            false,
        ))
        .unwrap();
    assert_eq!(response["state"], json!({}), "{}", lambda.stderr());
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        [
            json!({"device": "a", "window_start": "2026-11-24T08:00:00.000Z",
                "window_end": "2026-11-24T08:05:00.000Z", "n": 2, "values": [1, 3]})
        ]
    );
}

/// A record that fails in a windowed invocation is handed again with the
/// rest of the shard after it: the state returned holds only the records
/// before it, so the window counts every record once.
#[test]
fn a_window_counts_the_records_after_a_failure_once() {
    let (moto, proxy) = events_throttled_once();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         aggregate:\n\
         \x20 name: per_device\n\
         \x20 group_by: [device]\n\
         \x20 window: { tumbling: 5m }\n\
         \x20 time: processing\n\
         \x20 emit: { n: count(), total: sum(v) }\n\
         routes:\n\
         \x20 - { when: 'record.v == 9', to: [events] }\n\
         \x20 - { from: per_device, to: [out] }\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         \x20 events: { type: kinesis, stream: events, partition_key: device, retry: { max_attempts: 1 } }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &proxy.env(&moto));
    let data: Vec<String> = (0..20)
        .map(|v| json!({"device": if v % 2 == 0 { "a" } else { "b" }, "v": v}).to_string())
        .collect();
    let all: Vec<&str> = data.iter().map(String::as_str).collect();
    let response = lambda
        .invoke(&window_event(&all, 0, json!({}), false, false))
        .unwrap();
    assert_eq!(failures(&response), vec!["109"], "{}", lambda.stderr());
    // The mapping hands record 9 and the rest again, with the state.
    let response = lambda
        .invoke(&window_event(
            &all[9..],
            9,
            response["state"].clone(),
            true,
            false,
        ))
        .unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [], "state": {}}),
        "{}",
        lambda.stderr()
    );
    let readings: Vec<(&str, i64)> = (0..20)
        .map(|v| (if v % 2 == 0 { "a" } else { "b" }, v))
        .collect();
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), totals(&readings));
}

/// A window whose state would pass Lambda's 1 MB is emitted at once, and
/// starts again with no group: nothing is lost.
#[test]
fn a_window_state_past_one_megabyte_is_emitted_at_once() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: kinesis, stream: orders }\n\
         aggregate: { name: w, window: { tumbling: 5m }, time: processing, emit: { n: count(), ids: count_distinct(id) } }\n\
         routes: [{ from: w, to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[]);
    // 11 000 distinct ids of 100 characters: over 1 MB of state.
    let data: Vec<String> = (0..11_000)
        .map(|i| json!({"id": format!("{i:0>100}")}).to_string())
        .collect();
    let all: Vec<&str> = data.iter().map(String::as_str).collect();
    let response = lambda
        .invoke(&window_event(&all, 0, json!({}), false, false))
        .unwrap();
    // The state says the window's next emission is its second part (each
    // part's records have identities of their own).
    assert_eq!(
        response,
        json!({"batchItemFailures": [], "state": {"parts": 1}})
    );
    let response = lambda
        .invoke(&window_event(
            &[r#"{"id":"x"}"#],
            11_000,
            response["state"].clone(),
            true,
            false,
        ))
        .unwrap();
    assert_eq!(response["state"], json!({}));
    let out: Vec<(u64, u64)> = read_jsonl(&t.path().join("out.jsonl"))
        .iter()
        .map(|r| (r["n"].as_u64().unwrap(), r["ids"].as_u64().unwrap()))
        .collect();
    assert_eq!(out, [(11_000, 11_000), (1, 1)]);
}
