//! `sluice deploy template`: the SAM templates of the example pipelines are
//! translated to CloudFormation by aws-sam-translator and checked by cfn-lint
//! (both installed into the test venv), and their policies are exact.

mod common;

use std::path::Path;

use common::{python, root, run, sluice, stderr, stdout};
use serde_json::{Value, json};

fn template(pipeline: &Path) -> Value {
    let o = run(sluice()
        .args(["deploy", "template"])
        .arg(pipeline)
        .current_dir(root()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("the template is JSON")
}

/// Translates and lints a template: `Ok` or cfn-lint's findings.
fn validate(template: &Value) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (
        dir.path().join("template.json"),
        dir.path().join("cfn.json"),
    );
    std::fs::write(&src, template.to_string()).unwrap();
    let py = python();
    let o = run(std::process::Command::new(&py)
        .arg(root().join("tests/deploy/sam2cfn.py"))
        .args([&src, &dst])
        .env("AWS_DEFAULT_REGION", "us-east-1"));
    if !o.status.success() {
        return Err(format!("aws-sam-translator: {}{}", stdout(&o), stderr(&o)));
    }
    let lint = run(std::process::Command::new(py.parent().unwrap().join("cfn-lint")).arg(&dst));
    if !lint.status.success() {
        return Err(format!("cfn-lint: {}{}", stdout(&lint), stderr(&lint)));
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(&dst).unwrap()).unwrap())
}

