//! Rows of `audit_events` and `audit_head`: appending a batch to the hash chain in one
//! transaction (with the row changes that must commit with their events), and reading the chain
//! back.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::pool::PoolConnection;

use super::leases::{ACTIVATE, EXTEND, INSERT_INTENT};
use super::revocations::{INSERT_JOB, LIFT_FENCE};
use super::{ACTIVE, JournalEffect, PENDING, Store, StoreResult, on_pool};
use crate::audit::AuditEvent;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub event_type: String,
    pub tenant: String,
    pub environment: Option<String>,
    pub path: Option<String>,
    pub version: Option<i64>,
    pub principal: String,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub decision: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl AuditRow {
    /// The event as it was hashed.
    pub fn event(&self) -> AuditEvent {
        AuditEvent {
            event_type: self.event_type.clone(),
            tenant_id: self.tenant.clone(),
            environment: self.environment.clone(),
            path: self.path.clone(),
            version: self.version,
            principal: self.principal.clone(),
            source_ip: self.source_ip.clone(),
            request_id: self.request_id.clone(),
            decision: self.decision.clone(),
            detail: serde_json::from_str(&self.detail).unwrap_or(serde_json::Value::Null),
            created_at: self.created_at,
        }
    }
}

/// The hash of event `seq` after `prev`.
pub fn chain_hash(prev: &[u8], event: &AuditEvent, seq: i64) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(event.canonical(seq));
    hasher.finalize().to_vec()
}

/// Filters for `GET /v1/audit/events`.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter<'a> {
    pub tenant: &'a str,
    pub principal: Option<&'a str>,
    pub path_prefix: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after_seq: i64,
    pub limit: i64,
}

/// The connection the audit writer keeps for itself, so that a batch never waits behind
/// requests for one of the pool's connections.
pub enum WriterConnection {
    /// A connection of its own to a SQLite store file, used on the writer's thread.
    SqliteFile(rusqlite::Connection),
    /// One of the pool's: how the writer reaches PostgreSQL, and a pool of one (an in-memory
    /// SQLite store), which has no other way in.
    Pooled(PooledWriter),
}

/// A connection taken out of the store's pool for the audit writer.
pub enum PooledWriter {
    Sqlite(PoolConnection<sqlx::Sqlite>),
    Postgres(PoolConnection<sqlx::Postgres>),
}

/// Runs `$body` in a write transaction `$tx` on a [`PooledWriter`].
macro_rules! on_pooled_writer {
    ($connection:expr, $tx:ident => $body:expr) => {
        match $connection {
            PooledWriter::Sqlite(connection) => {
                let mut $tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                $body
            }
            PooledWriter::Postgres(connection) => {
                let mut $tx = connection.begin().await?;
                $body
            }
        }
    };
}

impl Store {
    /// Whether the audit writer may keep a connection between batches: not when it would be
    /// the pool's only one (an in-memory store, or `max_connections = 1`).
    pub fn lends_writer_a_connection(&self) -> bool {
        on_pool!(self, pool => pool.options().get_max_connections() > 1)
    }

    /// A connection for the audit writer: on a SQLite store file one of its own beside the pool,
    /// otherwise one taken out of the pool.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn writer_connection(&self) -> StoreResult<WriterConnection> {
        Ok(match self {
            Store::Sqlite(pool) if self.lends_writer_a_connection() => {
                WriterConnection::SqliteFile(super::sqlite_writer::open(
                    pool.connect_options().get_filename(),
                )?)
            }
            Store::Sqlite(pool) => {
                WriterConnection::Pooled(PooledWriter::Sqlite(pool.acquire().await?))
            }
            Store::Postgres(pool) => {
                WriterConnection::Pooled(PooledWriter::Postgres(pool.acquire().await?))
            }
        })
    }
}

