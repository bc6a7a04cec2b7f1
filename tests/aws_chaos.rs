//! The orders workload from Kinesis to S3, DynamoDB and SQS, with the DLQ
//! on SQS, through the fault proxy. With the DLQ unreachable nothing is
//! acknowledged past the records whose envelopes were not written, and a
//! later run delivers them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::aws::{create_bucket, create_queue, create_stream, drain, put_lines, rt};
use common::faults::Proxy;
use common::moto::Moto;
use common::orders::orders_and_file_outputs;
use common::{outcome, read_jsonl, root, run, sluice};
use serde_json::{Value, json};

/// The orders workload (the file pipeline's schema and transform) from the
/// `orders` stream to S3, DynamoDB and SQS, dead letters to an SQS queue.
fn pipeline(dir: &Path, retry: &str) -> PathBuf {
    let orders = root().join("pipelines/orders");
    common::write_pipeline(
        dir,
        "orders",
        &format!(
            "source: {{ type: kinesis, stream: orders, start_position: trim_horizon, \
             poll_interval: 100ms, checkpoint_table: orders-checkpoints }}\n\
             decode: {{ format: json }}\n\
             schemas: {{ order: '{}' }}\n\
             validate: {{ schema: order, on_invalid: dlq }}\n\
             transforms: [{{ name: price, file: '{}' }}]\n\
             routes:\n  - {{ when: 'record.tier == \"big\"', to: [big_orders] }}\n  - {{ to: [archive, table] }}\n\
             sinks:\n\
             \x20 archive: {{ type: s3, bucket: orders-archive, key: \"orders/{{part}}.jsonl\", max_records: 20 }}\n\
             \x20 table: {{ type: dynamodb, table: orders }}\n\
             \x20 big_orders: {{ type: sqs, queue: big-orders }}\n\
             dlq: {{ type: sqs, queue: dead-letters }}\n\
             retry: {retry}\n",
            orders.join("schemas/order.schema.json").display(),
            orders.join("transforms/price.rhai").display(),
        ),
    )
}

/// moto with the stream (4 shards, holding the orders), the bucket, the
/// table and the two queues; the queues' URLs.
struct Aws {
    moto: Moto,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    big_orders: String,
    dead_letters: String,
}

impl Aws {
    fn start(lines: &[String]) -> Aws {
        let moto = Moto::start();
        let rt = rt();
        let conf = rt.block_on(moto.sdk_config());
        let s3 = common::aws::s3_client(&conf);
        let ddb = aws_sdk_dynamodb::Client::new(&conf);
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let kinesis = aws_sdk_kinesis::Client::new(&conf);
        let (big_orders, dead_letters) = rt.block_on(async {
            create_bucket(&s3, "orders-archive").await;
            common::aws::create_table(&ddb, "orders", "order_id").await;
            create_stream(&kinesis, "orders", 4).await;
            put_lines(&kinesis, "orders", lines).await;
            (
                create_queue(&sqs, "big-orders").await,
                create_queue(&sqs, "dead-letters").await,
            )
        });
        Aws {
            moto,
            rt,
            s3,
            sqs,
            big_orders,
            dead_letters,
        }
    }

    /// Every message of a queue (received, not deleted).
    fn queue(&self, url: &str) -> Vec<Value> {
        self.rt.block_on(drain(&self.sqs, url))
    }

    /// Every record of every archive object.
    fn archive(&self) -> Vec<Value> {
        self.rt
            .block_on(common::aws::objects(&self.s3, "orders-archive"))
            .into_iter()
            .flat_map(|(_, body)| common::aws::jsonl(&body))
            .collect()
    }
}

/// How many times each value occurs, by a key of it.
fn tally(values: &[Value], key: impl Fn(&Value) -> String) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for v in values {
        *t.entry(key(v)).or_insert(0) += 1;
    }
    t
}

fn order_id(v: &Value) -> String {
    v["order_id"].as_str().unwrap().to_owned()
}

fn stage_and_data(v: &Value) -> String {
    format!(
        "{} {}",
        v["stage"].as_str().unwrap(),
        v["data"].as_str().unwrap()
    )
}

/// Each key once.
fn once(t: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    t.keys().map(|k| (k.clone(), 1)).collect()
}

#[test]
fn with_the_dlq_unreachable_nothing_it_did_not_take_is_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = orders_and_file_outputs(tmp.path(), 400);
    let file = tmp.path().join("file");
    let aws = Aws::start(&lines);
    let proxy = Proxy::start(
        &aws.moto,
        json!([{ "op": "AmazonSQS.SendMessageBatch", "resource": "dead-letters", "fault": "reset" },
               { "op": "AmazonSQS.SendMessage", "resource": "dead-letters", "fault": "reset" }]),
    );
    let p = pipeline(tmp.path(), "{ max_attempts: 3, initial_backoff: 5ms }");
    let (code, s, err) = run_until_idle(&p, "3s", proxy.env(&aws.moto));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the dead-letter queue did not accept a record after 3 attempts"),
        "{err}"
    );
    assert_eq!(s["retries"]["dlq"], 2, "{s}");
    assert!(aws.queue(&aws.dead_letters).is_empty());

    // The DLQ is back: a second run starts at the checkpoints the first
    // left, and every dead letter arrives; what both runs delivered is
    // every record, some twice (the source delivered them again).
    let (code, _, err) = run_until_idle(&p, "3s", aws.moto.env());
    assert_eq!(code, 0, "{err}");
    let dead = read_jsonl(&file.join("dlq.jsonl"));
    assert_eq!(
        once(&tally(&aws.queue(&aws.dead_letters), stage_and_data)),
        once(&tally(&dead, stage_and_data))
    );
    let archive = read_jsonl(&file.join("archive.jsonl"));
    assert_eq!(
        once(&tally(&aws.archive(), order_id)),
        once(&tally(&archive, order_id))
    );
    let big = read_jsonl(&file.join("big_orders.jsonl"));
    assert_eq!(
        once(&tally(&aws.queue(&aws.big_orders), order_id)),
        once(&tally(&big, order_id))
    );
}

