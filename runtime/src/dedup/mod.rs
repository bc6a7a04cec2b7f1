//! Deduplication: a record whose key was delivered within the key's time to
//! live goes nowhere, counted as `deduplicated`.
//!
//! A record's key is read once its routes are chosen, from the record as
//! its transforms left it. When a batch is committed, its records whose key
//! was delivered before (the store says so), is still in flight in an
//! earlier batch, or belongs to an earlier record of the same batch are
//! dropped from every sink. The keys of the others are *claimed* — written
//! to the store — only once their batch is delivered and synced, just
//! before its source position is acknowledged: a record that fails delivery
//! is never remembered as seen. [`Claims`] keeps that bookkeeping.

pub mod dynamodb;
pub mod memory;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::delivery::Error;
use crate::duration::Dur;

/// Drop records whose key was delivered within `ttl`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Dedup")]
pub struct Config {
    /// What identifies a record: a field path (`order_id`,
    /// `record.customer.id`) or a Rhai expression over `record` and `meta`
    /// (`record.customer_id + ":" + record.order_id`). A string is the key as
    /// it is; any other value, its JSON. A record without a key (the field
    /// missing, `()` or an empty string) is dead-lettered with stage `dedup`.
    #[schemars(length(min = 1))]
    pub key: String,
    /// How long a delivered key is remembered: `24h`, `15m`.
    pub ttl: Dur,
    /// Where delivered keys are remembered; by default in memory.
    #[serde(default)]
    pub store: StoreConfig,
}

/// Where delivered keys are remembered.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schemars(rename = "DedupStore")]
pub enum StoreConfig {
    /// In the process's memory.
    Memory(MemoryStore),
    /// A DynamoDB table.
    Dynamodb(DynamodbStore),
}

/// `type: memory`: keys held in the process's memory, forgotten when it
/// stops, and in Lambda kept per execution environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "MemoryDedupStore")]
pub struct MemoryStore {
    /// The most keys kept; past that, the oldest claimed are forgotten first.
    #[serde(default = "default_max_keys")]
    #[schemars(range(min = 1))]
    pub max_keys: usize,
}

/// `type: dynamodb`: one item per delivered key, with its expiry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DynamodbDedupStore")]
pub struct DynamodbStore {
    /// The table's name.
    #[schemars(length(min = 1))]
    pub table: String,
    /// The table's partition key attribute (a string).
    #[serde(default = "default_key_attribute")]
    #[schemars(length(min = 1))]
    pub key_attribute: String,
    /// The attribute that holds a key's expiry, in epoch seconds (the table's TTL attribute).
    #[serde(default = "default_ttl_attribute")]
    #[schemars(length(min = 1))]
    pub ttl_attribute: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Memory(MemoryStore {
            max_keys: default_max_keys(),
        })
    }
}

fn default_max_keys() -> usize {
    1_000_000
}

fn default_key_attribute() -> String {
    "key".into()
}

fn default_ttl_attribute() -> String {
    "expires_at".into()
}

impl Config {
    /// The IAM statements the store needs (none in memory).
    pub fn permissions(&self) -> Vec<serde_json::Value> {
        use crate::aws::iam::{statement, table_arn};
        match &self.store {
            StoreConfig::Memory(_) => Vec::new(),
            StoreConfig::Dynamodb(d) => vec![statement(
                &["dynamodb:BatchGetItem", "dynamodb:PutItem"],
                vec![table_arn(&d.table)],
            )],
        }
    }
}

impl StoreConfig {
    /// The store's type as written.
    pub fn type_name(&self) -> &'static str {
        match self {
            StoreConfig::Memory(_) => "memory",
            StoreConfig::Dynamodb(_) => "dynamodb",
        }
    }
}

/// How a record's key is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A field path, read where it is (`customer.id`, without `record.`).
    Path(String),
    /// A Rhai expression, run in the scripts' sandbox.
    Expr(String),
}

impl Key {
    /// The key as written: a dotted path of identifiers (with or without
    /// `record.`) is a path, anything else an expression.
    pub fn parse(written: &str) -> Key {
        let t = written.trim();
        let path = t.strip_prefix("record.").unwrap_or(t);
        let ident = |p: &str| {
            let mut c = p.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        };
        if path != "record" && !path.is_empty() && path.split('.').all(ident) {
            Key::Path(path.to_owned())
        } else {
            Key::Expr(t.to_owned())
        }
    }
}

