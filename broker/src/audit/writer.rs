//! Durable audit with group commit. Requests hand their event to one writer (a thread with its
//! own store connection) and wait for its answer; the writer takes every event waiting at that
//! moment, and what keeps arriving over a few short pauses (up to `MAX_BATCH`), and appends them
//! to the chain in one transaction, so a burst of reads costs one commit, not one each. A request
//! whose event is not durable within the timeout fails with "audit unavailable": a stuck store
//! never freezes the server, and nothing is returned without its event.
//!
//! The same transaction carries the row changes that must commit exactly with their event (a
//! lease's activation with `LEASE_ISSUE`, its new expiry with `LEASE_RENEW`), and lease intents,
//! which must be durable before a user is created and are frequent enough that one commit each
//! would cap the issue rate ([`JournalEffect`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::AuditEvent;
use super::in_transaction::TransactionEvents;
use super::sink::JsonLinesSink;
use crate::store::{ChainHead, JournalEffect, Store, WriterConnection};

const MAX_BATCH: usize = 512;
const QUEUE: usize = 8192;
/// While events keep arriving, a batch waits this long for more before it commits, at most
/// `GATHER_PAUSES` times: under load, one commit then carries the events of every request in
/// flight, instead of a commit for each few (each commit costs an fsync, and makes every pooled
/// SQLite connection re-read its pages).
const GATHER_PAUSE: Duration = Duration::from_micros(200);
const GATHER_PAUSES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit unavailable: the event could not be recorded durably")]
    Unavailable,
}

/// An event, a row change, or both, committed together.
struct Entry {
    event: Option<AuditEvent>,
    effect: Option<JournalEffect>,
}

/// What the writer answers: whether the entry's effect applied (`true` without one).
type Pending = (Entry, oneshot::Sender<Result<bool, AuditError>>);

/// The handle requests record events through.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    sink: Option<JsonLinesSink>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

