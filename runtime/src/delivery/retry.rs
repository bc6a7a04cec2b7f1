//! The retry policy every sink and the DLQ share: exponential backoff with
//! full jitter, a maximum number of attempts and a maximum elapsed time.
//!
//! Full jitter (each delay drawn uniformly from zero to the exponential
//! bound) spreads retries of many writers best, as AWS's architecture
//! guidance shows. Off-the-shelf backoff crates add jitter on top of the
//! bound instead, hence this small schedule.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::duration::Dur;

/// How failed writes are retried.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Retry")]
pub struct Policy {
    /// Most attempts per record, the first included.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Bound of the first backoff (`100ms`, `1s` …).
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Dur,
    /// Largest backoff bound.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
    /// Stop retrying once this much time has passed since the first attempt.
    #[serde(default = "default_max_elapsed")]
    pub max_elapsed: Dur,
    /// Time limit of one request.
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
