//! The data-key cache in front of the KMS providers, and the one place KMS calls are counted.
//!
//! Unwrapped data keys are kept in memory for a bounded age, number of uses and count, so that a
//! read storm or a restart storm does not become a KMS decrypt storm (and a KMS quota outage).
//! Concurrent misses for one wrapped key share one KMS call. An entry is keyed by the wrapped key
//! *and* the row binding, so a wrapped key copied onto another row still goes to the KMS, which
//! refuses it. Keys leave the cache by age, use count or capacity and are zeroized when the last
//! reader drops them. Failures are shared by the readers that waited on them but never cached.
//!
//! Health checks reuse the outcome of a real KMS call made in the last [`HEALTH_REUSE`] instead
//! of probing the KMS on every `/v1/sys/health`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{Binding, DataKey, Kms, KmsError, WrappedKey};
use crate::settings::DataKeyCacheSettings;

/// A successful KMS call younger than this answers a health check without a new probe.
pub const HEALTH_REUSE: Duration = Duration::from_secs(30);

type CacheKey = [u8; 32];
type SharedUnwrap = Shared<BoxFuture<'static, Result<Arc<DataKey>, KmsError>>>;

struct Entry {
    key: Arc<DataKey>,
    created: Instant,
    uses: u64,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order, oldest first: what leaves first by age or capacity. An item whose entry
    /// was replaced or removed since is skipped.
    order: VecDeque<(CacheKey, Instant)>,
    in_flight: HashMap<CacheKey, SharedUnwrap>,
}

impl CacheState {
    fn hit(&mut self, key: &CacheKey, limits: &DataKeyCacheSettings) -> Option<Arc<DataKey>> {
        let max_age = Duration::from_secs(limits.max_age_seconds);
        let entry = self.entries.get_mut(key)?;
        if entry.created.elapsed() >= max_age || entry.uses >= limits.max_uses {
            self.entries.remove(key);
            return None;
        }
        entry.uses += 1;
        Some(entry.key.clone())
    }

    /// `uses` counts the read that brought the key in, if one did.
    fn insert(
        &mut self,
        key: CacheKey,
        data_key: Arc<DataKey>,
        uses: u64,
        limits: &DataKeyCacheSettings,
    ) {
        let max_age = Duration::from_secs(limits.max_age_seconds);
        while let Some(&(oldest, created)) = self.order.front() {
            let expired = created.elapsed() >= max_age;
            if !expired && self.entries.len() < limits.max_entries {
                break;
            }
            self.order.pop_front();
            if self
                .entries
                .get(&oldest)
                .is_some_and(|entry| entry.created == created)
            {
                self.entries.remove(&oldest);
            }
        }
        let created = Instant::now();
        self.entries.insert(
            key,
            Entry {
                key: data_key,
                created,
                uses,
            },
        );
        self.order.push_back((key, created));
    }
}

#[derive(Clone, Copy)]
struct Outcome {
    ok: bool,
    at: Instant,
}

