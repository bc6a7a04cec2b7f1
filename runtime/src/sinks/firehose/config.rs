//! What the pipeline format reads for a `firehose` sink.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Writer;
use crate::aws::iam::{arn, statement};
use crate::delivery::{Error, Policy};
use crate::diagnostics::{At, Code, Findings};
use crate::sinks::{BuildCx, CheckCx, Sink};

/// Send each record to an Amazon Data Firehose delivery stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FirehoseSink")]
pub struct Config {
    /// Delivery stream name or ARN (`arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`).
    pub delivery_stream: String,
    /// End each record with a line break, so that the objects Firehose writes to S3 are JSON
    /// Lines: Firehose concatenates records as they were sent.
    #[serde(default = "default_newline")]
    pub newline: bool,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<Policy>,
}

fn default_newline() -> bool {
    true
}

impl Config {
    /// The delivery stream's name: `PutRecordBatch` takes a name, not an ARN.
    pub fn stream_name(&self) -> &str {
        match self.delivery_stream.split_once(":deliverystream/") {
            Some((_, name)) if self.delivery_stream.starts_with("arn:") => name,
            _ => &self.delivery_stream,
        }
    }
}

impl Sink for Config {
    type Writer = Writer;

    fn retry(&self) -> Option<&Policy> {
        self.retry.as_ref()
    }

    fn check(&self, _cx: &CheckCx<'_>, findings: &mut Findings) {
        let name = self.stream_name();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            findings
                .error(
                    Code::InvalidValue,
                    At::Value("delivery_stream"),
                    format!("`{}` is not a delivery stream name or ARN", self.delivery_stream),
                )
                .help("a name has 1 to 64 letters, digits, `_`, `.` or `-`; an ARN is `arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`");
        }
    }

    fn permissions(&self, _pipeline: &str) -> Vec<Value> {
        let resource = if self.delivery_stream.starts_with("arn:") {
            Value::String(self.delivery_stream.clone())
        } else {
            arn(
                "firehose",
                &format!("deliverystream/{}", self.delivery_stream),
            )
        };
        vec![statement(&["firehose:PutRecordBatch"], vec![resource])]
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Ok(Writer::new(self.clone(), &*cx.aws()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stream: &str) -> Config {
        serde_json::from_value(serde_json::json!({ "delivery_stream": stream })).unwrap()
    }

    #[test]
    fn takes_the_name_of_an_arn_and_refuses_what_is_neither() {
        assert_eq!(config("events").stream_name(), "events");
        let arn = config("arn:aws:firehose:eu-west-1:123456789012:deliverystream/events-v2");
        assert_eq!(arn.stream_name(), "events-v2");
        assert_eq!(
            arn.permissions("p")[0]["Resource"][0],
            "arn:aws:firehose:eu-west-1:123456789012:deliverystream/events-v2"
        );
        let mut f = Findings::default();
        config("no spaces").check(&CheckCx::default(), &mut f);
        assert_eq!(f.list.len(), 1);
        assert_eq!(f.list[0].at, At::Value("delivery_stream"));
        let mut f = Findings::default();
        arn.check(&CheckCx::default(), &mut f);
        assert!(f.list.is_empty());
    }
}
