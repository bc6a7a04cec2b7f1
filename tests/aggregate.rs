//! `aggregate:` end to end under `sluice run`: per-device windows over
//! out-of-order readings, checked against aggregates this test computes
//! itself; late records dead-lettered with the reason; the same output
//! whatever the batch size and the number of workers; `check`'s refusals.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{outcome, read_jsonl, run, sluice};
use serde_json::{Value, json};

const MIN: i64 = 60_000;
/// 2026-11-24T08:00:00Z.
const T0: i64 = 1_795_507_200_000;

fn pipeline(dir: &Path, lateness: &str) -> std::path::PathBuf {
    common::write_pipeline(
        dir,
        "t",
        &format!(
            "source: {{ type: file, path: in.jsonl }}\n\
             aggregate:\n\
             \x20 name: per_device\n\
             \x20 group_by: [device]\n\
             \x20 window: {{ tumbling: 5m }}\n\
             \x20 time: {{ field: ts }}\n\
             \x20 allowed_lateness: {lateness}\n\
             \x20 emit: {{ n: count(), total: sum(v), low: min(v), high: max(v), mean: avg(v) }}\n\
             routes: [{{ from: per_device, to: [out] }}]\n\
             sinks: {{ out: {{ type: file, path: out.jsonl }} }}\n\
             dlq: {{ type: file, path: dlq.jsonl }}\n"
        ),
    )
}

/// `sluice check --mode MODE --format short` of a pipeline.
fn check_in(mode: &str, p: &Path) -> std::process::Output {
    run(sluice()
        .args(["check", "--mode", mode, "--format", "short"])
        .arg(p))
}

fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{}.{:03}Z", &text[..text.len() - 1], ms.rem_euclid(1000))
}

/// Readings of three devices, mostly in time order, some a little late and
/// a few far too late.
fn readings() -> Vec<Value> {
    let mut out = Vec::new();
    let mut seed: u64 = 7;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    for i in 0..600_i64 {
        let device = ["a", "b", "c"][(next() % 3) as usize];
        let base = T0 + i * 3_000;
        // Up to 40 s early; one in fifty 7 minutes behind.
        let skew = if next() % 50 == 0 {
            -7 * MIN
        } else {
            -((next() % 40_000) as i64)
        };
        out.push(
            json!({"device": device, "ts": rfc3339(base + skew), "v": (next() % 1000) as i64}),
        );
    }
    out
}

/// What the aggregate must give, computed here: each record in input order
/// is late when its window ended (plus the lateness) at or before the latest
/// time seen before it; the others are summed into their window.
fn expected(input: &[Value], lateness_ms: i64) -> (Vec<Value>, Vec<usize>) {
    let parse = |s: &str| {
        humantime::parse_rfc3339(s)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let mut windows: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    let mut late = Vec::new();
    let mut seen: Option<i64> = None;
    for (i, r) in input.iter().enumerate() {
        let t = parse(r["ts"].as_str().unwrap());
        let start = t.div_euclid(5 * MIN) * 5 * MIN;
        if seen.is_some_and(|w| start + 5 * MIN + lateness_ms <= w) {
            late.push(i);
            continue;
        }
        windows
            .entry((start, r["device"].as_str().unwrap().to_owned()))
            .or_default()
            .push(r["v"].as_i64().unwrap());
        seen = Some(seen.map_or(t, |w| w.max(t)));
    }
    let out = windows
        .into_iter()
        .map(|((start, device), vs)| {
            let total: i64 = vs.iter().sum();
            json!({
                "device": device,
                "window_start": rfc3339(start),
                "window_end": rfc3339(start + 5 * MIN),
                "n": vs.len(),
                "total": total,
                "low": vs.iter().min(),
                "high": vs.iter().max(),
                "mean": total as f64 / vs.len() as f64,
            })
        })
        .collect();
    (out, late)
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|r| (r["window_start"].to_string(), r["device"].to_string()));
    v
}

