//! `leasehold bench issue|renew`: the broker's lease throughput next to the physical limit
//! measured in the same run, the rate at which a plain client executes the role's own statements
//! (same password form, same group roles) on the same server over the same number of connections.
//!
//! The plain client gets every advantage: its password verifiers are computed before the clock
//! starts, and it has no intent row, no audit event and no HTTP. Rounds alternate (plain client,
//! broker) so machine noise hits both alike; medians are reported. Everything created is dropped
//! at the end: broker leases are revoked through the API, the plain client's users with the
//! role's revocation statements.

use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use futures_util::future::join_all;
use leasehold_plugins::hashing::{SCRAM_ITERATIONS, mysql_native_hash, scram_sha256_verifier};
use leasehold_plugins::list_form::revocation_script;
use leasehold_plugins::password::PasswordPolicy;
use leasehold_plugins::template::{Dialect, Purpose, Template, Values, parse_all};
use mysql_async::prelude::Queryable;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};

use super::bench::{PhaseResult, median, parse_duration, percentile};
use super::output::out;
use super::{ApiClient, CliError, ClientArgs};

#[derive(Args)]
pub struct LeaseBenchArgs {
    /// The role to issue (or renew) leases of.
    #[arg(long)]
    role: String,
    /// Requests in flight, and connections of the plain client.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of each measured phase, e.g. `10s`.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Alternating rounds of (plain client, broker); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The plain client's connection to the role's database server, as an admin that may run the
    /// role's statements: `postgres://user:pw@host:port/db` or `mysql://user:pw@host:port`.
    #[arg(long, env = "LEASEHOLD_BENCH_BASELINE_URL", hide_env_values = true)]
    baseline_url: String,
}

impl std::fmt::Debug for LeaseBenchArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseBenchArgs")
            .field("role", &self.role)
            .field("concurrency", &self.concurrency)
            .field("duration", &self.duration)
            .field("rounds", &self.rounds)
            .field("baseline_url", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Serialize)]
struct LeaseReport {
    operation: &'static str,
    role: String,
    concurrency: usize,
    duration_ms: u128,
    /// (plain client, broker) per round.
    rounds: Vec<(PhaseResult, PhaseResult)>,
    raw_median_per_second: f64,
    broker_median_per_second: f64,
    broker_median_p50_ms: f64,
    broker_median_p99_ms: f64,
    raw_median_p99_ms: f64,
    ratio: f64,
}

/// One connection of the plain client.
pub(super) enum RawConn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl RawConn {
    pub(super) async fn connect(url: &str) -> Result<Self, CliError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let config: tokio_postgres::Config = url
                .parse()
                .map_err(|_| CliError::Usage("--baseline-url is not a PostgreSQL URL".into()))?;
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| CliError::Other(format!("baseline connection: {e}")))?;
            tokio::spawn(connection);
            Ok(Self::Postgres(client))
        } else if url.starts_with("mysql://") {
            let opts = mysql_async::Opts::from_url(url)
                .map_err(|_| CliError::Usage("--baseline-url is not a MySQL URL".into()))?;
            // Over TCP like the plugin, not re-connected over the Unix socket.
            let opts = mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false);
            let conn = mysql_async::Conn::new(opts)
                .await
                .map_err(|e| CliError::Other(format!("baseline connection: {e}")))?;
            Ok(Self::Mysql(conn))
        } else {
            Err(CliError::Usage(
                "--baseline-url must start with postgres:// or mysql://".into(),
            ))
        }
    }

    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Self::Postgres(_) => Dialect::Postgres,
            Self::Mysql(_) => Dialect::Mysql,
        }
    }

    /// How many of `names` still exist as users on the server.
    pub(super) async fn count_users(&mut self, names: &[String]) -> Result<i64, String> {
        match self {
            Self::Postgres(client) => client
                .query_one(
                    "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
                    &[&names],
                )
                .await
                .map(|row| row.get(0))
                .map_err(|e| e.to_string()),
            Self::Mysql(conn) => {
                let mut count = 0;
                for chunk in names.chunks(1000) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let found: Option<i64> = conn
                        .exec_first(
                            format!("SELECT COUNT(*) FROM mysql.user WHERE user IN ({marks})"),
                            chunk.to_vec(),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    count += found.unwrap_or(0);
                }
                Ok(count)
            }
        }
    }

    /// How many sessions `user` has open on the server now, this one aside.
    pub(super) async fn sessions_of(&mut self, user: &str) -> Result<i64, String> {
        match self {
            Self::Postgres(client) => client
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", &[&user])
                .await
                .map(|row| row.get(0))
                .map_err(|e| e.to_string()),
            Self::Mysql(conn) => conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.processlist WHERE user = ? AND id <> CONNECTION_ID()",
                    (user,),
                )
                .await
                .map(|count: Option<i64>| count.unwrap_or(0))
                .map_err(|e| e.to_string()),
        }
    }

    /// Writes the server's dirty pages out now (PostgreSQL `CHECKPOINT`, which needs
    /// `pg_checkpoint`), so that a timed phase that follows does not share the disk with a
    /// checkpoint spread over minutes. MySQL has no such step.
    pub(super) async fn checkpoint(&mut self) -> Result<(), String> {
        match self {
            Self::Postgres(client) => client
                .batch_execute("CHECKPOINT")
                .await
                .map_err(|e| e.to_string()),
            Self::Mysql(_) => Ok(()),
        }
    }

    /// Runs `script` (statements joined by `;`) in one round trip.
    async fn execute(&mut self, script: &str) -> Result<(), String> {
        match self {
            Self::Postgres(client) => client
                .batch_execute(script)
                .await
                .map_err(|e| e.to_string()),
            Self::Mysql(conn) => conn.query_drop(script).await.map_err(|e| e.to_string()),
        }
    }
}

