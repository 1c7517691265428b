//! Durable audit with group commit. Requests hand their event to one writer task and wait for
//! its answer; the writer takes every event waiting at that moment (up to `MAX_BATCH`) and
//! appends them to the chain in one transaction, so a burst of reads costs one commit, not one
//! each. A request whose event is not durable within the timeout fails with "audit unavailable":
//! a stuck store never freezes the server, and nothing is returned without its event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::AuditEvent;
use super::sink::JsonLinesSink;
use crate::store::Store;

const MAX_BATCH: usize = 512;
const QUEUE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit unavailable: the event could not be recorded durably")]
    Unavailable,
}

type Pending = (AuditEvent, oneshot::Sender<Result<(), AuditError>>);

/// The handle requests record events through.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store, timeout: Duration, sink: Option<JsonLinesSink>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        tokio::spawn(write_batches(store, sink, receiver, healthy.clone()));
        Self {
            queue,
            timeout,
            healthy,
        }
    }

    /// Records `event` durably, or fails within the timeout.
    ///
    /// # Errors
    /// `Unavailable` when the event was not committed in time.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        if cfg!(feature = "bench-without-audit") {
            drop(event);
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        let attempt = async {
            self.queue
                .send((event, done))
                .await
                .map_err(|_| AuditError::Unavailable)?;
            answer.await.map_err(|_| AuditError::Unavailable)?
        };
        let result = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(AuditError::Unavailable));
        if result.is_err() {
            self.healthy.store(false, Ordering::Relaxed);
            metrics::counter!("leasehold_audit_failures_total").increment(1);
        }
        result
    }

    /// Whether the last batch was committed (health reports this).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.queue.is_closed()
    }
}

async fn write_batches(
    store: Store,
    sink: Option<JsonLinesSink>,
    mut receiver: mpsc::Receiver<Pending>,
    healthy: Arc<AtomicBool>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Requests that already gave up are not written: their operation failed closed.
        batch.retain(|(_, done)| !done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let events: Vec<AuditEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
        metrics::histogram!("leasehold_audit_batch_size").record(events.len() as f64);
        let result = match store.append_audit(&events).await {
            Ok(placed) => stream(sink.as_ref(), &events, &placed).await,
            Err(error) => {
                tracing::error!(%error, events = events.len(), "audit batch failed; its requests fail closed");
                Err(())
            }
        };
        healthy.store(result.is_ok(), Ordering::Relaxed);
        for (_, done) in batch {
            let _ = done.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|_| AuditError::Unavailable),
            );
        }
    }
}

/// Copies a committed batch to the JSON-lines sink. Only a required sink's failure fails the
/// batch's requests.
async fn stream(
    sink: Option<&JsonLinesSink>,
    events: &[AuditEvent],
    placed: &[(i64, Vec<u8>)],
) -> Result<(), ()> {
    let Some(sink) = sink else {
        return Ok(());
    };
    let lines = events
        .iter()
        .zip(placed)
        .filter_map(|(event, (seq, hash))| {
            let mut value = serde_json::to_value(event).ok()?;
            let object = value.as_object_mut()?;
            object.insert("seq".into(), (*seq).into());
            object.insert("hash".into(), hex::encode(hash).into());
            serde_json::to_string(&value).ok()
        })
        .collect();
    match sink.write(lines).await {
        Ok(()) => Ok(()),
        Err(reason) => {
            metrics::counter!("leasehold_audit_sink_failures_total").increment(1);
            tracing::error!(%reason, required = sink.required, "audit sink write failed");
            if sink.required { Err(()) } else { Ok(()) }
        }
    }
}
