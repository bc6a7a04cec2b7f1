//! AWS connection: one SDK client per service per process, shared by every
//! source, sink and dead-letter queue of the pipeline.
//!
//! Credentials and region come from the standard chain (`aws-config`). An
//! endpoint override (the pipeline's `aws.endpoint_url`, or the standard
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables) points
//! Sluice at an emulator or a VPC endpoint; S3 then uses path-style
//! addressing. The SDK's own retries are off: `delivery` retries with the
//! pipeline's one policy, so every attempt is counted and classified once.

pub mod iam;
pub mod item;
pub mod sam;

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{ConnectorBuilder, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use schemars::JsonSchema;
use serde::Deserialize;

/// Connection settings for every AWS component of the pipeline.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Aws")]
pub struct Config {
    /// The AWS region, such as `eu-west-1` (default: the standard chain: `AWS_REGION`, the
    /// profile, instance metadata).
    #[serde(default)]
    pub region: Option<String>,
    /// One endpoint for every AWS service: an emulator, a proxy or a VPC endpoint. It takes
    /// precedence over the variables (default: `AWS_ENDPOINT_URL_<SERVICE>` when set, else
    /// `AWS_ENDPOINT_URL`, else AWS).
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// The HTTPS client of every AWS call: the SDK's default client (hyper,
/// rustls, the proxy of `HTTPS_PROXY` / `NO_PROXY`) with *ring* for
/// rustls' cryptography instead of aws-lc, a C library with a build of its
/// own (about 40 s of a clean build).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The shared clients. Each is created on first use.
pub struct Clients {
    sdk: SdkConfig,
    path_style: bool,
    s3: OnceLock<aws_sdk_s3::Client>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    kinesis: OnceLock<aws_sdk_kinesis::Client>,
    streams: OnceLock<aws_sdk_dynamodbstreams::Client>,
}

impl Clients {
    /// Loads the standard configuration chain once.
    pub async fn load(config: &Config, attempt_timeout: Duration) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(attempt_timeout)
                    .build(),
            );
        if let Some(r) = &config.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &config.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        // Any endpoint override (pipeline, environment, profile) means an
        // emulator or a private endpoint: address buckets by path.
        let path_style =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        Clients {
            sdk,
            path_style,
            s3: OnceLock::new(),
            sqs: OnceLock::new(),
            dynamodb: OnceLock::new(),
            kinesis: OnceLock::new(),
            streams: OnceLock::new(),
        }
    }

    /// The shared configuration: a component whose service has no client
    /// here makes its own from it (sharing its HTTP connections).
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The S3 client (path-style addressing when the endpoint is overridden).
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3.get_or_init(|| {
            let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(self.path_style)
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        })
    }

    /// The SQS client.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs.get_or_init(|| aws_sdk_sqs::Client::new(&self.sdk))
    }

    /// The DynamoDB client.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| aws_sdk_dynamodb::Client::new(&self.sdk))
    }

    /// The DynamoDB Streams client.
    pub fn streams(&self) -> &aws_sdk_dynamodbstreams::Client {
        self.streams
            .get_or_init(|| aws_sdk_dynamodbstreams::Client::new(&self.sdk))
    }

    /// The Kinesis client.
    pub fn kinesis(&self) -> &aws_sdk_kinesis::Client {
        self.kinesis
            .get_or_init(|| aws_sdk_kinesis::Client::new(&self.sdk))
    }
}
