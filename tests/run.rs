//! `sluice run` end to end on small inputs: the summary, the sinks, the
//! dead-letter envelopes, and bad input that must never crash a run.

mod common;

use common::{run, sluice, stderr, summary};

#[test]
fn quickstart_runs_from_the_readme() {
    let o = run(sluice()
        .args([
            "run",
            "pipelines/quickstart/pipeline.yaml",
            "--summary-format",
            "json",
        ])
        .current_dir(common::root()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["records_in"], 6);
    assert_eq!(s["sinks"], serde_json::json!({"all": 3, "paid": 1}));
    assert_eq!(s["filtered"], 1);
    assert_eq!(s["dead_lettered"]["validate"], 1);
    assert_eq!(s["dead_lettered"]["parse"], 1);
    assert_eq!(s["balanced"], true);
}

use std::path::{Path, PathBuf};

use common::read_jsonl;
use serde_json::json;

/// Writes `pipeline.yaml` (file source `in.jsonl`, sinks under `out/`) into `dir`.
fn pipeline(dir: &Path, body: &str) -> PathBuf {
    common::write_pipeline(dir, "t", body)
}

const FILE_IO: &str = "source: { type: file, path: in.jsonl }\n\
sinks:\n  out: { type: file, path: out/out.jsonl }\n\
dlq: { type: file, path: out/dlq.jsonl }\n";

fn run_json(p: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let o = run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json"])
        .args(extra));
    let code = o.status.code().unwrap_or(-1);
    let err = stderr(&o);
    let s = if err.contains("\"records_in\"") {
        summary(&o)
    } else {
        serde_json::Value::Null
    };
    (code, s, err)
}

/// Envelopes without their `timestamp`, which is the wall clock.
fn envelopes(dir: &Path) -> Vec<serde_json::Value> {
    let mut v = read_jsonl(&dir.join("out/dlq.jsonl"));
    for e in &mut v {
        let ts = e.as_object_mut().unwrap().remove("timestamp").unwrap();
        assert!(ts.as_str().unwrap().ends_with('Z'), "{ts}");
    }
    v
}

#[test]
fn a_missing_pipeline_file_exits_2() {
    let o = run(sluice().args(["run", "no/such/pipeline.yaml"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read `no/such/pipeline.yaml`: No such file or directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_input_file_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), &format!("{FILE_IO}routes: [{{ to: [out] }}]\n"));
    let (code, _, err) = run_json(&p, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the source file"), "{err}");
}

#[test]
fn malformed_yaml_is_a_diagnostic_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "source: [unclosed\n");
    let (code, _, err) = run_json(&p, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("error[yaml-syntax]: invalid YAML"), "{err}");
}

#[test]
fn an_empty_input_is_a_clean_run() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), &format!("{FILE_IO}routes: [{{ to: [out] }}]\n"));
    std::fs::write(t.path().join("in.jsonl"), "").unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 0);
    assert_eq!(s["balanced"], true);
    assert_eq!(std::fs::read(t.path().join("out/out.jsonl")).unwrap(), b"");
}

#[test]
fn bad_records_are_dead_lettered_with_exact_envelopes() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}schemas:\n  s: {{ type: object, required: [n], properties: {{ n: {{ type: integer, minimum: 1 }} }} }}\n\
             validate: {{ schema: s }}\nroutes: [{{ to: [out] }}]\n"
        ),
    );
    let deep = "[".repeat(10_000) + "]".repeat(10_000).as_str();
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"n\":1}\n");
    input.extend_from_slice(b"{\"n\":\xff}\n"); // invalid UTF-8
    input.extend_from_slice(deep.as_bytes());
    input.extend_from_slice(b"\n{\"n\":0}\n\n{\"n\":2}\r\n");
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 5);
    assert_eq!(s["delivered"], 2);
    assert_eq!(s["dead_lettered"]["parse"], 2);
    assert_eq!(s["dead_lettered"]["validate"], 1);
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        vec![json!({"n": 1}), json!({"n": 2})]
    );
    let env = envelopes(t.path());
    let src = |line: u64| json!({"type": "file", "file": "in.jsonl", "line": line});
    assert_eq!(
        env[0],
        json!({"pipeline": "t", "stage": "parse", "error": "record is not valid UTF-8 (invalid byte at offset 5)",
               "data": "eyJuIjr/fQ==", "encoding": "base64", "source": src(2), "attempts": 1})
    );
    assert_eq!(env[1]["stage"], "parse");
    assert_eq!(
        env[1]["error"],
        "invalid JSON: recursion limit exceeded at line 1 column 128"
    );
    assert_eq!(env[1]["data"].as_str().unwrap().len(), 20_000);
    assert_eq!(env[1]["source"], src(3));
    assert_eq!(
        env[2],
        json!({"pipeline": "t", "stage": "validate", "error": "0 is less than the minimum of 1 at /n",
               "instance_path": "/n", "data": "{\"n\":0}", "encoding": "utf-8", "source": src(4), "attempts": 1})
    );
    assert_eq!(env.len(), 3);
}

