//! IAM policy statements and ARNs, as CloudFormation values: what the
//! deploy templates grant, and what each component says it needs.

use serde_json::{Value, json};

/// A CloudFormation `Fn::Sub` of `s`.
pub fn sub(s: String) -> Value {
    json!({ "Fn::Sub": s })
}

/// The ARN of `resource` of `service` in the stack's partition, region and account.
pub fn arn(service: &str, resource: &str) -> Value {
    sub(format!(
        "arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"
    ))
}

/// A Kinesis stream's ARN from a name or an ARN.
pub fn stream_arn(stream: &str) -> Value {
    if stream.starts_with("arn:") {
        json!(stream)
    } else {
        arn("kinesis", &format!("stream/{stream}"))
    }
}

/// An SQS queue's ARN from a name, URL or ARN.
pub fn queue_arn(queue: &str) -> Value {
    if queue.starts_with("arn:") {
        return json!(queue);
    }
    let name = queue
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(queue);
    arn("sqs", name)
}

/// A DynamoDB table's ARN.
pub fn table_arn(table: &str) -> Value {
    arn("dynamodb", &format!("table/{table}"))
}

/// A statement that allows `actions` on `resources`.
pub fn statement(actions: &[&str], resources: Vec<Value>) -> Value {
    json!({ "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// Reading a Kinesis stream (`sluice run`, `sluice daemon`, an event source mapping).
pub fn kinesis_read(stream: &str) -> Value {
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
pub fn sqs_consume(queue: &str) -> Value {
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

/// Reading a DynamoDB table's stream.
pub fn dynamodb_stream_read(stream: Value) -> Value {
    statement(
        &[
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        ],
        vec![stream],
    )
}

/// The lease (checkpoint) table of a stream's worker group, created by the first worker.
pub fn lease_table(table: &str) -> Value {
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
}
