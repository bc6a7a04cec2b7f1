//! AWS sinks and dead-letter queues against a real emulator (`moto_server`):
//! exact contents, error classification, partial failures, and a DLQ that
//! cannot be written (the batch is not acknowledged).

mod common;

use std::io::Read;
use std::path::Path;

use common::aws::{
    create_bucket, create_queue, create_stream, create_table, items, jsonl, objects, rt, s3_client,
    stream_records,
};
use common::moto::Moto;
use common::{outcome, run, sluice, stderr, summary};
use serde_json::{Value, json};

/// A pipeline in `dir` reading `in.jsonl`, with the given sinks, routes and DLQ.
fn pipeline(dir: &Path, body: &str, input: &[Value]) -> std::path::PathBuf {
    common::write_jsonl(dir, "in.jsonl", input);
    common::write_pipeline(
        dir,
        "t",
        &format!("source: {{ type: file, path: in.jsonl }}\n{body}"),
    )
}

fn run_against(moto: &Moto, p: &Path) -> (i32, Value, String) {
    let o = run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json"])
        .envs(moto.env()));
    outcome(&o)
}

/// Runs `p` over its 1 201 records as one batch: 1 200 are delivered to
/// sink `s`, the one it cannot take is dead-lettered at `sink`; the summary.
fn run_one_batch_of_1200_and_a_poison_record(moto: &Moto, p: &Path) -> Value {
    let o = run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json", "--batch-records", "2000"])
        .envs(moto.env()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        (
            s["sinks"]["s"].as_u64(),
            s["dead_lettered"]["sink"].as_u64()
        ),
        (Some(1200), Some(1)),
        "{s}"
    );
    s
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn s3_objects_are_keyed_by_template_and_rewritten_not_duplicated() {
    let moto = Moto::start();
    let rt = rt();
    let s3 = s3_client(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_bucket(&s3, "lake"));
    let t = tempfile::tempdir().unwrap();
    let input = vec![
        json!({"id": 1, "plan": "pro"}),
        json!({"id": 2, "plan": "free"}),
        json!({"id": 3, "plan": "pro"}),
    ];
    let p = pipeline(
        t.path(),
        "routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, key: \"{pipeline}/plan={record.plan}/{part}.jsonl.gz\" }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    for _ in 0..2 {
        let (code, s, err) = run_against(&moto, &p);
        assert_eq!(code, 0, "{err}");
        assert_eq!(s["sinks"]["lake"], 3);
    }
    let objs = rt.block_on(objects(&s3, "lake"));
    let in_hash = {
        let key = &objs[0].0;
        key.split("in-")
            .nth(1)
            .unwrap()
            .split('-')
            .next()
            .unwrap()
            .to_owned()
    };
    let keys: Vec<&str> = objs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("t/plan=free/in-{in_hash}-000000000002.jsonl.gz"),
            format!("t/plan=pro/in-{in_hash}-000000000001.jsonl.gz"),
        ],
        "one object per key group, the same keys on the second run"
    );
    assert_eq!(
        jsonl(&gunzip(&objs[0].1)),
        vec![json!({"id": 2, "plan": "free"})]
    );
    assert_eq!(
        jsonl(&gunzip(&objs[1].1)),
        vec![
            json!({"id": 1, "plan": "pro"}),
            json!({"id": 3, "plan": "pro"})
        ]
    );
}