#[test]
fn a_50_mb_line_is_dead_lettered_at_decode() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), &format!("{FILE_IO}routes: [{{ to: [out] }}]\n"));
    let mut input = "x".repeat(50 * 1024 * 1024);
    input.push_str("\n{\"ok\":true}\n");
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["decode"], 1);
    assert_eq!(s["delivered"], 1);
    let env = envelopes(t.path());
    assert_eq!(
        env[0]["error"],
        "record of 52428800 bytes is larger than max_record_bytes (10485760); the envelope holds its first 1024 bytes"
    );
    assert_eq!(env[0]["data"], "x".repeat(1024));
}

#[test]
fn hostile_scripts_are_stopped_by_the_sandbox_and_the_run_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}limits: {{ max_operations: 10000, max_string_bytes: 1000, max_array_len: 100 }}\n\
             transforms:\n  - name: hostile\n    script: |\n      \
             fn f(x) {{ f(x) }}\n      \
             if record.k == \"loop\" {{ loop {{}} }}\n      \
             if record.k == \"recurse\" {{ f(1); }}\n      \
             if record.k == \"string\" {{ let s = \"x\"; loop {{ s += s; }} }}\n      \
             if record.k == \"array\" {{ let a = []; loop {{ a.push(1); }} }}\n      \
             if record.k == \"throw\" {{ throw \"bad record\"; }}\n      \
             record\nroutes: [{{ to: [out] }}]\n"
        ),
    );
    let input: String = ["loop", "recurse", "string", "array", "throw", "fine"]
        .iter()
        .map(|k| format!("{{\"k\":\"{k}\"}}\n"))
        .collect();
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["transform"], 5);
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        vec![json!({"k": "fine"})]
    );
    let errors: Vec<String> = envelopes(t.path())
        .iter()
        .map(|e| {
            assert_eq!(e["stage"], "transform");
            assert_eq!(e["step"], "hostile");
            e["error"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        errors[0].starts_with("script exceeded max_operations (10000)"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("script exceeded max_call_levels (32)"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("script exceeded a data size limit"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("script exceeded a data size limit"),
        "{}",
        errors[3]
    );
    assert_eq!(
        errors[4],
        format!("script threw: bad record (at {}:16:32)", p.display())
    );
}

#[test]
fn fan_out_filter_and_unrouted_are_counted() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}transforms:\n  - name: split\n    script: |\n      \
             if record.n == 0 {{ return (); }}\n      \
             let out = [];\n      for i in 0..record.n {{ out.push(#{{ i: i }}); }}\n      out\n\
             routes:\n  - {{ when: record.i > 0, to: [out] }}\nunrouted: drop\n"
        ),
    );
    std::fs::write(t.path().join("in.jsonl"), "{\"n\":0}\n{\"n\":3}\n").unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["records_in"].as_u64(), s["fanned_out"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (
            s["filtered"].as_u64(),
            s["unrouted"].as_u64(),
            s["delivered"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        vec![json!({"i": 1}), json!({"i": 2})]
    );
}

#[test]
fn unrouted_records_are_dead_lettered_by_default() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!("{FILE_IO}routes:\n  - {{ when: record.keep, to: [out] }}\n"),
    );
    std::fs::write(
        t.path().join("in.jsonl"),
        "{\"keep\":true}\n{\"keep\":false}\n{\"keep\":3}\n",
    )
    .unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["route"], 2);
    let env = envelopes(t.path());
    assert_eq!(env[0]["error"], "no route matched the record");
    assert_eq!(
        env[1]["error"],
        "condition of route #1 returned i64, not a bool"
    );
}

#[test]
fn on_invalid_fail_stops_the_run_and_drop_counts() {
    let t = tempfile::tempdir().unwrap();
    let body = |mode: &str| {
        format!(
            "{FILE_IO}schemas: {{ s: {{ type: object, required: [n] }} }}\n\
             validate: {{ schema: s, on_invalid: {mode} }}\nroutes: [{{ to: [out] }}]\n"
        )
    };
    std::fs::write(t.path().join("in.jsonl"), "{\"n\":1}\n{}\n{\"n\":2}\n").unwrap();
    let p = pipeline(t.path(), &body("fail"));
    let (code, _, err) = run_json(&p, &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        common::logged(&err, "error"),
        [
            "the run stopped early: the record at in.jsonl:2 failed validation and `on_invalid` is `fail`: \"n\" is a required property at /"
        ],
        "{err}"
    );
    let p = pipeline(t.path(), &body("drop"));
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["dropped_invalid"].as_u64(), s["delivered"].as_u64()),
        (Some(1), Some(2))
    );
}

#[test]
fn many_workers_keep_input_order() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}transforms:\n  - {{ name: t, script: 'record.line = meta.line; record' }}\nroutes: [{{ to: [out] }}]\n"
        ),
    );
    let input: String = (0..20_000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &["--workers", "4", "--batch-records", "7"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["delivered"], 20_000);
    let out = read_jsonl(&t.path().join("out/out.jsonl"));
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r, &json!({"i": i, "line": i + 1}));
    }
}

