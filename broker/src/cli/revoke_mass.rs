//! `leasehold lease revoke-mass|revocation|revocations|lift-fence`: emergency mass revocation
//! from a terminal — the dry run first, a confirmation, then a progress bar until the job ends.

use std::io::{BufRead, IsTerminal, Write};

use chrono::{DateTime, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{call, print};
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Args)]
pub struct RevokeMassArgs {
    #[arg(long)]
    role: Option<String>,
    #[arg(long)]
    backend: Option<String>,
    /// e.g. service:prod:payments-api
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    environment: Option<String>,
    /// Leases issued at or after this instant (RFC 3339, e.g. 2026-11-26T09:14:00Z).
    #[arg(long, value_parser = instant)]
    since: Option<DateTime<Utc>>,
    /// Leases issued before this instant (RFC 3339).
    #[arg(long, value_parser = instant)]
    until: Option<DateTime<Utc>>,
    /// The start of a lease id, e.g. 019a7c3e-5b2f.
    #[arg(long)]
    lease_id_prefix: Option<String>,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    reason: String,
    /// The incident or change ticket.
    #[arg(long)]
    ticket: String,
    /// Only show what would be revoked.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Follow the job with a progress bar until it ends.
    #[arg(long)]
    wait: bool,
    /// How long the fence refuses matching issues and renewals, e.g. 4h (default: the server's).
    #[arg(long)]
    fence_ttl: Option<String>,
}

fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: give an RFC 3339 instant, e.g. 2026-11-26T09:14:00Z"))
}

impl RevokeMassArgs {
    fn body(&self, dry_run: bool) -> Value {
        let mut selector = serde_json::Map::new();
        for (key, value) in [
            ("role", &self.role),
            ("backend", &self.backend),
            ("principal", &self.principal),
            ("environment", &self.environment),
            ("leaseIdPrefix", &self.lease_id_prefix),
        ] {
            if let Some(value) = value {
                selector.insert(key.to_owned(), json!(value));
            }
        }
        for (key, value) in [("issuedAfter", self.since), ("issuedBefore", self.until)] {
            if let Some(value) = value {
                selector.insert(key.to_owned(), json!(value));
            }
        }
        let mut body = json!({"selector": selector, "reason": self.reason,
                              "ticket": self.ticket, "dryRun": dry_run});
        if let Some(ttl) = &self.fence_ttl {
            body["fenceTtl"] = json!(ttl);
        }
        body
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn describe_preview(preview: &Value) -> String {
    let mut out = format!("{} live lease(s) match.\n", text(&preview["matched"]));
    if let Some(groups) = preview["byRole"].as_array().filter(|g| !g.is_empty()) {
        out.push_str(&format!(
            "\n  {:<24} {:<20} {:<12} {:>8}\n",
            "ROLE", "BACKEND", "ENVIRONMENT", "LEASES"
        ));
        for group in groups {
            out.push_str(&format!(
                "  {:<24} {:<20} {:<12} {:>8}\n",
                text(&group["role"]),
                text(&group["backend"]),
                text(&group["environment"]),
                text(&group["count"])
            ));
        }
    }
    if let Some(sample) = preview["sample"].as_array().filter(|s| !s.is_empty()) {
        out.push_str("\nFor example:\n");
        for lease in sample {
            out.push_str(&format!(
                "  {}  {:<20} {}  issued {}\n",
                text(&lease["leaseId"]),
                text(&lease["principal"]),
                text(&lease["username"]),
                text(&lease["issuedAt"])
            ));
        }
    }
    out
}

fn describe_job(job: &Value) -> String {
    let mut out = format!(
        "Job {} {}: revoked {} of {}, failed {}, remaining {}",
        text(&job["jobId"]),
        text(&job["state"]),
        text(&job["revoked"]),
        text(&job["total"]),
        text(&job["failed"]),
        text(&job["remaining"])
    );
    if let Some(finished) = job["finishedAt"].as_str() {
        out.push_str(&format!(
            " (started {}, finished {finished})",
            text(&job["startedAt"])
        ));
    }
    if job["fenced"] == true {
        out.push_str(&format!("\nFence holds until {}", text(&job["fenceUntil"])));
    }
    for failure in job["errorsByBackend"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  backend {}: {} failed, last error: {}",
            text(&failure["backend"]),
            text(&failure["failed"]),
            text(&failure["lastError"])
        ));
    }
    out
}

