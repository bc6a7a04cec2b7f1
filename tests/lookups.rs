//! Enrichment lookups end to end: file tables (CSV and JSON Lines) read by
//! scripts, `check`'s diagnostics for a table that cannot be read and a
//! name no table has, and a `sluice test` case's own rows.

mod common;

use std::path::Path;

use common::{outcome, read_jsonl, run, sluice, stderr, stdout};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn scripts_read_rows_of_csv_and_json_lines_tables() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "rates.csv",
        "currency,usd\nEUR,1.08\n\"GBP\",\"1.27\"\n",
    );
    write(
        t.path(),
        "people.jsonl",
        "{\"id\":1,\"name\":\"Ada\",\"tags\":[\"x\"]}\n{\"id\":\"b\",\"name\":\"Bo\"}\n",
    );
    common::write_jsonl(
        t.path(),
        "in.jsonl",
        &[
            json!({"c": "EUR", "p": 1}),
            json!({"c": "GBP", "p": "b"}),
            json!({"c": "JPY", "p": 2}),
        ],
    );
    let p = common::write_pipeline(
        t.path(),
        "t",
        "source: { type: file, path: in.jsonl }\n\
         lookups:\n\
         \x20 rates: { type: file, path: rates.csv, key: currency }\n\
         \x20 people: { type: file, path: people.jsonl, key: id }\n\
         transforms:\n\
         \x20 - name: t\n\
         \x20   script: |\n\
         \x20     record.rate = lookup(\"rates\", record.c);\n\
         \x20     record.person = lookup(\"people\", record.p);\n\
         \x20     record\n\
         routes: [{ to: [out] }]\n\
         sinks: { out: { type: file, path: out.jsonl } }\n\
         dlq: { type: file, path: dlq.jsonl }\n",
    );
    let (code, s, err) = outcome(&run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"])));
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["delivered"], 3);
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        [
            json!({"c": "EUR", "p": 1, "rate": {"currency": "EUR", "usd": "1.08"},
                   "person": {"id": 1, "name": "Ada", "tags": ["x"]}}),
            json!({"c": "GBP", "p": "b", "rate": {"currency": "GBP", "usd": "1.27"},
                   "person": {"id": "b", "name": "Bo"}}),
            // No row: `()`, which JSON writes as null.
            json!({"c": "JPY", "p": 2, "rate": null, "person": null}),
        ]
    );
}

#[test]
fn check_reports_a_table_it_cannot_read_and_names_no_table_has() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "dup.csv", "k,v\na,1\na,2\n");
    common::write_pipeline(
        t.path(),
        "t",
        "source: { type: file, path: in.jsonl }\n\
         lookups:\n\
         \x20 rates: { type: file, path: dup.csv, key: k }\n\
         \x20 gone: { type: file, path: gone.jsonl, key: id }\n\
         transforms:\n\
         \x20 - name: t\n\
         \x20   script: |\n\
         \x20     record.r = lookup(\"ratez\", record.c);\n\
         \x20     record\n\
         routes:\n\
         \x20 - { when: 'lookup(\"tiers\", record.c) != ()', to: [out] }\n\
         sinks: { out: { type: stdout } }\n\
         dlq: { type: stdout }\n",
    );
    let o = run(sluice()
        .args(["check", "--format", "short", "pipeline.yaml"])
        .current_dir(t.path()));
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains("error["))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "pipeline.yaml:5:30: error[io]: lookup `rates` (`dup.csv`): line 3: a second row with the key `a`",
            "pipeline.yaml:6:29: error[io]: lookup `gone` (`gone.jsonl`): cannot read `gone.jsonl`: No such file or directory (os error 2)",
            "pipeline.yaml:10:25: error[unknown-reference]: transform `t` reads lookup `ratez`, which is not defined under `lookups`",
            "pipeline.yaml:13:21: error[unknown-reference]: a route's condition reads lookup `tiers`, which is not defined under `lookups`",
        ]
    );
}