/// The sink buffers across batches: an object holds whole batches up to
/// `max_records`, so 25 records in batches of 4 make objects of 8, 8 and 9.
#[test]
fn s3_objects_span_batches_up_to_max_records() {
    let moto = Moto::start();
    let rt = rt();
    let s3 = s3_client(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_bucket(&s3, "lake"));
    let t = tempfile::tempdir().unwrap();
    let input: Vec<Value> = (1..=25).map(|i| json!({ "id": i })).collect();
    let p = pipeline(
        t.path(),
        "routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, key: \"o/{part}.jsonl\", max_records: 10 }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let o = run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json", "--batch-records", "4"])
        .envs(moto.env()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        (s["sinks"]["lake"].as_u64(), s["api_calls"]["lake"].as_u64()),
        (Some(25), Some(3))
    );
    let objs = rt.block_on(objects(&s3, "lake"));
    let got: Vec<(String, Vec<i64>)> = objs
        .iter()
        .map(|(k, body)| {
            let line = k.rsplit('-').next().unwrap().trim_end_matches(".jsonl");
            (
                line.to_owned(),
                jsonl(body)
                    .iter()
                    .map(|r| r["id"].as_i64().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("000000000001".to_owned(), (1..=8).collect()),
            ("000000000009".to_owned(), (9..=16).collect()),
            ("000000000017".to_owned(), (17..=25).collect()),
        ]
    );
}

#[test]
fn a_missing_bucket_dead_letters_the_records_without_retrying() {
    let moto = Moto::start();
    // moto loads its S3 backend on the first S3 request, which on a busy
    // machine can outlast the first attempts' connection: the run under test
    // would then retry them (rightly) before it meets the missing bucket.
    // Another bucket is made first, by a client with the SDK's own retries.
    let rt = rt();
    let s3 = s3_client(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_bucket(&s3, "other"));
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "routes: [{ to: [lake, copy] }]\n\
         sinks:\n  lake: { type: s3, bucket: no-such-bucket }\n  copy: { type: file, path: copy.jsonl }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &[json!({"id": 1})],
    );
    let (code, s, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["sink"], 1);
    assert_eq!(
        (
            s["delivered"].as_u64(),
            s["sinks"]["lake"].as_u64(),
            s["sinks"]["copy"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );
    assert_eq!(s["balanced"], true);
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (
            dlq[0]["stage"].as_str(),
            dlq[0]["step"].as_str(),
            dlq[0]["attempts"].as_u64()
        ),
        (Some("sink"), Some("lake"), Some(1)),
        "{err}"
    );
    assert_eq!(dlq[0]["data"], "{\"id\":1}");
    let error = dlq[0]["error"].as_str().unwrap();
    assert!(error.starts_with("put_object of `t/dt="), "{error}");
    assert!(
        error.contains("to bucket `no-such-bucket` failed") && error.contains("NoSuchBucket"),
        "{error}"
    );
}

#[test]
fn sqs_messages_are_exact_and_oversized_records_are_dead_lettered() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "out"));
    let t = tempfile::tempdir().unwrap();
    let mut input: Vec<Value> = (0..23).map(|i| json!({"i": i})).collect();
    input.insert(5, json!({"big": "x".repeat(2000)}));
    let p = pipeline(
        t.path(),
        "routes: [{ to: [q] }]\n\
         sinks:\n  q: { type: sqs, queue: out, max_message_bytes: 1000 }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let (code, s, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["sinks"]["q"].as_u64(),
            s["dead_lettered"]["sink"].as_u64()
        ),
        (Some(23), Some(1))
    );
    assert_eq!(
        s["api_calls"]["q"], 3,
        "SendMessageBatch takes 10 messages a call"
    );
    let mut bodies = Vec::new();
    while bodies.len() < 23 {
        let got = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .send(),
            )
            .unwrap();
        assert!(
            !got.messages().is_empty(),
            "only {} messages arrived",
            bodies.len()
        );
        for m in got.messages() {
            bodies.push(serde_json::from_str::<Value>(m.body().unwrap()).unwrap());
        }
    }
    bodies.sort_by_key(|b| b["i"].as_i64());
    assert_eq!(bodies, (0..23).map(|i| json!({"i": i})).collect::<Vec<_>>());
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0]["error"],
        "record of 2010 bytes is larger than the largest message (1000 bytes)"
    );
    assert_eq!(dlq[0]["source"]["line"], 6);
}

