//! `leasehold bench …`: load generators that report throughput and latency percentiles next to
//! the physical limit they are measured against, in the same run.
//!
//! `bench read` alternates rounds of the trivial authenticated route (`GET /v1/auth/self`: the
//! same server, auth included, no store read or decryption) with rounds of static reads, so that
//! machine noise hits both alike, and reports the medians and their ratio. `bench issue` and
//! `bench renew` (in `bench_leases`) do the same against a plain database client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::output::out;
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Static secret reads against the trivial authenticated route.
    Read(ReadArgs),
    /// Policy decisions in process, over a synthetic estate (no server needed).
    Policy(PolicyArgs),
    /// Lease issues against a plain client running the role's creation statements.
    Issue(super::bench_leases::LeaseBenchArgs),
    /// Lease renewals against a plain client running the role's renewal statements.
    Renew(super::bench_leases::LeaseBenchArgs),
    /// Many leases due in the same second, against a plain client dropping the same users.
    Expiry(super::bench_expiry::ExpiryBenchArgs),
    /// A mass revocation of many leases, against a plain client dropping the same users.
    Revoke(super::bench_revoke::RevokeBenchArgs),
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[arg(long, default_value_t = 1000)]
    policies: usize,
    #[arg(long, default_value_t = 10_000)]
    resources: usize,
    #[arg(long, default_value_t = 1_000_000)]
    decisions: usize,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Concurrent requests in flight (one connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of each measured phase, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Alternating rounds of (trivial route, reads); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Read this ENVIRONMENT/PATH instead of creating a bench secret.
    #[arg(long)]
    secret: Option<String>,
}

/// Parses `250ms`, `5s`, `2m`.
///
/// # Errors
/// When the text is not a number followed by `ms`, `s` or `m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s or m"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} must start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        _ => Err(format!("{text:?}: unit must be ms, s or m")),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub requests: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct ReadReport {
    concurrency: usize,
    duration_ms: u128,
    rounds: Vec<(PhaseResult, PhaseResult)>,
    trivial_median_rps: f64,
    read_median_rps: f64,
    read_median_p50_ms: f64,
    read_median_p99_ms: f64,
    ratio: f64,
}

pub async fn run(client: &ClientArgs, command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Read(args) => read(client, args).await,
        BenchCommand::Policy(args) => {
            policy(client, &args);
            Ok(())
        }
        BenchCommand::Issue(args) => super::bench_leases::issue(client, args).await,
        BenchCommand::Renew(args) => super::bench_leases::renew(client, args).await,
        BenchCommand::Expiry(args) => super::bench_expiry::expiry(client, args).await,
        BenchCommand::Revoke(args) => super::bench_revoke::revoke(client, args).await,
    }
}

async fn read(client_args: &ClientArgs, args: ReadArgs) -> Result<(), CliError> {
    if args.concurrency == 0 || args.rounds == 0 {
        return Err(CliError::Usage(
            "--concurrency and --rounds must be at least 1".into(),
        ));
    }
    let client = ApiClient::with_pool(client_args, args.concurrency)?;
    let location = match args.secret {
        Some(location) => location,
        None => create_bench_secret(&client).await?,
    };
    let read_path = format!("/v1/secrets/{location}");
    let mut rounds = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let trivial = phase(&client, "/v1/auth/self", args.concurrency, args.duration).await?;
        let reads = phase(&client, &read_path, args.concurrency, args.duration).await?;
        rounds.push((trivial, reads));
    }
    let trivial_median_rps = median(rounds.iter().map(|r| r.0.throughput));
    let read_median_rps = median(rounds.iter().map(|r| r.1.throughput));
    let report = ReadReport {
        concurrency: args.concurrency,
        duration_ms: args.duration.as_millis(),
        trivial_median_rps,
        read_median_rps,
        read_median_p50_ms: median(rounds.iter().map(|r| r.1.p50_ms)),
        read_median_p99_ms: median(rounds.iter().map(|r| r.1.p99_ms)),
        ratio: if trivial_median_rps > 0.0 {
            read_median_rps / trivial_median_rps
        } else {
            0.0
        },
        rounds,
    };
    if client_args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(CliError::other)?
        );
    } else {
        out!(
            "bench read: concurrency {}, {} rounds of {:?} per phase",
            report.concurrency,
            report.rounds.len(),
            args.duration
        );
        out!(
            "{:<7} {:>12} {:>9} {:>9} {:>12} {:>9} {:>9} {:>7}",
            "round",
            "trivial/s",
            "p50 ms",
            "p99 ms",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "errors"
        );
        for (i, (t, r)) in report.rounds.iter().enumerate() {
            out!(
                "{:<7} {:>12.0} {:>9.3} {:>9.3} {:>12.0} {:>9.3} {:>9.3} {:>7}",
                i + 1,
                t.throughput,
                t.p50_ms,
                t.p99_ms,
                r.throughput,
                r.p50_ms,
                r.p99_ms,
                t.errors + r.errors
            );
        }
        out!(
            "median: trivial {:.0}/s, reads {:.0}/s (p50 {:.3} ms, p99 {:.3} ms): reads reach {:.0}% of the trivial route",
            report.trivial_median_rps,
            report.read_median_rps,
            report.read_median_p50_ms,
            report.read_median_p99_ms,
            report.ratio * 100.0
        );
    }
    Ok(())
}

