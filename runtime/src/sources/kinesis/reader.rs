//! Reading a stream under `sluice run` and `sluice daemon`: the Kinesis side
//! of a [`ShardReader`](crate::sources::shards::ShardReader), which reads the
//! shards this worker holds leases of, each in order, and checkpoints each
//! shard once every record up to the checkpoint reached its sinks or the
//! DLQ. Here: shard iterators and `GetRecords`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use aws_sdk_kinesis::types::ShardIteratorType;

use super::{Config, StartPosition, is_arn, stream_name};
use crate::aws::Clients;
use crate::delivery::{Error, ErrorClass, Policy, error::classify};
use crate::sources::shards::{At, GetError, Page, ShardApi, ShardReader, ensure_table};

/// A running Kinesis source.
pub type Reader = ShardReader<Api>;

/// The Kinesis side of a [`ShardReader`].
pub struct Api {
    config: Config,
    pipeline: String,
    /// The stream's name (also when the pipeline gives its ARN), for `meta.stream`.
    stream: Arc<str>,
    aws: Arc<Clients>,
}

impl Reader {
    /// A reader of the shards whose leases this worker holds in its group
    /// (`leases`), as they come and go, each from its checkpoint on.
    pub async fn new(
        config: Config,
        pipeline: &str,
        aws: Arc<Clients>,
        leases: (Arc<crate::sources::shards::lease::Shared>, String),
        retry: Policy,
    ) -> Result<Reader, Error> {
        ensure_table(&aws, &config.checkpoint_table, &retry).await?;
        let (table, max_records, poll) = (
            config.checkpoint_table.clone(),
            config.max_records,
            config.poll_interval.0,
        );
        let api = Api {
            stream: Arc::from(stream_name(&config.stream)),
            config,
            pipeline: pipeline.to_owned(),
            aws: Arc::clone(&aws),
        };
        Ok(ShardReader::with_api(
            api,
            aws,
            leases,
            retry,
            &table,
            max_records,
            poll,
        ))
    }
}

impl Api {
    fn shard_iterator(
        &self,
        shard: &str,
    ) -> aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder
    {
        let req = self.aws.kinesis().get_shard_iterator().shard_id(shard);
        if is_arn(&self.config.stream) {
            req.stream_arn(&self.config.stream)
        } else {
            req.stream_name(&self.config.stream)
        }
    }
}

impl ShardApi for Api {
    /// `PIPELINE/STREAM/SHARD`, with the stream's name even when the
    /// pipeline names it by ARN, so the checkpoints hold either way.
    fn checkpoint_key(&self, shard: &str) -> String {
        format!(
            "{}/{}/{shard}",
            self.pipeline,
            stream_name(&self.config.stream)
        )
    }

    async fn iterator(&self, shard: &str, at: At) -> Result<Option<String>, Error> {
        let req = self.shard_iterator(shard);
        let req = match (at, self.config.start_position) {
            (At::After(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (At::TrimHorizon, _) | (At::Configured, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (At::Configured, StartPosition::Latest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
            (At::Configured, StartPosition::AtTimestamp) => {
                let t = self.config.timestamp.as_deref().unwrap_or_default();
                let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
                    Error::new(
                        ErrorClass::Poison,
                        format!("`timestamp` {t:?} is not an RFC 3339 time: {e}"),
                    )
                })?;
                let secs = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                req.shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from_secs_f64(secs))
            }
        };
        req.send()
            .await
            .map_err(|e| classify(&format!("get_shard_iterator of shard `{shard}`"), &e))
            .map(|o| o.shard_iterator)
    }

    async fn get_records(
        &self,
        shard: &Arc<str>,
        iterator: String,
        limit: i32,
    ) -> Result<Page, GetError> {
        let out = self
            .aws
            .kinesis()
            .get_records()
            .shard_iterator(iterator)
            .set_stream_arn(is_arn(&self.config.stream).then(|| self.config.stream.clone()))
            .limit(limit)
            .send()
            .await
            .map_err(|e| GetError::of(shard, &e))?;
        let mut records = Vec::with_capacity(out.records.len());
        for r in out.records {
            let position = super::position(
                Some(Arc::clone(&self.stream)),
                Some(Arc::clone(shard)),
                r.partition_key,
                r.sequence_number,
                r.approximate_arrival_timestamp
                    .map(|t| t.to_millis().unwrap_or(0)),
            );
            // The data is moved, not copied, into the record.
            super::push_records(&mut records, r.data.into_inner(), position);
        }
        Ok(Page {
            records,
            next_iterator: out.next_shard_iterator,
            millis_behind: out.millis_behind_latest,
        })
    }
}
