//! `sluice eval` through the real binary: a script on standard input's
//! records, a pipeline's transforms and routes, a session, and `print`.

mod common;

use common::{run_with_stdin, sluice, stderr, stdout};

fn eval(args: &[&str], input: &str) -> (i32, String, String) {
    let o = run_with_stdin(
        sluice().arg("eval").args(args).current_dir(common::root()),
        input.as_bytes(),
    );
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

#[test]
fn a_script_runs_on_each_record_of_standard_input() {
    let (code, out, err) = eval(
        &["record.b = record.a + 1; record"],
        "{\"a\":1}\n\n{\"a\":41}\n",
    );
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "{\"a\":1,\"b\":2}\n{\"a\":41,\"b\":42}\n", "")
    );
}

#[test]
fn a_failing_record_prints_its_envelope_and_the_others_go_on() {
    let (code, out, err) = eval(
        &[
            "if record.skip == true { return (); } record.t = parse_timestamp(record.at); [record, #{ copy: true }]",
        ],
        "{\"at\":\"2026-01-02T03:04:05Z\"}\n{\"at\":\"yesterday\"}\n{\"skip\":true}\nnot json\n",
    );
    assert_eq!(code, 1, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        serde_json::json!({"at": "2026-01-02T03:04:05Z", "t": 1_767_323_045_000_i64})
    );
    assert_eq!(lines[1], serde_json::json!({"copy": true}));
    assert_eq!(lines[2]["stage"], "transform");
    assert_eq!(lines[2]["step"], "eval");
    assert_eq!(
        lines[2]["error"],
        "parse_timestamp: \"yesterday\" is not an RFC 3339 or ISO 8601 timestamp with an offset (script line 1, column 50)"
    );
    assert_eq!(lines[3]["stage"], "parse");
    assert_eq!(err, "record 3: filtered (a script returned `()` or `[]`)\n");
}

#[test]
fn a_script_that_does_not_compile_is_reported_and_a_mistake_warned_about() {
    let (code, out, err) = eval(&["record.b = "], "{}\n");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("error[script-syntax]: Script is incomplete"),
        "{err}"
    );
    assert!(err.contains("<script>:1:"), "{err}");
    let (code, out, err) = eval(&["record.b = 1"], "{}\n");
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(
        err.starts_with("warning[script-mistake]: the script ends with an assignment, so it returns `()`, which filters every record"),
        "{err}"
    );
    assert!(
        err.ends_with("record 1: filtered (a script returned `()` or `[]`)\n"),
        "{err}"
    );
}

#[test]
fn print_and_debug_write_to_standard_error() {
    let (code, out, err) = eval(
        &["print(`seen ${record.a}`); debug(record.a); record"],
        "{\"a\":7}\n",
    );
    assert_eq!((code, out.as_str()), (0, "{\"a\":7}\n"));
    assert_eq!(err, "seen 7\ndebug (script line 1, column 28): 7\n");
}

#[test]
fn a_pipeline_runs_its_transforms_one_of_them_or_its_routes() {
    let quickstart = "pipelines/quickstart/pipeline.yaml";
    let input = "{\"user\":\"ada\",\"email\":\"ada@example.com\",\"plan\":\"pro\"}\n{\"user\":\"bob\",\"email\":\"bob@example.org\",\"plan\":\"gold\"}\n";
    let (code, out, _) = eval(&["--pipeline", quickstart], input);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!({"user": "ada", "email": "ada@example.com", "plan": "pro", "domain": "example.com", "paid": true})
    );
    assert_eq!(lines[1]["stage"], "validate");
    // One transform: validation is skipped.
    let (code, out, _) = eval(&["--pipeline", quickstart, "--transform", "enrich"], input);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    // Routes: the sinks each record would go to.
    let (code, out, _) = eval(
        &["--pipeline", quickstart, "--route"],
        &input[..input.find('\n').unwrap() + 1],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "{\"record\":{\"domain\":\"example.com\",\"email\":\"ada@example.com\",\"paid\":true,\"plan\":\"pro\",\"user\":\"ada\"},\"sinks\":[\"all\",\"paid\"]}\n"
    );
    let (code, _, err) = eval(&["--pipeline", quickstart, "--transform", "nope"], input);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: pipelines/quickstart/pipeline.yaml has no transform `nope`; it has: enrich\n"
    );
}

#[test]
fn a_session_keeps_the_record_between_lines() {
    let (code, out, err) = eval(
        &["-i", "--record", "{\"name\":\"  Ana \"}"],
        "record.name.trim()\nrecord.name\nlet n = record.name.len();\nn * 2\nrecord.nope * 2\n:record\n:quit\nrecord\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "null\n\"Ana\"\nnull\n6\n{\"name\":\"Ana\"}\n");
    assert_eq!(
        err,
        "error: `record.nope` is () (missing or null), so `record.nope * 2` cannot be computed: `*` takes no () (() * i64) (script line 1, column 13)\n"
    );
}

/// Positions of compile errors and mistakes are the script's own columns.
#[test]
fn compile_errors_and_mistakes_are_at_their_column() {
    let (_, _, err) = eval(&["let y = 1 +;"], "{}\n");
    assert!(err.contains("--> <script>:1:12"), "{err}");
    let (_, _, err) = eval(&["record.b = 1"], "{}\n");
    assert!(err.contains("--> <script>:1:1"), "{err}");
}

/// A pipeline's records come from standard input: an envelope says so.
#[test]
fn a_pipelines_dead_letters_name_standard_input() {
    let (_, out, _) = eval(
        &["--pipeline", "pipelines/quickstart/pipeline.yaml"],
        "not json\n",
    );
    let envelope: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        envelope["source"],
        serde_json::json!({"type": "file", "file": "<stdin>", "line": 1})
    );
}
