//! `dedup:` end to end: duplicates across batches and workers, records
//! without a key, key expressions, `check`'s diagnostics, and the DynamoDB
//! store against moto across runs, with a table that does not exist.

mod common;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use common::aws::{create_table, items, rt};
use common::moto::Moto;
use common::{outcome, read_jsonl, run, sluice};
use serde_json::{Value, json};

/// A pipeline in `dir` reading `in.jsonl` into `out/out.jsonl`, with `dedup`.
fn pipeline(dir: &Path, dedup: &str, input: &[Value]) -> PathBuf {
    common::write_jsonl(dir, "in.jsonl", input);
    common::write_pipeline(
        dir,
        "t",
        &format!(
            "source: {{ type: file, path: in.jsonl }}\n\
             routes: [{{ to: [out] }}]\n\
             dedup: {dedup}\n\
             sinks:\n  out: {{ type: file, path: out/out.jsonl }}\n\
             dlq: {{ type: file, path: out/dlq.jsonl }}\n"
        ),
    )
}

fn run_json(p: &Path, extra: &[&str], env: &[(&str, String)]) -> (i32, Value, String) {
    outcome(&run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json"])
        .args(extra)
        .envs(env.iter().cloned())))
}

/// The first record of each key, in input order: what the sink must hold.
fn first_of_each(input: &[Value], key: &str) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    input
        .iter()
        .filter(|r| seen.insert(r[key].to_string()))
        .cloned()
        .collect()
}

#[test]
fn duplicates_across_batches_and_workers_are_dropped_and_counted() {
    let t = tempfile::tempdir().unwrap();
    // 60 distinct ids, each repeated up to five times, spread over batches.
    let input: Vec<Value> = (0..240)
        .map(|i| json!({"id": format!("o-{}", (i * 7) % 60), "n": i}))
        .collect();
    let p = pipeline(t.path(), "{ key: id, ttl: 1h }", &input);
    let (code, s, err) = run_json(&p, &["--batch-records", "7", "--workers", "3"], &[]);
    assert_eq!(code, 0, "{err}");
    let expected = first_of_each(&input, "id");
    assert_eq!(expected.len(), 60);
    assert_eq!(read_jsonl(&t.path().join("out/out.jsonl")), expected);
    assert_eq!(
        (
            s["delivered"].as_u64(),
            s["deduplicated"].as_u64(),
            s["sinks"]["out"].as_u64(),
            s["balanced"].as_bool()
        ),
        (Some(60), Some(180), Some(60), Some(true)),
        "{s}"
    );
}

