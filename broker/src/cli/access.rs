//! `leasehold policy|token|group|break-glass …` and `leasehold whoami`: identity and access from
//! the command line.

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::output::{call, print, read_json_file};
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from a JSON file `{"statements": [...]}` (`-` for stdin).
    Put {
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a policy.
    Get { name: String },
    /// List the tenant's policies.
    List,
    /// Delete a policy.
    Delete { name: String },
    /// Would PRINCIPAL be allowed ACTION on RESOURCE, and which statement decides?
    Simulate {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        action: String,
        /// `environment/path`, or `*` for tenant-wide actions.
        #[arg(long)]
        resource: String,
        #[arg(long)]
        mfa: bool,
        #[arg(long)]
        source_cluster: Option<String>,
        #[arg(long)]
        source_ip: Option<String>,
        /// Simulate a request that carries a ticket.
        #[arg(long)]
        ticket: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token for a principal; prints it once.
    Create {
        #[arg(long)]
        principal: String,
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Attest that the holder authenticated with a second factor.
        #[arg(long)]
        mfa: bool,
    },
    /// Show a token's metadata.
    Lookup { id: String },
    /// Revoke a token.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Replace the members of a group.
    Set {
        name: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BreakGlassCommand {
    /// Open a time-bound emergency read grant.
    Open {
        #[arg(long = "resource", required = true)]
        resources: Vec<String>,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket_url: String,
        #[arg(long, default_value_t = 30)]
        duration_minutes: u32,
    },
    /// List active grants.
    List,
    /// End a grant early.
    End { id: String },
}

pub async fn policy(client_args: &ClientArgs, command: PolicyCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        PolicyCommand::Put { name, file } => {
            let document = read_json_file(&file)?;
            let stored = call(
                &client,
                Method::PUT,
                &format!("/v1/policies/{name}"),
                Some(document),
            )
            .await?;
            print(client_args, stored, |_| format!("Policy {name} written")).await
        }
        PolicyCommand::Get { name } => {
            let policy = call(&client, Method::GET, &format!("/v1/policies/{name}"), None).await?;
            print(client_args, policy, |p| {
                serde_json::to_string_pretty(p).unwrap_or_default()
            })
            .await
        }
        PolicyCommand::List => {
            let list = call(&client, Method::GET, "/v1/policies", None).await?;
            print(client_args, list, |l| {
                l["policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{}  ({} statements)",
                            p["name"].as_str().unwrap_or_default(),
                            p["statements"].as_array().map_or(0, Vec::len)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .await
        }
        PolicyCommand::Delete { name } => {
            call(
                &client,
                Method::DELETE,
                &format!("/v1/policies/{name}"),
                None,
            )
            .await?;
            print(client_args, json!({"deleted": name}), |_| {
                format!("Policy {name} deleted")
            })
            .await
        }
        PolicyCommand::Simulate {
            principal,
            action,
            resource,
            mfa,
            source_cluster,
            source_ip,
            ticket,
        } => {
            let body = json!({"principal": principal, "action": action, "resource": resource,
                "context": {"mfa": mfa, "sourceCluster": source_cluster, "sourceIp": source_ip, "ticket": ticket}});
            let answer = call(&client, Method::POST, "/v1/policies/simulate", Some(body)).await?;
            print(client_args, answer, |a| {
                format!(
                    "{}: {}",
                    a["decision"].as_str().unwrap_or("?").to_uppercase(),
                    a["reason"].as_str().unwrap_or_default()
                )
            })
            .await
        }
    }
}

pub async fn token(client_args: &ClientArgs, command: TokenCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        TokenCommand::Create {
            principal,
            ttl,
            tenant,
            mfa,
        } => {
            let body = json!({"principal": principal, "ttl": ttl, "tenant": tenant, "mfa": mfa});
            let minted = call(&client, Method::POST, "/v1/auth/tokens", Some(body)).await?;
            print(client_args, minted, |m| {
                format!(
                    "Token for {} (id {}, expires {}); shown once:\n{}",
                    m["principal"].as_str().unwrap_or_default(),
                    m["id"].as_str().unwrap_or_default(),
                    m["expiresAt"].as_str().unwrap_or("never"),
                    m["token"].as_str().unwrap_or_default()
                )
            })
            .await
        }
        TokenCommand::Lookup { id } => {
            let info = call(&client, Method::GET, &format!("/v1/auth/tokens/{id}"), None).await?;
            print(client_args, info, |i| {
                serde_json::to_string_pretty(i).unwrap_or_default()
            })
            .await
        }
        TokenCommand::Revoke { id } => {
            call(
                &client,
                Method::POST,
                &format!("/v1/auth/tokens/{id}/revoke"),
                None,
            )
            .await?;
            print(client_args, json!({"revoked": id}), |_| {
                format!("Token {id} revoked")
            })
            .await
        }
    }
}

pub async fn group(client_args: &ClientArgs, command: GroupCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let GroupCommand::Set { name, members } = command;
    let answer = call(
        &client,
        Method::PUT,
        &format!("/v1/groups/{name}"),
        Some(json!({"members": members})),
    )
    .await?;
    print(client_args, answer, |_| format!("group:{name} updated")).await
}

pub async fn break_glass(
    client_args: &ClientArgs,
    command: BreakGlassCommand,
) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    match command {
        BreakGlassCommand::Open {
            resources,
            reason,
            ticket_url,
            duration_minutes,
        } => {
            let body = json!({"resources": resources, "reason": reason, "ticketUrl": ticket_url, "durationMinutes": duration_minutes});
            let grant = call(&client, Method::POST, "/v1/break-glass", Some(body)).await?;
            print(client_args, grant, |g| {
                format!(
                    "Break-glass grant {} open until {} (audited and alerted)",
                    g["id"].as_str().unwrap_or_default(),
                    g["expiresAt"].as_str().unwrap_or_default()
                )
            })
            .await
        }
        BreakGlassCommand::List => {
            let list = call(&client, Method::GET, "/v1/break-glass", None).await?;
            print(client_args, list, |l| {
                l["grants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|g| {
                        format!(
                            "{}  {}  until {}  {}",
                            g["id"].as_str().unwrap_or_default(),
                            g["principal"].as_str().unwrap_or_default(),
                            g["expiresAt"].as_str().unwrap_or_default(),
                            g["reason"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .await
        }
        BreakGlassCommand::End { id } => {
            call(
                &client,
                Method::POST,
                &format!("/v1/break-glass/{id}/end"),
                None,
            )
            .await?;
            print(client_args, json!({"ended": id}), |_| {
                format!("Grant {id} ended")
            })
            .await
        }
    }
}

pub async fn whoami(client_args: &ClientArgs) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let me = call(&client, Method::GET, "/v1/auth/self", None).await?;
    print(client_args, me, |m| {
        format!(
            "{} (tenant {})",
            m["principal"].as_str().unwrap_or_default(),
            m["tenant"].as_str().unwrap_or_default()
        )
    })
    .await
}