#[test]
fn stdin_to_stdout() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: stdin }\ndecode: { format: text }\nsinks: { out: { type: stdout } }\n\
         dlq: { type: file, path: out/dlq.jsonl }\nroutes: [{ to: [out] }]\n",
    );
    let o = common::run_with_stdin(sluice().arg("run").arg(&p), b"hello\nworld\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "\"hello\"\n\"world\"\n");
}

fn redrive_json(p: &Path) -> (i32, serde_json::Value, String) {
    let o = run(sluice()
        .args(["dlq", "redrive"])
        .arg(p)
        .args(["--summary-format", "json"]));
    let err = stderr(&o);
    let s = if err.contains("\"records_in\"") {
        summary(&o)
    } else {
        serde_json::Value::Null
    };
    (o.status.code().unwrap_or(-1), s, err)
}

/// Records rejected by a schema that was too strict are redriven from the
/// DLQ file once the schema is fixed; a record that fails again stays in the
/// DLQ (with its original data and position), and nothing else does.
#[test]
fn dlq_redrive_replays_dead_letters_and_keeps_only_those_that_fail_again() {
    let t = tempfile::tempdir().unwrap();
    let mut input = b"{\"n\":1}\n{\"n\":-1}\n{\"n\":2}\n{\"n\":-2}\n".to_vec();
    input.extend_from_slice(b"\xff\xfe\n");
    std::fs::write(t.path().join("in.jsonl"), &input).unwrap();
    let body = |minimum: i64| {
        format!(
            "{FILE_IO}schemas:\n  s: {{ type: object, properties: {{ n: {{ type: integer, minimum: {minimum} }} }} }}\n\
             validate: {{ schema: s }}\nroutes: [{{ to: [out] }}]\n"
        )
    };
    let p = pipeline(t.path(), &body(0));
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["delivered"].as_u64(),
            s["dead_lettered"]["total"].as_u64()
        ),
        (Some(2), Some(3))
    );
    let first = envelopes(t.path());

    // The schema was too strict: allow negative numbers, then redrive.
    pipeline(t.path(), &body(-10));
    let (code, s, err) = redrive_json(&p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["delivered"].as_u64(),
            s["dead_lettered"]["parse"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{s}"
    );
    let out: Vec<i64> = read_jsonl(&t.path().join("out/out.jsonl"))
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .collect();
    assert_eq!(out, vec![1, 2, -1, -2], "the redrive adds to the sink");
    assert!(!t.path().join("out/dlq.jsonl.redriving").exists());
    let again = envelopes(t.path());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        again[0], first[2],
        "the same envelope: original data (base64), stage and position"
    );
    assert_eq!(
        (
            again[0]["encoding"].as_str(),
            again[0]["source"]["line"].as_u64()
        ),
        (Some("base64"), Some(5))
    );

    // Nothing changed: the same record fails again, and stays.
    let (code, s, _) = redrive_json(&p);
    assert_eq!((code, s["records_in"].as_u64()), (0, Some(1)));
    assert_eq!(envelopes(t.path()), again);
}