#[test]
fn windows_match_aggregates_computed_independently_and_late_records_are_dead_lettered() {
    let input = readings();
    let (want, late) = expected(&input, 30_000);
    assert!(late.len() > 3, "the input has late records: {}", late.len());
    for args in [
        &["--batch-records", "1000", "--workers", "1"][..],
        &["--batch-records", "7", "--workers", "3"][..],
    ] {
        let t = tempfile::tempdir().unwrap();
        common::write_jsonl(t.path(), "in.jsonl", &input);
        let p = pipeline(t.path(), "30s");
        let (code, s, err) = outcome(&run(sluice()
            .arg("run")
            .arg(&p)
            .args(["--summary-format", "json"])
            .args(args)));
        assert_eq!(code, 0, "{err}");
        let got = read_jsonl(&t.path().join("out.jsonl"));
        // Emitted in order of their end, then of their group.
        assert_eq!(got, sorted(got.clone()), "{args:?}");
        assert_eq!(got, want, "{args:?}");
        let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
        let lines: Vec<u64> = dlq
            .iter()
            .map(|e| e["source"]["line"].as_u64().unwrap())
            .collect();
        let want_lines: Vec<u64> = late.iter().map(|i| *i as u64 + 1).collect();
        assert_eq!(lines, want_lines, "{args:?}");
        for e in &dlq {
            assert_eq!(e["stage"], "aggregate");
            assert!(
                e["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("late: its window ended at "),
                "{e}"
            );
        }
        assert_eq!(
            (
                s["records_in"].as_u64(),
                s["aggregated"].as_u64(),
                s["aggregates_out"].as_u64(),
                s["delivered"].as_u64(),
                s["dead_lettered"]["aggregate"].as_u64(),
                s["balanced"].as_bool()
            ),
            (
                Some(600),
                Some(600 - late.len() as u64),
                Some(want.len() as u64),
                Some(want.len() as u64),
                Some(late.len() as u64),
                Some(true)
            ),
            "{s}"
        );
    }
}

#[test]
fn a_record_without_its_time_is_dead_lettered_and_the_end_of_input_closes_every_window() {
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(
        t.path(),
        "in.jsonl",
        &[
            json!({"device": "a", "ts": "2026-11-24T08:01:00Z", "v": 1}),
            json!({"device": "a", "v": 2}),
            json!({"device": "a", "ts": "noon", "v": 3}),
            json!({"device": "b", "ts": 1_795_507_500, "v": "x"}),
            json!({"device": "b", "ts": 1_795_507_500_000_i64, "v": 4}),
        ],
    );
    let p = pipeline(t.path(), "0s");
    let (code, s, err) = outcome(&run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"])));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        [
            json!({"device": "a", "window_start": "2026-11-24T08:00:00.000Z", "window_end": "2026-11-24T08:05:00.000Z",
                   "n": 1, "total": 1, "low": 1, "high": 1, "mean": 1.0}),
            json!({"device": "b", "window_start": "2026-11-24T08:05:00.000Z", "window_end": "2026-11-24T08:10:00.000Z",
                   "n": 1, "total": 4, "low": 4, "high": 4, "mean": 4.0}),
        ]
    );
    let errors: Vec<String> = read_jsonl(&t.path().join("dlq.jsonl"))
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["stage"].as_str().unwrap(),
                e["error"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            "aggregate: the record has no event time: `ts` is missing",
            "aggregate: `ts`: \"noon\" is not an RFC 3339 timestamp",
            "aggregate: `mean`: \"x\" is not a number",
        ]
    );
    assert_eq!(s["balanced"], true, "{s}");
}

#[test]
fn check_refuses_what_aggregate_cannot_do_yet_and_names_bad_reducers() {
    let t = tempfile::tempdir().unwrap();
    common::write_pipeline(
        t.path(),
        "t",
        "source: { type: sqs, queue: q }\n\
         aggregate:\n\
         \x20 name: w\n\
         \x20 window: { tumbling: 1m }\n\
         \x20 time: processing\n\
         \x20 emit:\n\
         \x20   n: count(x)\n\
         \x20   m: median(v)\n\
         \x20   p: { init: '[', add: 'state + [rec.v]' }\n\
         routes: [{ to: [out] }, { from: other, to: [out] }]\n\
         sinks: { out: { type: stdout } }\n\
         dlq: { type: stdout }\n",
    );
    let o = run(sluice()
        .args(["check", "--format", "short", "pipeline.yaml"])
        .current_dir(t.path()));
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<String> = common::stderr(&o)
        .lines()
        .filter(|l| l.contains("error["))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "pipeline.yaml:4:1: error[unsupported-mode]: `aggregate` runs with a `file`, `stdin`, `kinesis` or `dynamodb_streams` source, not with `sqs`: its records are in no order to keep windows by (and in Lambda, its event source mapping has no tumbling windows)",
            "pipeline.yaml:5:9: error[invalid-value]: no route takes the records of aggregate `w`",
            "pipeline.yaml:9:8: error[invalid-value]: `count()` takes no field: `count(x)`",
            "pipeline.yaml:10:8: error[invalid-value]: `median` is not a reducer: count, sum, min, max, avg, first, last, count_distinct",
            "pipeline.yaml:11:17: error[script-syntax]: reducer `p` (init): `[` is never closed: add the `]` that closes it",
            "pipeline.yaml:11:36: error[script-syntax]: reducer `p` (add): Undefined variable: rec",
            "pipeline.yaml:12:33: error[unknown-reference]: route #2 takes the records of aggregate `other`, which is not defined",
        ]
    );
}

