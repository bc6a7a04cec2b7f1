//! The `firehose` source: the records of an Amazon Data Firehose delivery
//! stream, given to a data-transformation Lambda function.
//!
//! Firehose invokes the function with a batch of records and takes back each
//! record transformed, dropped or failed ([`event`]); the transformed records
//! are those the pipeline routes to its `firehose_response` sink. Only Lambda
//! mode reads this source; [`Config::lambda_template`](super::Source::lambda_template)
//! writes the delivery stream with the function as its processor.

pub mod event;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{EventSource, RunMode, Source};
use crate::aws::iam::statement;
use crate::aws::sam::Fragment;

/// Transform the records of an Amazon Data Firehose delivery stream
/// (a data-transformation Lambda function).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FirehoseSource")]
pub struct Config {
    /// What Firehose is told of a record the pipeline dead-lettered:
    /// `processing_failed` (Firehose also writes it to its error output) or
    /// `dropped` (the pipeline's dead-letter queue alone keeps it).
    #[serde(default)]
    pub dead_lettered: DeadLettered,
}

/// Firehose's result for a dead-lettered record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "FirehoseDeadLettered")]
pub enum DeadLettered {
    /// `ProcessingFailed`: Firehose writes the original record to its error output.
    #[default]
    ProcessingFailed,
    /// `Dropped`: Firehose forgets the record; the dead-letter queue holds it.
    Dropped,
}

impl Source for Config {
    const MODES: &'static [RunMode] = &[RunMode::Lambda];
    const EVENTS: Option<&'static dyn EventSource> = Some(&event::Events);
    const ANSWERED_BY_SINK: bool = true;

    fn refusal_hint(&self) -> &'static str {
        " (Firehose invokes the function to transform a delivery stream's records): deploy it with `sluice deploy template`, or try it with `sluice test`"
    }

    fn uses_aws(&self) -> bool {
        false
    }

    /// A delivery stream (`DirectPut`) to an S3 bucket, with the function as
    /// its processor, its role, and an error output prefix.
    fn lambda_template(&self, pipeline: &str, t: &mut Fragment) -> Result<(), String> {
        t.parameters.insert(
            "DestinationBucketName".into(),
            json!({ "Type": "String", "MinLength": 3,
                    "Description": "The S3 bucket the delivery stream writes to" }),
        );
        t.parameters.insert(
            "Prefix".into(),
            json!({ "Type": "String", "Default": format!("{pipeline}/"),
                    "Description": "Key prefix of the transformed records' objects" }),
        );
        t.parameters.insert(
            "ErrorOutputPrefix".into(),
            json!({ "Type": "String",
                    "Default": format!("{pipeline}-errors/!{{firehose:error-output-type}}/"),
                    "Description": "Key prefix of the records Firehose could not deliver or the function failed" }),
        );
        let bucket = json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${DestinationBucketName}" });
        let objects = json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${DestinationBucketName}/*" });
        let function = json!({ "Fn::GetAtt": ["Function", "Arn"] });
        t.resources.insert(
            "DeliveryRole".into(),
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": { "Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow", "Principal": { "Service": "firehose.amazonaws.com" },
                        "Action": "sts:AssumeRole",
                        "Condition": { "StringEquals": { "sts:ExternalId": { "Ref": "AWS::AccountId" } } } }] },
                    "Policies": [{ "PolicyName": "delivery", "PolicyDocument": { "Version": "2012-10-17", "Statement": [
                        statement(&["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:ListBucket",
                                    "s3:ListBucketMultipartUploads"], vec![bucket.clone()]),
                        statement(&["s3:GetObject", "s3:PutObject"], vec![objects]),
                        statement(&["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                                  vec![function.clone()]),
                    ] } }]
                }
            }),
        );
        t.resources.insert(
            "DeliveryStream".into(),
            json!({
                "Type": "AWS::KinesisFirehose::DeliveryStream",
                "Properties": {
                    "DeliveryStreamType": "DirectPut",
                    "ExtendedS3DestinationConfiguration": {
                        "BucketARN": bucket,
                        "RoleARN": { "Fn::GetAtt": ["DeliveryRole", "Arn"] },
                        "Prefix": { "Ref": "Prefix" },
                        "ErrorOutputPrefix": { "Ref": "ErrorOutputPrefix" },
                        "BufferingHints": { "IntervalInSeconds": 60, "SizeInMBs": 64 },
                        "ProcessingConfiguration": {
                            "Enabled": true,
                            "Processors": [{
                                "Type": "Lambda",
                                "Parameters": [
                                    { "ParameterName": "LambdaArn", "ParameterValue": function },
                                    // 1 MB of records an invocation keeps the answer under
                                    // Lambda's 6 MB even when a transform grows them.
                                    { "ParameterName": "BufferSizeInMBs", "ParameterValue": "1" },
                                    { "ParameterName": "BufferIntervalInSeconds", "ParameterValue": "60" }
                                ]
                            }]
                        }
                    }
                }
            }),
        );
        Ok(())
    }
}

/// The delivery stream's name from its ARN (`…:deliverystream/NAME`).
pub fn stream_name(arn: &str) -> &str {
    arn.rsplit_once(":deliverystream/")
        .map_or(arn, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_writes_the_delivery_stream_with_the_function_as_processor() {
        let mut t = Fragment::default();
        Config::default().lambda_template("clicks", &mut t).unwrap();
        assert!(t.event.is_none(), "Firehose invokes the function itself");
        let stream = &t.resources["DeliveryStream"]["Properties"];
        assert_eq!(stream["DeliveryStreamType"], "DirectPut");
        let s3 = &stream["ExtendedS3DestinationConfiguration"];
        assert_eq!(
            s3["ProcessingConfiguration"]["Processors"][0]["Parameters"][0]["ParameterValue"],
            json!({ "Fn::GetAtt": ["Function", "Arn"] })
        );
        assert_eq!(
            t.parameters["ErrorOutputPrefix"]["Default"],
            "clicks-errors/!{firehose:error-output-type}/"
        );
        assert_eq!(
            stream_name("arn:aws:firehose:us-east-1:1:deliverystream/clicks"),
            "clicks"
        );
    }
}
