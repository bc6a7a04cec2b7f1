//! Change records of a Lambda event (`Records[]`, `eventSource: aws:dynamodb`).

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde_json::Value;

use std::collections::BTreeSet;

use super::super::event::{Batch, EventSource, Item, Outcome, first_failure, from_first_failure, decode, records, seconds_at, text_at};

/// Adds one event record (a change) to the batch.
pub fn push(r: &Value, batch: &mut Batch) {
    let seq = text_at(r, "/dynamodb/SequenceNumber");
    let item = Item::new(seq.clone().unwrap_or_default());
    let stream: Option<Arc<str>> = text_at(r, "/eventSourceARN").map(Arc::from);
    match decode::<EventRecord>(r) {
        Ok(record) => {
            let position = super::position(
                stream,
                None,
                seq,
                seconds_at(r, "/dynamodb/ApproximateCreationDateTime"),
            );
            let c = record.change;
            let record = super::record(
                position,
                &record.event_name,
                Some(&record.event_id),
                [Some(c.keys), Some(c.new_image), Some(c.old_image)],
            );
            batch.push(record, item);
        }
        Err(e) => {
            let position = super::position(stream, None, seq, None);
            batch.undecodable(r, "DynamoDB Streams event record", e, position, item);
        }
    }
}

/// DynamoDB Streams events in Lambda mode: a batch is one shard, answered
/// with its first failed sequence number (the mapping retries from there).
pub struct Events;

impl EventSource for Events {
    fn origins(&self) -> &'static [&'static str] {
        &["aws:dynamodb"]
    }

    fn decode(&self, event: Value) -> Result<Batch, String> {
        records(event, push)
    }

    fn ordering_unit<'a>(&self, _batch: &'a Batch, _item: usize) -> Option<&'a str> {
        Some("")
    }

    fn response(&self, batch: &Batch, outcome: &Outcome<'_>) -> Result<Value, String> {
        first_failure(batch, outcome.failed)
    }

    fn redelivered(&self, batch: &Batch, failed: &BTreeSet<usize>) -> usize {
        from_first_failure(batch, failed)
    }
}