/// Over a Kinesis stream in Lambda, the aggregate's window is the event
/// source mapping's: the template sets it, at most 15 minutes there
/// (`check --mode lambda` and the template say so); the daemon keeps windows
/// of any length.
#[test]
fn in_lambda_the_window_is_the_mappings_and_at_most_15_minutes() {
    let t = tempfile::tempdir().unwrap();
    let p = common::write_pipeline(
        t.path(),
        "t",
        "source: { type: kinesis, stream: s }\n\
         aggregate: { name: w, window: { tumbling: 2m }, time: processing, emit: { n: count() } }\n\
         routes: [{ from: w, to: [out] }]\n\
         sinks: { out: { type: sqs, queue: q } }\n\
         dlq: { type: sqs, queue: d }\n",
    );
    let o = run(sluice().args(["deploy", "template"]).arg(&p));
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let template: Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    let events = &template["Resources"]["Function"]["Properties"]["Events"];
    let event = events.as_object().unwrap().values().next().unwrap();
    assert_eq!(
        event["Properties"]["TumblingWindowInSeconds"], 120,
        "{event}"
    );
    let o = run(sluice().args(["check", "--mode", "lambda"]).arg(&p));
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    // The daemon keeps the windows itself.
    let o = check_in("daemon", &p);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    // An event-time field does not place records in Lambda: check warns.
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("time: processing", "time: { field: ts }"),
    )
    .unwrap();
    let o = check_in("lambda", &p);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        common::stderr(&o).contains("warning[unsupported-mode]: in Lambda, the aggregate's windows are the event source mapping's"),
        "{}",
        common::stderr(&o)
    );
    // The mapping's window is at most 15 minutes.
    std::fs::write(
        &p,
        std::fs::read_to_string(&p).unwrap().replace("2m", "20m"),
    )
    .unwrap();
    let o = check_in("lambda", &p);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("pipeline.yaml:4:43: error[unsupported-mode]: in Lambda, an aggregate's window is the event source mapping's, which is at most 15 minutes (`TumblingWindowInSeconds` ≤ 900)"),
        "{}",
        common::stderr(&o)
    );
    let o = run(sluice().args(["deploy", "template"]).arg(&p));
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("at most 15 minutes"));
    // `sluice daemon` keeps windows of any length.
    let o = check_in("daemon", &p);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
}

/// A late record that a transform made out of a fan-out is dead-lettered
/// with its place in the fan-out, so that a redrive replays it alone.
#[test]
fn a_late_fanned_out_record_names_its_place_in_the_fan_out() {
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(
        t.path(),
        "in.jsonl",
        &[
            json!({"order_id": "o-1", "ts": "2026-12-01T10:01:30Z", "items": [{"sku": "A", "qty": 1, "price": 1.0}]}),
            json!({"order_id": "o-2", "ts": "2026-12-01T10:00:10Z",
                   "items": [{"sku": "A", "qty": 1, "price": 1.0}, {"sku": "B", "qty": 2, "price": 2.0}]}),
        ],
    );
    let o = run(sluice()
        .arg("run")
        .arg(common::root().join("pipelines/product-sales/pipeline.yaml"))
        .args(["--summary-format", "json"])
        .env("ORDERS_INPUT", t.path().join("in.jsonl"))
        .env("OUT_DIR", t.path().join("out")));
    let (code, s, err) = outcome(&o);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["dead_lettered"]["aggregate"], 2, "{s}");
    let cuts: Vec<Value> = read_jsonl(&t.path().join("out/dlq.jsonl"))
        .iter()
        .map(|e| e["fan_out"].clone())
        .collect();
    assert_eq!(
        cuts,
        [
            json!([{"transform": "items", "index": 0, "of": 2}]),
            json!([{"transform": "items", "index": 1, "of": 2}]),
        ]
    );
}

