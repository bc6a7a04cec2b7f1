//! The same input gives the same results in every mode a source runs in.
//!
//! For each source, records are written to `moto_server`, then read in
//! each mode: by `sluice run` and (streams, whose reads leave the records in
//! place) `sluice daemon` from the emulator, and by the Lambda function from
//! an event built from the same records, as the event source mapping builds
//! it (the records are read back with the SDK first). One pipeline copies `meta`
//! into each record and dead-letters a record at each stage; the sink
//! contents and the DLQ envelopes must be equal (but the envelopes'
//! `timestamp`, the time of the batch), and so must what each mode counts,
//! under the names of its report (`sluice run`'s summary, the daemon's
//! Prometheus metrics, Lambda mode's EMF). Records aggregated by the Kinesis
//! Producer Library are split the same way in every mode. A source that one
//! mode reads (a file: `sluice run`; Kafka and Firehose: Lambda mode) gives
//! the same pipeline what every other source gives it.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::aws::{create_queue, create_stream, rt};
use common::daemon::Daemon;
use common::lambda::Lambda;
use common::moto::Moto;
use common::{outcome, read_jsonl, run, sluice};
use serde_json::{Value, json};

/// The pipeline of every parity run, reading `source`.
fn pipeline(dir: &Path, source: &str) -> PathBuf {
    pipeline_of(dir, source, "n", "record.n")
}

/// The parity pipeline for records that must have field `required`, with
/// the number that decides what becomes of them at `n`.
fn pipeline_of(dir: &Path, source: &str, required: &str, n: &str) -> PathBuf {
    common::write_pipeline(
        dir,
        "parity",
        &format!(
            "source: {source}\n\
             schemas: {{ s: {{ type: object, required: [{required}] }} }}\n\
             validate: {{ schema: s }}\n\
             transforms:\n  - name: copy_meta\n    script: |\n      \
             if {n} == 3 {{ throw \"three is refused\"; }}\n      \
             record.meta = #{{ source: meta.source, stream: meta.stream, shard: meta.shard,\n        \
             message_id: meta.message_id, partition_key: meta.partition_key,\n        \
             sequence_number: meta.sequence_number, arrival_time: meta.arrival_time,\n        \
             attributes: meta.attributes }};\n      \
             record\n\
             routes: [{{ to: [out] }}]\n\
             sinks:\n  out: {{ type: file, path: out.jsonl, mode: append }}\n\
             dlq: {{ type: file, path: dlq.jsonl, mode: append }}\n"
        ),
    )
}

/// The records every source is given: two that are delivered, one that is
/// not JSON, one that fails validation, one its transform refuses.
const INPUT: [&str; 5] = [
    r#"{"n":1}"#,
    r#"{"n":2,"color":"red"}"#,
    "{not json",
    r#"{"m":4}"#,
    r#"{"n":3}"#,
];

/// What a run left in `dir`: the sink's records sorted by `n`, and the
/// envelopes without their batch time, sorted by their data, the pipeline's
/// path in their reasons as `pipeline.yaml`.
fn results(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let mut out = read_jsonl(&dir.join("out.jsonl"));
    out.sort_by_key(|r| r["n"].as_i64());
    let mut dlq = read_jsonl(&dir.join("dlq.jsonl"));
    let file = dir.join("pipeline.yaml").display().to_string();
    for e in &mut dlq {
        let stamped = e.as_object_mut().unwrap().remove("timestamp");
        assert!(stamped.is_some_and(|t| t.is_string()), "{e}");
        // Positions in the pipeline name its file, which is another in each mode.
        let error = e["error"].as_str().unwrap().replace(&file, "pipeline.yaml");
        e["error"] = json!(error);
    }
    dlq.sort_by(|a, b| a["data"].as_str().cmp(&b["data"].as_str()));
    (out, dlq)
}

/// What a mode counted, by metric: `sluice run`'s summary, the daemon's
/// Prometheus metrics and Lambda mode's EMF name each count once, and each
/// mode must count the same.
type Counts = std::collections::BTreeMap<&'static str, f64>;

