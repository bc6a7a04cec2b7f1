//! `type: dynamodb` lookups: rows read from a DynamoDB table by partition
//! key, kept in a cache of bounded size for a time to live. Before a
//! batch's scripts run, the keys they will ask for (`lookup("name",
//! record.field)`) are read with `BatchGetItem`, 100 per call; a key the
//! batch did not announce is read with `GetItem` when a script asks.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lru::LruCache;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::delivery::Policy;
use crate::duration::Dur;

/// Keys per `BatchGetItem` call (DynamoDB's limit).
const GET_BATCH: usize = 100;

/// `type: dynamodb`: rows of a DynamoDB table, by its partition key, cached.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DynamodbLookup")]
pub struct Config {
    /// The table's name.
    #[schemars(length(min = 1))]
    pub table: String,
    /// The table's partition key attribute (a table with a sort key too
    /// cannot be read by one key).
    #[schemars(length(min = 1))]
    pub key: String,
    /// The partition key's type: `string` (`S`, the default) or `number` (`N`).
    #[serde(default)]
    pub key_type: KeyType,
    /// The rows kept in memory.
    #[serde(default)]
    pub cache: CacheConfig,
}

/// A partition key's DynamoDB type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "LookupKeyType")]
pub enum KeyType {
    /// `S`.
    #[default]
    String,
    /// `N`.
    Number,
}

/// How many rows are kept, and for how long.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LookupCache")]
pub struct CacheConfig {
    /// The most rows kept (a key the table has no row for counts as one);
    /// past it, the least recently read go first.
    #[serde(default = "default_max_entries")]
    #[schemars(range(min = 1))]
    pub max_entries: usize,
    /// How long a row read is used before it is read again.
    #[serde(default = "default_ttl")]
    pub ttl: Dur,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: default_max_entries(),
            ttl: default_ttl(),
        }
    }
}

fn default_max_entries() -> usize {
    100_000
}

fn default_ttl() -> Dur {
    Dur(Duration::from_secs(300))
}

/// What a table's cache did, since start-up.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups the cache could not answer.
    pub misses: AtomicU64,
    /// `GetItem` and `BatchGetItem` calls made.
    pub calls: AtomicU64,
}

struct Connection {
    client: aws_sdk_dynamodb::Client,
    runtime: tokio::runtime::Handle,
    retry: Policy,
}

/// A DynamoDB table read by key, with its cache.
pub struct Remote {
    /// The lookup's name.
    pub name: String,
    config: Config,
    cache: Mutex<LruCache<String, (Instant, Option<Value>)>>,
    connection: OnceLock<Connection>,
    /// What the cache did.
    pub stats: Stats,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("table", &self.config.table)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A table not yet connected.
    pub fn new(name: &str, config: &Config) -> Remote {
        let size = NonZeroUsize::new(config.cache.max_entries).unwrap_or(NonZeroUsize::MIN);
        Remote {
            name: name.to_owned(),
            config: config.clone(),
            cache: Mutex::new(LruCache::new(size)),
            connection: OnceLock::new(),
            stats: Stats::default(),
        }
    }

    /// The same table, not connected, its cache empty.
    pub fn unconnected(&self) -> Remote {
        Remote::new(&self.name, &self.config)
    }

    /// The table's partition key attribute.
    pub fn key(&self) -> &str {
        &self.config.key
    }

    /// Gives the table its client, and the runtime its calls run on.
    pub fn connect(
        &self,
        client: aws_sdk_dynamodb::Client,
        runtime: tokio::runtime::Handle,
        retry: Policy,
    ) {
        let _ = self.connection.set(Connection {
            client,
            runtime,
            retry,
        });
    }

    fn connection(&self) -> Result<&Connection, String> {
        self.connection.get().ok_or_else(|| {
            format!(
                "lookup `{}` reads DynamoDB table `{}`, which `sluice test` does not call: give the case's rows under `lookups`",
                self.name, self.config.table
            )
        })
    }

    fn attribute(&self, key: &str) -> AttributeValue {
        match self.config.key_type {
            KeyType::String => AttributeValue::S(key.to_owned()),
            KeyType::Number => AttributeValue::N(key.to_owned()),
        }
    }

