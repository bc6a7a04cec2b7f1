//! What the pipeline format reads for a `dynamodb` sink.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::Writer;
use crate::aws::iam::{statement, table_arn};
use crate::delivery::{Error, Policy};
use crate::diagnostics::{At, Code, Findings};
use crate::sinks::{BuildCx, CheckCx, Sink};

/// Write records to an Amazon DynamoDB table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DynamodbSink")]
pub struct Config {
    /// Table name or ARN.
    pub table: String,
    /// `put`: the record (a JSON object holding the table's key) is the item. `update`:
    /// `UpdateItem` on the item named by `key`.
    #[serde(default)]
    pub mode: Mode,
    /// `update` (required there): the record fields (dotted paths) that form the item's key:
    /// partition key, then sort key. The attribute is named after the field's last part.
    #[serde(default)]
    pub key: Vec<String>,
    /// `update`: attribute ← record field: `ADD` the field's number to the attribute (counters
    /// such as `TotalSales`). `update` needs `add` or `set`.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// `update`: attribute ← record field: `SET` the attribute to the field's value (skipped
    /// when the record has no such field).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// A condition expression for idempotent writes, such as `attribute_not_exists(order_id)`.
    /// A write whose condition fails counts as already done: delivered, not dead-lettered. With
    /// a condition, `put` writes item by item (`PutItem`).
    #[serde(default)]
    pub condition: Option<String>,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<crate::delivery::Policy>,
}

/// How records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
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

    fn permissions(&self, _pipeline: &str) -> Vec<Value> {
        let actions = match self.mode {
            Mode::Put => &["dynamodb:BatchWriteItem", "dynamodb:PutItem"][..],
            Mode::Update => &["dynamodb:UpdateItem"][..],
        };
        vec![statement(actions, vec![table_arn(&self.table)])]
    }

    async fn open(&self, cx: &BuildCx<'_>) -> Result<Writer, Error> {
        Ok(Writer::new(self.clone(), cx.aws()?))
    }
}
