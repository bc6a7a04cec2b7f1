//! SQS messages of a Lambda event (`Records[]`, `eventSource: aws:sqs`).

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsMessage;
use serde_json::Value;

use std::collections::{BTreeSet, HashSet};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};

use super::super::event::{Batch, EventSource, Item, Outcome, decode, records, text_at};

/// Adds one event record (a message) to the batch.
pub fn push(r: &Value, batch: &mut Batch) {
    let arn = text_at(r, "/eventSourceARN");
    batch.fifo |= arn.as_deref().is_some_and(|a| a.ends_with(".fifo"));
    let queue: Option<Arc<str>> = arn.as_deref().map(|a| Arc::from(super::queue_name(a)));
    let id = text_at(r, "/messageId").unwrap_or_default();
    let system = |name: &str| text_at(r, &format!("/attributes/{name}"));
    let item = Item {
        id: id.clone(),
        group: system("MessageGroupId"),
        offset: None,
        original: None,
    };
    let m = match decode::<SqsMessage>(r) {
        Ok(m) => m,
        Err(e) => {
            let position = super::position(queue, Some(id), system);
            batch.undecodable(r, "SQS message", e, position, item);
            return;
        }
    };
    let attributes = m
        .message_attributes
        .iter()
        .map(|(k, v)| {
            let text = super::attribute_text(
                v.string_value.as_deref(),
                v.binary_value.as_ref().map(|b| b.0.as_slice()),
            );
            (k.clone(), text)
        })
        .collect();
    let body = m.body.unwrap_or_default().into_bytes();
    batch.push(
        super::record(queue, Some(id), body, system, attributes),
        item,
    );
}

/// SQS events in Lambda mode: every failed message id is answered; a FIFO
/// queue keeps order per message group, so every message of a group from
/// its first failed message on.
pub struct Events;

impl EventSource for Events {
    fn origins(&self) -> &'static [&'static str] {
        &["aws:sqs"]
    }

    fn decode(&self, event: Value) -> Result<Batch, String> {
        records(event, push)
    }

    fn ordering_unit<'a>(&self, batch: &'a Batch, item: usize) -> Option<&'a str> {
        batch
            .fifo
            .then(|| batch.items[item].group.as_deref().unwrap_or(""))
    }

    fn response(&self, batch: &Batch, outcome: &Outcome<'_>) -> Result<Value, String> {
        let ids = failed_ids(batch, outcome.failed);
        let mut r = SqsBatchResponse::default();
        r.batch_item_failures = ids
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id.to_owned();
                f
            })
            .collect();
        serde_json::to_value(r).map_err(|e| e.to_string())
    }

    fn redelivered(&self, batch: &Batch, failed: &BTreeSet<usize>) -> usize {
        failed_ids(batch, failed).len()
    }
}

/// The message ids the answer names.
fn failed_ids<'a>(batch: &'a Batch, failed: &BTreeSet<usize>) -> Vec<&'a str> {
    if !batch.fifo {
        return failed.iter().map(|&i| batch.items[i].id.as_str()).collect();
    }
    let mut ids = Vec::new();
    let mut stopped: HashSet<Option<&str>> = HashSet::new();
    for (i, item) in batch.items.iter().enumerate() {
        let group = item.group.as_deref();
        if failed.contains(&i) {
            stopped.insert(group);
        }
        if stopped.contains(&group) {
            ids.push(item.id.as_str());
        }
    }
    ids
}
