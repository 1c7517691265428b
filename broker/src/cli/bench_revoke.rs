//! `leasehold bench revoke`: a mass revocation of N leases, timed from the request until every
//! user is really gone from the target, next to the physical limit measured in the same run — a
//! plain client dropping the same number of users of the same role, 50 per round trip, over the
//! same number of connections. While the job runs, the backend admin's sessions on the target are
//! sampled, to show that the job never opens more connections than the backend's pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use super::bench_leases::{
    RawConn, connect_all, password_forms, raw_cleanup, raw_create, role_statements,
};
use super::{ApiClient, CliError, ClientArgs};

#[derive(Args)]
pub struct RevokeBenchArgs {
    /// A role on a PostgreSQL or MySQL backend whose `maxOpenConnections` equals `--connections`.
    #[arg(long)]
    role: String,
    #[arg(long, default_value_t = 10_000)]
    leases: usize,
    /// The plain client's connections (set the backend's `maxOpenConnections` to the same).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The plain client's connection to the role's database server (see `bench issue`).
    #[arg(long, env = "LEASEHOLD_BENCH_BASELINE_URL", hide_env_values = true)]
    baseline_url: String,
}

impl std::fmt::Debug for RevokeBenchArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeBenchArgs")
            .field("role", &self.role)
            .field("leases", &self.leases)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

fn other(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Other(format!("{what}: {e}"))
}

pub async fn revoke(client_args: &ClientArgs, args: RevokeBenchArgs) -> Result<(), CliError> {
    if args.leases == 0 || args.connections == 0 {
        return Err(CliError::Usage(
            "--leases and --connections must be at least 1".into(),
        ));
    }
    let client = ApiClient::with_pool(client_args, 32)?;
    let mut raw = connect_all(&args.baseline_url, args.connections).await?;
    let dialect = raw[0].conn.dialect();
    let statements = role_statements(&client, &args.role, dialect).await?;
    let role: Value = client
        .call(
            Method::GET,
            &format!("/v1/roles/{}", args.role),
            None::<&()>,
        )
        .await?;
    let backend = role["backend"].as_str().unwrap_or_default().to_owned();
    let backend: Value = client
        .call(Method::GET, &format!("/v1/backends/{backend}"), None::<&()>)
        .await?;
    let admin = backend["connection"]["username"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pool = backend["maxOpenConnections"].as_i64().unwrap_or_default();

    // The plain client: create the users (not timed), then drop them all (timed).
    eprintln!("plain client: creating and dropping {} users…", args.leases);
    let forms = password_forms(dialect, 64);
    let per_worker = args.leases.div_ceil(args.connections);
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
    let started = Instant::now();
    let raw_failures = raw_cleanup(&mut raw, &statements).await;
    let raw_elapsed = started.elapsed();
    // Its connections close, so that the sessions sampled below are the broker's.
    drop(raw);

    // The broker: issue the leases (not timed), then revoke them in one job (timed until the
    // last user is gone).
    eprintln!("broker: issuing {} leases…", args.leases);
    let issued_after = chrono::Utc::now();
    let mut usernames = Vec::with_capacity(args.leases);
    let body = json!({"role": args.role, "ttl": "1h"});
    for chunk in (0..args.leases).collect::<Vec<_>>().chunks(32) {
        let issued = join_all(
            chunk
                .iter()
                .map(|_| client.call::<Value>(Method::POST, "/v1/leases", Some(&body))),
        )
        .await;
        for lease in issued {
            usernames.push(lease?["username"].as_str().unwrap_or_default().to_owned());
        }
    }
    let sampler_conn = RawConn::connect(&args.baseline_url).await?;
    let most_sessions = Arc::new(AtomicI64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample_sessions(
        sampler_conn,
        admin.clone(),
        Arc::clone(&most_sessions),
        Arc::clone(&sampling),
    ));

    eprintln!("broker: revoking them in one job…");
    let request = json!({
        "selector": {"role": args.role, "issuedAfter": issued_after},
        "reason": "leasehold bench revoke", "ticket": "BENCH", "fenceTtl": "10m",
    });
    let started = Instant::now();
    let accepted: Value = client
        .call(Method::POST, "/v1/revocations", Some(&request))
        .await?;
    let job_id = accepted["jobId"].as_str().unwrap_or_default().to_owned();
    let job = loop {
        let job: Value = client
            .call(
                Method::GET,
                &format!("/v1/revocations/{job_id}"),
                None::<&()>,
            )
            .await?;
        if job["state"] != "RUNNING" {
            break job;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(CliError::Other(format!(
                "job {job_id} still running after 30 minutes"
            )));
        }
        // Each look reads the job's counts from the store; looking more often would slow the job.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    sampling.store(false, Ordering::Relaxed);
    let mut checker = sampler
        .await
        .map_err(|e| CliError::Other(format!("session sampler: {e}")))?;
    let left = checker
        .count_users(&usernames)
        .await
        .map_err(other("counting users"))?;
    let broker_elapsed = started.elapsed();
    let _: Value = client
        .call(
            Method::DELETE,
            &format!("/v1/revocations/{job_id}/fence"),
            None::<&()>,
        )
        .await?;
    if left > 0 || job["state"] != "COMPLETED" {
        return Err(CliError::Other(format!(
            "job {job_id} ended {} with {left} users still on the target",
            job["state"]
        )));
    }

    let ratio = broker_elapsed.as_secs_f64() / raw_elapsed.as_secs_f64().max(1e-9);
    let sessions = most_sessions.load(Ordering::Relaxed);
    let report = json!({
        "leases": args.leases,
        "connections": args.connections,
        "backendPool": pool,
        "plainDropped": created - raw_failures,
        "plainSeconds": raw_elapsed.as_secs_f64(),
        "brokerSeconds": broker_elapsed.as_secs_f64(),
        "brokerOverPlain": ratio,
        "revoked": job["revoked"],
        "mostAdminSessions": sessions,
    });
    if client_args.json {
        println!("{report:#}");
    } else {
        println!(
            "bench revoke: {} leases, {} connections: plain client dropped {} users in {:.2} s; the job revoked {} leases, every user gone, in {:.2} s ({:.2}× the plain client); at most {sessions} admin sessions (pool {pool})",
            args.leases,
            args.connections,
            created - raw_failures,
            raw_elapsed.as_secs_f64(),
            job["revoked"],
            broker_elapsed.as_secs_f64(),
            ratio
        );
    }
    Ok(())
}

/// Samples the admin's open sessions every 25 ms while `running` holds; answers
/// its connection (for the final count of users left).
async fn sample_sessions(
    mut conn: RawConn,
    admin: String,
    most: Arc<AtomicI64>,
    running: Arc<AtomicBool>,
) -> RawConn {
    while running.load(Ordering::Relaxed) {
        if let Ok(count) = conn.sessions_of(&admin).await {
            most.fetch_max(count, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    conn
}
