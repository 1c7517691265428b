//! `leasehold bench expiry`: how fast the scheduler revokes a crowd of leases that come due in the
//! same second, next to the physical limit measured in the same run — a plain client dropping the
//! same number of users of the same role, 50 per round trip, over the same number of connections.
//!
//! Issuing 10,000 leases takes longer than a second, so their expiries would spread out. The bench
//! therefore issues them with a long TTL and then moves their due time to one instant a few
//! seconds ahead, through the broker's store (`--store-url`, PostgreSQL or SQLite): the scheduler
//! then finds them all due at once, as after an outage or a mass expiry. The clock runs from that
//! instant to the last lease's revocation time as the scheduler recorded it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::bench::parse_duration;
use super::bench_drop::{DropBenchTarget, checkpoint, issue_leases, plain_drop};
use super::bench_leases::RawConn;
use super::output::out;
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Args)]
pub struct ExpiryBenchArgs {
    #[command(flatten)]
    target: DropBenchTarget,
    /// The broker's store (`postgres://…` or `sqlite://PATH`), to move the bench leases' due time
    /// to one instant.
    #[arg(long, env = "LEASEHOLD_BENCH_STORE_URL", hide_env_values = true)]
    store_url: String,
    /// How long after issuing the leases all come due, at one instant. At least the
    /// scheduler's longest sleep (5 s) and a second, so that its next look finds them due.
    #[arg(long, default_value = "7s", value_parser = parse_duration)]
    ttl: Duration,
}

/// The shortest `--ttl`: the scheduler's longest sleep (5 s) and a second to spare, since moving
/// the due time in the store does not wake it.
const SHORTEST_TTL: Duration = Duration::from_secs(6);

/// How often the bench looks whether the scheduler is done.
const LOOK_EVERY: Duration = Duration::from_secs(1);

pub async fn expiry(client_args: &ClientArgs, args: ExpiryBenchArgs) -> Result<(), CliError> {
    if args.ttl < SHORTEST_TTL {
        return Err(CliError::Usage(format!(
            "--ttl must be at least {}s: the scheduler may sleep 5 s before it looks again",
            SHORTEST_TTL.as_secs()
        )));
    }
    let client = ApiClient::with_pool(client_args, 32)?;
    let target = &args.target;
    let plain = plain_drop(&client, target).await?;

    // The broker: issue, bring every lease due at one instant, wait for the scheduler.
    eprintln!("issuing {} leases…", target.leases);
    let ids: Vec<String> = issue_leases(&client, target)
        .await?
        .iter()
        .map(|lease| lease["leaseId"].as_str().unwrap_or_default().to_owned())
        .collect();
    let uuids: Vec<Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    let mut store = BenchStore::connect(&args.store_url, &uuids).await?;
    checkpoint(&mut RawConn::connect(&target.baseline_url).await?).await;
    let due = Utc::now() + chrono::Duration::from_std(args.ttl).unwrap_or_default();
    store.move_due(due).await?;
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
    let waited = Instant::now();
    loop {
        let live = store.live().await?;
        if live == 0 {
            break;
        }
        if waited.elapsed() > Duration::from_secs(600) {
            return Err(CliError::Other(format!(
                "{live} leases still live after 10 minutes"
            )));
        }
        // Each look is a lookup of every bench lease in the store the scheduler is writing to
        // (about 20 ms of the store's CPU at 10,000 leases), so it slows down what is measured;
        // it only tells that the work is over, which may be learnt late.
        tokio::time::sleep(LOOK_EVERY).await;
    }
    // The clock stops at the last revocation as the scheduler recorded it: `revoked_at` is
    // taken when a round's drops have returned, as the plain client's clock stops when its
    // last drop returns; the looks above only tell that the work is over.
    let last_revoked = store
        .last_revoked()
        .await?
        .ok_or_else(|| CliError::Other("the revoked leases carry no revocation time".into()))?;
    let broker_elapsed = (last_revoked - due).to_std().unwrap_or_default();
    let ratio = broker_elapsed.as_secs_f64() / plain.elapsed.as_secs_f64().max(1e-9);
    let report = json!({
        "leases": target.leases,
        "connections": target.connections,
        "plainDropped": plain.dropped,
        "plainSeconds": plain.elapsed.as_secs_f64(),
        "brokerSeconds": broker_elapsed.as_secs_f64(),
        "brokerOverPlain": ratio,
    });
    if client_args.json {
        out!("{report:#}");
    } else {
        out!(
            "bench expiry: {} leases, {} connections: plain client dropped {} users in {:.2} s; the scheduler revoked all leases in {:.2} s ({ratio:.2}× the plain client)",
            target.leases,
            target.connections,
            plain.dropped,
            plain.elapsed.as_secs_f64(),
            broker_elapsed.as_secs_f64(),
        );
    }
    Ok(())
}

