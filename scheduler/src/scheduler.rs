//! The scheduling loop: claim what is due, revoke it, record the outcomes, sleep until the next
//! due lease or a wake-up.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::{Claimed, ClaimedBatch, LeaseStore, Outcome, RetryPolicy, Revoker};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Names this replica's claims (e.g. host name and process id).
    pub owner: String,
    /// Leases claimed per round.
    pub batch: u32,
    /// Rounds in flight at once: while one batch is being revoked, the next is claimed and the
    /// previous recorded, so the targets are never idle waiting for the store.
    pub workers: usize,
    /// How long a claim holds; a replica that dies mid-batch loses its claims after this.
    pub claim_for: Duration,
    /// The longest sleep between rounds, whatever the next due time says (a lease issued by
    /// another replica does not wake this one).
    pub max_sleep: Duration,
    pub retry: RetryPolicy,
    pub clock: Clock,
}

impl SchedulerConfig {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            batch: 500,
            workers: 4,
            claim_for: Duration::from_secs(120),
            max_sleep: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            clock: Clock::System,
        }
    }
}

/// Where "now" comes from: the wall clock, or tokio's (pausable) clock in tests.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    /// `start` plus the tokio time elapsed since `anchor`.
    Tokio {
        start: DateTime<Utc>,
        anchor: tokio::time::Instant,
    },
}

impl Clock {
    pub fn tokio_from(start: DateTime<Utc>) -> Self {
        Self::Tokio {
            start,
            anchor: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Tokio { start, anchor } => {
                *start + chrono::Duration::from_std(anchor.elapsed()).unwrap_or_default()
            }
        }
    }
}

const MIN_SLEEP: Duration = Duration::from_millis(100);
/// How often a worker working through a backlog publishes the scheduler's lag.
const LAG_EVERY: Duration = Duration::from_secs(1);

pub struct Scheduler<S, R> {
    store: Arc<S>,
    revoker: Arc<R>,
    config: SchedulerConfig,
    wake: Arc<Notify>,
}

