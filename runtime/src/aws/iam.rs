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
