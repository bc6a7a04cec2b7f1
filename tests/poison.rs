//! The poison corpus: every kind of bad record in `tests/poison/cases.jsonl`
//! goes through `sluice run` and through Lambda mode as Kinesis, SQS and
//! Kafka events, and must end exactly where the corpus says: delivered to
//! `all` (and to `big` when its total is over 1000), filtered, or
//! dead-lettered at the stage it names. The summary balances, nothing is
//! reported failed, and no record is lost. A second part covers what only
//! Lambda events can hold: malformed event records, KPL aggregates and
//! DynamoDB images with every attribute type.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::lambda::Lambda;
use common::{read_jsonl, root};
use serde_json::{Value, json};

struct Case {
    kind: String,
    data: Vec<u8>,
    /// Where it ends under `sluice run`.
    run: String,
    /// Where it ends in Lambda mode.
    lambda: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("tests/poison/cases.jsonl")).unwrap();
    let cases: Vec<Case> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let data = match (&v["data"], &v["data_base64"]) {
                (Value::String(s), _) => s.as_bytes().to_vec(),
                (_, Value::String(b)) => {
                    base64::engine::general_purpose::STANDARD.decode(b).unwrap()
                }
                _ => panic!("a case without data: {l}"),
            };
            let run = v["expect"].as_str().unwrap().to_owned();
            Case {
                kind: v["kind"].as_str().unwrap().to_owned(),
                data,
                lambda: v["lambda"].as_str().unwrap_or(&run).to_owned(),
                run,
            }
        })
        .collect();
    assert!(cases.len() >= 60, "the corpus has {} kinds", cases.len());
    cases
}

/// The corpus pipeline (`tests/poison/body.yaml`) over `source`. With
/// `tag`, a first transform sets `record.idx` to that expression (the
/// case's index, from `meta`), so delivered records can be told apart.
fn pipeline(dir: &Path, source: &str, tag: Option<&str>) -> PathBuf {
    let mut body = std::fs::read_to_string(root().join("tests/poison/body.yaml")).unwrap();
    if let Some(index) = tag {
        let first = format!(
            "transforms:\n  - name: tag\n    script: |\n      \
             if type_of(record) == \"map\" {{ record.idx = {index}; }}\n      record\n"
        );
        body = body.replacen("transforms:\n", &first, 1);
    }
    common::write_pipeline(dir, "poison", &format!("{source}\n{body}"))
}

/// Where each record ended, by case index: `all`, `big`, `filtered` or
/// `dlq:STAGE`; `index` tells a record's case from its envelope's `source`.
fn outcomes(dir: &Path, cases: usize, index: impl Fn(&Value) -> usize) -> BTreeMap<usize, String> {
    let read = |name: &str| {
        let path = dir.join("out").join(name);
        if path.exists() {
            read_jsonl(&path)
        } else {
            Vec::new()
        }
    };
    let mut out = BTreeMap::new();
    for e in read("dlq.jsonl") {
        let i = index(&e["source"]);
        let stage = e["stage"].as_str().unwrap();
        assert!(
            out.insert(i, format!("dlq:{stage}")).is_none(),
            "case {i} dead-lettered twice"
        );
        assert!(e["error"].as_str().unwrap().len() <= 1100, "{e}");
    }
    // Delivered records carry the case index, added by the harness as `idx`.
    let big: Vec<usize> = read("big.jsonl")
        .iter()
        .map(|r| r["idx"].as_u64().unwrap() as usize)
        .collect();
    for r in read("all.jsonl") {
        let i = r["idx"].as_u64().unwrap() as usize;
        let to = if big.contains(&i) { "big" } else { "all" };
        assert!(out.insert(i, to.to_owned()).is_none(), "case {i} twice");
    }
    for i in 0..cases {
        out.entry(i).or_insert_with(|| "filtered".to_owned());
    }
    out
}

fn expected(cases: &[Case], lambda: bool) -> BTreeMap<usize, String> {
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                i,
                if lambda {
                    c.lambda.clone()
                } else {
                    c.run.clone()
                },
            )
        })
        .collect()
}

