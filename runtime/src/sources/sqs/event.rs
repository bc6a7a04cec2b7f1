//! SQS messages of a Lambda event (`Records[]`, `eventSource: aws:sqs`).

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsMessage;
use serde_json::Value;

use super::super::event::{Batch, Item, decode, text_at};

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