#[test]
fn fifo_messages_carry_their_group_id() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "out.fifo"));
    let t = tempfile::tempdir().unwrap();
    let input = vec![
        json!({"k": "a", "n": 1}),
        json!({"k": "b", "n": 2}),
        json!({"k": "a", "n": 3}),
    ];
    let p = pipeline(
        t.path(),
        &format!(
            "routes: [{{ to: [q] }}]\nsinks:\n  q: {{ type: sqs, queue: \"{url}\", message_group_id: k }}\n\
             dlq: {{ type: file, path: dlq.jsonl }}\n"
        ),
        &input,
    );
    let (code, _, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    let got = rt
        .block_on(
            sqs.receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                )
                .send(),
        )
        .unwrap();
    let seen: Vec<(String, i64)> = got
        .messages()
        .iter()
        .map(|m| {
            let group = m.attributes().unwrap()
                [&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
                .clone();
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            (group, body["n"].as_i64().unwrap())
        })
        .collect();
    assert!(
        seen.contains(&("a".into(), 1)) && seen.contains(&("b".into(), 2)),
        "{seen:?}"
    );
}

#[test]
fn a_dlq_that_cannot_be_written_fails_the_run() {
    let moto = Moto::start();
    let t = tempfile::tempdir().unwrap();
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let p = pipeline(
        t.path(),
        &format!(
            "schemas: {{ s: {{ type: object, required: [ok] }} }}\nvalidate: {{ schema: s }}\n\
             routes: [{{ to: [out] }}]\nsinks:\n  out: {{ type: file, path: out.jsonl }}\n\
             dlq: {{ type: sqs, queue: \"{missing}\" }}\n"
        ),
        &[json!({"ok": 1}), json!({"bad": 1})],
    );
    let (code, summary, err) = run_against(&moto, &p);
    assert_eq!(code, 3, "{err}");
    // How many attempts it takes depends on the transport (a connection the
    // emulator closes is retried); that a missing queue is not retried is
    // the unit tests' of `classify` and `deliver`.
    let reason = summary["error"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the dead-letter queue did not accept a record after ")
            && reason.contains(" attempts, so the batch is not acknowledged: send_message_batch to ")
            && reason.ends_with(
                "/no-such-queue` failed: AWS.SimpleQueueService.NonExistentQueue (HTTP 400): The specified queue does not exist."
            ),
        "{summary}"
    );
    assert_eq!(
        (&summary["delivered"], &summary["dead_lettered"]["validate"]),
        (&json!(1), &json!(1))
    );
    assert!(
        err.contains("the run stopped early: the dead-letter queue did not accept a record"),
        "{err}"
    );
}

#[test]
fn s3_and_sqs_dead_letter_queues_hold_exact_envelopes() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let s3 = s3_client(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    rt.block_on(create_bucket(&s3, "dead"));
    let url = rt.block_on(create_queue(&sqs, "dead"));
    for dlq in ["{ type: s3, bucket: dead }", "{ type: sqs, queue: dead }"] {
        let t = tempfile::tempdir().unwrap();
        let p = pipeline(
            t.path(),
            &format!(
                "routes: [{{ to: [out] }}]\nsinks:\n  out: {{ type: file, path: out.jsonl }}\ndlq: {dlq}\n"
            ),
            &[],
        );
        std::fs::write(t.path().join("in.jsonl"), "{\"ok\":1}\n{broken\n").unwrap();
        let (code, s, err) = run_against(&moto, &p);
        assert_eq!(code, 0, "{err}");
        assert_eq!(s["dead_lettered"]["parse"], 1);
        let envelopes: Vec<Value> = if dlq.contains("s3") {
            let objs = rt.block_on(objects(&s3, "dead"));
            assert_eq!(objs.len(), 1);
            assert!(objs[0].0.starts_with("t/dt="), "{}", objs[0].0);
            jsonl(&objs[0].1)
        } else {
            let got = rt
                .block_on(sqs.receive_message().queue_url(&url).send())
                .unwrap();
            got.messages()
                .iter()
                .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
                .collect()
        };
        assert_eq!(envelopes.len(), 1, "{dlq}");
        let mut e = envelopes[0].clone();
        e.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(
            e,
            json!({"pipeline": "t", "stage": "parse", "error": "invalid JSON: key must be a string at line 1 column 2",
                   "data": "{broken", "encoding": "utf-8", "source": {"type": "file", "file": "in.jsonl", "line": 2},
                   "attempts": 1}),
            "{dlq}"
        );
    }
}

