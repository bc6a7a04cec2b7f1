//! The `sqs` source: long-polls a queue and deletes each message only after
//! it was delivered to its sinks or the dead-letter queue.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::aws::Clients;
use crate::config::duration::Dur;
use crate::delivery::{Policy, SinkError, error::classify};
use crate::record::{Position, RawRecord};

/// ReceiveMessage and DeleteMessageBatch: at most 10 messages per call.
const MAX_PER_CALL: usize = 10;

/// Read messages from an Amazon SQS queue (standard or FIFO).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SqsSource")]
pub struct Config {
    /// Queue URL or queue name.
    pub queue: String,
    /// Long-polling wait of a receive that finds the queue empty (at most 20s).
    #[serde(default = "default_wait_time")]
    pub wait_time: Dur,
    /// Visibility timeout of received messages (default: the queue's).
    #[serde(default)]
    pub visibility_timeout: Option<Dur>,
}

fn default_wait_time() -> Dur {
    Dur(Duration::from_secs(20))
}

/// Receipt handles of a batch's messages, deleted once the batch is delivered.
#[derive(Debug, Default)]
pub struct Receipts {
    url: String,
    handles: Vec<String>,
}

/// A running SQS source.
pub struct Reader {
    config: Config,
    url: Arc<str>,
    aws: Arc<Clients>,
}

impl Reader {
    /// Resolves the queue URL.
    pub async fn new(config: Config, aws: Arc<Clients>) -> Result<Reader, String> {
        let url = crate::sinks::sqs::queue_url(&aws, &config.queue).await?;
        Ok(Reader {
            config,
            url: Arc::from(url.as_str()),
            aws,
        })
    }

    /// Receives up to `max` messages: waits up to `wait_time` for the first
    /// ones, then takes what is there without waiting.
    pub async fn receive(
        &self,
        max: usize,
        policy: &Policy,
    ) -> Result<(Vec<RawRecord>, Receipts), SinkError> {
        let mut records = Vec::new();
        let mut receipts = Receipts {
            url: self.url.to_string(),
            handles: Vec::new(),
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
                let attr = |name: MessageSystemAttributeName| {
                    m.attributes().and_then(|a| a.get(&name)).cloned()
                };
                let arrival = attr(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(|ms| {
                        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms))
                            .to_string()
                    });
                let attributes: Vec<(String, String)> = m
                    .message_attributes()
                    .map(|a| {
                        let mut v: Vec<(String, String)> = a
                            .iter()
                            .map(|(k, v)| {
                                let text =
                                    v.string_value().map(str::to_owned).unwrap_or_else(|| {
                                        v.binary_value()
                                            .map(|b| {
                                                base64::engine::general_purpose::STANDARD
                                                    .encode(b.as_ref())
                                            })
                                            .unwrap_or_default()
                                    });
                                (k.clone(), text)
                            })
                            .collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default();
                records.push(RawRecord {
                    data: m.body().unwrap_or_default().as_bytes().to_vec(),
                    position: Position {
                        source: "sqs",
                        stream: Some(Arc::clone(&self.url)),
                        message_id: m.message_id().map(str::to_owned),
                        partition_key: attr(MessageSystemAttributeName::MessageGroupId),
                        sequence_number: attr(MessageSystemAttributeName::SequenceNumber),
                        arrival_time: arrival,
                        ..Position::default()
                    },
                    rejected: None,
                    attributes: (!attributes.is_empty()).then(|| Arc::new(attributes)),
                });
                if let Some(h) = m.receipt_handle() {
                    receipts.handles.push(h.to_owned());
                }
            }
        }
        Ok((records, receipts))
    }

    async fn receive_once(
        &self,
        n: i32,
        wait_s: i32,
        policy: &Policy,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, SinkError> {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
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
            match req.send().await {
                Ok(out) => return Ok(out.messages.unwrap_or_default()),
                Err(e) => {
                    let err = classify(&format!("receive_message from `{}`", self.url), &e);
                    if !err.is_retryable() || !policy.may_retry(attempt, start.elapsed()) {
                        return Err(err);
                    }
                    attempt += 1;
                    tokio::time::sleep(
                        policy
                            .backoff(attempt, err.class == crate::delivery::ErrorClass::Throttled),
                    )
                    .await;
                }
            }
        }
    }
}

impl Receipts {
    /// Deletes the messages (10 per call). A message that cannot be deleted
    /// comes back after its visibility timeout and is delivered again: that is
    /// a duplicate, never a loss, so failures are reported but not fatal.
    pub async fn delete(&self, aws: &Clients) -> Result<(), String> {
        let mut failed = 0;
        let mut last = String::new();
        for chunk in self.handles.chunks(MAX_PER_CALL) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                        .ok()
                })
                .collect();
            match aws
                .sqs()
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    failed += out.failed().len();
                    if let Some(f) = out.failed().first() {
                        last = format!("{} {}", f.code(), f.message().unwrap_or_default());
                    }
                }
                Err(e) => {
                    failed += chunk.len();
                    last = classify(&format!("delete_message_batch on `{}`", self.url), &e).message;
                }
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(format!(
                "{failed} messages were not deleted and will be delivered again: {last}"
            ))
        }
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