    fn cached(&self, key: &str) -> Option<Option<Value>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.get(key) {
            Some((at, row)) if at.elapsed() < self.config.cache.ttl.0 => Some(row.clone()),
            _ => None,
        }
    }

    fn remember(&self, key: String, row: Option<Value>) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(key, (Instant::now(), row));
    }

    /// The row whose key is `key` (`None`: the table has none), from the
    /// cache or the table. Blocks the calling thread, which must not be one
    /// of the runtime's.
    pub fn get(&self, key: &str) -> Result<Option<Value>, String> {
        if let Some(row) = self.cached(key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(row);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let c = self.connection()?;
        let what = format!("get_item on table `{}`", self.config.table);
        let request = c
            .client
            .get_item()
            .table_name(&self.config.table)
            .key(&self.config.key, self.attribute(key));
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let out = c
            .runtime
            .block_on(c.retry.send(&what, || request.clone().send()))
            .map_err(|e| format!("lookup `{}`: {}", self.name, e.message))?;
        let row = out
            .item
            .map(|item| crate::aws::item::item_json(&item.into()));
        self.remember(key.to_owned(), row.clone());
        Ok(row)
    }

    /// Reads the rows of `keys` the cache does not hold, 100 per call, into
    /// it. A call that fails leaves its keys to [`get`](Self::get).
    pub fn prefetch(&self, keys: Vec<String>) {
        let Ok(c) = self.connection() else {
            return;
        };
        let mut keys: Vec<String> = keys
            .into_iter()
            .filter(|k| self.cached(k).is_none())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(GET_BATCH) {
            let _ = c.runtime.block_on(self.batch_get(c, chunk));
        }
    }

    async fn batch_get(
        &self,
        c: &Connection,
        keys: &[String],
    ) -> Result<(), crate::delivery::Error> {
        let ask = keys
            .iter()
            .map(|k| {
                std::collections::HashMap::from([(self.config.key.clone(), self.attribute(k))])
            })
            .collect();
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let (items, left) = crate::aws::item::batch_get(
            &c.client,
            &self.config.table,
            ask,
            crate::aws::item::Read::default(),
            &c.retry,
        )
        .await?;
        let mut found = std::collections::HashSet::new();
        for item in items {
            let row = crate::aws::item::item_json(&item.into());
            let key = crate::lookup::key_text_json(&row[&self.config.key]);
            found.insert(key.clone());
            self.remember(key, Some(row));
        }
        // The keys the table has no row for are remembered as such; those
        // still unprocessed are left to `get`.
        if left.is_empty() {
            for k in keys.iter().filter(|k| !found.contains(*k)) {
                self.remember(k.clone(), None);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cached_for_their_time_to_live_and_an_unconnected_table_says_why() {
        let config = Config {
            table: "Customers".into(),
            key: "id".into(),
            key_type: KeyType::String,
            cache: CacheConfig {
                max_entries: 2,
                ttl: Dur(Duration::from_secs(60)),
            },
        };
        let r = Remote::new("customers", &config);
        r.remember("a".into(), Some(serde_json::json!({"id": "a"})));
        r.remember("b".into(), None);
        assert_eq!(r.get("a"), Ok(Some(serde_json::json!({"id": "a"}))));
        assert_eq!(r.get("b"), Ok(None));
        // A third row: the least recently read (`a` was read before `b`) goes.
        r.remember("c".into(), None);
        assert_eq!(
            r.get("a"),
            Err("lookup `customers` reads DynamoDB table `Customers`, which `sluice test` does not call: give the case's rows under `lookups`".into())
        );
        assert_eq!(
            (
                r.stats.hits.load(Ordering::Relaxed),
                r.stats.misses.load(Ordering::Relaxed)
            ),
            (2, 1)
        );
        let expired = Remote::new(
            "x",
            &Config {
                cache: CacheConfig {
                    max_entries: 10,
                    ttl: Dur(Duration::ZERO),
                },
                ..config
            },
        );
        expired.remember("a".into(), None);
        assert!(expired.cached("a").is_none());
    }
}
