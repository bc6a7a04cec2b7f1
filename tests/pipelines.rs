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
fn the_example_pipelines_exist() {
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
    for expected in [
        "clickstream",
        "iot-telemetry",
        "orders",
        "quickstart",
        "sales-totals",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "missing pipelines/{expected}: {names:?}"
        );
    }
}

/// Every pipeline file of the examples: `pipeline.yaml` and its variants
/// (such as `sales-totals/dynamodb.yaml`), but not the test files.
fn pipeline_files() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for p in pipelines() {
        let dir = p.parent().unwrap();
        for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_example_pipeline_checks_clean() {
    let files = pipeline_files();
    assert!(
        files.len() > pipelines().len(),
        "the variants are found too: {files:?}"
    );
    for p in files {
        let o = run(sluice().arg("check").arg(&p));
        assert_eq!(o.status.code(), Some(0), "{}:\n{}", p.display(), stderr(&o));
        assert_eq!(stderr(&o), format!("{}: ok\n", p.display()));
    }
}

/// Every pipeline file of the examples, variants too: a folder's test
/// cases run with each of them.
#[test]
fn every_example_pipeline_passes_its_tests() {
    for p in pipeline_files() {
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

/// Every complete pipeline shown in the docs (a ```yaml block that starts with
/// `version: 1`) passes `sluice check` without warnings.
#[test]
fn every_pipeline_in_the_docs_checks_clean() {
    let mut checked = 0;
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.push(root().join("README.md"));
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap_or_default();
            let complete = (block.starts_with("version: 1\n") || block.contains("\nversion: 1\n"))
                && block.lines().any(|l| l.starts_with("dlq:"));
            if !complete {
                continue;
            }
            // A block that shows an example pipeline is checked in that
            // pipeline's folder, where its schema and script files are.
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("name: "))
                .map(str::trim)
                .unwrap_or_default();
            let example = root().join("pipelines").join(name);
            let dir = if !name.is_empty() && example.is_dir() {
                tempfile::tempdir_in(&example).unwrap()
            } else {
                tempfile::tempdir().unwrap()
            };
            let path = dir
                .path()
                .join("..")
                .join(format!(".doc-check-{}.yaml", std::process::id()));
            let path = if !name.is_empty() && example.is_dir() {
                path
            } else {
                dir.path().join("pipeline.yaml")
            };
            std::fs::write(&path, block).unwrap();
            let o = run(sluice().arg("check").arg(&path));
            assert_eq!(
                (o.status.code(), stderr(&o)),
                (Some(0), format!("{}: ok\n", path.display())),
                "block #{} of {}",
                i + 1,
                doc.display()
            );
            if path.starts_with(root().join("pipelines")) {
                std::fs::remove_file(&path).unwrap();
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} pipelines found in the docs");
}
