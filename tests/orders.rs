//! The reference orders workload end to end: `pipelines/orders` on the
//! generated data set reproduces the counts table of
//! `bench/workload/WORKLOAD.md` exactly, and its sinks are the same as the
//! Python baseline handler's (`compare_sinks.py` says `same` for every sink).

mod common;

use std::process::Command;

use common::{python, read_jsonl, root, run, sluice, stderr, stdout, summary};

#[test]
fn orders_reproduces_the_reference_counts_and_the_python_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let work = root().join("bench/workload");
    let jsonl = tmp.path().join("orders.jsonl");
    let events = tmp.path().join("events");
    for (mode, out) in [("jsonl", &jsonl), ("kinesis", &events)] {
        let o = run(Command::new("python3")
            .arg(work.join("gen_orders.py"))
            .args([mode, "-n", "100000", "--seed", "42", "-o"])
            .arg(out));
        assert!(o.status.success(), "gen_orders {mode}: {}", stderr(&o));
    }

    let sluice_out = tmp.path().join("sluice");
    let o = run(sluice()
        .args([
            "run",
            "pipelines/orders/pipeline.yaml",
            "--summary-format",
            "json",
        ])
        .current_dir(root())
        .env("ORDERS_INPUT", &jsonl)
        .env("OUT_DIR", &sluice_out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
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

/// `pipelines/orders/kinesis.yaml`, the same workload on AWS (Kinesis → S3 +
/// SQS, DLQ on S3) against moto, delivers the same records as the file
/// pipeline: the same archive and big orders (compared by order id; shards
/// interleave records) and the same dead letters by stage.
#[test]
fn orders_on_kinesis_delivers_what_the_file_pipeline_delivers() {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    use std::io::Read;

    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("orders.jsonl");
    let o = run(Command::new("python3")
        .arg(root().join("bench/workload/gen_orders.py"))
        .args(["jsonl", "-n", "2000", "--seed", "7", "-o"])
        .arg(&jsonl));
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();

    // The file pipeline, for reference.
    let file_out = tmp.path().join("file");
    let o = run(sluice()
        .args([
            "run",
            "pipelines/orders/pipeline.yaml",
            "--summary-format",
            "json",
        ])
        .current_dir(root())
        .env("ORDERS_INPUT", &jsonl)
        .env("OUT_DIR", &file_out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let moto = common::moto::Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conf = rt.block_on(moto.sdk_config());
    let kinesis = aws_sdk_kinesis::Client::new(&conf);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&conf);
    rt.block_on(async {
        kinesis
            .create_stream()
            .stream_name("orders")
            .shard_count(4)
            .send()
            .await
            .unwrap();
        s3.create_bucket()
            .bucket("orders-archive")
            .send()
            .await
            .unwrap();
        s3.create_bucket()
            .bucket("orders-dead-letters")
            .send()
            .await
            .unwrap();
        sqs.create_queue()
            .queue_name("big-orders")
            .send()
            .await
            .unwrap();
        for (c, chunk) in lines.chunks(500).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(l.as_bytes()))
                        .partition_key(format!("k{}", (c * 500 + i) % 16))
                        .build()
                        .unwrap()
                })
                .collect();
            kinesis
                .put_records()
                .stream_name("orders")
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
        }
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
        .envs(moto.env()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["records_in"], 2000);
    assert_eq!(s["balanced"], true);
    assert_eq!(
        s["api_calls"]["archive"], 1,
        "the S3 sink buffers across batches: one object, written once the source is idle"
    );

    let by_id = |mut v: Vec<serde_json::Value>| {
        for r in &mut v {
            r.as_object_mut().unwrap().remove("processed_at");
        }
        v.sort_by(|a, b| a["order_id"].as_str().cmp(&b["order_id"].as_str()));
        v
    };
    let (archive, dead) = rt.block_on(async {
        let mut archive = Vec::new();
        let list = s3
            .list_objects_v2()
            .bucket("orders-archive")
            .send()
            .await
            .unwrap();
        for obj in list.contents() {
            let body = s3
                .get_object()
                .bucket("orders-archive")
                .key(obj.key().unwrap())
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            archive.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
            );
        }
        let mut dead = Vec::new();
        let list = s3
            .list_objects_v2()
            .bucket("orders-dead-letters")
            .send()
            .await
            .unwrap();
        for obj in list.contents() {
            let body = s3
                .get_object()
                .bucket("orders-dead-letters")
                .key(obj.key().unwrap())
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            dead.extend(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
            );
        }
        (archive, dead)
    });
    assert_eq!(
        by_id(archive),
        by_id(read_jsonl(&file_out.join("archive.jsonl")))
    );

    let mut big = Vec::new();
    let expected_big = read_jsonl(&file_out.join("big_orders.jsonl"));
    while big.len() < expected_big.len() {
        let got = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(format!("{}/123456789012/big-orders", moto.endpoint))
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
    assert_eq!(by_id(big), by_id(expected_big));

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
        stages(&dead),
        stages(&read_jsonl(&file_out.join("dlq.jsonl")))
    );
}