/// Times each decision of a random mix of principals, actions and resources.
fn policy(client: &ClientArgs, args: &PolicyArgs) {
    use crate::policy::{Action, Subject, synthetic};
    use rand::RngExt;

    let estate = synthetic::estate(args.policies, args.resources.max(1));
    let actions = [
        Action::SecretsRead,
        Action::SecretsList,
        Action::SecretsRotate,
        Action::SecretsWrite,
    ];
    let mut rng = rand::rng();
    let mut latencies = Vec::with_capacity(args.decisions);
    let mut allowed = 0usize;
    let started = Instant::now();
    for _ in 0..args.decisions {
        // Half the decisions ask about the principal's own team, where statements match and
        // resource globs and conditions are evaluated; half about a random team.
        let who = rng.random_range(0..estate.principals.len());
        let principal = &estate.principals[who];
        let teams = args.policies.max(1);
        let index = if rng.random_bool(0.5) {
            let per_team = estate.resources.len().div_ceil(teams).max(1);
            (who / 2 + teams * rng.random_range(0..per_team)) % estate.resources.len()
        } else {
            rng.random_range(0..estate.resources.len())
        };
        let resource = &estate.resources[index];
        let action = actions[rng.random_range(0..actions.len())];
        let subject = Subject {
            principal,
            mfa: true,
            has_ticket: true,
            ..Subject::default()
        };
        let t = Instant::now();
        let decision = estate.set.evaluate(&subject, action, resource);
        latencies.push(t.elapsed().as_nanos() as u64);
        allowed += usize::from(decision.allowed);
    }
    let total = started.elapsed();
    latencies.sort_unstable();
    let pick =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    let report = serde_json::json!({
        "policies": args.policies, "statements": estate.set.statement_count(), "resources": args.resources,
        "decisions": args.decisions, "allowed": allowed,
        "p50_us": pick(0.5), "p99_us": pick(0.99), "max_us": pick(1.0),
        "decisions_per_second": args.decisions as f64 / total.as_secs_f64(),
    });
    if client.json {
        out!("{report:#}");
    } else {
        out!(
            "bench policy: {} policies ({} statements), {} resources, {} decisions ({} allowed): p50 {:.2} µs, p99 {:.2} µs, max {:.1} µs, {:.0} decisions/s on one core",
            args.policies,
            estate.set.statement_count(),
            args.resources,
            args.decisions,
            allowed,
            pick(0.5),
            pick(0.99),
            pick(1.0),
            args.decisions as f64 / total.as_secs_f64()
        );
    }
}

async fn create_bench_secret(client: &ApiClient) -> Result<String, CliError> {
    let path = format!("bench/read-{}", uuid::Uuid::new_v4().simple());
    let created: Value = client
        .call(
            Method::POST,
            "/v1/secrets",
            Some(&json!({"environment": "bench", "path": path, "ownerTeam": "bench"})),
        )
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let _: Value = client
        .call(
            Method::POST,
            &format!("/v1/secrets/{id}/versions"),
            Some(&json!({"value": "x".repeat(64), "status": "CURRENT"})),
        )
        .await?;
    Ok(format!("bench/{path}"))
}

/// Runs `concurrency` workers issuing GET `path` back to back for `duration`.
async fn phase(
    client: &ApiClient,
    path: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<PhaseResult, CliError> {
    let url: Arc<str> = Arc::from(path);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = client
                    .call::<Value>(Method::GET, &url, None::<&()>)
                    .await
                    .is_ok();
                latencies.push(sent.elapsed().as_micros() as u32);
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut l, e) = worker.await.map_err(CliError::other)?;
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let ok = requests.saturating_sub(errors);
    Ok(PhaseResult {
        requests,
        errors,
        throughput: ok as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    })
}

pub(super) fn percentile(sorted_micros: &[u32], q: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let index = ((sorted_micros.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted_micros[index.min(sorted_micros.len() - 1)]) / 1000.0
}

pub(super) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn percentiles_and_medians() {
        let sorted: Vec<u32> = (1..=100).map(|v| v * 1000).collect();
        assert_eq!(percentile(&sorted, 0.5), 51.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0].into_iter()), 2.5);
    }
}
