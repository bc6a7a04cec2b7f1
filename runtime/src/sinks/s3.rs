//! The `s3` sink: JSON Lines objects in Amazon S3.
//!
//! The engine buffers records for this sink across batches until
//! `max_records`, `max_bytes` or `max_age` is reached (and holds back those
//! batches' acknowledgements until then). Each call then writes the records it
//! is given as one object per key (records whose key template gives the same
//! key share an object), split at `max_records` / `max_bytes`. The key's
//! `{part}` is derived from the first record's source position, so records
//! that are written again overwrite their objects instead of duplicating them.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use flate2::Compression;
use flate2::write::GzEncoder;
use schemars::JsonSchema;
use serde::Deserialize;

use super::OutRecord;
use crate::aws::Clients;
use crate::config::duration::Dur;
use crate::delivery::{ErrorClass, SinkError, error::classify};

/// Write records to Amazon S3 as JSON Lines objects (gzip when the key ends in `.gz`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "S3Sink")]
pub struct Config {
    /// Bucket name, without `s3://`.
    pub bucket: String,
    /// Object key template. `{pipeline}`; `{date}` (YYYY-MM-DD), `{year}`,
    /// `{month}`, `{day}`, `{hour}` of the batch time (UTC); `{record.FIELD}`
    /// for a record field (dotted path); `{part}`, unique per object and the
    /// same when a batch is written again.
    #[serde(default = "default_key")]
    pub key: String,
    /// Most records per object; the sink writes once it holds this many.
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1))]
    pub max_records: usize,
    /// Most bytes (before compression) per object; the sink writes once it holds this many.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
    /// The sink writes what it holds once the oldest record waited this long
    /// (and when the run stops). Its records are acknowledged to the source
    /// only after that write. A dead-letter queue writes every batch at once.
    #[serde(default = "default_max_age")]
    pub max_age: Dur,
    /// Retry policy of this sink (default: the pipeline's `retry`).
    #[serde(default)]
    pub retry: Option<crate::delivery::Policy>,
}

fn default_key() -> String {
    "{pipeline}/dt={date}/{part}.jsonl".into()
}
fn default_max_records() -> usize {
    10_000
}
fn default_max_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_max_age() -> Dur {
    Dur(std::time::Duration::from_secs(60))
}

impl Config {
    /// The record fields the key template names.
    pub fn key_fields(&self) -> Vec<String> {
        placeholders(&self.key)
            .filter_map(|p| p.strip_prefix("record.").map(str::to_owned))
            .collect()
    }

    /// Whether the key has a `{part}`: without it, objects overwrite each other.
    pub fn has_part(&self) -> bool {
        placeholders(&self.key).any(|p| p == "part")
    }

    /// The placeholders that are not known: reported by `sluice check`.
    pub fn unknown_placeholders(&self) -> Vec<String> {
        placeholders(&self.key)
            .filter(|p| {
                !p.starts_with("record.")
                    && !["pipeline", "date", "year", "month", "day", "hour", "part"].contains(p)
            })
            .map(str::to_owned)
            .collect()
    }
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(p, _)| p))
}

/// A running S3 sink.
pub struct Writer {
    config: Config,
    pipeline: String,
    aws: Arc<Clients>,
    /// Number of `{record.FIELD}` placeholders, in template order.
    fields: Vec<String>,
    /// Requests made, for the summary's API call counts.
    calls: AtomicU64,
}

impl Writer {
    /// Requests made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A writer; makes no request.
    pub fn new(config: Config, pipeline: &str, aws: Arc<Clients>) -> Writer {
        let fields = config.key_fields();
        Writer {
            config,
            pipeline: pipeline.to_owned(),
            aws,
            fields,
            calls: AtomicU64::new(0),
        }
    }

    /// When the engine writes the records it buffers for this sink.
    pub fn buffering(&self) -> crate::engine::commit::BufferLimits {
        crate::engine::commit::BufferLimits {
            max_records: self.config.max_records,
            max_bytes: self.config.max_bytes,
            max_age: self.config.max_age.0,
        }
    }

    fn key(&self, first: &OutRecord<'_>) -> String {
        render_key(&self.config.key, &self.pipeline, &self.fields, first)
    }