/// Asks on the terminal; refuses when there is none to ask on.
fn confirm(matched: &Value) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "stdin is not a terminal: pass --yes to confirm the revocation".into(),
        ));
    }
    eprint!(
        "Revoke {} lease(s) and fence the selector? Type 'yes' to proceed: ",
        text(matched)
    );
    std::io::stderr().flush().map_err(CliError::other)?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::other)?;
    Ok(answer.trim() == "yes")
}

pub async fn revoke_mass(client_args: &ClientArgs, args: RevokeMassArgs) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let preview = call(
        &client,
        Method::POST,
        "/v1/revocations",
        Some(args.body(true)),
    )
    .await?;
    if args.dry_run {
        return print(client_args, preview, describe_preview).await;
    }
    if !client_args.json {
        eprintln!("{}", describe_preview(&preview));
    }
    if !args.yes && !confirm(&preview["matched"])? {
        return Err(CliError::Usage("not confirmed; nothing was revoked".into()));
    }
    let accepted = call(
        &client,
        Method::POST,
        "/v1/revocations",
        Some(args.body(false)),
    )
    .await?;
    let job_id = text(&accepted["jobId"]);
    if !args.wait {
        return print(client_args, accepted, |a| {
            format!(
                "Job {job_id} accepted: {} lease(s); the selector is fenced until {}.\n\
                 Follow it with: leasehold lease revocation {job_id} --wait",
                text(&a["matched"]),
                text(&a["fenceUntil"])
            )
        })
        .await;
    }
    let job = follow(&client, &job_id, !client_args.json).await?;
    finish(client_args, job).await
}

pub async fn show(client_args: &ClientArgs, id: &str, wait: bool) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let job = if wait {
        follow(&client, id, !client_args.json).await?
    } else {
        call(&client, Method::GET, &format!("/v1/revocations/{id}"), None).await?
    };
    finish(client_args, job).await
}

pub async fn list(client_args: &ClientArgs) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let page = call(&client, Method::GET, "/v1/revocations", None).await?;
    print(client_args, page, |p| {
        p["jobs"]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .map(|j| {
                        format!(
                            "{}  {:<9} {:>7}/{:<7} failed {:<5} {}  {}",
                            text(&j["jobId"]),
                            text(&j["state"]),
                            text(&j["revoked"]),
                            text(&j["total"]),
                            text(&j["failed"]),
                            text(&j["ticket"]),
                            text(&j["selector"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    })
    .await
}

pub async fn lift_fence(client_args: &ClientArgs, id: &str) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let job = call(
        &client,
        Method::DELETE,
        &format!("/v1/revocations/{id}/fence"),
        None,
    )
    .await?;
    print(client_args, job, |_| {
        format!("The fence of job {id} is lifted; matching leases may be issued again")
    })
    .await
}

/// Prints the job; a FAILED job is an error (exit status 1).
async fn finish(client_args: &ClientArgs, job: Value) -> Result<(), CliError> {
    let failed = job["state"] == "FAILED";
    let summary = describe_job(&job);
    print(client_args, job, |_| summary.clone()).await?;
    if failed {
        return Err(CliError::Other(
            "the job left IRREVOCABLE leases: fix the target, then retry them (leasehold lease revoke ID) or force-revoke them".into(),
        ));
    }
    Ok(())
}

/// Polls the job until it leaves RUNNING, drawing a progress bar (rate and ETA) on stderr.
async fn follow(client: &ApiClient, id: &str, draw: bool) -> Result<Value, CliError> {
    let bar = ProgressBar::with_draw_target(
        None,
        if draw && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {pos}/{len} revoked ({per_sec}, ETA {eta}) {msg}",
        )
        .map_err(CliError::other)?,
    );
    loop {
        // The broker holds each look for up to a second and answers as soon as the job ends:
        // the bar moves once a second (as often as the counts change) and the end shows at once.
        let job = call(
            client,
            Method::GET,
            &format!("/v1/revocations/{id}?wait=1s"),
            None,
        )
        .await?;
        let total = job["total"].as_u64().unwrap_or(0);
        let revoked = job["revoked"].as_u64().unwrap_or(0);
        bar.set_length(total.max(revoked));
        bar.set_position(revoked);
        match job["failed"].as_u64() {
            Some(failed) if failed > 0 => {
                bar.set_message(format!("{failed} failing, being retried"));
            }
            _ => bar.set_message(""),
        }
        if job["state"] != "RUNNING" {
            bar.finish_and_clear();
            return Ok(job);
        }
    }
}
