//! The policy engine: documents (`document`), globs (`glob`), actions (`action`), evaluation
//! (`engine`) and a per-tenant cache of compiled policy sets (`PolicyCache`).
//!
//! The cache makes a decision an in-memory lookup. A replica reloads a tenant's set when it
//! changes the set itself, and otherwise at most `REFRESH` after it was loaded, so a policy
//! written through another replica applies everywhere within that bound.

mod action;
mod document;
mod engine;
mod glob;
pub mod synthetic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub use action::Action;
pub use document::{PolicyDocument, PolicyError, StatementDocument};
pub use engine::{Decision, PolicySet, StatementRef, Subject};
pub use glob::Glob;

use crate::store::{Store, StoreError};

/// Whether `pattern` is a well-formed resource glob (`environment/path` with `*` and `**`).
pub fn is_valid_resource_glob(pattern: &str) -> bool {
    document::valid_glob(pattern) && !pattern.contains("..") && !pattern.contains(':')
}

const REFRESH: Duration = Duration::from_secs(2);

/// Compiled policy sets per tenant, loaded from the store on demand.
pub struct PolicyCache {
    store: Store,
    tenants: RwLock<HashMap<String, (Instant, Arc<PolicySet>)>>,
    /// Bumped by every invalidation, so a load that raced with a write is not cached.
    generation: AtomicU64,
}

impl PolicyCache {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            tenants: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The tenant's current policy set.
    ///
    /// # Errors
    /// Storage errors, or a stored document that no longer compiles (fail closed).
    pub async fn get(&self, tenant: &str) -> Result<Arc<PolicySet>, StoreError> {
        if let Ok(tenants) = self.tenants.read()
            && let Some((loaded, set)) = tenants.get(tenant)
            && loaded.elapsed() < REFRESH
        {
            return Ok(set.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let set = Arc::new(self.load(tenant).await?);
        if let Ok(mut tenants) = self.tenants.write()
            && self.generation.load(Ordering::Acquire) == generation
        {
            tenants.insert(tenant.to_owned(), (Instant::now(), set.clone()));
        }
        Ok(set)
    }

    /// Forgets a tenant's set after a write, so the next decision reloads it.
    pub fn invalidate(&self, tenant: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.remove(tenant);
        }
    }

    async fn load(&self, tenant: &str) -> Result<PolicySet, StoreError> {
        let rows = self.store.list_policies(tenant).await?;
        let mut policies = Vec::with_capacity(rows.len());
        for row in rows {
            let document: PolicyDocument = serde_json::from_str(&row.document).map_err(|_| {
                StoreError::Corrupt(format!("policy {} is not valid JSON", row.name))
            })?;
            let statements = document.compile().map_err(|e| {
                StoreError::Corrupt(format!("policy {} no longer compiles: {e}", row.name))
            })?;
            policies.push((row.name, statements));
        }
        let memberships = self.store.list_group_members(tenant).await?;
        Ok(PolicySet::build(policies, memberships))
    }
}
