//! `leasehold bench revoke`: a mass revocation of N leases, timed from the request until the
//! broker answers that the job is COMPLETED (every drop returned), then checked on the target:
//! the bench fails if any user is left. Next to it, the physical limit measured in the same run — a
//! plain client dropping the same number of users of the same role, 50 per round trip, over the
//! same number of connections. While the job runs, the backend admin's sessions on the target are
//! sampled, to show that the job never opens more connections than the backend's pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::bench_drop::{DropBenchTarget, checkpoint, issue_leases, plain_drop};
use super::bench_leases::RawConn;
use super::output::out;
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Args)]
pub struct RevokeBenchArgs {
    #[command(flatten)]
    target: DropBenchTarget,
}

fn other(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Other(format!("{what}: {e}"))
}

pub async fn revoke(client_args: &ClientArgs, args: RevokeBenchArgs) -> Result<(), CliError> {
    let client = ApiClient::with_pool(client_args, 32)?;
    let target = &args.target;
    eprintln!(
        "plain client: creating and dropping {} users…",
        target.leases
    );
    let plain = plain_drop(&client, target).await?;
    let role: Value = client
        .call(
            Method::GET,
            &format!("/v1/roles/{}", target.role),
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

    // The broker: issue the leases (not timed), then revoke them in one job (timed until the
    // last user is gone).
    eprintln!("broker: issuing {} leases…", target.leases);
    let issued_after = chrono::Utc::now();
    let usernames: Vec<String> = issue_leases(&client, target)
        .await?
        .iter()
        .map(|lease| lease["username"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut sampler_conn = RawConn::connect(&target.baseline_url).await?;
    checkpoint(&mut sampler_conn).await;
    let most_sessions = Arc::new(AtomicI64::new(0));
    let (stop_sampling, stop) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_sessions(
        sampler_conn,
        admin.clone(),
        Arc::clone(&most_sessions),
        stop,
    ));

    eprintln!("broker: revoking them in one job…");
    let request = json!({
        "selector": {"role": target.role, "issuedAfter": issued_after},
        "reason": "leasehold bench revoke", "ticket": "BENCH", "fenceTtl": "10m",
    });
    let started = Instant::now();
    let accepted: Value = client
        .call(Method::POST, "/v1/revocations", Some(&request))
        .await?;
    let job_id = accepted["jobId"].as_str().unwrap_or_default().to_owned();
    let job = loop {
        // The broker answers as soon as the job finishes: the bench neither misses the moment
        // nor loads the broker with polls.
        let job: Value = client
            .call(
                Method::GET,
                &format!("/v1/revocations/{job_id}?wait=60s"),
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
    };
    // The job answers COMPLETED once every drop has returned, as the plain client's clock stops
    // when its last drop returns; the count after the clock checks that no user is left.
    let broker_elapsed = started.elapsed();
    let _ = stop_sampling.send(());
    let mut checker = sampler
        .await
        .map_err(|e| CliError::Other(format!("session sampler: {e}")))?;
    let left = checker
        .count_users(&usernames)
        .await
        .map_err(other("counting users"))?;
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

    let ratio = broker_elapsed.as_secs_f64() / plain.elapsed.as_secs_f64().max(1e-9);
    let sessions = most_sessions.load(Ordering::Relaxed);
    let report = json!({
        "leases": target.leases,
        "connections": target.connections,
        "backendPool": pool,
        "plainDropped": plain.dropped,
        "plainSeconds": plain.elapsed.as_secs_f64(),
        "brokerSeconds": broker_elapsed.as_secs_f64(),
        "brokerOverPlain": ratio,
        "revoked": job["revoked"],
        "mostAdminSessions": sessions,
    });
    if client_args.json {
        out!("{report:#}");
    } else {
        out!(
            "bench revoke: {} leases, {} connections: plain client dropped {} users in {:.2} s; the job revoked {} leases, every user gone, in {:.2} s ({:.2}× the plain client); at most {sessions} admin sessions (pool {pool})",
            target.leases,
            target.connections,
            plain.dropped,
            plain.elapsed.as_secs_f64(),
            job["revoked"],
            broker_elapsed.as_secs_f64(),
            ratio
        );
    }
    Ok(())
}

/// Samples the admin's open sessions every 25 ms until told to stop, then answers its
/// connection at once (for the final count of users left).
async fn sample_sessions(
    mut conn: RawConn,
    admin: String,
    most: Arc<AtomicI64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> RawConn {
    loop {
        if let Ok(count) = conn.sessions_of(&admin).await {
            most.fetch_max(count, Ordering::Relaxed);
        }
        tokio::select! {
            _ = &mut stop => return conn,
            () = tokio::time::sleep(Duration::from_millis(25)) => {}
        }
    }
}