/// A count every mode reports, with its name in each: the summary's JSON
/// pointer, the EMF metric (on the line without `Stage` or `Sink`
/// dimensions, or on the line with the one given) and the Prometheus sample.
struct Counted {
    name: &'static str,
    summary: &'static str,
    emf: &'static str,
    emf_dimension: Option<(&'static str, &'static str)>,
    prometheus: &'static str,
}

/// The counts every mode reports.
const COUNTED: [Counted; 9] = [
    Counted {
        name: "records in",
        summary: "/records_in",
        emf: "RecordsIn",
        emf_dimension: None,
        prometheus: "sluice_records_in_total{pipeline=\"parity\"}",
    },
    Counted {
        name: "delivered",
        summary: "/delivered",
        emf: "Delivered",
        emf_dimension: None,
        prometheus: "sluice_delivered_total{pipeline=\"parity\"}",
    },
    Counted {
        name: "filtered",
        summary: "/filtered",
        emf: "Filtered",
        emf_dimension: None,
        prometheus: "sluice_filtered_total{pipeline=\"parity\"}",
    },
    Counted {
        name: "unrouted",
        summary: "/unrouted",
        emf: "Unrouted",
        emf_dimension: None,
        prometheus: "sluice_unrouted_total{pipeline=\"parity\"}",
    },
    Counted {
        name: "failed",
        summary: "/failed",
        emf: "Failed",
        emf_dimension: None,
        prometheus: "sluice_failed_total{pipeline=\"parity\"}",
    },
    Counted {
        name: "dead-lettered at parse",
        summary: "/dead_lettered/parse",
        emf: "DeadLettered",
        emf_dimension: Some(("Stage", "parse")),
        prometheus: "sluice_dead_lettered_total{pipeline=\"parity\",stage=\"parse\"}",
    },
    Counted {
        name: "dead-lettered at validate",
        summary: "/dead_lettered/validate",
        emf: "DeadLettered",
        emf_dimension: Some(("Stage", "validate")),
        prometheus: "sluice_dead_lettered_total{pipeline=\"parity\",stage=\"validate\"}",
    },
    Counted {
        name: "dead-lettered at transform",
        summary: "/dead_lettered/transform",
        emf: "DeadLettered",
        emf_dimension: Some(("Stage", "transform")),
        prometheus: "sluice_dead_lettered_total{pipeline=\"parity\",stage=\"transform\"}",
    },
    Counted {
        name: "delivered to sink out",
        summary: "/sinks/out",
        emf: "Delivered",
        emf_dimension: Some(("Sink", "out")),
        prometheus: "sluice_sink_delivered_total{pipeline=\"parity\",sink=\"out\"}",
    },
];

/// What every mode must count of `records_in` records, of which `dead` were
/// dead-lettered at parse, validate and transform and the others delivered.
fn expected_counts(records_in: u32, dead: [u32; 3]) -> Counts {
    let delivered = records_in - dead.iter().sum::<u32>();
    let mut c: Counts = COUNTED.iter().map(|m| (m.name, 0.0)).collect();
    c.insert("records in", records_in.into());
    c.insert("delivered", delivered.into());
    c.insert("delivered to sink out", delivered.into());
    c.insert("dead-lettered at parse", dead[0].into());
    c.insert("dead-lettered at validate", dead[1].into());
    c.insert("dead-lettered at transform", dead[2].into());
    c
}

/// The counts of `sluice run`'s summary.
fn summary_counts(summary: &Value) -> Counts {
    COUNTED
        .iter()
        .map(|c| {
            let v = summary.pointer(c.summary).and_then(Value::as_f64);
            let pointer = c.summary;
            (
                c.name,
                v.unwrap_or_else(|| panic!("no {pointer} in {summary}")),
            )
        })
        .collect()
}

