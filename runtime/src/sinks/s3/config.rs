//! What the pipeline format reads for an `s3` sink.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Writer;
use crate::aws::iam::{statement, sub};
use crate::delivery::{Error, Policy};
use crate::diagnostics::{At, Code, Findings};
use crate::duration::Dur;
use crate::sinks::{BuildCx, CheckCx, Sink};

/// Write records to Amazon S3 as JSON Lines objects (gzip when the key ends in `.gz`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "S3Sink")]
pub struct Config {
    /// The bucket's name, without `s3://`.
    pub bucket: String,
    /// The object key template, with the placeholders below. A key that ends in `.gz` gives
    /// gzip-compressed objects.
    #[serde(default = "default_key")]
    pub key: String,
    /// Most records in one object. The sink writes once it holds this many.
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1))]
    pub max_records: usize,
    /// Most bytes in one object, before compression (64 MiB). The sink writes once it holds
    /// this many.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
    /// The sink writes what it holds once its oldest record waited this long (and when the run
    /// stops). Its records are acknowledged to the source only after that write. A dead-letter
    /// queue writes every batch at once.
    #[serde(default = "default_max_age")]
    pub max_age: Dur,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<crate::delivery::Policy>,
}

fn default_key() -> String {
    "{pipeline}/dt={date}/{part}.jsonl".into()
}
fn default_max_records() -> usize {
    10_000
}
fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_max_age() -> Dur {
    Dur(std::time::Duration::from_secs(60))
}

impl Sink for Config {
    type Writer = Writer;

    /// The record fields the key template names.
    fn key_fields(&self) -> Vec<String> {
        placeholders(&self.key)
            .filter_map(|p| p.strip_prefix("record.").map(str::to_owned))
            .collect()
    }

    fn retry(&self) -> Option<&Policy> {
        self.retry.as_ref()
    }

    fn check(&self, cx: &CheckCx<'_>, findings: &mut Findings) {
        if !self.has_part() {
            findings
                .error(
                    Code::InvalidValue,
                    At::Value("key"),
                    "an S3 key without `{part}` makes objects overwrite each other",
                )
                .help("end the key with `{part}.jsonl` (or `{part}.jsonl.gz`)");
        }
        if cx.dlq && !self.key_fields().is_empty() {
            findings.error(
                Code::InvalidValue,
                At::Value("key"),
                "a dead-letter queue's key cannot use `{record.…}`: envelopes are not records",
            );
        }
        for name in self.unknown_placeholders() {
            findings
                .error(
                    Code::InvalidValue,
                    At::Value("key"),
                    format!("`{{{name}}}` is not a placeholder of an S3 key"),
                )
                .help("use {pipeline}, {date}, {year}, {month}, {day}, {hour}, {part} or {record.FIELD}");
        }
    }

    /// `s3:PutObject` on the objects the key template can name: those
    /// under its fixed start.
    fn permissions(&self, pipeline: &str) -> Vec<Value> {
        // The prefix ends before the first `{`, so it holds no `${` that
        // `Fn::Sub` would read as a reference.
        let objects = format!("{}/{}*", self.bucket, self.key_prefix(pipeline));
        vec![statement(
            &["s3:PutObject"],
            vec![sub(format!("arn:${{AWS::Partition}}:s3:::{objects}"))],
        )]
    }

    fn dlq_resource(&self) -> Option<(&'static str, Value)> {
        Some((
            "DeadLetterBucket",
            serde_json::json!({ "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                                "Properties": { "BucketName": self.bucket } }),
        ))
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Ok(Writer::new(self.clone(), cx.pipeline, cx.aws()?))
    }
}

impl Config {
    /// The start of every key the template names in pipeline `pipeline`: the
    /// template up to its first placeholder other than `{pipeline}`, with
    /// `{pipeline}` replaced by the pipeline's name.
    fn key_prefix(&self, pipeline: &str) -> String {
        let mut prefix = String::new();
        let mut rest = self.key.as_str();
        while let Some(at) = rest.find('{') {
            prefix.push_str(&rest[..at]);
            match rest[at..].strip_prefix("{pipeline}") {
                Some(after) => {
                    prefix.push_str(pipeline);
                    rest = after;
                }
                None => return prefix,
            }
        }
        prefix.push_str(rest);
        prefix
    }

    /// Whether the key has a `{part}`: without it, objects overwrite each other.
    fn has_part(&self) -> bool {
        placeholders(&self.key).any(|p| p == "part")
    }

    /// The placeholders that are not known: reported by `sluice check`.
    fn unknown_placeholders(&self) -> Vec<String> {
        placeholders(&self.key)
            .filter(|p| {
                !p.starts_with("record.")
                    && !["pipeline", "date", "year", "month", "day", "hour", "part"].contains(p)
            })
            .map(str::to_owned)
            .collect()
    }
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(p, _)| p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_record_fields_and_unknown_placeholders() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "bucket": "b", "key": "x/{record.customer.id}/{date}/{nope}/{part}.jsonl.gz"
        }))
        .unwrap();
        assert_eq!(c.key_fields(), vec!["customer.id"]);
        assert_eq!(c.unknown_placeholders(), vec!["nope"]);
    }

    #[test]
    fn its_permission_covers_the_keys_its_template_can_name_and_no_other() {
        let resource = |key: &str| {
            let c: Config =
                serde_json::from_value(serde_json::json!({ "bucket": "b", "key": key })).unwrap();
            c.permissions("orders")[0]["Resource"][0]["Fn::Sub"].clone()
        };
        let arn = |objects: &str| format!("arn:${{AWS::Partition}}:s3:::b/{objects}");
        assert_eq!(
            resource("{pipeline}/dt={date}/{part}.jsonl"),
            arn("orders/dt=*")
        );
        assert_eq!(
            resource("raw/{pipeline}/{pipeline}-{part}"),
            arn("raw/orders/orders-*")
        );
        assert_eq!(resource("{record.id}/{part}"), arn("*"));
        assert_eq!(resource("fixed.jsonl"), arn("fixed.jsonl*"));
        assert_eq!(resource("a${b}/{part}"), arn("a$*"));
    }
}
