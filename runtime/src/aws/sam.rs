//! What a source adds to the Lambda deploy template (`sluice deploy
//! template`, AWS SAM): the function's event, and the parameters, resources
//! and IAM statements that go with it.

use serde_json::{Map, Value, json};

use super::iam::statement;

/// A source's part of the template.
#[derive(Debug, Default)]
pub struct Fragment {
    /// Template parameters (`StreamArn` …).
    pub parameters: Map<String, Value>,
    /// Resources besides the function.
    pub resources: Map<String, Value>,
    /// Statements of the function's policy.
    pub policy: Vec<Value>,
    /// The function's event (SAM `Events`), when an event source mapping
    /// invokes it.
    pub event: Option<Value>,
}

impl Fragment {
    /// The event source mapping of a stream (Kinesis, DynamoDB Streams, MSK):
    /// partial batch responses, bisection, bounded retries and an SQS
    /// on-failure destination (added with its permission).
    pub fn stream_event(&mut self, kind: &str, stream: Value, start: &str) -> Value {
        self.resources.insert(
            "OnFailureQueue".into(),
            json!({ "Type": "AWS::SQS::Queue",
                    "Properties": { "MessageRetentionPeriod": 1_209_600 } }),
        );
        self.policy.push(statement(
            &["sqs:SendMessage"],
            vec![json!({ "Fn::GetAtt": ["OnFailureQueue", "Arn"] })],
        ));
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
    }
}