/// Compares outcomes case by case, naming the kinds that differ.
fn assert_outcomes(cases: &[Case], got: &BTreeMap<usize, String>, want: &BTreeMap<usize, String>) {
    let wrong: Vec<String> = want
        .iter()
        .filter(|(i, w)| got.get(i) != Some(w))
        .map(|(i, w)| {
            format!(
                "#{i} {}: expected {w}, got {:?}",
                cases[*i].kind,
                got.get(i)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_kind_of_bad_record_ends_where_the_corpus_says_under_sluice_run() {
    let cases = cases();
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(
        t.path(),
        "source: { type: file, path: in.jsonl, max_record_bytes: 4096 }",
        Some("meta.line - 1"),
    );
    let mut input = Vec::new();
    for c in &cases {
        assert!(
            !c.data.contains(&b'\n'),
            "{}: a line holds no line break",
            c.kind
        );
        input.extend_from_slice(&c.data);
        input.push(b'\n');
    }
    std::fs::write(t.path().join("in.jsonl"), input).unwrap();
    let o = common::run(
        common::sluice()
            .arg("run")
            .arg(&p)
            .args(["--summary-format", "json"]),
    );
    let (code, s, err) = common::outcome(&o);
    assert_eq!(code, 0, "{err}");
    let got = outcomes(t.path(), cases.len(), |src| {
        src["line"].as_u64().unwrap() as usize - 1
    });
    let want = expected(&cases, false);
    assert_outcomes(&cases, &got, &want);
    let count = |prefix: &str| want.values().filter(|w| w.starts_with(prefix)).count();
    assert_eq!(s["records_in"], cases.len());
    assert_eq!(s["delivered"], count("all") + count("big"));
    assert_eq!(s["sinks"]["big"], count("big"));
    assert_eq!(s["filtered"], count("filtered"));
    assert_eq!(s["dead_lettered"]["total"], count("dlq:"));
    for stage in ["decode", "parse", "validate", "transform", "route", "sink"] {
        assert_eq!(
            s["dead_lettered"][stage],
            count(&format!("dlq:{stage}")),
            "{stage}"
        );
    }
    assert_eq!((&s["failed"], &s["balanced"]), (&json!(0), &json!(true)));
}

fn run_lambda(
    cases: &[Case],
    source: &str,
    index_script: &str,
    event: Value,
    index: impl Fn(&Value) -> usize,
    included: &[usize],
) {
    let t = tempfile::tempdir().unwrap();
    let lambda = Lambda::start(&pipeline(t.path(), source, Some(index_script)), &[]);
    let response = lambda.invoke(&event).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "{}",
        lambda.stderr()
    );
    let got = outcomes(t.path(), cases.len(), index);
    let want: BTreeMap<usize, String> = expected(cases, true)
        .into_iter()
        .filter(|(i, _)| included.contains(i))
        .collect();
    let got: BTreeMap<usize, String> = got
        .into_iter()
        .filter(|(i, _)| included.contains(i))
        .collect();
    assert_outcomes(cases, &got, &want);
    // The totals balance: every record in is delivered, filtered or dead-lettered.
    let totals = lambda
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|m| m.get("RecordsIn").is_some())
        .unwrap();
    let n = |k: &str| totals[k].as_u64().unwrap_or(0);
    assert_eq!(n("RecordsIn"), included.len() as u64, "{totals}");
    assert_eq!(
        n("Delivered") + n("Filtered") + n("DeadLettered") + n("Unrouted"),
        n("RecordsIn"),
        "{totals}"
    );
    assert_eq!(n("Failed"), 0);
}

/// The DLQ's envelopes as (sequence number, stage), in order.
fn dead_letters(dir: &Path) -> Vec<(String, String)> {
    read_jsonl(&dir.join("out/dlq.jsonl"))
        .iter()
        .map(|e| {
            (
                e["source"]["sequence_number"].as_str().unwrap().to_owned(),
                e["stage"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn every_kind_of_bad_record_ends_where_the_corpus_says_in_lambda_kinesis() {
    let cases = cases();
    let records: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            common::events::kinesis_record(
                "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
                "shardId-000000000000",
                &format!("{}", 1000 + i),
                "k",
                &b64(&c.data),
                1_764_000_000.25,
            )
        })
        .collect();
    let all: Vec<usize> = (0..cases.len()).collect();
    run_lambda(
        &cases,
        "source: { type: kinesis, stream: orders }",
        "parse_int(meta.sequence_number) - 1000",
        json!({ "Records": records }),
        |src| {
            src["sequence_number"]
                .as_str()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                - 1000
        },
        &all,
    );
}

#[test]
fn every_kind_of_bad_record_ends_where_the_corpus_says_in_lambda_sqs() {
    let cases = cases();
    // An SQS body is text: the corpus's byte strings that are not UTF-8 cannot be sent.
    let text: Vec<usize> = (0..cases.len())
        .filter(|&i| std::str::from_utf8(&cases[i].data).is_ok())
        .collect();
    let records: Vec<Value> = text
        .iter()
        .map(|&i| {
            common::events::sqs_record(
                "arn:aws:sqs:us-east-1:123456789012:orders",
                &format!("m{i}"),
                &format!("h{i}"),
                &String::from_utf8(cases[i].data.clone()).unwrap(),
                json!({ "ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000" }),
                json!({}),
            )
        })
        .collect();
    run_lambda(
        &cases,
        "source: { type: sqs, queue: orders }",
        "parse_int(meta.message_id.sub_string(1))",
        json!({ "Records": records }),
        |src| src["message_id"].as_str().unwrap()[1..].parse().unwrap(),
        &text,
    );
}

#[test]
fn every_kind_of_bad_record_ends_where_the_corpus_says_in_lambda_kafka() {
    let cases = cases();
    let records: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            common::events::kafka_record(
                "orders",
                0,
                i as u64,
                1_764_000_000_250,
                None,
                &c.data,
                json!([]),
            )
        })
        .collect();
    let all: Vec<usize> = (0..cases.len()).collect();
    run_lambda(
        &cases,
        "source: { type: kafka, topic: orders, cluster_arn: 'arn:aws:kafka:us-east-1:123456789012:cluster/c/1' }",
        "meta.offset",
        common::events::kafka_event("arn:aws:kafka:us-east-1:123456789012:cluster/c/1", records),
        |src| src["offset"].as_u64().unwrap() as usize,
        &all,
    );
}

/// A KPL aggregate of `records`, all under one partition key.
fn aggregate(records: &[&[u8]]) -> Vec<u8> {
    let keyed: Vec<(&str, &[u8])> = records.iter().map(|r| ("pk", *r)).collect();
    common::kpl::aggregate(&keyed)
}

/// What only a Lambda event holds: event records that cannot be decoded,
/// KPL aggregates (good, empty, with a wrong checksum), and DynamoDB images
/// with every attribute type, each ending in one place.
#[test]
fn malformed_event_records_aggregates_and_every_attribute_type_end_in_one_place() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "source: { type: kinesis, stream: orders }", None);
    let lambda = Lambda::start(&p, &[]);
    let order = |id: &str| format!("{{\"id\":\"{id}\",\"qty\":1,\"price\":1}}");
    let mut bad_checksum = aggregate(&[order("c1").as_bytes()]);
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0xff;
    let datas: Vec<Option<String>> = vec![
        Some(b64(order("k0").as_bytes())),
        Some("*** not base64 ***".into()),
        None,
        Some(b64(&aggregate(&[
            order("k3a").as_bytes(),
            order("k3b").as_bytes(),
        ]))),
        Some(b64(&aggregate(&[]))),
        Some(b64(&bad_checksum)),
        Some(b64(&aggregate(&[order("k6").as_bytes(), b"{broken"]))),
    ];
    let records: Vec<Value> = datas
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut r = common::events::kinesis_record(
                "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
                "shardId-000000000000",
                &format!("{}", 100 + i),
                "k",
                d.as_deref().unwrap_or_default(),
                1_764_000_000.25,
            );
            if d.is_none() {
                r["kinesis"].as_object_mut().unwrap().remove("data");
            }
            r
        })
        .collect();
    let response = lambda.invoke(&json!({ "Records": records })).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "{}",
        lambda.stderr()
    );
    let ids: Vec<String> = read_jsonl(&t.path().join("out/all.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["k0", "k3a", "k3b", "k6"]);
    let dlq = dead_letters(t.path());
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        dlq,
        pairs(&[
            ("101", "decode"),
            ("102", "decode"),
            ("104", "decode"),
            ("105", "parse"),
            ("106", "parse"),
        ])
    );
}

