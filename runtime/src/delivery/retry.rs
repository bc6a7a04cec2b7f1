//! The retry policy every sink, the DLQ and every call of a source share
//! (one schedule: [`Policy::call`] for one call, [`Rounds`] for a batch whose
//! items succeed or fail one by one): exponential backoff with
//! full jitter, a maximum number of attempts and a maximum elapsed time.
//!
//! Full jitter (each delay drawn uniformly from zero to the exponential
//! bound) spreads retries of many writers best, as AWS's architecture
//! guidance shows. Off-the-shelf backoff crates add jitter on top of the
//! bound instead, hence this small schedule.

use std::future::Future;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::error::{Error, ErrorClass, classify};
use crate::duration::Dur;

/// How failed writes are retried.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Retry")]
pub struct Policy {
    /// Most attempts per record, the first included. `1` turns retrying off.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Bound of the delay before the first retry.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Dur,
    /// Largest bound of a delay.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
    /// An attempt that fails this long or longer after the first attempt is not retried.
    #[serde(default = "default_max_elapsed")]
    pub max_elapsed: Dur,
    /// Time limit of one request to AWS; a request that takes longer fails with a timeout,
    /// which is retried. It does not apply to `file` and `stdout`.
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout: Dur,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff() -> Dur {
    Dur(Duration::from_millis(100))
}
fn default_max_backoff() -> Dur {
    Dur(Duration::from_secs(20))
}
fn default_max_elapsed() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_attempt_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_elapsed: default_max_elapsed(),
            attempt_timeout: default_attempt_timeout(),
        }
    }
}

impl Policy {
    /// The delay before attempt `next` (2 for the first retry): uniform in
    /// `[0, min(max_backoff, initial_backoff × 2^(next−2))]`. Throttling doubles
    /// the bound once more.
    pub fn backoff(&self, next: u32, throttled: bool) -> Duration {
        let exp = next.saturating_sub(2) + u32::from(throttled);
        let bound = self
            .initial_backoff
            .0
            .saturating_mul(2u32.saturating_pow(exp.min(30)))
            .min(self.max_backoff.0);
        bound.mul_f64(fastrand::f64())
    }

    /// Whether another attempt is allowed after `attempts` attempts that took `elapsed`.
    pub fn may_retry(&self, attempts: u32, elapsed: Duration) -> bool {
        attempts < self.max_attempts && elapsed < self.max_elapsed.0
    }

    /// Makes one call (a source's or a lease table's: anything but a
    /// record's delivery) until it succeeds, fails in a way trying again
    /// cannot help, or the policy runs out; the last error then.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && self.may_retry(attempts, start.elapsed()) => {
                    let throttled = e.class == ErrorClass::Throttled;
                    tokio::time::sleep(self.backoff(attempts + 1, throttled)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The rounds of a batch whose items succeed or fail one by one (a
    /// sink's records, the entries of a batch call): see [`Rounds`].
    pub fn rounds(&self, items: usize) -> Rounds<'_> {
        Rounds {
            policy: self,
            start: Instant::now(),
            attempt: 1,
            retries: 0,
            last: vec![(Ok(()), 1); items],
            pending: (0..items).collect(),
        }
    }

    /// [`Policy::call`] of an AWS SDK request (`send` sends a clone of the
    /// built request), its errors classified as `what` failed.
    pub async fn send<T, E, F, Fut>(&self, what: &str, mut send: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.call(|| {
            let sent = send();
            async move { sent.await.map_err(|e| classify(what, &e)) }
        })
        .await
    }
}

/// An item's last result, and the attempt that gave it.
pub type Last = (Result<(), Error>, u32);

/// The one retry schedule of a batch whose items succeed or fail one by
/// one: every item is sent, then, after a backoff, only those whose error
/// may pass, until each succeeded, failed for good (poison or fatal: never
/// retried), or the policy ran out. The caller sends; this keeps the count:
///
/// ```text
/// let mut r = policy.rounds(n);
/// loop {
///     let results = send(r.pending()).await;        // one result per pending item
///     match r.record(results) { Some(wait) => sleep(wait).await, None => break }
/// }
/// let (last, retries) = r.finish();
/// ```
#[derive(Debug)]
pub struct Rounds<'a> {
    policy: &'a Policy,
    start: Instant,
    attempt: u32,
    retries: u64,
    /// Per item: its last result and the attempt that gave it.
    last: Vec<Last>,
    pending: Vec<usize>,
}

