//! `sluice deploy ecs`: a CloudFormation template (JSON) of the pipeline as
//! an ECS Fargate service of `sluice daemon` workers, their task role (least
//! privilege), logs and health check.

use std::path::Path;

use serde_json::{Value, json};

use super::{Arch, pipeline_url_statements};
use crate::aws::iam::sub;
use crate::config::Pipeline;

/// What the template is made for.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The pipeline file, as the container sees it.
    pub file: &'a Path,
    /// The image built from `deploy/ecs/Dockerfile`.
    pub image: &'a str,
    /// Where the workers read the pipeline at start instead (`s3://…`).
    pub pipeline_url: Option<&'a str>,
    /// CPU architecture of the image.
    pub arch: Arch,
}

/// Port of `/metrics`, `/healthz` and `/readyz` in the container.
const METRICS_PORT: u16 = 9090;

/// The ECS template for a pipeline: a Fargate service of `sluice daemon`
/// workers, their task role (least privilege), logs and health check.
pub fn template(p: &Pipeline, args: &Options<'_>) -> Result<Value, String> {
    let mut policy = p.source.daemon_permissions()?;
    for (name, sink) in &p.sinks {
        if sink.writes_locally() {
            return Err(format!(
                "sink `{name}`: a `{}` sink would be lost with the task: use an AWS sink",
                sink.type_name()
            ));
        }
        policy.extend(sink.permissions(&p.name));
    }
    let dlq = p.dlq.as_sink();
    if dlq.writes_locally() {
        return Err(format!(
            "a `{}` DLQ would be lost with the task: use an `s3` or `sqs` DLQ",
            dlq.type_name()
        ));
    }
    policy.extend(dlq.permissions(&p.name));
    policy.extend(p.dedup.iter().flat_map(crate::dedup::Config::permissions));
    policy.extend(
        p.lookups
            .values()
            .flat_map(crate::lookup::Config::permissions),
    );
    let pipeline_path = match args.pipeline_url {
        Some(url) => {
            policy.extend(pipeline_url_statements(url)?);
            url.to_owned()
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
