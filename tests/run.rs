//! `sluice run` end to end on small inputs: the summary, the sinks, the
//! dead-letter envelopes, and bad input that must never crash a run.

mod common;

use common::{run, sluice, stderr, summary};

#[test]
fn quickstart_runs_from_the_readme() {
    let o = run(sluice()
        .args(["run", "pipelines/quickstart/pipeline.yaml", "--summary-format", "json"])
        .current_dir(common::root()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["records_in"], 6);
    assert_eq!(s["sinks"], serde_json::json!({"all": 3, "paid": 1}));
    assert_eq!(s["filtered"], 1);
    assert_eq!(s["dead_lettered"]["validate"], 1);
    assert_eq!(s["dead_lettered"]["parse"], 1);
    assert_eq!(s["balanced"], true);
}
