//! The running `kinesis` sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Config;
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, error::classify};
use crate::sinks::{OutRecord, Write, calls_of, settle_batch};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

/// PutRecords: at most 500 records per call.
const MAX_BATCH_RECORDS: usize = 500;
/// PutRecords: at most 5 MiB per call, partition keys included.
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// A Kinesis record holds at most 1 MiB (data and partition key).
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// A partition key is at most 256 characters.
const MAX_KEY_CHARS: usize = 256;

/// A running Kinesis sink.
pub struct Writer {
    config: Config,
    aws: Arc<Clients>,
    /// Requests made, for the summary's API call counts.
    calls: AtomicU64,
}

impl Writer {
    /// A writer; makes no request.
    pub fn new(config: Config, aws: Arc<Clients>) -> Writer {
        Writer {
            config,
            aws,
            calls: AtomicU64::new(0),
        }
    }

    async fn put(
        &self,
        records: &[OutRecord<'_>],
        batch: &[usize],
        results: &mut [Result<(), Error>],
    ) {
        let entries: Vec<PutRecordsRequestEntry> = batch
            .iter()
            .filter_map(|&i| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(records[i].json))
                    .partition_key(records[i].keys.first().cloned().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let mut req = self.aws.kinesis().put_records().set_records(Some(entries));
        req = if self.config.stream.starts_with("arn:") {
            req.stream_arn(&self.config.stream)
        } else {
            req.stream_name(&self.config.stream)
        };
        let what = format!("put_records to stream `{}`", self.config.stream);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let sent = req.send().await;
        let entries = match &sent {
            Ok(out) => Ok(out
                .records()
                .iter()
                .map(|e| e.error_code().map(|c| (c, e.error_message())))
                .collect()),
            Err(e) => Err(classify(&what, e)),
        };
        settle_batch(&what, batch, entries, entry_class, results);
    }
}

/// The class of a record Kinesis failed inside an accepted call:
/// `ProvisionedThroughputExceededException` asks for a slower rate, the
/// other (`InternalFailure`) is passing.
fn entry_class(code: &str) -> ErrorClass {
    if code == "ProvisionedThroughputExceededException" {
        ErrorClass::Throttled
    } else {
        ErrorClass::Retryable
    }
}

impl Write for Writer {
    /// Requests made so far.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Writes the records in calls of at most 500 records and 5 MiB; one outcome per record.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Result<(), Error>> = vec![Ok(()); records.len()];
        let mut sized = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let key = r.keys.first().map_or("", String::as_str);
            let size = r.json.len() + key.len();
            let problem = if key.is_empty() {
                Some(format!(
                    "the record has no partition key field `{}`",
                    self.config.partition_key
                ))
            } else if key.chars().count() > MAX_KEY_CHARS {
                Some(format!(
                    "partition key of {} characters is longer than 256",
                    key.chars().count()
                ))
            } else if size > MAX_RECORD_BYTES {
                Some(format!(
                    "record of {size} bytes is larger than a Kinesis record (1 MiB)"
                ))
            } else {
                None
            };
            match problem {
                Some(p) => results[i] = Err(Error::new(ErrorClass::Poison, p)),
                None => sized.push((i, size)),
            }
        }
        for call in calls_of(sized, MAX_BATCH_RECORDS, MAX_BATCH_BYTES) {
            self.put(records, &call, &mut results).await;
        }
        results
    }
}
