//! The running `firehose` sink.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;

use super::Config;
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, error::classify};
use crate::sinks::{OutRecord, Write, calls_of, settle_batch};

/// PutRecordBatch: at most 500 records per call.
const MAX_BATCH_RECORDS: usize = 500;
/// PutRecordBatch: at most 4 MiB per call.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A Firehose record holds at most 1 000 KiB (before base64).
const MAX_RECORD_BYTES: usize = 1_000 * 1024;

/// A running Firehose sink.
pub struct Writer {
    config: Config,
    client: aws_sdk_firehose::Client,
    /// Requests made, for the summary's API call counts.
    calls: AtomicU64,
}

impl Writer {
    /// A writer; makes no request.
    pub fn new(config: Config, aws: &Clients) -> Writer {
        Writer {
            config,
            client: aws_sdk_firehose::Client::new(aws.sdk()),
            calls: AtomicU64::new(0),
        }
    }

    /// The record's bytes as sent.
    fn data(&self, r: &OutRecord<'_>) -> Vec<u8> {
        let mut data = Vec::with_capacity(r.json.len() + 1);
        data.extend_from_slice(r.json);
        if self.config.newline {
            data.push(b'\n');
        }
        data
    }

    async fn put(
        &self,
        records: &[OutRecord<'_>],
        batch: &[usize],
        results: &mut [Result<(), Error>],
    ) {
        let entries: Vec<Record> = batch
            .iter()
            .filter_map(|&i| {
                Record::builder()
                    .data(Blob::new(self.data(&records[i])))
                    .build()
                    .ok()
            })
            .collect();
        let name = self.config.stream_name();
        let what = format!("put_record_batch to delivery stream `{name}`");
        self.calls.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .client
            .put_record_batch()
            .delivery_stream_name(name)
            .set_records(Some(entries))
            .send()
            .await;
        let entries = match &sent {
            Ok(out) => Ok(out
                .request_responses()
                .iter()
                .map(|e| e.error_code().map(|c| (c, e.error_message())))
                .collect()),
            Err(e) => Err(classify(&what, e)),
        };
        settle_batch(&what, batch, entries, entry_class, results);
    }
}

/// The class of a record Firehose failed inside an accepted call:
/// `ServiceUnavailableException` means the stream's throughput was exceeded.
fn entry_class(code: &str) -> ErrorClass {
    if code == "ServiceUnavailableException" {
        ErrorClass::Throttled
    } else {
        ErrorClass::Retryable
    }
}

impl Write for Writer {
    /// Writes the records in calls of at most 500 records and 4 MiB; one outcome per record.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Result<(), Error>> = vec![Ok(()); records.len()];
        let mut sized = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let size = r.json.len() + usize::from(self.config.newline);
            if size > MAX_RECORD_BYTES {
                results[i] = Err(Error::new(
                    ErrorClass::Poison,
                    format!("record of {size} bytes is larger than a Firehose record (1 000 KiB)"),
                ));
            } else {
                sized.push((i, size));
            }
        }
        for call in calls_of(sized, MAX_BATCH_RECORDS, MAX_BATCH_BYTES) {
            self.put(records, &call, &mut results).await;
        }
        results
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throughput_failure_is_throttling_and_others_are_retried() {
        assert_eq!(
            entry_class("ServiceUnavailableException"),
            ErrorClass::Throttled
        );
        assert_eq!(entry_class("InternalFailure"), ErrorClass::Retryable);
    }
}
