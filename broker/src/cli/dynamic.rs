//! `leasehold backend|role|lease …`: dynamic credentials from the command line.

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{call, print, read_json_file};
use super::revoke_mass::{self, RevokeMassArgs};
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Create or replace a backend from a JSON file (`-` for stdin), shaped like the API body:
    /// `{"plugin":"postgresql","connection":{…},"maxOpenConnections":4}`.
    Put {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a backend (never its password).
    Get { name: String },
    /// List backends.
    List,
    /// Log in to the target with the stored admin credential.
    Verify { name: String },
    /// Replace the admin password with one nobody knows.
    RotateRoot { name: String },
    /// Delete a backend and its roles (refused while leases are live, unless --revoke-leases).
    Delete {
        name: String,
        #[arg(long)]
        revoke_leases: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role from a JSON file (`-` for stdin), shaped like the API body.
    Put {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a role with its effective statements.
    Get { name: String },
    /// List roles.
    List,
    /// Delete a role (refused while it has live leases).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Issue a credential for a role; prints the password once.
    Issue {
        #[arg(long)]
        role: String,
        /// e.g. 15m; default: the role's defaultTtl.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Extend a lease (capped at its maximum).
    Renew {
        id: String,
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a lease now (an IRREVOCABLE one is tried again).
    Revoke { id: String },
    /// Mark a lease revoked without dropping its user (after removing it by hand); audited.
    ForceRevoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Show a lease.
    Get { id: String },
    /// List leases.
    List {
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        principal: Option<String>,
        /// pending, active, revoked or irrevocable.
        #[arg(long)]
        state: Option<String>,
    },
    /// Emergency: revoke every lease matching a selector. Shows the dry run, asks for
    /// confirmation (or --yes), fences the selector, and with --wait follows the job.
    RevokeMass(RevokeMassArgs),
    /// Show a mass revocation job (--wait follows it with a progress bar until it ends).
    Revocation {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// List mass revocation jobs, newest first.
    Revocations,
    /// Lift a mass revocation's fence: matching leases may be issued and renewed again.
    LiftFence { id: String },
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub async fn backend(client_args: &ClientArgs, command: BackendCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        BackendCommand::Put { name, file } => {
            let body = read_json_file(&file)?;
            let stored = call(
                &client,
                Method::PUT,
                &format!("/v1/backends/{name}"),
                Some(body),
            )
            .await?;
            print(client_args, stored, |b| {
                format!("Backend {name} written (generation {})", b["generation"])
            })
            .await
        }
        BackendCommand::Get { name } => {
            let backend = call(&client, Method::GET, &format!("/v1/backends/{name}"), None).await?;
            print(client_args, backend, pretty).await
        }
        BackendCommand::List => {
            let list = call(&client, Method::GET, "/v1/backends", None).await?;
            print(client_args, list, |l| names(&l["backends"])).await
        }
        BackendCommand::Verify { name } => {
            let result = call(
                &client,
                Method::POST,
                &format!("/v1/backends/{name}/verify"),
                Some(json!({})),
            )
            .await?;
            print(client_args, result, |_| {
                format!("Backend {name}: the admin login works")
            })
            .await
        }
        BackendCommand::RotateRoot { name } => {
            let result = call(
                &client,
                Method::POST,
                &format!("/v1/backends/{name}/rotate-root"),
                Some(json!({})),
            )
            .await?;
            print(client_args, result, |r| {
                format!(
                    "Backend {name}: admin password rotated (generation {})",
                    r["generation"]
                )
            })
            .await
        }
        BackendCommand::Delete {
            name,
            revoke_leases,
        } => {
            let path = format!("/v1/backends/{name}?revokeLeases={revoke_leases}");
            let result = call(&client, Method::DELETE, &path, None).await?;
            print(client_args, result, |_| format!("Backend {name} deleted")).await
        }
    }
}

pub async fn role(client_args: &ClientArgs, command: RoleCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        RoleCommand::Put { name, file } => {
            let body = read_json_file(&file)?;
            let stored = call(
                &client,
                Method::PUT,
                &format!("/v1/roles/{name}"),
                Some(body),
            )
            .await?;
            print(client_args, stored, |r| {
                format!(
                    "Role {name} written; policy resource {}",
                    r["resource"].as_str().unwrap_or("?")
                )
            })
            .await
        }
        RoleCommand::Get { name } => {
            let role = call(&client, Method::GET, &format!("/v1/roles/{name}"), None).await?;
            print(client_args, role, pretty).await
        }
        RoleCommand::List => {
            let list = call(&client, Method::GET, "/v1/roles", None).await?;
            print(client_args, list, |l| names(&l["roles"])).await
        }
        RoleCommand::Delete { name } => {
            let result = call(&client, Method::DELETE, &format!("/v1/roles/{name}"), None).await?;
            print(client_args, result, |_| format!("Role {name} deleted")).await
        }
    }
}

pub async fn lease(client_args: &ClientArgs, command: LeaseCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        LeaseCommand::Issue { role, ttl } => {
            let mut body = json!({"role": role});
            if let Some(ttl) = ttl {
                body["ttl"] = json!(ttl);
            }
            let lease = call(&client, Method::POST, "/v1/leases", Some(body)).await?;
            print(client_args, lease, |l| {
                let mut text = format!(
                    "lease_id   {}\nusername   {}\npassword   {}\nexpires_at {}\nmax        {}",
                    text(&l["leaseId"]),
                    text(&l["username"]),
                    text(&l["password"]),
                    text(&l["expiresAt"]),
                    text(&l["maxExpiresAt"])
                );
                if let Some(warning) = l["warning"].as_str() {
                    text.push_str(&format!("\nwarning    {warning}"));
                }
                text
            })
            .await
        }
        LeaseCommand::Renew { id, increment } => {
            let body = increment.map_or_else(|| json!({}), |i| json!({"increment": i}));
            let lease = call(
                &client,
                Method::POST,
                &format!("/v1/leases/{id}/renew"),
                Some(body),
            )
            .await?;
            print(client_args, lease, |l| {
                format!("Lease {id} now expires at {}", text(&l["expiresAt"]))
            })
            .await
        }
        LeaseCommand::Revoke { id } => {
            let lease = call(
                &client,
                Method::POST,
                &format!("/v1/leases/{id}/revoke"),
                Some(json!({})),
            )
            .await?;
            print(client_args, lease, |_| format!("Lease {id} revoked")).await
        }
        LeaseCommand::ForceRevoke { id, reason } => {
            let path = format!("/v1/leases/{id}/force-revoke");
            let lease = call(
                &client,
                Method::POST,
                &path,
                Some(json!({"reason": reason})),
            )
            .await?;
            print(client_args, lease, |_| format!("Lease {id} marked revoked")).await
        }
        LeaseCommand::RevokeMass(args) => revoke_mass::revoke_mass(client_args, args).await,
        LeaseCommand::Revocation { id, wait } => revoke_mass::show(client_args, &id, wait).await,
        LeaseCommand::Revocations => revoke_mass::list(client_args).await,
        LeaseCommand::LiftFence { id } => revoke_mass::lift_fence(client_args, &id).await,
        LeaseCommand::Get { id } => {
            let lease = call(&client, Method::GET, &format!("/v1/leases/{id}"), None).await?;
            print(client_args, lease, pretty).await
        }
        LeaseCommand::List {
            role,
            principal,
            state,
        } => {
            let mut query = Vec::new();
            for (key, value) in [("role", role), ("principal", principal), ("state", state)] {
                if let Some(value) = value {
                    query.push(format!("{key}={value}"));
                }
            }
            let path = format!("/v1/leases?{}", query.join("&"));
            let page = call(&client, Method::GET, &path, None).await?;
            print(client_args, page, |p| {
                p["leases"]
                    .as_array()
                    .map(|leases| {
                        leases
                            .iter()
                            .map(|l| {
                                format!(
                                    "{}  {:<8} {:<20} {}  expires {}",
                                    text(&l["leaseId"]),
                                    text(&l["state"]),
                                    text(&l["role"]),
                                    text(&l["username"]),
                                    text(&l["expiresAt"])
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            })
            .await
        }
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn names(list: &Value) -> String {
    list.as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
