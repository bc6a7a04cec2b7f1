//! The peer runs the orders workload: on a small generated data set, the
//! Rhai chain and the native one write the same sinks, and every record
//! ends in exactly one place.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A sink's records without `processed_at`, the one field that differs run to run.
fn records(dir: &Path, sink: &str) -> Vec<serde_json::Value> {
    let mut out = lines(&dir.join(format!("{sink}.jsonl")));
    for r in &mut out {
        r.as_object_mut().unwrap().remove("processed_at");
    }
    out
}

#[test]
fn both_transforms_write_the_same_sinks_and_lose_no_record() {
    let t = tempfile_dir();
    let events = t.join("events");
    let generated = Command::new("python3")
        .arg(root().join("bench/workload/gen_orders.py"))
        .args([
            "kinesis", "-n", "2000", "--seed", "7", "--batch", "100", "-o",
        ])
        .arg(&events)
        .status()
        .expect("python3 runs the generator");
    assert!(generated.success());
    let schema = root().join("bench/workload/schemas/order.schema.json");
    let mut outs = Vec::new();
    for transform in ["rhai", "native"] {
        let out = t.join(transform);
        let o = Command::new(env!("CARGO_BIN_EXE_rust-chain"))
            .arg(&events)
            .arg(&schema)
            .arg(&out)
            .args(["1", "--transform", transform])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["impl"], format!("rust-chain-{transform}"));
        assert_eq!(report["records"], 2000);
        outs.push(out);
    }
    for sink in ["archive", "big_orders"] {
        assert_eq!(records(&outs[0], sink), records(&outs[1], sink), "{sink}");
    }
    assert_eq!(
        lines(&outs[0].join("dlq.jsonl")),
        lines(&outs[1].join("dlq.jsonl"))
    );
    let archive = records(&outs[0], "archive");
    let dlq = lines(&outs[0].join("dlq.jsonl"));
    let filtered = (2000 - archive.len() - dlq.len()) as f64;
    // The generator makes about 1% of customers `test-` ones.
    assert!(filtered > 0.0 && filtered < 60.0, "{filtered} filtered");
    assert!(
        records(&outs[0], "big_orders")
            .iter()
            .all(|r| r["tier"] == "big" && r["total"].as_f64().unwrap() > 1000.0)
    );
    assert!(
        dlq.iter()
            .all(|e| e["stage"] == "parse" || e["stage"] == "validate")
    );
}

/// A fresh folder under the target directory.
fn tempfile_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("workload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