impl<S, R> Scheduler<S, R>
where
    S: LeaseStore,
    R: Revoker<S::Lease>,
{
    /// `wake` wakes the loop early: notify it when a lease is created that may be due before the
    /// next planned round.
    pub fn new(store: Arc<S>, revoker: Arc<R>, config: SchedulerConfig, wake: Arc<Notify>) -> Self {
        Self {
            store,
            revoker,
            config,
            wake,
        }
    }

    /// Runs rounds until `shutdown` resolves. A store error is logged and retried after a pause.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let workers =
            futures_util::future::join_all((0..self.config.workers.max(1)).map(|_| self.work()));
        tokio::select! {
            _ = workers => {}
            () = shutdown => {}
        }
    }

    async fn work(&self) {
        let mut lag_published = tokio::time::Instant::now();
        loop {
            match self.round().await {
                // A full batch: more may be due right now. The lag, which on-call watches, is
                // published from a backlog too, once a second.
                Ok(claimed) if claimed >= self.config.batch as usize => {
                    if lag_published.elapsed() >= LAG_EVERY {
                        self.next_due_publishing_lag().await;
                        lag_published = tokio::time::Instant::now();
                    }
                }
                Ok(_) => self.sleep_until_due().await,
                Err(error) => {
                    tracing::warn!(%error, "lease scheduler round failed; retrying");
                    metrics::counter!("leasehold_scheduler_errors_total").increment(1);
                    self.pause(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One round: claim, revoke, record. Returns how many leases were claimed.
    ///
    /// # Errors
    /// When the store fails; claims already taken expire by themselves.
    pub async fn round(&self) -> Result<usize, S::Error> {
        let round_started = tokio::time::Instant::now();
        let now = self.config.clock.now();
        let ClaimedBatch {
            claim,
            leases: claimed,
        } = self
            .store
            .claim_due(
                &self.config.owner,
                now,
                self.config.claim_for,
                self.config.batch,
            )
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let claim_ms = round_started.elapsed().as_millis() as u64;
        metrics::histogram!("leasehold_scheduler_claim_batch_size").record(claimed.len() as f64);
        let leases: Vec<&S::Lease> = claimed.iter().map(|c| &c.lease).collect();
        let started = tokio::time::Instant::now();
        let results = self.revoker.revoke(&leases).await;
        metrics::histogram!("leasehold_scheduler_revocation_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let now = self.config.clock.now();
        let count = claimed.len();
        let outcomes: Vec<(Claimed<S::Lease>, Outcome)> = claimed
            .into_iter()
            .zip(
                results
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            )
            .map(|(lease, result)| {
                let outcome = match result {
                    Some(Ok(())) => Outcome::Revoked,
                    Some(Err(error)) => self.config.retry.after_failure(
                        lease.attempts + 1,
                        lease.failing_since,
                        now,
                        error,
                    ),
                    None => self.config.retry.after_failure(
                        lease.attempts + 1,
                        lease.failing_since,
                        now,
                        "the revoker returned no result for this lease".into(),
                    ),
                };
                (lease, outcome)
            })
            .collect();
        let revoked_in = started.elapsed();
        self.store.complete(claim, &outcomes, now).await?;
        // Counted once recorded: a round whose record fails is revoked and counted again later.
        for (_, outcome) in &outcomes {
            let result = match outcome {
                Outcome::Revoked => "revoked",
                Outcome::Retry { .. } => "retry",
                Outcome::Irrevocable { .. } => "irrevocable",
            };
            metrics::counter!("leasehold_scheduler_revocations_total", "result" => result)
                .increment(1);
        }
        tracing::debug!(
            claimed = count,
            claim_ms,
            revoke_ms = revoked_in.as_millis() as u64,
            round_ms = round_started.elapsed().as_millis() as u64,
            "scheduler round"
        );
        Ok(count)
    }

    /// How long until the next lease is due (`None`: none is, or the store did not answer), and
    /// publishes the scheduler's lag: how long the oldest due lease has been waiting (0 when
    /// nothing is overdue).
    async fn next_due_publishing_lag(&self) -> Option<Duration> {
        let next = match self.store.next_due().await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "could not read the next due lease");
                return None;
            }
        };
        let now = self.config.clock.now();
        let lag = next.map_or(0.0, |due| {
            (now - due).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("leasehold_scheduler_lag_seconds").set(lag);
        next.map(|due| (due - now).to_std().unwrap_or_default())
    }

    async fn sleep_until_due(&self) {
        let wait = self
            .next_due_publishing_lag()
            .await
            .unwrap_or(self.config.max_sleep);
        // A floor, so that due leases held under another replica's claim are not polled in a
        // tight loop.
        self.pause(wait.clamp(MIN_SLEEP, self.config.max_sleep))
            .await;
    }

    async fn pause(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! The loop's timing with tokio's paused clock, over an in-memory store.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use uuid::Uuid;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum State {
        Live,
        Revoked,
        Irrevocable,
    }

    struct Row {
        id: Uuid,
        due: DateTime<Utc>,
        state: State,
        attempts: u32,
        failing_since: Option<DateTime<Utc>>,
        claimed_until: Option<DateTime<Utc>>,
    }

    #[derive(Default)]
    struct MemoryStore {
        rows: Mutex<Vec<Row>>,
    }

    impl MemoryStore {
        fn add(&self, due: DateTime<Utc>) -> Uuid {
            let id = Uuid::new_v4();
            self.rows.lock().expect("lock").push(Row {
                id,
                due,
                state: State::Live,
                attempts: 0,
                failing_since: None,
                claimed_until: None,
            });
            id
        }

        fn state(&self, id: Uuid) -> (State, u32) {
            let rows = self.rows.lock().expect("lock");
            let row = rows.iter().find(|r| r.id == id).expect("row");
            (row.state.clone(), row.attempts)
        }
    }

    #[async_trait]
    impl LeaseStore for MemoryStore {
        type Lease = Uuid;
        type Claim = ();
        type Error = String;

        async fn claim_due(
            &self,
            _owner: &str,
            now: DateTime<Utc>,
            claim_for: Duration,
            limit: u32,
        ) -> Result<ClaimedBatch<(), Uuid>, String> {
            let mut rows = self.rows.lock().expect("lock");
            let until = now + chrono::Duration::from_std(claim_for).expect("duration");
            let leases = rows
                .iter_mut()
                .filter(|r| r.state == State::Live && r.due <= now)
                .filter(|r| r.claimed_until.is_none_or(|c| c < now))
                .take(limit as usize)
                .map(|r| {
                    r.claimed_until = Some(until);
                    Claimed {
                        id: r.id,
                        attempts: r.attempts,
                        failing_since: r.failing_since,
                        lease: r.id,
                    }
                })
                .collect();
            Ok(ClaimedBatch { claim: (), leases })
        }

        async fn next_due(&self) -> Result<Option<DateTime<Utc>>, String> {
            let rows = self.rows.lock().expect("lock");
            Ok(rows
                .iter()
                .filter(|r| r.state == State::Live)
                .map(|r| r.due)
                .min())
        }

        async fn complete(
            &self,
            (): (),
            outcomes: &[(Claimed<Uuid>, Outcome)],
            _now: DateTime<Utc>,
        ) -> Result<(), String> {
            let mut rows = self.rows.lock().expect("lock");
            for (claimed, outcome) in outcomes {
                let row = rows.iter_mut().find(|r| r.id == claimed.id).expect("row");
                row.claimed_until = None;
                match outcome {
                    Outcome::Revoked => row.state = State::Revoked,
                    Outcome::Retry {
                        at, failing_since, ..
                    } => {
                        row.attempts += 1;
                        row.due = *at;
                        row.failing_since = Some(*failing_since);
                    }
                    Outcome::Irrevocable { .. } => {
                        row.attempts += 1;
                        row.state = State::Irrevocable;
                    }
                }
            }
            Ok(())
        }
    }

    /// Fails every revocation while `down` is set.
    #[derive(Default)]
    struct Target {
        down: AtomicBool,
    }

    #[async_trait]
    impl Revoker<Uuid> for Target {
        async fn revoke(&self, leases: &[&Uuid]) -> Vec<Result<(), String>> {
            let down = self.down.load(Ordering::SeqCst);
            leases
                .iter()
                .map(|_| {
                    if down {
                        Err("connection refused".into())
                    } else {
                        Ok(())
                    }
                })
                .collect()
        }
    }

    fn start(
        store: &Arc<MemoryStore>,
        target: &Arc<Target>,
        budget: Duration,
    ) -> (Arc<Notify>, DateTime<Utc>) {
        let epoch = Utc::now();
        let mut config = SchedulerConfig::new("test");
        config.clock = Clock::tokio_from(epoch);
        config.max_sleep = Duration::from_secs(60);
        config.retry = RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            budget,
        };
        let waker = Arc::new(Notify::new());
        let scheduler = Scheduler::new(store.clone(), target.clone(), config, waker.clone());
        tokio::spawn(scheduler.run(std::future::pending()));
        (waker, epoch)
    }

    fn at(epoch: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
        epoch + chrono::Duration::seconds(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn leases_are_revoked_when_due_not_before() {
        let store = Arc::new(MemoryStore::default());
        let target = Arc::new(Target::default());
        let (_, epoch) = start(&store, &target, Duration::from_secs(3600));
        let soon = store.add(at(epoch, 10));
        let later = store.add(at(epoch, 40));
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(store.state(soon).0, State::Live);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(store.state(soon).0, State::Revoked);
        assert_eq!(store.state(later).0, State::Live);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(store.state(later).0, State::Revoked);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_brings_an_earlier_lease_forward() {
        let store = Arc::new(MemoryStore::default());
        let target = Arc::new(Target::default());
        let (waker, epoch) = start(&store, &target, Duration::from_secs(3600));
        store.add(at(epoch, 50));
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The loop now sleeps until second 50; a lease due at second 3 wakes it.
        let early = store.add(at(epoch, 3));
        waker.notify_one();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(store.state(early).0, State::Revoked);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_retried_with_backoff_until_the_target_returns() {
        let store = Arc::new(MemoryStore::default());
        let target = Arc::new(Target::default());
        target.down.store(true, Ordering::SeqCst);
        let (_, epoch) = start(&store, &target, Duration::from_secs(3600));
        let lease = store.add(at(epoch, 1));
        // Twenty minutes down: many attempts, spaced by a backoff capped at 30 s, still live.
        tokio::time::sleep(Duration::from_secs(20 * 60)).await;
        let (state, attempts) = store.state(lease);
        assert_eq!(state, State::Live);
        assert!(
            (40..=1200).contains(&attempts),
            "{attempts} attempts in 20 minutes"
        );
        target.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(store.state(lease).0, State::Revoked);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_budget_a_lease_becomes_irrevocable() {
        let store = Arc::new(MemoryStore::default());
        let target = Arc::new(Target::default());
        target.down.store(true, Ordering::SeqCst);
        let (_, epoch) = start(&store, &target, Duration::from_secs(60));
        let lease = store.add(at(epoch, 1));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(store.state(lease).0, State::Live);
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(store.state(lease).0, State::Irrevocable);
    }
}
