//! What the pipeline format reads for a `firehose_response` sink.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Writer;
use crate::delivery::Error;
use crate::diagnostics::{At, Code, Findings};
use crate::record::Returned;
use crate::sinks::{BuildCx, CheckCx, Sink};

/// Return each record to the Firehose delivery stream that invoked the
/// function (with a `firehose` source).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FirehoseResponseSink")]
pub struct Config {
    /// Dynamic partitioning: key name ← record field (dotted path), returned
    /// as the record's `metadata.partitionKeys` (a missing field gives `""`).
    #[serde(default)]
    pub partition_keys: BTreeMap<String, String>,
    /// End each record with a line break, so that the objects Firehose
    /// writes to S3 are JSON Lines (Firehose concatenates records as they are).
    #[serde(default = "default_newline")]
    pub newline: bool,
}

fn default_newline() -> bool {
    true
}

impl Sink for Config {
    type Writer = Writer;

    /// The partition keys' fields, in the order of their names.
    fn key_fields(&self) -> Vec<String> {
        self.partition_keys.values().cloned().collect()
    }

    fn uses_aws(&self) -> bool {
        false
    }

    fn answers(&self) -> bool {
        true
    }

    fn answer(&self, json: &[u8], keys: &[String]) -> Returned {
        let mut data = Vec::with_capacity(json.len() + 1);
        data.extend_from_slice(json);
        if self.newline {
            data.push(b'\n');
        }
        Returned {
            item: 0,
            data,
            keys: self
                .partition_keys
                .keys()
                .cloned()
                .zip(keys.iter().cloned())
                .collect(),
        }
    }

    fn check(&self, cx: &CheckCx<'_>, findings: &mut Findings) {
        if cx.source != "firehose" {
            findings
                .error(
                    Code::InvalidValue,
                    At::Whole,
                    format!("answers a Firehose data-transformation function, but the source is `{}`", cx.source),
                )
                .help("use it with `source: { type: firehose }`, or write the records with a `firehose` sink");
        }
    }

    async fn open(&self, _cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Ok(Writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_answered_with_a_line_break_and_its_partition_keys() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "partition_keys": { "region": "customer.region", "day": "date" }
        }))
        .unwrap();
        assert_eq!(c.key_fields(), ["date", "customer.region"]);
        let r = c.answer(b"{}", &["2026-12-05".into(), "eu".into()]);
        assert_eq!(r.data, b"{}\n");
        assert_eq!(
            r.keys,
            [
                ("day".into(), "2026-12-05".into()),
                ("region".into(), "eu".into())
            ]
        );
        let mut f = Findings::default();
        c.check(
            &CheckCx {
                dlq: false,
                source: "sqs",
            },
            &mut f,
        );
        assert_eq!(f.list.len(), 1);
    }
}