#[test]
fn dynamodb_images_of_every_attribute_type_become_plain_json() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pipeline.yaml");
    common::write_pipeline_file(
        &p,
        "ddb",
        "source: { type: dynamodb_streams, table: t }\n\
         routes: [{ to: [all] }]\n\
         sinks:\n  all: { type: file, path: out/all.jsonl, mode: append }\n\
         dlq: { type: file, path: out/dlq.jsonl, mode: append }\n",
    );
    let lambda = Lambda::start(&p, &[]);
    let record = |seq: &str, image: Value| {
        common::events::dynamodb_record(
            "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026",
            &format!("e{seq}"),
            "INSERT",
            json!({ "Keys": { "id": { "S": seq } }, "NewImage": image,
                    "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_IMAGE",
                    "ApproximateCreationDateTime": 1_764_000_000.0 }),
        )
    };
    let every = json!({
        "s": { "S": "text" }, "n": { "N": "12.5" }, "i": { "N": "-7" }, "b": { "B": "AAE=" },
        "t": { "BOOL": true }, "z": { "NULL": true }, "ss": { "SS": ["a", "b"] },
        "ns": { "NS": ["1", "2.5"] }, "bs": { "BS": ["AA=="] },
        "l": { "L": [{ "S": "x" }, { "N": "1" }, { "M": { "deep": { "BOOL": false } } }] },
        "m": { "M": { "k": { "S": "v" }, "e": { "L": [] } } }
    });
    let event = json!({ "Records": [
        record("1", every),
        record("2", json!({ "id": { "Q": "unknown type" } })),
        record("3", json!({ "id": { "B": "*** not base64 ***" } })),
        record("4", json!({ "id": { "N": "not a number" } })),
    ] });
    let response = lambda.invoke(&event).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "{}",
        lambda.stderr()
    );
    let all = read_jsonl(&t.path().join("out/all.jsonl"));
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all[0]["NewImage"],
        json!({
            "s": "text", "n": 12.5, "i": -7, "b": "AAE=", "t": true, "z": null,
            "ss": ["a", "b"], "ns": [1, 2.5], "bs": ["AA=="],
            "l": ["x", 1, { "deep": false }], "m": { "k": "v", "e": [] }
        })
    );
    // A number DynamoDB would not store is kept as its text.
    assert_eq!(all[1]["NewImage"], json!({ "id": "not a number" }));
    let dlq = dead_letters(t.path());
    assert_eq!(
        dlq,
        vec![
            ("2".to_owned(), "decode".to_owned()),
            ("3".to_owned(), "decode".to_owned())
        ]
    );
}
