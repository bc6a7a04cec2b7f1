//! Change records of a Lambda event (`Records[]`, `eventSource: aws:dynamodb`).

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde_json::Value;

use super::super::event::{Batch, Item, ShardEvents, decode, seconds_at, text_at};

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

/// DynamoDB Streams events in Lambda mode: a batch is one shard, answered with its
/// first failed sequence number (the mapping retries from there).
pub const EVENTS: ShardEvents = ShardEvents {
    origins: &["aws:dynamodb"],
    push,
    fast: None,
};
