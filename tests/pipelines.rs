//! Every example pipeline under `pipelines/` passes `sluice check` without
//! warnings and its own `sluice test` cases.

mod common;

use common::{root, run, sluice, stderr, stdout};

fn pipelines() -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(root().join("pipelines"))
        .expect("pipelines/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path().join("pipeline.yaml"))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    out
}

#[test]
fn the_four_example_pipelines_exist() {
    let names: Vec<String> = pipelines()
        .iter()
        .map(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for expected in ["iot-telemetry", "orders", "quickstart", "sales-totals"] {
        assert!(
            names.contains(&expected.to_owned()),
            "missing pipelines/{expected}: {names:?}"
        );
    }
}

#[test]
fn every_example_pipeline_checks_clean() {
    for p in pipelines() {
        let o = run(sluice().arg("check").arg(&p));
        assert_eq!(o.status.code(), Some(0), "{}:\n{}", p.display(), stderr(&o));
        assert_eq!(stderr(&o), format!("{}: ok\n", p.display()));
    }
}

#[test]
fn every_example_pipeline_passes_its_tests() {
    for p in pipelines() {
        let o = run(sluice().arg("test").arg(&p));
        let out = stdout(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}:\n{out}{}",
            p.display(),
            stderr(&o)
        );
        let last = out.lines().last().unwrap_or_default();
        assert!(
            last.ends_with(" passed, 0 failed") && !last.starts_with("0 "),
            "{}: {last}",
            p.display()
        );
    }
}
