//! `sluice deploy template PIPELINE`: an AWS SAM template (JSON) that deploys
//! the pipeline as a Lambda function behind its event source mapping.
//!
//! The template holds the function (`provided.al2023`, the `bootstrap` built
//! by `cargo lambda build`, with the pipeline file in its package), the event
//! source mapping with partial batch responses, an SQS on-failure destination
//! for stream sources, the DLQ resource, and a least-privilege policy derived
//! from the pipeline's source, sinks and DLQ.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::aws::iam::{statement, sub};
use crate::config::{self, Env, LoadError};
use crate::delivery::DlqConfig;
use crate::diagnostics::render::{self, Format};
use crate::sinks;

/// Arguments of `sluice deploy`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print an AWS SAM template (JSON) for the pipeline as a Lambda function.
    Template(TemplateArgs),
    /// Print a CloudFormation template (JSON) for the pipeline as an ECS
    /// Fargate service of `sluice daemon` workers.
    Ecs(EcsArgs),
}

/// Arguments of `sluice deploy ecs`.
#[derive(Debug, clap::Args)]
pub struct EcsArgs {
    /// The pipeline file, as the container sees it (copied into the image or
    /// mounted), unless `--pipeline-url` is given.
    pub file: PathBuf,
    /// The image built from `deploy/ecs/Dockerfile` (the `Image` parameter's default).
    #[arg(long)]
    pub image: String,
    /// Where the workers read the pipeline at start instead: an
    /// `s3://bucket/folder/pipeline.yaml` URL (the folder holds the files the
    /// pipeline names). The task role gains read access to that folder.
    #[arg(long, value_name = "S3_URL")]
    pub pipeline_url: Option<String>,
    /// CPU architecture of the image.
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
}

/// Arguments of `sluice deploy template`.
#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    /// The pipeline file, as it is named inside the deployment package
    /// (relative to the folder `cargo lambda build` ran in).
    pub file: PathBuf,
    /// The function's package: the zip `cargo lambda build --output-format zip` made.
    #[arg(long, default_value = "target/lambda/sluice/bootstrap.zip")]
    pub code_uri: String,
    /// Where the function reads the pipeline at init instead of its package:
    /// an `s3://bucket/folder/pipeline.yaml` URL (the folder holds the files
    /// the pipeline names). The policy gains read access to that folder.
    #[arg(long, value_name = "S3_URL")]
    pub pipeline_url: Option<String>,
    /// CPU architecture the bootstrap was built for.
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
}

/// Lambda architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// Graviton (`cargo lambda build --arm64`).
    Arm64,
    /// x86-64 (`cargo lambda build --x86-64`): `x86_64`, as AWS spells it, or `x86-64`.
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
}

/// Runs a `sluice deploy` command.
pub fn main(command: &Command) -> i32 {
    match command {
        Command::Template(args) => print(&args.file, |p| template(p, args)),
        Command::Ecs(args) => print(&args.file, |p| ecs(p, args)),
    }
}

/// Loads the pipeline and prints the template `make` builds for it.
fn print(file: &std::path::Path, make: impl Fn(&config::Pipeline) -> Result<Value, String>) -> i32 {
    let loaded = match config::load(file, &Env::process()) {
        Ok(l) => l,
        Err(e) => {
            crate::err!("{}", render::text(e.diagnostics(), Format::Human));
            return match e {
                LoadError::Unreadable(_) => EXIT_UNREADABLE,
                LoadError::Invalid(_) => EXIT_INVALID,
            };
        }
    };
    match make(&loaded.pipeline) {
        Ok(t) => {
            crate::outln!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
            EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_INVALID
        }
    }
}

