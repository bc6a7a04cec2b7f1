//! The reference orders workload (`bench/workload`) for the tests that run
//! it through AWS: generated orders, and what the file pipeline
//! (`pipelines/orders/pipeline.yaml`) makes of them.

use std::path::Path;
use std::process::Command;

use super::{root, run, sluice, stderr};

/// Generates `n` orders (seed 7) as `orders.jsonl` in `dir`, runs the file
/// pipeline on them into `dir/file` (`archive.jsonl`, `big_orders.jsonl`,
/// `dlq.jsonl`), and returns the lines.
pub fn orders_and_file_outputs(dir: &Path, n: usize) -> Vec<String> {
    let jsonl = dir.join("orders.jsonl");
    let o = run(Command::new("python3")
        .arg(root().join("bench/workload/gen_orders.py"))
        .args(["jsonl", "-n", &n.to_string(), "--seed", "7", "-o"])
        .arg(&jsonl));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(sluice()
        .args([
            "run",
            "pipelines/orders/pipeline.yaml",
            "--summary-format",
            "json",
        ])
        .current_dir(root())
        .env("ORDERS_INPUT", &jsonl)
        .env("OUT_DIR", dir.join("file")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
