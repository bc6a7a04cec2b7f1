//! Hostile scripts (`tests/hostile/*.rhai`): loops, recursion, allocation
//! by every container type and by what Rhai does not count, time, waiting,
//! a clock, errors, and returned values with no JSON form. Each runs as the
//! transform of a pipeline over three records, of which only the middle one
//! meets the attack: that record is dead-lettered at `transform` with the
//! error its file's first line names (`// expect: …`), the two others are
//! delivered, the run exits 0, and its peak memory stays under
//! [`RSS_BOUND`].

mod common;

use common::{read_jsonl, root, run, sluice};
use serde_json::json;

/// Peak RSS every run stays under: the default `max_memory_bytes` (64 MiB)
/// is what bounds a script, the rest is the process itself.
const RSS_BOUND: u64 = 256 * 1024 * 1024;

#[test]
fn each_hostile_script_dead_letters_only_its_record() {
    let mut scripts: Vec<_> = std::fs::read_dir(root().join("tests/hostile"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 30, "{} hostile scripts", scripts.len());
    let mut wrong = Vec::new();
    for path in &scripts {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{name}: the first line says `// expect: …`"))
            .to_owned();
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("hostile.rhai"),
            format!("if record.k == \"good\" {{ return record; }}\n{text}"),
        )
        .unwrap();
        // Only the attack on time races the clock: every other one must be
        // stopped by its own limit however busy the machine is.
        let time = if expect.contains("max_time_per_record") {
            "500ms"
        } else {
            "1h"
        };
        common::write_pipeline(
            t.path(),
            "hostile",
            &format!(
                "source: {{ type: file, path: in.jsonl }}\n\
             limits: {{ max_operations: 1000000, max_time_per_record: {time} }}\n\
             transforms:\n  - {{ name: hostile, file: hostile.rhai }}\n\
             routes: [{{ to: [out] }}]\n\
             sinks:\n  out: {{ type: file, path: out/out.jsonl }}\n\
             dlq: {{ type: file, path: out/dlq.jsonl }}\n"
            ),
        );
        std::fs::write(
            t.path().join("in.jsonl"),
            "{\"k\":\"good\",\"n\":1}\n{\"k\":\"bad\",\"n\":2}\n{\"k\":\"good\",\"n\":3}\n",
        )
        .unwrap();
        let o = run(sluice()
            .arg("run")
            .arg(t.path().join("pipeline.yaml"))
            .args(["--summary-format", "json", "--workers", "1"]));
        let (code, s, err) = common::outcome(&o);
        if code != 0 {
            wrong.push(format!("{name}: exit {code}: {err}"));
            continue;
        }
        let rss = s["peak_rss_bytes"].as_u64().unwrap_or(u64::MAX);
        if rss >= RSS_BOUND {
            wrong.push(format!("{name}: peak RSS {} MiB", rss >> 20));
        }
        let out = read_jsonl(&t.path().join("out/out.jsonl"));
        if out != vec![json!({"k": "good", "n": 1}), json!({"k": "good", "n": 3})] {
            wrong.push(format!("{name}: delivered {out:?}"));
        }
        let dlq = read_jsonl(&t.path().join("out/dlq.jsonl"));
        let ok = dlq.len() == 1
            && dlq[0]["stage"] == "transform"
            && dlq[0]["step"] == "hostile"
            && dlq[0]["data"] == "{\"k\":\"bad\",\"n\":2}"
            && dlq[0]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(&expect));
        if !ok {
            wrong.push(format!("{name}: expected `{expect}`, dead letters {dlq:?}"));
        }
        if s["balanced"] != true || s["dead_lettered"]["transform"] != 1 {
            wrong.push(format!("{name}: summary {s}"));
        }
        eprintln!("{name}: peak RSS {} MiB", rss >> 20);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
