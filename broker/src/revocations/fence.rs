//! Fences: while a mass revocation's fence holds, no lease matching its selector is issued or
//! renewed, on any replica (the fence is a column of the job's row).

use chrono::Utc;

use super::Selector;
use crate::dynamic::DynamicError;
use crate::store::{LeaseRow, Store};

#[derive(Clone, Debug)]
pub struct Fences {
    store: Store,
}

impl Fences {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// # Errors
    /// `Fenced` naming the first job whose fence covers `lease`; storage errors, and a stored
    /// selector that cannot be read (fail closed).
    pub async fn check(&self, lease: &LeaseRow) -> Result<(), DynamicError> {
        for (job, selector) in self.store.active_fences(&lease.tenant, Utc::now()).await? {
            if Selector::from_stored(job, &selector)?.matches(lease) {
                metrics::counter!("leasehold_revocation_fence_refusals_total").increment(1);
                return Err(DynamicError::Fenced { job });
            }
        }
        Ok(())
    }
}