#[test]
fn a_test_case_brings_its_own_rows_and_an_unknown_table_fails_it() {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "tiers.csv", "id,tier\nc1,gold\n");
    std::fs::create_dir(t.path().join("tests")).unwrap();
    let p = common::write_pipeline(
        t.path(),
        "t",
        "source: { type: file, path: in.jsonl }\n\
         lookups: { tiers: { type: file, path: tiers.csv, key: id } }\n\
         transforms:\n\
         \x20 - { name: t, script: 'record.tier = lookup(\"tiers\", record.id).tier; record' }\n\
         routes: [{ to: [out] }]\n\
         sinks: { out: { type: stdout } }\n\
         dlq: { type: stdout }\n",
    );
    write(
        &t.path().join("tests"),
        "cases.yaml",
        "tests:\n\
         \x20 - name: the file's rows\n\
         \x20   input: [{ id: c1 }]\n\
         \x20   expect: { sinks: { out: [{ id: c1, tier: gold }] } }\n\
         \x20 - name: the case's rows\n\
         \x20   lookups: { tiers: [{ id: c1, tier: silver }, { id: c2, tier: gold }] }\n\
         \x20   input: [{ id: c1 }, { id: c2 }]\n\
         \x20   expect: { sinks: { out: [{ id: c1, tier: silver }, { id: c2, tier: gold }] } }\n\
         \x20 - name: a table the pipeline does not have\n\
         \x20   lookups: { teirs: [{ id: c1, tier: silver }] }\n\
         \x20   input: [{ id: c1 }]\n\
         \x20   expect: { sinks: { out: [{ id: c1, tier: silver }] } }\n",
    );
    let o = run(sluice().arg("test").arg(&p));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ok    ") && lines[0].ends_with("the file's rows"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("ok    ") && lines[1].ends_with("the case's rows"),
        "{out}"
    );
    assert!(
        out.contains("there is no lookup named `teirs` (the lookups are `tiers`)"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"2 passed, 1 failed"));
}

/// A pipeline reading `in.jsonl`, enriching each record from the DynamoDB
/// table `table` with `script`, into `out.jsonl`.
fn dynamodb_pipeline(dir: &Path, table: &str, script: &str) -> std::path::PathBuf {
    common::write_pipeline(
        dir,
        "t",
        &format!(
            "source: {{ type: file, path: in.jsonl }}\n\
             lookups:\n\
             \x20 customers: {{ type: dynamodb, table: {table}, key: customer_id, cache: {{ max_entries: 100, ttl: 5m }} }}\n\
             transforms:\n\
             \x20 - name: enrich\n\
             \x20   script: '{script}'\n\
             routes: [{{ to: [out] }}]\n\
             sinks: {{ out: {{ type: file, path: out.jsonl }} }}\n\
             dlq: {{ type: file, path: dlq.jsonl }}\n"
        ),
    )
}

fn customers(moto: &common::moto::Moto) -> tokio::runtime::Runtime {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let rt = common::aws::rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(common::aws::create_table(&ddb, "Customers", "customer_id"));
    for (id, tier, limit) in [
        ("c1", "gold", 500),
        ("c2", "silver", 100),
        ("c3", "free", 0),
    ] {
        rt.block_on(
            ddb.put_item()
                .table_name("Customers")
                .item("customer_id", A::S(id.into()))
                .item("tier", A::S(tier.into()))
                .item("limit", A::N(limit.to_string()))
                .send(),
        )
        .unwrap();
    }
    rt
}

fn run_on(moto: &common::moto::Moto, p: &Path) -> (i32, serde_json::Value, String) {
    outcome(&run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json"])
        .envs(moto.env())))
}

