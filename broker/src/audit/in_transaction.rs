//! Events that commit inside their operation's own write transaction (a static secret's
//! changes, a scheduler round's record of its revocations), rather than through the writer's
//! group commit. The events' rows are the transaction's last writes, their JSON-lines copies go
//! out before the commit, and any failure of either rolls the operation back, so the operation
//! and its events commit together or not at all.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::AuditEvent;
use super::sink::JsonLinesSink;
use super::writer::{AuditError, stream};

/// An operation's events (usually one), handed to the store function that performs the
/// operation.
#[derive(Clone)]
pub struct TransactionEvents {
    events: Vec<AuditEvent>,
    sink: Option<JsonLinesSink>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

impl TransactionEvents {
    pub(super) fn new(
        events: Vec<AuditEvent>,
        sink: Option<JsonLinesSink>,
        timeout: Duration,
        healthy: Arc<AtomicBool>,
    ) -> Self {
        Self {
            events: if cfg!(feature = "bench-without-audit") {
                Vec::new()
            } else {
                events
            },
            sink,
            timeout,
            healthy,
        }
    }

    /// The events completed with what the operation learns before it commits (a new version's
    /// number, a new token's id).
    #[must_use]
    pub fn map(mut self, complete: impl FnMut(AuditEvent) -> AuditEvent) -> Self {
        self.events = self.events.into_iter().map(complete).collect();
        self
    }

    /// The events to append; none only in the benchmark build without audit.
    pub fn events(&self) -> &[AuditEvent] {
        &self.events
    }

    /// Runs `append`, which writes the events' rows in the operation's open transaction and
    /// answers the sequence number and hash each got, then copies the events to the JSON-lines
    /// sink; both within the audit timeout. The caller commits only after this succeeded.
    ///
    /// # Errors
    /// `Unavailable` when the row could not be written, a required sink refused the event, or
    /// the timeout passed; health then reports audit down, as for the writer's batches.
    pub async fn record<F>(&self, append: F) -> Result<(), AuditError>
    where
        F: Future<Output = Result<Vec<(i64, Vec<u8>)>, sqlx::Error>>,
    {
        if self.events.is_empty() {
            return Ok(());
        }
        let recorded = async {
            let placed = append.await.map_err(|error| {
                tracing::error!(%error, "audit event of a write failed; the write is rolled back");
            })?;
            stream(self.sink.as_ref(), &self.events, &placed).await
        };
        let result = tokio::time::timeout(self.timeout, recorded)
            .await
            .unwrap_or(Err(()));
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        if result.is_err() {
            metrics::counter!("leasehold_audit_failures_total").increment(1);
        }
        result.map_err(|()| AuditError::Unavailable)
    }
}