/// The end of the hash chain: the last event's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// What [`Store::append_audit`] committed.
#[derive(Debug)]
pub struct AppendedBatch {
    /// The sequence number and hash each event got, in order.
    pub placed: Vec<(i64, Vec<u8>)>,
    /// Whether each effect applied (changed its one row).
    pub applied: Vec<bool>,
    /// The head after the batch (unknown only for a first batch without events).
    pub head: Option<ChainHead>,
}

/// One event linked into the chain, ready to insert.
pub(super) struct Link<'a> {
    pub(super) seq: i64,
    pub(super) event: &'a AuditEvent,
    pub(super) detail: String,
    pub(super) prev_hash: Vec<u8>,
    pub(super) hash: Vec<u8>,
}

/// A batch of events linked after a head, and where it leaves the chain.
pub(super) struct Chained<'a> {
    pub(super) rows: Vec<Link<'a>>,
    pub(super) end: ChainHead,
}

/// Links `events` after `head`, each hash covering the previous one.
pub(super) fn chain<'a>(head: &ChainHead, events: &'a [AuditEvent]) -> Chained<'a> {
    let mut seq = head.seq;
    let mut prev = head.hash.clone();
    let rows = events
        .iter()
        .map(|event| {
            seq += 1;
            let hash = chain_hash(&prev, event, seq);
            Link {
                seq,
                event,
                detail: serde_json::to_string(&event.detail).unwrap_or_else(|_| "{}".into()),
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect();
    Chained {
        rows,
        end: ChainHead { seq, hash: prev },
    }
}

/// Locks the chain's head row and reads it, in one statement (on SQLite the write transaction
/// already holds the database lock).
pub(super) const LOCK_HEAD: &str =
    "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash";
pub(super) const MOVE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// Inserts chained [`Link`]s in the open transaction `$tx`: one multi-row INSERT per chunk, since
/// a statement per event would cost a round trip each.
macro_rules! insert_links {
    ($tx:ident, $links:expr) => {
        for chunk in $links.chunks($crate::store::audit::INSERT_CHUNK) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO audit_events (seq, event_type, tenant, environment, path, version, principal, \
                 source_ip, request_id, decision, detail, created_at, prev_hash, hash) ",
            );
            insert.push_values(chunk, |mut row, link| {
                let event = link.event;
                row.push_bind(link.seq)
                    .push_bind(&event.event_type)
                    .push_bind(&event.tenant_id)
                    .push_bind(&event.environment)
                    .push_bind(&event.path)
                    .push_bind(event.version)
                    .push_bind(&event.principal)
                    .push_bind(&event.source_ip)
                    .push_bind(&event.request_id)
                    .push_bind(&event.decision)
                    .push_bind(&link.detail)
                    .push_bind(event.created_at)
                    .push_bind(&link.prev_hash)
                    .push_bind(&link.hash);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    };
}
pub(crate) use insert_links;

/// Commits the open write transaction `$tx` of an operation together with its events `$audit`
/// (an `Option<&TransactionEvents>`; `None` for changes audited by the caller's own events, such
/// as a rotation's steps). The events are the transaction's last writes: the head row is locked
/// only now, so the chain waits on the operation's other locks for no longer than the commit.
/// A failure to record them returns `StoreError::Audit` and drops `$tx`, rolling everything back.
macro_rules! commit_with_event {
    ($tx:ident, $audit:expr) => {
        if let Some(audit) = $audit {
            let events = audit.events();
            if !events.is_empty() {
                audit
                    .record(async {
                        let (seq, hash): (i64, Vec<u8>) =
                            sqlx::query_as($crate::store::audit::LOCK_HEAD)
                                .fetch_one(&mut *$tx)
                                .await?;
                        let chained = $crate::store::audit::chain(
                            &$crate::store::ChainHead { seq, hash },
                            events,
                        );
                        sqlx::query($crate::store::audit::MOVE_HEAD)
                            .bind(chained.end.seq)
                            .bind(&chained.end.hash)
                            .execute(&mut *$tx)
                            .await?;
                        $crate::store::audit::insert_links!($tx, chained.rows);
                        Ok(chained
                            .rows
                            .into_iter()
                            .map(|link| (link.seq, link.hash))
                            .collect())
                    })
                    .await?;
            }
        }
        $tx.commit().await?;
    };
}
pub(crate) use commit_with_event;

/// Runs the one-statement change `$query` in a write transaction of its own on `$pool` and
/// commits it with `$audit`'s event if it changed a row; evaluates to whether it did (a change
/// that found nothing rolls back and records nothing).
macro_rules! change_with_event {
    ($pool:ident, $query:expr, $audit:expr) => {{
        let mut tx = $pool.begin_write().await?;
        let changed = $query.execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            $crate::store::audit::commit_with_event!(tx, Some($audit));
        }
        changed
    }};
}
pub(crate) use change_with_event;

/// Rows per INSERT statement: 14 parameters each stays under every driver's bind limit.
pub(super) const INSERT_CHUNK: usize = 256;

const AUDIT_COLUMNS: &str = "seq, event_type, tenant, environment, path, version, principal, \
     source_ip, request_id, decision, detail, created_at, prev_hash, hash";

impl Store {
    /// Appends `events` to the chain and applies `effects` in one transaction on the audit
    /// writer's own `connection`, after the head
    /// row is locked, so events from every replica form a single chain and an operation's row
    /// changes commit exactly when its event does. A batch without events leaves the head alone.
    ///
    /// `expected` is where the caller's last batch left the head. While no other replica has
    /// written since, one statement both locks the head and moves it past this batch; otherwise
    /// the head is read under its lock and the batch chained onto it.
    ///
    /// Returns the sequence number and hash each event got, whether each effect applied, and
    /// the head this batch left.
    ///
    /// # Errors
    /// Storage errors; nothing of the batch is written then.
    pub async fn append_audit(
        connection: &mut WriterConnection,
        events: &[AuditEvent],
        effects: &[&JournalEffect],
        expected: Option<&ChainHead>,
    ) -> StoreResult<AppendedBatch> {
        let connection = match connection {
            WriterConnection::SqliteFile(connection) => {
                return super::sqlite_writer::append(connection, events, effects, expected);
            }
            WriterConnection::Pooled(connection) => connection,
        };
        let mut applied = Vec::with_capacity(effects.len());
        let mut head = expected.cloned();
        let mut placed = Vec::new();
        on_pooled_writer!(connection, tx => {
            if !events.is_empty() {
                let mut rows = expected.map(|at| chain(at, events));
                if let (Some(at), Some(chained)) = (expected, &rows) {
                    let end = &chained.end;
                    let moved = sqlx::query(
                        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4",
                    )
                    .bind(end.seq)
                    .bind(&end.hash)
                    .bind(at.seq)
                    .bind(&at.hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if moved != 1 {
                        rows = None;
                    }
                }
                let chained = match rows {
                    Some(chained) => chained,
                    None => {
                        // Locks and reads the head in one statement (on SQLite the write
                        // transaction already holds the database lock).
                        let (seq, hash): (i64, Vec<u8>) =
                            sqlx::query_as(LOCK_HEAD).fetch_one(&mut *tx).await?;
                        let chained = chain(&ChainHead { seq, hash }, events);
                        let end = &chained.end;
                        sqlx::query(MOVE_HEAD)
                            .bind(end.seq)
                            .bind(&end.hash)
                            .execute(&mut *tx)
                            .await?;
                        chained
                    }
                };
                insert_links!(tx, chained.rows);
                head = Some(chained.end.clone());
                placed = chained.rows.iter().map(|l| (l.seq, l.hash.clone())).collect();
            }
            for effect in effects {
                let query = match effect {
                    JournalEffect::InsertLeaseIntent(lease) => sqlx::query(INSERT_INTENT)
                        .bind(lease.id)
                        .bind(&lease.tenant)
                        .bind(&lease.environment)
                        .bind(&lease.role)
                        .bind(&lease.backend)
                        .bind(&lease.principal)
                        .bind(&lease.username)
                        .bind(PENDING)
                        .bind(lease.issued_at)
                        .bind(lease.expires_at)
                        .bind(lease.max_expires_at)
                        .bind(lease.due_at),
                    JournalEffect::ActivateLease { id, at } => sqlx::query(ACTIVATE)
                        .bind(*id)
                        .bind(ACTIVE)
                        .bind(*at)
                        .bind(PENDING),
                    JournalEffect::ExtendLease { id, expires_at, at } => sqlx::query(EXTEND)
                        .bind(*id)
                        .bind(*expires_at)
                        .bind(*at)
                        .bind(ACTIVE),
                    JournalEffect::InsertRevocationJob(job) => sqlx::query(INSERT_JOB)
                        .bind(job.id)
                        .bind(&job.tenant)
                        .bind(&job.selector)
                        .bind(&job.reason)
                        .bind(&job.ticket)
                        .bind(&job.requested_by)
                        .bind(&job.state)
                        .bind(job.total)
                        .bind(job.created_at)
                        .bind(job.fence_until),
                    JournalEffect::LiftFence { tenant, job } => {
                        sqlx::query(LIFT_FENCE).bind(tenant).bind(*job)
                    }
                };
                applied.push(query.execute(&mut *tx).await?.rows_affected() == 1);
            }
            tx.commit().await?;
        });
        Ok(AppendedBatch {
            placed,
            applied,
            head,
        })
    }

    /// Up to `limit` events of the whole chain after `after_seq`, in order (for verification).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn audit_chain_page(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The chain head: last sequence number and hash.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, Vec<u8>)>("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?
        }))
    }

    /// A tenant's events matching `filter`, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn query_audit(&self, filter: &AuditFilter<'_>) -> StoreResult<Vec<AuditRow>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant = $1 \
             AND ($2 IS NULL OR principal = $2) \
             AND ($3 IS NULL OR substr(COALESCE(environment, '') || '/' || COALESCE(path, ''), 1, length($3)) = $3) \
             AND ($4 IS NULL OR event_type = $4) \
             AND ($5 IS NULL OR decision = $5) \
             AND ($6 IS NULL OR created_at >= $6) \
             AND ($7 IS NULL OR created_at < $7) \
             AND seq > $8 ORDER BY seq LIMIT $9"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
                .bind(filter.tenant)
                .bind(filter.principal)
                .bind(filter.path_prefix)
                .bind(filter.event_type)
                .bind(filter.decision)
                .bind(filter.since)
                .bind(filter.until)
                .bind(filter.after_seq)
                .bind(filter.limit)
                .fetch_all(pool)
                .await?
        }))
    }
}

