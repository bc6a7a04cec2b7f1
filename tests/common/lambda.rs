//! Lambda mode under a real Lambda Runtime API emulator: `cargo lambda
//! watch --only-lambda-apis` (cargo-lambda, installed into the test venv)
//! serves the Runtime API on a free 127.0.0.1 port, the `sluice` binary runs
//! as the function against it, and events go in through `cargo lambda invoke
//! --data-file`, as they would through the Lambda service.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{python, root, serve};

/// A running emulator and function, both stopped when dropped.
pub struct Lambda {
    watch: Child,
    function: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// `cargo-lambda` in the test venv, run directly (as `cargo-lambda lambda
/// …`, what `cargo lambda …` runs) so that stopping it stops the emulator.
fn cargo_lambda() -> Command {
    let bin = python().parent().expect("venv bin").join("cargo-lambda");
    assert!(
        bin.exists(),
        "cargo-lambda is missing from {}: install it with `pip install -r tests/requirements.txt`",
        bin.display()
    );
    let mut c = Command::new(bin);
    c.arg("lambda").current_dir(root());
    c
}

impl Lambda {
    /// Starts the emulator, then the function with `SLUICE_PIPELINE=pipeline`
    /// and `env` (AWS endpoint, margins …).
    pub fn start(pipeline: &Path, env: &[(&str, String)]) -> Lambda {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let watch_log = dir.path().join("watch.log");
        let context = || std::fs::read_to_string(&watch_log).unwrap_or_default();
        let (watch, port) = serve(
            "cargo lambda watch",
            Duration::from_secs(60),
            &context,
            |port| {
                cargo_lambda()
                    .args([
                        "watch",
                        "--only-lambda-apis",
                        "--invoke-address",
                        "127.0.0.1",
                    ])
                    .args(["--invoke-port", &port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&watch_log).expect("a log file"))
                    .spawn()
                    .expect("cargo lambda watch starts")
            },
        );
        let function = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("SLUICE_PIPELINE", pipeline)
            // As many workers on every machine, so that chunking is the same.
            .env("SLUICE_WORKERS", "2")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).expect("a log file"))
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("a log file"))
            .spawn()
            .expect("the function starts");
        Lambda {
            watch,
            function,
            port,
            dir,
        }
    }

    /// Invokes the function with `event`; the response body, or the error
    /// `cargo lambda invoke` printed.
    pub fn invoke(&self, event: &serde_json::Value) -> Result<serde_json::Value, String> {
        let file: PathBuf = self.dir.path().join("event.json");
        std::fs::write(&file, event.to_string()).expect("write the event");
        let o = cargo_lambda()
            .args(["invoke", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(&file)
            .args(["--output-format", "json", "_"])
            .output()
            .expect("cargo lambda invoke runs");
        if !o.status.success() {
            return Err(format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        serde_json::from_slice(&o.stdout).map_err(|e| {
            format!(
                "the response is not JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// Waits up to `timeout` for the function to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.function.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the function wrote to standard error so far (its log).
    /// The names of the function's threads.
    pub fn threads(&self) -> Vec<String> {
        let tasks = std::path::PathBuf::from(format!("/proc/{}/task", self.function.id()));
        let mut names: Vec<String> = std::fs::read_dir(&tasks)
            .unwrap_or_else(|e| panic!("{}: {e}", tasks.display()))
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim_end().to_owned())
            .collect();
        names.sort();
        names
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// What the function wrote to standard output so far (metrics).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// The function's EMF lines so far, in the order written (a line that is
    /// not JSON fails the test).
    pub fn emf(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an EMF line"))
            .collect()
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        let _ = self.function.kill();
        let _ = self.function.wait();
        let _ = self.watch.kill();
        let _ = self.watch.wait();
    }
}
