//! `sluice daemon` worker processes for the integration tests: started with
//! their standard error in a file (JSON logs), probed over HTTP, stopped with
//! SIGTERM or killed with SIGKILL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::sluice;

/// A running `sluice daemon`, killed when dropped.
pub struct Daemon {
    child: Child,
    /// The worker's name.
    pub name: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `sluice daemon PIPELINE --worker-id NAME` in `dir` with `env`
    /// (and `WORKER=NAME`, for per-worker sink paths), listening on a free port.
    pub fn start(
        dir: &Path,
        pipeline: &Path,
        name: &str,
        env: &[(&str, String)],
        extra: &[&str],
    ) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let mut cmd = sluice();
        cmd.current_dir(dir)
            .args(["daemon"])
            .arg(pipeline)
            .args([
                "--worker-id",
                name,
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
            ])
            .args(extra)
            .env("WORKER", name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("sluice daemon starts");
        Daemon {
            child,
            name: name.to_owned(),
            log,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log lines, each parsed as JSON (a line that is not fails the test).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line of {} is not JSON ({e}): {l}", self.name))
            })
            .collect()
    }

    /// The HTTP address it announced in its start line.
    pub fn address(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(rest) = log.split("probes on http://").nth(1) {
                return rest.split('"').next().unwrap_or_default().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start within 60 s:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path`: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.address()).expect("the daemon's HTTP port answers");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    }

    /// Its resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The value of a metric sample, by its line prefix (name and labels).
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, m) = self.get("/metrics");
        m.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no `{sample}` in the metrics of {}:\n{m}", self.name))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "SIGTERM to {}", self.name);
    }

    /// Whether the worker's process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
