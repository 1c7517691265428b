//! What happens after a revocation attempt: done, retry later (exponential backoff with full
//! jitter, capped), or give up because the time budget is spent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;

/// Retry timing. The budget is a duration, not a count: a target that is down for twenty minutes
/// is retried for as long as the budget allows, however many attempts that takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure (doubled after each further one).
    pub base: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// How long after the first failure the scheduler keeps trying.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            budget: Duration::from_secs(24 * 3600),
        }
    }
}

/// The result of one attempt on one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Revoked,
    /// Failed; try again at `at`. `failing_since` is kept for the budget.
    Retry {
        at: DateTime<Utc>,
        failing_since: DateTime<Utc>,
        error: String,
    },
    /// Failed for longer than the budget: an operator must act.
    Irrevocable {
        error: String,
    },
}

impl RetryPolicy {
    /// The outcome of a failed attempt, the lease's `attempts`-th failure (counting this one),
    /// given when its failures began.
    pub fn after_failure(
        &self,
        attempts: u32,
        failing_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        error: String,
    ) -> Outcome {
        let failing_since = failing_since.unwrap_or(now);
        let spent = (now - failing_since).to_std().unwrap_or_default();
        if spent >= self.budget {
            return Outcome::Irrevocable { error };
        }
        let ceiling = self.backoff_ceiling(attempts);
        // Equal jitter: anywhere in [ceiling / 2, ceiling], so replicas and leases spread out.
        let jittered = rand::rng().random_range(ceiling / 2..=ceiling);
        // Never wait past the end of the budget: the last attempt happens at the deadline.
        let delay = jittered.min(self.budget - spent);
        Outcome::Retry {
            at: now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
            failing_since,
            error,
        }
    }

    fn backoff_ceiling(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        self.base
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            budget: Duration::from_secs(3600),
        }
    }

    #[test]
    fn delays_grow_exponentially_with_jitter_and_a_cap() {
        let now = Utc::now();
        for (attempts, ceiling) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            for _ in 0..50 {
                let Outcome::Retry { at, .. } =
                    policy().after_failure(attempts, Some(now), now, "x".into())
                else {
                    panic!("within the budget");
                };
                let delay = (at - now).num_milliseconds();
                assert!(
                    delay >= ceiling * 500 && delay <= ceiling * 1000,
                    "attempt {attempts}: {delay} ms"
                );
            }
        }
    }

    #[test]
    fn a_long_outage_is_retried_until_the_budget_not_a_count() {
        let start = Utc::now();
        let twenty_minutes = start + chrono::Duration::minutes(20);
        // The 200th failure, twenty minutes in: still retried.
        assert!(matches!(
            policy().after_failure(200, Some(start), twenty_minutes, "down".into()),
            Outcome::Retry { .. }
        ));
        let past = start + chrono::Duration::minutes(61);
        assert_eq!(
            policy().after_failure(3, Some(start), past, "down".into()),
            Outcome::Irrevocable {
                error: "down".into()
            }
        );
    }

    #[test]
    fn the_last_retry_lands_on_the_deadline_not_after() {
        let start = Utc::now();
        let almost = start + chrono::Duration::seconds(3590);
        let Outcome::Retry {
            at, failing_since, ..
        } = policy().after_failure(30, Some(start), almost, "x".into())
        else {
            panic!("within the budget");
        };
        assert_eq!(failing_since, start);
        assert!(at <= start + chrono::Duration::seconds(3600));
    }
}
