//! The order in which committed batches are acknowledged to their source.
//!
//! A batch is acknowledged (its checkpoint saved, its SQS messages deleted)
//! only once no sink buffer holds any of its records, and never before a
//! batch read earlier: a checkpoint must not pass a record that is not yet
//! written. This is the pure part of [`Outputs`](super::commit::Outputs):
//! which acknowledgements are due, given the oldest batch a buffer holds.
//!
//! An aggregate's open windows hold back, per partition (a shard), the
//! acknowledgements from the first batch a window still open took a record
//! of: a crash reads them again, and the windows are computed again. A
//! partition's acknowledgements are in order among themselves; those of
//! different partitions do not wait for one another ([`WindowHolds`]).

use std::collections::{BTreeMap, VecDeque};

/// Committed batches not yet acknowledged, oldest first, by the sequence
/// number each batch was read with.
#[derive(Debug)]
pub struct Acks<A> {
    queue: VecDeque<(u64, A)>,
}

impl<A> Default for Acks<A> {
    fn default() -> Self {
        Acks {
            queue: VecDeque::new(),
        }
    }
}

impl<A> Acks<A> {
    /// Adds the acknowledgement of batch `seq`, committed after every batch
    /// already added.
    pub fn push(&mut self, seq: u64, ack: A) {
        debug_assert!(self.queue.back().is_none_or(|(last, _)| *last < seq));
        self.queue.push_back((seq, ack));
    }

    /// Batches committed and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether every committed batch is acknowledged.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether one of the acknowledgements now due satisfies `f`.
    pub fn any_due(&self, oldest_held: Option<u64>, f: impl Fn(&A) -> bool) -> bool {
        self.any_due_unless(oldest_held, |_, _| false, f)
    }

    /// Takes the acknowledgements now due, oldest first: those of the
    /// batches read before `oldest_held`, the oldest batch a sink buffer
    /// still holds records of (`None`: no buffer holds any). A batch no
    /// buffer holds still waits for every older batch that one does.
    pub fn take_due(&mut self, oldest_held: Option<u64>) -> Vec<A> {
        self.take_due_unless(oldest_held, |_, _| false)
    }

    /// Whether a batch that [`take_due_unless`](Self::take_due_unless)
    /// would take makes `f` true.
    pub fn any_due_unless(
        &self,
        oldest_held: Option<u64>,
        held: impl Fn(u64, &A) -> bool,
        f: impl Fn(&A) -> bool,
    ) -> bool {
        self.queue
            .iter()
            .take_while(|(seq, _)| is_due(*seq, oldest_held))
            .any(|(seq, a)| !held(*seq, a) && f(a))
    }

    /// Takes, in order, the batches due (as [`take_due`](Self::take_due))
    /// that `held` does not hold back (an aggregate's windows, per shard);
    /// those it holds stay, in order.
    pub fn take_due_unless(
        &mut self,
        oldest_held: Option<u64>,
        held: impl Fn(u64, &A) -> bool,
    ) -> Vec<A> {
        let due = self
            .queue
            .iter()
            .take_while(|(seq, _)| is_due(*seq, oldest_held));
        let n = due.clone().count();
        if !due.clone().any(|(seq, a)| held(*seq, a)) {
            // Nothing held among them (every pipeline without an
            // aggregate): the front of the queue, as it is.
            return self.queue.drain(..n).map(|(_, a)| a).collect();
        }
        self.take_at(|i, seq, a| i < n && !held(seq, a))
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    /// Takes out every batch `f` picks, due or not, in order, with its
    /// sequence number.
    pub fn take_where(&mut self, f: impl Fn(&A) -> bool) -> Vec<(u64, A)> {
        if !self.queue.iter().any(|(_, a)| f(a)) {
            return Vec::new();
        }
        self.take_at(|_, _, a| f(a))
    }

    /// Takes out the batches `pick` picks (by place in the queue, sequence
    /// and acknowledgement), keeping the others in order.
    fn take_at(&mut self, pick: impl Fn(usize, u64, &A) -> bool) -> Vec<(u64, A)> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for (i, (seq, a)) in self.queue.drain(..).enumerate() {
            if pick(i, seq, &a) {
                taken.push((seq, a));
            } else {
                kept.push_back((seq, a));
            }
        }
        self.queue = kept;
        taken
    }
}