/// Each window's record has an identity of its own, derived from its
/// aggregate, group and window: S3 objects named by their first record
/// (`{part}`) never overwrite one another, and a second run over the same
/// input writes the same objects again instead of new ones.
#[test]
fn s3_objects_of_aggregates_are_named_by_their_windows_and_written_again_in_place() {
    let moto = common::moto::Moto::start();
    let rt = common::aws::rt();
    let s3 = common::aws::s3_client(&rt.block_on(moto.sdk_config()));
    rt.block_on(common::aws::create_bucket(&s3, "sums"));
    let t = tempfile::tempdir().unwrap();
    let input = readings();
    let (want, _) = expected(&input, 30_000);
    common::write_jsonl(t.path(), "in.jsonl", &input);
    let p = pipeline(t.path(), "30s");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p).unwrap().replace(
            "{ type: file, path: out.jsonl }",
            "{ type: s3, bucket: sums, key: \"w/{part}.jsonl\", max_records: 2 }",
        ),
    )
    .unwrap();
    let mut first_keys = None;
    for round in 0..2 {
        let (code, s, err) = outcome(&run(sluice()
            .arg("run")
            .arg(&p)
            .args(["--summary-format", "json", "--batch-records", "50"])
            .envs(moto.env())));
        assert_eq!(code, 0, "{err}");
        assert_eq!(s["aggregates_out"].as_u64(), Some(want.len() as u64), "{s}");
        let objects = rt.block_on(common::aws::objects(&s3, "sums"));
        let got: Vec<Value> = objects
            .iter()
            .flat_map(|(_, body)| common::aws::jsonl(body))
            .collect();
        assert_eq!(sorted(got), want, "round {round}");
        let keys: Vec<String> = objects.into_iter().map(|(k, _)| k).collect();
        assert!(keys.len() >= want.len().div_ceil(2), "{keys:?}");
        match &first_keys {
            None => first_keys = Some(keys),
            Some(first) => assert_eq!(&keys, first, "the second run wrote new objects"),
        }
    }
}

