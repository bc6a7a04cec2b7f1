//! The order in which committed batches are acknowledged to their source.
//!
//! A batch is acknowledged (its checkpoint saved, its SQS messages deleted)
//! only once no sink buffer holds any of its records, and never before a
//! batch read earlier: a checkpoint must not pass a record that is not yet
//! written. This is the pure part of [`Outputs`](super::commit::Outputs):
//! which acknowledgements are due, given the oldest batch a buffer holds.

use std::collections::VecDeque;

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
        self.queue
            .iter()
            .take_while(|(seq, _)| is_due(*seq, oldest_held))
            .any(|(_, a)| f(a))
    }

    /// Takes the acknowledgements now due, oldest first: those of the
    /// batches read before `oldest_held`, the oldest batch a sink buffer
    /// still holds records of (`None`: no buffer holds any). A batch no
    /// buffer holds still waits for every older batch that one does.
    pub fn take_due(&mut self, oldest_held: Option<u64>) -> Vec<A> {
        let n = self
            .queue
            .iter()
            .take_while(|(seq, _)| is_due(*seq, oldest_held))
            .count();
        self.queue.drain(..n).map(|(_, a)| a).collect()
    }
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
}
