//! The running `s3` sink.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::Config;
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, error::classify};
use crate::sinks::{OutRecord, Sink};

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

    fn key(&self, first: &OutRecord<'_>) -> String {
        render_key(&self.config.key, &self.pipeline, &self.fields, first)
    }

    async fn put(&self, key: &str, body: Vec<u8>, gzip: bool) -> Result<(), Error> {
        let body = if gzip {
            let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            enc.write_all(&body)
                .and_then(|()| enc.finish())
                .map_err(|e| Error::new(ErrorClass::Retryable, format!("gzip failed: {e}")))?
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

impl crate::sinks::Write for Writer {
    /// Requests made so far.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// When the engine writes the records it buffers for this sink.
    fn buffering(&self) -> Option<crate::sinks::BufferLimits> {
        Some(crate::sinks::BufferLimits {
            max_records: self.config.max_records,
            max_bytes: self.config.max_bytes,
            max_age: self.config.max_age.0,
        })
    }

    /// Writes the records as objects; every record of an object shares its outcome.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Result<(), Error>> = vec![Ok(()); records.len()];
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
}