/// A password in the forms the statements take, computed before the clock starts.
pub(super) struct PasswordForms {
    password: String,
    hash: Option<String>,
}

/// `count` passwords in the forms the role's statements take: on PostgreSQL, verifiers of as many
/// rounds as the role's backend sends.
pub(super) fn password_forms(
    dialect: Dialect,
    statements: &RoleStatements,
    count: usize,
) -> Vec<PasswordForms> {
    (0..count)
        .map(|_| {
            let password = PasswordPolicy::default().generate();
            let password = password.expose_secret();
            match dialect {
                Dialect::Postgres => PasswordForms {
                    password: scram_sha256_verifier(password, statements.scram_iterations),
                    hash: None,
                },
                Dialect::Mysql => PasswordForms {
                    password: password.to_owned(),
                    hash: Some(mysql_native_hash(password)),
                },
            }
        })
        .collect()
}

fn render(templates: &[Template], dialect: Dialect, values: &Values<'_>) -> Result<String, String> {
    let rendered: Result<Vec<String>, _> = templates
        .iter()
        .map(|t| t.render(dialect, values))
        .collect();
    rendered.map(|r| r.join(";\n")).map_err(|e| e.message)
}

fn bench_username() -> String {
    format!(
        "lhbench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Runs every worker's `step` back to back until `duration` has passed.
async fn measure<W>(
    workers: &mut [W],
    duration: Duration,
    step: impl AsyncFn(&mut W) -> bool,
) -> PhaseResult {
    let started = Instant::now();
    let deadline = started + duration;
    let step = &step;
    let results = join_all(workers.iter_mut().map(|worker| async move {
        let mut latencies = Vec::with_capacity(1024);
        let mut errors = 0u64;
        while Instant::now() < deadline {
            let sent = Instant::now();
            let ok = step(worker).await;
            latencies.push(sent.elapsed().as_micros() as u32);
            errors += u64::from(!ok);
        }
        (latencies, errors)
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for (mut l, e) in results {
        latencies.append(&mut l);
        errors += e;
    }
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    PhaseResult {
        requests,
        errors,
        throughput: requests.saturating_sub(errors) as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    }
}

pub(super) struct RawWorker {
    pub(super) conn: RawConn,
    forms: usize,
    pub(super) created: Vec<String>,
}

/// The role's statements, fetched from the broker and parsed for the baseline's dialect, and the
/// SCRAM rounds of its backend's verifiers.
pub(super) struct RoleStatements {
    creation: Vec<Template>,
    renewal: Vec<Template>,
    revocation: Vec<Template>,
    scram_iterations: u32,
}

pub(super) async fn role_statements(
    client: &ApiClient,
    role: &str,
    dialect: Dialect,
) -> Result<RoleStatements, CliError> {
    let view: Value = client
        .call(Method::GET, &format!("/v1/roles/{role}"), None::<&()>)
        .await?;
    let list = |key: &str| -> Vec<String> {
        view[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let parse = |purpose, key: &str| {
        parse_all(dialect, purpose, &list(key)).map_err(|e| {
            CliError::Usage(format!(
                "the role's {key} do not parse for the baseline's dialect ({}): is --baseline-url the role's server?",
                e.message
            ))
        })
    };
    let backend = view["backend"].as_str().unwrap_or_default();
    let backend: Value = client
        .call(Method::GET, &format!("/v1/backends/{backend}"), None::<&()>)
        .await?;
    let scram_iterations = backend["connection"]["scramIterations"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(SCRAM_ITERATIONS);
    Ok(RoleStatements {
        creation: parse(Purpose::Creation, "creationStatements")?,
        renewal: parse(Purpose::Renewal, "renewStatements")?,
        revocation: parse(Purpose::Revocation, "revocationStatements")?,
        scram_iterations,
    })
}

pub(super) async fn connect_all(url: &str, count: usize) -> Result<Vec<RawWorker>, CliError> {
    let mut workers = Vec::with_capacity(count);
    for _ in 0..count {
        workers.push(RawWorker {
            conn: RawConn::connect(url).await?,
            forms: 0,
            created: Vec::new(),
        });
    }
    Ok(workers)
}

/// Creates a user with the role's creation statements; `false` on failure.
pub(super) async fn raw_create(
    worker: &mut RawWorker,
    statements: &RoleStatements,
    forms: &[PasswordForms],
) -> bool {
    let dialect = worker.conn.dialect();
    let form = &forms[worker.forms % forms.len()];
    worker.forms += 1;
    let username = bench_username();
    let values = Values {
        name: &username,
        password: Some(&form.password),
        password_hash: form.hash.as_deref(),
        expiration: Some(Utc::now() + chrono::Duration::minutes(10)),
    };
    let Ok(script) = render(&statements.creation, dialect, &values) else {
        return false;
    };
    let ok = worker.conn.execute(&script).await.is_ok();
    if ok {
        worker.created.push(username);
    }
    ok
}

/// Drops every user the plain client created, 50 per round trip, all connections in parallel,
/// with the same script as the plugin sends (the role's statements in list form where SQL
/// allows). Returns how many could not be dropped.
pub(super) async fn raw_cleanup(workers: &mut [RawWorker], statements: &RoleStatements) -> usize {
    let drops = workers.iter_mut().map(|worker| async move {
        let dialect = worker.conn.dialect();
        let users = std::mem::take(&mut worker.created);
        let mut failures = 0;
        for chunk in users.chunks(50) {
            let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let done = match revocation_script(dialect, &statements.revocation, &names) {
                Ok(script) => worker.conn.execute(&script).await.is_ok(),
                Err(_) => false,
            };
            failures += if done { 0 } else { chunk.len() };
        }
        failures
    });
    join_all(drops).await.into_iter().sum()
}

/// Revokes leases through the API, `concurrency` at a time.
pub(super) async fn revoke_leases(
    client: &ApiClient,
    ids: Vec<String>,
    concurrency: usize,
) -> usize {
    let mut failures = 0;
    for chunk in ids.chunks(concurrency.max(1)) {
        let empty = json!({});
        let results = join_all(chunk.iter().map(|id| {
            let empty = &empty;
            async move {
                client
                    .call::<Value>(
                        Method::POST,
                        &format!("/v1/leases/{id}/revoke"),
                        Some(empty),
                    )
                    .await
            }
        }))
        .await;
        failures += results.iter().filter(|r| r.is_err()).count();
    }
    failures
}

fn check(args: &LeaseBenchArgs) -> Result<(), CliError> {
    if args.concurrency == 0 || args.rounds == 0 {
        return Err(CliError::Usage(
            "--concurrency and --rounds must be at least 1".into(),
        ));
    }
    Ok(())
}

pub async fn issue(client_args: &ClientArgs, args: LeaseBenchArgs) -> Result<(), CliError> {
    check(&args)?;
    let client = ApiClient::with_pool(client_args, args.concurrency)?;
    let mut raw = connect_all(&args.baseline_url, args.concurrency).await?;
    let dialect = raw[0].conn.dialect();
    let statements = role_statements(&client, &args.role, dialect).await?;
    let forms = password_forms(dialect, &statements, 64);
    let body = json!({"role": args.role, "ttl": "10m"});
    let mut brokers: Vec<(ApiClient, Vec<String>)> = (0..args.concurrency)
        .map(|_| (client.clone(), Vec::new()))
        .collect();
    let mut rounds = Vec::with_capacity(args.rounds);
    let (mut issued, mut cleanup_failures) = (0, 0);
    for _ in 0..args.rounds {
        // Every phase starts from the same number of users: the plain client's are dropped and
        // the broker's revoked between phases (MariaDB's CREATE USER slows as users accumulate).
        let raw_phase = measure(&mut raw, args.duration, async |w: &mut RawWorker| {
            raw_create(w, &statements, &forms).await
        })
        .await;
        cleanup_failures += raw_cleanup(&mut raw, &statements).await;
        let broker_phase = measure(
            &mut brokers,
            args.duration,
            async |(c, issued): &mut (ApiClient, Vec<String>)| match c
                .call::<Value>(Method::POST, "/v1/leases", Some(&body))
                .await
            {
                Ok(lease) => {
                    issued.push(lease["leaseId"].as_str().unwrap_or_default().to_owned());
                    true
                }
                Err(_) => false,
            },
        )
        .await;
        let ids: Vec<String> = brokers
            .iter_mut()
            .flat_map(|(_, ids)| std::mem::take(ids))
            .collect();
        issued += ids.len();
        cleanup_failures += revoke_leases(&client, ids, args.concurrency).await;
        rounds.push((raw_phase, broker_phase));
    }
    report(client_args, "issue", &args, rounds)?;
    eprintln!(
        "cleanup: revoked the broker's {issued} leases and dropped the plain client's users ({cleanup_failures} failures)"
    );
    Ok(())
}

pub async fn renew(client_args: &ClientArgs, args: LeaseBenchArgs) -> Result<(), CliError> {
    check(&args)?;
    let client = ApiClient::with_pool(client_args, args.concurrency)?;
    let mut raw = connect_all(&args.baseline_url, args.concurrency).await?;
    let dialect = raw[0].conn.dialect();
    let statements = role_statements(&client, &args.role, dialect).await?;
    let forms = password_forms(dialect, &statements, 1);
    // One user per plain connection, one lease per broker worker, renewed over and over.
    for worker in &mut raw {
        if !raw_create(worker, &statements, &forms).await {
            return Err(CliError::Other(
                "the plain client could not create its user".into(),
            ));
        }
    }
    let mut brokers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let lease: Value = client
            .call(
                Method::POST,
                "/v1/leases",
                Some(&json!({"role": args.role, "ttl": "10m"})),
            )
            .await?;
        brokers.push((
            client.clone(),
            lease["leaseId"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let increment = json!({"increment": "10m"});
    let mut rounds = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let raw_phase = measure(&mut raw, args.duration, async |w: &mut RawWorker| {
            if statements.renewal.is_empty() {
                return true;
            }
            let dialect = w.conn.dialect();
            let name = w.created[0].clone();
            let values = Values {
                name: &name,
                password: None,
                password_hash: None,
                expiration: Some(Utc::now() + chrono::Duration::minutes(10)),
            };
            match render(&statements.renewal, dialect, &values) {
                Ok(script) => w.conn.execute(&script).await.is_ok(),
                Err(_) => false,
            }
        })
        .await;
        let broker_phase = measure(
            &mut brokers,
            args.duration,
            async |(c, id): &mut (ApiClient, String)| {
                c.call::<Value>(
                    Method::POST,
                    &format!("/v1/leases/{id}/renew"),
                    Some(&increment),
                )
                .await
                .is_ok()
            },
        )
        .await;
        rounds.push((raw_phase, broker_phase));
    }
    let ids = brokers.into_iter().map(|(_, id)| id).collect();
    revoke_leases(&client, ids, args.concurrency).await;
    raw_cleanup(&mut raw, &statements).await;
    if statements.renewal.is_empty() {
        eprintln!("note: the role has no renewal statements; the plain client's phase did nothing");
    }
    report(client_args, "renew", &args, rounds)
}

fn report(
    client_args: &ClientArgs,
    operation: &'static str,
    args: &LeaseBenchArgs,
    rounds: Vec<(PhaseResult, PhaseResult)>,
) -> Result<(), CliError> {
    let raw = median(rounds.iter().map(|r| r.0.throughput));
    let broker = median(rounds.iter().map(|r| r.1.throughput));
    let report = LeaseReport {
        operation,
        role: args.role.clone(),
        concurrency: args.concurrency,
        duration_ms: args.duration.as_millis(),
        raw_median_per_second: raw,
        broker_median_per_second: broker,
        broker_median_p50_ms: median(rounds.iter().map(|r| r.1.p50_ms)),
        broker_median_p99_ms: median(rounds.iter().map(|r| r.1.p99_ms)),
        raw_median_p99_ms: median(rounds.iter().map(|r| r.0.p99_ms)),
        ratio: if raw > 0.0 { broker / raw } else { 0.0 },
        rounds,
    };
    if client_args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(CliError::other)?
        );
        return Ok(());
    }
    out!(
        "bench {operation}: role {}, concurrency {}, {} rounds of {:?} per phase",
        report.role,
        report.concurrency,
        report.rounds.len(),
        args.duration
    );
    out!(
        "{:<7} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7}",
        "round",
        "plain/s",
        "p50 ms",
        "p99 ms",
        "broker/s",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    for (i, (raw, broker)) in report.rounds.iter().enumerate() {
        out!(
            "{:<7} {:>10.1} {:>9.2} {:>9.2} {:>10.1} {:>9.2} {:>9.2} {:>7}",
            i + 1,
            raw.throughput,
            raw.p50_ms,
            raw.p99_ms,
            broker.throughput,
            broker.p50_ms,
            broker.p99_ms,
            raw.errors + broker.errors
        );
    }
    out!(
        "median: plain client {:.1}/s, broker {:.1}/s (p50 {:.2} ms, p99 {:.2} ms): the broker reaches {:.0}% of the plain client",
        report.raw_median_per_second,
        report.broker_median_per_second,
        report.broker_median_p50_ms,
        report.broker_median_p99_ms,
        report.ratio * 100.0
    );
    Ok(())
}