/// A record that fanned out, one of whose records failed, is redriven as
/// that one record only: the others were delivered the first time. The
/// envelope says which one it was; when the fan-out no longer makes the
/// same number of records, the record is dead-lettered again whole.
#[test]
fn a_redrive_after_a_partial_fan_out_delivers_only_the_records_that_failed() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("in.jsonl"),
        "{\"id\":\"o1\",\"items\":[{\"sku\":\"a\",\"price\":1},{\"sku\":\"bad\",\"price\":2},{\"sku\":\"c\"}]}\n",
    )
    .unwrap();
    let body = |split: &str, check: &str, when: &str| {
        format!(
            "{FILE_IO}transforms:\n  - name: split\n    script: |\n      {split}\n\
             \x20 - name: check\n    script: '{check}'\nroutes: [{{ when: '{when}', to: [out] }}]\n"
        )
    };
    let split = "let out = []; for i in record.items { out.push(#{ order: record.id, sku: i.sku, price: i.price }); } out";
    let strict = "if record.sku == \"bad\" { throw \"bad sku\"; } record";
    let p = pipeline(t.path(), &body(split, strict, "record.price > 0"));
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["fanned_out"].as_u64(),
            s["delivered"].as_u64(),
            s["dead_lettered"]["total"].as_u64()
        ),
        (Some(2), Some(1), Some(2)),
        "{s}"
    );
    let first = envelopes(t.path());
    assert_eq!(
        (first[0]["stage"].as_str(), first[0]["step"].as_str()),
        (Some("transform"), Some("check"))
    );
    assert_eq!(
        first[0]["fan_out"],
        json!([{"transform": "split", "index": 1, "of": 3}])
    );
    assert_eq!(first[1]["stage"], "route");
    assert_eq!(
        first[1]["fan_out"],
        json!([{"transform": "split", "index": 2, "of": 3}])
    );

    // The fan-out changed: nothing is delivered twice, both stay.
    let fewer = "record.items.remove(0); let out = []; for i in record.items { out.push(#{ order: record.id, sku: i.sku }); } out";
    pipeline(t.path(), &body(fewer, "record", "true"));
    let (code, s, err) = redrive_json(&p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (s["delivered"].as_u64(), s["balanced"].as_bool()),
        (Some(0), Some(true)),
        "{s}"
    );
    let again = envelopes(t.path());
    assert_eq!(again.len(), 2);
    assert_eq!(
        again[0]["error"],
        "the redriven record now makes 2 records at transform `split`, not 3 as when it was dead-lettered: it is dead-lettered again whole, so that none of them is delivered twice"
    );
    assert_eq!(again[0]["fan_out"], first[0]["fan_out"]);
    assert_eq!(again[1]["fan_out"], first[1]["fan_out"]);

    // Fixed: each failed record is delivered once, its siblings not again.
    pipeline(t.path(), &body(split, "record", "(record.price ?? 0) >= 0"));
    let (code, s, err) = redrive_json(&p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["fanned_out"].as_u64(),
            s["delivered"].as_u64(),
            s["balanced"].as_bool()
        ),
        (Some(2), Some(0), Some(2), Some(true)),
        "{s}"
    );
    let skus: Vec<String> = read_jsonl(&t.path().join("out/out.jsonl"))
        .iter()
        .map(|r| r["sku"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(skus, ["a", "bad", "c"]);
    assert!(envelopes(t.path()).is_empty());
}

/// A redrive that stops half-way (here: a sink that cannot be written)
/// keeps its snapshot, and the next redrive runs it.
#[test]
fn an_unfinished_redrive_is_resumed() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("in.jsonl"), "{\"n\":-1}\n").unwrap();
    let strict = format!(
        "{FILE_IO}schemas:\n  s: {{ type: object, properties: {{ n: {{ minimum: 0 }} }} }}\n\
         validate: {{ schema: s }}\nroutes: [{{ to: [out] }}]\n"
    );
    let p = pipeline(t.path(), &strict);
    assert_eq!(run_json(&p, &[]).0, 0);
    // The sink's folder is now a file: writing to it fails.
    let blocked = strict.replace("validate: { schema: s }\n", "");
    pipeline(
        t.path(),
        &blocked.replace("out/out.jsonl", "in.jsonl/out.jsonl"),
    );
    let (code, _, err) = redrive_json(&p);
    assert_eq!(code, 2, "{err}");
    assert!(t.path().join("out/dlq.jsonl.redriving").exists());
    pipeline(t.path(), &blocked);
    let (code, s, err) = redrive_json(&p);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("note: resuming the unfinished redrive of `out/dlq.jsonl.redriving`"),
        "{err}"
    );
    assert_eq!(
        (s["records_in"].as_u64(), s["delivered"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(!t.path().join("out/dlq.jsonl.redriving").exists());
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        vec![json!({"n": -1})]
    );
}

#[test]
fn scripts_cannot_wait_hoard_memory_run_long_or_write_what_json_cannot_hold() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}limits: {{ max_operations: 0, max_time_per_record: 1h }}\n\
             transforms:\n  - name: hostile\n    script: |\n      \
             if record.k == \"sleep_float\" {{ sleep(1e30); }}\n      \
             if record.k == \"sleep_int\" {{ sleep(9223372036854775807); }}\n      \
             if record.k == \"clock\" {{ record.t = timestamp(); }}\n      \
             if record.k == \"keys\" {{ let m = #{{}}; let k = \"\"; k.pad(100000, \"x\"); for i in 0..1000 {{ m[k + i] = i; }} }}\n      \
             if record.k == \"curry\" {{ let s = \"\"; s.pad(1000000, \"x\"); let fs = []; for i in 0..100 {{ fs.push(Fn(\"x\").curry(s + i)); }} }}\n      \
             if record.k == \"infinity\" {{ record.total = record.price * 10.0; }}\n      \
             if record.k == \"nan\" {{ record.items = [1, #{{ v: 0.0 / 0.0 }}]; }}\n      \
             if record.k == \"closure\" {{ record.f = |x| x + 1; }}\n      \
             if record.k == \"range\" {{ record.r = 1..5; }}\n      \
             record.seen = true;\n      \
             record\nroutes: [{{ to: [out] }}]\n"
        ),
    );
    let kinds = [
        "sleep_float",
        "sleep_int",
        "clock",
        "keys",
        "curry",
        "infinity",
        "nan",
        "closure",
        "range",
    ];
    let mut input: String = kinds
        .iter()
        .map(|k| format!("{{\"k\":\"{k}\",\"price\":1e308}}\n"))
        .collect();
    // A valid record larger than every size limit passes through untouched.
    let big = json!({"k": "big", "text": "y".repeat(3 * 1024 * 1024), "items": vec![7; 30_000]});
    input.push_str(&format!("{big}\n"));
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 10);
    assert_eq!(s["dead_lettered"]["transform"], 9);
    assert_eq!(s["delivered"], 1);
    assert_eq!(s["balanced"], true);
    let mut expected = big.clone();
    expected["seen"] = json!(true);
    assert_eq!(read_jsonl(&t.path().join("out/out.jsonl")), vec![expected]);
    let errors: Vec<(String, String)> = envelopes(t.path())
        .iter()
        .map(|e| {
            assert_eq!(e["stage"], "transform", "{e}");
            assert_eq!(e["step"], "hostile", "{e}");
            (
                serde_json::from_str::<serde_json::Value>(e["data"].as_str().unwrap()).unwrap()
                    ["k"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                e["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let error = |k: &str| {
        errors
            .iter()
            .find(|(kind, _)| kind == k)
            .map(|(_, e)| e.as_str())
            .unwrap_or_else(|| panic!("no envelope for {k}: {errors:?}"))
    };
    let no_sleep = "script threw: sleep() is not available: a script cannot wait";
    assert!(error("sleep_float").starts_with(no_sleep), "{errors:?}");
    assert!(error("sleep_int").starts_with(no_sleep), "{errors:?}");
    assert_eq!(
        error("clock"),
        format!(
            "Function not found: timestamp () (at {}:13:43)",
            p.display()
        )
    );
    for k in ["keys", "curry"] {
        assert!(
            error(k).starts_with("script exceeded max_memory_bytes (67108864)"),
            "{errors:?}"
        );
    }
    assert_eq!(
        error("infinity"),
        "the transformed record cannot be written as JSON: `record.total` is infinite, which JSON cannot hold"
    );
    assert_eq!(
        error("nan"),
        "the transformed record cannot be written as JSON: `record.items[1].v` is NaN, which JSON cannot hold"
    );
    assert_eq!(
        error("closure"),
        "the transformed record cannot be written as JSON: `record.f` is a value of type `Fn`, which has no JSON form"
    );
    assert_eq!(
        error("range"),
        "the transformed record cannot be written as JSON: `record.r` is a value of type `range`, which has no JSON form"
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature, which scripts/test turns on"
)]
fn a_panic_in_one_records_work_dead_letters_that_record_only() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}transforms:\n  - name: buggy\n    script: |\n      \
             if record.n == 2 {{ fault_panic(\"bug in a builtin\"); }}\n      \
             record\nroutes: [{{ to: [out] }}]\n"
        ),
    );
    let input = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4,\"fault\":\"sink-panic\"}\n{\"n\":5}\n";
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &["--workers", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["records_in"], 5);
    assert_eq!(s["delivered"], 3);
    assert_eq!(s["dead_lettered"]["transform"], 1);
    assert_eq!(s["dead_lettered"]["sink"], 1);
    assert_eq!(s["balanced"], true);
    assert_eq!(
        read_jsonl(&t.path().join("out/out.jsonl")),
        vec![json!({"n": 1}), json!({"n": 3}), json!({"n": 5})]
    );
    let env = envelopes(t.path());
    assert_eq!(env.len(), 2);
    assert_eq!(
        (&env[0]["stage"], &env[0]["step"], &env[0]["data"]),
        (&json!("transform"), &json!("buggy"), &json!("{\"n\":2}"))
    );
    let e = env[0]["error"].as_str().unwrap();
    assert!(
        e.starts_with("internal error: bug in a builtin (at "),
        "{e}"
    );
    assert_eq!(
        (
            &env[1]["stage"],
            &env[1]["step"],
            env[1]["source"]["line"].as_u64()
        ),
        (&json!("sink"), &json!("out"), Some(4))
    );
    let e = env[1]["error"].as_str().unwrap();
    assert!(
        e.starts_with("internal error while writing the record: injected sink fault (at "),
        "{e}"
    );
    // Each panic is reported once, as an internal error.
    assert_eq!(
        common::logged(&err, "error")
            .iter()
            .filter(|m| m.starts_with("internal error, the record is dead-lettered"))
            .count(),
        2,
        "{err}"
    );
}

#[test]
fn records_a_full_disk_did_not_take_are_not_counted_as_delivered() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: file, path: in.jsonl }\n\
         sinks:\n  out: { type: file, path: /dev/full, mode: append }\n\
         dlq: { type: file, path: out/dlq.jsonl }\nroutes: [{ to: [out] }]\n",
    );
    std::fs::write(t.path().join("in.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        (
            &s["records_in"],
            &s["delivered"],
            &s["failed"],
            &s["balanced"]
        ),
        (&json!(2), &json!(0), &json!(2), &json!(true)),
        "{s}"
    );
    assert_eq!(
        common::logged(&err, "error"),
        [
            "the run stopped early: sink `out` did not accept a record after 1 attempts: writing to `/dev/full` failed: No space left on device (os error 28)"
        ],
        "{err}"
    );
}

