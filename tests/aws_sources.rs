//! AWS sources against a real emulator (`moto_server`): every message ends
//! in a sink or the DLQ and is deleted only after that; a batch that could
//! not be delivered stays in the queue.

mod common;

use std::path::Path;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use common::aws::{
    create_bucket, create_queue, create_stream, create_table, jsonl, objects, rt, s3_client,
    table_request, table_stream,
};
use common::moto::Moto;
use common::{outcome, read_jsonl, run, sluice, stderr, summary};
use serde_json::{Value, json};

fn write_pipeline(dir: &Path, body: &str) -> std::path::PathBuf {
    common::write_pipeline(dir, "q", body)
}

fn run_until_idle(moto: &Moto, p: &Path) -> (i32, Value, String) {
    let o = run(sluice()
        .arg("run")
        .arg(p)
        .args([
            "--summary-format",
            "json",
            "--stop-when-idle",
            "1s",
            "--batch-records",
            "7",
        ])
        .envs(moto.env()));
    outcome(&o)
}

/// (visible, in flight) message counts of a queue.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let get = |n: QueueAttributeName| a.attributes().unwrap()[&n].parse::<u64>().unwrap();
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[test]
fn sqs_messages_are_delivered_then_deleted() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "in"));
    for i in 0..25 {
        let body = if i == 9 {
            "{not json".to_owned()
        } else {
            json!({"i": i}).to_string()
        };
        rt.block_on(
            sqs.send_message()
                .queue_url(&url)
                .message_body(body)
                .message_attributes(
                    "color",
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value("red")
                        .build()
                        .unwrap(),
                )
                .send(),
        )
        .unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let p = write_pipeline(
        t.path(),
        "source: { type: sqs, queue: in, wait_time: 1s }\n\
         transforms:\n  - name: tag\n    script: |\n      record.color = meta.attributes.color;\n      \
         record.from = meta.source;\n      record.has_id = meta.message_id != ();\n      record\n\
         routes: [{ to: [out] }]\nsinks:\n  out: { type: file, path: out.jsonl }\ndlq: { type: file, path: dlq.jsonl }\n",
    );
    let (code, s, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["delivered"].as_u64(),
            s["dead_lettered"]["parse"].as_u64()
        ),
        (Some(25), Some(24), Some(1))
    );
    let mut out = read_jsonl(&t.path().join("out.jsonl"));
    out.sort_by_key(|r| r["i"].as_i64());
    let expected: Vec<Value> = (0..25)
        .filter(|i| *i != 9)
        .map(|i| json!({"i": i, "color": "red", "from": "sqs", "has_id": true}))
        .collect();
    assert_eq!(out, expected);
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq[0]["data"], "{not json");
    assert_eq!(dlq[0]["source"]["type"], "sqs");
    // The queue's name, as under Lambda (where only its ARN is known).
    assert_eq!(dlq[0]["source"]["stream"], "in");
    assert!(dlq[0]["source"]["message_id"].is_string(), "{}", dlq[0]);
    assert_eq!(
        rt.block_on(depth(&sqs, &url)),
        (0, 0),
        "every message was deleted"
    );
}

#[test]
fn messages_of_a_batch_that_was_not_delivered_stay_in_the_queue() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "in"));
    for body in ["{\"ok\":1}", "broken"] {
        rt.block_on(sqs.send_message().queue_url(&url).message_body(body).send())
            .unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let missing = format!("{}/123456789012/no-such-dlq", moto.endpoint);
    let p = write_pipeline(
        t.path(),
        &format!(
            "source: {{ type: sqs, queue: in, wait_time: 1s }}\nroutes: [{{ to: [out] }}]\n\
             sinks:\n  out: {{ type: file, path: out.jsonl }}\ndlq: {{ type: sqs, queue: \"{missing}\" }}\n"
        ),
    );
    let (code, _, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the dead-letter queue did not accept a record"),
        "{err}"
    );
    let (visible, in_flight) = rt.block_on(depth(&sqs, &url));
    assert_eq!(
        visible + in_flight,
        2,
        "no message of the failed batch was deleted"
    );
}