/// `sluice dlq redrive` with an S3 and an SQS DLQ: redriven entries are
/// removed, and a record that fails again is the only entry left (for S3,
/// under a `-redrive-` key).
#[test]
fn s3_and_sqs_dead_letter_queues_are_redriven() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let s3 = s3_client(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    rt.block_on(create_bucket(&s3, "dead"));
    let url = rt.block_on(create_queue(&sqs, "dead"));
    let schema = |minimum: i64| {
        format!(
            "schemas:\n  s: {{ type: object, properties: {{ n: {{ type: integer, minimum: {minimum} }} }} }}\n\
             validate: {{ schema: s }}\nroutes: [{{ to: [out] }}]\nsinks:\n  out: {{ type: file, path: out.jsonl }}\n"
        )
    };
    for dlq in ["{ type: s3, bucket: dead }", "{ type: sqs, queue: dead }"] {
        let t = tempfile::tempdir().unwrap();
        let input = [json!({"n": 1}), json!({"n": -1}), json!({"n": "x"})];
        let p = pipeline(t.path(), &format!("{}dlq: {dlq}\n", schema(0)), &input);
        let (code, s, err) = run_against(&moto, &p);
        assert_eq!(code, 0, "{err}");
        assert_eq!(s["dead_lettered"]["validate"], 2);

        // Allow negative numbers, then redrive.
        pipeline(t.path(), &format!("{}dlq: {dlq}\n", schema(-10)), &input);
        let o = run(sluice()
            .args(["dlq", "redrive"])
            .arg(&p)
            .args(["--summary-format", "json"])
            .envs(moto.env()));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s = summary(&o);
        assert_eq!(
            (
                s["records_in"].as_u64(),
                s["delivered"].as_u64(),
                s["dead_lettered"]["validate"].as_u64()
            ),
            (Some(2), Some(1), Some(1)),
            "{dlq}: {s}"
        );
        assert_eq!(
            common::read_jsonl(&t.path().join("out.jsonl")),
            vec![json!({"n": 1}), json!({"n": -1})],
            "{dlq}"
        );
        let left: Vec<Value> = if dlq.contains("s3") {
            let objs = rt.block_on(objects(&s3, "dead"));
            assert_eq!(
                objs.len(),
                1,
                "{dlq}: {:?}",
                objs.iter().map(|o| &o.0).collect::<Vec<_>>()
            );
            assert!(objs[0].0.contains("-redrive-"), "{}", objs[0].0);
            let envelopes = jsonl(&objs[0].1);
            rt.block_on(s3.delete_object().bucket("dead").key(&objs[0].0).send())
                .unwrap();
            envelopes
        } else {
            let got = rt
                .block_on(
                    sqs.receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .send(),
                )
                .unwrap();
            for m in got.messages() {
                rt.block_on(
                    sqs.delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send(),
                )
                .unwrap();
            }
            got.messages()
                .iter()
                .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
                .collect()
        };
        assert_eq!(left.len(), 1, "{dlq}: {left:?}");
        assert_eq!(
            (
                left[0]["data"].as_str(),
                left[0]["stage"].as_str(),
                left[0]["source"]["line"].as_u64()
            ),
            (Some("{\"n\":\"x\"}"), Some("validate"), Some(3)),
            "{dlq}"
        );
    }
}

