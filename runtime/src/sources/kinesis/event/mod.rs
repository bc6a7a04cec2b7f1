//! Kinesis records of a Lambda event (`Records[]`, `eventSource: aws:kinesis`).

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use serde_json::Value;

use super::super::event::{Batch, Item, ShardEvents, decode, seconds_at, text_at};

mod fast;

/// Adds one event record (a Kinesis record, or the user records of a KPL
/// aggregate) to the batch.
pub fn push(r: &Value, batch: &mut Batch) {
    let seq = text_at(r, "/kinesis/sequenceNumber").unwrap_or_default();
    let item = Item::new(seq.clone());
    // `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` and `shardId-…:SEQUENCE`.
    let stream: Option<Arc<str>> =
        text_at(r, "/eventSourceARN").map(|arn| Arc::from(super::stream_name(&arn)));
    let shard: Option<Arc<str>> =
        text_at(r, "/eventID").and_then(|id| id.split_once(':').map(|(shard, _)| Arc::from(shard)));
    let position = |partition_key| {
        super::position(
            stream.clone(),
            shard.clone(),
            partition_key,
            seq.clone(),
            seconds_at(r, "/kinesis/approximateArrivalTimestamp"),
        )
    };
    match decode::<KinesisEventRecord>(r) {
        Ok(record) => {
            let k = record.kinesis;
            let position = position(Some(k.partition_key));
            batch.push_many(item, |records| {
                super::push_records(records, k.data.0, position)
            });
        }
        Err(e) => {
            let position = position(text_at(r, "/kinesis/partitionKey"));
            batch.undecodable(r, "Kinesis event record", e, position, item);
        }
    }
}

/// Kinesis events in Lambda mode: a batch is one shard, answered with its
/// first failed sequence number (the mapping retries from there).
pub const EVENTS: ShardEvents = ShardEvents {
    origins: &["aws:kinesis"],
    push,
    fast: Some(fast::decode),
};
