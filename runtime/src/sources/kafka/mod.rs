//! The `kafka` source: records of one Kafka topic, on Amazon MSK or a
//! self-managed cluster, delivered by a Lambda event source mapping.
//!
//! Sluice does not speak the Kafka protocol itself: the event source mapping
//! polls the topic, commits the consumer group's offsets and invokes the
//! function; [`event`] reads its records. `sluice run` refuses this source;
//! the fields below describe the mapping that `sluice deploy template` writes.

pub mod event;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{EventSource, RunMode, Source};
use crate::diagnostics::{At, Code, Findings};

/// Read a Kafka topic (Amazon MSK or self-managed) through a Lambda event source mapping.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KafkaSource")]
pub struct Config {
    /// The topic.
    pub topic: String,
    /// Amazon MSK: the cluster's ARN. Give this or `bootstrap_servers`.
    #[serde(default)]
    pub cluster_arn: Option<String>,
    /// A self-managed cluster: its bootstrap servers (`host:port`). Give this or `cluster_arn`.
    #[serde(default)]
    pub bootstrap_servers: Vec<String>,
    /// A self-managed cluster: how the event source mapping authenticates, with
    /// the credentials in the Secrets Manager secret the template asks for.
    #[serde(default)]
    pub auth: Auth,
    /// The consumer group (default: the pipeline's name).
    #[serde(default)]
    pub consumer_group: Option<String>,
    /// Where a new consumer group starts.
    #[serde(default)]
    pub start_position: StartPosition,
}

/// How a self-managed cluster is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "KafkaAuth")]
pub enum Auth {
    /// SASL/SCRAM with SHA-512.
    #[default]
    #[serde(rename = "sasl_scram_512")]
    SaslScram512,
    /// SASL/SCRAM with SHA-256.
    #[serde(rename = "sasl_scram_256")]
    SaslScram256,
    /// SASL/PLAIN.
    Basic,
    /// Mutual TLS with a client certificate.
    ClientCertificateTls,
}

impl Auth {
    /// The `SourceAccessConfigurations` type of the event source mapping.
    pub fn access_type(self) -> &'static str {
        match self {
            Auth::SaslScram512 => "SASL_SCRAM_512_AUTH",
            Auth::SaslScram256 => "SASL_SCRAM_256_AUTH",
            Auth::Basic => "BASIC_AUTH",
            Auth::ClientCertificateTls => "CLIENT_CERTIFICATE_TLS_AUTH",
        }
    }
}

/// Where a consumer group without committed offsets starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "KafkaStartPosition")]
pub enum StartPosition {
    /// Only records written from now on.
    #[default]
    Latest,
    /// The oldest record the topic still holds.
    TrimHorizon,
}

impl StartPosition {
    /// The event source mapping's `StartingPosition`.
    pub fn name(self) -> &'static str {
        match self {
            StartPosition::Latest => "LATEST",
            StartPosition::TrimHorizon => "TRIM_HORIZON",
        }
    }
}

impl Source for Config {
    const MODES: &'static [RunMode] = &[RunMode::Lambda];
    const EVENTS: Option<&'static dyn EventSource> = Some(&event::Events);

    fn refusal_hint(&self) -> &'static str {
        " (a Lambda event source mapping reads the topic): deploy it with `sluice deploy template`, or try it with `sluice test`"
    }

    fn uses_aws(&self) -> bool {
        false
    }

    fn check(&self, findings: &mut Findings) {
        match (&self.cluster_arn, self.bootstrap_servers.is_empty()) {
            (Some(_), false) => {
                findings.error(
                    Code::InvalidValue,
                    At::Key("bootstrap_servers"),
                    "give `cluster_arn` (Amazon MSK) or `bootstrap_servers` (a self-managed cluster), not both",
                );
            }
            (None, true) => {
                findings.error(
                    Code::InvalidValue,
                    At::Whole,
                    "needs `cluster_arn` (Amazon MSK) or `bootstrap_servers` (a self-managed cluster)",
                );
            }
            _ => {}
        }
    }
}