/// Read access to the S3 folder of a pipeline fetched at start.
fn pipeline_url_statements(url: &str) -> Result<Vec<Value>, String> {
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

/// The template for a pipeline.
pub fn template(p: &config::Pipeline, args: &TemplateArgs) -> Result<Value, String> {
    let fragment = p.source.lambda_template(&p.name)?;
    let mut parameters = Map::new();
    // An event source mapping's batches; a source that invokes the function
    // itself (Firehose) sets its own.
    if fragment.event.is_some() {
        parameters.insert(
            "BatchSize".into(),
            json!({ "Type": "Number", "Default": 100, "MinValue": 1, "MaxValue": 10000,
                    "Description": "Records per invocation (SQS: at most 10 000 with a batching window, 10 without)." }),
        );
        parameters.insert(
            "MaximumBatchingWindowInSeconds".into(),
            json!({ "Type": "Number", "Default": 1, "MinValue": 0, "MaxValue": 300,
                    "Description": "How long the mapping gathers records before it invokes." }),
        );
    }
    parameters.insert(
        "MemorySize".into(),
        json!({ "Type": "Number", "Default": 512, "MinValue": 128, "MaxValue": 10240 }),
    );
    parameters.insert(
        "Timeout".into(),
        json!({ "Type": "Number", "Default": 60, "MinValue": 1, "MaxValue": 900,
                "Description": "Function timeout in seconds; Sluice stops starting records 500 ms before it." }),
    );
    parameters.extend(fragment.parameters);
    let mut resources = fragment.resources;
    let mut policy = fragment.policy;
    let event = fragment.event;
    for sink in p.sinks.values() {
        policy.extend(sink.permissions());
        if let sinks::Config::File(_) = sink {
            return Err(
                "a `file` sink cannot be used in Lambda: its file would be lost with the execution environment"
                    .into(),
            );
        }
    }
    match &p.dlq {
        DlqConfig::S3(c) => {
            resources.insert(
                "DeadLetterBucket".into(),
                json!({ "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                        "Properties": { "BucketName": c.bucket } }),
            );
        }
        DlqConfig::Sqs(c) if !c.queue.starts_with("arn:") && !c.queue.contains('/') => {
            resources.insert(
                "DeadLetterQueue".into(),
                json!({ "Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                        "Properties": { "QueueName": c.queue, "MessageRetentionPeriod": 1_209_600 } }),
            );
        }
        DlqConfig::Sqs(_) => {}
        DlqConfig::File(_) => {
            return Err("a `file` DLQ cannot be used in Lambda: use an `s3` or `sqs` DLQ".into());
        }
        DlqConfig::Stdout(_) => {}
    }
    policy.extend(p.dlq.as_sink().permissions());
    let pipeline_path = match &args.pipeline_url {
        Some(url) => {
            policy.extend(pipeline_url_statements(url)?);
            url.clone()
        }
        None => args.file.to_string_lossy().replace('\\', "/"),
    };
    resources.insert(
        "Function".into(),
        json!({
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Description": format!("Sluice pipeline `{}`", p.name),
                "CodeUri": args.code_uri,
                "Handler": "bootstrap",
                "Runtime": "provided.al2023",
                "Architectures": [match args.arch { Arch::Arm64 => "arm64", Arch::X86_64 => "x86_64" }],
                "MemorySize": { "Ref": "MemorySize" },
                "Timeout": { "Ref": "Timeout" },
                "Environment": { "Variables": { "SLUICE_PIPELINE": pipeline_path } },
                "Policies": [{ "Version": "2012-10-17", "Statement": policy }]
            }
        }),
    );
    if let Some(event) = event {
        resources["Function"]["Properties"]["Events"] = json!({ "Source": event });
    }
    Ok(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": format!("Sluice pipeline `{}` as a Lambda function (sluice deploy template)", p.name),
        "Parameters": parameters,
        "Resources": resources,
        "Outputs": {
            "FunctionName": { "Value": { "Ref": "Function" } }
        }
    }))
}

/// Port of `/metrics`, `/healthz` and `/readyz` in the container.
const METRICS_PORT: u16 = 9090;

/// The ECS template for a pipeline: a Fargate service of `sluice daemon`
/// workers, their task role (least privilege), logs and health check.
pub fn ecs(p: &config::Pipeline, args: &EcsArgs) -> Result<Value, String> {
    let mut policy = p.source.daemon_permissions()?;
    for (name, sink) in &p.sinks {
        if let sinks::Config::File(_) = sink {
            return Err(format!(
                "sink `{name}`: a `file` sink would be lost with the task: use an AWS sink"
            ));
        }
        policy.extend(sink.permissions());
    }
    if let DlqConfig::File(_) = &p.dlq {
        return Err("a `file` DLQ would be lost with the task: use an `s3` or `sqs` DLQ".into());
    }
    policy.extend(p.dlq.as_sink().permissions());
    let pipeline_path = match &args.pipeline_url {
        Some(url) => {
            policy.extend(pipeline_url_statements(url)?);
            url.clone()
        }
        None => args.file.to_string_lossy().replace('\\', "/"),
    };
    let assume = |service: &str| {
        json!({ "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": { "Service": service }, "Action": "sts:AssumeRole" }] })
    };
    let family = format!("sluice-{}", p.name);
    Ok(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("Sluice pipeline `{}` as an ECS Fargate service (sluice deploy ecs)", p.name),
        "Parameters": {
            "Image": { "Type": "String", "Default": args.image,
                       "Description": "The image built from deploy/ecs/Dockerfile" },
            "Cluster": { "Type": "String", "Default": "default", "Description": "ECS cluster name or ARN" },
            "Subnets": { "Type": "List<AWS::EC2::Subnet::Id>",
                         "Description": "Subnets of the tasks (with a route to the AWS APIs: NAT or VPC endpoints)" },
            "SecurityGroups": { "Type": "List<AWS::EC2::SecurityGroup::Id>",
                                "Description": "Security groups of the tasks (open port 9090 to your Prometheus)" },
            "AssignPublicIp": { "Type": "String", "Default": "DISABLED", "AllowedValues": ["ENABLED", "DISABLED"] },
            "DesiredCount": { "Type": "Number", "Default": 2, "MinValue": 1,
                              "Description": "Workers (sluice plan suggests a count; more than the shards only stand by)" },
            "Cpu": { "Type": "String", "Default": "1024", "AllowedValues": ["256", "512", "1024", "2048", "4096", "8192", "16384"] },
            "Memory": { "Type": "String", "Default": "2048", "Description": "MiB; must suit Cpu (Fargate task sizes)" },
            "FailoverTime": { "Type": "String", "Default": "10s",
                              "Description": "A worker's shards are taken over this long after it stops renewing them" },
        },
        "Resources": {
            "LogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": { "LogGroupName": format!("/sluice/{}", p.name), "RetentionInDays": 30 }
            },
            "ExecutionRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
                    "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy".into())]
                }
            },
            "TaskRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
                    "Policies": [{ "PolicyName": "sluice-pipeline",
                                   "PolicyDocument": { "Version": "2012-10-17", "Statement": policy } }]
                }
            },
            "TaskDefinition": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": family,
                    "RequiresCompatibilities": ["FARGATE"],
                    "NetworkMode": "awsvpc",
                    "Cpu": { "Ref": "Cpu" },
                    "Memory": { "Ref": "Memory" },
                    "RuntimePlatform": {
                        "CpuArchitecture": match args.arch { Arch::Arm64 => "ARM64", Arch::X86_64 => "X86_64" },
                        "OperatingSystemFamily": "LINUX"
                    },
                    "ExecutionRoleArn": { "Fn::GetAtt": ["ExecutionRole", "Arn"] },
                    "TaskRoleArn": { "Fn::GetAtt": ["TaskRole", "Arn"] },
                    "ContainerDefinitions": [{
                        "Name": "sluice",
                        "Image": { "Ref": "Image" },
                        "Essential": true,
                        "Command": ["daemon", pipeline_path],
                        "Environment": [
                            { "Name": "SLUICE_FAILOVER_TIME", "Value": { "Ref": "FailoverTime" } },
                            { "Name": "SLUICE_GRACE_PERIOD", "Value": "25s" },
                            { "Name": "SLUICE_LISTEN", "Value": format!("0.0.0.0:{METRICS_PORT}") }
                        ],
                        "PortMappings": [{ "ContainerPort": METRICS_PORT, "Protocol": "tcp", "Name": "metrics" }],
                        "HealthCheck": {
                            "Command": ["CMD", "/usr/local/bin/sluice", "probe", format!("http://127.0.0.1:{METRICS_PORT}/healthz")],
                            "Interval": 15, "Timeout": 5, "Retries": 3, "StartPeriod": 30
                        },
                        // SIGTERM, then SIGKILL 30 s later: the grace period (25 s) ends first.
                        "StopTimeout": 30,
                        "LogConfiguration": {
                            "LogDriver": "awslogs",
                            "Options": {
                                "awslogs-group": { "Ref": "LogGroup" },
                                "awslogs-region": { "Ref": "AWS::Region" },
                                "awslogs-stream-prefix": "sluice"
                            }
                        }
                    }]
                }
            },
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "Cluster": { "Ref": "Cluster" },
                    "LaunchType": "FARGATE",
                    "DesiredCount": { "Ref": "DesiredCount" },
                    "TaskDefinition": { "Ref": "TaskDefinition" },
                    "NetworkConfiguration": { "AwsvpcConfiguration": {
                        "Subnets": { "Ref": "Subnets" },
                        "SecurityGroups": { "Ref": "SecurityGroups" },
                        "AssignPublicIp": { "Ref": "AssignPublicIp" }
                    } },
                    // New workers start before old ones stop; a stopping worker
                    // hands its shards over (SIGTERM releases its leases).
                    "DeploymentConfiguration": {
                        "MinimumHealthyPercent": 100,
                        "MaximumPercent": 200,
                        "DeploymentCircuitBreaker": { "Enable": true, "Rollback": true }
                    }
                }
            }
        },
        "Outputs": {
            "ServiceName": { "Value": { "Fn::GetAtt": ["Service", "Name"] } },
            "TaskRoleArn": { "Value": { "Fn::GetAtt": ["TaskRole", "Arn"] } }
        }
    }))
}
