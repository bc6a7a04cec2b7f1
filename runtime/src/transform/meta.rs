//! `meta`: read-only facts about a record, as a Rhai custom type.
//!
//! Getters make the facts free until a script reads them: no map is built per record.

use std::sync::Arc;

use rhai::{Dynamic, Engine, ImmutableString};

/// Facts about the record a script is running on.
#[derive(Debug, Clone)]
pub struct Meta {
    source: &'static str,
    file: Option<Arc<str>>,
    line: Option<i64>,
    batch_time: ImmutableString,
}

impl Meta {
    /// Meta for a record read from a line source.
    pub fn for_line(
        source: &'static str,
        file: Option<Arc<str>>,
        line: u64,
        batch_time: ImmutableString,
    ) -> Self {
        Meta {
            source,
            file,
            line: i64::try_from(line).ok(),
            batch_time,
        }
    }
}

fn opt<T: Into<Dynamic>>(v: Option<T>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Into::into)
}

/// Registers the `Meta` type and its getters.
pub fn register(e: &mut Engine) {
    e.register_type_with_name::<Meta>("Meta")
        .register_get("source", |m: &mut Meta| ImmutableString::from(m.source))
        .register_get("file", |m: &mut Meta| {
            opt(m.file.as_deref().map(ImmutableString::from))
        })
        .register_get("line", |m: &mut Meta| opt(m.line))
        .register_get("partition_key", |_: &mut Meta| Dynamic::UNIT)
        .register_get("sequence_number", |_: &mut Meta| Dynamic::UNIT)
        .register_get("arrival_time", |_: &mut Meta| Dynamic::UNIT)
        .register_get("batch_time", |m: &mut Meta| m.batch_time.clone());
}
