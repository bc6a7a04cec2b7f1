//! The dead-letter queue read back as a source, for `sluice dlq redrive`.
//!
//! Each envelope becomes the record it was made from: its `data` (decoded
//! from base64 when `encoding` is `base64`) and its `source` position. What
//! the redrive reads is fixed when it starts — a file's contents, the S3
//! objects listed, the SQS messages sent before it — so records that are
//! dead-lettered again are not read again by the same redrive. An entry is
//! removed only once its records were delivered or dead-lettered again (S3:
//! the object is deleted; SQS: the message; a file: the whole snapshot, at the
//! end).

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

use super::Ack;
use crate::aws::Clients;
use crate::delivery::{Error, Policy, error::classify};
use crate::record::{Cut, Position, RawRecord};
use crate::sources::lines::LineReader;

/// Largest envelope line read back: records up to the default 10 MiB, in base64.
const MAX_ENVELOPE_BYTES: u64 = 16 * 1024 * 1024;

/// A DLQ being read back.
pub enum Reader {
    /// A snapshot of a DLQ file.
    File(LineReader),
    /// The objects of an S3 DLQ, listed when the redrive started.
    S3 {
        /// The bucket.
        bucket: String,
        /// Keys not read yet.
        keys: VecDeque<String>,
        /// The clients.
        aws: Arc<Clients>,
    },
    /// An SQS DLQ: the messages sent before the redrive started.
    Sqs {
        /// The queue.
        reader: super::sqs::Reader,
        /// When the redrive started.
        started: SystemTime,
        /// The clients.
        aws: Arc<Clients>,
    },
}

impl Reader {
    /// Reads a snapshot file of a file DLQ.
    pub fn file(path: &std::path::Path, shown_as: &str) -> Result<Reader, Error> {
        let f = std::fs::File::open(path)
            .map_err(|e| Error::fatal(format!("cannot read `{}`: {e}", path.display())))?;
        Ok(Reader::File(LineReader::new(
            Box::new(std::io::BufReader::with_capacity(256 * 1024, f)),
            "file",
            Some(Arc::from(shown_as)),
            MAX_ENVELOPE_BYTES,
        )))
    }