impl Rounds<'_> {
    /// The items (indexes) to send this round.
    pub fn pending(&self) -> &[usize] {
        &self.pending
    }

    /// Records this round's results, one per pending item in order (a
    /// missing one counts as a passing failure); how long to wait before the
    /// next round, or `None` when there is none.
    pub fn record(&mut self, results: Vec<Result<(), Error>>) -> Option<Duration> {
        let mut again = Vec::new();
        let mut throttled = false;
        let mut results = results.into_iter();
        for &i in &self.pending {
            let r = results.next().unwrap_or_else(|| {
                Err(Error::new(
                    ErrorClass::Retryable,
                    "the call gave no result for this item",
                ))
            });
            if let Err(e) = &r
                && e.is_retryable()
            {
                throttled |= e.class == ErrorClass::Throttled;
                again.push(i);
            }
            self.last[i] = (r, self.attempt);
        }
        if again.is_empty() || !self.policy.may_retry(self.attempt, self.start.elapsed()) {
            self.pending.clear();
            return None;
        }
        self.attempt += 1;
        self.retries += 1;
        self.pending = again;
        Some(self.policy.backoff(self.attempt, throttled))
    }

    /// Each item's last result and the attempt that gave it, and how many
    /// rounds were sent again.
    pub fn finish(self) -> (Vec<Last>, u64) {
        (self.last, self.retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = Policy::default();
        for _ in 0..1000 {
            assert!(p.backoff(2, false) <= Duration::from_millis(100));
            assert!(p.backoff(4, false) <= Duration::from_millis(400));
            assert!(p.backoff(40, false) <= Duration::from_secs(20));
            assert!(p.backoff(2, true) <= Duration::from_millis(200));
        }
        let big: Vec<Duration> = (0..200).map(|_| p.backoff(8, false)).collect();
        assert!(
            big.iter().any(|d| *d > Duration::from_millis(400)),
            "the bound grows"
        );
        assert!(
            big.iter().any(|d| *d < Duration::from_millis(3200)),
            "full jitter reaches low values"
        );
    }

    /// A call that fails with each of `errors` in turn, then succeeds; how
    /// many attempts it took.
    fn attempts_of(policy: &Policy, errors: Vec<Error>) -> (Result<u32, Error>, u32) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let errors = std::cell::RefCell::new(errors.into_iter());
        let made = std::cell::Cell::new(0);
        let out = rt.block_on(policy.call(|| {
            made.set(made.get() + 1);
            let next = errors.borrow_mut().next();
            let n = made.get();
            async move { next.map_or(Ok(n), Err) }
        }));
        (out, made.get())
    }

    #[test]
    fn a_call_is_retried_while_its_error_may_pass_and_the_policy_allows() {
        let p = Policy {
            max_attempts: 4,
            initial_backoff: Dur(Duration::from_millis(1)),
            ..Policy::default()
        };
        let passing = |class| Error::new(class, "passing");
        let three = vec![
            passing(ErrorClass::Retryable),
            passing(ErrorClass::Throttled),
            passing(ErrorClass::Retryable),
        ];
        assert_eq!(attempts_of(&p, three), (Ok(4), 4));
        let four = vec![passing(ErrorClass::Retryable); 4];
        assert_eq!(
            attempts_of(&p, four),
            (Err(passing(ErrorClass::Retryable)), 4)
        );
        let poison = Error::new(ErrorClass::Poison, "denied");
        assert_eq!(
            attempts_of(&p, vec![passing(ErrorClass::Retryable), poison.clone()]),
            (Err(poison), 2)
        );
        let fatal = Error::new(ErrorClass::Fatal, "disk");
        assert_eq!(attempts_of(&p, vec![fatal.clone()]), (Err(fatal), 1));
    }

    #[test]
    fn rounds_send_again_only_the_items_whose_error_may_pass() {
        let p = Policy {
            max_attempts: 3,
            ..Policy::default()
        };
        let e = |class| Error::new(class, "x");
        let mut r = p.rounds(4);
        assert_eq!(r.pending(), [0, 1, 2, 3]);
        let wait = r.record(vec![
            Ok(()),
            Err(e(ErrorClass::Retryable)),
            Err(e(ErrorClass::Poison)),
            Err(e(ErrorClass::Throttled)),
        ]);
        assert!(wait.is_some_and(|w| w <= p.max_backoff.0));
        assert_eq!(r.pending(), [1, 3]);
        // A result missing from the answer is sent again.
        assert!(r.record(vec![Ok(())]).is_some());
        assert_eq!(r.pending(), [3]);
        // The third attempt is the last the policy allows.
        assert_eq!(r.record(vec![Err(e(ErrorClass::Retryable))]), None);
        assert!(r.pending().is_empty());
        let (last, retries) = r.finish();
        assert_eq!(
            last,
            [
                (Ok(()), 1),
                (Ok(()), 2),
                (Err(e(ErrorClass::Poison)), 1),
                (Err(e(ErrorClass::Retryable)), 3),
            ]
        );
        assert_eq!(retries, 2);
        let mut fatal = p.rounds(1);
        assert_eq!(fatal.record(vec![Err(e(ErrorClass::Fatal))]), None);
    }

    #[test]
    fn attempts_and_elapsed_time_are_limits() {
        let p = Policy {
            max_attempts: 3,
            ..Policy::default()
        };
        assert!(p.may_retry(2, Duration::ZERO));
        assert!(!p.may_retry(3, Duration::ZERO));
        assert!(!p.may_retry(1, Duration::from_secs(301)));
    }
}
