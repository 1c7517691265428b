//! What `bench expiry` and `bench revoke` share: the bench target (a role, a lease count, the
//! plain client's connections and server), the plain client's timed drop of as many users, and
//! issuing the broker's leases.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use super::bench_leases::{
    RawConn, RawWorker, connect_all, password_forms, raw_cleanup, raw_create, role_statements,
};
use super::{ApiClient, CliError};

#[derive(Args)]
pub struct DropBenchTarget {
    /// A role on a PostgreSQL or MySQL backend whose `maxOpenConnections` equals `--connections`.
    #[arg(long)]
    pub role: String,
    #[arg(long, default_value_t = 10_000)]
    pub leases: usize,
    /// The plain client's connections (set the backend's `maxOpenConnections` to the same).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// The plain client's connection to the role's database server (see `bench issue`).
    #[arg(long, env = "LEASEHOLD_BENCH_BASELINE_URL", hide_env_values = true)]
    pub baseline_url: String,
}

impl std::fmt::Debug for DropBenchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropBenchTarget")
            .field("role", &self.role)
            .field("leases", &self.leases)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// The physical limit: how long the plain client took to drop `dropped` users.
pub struct PlainDrop {
    pub dropped: usize,
    pub elapsed: Duration,
}

/// Creates `target.leases` users with the role's creation statements (not timed), then drops
/// them all with its revocation statements, 50 per round trip, every connection in parallel
/// (timed). The plain client's connections are closed when it returns.
///
/// # Errors
/// Bad arguments, an unreachable server, statements that do not parse for its dialect.
pub async fn plain_drop(
    client: &ApiClient,
    target: &DropBenchTarget,
) -> Result<PlainDrop, CliError> {
    if target.leases == 0 || target.connections == 0 {
        return Err(CliError::Usage(
            "--leases and --connections must be at least 1".into(),
        ));
    }
    let mut raw: Vec<RawWorker> = connect_all(&target.baseline_url, target.connections).await?;
    let dialect = raw[0].conn.dialect();
    let statements = role_statements(client, &target.role, dialect).await?;
    let forms = password_forms(dialect, &statements, 64);
    let per_worker = target.leases.div_ceil(target.connections);
    join_all(raw.iter_mut().map(|worker| {
        let (statements, forms) = (&statements, &forms);
        async move {
            for _ in 0..per_worker {
                raw_create(worker, statements, forms).await;
            }
        }
    }))
    .await;
    let created: usize = raw.iter().map(|w| w.created.len()).sum();
    checkpoint(&mut raw[0].conn).await;
    let started = Instant::now();
    let failures = raw_cleanup(&mut raw, &statements).await;
    Ok(PlainDrop {
        dropped: created - failures,
        elapsed: started.elapsed(),
    })
}

/// Checkpoints the target before a timed phase, so that neither the plain client nor the broker
/// is timed while the server writes out the other's pages. Without the privilege the phases run
/// anyway, with a warning: their figures are then noisier.
pub async fn checkpoint(conn: &mut RawConn) {
    if let Err(error) = conn.checkpoint().await {
        eprintln!(
            "warning: could not CHECKPOINT the target before a timed phase ({error}); \
             grant pg_checkpoint to the bench's user for steadier figures"
        );
    }
}

/// Issues `target.leases` leases of the role with a one-hour TTL, 32 at a time; answers them.
///
/// # Errors
/// The first refused issue.
pub async fn issue_leases(
    client: &ApiClient,
    target: &DropBenchTarget,
) -> Result<Vec<Value>, CliError> {
    let mut leases = Vec::with_capacity(target.leases);
    let body = json!({"role": target.role, "ttl": "1h"});
    for chunk in (0..target.leases).collect::<Vec<_>>().chunks(32) {
        let issued = join_all(
            chunk
                .iter()
                .map(|_| client.call::<Value>(Method::POST, "/v1/leases", Some(&body))),
        )
        .await;
        for lease in issued {
            leases.push(lease?);
        }
    }
    Ok(leases)
}