/// Records are bounded in bytes as well as in number: 40 records of 5 MB
/// with a 16 MiB budget are never more than 16 MiB in flight, and the run's
/// memory stays a small multiple of that; with the budget lifted, the same
/// input is all in flight at once.
#[test]
fn the_in_flight_byte_budget_bounds_what_a_run_holds() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), &format!("{FILE_IO}routes: [{{ to: [out] }}]\n"));
    let pad = "x".repeat(5_000_000 - 16);
    let input: String = (0..40)
        .map(|i| {
            let line = format!("{{\"n\":{i:>3},\"s\":\"{pad}\"}}\n");
            assert_eq!(line.len(), 5_000_000 + 1);
            line
        })
        .collect();
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let (code, s, err) = run_json(&p, &["--max-in-flight-bytes", "16MiB", "--workers", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (&s["delivered"], &s["balanced"]),
        (&json!(40), &json!(true))
    );
    let in_flight = s["max_in_flight_bytes"].as_u64().unwrap();
    assert!(
        (5_000_000..=16 * 1024 * 1024).contains(&in_flight),
        "at most 16 MiB in flight: {in_flight}"
    );
    let rss = s["peak_rss_bytes"].as_u64().unwrap();
    eprintln!("16 MiB budget: peak RSS {} MiB", rss / (1024 * 1024));
    assert!(
        rss < 256 * 1024 * 1024,
        "peak RSS {rss} is more than 16 times the budget"
    );
    let out = std::fs::read_to_string(t.path().join("out/out.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 40);
    // The budget is what bounds it: lifted, the whole input is in flight.
    let (code, s, err) = run_json(&p, &["--max-in-flight-bytes", "10GiB"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["max_in_flight_bytes"], 200_000_000);
    eprintln!(
        "no budget: peak RSS {} MiB",
        s["peak_rss_bytes"].as_u64().unwrap() / (1024 * 1024)
    );
}

/// Credentials from the environment never appear in what a run writes: the
/// summary, errors, warnings, sinks or envelopes, even when every AWS call
/// fails.
#[test]
fn credentials_never_appear_in_what_a_run_writes() {
    const KEY: &str = "AKIASLUICETESTKEY0001";
    const SECRET: &str = "sluice-test-secret-7f3a9c1e5b";
    const TOKEN: &str = "sluice-test-session-token-4d2b8e";
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: file, path: in.jsonl }\n\
         routes: [{ to: [lake] }]\n\
         sinks:\n  lake: { type: s3, bucket: lake, retry: { max_attempts: 2, initial_backoff: 10ms } }\n\
         dlq: { type: file, path: out/dlq.jsonl }\n\
         aws: { region: us-east-1, endpoint_url: 'http://127.0.0.1:9' }\n",
    );
    std::fs::write(t.path().join("in.jsonl"), "{\"n\":1}\n{broken\n").unwrap();
    let o = run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"])
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let mut written = stderr(&o) + common::stdout(&o).as_str();
    assert!(
        written.contains("put_object"),
        "the S3 write failed: {written}"
    );
    written.push_str(&std::fs::read_to_string(t.path().join("out/dlq.jsonl")).unwrap_or_default());
    for secret in [KEY, SECRET, TOKEN] {
        assert!(!written.contains(secret), "{secret} in: {written}");
    }
}

/// Work that stays within `max_operations` but is slow per operation is
/// stopped by the time budget. (The only test that races the clock: the
/// loop never ends, so however busy the machine, the budget stops it.)
#[test]
fn the_time_budget_stops_slow_work_within_the_operations_limit() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}limits: {{ max_operations: 0, max_time_per_record: 300ms }}\n\
             transforms:\n  - name: slow\n    script: |\n      \
             if record.k == \"slow\" {{ let s = \"\"; loop {{ s += \"x\"; if s.len() > 500000 {{ s = \"\"; }} }} }}\n      \
             record\nroutes: [{{ to: [out] }}]\n"
        ),
    );
    std::fs::write(
        t.path().join("in.jsonl"),
        "{\"k\":\"slow\"}\n{\"k\":\"fine\"}\n",
    )
    .unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (&s["delivered"], &s["dead_lettered"]["transform"]),
        (&json!(1), &json!(1))
    );
    let env = envelopes(t.path());
    let e = env[0]["error"].as_str().unwrap();
    assert!(
        e.starts_with("script exceeded max_time_per_record (300ms)"),
        "{e}"
    );
}

