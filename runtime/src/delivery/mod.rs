//! Delivery: retries, the dead-letter queue and its envelope.
//!
//! Only this module decides what happens to a failed write: [`deliver`]
//! retries the records a sink did not accept with the pipeline's [`Policy`]
//! (only the failed ones), and sorts the rest into poison (dead-lettered with
//! stage `sink` and the reason) and exhausted (the batch is not acknowledged,
//! so the source delivers it again). The DLQ is written the same way; if it
//! does not accept a record, the batch is not acknowledged either.

pub mod envelope;
pub mod error;
pub mod retry;

pub use envelope::Envelope;
pub use error::{Error, ErrorClass};
pub use retry::Policy;

use crate::record::OutRecord;

/// What [`deliver`] writes to: a running sink (`sinks::Writer`), or in
/// tests a sink that answers as the test says.
pub trait Target {
    /// Writes records; one result per record, in order (`Ok`: durably accepted).
    fn send(
        &mut self,
        records: &[OutRecord<'_>],
    ) -> impl std::future::Future<Output = Vec<Result<(), Error>>> + Send;
}

/// What became of one record handed to [`deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink accepted it.
    Delivered,
    /// Retrying cannot help: dead-letter it (after this many attempts).
    Poison(Error, u32),
    /// Still failing when the policy ran out, or failed fatally: do not acknowledge it.
    Exhausted(Error, u32),
}