    /// Lists the objects of an S3 DLQ under the fixed start of its key template.
    pub async fn s3(bucket: &str, key_template: &str, aws: Arc<Clients>) -> Result<Reader, Error> {
        let prefix = key_template.split('{').next().unwrap_or_default();
        let mut keys = VecDeque::new();
        let mut token = None;
        loop {
            let out = aws
                .s3()
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(&format!("list_objects_v2 of bucket `{bucket}`"), &e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(Reader::S3 {
            bucket: bucket.to_owned(),
            keys,
            aws,
        })
    }

    /// Reads an SQS DLQ.
    pub async fn sqs(queue: &str, aws: Arc<Clients>, retry: &Policy) -> Result<Reader, Error> {
        let config = super::sqs::Config {
            queue: queue.to_owned(),
            wait_time: crate::duration::Dur(Duration::from_secs(1)),
            visibility_timeout: None,
        };
        Ok(Reader::Sqs {
            reader: super::sqs::Reader::new(config, Arc::clone(&aws), retry).await?,
            started: SystemTime::now(),
            aws,
        })
    }

    /// The next batch of records and what removes their entries; `None` at the end.
    pub async fn next_batch(
        &mut self,
        max: usize,
        max_bytes: u64,
        policy: &Policy,
    ) -> Result<Option<(Vec<RawRecord>, Ack)>, Error> {
        match self {
            Reader::File(lines) => {
                let batch = lines
                    .next_batch(max, max_bytes)
                    .map_err(|e| Error::fatal(e.to_string()))?;
                Ok((!batch.is_empty())
                    .then(|| (batch.into_iter().map(from_envelope).collect(), Ack::None)))
            }
            Reader::S3 { bucket, keys, aws } => {
                let Some(key) = keys.pop_front() else {
                    return Ok(None);
                };
                let body = aws
                    .s3()
                    .get_object()
                    .bucket(&*bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("get_object of `{key}`"), &e))?
                    .body
                    .collect()
                    .await
                    .map_err(|e| Error::fatal(format!("reading `{key}` failed: {e}")))?
                    .into_bytes();
                let text = if key.ends_with(".gz") {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut out)
                        .map_err(|e| Error::fatal(format!("`{key}` is not gzip: {e}")))?;
                    out
                } else {
                    body.to_vec()
                };
                let shown: Arc<str> = Arc::from(format!("s3://{bucket}/{key}").as_str());
                let records = text
                    .split(|b| *b == b'\n')
                    .enumerate()
                    .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
                    .map(|(i, l)| {
                        from_envelope(RawRecord {
                            data: l.to_vec(),
                            position: Position {
                                source: "file",
                                file: Some(Arc::clone(&shown)),
                                line: Some(i as u64 + 1),
                                ..Position::default()
                            },
                            rejected: None,
                            attributes: None,
                            fan_out: Vec::new(),
                        })
                    })
                    .collect();
                let ack = Ack::S3Delete {
                    bucket: bucket.clone(),
                    key,
                    aws: Arc::clone(aws),
                };
                Ok(Some((records, ack)))
            }
            Reader::Sqs {
                reader,
                started,
                aws,
            } => {
                let (records, mut receipts) = reader.receive(max, policy).await?;
                let started_ms = started
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                // Envelopes sent since the redrive started (records dead-lettered
                // again) wait for the next redrive.
                let keep: Vec<bool> = records
                    .iter()
                    .map(|r| {
                        r.position.arrival_time.as_deref().and_then(sent_ms) < Some(started_ms)
                    })
                    .collect();
                let newer = receipts.retain(&keep);
                receipts.release(aws, &newer).await;
                let records: Vec<RawRecord> = records
                    .into_iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|(r, _)| from_envelope(r))
                    .collect();
                if records.is_empty() {
                    return Ok(None);
                }
                Ok(Some((records, Ack::Sqs(receipts, Arc::clone(aws)))))
            }
        }
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn sent_ms(t: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(t)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// The record an envelope was made from. A line that is not an envelope is
/// rejected (dead-lettered again with stage `decode`, as it is).
pub fn from_envelope(raw: RawRecord) -> RawRecord {
    match parse_envelope(&raw.data) {
        Ok((data, position, fan_out)) => RawRecord {
            data,
            position,
            rejected: None,
            attributes: None,
            fan_out,
        },
        Err(e) => RawRecord {
            rejected: Some(format!("not a dead-letter envelope: {e}")),
            ..raw
        },
    }
}

fn parse_envelope(line: &[u8]) -> Result<(Vec<u8>, Position, Vec<Cut>), String> {
    let env: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let fan_out = match env.get("fan_out") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| format!("its `fan_out` is not a list of cuts: {e}"))?,
    };
    let data = env["data"].as_str().ok_or("it has no `data` string")?;
    let data = match env["encoding"].as_str() {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("its `data` is not base64: {e}"))?,
        _ => data.as_bytes().to_vec(),
    };
    let s = &env["source"];
    let text = |k: &str| s[k].as_str().map(str::to_owned);
    let shared = |k: &str| s[k].as_str().map(Arc::from);
    let source = match s["type"].as_str() {
        Some("file") => "file",
        Some("stdin") => "stdin",
        Some("sqs") => "sqs",
        Some("kinesis") => "kinesis",
        Some("dynamodb_streams") => "dynamodb_streams",
        Some("kafka") => "kafka",
        Some("aggregate") => "aggregate",
        _ => "dlq",
    };
    Ok((
        data,
        Position {
            source,
            file: shared("file"),
            line: s["line"].as_u64(),
            stream: shared("stream"),
            shard: shared("shard"),
            partition: s["partition"].as_i64(),
            offset: s["offset"].as_i64(),
            message_id: text("message_id"),
            partition_key: text("partition_key"),
            sequence_number: text("sequence_number"),
            arrival_time: text("arrival_time"),
            window: text("window"),
        },
        fan_out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(line: &str) -> RawRecord {
        RawRecord {
            data: line.as_bytes().to_vec(),
            position: Position {
                source: "file",
                line: Some(3),
                ..Position::default()
            },
            rejected: None,
            attributes: None,
            fan_out: Vec::new(),
        }
    }

    #[test]
    fn an_envelope_gives_back_its_record_and_position() {
        let r = from_envelope(raw(
            r#"{"pipeline":"p","stage":"sink","data":"{\"a\":1}","encoding":"utf-8","source":{"type":"kinesis","stream":"s","shard":"shardId-1","sequence_number":"7","partition_key":"k"},"attempts":1,"timestamp":"t"}"#,
        ));
        assert_eq!(r.data, br#"{"a":1}"#);
        assert_eq!(r.rejected, None);
        assert_eq!(
            r.position,
            Position {
                source: "kinesis",
                stream: Some(Arc::from("s")),
                shard: Some(Arc::from("shardId-1")),
                partition_key: Some("k".into()),
                sequence_number: Some("7".into()),
                ..Position::default()
            }
        );
        let r = from_envelope(raw(
            r#"{"data":"/wA=","encoding":"base64","source":{"type":"file","file":"in.jsonl","line":4}}"#,
        ));
        assert_eq!(
            (r.data, r.position.line, r.position.file.as_deref()),
            (vec![0xff, 0x00], Some(4), Some("in.jsonl"))
        );
    }

    #[test]
    fn a_line_that_is_not_an_envelope_is_rejected_as_it_is() {
        let r = from_envelope(raw("{\"x\":1}"));
        assert_eq!(
            r.rejected.as_deref(),
            Some("not a dead-letter envelope: it has no `data` string")
        );
        assert_eq!((r.data, r.position.line), (b"{\"x\":1}".to_vec(), Some(3)));
    }
}
