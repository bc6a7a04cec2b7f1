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
