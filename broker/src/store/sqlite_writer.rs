//! The audit writer's own connection to a SQLite store file: a synchronous `rusqlite`
//! connection used on the writer's thread. Through the pool, every statement of a batch is a
//! hand-off to a SQLite worker thread and back; here a batch (lock the head, insert the events,
//! apply the effects, commit) runs where the writer already is. It writes the same rows, in the
//! same encodings, as the pool's connections do.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, TransactionBehavior, named_params, params};
use uuid::Uuid;

use super::audit::{AppendedBatch, ChainHead, chain};
use super::leases::{ACTIVATE, EXTEND, INSERT_INTENT};
use super::revocations::{INSERT_JOB, LIFT_FENCE};
use super::{ACTIVE, JournalEffect, PENDING, StoreResult};
use crate::audit::AuditEvent;

/// Opens the writer's connection to the store file at `path`, with the pool's settings: every
/// commit reaches the disk before it is acknowledged, and a locked database is waited for.
pub(super) fn open(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(connection)
}

/// A timestamp as the pool's driver writes it (RFC 3339, as many fraction digits as needed), so
/// rows from both connections compare and sort alike.
fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn optional_time(at: Option<&DateTime<Utc>>) -> Option<String> {
    at.map(time)
}

/// A UUID as the pool's driver writes it: its 16 bytes.
fn uuid(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

/// [`Store::append_audit`](super::Store::append_audit) on this connection: the same chain, head
/// compare-and-set and effects, in one `BEGIN IMMEDIATE` transaction.
pub(super) fn append(
    connection: &mut Connection,
    events: &[AuditEvent],
    effects: &[&JournalEffect],
    expected: Option<&ChainHead>,
) -> StoreResult<AppendedBatch> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut head = expected.cloned();
    let mut placed = Vec::new();
    if !events.is_empty() {
        let mut rows = expected.map(|at| chain(at, events));
        if let (Some(at), Some(chained)) = (expected, &rows) {
            let end = &chained.end;
            let moved = tx
                .prepare_cached(
                    "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1 AND seq = ?3 AND hash = ?4",
                )?
                .execute(params![end.seq, end.hash, at.seq, at.hash])?;
            if moved != 1 {
                rows = None;
            }
        }
        let chained = match rows {
            Some(chained) => chained,
            None => {
                // The transaction holds the database's write lock: nobody moves the head now.
                let (seq, hash) = tx
                    .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
                    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                let chained = chain(&ChainHead { seq, hash }, events);
                tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
                    .execute(params![chained.end.seq, chained.end.hash])?;
                chained
            }
        };
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_events (seq, event_type, tenant, environment, path, version, principal, \
             source_ip, request_id, decision, detail, created_at, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for link in &chained.rows {
            let event = link.event;
            insert.execute(params![
                link.seq,
                event.event_type,
                event.tenant_id,
                event.environment,
                event.path,
                event.version,
                event.principal,
                event.source_ip,
                event.request_id,
                event.decision,
                link.detail,
                time(&event.created_at),
                link.prev_hash,
                link.hash,
            ])?;
        }
        drop(insert);
        placed = chained
            .rows
            .iter()
            .map(|link| (link.seq, link.hash.clone()))
            .collect();
        head = Some(chained.end);
    }
    let mut applied = Vec::with_capacity(effects.len());
    for effect in effects {
        let changed = match effect {
            JournalEffect::InsertLeaseIntent(lease) => {
                tx.prepare_cached(INSERT_INTENT)?.execute(named_params! {
                    "$1": uuid(&lease.id),
                    "$2": lease.tenant,
                    "$3": lease.environment,
                    "$4": lease.role,
                    "$5": lease.backend,
                    "$6": lease.principal,
                    "$7": lease.username,
                    "$8": PENDING,
                    "$9": time(&lease.issued_at),
                    "$10": time(&lease.expires_at),
                    "$11": time(&lease.max_expires_at),
                    "$12": optional_time(lease.due_at.as_ref()),
                })?
            }
            JournalEffect::ActivateLease { id, at } => {
                tx.prepare_cached(ACTIVATE)?.execute(named_params! {
                    "$1": uuid(id),
                    "$2": ACTIVE,
                    "$3": time(at),
                    "$4": PENDING,
                })?
            }
            JournalEffect::ExtendLease { id, expires_at, at } => {
                tx.prepare_cached(EXTEND)?.execute(named_params! {
                    "$1": uuid(id),
                    "$2": time(expires_at),
                    "$3": time(at),
                    "$4": ACTIVE,
                })?
            }
            JournalEffect::InsertRevocationJob(job) => {
                tx.prepare_cached(INSERT_JOB)?.execute(named_params! {
                    "$1": uuid(&job.id),
                    "$2": job.tenant,
                    "$3": job.selector,
                    "$4": job.reason,
                    "$5": job.ticket,
                    "$6": job.requested_by,
                    "$7": job.state,
                    "$8": job.total,
                    "$9": time(&job.created_at),
                    "$10": optional_time(job.fence_until.as_ref()),
                })?
            }
            JournalEffect::LiftFence { tenant, job } => tx
                .prepare_cached(LIFT_FENCE)?
                .execute(named_params! { "$1": tenant, "$2": uuid(job) })?,
        };
        applied.push(changed == 1);
    }
    tx.commit()?;
    Ok(AppendedBatch {
        placed,
        applied,
        head,
    })
}