fn mapping(cfn: &Value) -> Value {
    cfn["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["Type"] == "AWS::Lambda::EventSourceMapping")
        .expect("an event source mapping")["Properties"]
        .clone()
}

#[test]
fn the_orders_template_validates_with_least_privilege() {
    let t = template(Path::new("pipelines/orders/kinesis.yaml"));
    let cfn = validate(&t).unwrap();
    let esm = mapping(&cfn);
    assert_eq!(
        esm["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(esm["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(esm["BisectBatchOnFunctionError"], true);
    assert_eq!(
        esm["DestinationConfig"]["OnFailure"]["Destination"],
        json!({ "Fn::GetAtt": ["OnFailureQueue", "Arn"] })
    );
    let f = &t["Resources"]["Function"]["Properties"];
    assert_eq!(
        (&f["Runtime"], &f["Environment"]["Variables"]),
        (
            &json!("provided.al2023"),
            &json!({
                "SLUICE_PIPELINE": "pipelines/orders/kinesis.yaml",
                "MIMALLOC_ARENA_EAGER_COMMIT": "0"
            })
        )
    );
    let statements: Vec<(Value, Value)> = f["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Action"].clone(), s["Resource"].clone()))
        .collect();
    let sub = |s: &str| json!([{ "Fn::Sub": s }]);
    assert_eq!(
        statements,
        vec![
            (
                json!([
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                    "kinesis:ListStreams"
                ]),
                sub("arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/orders")
            ),
            (
                json!(["sqs:SendMessage"]),
                json!([{ "Fn::GetAtt": ["OnFailureQueue", "Arn"] }])
            ),
            (
                json!(["s3:PutObject"]),
                sub("arn:${AWS::Partition}:s3:::orders-archive/orders/dt=*")
            ),
            (
                json!(["sqs:SendMessage", "sqs:GetQueueUrl"]),
                sub("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:big-orders")
            ),
            (
                json!(["s3:PutObject"]),
                sub("arn:${AWS::Partition}:s3:::orders-dead-letters/orders/dt=*")
            ),
        ]
    );
    assert_eq!(
        t["Resources"]["DeadLetterBucket"]["Properties"]["BucketName"],
        "orders-dead-letters"
    );
}

#[test]
fn dynamodb_streams_and_sqs_templates_validate() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("streams.yaml");
    common::write_pipeline_file(
        &p,
        "totals",
        "source: { type: dynamodb_streams, table: Orders, start_position: trim_horizon }\n\
         routes: [{ to: [t] }]\n\
         sinks:\n  t: { type: dynamodb, table: Totals, mode: update, key: [customer_id], add: { TotalSales: total } }\n\
         dlq: { type: s3, bucket: totals-dead }\n",
    );
    let t = template(&p);
    assert!(t["Parameters"]["StreamArn"].is_object());
    let esm = mapping(&validate(&t).unwrap());
    assert_eq!(
        esm["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let statements = &t["Resources"]["Function"]["Properties"]["Policies"][0]["Statement"];
    assert_eq!(statements[2]["Action"], json!(["dynamodb:UpdateItem"]));

    let p = dir.path().join("pipeline.yaml");
    common::write_pipeline_file(
        &p,
        "q",
        "source: { type: sqs, queue: orders-in }\nroutes: [{ to: [t] }]\n\
         sinks:\n  t: { type: dynamodb, table: Orders }\ndlq: { type: sqs, queue: orders-dead }\n",
    );
    let t = template(&p);
    let esm = mapping(&validate(&t).unwrap());
    assert_eq!(
        esm["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(esm.get("StartingPosition").is_none());
    assert_eq!(
        t["Resources"]["DeadLetterQueue"]["Properties"]["QueueName"],
        "orders-dead"
    );
    assert!(
        t["Resources"].get("OnFailureQueue").is_none(),
        "SQS retries by itself"
    );
}

/// Kafka: an MSK mapping with IAM access to the cluster, topic and group,
/// and a self-managed one that reads its credentials from a secret.
#[test]
fn kafka_templates_validate() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("msk.yaml");
    common::write_pipeline_file(
        &p,
        "clicks",
        "source: { type: kafka, topic: clicks, cluster_arn: 'arn:aws:kafka:us-east-1:123456789012:cluster/web/0b1c2d3e-1', start_position: trim_horizon }\n\
         routes: [{ to: [t] }]\nsinks:\n  t: { type: s3, bucket: clicks-archive }\ndlq: { type: s3, bucket: clicks-dead }\n",
    );
    let t = template(&p);
    let esm = mapping(&validate(&t).unwrap());
    assert_eq!(
        (
            &esm["EventSourceArn"],
            &esm["Topics"],
            &esm["StartingPosition"],
            &esm["FunctionResponseTypes"],
            &esm["AmazonManagedKafkaEventSourceConfig"]
        ),
        (
            &json!("arn:aws:kafka:us-east-1:123456789012:cluster/web/0b1c2d3e-1"),
            &json!(["clicks"]),
            &json!("TRIM_HORIZON"),
            &json!(["ReportBatchItemFailures"]),
            &json!({ "ConsumerGroupId": "clicks" })
        )
    );
    let statements = &t["Resources"]["Function"]["Properties"]["Policies"][0]["Statement"];
    assert_eq!(
        statements[1],
        json!({ "Effect": "Allow", "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                "Resource": ["arn:aws:kafka:us-east-1:123456789012:topic/web/0b1c2d3e-1/clicks"] })
    );
    assert_eq!(
        statements[2]["Resource"],
        json!(["arn:aws:kafka:us-east-1:123456789012:group/web/0b1c2d3e-1/clicks"])
    );

    let p = dir.path().join("self.yaml");
    common::write_pipeline_file(
        &p,
        "clicks",
        "source: { type: kafka, topic: clicks, bootstrap_servers: ['kafka-1.example.com:9096'], consumer_group: archive }\n\
         routes: [{ to: [t] }]\nsinks:\n  t: { type: s3, bucket: clicks-archive }\ndlq: { type: s3, bucket: clicks-dead }\n",
    );
    let t = template(&p);
    let esm = mapping(&validate(&t).unwrap());
    assert_eq!(
        (
            &esm["SelfManagedEventSource"],
            &esm["SourceAccessConfigurations"],
            &esm["SelfManagedKafkaEventSourceConfig"]
        ),
        (
            &json!({ "Endpoints": { "KafkaBootstrapServers": ["kafka-1.example.com:9096"] } }),
            &json!([{ "Type": "SASL_SCRAM_512_AUTH", "URI": { "Ref": "KafkaSecretArn" } }]),
            &json!({ "ConsumerGroupId": "archive" })
        )
    );
}

/// The validation can fail: a starting position SQS-style streams do not know is caught.
#[test]
fn a_broken_template_is_caught() {
    let mut t = template(Path::new("pipelines/orders/kinesis.yaml"));
    t["Resources"]["Function"]["Properties"]["Events"]["Source"]["Properties"]["StartingPosition"] =
        json!("OLDEST");
    let err = validate(&t).unwrap_err();
    assert!(err.contains("E3031") || err.contains("OLDEST"), "{err}");
}

#[test]
fn a_file_sink_cannot_be_deployed() {
    let o = run(sluice()
        .args(["deploy", "template", "pipelines/quickstart/pipeline.yaml"])
        .current_dir(root()));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: a `file` source is read by `sluice run` only, not by Lambda mode; a service or a function reads a stream: `sqs`, `kinesis` or `dynamodb_streams`\n"
    );
}

/// `--pipeline-url`: the function reads its pipeline from S3, and may read
/// that folder only.
#[test]
fn a_pipeline_in_s3_is_readable_by_the_function() {
    let o = run(sluice()
        .args(["deploy", "template", "pipelines/orders/kinesis.yaml"])
        .args(["--pipeline-url", "s3://acme-config/orders/kinesis.yaml"])
        .current_dir(root()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t: Value = serde_json::from_str(&stdout(&o)).unwrap();
    validate(&t).unwrap();
    let f = &t["Resources"]["Function"]["Properties"];
    assert_eq!(
        f["Environment"]["Variables"]["SLUICE_PIPELINE"],
        "s3://acme-config/orders/kinesis.yaml"
    );
    let statements = f["Policies"][0]["Statement"].as_array().unwrap();
    let n = statements.len();
    assert_eq!(
        statements[n - 2..],
        [
            json!({ "Effect": "Allow", "Action": ["s3:GetObject"],
                    "Resource": [{ "Fn::Sub": "arn:${AWS::Partition}:s3:::acme-config/orders/*" }] }),
            json!({ "Effect": "Allow", "Action": ["s3:ListBucket"],
                    "Resource": [{ "Fn::Sub": "arn:${AWS::Partition}:s3:::acme-config" }],
                    "Condition": { "StringLike": { "s3:prefix": ["orders/*"] } } })
        ]
    );
}

#[test]
fn plan_sizes_the_stream_lambda_and_the_daemon_workers() {
    let o = run(sluice()
        .args(["plan", "pipelines/orders/kinesis.yaml"])
        .args([
            "--write-mb-s",
            "2.5",
            "--records-s",
            "3500",
            "--consumers",
            "2",
        ])
        .current_dir(root()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "pipeline `orders` reads the Kinesis stream `orders`\n\
         \n\
         shards: 4\n  \
         writes   2.5 MB/s                / 1 MB/s per shard           = 3\n  \
         records  3500 records/s          / 1 000 records/s per shard  = 4\n  \
         reads    2.5 MB/s x 2 consumers  / 2 MB/s per shard           = 3\n\
         \n\
         Lambda: 4 concurrent invocations (one per shard; up to 40 with ParallelizationFactor 10)\n\
         daemon: 2 workers (`sluice daemon`; 3500 records/s at 5000 per worker, at least 2 for failover, at most one per shard)\n"
    );
    let o = run(sluice()
        .args(["plan", "pipelines/orders/kinesis.yaml", "--format", "json"])
        .args(["--write-mb-s", "12", "--records-s", "24000"])
        .current_dir(root()));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        plan,
        json!({"pipeline": "orders", "stream": "orders", "shards": 24,
               "shards_for": {"write_mb_s": 12, "records_s": 24, "read_mb_s": 6},
               "lambda_concurrency": 24, "lambda_concurrency_max": 240,
               "daemon_workers": 5, "daemon_workers_for_load": 5})
    );
    let o = run(sluice()
        .args(["plan", "pipelines/orders/pipeline.yaml"])
        .args(["--write-mb-s", "1", "--records-s", "10"])
        .current_dir(root()));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: `sluice plan` sizes a Kinesis stream; the source of `orders` is `file`\n"
    );
}

/// `sluice deploy ecs` for a pipeline.
fn ecs(pipeline: &str, extra: &[&str]) -> std::process::Output {
    run(sluice()
        .args(["deploy", "ecs", pipeline])
        .args([
            "--image",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sluice:1",
        ])
        .args(extra)
        .current_dir(root()))
}

/// cfn-lint on a plain CloudFormation template.
fn lint(template: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.json");
    std::fs::write(&path, template).unwrap();
    let py = python();
    let lint = run(std::process::Command::new(py.parent().unwrap().join("cfn-lint")).arg(&path));
    if lint.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", stdout(&lint), stderr(&lint)))
    }
}

#[test]
fn the_ecs_service_validates_with_least_privilege_and_matches_the_committed_example() {
    let o = ecs(
        "pipelines/orders/kinesis.yaml",
        &["--pipeline-url", "s3://config-bucket/orders/kinesis.yaml"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    lint(&text).unwrap();
    let t: Value = serde_json::from_str(&text).unwrap();
    let policy =
        &t["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    let sub = |s: &str| json!([{ "Fn::Sub": s }]);
    assert_eq!(
        policy,
        &json!([
            {"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams"],
             "Resource": sub("arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/orders")},
            {"Effect": "Allow", "Action": ["dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:GetItem",
                "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"],
             "Resource": sub("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/sluice-checkpoints")},
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": sub("arn:${AWS::Partition}:s3:::orders-archive/orders/dt=*")},
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
             "Resource": sub("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:big-orders")},
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": sub("arn:${AWS::Partition}:s3:::orders-dead-letters/orders/dt=*")},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": sub("arn:${AWS::Partition}:s3:::config-bucket/orders/*")},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": sub("arn:${AWS::Partition}:s3:::config-bucket"),
             "Condition": {"StringLike": {"s3:prefix": ["orders/*"]}}}
        ])
    );
    let container = &t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    assert_eq!(
        container["Command"],
        json!(["daemon", "s3://config-bucket/orders/kinesis.yaml"])
    );
    assert_eq!(
        container["HealthCheck"]["Command"],
        json!([
            "CMD",
            "/usr/local/bin/sluice",
            "probe",
            "http://127.0.0.1:9090/healthz"
        ])
    );
    assert_eq!(container["StopTimeout"], 30);

    // deploy/ecs/orders.json is this command's output for the pipeline in the image.
    let o = ecs("pipelines/orders/kinesis.yaml", &[]);
    let committed = root().join("deploy/ecs/orders.json");
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&committed, stdout(&o)).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&committed).unwrap(),
        stdout(&o),
        "deploy/ecs/orders.json is stale: rerun with SLUICE_BLESS=1"
    );
    lint(&stdout(&o)).unwrap();
}

