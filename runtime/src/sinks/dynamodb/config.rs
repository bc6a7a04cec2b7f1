//! What the pipeline format reads for a `dynamodb` sink.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Writer;
use crate::aws::iam::{statement, table_arn};
use crate::delivery::Policy;
use crate::diagnostics::{At, Code, Findings};
use crate::sinks::{BuildCx, CheckCx, Sink};

/// Write records to an Amazon DynamoDB table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DynamodbSink")]
pub struct Config {
    /// Table name or ARN.
    pub table: String,
    /// `put`: the record is the item (it must hold the table's key). `update`:
    /// `UpdateItem` on the item named by `key`, with `add` and `set`.
    #[serde(default)]
    pub mode: Mode,
    /// `update`: the record fields that form the item's key (partition key, then sort key).
    #[serde(default)]
    pub key: Vec<String>,
    /// `update`: attribute ← record field, added (`ADD`) to the item's number attribute.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// `update`: attribute ← record field, set (`SET`) on the item.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// A condition expression for idempotent writes (`attribute_not_exists(order_id)`).
    /// A write whose condition fails counts as already done: delivered, not dead-lettered.
    /// With a condition, `put` writes item by item (`PutItem`).
    #[serde(default)]
    pub condition: Option<String>,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<crate::delivery::Policy>,
}

/// How records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "DynamodbMode")]
pub enum Mode {
    /// The record is the item.
    #[default]
    Put,
    /// Update counters and attributes of an item.
    Update,
}

impl Sink for Config {
    type Writer = Writer;

    fn retry(&self) -> Option<&Policy> {
        self.retry.as_ref()
    }

    fn check(&self, _cx: &CheckCx<'_>, findings: &mut Findings) {
        let problem = match self.mode {
            Mode::Update if self.key.is_empty() => {
                "`update` needs `key`: the record fields that name the item"
            }
            Mode::Update if self.add.is_empty() && self.set.is_empty() => {
                "`update` needs `add` or `set`"
            }
            Mode::Put if !self.key.is_empty() || !self.add.is_empty() || !self.set.is_empty() => {
                "`key`, `add` and `set` apply to `mode: update`; `put` writes the record as the item"
            }
            _ => return,
        };
        findings.error(Code::InvalidValue, At::Whole, problem);
    }

    fn permissions(&self) -> Vec<Value> {
        let actions = match self.mode {
            Mode::Put => &["dynamodb:BatchWriteItem", "dynamodb:PutItem"][..],
            Mode::Update => &["dynamodb:UpdateItem"][..],
        };
        vec![statement(actions, vec![table_arn(&self.table)])]
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, String> {
        Ok(Writer::new(self.clone(), cx.aws()?))
    }
}