/// What an aggregate's open windows hold back, per partition: after each
/// batch, the first batch a window still open took a record of (that
/// batch's and every later batch's acknowledgement of the partition wait),
/// and the windows' state `S`, saved with a checkpoint. Both are taken as
/// of the latest batch whose records and windows are written, so that a
/// checkpoint and the state saved with it agree.
#[derive(Debug)]
pub struct WindowHolds<S> {
    after: BTreeMap<String, VecDeque<(u64, Option<u64>, S)>>,
}

impl<S> Default for WindowHolds<S> {
    fn default() -> Self {
        WindowHolds {
            after: BTreeMap::new(),
        }
    }
}

impl<S: Clone> WindowHolds<S> {
    /// After batch `seq` of `partition`: the first batch its open windows
    /// hold (`None`: no window open), and their state.
    pub fn set(&mut self, partition: &str, seq: u64, oldest_open: Option<u64>, state: S) {
        self.after
            .entry(partition.to_owned())
            .or_default()
            .push_back((seq, oldest_open, state));
    }

    /// Per partition, what its windows held after its latest batch before
    /// `before` (the batches whose outputs are written): the first batch
    /// held, and the state. Older entries are forgotten.
    pub fn as_of(&mut self, before: u64) -> BTreeMap<String, (Option<u64>, S)> {
        let mut out = BTreeMap::new();
        for (partition, entries) in &mut self.after {
            while entries.len() > 1 && entries[1].0 < before {
                entries.pop_front();
            }
            if let Some((seq, oldest, state)) = entries.front()
                && *seq < before
            {
                out.insert(partition.clone(), (*oldest, state.clone()));
            }
        }
        out
    }

    /// The partition is no longer read: nothing of it is held.
    pub fn forget(&mut self, partition: &str) {
        self.after.remove(partition);
    }
}

/// Whether, by what [`WindowHolds::as_of`] gave, the windows of `partition`
/// hold back batch `seq`: a partition without a written batch yet holds
/// every batch.
pub fn window_holds<S>(
    as_of: &BTreeMap<String, (Option<u64>, S)>,
    partition: &str,
    seq: u64,
) -> bool {
    as_of
        .get(partition)
        .is_none_or(|(oldest, _)| oldest.is_some_and(|o| seq >= o))
}

fn is_due(seq: u64, oldest_held: Option<u64>) -> bool {
    oldest_held.is_none_or(|held| seq < held)
}

