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
use serde_json::{Value, json};

use super::{EventSource, RunMode, Source};
use crate::aws::iam::statement;
use crate::aws::sam::Fragment;
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
    /// A self-managed cluster: `host:port` of its bootstrap servers. Give this or
    /// `cluster_arn`.
    #[serde(default)]
    pub bootstrap_servers: Vec<String>,
    /// A self-managed cluster: how the event source mapping authenticates, with the credentials
    /// in a Secrets Manager secret (the template's `KafkaSecretArn`).
    #[serde(default)]
    pub auth: Auth,
    /// The consumer group of the event source mapping (default: the pipeline's `name`).
    #[serde(default)]
    pub consumer_group: Option<String>,
    /// Where a new consumer group starts.
    #[serde(default)]
    pub start_position: StartPosition,
}

/// How a self-managed cluster is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
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

    fn lambda_template(&self, pipeline: &str, t: &mut Fragment) -> Result<(), String> {
        let group = self.consumer_group.as_deref().unwrap_or(pipeline);
        // The cluster's permissions first, then the mapping's own.
        if let Some(cluster) = &self.cluster_arn {
            // IAM access control on the cluster (SAM adds the managed
            // AWSLambdaMSKExecutionRole for the rest).
            let (topic_arn, group_arn) = match cluster.split_once(":cluster/") {
                Some((head, tail)) => (
                    json!(format!("{head}:topic/{tail}/{}", self.topic)),
                    json!(format!("{head}:group/{tail}/{group}")),
                ),
                None => (json!(cluster), json!(cluster)),
            };
            t.policy.push(statement(
                &[
                    "kafka-cluster:Connect",
                    "kafka-cluster:DescribeClusterDynamicConfiguration",
                ],
                vec![json!(cluster)],
            ));
            t.policy.push(statement(
                &["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                vec![topic_arn],
            ));
            t.policy.push(statement(
                &["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                vec![group_arn],
            ));
        } else {
            t.parameters.insert(
                "KafkaSecretArn".into(),
                json!({ "Type": "String", "AllowedPattern": "arn:.+:secretsmanager:.+",
                        "Description": format!("The Secrets Manager secret with the cluster's {} credentials", self.auth.access_type()) }),
            );
        }
        let mut e = t.stream_event("MSK", Value::Null, self.start_position.name());
        let props = e["Properties"].as_object_mut().ok_or("no properties")?;
        props.insert("Topics".into(), json!([self.topic]));
        props.insert("ConsumerGroupId".into(), json!(group));
        // Retries, bisection and partial batch responses need provisioned pollers.
        props.insert(
            "ProvisionedPollerConfig".into(),
            json!({ "MinimumPollers": 1, "MaximumPollers": 200 }),
        );
        match &self.cluster_arn {
            Some(cluster) => {
                props.insert("Stream".into(), json!(cluster));
            }
            None => {
                props.remove("Stream");
                props.insert(
                    "KafkaBootstrapServers".into(),
                    json!(self.bootstrap_servers),
                );
                props.insert(
                    "SourceAccessConfigurations".into(),
                    json!([{ "Type": self.auth.access_type(), "URI": { "Ref": "KafkaSecretArn" } }]),
                );
                e["Type"] = json!("SelfManagedKafka");
            }
        }
        t.event = Some(e);
        Ok(())
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