/// A Rhai reducer (`init`, `add`, `finish`) over the same readings, checked
/// against what this test computes; a record its `add` throws on is
/// dead-lettered with the reason and left out of its window.
#[test]
fn a_script_reducer_gives_what_the_test_computes_and_dead_letters_what_it_throws_on() {
    let input = readings();
    let throws = |r: &Value| r["v"].as_i64().unwrap() % 97 == 0;
    let kept: Vec<Value> = input.iter().filter(|r| !throws(r)).cloned().collect();
    let (want, _) = expected(&kept, 30_000);
    let want: Vec<Value> = want
        .iter()
        .map(|w| {
            json!({
                "device": w["device"], "window_start": w["window_start"], "window_end": w["window_end"],
                "n": w["n"], "spread": w["high"].as_i64().unwrap() - w["low"].as_i64().unwrap(),
            })
        })
        .collect();
    // Which lines are dead-lettered, and why: lateness is told first, and
    // a record thrown on does not move the latest time seen.
    let mut seen: Option<i64> = None;
    let mut want_dlq: Vec<(u64, String)> = Vec::new();
    for (i, r) in input.iter().enumerate() {
        let t = humantime::parse_rfc3339(r["ts"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let end = t.div_euclid(5 * MIN) * 5 * MIN + 5 * MIN;
        if seen.is_some_and(|w| end + 30_000 <= w) {
            want_dlq.push((i as u64 + 1, "late".into()));
        } else if throws(r) {
            want_dlq.push((
                i as u64 + 1,
                format!(
                    "`spread` (add): script threw: v is a multiple of 97: {} (script line 1, column 25)",
                    r["v"]
                ),
            ));
        } else {
            seen = Some(seen.map_or(t, |w| w.max(t)));
        }
    }
    assert!(want_dlq.iter().any(|(_, why)| why != "late"));
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(t.path(), "in.jsonl", &input);
    let p = pipeline(t.path(), "30s");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p).unwrap().replace(
            "emit: { n: count(), total: sum(v), low: min(v), high: max(v), mean: avg(v) }",
            "emit:\n\
             \x20   n: count()\n\
             \x20   spread:\n\
             \x20     init: '#{ lo: (), hi: () }'\n\
             \x20     add: |\n\
             \x20       if record.v % 97 == 0 { throw \"v is a multiple of 97: \" + record.v }\n\
             \x20       if state.lo == () || record.v < state.lo { state.lo = record.v }\n\
             \x20       if state.hi == () || record.v > state.hi { state.hi = record.v }\n\
             \x20     finish: state.hi - state.lo",
        ),
    )
    .unwrap();
    let (code, s, err) = outcome(&run(sluice().arg("run").arg(&p).args([
        "--summary-format",
        "json",
        "--batch-records",
        "13",
        "--workers",
        "2",
    ])));
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), want);
    let dlq: Vec<(u64, String)> = read_jsonl(&t.path().join("dlq.jsonl"))
        .iter()
        .map(|e| {
            assert_eq!(e["stage"], "aggregate");
            let why = e["error"].as_str().unwrap();
            let why = if why.starts_with("late: ") {
                "late"
            } else {
                why
            };
            (e["source"]["line"].as_u64().unwrap(), why.to_owned())
        })
        .collect();
    assert_eq!(dlq, want_dlq);
    assert_eq!(
        (
            s["aggregates_out"].as_u64(),
            s["dead_lettered"]["aggregate"].as_u64(),
            s["balanced"].as_bool()
        ),
        (
            Some(want.len() as u64),
            Some(want_dlq.len() as u64),
            Some(true)
        ),
        "{s}"
    );
}

/// The windows `expected` gives that the latest time seen has closed, and
/// that time: what a stream, which does not end, emits.
fn closed_by_now(input: &[Value], lateness_ms: i64) -> (Vec<Value>, Vec<usize>) {
    let (all, late) = expected(input, lateness_ms);
    let ms = |s: &str| {
        humantime::parse_rfc3339(s)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let seen = input
        .iter()
        .enumerate()
        .filter(|(i, _)| !late.contains(i))
        .map(|(_, r)| ms(r["ts"].as_str().unwrap()))
        .max()
        .unwrap();
    let closed = all
        .into_iter()
        .filter(|w| ms(w["window_end"].as_str().unwrap()) + lateness_ms <= seen)
        .collect();
    (closed, late)
}

/// Over a Kinesis stream under `sluice run`: a window is emitted once the
/// shard's records pass it; a run that stops does not emit its open
/// windows, and does not acknowledge their records, which the next run
/// reads again and computes whole. The records of closed windows read again
/// with them are not counted again: each window is emitted once, with the
/// values this test computes, and each late record dead-lettered once.
#[test]
fn over_a_stream_open_windows_are_computed_again_after_a_stop_and_each_is_emitted_once() {
    let moto = common::moto::Moto::start();
    let rt = common::aws::rt();
    let conf = rt.block_on(moto.sdk_config());
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    rt.block_on(common::aws::create_stream(&kinesis, "readings", 1));
    let input = readings();
    let put = |part: &[Value]| {
        rt.block_on(common::aws::put_records(
            &kinesis,
            "readings",
            part.iter()
                .map(|r| (r["device"].as_str().unwrap().to_owned(), r.to_string())),
        ))
    };
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "30s");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace(
                "{ type: file, path: in.jsonl }",
                "{ type: kinesis, stream: readings, start_position: trim_horizon, checkpoint_table: cp, poll_interval: 100ms }",
            )
            .replace("path: out.jsonl }", "path: out.jsonl, mode: append }")
            .replace("path: dlq.jsonl }", "path: dlq.jsonl, mode: append }")
            .replace(
                "routes:",
                "\x20 transforms: [{ name: shard, script: 'record.shard = meta.shard; record' }]\nroutes:",
            ),
    )
    .unwrap();
    // Each window's record names its shard (the stream has one).
    let with_shard = |windows: Vec<Value>| -> Vec<Value> {
        windows
            .into_iter()
            .map(|mut w| {
                w["shard"] = json!("shardId-000000000000");
                w
            })
            .collect()
    };
    let run_until_idle = || {
        outcome(&run(sluice()
            .arg("run")
            .arg(&p)
            .args(["--summary-format", "json", "--stop-when-idle", "1s"])
            .args(["--batch-records", "7"])
            .envs(moto.env())))
    };
    put(&input[..300]);
    let (code, s, err) = run_until_idle();
    assert_eq!(code, 0, "{err}");
    let (want, _) = closed_by_now(&input[..300], 30_000);
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), with_shard(want));
    assert!(
        err.contains("windows were open when the run stopped: they are not emitted"),
        "{err}"
    );
    assert_eq!(s["balanced"], true, "{s}");
    // The checkpoint holds where the windows were.
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let items = rt.block_on(common::aws::items(&ddb, "cp", "shard_key"));
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0]["window_watermark_ms"].is_number(), "{items:?}");
    assert!(items[0]["window_through"].is_string(), "{items:?}");

    put(&input[300..]);
    let (code, s, err) = run_until_idle();
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["balanced"], true, "{s}");
    let (want, late) = closed_by_now(&input, 30_000);
    assert!(want.len() > 10);
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), with_shard(want));
    let dlq: Vec<Value> = read_jsonl(&t.path().join("dlq.jsonl"))
        .iter()
        .map(|e| {
            assert_eq!(e["stage"], "aggregate", "{e}");
            serde_json::from_str(e["data"].as_str().unwrap()).unwrap()
        })
        .collect();
    // Each late record is dead-lettered; one whose batch was read again
    // after the stop (its window's records held the checkpoint back) is
    // dead-lettered again, as a record routed there is delivered again.
    let want_late: Vec<Value> = late.iter().map(|&i| input[i].clone()).collect();
    let mut once: Vec<Value> = Vec::new();
    for e in &dlq {
        if !once.contains(e) {
            once.push(e.clone());
        }
    }
    assert_eq!(once, want_late);
    assert!(dlq.len() < want_late.len() * 2, "{}", dlq.len());
}

