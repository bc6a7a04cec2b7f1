//! `sluice deploy template`: an AWS SAM template (JSON) that deploys the
//! pipeline as a Lambda function behind its event source mapping.
//!
//! The template holds the function (`provided.al2023`, the `bootstrap` built
//! by `cargo lambda build`, with the pipeline file in its package), the
//! source's part (its event source mapping with partial batch responses and an
//! SQS on-failure destination for streams, or a Firehose delivery stream), the
//! DLQ resource, and a least-privilege policy derived from the pipeline's
//! source, sinks and DLQ.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Arch, pipeline_url_statements};
use crate::config::Pipeline;

/// What the template is made for.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The pipeline file, as it is named inside the deployment package.
    pub file: &'a Path,
    /// The function's package (`CodeUri`).
    pub code_uri: &'a str,
    /// Where the function reads the pipeline at init instead (`s3://…`).
    pub pipeline_url: Option<&'a str>,
    /// CPU architecture the bootstrap was built for.
    pub arch: Arch,
}

/// The template for a pipeline.
pub fn template(p: &Pipeline, args: &Options<'_>) -> Result<Value, String> {
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
    let mut event = fragment.event;
    // An aggregate's window is the event source mapping's own.
    if let Some(why) = p.refusal(crate::sources::RunMode::Lambda) {
        return Err(why);
    }
    if let (Some(a), Some(e)) = (&p.aggregate, event.as_mut()) {
        e["Properties"]["TumblingWindowInSeconds"] = json!(a.window.tumbling.0.as_secs());
    }
    for sink in p.sinks.values() {
        policy.extend(sink.permissions(&p.name));
        if sink.writes_locally() {
            return Err(format!(
                "a `{}` sink cannot be used in Lambda: its file would be lost with the execution environment",
                sink.type_name()
            ));
        }
    }
    let dlq = p.dlq.as_sink();
    if dlq.writes_locally() {
        return Err(format!(
            "a `{}` DLQ cannot be used in Lambda: use an `s3` or `sqs` DLQ",
            dlq.type_name()
        ));
    }
    if let Some((id, resource)) = dlq.dlq_resource() {
        resources.insert(id.into(), resource);
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
                "Environment": { "Variables": {
                    "SLUICE_PIPELINE": pipeline_path,
                    // The allocator commits memory as it is used, not a
                    // whole arena at start-up: a warm function's resident
                    // set (billed) drops by a third, at no cost in speed.
                    // Read before `main`, so it can only be set here.
                    "MIMALLOC_ARENA_EAGER_COMMIT": "0"
                } },
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