#[test]
fn a_dynamodb_table_is_read_ahead_once_per_batch_and_counted() {
    let moto = common::moto::Moto::start();
    let _rt = customers(&moto);
    let t = tempfile::tempdir().unwrap();
    let ids = ["c1", "c2", "c1", "c9", "c3", "c1", "c2", "c9", "c1", "c3"];
    let input: Vec<serde_json::Value> = ids.iter().map(|id| json!({"customer_id": id})).collect();
    common::write_jsonl(t.path(), "in.jsonl", &input);
    let p = dynamodb_pipeline(
        t.path(),
        "Customers",
        "let c = lookup(\"customers\", record.customer_id); record.tier = if c == () { \"none\" } else { c.tier }; record.limit = c?.limit; record",
    );
    let (code, s, err) = run_on(&moto, &p);
    assert_eq!(code, 0, "{err}");
    let expected: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let (tier, limit) = match *id {
                "c1" => ("gold", json!(500)),
                "c2" => ("silver", json!(100)),
                "c3" => ("free", json!(0)),
                _ => ("none", json!(null)),
            };
            json!({"customer_id": id, "tier": tier, "limit": limit})
        })
        .collect();
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), expected);
    // One BatchGetItem for the batch's four keys (`c9` has no row, and is
    // remembered as such); every lookup then found its row in the cache.
    assert_eq!(
        s["lookups"],
        json!({"customers": {"hits": 10, "misses": 0, "calls": 1}}),
        "{s}"
    );

    // A key a script computes is read when it is asked for, once.
    let p = dynamodb_pipeline(
        t.path(),
        "Customers",
        "record.tier = lookup(\"customers\", \"c\" + record.customer_id.sub_string(1)).tier; record",
    );
    common::write_jsonl(t.path(), "in.jsonl", &input[..3]);
    let (code, s, err) = run_on(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s["lookups"],
        json!({"customers": {"hits": 1, "misses": 2, "calls": 2}}),
        "{s}"
    );
}

#[test]
fn a_lookup_table_that_does_not_exist_dead_letters_with_the_reason() {
    let moto = common::moto::Moto::start();
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(
        t.path(),
        "in.jsonl",
        &[json!({"customer_id": "c1"}), json!({"customer_id": "c2"})],
    );
    let p = dynamodb_pipeline(
        t.path(),
        "NoSuchTable",
        "record.c = lookup(\"customers\", record.customer_id); record",
    );
    let (code, s, err) = run_on(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["lookup"], 2, "{s}");
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    for e in &dlq {
        assert_eq!(
            (e["stage"].as_str(), e["step"].as_str()),
            (Some("lookup"), Some("enrich"))
        );
        assert!(
            e["error"].as_str().unwrap().starts_with(
                "lookup `customers`: get_item on table `NoSuchTable` failed: ResourceNotFoundException (HTTP 400)"
            ),
            "{e}"
        );
    }
    // Not retried: the read ahead and one read per record.
    assert_eq!(
        s["lookups"],
        json!({"customers": {"hits": 0, "misses": 2, "calls": 3}}),
        "{s}"
    );
}

#[test]
fn a_lookup_file_in_s3_is_read_when_the_pipeline_starts() {
    let moto = common::moto::Moto::start();
    let rt = common::aws::rt();
    let s3 = common::aws::s3_client(&rt.block_on(moto.sdk_config()));
    rt.block_on(common::aws::create_bucket(&s3, "tables"));
    rt.block_on(
        s3.put_object()
            .bucket("tables")
            .key("rates/rates.csv")
            .body("currency,usd\nEUR,1.08\n".as_bytes().to_vec().into())
            .send(),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(
        t.path(),
        "in.jsonl",
        &[json!({"c": "EUR"}), json!({"c": "JPY"})],
    );
    let body = |path: &str| {
        format!(
            "source: {{ type: file, path: in.jsonl }}\n\
             lookups: {{ rates: {{ type: file, path: '{path}', key: currency }} }}\n\
             transforms: [{{ name: t, script: 'record.usd = lookup(\"rates\", record.c)?.usd; record' }}]\n\
             routes: [{{ to: [out] }}]\n\
             sinks: {{ out: {{ type: file, path: out.jsonl }} }}\n\
             dlq: {{ type: file, path: dlq.jsonl }}\n"
        )
    };
    let p = common::write_pipeline(t.path(), "t", &body("s3://tables/rates/rates.csv"));
    let (code, _, err) = run_on(&moto, &p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        [
            json!({"c": "EUR", "usd": "1.08"}),
            json!({"c": "JPY", "usd": null})
        ]
    );
    // An object that is not there stops the start, naming it.
    let p = common::write_pipeline(t.path(), "t", &body("s3://tables/rates/gone.csv"));
    let (code, _, err) = run_on(&moto, &p);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("lookup `rates` (`s3://tables/rates/gone.csv`): get_object of `s3://tables/rates/gone.csv` failed: NoSuchKey"),
        "{err}"
    );
}