/// `sluice dlq redrive` of an aggregate pipeline: the windows were emitted
/// once, so a redriven record does not make a window of its own (which,
/// with the same identity, would overwrite the whole window's record in S3
/// or DynamoDB): it is dead-lettered again, saying so, and nothing is
/// emitted.
#[test]
fn a_redriven_record_does_not_make_a_window_again() {
    let input = readings();
    let (want, late) = expected(&input, 30_000);
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(t.path(), "in.jsonl", &input);
    let p = pipeline(t.path(), "30s");
    let (code, _, err) = outcome(&run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"])));
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_jsonl(&t.path().join("dlq.jsonl")).len(), late.len());
    let (code, s, err) = outcome(&run(sluice()
        .args(["dlq", "redrive"])
        .arg(&p)
        .args(["--summary-format", "json"])));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        want,
        "nothing emitted"
    );
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), late.len());
    for e in &dlq {
        assert_eq!(e["stage"], "aggregate");
        assert_eq!(
            e["error"],
            "redriven: the aggregate's windows were emitted already, and a record read again does not join its window",
        );
    }
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["aggregates_out"].as_u64(),
            s["balanced"].as_bool()
        ),
        (Some(late.len() as u64), Some(0), Some(true)),
        "{s}"
    );
}

/// A window's record that a sink rejected is in the DLQ with its identity
/// (`source.type: aggregate`). A redrive does not run it through the
/// pipeline as a source record (its schema, transforms and routes are the
/// source's): it is dead-lettered again, intact, saying so.
#[test]
fn a_windows_dead_lettered_record_is_kept_by_a_redrive() {
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(t.path(), "in.jsonl", &[]);
    let p = pipeline(t.path(), "30s");
    let window = "2026-11-24T08:00:00.000Z [\"a\"]";
    let envelope = json!({
        "pipeline": "t", "stage": "sink", "step": "out", "error": "rejected",
        "data": "{\"device\":\"a\",\"n\":2}", "encoding": "utf8",
        "source": {"type": "aggregate", "stream": "per_device", "window": window},
        "attempts": 1, "timestamp": "2026-11-24T08:06:00.000Z",
    });
    std::fs::write(t.path().join("dlq.jsonl"), format!("{envelope}\n")).unwrap();
    let (code, s, err) = outcome(&run(sluice()
        .args(["dlq", "redrive"])
        .arg(&p)
        .args(["--summary-format", "json"])));
    assert_eq!(code, 0, "{err}");
    assert!(
        !t.path().join("out.jsonl").exists() || read_jsonl(&t.path().join("out.jsonl")).is_empty()
    );
    let dlq = read_jsonl(&t.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (&dlq[0]["stage"], &dlq[0]["data"], &dlq[0]["source"]),
        (
            &json!("aggregate"),
            &json!("{\"device\":\"a\",\"n\":2}"),
            &json!({"type": "aggregate", "stream": "per_device", "window": window})
        )
    );
    assert_eq!(
        dlq[0]["error"],
        "a window's record is not run through the pipeline again: deliver it from its dead letter (its `data` is the record)"
    );
    assert_eq!(s["dead_lettered"]["aggregate"], 1, "{s}");
}