/// Which records of a batch are duplicates, given their keys in order:
/// those whose key is `known` (delivered, or in flight in an earlier batch)
/// or belongs to an earlier record of the batch.
pub fn duplicates(keys: &[String], known: impl Fn(&str) -> bool) -> Vec<bool> {
    let mut first: HashSet<&str> = HashSet::with_capacity(keys.len());
    keys.iter()
        .map(|k| known(k) || !first.insert(k.as_str()))
        .collect()
}

/// The keys of committed records not yet claimed, by the batch they were
/// committed in (its sequence number) and their record id in it.
#[derive(Debug, Default)]
pub struct Claims {
    /// Keys in flight: a later record with one of them is a duplicate.
    pending: HashSet<String>,
    by_batch: BTreeMap<u64, Vec<(u32, String)>>,
}

impl Claims {
    /// Whether `key` is in flight.
    pub fn pending(&self, key: &str) -> bool {
        self.pending.contains(key)
    }

    /// Records batch `seq`'s delivered records (id and key).
    pub fn add(&mut self, seq: u64, records: Vec<(u32, String)>) {
        if records.is_empty() {
            return;
        }
        for (_, k) in &records {
            self.pending.insert(k.clone());
        }
        self.by_batch.entry(seq).or_default().extend(records);
    }

    /// Forgets a record that was not delivered after all (a sink rejected
    /// it, or did not take it after retries): its key is not claimed.
    pub fn forget(&mut self, seq: u64, id: u32) {
        if let Some(list) = self.by_batch.get_mut(&seq)
            && let Some(i) = list.iter().position(|(r, _)| *r == id)
        {
            let (_, key) = list.swap_remove(i);
            self.pending.remove(&key);
        }
    }

    /// Forgets a batch given up (its records are read again elsewhere): its
    /// keys are not claimed.
    pub fn forget_batch(&mut self, seq: u64) {
        if let Some(list) = self.by_batch.remove(&seq) {
            for (_, key) in list {
                self.pending.remove(&key);
            }
        }
    }

    /// Whether a batch before `before` has keys to claim.
    pub fn any_due(&self, before: u64) -> bool {
        self.by_batch.range(..before).next().is_some()
    }

    /// Takes the keys of the batches before `before`, to claim; they stay
    /// in flight until [`claimed`](Self::claimed).
    pub fn take_due(&mut self, before: u64) -> Vec<String> {
        let later = self.by_batch.split_off(&before);
        let due = std::mem::replace(&mut self.by_batch, later);
        due.into_values().flatten().map(|(_, k)| k).collect()
    }

    /// The keys were claimed (or will never be): no longer in flight.
    pub fn claimed(&mut self, keys: &[String]) {
        for k in keys {
            self.pending.remove(k);
        }
    }

    /// Forgets everything in flight: the records will be delivered again.
    pub fn abandon(&mut self) {
        self.pending.clear();
        self.by_batch.clear();
    }
}

/// A store of delivered keys.
#[derive(Clone)]
pub enum Store {
    /// In memory, shared by the process's threads.
    Memory(Arc<Mutex<memory::Memory>>),
    /// A DynamoDB table.
    Dynamodb(Arc<dynamodb::Table>),
}

impl Store {
    /// Opens the store a pipeline names.
    pub async fn open(
        config: &StoreConfig,
        aws: Option<Arc<crate::aws::Clients>>,
        retry: &crate::delivery::Policy,
    ) -> Result<Store, Error> {
        Ok(match config {
            StoreConfig::Memory(m) => {
                Store::Memory(Arc::new(Mutex::new(memory::Memory::new(m.max_keys))))
            }
            StoreConfig::Dynamodb(d) => {
                let Some(aws) = aws else {
                    return Err(Error::fatal(
                        "the dedup store `dynamodb` needs AWS clients, and none were configured",
                    ));
                };
                Store::Dynamodb(Arc::new(dynamodb::Table {
                    client: aws.dynamodb().clone(),
                    table: d.table.clone(),
                    key_attribute: d.key_attribute.clone(),
                    ttl_attribute: d.ttl_attribute.clone(),
                    retry: retry.clone(),
                }))
            }
        })
    }