#[test]
fn fifo_order_and_group_ids_reach_the_scripts() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "in.fifo"));
    for n in 0..12 {
        let group = if n % 2 == 0 { "even" } else { "odd" };
        rt.block_on(
            sqs.send_message()
                .queue_url(&url)
                .message_group_id(group)
                .message_body(json!({"n": n}).to_string())
                .send(),
        )
        .unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let p = write_pipeline(
        t.path(),
        "source: { type: sqs, queue: in.fifo, wait_time: 1s }\n\
         transforms:\n  - { name: g, script: 'record.group = meta.partition_key; record' }\n\
         routes: [{ to: [out] }]\nsinks:\n  out: { type: file, path: out.jsonl }\ndlq: { type: file, path: dlq.jsonl }\n",
    );
    let (code, s, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["delivered"], 12);
    let out = read_jsonl(&t.path().join("out.jsonl"));
    for group in ["even", "odd"] {
        let ns: Vec<i64> = out
            .iter()
            .filter(|r| r["group"] == group)
            .map(|r| r["n"].as_i64().unwrap())
            .collect();
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, sorted, "group {group} in order");
        assert_eq!(ns.len(), 6);
    }
}

async fn put_kinesis(kinesis: &aws_sdk_kinesis::Client, stream: &str, from: i64, to: i64) {
    let records = (from..to).map(|i| {
        let data = if i == 13 {
            "{broken".to_owned()
        } else {
            json!({"i": i, "k": format!("k{}", i % 5)}).to_string()
        };
        (format!("k{}", i % 5), data)
    });
    common::aws::put_records(kinesis, stream, records).await;
}