/// One line of an audit summary: who or what, how many, and when last.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SummaryRow {
    pub subject: String,
    pub count: i64,
    pub last_at: Option<DateTime<Utc>>,
}

/// The summaries `GET /v1/audit/summary/{kind}` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryKind {
    ReadsByPrincipal,
    ReadsBySecret,
    BreakGlassReads,
    DeniedReads,
    RotationsByTeam,
    /// Secrets whose newest version is older than the cutoff (or that have none).
    StaleSecrets,
}

impl SummaryKind {
    /// Every kind, by its name in the API and the CLI.
    pub const NAMES: [&str; 6] = [
        "reads-by-principal",
        "reads-by-secret",
        "break-glass-reads",
        "denied-reads",
        "rotations-by-team",
        "stale-secrets",
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "reads-by-principal" => Self::ReadsByPrincipal,
            "reads-by-secret" => Self::ReadsBySecret,
            "break-glass-reads" => Self::BreakGlassReads,
            "denied-reads" => Self::DeniedReads,
            "rotations-by-team" => Self::RotationsByTeam,
            "stale-secrets" => Self::StaleSecrets,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Self::ReadsByPrincipal => {
                "SELECT principal AS subject, COUNT(*) AS count, MAX(created_at) AS last_at FROM audit_events \
                 WHERE tenant = $1 AND created_at >= $2 AND decision = 'ALLOW' \
                 AND event_type IN ('SECRET_READ', 'BREAK_GLASS_READ') \
                 GROUP BY principal ORDER BY count DESC, subject LIMIT 1000"
            }
            Self::ReadsBySecret => {
                "SELECT environment || '/' || path AS subject, COUNT(*) AS count, MAX(created_at) AS last_at \
                 FROM audit_events WHERE tenant = $1 AND created_at >= $2 AND decision = 'ALLOW' \
                 AND event_type IN ('SECRET_READ', 'BREAK_GLASS_READ') \
                 GROUP BY environment, path ORDER BY count DESC, subject LIMIT 1000"
            }
            Self::BreakGlassReads => {
                "SELECT principal || ' ' || environment || '/' || path AS subject, COUNT(*) AS count, \
                 MAX(created_at) AS last_at FROM audit_events WHERE tenant = $1 AND created_at >= $2 \
                 AND event_type = 'BREAK_GLASS_READ' GROUP BY principal, environment, path \
                 ORDER BY count DESC, subject LIMIT 1000"
            }
            Self::DeniedReads => {
                "SELECT principal || ' ' || COALESCE(environment, '') || '/' || COALESCE(path, '') AS subject, \
                 COUNT(*) AS count, MAX(created_at) AS last_at FROM audit_events WHERE tenant = $1 \
                 AND created_at >= $2 AND event_type = 'ACCESS_DENIED' \
                 AND detail LIKE '%\"action\":\"secrets:read\"%' \
                 GROUP BY principal, environment, path ORDER BY count DESC, subject LIMIT 1000"
            }
            Self::RotationsByTeam => {
                "SELECT s.owner_team AS subject, COUNT(*) AS count, MAX(a.created_at) AS last_at \
                 FROM audit_events a JOIN secrets s ON s.tenant = a.tenant \
                 AND s.environment = a.environment AND s.path = a.path \
                 WHERE a.tenant = $1 AND a.created_at >= $2 AND a.decision = 'ALLOW' \
                 AND ((a.event_type = 'ALIAS_PROMOTE' AND a.detail LIKE '%\"alias\":\"current\"%') \
                 OR (a.event_type = 'ROTATION_STEP' AND a.detail LIKE '%\"step\":\"promoted\"%')) \
                 GROUP BY s.owner_team ORDER BY count DESC, subject LIMIT 1000"
            }
            // Also every secret past its own rotation deadline (`$3` is now).
            Self::StaleSecrets => {
                "SELECT s.environment || '/' || s.path AS subject, s.latest_version AS count, \
                 MAX(v.created_at) AS last_at FROM secrets s \
                 LEFT JOIN secret_versions v ON v.secret_id = s.id \
                 LEFT JOIN rotation_policies p ON p.secret_id = s.id \
                 WHERE s.tenant = $1 GROUP BY s.environment, s.path, s.latest_version \
                 HAVING MAX(v.created_at) IS NULL OR MAX(v.created_at) < $2 \
                 OR MAX(p.deadline_at) < $3 \
                 ORDER BY subject LIMIT 1000"
            }
        }
    }
}

impl Store {
    /// One summary of a tenant's trail since `since` (for `StaleSecrets`: secrets with no version
    /// newer than `since`, and secrets past their rotation deadline).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn audit_summary(
        &self,
        tenant: &str,
        kind: SummaryKind,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<SummaryRow>> {
        Ok(on_pool!(self, pool => {
            let query = sqlx::query_as::<_, SummaryRow>(kind.sql())
                .bind(tenant)
                .bind(since);
            let query = if kind == SummaryKind::StaleSecrets {
                query.bind(Utc::now())
            } else {
                query
            };
            query.fetch_all(pool).await?
        }))
    }
}