/// `aggregate.transforms` run on the aggregate's records before their
/// routes: they change them, filter them (counted as filtered), and a
/// transform's mistake dead-letters the window's record with stage
/// `transform` and its place in the file; `check` checks them as the
/// source's transforms, names unique among both.
#[test]
fn the_aggregates_transforms_run_on_its_records() {
    let input = readings();
    let (want, _) = expected(&input, 30_000);
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(t.path(), "in.jsonl", &input);
    let p = pipeline(t.path(), "30s");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p).unwrap().replace(
            "routes:",
            "\x20 transforms:\n\
             \x20   - name: few\n\
             \x20     script: 'if record.n < 30 { return (); } record'\n\
             \x20   - name: label\n\
             \x20     script: |\n\
             \x20       if record.device == \"c\" && record.window_start.ends_with(\"08:10:00.000Z\") { throw \"no label for c\" }\n\
             \x20       record.label = `${record.device}/${record.n}`;\n\
             \x20       record\n\
             routes:",
        )
        .replace("`${record.device}/${record.n}`", "record.device + \"/\" + record.n"),
    )
    .unwrap();
    let (code, s, err) = outcome(&run(sluice()
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"])));
    assert_eq!(code, 0, "{err}");
    let kept: Vec<&Value> = want
        .iter()
        .filter(|w| w["n"].as_u64().unwrap() >= 30)
        .collect();
    let thrown = |w: &Value| {
        w["device"] == "c"
            && w["window_start"]
                .as_str()
                .unwrap()
                .ends_with("08:10:00.000Z")
    };
    let delivered: Vec<Value> = kept
        .iter()
        .filter(|w| !thrown(w))
        .map(|w| {
            let mut w = (*w).clone();
            w["label"] = json!(format!("{}/{}", w["device"].as_str().unwrap(), w["n"]));
            w
        })
        .collect();
    assert!(
        delivered.len() >= 3 && delivered.len() < want.len(),
        "{}",
        delivered.len()
    );
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), delivered);
    let dlq: Vec<Value> = read_jsonl(&t.path().join("dlq.jsonl"))
        .into_iter()
        .filter(|e| e["stage"] == "transform")
        .collect();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(
        (&dlq[0]["step"], &dlq[0]["source"]["type"], &dlq[0]["error"]),
        (
            &json!("label"),
            &json!("aggregate"),
            &json!(format!(
                "script threw: no label for c (at {}:16:85)",
                p.display()
            ))
        )
    );
    assert_eq!(
        (
            s["filtered"].as_u64(),
            s["aggregates_out"].as_u64(),
            s["balanced"].as_bool()
        ),
        (
            Some((want.len() - kept.len()) as u64),
            Some(want.len() as u64),
            Some(true)
        ),
        "{s}"
    );
    // `check`: a name used twice, a script that does not compile.
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("name: label", "name: few")
            .replace("record\nroutes:", "record +\nroutes:"),
    )
    .unwrap();
    let o = run(sluice().args(["check", "--format", "short"]).arg(&p));
    let lines: Vec<String> = common::stderr(&o)
        .lines()
        .filter(|l| l.contains("error["))
        .map(|l| l.rsplit_once("/").map_or(l, |x| x.1).to_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "pipeline.yaml:14:13: error[duplicate-name]: two transforms are named `few`",
            "pipeline.yaml:19:9: error[script-syntax]: transform `few`: Script is incomplete"
        ]
    );
}

