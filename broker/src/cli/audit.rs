//! `leasehold audit query|summary|verify|tail`: reading the audit trail from the command line.

use std::time::Duration;

use clap::Subcommand;
use clap::builder::PossibleValuesParser;
use reqwest::Method;
use serde_json::Value;

use super::output::out;
use super::{ApiClient, CliError, ClientArgs};
use crate::store::SummaryKind;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print events, oldest first.
    Query {
        #[arg(long)]
        principal: Option<String>,
        /// `environment/path` prefix.
        #[arg(long)]
        path_prefix: Option<String>,
        #[arg(long)]
        event_type: Option<String>,
        /// ALLOW or DENY.
        #[arg(long)]
        decision: Option<String>,
        /// RFC 3339 time, e.g. 2026-11-25T09:14:00Z.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this event's sequence number (the `nextCursor` of the page before).
        #[arg(long)]
        after: Option<i64>,
    },
    /// Counts over a window: who read what, break-glass and denied reads, rotations by team,
    /// stale secrets.
    Summary {
        #[arg(value_parser = PossibleValuesParser::new(SummaryKind::NAMES))]
        kind: String,
        /// RFC 3339 start of the window (default: 30 days ago).
        #[arg(long)]
        since: Option<String>,
    },
    /// Check the hash chain; exits non-zero when it is broken.
    Verify,
    /// Follow new events as JSON lines (for a SIEM).
    Tail {
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

fn line(event: &Value) -> String {
    let location = match (event["environment"].as_str(), event["path"].as_str()) {
        (Some(e), Some(p)) => format!(" {e}/{p}"),
        _ => String::new(),
    };
    let version = event["version"]
        .as_i64()
        .map(|v| format!(" v{v}"))
        .unwrap_or_default();
    format!(
        "{:>6}  {}  {:<5} {:<18} {}{location}{version}",
        event["seq"],
        event["createdAt"].as_str().unwrap_or_default(),
        event["decision"].as_str().unwrap_or_default(),
        event["eventType"].as_str().unwrap_or_default(),
        event["principal"].as_str().unwrap_or_default(),
    )
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(client_args: &ClientArgs, command: AuditCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        AuditCommand::Query {
            principal,
            path_prefix,
            event_type,
            decision,
            since,
            until,
            limit,
            after,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(after) = after {
                query.push(format!("after={after}"));
            }
            for (name, value) in [
                ("principal", principal),
                ("pathPrefix", path_prefix),
                ("eventType", event_type),
                ("decision", decision),
                ("since", since),
                ("until", until),
            ] {
                if let Some(value) = value {
                    query.push(format!("{name}={}", encode(&value)));
                }
            }
            let page: Value = client
                .call(
                    Method::GET,
                    &format!("/v1/audit/events?{}", query.join("&")),
                    None::<&()>,
                )
                .await?;
            if client_args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&page).map_err(CliError::other)?
                );
            } else {
                for event in page["events"].as_array().into_iter().flatten() {
                    out!("{}", line(event));
                }
                if let Some(next) = page["nextCursor"].as_i64() {
                    eprintln!("more events: run again with --after {next}");
                }
            }
            Ok(())
        }
        AuditCommand::Summary { kind, since } => {
            let query = since
                .map(|since| format!("?since={}", encode(&since)))
                .unwrap_or_default();
            let summary: Value = client
                .call(
                    Method::GET,
                    &format!("/v1/audit/summary/{kind}{query}"),
                    None::<&()>,
                )
                .await?;
            if client_args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&summary).map_err(CliError::other)?
                );
                return Ok(());
            }
            let count = match SummaryKind::parse(&kind) {
                Some(SummaryKind::StaleSecrets) => "VERSION",
                _ => "COUNT",
            };
            out!("{count:>7}  {:<24}  SUBJECT", "LAST");
            for row in summary["rows"].as_array().into_iter().flatten() {
                out!(
                    "{:>7}  {:<24}  {}",
                    row["count"],
                    row["lastAt"].as_str().unwrap_or("-"),
                    row["subject"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let report: Value = client
                .call(Method::POST, "/v1/audit/verify", None::<&()>)
                .await?;
            if client_args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(CliError::other)?
                );
            } else if report["ok"] == true {
                out!("Audit chain intact: {} events verified", report["events"]);
            } else {
                out!(
                    "Audit chain BROKEN at event {}: {}",
                    report["brokenAt"],
                    report["reason"].as_str().unwrap_or_default()
                );
            }
            if report["ok"] == true {
                Ok(())
            } else {
                Err(CliError::Other("the audit chain does not verify".into()))
            }
        }
        AuditCommand::Tail { interval_ms } => {
            let mut after = 0i64;
            loop {
                let page: Value = client
                    .call(
                        Method::GET,
                        &format!("/v1/audit/events?limit=1000&after={after}"),
                        None::<&()>,
                    )
                    .await?;
                for event in page["events"].as_array().into_iter().flatten() {
                    out!("{event}");
                    after = event["seq"].as_i64().unwrap_or(after);
                }
                if page["nextCursor"].is_null() {
                    tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                }
            }
        }
    }
}
