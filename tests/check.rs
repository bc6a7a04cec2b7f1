//! `sluice check` diagnostics, exactly: each case under `tests/check/` is a
//! pipeline (`NAME.yaml`) with the expected output beside it, in the short
//! form (`NAME.short`, one `file:line:col: error[code]: message` per line),
//! the human form (`NAME.human`) and JSON (`NAME.json`). Set `SLUICE_BLESS=1` to rewrite the
//! expected files after a deliberate change, and review the diff.

mod common;

use common::{root, run, sluice, stderr, stdout};

fn cases() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join("tests/check"))
        .expect("tests/check exists")
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".yaml"))
                .map(str::to_owned)
        })
        .collect();
    out.sort();
    out
}

fn expect_file(name: &str, actual: &str) {
    let path = root().join("tests/check").join(name);
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {}", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

#[test]
fn diagnostics_match_the_expected_files() {
    let cases = cases();
    assert!(cases.len() >= 8, "too few check cases: {cases:?}");
    for case in cases {
        let file = format!("tests/check/{case}.yaml");
        for (format, ext) in [("short", "short"), ("human", "human"), ("json", "json")] {
            let o = run(sluice()
                .args(["check", "--format", format, &file])
                .current_dir(root())
                .env("SLUICE_TEST_SET", "set"));
            let code = o.status.code().unwrap_or(-1);
            // JSON goes to standard output, for tools; the text forms to standard error.
            let text = if format == "json" {
                stdout(&o)
            } else {
                stderr(&o)
            };
            expect_file(&format!("{case}.{ext}"), &format!("exit {code}\n{text}"));
        }
    }
}

/// A folder is checked as every pipeline under it (test files left out),
/// and `-` reads a pipeline from standard input.
#[test]
fn a_folder_and_standard_input_are_checked() {
    let o = run(sluice().args(["check", "pipelines"]).current_dir(root()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "pipelines/clickstream/pipeline.yaml: ok\n\
         pipelines/iot-telemetry/kinesis.yaml: ok\n\
         pipelines/iot-telemetry/pipeline.yaml: ok\n\
         pipelines/orders/kinesis.yaml: ok\n\
         pipelines/orders/pipeline.yaml: ok\n\
         pipelines/orders-dedup/kinesis.yaml: ok\n\
         pipelines/orders-dedup/pipeline.yaml: ok\n\
         pipelines/orders-enriched/kinesis.yaml: ok\n\
         pipelines/orders-enriched/pipeline.yaml: ok\n\
         pipelines/product-sales/pipeline.yaml: ok\n\
         pipelines/quickstart/pipeline.yaml: ok\n\
         pipelines/sales-totals/dynamodb.yaml: ok\n\
         pipelines/sales-totals/pipeline.yaml: ok\n\
         pipelines/sales-totals/streams.yaml: ok\n"
    );
    let o = common::run_with_stdin(
        sluice().args(["check", "--format", "short", "-"]),
        b"version: 1\nname: t\nsource: { type: stdin }\nroutes: [{ to: [out] }]\nsinks:\n  out: { type: stdout, colour: red }\ndlq: { type: stdout }\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("<stdin>:6:24: error[unknown-field]: "),
        "{err}"
    );
}

/// Test files are diagnosed like pipelines (every error, at its line, with
/// did-you-mean), and a broken case does not keep the others from running:
/// `tests/testing/broken.out` is the output of `sluice test` on it.
#[test]
fn test_file_diagnostics_match_the_expected_file() {
    let o = run(sluice()
        .args(["test", "tests/testing/broken/pipeline.yaml"])
        .current_dir(root()));
    let actual = format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.status.code().unwrap_or(-1),
        stdout(&o),
        stderr(&o)
    );
    let path = root().join("tests/testing/broken.out");
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// `sluice test --bless` rewrites the failing cases' `expect` as what they
/// produced, leaves the rest of the file as it was, and the cases then pass.
#[test]
fn bless_rewrites_only_the_failing_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bless");
    std::fs::create_dir_all(copy.join("tests")).unwrap();
    let source = root().join("tests/testing/bless");
    std::fs::copy(source.join("pipeline.yaml"), copy.join("pipeline.yaml")).unwrap();
    std::fs::copy(
        source.join("tests/cases.yaml"),
        copy.join("tests/cases.yaml"),
    )
    .unwrap();
    let pipeline = copy.join("pipeline.yaml");
    let o = run(sluice().arg("test").arg(&pipeline));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).ends_with("1 passed, 3 failed\n"),
        "{}",
        stdout(&o)
    );
    let o = run(sluice().args(["test", "--bless"]).arg(&pipeline));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with("1 passed, 0 failed, 3 blessed\n"),
        "{}",
        stdout(&o)
    );
    let blessed = std::fs::read_to_string(copy.join("tests/cases.yaml")).unwrap();
    let expected =
        std::fs::read_to_string(root().join("tests/testing/bless.expected.yaml")).unwrap();
    assert_eq!(blessed, expected);
    let o = run(sluice().arg("test").arg(&pipeline));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("4 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );
}

/// `--deny warnings` reports a warning as an error and exits with 1.
#[test]
fn deny_warnings_makes_a_warning_an_error() {
    let file = "tests/check/warning_only.yaml";
    let o = run(sluice()
        .args(["check", "--format", "short", file])
        .current_dir(root()));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stderr(&o),
        "tests/check/warning_only.yaml:8:3: warning[unused-sink]: sink `spare` is not used by any route\n"
    );
    for flag in [["--deny", "warnings"], ["-D", "warnings"]] {
        let o = run(sluice()
            .args(["check", "--format", "short"])
            .args(flag)
            .arg(file)
            .current_dir(root()));
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            stderr(&o),
            "tests/check/warning_only.yaml:8:3: error[unused-sink]: sink `spare` is not used by any route\n"
        );
    }
}

/// `--mode` refuses a source the mode does not read, at the source's `type`,
/// in the words of docs/sources.md; a source the mode reads passes.
#[test]
fn mode_names_a_source_the_mode_does_not_read() {
    let check = |mode: &str, file: &str| {
        run(sluice()
            .args(["check", "--format", "short", "--mode", mode, file])
            .current_dir(root()))
    };
    let o = check("lambda", "pipelines/orders/pipeline.yaml");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "pipelines/orders/pipeline.yaml:6:9: error[unsupported-mode]: a `file` source is read by `sluice run` only, not by Lambda mode; a service or a function reads a stream: `sqs`, `kinesis` or `dynamodb_streams`\n"
    );
    for mode in ["run", "daemon", "lambda"] {
        let o = check(mode, "pipelines/orders/kinesis.yaml");
        assert_eq!((o.status.code(), stderr(&o)), (Some(0), String::new()));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kafka.yaml");
    common::write_pipeline_file(
        &p,
        "k",
        "source:\n  type: kafka\n  topic: orders\n  cluster_arn: arn:aws:kafka:us-east-1:123456789012:cluster/c/x\n\
         routes: [{ to: [out] }]\nsinks: { out: { type: stdout } }\ndlq: { type: stdout }\n",
    );
    let o = check("run", p.to_str().unwrap());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "{}:4:9: error[unsupported-mode]: a `kafka` source is read by Lambda mode only, not by `sluice run` (a Lambda event source mapping reads the topic): deploy it with `sluice deploy template`, or try it with `sluice test`\n",
            p.display()
        )
    );
}
