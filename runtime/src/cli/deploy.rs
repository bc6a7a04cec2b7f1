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
use crate::aws::iam::{arn, queue_arn, statement, stream_arn, sub, table_arn};
use crate::config::{self, Env, LoadError};
use crate::delivery::DlqConfig;
use crate::diagnostics::render::{self, Format};
use crate::sinks;
use crate::sources;

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

/// Reading a Kinesis stream.
fn kinesis_read(stream: &str) -> Value {
    statement(
        &[
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
            "kinesis:ListStreams",
        ],
        vec![stream_arn(stream)],
    )
}

/// Consuming an SQS queue.
fn sqs_consume(queue: &str) -> Value {
    statement(
        &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        ],
        vec![queue_arn(queue)],
    )
}

/// The template for a pipeline.
pub fn template(p: &config::Pipeline, args: &TemplateArgs) -> Result<Value, String> {
    let mut parameters = Map::new();
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
    parameters.insert(
        "MemorySize".into(),
        json!({ "Type": "Number", "Default": 512, "MinValue": 128, "MaxValue": 10240 }),
    );
    parameters.insert(
        "Timeout".into(),
        json!({ "Type": "Number", "Default": 60, "MinValue": 1, "MaxValue": 900,
                "Description": "Function timeout in seconds; Sluice stops starting records 500 ms before it." }),
    );
    let mut resources = Map::new();
    let mut policy: Vec<Value> = Vec::new();
    let stream_events = |kind: &str, stream: Value, start: &str| {
        json!({
            "Type": kind,
            "Properties": {
                "Stream": stream,
                "StartingPosition": start,
                "BatchSize": { "Ref": "BatchSize" },
                "MaximumBatchingWindowInSeconds": { "Ref": "MaximumBatchingWindowInSeconds" },
                "BisectBatchOnFunctionError": true,
                "MaximumRetryAttempts": 10,
                "MaximumRecordAgeInSeconds": 86400,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "DestinationConfig": { "OnFailure": { "Destination": { "Fn::GetAtt": ["OnFailureQueue", "Arn"] } } }
            }
        })
    };
    let event = match &p.source {
        sources::Config::Kinesis(c) => {
            policy.push(kinesis_read(&c.stream));
            let start = match c.start_position {
                sources::kinesis::StartPosition::Latest => "LATEST",
                sources::kinesis::StartPosition::TrimHorizon => "TRIM_HORIZON",
                sources::kinesis::StartPosition::AtTimestamp => "AT_TIMESTAMP",
            };
            let mut e = stream_events("Kinesis", stream_arn(&c.stream), start);
            if let (Some(t), "AT_TIMESTAMP") = (&c.timestamp, start) {
                let secs = humantime::parse_rfc3339_weak(t)
                    .map_err(|e| format!("`timestamp` {t:?}: {e}"))?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                e["Properties"]["StartingPositionTimestamp"] = json!(secs);
            }
            e
        }
        sources::Config::DynamodbStreams(c) => {
            parameters.insert(
                "StreamArn".into(),
                json!({ "Type": "String", "AllowedPattern": "arn:.+:dynamodb:.+/stream/.+",
                        "Description": format!("The stream of table `{}`: aws dynamodb describe-table --table-name {} --query Table.LatestStreamArn", c.table, c.table) }),
            );
            policy.push(statement(
                &[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
                vec![json!({ "Ref": "StreamArn" })],
            ));
            let start = match c.start_position {
                sources::dynamodb_streams::StartPosition::Latest => "LATEST",
                sources::dynamodb_streams::StartPosition::TrimHorizon => "TRIM_HORIZON",
            };
            stream_events("DynamoDB", json!({ "Ref": "StreamArn" }), start)
        }
        sources::Config::Sqs(c) => {
            policy.push(sqs_consume(&c.queue));
            json!({
                "Type": "SQS",
                "Properties": {
                    "Queue": queue_arn(&c.queue),
                    "BatchSize": { "Ref": "BatchSize" },
                    "MaximumBatchingWindowInSeconds": { "Ref": "MaximumBatchingWindowInSeconds" },
                    "FunctionResponseTypes": ["ReportBatchItemFailures"]
                }
            })
        }
        sources::Config::Kafka(c) => {
            let mut e = stream_events("MSK", Value::Null, c.start_position.name());
            let props = e["Properties"].as_object_mut().ok_or("no properties")?;
            props.insert("Topics".into(), json!([c.topic]));
            props.insert(
                "ConsumerGroupId".into(),
                json!(c.consumer_group.clone().unwrap_or_else(|| p.name.clone())),
            );
            // Retries, bisection and partial batch responses need provisioned pollers.
            props.insert(
                "ProvisionedPollerConfig".into(),
                json!({ "MinimumPollers": 1, "MaximumPollers": 200 }),
            );
            match &c.cluster_arn {
                Some(cluster) => {
                    props.insert("Stream".into(), json!(cluster));
                    // IAM access control on the cluster (SAM adds the managed
                    // AWSLambdaMSKExecutionRole for the rest).
                    let (topic, group) = match cluster.split_once(":cluster/") {
                        Some((head, tail)) => (
                            json!(format!("{head}:topic/{tail}/{}", c.topic)),
                            json!(format!(
                                "{head}:group/{tail}/{}",
                                c.consumer_group.as_deref().unwrap_or(&p.name)
                            )),
                        ),
                        None => (json!(cluster), json!(cluster)),
                    };
                    policy.push(statement(
                        &[
                            "kafka-cluster:Connect",
                            "kafka-cluster:DescribeClusterDynamicConfiguration",
                        ],
                        vec![json!(cluster)],
                    ));
                    policy.push(statement(
                        &["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                        vec![topic],
                    ));
                    policy.push(statement(
                        &["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                        vec![group],
                    ));
                }
                None => {
                    e["Type"] = json!("SelfManagedKafka");
                    let props = e["Properties"].as_object_mut().ok_or("no properties")?;
                    props.remove("Stream");
                    props.insert("KafkaBootstrapServers".into(), json!(c.bootstrap_servers));
                    props.insert(
                        "SourceAccessConfigurations".into(),
                        json!([{ "Type": c.auth.access_type(), "URI": { "Ref": "KafkaSecretArn" } }]),
                    );
                    parameters.insert(
                        "KafkaSecretArn".into(),
                        json!({ "Type": "String", "AllowedPattern": "arn:.+:secretsmanager:.+",
                                "Description": format!("The Secrets Manager secret with the cluster's {} credentials", c.auth.access_type()) }),
                    );
                }
            }
            e
        }
        other => {
            return Err(other.refusal(sources::RunMode::Lambda).unwrap_or_else(|| {
                format!(
                    "a `{}` source has no event source mapping",
                    other.type_name()
                )
            }));
        }
    };
    let stream_source = !matches!(p.source, sources::Config::Sqs(_));
    if stream_source {
        resources.insert(
            "OnFailureQueue".into(),
            json!({ "Type": "AWS::SQS::Queue",
                    "Properties": { "MessageRetentionPeriod": 1_209_600 } }),
        );
        policy.push(statement(
            &["sqs:SendMessage"],
            vec![json!({ "Fn::GetAtt": ["OnFailureQueue", "Arn"] })],
        ));
    }
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
                "Policies": [{ "Version": "2012-10-17", "Statement": policy }],
                "Events": { "Source": event }
            }
        }),
    );
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
    let mut policy: Vec<Value> = Vec::new();
    // The lease table (the checkpoint table), created by the first worker.
    let leases = |table: &str| {
        statement(
            &[
                "dynamodb:CreateTable",
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Scan",
            ],
            vec![table_arn(table)],
        )
    };
    match &p.source {
        sources::Config::Kinesis(c) => {
            policy.push(kinesis_read(&c.stream));
            policy.push(leases(&c.checkpoint_table));
        }
        sources::Config::DynamodbStreams(c) => {
            // The table's description names its latest stream.
            policy.push(statement(
                &["dynamodb:DescribeTable"],
                vec![table_arn(&c.table)],
            ));
            policy.push(statement(
                &[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
                vec![arn("dynamodb", &format!("table/{}/stream/*", c.table))],
            ));
            policy.push(leases(&c.checkpoint_table));
        }
        sources::Config::Sqs(c) => {
            policy.push(sqs_consume(&c.queue));
            policy.push(statement(&["sqs:GetQueueUrl"], vec![queue_arn(&c.queue)]));
        }
        other => {
            return Err(other
                .refusal(sources::RunMode::Daemon)
                .unwrap_or_else(|| format!("a `{}` source has no ECS task", other.type_name())));
        }
    }
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