#[test]
fn dynamodb_put_writes_items_and_update_adds_to_totals() {
    let moto = Moto::start();
    let rt = rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_table(&ddb, "orders", "order_id"));
    rt.block_on(create_table(&ddb, "totals", "customer_id"));
    let t = tempfile::tempdir().unwrap();
    let mut input: Vec<Value> = (0..30)
        .map(|i| json!({"order_id": format!("o{i:02}"), "customer_id": format!("c{}", i % 3), "amount": 10.5, "tags": ["a"], "gift": i == 0}))
        .collect();
    input.push(json!({"customer_id": "c9", "amount": 1}));
    let p = pipeline(
        t.path(),
        "routes: [{ to: [orders, totals] }]\n\
         sinks:\n  orders: { type: dynamodb, table: orders }\n\
         \x20 totals: { type: dynamodb, table: totals, mode: update, key: [customer_id], add: { TotalSales: amount }, set: { last_order: order_id } }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let (code, s, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["sinks"]["orders"].as_u64(), s["sinks"]["totals"].as_u64()),
        (Some(30), Some(31))
    );
    assert_eq!(
        s["dead_lettered"]["sink"], 1,
        "the record without an order_id"
    );
    let orders = rt.block_on(items(&ddb, "orders", "order_id"));
    assert_eq!(orders.len(), 30);
    assert_eq!(
        orders[0],
        json!({"order_id": "o00", "customer_id": "c0", "amount": 10.5, "tags": ["a"], "gift": true})
    );
    let totals = rt.block_on(items(&ddb, "totals", "customer_id"));
    assert_eq!(
        totals,
        vec![
            json!({"customer_id": "c0", "TotalSales": 105.0, "last_order": "o27"}),
            json!({"customer_id": "c1", "TotalSales": 105.0, "last_order": "o28"}),
            json!({"customer_id": "c2", "TotalSales": 105.0, "last_order": "o29"}),
            json!({"customer_id": "c9", "TotalSales": 1}),
        ]
    );
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(
        (dlq[0]["step"].as_str(), dlq[0]["source"]["line"].as_u64()),
        (Some("orders"), Some(31))
    );
    assert!(
        dlq[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("put_item to table `orders` failed: ValidationException (HTTP 400)"),
        "{}",
        dlq[0]
    );
}

#[test]
fn a_missing_table_dead_letters_and_a_condition_makes_writes_idempotent() {
    let moto = Moto::start();
    let rt = rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_table(&ddb, "orders", "order_id"));
    let t = tempfile::tempdir().unwrap();
    let input = vec![
        json!({"order_id": "o1", "v": 1}),
        json!({"order_id": "o1", "v": 2}),
    ];
    let p = pipeline(
        t.path(),
        "routes: [{ to: [orders, gone] }]\n\
         sinks:\n  orders: { type: dynamodb, table: orders, condition: 'attribute_not_exists(order_id)' }\n\
         \x20 gone: { type: dynamodb, table: no-such-table }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let (code, s, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["sinks"]["orders"].as_u64(),
            s["dead_lettered"]["sink"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(
        rt.block_on(items(&ddb, "orders", "order_id")),
        vec![json!({"order_id": "o1", "v": 1})],
        "the first write wins"
    );
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 2);
    for e in &dlq {
        assert_eq!(
            (e["step"].as_str(), e["attempts"].as_u64()),
            (Some("gone"), Some(1))
        );
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("ResourceNotFoundException (HTTP 400)"),
            "{e}"
        );
    }
}

