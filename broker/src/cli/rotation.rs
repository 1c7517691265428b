//! `leasehold rotation …` and `leasehold static-role …`: rotation policies, rotating and
//! rolling back, the runs and the overdue report; static database roles.
//!
//! A SECRET argument is either the secret's id or its `environment/path`.

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{call, print, read_json_file};
use super::secret::{read_value, resolve};
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Show a secret's rotation policy, or set it from a JSON file (`-` for stdin), e.g.
    /// {"overlapWindow":"1h","rollbackWindow":"24h","schedule":"0 0 3 * * *","deadline":"30d"}.
    Policy {
        secret: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Rotate now: steps 1–5, or 1–3 with --stop-after-next (canaries read `next`).
    Rotate {
        secret: String,
        /// Read the new value from this file (`-` for stdin); without it a value is generated.
        #[arg(long)]
        value_file: Option<PathBuf>,
        /// Length of a generated value.
        #[arg(long, conflicts_with = "value_file")]
        length: Option<usize>,
        /// Stop once `next` points at the new version; continue with `rotation promote RUN`.
        #[arg(long)]
        stop_after_next: bool,
        /// Refuse unless `current` is at this version.
        #[arg(long)]
        expected_current: Option<i64>,
    },
    /// Move `current` back to `previous` while its rollback window is open.
    Rollback { secret: String },
    /// Test and promote a run that stopped at `next`.
    Promote { run: String },
    /// Show one run.
    Get { run: String },
    /// List runs, newest first.
    List {
        #[arg(long)]
        secret: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Secrets past their rotation deadline.
    Overdue,
}

#[derive(Debug, Subcommand)]
pub enum StaticRoleCommand {
    /// Create or update a static role from a JSON file (`-` for stdin), e.g.
    /// {"backend":"shop-db","environment":"prod","usernames":["app_a","app_b"]}.
    Put {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a static role (never a password).
    Get { name: String },
    /// Print the current username and password (audited).
    Credentials { name: String },
    /// Rotate its password now.
    Rotate { name: String },
}

fn run_line(run: &Value) -> String {
    let mut line = format!(
        "{}  {}  step {}  v{} -> v{}",
        run["id"].as_str().unwrap_or("?"),
        run["state"].as_str().unwrap_or("?"),
        run["step"].as_str().unwrap_or("?"),
        run["fromVersion"],
        run["toVersion"],
    );
    if let Some(due) = run["nextDueAt"].as_str() {
        line.push_str(&format!("  next step due {due}"));
    }
    if let Some(error) = run["error"].as_str() {
        line.push_str(&format!("  error: {error}"));
    }
    line
}

pub async fn rotation(client_args: &ClientArgs, command: RotationCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        RotationCommand::Policy { secret, file } => {
            let id = resolve(&client, &secret).await?;
            let path = format!("/v1/secrets/{id}/rotation");
            let policy = match file {
                Some(file) => {
                    let body = read_json_file(&file)?;
                    call(&client, Method::PUT, &path, Some(body)).await?
                }
                None => call(&client, Method::GET, &path, None).await?,
            };
            print(client_args, policy, |p| {
                serde_json::to_string_pretty(p).unwrap_or_default()
            })
            .await
        }
        RotationCommand::Rotate {
            secret,
            value_file,
            length,
            stop_after_next,
            expected_current,
        } => {
            let id = resolve(&client, &secret).await?;
            let mut body = json!({"expectedCurrentVersion": expected_current});
            if let Some(file) = value_file {
                let value = read_value(None, Some(file))?;
                body["value"] = Value::String(value.to_string());
            } else if let Some(length) = length {
                body["generate"] = json!({"length": length});
            }
            if stop_after_next {
                body["stopAfter"] = json!("next");
            }
            let run = call(
                &client,
                Method::POST,
                &format!("/v1/secrets/{id}/rotate"),
                Some(body),
            )
            .await?;
            print(client_args, run, run_line).await
        }
        RotationCommand::Rollback { secret } => {
            let id = resolve(&client, &secret).await?;
            let answer = call(
                &client,
                Method::POST,
                &format!("/v1/secrets/{id}/rollback"),
                Some(json!({})),
            )
            .await?;
            print(client_args, answer, |a| {
                format!("`current` points at version {} again", a["current"])
            })
            .await
        }
        RotationCommand::Promote { run } => {
            let run = call(
                &client,
                Method::POST,
                &format!("/v1/rotations/{run}/promote"),
                Some(json!({})),
            )
            .await?;
            print(client_args, run, run_line).await
        }
        RotationCommand::Get { run } => {
            let run = call(&client, Method::GET, &format!("/v1/rotations/{run}"), None).await?;
            print(client_args, run, run_line).await
        }
        RotationCommand::List { secret, limit } => {
            let mut path = format!("/v1/rotations?limit={limit}");
            if let Some(secret) = secret {
                path.push_str(&format!("&secretId={}", resolve(&client, &secret).await?));
            }
            let runs = call(&client, Method::GET, &path, None).await?;
            print(client_args, runs, |runs| {
                let lines: Vec<String> = runs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(run_line)
                    .collect();
                if lines.is_empty() {
                    "No rotation runs.".to_owned()
                } else {
                    lines.join("\n")
                }
            })
            .await
        }
        RotationCommand::Overdue => {
            let rows = call(&client, Method::GET, "/v1/rotations/overdue", None).await?;
            print(client_args, rows, |rows| {
                let lines: Vec<String> = rows
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        format!(
                            "{}/{}  owner {}  deadline {}",
                            r["environment"].as_str().unwrap_or("?"),
                            r["path"].as_str().unwrap_or("?"),
                            r["ownerTeam"].as_str().unwrap_or("?"),
                            r["deadlineAt"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    "No secret is past its rotation deadline.".to_owned()
                } else {
                    lines.join("\n")
                }
            })
            .await
        }
    }
}

pub async fn static_role(
    client_args: &ClientArgs,
    command: StaticRoleCommand,
) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match command {
        StaticRoleCommand::Put { name, file } => {
            let body = read_json_file(&file)?;
            let role = call(
                &client,
                Method::PUT,
                &format!("/v1/static-roles/{name}"),
                Some(body),
            )
            .await?;
            print(client_args, role, pretty).await
        }
        StaticRoleCommand::Get { name } => {
            let role = call(
                &client,
                Method::GET,
                &format!("/v1/static-roles/{name}"),
                None,
            )
            .await?;
            print(client_args, role, pretty).await
        }
        StaticRoleCommand::Credentials { name } => {
            let credentials = call(
                &client,
                Method::GET,
                &format!("/v1/static-roles/{name}/credentials"),
                None,
            )
            .await?;
            print(client_args, credentials, |c| {
                format!(
                    "username: {}\npassword: {}\nversion:  {}",
                    c["username"].as_str().unwrap_or("?"),
                    c["password"].as_str().unwrap_or("?"),
                    c["version"]
                )
            })
            .await
        }
        StaticRoleCommand::Rotate { name } => {
            let run = call(
                &client,
                Method::POST,
                &format!("/v1/static-roles/{name}/rotate"),
                Some(json!({})),
            )
            .await?;
            print(client_args, run, run_line).await
        }
    }
}
