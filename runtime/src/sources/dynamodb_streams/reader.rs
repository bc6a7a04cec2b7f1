//! Reading a table's stream under `sluice run` and `sluice daemon`: the
//! DynamoDB Streams side of a [`ShardReader`], checkpointed per shard like
//! the `kinesis` source.

use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use super::{Config, StartPosition};
use crate::aws::Clients;
use crate::delivery::{Error, Policy, error::classify};
use crate::record::RawRecord;
use crate::sources::shards::{At, GetError, Page, ShardApi, ShardReader, ensure_table};

/// A running DynamoDB Streams source.
pub type Reader = ShardReader<Api>;

/// The DynamoDB Streams side of a [`ShardReader`].
pub struct Api {
    config: Config,
    pipeline: String,
    stream_arn: Arc<str>,
    aws: Arc<Clients>,
}

impl Reader {
    /// Finds the table's stream; reads the shards whose leases this worker
    /// holds in its group (`leases`), as they come and go, each from its
    /// checkpoint on.
    pub async fn new(
        config: Config,
        pipeline: &str,
        aws: Arc<Clients>,
        leases: (Arc<crate::sources::shards::lease::Shared>, String),
        retry: Policy,
    ) -> Result<Reader, Error> {
        ensure_table(&aws, &config.checkpoint_table, &retry).await?;
        let req = aws.dynamodb().describe_table().table_name(&config.table);
        let what = format!("describe_table of `{}`", config.table);
        let table = retry.send(&what, || req.clone().send()).await?;
        let arn = table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                Error::fatal(format!(
                    "table `{}` has no stream: enable DynamoDB Streams on it",
                    config.table
                ))
            })?;
        let (checkpoint_table, max_records, poll) = (
            config.checkpoint_table.clone(),
            config.max_records,
            config.poll_interval.0,
        );
        let api = Api {
            config,
            pipeline: pipeline.to_owned(),
            stream_arn: Arc::from(arn.as_str()),
            aws: Arc::clone(&aws),
        };
        Ok(ShardReader::with_api(
            api,
            aws,
            leases,
            retry,
            &checkpoint_table,
            max_records,
            poll,
        ))
    }

    /// The stream's ARN.
    pub fn stream_arn(&self) -> &str {
        &self.api.stream_arn
    }
}

impl ShardApi for Api {
    fn checkpoint_key(&self, shard: &str) -> String {
        format!("{}/{}/{shard}", self.pipeline, self.config.table)
    }

    async fn iterator(&self, shard: &str, at: At) -> Result<Option<String>, Error> {
        let req = self
            .aws
            .streams()
            .get_shard_iterator()
            .stream_arn(&*self.stream_arn)
            .shard_id(shard);
        let req = match (at, self.config.start_position) {
            (At::After(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            (At::TrimHorizon, _) | (At::Configured, StartPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (At::Configured, StartPosition::Latest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
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
            .streams()
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| GetError::of(shard, &e))?;
        let records = out
            .records
            .unwrap_or_default()
            .into_iter()
            .map(|r| change_record(&self.stream_arn, shard, r))
            .collect();
        Ok(Page {
            records,
            next_iterator: out.next_shard_iterator,
            millis_behind: None,
        })
    }
}

/// A change record as a record; one the stream gave without its change or
/// its event name is rejected (stage `decode`), not dropped.
fn change_record(
    stream_arn: &Arc<str>,
    shard: &Arc<str>,
    r: aws_sdk_dynamodbstreams::types::Record,
) -> RawRecord {
    let change = r.dynamodb;
    let position = super::position(
        Some(Arc::clone(stream_arn)),
        Some(Arc::clone(shard)),
        change.as_ref().and_then(|c| c.sequence_number.clone()),
        change
            .as_ref()
            .and_then(|c| c.approximate_creation_date_time)
            .map(|t| t.to_millis().unwrap_or(0)),
    );
    let (Some(change), Some(event_name)) = (change, r.event_name) else {
        let mut record = RawRecord::new(Vec::new(), position);
        record.rejected =
            Some("the change record cannot be decoded: it has no change or event name".into());
        return record;
    };
    let image = |m: Option<std::collections::HashMap<_, _>>| m.map(serde_dynamo::Item::from);
    super::record(
        position,
        event_name.as_str(),
        r.event_id.as_deref(),
        [
            image(change.keys),
            image(change.new_image),
            image(change.old_image),
        ],
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record, StreamRecord};
    use serde_json::json;

    use super::*;
    use crate::sources::event::Batch;

    const ARN: &str =
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-12-01T00:00:00.000";

    /// The same change as `GetRecords` gives it and as a Lambda event holds
    /// it becomes the same record, with the same position (but the shard,
    /// which a Lambda event does not name).
    #[test]
    fn a_change_is_the_same_record_read_from_the_stream_and_from_a_lambda_event() {
        let s = |v: &str| AttributeValue::S(v.into());
        let change = StreamRecord::builder()
            .keys("id", s("o1"))
            .new_image("id", s("o1"))
            .new_image("amount", AttributeValue::N("5.5".into()))
            .new_image("tags", AttributeValue::Ss(vec!["a".into(), "b".into()]))
            .new_image("raw", AttributeValue::B(vec![1, 2].into()))
            .sequence_number("111")
            .approximate_creation_date_time(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .build();
        let r = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Insert)
            .dynamodb(change)
            .build();
        let read = change_record(&Arc::from(ARN), &Arc::from("shardId-1"), r);

        let event = json!({
            "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": ARN,
            "dynamodb": {
                "Keys": { "id": { "S": "o1" } },
                "NewImage": { "id": { "S": "o1" }, "amount": { "N": "5.5" },
                              "tags": { "SS": ["a", "b"] }, "raw": { "B": "AQI=" } },
                "ApproximateCreationDateTime": 1_700_000_000, "SequenceNumber": "111",
                "SizeBytes": 40, "StreamViewType": "NEW_IMAGE"
            }
        });
        let mut batch = Batch::default();
        super::super::event::push(&event, &mut batch);
        let from_event = &batch.records[0];

        assert_eq!(read.data, from_event.data);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&read.data).unwrap(),
            json!({ "eventName": "INSERT", "eventID": "e1", "Keys": { "id": "o1" },
                    "NewImage": { "id": "o1", "amount": 5.5, "tags": ["a", "b"], "raw": "AQI=" } })
        );
        assert_eq!(read.position.shard.as_deref(), Some("shardId-1"));
        let mut without_shard = read.position.clone();
        without_shard.shard = None;
        assert_eq!(without_shard, from_event.position);
        assert_eq!(
            from_event.position.arrival_time.as_deref(),
            Some("2023-11-14T22:13:20.000Z")
        );
    }

    #[test]
    fn a_change_without_its_event_name_is_rejected_not_dropped() {
        let r = Record::builder()
            .dynamodb(StreamRecord::builder().sequence_number("7").build())
            .build();
        let read = change_record(&Arc::from(ARN), &Arc::from("shardId-1"), r);
        assert_eq!(
            read.rejected.as_deref(),
            Some("the change record cannot be decoded: it has no change or event name")
        );
        assert_eq!(read.position.sequence_number.as_deref(), Some("7"));
    }
}