/// The counts of Lambda mode's EMF lines. A stage that dead-lettered
/// nothing has no line (as documented): it counts 0.
fn emf_counts(lines: &[Value]) -> Counts {
    COUNTED
        .iter()
        .map(|c| {
            let (name, metric, dimension) = (c.name, c.emf, &c.emf_dimension);
            let line = lines.iter().find(|l| match dimension {
                None => l.get("Stage").is_none() && l.get("Sink").is_none(),
                Some((d, v)) => l[*d] == *v,
            });
            let v = match (line, dimension) {
                (Some(l), _) => l[metric]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{metric} in {l}")),
                (None, Some(("Stage", _))) => 0.0,
                (None, _) => panic!("no EMF line for {name}: {lines:?}"),
            };
            (name, v)
        })
        .collect()
}

/// The counts of the daemon's Prometheus text.
fn prometheus_counts(text: &str) -> Counts {
    COUNTED
        .iter()
        .map(|c| {
            let sample = c.prometheus;
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()));
            (
                c.name,
                v.unwrap_or_else(|| panic!("no `{sample}` in:\n{text}")),
            )
        })
        .collect()
}

/// Runs the pipeline in `dir` with `sluice run` until the source is idle;
/// what it counted.
fn run_once(moto: &Moto, p: &Path) -> Counts {
    let o = run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json", "--stop-when-idle", "3s"])
        .envs(moto.env()));
    let (code, summary, err) = outcome(&o);
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["records_in"], 5, "{summary}");
    summary_counts(&summary)
}