impl AuditLog {
    /// Starts the writer on a thread of its own, with a single-threaded runtime: it is never
    /// queued behind the request handlers. Should that runtime fail to start, the queue closes
    /// and every audited request fails closed (health reports it).
    ///
    /// # Errors
    /// When the operating system refuses the thread.
    pub fn start(
        store: Store,
        timeout: Duration,
        sink: Option<JsonLinesSink>,
    ) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let writer = write_batches(store, sink.clone(), receiver, healthy.clone());
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer),
                    Err(error) => tracing::error!(%error, "the audit writer could not start"),
                }
            })?;
        Ok(Self {
            queue,
            sink,
            timeout,
            healthy,
        })
    }

    /// `event` for an operation that runs its own write transaction and appends the event
    /// there ([`TransactionEvents::record`]), instead of through the writer's group commit.
    pub fn in_transaction(&self, event: AuditEvent) -> TransactionEvents {
        self.all_in_transaction(vec![event])
    }

    /// [`in_transaction`](Self::in_transaction) for an operation with several events.
    pub fn all_in_transaction(&self, events: Vec<AuditEvent>) -> TransactionEvents {
        TransactionEvents::new(
            events,
            self.sink.clone(),
            self.timeout,
            self.healthy.clone(),
        )
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
        self.submit(Some(event), None).await.map(|_| ())
    }

    /// Records `event` and applies `effect` in the same transaction; `Ok(false)` when the effect
    /// found no row to change (the event is recorded all the same).
    ///
    /// # Errors
    /// `Unavailable` when the batch was not committed in time: neither happened.
    pub async fn record_with(
        &self,
        event: AuditEvent,
        effect: JournalEffect,
    ) -> Result<bool, AuditError> {
        let event = (!cfg!(feature = "bench-without-audit")).then_some(event);
        self.submit(event, Some(effect)).await
    }

    /// Applies `effect` through the group commit, without an event.
    ///
    /// # Errors
    /// `Unavailable` when the batch was not committed in time.
    pub async fn apply(&self, effect: JournalEffect) -> Result<bool, AuditError> {
        self.submit(None, Some(effect)).await
    }

    async fn submit(
        &self,
        event: Option<AuditEvent>,
        effect: Option<JournalEffect>,
    ) -> Result<bool, AuditError> {
        let has_event = event.is_some();
        let (done, answer) = oneshot::channel();
        let attempt = async {
            self.queue
                .send((Entry { event, effect }, done))
                .await
                .map_err(|_| AuditError::Unavailable)?;
            answer.await.map_err(|_| AuditError::Unavailable)?
        };
        let result = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(AuditError::Unavailable));
        if result.is_err() && has_event {
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
    // Where this writer's last batch left the chain, and its own connection; both forgotten
    // after a failure.
    let mut head: Option<ChainHead> = None;
    let mut connection: Option<WriterConnection> = None;
    let keeps_connection = store.lends_writer_a_connection();
    // Closing the store waits for every connection, this one too: it is given back at once,
    // and later batches fail closed on the closed pool.
    let mut closing = std::pin::pin!(store.close_event());
    loop {
        let first = tokio::select! {
            first = receiver.recv() => first,
            () = &mut closing, if connection.is_some() => {
                connection = None;
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        // A blocking sleep: this thread runs nothing but the writer, and tokio's timers count in
        // whole milliseconds.
        gather(&mut receiver, &mut batch, || {
            std::thread::sleep(GATHER_PAUSE)
        });
        // Requests that already gave up are not written: their operation failed closed.
        batch.retain(|(_, done)| !done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let events: Vec<AuditEvent> = batch.iter().filter_map(|(e, _)| e.event.clone()).collect();
        let effects: Vec<&JournalEffect> = batch
            .iter()
            .filter_map(|(e, _)| e.effect.as_ref())
            .collect();
        metrics::histogram!("leasehold_audit_batch_size").record(events.len() as f64);
        let appended = match connection.take() {
            Some(held) => Ok(held),
            None => store.writer_connection().await,
        };
        let appended = match appended {
            Ok(mut held) => {
                let batch = Store::append_audit(&mut held, &events, &effects, head.as_ref()).await;
                if batch.is_ok() && keeps_connection {
                    connection = Some(held);
                }
                batch
            }
            Err(error) => Err(error),
        };
        let result = match appended {
            Ok(batch) => {
                head = batch.head;
                stream(sink.as_ref(), &events, &batch.placed)
                    .await
                    .map(|()| batch.applied)
            }
            Err(error) => {
                head = None;
                tracing::error!(%error, events = events.len(), "audit batch failed; its requests fail closed");
                Err(())
            }
        };
        if !events.is_empty() {
            healthy.store(result.is_ok(), Ordering::Relaxed);
        }
        let mut applied = result.as_ref().ok().map(|a| a.iter().copied());
        for (entry, done) in batch {
            let answer = match &mut applied {
                None => Err(AuditError::Unavailable),
                Some(applied) if entry.effect.is_some() => Ok(applied.next().unwrap_or(false)),
                Some(_) => Ok(true),
            };
            let _ = done.send(answer);
        }
    }
}

/// Adds to `batch` what is waiting, and then, as long as each `pause` brought more, what came
/// meanwhile. A lone event is committed at once: nothing suggests that others are coming.
fn gather<T>(receiver: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, mut pause: impl FnMut()) {
    let drain = |receiver: &mut mpsc::Receiver<T>, batch: &mut Vec<T>| {
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
    };
    drain(receiver, batch);
    for _ in 0..GATHER_PAUSES {
        let before = batch.len();
        if !(2..MAX_BATCH).contains(&before) {
            break;
        }
        pause();
        drain(receiver, batch);
        if batch.len() == before {
            break;
        }
    }
}

/// Copies events to the JSON-lines sink: a batch the writer committed, or a write's event before
/// its transaction commits. Only a required sink's failure fails the events' requests.
pub(super) async fn stream(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue holding `waiting` items, and a batch holding the first of them.
    fn queue(waiting: usize) -> (mpsc::Sender<usize>, mpsc::Receiver<usize>, Vec<usize>) {
        let (sender, mut receiver) = mpsc::channel(QUEUE);
        for item in 0..waiting {
            sender.try_send(item).expect("room in the queue");
        }
        let first = receiver.try_recv().expect("a first item");
        (sender, receiver, vec![first])
    }

    #[test]
    fn a_lone_event_is_committed_without_waiting() {
        let (_sender, mut receiver, mut batch) = queue(1);
        let mut pauses = 0;
        gather(&mut receiver, &mut batch, || pauses += 1);
        assert_eq!((batch.len(), pauses), (1, 0));
    }

    #[test]
    fn a_batch_waits_while_events_keep_coming_and_commits_when_they_stop() {
        let (sender, mut receiver, mut batch) = queue(3);
        let mut pauses = 0;
        gather(&mut receiver, &mut batch, || {
            pauses += 1;
            if pauses <= 2 {
                sender.try_send(10 * pauses).expect("room");
                sender.try_send(10 * pauses + 1).expect("room");
            }
        });
        assert_eq!(batch, vec![0, 1, 2, 10, 11, 20, 21]);
        assert_eq!(pauses, 3, "the pause that brought nothing ends the wait");
    }

    #[test]
    fn the_wait_is_bounded_even_when_events_never_stop() {
        let (sender, mut receiver, mut batch) = queue(2);
        let mut pauses = 0;
        gather(&mut receiver, &mut batch, || {
            pauses += 1;
            sender.try_send(pauses).expect("room");
        });
        assert_eq!(pauses, GATHER_PAUSES);
        assert_eq!(batch.len(), 2 + GATHER_PAUSES);
    }

    #[test]
    fn a_full_batch_does_not_wait() {
        let (_sender, mut receiver, mut batch) = queue(MAX_BATCH + 5);
        let mut pauses = 0;
        gather(&mut receiver, &mut batch, || pauses += 1);
        assert_eq!((batch.len(), pauses), (MAX_BATCH, 0));
    }
}