/// `pipelines/sales-totals/dynamodb.yaml` keeps each customer's `TotalSales`
/// in DynamoDB with `UpdateItem ... ADD`: the totals equal the sum of the
/// deltas the file variant of the same pipeline writes.
#[test]
fn sales_totals_pipeline_keeps_totals_in_dynamodb() {
    let moto = Moto::start();
    let rt = rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_table(&ddb, "CustomerTotals", "customer_id"));
    let out = tempfile::tempdir().unwrap();
    let o = run(sluice()
        .args([
            "run",
            "pipelines/sales-totals/dynamodb.yaml",
            "--summary-format",
            "json",
        ])
        .current_dir(common::root())
        .env("OUT_DIR", out.path())
        .envs(moto.env()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        (
            s["delivered"].as_u64(),
            s["filtered"].as_u64(),
            s["dead_lettered"]["total"].as_u64()
        ),
        (Some(9), Some(2), Some(2))
    );
    let totals: Vec<(String, f64)> = rt
        .block_on(items(&ddb, "CustomerTotals", "customer_id"))
        .iter()
        .map(|i| {
            (
                i["customer_id"].as_str().unwrap().to_owned(),
                i["TotalSales"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        totals,
        vec![
            ("cust-001".into(), 0.0),
            ("cust-002".into(), 0.0),
            ("cust-003".into(), 135.0)
        ]
    );
}

#[test]
fn kinesis_records_keep_per_key_order_and_keyless_records_are_dead_lettered() {
    let moto = Moto::start();
    let rt = rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_stream(&kinesis, "out", 2));
    let t = tempfile::tempdir().unwrap();
    let mut input: Vec<Value> = (0..1200)
        .map(|i| json!({"k": format!("key-{}", i % 7), "i": i}))
        .collect();
    input.push(json!({"i": -1}));
    let p = pipeline(
        t.path(),
        "routes: [{ to: [s] }]\nsinks:\n  s: { type: kinesis, stream: out, partition_key: k }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let s = run_one_batch_of_1200_and_a_poison_record(&moto, &p);
    assert_eq!(
        s["api_calls"]["s"], 3,
        "PutRecords takes 500 records a call"
    );
    let got = rt.block_on(stream_records(&kinesis, "out"));
    assert_eq!(got.len(), 1200);
    for k in 0..7 {
        let key = format!("key-{k}");
        let is: Vec<i64> = got
            .iter()
            .filter(|(pk, _)| *pk == key)
            .map(|(_, r)| r["i"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (0..1200).filter(|i| i % 7 == k).collect();
        assert_eq!(is, expected, "{key} in order");
    }
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq[0]["error"], "the record has no partition key field `k`");
}

/// Firehose on moto delivers to an S3 bucket: what lands there is every
/// record as a JSON line, exactly once; a record over Firehose's 1 000 KiB is
/// dead-lettered, and so is every record for a delivery stream that does not
/// exist (not retried).
#[test]
fn firehose_records_reach_its_s3_destination_and_a_missing_stream_dead_letters() {
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let s3 = s3_client(&conf);
    let firehose = aws_sdk_firehose::Client::new(&conf);
    rt.block_on(async {
        create_bucket(&s3, "lake").await;
        let dest = aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
            .bucket_arn("arn:aws:s3:::lake")
            .role_arn("arn:aws:iam::123456789012:role/firehose")
            .prefix("events/")
            .build()
            .unwrap();
        firehose
            .create_delivery_stream()
            .delivery_stream_name("events")
            .delivery_stream_type(aws_sdk_firehose::types::DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(dest)
            .send()
            .await
            .unwrap();
    });
    let t = tempfile::tempdir().unwrap();
    let mut input: Vec<Value> = (0..1200).map(|i| json!({"i": i, "k": "v"})).collect();
    input.push(json!({"i": -1, "big": "x".repeat(1_100 * 1024)}));
    let p = pipeline(
        t.path(),
        "routes: [{ to: [s] }]\n\
         sinks:\n  s: { type: firehose, delivery_stream: 'arn:aws:firehose:us-east-1:123456789012:deliverystream/events' }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let s = run_one_batch_of_1200_and_a_poison_record(&moto, &p);
    assert_eq!(
        s["api_calls"]["s"], 3,
        "PutRecordBatch takes 500 records a call"
    );
    let stored = rt.block_on(objects(&s3, "lake"));
    assert!(
        stored.iter().all(|(k, _)| k.starts_with("events/")),
        "{stored:?}"
    );
    let mut got: Vec<Value> = stored.iter().flat_map(|(_, body)| jsonl(body)).collect();
    got.sort_by_key(|r| r["i"].as_i64());
    assert_eq!(got, input[..1200].to_vec());
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0]["error"],
        format!(
            "record of {} bytes is larger than a Firehose record (1 000 KiB)",
            input[1200].to_string().len() + 1
        )
    );

    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "routes: [{ to: [s] }]\nsinks:\n  s: { type: firehose, delivery_stream: nope }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &[json!({"id": 1}), json!({"id": 2})],
    );
    let (code, s, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["sink"], 2);
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    let error = dlq[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "put_record_batch to delivery stream `nope` failed: ResourceNotFoundException"
        ),
        "{error}"
    );
    assert_eq!(dlq[0]["attempts"], 1, "a missing stream is not retried");
}

/// A sink's own `retry` replaces the pipeline's: an unreachable endpoint is
/// retried (a dispatch failure is retryable) as often as the sink says, and
/// then the batch is not acknowledged.
#[test]
fn a_sinks_own_retry_policy_applies_and_an_unreachable_endpoint_is_retried() {
    // No test of this process is given the port, so nothing listens there.
    let closed = common::free_port();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "aws: {{ region: us-east-1, endpoint_url: \"http://127.0.0.1:{closed}\" }}\n\
             retry: {{ max_attempts: 5, initial_backoff: 10ms }}\n\
             routes: [{{ to: [lake] }}]\n\
             sinks:\n  lake: {{ type: s3, bucket: b, retry: {{ max_attempts: 2, initial_backoff: 10ms, attempt_timeout: 2s }} }}\n\
             dlq: {{ type: file, path: dlq.jsonl }}\n"
        ),
        &[json!({"id": 1})],
    );
    let o = run(sluice()
        .arg("run")
        .arg(&p)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("sink `lake` did not accept a record after 2 attempts: put_object of `t/dt="),
        "{err}"
    );
}

