//! The `dynamodb` dedup store: one item per delivered key, its expiry in
//! epoch seconds. Keys are looked up with `BatchGetItem` (100 per call) and
//! claimed with a conditional `PutItem`, which leaves a key claimed by
//! another process meanwhile as it is.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::item::{Read, batch_get};
use futures_util::StreamExt;

use crate::delivery::{Error, Policy};

/// Keys per `BatchGetItem` call (DynamoDB's limit).
const GET_BATCH: usize = 100;
/// `PutItem` calls in flight at once.
const PUTS_IN_FLIGHT: usize = 16;

/// A table of delivered keys.
pub struct Table {
    /// The DynamoDB client.
    pub client: aws_sdk_dynamodb::Client,
    /// The table's name.
    pub table: String,
    /// Its partition key attribute.
    pub key_attribute: String,
    /// The attribute that holds a key's expiry (epoch seconds).
    pub ttl_attribute: String,
    /// How calls are retried.
    pub retry: Policy,
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Table {
    /// Which of `keys` have an item whose expiry is after `now`.
    pub async fn seen(&self, keys: &[&str], now: SystemTime) -> Result<HashSet<String>, Error> {
        let now = epoch(now);
        let mut seen = HashSet::new();
        for chunk in keys.chunks(GET_BATCH) {
            let ask = chunk
                .iter()
                .map(|k| {
                    HashMap::from([(self.key_attribute.clone(), AttributeValue::S((*k).into()))])
                })
                .collect();
            let read = Read {
                consistent: true,
                attributes: &[&self.key_attribute, &self.ttl_attribute],
            };
            let (items, left) =
                batch_get(&self.client, &self.table, ask, read, &self.retry).await?;
            if !left.is_empty() {
                return Err(Error::new(
                    crate::delivery::ErrorClass::Throttled,
                    format!(
                        "batch_get_item on table `{}`: {} keys left unprocessed after the retries",
                        self.table,
                        left.len()
                    ),
                ));
            }
            for item in &items {
                let key = item.get(&self.key_attribute).and_then(|v| v.as_s().ok());
                let until = item
                    .get(&self.ttl_attribute)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok());
                if let (Some(key), Some(until)) = (key, until)
                    && until > now
                {
                    seen.insert(key.clone());
                }
            }
        }
        Ok(seen)
    }

    /// Writes an item for each of `keys`, expiring at `now + ttl`, unless
    /// an unexpired one is there already.
    pub async fn claim(
        &self,
        keys: &[String],
        now: SystemTime,
        ttl: Duration,
    ) -> Result<(), Error> {
        let until = epoch(now + ttl).to_string();
        let now = epoch(now).to_string();
        let what = format!("put_item to table `{}`", self.table);
        let puts = futures_util::stream::iter(keys.iter().map(|key| {
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(&self.key_attribute, AttributeValue::S(key.clone()))
                .item(&self.ttl_attribute, AttributeValue::N(until.clone()))
                .condition_expression("attribute_not_exists(#k) OR #e <= :now")
                .expression_attribute_names("#k", &self.key_attribute)
                .expression_attribute_names("#e", &self.ttl_attribute)
                .expression_attribute_values(":now", AttributeValue::N(now.clone()));
            let what = &what;
            async move {
                let sent = self.retry.send(what, || request.clone().send()).await;
                match sent {
                    // Claimed by another process meanwhile: it stays theirs.
                    Err(e) if e.message.contains("ConditionalCheckFailed") => Ok(()),
                    other => other.map(|_| ()),
                }
            }
        }))
        .buffer_unordered(PUTS_IN_FLIGHT);
        let results: Vec<Result<(), Error>> = puts.collect().await;
        results.into_iter().collect()
    }
}
