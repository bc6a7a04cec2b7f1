//! The in-flight byte budget: how many bytes of source records a run holds
//! between reading them and acknowledging them, across the queues, the
//! workers and the sinks' buffers.
//!
//! The reader takes a batch's bytes from the budget before handing it on,
//! and waits while the budget is spent; the writer gives them back when the
//! batch is acknowledged (batches are acknowledged in the order they were
//! read). A batch is always let through when nothing else is in flight, so
//! a record larger than the whole budget still goes through, alone.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Default budget: 256 MiB.
pub const DEFAULT_BYTES: u64 = 256 * 1024 * 1024;

/// The budget shared by a run's reader and writer.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes taken and not given back.
    used: u64,
    /// Each batch in flight's bytes, oldest first.
    batches: VecDeque<u64>,
    /// The most `used` has been.
    peak: u64,
}

impl Budget {
    /// A budget of `limit` bytes (at least 1).
    pub fn new(limit: u64) -> Budget {
        Budget {
            limit: limit.max(1),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// The most bytes one batch should hold: a quarter of the budget, so
    /// that several batches can be in the stages at once.
    pub fn batch_bytes(&self) -> u64 {
        (self.limit / 4).max(1)
    }

    /// Takes `bytes` for the next batch, waiting while they do not fit. While
    /// it waits it calls `waiting` (the writer is asked to write its buffers
    /// out), and it stops waiting when `stop` says so: the batch is then
    /// taken anyway, so that what was read is still delivered.
    pub fn take(&self, bytes: u64, stop: &dyn Fn() -> bool, waiting: &dyn Fn()) {
        let mut s = self.lock();
        while s.used > 0 && s.used.saturating_add(bytes) > self.limit && !stop() {
            waiting();
            s = match self.freed.wait_timeout(s, Duration::from_millis(100)) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        s.used = s.used.saturating_add(bytes);
        s.batches.push_back(bytes);
        s.peak = s.peak.max(s.used);
    }

    /// Gives back the bytes of the `batches` oldest batches in flight.
    pub fn give_back(&self, batches: usize) {
        let mut s = self.lock();
        for _ in 0..batches {
            let Some(b) = s.batches.pop_front() else {
                break;
            };
            s.used -= b;
        }
        drop(s);
        self.freed.notify_all();
    }

    /// The bytes in flight now.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// The most bytes that were in flight at once.
    pub fn peak(&self) -> u64 {
        self.lock().peak
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn batches_wait_until_older_ones_are_given_back() {
        let b = Arc::new(Budget::new(100));
        assert_eq!(b.batch_bytes(), 25);
        b.take(60, &|| false, &|| {});
        b.take(40, &|| false, &|| {});
        let asked = Arc::new(AtomicUsize::new(0));
        let third = {
            let (b, asked) = (Arc::clone(&b), Arc::clone(&asked));
            std::thread::spawn(move || {
                b.take(30, &|| false, &|| {
                    asked.fetch_add(1, Ordering::Relaxed);
                });
            })
        };
        // The third batch waits, asking for the buffers meanwhile, until the
        // first is given back.
        while asked.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        assert!(!third.is_finished());
        b.give_back(1);
        third.join().unwrap();
        assert_eq!(b.peak(), 100);
        b.give_back(2);
        assert_eq!(b.lock().used, 0);
    }

    #[test]
    fn a_batch_larger_than_the_budget_goes_through_alone() {
        let b = Budget::new(10);
        b.take(1000, &|| false, &|| {});
        assert_eq!(b.peak(), 1000);
        b.give_back(1);
        b.take(5, &|| false, &|| {});
        assert_eq!(b.lock().used, 5);
    }

    #[test]
    fn a_stopping_run_takes_the_batch_it_read() {
        let b = Budget::new(10);
        b.take(8, &|| false, &|| {});
        let stop = AtomicBool::new(true);
        b.take(8, &|| stop.load(Ordering::Relaxed), &|| {});
        assert_eq!(b.lock().used, 16);
    }
}