/// Runs the pipeline `p` as `sluice daemon` in `dir` until it delivered
/// `delivered` records and dead-lettered `dead`, and its metrics count
/// them (bounded by a minute, so a daemon that never gets there fails the
/// test), then stops it; what its metrics counted.
fn daemon_once(moto: &Moto, dir: &Path, p: &Path, (delivered, dead): (usize, usize)) -> Counts {
    let mut daemon = Daemon::start(dir, p, "w1", &moto.env(), &[]);
    let lines = |f: &str| std::fs::read_to_string(dir.join(f)).map_or(0, |t| t.lines().count());
    let deadline = Instant::now() + Duration::from_secs(60);
    while (lines("out.jsonl"), lines("dlq.jsonl")) != (delivered, dead) {
        assert!(
            Instant::now() < deadline,
            "the daemon did not get there:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The counts follow the writes: wait until they have all the records.
    let counts = loop {
        let (_, text) = daemon.get("/metrics");
        let records_in = COUNTED[0].prometheus;
        if text.contains(&format!("{records_in} {}\n", delivered + dead)) {
            break prometheus_counts(&text);
        }
        assert!(Instant::now() < deadline, "the daemon's metrics:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    daemon.terminate();
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        daemon.log()
    );
    counts
}

/// Invokes the pipeline in `dir` once in Lambda mode with `event`; every
/// record is delivered or dead-lettered, so nothing is reported failed.
/// What its metrics counted.
fn invoke_once(env: &[(&str, String)], p: &Path, event: &Value) -> Counts {
    let lambda = Lambda::start(p, env);
    let response = lambda.invoke(event).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "{}",
        lambda.stderr()
    );
    emf_counts(&lambda.emf())
}

/// Each mode counted what was `expected`, each under its own names.
fn assert_counts(expected: &Counts, modes: &[(&str, Counts)]) {
    for (mode, counts) in modes {
        assert_eq!(counts, expected, "the counts of {mode}");
    }
}

/// Checks that both modes gave the same, and what they gave: `meta` of the
/// two delivered records and the stage and reason of the three others.
fn assert_same(run_dir: &Path, lambda_dir: &Path, meta_of: impl Fn(&Value) -> Value) {
    let (out, dlq) = results(run_dir);
    let (lambda_out, lambda_dlq) = results(lambda_dir);
    assert_eq!(out, lambda_out, "sink contents: run, then Lambda");
    assert_eq!(dlq, lambda_dlq, "DLQ envelopes: run, then Lambda");
    assert_given(run_dir, meta_of);
}

/// Checks what a mode gave of [`INPUT`] in `dir`: `meta` of the two
/// delivered records and the stage and reason of the three others, as every
/// source gives them.
fn assert_given(dir: &Path, meta_of: impl Fn(&Value) -> Value) {
    let (out, dlq) = results(dir);
    assert_eq!(out.len(), 2, "{out:?}");
    for r in &out {
        assert_eq!(r["meta"], meta_of(r), "{r}");
    }
    let stages: Vec<(&str, &str)> = dlq
        .iter()
        .map(|e| (e["stage"].as_str().unwrap(), e["data"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        vec![
            ("validate", r#"{"m":4}"#),
            ("transform", r#"{"n":3}"#),
            ("parse", "{not json"),
        ]
    );
    let errors: Vec<&str> = dlq.iter().map(|e| e["error"].as_str().unwrap()).collect();
    assert_eq!(
        errors,
        vec![
            "\"n\" is a required property",
            "script threw: three is refused (at pipeline.yaml:9:26)",
            "invalid JSON: key must be a string at line 1 column 2"
        ]
    );
}

#[test]
fn an_sqs_queue_gives_the_same_records_under_run_and_lambda() {
    sqs_parity("in");
}

#[test]
fn an_sqs_fifo_queue_gives_the_same_records_under_run_and_lambda() {
    sqs_parity("in.fifo");
}

/// Messages of `queue` (FIFO when its name ends in `.fifo`: message groups
/// `a` and `b`), read by `sluice run` and in a Lambda event.
fn sqs_parity(queue: &str) {
    use aws_sdk_sqs::types::{
        MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    };
    let fifo = queue.ends_with(".fifo");
    let moto = Moto::start();
    let rt = rt();
    let sqs = aws_sdk_sqs::Client::new(&rt.block_on(moto.sdk_config()));
    let url = rt.block_on(create_queue(&sqs, queue));
    for (i, body) in INPUT.iter().enumerate() {
        let mut req = sqs.send_message().queue_url(&url).message_body(*body);
        if fifo {
            req = req.message_group_id(if i % 2 == 0 { "a" } else { "b" });
        }
        if i == 1 {
            let text = MessageAttributeValue::builder()
                .data_type("String")
                .string_value("web")
                .build()
                .unwrap();
            let bytes = MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(aws_smithy_types::Blob::new(vec![1, 2, 3]))
                .build()
                .unwrap();
            req = req
                .message_attributes("channel", text)
                .message_attributes("raw", bytes);
        }
        rt.block_on(req.send()).unwrap();
    }
    let arn = rt
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send(),
        )
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();

    // The messages as the event source mapping receives them; visible again at once.
    let mut messages = Vec::new();
    while messages.len() < INPUT.len() {
        let got = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send(),
            )
            .unwrap();
        for m in got.messages() {
            if !messages
                .iter()
                .any(|s: &aws_sdk_sqs::types::Message| s.message_id() == m.message_id())
            {
                messages.push(m.clone());
            }
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({
                            "stringValue": v.string_value(),
                            "binaryValue": v.binary_value().map(|b| b64.encode(b.as_ref())),
                            "stringListValues": [], "binaryListValues": [],
                            "dataType": v.data_type()
                        }),
                    )
                })
                .collect();
            let mut r = common::events::sqs_record(
                &arn,
                m.message_id().unwrap(),
                m.receipt_handle().unwrap(),
                m.body().unwrap(),
                Value::Object(attributes),
                Value::Object(message_attributes),
            );
            r["md5OfBody"] = json!(m.md5_of_body());
            r
        })
        .collect();
    let event = json!({ "Records": records });

    let (run_dir, lambda_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = format!("{{ type: sqs, queue: {queue}, wait_time: 1s }}");
    let run_counts = run_once(&moto, &pipeline(run_dir.path(), &source));
    let lambda_counts = invoke_once(&moto.env(), &pipeline(lambda_dir.path(), &source), &event);
    assert_counts(
        &expected_counts(5, [1, 1, 1]),
        &[("sluice run", run_counts), ("Lambda", lambda_counts)],
    );

    let sent = |n: i64| -> &aws_sdk_sqs::types::Message {
        messages
            .iter()
            .find(|m| serde_json::from_str::<Value>(m.body().unwrap()).is_ok_and(|b| b["n"] == n))
            .unwrap()
    };
    assert_same(run_dir.path(), lambda_dir.path(), |r| {
        let m = sent(r["n"].as_i64().unwrap());
        let millis: i64 = m.attributes().unwrap()[&MessageSystemAttributeName::SentTimestamp]
            .parse()
            .unwrap();
        let arrival = chrono::DateTime::from_timestamp_millis(millis)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let attributes = if r["n"] == 2 {
            json!({ "channel": "web", "raw": "AQID" })
        } else {
            json!({})
        };
        let system = |name: MessageSystemAttributeName| m.attributes().unwrap().get(&name).cloned();
        let (group, seq) = (
            system(MessageSystemAttributeName::MessageGroupId),
            system(MessageSystemAttributeName::SequenceNumber),
        );
        // (moto gives no `SequenceNumber`; AWS does, for FIFO queues.)
        assert_eq!(group.is_some(), fifo);
        json!({ "source": "sqs", "stream": queue, "shard": null, "message_id": m.message_id(),
                "partition_key": group, "sequence_number": seq,
                "arrival_time": arrival, "attributes": attributes })
    });
}

#[test]
fn a_kinesis_stream_gives_the_same_records_under_run_daemon_and_lambda() {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let moto = Moto::start();
    let rt = rt();
    let kinesis = aws_sdk_kinesis::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(create_stream(&kinesis, "orders", 1));
    // The first two records aggregated by the KPL, the others one by one.
    let aggregate = common::kpl::aggregate(&[("k0", INPUT[0]), ("k1", INPUT[1])]);
    let mut puts = vec![("k0".to_owned(), aggregate)];
    puts.extend((2..INPUT.len()).map(|i| (format!("k{i}"), INPUT[i].as_bytes().to_vec())));
    for (key, data) in puts {
        rt.block_on(
            kinesis
                .put_record()
                .stream_name("orders")
                .partition_key(key)
                .data(aws_smithy_types::Blob::new(data))
                .send(),
        )
        .unwrap();
    }
    let arn = rt
        .block_on(
            kinesis
                .describe_stream_summary()
                .stream_name("orders")
                .send(),
        )
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let shard = rt
        .block_on(kinesis.list_shards().stream_name("orders").send())
        .unwrap()
        .shards()[0]
        .shard_id()
        .to_owned();
    let iterator = rt
        .block_on(
            kinesis
                .get_shard_iterator()
                .stream_name("orders")
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send(),
        )
        .unwrap()
        .shard_iterator
        .unwrap();
    let got = rt
        .block_on(kinesis.get_records().shard_iterator(iterator).send())
        .unwrap();
    assert_eq!(got.records().len(), INPUT.len() - 1);
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<Value> = got
        .records()
        .iter()
        .map(|r| {
            let millis = r
                .approximate_arrival_timestamp()
                .unwrap()
                .to_millis()
                .unwrap();
            common::events::kinesis_record(
                &arn,
                &shard,
                r.sequence_number(),
                r.partition_key().unwrap_or_default(),
                &b64.encode(r.data().as_ref()),
                millis as f64 / 1000.0,
            )
        })
        .collect();
    let event = json!({ "Records": records });

    let (run_dir, lambda_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // By ARN: meta.stream is the stream's name all the same.
    let source = format!(
        "{{ type: kinesis, stream: \"{arn}\", start_position: trim_horizon, poll_interval: 100ms }}"
    );
    let run_counts = run_once(&moto, &pipeline(run_dir.path(), &source));
    let lambda_counts = invoke_once(&moto.env(), &pipeline(lambda_dir.path(), &source), &event);
    // The daemon keeps its checkpoints apart from the run's, so it reads the stream again.
    let daemon_dir = tempfile::tempdir().unwrap();
    let daemon_source = source.replace(" }", ", checkpoint_table: daemon-checkpoints }");
    let p = pipeline(daemon_dir.path(), &daemon_source);
    let daemon_counts = daemon_once(&moto, daemon_dir.path(), &p, (2, 3));
    assert_counts(
        &expected_counts(5, [1, 1, 1]),
        &[
            ("sluice run", run_counts),
            ("sluice daemon", daemon_counts),
            ("Lambda", lambda_counts),
        ],
    );
    assert_eq!(
        results(run_dir.path()),
        results(daemon_dir.path()),
        "run, then daemon"
    );

    assert_same(run_dir.path(), lambda_dir.path(), |r| {
        // Both are user records of the first (they share its sequence number).
        let i = if r["n"] == 1 { 0 } else { 1 };
        let sent = &got.records()[0];
        let millis = sent
            .approximate_arrival_timestamp()
            .unwrap()
            .to_millis()
            .unwrap();
        let arrival = chrono::DateTime::from_timestamp_millis(millis)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        json!({ "source": "kinesis", "stream": "orders", "shard": shard, "message_id": null,
                "partition_key": format!("k{i}"), "sequence_number": sent.sequence_number(),
                "arrival_time": arrival, "attributes": {} })
    });
}

/// A DynamoDB attribute value as a Lambda event holds it (`{"S": "…"}`).
fn attribute(v: &aws_sdk_dynamodbstreams::types::AttributeValue) -> Value {
    use aws_sdk_dynamodbstreams::types::AttributeValue as A;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        A::S(s) => json!({ "S": s }),
        A::N(n) => json!({ "N": n }),
        A::B(b) => json!({ "B": b64(b.as_ref()) }),
        A::Bool(b) => json!({ "BOOL": b }),
        A::Null(b) => json!({ "NULL": b }),
        A::Ss(v) => json!({ "SS": v }),
        A::Ns(v) => json!({ "NS": v }),
        A::Bs(v) => json!({ "BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() }),
        A::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        A::M(m) => json!({ "M": image(m) }),
        other => panic!("unexpected {other:?}"),
    }
}

fn image(
    m: &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
}

/// Changes of a table: the same records and envelopes under `sluice run`,
/// `sluice daemon` and Lambda, but `meta.shard`, which a Lambda event does
/// not carry.
#[test]
fn a_dynamodb_table_stream_gives_the_same_records_under_run_daemon_and_lambda() {
    use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType, StreamViewType};
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    use common::aws::{table_request, table_stream};
    let moto = Moto::start();
    let rt = rt();
    let conf = rt.block_on(moto.sdk_config());
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let streams = aws_sdk_dynamodbstreams::Client::new(&conf);
    rt.block_on(
        table_request(&ddb, "orders", "id", ScalarAttributeType::S)
            .stream_specification(table_stream(StreamViewType::NewAndOldImages))
            .send(),
    )
    .unwrap();
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: i64| AttributeValue::N(v.to_string());
    for (id, number, color) in [("1", 1, None), ("2", 2, Some("red")), ("3", 3, None)] {
        let mut put = ddb
            .put_item()
            .table_name("orders")
            .item("id", s(id))
            .item("n", n(number));
        if let Some(c) = color {
            put = put.item("color", s(c));
        }
        rt.block_on(put.send()).unwrap();
    }
    // A change without a new image: refused by the schema.
    rt.block_on(
        ddb.delete_item()
            .table_name("orders")
            .key("id", s("1"))
            .send(),
    )
    .unwrap();

    let arn = rt
        .block_on(ddb.describe_table().table_name("orders").send())
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .unwrap();
    let shard = rt
        .block_on(streams.describe_stream().stream_arn(&arn).send())
        .unwrap()
        .stream_description
        .unwrap()
        .shards()[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let iterator = rt
        .block_on(
            streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send(),
        )
        .unwrap()
        .shard_iterator
        .unwrap();
    let got = rt
        .block_on(streams.get_records().shard_iterator(iterator).send())
        .unwrap();
    assert_eq!(got.records().len(), 4);
    let records: Vec<Value> = got
        .records()
        .iter()
        .map(|r| {
            let d = r.dynamodb().unwrap();
            let mut change = json!({
                "ApproximateCreationDateTime":
                    d.approximate_creation_date_time().unwrap().to_millis().unwrap() as f64 / 1000.0,
                "Keys": image(d.keys().unwrap()),
                "SequenceNumber": d.sequence_number(), "SizeBytes": d.size_bytes(),
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            });
            if let Some(i) = d.new_image() {
                change["NewImage"] = image(i);
            }
            if let Some(i) = d.old_image() {
                change["OldImage"] = image(i);
            }
            common::events::dynamodb_record(
                &arn,
                r.event_id().unwrap(),
                r.event_name().unwrap().as_str(),
                change,
            )
        })
        .collect();
    let event = json!({ "Records": records });

    let (run_dir, lambda_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = "{ type: dynamodb_streams, table: orders, start_position: trim_horizon, poll_interval: 100ms }";
    let p = |dir: &Path| pipeline_of(dir, source, "NewImage", "record.NewImage.n");
    let o = run(sluice()
        .arg("run")
        .arg(p(run_dir.path()))
        .args(["--summary-format", "json", "--stop-when-idle", "3s"])
        .envs(moto.env()));
    let (code, summary, err) = outcome(&o);
    assert_eq!((code, &summary["records_in"]), (0, &json!(4)), "{err}");
    let lambda_counts = invoke_once(&moto.env(), &p(lambda_dir.path()), &event);
    let daemon_dir = tempfile::tempdir().unwrap();
    let daemon_source = source.replace(" }", ", checkpoint_table: daemon-checkpoints }");
    let daemon_pipeline = pipeline_of(
        daemon_dir.path(),
        &daemon_source,
        "NewImage",
        "record.NewImage.n",
    );
    let daemon_counts = daemon_once(&moto, daemon_dir.path(), &daemon_pipeline, (2, 2));
    assert_counts(
        &expected_counts(4, [0, 1, 1]),
        &[
            ("sluice run", summary_counts(&summary)),
            ("sluice daemon", daemon_counts),
            ("Lambda", lambda_counts),
        ],
    );
    assert_eq!(
        results(run_dir.path()),
        results(daemon_dir.path()),
        "run, then daemon"
    );

    let (mut out, mut dlq) = results(run_dir.path());
    for r in &mut out {
        let shard_of = r["meta"]
            .as_object_mut()
            .unwrap()
            .insert("shard".into(), Value::Null);
        assert_eq!(shard_of, Some(json!(shard)), "{r}");
    }
    for e in &mut dlq {
        let shard_of = e["source"].as_object_mut().unwrap().remove("shard");
        assert_eq!(shard_of, Some(json!(shard)), "{e}");
    }
    let (lambda_out, lambda_dlq) = results(lambda_dir.path());
    assert_eq!(out, lambda_out, "sink contents: run, then Lambda");
    assert_eq!(dlq, lambda_dlq, "DLQ envelopes: run, then Lambda");

    let delivered: Vec<(&Value, &Value)> = out
        .iter()
        .map(|r| (&r["NewImage"], &r["meta"]["stream"]))
        .collect();
    assert_eq!(
        delivered,
        vec![
            (&json!({ "id": "1", "n": 1 }), &json!(arn)),
            (&json!({ "id": "2", "n": 2, "color": "red" }), &json!(arn))
        ]
    );
    let stages: Vec<(&str, &str)> = dlq
        .iter()
        .map(|e| (e["stage"].as_str().unwrap(), e["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        vec![
            ("validate", "\"NewImage\" is a required property"),
            (
                "transform",
                "script threw: three is refused (at pipeline.yaml:9:35)"
            )
        ]
    );
}

/// A file, which only `sluice run` reads, gives what every source gives.
#[test]
fn a_file_gives_the_records_envelopes_and_counts_every_source_gives() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("in.jsonl"), INPUT.join("\n") + "\n").unwrap();
    let p = pipeline(t.path(), "{ type: file, path: in.jsonl }");
    let o = run(sluice()
        .current_dir(t.path())
        .arg("run")
        .arg(&p)
        .args(["--summary-format", "json"]));
    let (code, summary, err) = outcome(&o);
    assert_eq!(code, 0, "{err}");
    assert_counts(
        &expected_counts(5, [1, 1, 1]),
        &[("sluice run", summary_counts(&summary))],
    );
    // A file names its records by `meta.file` and `meta.line` instead.
    assert_given(t.path(), |_| {
        json!({ "source": "file", "stream": null, "shard": null, "message_id": null,
                "partition_key": null, "sequence_number": null,
                "arrival_time": null, "attributes": {} })
    });
}

/// A Kafka topic, which only Lambda mode reads, gives what every source gives.
#[test]
fn a_kafka_topic_gives_the_records_envelopes_and_counts_every_source_gives() {
    let t = tempfile::tempdir().unwrap();
    let cluster = "arn:aws:kafka:us-east-1:123456789012:cluster/c/1";
    let p = pipeline(
        t.path(),
        &format!("{{ type: kafka, topic: orders, cluster_arn: '{cluster}' }}"),
    );
    let records = INPUT
        .iter()
        .enumerate()
        .map(|(i, v)| {
            common::events::kafka_record(
                "orders",
                (i % 2) as u32,
                100 + i as u64,
                1_764_000_000_250,
                Some(format!("k{i}").as_bytes()),
                v.as_bytes(),
                json!([{ "channel": [119, 101, 98] }]),
            )
        })
        .collect();
    let event = common::events::kafka_event(cluster, records);
    let counts = invoke_once(&[], &p, &event);
    assert_counts(&expected_counts(5, [1, 1, 1]), &[("Lambda", counts)]);
    // Kafka names its records by `meta.topic`, `meta.partition` and `meta.offset` too.
    assert_given(t.path(), |r| {
        let i = if r["n"] == 1 { 0 } else { 1 };
        json!({ "source": "kafka", "stream": "orders", "shard": null, "message_id": null,
                "partition_key": format!("k{i}"), "sequence_number": null,
                "arrival_time": "2025-11-24T16:00:00.250Z", "attributes": { "channel": "web" } })
    });
}

/// A Firehose delivery stream, which only Lambda mode reads (as its
/// data-transformation function), gives what every source gives: the
/// records answered `Ok` are the sink's records.
#[test]
fn a_firehose_delivery_stream_gives_the_records_envelopes_and_counts_every_source_gives() {
    let t = tempfile::tempdir().unwrap();
    let p = pipeline(t.path(), "{ type: firehose }");
    let yaml = std::fs::read_to_string(&p).unwrap().replace(
        "out: { type: file, path: out.jsonl, mode: append }",
        "out: { type: firehose_response }",
    );
    std::fs::write(&p, yaml).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    // Records put straight to the delivery stream (no `kinesisRecordMetadata`).
    let mut event = common::events::sample_event("firehose-kinesis-transformation");
    event
        .as_object_mut()
        .unwrap()
        .remove("sourceKinesisStreamArn");
    let sample = event["records"][0].clone();
    let records: Vec<Value> = INPUT
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = sample.clone();
            r.as_object_mut().unwrap().remove("kinesisRecordMetadata");
            r["recordId"] = json!(format!("r{i}"));
            r["data"] = json!(b64.encode(data));
            r["approximateArrivalTimestamp"] = json!(1_764_000_000_250_i64);
            r
        })
        .collect();
    event["records"] = json!(records);
    let lambda = Lambda::start(&p, &[]);
    let answer = lambda.invoke(&event).unwrap();
    assert_eq!(
        common::events::firehose_results(&answer),
        [
            ("r0", "Ok"),
            ("r1", "Ok"),
            ("r2", "ProcessingFailed"),
            ("r3", "ProcessingFailed"),
            ("r4", "ProcessingFailed")
        ],
        "{}",
        lambda.stderr()
    );
    // What Firehose is given back is what a sink holds in the other sources.
    let delivered: String = answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "Ok")
        .map(|r| String::from_utf8(b64.decode(r["data"].as_str().unwrap()).unwrap()).unwrap())
        .collect();
    std::fs::write(t.path().join("out.jsonl"), delivered).unwrap();
    assert_counts(
        &expected_counts(5, [1, 1, 1]),
        &[("Lambda", emf_counts(&lambda.emf()))],
    );
    assert_given(t.path(), |r| {
        let i = if r["n"] == 1 { 0 } else { 1 };
        json!({ "source": "firehose", "stream": "clicks", "shard": null,
                "message_id": format!("r{i}"), "partition_key": null, "sequence_number": null,
                "arrival_time": "2025-11-24T16:00:00.250Z", "attributes": {} })
    });
}