#[test]
fn kinesis_shards_are_checkpointed_and_a_restart_resumes_after_the_checkpoint() {
    let moto = Moto::start();
    let rt = rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_stream(&kinesis, "in", 3));
    rt.block_on(put_kinesis(&kinesis, "in", 0, 300));
    let t = tempfile::tempdir().unwrap();
    let p = write_pipeline(
        t.path(),
        "source: { type: kinesis, stream: in, start_position: trim_horizon, checkpoint_table: cp, poll_interval: 100ms }\n\
         transforms:\n  - { name: m, script: 'record.pk = meta.partition_key; record.shard = meta.shard; record' }\n\
         routes: [{ to: [out] }]\nsinks:\n  out: { type: file, path: out.jsonl, mode: append }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    let (code, s, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["delivered"].as_u64(),
            s["dead_lettered"]["parse"].as_u64()
        ),
        (Some(300), Some(299), Some(1))
    );

    // A restart reads only what came after the checkpoints, also when the
    // pipeline names the stream by its ARN.
    rt.block_on(put_kinesis(&kinesis, "in", 300, 360));
    let yaml = std::fs::read_to_string(&p).unwrap().replace(
        "stream: in,",
        "stream: \"arn:aws:kinesis:us-east-1:123456789012:stream/in\",",
    );
    std::fs::write(&p, yaml).unwrap();
    let (code, s, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 60, "only the new records: {s}");

    let out = read_jsonl(&t.path().join("out.jsonl"));
    assert_eq!(out.len(), 359, "every record exactly once");
    for k in 0..5 {
        let key = format!("k{k}");
        let is: Vec<i64> = out
            .iter()
            .filter(|r| r["k"] == key.as_str())
            .map(|r| r["i"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (0..360).filter(|i| i % 5 == k && *i != 13).collect();
        assert_eq!(is, expected, "{key}: per-key order across the restart");
        assert!(
            out.iter()
                .filter(|r| r["k"] == key.as_str())
                .all(|r| r["pk"] == key.as_str())
        );
    }
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(
        (dlq.len(), dlq[0]["source"]["type"].as_str()),
        (1, Some("kinesis"))
    );
    assert_eq!(dlq[0]["source"]["stream"], "in");
    assert!(
        dlq[0]["source"]["shard"]
            .as_str()
            .unwrap()
            .starts_with("shardId-"),
        "{}",
        dlq[0]
    );
    assert!(dlq[0]["source"]["sequence_number"].is_string());
}

/// `pipelines/sales-totals/streams.yaml`: inserts, an update that moves an
/// order to another customer, and a delete on the orders table reach the
/// customers' `TotalSales` through the table's DynamoDB stream.
#[test]
fn dynamodb_stream_changes_keep_totals_and_resume_after_the_checkpoint() {
    use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType, StreamViewType};
    let moto = Moto::start();
    let rt = rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(
        table_request(&ddb, "Orders", "order_id", ScalarAttributeType::S)
            .stream_specification(table_stream(StreamViewType::NewAndOldImages))
            .send(),
    )
    .unwrap();
    rt.block_on(create_table(&ddb, "CustomerTotals", "customer_id"));
    let put = |id: &str, customer: &str, amount: &str| {
        rt.block_on(
            ddb.put_item()
                .table_name("Orders")
                .item("order_id", AttributeValue::S(id.into()))
                .item("customer_id", AttributeValue::S(customer.into()))
                .item("amount", AttributeValue::N(amount.into()))
                .item("status", AttributeValue::S("placed".into()))
                .send(),
        )
        .unwrap();
    };
    put("o1", "c1", "10");
    put("o2", "c1", "5.5");
    put("o3", "c2", "7");
    put("o2", "c2", "5.5"); // moves o2 from c1 to c2
    rt.block_on(
        ddb.delete_item()
            .table_name("Orders")
            .key("order_id", AttributeValue::S("o3".into()))
            .send(),
    )
    .unwrap();

    let totals = || -> Vec<(String, f64)> {
        let out = rt
            .block_on(ddb.scan().table_name("CustomerTotals").send())
            .unwrap();
        let mut v: Vec<(String, f64)> = out
            .items()
            .iter()
            .map(|i| {
                (
                    i["customer_id"].as_s().unwrap().clone(),
                    i["TotalSales"].as_n().unwrap().parse().unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let out = tempfile::tempdir().unwrap();
    let run_pipeline = || {
        let o = run(sluice()
            .args([
                "run",
                "pipelines/sales-totals/streams.yaml",
                "--summary-format",
                "json",
                "--stop-when-idle",
                "1s",
            ])
            .current_dir(common::root())
            .env("OUT_DIR", out.path())
            .envs(moto.env()));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        summary(&o)
    };
    let s = run_pipeline();
    assert_eq!(s["records_in"], 5, "{s}");
    assert_eq!(totals(), vec![("c1".into(), 10.0), ("c2".into(), 5.5)]);

    put("o4", "c1", "1.25");
    let s = run_pipeline();
    assert_eq!(
        s["records_in"], 1,
        "only the change after the checkpoint: {s}"
    );
    assert_eq!(totals(), vec![("c1".into(), 11.25), ("c2".into(), 5.5)]);
}

#[test]
fn kpl_aggregated_records_are_split_into_their_user_records() {
    use aws_sdk_kinesis::primitives::Blob;
    let moto = Moto::start();
    let rt = rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_stream(&kinesis, "agg", 1));
    let agg = common::kpl::aggregate(&[("a", "{\"n\":1}"), ("a", "{\"n\":2}"), ("b", "{\"n\":3}")]);
    for data in [agg, b"{\"n\":4}".to_vec()] {
        rt.block_on(
            kinesis
                .put_record()
                .stream_name("agg")
                .partition_key("outer")
                .data(Blob::new(data))
                .send(),
        )
        .unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let p = write_pipeline(
        t.path(),
        "source: { type: kinesis, stream: agg, start_position: trim_horizon, checkpoint_table: cp, poll_interval: 100ms }\n\
         transforms:\n  - { name: pk, script: 'record.pk = meta.partition_key; record' }\n\
         routes: [{ to: [out] }]\nsinks:\n  out: { type: file, path: out.jsonl }\ndlq: { type: file, path: dlq.jsonl }\n",
    );
    let (code, s, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 4);
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        vec![
            json!({"n": 1, "pk": "a"}),
            json!({"n": 2, "pk": "a"}),
            json!({"n": 3, "pk": "b"}),
            json!({"n": 4, "pk": "outer"}),
        ]
    );
}

/// The checkpoint of a batch whose records wait in the S3 sink's buffer is
/// written only with the object: a run killed while records are buffered
/// resumes before them, and nothing is lost or duplicated.
#[test]
fn a_kinesis_checkpoint_waits_for_the_s3_object_that_holds_its_records() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    let dynamodb = aws_sdk_dynamodb::Client::new(&conf);
    let s3 = s3_client(&conf);
    rt.block_on(create_bucket(&s3, "lake"));
    rt.block_on(create_stream(&kinesis, "in", 1));
    let records = (1..=25).map(|i| ("k".to_owned(), json!({ "i": i }).to_string()));
    let seqs = rt.block_on(common::aws::put_records(&kinesis, "in", records));
    let checkpoint = || -> Option<String> {
        let items = rt
            .block_on(dynamodb.scan().table_name("cp").send())
            .ok()?
            .items
            .unwrap_or_default();
        items
            .first()
            .and_then(|i| i.get("sequence_number"))
            .and_then(|v| v.as_s().ok())
            .cloned()
    };
    let ids_per_object = || -> Vec<Vec<i64>> {
        rt.block_on(objects(&s3, "lake"))
            .iter()
            .map(|(_, body)| {
                jsonl(body)
                    .iter()
                    .map(|v| v["i"].as_i64().unwrap())
                    .collect()
            })
            .collect()
    };
    let t = tempfile::tempdir().unwrap();
    let p = write_pipeline(
        t.path(),
        "source: { type: kinesis, stream: in, start_position: trim_horizon, checkpoint_table: cp, poll_interval: 100ms }\n\
         routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, key: \"o/{part}.jsonl\", max_records: 10, max_age: 1h }\n\
         dlq: { type: file, path: dlq.jsonl, mode: append }\n",
    );
    // Batches of 5: objects of 10, 10, and the last 5 held for up to an hour.
    let mut child = sluice()
        .arg("run")
        .arg(&p)
        .args(["--batch-records", "5", "--no-progress"])
        .envs(moto.env())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while checkpoint().as_ref() != Some(&seqs[19]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpoint did not reach the 20th record: {:?}",
            checkpoint()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        checkpoint().as_ref(),
        Some(&seqs[19]),
        "the buffered records are not checkpointed"
    );
    assert_eq!(
        ids_per_object(),
        vec![(1..=10).collect::<Vec<_>>(), (11..=20).collect()]
    );
    child.kill().unwrap(); // SIGKILL: the held records never reach S3
    child.wait().unwrap();

    let (code, s, err) = run_until_idle(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s["records_in"], 5,
        "the restart resumes after the 20th record: {s}"
    );
    assert_eq!(
        ids_per_object(),
        vec![
            (1..=10).collect::<Vec<_>>(),
            (11..=20).collect(),
            (21..=25).collect()
        ],
        "every record once"
    );
    assert_eq!(checkpoint().as_ref(), Some(&seqs[24]));
}

/// Messages held in an S3 buffer for longer than their visibility timeout
/// stay invisible (the timeout is extended) and are received once.
#[test]
fn sqs_visibility_is_extended_while_a_batch_waits_in_a_buffer() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let s3 = s3_client(&conf);
    rt.block_on(create_bucket(&s3, "lake"));
    let url = rt.block_on(create_queue(&sqs, "in"));
    for i in 0..5 {
        rt.block_on(
            sqs.send_message()
                .queue_url(&url)
                .message_body(json!({ "i": i }).to_string())
                .send(),
        )
        .unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    // Visible again after 1 s unless extended; held for 4 s.
    let p = write_pipeline(
        t.path(),
        "source: { type: sqs, queue: in, wait_time: 1s, visibility_timeout: 1s }\n\
         routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, key: \"o/{part}.jsonl\", max_age: 4s }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
    );
    let o = run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json", "--stop-when-idle", "5s"])
        .envs(moto.env()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        (s["records_in"].as_u64(), s["api_calls"]["lake"].as_u64()),
        (Some(5), Some(1)),
        "each message received once, written in one object: {s}"
    );
    assert_eq!(rt.block_on(depth(&sqs, &url)), (0, 0), "all deleted");
}
