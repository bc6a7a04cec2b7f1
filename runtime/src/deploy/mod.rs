//! Deploy templates: `sluice deploy template` (AWS SAM, the pipeline as a
//! Lambda function) and `sluice deploy ecs` (CloudFormation, an ECS Fargate
//! service of `sluice daemon` workers). Each component gives its own part:
//! a source its event source mapping and read permissions
//! ([`crate::sources::Source::lambda_template`]), a sink its permissions
//! ([`crate::sinks::Sink::permissions`]).

pub mod ecs;
pub mod sam;

use serde_json::{Value, json};

use crate::aws::iam::{statement, sub};

/// Lambda architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// Graviton (`cargo lambda build --arm64`).
    Arm64,
    /// x86-64 (`cargo lambda build --x86-64`): `x86_64`, as AWS spells it, or `x86-64`.
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
}

/// Read access to the S3 folder of a pipeline fetched at start.
pub(crate) fn pipeline_url_statements(url: &str) -> Result<Vec<Value>, String> {
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|u| u.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| format!("--pipeline-url {url}: expected s3://bucket/key"))?;
    let folder = key.rfind('/').map_or("", |i| &key[..=i]);
    Ok(vec![
        statement(
            &["s3:GetObject"],
            vec![sub(format!(
                "arn:${{AWS::Partition}}:s3:::{bucket}/{folder}*"
            ))],
        ),
        json!({
            "Effect": "Allow", "Action": ["s3:ListBucket"],
            "Resource": [sub(format!("arn:${{AWS::Partition}}:s3:::{bucket}"))],
            "Condition": { "StringLike": { "s3:prefix": [format!("{folder}*")] } }
        }),
    ])
}
