//! The lease scheduler: revokes leases when they are due, retries failures with exponential
//! backoff and jitter under a time budget, and gives up loudly (IRREVOCABLE) only when the budget
//! is spent.
//!
//! It never loads all leases: each round *claims* a bounded batch of due leases through the
//! [`LeaseStore`] (claims end by themselves, so a replica that dies mid-batch has its claims
//! picked up by the others), revokes them through the [`Revoker`], and reports each outcome back
//! with the claim, which the store then releases. Between
//! rounds it sleeps until the next due lease or until [`Scheduler::wake`] is called (a lease was
//! issued that is due earlier). It is generic over both traits and never imports the broker.

mod retry;
mod scheduler;

pub use retry::{Outcome, RetryPolicy};
pub use scheduler::{Clock, Scheduler, SchedulerConfig};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A due lease this replica has claimed.
#[derive(Debug, Clone)]
pub struct Claimed<L> {
    pub id: Uuid,
    /// Failed revocation attempts so far.
    pub attempts: u32,
    /// When the first of those failures happened: the retry budget counts from here.
    pub failing_since: Option<DateTime<Utc>>,
    /// What the revoker needs (the broker's lease row).
    pub lease: L,
}

/// A round's claimed leases, and what keeps them claimed until their outcomes are recorded.
pub struct ClaimedBatch<C, L> {
    /// The store's hold on the leases (for instance an open transaction holding their row
    /// locks); handed back to [`LeaseStore::complete`].
    pub claim: C,
    pub leases: Vec<Claimed<L>>,
}

/// Where leases live. Implemented by the broker for SQLite and PostgreSQL.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    type Lease: Send + Sync;
    /// A hold on a claimed batch; dropping it without completing releases the claims no later
    /// than `claim_for` after they were taken.
    type Claim: Send;
    type Error: std::fmt::Display + Send;

    /// Claims up to `limit` live leases due at `now` that nobody holds a live claim on, for at
    /// most `claim_for`, in due order.
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_for: std::time::Duration,
        limit: u32,
    ) -> Result<ClaimedBatch<Self::Claim, Self::Lease>, Self::Error>;

    /// When the next live lease is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, Self::Error>;

    /// Records the outcomes of a claimed batch and releases the claims.
    async fn complete(
        &self,
        claim: Self::Claim,
        outcomes: &[(Claimed<Self::Lease>, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<(), Self::Error>;
}

/// Drops the users of leases on their targets.
#[async_trait]
pub trait Revoker<L>: Send + Sync {
    /// One result per lease, in order; `Err` carries a message for the lease's `last_error`
    /// (never a secret). A user that is already gone is `Ok`.
    async fn revoke(&self, leases: &[&L]) -> Vec<Result<(), String>>;
}
