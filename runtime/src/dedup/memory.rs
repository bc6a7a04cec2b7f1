//! The `memory` dedup store: delivered keys with their expiry, the oldest
//! forgotten first once there are `max_keys`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

/// Delivered keys held in memory.
#[derive(Debug)]
pub struct Memory {
    max_keys: usize,
    /// Each key's expiry.
    expiry: HashMap<String, SystemTime>,
    /// Keys in the order they were claimed, with the expiry they were
    /// claimed with (a key claimed again is in it twice; only the entry
    /// that matches `expiry` counts).
    order: VecDeque<(String, SystemTime)>,
}

impl Memory {
    /// An empty store of at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Memory {
        Memory {
            max_keys: max_keys.max(1),
            expiry: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `key` was claimed and has not expired at `now`.
    pub fn seen(&self, key: &str, now: SystemTime) -> bool {
        self.expiry.get(key).is_some_and(|e| *e > now)
    }

    /// Remembers `key` until `now + ttl`.
    pub fn claim(&mut self, key: &str, now: SystemTime, ttl: Duration) {
        let until = now + ttl;
        self.expiry.insert(key.to_owned(), until);
        self.order.push_back((key.to_owned(), until));
        // Keys are claimed with one time to live, so the oldest expire first.
        while let Some((k, e)) = self.order.front() {
            let current = self.expiry.get(k) == Some(e);
            let full = self.expiry.len() > self.max_keys;
            if current && !full && *e > now {
                break;
            }
            if current {
                self.expiry.remove(k);
            }
            self.order.pop_front();
        }
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_key_is_seen_until_it_expires() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut m = Memory::new(10);
        assert!(!m.seen("a", t0));
        m.claim("a", t0, MIN);
        assert!(m.seen("a", t0));
        assert!(m.seen("a", t0 + MIN - Duration::from_secs(1)));
        assert!(!m.seen("a", t0 + MIN));
        // Claiming again restarts its time to live.
        m.claim("a", t0 + MIN / 2, MIN);
        assert!(m.seen("a", t0 + MIN));
        // Expired keys are let go as later ones are claimed.
        m.claim("b", t0 + 3 * MIN, MIN);
        assert_eq!(m.len(), 1);
        assert!(m.seen("b", t0 + 3 * MIN));
    }

    #[test]
    fn past_max_keys_the_oldest_are_forgotten_first() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut m = Memory::new(3);
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            m.claim(k, t0 + Duration::from_secs(i as u64), MIN);
        }
        assert_eq!(m.len(), 3);
        let now = t0 + Duration::from_secs(5);
        assert!(!m.seen("a", now));
        assert!(m.seen("b", now) && m.seen("c", now) && m.seen("d", now));
        // `b` claimed again is now the newest: `c` goes next.
        m.claim("b", now, MIN);
        m.claim("e", now, MIN);
        assert_eq!(m.len(), 3);
        assert!(!m.seen("c", now));
        assert!(m.seen("b", now) && m.seen("d", now) && m.seen("e", now));
    }
}