/// Values read with `${secret:…}` are masked in everything a run writes
/// about its work: the summary, its errors and warnings, and the
/// envelopes' `error`. The records are written as they are.
#[test]
fn secrets_in_the_pipeline_never_appear_in_what_a_run_writes() {
    const BUCKET: &str = "lake-7c1f0e9a";
    const PREFIX: &str = "pfx-93b2d1";
    let moto = Moto::start();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: '${secret:LAKE_BUCKET}', key: '${secret:LAKE_PREFIX}/{part}.jsonl' }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &[json!({"id": 1, "note": PREFIX})],
    );
    let o = run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"])
        .envs(moto.env())
        .env("LAKE_BUCKET", BUCKET)
        .env("LAKE_PREFIX", PREFIX));
    let (code, s, err) = outcome(&o);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["sink"], 1, "{s}");
    let envelope = common::read_jsonl(&t.path().join("dlq.jsonl")).remove(0);
    let error = envelope["error"].as_str().unwrap();
    assert!(
        error.starts_with("put_object of `***/") && error.contains("to bucket `***` failed"),
        "{error}"
    );
    // The record is data: kept whole.
    assert_eq!(
        envelope["data"],
        format!("{{\"id\":1,\"note\":\"{PREFIX}\"}}")
    );
    let written = format!("{}{}{error}", stderr(&o), common::stdout(&o));
    for secret in [BUCKET, PREFIX] {
        assert!(!written.contains(secret), "{secret} in: {written}");
    }

    // A secret too short to be masked is refused where it is used.
    let o = run(sluice()
        .arg("check")
        .arg(&p)
        .env("LAKE_BUCKET", "abc")
        .env("LAKE_PREFIX", PREFIX));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "error[invalid-value]: the secret in `LAKE_BUCKET` is shorter than 4 characters"
        ) && err.contains("pipeline.yaml:6:30"),
        "{err}"
    );
    assert!(!err.contains(PREFIX), "{err}");
}

/// A panic while an AWS sink writes a batch (a bug in its encoder, injected
/// by the test build) costs the record that causes it only: the batch is
/// written again one record at a time, that record is dead-lettered at
/// `sink`, and every other record is delivered once.
#[test]
fn a_panic_in_an_aws_sink_dead_letters_only_its_record() {
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, "out"));
    let t = tempfile::tempdir().unwrap();
    let mut input: Vec<Value> = (0..6).map(|i| json!({"i": i})).collect();
    input.insert(3, json!({"fault": "sink-panic", "i": 99}));
    let p = pipeline(
        t.path(),
        "routes: [{ to: [q] }]\n\
         sinks:\n  q: { type: sqs, queue: out }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
        &input,
    );
    let (code, s, err) = run_against(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["sinks"]["q"].as_u64(),
            s["dead_lettered"]["sink"].as_u64(),
            s["balanced"].as_bool()
        ),
        (Some(7), Some(6), Some(1), Some(true)),
        "{s}"
    );
    let dlq = common::read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (
            dlq[0]["stage"].as_str(),
            dlq[0]["step"].as_str(),
            dlq[0]["data"].as_str()
        ),
        (
            Some("sink"),
            Some("q"),
            Some("{\"fault\":\"sink-panic\",\"i\":99}")
        )
    );
    let error = dlq[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("internal error while writing the record: injected sink fault"),
        "{error}"
    );
    let mut ids: Vec<i64> = rt
        .block_on(common::aws::drain(&sqs, &url))
        .iter()
        .map(|m| m["i"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
}
