//! The reference orders workload end to end: `pipelines/orders` on the
//! generated data set reproduces the counts table of
//! `bench/workload/WORKLOAD.md` exactly, and its sinks are the same as the
//! Python baseline handler's (`compare_sinks.py` says `same` for every sink).

mod common;

use std::path::Path;
use std::process::Command;

use common::orders::orders_and_file_outputs;
use common::{python, read_jsonl, root, run, sluice, stderr, stdout, summary};

/// `n` orders of the reference workload (`seed`), written by gen_orders.py
/// into `dir` twice: as JSON Lines and as Kinesis event files.
fn generate(
    dir: &std::path::Path,
    n: &str,
    seed: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (jsonl, events) = (dir.join("orders.jsonl"), dir.join("events"));
    for (mode, out) in [("jsonl", &jsonl), ("kinesis", &events)] {
        let o = run(Command::new("python3")
            .arg(root().join("bench/workload/gen_orders.py"))
            .args([mode, "-n", n, "--seed", seed, "-o"])
            .arg(out));
        assert!(o.status.success(), "gen_orders {mode}: {}", stderr(&o));
    }
    (jsonl, events)
}

/// Runs pipelines/orders/pipeline.yaml on `jsonl`, its sinks under `out`;
/// it must succeed. Its summary.
fn run_orders(jsonl: &Path, out: &Path) -> serde_json::Value {
    let o = run(sluice()
        .args([
            "run",
            "pipelines/orders/pipeline.yaml",
            "--summary-format",
            "json",
        ])
        .current_dir(root())
        .env("ORDERS_INPUT", jsonl)
        .env("OUT_DIR", out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    summary(&o)
}

#[test]
fn orders_reproduces_the_reference_counts_and_the_python_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let work = root().join("bench/workload");
    let (jsonl, events) = generate(tmp.path(), "100000", "42");

    let sluice_out = tmp.path().join("sluice");
    let s = run_orders(&jsonl, &sluice_out);
    assert_eq!(s["records_in"], 100_000);
    assert_eq!(s["sinks"]["archive"], 96_448);
    assert_eq!(s["sinks"]["big_orders"], 12_443);
    assert_eq!(s["filtered"], 1_017);
    assert_eq!(s["dead_lettered"]["parse"], 520);
    assert_eq!(s["dead_lettered"]["validate"], 2_015);
    assert_eq!(s["dead_lettered"]["total"], 2_535);
    assert_eq!(s["unrouted"], 0);
    assert_eq!(s["balanced"], true);
    assert_eq!(read_jsonl(&sluice_out.join("archive.jsonl")).len(), 96_448);

    let py_out = tmp.path().join("python");
    let o = run(Command::new(python())
        .arg(work.join("py_baseline/run.py"))
        .args(["--handler", "fast", "--runs", "1", "--events"])
        .arg(&events)
        .arg("--out")
        .arg(&py_out));
    assert!(o.status.success(), "python baseline: {}", stderr(&o));

    let o = run(Command::new("python3")
        .arg(work.join("compare_sinks.py"))
        .arg(&sluice_out)
        .arg(&py_out));
    let report = stdout(&o);
    assert!(o.status.success(), "compare_sinks:\n{report}");
    assert_eq!(
        report,
        "archive      96448 vs   96448 records: same\n\
         big_orders   12443 vs   12443 records: same\n\
         dlq           2535 vs    2535 records: same; by stage {'parse': 520, 'validate': 2015}\n"
    );
}

/// The orders pipeline's AWS resources on moto, and what its sinks hold.
struct OrdersOnAws {
    moto: common::moto::Moto,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    kinesis: aws_sdk_kinesis::Client,
}

impl OrdersOnAws {
    /// Starts moto with the buckets and the queue of `pipelines/orders/kinesis.yaml`.
    fn start() -> OrdersOnAws {
        let moto = common::moto::Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conf = rt.block_on(moto.sdk_config());
        let s3 = common::aws::s3_client(&conf);
        let o = OrdersOnAws {
            kinesis: aws_sdk_kinesis::Client::new(&conf),
            sqs: aws_sdk_sqs::Client::new(&conf),
            s3,
            rt,
            moto,
        };
        o.rt.block_on(async {
            for bucket in ["orders-archive", "orders-dead-letters"] {
                o.s3.create_bucket().bucket(bucket).send().await.unwrap();
            }
            o.sqs
                .create_queue()
                .queue_name("big-orders")
                .send()
                .await
                .unwrap();
        });
        o
    }

    /// Every line of every object in `bucket` (gunzipped when the key ends in `.gz`).
    fn objects(&self, bucket: &str) -> Vec<serde_json::Value> {
        use std::io::Read;
        self.rt.block_on(async {
            let mut out = Vec::new();
            let list = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .unwrap();
            for obj in list.contents() {
                let key = obj.key().unwrap();
                let body = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                let bytes = body.body.collect().await.unwrap().into_bytes();
                let mut text = String::new();
                if key.ends_with(".gz") {
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_string(&mut text)
                        .unwrap();
                } else {
                    text = String::from_utf8_lossy(&bytes).into_owned();
                }
                out.extend(
                    text.lines()
                        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
                );
            }
            out
        })
    }

    /// Receives `n` messages from the big-orders queue.
    fn big_orders(&self, n: usize) -> Vec<serde_json::Value> {
        let mut big = Vec::new();
        while big.len() < n {
            let got = self
                .rt
                .block_on(
                    self.sqs
                        .receive_message()
                        .queue_url(format!("{}/123456789012/big-orders", self.moto.endpoint))
                        .max_number_of_messages(10)
                        .send(),
                )
                .unwrap();
            assert!(
                !got.messages().is_empty(),
                "only {} big orders arrived",
                big.len()
            );
            big.extend(
                got.messages()
                    .iter()
                    .map(|m| serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap()),
            );
        }
        big
    }

    /// Asserts the archive, the big orders and the dead letters are the file
    /// pipeline's (in `file_out`): the same records by order id (shards
    /// interleave records), the same dead letters by stage and data.
    fn assert_same_as(&self, file_out: &std::path::Path) {
        let by_id = |mut v: Vec<serde_json::Value>| {
            for r in &mut v {
                r.as_object_mut().unwrap().remove("processed_at");
            }
            v.sort_by(|a, b| a["order_id"].as_str().cmp(&b["order_id"].as_str()));
            v
        };
        assert_eq!(
            by_id(self.objects("orders-archive")),
            by_id(read_jsonl(&file_out.join("archive.jsonl")))
        );
        let expected_big = read_jsonl(&file_out.join("big_orders.jsonl"));
        assert_eq!(
            by_id(self.big_orders(expected_big.len())),
            by_id(expected_big)
        );
        let stages = |v: &[serde_json::Value]| {
            let mut d: Vec<(String, String)> = v
                .iter()
                .map(|e| {
                    (
                        e["stage"].as_str().unwrap().to_owned(),
                        e["data"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            d.sort();
            d
        };
        assert_eq!(
            stages(&self.objects("orders-dead-letters")),
            stages(&read_jsonl(&file_out.join("dlq.jsonl")))
        );
    }
}

/// `pipelines/orders/kinesis.yaml`, the same workload on AWS (Kinesis → S3 +
/// SQS, DLQ on S3) against moto, delivers the same records as the file
/// pipeline.
#[test]
fn orders_on_kinesis_delivers_what_the_file_pipeline_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = orders_and_file_outputs(tmp.path(), 2000);
    let aws = OrdersOnAws::start();
    aws.rt.block_on(async {
        aws.kinesis
            .create_stream()
            .stream_name("orders")
            .shard_count(4)
            .send()
            .await
            .unwrap();
        common::aws::put_lines(&aws.kinesis, "orders", &lines).await;
    });
    let o = run(sluice()
        .args([
            "run",
            "pipelines/orders/kinesis.yaml",
            "--summary-format",
            "json",
            "--stop-when-idle",
            "2s",
        ])
        .current_dir(root())
        .envs(aws.moto.env()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["records_in"], 2000);
    assert_eq!(s["balanced"], true);
    assert_eq!(
        s["api_calls"]["archive"], 1,
        "the S3 sink buffers across batches: one object, written once the source is idle"
    );
    aws.assert_same_as(&tmp.path().join("file"));
}

/// The same YAML, unchanged, as a Lambda function: Kinesis events of the
/// same orders (as gen_orders.py writes them, 500 records each) under the
/// Runtime API emulator give the same sink contents as the file pipeline.
#[test]
fn orders_in_lambda_delivers_what_the_file_pipeline_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    orders_and_file_outputs(tmp.path(), 2000);
    let events = tmp.path().join("events");
    let o = run(Command::new("python3")
        .arg(root().join("bench/workload/gen_orders.py"))
        .args([
            "kinesis", "-n", "2000", "--seed", "7", "--batch", "500", "-o",
        ])
        .arg(&events));
    assert!(o.status.success(), "{}", stderr(&o));
    let aws = OrdersOnAws::start();
    let lambda = common::lambda::Lambda::start(
        &root().join("pipelines/orders/kinesis.yaml"),
        &aws.moto.env(),
    );
    let mut files: Vec<_> = std::fs::read_dir(&events)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    for f in files {
        let event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let response = lambda.invoke(&event).unwrap();
        assert_eq!(
            response,
            serde_json::json!({ "batchItemFailures": [] }),
            "{}",
            lambda.stderr()
        );
    }
    assert_eq!(
        aws.objects("orders-archive").len(),
        read_jsonl(&tmp.path().join("file/archive.jsonl")).len()
    );
    aws.assert_same_as(&tmp.path().join("file"));
}

/// The Node.js peer of the benchmark (`bench/peers/node_ajv`), installed
/// from npm into `target/peers/`, writes the sinks Sluice writes for the
/// same orders.
#[test]
fn the_node_peer_writes_the_sinks_sluice_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let work = root().join("bench/workload");
    let (jsonl, events) = generate(tmp.path(), "3000", "3");
    let sluice_out = tmp.path().join("sluice");
    run_orders(&jsonl, &sluice_out);

    // The peer's folder is read-only material: it is installed in a copy.
    let peer = root().join("target/peers/node_ajv");
    std::fs::create_dir_all(&peer).unwrap();
    for file in ["package.json", "handler.js", "run.js"] {
        std::fs::copy(
            root().join("bench/peers/node_ajv").join(file),
            peer.join(file),
        )
        .unwrap();
    }
    let o = run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&peer));
    assert!(
        o.status.success(),
        "npm install (the peer needs Node.js and the npm registry): {}",
        stderr(&o)
    );
    let node_out = tmp.path().join("node");
    let o = run(Command::new("node")
        .arg(peer.join("run.js"))
        .arg(&events)
        .arg(&node_out)
        .arg("1")
        .env("ORDER_SCHEMA", work.join("schemas/order.schema.json")));
    assert!(o.status.success(), "node: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (&report["impl"], &report["records"]),
        (&serde_json::json!("node-ajv"), &serde_json::json!(3000))
    );

    let o = run(Command::new("python3")
        .arg(work.join("compare_sinks.py"))
        .arg(&sluice_out)
        .arg(&node_out));
    let report = stdout(&o);
    assert!(o.status.success(), "compare_sinks:\n{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(
        lines.iter().all(|l| l.contains("records: same")),
        "{report}"
    );
}
