//! `leasehold bench expiry`: how fast the scheduler revokes a crowd of leases that come due in the
//! same second, next to the physical limit measured in the same run — a plain client dropping the
//! same number of users of the same role, 50 per round trip, over the same number of connections.
//!
//! Issuing 10,000 leases takes longer than a second, so their expiries would spread out. The bench
//! therefore issues them with a long TTL and then moves their due time to one instant a few
//! seconds ahead, through the broker's store (`--store-url`): the scheduler then finds them all
//! due at once, as after an outage or a mass expiry. The clock runs from that instant until the
//! last lease reads REVOKED.

use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use super::bench_leases::{connect_all, password_forms, raw_cleanup, raw_create, role_statements};
use super::{ApiClient, CliError, ClientArgs};

#[derive(Args)]
pub struct ExpiryBenchArgs {
    /// A role on a PostgreSQL or MySQL backend whose `maxOpenConnections` equals `--connections`.
    #[arg(long)]
    role: String,
    #[arg(long, default_value_t = 10_000)]
    leases: usize,
    /// The plain client's connections (set the backend's `maxOpenConnections` to the same).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The broker's PostgreSQL store, to move the bench leases' due time to one instant.
    #[arg(long, env = "LEASEHOLD_BENCH_STORE_URL", hide_env_values = true)]
    store_url: String,
    /// The plain client's connection to the role's database server (see `bench issue`).
    #[arg(long, env = "LEASEHOLD_BENCH_BASELINE_URL", hide_env_values = true)]
    baseline_url: String,
}

impl std::fmt::Debug for ExpiryBenchArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiryBenchArgs")
            .field("role", &self.role)
            .field("leases", &self.leases)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// How far ahead the common due time is set: longer than the scheduler's longest sleep (5 s), so
/// its next look finds the leases exactly when they come due.
const DUE_AHEAD: Duration = Duration::from_secs(7);

pub async fn expiry(client_args: &ClientArgs, args: ExpiryBenchArgs) -> Result<(), CliError> {
    if args.leases == 0 || args.connections == 0 {
        return Err(CliError::Usage(
            "--leases and --connections must be at least 1".into(),
        ));
    }
    let client = ApiClient::with_pool(client_args, 32)?;
    let mut raw = connect_all(&args.baseline_url, args.connections).await?;
    let dialect = raw[0].conn.dialect();
    let statements = role_statements(&client, &args.role, dialect).await?;

    // The plain client: create the users (not timed), then drop them all (timed).
    let forms = password_forms(dialect, 64);
    let per_worker = args.leases.div_ceil(args.connections);
    let creating = raw.iter_mut().map(|worker| {
        let (statements, forms) = (&statements, &forms);
        async move {
            for _ in 0..per_worker {
                raw_create(worker, statements, forms).await;
            }
        }
    });
    join_all(creating).await;
    let created: usize = raw.iter().map(|w| w.created.len()).sum();
    let started = Instant::now();
    let raw_failures = raw_cleanup(&mut raw, &statements).await;
    let raw_elapsed = started.elapsed();

    // The broker: issue, bring every lease due at one instant, wait for the scheduler.
    eprintln!("issuing {} leases…", args.leases);
    let mut ids = Vec::with_capacity(args.leases);
    let body = json!({"role": args.role, "ttl": "1h"});
    for chunk in (0..args.leases).collect::<Vec<_>>().chunks(32) {
        let issued = join_all(
            chunk
                .iter()
                .map(|_| client.call::<Value>(Method::POST, "/v1/leases", Some(&body))),
        )
        .await;
        for lease in issued {
            ids.push(lease?["leaseId"].as_str().unwrap_or_default().to_owned());
        }
    }
    let uuids: Vec<uuid::Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    let mut store = sqlx::PgConnection::connect(&args.store_url)
        .await
        .map_err(|e| CliError::Other(format!("store connection: {e}")))?;
    let due = Utc::now() + chrono::Duration::from_std(DUE_AHEAD).unwrap_or_default();
    sqlx::query("UPDATE leases SET expires_at = $1, due_at = $1 WHERE id = ANY($2)")
        .bind(due)
        .bind(&uuids)
        .execute(&mut store)
        .await
        .map_err(|e| CliError::Other(format!("moving the due time: {e}")))?;
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
    let started = Instant::now();
    let broker_elapsed = loop {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM leases WHERE id = ANY($1) AND state <> 'REVOKED'",
        )
        .bind(&uuids)
        .fetch_one(&mut store)
        .await
        .map_err(|e| CliError::Other(format!("counting live leases: {e}")))?;
        if live == 0 {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(CliError::Other(format!(
                "{live} leases still live after 10 minutes"
            )));
        }
        // Each look is a lookup of every bench lease in the store the scheduler is writing to;
        // looking more often would slow down what is measured.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = json!({
        "leases": args.leases,
        "connections": args.connections,
        "plainDropped": created - raw_failures,
        "plainSeconds": raw_elapsed.as_secs_f64(),
        "brokerSeconds": broker_elapsed.as_secs_f64(),
        "brokerOverPlain": broker_elapsed.as_secs_f64() / raw_elapsed.as_secs_f64().max(1e-9),
    });
    if client_args.json {
        println!("{report:#}");
    } else {
        println!(
            "bench expiry: {} leases, {} connections: plain client dropped {} users in {:.2} s; the scheduler revoked all leases in {:.2} s ({:.2}× the plain client)",
            args.leases,
            args.connections,
            created - raw_failures,
            raw_elapsed.as_secs_f64(),
            broker_elapsed.as_secs_f64(),
            broker_elapsed.as_secs_f64() / raw_elapsed.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}