/// Writes records to a sink, retrying only the ones that failed with a
/// retryable error, until the policy runs out. One outcome per record.
pub async fn deliver(
    writer: &mut impl Target,
    records: &[OutRecord<'_>],
    policy: &Policy,
) -> Vec<Outcome> {
    deliver_counted(writer, records, policy).await.0
}

/// [`deliver`], also returning how many times it wrote again after a failure.
pub async fn deliver_counted(
    writer: &mut impl Target,
    records: &[OutRecord<'_>],
    policy: &Policy,
) -> (Vec<Outcome>, u64) {
    let mut rounds = policy.rounds(records.len());
    loop {
        let batch: Vec<OutRecord<'_>> = rounds.pending().iter().map(|&i| records[i]).collect();
        let results = send_guarded(writer, &batch).await;
        match rounds.record(results) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => break,
        }
    }
    let (last, retries) = rounds.finish();
    let outcomes = last
        .into_iter()
        .map(|(r, attempt)| match r {
            Ok(()) => Outcome::Delivered,
            Err(e) if e.class == ErrorClass::Fatal || e.is_retryable() => {
                Outcome::Exhausted(e, attempt)
            }
            Err(e) => Outcome::Poison(e, attempt),
        })
        .collect();
    (outcomes, retries)
}

/// [`Target::send`], with a panic in the writer (a bug in an encoder) kept
/// to the record that caused it: the records are then written one at a
/// time, and the one whose write panics is poison (dead-lettered with the
/// panic's message). Records of the batch written before the panic may be
/// written twice.
async fn send_guarded(writer: &mut impl Target, batch: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
    let poison = |m: String| {
        Error::new(
            ErrorClass::Poison,
            format!("internal error while writing the record: {m}"),
        )
    };
    match crate::panics::catch_async(writer.send(batch)).await {
        Ok(results) => results,
        Err(m) if batch.len() == 1 => vec![Err(poison(m))],
        Err(_) => {
            let mut results = Vec::with_capacity(batch.len());
            for r in batch {
                results.push(
                    match crate::panics::catch_async(writer.send(std::slice::from_ref(r))).await {
                        Ok(mut one) => one.pop().unwrap_or(Ok(())),
                        Err(m) => Err(poison(m)),
                    },
                );
            }
            results
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::duration::Dur;
    use crate::record::Position;

    /// A sink that answers each record by its JSON (`ok`, `slow`, `bad`,
    /// `disk`, `boom`) and notes which records each call got. `slow` fails
    /// retryably `slow_for` times, then is accepted.
    struct Scripted {
        calls: Vec<Vec<String>>,
        slow_for: usize,
    }

    impl Target for Scripted {
        async fn send(&mut self, records: &[OutRecord<'_>]) -> Vec<Result<(), Error>> {
            let names: Vec<String> = records
                .iter()
                .map(|r| String::from_utf8_lossy(r.json).into_owned())
                .collect();
            let slow_calls = self
                .calls
                .iter()
                .filter(|c| c.iter().any(|n| n == "slow"))
                .count();
            self.calls.push(names.clone());
            names
                .iter()
                .map(|n| match n.as_str() {
                    "slow" if slow_calls < self.slow_for => {
                        Err(Error::new(ErrorClass::Retryable, "timeout"))
                    }
                    "bad" => Err(Error::new(ErrorClass::Poison, "too large")),
                    "disk" => Err(Error::new(ErrorClass::Fatal, "disk failed")),
                    "boom" => panic!("encoder bug"),
                    _ => Ok(()),
                })
                .collect()
        }
    }

    fn run(names: &[&str], slow_for: usize, max_attempts: u32) -> (Vec<Outcome>, u64, Scripted) {
        let position = Position::default();
        let records: Vec<OutRecord<'_>> = names
            .iter()
            .map(|n| OutRecord {
                json: n.as_bytes(),
                keys: &[],
                position: &position,
                batch_time: "",
            })
            .collect();
        let policy = Policy {
            max_attempts,
            initial_backoff: Dur(Duration::from_millis(1)),
            max_backoff: Dur(Duration::from_millis(1)),
            ..Policy::default()
        };
        let mut sink = Scripted {
            calls: Vec::new(),
            slow_for,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (outcomes, retries) = rt.block_on(deliver_counted(&mut sink, &records, &policy));
        (outcomes, retries, sink)
    }

    fn poison(m: &str) -> Error {
        Error::new(ErrorClass::Poison, m)
    }

    #[test]
    fn only_the_records_that_failed_retryably_are_written_again() {
        let (outcomes, retries, sink) = run(&["ok", "slow", "bad"], 2, 8);
        assert_eq!(
            outcomes,
            vec![
                Outcome::Delivered,
                Outcome::Delivered,
                Outcome::Poison(poison("too large"), 1)
            ]
        );
        assert_eq!(retries, 2);
        assert_eq!(
            sink.calls,
            vec![vec!["ok", "slow", "bad"], vec!["slow"], vec!["slow"]]
        );
    }

    #[test]
    fn a_record_still_failing_when_the_policy_runs_out_is_exhausted() {
        let (outcomes, retries, sink) = run(&["slow", "ok"], 10, 3);
        assert_eq!(
            outcomes,
            vec![
                Outcome::Exhausted(Error::new(ErrorClass::Retryable, "timeout"), 3),
                Outcome::Delivered
            ]
        );
        assert_eq!((retries, sink.calls.len()), (2, 3));
    }

    #[test]
    fn poison_and_fatal_errors_are_never_retried() {
        let (outcomes, retries, sink) = run(&["bad", "disk"], 0, 8);
        assert_eq!(
            outcomes,
            vec![
                Outcome::Poison(poison("too large"), 1),
                Outcome::Exhausted(Error::new(ErrorClass::Fatal, "disk failed"), 1)
            ]
        );
        assert_eq!((retries, sink.calls.len()), (0, 1));
    }

    #[test]
    fn a_panic_in_the_sink_is_kept_to_its_record() {
        let (outcomes, _, sink) = run(&["ok", "boom", "ok"], 0, 8);
        assert_eq!(outcomes[0], Outcome::Delivered);
        assert_eq!(outcomes[2], Outcome::Delivered);
        match &outcomes[1] {
            Outcome::Poison(e, 1) => assert!(
                e.message
                    .starts_with("internal error while writing the record: encoder bug"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sink.calls,
            vec![
                vec!["ok", "boom", "ok"],
                vec!["ok"],
                vec!["boom"],
                vec!["ok"]
            ]
        );
    }
}
