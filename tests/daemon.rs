//! `sluice daemon` worker groups on real emulators: leases balance, a killed
//! worker's shards are taken over with nothing lost, and a worker stopped
//! with SIGTERM hands over without a duplicate (`moto_server`); across a
//! split and a merge, each key's records are delivered in order
//! (`kinesalite`, which reshards as AWS does; DynamoDB stays on moto).
//! A bad pipeline is reported in JSON log lines, every error at once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::kinesalite::Kinesalite;
use common::moto::Moto;
use common::read_jsonl;
use serde_json::json;

/// A 6-shard stream on moto and a pipeline that reads it into one file per worker.
struct Group {
    moto: Moto,
    kinesalite: Option<Kinesalite>,
    rt: tokio::runtime::Runtime,
    kinesis: aws_sdk_kinesis::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    dir: tempfile::TempDir,
    pipeline: PathBuf,
}

const PIPELINE: &str = "\
version: 1
name: clicks
source: { type: kinesis, stream: clicks, start_position: trim_horizon, checkpoint_table: leases, poll_interval: 100ms }
transforms:
  - { name: stamp, script: 'record.t = meta.batch_time; record' }
routes: [{ to: [out] }]
sinks:
  out: { type: file, path: 'out-${WORKER}.jsonl', mode: append }
dlq: { type: file, path: 'dlq-${WORKER}.jsonl', mode: append }
";

impl Group {
    /// Kinesis and DynamoDB on moto.
    fn new(shards: i32) -> Group {
        Group::with(shards, None)
    }

    /// Kinesis on kinesalite, DynamoDB on moto.
    fn resharding(shards: i32) -> Group {
        Group::with(shards, Some(Kinesalite::start()))
    }

    fn with(shards: i32, kinesalite: Option<Kinesalite>) -> Group {
        let moto = Moto::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sdk = rt.block_on(moto.sdk_config());
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let kinesis = match &kinesalite {
            Some(k) => aws_sdk_kinesis::Client::from_conf(
                aws_sdk_kinesis::config::Builder::from(&sdk)
                    .endpoint_url(&k.endpoint)
                    .build(),
            ),
            None => aws_sdk_kinesis::Client::new(&sdk),
        };
        rt.block_on(
            kinesis
                .create_stream()
                .stream_name("clicks")
                .shard_count(shards)
                .send(),
        )
        .unwrap();
        wait_active(&rt, &kinesis);
        let dir = tempfile::tempdir().unwrap();
        let pipeline = dir.path().join("pipeline.yaml");
        // On kinesalite, small reads: a shard with a backlog takes many, so
        // a child read beside its parent would interleave with it.
        let yaml = match &kinesalite {
            Some(_) => PIPELINE.replace(
                "poll_interval: 100ms",
                "poll_interval: 100ms, max_records: 10",
            ),
            None => PIPELINE.to_owned(),
        };
        std::fs::write(&pipeline, yaml).unwrap();
        Group {
            moto,
            kinesalite,
            rt,
            kinesis,
            dynamodb,
            dir,
            pipeline,
        }
    }