/// `--stop-when-idle` does not apply to a redrive: its help does not offer
/// it, and given anyway it is refused with the reason.
#[test]
fn redrive_neither_offers_nor_takes_stop_when_idle() {
    let help = run(sluice().args(["dlq", "redrive", "--help"]));
    assert_eq!(help.status.code(), Some(0));
    let text = common::stdout(&help);
    assert!(text.contains("--batch-records"), "{text}");
    assert!(!text.contains("--stop-when-idle"), "{text}");
    let o = run(sluice().args([
        "dlq",
        "redrive",
        "--stop-when-idle",
        "5s",
        "pipelines/quickstart/pipeline.yaml",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: `--stop-when-idle` does not apply: a redrive ends by itself\n"
    );
}

/// `--max-dead-letters` and `--max-filtered`, as a count or a share: over
/// the limit the run still delivers and dead-letters everything, then
/// exits 4 and says by how much; the summary gives the first reasons.
#[test]
fn a_run_over_its_dead_letter_or_filter_limit_exits_4() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}transforms:\n  - {{ name: keep, script: 'if record.skip == true {{ () }} else {{ record.n = record.n + 1; record }}' }}\n\
             routes: [{{ to: [out] }}]\n"
        ),
    );
    // 10 records: 6 delivered, 1 filtered, 3 dead-lettered (2 parse, 1 transform).
    std::fs::write(
        t.path().join("in.jsonl"),
        "{\"n\":1}\n{\"n\":2}\n{broken\n{\"n\":3}\n{\"skip\":true}\n{\"n\":4}\n[1\n{\"n\":5}\n{\"n\":6}\n{\"skip\":1}\n",
    )
    .unwrap();
    for (args, code, message) in [
        (vec!["--max-dead-letters", "3"], 0, None),
        (vec!["--max-dead-letters", "30%"], 0, None),
        (
            vec!["--max-dead-letters", "2"],
            4,
            Some(
                "3 of 10 records were dead-lettered (30.0 %), more than `--max-dead-letters 2` allows",
            ),
        ),
        (
            vec!["--max-dead-letters", "29.9%"],
            4,
            Some(
                "3 of 10 records were dead-lettered (30.0 %), more than `--max-dead-letters 29.9%` allows",
            ),
        ),
        (
            vec!["--max-filtered", "0"],
            4,
            Some("1 of 10 records were filtered (10.0 %), more than `--max-filtered 0` allows"),
        ),
    ] {
        let (got, s, err) = run_json(&p, &args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert_eq!(
            (
                s["delivered"].as_u64(),
                s["filtered"].as_u64(),
                s["dead_lettered"]["total"].as_u64()
            ),
            (Some(6), Some(1), Some(3)),
            "{s}"
        );
        let expected: Vec<&str> = message.into_iter().collect();
        assert_eq!(common::logged(&err, "error"), expected, "{args:?}");
    }
    let (_, s, _) = run_json(&p, &[]);
    assert_eq!(
        s["first_reasons"],
        json!({
            "parse": [
                "invalid JSON: key must be a string at line 1 column 2",
                "invalid JSON: EOF while parsing a list at line 1 column 2"
            ],
            "transform": [s["first_reasons"]["transform"][0].clone()]
        })
    );
    let transform = s["first_reasons"]["transform"][0].as_str().unwrap();
    assert!(transform.contains("+"), "{transform}");

    let o = run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--max-dead-letters", "lots"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`lots` is not a number of records (`100`) or a share (`1%`)"),
        "{}",
        stderr(&o)
    );
}