#[test]
fn the_ecs_template_refuses_what_a_task_would_lose() {
    let o = ecs("pipelines/orders/pipeline.yaml", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: a `file` source is read by `sluice run` only, not by `sluice daemon`; a service or a function reads a stream: `sqs`, `kinesis` or `dynamodb_streams`\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    common::write_pipeline_file(
        &p,
        "q",
        "source: { type: sqs, queue: in }\nroutes: [{ to: [out] }]\n\
         sinks:\n  out: { type: file, path: out.jsonl }\ndlq: { type: sqs, queue: dlq }\n",
    );
    let o = ecs(p.to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: sink `out`: a `file` sink would be lost with the task: use an AWS sink\n"
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let py = python();
    let o = run(
        std::process::Command::new(py.parent().unwrap().join("hadolint"))
            .arg(root().join("deploy/ecs/Dockerfile")),
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// `--arch` takes AWS's spelling `x86_64` (and `x86-64`), and gives the
/// function that architecture.
#[test]
fn the_architecture_is_spelled_as_aws_spells_it() {
    for spelling in ["x86_64", "x86-64"] {
        let o = run(sluice()
            .args(["deploy", "template", "--arch", spelling])
            .arg("pipelines/orders/kinesis.yaml")
            .current_dir(root()));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let t: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let functions: Vec<&Value> = t["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Type"] == "AWS::Serverless::Function")
            .collect();
        assert_eq!(functions.len(), 1);
        assert_eq!(
            functions[0]["Properties"]["Architectures"],
            json!(["x86_64"])
        );
    }
}

/// A Firehose data-transformation pipeline: the delivery stream with the
/// function as its processor and an S3 destination, no event source mapping,
/// and least privilege on both sides (the function writes only its DLQ; the
/// delivery stream's role reaches only its bucket and the function).
#[test]
fn the_firehose_template_validates_with_the_function_as_processor() {
    let t = template(Path::new("pipelines/clickstream/pipeline.yaml"));
    let cfn = validate(&t).unwrap();
    let resources = cfn["Resources"].as_object().unwrap();
    assert!(
        resources
            .values()
            .all(|r| r["Type"] != "AWS::Lambda::EventSourceMapping"),
        "Firehose invokes the function itself"
    );
    assert!(t["Parameters"].get("BatchSize").is_none());
    let stream = &t["Resources"]["DeliveryStream"]["Properties"];
    assert_eq!(stream["DeliveryStreamType"], "DirectPut");
    let s3 = &stream["ExtendedS3DestinationConfiguration"];
    assert_eq!(
        s3["ErrorOutputPrefix"],
        json!({ "Ref": "ErrorOutputPrefix" })
    );
    assert_eq!(
        s3["ProcessingConfiguration"]["Processors"][0]["Parameters"],
        json!([
            { "ParameterName": "LambdaArn", "ParameterValue": { "Fn::GetAtt": ["Function", "Arn"] } },
            { "ParameterName": "BufferSizeInMBs", "ParameterValue": "1" },
            { "ParameterName": "BufferIntervalInSeconds", "ParameterValue": "60" }
        ])
    );
    let function = &t["Resources"]["Function"]["Properties"];
    assert!(function.get("Events").is_none());
    let actions: Vec<&Value> = function["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["Action"])
        .collect();
    assert_eq!(actions, [&json!(["sqs:SendMessage", "sqs:GetQueueUrl"])]);
    let role =
        &t["Resources"]["DeliveryRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    assert_eq!(
        role[2],
        json!({ "Effect": "Allow", "Action": ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                "Resource": [{ "Fn::GetAtt": ["Function", "Arn"] }] })
    );
}
