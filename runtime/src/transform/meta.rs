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

/// Meta of a record at line 1 of `in.jsonl`, for tests.
#[cfg(test)]
pub fn sample() -> Meta {
    let position = Position {
        source: "file",
        file: Some(Arc::from("in.jsonl")),
        line: Some(1),
        ..Default::default()
    };
    Meta::new(&position, None, "2026-01-01T00:00:00.000Z".into())
}

/// A fact's getter.
pub type Getter = fn(&Meta) -> Dynamic;

/// Every fact a script can read, by name: registered as Rhai getters, and
/// read by the same functions when a transform runs natively.
pub const GETTERS: &[(&str, Getter)] = &[
    ("source", |m| {
        ImmutableString::from(m.position.source).into()
    }),
    ("file", |m| text(m.position.file.as_deref())),
    ("line", |m| {
        opt(m.position.line.and_then(|l| i64::try_from(l).ok()))
    }),
    ("stream", |m| text(m.position.stream.as_deref())),
    ("shard", |m| text(m.position.shard.as_deref())),
    ("topic", |m| match m.position.source {
        "kafka" => text(m.position.stream.as_deref()),
        _ => Dynamic::UNIT,
    }),
    ("partition", |m| opt(m.position.partition)),
    ("offset", |m| opt(m.position.offset)),
    ("message_id", |m| text(m.position.message_id.as_deref())),
    ("partition_key", |m| {
        text(m.position.partition_key.as_deref())
    }),
    ("sequence_number", |m| {
        text(m.position.sequence_number.as_deref())
    }),
    ("arrival_time", |m| text(m.position.arrival_time.as_deref())),
    ("attributes", |m| {
        let mut map = rhai::Map::new();
        for (k, v) in m.attributes.iter().flat_map(|a| a.iter()) {
            map.insert(k.as_str().into(), Dynamic::from(v.clone()));
        }
        Dynamic::from_map(map)
    }),
    ("batch_time", |m| m.batch_time.clone().into()),
];

/// The getter of the fact `name`.
pub fn getter(name: &str) -> Option<Getter> {
    GETTERS.iter().find(|(n, _)| *n == name).map(|(_, g)| *g)
}

/// Registers the `Meta` type and its getters.
pub fn register(e: &mut Engine) {
    e.register_type_with_name::<Meta>("Meta");
    for &(name, get) in GETTERS {
        e.register_get(name, move |m: &mut Meta| get(m));
    }
}