/// The oldest batch of which a buffer holds records: the least of each
/// buffer's oldest (a buffer holds its batches in the order they came).
pub fn oldest_held(oldest_per_buffer: impl IntoIterator<Item = u64>) -> Option<u64> {
    oldest_per_buffer.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(seqs: &[u64]) -> Acks<u64> {
        let mut a = Acks::default();
        for &s in seqs {
            a.push(s, s);
        }
        a
    }

    #[test]
    fn with_no_buffer_every_batch_is_acknowledged_in_the_order_it_was_read() {
        let mut a = acks(&[0, 1, 2]);
        assert_eq!(a.take_due(None), [0, 1, 2]);
        assert!(a.is_empty());
        assert_eq!(a.take_due(None), Vec::<u64>::new(), "none twice");
    }

    #[test]
    fn a_held_batch_holds_back_every_later_batch_even_those_no_buffer_holds() {
        // Batch 1 is held by a buffering sink (S3); 2 and 3 went to sinks
        // that write at once, but a checkpoint after them would pass 1.
        let mut a = acks(&[0, 1, 2, 3]);
        let held = oldest_held([1]);
        assert_eq!(a.take_due(held), [0]);
        assert_eq!(a.len(), 3);
        assert_eq!(a.take_due(held), Vec::<u64>::new());
        // The buffer is written: 1, 2, 3 follow, in order.
        assert_eq!(a.take_due(oldest_held([])), [1, 2, 3]);
    }

    #[test]
    fn the_oldest_batch_any_buffer_holds_decides() {
        // Two buffers: one holds batches 3 and 4, the other 2.
        let mut a = acks(&[0, 1, 2, 3, 4, 5]);
        let held = oldest_held([3, 2]);
        assert_eq!(held, Some(2));
        assert_eq!(a.take_due(held), [0, 1]);
        // The second buffer is written; the first still holds 3.
        assert_eq!(a.take_due(oldest_held([3])), [2]);
        assert_eq!(a.take_due(oldest_held([])), [3, 4, 5]);
    }

    #[test]
    fn a_batch_committed_while_others_are_held_waits_its_turn() {
        let mut a = acks(&[0]);
        assert_eq!(a.take_due(oldest_held([0])), Vec::<u64>::new());
        a.push(1, 1);
        a.push(2, 2);
        assert_eq!(a.take_due(oldest_held([0])), Vec::<u64>::new());
        assert_eq!(a.take_due(oldest_held([2])), [0, 1]);
        assert_eq!(a.take_due(None), [2]);
    }

    #[test]
    fn any_due_looks_only_at_the_batches_due() {
        let a = acks(&[0, 1, 2]);
        let is_two = |x: &u64| *x == 2;
        assert!(!a.any_due(oldest_held([2]), is_two));
        assert!(a.any_due(oldest_held([3]), is_two));
        assert!(a.any_due(None, is_two));
    }

    #[test]
    fn windows_hold_back_their_partition_only_and_keep_its_order() {
        // Batches 0..6: even ones of shard a, odd ones of shard b.
        let mut a: Acks<(u64, &str)> = Acks::default();
        let mut holds: WindowHolds<()> = WindowHolds::default();
        for seq in 0..6 {
            let p = if seq % 2 == 0 { "a" } else { "b" };
            a.push(seq, (seq, p));
            // A window of shard a opens at batch 2.
            let oldest = (p == "a" && seq >= 2).then_some(2);
            holds.set(p, seq, oldest, ());
        }
        let now = holds.as_of(6);
        let held = |seq: u64, ack: &(u64, &str)| window_holds(&now, ack.1, seq);
        assert!(a.any_due_unless(None, held, |_| true));
        assert!(!a.any_due_unless(None, held, |ack| ack.0 == 4));
        assert_eq!(
            a.take_due_unless(None, held),
            [(0, "a"), (1, "b"), (3, "b"), (5, "b")]
        );
        // A buffer holding batch 1 still holds every later batch.
        let mut a2: Acks<(u64, &str)> = Acks::default();
        for seq in 0..4 {
            a2.push(seq, (seq, "b"));
        }
        assert_eq!(a2.take_due_unless(Some(1), |_, _| false), [(0, "b")]);
        // The window closes at batch 6: once batch 6 is written, shard a
        // goes on, in order; before, it is still held.
        holds.set("a", 6, None, ());
        let before = holds.as_of(6);
        assert!(window_holds(&before, "a", 2));
        let now = holds.as_of(7);
        let held = |seq: u64, ack: &(u64, &str)| window_holds(&now, ack.1, seq);
        assert_eq!(a.take_due_unless(None, held), [(2, "a"), (4, "a")]);
        assert!(a.is_empty());
        // A shard with no batch written yet holds everything.
        assert!(window_holds(&holds.as_of(7), "c", 0));
    }

    #[test]
    fn the_state_saved_is_that_of_the_latest_written_batch() {
        let mut h: WindowHolds<&str> = WindowHolds::default();
        assert!(h.as_of(10).is_empty());
        h.set("a", 1, Some(1), "after 1");
        h.set("a", 3, Some(1), "after 3");
        h.set("a", 5, None, "after 5");
        assert!(h.as_of(1).is_empty(), "batch 1 is not written yet");
        assert_eq!(h.as_of(4)["a"], (Some(1), "after 3"));
        assert_eq!(
            h.as_of(4)["a"],
            (Some(1), "after 3"),
            "kept until a newer one"
        );
        assert_eq!(h.as_of(6)["a"], (None, "after 5"));
        h.set("b", 7, Some(7), "b");
        h.forget("b");
        assert!(!h.as_of(8).contains_key("b"));
    }

    #[test]
    fn taking_a_partitions_batches_out_leaves_the_others_in_order() {
        let mut a: Acks<&str> = Acks::default();
        for (seq, p) in ["a", "b", "a", "c"].into_iter().enumerate() {
            a.push(seq as u64, p);
        }
        assert_eq!(a.take_where(|p| *p == "a"), [(0, "a"), (2, "a")]);
        assert_eq!(a.take_due(None), ["b", "c"]);
    }
}