/// `dedup` with `aggregate`: a duplicate is dropped before the aggregate
/// takes it, so it counts in no window; keys are claimed once their
/// windows are written, so a second run over the same input (a DynamoDB
/// store) finds every record a duplicate and emits nothing.
#[test]
fn a_duplicate_counts_in_no_window_and_keys_are_claimed_once_windows_are_written() {
    let moto = common::moto::Moto::start();
    let rt = common::aws::rt();
    let ddb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(common::aws::create_table(&ddb, "seen", "key"));
    let mut input = readings();
    // Every tenth reading is sent again right after itself, or three later.
    let mut with_dups = Vec::new();
    for (i, r) in input.iter_mut().enumerate() {
        r["id"] = json!(i);
        with_dups.push(r.clone());
        if i % 10 == 0 {
            with_dups.push(r.clone());
        }
    }
    for i in (5..with_dups.len()).step_by(37) {
        let again = with_dups[i - 3].clone();
        with_dups.insert(i, again);
    }
    let dups = with_dups.len() - input.len();
    let (want, late) = expected(&input, 30_000);
    let t = tempfile::tempdir().unwrap();
    common::write_jsonl(t.path(), "in.jsonl", &with_dups);
    let p = pipeline(t.path(), "30s");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace(
                "routes:",
                "dedup: { key: id, ttl: 1h, store: { type: dynamodb, table: seen } }\nroutes:",
            )
            .replace("path: out.jsonl }", "path: out.jsonl, mode: append }")
            .replace("path: dlq.jsonl }", "path: dlq.jsonl, mode: append }"),
    )
    .unwrap();
    let run_once = || {
        outcome(&run(sluice()
            .arg("run")
            .arg(&p)
            .args(["--summary-format", "json", "--batch-records", "13"])
            .envs(moto.env())))
    };
    let (code, s, err) = run_once();
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_jsonl(&t.path().join("out.jsonl")), want);
    assert_eq!(read_jsonl(&t.path().join("dlq.jsonl")).len(), late.len());
    assert_eq!(
        (
            s["deduplicated"].as_u64(),
            s["aggregated"].as_u64(),
            s["balanced"].as_bool()
        ),
        (
            Some(dups as u64),
            Some((input.len() - late.len()) as u64),
            Some(true)
        ),
        "{s}"
    );
    // The late records were dead-lettered, not delivered: their keys are
    // not claimed; every other key is.
    let claimed = rt.block_on(common::aws::items(&ddb, "seen", "key")).len();
    assert_eq!(claimed, input.len() - late.len());

    let (code, s, err) = run_once();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        read_jsonl(&t.path().join("out.jsonl")),
        want,
        "nothing emitted again"
    );
    // Every record is a duplicate, but the late ones, whose keys were not
    // claimed: late again (the duplicates move the watermark as the first
    // run's records did), dead-lettered again.
    assert_eq!(
        (
            s["deduplicated"].as_u64(),
            s["dead_lettered"]["aggregate"].as_u64(),
            s["aggregates_out"].as_u64()
        ),
        (
            Some((with_dups.len() - late.len()) as u64),
            Some(late.len() as u64),
            Some(0)
        ),
        "{s}"
    );
}

/// In Lambda, `dedup` with `aggregate` is refused (a key would be claimed
/// before the mapping holds the window's state); the daemon runs it.
#[test]
fn in_lambda_dedup_with_an_aggregate_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = common::write_pipeline(
        t.path(),
        "t",
        "source: { type: kinesis, stream: s }\n\
         aggregate: { name: w, window: { tumbling: 2m }, time: processing, emit: { n: count() } }\n\
         dedup: { key: id, ttl: 1h, store: { type: dynamodb, table: seen } }\n\
         routes: [{ from: w, to: [out] }]\n\
         sinks: { out: { type: sqs, queue: q } }\n\
         dlq: { type: sqs, queue: d }\n",
    );
    let o = check_in("lambda", &p);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("pipeline.yaml:5:8: error[unsupported-mode]: in Lambda, `dedup` and `aggregate` cannot be used together"),
        "{}",
        common::stderr(&o)
    );
    let o = check_in("daemon", &p);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
}
