//! Reading a queue under `sluice run` and `sluice daemon`: long-polls it and
//! deletes each message only after it was delivered to its sinks or the
//! dead-letter queue.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};

use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, Policy, error::classify};
use crate::record::{Attributes, RawRecord};

use super::{Config, MAX_PER_CALL, attribute_text};

/// Receipt handles of a batch's messages, deleted once the batch is delivered.
/// While it exists, the messages' visibility timeout is extended.
#[derive(Debug, Default)]
pub struct Receipts {
    url: String,
    handles: Vec<String>,
    lease: Option<Lease>,
}

/// Batches whose messages are in flight, by batch number: their receipt
/// handles and when their visibility was last set.
type InFlight = Mutex<BTreeMap<u64, (Vec<String>, Instant)>>;

/// A batch's entry in the in-flight table; dropping it (once the messages are
/// deleted, or when the batch is given up) stops the extensions.
#[derive(Debug)]
struct Lease {
    id: u64,
    table: Arc<InFlight>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock() {
            t.remove(&self.id);
        }
    }
}

/// A running SQS source.
pub struct Reader {
    config: Config,
    url: Arc<str>,
    /// The queue's name, for `meta.stream`.
    queue: Arc<str>,
    aws: Arc<Clients>,
    in_flight: Arc<InFlight>,
    next_id: u64,
}

impl Reader {
    /// Resolves the queue URL and its visibility timeout, and starts the task
    /// that keeps in-flight messages invisible while their batch is delivered.
    pub async fn new(config: Config, aws: Arc<Clients>, retry: &Policy) -> Result<Reader, Error> {
        let url = crate::sinks::sqs::queue_url(&aws, &config.queue, retry).await?;
        let visibility = match config.visibility_timeout {
            Some(v) => v.0,
            None => queue_visibility(&aws, &url, retry).await?,
        };
        let in_flight = Arc::new(InFlight::default());
        tokio::spawn(extend_visibility(
            Arc::downgrade(&in_flight),
            Arc::clone(&aws),
            url.clone(),
            visibility,
        ));
        Ok(Reader {
            config,
            queue: Arc::from(super::queue_name(&url)),
            url: Arc::from(url.as_str()),
            aws,
            in_flight,
            next_id: 0,
        })
    }

    /// Receives up to `max` messages: waits up to `wait_time` for the first
    /// ones, then takes what is there without waiting.
    pub async fn receive(
        &mut self,
        max: usize,
        policy: &Policy,
    ) -> Result<(Vec<RawRecord>, Receipts), Error> {
        let mut records = Vec::new();
        let mut receipts = Receipts {
            url: self.url.to_string(),
            handles: Vec::new(),
            lease: None,
        };
        let wait = self.config.wait_time.0.min(Duration::from_secs(20));
        while records.len() < max {
            let n = (max - records.len()).min(MAX_PER_CALL) as i32;
            let wait_s = if records.is_empty() {
                wait.as_secs() as i32
            } else {
                0
            };
            let messages = self.receive_once(n, wait_s, policy).await?;
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let system = |name: &str| {
                    m.attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::from(name)))
                        .cloned()
                };
                let attributes: Attributes = m
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        let text =
                            attribute_text(v.string_value(), v.binary_value().map(|b| b.as_ref()));
                        (k.clone(), text)
                    })
                    .collect();
                records.push(super::record(
                    Some(Arc::clone(&self.queue)),
                    m.message_id().map(str::to_owned),
                    m.body().unwrap_or_default().as_bytes().to_vec(),
                    system,
                    attributes,
                ));
                if let Some(h) = m.receipt_handle() {
                    receipts.handles.push(h.to_owned());
                }
            }
        }
        if !receipts.handles.is_empty() {
            let id = self.next_id;
            self.next_id += 1;
            if let Ok(mut t) = self.in_flight.lock() {
                t.insert(id, (receipts.handles.clone(), Instant::now()));
            }
            receipts.lease = Some(Lease {
                id,
                table: Arc::clone(&self.in_flight),
            });
        }
        Ok((records, receipts))
    }

    async fn receive_once(
        &self,
        n: i32,
        wait_s: i32,
        policy: &Policy,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, Error> {
        let mut req = self
            .aws
            .sqs()
            .receive_message()
            .queue_url(&*self.url)
            .max_number_of_messages(n)
            .wait_time_seconds(wait_s)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All);
        if let Some(v) = self.config.visibility_timeout {
            req = req.visibility_timeout(v.0.as_secs() as i32);
        }
        let what = format!("receive_message from `{}`", self.url);
        let out = policy.send(&what, || req.clone().send()).await?;
        Ok(out.messages.unwrap_or_default())
    }
}

impl Receipts {
    /// Deletes the messages (10 per call). A message that cannot be deleted
    /// comes back after its visibility timeout and is delivered again: that is
    /// a duplicate, never a loss, so failures are reported but not fatal.
    /// A call that fails, and the entries SQS failed on its side, are sent
    /// again with `retry` (deleting a message twice is harmless).
    pub async fn delete(&self, aws: &Clients, retry: &Policy) -> Result<(), Error> {
        if let Some(lease) = &self.lease
            && let Ok(mut t) = lease.table.lock()
        {
            t.remove(&lease.id); // no extension may race the delete
        }
        let mut failed = 0;
        let mut last = None;
        for chunk in self.handles.chunks(MAX_PER_CALL) {
            let (given_up, why) = self.delete_chunk(aws, chunk, retry).await;
            failed += given_up;
            last = why.or(last);
        }
        if failed == 0 {
            return Ok(());
        }
        let why = format!("{failed} messages were not deleted and will be delivered again");
        Err(match last {
            Some(last) => last.context(why),
            None => Error::new(ErrorClass::Retryable, why),
        })
    }

