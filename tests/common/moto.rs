//! A real AWS API emulator for the integration tests: `moto_server`,
//! installed from PyPI into `target/test-venv` on first use and started per
//! test on a free 127.0.0.1 port. A test that cannot start it fails, saying how
//! to install it by hand; it never skips.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{python, serve};

/// A running `moto_server`, stopped when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts a fresh emulator and waits until it answers.
    pub fn start() -> Moto {
        let py = python();
        let server = py.parent().expect("venv bin").join("moto_server");
        assert!(
            server.exists(),
            "moto_server is missing from {}: install it with `pip install 'moto[server]'` (see bench/requirements.txt)",
            server.display()
        );
        let (child, port) = serve(
            "moto_server",
            Duration::from_secs(30),
            &String::new,
            |port| {
                Command::new(&server)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()))
            },
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        Moto { child, endpoint }
    }

    /// Environment for a `sluice` process that talks to this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An SDK configuration for the test's own calls (creating buckets, reading results).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(sluice::aws::https_client())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