/// The bench's own connection to the broker's store, knowing the bench leases' ids.
enum BenchStore {
    Postgres(PgConnection, Vec<Uuid>),
    /// The ids sit in a temporary table of this connection (`bench_leases`), which SQLite keeps
    /// outside the store file.
    Sqlite(SqliteConnection),
}

impl BenchStore {
    async fn connect(url: &str, ids: &[Uuid]) -> Result<Self, CliError> {
        let failed = |e: sqlx::Error| CliError::Other(format!("store connection: {e}"));
        if !url.starts_with("sqlite:") {
            let conn = PgConnection::connect(url).await.map_err(failed)?;
            return Ok(Self::Postgres(conn, ids.to_vec()));
        }
        let mut conn = SqliteConnection::connect(url).await.map_err(failed)?;
        sqlx::query("CREATE TEMP TABLE bench_leases (id BLOB PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .map_err(failed)?;
        let mut tx = conn.begin().await.map_err(failed)?;
        for id in ids {
            sqlx::query("INSERT INTO bench_leases (id) VALUES ($1)")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(Self::Sqlite(conn))
    }

    /// Sets every bench lease's expiry and due time to `due`.
    async fn move_due(&mut self, due: DateTime<Utc>) -> Result<(), CliError> {
        let moved = match self {
            Self::Postgres(conn, ids) => {
                sqlx::query("UPDATE leases SET expires_at = $1, due_at = $1 WHERE id = ANY($2)")
                    .bind(due)
                    .bind(&*ids)
                    .execute(conn)
                    .await
                    .map(drop)
            }
            Self::Sqlite(conn) => sqlx::query(
                "UPDATE leases SET expires_at = $1, due_at = $1 \
                 WHERE id IN (SELECT id FROM temp.bench_leases)",
            )
            .bind(due)
            .execute(conn)
            .await
            .map(drop),
        };
        moved.map_err(|e| CliError::Other(format!("moving the due time: {e}")))
    }

    /// How many bench leases are not REVOKED yet.
    async fn live(&mut self) -> Result<i64, CliError> {
        let live =
            match self {
                Self::Postgres(conn, ids) => {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM leases WHERE id = ANY($1) AND state <> 'REVOKED'",
                    )
                    .bind(&*ids)
                    .fetch_one(conn)
                    .await
                }
                Self::Sqlite(conn) => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM leases WHERE id IN (SELECT id FROM temp.bench_leases) \
                     AND state <> 'REVOKED'",
                )
                .fetch_one(conn)
                .await,
            };
        live.map_err(|e| CliError::Other(format!("counting live leases: {e}")))
    }

    /// The latest revocation time among the bench leases.
    async fn last_revoked(&mut self) -> Result<Option<DateTime<Utc>>, CliError> {
        let last =
            match self {
                Self::Postgres(conn, ids) => {
                    sqlx::query_scalar("SELECT MAX(revoked_at) FROM leases WHERE id = ANY($1)")
                        .bind(&*ids)
                        .fetch_one(conn)
                        .await
                }
                // The store writes times as RFC 3339 text, which sorts as time does; the newest is
                // read back through the driver's own decoding.
                Self::Sqlite(conn) => sqlx::query_scalar(
                    "SELECT revoked_at FROM leases WHERE id IN (SELECT id FROM temp.bench_leases) \
                     AND revoked_at IS NOT NULL ORDER BY revoked_at DESC LIMIT 1",
                )
                .fetch_optional(conn)
                .await,
            };
        last.map_err(|e| CliError::Other(format!("reading the revocation times: {e}")))
    }
}
