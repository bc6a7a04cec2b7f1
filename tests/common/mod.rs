//! Helpers shared by the integration tests: the `sluice` binary, the
//! repository root, a Python environment with the reference workload's tools
//! and moto (created on first use; a test that cannot create it fails), and
//! a `moto_server` per test ([`moto`]).

#![allow(dead_code)] // each test file uses a different subset

pub mod aws;
pub mod daemon;
pub mod events;
pub mod faults;
pub mod kinesalite;
pub mod kpl;
pub mod lambda;
pub mod moto;
pub mod orders;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ has a parent")
        .to_path_buf()
}

/// A `sluice` command with a clean environment (no `OUT_DIR`, `ORDERS_INPUT` …).
pub fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// Writes a pipeline file, `dir/pipeline.yaml`: `version: 1`, `name`, then
/// `body` (YAML, the rest of the pipeline); returns its path. Every
/// integration test builds its pipelines with this.
pub fn write_pipeline(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join("pipeline.yaml");
    write_pipeline_file(&path, name, body);
    path
}

/// Writes a pipeline file at `path` (a test that needs another file name
/// than `pipeline.yaml`): `version: 1`, `name`, then `body`.
pub fn write_pipeline_file(path: &Path, name: &str, body: &str) {
    std::fs::write(path, format!("version: 1\nname: {name}\n{body}"))
        .expect("the pipeline file is written");
}

/// Writes `records` to `dir/file` as JSON Lines.
pub fn write_jsonl(dir: &Path, file: &str, records: &[serde_json::Value]) {
    let lines: String = records.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join(file), lines).expect("the input file is written");
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the command starts")
}

/// Runs `cmd` with `input` on its standard input, capturing its output.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input)
        .expect("the input is written");
    child.wait_with_output().expect("the command ends")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON run summary on standard error (the JSON line with `records_in`).
pub fn summary(o: &Output) -> serde_json::Value {
    let err = stderr(o);
    err.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("records_in").is_some())
        .unwrap_or_else(|| panic!("no JSON summary in:\n{err}"))
}

/// The messages of the JSON log lines of `level` (`error`, `warn`,
/// `info`) in standard error, in order.
pub fn logged(err: &str, level: &str) -> Vec<String> {
    err.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == level)
        .map(|v| v["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A run's exit code, its JSON summary (`null` when it printed none) and
/// its standard error.
pub fn outcome(o: &Output) -> (i32, serde_json::Value, String) {
    let err = stderr(o);
    let s = if err.contains("\"records_in\"") {
        summary(o)
    } else {
        serde_json::Value::Null
    };
    (o.status.code().unwrap_or(-1), s, err)
}

/// A Python interpreter with `tests/requirements.txt` installed (the
/// reference workload's baseline and moto), in `target/test-venv`.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = root().join("target").join("test-venv");
        let py = venv.join("bin").join("python");
        let requirements = root().join("tests/requirements.txt");
        // Reinstall when the requirements change.
        let bench = std::fs::read_to_string(root().join("bench/requirements.txt"))
            .expect("bench/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("tests/requirements.txt")
            + bench.as_str();
        let stamp = venv.join(".installed");
        let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
        if installed != wanted {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .map(|s| s.success());
            assert_eq!(
                ok.ok(),
                Some(true),
                "python3 -m venv failed: install Python 3 with the venv module"
            );
            let ok = Command::new(&py)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(&requirements)
                .status()
                .map(|s| s.success());
            assert_eq!(
                ok.ok(),
                Some(true),
                "pip install -r bench/requirements.txt failed: the tests need PyPI"
            );
            std::fs::write(&stamp, &wanted).expect("write the venv stamp");
        }
        py
    })
    .clone()
}

/// Lines of a JSON Lines file, parsed.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A 127.0.0.1 port no listener holds now and that no other test of this
/// process was given: the kernel may hand a port just released to the next
/// caller, so two servers started at once by parallel tests could otherwise
/// be told the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on 127.0.0.1");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Starts a server with `spawn(port)` on a [`free_port`] and waits until it
/// listens there. A server that exits before it listens (another process took
/// the port between the check and its bind) is started again on another port.
/// Panics with
/// `name` and `context()` when it does not listen within `limit`.
pub fn serve(
    name: &str,
    limit: std::time::Duration,
    context: &dyn Fn() -> String,
    mut spawn: impl FnMut(u16) -> std::process::Child,
) -> (std::process::Child, u16) {
    use std::time::{Duration, Instant};
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // it could not bind: try another port
            }
            // Listening: a connection that is not the probe's own socket
            // (with nothing listening, a connection to a port of the
            // ephemeral range can meet itself), from a process still alive.
            let listens = || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
            };
            if listens() && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
                if listens() && matches!(child.try_wait(), Ok(None)) {
                    return (child, port);
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} did not listen on port {port} within {} s: {}",
                    limit.as_secs(),
                    context()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!(
        "{name} exited before it listened, on five ports: {}",
        context()
    )
}
