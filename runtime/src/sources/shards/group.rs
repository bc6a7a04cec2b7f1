//! A stream source read as one worker of its group: the reader follows the
//! leases a [`Coordinator`] takes and renews in the background. `sluice
//! daemon` and `sluice run` both read Kinesis and DynamoDB streams this way,
//! so both follow resharding (a child shard after its parents) and share a
//! stream with the other workers of the same pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Lag;
use super::lease::{Coordinator, Settings, Shared, Stream};
use crate::aws::Clients;
use crate::delivery::Error;
use crate::sources::{Config, Reader, dynamodb_streams, kinesis};

/// This worker's part of a group.
#[derive(Clone)]
pub struct Member {
    /// Takes, renews, balances and releases the leases.
    pub coordinator: Arc<tokio::sync::Mutex<Coordinator>>,
    /// Per shard read, its lag.
    pub lag: Arc<Lag>,
    /// The leases held, and the group as last seen.
    pub shared: Arc<Shared>,
    settings: Settings,
    passes_stop: Arc<AtomicBool>,
}

/// Joins the group of `pipeline` on a `kinesis` or `dynamodb_streams`
/// source: takes a first share of the leases, and opens the reader that
/// reads the shards whose leases this worker holds.
pub async fn join(
    source: &Config,
    pipeline: &str,
    aws: &Arc<Clients>,
    settings: Settings,
) -> Result<(Reader, Member), Error> {
    let shared = Arc::new(Shared::default());
    let leases = (Arc::clone(&shared), settings.worker.clone());
    let retry = settings.retry.clone();
    let opened = match source {
        Config::Kinesis(c) => {
            kinesis::Reader::new(c.clone(), pipeline, Arc::clone(aws), leases, retry)
                .await
                .map(|r| {
                    let lag = r.lag();
                    let stream = Stream::Kinesis(c.clone());
                    (stream, Reader::Kinesis(r, Arc::clone(aws)), lag)
                })
        }
        Config::DynamodbStreams(c) => {
            dynamodb_streams::Reader::new(c.clone(), pipeline, Arc::clone(aws), leases, retry)
                .await
                .map(|r| {
                    let lag = r.lag();
                    let stream = Stream::DynamodbStreams {
                        config: c.clone(),
                        arn: r.stream_arn().to_owned(),
                    };
                    (stream, Reader::DynamodbStreams(r, Arc::clone(aws)), lag)
                })
        }
        other => Err(Error::fatal(format!(
            "a `{}` source has no shards",
            other.type_name()
        ))),
    };
    let (stream, reader, lag) = opened.map_err(|e| e.context("the source stream"))?;
    let mut coordinator = Coordinator::new(
        Arc::clone(aws),
        stream,
        pipeline,
        settings.clone(),
        Arc::clone(&shared),
        Arc::clone(&lag),
    );
    coordinator
        .pass()
        .await
        .map_err(|e| e.context("the lease table"))?;
    let member = Member {
        coordinator: Arc::new(tokio::sync::Mutex::new(coordinator)),
        lag,
        shared,
        settings,
        passes_stop: Arc::new(AtomicBool::new(false)),
    };
    Ok((reader, member))
}

impl Member {
    /// Renews and balances the leases every third of the failover time, on
    /// `rt`, apart from reading: a stalled sink does not cost the worker its
    /// leases. Until [`Member::leave`].
    pub fn keep_leases(&self, rt: &tokio::runtime::Handle) {
        let c = Arc::clone(&self.coordinator);
        let stop = Arc::clone(&self.passes_stop);
        let interval = self.settings.interval();
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(interval).await;
                let mut c = c.lock().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = c.pass().await {
                    crate::logs::json("warn", &format!("lease pass failed: {e}"));
                }
            }
        });
    }

    /// Stops the lease passes and releases every lease held, so other
    /// workers take them at once; how many were released.
    pub async fn leave(&self) -> usize {
        self.passes_stop.store(true, Ordering::Relaxed);
        self.coordinator.lock().await.release_all().await
    }
}