    /// Deletes up to ten messages; how many were not deleted, and why.
    async fn delete_chunk(
        &self,
        aws: &Clients,
        chunk: &[String],
        retry: &Policy,
    ) -> (usize, Option<Error>) {
        let what = format!("delete_message_batch on `{}`", self.url);
        let mut rounds = retry.rounds(chunk.len());
        loop {
            let pending = rounds.pending();
            let entries: Vec<DeleteMessageBatchRequestEntry> = pending
                .iter()
                .enumerate()
                .filter_map(|(i, &h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&chunk[h])
                        .build()
                        .ok()
                })
                .collect();
            let sent = aws
                .sqs()
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            let results: Vec<Result<(), Error>> = match sent {
                Ok(out) => {
                    // SQS's own faults are tried again; the caller's are final.
                    let mut results = vec![Ok(()); pending.len()];
                    for f in out.failed() {
                        let Some(r) = f
                            .id()
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| results.get_mut(i))
                        else {
                            continue;
                        };
                        let class = if f.sender_fault() {
                            ErrorClass::Poison
                        } else {
                            ErrorClass::Retryable
                        };
                        let message = format!("{} {}", f.code(), f.message().unwrap_or_default());
                        *r = Err(Error::new(class, message));
                    }
                    results
                }
                Err(e) => vec![Err(classify(&what, &e)); pending.len()],
            };
            match rounds.record(results) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
        let (last, _) = rounds.finish();
        let failed: Vec<&Error> = last.iter().filter_map(|(r, _)| r.as_ref().err()).collect();
        (failed.len(), failed.last().map(|e| (*e).clone()))
    }

    /// Keeps the receipts whose `keep` is true (one flag per message, in
    /// order); the others are neither extended nor deleted, so their messages
    /// reappear after the visibility timeout.
    /// Returns the receipts dropped.
    pub fn retain(&mut self, keep: &[bool]) -> Vec<String> {
        let mut dropped = Vec::new();
        let mut flags = keep.iter();
        self.handles.retain(|h| {
            let k = flags.next().copied().unwrap_or(false);
            if !k {
                dropped.push(h.clone());
            }
            k
        });
        if let Some(lease) = &self.lease
            && let Ok(mut t) = lease.table.lock()
            && let Some(entry) = t.get_mut(&lease.id)
        {
            entry.0.clone_from(&self.handles);
        }
        dropped
    }

    /// Makes messages visible again at once (best effort: otherwise they
    /// reappear after their visibility timeout).
    pub async fn release(&self, aws: &Clients, handles: &[String]) {
        let _ = change_visibility(aws, &self.url, handles, 0).await;
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

/// The queue's own visibility timeout.
async fn queue_visibility(aws: &Clients, url: &str, retry: &Policy) -> Result<Duration, Error> {
    let req = aws
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::VisibilityTimeout);
    let out = retry
        .send(&format!("get_queue_attributes of `{url}`"), || {
            req.clone().send()
        })
        .await?;
    let secs = out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30);
    Ok(Duration::from_secs(secs))
}

/// Every half visibility timeout, sets the visibility of the messages of
/// every batch still in flight to `visibility` again (10 per call), so they
/// do not reappear while their batch is delivered, however long that takes.
/// Stops when the reader is gone. A failed extension is a warning: the
/// message may be delivered twice, never lost.
async fn extend_visibility(
    table: std::sync::Weak<InFlight>,
    aws: Arc<Clients>,
    url: String,
    visibility: Duration,
) {
    let every = (visibility / 2).max(Duration::from_millis(500));
    let secs = visibility.as_secs().max(1) as i32;
    loop {
        tokio::time::sleep(every / 4).await;
        let Some(table) = table.upgrade() else {
            return;
        };
        let now = Instant::now();
        let due: Vec<String> = match table.lock() {
            Ok(mut t) => t
                .values_mut()
                .filter(|(_, at)| now.duration_since(*at) >= every)
                .flat_map(|(handles, at)| {
                    *at = now;
                    handles.iter().cloned()
                })
                .collect(),
            Err(_) => return,
        };
        drop(table);
        if let Err(f) = change_visibility(&aws, &url, &due, secs).await {
            crate::logs::json(
                "warn",
                &format!(
                    "extending the visibility of in-flight messages failed; they may be delivered again: {f}"
                ),
            );
        }
    }
}

/// Sets the visibility timeout of messages, at most ten per call. Returns the
/// first failure; a message deleted meanwhile is not one.
async fn change_visibility(
    aws: &Clients,
    url: &str,
    handles: &[String],
    secs: i32,
) -> Result<(), Error> {
    let mut first = Ok(());
    for chunk in handles.chunks(MAX_PER_CALL) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h)
                    .visibility_timeout(secs)
                    .build()
                    .ok()
            })
            .collect();
        let sent = aws
            .sqs()
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await;
        let failure = match sent {
            Ok(out) => out
                .failed()
                .iter()
                .find(|f| f.code() != "ReceiptHandleIsInvalid" && !f.code().contains("NotInflight"))
                .map(|f| {
                    Error::new(
                        ErrorClass::Retryable,
                        format!("{} {}", f.code(), f.message().unwrap_or_default()),
                    )
                }),
            Err(e) => Some(classify(
                &format!("change_message_visibility_batch on `{url}`"),
                &e,
            )),
        };
        if let (Some(f), Ok(())) = (failure, &first) {
            first = Err(f);
        }
    }
    first
}
