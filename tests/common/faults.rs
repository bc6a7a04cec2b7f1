//! Fault injection: `mitmdump` (mitmproxy, installed into the test venv) as a
//! reverse proxy in front of a [`Moto`], running `tests/faults/inject.py`,
//! which throttles chosen calls or fails some entries of a batch call the way
//! AWS does. moto itself never throttles and never fails part of a batch.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::moto::Moto;
use super::{python, root, serve};

/// A running proxy, stopped when dropped.
pub struct Proxy {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy to `moto` applying `rules` (see `tests/faults/inject.py`).
    pub fn start(moto: &Moto, rules: serde_json::Value) -> Proxy {
        let py = python();
        let mitmdump = py.parent().expect("venv bin").join("mitmdump");
        assert!(
            mitmdump.exists(),
            "mitmdump is missing from {}: install it with `pip install -r tests/requirements.txt`",
            mitmdump.display()
        );
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log = dir.path().join("calls.jsonl");
        let (child, port) = serve("mitmdump", Duration::from_secs(30), &String::new, |port| {
            Command::new(&mitmdump)
                .arg("--mode")
                .arg(format!("reverse:{}", moto.endpoint))
                .args([
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    &port.to_string(),
                ])
                .arg("--set")
                .arg(format!("confdir={}", dir.path().display()))
                .arg("-s")
                .arg(root().join("tests/faults/inject.py"))
                .arg("-q")
                .env("SLUICE_FAULTS", rules.to_string())
                .env("SLUICE_FAULTS_LOG", &log)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", mitmdump.display()))
        });
        Proxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// Environment for a `sluice` process whose AWS calls go through the proxy.
    pub fn env(&self, moto: &Moto) -> Vec<(&'static str, String)> {
        moto.env()
            .into_iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT_URL" {
                    (k, self.endpoint.clone())
                } else {
                    (k, v)
                }
            })
            .collect()
    }

    /// The calls that went through, in order: `{"op", "call", "entries", "fault"}`.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The calls of one operation: (entries, fault) each.
    pub fn calls_of(&self, op: &str) -> Vec<(Option<u64>, Option<String>)> {
        self.calls()
            .into_iter()
            .filter(|c| c["op"] == op)
            .map(|c| {
                (
                    c["entries"].as_u64(),
                    c["fault"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
