//! Sinks: where delivered records go.
//!
//! Each sink type is one module with a `Config` and a `Writer`; [`Config`]
//! is the `type`-tagged list the pipeline format accepts and [`Writer`] the
//! running sinks. A writer receives encoded records (one compact JSON document
//! each, plus the record fields its config asked for) and answers, per record,
//! whether it durably accepted it; it never decides about retries or the
//! dead-letter queue (that is `delivery`'s job).

pub mod dynamodb;
pub mod file;
pub mod kinesis;
pub mod s3;
pub mod sqs;
pub mod stdout;

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::aws::Clients;
use crate::delivery::SinkError;
use crate::record::Position;

/// A destination for records.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Sink")]
pub enum Config {
    /// Write JSON Lines to a local file.
    File(file::Config),
    /// Write JSON Lines to standard output.
    Stdout(stdout::Config),
    /// Write JSON Lines objects to Amazon S3.
    S3(s3::Config),
    /// Send each record as a message to Amazon SQS.
    Sqs(sqs::Config),
    /// Write each record to an Amazon DynamoDB table (an item, or counters added to one).
    Dynamodb(dynamodb::Config),
    /// Write each record to an Amazon Kinesis data stream.
    Kinesis(kinesis::Config),
}

impl Config {
    /// The `type` name of the sink.
    pub fn type_name(&self) -> &'static str {
        match self {
            Config::File(_) => "file",
            Config::Stdout(_) => "stdout",
            Config::S3(_) => "s3",
            Config::Sqs(_) => "sqs",
            Config::Dynamodb(_) => "dynamodb",
            Config::Kinesis(_) => "kinesis",
        }
    }

    /// Record fields (dotted paths) the sink needs besides the JSON document,
    /// extracted once per record by the engine.
    pub fn key_fields(&self) -> Vec<String> {
        match self {
            Config::S3(c) => c.key_fields(),
            Config::Sqs(c) => c.key_fields(),
            Config::Kinesis(c) => c.key_fields(),
            Config::File(_) | Config::Stdout(_) | Config::Dynamodb(_) => Vec::new(),
        }
    }

    /// The sink's own retry policy, when it has one.
    pub fn retry(&self) -> Option<&crate::delivery::Policy> {
        match self {
            Config::S3(c) => c.retry.as_ref(),
            Config::Sqs(c) => c.retry.as_ref(),
            Config::Dynamodb(c) => c.retry.as_ref(),
            Config::Kinesis(c) => c.retry.as_ref(),
            Config::File(_) | Config::Stdout(_) => None,
        }
    }

    /// Whether the sink talks to AWS.
    pub fn uses_aws(&self) -> bool {
        matches!(
            self,
            Config::S3(_) | Config::Sqs(_) | Config::Dynamodb(_) | Config::Kinesis(_)
        )
    }
}

/// What a writer needs to start.
pub struct BuildCx<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// Resolves paths against the pipeline's folder.
    pub resolve: &'a dyn Fn(&str) -> std::path::PathBuf,
    /// The shared AWS clients, when the pipeline uses AWS.
    pub aws: Option<Arc<Clients>>,
    /// How the calls that open a sink are retried (the pipeline's `retry`).
    pub retry: &'a crate::delivery::Policy,
}

/// One encoded record handed to a writer.
#[derive(Debug, Clone, Copy)]
pub struct OutRecord<'a> {
    /// The record as compact JSON, without a line break.
    pub json: &'a [u8],
    /// The values of the sink's `key_fields`, in order (empty when a field is missing).
    pub keys: &'a [String],
    /// Where the record came from.
    pub position: &'a Position,
    /// When its batch was processed (RFC 3339).
    pub batch_time: &'a str,
}

/// A running sink.
pub enum Writer {
    /// A local file.
    File(file::Writer),
    /// Standard output.
    Stdout(stdout::Writer),
    /// Amazon S3.
    S3(s3::Writer),
    /// Amazon SQS.
    Sqs(sqs::Writer),
    /// Amazon DynamoDB.
    Dynamodb(dynamodb::Writer),
    /// Amazon Kinesis Data Streams.
    Kinesis(kinesis::Writer),
}

