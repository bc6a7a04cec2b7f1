//! The running `sqs` sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Config;
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, Policy, error::classify};
use crate::sinks::{OutRecord, Write};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// SendMessageBatch: at most 10 messages per call.
const MAX_BATCH_ENTRIES: usize = 10;
/// SendMessageBatch: at most 256 KiB of message bodies per call.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Requests in flight at once to a standard queue.
const MAX_CONCURRENT_CALLS: usize = 8;

/// The URL of a queue given by URL or by name (one `GetQueueUrl`).
pub async fn queue_url(aws: &Clients, queue: &str, retry: &Policy) -> Result<String, Error> {
    if queue.starts_with("https://") || queue.starts_with("http://") {
        return Ok(queue.to_owned());
    }
    let req = aws.sqs().get_queue_url().queue_name(queue);
    retry
        .send(&format!("get_queue_url of `{queue}`"), || {
            req.clone().send()
        })
        .await
        .map(|out| out.queue_url.unwrap_or_default())
}

/// A running SQS sink.
pub struct Writer {
    config: Config,
    url: String,
    aws: Arc<Clients>,
    /// Requests made, for the summary's API call counts.
    calls: AtomicU64,
}

impl Writer {
    /// Resolves the queue URL (one `GetQueueUrl` when given a name).
    pub async fn new(config: Config, aws: Arc<Clients>, retry: &Policy) -> Result<Writer, Error> {
        let url = queue_url(&aws, &config.queue, retry).await?;
        Ok(Writer {
            config,
            url,
            aws,
            calls: AtomicU64::new(0),
        })
    }

    /// Sends one `SendMessageBatch`; the outcome of each of its records by index.
    async fn send_batch(
        &self,
        records: &[OutRecord<'_>],
        batch: &[usize],
    ) -> Vec<(usize, Result<(), Error>)> {
        let mut results: std::collections::BTreeMap<usize, Result<(), Error>> =
            batch.iter().map(|&i| (i, Ok(()))).collect();
        let mut entries = Vec::with_capacity(batch.len());
        for (n, &i) in batch.iter().enumerate() {
            let r = &records[i];
            let mut e = SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(String::from_utf8_lossy(r.json));
            let mut keys = r.keys.iter();
            if self.config.message_group_id.is_some() {
                e = e.message_group_id(keys.next().cloned().unwrap_or_default());
            }
            if self.config.deduplication_id.is_some() {
                e = e.message_deduplication_id(keys.next().cloned().unwrap_or_default());
            }
            match e.build() {
                Ok(entry) => entries.push(entry),
                Err(err) => {
                    *results.entry(i).or_insert(Ok(())) =
                        Err(Error::new(ErrorClass::Poison, err.to_string()))
                }
            }
        }
        let what = format!("send_message_batch to `{}`", self.url);
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self
            .aws
            .sqs()
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    let Some(&i) = f.id().parse::<usize>().ok().and_then(|n| batch.get(n)) else {
                        continue;
                    };
                    // A sender fault is the message's own (too large, invalid): retrying cannot help.
                    let class = if f.sender_fault() {
                        ErrorClass::Poison
                    } else {
                        ErrorClass::Retryable
                    };
                    *results.entry(i).or_insert(Ok(())) = Err(Error::new(
                        class,
                        format!(
                            "{what}: message rejected: {} {}",
                            f.code(),
                            f.message().unwrap_or_default()
                        ),
                    ));
                }
            }
            Err(e) => {
                let err = classify(&what, &e);
                for &i in batch {
                    if results.get(&i).is_some_and(Result::is_ok) {
                        *results.entry(i).or_insert(Ok(())) = Err(err.clone());
                    }
                }
            }
        }
        results.into_iter().collect()
    }
}

impl Write for Writer {
    /// Requests made so far.
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sends the records in batches of at most 10 messages and 256 KiB.
    async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Result<(), Error>> = vec![Ok(()); records.len()];
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut batch: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for (i, r) in records.iter().enumerate() {
            if r.json.len() > self.config.max_message_bytes.min(MAX_BATCH_BYTES) {
                results[i] = Err(Error::new(
                    ErrorClass::Poison,
                    format!(
                        "record of {} bytes is larger than the largest message ({} bytes)",
                        r.json.len(),
                        self.config.max_message_bytes.min(MAX_BATCH_BYTES)
                    ),
                ));
                continue;
            }
            if batch.len() == MAX_BATCH_ENTRIES || bytes + r.json.len() > MAX_BATCH_BYTES {
                batches.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            batch.push(i);
            bytes += r.json.len();
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        // A FIFO queue keeps the order of what it receives: send one call at a
        // time. A standard queue has no order: send up to 8 calls at once.
        let parallel = if self.url.ends_with(".fifo") {
            1
        } else {
            MAX_CONCURRENT_CALLS
        };
        for group in batches.chunks(parallel) {
            let calls = group.iter().map(|b| self.send_batch(records, b));
            for (i, r) in futures_util::future::join_all(calls)
                .await
                .into_iter()
                .flatten()
            {
                results[i] = r;
            }
        }
        results
    }
}
