//! `kinesalite`, a Kinesis emulator that reshards as AWS does (new records
//! go to the children of a split or merged shard; a closed parent ends with
//! a null `NextShardIterator`), which moto does not. Installed from npm into
//! `target/test-npm` on first use and started per test on a free 127.0.0.1
//! port. A test that cannot start it fails; it never skips.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::{root, serve};

/// The pinned version.
const PACKAGE: &str = "kinesalite@3.3.3";

/// A running kinesalite, stopped when dropped.
pub struct Kinesalite {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn installed() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target").join("test-npm");
        let stamp = dir.join(".installed");
        if std::fs::read_to_string(&stamp).unwrap_or_default() != PACKAGE {
            std::fs::create_dir_all(&dir).expect("target/test-npm");
            let ok = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
                .arg(&dir)
                .arg(PACKAGE)
                .status()
                .map(|s| s.success());
            assert_eq!(
                ok.ok(),
                Some(true),
                "`npm install {PACKAGE}` failed: the resharding tests need Node.js and the npm registry"
            );
            std::fs::write(&stamp, PACKAGE).expect("write the npm stamp");
        }
        dir
    })
    .clone()
}

impl Kinesalite {
    /// Starts a fresh, in-memory kinesalite and waits until it answers.
    pub fn start() -> Kinesalite {
        let dir = installed();
        let (child, port) = serve(
            "kinesalite",
            Duration::from_secs(30),
            &String::new,
            |port| {
                // Its command line cannot choose the host: bind 127.0.0.1 from node.
                let script = format!(
                    "require('kinesalite')({{createStreamMs: 50, deleteStreamMs: 50, updateStreamMs: 50, shardLimit: 100}}).listen({port}, '127.0.0.1')"
                );
                Command::new("node")
                    .args(["-e", &script])
                    .env("NODE_PATH", dir.join("node_modules"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("node starts (the resharding tests need Node.js)")
            },
        );
        Kinesalite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