#[test]
fn a_record_without_a_key_is_dead_lettered_with_stage_dedup() {
    let t = tempfile::tempdir().unwrap();
    let input = vec![
        json!({"id": "a"}),
        json!({"other": 1}),
        json!({"id": ""}),
        json!({"id": null}),
        json!({"id": 7}),
        json!({"id": 7}),
        json!({"id": {"x": 1}}),
    ];
    let p = pipeline(t.path(), "{ key: record.id, ttl: 1h }", &input);
    let (code, s, err) = run_json(&p, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        [
            json!({"id": "a"}),
            json!({"id": 7}),
            json!({"id": {"x": 1}})
        ]
    );
    let dlq = read_jsonl(&t.path().join("out/dlq.jsonl"));
    let got: Vec<(&str, &str, &str)> = dlq
        .iter()
        .map(|e| {
            (
                e["stage"].as_str().unwrap(),
                e["error"].as_str().unwrap(),
                e["data"].as_str().unwrap(),
            )
        })
        .collect();
    let why = "the record has no dedup key: `id` is missing, `()` or empty";
    assert_eq!(
        got,
        [
            ("dedup", why, r#"{"other":1}"#),
            ("dedup", why, r#"{"id":""}"#),
            ("dedup", why, r#"{"id":null}"#),
        ]
    );
    assert_eq!(
        (
            s["dead_lettered"]["dedup"].as_u64(),
            s["deduplicated"].as_u64(),
            s["delivered"].as_u64()
        ),
        (Some(3), Some(1), Some(3))
    );
}

#[test]
fn a_key_expression_runs_in_the_sandbox() {
    let t = tempfile::tempdir().unwrap();
    let input = vec![
        json!({"customer": "c1", "order": 1}),
        json!({"customer": "c1", "order": 2}),
        json!({"customer": "c2", "order": 1}),
        json!({"customer": "c1", "order": 1, "resent": true}),
        json!({"customer": "c3"}),
    ];
    let p = pipeline(
        t.path(),
        "{ key: 'record.customer + \"/\" + record.order', ttl: 10m }",
        &input,
    );
    let (code, s, err) = run_json(&p, &[], &[]);
    assert_eq!(code, 0, "{err}");
    // `record.order` is `()` for c3: its key is "c3/", which is a key.
    let expected: Vec<Value> = input[..3].iter().chain(&input[4..]).cloned().collect();
    assert_eq!(read_jsonl(&t.path().join("out/out.jsonl")), expected);
    assert_eq!(s["deduplicated"], 1);
    assert_eq!(s["dead_lettered"]["dedup"], 0, "{s}");
    assert_eq!(s["delivered"], 4, "{s}");

    // An expression that fails dead-letters the record with why.
    let p = pipeline(
        t.path(),
        "{ key: 'record.customer.len() + record.order', ttl: 10m }",
        &input[4..],
    );
    let (code, s, err) = run_json(&p, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["dedup"], 1, "{s}");
    let dlq = read_jsonl(&t.path().join("out/dlq.jsonl"));
    let error = dlq[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("the dedup key `record.customer.len() + record.order` failed: "),
        "{error}"
    );
}

#[test]
fn check_reports_a_bad_key_and_a_zero_ttl_at_their_place() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "{ key: 'record.id +', ttl: 0s }", &[]);
    let o = run(sluice()
        .args(["check", "--format", "short"])
        .arg(&p)
        .current_dir(t.path()));
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error[")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!("{}:5:", p.display())) && lines[0].contains("dedup key"),
        "{err}"
    );
    assert!(
        lines[1].contains("`dedup.ttl` is zero: no key would be remembered"),
        "{err}"
    );
}

#[test]
fn check_refuses_dedup_with_a_firehose_source() {
    let t = tempfile::tempdir().unwrap();
    let p = common::write_pipeline(
        t.path(),
        "t",
        "source: { type: firehose }\n\
         routes: [{ to: [answer] }]\n\
         dedup: { key: id, ttl: 1h }\n\
         sinks:\n  answer: { type: firehose_response }\n\
         dlq: { type: s3, bucket: b, key: 'x/{part}.jsonl' }\n",
    );
    let o = run(sluice().args(["check", "--format", "short"]).arg(&p));
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "{}:5:1: error[invalid-value]: `dedup` cannot be used with a `firehose` source",
            p.display()
        )),
        "{err}"
    );
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_dynamodb_store_drops_what_an_earlier_run_delivered() {
    let moto = Moto::start();
    let rt = rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_table(&ddb, "seen", "key"));
    let env = moto.env();
    let t = tempfile::tempdir().unwrap();
    let dedup = "{ key: id, ttl: 1h, store: { type: dynamodb, table: seen } }";
    let first = vec![
        json!({"id": "a", "n": 1}),
        json!({"id": "b", "n": 2}),
        json!({"id": "a", "n": 3}),
    ];
    let p = pipeline(t.path(), dedup, &first);
    let before = epoch_now();
    let (code, s, err) = run_json(&p, &["--batch-records", "2"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["delivered"].as_u64(), s["deduplicated"].as_u64()),
        (Some(2), Some(1))
    );
    let after = epoch_now();
    let table = rt.block_on(items(&ddb, "seen", "key"));
    assert_eq!(table.len(), 2, "{table:?}");
    for (row, key) in table.iter().zip(["a", "b"]) {
        assert_eq!(row["key"], key);
        let expires = row["expires_at"].as_u64().unwrap();
        assert!(
            (before + 3600..=after + 3600).contains(&expires),
            "{row} not an hour after the run"
        );
    }

    // A second run: what the first delivered is dropped, the rest goes on.
    let second = vec![
        json!({"id": "b", "n": 4}),
        json!({"id": "c", "n": 5}),
        json!({"id": "a", "n": 6}),
        json!({"id": "c", "n": 7}),
    ];
    let p = pipeline(t.path(), dedup, &second);
    let (code, s, err) = run_json(&p, &[], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        [json!({"id": "c", "n": 5})]
    );
    assert_eq!(
        (s["delivered"].as_u64(), s["deduplicated"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(rt.block_on(items(&ddb, "seen", "key")).len(), 3);

    // An expired item does not count: `a` expired a second ago.
    rt.block_on(
        ddb.put_item()
            .table_name("seen")
            .item(
                "key",
                aws_sdk_dynamodb::types::AttributeValue::S("a".into()),
            )
            .item(
                "expires_at",
                aws_sdk_dynamodb::types::AttributeValue::N((epoch_now() - 1).to_string()),
            )
            .send(),
    )
    .unwrap();
    let p = pipeline(t.path(), dedup, &[json!({"id": "a", "n": 8})]);
    let (code, s, err) = run_json(&p, &[], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["delivered"], 1, "{s}");
    let a = rt.block_on(items(&ddb, "seen", "key"))[0].clone();
    assert!(
        a["expires_at"].as_u64().unwrap() > epoch_now() + 3000,
        "{a}"
    );
}

#[test]
fn a_dedup_table_that_does_not_exist_stops_the_run_without_delivering() {
    let moto = Moto::start();
    let env = moto.env();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "{ key: id, ttl: 1h, store: { type: dynamodb, table: no-such-table } }",
        &[json!({"id": "a"}), json!({"id": "b"})],
    );
    let (code, s, err) = run_json(&p, &[], &env);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        (s["delivered"].as_u64(), s["failed"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );
    assert!(
        err.contains("the dedup store could not be read: batch_get_item on table `no-such-table` failed: ResourceNotFoundException (HTTP 400)"),
        "{err}"
    );
    let out = t.path().join("out/out.jsonl");
    assert!(!out.exists() || read_jsonl(&out).is_empty());
}