    /// The endpoints: Kinesis on kinesalite when it runs, the rest on moto.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.moto.env();
        if let Some(k) = &self.kinesalite {
            env.push(("AWS_ENDPOINT_URL_KINESIS", k.endpoint.clone()));
        }
        env
    }

    fn start(&self, name: &str) -> Daemon {
        self.start_on(&self.pipeline, name)
    }

    /// A worker of `pipeline`, with a 3 s failover time.
    fn start_on(&self, pipeline: &Path, name: &str) -> Daemon {
        Daemon::start(
            self.dir.path(),
            pipeline,
            name,
            &self.env(),
            &["--failover-time", "3s", "--grace-period", "20s"],
        )
    }

    /// Puts records `from..to`: `{"id": i, "k": "k{i % 24}"}`, keyed by `k`.
    fn put(&self, from: i64, to: i64) {
        let records = (from..to).map(|i| {
            let k = format!("k{}", i % 24);
            let data = json!({"id": i, "k": k}).to_string();
            (k, data)
        });
        self.rt
            .block_on(common::aws::put_records(&self.kinesis, "clicks", records));
    }

    /// Puts `from..to` in batches of `step`, `pause` apart.
    fn put_slowly(&self, from: i64, to: i64, step: i64, pause: Duration) {
        let mut i = from;
        while i < to {
            self.put(i, (i + step).min(to));
            i += step;
            std::thread::sleep(pause);
        }
    }

    /// Leases per owner (unowned leases under `-`).
    fn owners(&self) -> BTreeMap<String, usize> {
        let items = self
            .rt
            .block_on(
                self.dynamodb
                    .scan()
                    .table_name("leases")
                    .consistent_read(true)
                    .send(),
            )
            .map(|o| o.items.unwrap_or_default())
            .unwrap_or_default();
        let mut owners = BTreeMap::new();
        for item in items {
            let owner = item
                .get("lease_owner")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_else(|| "-".into());
            *owners.entry(owner).or_insert(0) += 1;
        }
        owners
    }

    /// Waits until the leases are spread as `want`; how long that took.
    fn wait_for_owners(&self, want: &[(&str, usize)], limit: Duration) -> Duration {
        let want: BTreeMap<String, usize> =
            want.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect();
        let started = Instant::now();
        loop {
            let now = self.owners();
            if now == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "leases not spread as {want:?} within {limit:?}: {now:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The workers' logs, for a failure's message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                out += &format!("{}:\n", path.display());
                out += &std::fs::read_to_string(&path).unwrap_or_default();
            }
        }
        out
    }

    /// Every id delivered, with repeats, from every worker's file.
    fn delivered(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("out-") {
                ids.extend(read_jsonl(&path).iter().map(|r| r["id"].as_i64().unwrap()));
            }
        }
        ids
    }

    /// Waits until every id in `0..n` was delivered; the ids, with repeats.
    fn wait_for_all(&self, n: i64, limit: Duration) -> Vec<i64> {
        let started = Instant::now();
        loop {
            let ids = self.delivered();
            let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
            if distinct.len() as i64 == n {
                assert_eq!(distinct, (0..n).collect(), "only the ids put");
                return ids;
            }
            assert!(
                started.elapsed() < limit,
                "{} of {n} records delivered within {limit:?}",
                distinct.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `sluice run PIPELINE` over the stream, one worker, its standard
    /// error in `log`.
    fn spawn_run(&self, pipeline: &Path, log: &Path) -> std::process::Child {
        common::sluice()
            .current_dir(self.dir())
            .arg("run")
            .arg(pipeline)
            .args(["--no-progress", "--workers", "1"])
            .envs(self.env())
            .env("WORKER", "run")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    /// Splits a shard in two halves of its hash key range and waits until the stream is active.
    fn split(&self, shard: &str) {
        let shards = self
            .rt
            .block_on(self.kinesis.list_shards().stream_name("clicks").send())
            .unwrap();
        let range = shards
            .shards()
            .iter()
            .find(|s| s.shard_id() == shard)
            .unwrap()
            .hash_key_range()
            .unwrap();
        let (lo, hi): (u128, u128) = (
            range.starting_hash_key().parse().unwrap(),
            range.ending_hash_key().parse().unwrap(),
        );
        self.rt
            .block_on(
                self.kinesis
                    .split_shard()
                    .stream_name("clicks")
                    .shard_to_split(shard)
                    .new_starting_hash_key((lo / 2 + hi / 2 + 1).to_string())
                    .send(),
            )
            .unwrap();
        wait_active(&self.rt, &self.kinesis);
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An S3 client on moto, and its bucket `lake`.
    fn lake(&self) -> aws_sdk_s3::Client {
        let s3 = common::aws::s3_client(&self.rt.block_on(self.moto.sdk_config()));
        self.rt
            .block_on(s3.create_bucket().bucket("lake").send())
            .unwrap();
        s3
    }

    /// Writes `file`: the stream into the bucket `lake` (with the S3 sink's
    /// `limits`), and `more` top-level fields.
    fn lake_pipeline(&self, file: &str, limits: &str, more: &str) -> PathBuf {
        let path = self.dir().join(file);
        common::write_pipeline_file(
            &path,
            "clicks",
            &format!(
                "source: {{ type: kinesis, stream: clicks, start_position: trim_horizon, checkpoint_table: leases, poll_interval: 100ms }}\n\
                 routes: [{{ to: [lake] }}]\n\
                 sinks:\n  lake: {{ type: s3, bucket: lake, key: 'o/{{part}}.jsonl', {limits} }}\n\
                 dlq: {{ type: file, path: dlq.jsonl }}\n{more}"
            ),
        );
        path
    }

    /// Every id in the objects of the bucket `lake`, with repeats.
    fn lake_ids(&self, s3: &aws_sdk_s3::Client) -> Vec<i64> {
        let objects = self.rt.block_on(common::aws::objects(s3, "lake"));
        let mut ids = Vec::new();
        for (_, body) in objects {
            ids.extend(
                common::aws::jsonl(&body)
                    .iter()
                    .map(|v| v["id"].as_i64().unwrap()),
            );
        }
        ids
    }
}

/// Waits until the stream is `ACTIVE` (after a create, split or merge).
fn wait_active(rt: &tokio::runtime::Runtime, kinesis: &aws_sdk_kinesis::Client) {
    use aws_sdk_kinesis::types::StreamStatus;
    let mut status = None;
    // kinesalite activates a stream within a few polls; 2400 polls is a hang.
    for _ in 0..2400 {
        status = rt
            .block_on(
                kinesis
                    .describe_stream_summary()
                    .stream_name("clicks")
                    .send(),
            )
            .ok()
            .and_then(|o| o.stream_description_summary.map(|d| d.stream_status));
        if status == Some(StreamStatus::Active) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("stream not active after 2400 polls: {status:?}");
}

/// Polls `count` every `every` until it reaches `target`. Fails only when
/// the count stops moving for `stalled` polls in a row (a hang): how long
/// the work takes on a busy machine is not what is checked.
fn wait_for_count(
    what: &str,
    target: u64,
    (every, stalled): (Duration, u32),
    mut count: impl FnMut() -> u64,
) {
    let (mut last, mut still) = (count(), 0);
    while last < target {
        std::thread::sleep(every);
        let now = count();
        still = if now > last { 0 } else { still + 1 };
        assert!(
            still < stalled,
            "{what}: {now} of {target}, no progress for {stalled} polls"
        );
        last = now;
    }
}

/// Per-key order within each worker's file: ids of one key only grow (a
/// key's shard is read by one worker at a time, from its checkpoint on).
fn assert_key_order_per_file(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("out-")
        {
            continue;
        }
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for r in read_jsonl(&path) {
            let (k, id) = (
                r["k"].as_str().unwrap().to_owned(),
                r["id"].as_i64().unwrap(),
            );
            if let Some(prev) = last.insert(k.clone(), id) {
                assert!(id > prev, "{}: key {k}: {id} after {prev}", path.display());
            }
        }
    }
}

/// Waits until each worker itself knows it holds `n` leases (a worker that
/// lost a lease to a steal notices at its next renewal, and may read the
/// shard until then): only then do records flow without duplicates.
fn wait_until_each_holds(workers: &[&Daemon], n: usize, limit: Duration) {
    let started = Instant::now();
    for w in workers {
        let want = format!(
            "sluice_leases_held{{pipeline=\"clicks\",worker=\"{}\"}} {n}\n",
            w.name
        );
        loop {
            let (_, m) = w.get("/metrics");
            if m.contains(&want) {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "{} does not hold {n} leases:\n{m}",
                w.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Its reader drops a lost shard at its next read (poll_interval: 100ms).
    std::thread::sleep(Duration::from_millis(500));
}

/// Checks that the group read no record twice beyond what its workers said
/// they would. A handoff waits for what was read to be checkpointed for at
/// most the failover time, then logs how many records will be read again;
/// a lease taken from a worker that missed its renewals for the failover
/// time (a machine too busy to run it) is read again from its checkpoint,
/// as many records as that worker had not checkpointed. Both happen only
/// when a worker is stalled for seconds; anything else read twice is a bug.
fn assert_read_twice_only_as_said(dups: usize, logs: &[(String, String)]) {
    let mut said = 0;
    let mut taken_from_stalled = false;
    for (_, log) in logs {
        for line in log.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let m = line["message"].as_str().unwrap_or_default();
            if m.starts_with("took the lease of shard ") && m.contains(" from worker ")
                || m.contains("could not be renewed")
            {
                taken_from_stalled = true;
            }
            if let Some(rest) = m.split(", ").nth(1)
                && m.starts_with("handed shard ")
                && rest.ends_with("will be read again")
            {
                said += rest
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("a handoff's count: {m}"));
            }
        }
    }
    let logs: Vec<String> = logs
        .iter()
        .map(|(name, log)| format!("{name}:\n{log}"))
        .collect();
    assert!(
        dups <= said || taken_from_stalled,
        "{dups} records read twice, {said} said:\n{}",
        logs.join("\n")
    );
}

/// The workers' logs so far, by name (a worker started again under the
/// same name starts a new log).
fn logs(workers: &[&Daemon]) -> Vec<(String, String)> {
    workers.iter().map(|w| (w.name.clone(), w.log())).collect()
}

/// Waits until `look` says done. It fails only when what it sees (its
/// second value) stops changing for two minutes: the workers stopped making
/// progress, however slowly a busy machine lets them go.
fn wait_while_progressing(
    what: &str,
    mut look: impl FnMut() -> (bool, String),
    logs: impl Fn() -> String,
) {
    const STALLED: Duration = Duration::from_secs(120);
    let (mut seen, mut since) = (String::new(), Instant::now());
    loop {
        let (done, now) = look();
        if done {
            return;
        }
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
        assert!(
            since.elapsed() < STALLED,
            "{what}: no progress for {STALLED:?}, at {seen}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops a process with SIGTERM; how it ended.
fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    child.wait().unwrap()
}

fn duplicates(ids: &[i64]) -> usize {
    let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    ids.len() - distinct.len()
}

#[test]
fn three_workers_balance_and_a_killed_workers_shards_are_taken_over() {
    let g = Group::new(6);
    let mut w1 = g.start("w1");
    let w2 = g.start("w2");
    let w3 = g.start("w3");
    let took = g.wait_for_owners(&[("w1", 2), ("w2", 2), ("w3", 2)], Duration::from_secs(60));
    eprintln!("leases balanced 2-2-2 in {:.1} s", took.as_secs_f64());
    wait_until_each_holds(&[&w1, &w2, &w3], 2, Duration::from_secs(30));

    // The endpoint of a worker: ready, and its share in the metrics.
    assert_eq!(w2.get("/readyz"), (200, "ready\n".into()));
    assert_eq!(w2.get("/healthz").0, 200);
    let (status, metrics) = w2.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("sluice_leases_held{pipeline=\"clicks\",worker=\"w2\"} 2\n")
            && metrics.contains("sluice_workers{pipeline=\"clicks\"} 3\n"),
        "{metrics}\nw1:\n{}\nw2:\n{}\nw3:\n{}",
        w1.log(),
        w2.log(),
        w3.log()
    );

    // The container health check: `sluice probe` on the same endpoint.
    let probe = |path: &str| {
        common::run(common::sluice().args(["probe", &format!("http://{}{path}", w2.address())]))
            .status
            .code()
    };
    assert_eq!(probe("/healthz"), Some(0));
    assert_eq!(probe("/no-such-page"), Some(1));

    // Records flow; w1 is killed in the middle.
    g.put_slowly(0, 600, 100, Duration::from_millis(300));
    w1.kill();
    g.put_slowly(600, 1200, 100, Duration::from_millis(300));
    let took = g.wait_for_owners(&[("w2", 3), ("w3", 3)], Duration::from_secs(60));
    eprintln!(
        "w1's shards taken over {:.1} s after the last put",
        took.as_secs_f64()
    );
    let ids = g.wait_for_all(1200, Duration::from_secs(60));
    let dups = duplicates(&ids);
    eprintln!(
        "1200 records, none lost, {dups} delivered twice (read by w1 and not checkpointed before the kill)"
    );
    assert!(dups <= 600, "at most what w1 had read: {dups}");
    assert_key_order_per_file(g.dir());

    // The survivors' metrics add up to what they delivered.
    let delivered: u64 = [&w2, &w3]
        .iter()
        .map(|w| {
            let (_, m) = w.get("/metrics");
            m.lines()
                .find_map(|l| l.strip_prefix("sluice_delivered_total{pipeline=\"clicks\"} "))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let in_files = g.delivered().len() as u64;
    let w1_lines = std::fs::read_to_string(g.dir().join("out-w1.jsonl"))
        .unwrap_or_default()
        .lines()
        .count() as u64;
    assert_eq!(delivered, in_files - w1_lines);
    for w in [&w2, &w3] {
        assert!(
            w.log_lines().iter().any(|l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains("from worker w1"))),
            "{} took a lease from w1:\n{}",
            w.name,
            w.log()
        );
    }
}

#[test]
fn a_worker_stopped_with_sigterm_hands_over_without_duplicates() {
    let g = Group::new(6);
    let mut w1 = g.start("w1");
    let w2 = g.start("w2");
    let w3 = g.start("w3");
    g.wait_for_owners(&[("w1", 2), ("w2", 2), ("w3", 2)], Duration::from_secs(60));
    wait_until_each_holds(&[&w1, &w2, &w3], 2, Duration::from_secs(30));

    g.put_slowly(0, 600, 100, Duration::from_millis(300));
    let stopped = Instant::now();
    w1.terminate();
    g.put_slowly(600, 1200, 100, Duration::from_millis(300));
    assert_eq!(
        w1.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        w1.log()
    );
    eprintln!(
        "w1 drained and exited in {:.1} s",
        stopped.elapsed().as_secs_f64()
    );
    let log = w1.log_lines();
    let last = log.last().unwrap();
    assert_eq!(last["level"], "info", "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .ends_with("released 2 leases"),
        "{last}"
    );
    let took = g.wait_for_owners(&[("w2", 3), ("w3", 3)], Duration::from_secs(30));
    eprintln!(
        "its shards were taken {:.1} s after it exited",
        took.as_secs_f64()
    );
    let ids = g.wait_for_all(1200, Duration::from_secs(60));
    // A clean handoff delivers every record once.
    assert_read_twice_only_as_said(duplicates(&ids), &logs(&[&w1, &w2, &w3]));
    drop((w2, w3));
}

#[test]
fn a_lease_handed_over_while_an_s3_sink_buffers_is_read_once() {
    let g = Group::new(4);
    let s3 = g.lake();
    // The sink buffers for far longer than the failover time: the handoff
    // has the buffers written instead of waiting for their age.
    let pipeline = g.lake_pipeline("lake.yaml", "max_age: 5m", "");
    let mut w1 = g.start_on(&pipeline, "w1");
    wait_until_each_holds(&[&w1], 4, Duration::from_secs(60));

    // Records flow while w2 joins and asks w1 for two of its four shards.
    g.put_slowly(0, 300, 100, Duration::from_millis(300));
    let mut w2 = g.start_on(&pipeline, "w2");
    g.put_slowly(300, 1200, 100, Duration::from_millis(300));
    let took = g.wait_for_owners(&[("w1", 2), ("w2", 2)], Duration::from_secs(60));
    eprintln!(
        "balanced 2-2 {:.1} s after the last put",
        took.as_secs_f64()
    );
    wait_until_each_holds(&[&w1, &w2], 2, Duration::from_secs(30));
    g.put(1200, 1500);

    // A handoff is logged once what was read of the shard is checkpointed:
    // well within the failover time, with nothing left to read again.
    let handed: Vec<String> = w1
        .log_lines()
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .filter(|m| m.starts_with("handed shard "))
        .collect();
    assert_eq!(handed.len(), 2, "{}", w1.log());
    for m in &handed {
        assert!(m.starts_with("handed shard "), "{m}");
        assert!(
            m.ends_with(" over to worker w2") || m.ends_with(" will be read again"),
            "{m}"
        );
    }

    // Once every record is read, both workers stop (writing their buffers),
    // and every record is in S3 once.
    let read = || {
        [&w1, &w2]
            .iter()
            .map(|w| w.metric("sluice_records_in_total{pipeline=\"clicks\"}"))
            .sum::<f64>() as u64
    };
    wait_for_count(
        "records read",
        1500,
        (Duration::from_millis(200), 300),
        read,
    );
    for w in [&mut w1, &mut w2] {
        w.terminate();
        assert_eq!(w.wait_exit(Duration::from_secs(20)), Some(0), "{}", w.log());
    }
    let ids = g.lake_ids(&s3);
    let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    let missing: Vec<i64> = (0..1500).filter(|i| !distinct.contains(i)).collect();
    assert_eq!(missing, Vec::<i64>::new(), "every record delivered");
    // A handoff reads no record twice.
    assert_read_twice_only_as_said(duplicates(&ids), &logs(&[&w1, &w2]));
}

#[test]
fn across_a_split_and_a_merge_each_keys_records_arrive_in_order() {
    let g = Group::resharding(2);
    let mut w1 = g.start("w1");
    let mut w2 = g.start("w2");
    g.wait_for_owners(&[("w1", 1), ("w2", 1)], Duration::from_secs(60));
    wait_until_each_holds(&[&w1, &w2], 1, Duration::from_secs(30));
    g.put_slowly(0, 300, 100, Duration::from_millis(200));

    // Split shard 0 in two (children 2 and 3), then merge 3 with 1 (child 4).
    g.split("shardId-000000000000");
    g.put_slowly(300, 600, 100, Duration::from_millis(200));
    g.rt.block_on(
        g.kinesis
            .merge_shards()
            .stream_name("clicks")
            .shard_to_merge("shardId-000000000003")
            .adjacent_shard_to_merge("shardId-000000000001")
            .send(),
    )
    .unwrap();
    wait_active(&g.rt, &g.kinesis);
    g.put_slowly(600, 900, 100, Duration::from_millis(200));
    g.wait_for_all(900, Duration::from_secs(90));

    // A backlog across a split: the workers stop, shard 2 is split (children
    // 5 and 6) between two bursts, and the workers start again.
    w1.terminate();
    w2.terminate();
    assert_eq!(
        w1.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        w1.log()
    );
    assert_eq!(
        w2.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        w2.log()
    );
    let mut said = logs(&[&w1, &w2]);
    g.put(900, 1200);
    g.split("shardId-000000000002");
    g.put(1200, 1500);
    let (w1, w2) = (g.start("w1"), g.start("w2"));
    let ids = g.wait_for_all(1500, Duration::from_secs(90));
    let dups = duplicates(&ids);
    eprintln!("1500 records across two splits and a merge, none lost, {dups} delivered twice");
    // The restarted workers balance by handing leases over, from checkpoints.
    said.extend(logs(&[&w1, &w2]));
    assert_read_twice_only_as_said(dups, &said);

    // Per key, in delivery order (batch time, then place in a worker's
    // file), the records first seen have growing ids.
    let mut seen: Vec<(String, usize, usize, String, i64)> = Vec::new();
    for (f, w) in ["w1", "w2"].iter().enumerate() {
        let path = g.dir().join(format!("out-{w}.jsonl"));
        for (line, r) in read_jsonl(&path).iter().enumerate() {
            seen.push((
                r["t"].as_str().unwrap().to_owned(),
                f,
                line,
                r["k"].as_str().unwrap().to_owned(),
                r["id"].as_i64().unwrap(),
            ));
        }
    }
    seen.sort();
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    let mut delivered = std::collections::BTreeSet::new();
    for (t, _, _, k, id) in &seen {
        if !delivered.insert(*id) {
            continue;
        }
        if let Some(prev) = last.insert(k, *id) {
            assert!(*id > prev, "key {k}: {id} delivered after {prev} (at {t})");
        }
    }

    // Every shard is accounted for: 0, 1, 2 and 3 read to their end; 4, 5 and 6 open.
    let items =
        g.rt.block_on(
            g.dynamodb
                .scan()
                .table_name("leases")
                .consistent_read(true)
                .send(),
        )
        .unwrap()
        .items
        .unwrap_or_default();
    let mut ended: Vec<String> = items
        .iter()
        .filter(|i| i.get("shard_end").is_some_and(|v| v.as_bool() == Ok(&true)))
        .map(|i| {
            i["shard_key"]
                .as_s()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    ended.sort();
    assert_eq!(
        ended,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    assert_eq!(items.len(), 7);
}

/// `sluice run` reads a stream as a one-worker group: it follows a split
/// too, reading the children once their parent is read to its end.
#[test]
fn sluice_run_reads_the_children_of_a_split_after_their_parent() {
    let g = Group::resharding(1);
    let log = g.dir().join("run.log");
    let mut run = g.spawn_run(&g.pipeline, &log);
    g.put(0, 240);
    g.split("shardId-000000000000");
    g.put(240, 480);
    let ids = g.wait_for_all(480, Duration::from_secs(60));
    assert_eq!(duplicates(&ids), 0);
    assert_key_order_per_file(g.dir());

    // SIGTERM: what was read is delivered, the leases are released.
    let status = sigterm(&mut run);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("stopped on a signal: every record read was delivered or dead-lettered"),
        "{log}"
    );
    assert!(!log.contains("{\"level\""), "no JSON log lines: {log}");
    let items =
        g.rt.block_on(g.dynamodb.scan().table_name("leases").send())
            .unwrap()
            .items
            .unwrap_or_default();
    let mut leases: Vec<(String, bool, bool)> = items
        .iter()
        .map(|i| {
            let shard_end = i.get("shard_end").is_some_and(|v| *v.as_bool().unwrap());
            // A finished lease keeps its last owner: nobody reads it again.
            let held = i.contains_key("lease_owner") && !shard_end;
            (i["shard_key"].as_s().unwrap().clone(), shard_end, held)
        })
        .collect();
    leases.sort();
    assert_eq!(
        leases,
        [
            ("clicks/clicks/shardId-000000000000".to_owned(), true, false),
            (
                "clicks/clicks/shardId-000000000001".to_owned(),
                false,
                false
            ),
            (
                "clicks/clicks/shardId-000000000002".to_owned(),
                false,
                false
            ),
        ],
        "the parent read to its end, every lease released"
    );
}

#[test]
fn a_stalled_sink_stops_reading_memory_stays_bounded_and_delivery_resumes() {
    use common::faults::Proxy;
    let g = Group::new(2);
    let stall = g.dir().join("stall");
    std::fs::write(&stall, "").unwrap();
    // S3 answers every PutObject with 503 SlowDown while `stall` exists.
    let proxy = Proxy::start(
        &g.moto,
        json!([{"op": "S3.PUT", "fault": "error", "status": 503, "code": "SlowDown",
                "message": "Please reduce your request rate.", "while_exists": stall}]),
    );
    let s3 = g.lake();
    let pipeline = g.lake_pipeline(
        "stall.yaml",
        "max_records: 1000, max_age: 1s",
        "retry: { max_attempts: 100000, initial_backoff: 100ms, max_backoff: 500ms, max_elapsed: 10m }\n",
    );
    // Kinesis and DynamoDB straight to moto; S3 through the proxy.
    let mut env = proxy.env(&g.moto);
    env.push(("AWS_ENDPOINT_URL_KINESIS", g.moto.endpoint.clone()));
    env.push(("AWS_ENDPOINT_URL_DYNAMODB", g.moto.endpoint.clone()));
    let w = Daemon::start(
        g.dir(),
        &pipeline,
        "w1",
        &env,
        &["--failover-time", "3s", "--batch-records", "100"],
    );
    wait_until_each_holds(&[&w], 2, Duration::from_secs(60));
    let rss_idle = w.rss_kib();

    // 2 × 10 000 records of 2 KiB (40 MiB) arrive while the sink is stalled.
    let pad = "x".repeat(2048);
    let put = |from: i64, to: i64| {
        let records = (from..to).map(|i| {
            let data = json!({"id": i, "pad": pad}).to_string();
            (format!("k{}", i % 24), data)
        });
        g.rt.block_on(common::aws::put_records(&g.kinesis, "clicks", records));
    };
    put(0, 10_000);
    // Reading stops once the bounded queues between the stages are full:
    // what was read waits, not checkpointed, and the operator sees it per shard.
    let read = |w: &Daemon| -> f64 {
        ["shardId-000000000000", "shardId-000000000001"]
            .iter()
            .map(|s| {
                w.metric(&format!(
                    "sluice_shard_records_in_flight{{pipeline=\"clicks\",shard=\"{s}\"}}"
                ))
            })
            .sum()
    };
    let settle = |w: &Daemon| {
        let mut before = read(w);
        loop {
            std::thread::sleep(Duration::from_secs(3));
            let now = read(w);
            if now == before {
                return now;
            }
            before = now;
        }
    };
    let read_first = settle(&w);
    let rss_first = w.rss_kib();
    put(10_000, 20_000);
    std::thread::sleep(Duration::from_secs(5));
    let read_then = settle(&w);
    let rss_then = w.rss_kib();
    eprintln!(
        "stalled: {read_then} of 20000 records read; RSS {:.1} MiB idle, {:.1} MiB with 20 MiB waiting, {:.1} MiB with 40 MiB waiting",
        rss_idle as f64 / 1024.0,
        rss_first as f64 / 1024.0,
        rss_then as f64 / 1024.0
    );
    assert!(
        read_first <= 2500.0,
        "reading stops while the sink stalls: {read_first} read"
    );
    // What bounds memory is what was read: nothing more is read while the
    // sink stalls, so the 20 MiB that arrived meanwhile wait in the stream.
    // (RSS is printed above, not asserted: on a busy machine it moves by
    // megabytes for reasons of the allocator's own.)
    assert_eq!(
        read_then, read_first,
        "nothing more is read while the sink stalls"
    );
    let rss_stalled = rss_then;
    assert_eq!(w.get("/healthz").0, 200);

    // The sink comes back: everything is delivered, nothing dead-lettered.
    std::fs::remove_file(&stall).unwrap();
    let started = Instant::now();
    let distinct = || {
        let ids: std::collections::BTreeSet<i64> = g.lake_ids(&s3).into_iter().collect();
        ids.len() as u64
    };
    // Objects arrive a buffer at a time: three minutes without one is a hang.
    wait_for_count(
        "delivered after the sink came back",
        20_000,
        (Duration::from_secs(1), 180),
        distinct,
    );
    let ids = g.lake_ids(&s3);
    eprintln!(
        "recovered: 20000 records in S3 {:.1} s after the sink came back, {} delivered twice; peak RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        duplicates(&ids),
        w.rss_kib().max(rss_stalled) as f64 / 1024.0
    );
    assert_eq!(duplicates(&ids), 0);
    assert!(w.metric("sluice_sink_retries_total{pipeline=\"clicks\",sink=\"lake\"}") > 0.0);
    let dlq = std::fs::read_to_string(g.dir().join("dlq.jsonl")).unwrap_or_default();
    assert_eq!(dlq, "", "nothing dead-lettered");
}

#[test]
fn a_dynamodb_stream_is_shared_too_and_a_killed_workers_shard_is_taken_over() {
    use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType, StreamViewType};
    let g = Group::new(1);
    g.rt.block_on(
        common::aws::table_request(&g.dynamodb, "users", "id", ScalarAttributeType::N)
            .stream_specification(common::aws::table_stream(StreamViewType::NewImage))
            .send(),
    )
    .unwrap();
    let pipeline = g.dir().join("users.yaml");
    common::write_pipeline_file(
        &pipeline,
        "users",
        "source: { type: dynamodb_streams, table: users, start_position: trim_horizon, checkpoint_table: leases, poll_interval: 100ms }\n\
         transforms:\n  - { name: id, script: '#{ id: record.NewImage.id }' }\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: 'out-${WORKER}.jsonl', mode: append }\n\
         dlq: { type: file, path: 'dlq-${WORKER}.jsonl', mode: append }\n",
    );
    let put = |from: i64, to: i64| {
        for i in from..to {
            g.rt.block_on(
                g.dynamodb
                    .put_item()
                    .table_name("users")
                    .item("id", AttributeValue::N(i.to_string()))
                    .send(),
            )
            .unwrap();
        }
    };
    // The stream has one shard: one worker reads it, the other stands by.
    let mut a = g.start_on(&pipeline, "a");
    let mut b = g.start_on(&pipeline, "b");
    // A worker takes the free lease on its first pass over the table: the
    // failure is both workers having stopped, not the time it takes (the
    // poll bound only keeps a hang from running forever).
    let mut polls = 0;
    let holder = loop {
        let owners = g.owners();
        if owners.get("a") == Some(&1) {
            break "a";
        }
        if owners.get("b") == Some(&1) {
            break "b";
        }
        assert!(
            a.running() || b.running(),
            "both workers stopped before either took the shard:\n{}\n{}",
            a.log(),
            b.log()
        );
        polls += 1;
        assert!(
            polls < 3000,
            "no worker took the shard (a hang): {owners:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    put(0, 100);
    g.wait_for_all(100, Duration::from_secs(30));
    let (mut gone, other) = if holder == "a" { (a, b) } else { (b, a) };
    gone.kill();
    put(100, 200);
    let took = g.wait_for_owners(&[(other.name.as_str(), 1)], Duration::from_secs(30));
    eprintln!(
        "the DynamoDB stream's shard moved to {} in {:.1} s",
        other.name,
        took.as_secs_f64()
    );
    let ids = g.wait_for_all(200, Duration::from_secs(30));
    assert!(
        duplicates(&ids) <= 100,
        "at most what the killed worker read"
    );
    let held = format!(
        "sluice_leases_held{{pipeline=\"users\",worker=\"{}\"}}",
        other.name
    );
    assert_eq!(other.metric(&held), 1.0);
}

#[test]
fn a_worker_that_cannot_open_its_sinks_gives_its_leases_back() {
    let g = Group::new(2);
    // A file sink under a file: the sink cannot be opened.
    let pipeline = g.dir().join("nosink.yaml");
    std::fs::write(
        &pipeline,
        PIPELINE.replace("'out-${WORKER}.jsonl'", "'pipeline.yaml/out.jsonl'"),
    )
    .unwrap();
    let mut w = g.start_on(&pipeline, "w1");
    assert_eq!(w.wait_exit(Duration::from_secs(30)), Some(2), "{}", w.log());
    let log = w.log_lines();
    let last = log.last().unwrap();
    assert_eq!(last["level"], "error", "{last}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("pipeline.yaml/out.jsonl"),
        "{last}"
    );
    assert_eq!(
        g.owners(),
        BTreeMap::from([("-".to_owned(), 2)]),
        "both leases released"
    );
}

#[test]
fn a_bad_pipeline_is_reported_in_json_log_lines_every_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    common::write_pipeline_file(
        &file,
        "clicks",
        "source: { type: kinesis, stream: clicks, checkpoint_table: leases, poll_interval: fast }\n\
         routes: [{ to: [out] }]\n\
         sinks:\n  out: { type: stdout }\n",
    );
    let out = common::run(common::sluice().arg("daemon").arg(&file));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::stdout(&out), "");
    let lines: Vec<(String, String)> = common::stderr(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON log line");
            assert!(
                v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                "{v}"
            );
            (
                v["level"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let f = file.display();
    assert_eq!(
        lines,
        [
            (
                "error".to_owned(),
                format!("{f}:1:1: error[missing-field]: the pipeline is missing `dlq`")
            ),
            (
                "error".to_owned(),
                format!(
                    "{f}:3:83: error[invalid-value]: `fast` is not a valid `poll_interval` of `source` (type kinesis): write a duration with its unit"
                )
            ),
        ]
    );
}

/// The check of records read twice holds a group to what its logs say.
#[test]
fn records_read_twice_must_be_said() {
    let line = |m: &str| json!({ "level": "info", "message": m }).to_string();
    let handed = line(
        "handed shard shardId-000000000001 over to worker w2, 5 records read and not checkpointed within the failover time will be read again",
    );
    let clean = line("handed shard shardId-000000000002 over to worker w2");
    let logs = |l: &str| vec![("w1".to_owned(), l.to_owned())];
    assert_read_twice_only_as_said(0, &logs(&clean));
    assert_read_twice_only_as_said(5, &logs(&format!("{clean}\n{handed}")));
    let more = std::panic::catch_unwind(|| assert_read_twice_only_as_said(6, &logs(&handed)));
    assert!(more.is_err(), "6 read twice where 5 were said");
    let unsaid = std::panic::catch_unwind(|| assert_read_twice_only_as_said(1, &logs(&clean)));
    assert!(unsaid.is_err(), "1 read twice where none was said");
    let stalled = line("took the lease of shard shardId-000000000003 from worker w1");
    assert_read_twice_only_as_said(40, &logs(&stalled));
}

/// Dedup across a SIGKILL: with the keys in a DynamoDB table, a worker
/// killed in the middle loses nothing, and once every record was delivered
/// and claimed, the producer's resends of all of them are dropped by the
/// workers that remain.
#[test]
fn a_dedup_table_drops_resends_across_a_killed_worker() {
    let g = Group::new(4);
    g.rt.block_on(common::aws::create_table(&g.dynamodb, "seen", "key"));
    let p = g.dir().join("dedup.yaml");
    std::fs::write(
        &p,
        PIPELINE.replace(
            "routes:",
            "dedup: { key: id, ttl: 1h, store: { type: dynamodb, table: seen } }\nroutes:",
        ),
    )
    .unwrap();
    let mut w1 = g.start_on(&p, "w1");
    let w2 = g.start_on(&p, "w2");
    g.wait_for_owners(&[("w1", 2), ("w2", 2)], Duration::from_secs(60));
    wait_until_each_holds(&[&w1, &w2], 2, Duration::from_secs(30));

    // The originals, with w1 killed in the middle.
    g.put_slowly(0, 150, 50, Duration::from_millis(300));
    w1.kill();
    g.put_slowly(150, 300, 50, Duration::from_millis(300));
    g.wait_for_owners(&[("w2", 4)], Duration::from_secs(60));
    let ids = g.wait_for_all(300, Duration::from_secs(60));
    let claimed = |n: usize| {
        wait_while_progressing(
            &format!("{n} keys claimed"),
            || {
                let items =
                    g.rt.block_on(common::aws::items(&g.dynamodb, "seen", "key"));
                (items.len() == n, format!("{} keys", items.len()))
            },
            || g.logs(),
        );
    };
    claimed(300);
    let before = g.delivered();
    let dups = duplicates(&before);
    eprintln!("300 records, none lost, {dups} delivered twice (delivered by w1, not yet claimed)");
    assert!(dups <= 150, "at most what w1 had read: {dups}");
    assert!(ids.len() <= before.len());

    // The producer sends every record again, then 48 new ones: one after
    // each resend on every partition key, so once they are delivered every
    // resend was read.
    g.put(0, 300);
    g.put(300, 348);
    g.wait_for_all(348, Duration::from_secs(60));
    let after = g.delivered();
    let count = |ids: &[i64], id: i64| ids.iter().filter(|i| **i == id).count();
    for id in 0..300 {
        assert_eq!(
            count(&after, id),
            count(&before, id),
            "id {id}: a resend was delivered"
        );
    }
    assert_eq!(after.len(), before.len() + 48);
    claimed(348);
    let (_, metrics) = w2.get("/metrics");
    let deduplicated: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_deduplicated_total{pipeline=\"clicks\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(deduplicated >= 300, "{metrics}");
}

/// A table keyed by group and window, and a pipeline that writes there
/// the count and sum of each key's ids per minute: record `id` happened
/// `id` seconds after 2026-11-24T08:00:00Z.
fn minutes_pipeline(g: &Group) -> PathBuf {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    g.rt.block_on(
        g.dynamodb
            .create_table()
            .table_name("minutes")
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("k", KeyType::Hash))
            .key_schema(key("window_start", KeyType::Range))
            .attribute_definitions(attribute("k"))
            .attribute_definitions(attribute("window_start"))
            .send(),
    )
    .unwrap();
    let p = g.dir().join("minutes.yaml");
    std::fs::write(
        &p,
        minutes_yaml("", "minutes")
            .replace(
                "sinks:\n",
                "sinks:\n  minutes: { type: dynamodb, table: minutes }\n",
            )
            .replace(
                "  out: { type: file, path: 'out-${WORKER}.jsonl', mode: append }\n",
                "",
            ),
    )
    .unwrap();
    p
}

/// `PIPELINE` with record `id` at `id` seconds after 2026-11-24T08:00:00Z
/// and an aggregate of each key's ids per minute (with `more` in it), whose
/// records go to sink `to`.
fn minutes_yaml(more: &str, to: &str) -> String {
    PIPELINE
        .replace(
            "record.t = meta.batch_time; record",
            "record.ts = 1795507200 + record.id; record",
        )
        .replace(
            "routes: [{ to: [out] }]",
            &format!(
                "aggregate:\n  name: per_minute\n  group_by: [k]\n  window: {{ tumbling: 1m }}\n  time: {{ field: ts }}\n  emit: {{ n: count(), total: sum(id) }}\n{more}\
                 routes: [{{ from: per_minute, to: [{to}] }}]"
            ),
        )
}

/// What `minutes_pipeline` must write for ids `0..60 * minutes` (sorted
/// by key and minute), and what the table holds (sorted so).
fn minutes(g: &Group, minutes: i64) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let minute = |w: i64| {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_507_200 + 60 * w as u64);
        let text = humantime::format_rfc3339_seconds(t).to_string();
        format!("{}.000Z", &text[..text.len() - 1])
    };
    let mut want: Vec<serde_json::Value> = Vec::new();
    for k in 0..24 {
        for w in 0..minutes {
            let ids: Vec<i64> = (60 * w..60 * w + 60).filter(|i| i % 24 == k).collect();
            want.push(json!({
                "k": format!("k{k}"), "window_start": minute(w), "window_end": minute(w + 1),
                "n": ids.len(), "total": ids.iter().sum::<i64>(),
            }));
        }
    }
    let key = |v: &serde_json::Value| {
        (
            v["k"].as_str().unwrap_or_default().to_owned(),
            v["window_start"].as_str().unwrap_or_default().to_owned(),
        )
    };
    want.sort_by_key(key);
    let mut items =
        g.rt.block_on(common::aws::items(&g.dynamodb, "minutes", "k"));
    items.sort_by_key(key);
    (want, items)
}

/// Waits until the table holds exactly what `minutes` wants; then stops
/// `last` and checks that nothing it wrote later changed a window.
fn wait_for_minutes(g: &Group, n: i64, last: &mut Daemon) {
    wait_while_progressing(
        "every window written",
        || {
            let (want, got) = minutes(g, n);
            (got == want, format!("{got:?}"))
        },
        || g.logs(),
    );
    last.terminate();
    assert_eq!(
        last.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        g.logs()
    );
    let (want, got) = minutes(g, n);
    assert_eq!(got, want);
}

/// `aggregate:` over the stream, with a worker killed in the middle: the
/// shards it read are taken over, their open windows computed again from
/// their checkpoints, and each window (group and minute) is written once
/// to a DynamoDB table keyed by them, with exactly the count and sum this
/// test computes: nothing lost, nothing counted twice.
#[test]
fn a_killed_workers_windows_are_computed_again_by_the_worker_that_takes_its_shards() {
    let g = Group::new(4);
    let p = minutes_pipeline(&g);
    let mut w1 = g.start_on(&p, "w1");
    let mut w2 = g.start_on(&p, "w2");
    g.wait_for_owners(&[("w1", 2), ("w2", 2)], Duration::from_secs(60));
    wait_until_each_holds(&[&w1, &w2], 2, Duration::from_secs(30));
    g.put_slowly(0, 150, 25, Duration::from_millis(300));
    w1.kill();
    g.put_slowly(150, 300, 25, Duration::from_millis(300));
    // A record of each key a minute later closes every minute before it.
    g.put(1020, 1044);
    g.wait_for_owners(&[("w2", 4)], Duration::from_secs(60));
    wait_for_minutes(&g, 5, &mut w2);
}

/// A worker that joins takes shards over from one whose windows over them
/// are open: the first gives those windows and their batches up at once
/// (it does not wait for the failover time), and the second computes them
/// again from the checkpoints. Each window is written once, exactly.
#[test]
fn windows_of_a_shard_handed_over_are_computed_by_its_new_reader() {
    handed_over(false);
}

/// The same with `dedup:` (a DynamoDB store): the keys of the batches the
/// first worker gave up are not claimed, so the new reader, reading them
/// again, does not drop them as duplicates: every window is still exact.
#[test]
fn with_dedup_the_keys_of_batches_given_up_are_not_claimed() {
    handed_over(true);
}

fn handed_over(dedup: bool) {
    let g = Group::new(4);
    let p = minutes_pipeline(&g);
    if dedup {
        g.rt.block_on(common::aws::create_table(&g.dynamodb, "seen", "key"));
        let yaml = std::fs::read_to_string(&p).unwrap().replace(
            "aggregate:",
            "dedup: { key: id, ttl: 1h, store: { type: dynamodb, table: seen } }\naggregate:",
        );
        std::fs::write(&p, yaml).unwrap();
    }
    let mut w1 = g.start_on(&p, "w1");
    g.wait_for_owners(&[("w1", 4)], Duration::from_secs(60));
    wait_until_each_holds(&[&w1], 4, Duration::from_secs(30));
    g.put_slowly(0, 150, 25, Duration::from_millis(300));
    let mut w2 = g.start_on(&p, "w2");
    g.wait_for_owners(&[("w1", 2), ("w2", 2)], Duration::from_secs(60));
    g.put_slowly(150, 300, 25, Duration::from_millis(300));
    g.put(1020, 1044);
    wait_while_progressing(
        "every window written",
        || {
            let (want, got) = minutes(&g, 5);
            (got == want, format!("{got:?}"))
        },
        || g.logs(),
    );
    w1.terminate();
    assert_eq!(
        w1.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        g.logs()
    );
    wait_for_minutes(&g, 5, &mut w2);
    // w1 left the windows of the shards it handed over to w2, whose
    // checkpoints it did not move past them, and did not wait for them.
    let logs = g.logs();
    assert!(
        logs.contains("is read by another worker now: its open windows are left to it"),
        "{logs}"
    );
    assert!(logs.contains("handed shard"), "{logs}");
    assert!(!logs.contains("within the failover time"), "{logs}");
}

/// `aggregate:` across a split, under `sluice run`: the parent shard read to
/// its end emits its windows, the children theirs; a minute that spans the
/// split has a record from the parent and one from a child (each naming its
/// shard), whose counts add up to the minute's; no window is emitted twice.
#[test]
fn across_a_split_a_parents_windows_are_emitted_at_its_end() {
    let g = Group::resharding(1);
    let p = g.dir().join("minutes.yaml");
    std::fs::write(
        &p,
        minutes_yaml(
            "  transforms: [{ name: shard, script: 'record.shard = meta.shard; record' }]\n",
            "out",
        ),
    )
    .unwrap();
    let log = g.dir().join("run.log");
    let mut run = g.spawn_run(&p, &log);
    g.put(0, 210);
    g.split("shardId-000000000000");
    g.put(210, 480);
    // A record of each key minutes later closes every minute before it.
    g.put(1020, 1044);
    // Per key and minute: the count and sum of its ids.
    let mut want: BTreeMap<(String, i64), (u64, i64)> = BTreeMap::new();
    for id in 0..480_i64 {
        let e = want.entry((format!("k{}", id % 24), id / 60)).or_default();
        e.0 += 1;
        e.1 += id;
    }
    let out = g.dir().join("out-run.jsonl");
    let sums = || {
        let mut got: BTreeMap<(String, i64), (u64, i64)> = BTreeMap::new();
        let mut parts: Vec<(String, String, String)> = Vec::new();
        let records = if out.exists() {
            read_jsonl(&out)
        } else {
            Vec::new()
        };
        for r in records {
            let start = humantime::parse_rfc3339(r["window_start"].as_str().unwrap())
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let minute = (start - 1_795_507_200) / 60;
            let e = got
                .entry((r["k"].as_str().unwrap().to_owned(), minute))
                .or_default();
            e.0 += r["n"].as_u64().unwrap();
            e.1 += r["total"].as_i64().unwrap();
            parts.push((
                r["k"].as_str().unwrap().to_owned(),
                r["window_start"].as_str().unwrap().to_owned(),
                r["shard"].as_str().unwrap().to_owned(),
            ));
        }
        (got, parts)
    };
    wait_while_progressing(
        "every minute counted",
        || {
            let got = sums().0;
            (got == want, format!("{got:?}"))
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
    );
    let status = sigterm(&mut run);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    let (got, mut parts) = sums();
    assert_eq!(got, want);
    let n = parts.len();
    parts.sort();
    parts.dedup();
    assert_eq!(parts.len(), n, "a window emitted twice");
    // Minute 3 spans the split: the parent's part and a child's.
    let minute3: Vec<&(String, String, String)> = parts
        .iter()
        .filter(|(k, start, _)| k == "k0" && start.starts_with("2026-11-24T08:03"))
        .collect();
    assert_eq!(minute3.len(), 2, "{minute3:?}");
    assert_eq!(minute3[0].2, "shardId-000000000000");
    assert_ne!(minute3[1].2, "shardId-000000000000");
}