/// `sluice run` of `p` until its stream is idle for `idle`, with `env`.
fn run_until_idle(p: &Path, idle: &str, env: Vec<(&'static str, String)>) -> (i32, Value, String) {
    outcome(&run(sluice()
        .arg("run")
        .arg(p)
        .args(["--summary-format", "json", "--stop-when-idle", idle])
        .envs(env)))
}

/// The calls a random rule gave a fault that fails them (latency does not),
/// by operation and resource; and the entries of the calls whose answers
/// were lost (served, so sent again: duplicates).
struct Faults {
    calls: Vec<Value>,
}

impl Faults {
    fn failing(c: &Value) -> bool {
        matches!(
            c["kind"].as_str(),
            Some("throttle" | "5xx" | "reset" | "lost" | "partial")
        )
    }

    /// Failed calls of `op` on `resource`.
    fn failed(&self, op: &str, resource: &str) -> u64 {
        self.calls
            .iter()
            .filter(|c| c["op"] == op && c["resource"] == resource && Self::failing(c))
            .count() as u64
    }

    /// Entries of the calls to `resource` whose answers were lost.
    fn lost_entries(&self, resource: &str) -> usize {
        self.calls
            .iter()
            .filter(|c| c["resource"] == resource && c["kind"] == "lost")
            .map(|c| c["entries"].as_u64().unwrap_or(1) as usize)
            .sum()
    }
}

/// Each value's count beyond its first.
fn duplicates(t: &BTreeMap<String, usize>) -> usize {
    t.values().map(|n| n - 1).sum()
}

#[test]
fn thirty_percent_faults_on_every_call_lose_nothing_and_stop_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = orders_and_file_outputs(tmp.path(), 400);
    let file = tmp.path().join("file");
    let aws = Aws::start(&lines);
    let proxy = Proxy::start(
        &aws.moto,
        json!([{ "op": "*", "rate": 0.3, "seed": 13, "ms": 300,
                 "faults": ["throttle", "5xx", "reset", "lost", "latency", "partial"] }]),
    );
    let p = pipeline(
        tmp.path(),
        "{ max_attempts: 12, initial_backoff: 10ms, max_backoff: 200ms }",
    );
    let (code, s, err) = run_until_idle(&p, "4s", proxy.env(&aws.moto));
    assert_eq!(code, 0, "{err}");
    let faults = Faults {
        calls: proxy.calls(),
    };

    // Every fault kind was met, on 20 to 40 % of the calls.
    let kinds: BTreeMap<String, usize> = tally(
        &faults
            .calls
            .iter()
            .filter(|c| !c["kind"].is_null())
            .cloned()
            .collect::<Vec<_>>(),
        |c| c["kind"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        kinds.keys().map(String::as_str).collect::<Vec<_>>(),
        ["5xx", "latency", "lost", "partial", "reset", "throttle"],
        "{kinds:?}"
    );
    let given = kinds.values().sum::<usize>() as f64 / faults.calls.len() as f64;
    assert!(
        (0.2..=0.4).contains(&given),
        "{given} of {} calls",
        faults.calls.len()
    );

    // Every record read is accounted for, and the archive holds each archived
    // order once (an object written again has the same key), in S3 and in
    // the table alike.
    let file_archive = read_jsonl(&file.join("archive.jsonl"));
    let file_big = read_jsonl(&file.join("big_orders.jsonl"));
    let file_dead = read_jsonl(&file.join("dlq.jsonl"));
    assert_eq!(s["records_in"], 400, "{s}");
    assert_eq!(s["dead_lettered"]["total"], file_dead.len(), "{s}");
    let archive = aws.archive();
    assert_eq!(tally(&archive, order_id), tally(&file_archive, order_id));
    let ddb = aws_sdk_dynamodb::Client::new(&aws.rt.block_on(aws.moto.sdk_config()));
    let table = aws
        .rt
        .block_on(common::aws::items(&ddb, "orders", "order_id"));
    assert_eq!(tally(&table, order_id), tally(&file_archive, order_id));

    // Each S3 PUT that failed was sent again once, and nothing else was:
    // the requests are the objects and the failures. A retry sends again
    // every object its attempt did not write, so there are at most as many
    // retries as failures.
    let objects = aws
        .rt
        .block_on(common::aws::objects(&aws.s3, "orders-archive"))
        .len() as u64;
    let failed = faults.failed("S3.PUT", "orders-archive");
    let puts = faults.calls.iter().filter(|c| c["op"] == "S3.PUT").count() as u64;
    assert_eq!(s["api_calls"]["archive"], puts, "{s}");
    assert_eq!(puts, objects + failed, "{s}");
    let retries = s["retries"]["archive"].as_u64().unwrap();
    assert!(
        (1..=failed).contains(&retries),
        "{retries} retries, {failed} failures"
    );

    // Queues get every message at least once; more only where an answer
    // was lost and the message sent again.
    let big = tally(&aws.queue(&aws.big_orders), order_id);
    assert_eq!(once(&big), once(&tally(&file_big, order_id)));
    assert!(duplicates(&big) <= faults.lost_entries("big-orders"));
    let dead = tally(&aws.queue(&aws.dead_letters), stage_and_data);
    assert_eq!(once(&dead), once(&tally(&file_dead, stage_and_data)));
    assert!(duplicates(&dead) <= faults.lost_entries("dead-letters"));
}
