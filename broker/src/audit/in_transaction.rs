//! Events that commit inside their operation's own write transaction: a static secret's
//! changes, which run their own transactions rather than the writer's. The event's row is the
//! transaction's last write, its JSON-lines copy goes out before the commit, and any failure of
//! either rolls the operation back, so the operation and its event commit together or not at all.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::AuditEvent;
use super::sink::JsonLinesSink;
use super::writer::{AuditError, stream};

/// An operation's event, handed to the store function that performs the operation.
#[derive(Clone)]
pub struct TransactionEvent {
    event: Option<AuditEvent>,
    sink: Option<JsonLinesSink>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

impl TransactionEvent {
    pub(super) fn new(
        event: AuditEvent,
        sink: Option<JsonLinesSink>,
        timeout: Duration,
        healthy: Arc<AtomicBool>,
    ) -> Self {
        Self {
            event: (!cfg!(feature = "bench-without-audit")).then_some(event),
            sink,
            timeout,
            healthy,
        }
    }

    /// The event completed with what the operation learns before it commits (a new version's
    /// number, a new token's id).
    #[must_use]
    pub fn map(mut self, complete: impl FnOnce(AuditEvent) -> AuditEvent) -> Self {
        self.event = self.event.map(complete);
        self
    }

    /// The event to append; `None` only in the benchmark build without audit.
    pub fn event(&self) -> Option<&AuditEvent> {
        self.event.as_ref()
    }

    /// Runs `append`, which writes the event's row in the operation's open transaction and
    /// answers the sequence number and hash it got, then copies the event to the JSON-lines
    /// sink; both within the audit timeout. The caller commits only after this succeeded.
    ///
    /// # Errors
    /// `Unavailable` when the row could not be written, a required sink refused the event, or
    /// the timeout passed; health then reports audit down, as for the writer's batches.
    pub async fn record<F>(&self, append: F) -> Result<(), AuditError>
    where
        F: Future<Output = Result<(i64, Vec<u8>), sqlx::Error>>,
    {
        let Some(event) = &self.event else {
            return Ok(());
        };
        let recorded = async {
            let placed = append.await.map_err(|error| {
                tracing::error!(%error, "audit event of a write failed; the write is rolled back");
            })?;
            stream(
                self.sink.as_ref(),
                std::slice::from_ref(event),
                std::slice::from_ref(&placed),
            )
            .await
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
