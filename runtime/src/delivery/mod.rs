//! Delivery: retries, the dead-letter queue and its envelope.
//!
//! Only this module decides what happens to a failed write: [`deliver`]
//! retries the records a sink did not accept with the pipeline's [`Policy`]
//! (only the failed ones), and sorts the rest into poison (dead-lettered with
//! stage `sink` and the reason) and exhausted (the batch is not acknowledged,
//! so the source delivers it again). The DLQ is written the same way; if it
//! does not accept a record, the batch is not acknowledged either.

pub mod envelope;
pub mod error;
pub mod retry;

use std::time::Instant;

pub use envelope::Envelope;
pub use error::{ErrorClass, SinkError};
pub use retry::Policy;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::sinks::{self, OutRecord, Writer};

/// Where dead-lettered records go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "Dlq")]
pub enum DlqConfig {
    /// Write envelopes, one JSON document per line, to a local file.
    File(sinks::file::Config),
    /// Write envelopes to standard output.
    Stdout(sinks::stdout::Config),
    /// Write envelopes as JSON Lines objects to Amazon S3 (any record fits).
    S3(sinks::s3::Config),
    /// Send each envelope as a message to Amazon SQS.
    Sqs(sinks::sqs::Config),
}

impl DlqConfig {
    /// The DLQ as a sink config.
    pub fn as_sink(&self) -> sinks::Config {
        match self {
            DlqConfig::File(c) => sinks::Config::File(c.clone()),
            DlqConfig::Stdout(c) => sinks::Config::Stdout(c.clone()),
            DlqConfig::S3(c) => sinks::Config::S3(c.clone()),
            DlqConfig::Sqs(c) => sinks::Config::Sqs(c.clone()),
        }
    }
}

/// What became of one record handed to [`deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink accepted it.
    Delivered,
    /// Retrying cannot help: dead-letter it (after this many attempts).
    Poison(SinkError, u32),
    /// Still failing when the policy ran out, or failed fatally: do not acknowledge it.
    Exhausted(SinkError, u32),
}

/// Writes records to a sink, retrying only the ones that failed with a
/// retryable error, until the policy runs out. One outcome per record.
pub async fn deliver(
    writer: &mut Writer,
    records: &[OutRecord<'_>],
    policy: &Policy,
) -> Vec<Outcome> {
    deliver_counted(writer, records, policy).await.0
}

/// [`deliver`], also returning how many times it wrote again after a failure.
pub async fn deliver_counted(
    writer: &mut Writer,
    records: &[OutRecord<'_>],
    policy: &Policy,
) -> (Vec<Outcome>, u64) {
    let start = Instant::now();
    let mut retries = 0;
    let mut outcomes: Vec<Outcome> = vec![Outcome::Delivered; records.len()];
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut attempt = 1;
    while !pending.is_empty() {
        let batch: Vec<OutRecord<'_>> = pending.iter().map(|&i| records[i]).collect();
        let results = send_guarded(writer, &batch).await;
        let mut retry = Vec::new();
        let mut throttled = false;
        for (&i, result) in pending.iter().zip(results) {
            match result {
                Ok(()) => outcomes[i] = Outcome::Delivered,
                Err(e) if e.class == ErrorClass::Fatal => {
                    outcomes[i] = Outcome::Exhausted(e, attempt)
                }
                Err(e) if e.is_retryable() => {
                    throttled |= e.class == ErrorClass::Throttled;
                    outcomes[i] = Outcome::Exhausted(e, attempt);
                    retry.push(i);
                }
                Err(e) => outcomes[i] = Outcome::Poison(e, attempt),
            }
        }
        if retry.is_empty() || !policy.may_retry(attempt, start.elapsed()) {
            break;
        }
        attempt += 1;
        retries += 1;
        tokio::time::sleep(policy.backoff(attempt, throttled)).await;
        pending = retry;
    }
    (outcomes, retries)
}

/// [`Writer::send`], with a panic in the writer (a bug in an encoder) kept
/// to the record that caused it: the records are then written one at a
/// time, and the one whose write panics is poison (dead-lettered with the
/// panic's message). Records of the batch written before the panic may be
/// written twice.
async fn send_guarded(writer: &mut Writer, batch: &[OutRecord<'_>]) -> Vec<Result<(), SinkError>> {
    let poison = |m: String| {
        SinkError::new(
            ErrorClass::Poison,
            format!("internal error while writing the record: {m}"),
        )
    };
    match crate::panics::catch_async(writer.send(batch)).await {
        Ok(results) => results,
        Err(m) if batch.len() == 1 => vec![Err(poison(m))],
        Err(_) => {
            let mut results = Vec::with_capacity(batch.len());
            for r in batch {
                results.push(
                    match crate::panics::catch_async(writer.send(std::slice::from_ref(r))).await {
                        Ok(mut one) => one.pop().unwrap_or(Ok(())),
                        Err(m) => Err(poison(m)),
                    },
                );
            }
            results
        }
    }
}