/// A record whose script fails on a missing field is dead-lettered with a
/// reason that names the field, not Rhai's signature of the operator.
#[test]
fn a_missing_field_is_named_in_the_dead_letter() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}transforms:\n  - name: price\n    script: |\n      \
             record.total = record.qty * record.price;\n      \
             record.tag = record.name.to_upper();\n      record\n\
             routes: [{{ to: [out] }}]\n"
        ),
    );
    std::fs::write(
        t.path().join("in.jsonl"),
        "{\"qty\":2}\n{\"qty\":2,\"price\":3}\n{\"qty\":2,\"price\":3,\"name\":\"a\"}\n",
    )
    .unwrap();
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["delivered"], 1, "{s}");
    let errors: Vec<String> = envelopes(t.path())
        .iter()
        .map(|e| e["error"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        errors,
        [
            format!(
                "`record.price` is () (missing or null), so `record.qty * record.price` cannot be computed: `*` takes no () (i64 * ()) (at {}:10:33)",
                p.display()
            ),
            format!(
                "`record.name` is () (missing or null), so `to_upper` cannot be called on it (at {}:11:32)",
                p.display()
            ),
        ]
    );
}

/// `--version` names the commit, and `completions` prints each shell's
/// script with every subcommand in it.
#[test]
fn version_names_the_commit_and_completions_cover_every_command() {
    let o = run(sluice().arg("--version"));
    assert_eq!(o.status.code(), Some(0));
    let v = common::stdout(&o);
    let commit = v
        .trim()
        .strip_prefix(&format!("sluice {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{v}"
    );
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = run(sluice().args(["completions", shell]));
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = common::stdout(&o);
        for word in [
            "check",
            "run",
            "daemon",
            "redrive",
            "template",
            "max-dead-letters",
        ] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
}

/// Under `decode: text`, a string in a test case's `input` is the line
/// itself, not its JSON with quotes.
#[test]
fn a_text_test_input_is_the_line_itself() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}decode: {{ format: text }}\n\
             transforms:\n  - {{ name: wrap, script: '#{{ line: record }}' }}\n\
             routes: [{{ to: [out] }}]\n"
        ),
    );
    std::fs::create_dir(t.path().join("tests")).unwrap();
    std::fs::write(
        t.path().join("tests/lines.yaml"),
        "tests:\n  - name: a line is a string\n    input:\n      - 'GET /index.html 200'\n    \
         expect:\n      sinks:\n        out:\n          - { line: 'GET /index.html 200' }\n",
    )
    .unwrap();
    let o = run(sluice().arg("test").arg(&p));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        common::stdout(&o),
        stderr(&o)
    );
    assert!(
        common::stdout(&o).ends_with("1 passed, 0 failed\n"),
        "{}",
        common::stdout(&o)
    );
    // --filter runs only the cases whose name contains the text.
    let o = run(sluice()
        .arg("test")
        .arg(&p)
        .args(["--filter", "no such case"]));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(common::stdout(&o), "0 passed, 0 failed, 1 filtered out\n");
    let o = run(sluice().arg("test").arg(&p).args(["--filter", "a line"]));
    assert!(
        common::stdout(&o).ends_with("1 passed, 0 failed, 0 filtered out\n"),
        "{}",
        common::stdout(&o)
    );
}