    /// Writes the records as objects; every record of an object shares its outcome.
    pub async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), SinkError>> {
        let mut results: Vec<Result<(), SinkError>> = vec![Ok(()); records.len()];
        // Group by the field part of the key, keeping input order within a group.
        let mut groups: BTreeMap<&[String], Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            groups.entry(r.keys).or_default().push(i);
        }
        let gzip = self.config.key.ends_with(".gz");
        for indexes in groups.values() {
            let mut start = 0;
            while start < indexes.len() {
                // One object: up to max_records records and max_bytes bytes (at least one record).
                let mut body = Vec::new();
                let mut end = start;
                while end < indexes.len()
                    && end - start < self.config.max_records
                    && (end == start
                        || body.len() + records[indexes[end]].json.len() < self.config.max_bytes)
                {
                    body.extend_from_slice(records[indexes[end]].json);
                    body.push(b'\n');
                    end += 1;
                }
                let key = self.key(&records[indexes[start]]);
                let outcome = self.put(&key, body, gzip).await;
                for &i in &indexes[start..end] {
                    results[i] = outcome.clone();
                }
                start = end;
            }
        }
        results
    }

    async fn put(&self, key: &str, body: Vec<u8>, gzip: bool) -> Result<(), SinkError> {
        let body = if gzip {
            let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            enc.write_all(&body)
                .and_then(|()| enc.finish())
                .map_err(|e| SinkError::new(ErrorClass::Retryable, format!("gzip failed: {e}")))?
        } else {
            body
        };
        let mut req = self
            .aws
            .s3()
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(body));
        if gzip {
            req = req.content_encoding("gzip");
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        req.send().await.map(|_| ()).map_err(|e| {
            classify(
                &format!("put_object of `{key}` to bucket `{}`", self.config.bucket),
                &e,
            )
        })
    }
}

/// The object key for a group whose first record is `first`. `fields` are the
/// template's `{record.FIELD}` names, in the order of `first.keys`.
fn render_key(template: &str, pipeline: &str, fields: &[String], first: &OutRecord<'_>) -> String {
    let t = first.batch_time; // 2026-11-22T18:00:00.123Z
    let mut key = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break; // an unclosed `{` is kept as text
        };
        key.push_str(&rest[..open]);
        match &rest[open + 1..open + close] {
            "pipeline" => key.push_str(pipeline),
            "date" => key.push_str(t.get(..10).unwrap_or_default()),
            "year" => key.push_str(t.get(..4).unwrap_or_default()),
            "month" => key.push_str(t.get(5..7).unwrap_or_default()),
            "day" => key.push_str(t.get(8..10).unwrap_or_default()),
            "hour" => key.push_str(t.get(11..13).unwrap_or_default()),
            "part" => key.push_str(&first.position.token()),
            field => {
                let i = fields
                    .iter()
                    .position(|f| Some(f.as_str()) == field.strip_prefix("record."));
                let value = i.and_then(|i| first.keys.get(i)).map_or("", String::as_str);
                key.push_str(&sanitize(value));
            }
        }
        rest = &rest[open + close + 1..];
    }
    key.push_str(rest);
    key
}

/// Keeps key characters S3 and tools handle well; others become `_`.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_key_template() {
        let position = crate::record::Position {
            source: "stdin",
            line: Some(7),
            ..Default::default()
        };
        let keys = vec!["a b".to_owned()];
        let r = OutRecord {
            json: b"{}",
            keys: &keys,
            position: &position,
            batch_time: "2026-11-22T18:04:05.123Z",
        };
        let template =
            "{pipeline}/{year}/{month}/{day}/{hour}/{date}/{record.k}/{part}.jsonl/{open";
        assert_eq!(
            render_key(template, "p", &["k".to_owned()], &r),
            "p/2026/11/22/18/2026-11-22/a_b/stdin-000000000007.jsonl/{open"
        );
    }

    #[test]
    fn finds_record_fields_and_unknown_placeholders() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "bucket": "b", "key": "x/{record.customer.id}/{date}/{nope}/{part}.jsonl.gz"
        }))
        .unwrap();
        assert_eq!(c.key_fields(), vec!["customer.id"]);
        assert_eq!(c.unknown_placeholders(), vec!["nope"]);
    }
}