impl Writer {
    /// Starts the sink described by `config`.
    pub async fn open(config: &Config, cx: &BuildCx<'_>) -> Result<Writer, String> {
        let aws = || cx.aws.clone().ok_or_else(|| "no AWS clients".to_owned());
        Ok(match config {
            Config::File(c) => Writer::File(file::Writer::open(&(cx.resolve)(&c.path), c.mode)?),
            Config::Stdout(_) => Writer::Stdout(stdout::Writer::default()),
            Config::S3(c) => Writer::S3(s3::Writer::new(c.clone(), cx.pipeline, aws()?)),
            Config::Sqs(c) => Writer::Sqs(sqs::Writer::new(c.clone(), aws()?, cx.retry).await?),
            Config::Dynamodb(c) => Writer::Dynamodb(dynamodb::Writer::new(c.clone(), aws()?)),
            Config::Kinesis(c) => Writer::Kinesis(kinesis::Writer::new(c.clone(), aws()?)),
        })
    }

    /// Writes records; one result per record, in order. `Ok` means durably
    /// accepted (file sinks: once [`flush`](Self::flush) returns).
    pub async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), SinkError>> {
        #[cfg(feature = "fault-injection")]
        if !matches!(self, Writer::File(_) | Writer::Stdout(_)) {
            records
                .iter()
                .for_each(|r| crate::faults::sink_write(r.json));
        }
        match self {
            Writer::File(w) => w.send(records),
            Writer::Stdout(w) => w.send(records),
            Writer::S3(w) => w.send(records).await,
            Writer::Sqs(w) => w.send(records).await,
            Writer::Dynamodb(w) => w.send(records).await,
            Writer::Kinesis(w) => w.send(records).await,
        }
    }

    /// How the engine buffers this sink's records across batches, if it does.
    pub fn buffering(&self) -> Option<crate::engine::commit::BufferLimits> {
        match self {
            Writer::S3(w) => Some(w.buffering()),
            _ => None,
        }
    }

    /// API requests made so far (0 for local sinks).
    pub fn calls(&self) -> u64 {
        match self {
            Writer::S3(w) => w.calls(),
            Writer::Sqs(w) => w.calls(),
            Writer::Dynamodb(w) => w.calls(),
            Writer::Kinesis(w) => w.calls(),
            Writer::File(_) | Writer::Stdout(_) => 0,
        }
    }

    /// Makes everything accepted so far durable.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Writer::File(w) => w.sync(),
            Writer::Stdout(w) => w.flush(),
            Writer::S3(_) | Writer::Sqs(_) | Writer::Dynamodb(_) | Writer::Kinesis(_) => Ok(()),
        }
    }
}

/// Writes records as JSON Lines to a local writer; one outcome per record.
fn write_lines(
    out: &mut impl std::io::Write,
    records: &[OutRecord<'_>],
    what: &str,
) -> Vec<Result<(), SinkError>> {
    let mut results: Vec<Result<(), SinkError>> = records
        .iter()
        .map(|r| {
            // A panic here is kept to its record (see `delivery` for remote sinks).
            crate::panics::catch(|| {
                #[cfg(feature = "fault-injection")]
                crate::faults::sink_write(r.json);
                out.write_all(r.json)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| crate::delivery::error::classify_io(what, &e))
            })
            .unwrap_or_else(|m| {
                Err(SinkError::new(
                    crate::delivery::ErrorClass::Poison,
                    format!("internal error while writing the record: {m}"),
                ))
            })
        })
        .collect();
    // What is still buffered is written now, so that a full disk fails these
    // records rather than a later sync that no record answers for.
    if let Err(e) = out.flush() {
        let e = crate::delivery::error::classify_io(what, &e);
        for r in &mut results {
            if r.is_ok() {
                *r = Err(e.clone());
            }
        }
    }
    results
}

/// Reads a dotted path (`customer.id`) of a JSON-like Rhai record as text:
/// strings as they are, other values as JSON, missing as empty.
pub fn field_text(record: &rhai::Dynamic, path: &str) -> String {
    let mut cur = record.clone();
    for part in path.split('.') {
        let next = cur
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get(part).cloned());
        match next {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    if cur.is_string() {
        cur.into_string().unwrap_or_default()
    } else if cur.is_unit() {
        String::new()
    } else {
        serde_json::to_string(&cur).unwrap_or_default()
    }
}