    /// Which of `keys` were delivered and have not expired at `now`.
    pub async fn seen(&self, keys: &[&str], now: SystemTime) -> Result<HashSet<String>, Error> {
        match self {
            Store::Memory(m) => {
                let m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(keys
                    .iter()
                    .filter(|k| m.seen(k, now))
                    .map(|k| (*k).to_owned())
                    .collect())
            }
            Store::Dynamodb(t) => t.seen(keys, now).await,
        }
    }

    /// Remembers `keys` as delivered at `now`, for `ttl`.
    pub async fn claim(
        &self,
        keys: &[String],
        now: SystemTime,
        ttl: Duration,
    ) -> Result<(), Error> {
        match self {
            Store::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for k in keys {
                    m.claim(k, now, ttl);
                }
                Ok(())
            }
            Store::Dynamodb(t) => t.claim(keys, now, ttl).await,
        }
    }
}

/// A pipeline's deduplication at run time: its store, its keys' time to
/// live and the keys in flight.
pub struct Dedup {
    /// Where delivered keys are.
    pub store: Store,
    /// How long a key is remembered.
    pub ttl: Duration,
    /// The keys of records committed but not yet claimed.
    pub claims: Claims,
}

/// [`duplicates`] of a batch against a store and the keys in flight: one
/// call to the store for the distinct keys not in flight.
pub async fn find_duplicates(
    dedup: &Dedup,
    keys: &[String],
    now: SystemTime,
) -> Result<Vec<bool>, Error> {
    let mut ask: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !dedup.claims.pending(k))
        .collect();
    ask.sort_unstable();
    ask.dedup();
    let seen = if ask.is_empty() {
        HashSet::new()
    } else {
        dedup.store.seen(&ask, now).await?
    };
    Ok(duplicates(keys, |k| {
        dedup.claims.pending(k) || seen.contains(k)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_key_is_a_path_when_it_is_only_identifiers_and_dots() {
        assert_eq!(Key::parse("order_id"), Key::Path("order_id".into()));
        assert_eq!(Key::parse("record.order_id"), Key::Path("order_id".into()));
        assert_eq!(
            Key::parse(" record.customer.id "),
            Key::Path("customer.id".into())
        );
        assert_eq!(Key::parse("record"), Key::Expr("record".into()));
        assert_eq!(
            Key::parse("record.a + record.b"),
            Key::Expr("record.a + record.b".into())
        );
        assert_eq!(
            Key::parse("record[\"a-b\"]"),
            Key::Expr("record[\"a-b\"]".into())
        );
        assert_eq!(Key::parse("1abc"), Key::Expr("1abc".into()));
        assert_eq!(Key::parse("a..b"), Key::Expr("a..b".into()));
    }

    #[test]
    fn the_first_of_a_key_in_a_batch_goes_on_and_known_keys_do_not() {
        let k = keys(&["a", "b", "a", "c", "b", "d"]);
        assert_eq!(
            duplicates(&k, |key| key == "c"),
            [false, false, true, true, true, false]
        );
        assert_eq!(
            duplicates(&k, |_| false),
            [false, false, true, false, true, false]
        );
    }

    #[test]
    fn a_batch_given_up_claims_none_of_its_keys() {
        let mut c = Claims::default();
        c.add(3, vec![(0, "a".into()), (1, "b".into())]);
        c.add(4, vec![(0, "c".into())]);
        c.forget_batch(3);
        assert!(!c.pending("a") && !c.pending("b") && c.pending("c"));
        assert_eq!(c.take_due(10), ["c"]);
    }

    #[test]
    fn claims_are_due_by_batch_and_forgotten_records_are_not_claimed() {
        let mut c = Claims::default();
        c.add(0, vec![(0, "a".into()), (1, "b".into())]);
        c.add(1, vec![(0, "c".into())]);
        c.add(2, vec![]);
        assert!(c.pending("a") && c.pending("c"));
        c.forget(0, 1);
        assert!(!c.pending("b"));
        assert!(!c.any_due(0));
        assert!(c.any_due(1));
        let due = c.take_due(1);
        assert_eq!(due, ["a"]);
        // Still in flight until claimed.
        assert!(c.pending("a"));
        c.claimed(&due);
        assert!(!c.pending("a"));
        assert_eq!(c.take_due(u64::MAX), ["c"]);
        c.add(3, vec![(0, "d".into())]);
        c.abandon();
        assert!(!c.pending("d") && !c.any_due(u64::MAX));
    }
}
