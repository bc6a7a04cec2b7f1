//! `meta`: read-only facts about a record, as a Rhai custom type.
//!
//! Getters make the facts free until a script reads them: no map is built per record.

use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString};

use crate::record::{Attributes, Position};

/// Facts about the record a script is running on.
#[derive(Debug, Clone)]
pub struct Meta {
    position: Position,
    attributes: Option<Arc<Attributes>>,
    batch_time: ImmutableString,
}

impl Meta {
    /// Meta for a record at `position`, with the source's attributes (SQS message attributes).
    pub fn new(
        position: &Position,
        attributes: Option<Arc<Attributes>>,
        batch_time: ImmutableString,
    ) -> Self {
        Meta {
            position: position.clone(),
            attributes,
            batch_time,
        }
    }
}

fn opt<T: Into<Dynamic>>(v: Option<T>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Into::into)
}

fn text(v: Option<&str>) -> Dynamic {
    opt(v.map(ImmutableString::from))
}

/// Registers the `Meta` type and its getters.
pub fn register(e: &mut Engine) {
    e.register_type_with_name::<Meta>("Meta")
        .register_get("source", |m: &mut Meta| {
            ImmutableString::from(m.position.source)
        })
        .register_get("file", |m: &mut Meta| text(m.position.file.as_deref()))
        .register_get("line", |m: &mut Meta| {
            opt(m.position.line.and_then(|l| i64::try_from(l).ok()))
        })
        .register_get("stream", |m: &mut Meta| text(m.position.stream.as_deref()))
        .register_get("shard", |m: &mut Meta| text(m.position.shard.as_deref()))
        .register_get("topic", |m: &mut Meta| match m.position.source {
            "kafka" => text(m.position.stream.as_deref()),
            _ => Dynamic::UNIT,
        })
        .register_get("partition", |m: &mut Meta| opt(m.position.partition))
        .register_get("offset", |m: &mut Meta| opt(m.position.offset))
        .register_get("message_id", |m: &mut Meta| {
            text(m.position.message_id.as_deref())
        })
        .register_get("partition_key", |m: &mut Meta| {
            text(m.position.partition_key.as_deref())
        })
        .register_get("sequence_number", |m: &mut Meta| {
            text(m.position.sequence_number.as_deref())
        })
        .register_get("arrival_time", |m: &mut Meta| {
            text(m.position.arrival_time.as_deref())
        })
        .register_get("attributes", |m: &mut Meta| {
            let mut map = rhai::Map::new();
            for (k, v) in m.attributes.iter().flat_map(|a| a.iter()) {
                map.insert(k.as_str().into(), Dynamic::from(v.clone()));
            }
            Dynamic::from_map(map)
        })
        .register_get("batch_time", |m: &mut Meta| m.batch_time.clone());
}