/// A [`Kms`] that caches unwrapped data keys, coalesces concurrent misses and meters every call
/// it passes on.
pub struct CachedKms {
    inner: Arc<dyn Kms>,
    limits: DataKeyCacheSettings,
    state: Arc<Mutex<CacheState>>,
    last_call: Arc<Mutex<Option<Outcome>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Length-prefixed, so that no two different (wrapped key, binding) pairs share a cache key.
fn cache_key(wrapped: &WrappedKey, binding: &Binding) -> CacheKey {
    let mut hash = Sha256::new();
    for part in [
        wrapped.key_id.as_bytes(),
        &wrapped.blob,
        &binding.canonical(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

fn copy_of(key: &DataKey) -> DataKey {
    DataKey::from_bytes(Zeroizing::new(*key.expose()))
}

/// Times one call to the provider, counts it, and remembers its outcome for health checks.
async fn metered<T>(
    provider: &'static str,
    operation: &'static str,
    last_call: &Mutex<Option<Outcome>>,
    call: impl Future<Output = Result<T, KmsError>>,
) -> Result<T, KmsError> {
    let started = Instant::now();
    let result = call.await;
    metrics::counter!("leasehold_kms_calls_total", "provider" => provider, "operation" => operation)
        .increment(1);
    metrics::histogram!("leasehold_kms_operation_duration_seconds", "provider" => provider, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!("leasehold_kms_errors_total", "provider" => provider, "operation" => operation)
            .increment(1);
    }
    // Only reachability counts for health: a refused or tampered key says nothing about it.
    let reachable = !matches!(result, Err(KmsError::Unavailable(_)));
    *lock(last_call) = Some(Outcome {
        ok: reachable,
        at: Instant::now(),
    });
    result
}

impl CachedKms {
    pub fn new(inner: Arc<dyn Kms>, limits: DataKeyCacheSettings) -> Self {
        Self {
            inner,
            limits,
            state: Arc::default(),
            last_call: Arc::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.limits.max_entries > 0 && self.limits.max_uses > 0 && self.limits.max_age_seconds > 0
    }

    /// The one KMS call that every concurrent miss for `key` waits on.
    fn unwrap_once(&self, key: CacheKey, wrapped: WrappedKey, binding: Binding) -> SharedUnwrap {
        let inner = self.inner.clone();
        let state = self.state.clone();
        let last_call = self.last_call.clone();
        let limits = self.limits;
        async move {
            let result = metered(
                inner.provider(),
                "unwrap",
                &last_call,
                inner.unwrap(&wrapped, &binding),
            )
            .await
            .map(Arc::new);
            let mut state = lock(&state);
            state.in_flight.remove(&key);
            if let Ok(data_key) = &result {
                state.insert(key, data_key.clone(), 1, &limits);
            }
            result
        }
        .boxed()
        .shared()
    }
}

#[async_trait]
impl Kms for CachedKms {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn active_key(&self) -> &str {
        self.inner.active_key()
    }

    fn holds(&self, key_id: &str) -> bool {
        self.inner.holds(key_id)
    }

    async fn wrap_under(
        &self,
        key_id: &str,
        key: &DataKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError> {
        metered(
            self.inner.provider(),
            "wrap",
            &self.last_call,
            self.inner.wrap_under(key_id, key, binding),
        )
        .await
    }

    async fn wrap(&self, key: &DataKey, binding: &Binding) -> Result<WrappedKey, KmsError> {
        let wrapped = metered(
            self.inner.provider(),
            "wrap",
            &self.last_call,
            self.inner.wrap(key, binding),
        )
        .await?;
        // The value sealed now is usually read soon: its key is known without asking the KMS.
        if self.enabled() {
            lock(&self.state).insert(
                cache_key(&wrapped, binding),
                Arc::new(copy_of(key)),
                0,
                &self.limits,
            );
        }
        Ok(wrapped)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, binding: &Binding) -> Result<DataKey, KmsError> {
        let provider = self.inner.provider();
        if !self.enabled() {
            return metered(
                provider,
                "unwrap",
                &self.last_call,
                self.inner.unwrap(wrapped, binding),
            )
            .await;
        }
        let key = cache_key(wrapped, binding);
        let call = {
            let mut state = lock(&self.state);
            if let Some(hit) = state.hit(&key, &self.limits) {
                metrics::counter!("leasehold_kms_cache_hits_total", "provider" => provider)
                    .increment(1);
                return Ok(copy_of(&hit));
            }
            metrics::counter!("leasehold_kms_cache_misses_total", "provider" => provider)
                .increment(1);
            match state.in_flight.get(&key) {
                Some(call) => call.clone(),
                None => {
                    let call = self.unwrap_once(key, wrapped.clone(), binding.clone());
                    state.in_flight.insert(key, call.clone());
                    call
                }
            }
        };
        call.await.map(|data_key| copy_of(&data_key))
    }

    async fn resolve(&self, key_id: &str) -> Result<String, KmsError> {
        metered(
            self.inner.provider(),
            "resolve",
            &self.last_call,
            self.inner.resolve(key_id),
        )
        .await
    }

    async fn check(&self) -> Result<(), KmsError> {
        let recent = *lock(&self.last_call);
        if recent.is_some_and(|call| call.ok && call.at.elapsed() < HEALTH_REUSE) {
            return Ok(());
        }
        metered(
            self.inner.provider(),
            "check",
            &self.last_call,
            self.inner.check(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::crypto::LocalKms;

    /// A real local provider that counts its unwraps, answers slowly enough for concurrent
    /// callers to overlap, and can be switched off to stand for an unreachable KMS.
    struct Counting {
        local: LocalKms,
        unwraps: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Kms for Counting {
        fn provider(&self) -> &'static str {
            "local"
        }
        fn active_key(&self) -> &str {
            self.local.active_key()
        }
        fn holds(&self, key_id: &str) -> bool {
            self.local.holds(key_id)
        }
        async fn wrap_under(
            &self,
            key_id: &str,
            key: &DataKey,
            binding: &Binding,
        ) -> Result<WrappedKey, KmsError> {
            self.local.wrap_under(key_id, key, binding).await
        }
        async fn unwrap(
            &self,
            wrapped: &WrappedKey,
            binding: &Binding,
        ) -> Result<DataKey, KmsError> {
            self.unwraps.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.down.load(Ordering::SeqCst) {
                return Err(KmsError::Unavailable("switched off".into()));
            }
            self.local.unwrap(wrapped, binding).await
        }
    }

    fn limits(max_age_seconds: u64, max_uses: u64, max_entries: usize) -> DataKeyCacheSettings {
        DataKeyCacheSettings {
            max_age_seconds,
            max_uses,
            max_entries,
        }
    }

    fn binding(version: i64) -> Binding {
        Binding {
            tenant: "default".into(),
            environment: "prod".into(),
            path: "app/db".into(),
            version,
        }
    }

    /// A wrapped key the cache has never seen (wrapped beside it, not through it).
    async fn cold_key(
        limits: DataKeyCacheSettings,
    ) -> (Arc<Counting>, CachedKms, WrappedKey, DataKey) {
        let counting = Arc::new(Counting {
            local: LocalKms::ephemeral(),
            unwraps: AtomicUsize::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let key = DataKey::generate();
        let wrapped = counting.wrap(&key, &binding(1)).await.expect("wrap");
        let cache = CachedKms::new(counting.clone(), limits);
        (counting, cache, wrapped, key)
    }

    #[tokio::test]
    async fn a_thousand_concurrent_cold_unwraps_make_one_kms_call() {
        let (counting, cache, wrapped, key) = cold_key(limits(300, 1_000_000, 100)).await;
        let cache = Arc::new(cache);
        let reads = (0..1000).map(|_| {
            let cache = cache.clone();
            let wrapped = wrapped.clone();
            tokio::spawn(async move { cache.unwrap(&wrapped, &binding(1)).await })
        });
        for read in futures_util::future::join_all(reads).await {
            let unwrapped = read.expect("join").expect("unwrap");
            assert_eq!(unwrapped.expose(), key.expose());
        }
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_entry_serves_at_most_max_uses_reads() {
        let (counting, cache, wrapped, _) = cold_key(limits(300, 3, 100)).await;
        for _ in 0..4 {
            cache.unwrap(&wrapped, &binding(1)).await.expect("unwrap");
        }
        // The miss and two hits use the entry up; the fourth read asks the KMS again.
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_expires_at_max_age_and_then_an_outage_shows() {
        let (counting, cache, wrapped, _) = cold_key(limits(60, 1000, 100)).await;
        cache.unwrap(&wrapped, &binding(1)).await.expect("cold");
        counting.down.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(59)).await;
        cache
            .unwrap(&wrapped, &binding(1))
            .await
            .expect("cached keys keep working while the KMS is down");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(matches!(
            cache.unwrap(&wrapped, &binding(1)).await,
            Err(KmsError::Unavailable(_))
        ));
        // Failures are not cached: the KMS is asked again once it is back.
        counting.down.store(false, Ordering::SeqCst);
        cache.unwrap(&wrapped, &binding(1)).await.expect("back");
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_oldest_entry_leaves_when_the_cache_is_full() {
        let (counting, cache, wrapped, _) = cold_key(limits(300, 1000, 1)).await;
        cache.unwrap(&wrapped, &binding(1)).await.expect("first");
        let other = counting
            .wrap(&DataKey::generate(), &binding(2))
            .await
            .expect("wrap");
        cache.unwrap(&other, &binding(2)).await.expect("second");
        cache
            .unwrap(&wrapped, &binding(1))
            .await
            .expect("first again");
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_cached_key_never_serves_another_row() {
        let (_, cache, wrapped, _) = cold_key(limits(300, 1000, 100)).await;
        cache.unwrap(&wrapped, &binding(1)).await.expect("own row");
        assert!(matches!(
            cache.unwrap(&wrapped, &binding(2)).await,
            Err(KmsError::Integrity)
        ));
    }

    #[tokio::test]
    async fn a_disabled_cache_asks_the_kms_for_every_read() {
        let (counting, cache, wrapped, _) = cold_key(limits(300, 1000, 0)).await;
        for _ in 0..3 {
            cache.unwrap(&wrapped, &binding(1)).await.expect("unwrap");
        }
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_key_sealed_through_the_cache_reads_back_without_a_kms_call() {
        let (counting, cache, _, _) = cold_key(limits(300, 1000, 100)).await;
        let key = DataKey::generate();
        let wrapped = cache.wrap(&key, &binding(3)).await.expect("wrap");
        let back = cache.unwrap(&wrapped, &binding(3)).await.expect("unwrap");
        assert_eq!(back.expose(), key.expose());
        assert_eq!(counting.unwraps.load(Ordering::SeqCst), 0);
    }
}