/// A reader that stops early (`sluice completions bash | head`) closes the
/// pipe: the printing commands stop quietly, without a panic.
#[test]
fn printing_into_a_closed_pipe_is_a_quiet_exit() {
    for args in [&["completions", "bash"][..], &["schema"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = sluice()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            (o.status.code(), stderr(&o)),
            (Some(0), String::new()),
            "{args:?}"
        );
    }
}

/// With a JSON summary, what a script prints under `--debug` is a JSON log
/// line too: standard error holds only JSON.
#[test]
fn debug_output_is_json_with_a_json_summary() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("in.jsonl"), "{\"a\":1}\n").unwrap();
    let p = pipeline(
        t.path(),
        &format!(
            "{FILE_IO}transforms:\n  - {{ name: t, script: 'print(`hi ${{record.a}}`); debug(\"x\"); record' }}\n\
             routes: [{{ to: [out] }}]\n"
        ),
    );
    let (code, _, err) = run_json(&p, &["--debug"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let debug: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["level"] == "debug")
        .map(|l| (l["level"].as_str().unwrap(), l["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        debug,
        [
            ("debug", "hi 1"),
            ("debug", "debug (script line 1, column 26): \"x\"")
        ]
    );
}

/// However a transform ends (the variable `record`, with or without `;`, an
/// early `return`, a `let` or `const` of its own named `record`), its value
/// is what the script says, and the next transform and the routes get it;
/// a condition run natively (`record.tier == "big"`) and one run by the
/// interpreter route alike.
#[test]
fn a_transform_gives_its_value_however_it_ends() {
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(
        t.path(),
        "in.jsonl",
        &[
            json!({ "n": 1 }),
            json!({ "n": 2 }),
            json!({ "n": 3 }),
            json!({ "n": 4 }),
        ],
    );
    let p = pipeline(
        t.path(),
        "source: { type: file, path: in.jsonl }\n\
         transforms:\n\
         \x20 - { name: plain, script: 'record.a = 1; record' }\n\
         \x20 - { name: semicolon, script: 'record.b = 2; record;' }\n\
         \x20 - { name: early, script: 'if record.n == 2 { return #{ n: 2, early: true }; } record' }\n\
         \x20 - { name: shadow, script: 'if record.n != 3 { return record; } let record = #{ n: 3, shadowed: true }; record' }\n\
         \x20 - { name: constant, script: 'if record.n != 4 { return record; } const record = #{ n: 4, tier: \"big\" }; record' }\n\
         \x20 - { name: after, script: 'record.seen = true; record' }\n\
         routes:\n\
         \x20 - { when: 'record.tier == \"big\"', to: [big] }\n\
         \x20 - { when: 'record.n > 1 && record.tier != \"big\"', to: [rest] }\n\
         sinks:\n\
         \x20 big: { type: file, path: out/big.jsonl }\n\
         \x20 rest: { type: file, path: out/rest.jsonl }\n\
         dlq: { type: file, path: out/dlq.jsonl }\n\
         unrouted: drop\n",
    );
    let (code, s, err) = run_json(&p, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["total"], 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out/big.jsonl")),
        vec![json!({ "n": 4, "tier": "big", "seen": true })]
    );
    assert_eq!(
        read_jsonl(&t.path().join("out/rest.jsonl")),
        vec![
            json!({ "n": 2, "early": true, "seen": true }),
            json!({ "n": 3, "shadowed": true, "seen": true }),
        ]
    );
    assert_eq!(
        s["unrouted"], 1,
        "record 1: {{n, a, b, seen}} matches no route"
    );
}
