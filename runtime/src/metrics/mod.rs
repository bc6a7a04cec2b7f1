//! Counts of what happened to records, and the run summary built from them.
//!
//! The invariant every run checks: `records_in + fanned_out + aggregates_out
//! = delivered + filtered + dead_lettered + unrouted + deduplicated +
//! aggregated + failed`, where `fanned_out` counts the extra records a
//! transform created by returning an array, and `aggregates_out` the records
//! an aggregate made.

pub mod emf;
pub mod names;
pub mod prometheus;

use serde::Serialize;

use crate::record::Stage;

/// Outcome counts, added up per batch and per run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records read from the source.
    pub records_in: u64,
    /// Extra records created by transforms that returned arrays.
    pub fanned_out: u64,
    /// Records delivered to every sink their routes named.
    pub delivered: u64,
    /// Records per sink, in the order of `sinks:`.
    pub per_sink: Vec<u64>,
    /// Records filtered on purpose: a transform returned `()` or an empty array.
    pub filtered: u64,
    /// Records dropped because they failed validation with `on_invalid: drop`.
    pub dropped_invalid: u64,
    /// Dead-lettered records per stage, in the order of [`Stage::ALL`].
    pub dead_lettered: [u64; 9],
    /// Records no route took, with `unrouted: drop`.
    pub unrouted: u64,
    /// Records that went into an aggregate's windows and to no route.
    pub aggregated: u64,
    /// Records an aggregate made (one per group and window).
    pub aggregates_out: u64,
    /// Records dropped because a record with the same deduplication key was
    /// delivered within the key's time to live (`dedup:`).
    pub deduplicated: u64,
    /// Records a sink did not accept after retries, given back to the source
    /// to deliver again (Lambda mode; `sluice run` stops instead).
    pub failed: u64,
}

impl Counts {
    /// Zero counts for `sinks` sinks.
    pub fn new(sinks: usize) -> Self {
        Counts {
            per_sink: vec![0; sinks],
            ..Counts::default()
        }
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, o: &Counts) {
        self.records_in += o.records_in;
        self.fanned_out += o.fanned_out;
        self.delivered += o.delivered;
        if self.per_sink.len() < o.per_sink.len() {
            self.per_sink.resize(o.per_sink.len(), 0);
        }
        for (a, b) in self.per_sink.iter_mut().zip(&o.per_sink) {
            *a += b;
        }
        self.filtered += o.filtered;
        self.dropped_invalid += o.dropped_invalid;
        for (a, b) in self.dead_lettered.iter_mut().zip(&o.dead_lettered) {
            *a += b;
        }
        self.unrouted += o.unrouted;
        self.deduplicated += o.deduplicated;
        self.aggregated += o.aggregated;
        self.aggregates_out += o.aggregates_out;
        self.failed += o.failed;
    }

    /// Becomes a copy of `o`, reusing this one's memory (`clone_from` would not).
    pub fn copy_from(&mut self, o: &Counts) {
        let mut per_sink = std::mem::take(&mut self.per_sink);
        per_sink.clear();
        per_sink.extend_from_slice(&o.per_sink);
        *self = Counts {
            per_sink,
            dead_lettered: o.dead_lettered,
            ..*o
        };
    }

    /// Counts one dead-lettered record.
    pub fn dead_letter(&mut self, stage: Stage) {
        self.dead_lettered[stage as usize] += 1;
    }

    /// All dead-lettered records.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.iter().sum()
    }

    /// Whether every record is accounted for exactly once.
    pub fn balanced(&self) -> bool {
        self.records_in + self.fanned_out + self.aggregates_out
            == self.delivered
                + self.aggregated
                + self.filtered
                + self.dropped_invalid
                + self.dead_lettered_total()
                + self.unrouted
                + self.deduplicated
                + self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_and_adds() {
        let mut a = Counts::new(2);
        a.records_in = 3;
        a.delivered = 1;
        a.per_sink = vec![1, 0];
        a.filtered = 1;
        a.dead_letter(Stage::Parse);
        assert!(a.balanced());
        let mut total = Counts::new(2);
        total.add(&a);
        total.add(&a);
        assert_eq!(total.records_in, 6);
        assert_eq!(total.dead_lettered[Stage::Parse as usize], 2);
        assert!(total.balanced());
        total.delivered += 1;
        assert!(!total.balanced());
    }
}
