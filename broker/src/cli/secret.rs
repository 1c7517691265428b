//! `leasehold secret …`: the static-secrets API from the command line.
//!
//! A SECRET argument is either the secret's id or its `environment/path`.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::output::out;
use super::{ApiClient, CliError, ClientArgs};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret at ENVIRONMENT/PATH (metadata only; add a value with `put`).
    Create {
        /// e.g. prod/payments/stripe-api-key
        location: String,
        #[arg(long)]
        owner_team: String,
        #[arg(long, default_value = "manual")]
        rotation_strategy: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Add a version. The value comes from --value, --value-file, or standard input.
    Put {
        secret: String,
        /// The value on the command line (visible in `ps` and shell history; prefer stdin).
        #[arg(long, conflicts_with = "value_file")]
        value: Option<String>,
        /// Read the value from this file (`-` for standard input).
        #[arg(long)]
        value_file: Option<PathBuf>,
        /// PENDING, or CURRENT to also move `current` to the new version.
        #[arg(long, default_value = "CURRENT")]
        status: String,
    },
    /// Print a value (by default the one `current` points at).
    Get {
        /// ENVIRONMENT/PATH
        location: String,
        #[arg(long, conflicts_with = "version")]
        alias: Option<String>,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Point an alias at a version, compare-and-swap on its present target.
    Promote {
        secret: String,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "current")]
        alias: String,
        /// The version the alias points at now; omit when it is unset.
        #[arg(long)]
        expected_previous: Option<i64>,
    },
    /// Make a version unreadable until enabled again.
    Disable {
        secret: String,
        #[arg(long)]
        version: i64,
    },
    /// Make a disabled version readable again.
    Enable {
        secret: String,
        #[arg(long)]
        version: i64,
    },
    /// Delete a version's ciphertext and wrapped key for good.
    Destroy {
        secret: String,
        #[arg(long)]
        version: i64,
    },
    /// List secrets (metadata only).
    List {
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show a secret's metadata, versions and aliases.
    Show { secret: String },
}

pub async fn run(client_args: &ClientArgs, command: SecretCommand) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let json_output = client_args.json;
    let output = match command {
        SecretCommand::Create {
            location,
            owner_team,
            rotation_strategy,
            description,
        } => {
            let (environment, path) = split_location(&location)?;
            let body = json!({"environment": environment, "path": path, "ownerTeam": owner_team,
                "rotationStrategy": rotation_strategy, "description": description});
            let created: Value = client
                .call(Method::POST, "/v1/secrets", Some(&body))
                .await?;
            let text = format!(
                "Created secret {} at {location}",
                created["id"].as_str().unwrap_or("?")
            );
            (created, text)
        }
        SecretCommand::Put {
            secret,
            value,
            value_file,
            status,
        } => {
            let value = read_value(value, value_file)?;
            let id = resolve(&client, &secret).await?;
            let body = json!({"value": value.as_str(), "status": status});
            let created: Value = client
                .call(
                    Method::POST,
                    &format!("/v1/secrets/{id}/versions"),
                    Some(&body),
                )
                .await?;
            let text = format!(
                "Wrote version {} ({}) of {secret}",
                created["version"],
                created["status"].as_str().unwrap_or("?")
            );
            (created, text)
        }
        SecretCommand::Get {
            location,
            alias,
            version,
        } => {
            let (environment, path) = split_location(&location)?;
            let query = match (alias, version) {
                (_, Some(v)) => format!("?version={v}"),
                (Some(a), None) => format!("?alias={a}"),
                (None, None) => String::new(),
            };
            let read: Value = client
                .call(
                    Method::GET,
                    &format!("/v1/secrets/{environment}/{path}{query}"),
                    None::<&()>,
                )
                .await?;
            let text = read["value"].as_str().unwrap_or_default().to_owned();
            (read, text)
        }
        SecretCommand::Promote {
            secret,
            version,
            alias,
            expected_previous,
        } => {
            let id = resolve(&client, &secret).await?;
            let body = json!({"version": version, "expectedPreviousVersion": expected_previous});
            let moved: Value = client
                .call(
                    Method::POST,
                    &format!("/v1/secrets/{id}/aliases/{alias}"),
                    Some(&body),
                )
                .await?;
            let was = moved["previousVersion"]
                .as_i64()
                .map_or_else(|| "unset".to_owned(), |v| format!("version {v}"));
            let text = format!("{alias} of {secret} -> version {version} (was {was})");
            (moved, text)
        }
        SecretCommand::Disable { secret, version } => {
            status_change(&client, &secret, version, "disable").await?
        }
        SecretCommand::Enable { secret, version } => {
            status_change(&client, &secret, version, "enable").await?
        }
        SecretCommand::Destroy { secret, version } => {
            status_change(&client, &secret, version, "destroy").await?
        }
        SecretCommand::List {
            environment,
            prefix,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(environment) = environment {
                query.push(format!("environment={environment}"));
            }
            if let Some(prefix) = prefix {
                query.push(format!("pathPrefix={prefix}"));
            }
            let list: Value = client
                .call(
                    Method::GET,
                    &format!("/v1/secrets?{}", query.join("&")),
                    None::<&()>,
                )
                .await?;
            let mut text = format!(
                "{:<38} {:<48} {:<14} {:>7}",
                "ID", "LOCATION", "OWNER", "LATEST"
            );
            for s in list["secrets"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\n{:<38} {:<48} {:<14} {:>7}",
                    s["id"].as_str().unwrap_or_default(),
                    format!(
                        "{}/{}",
                        s["environment"].as_str().unwrap_or_default(),
                        s["path"].as_str().unwrap_or_default()
                    ),
                    s["ownerTeam"].as_str().unwrap_or_default(),
                    s["latestVersion"]
                ));
            }
            if let Some(cursor) = list["nextCursor"].as_str() {
                text.push_str(&format!("\n(more: next page after {cursor})"));
            }
            (list, text)
        }
        SecretCommand::Show { secret } => {
            let id = resolve(&client, &secret).await?;
            let meta: Value = client
                .call(Method::GET, &format!("/v1/secrets/{id}"), None::<&()>)
                .await?;
            let mut text = format!(
                "Secret {id}\n  location:  {}/{}\n  owner:     {}\n  strategy:  {}\n  aliases:   current={} previous={} next={}\n  versions:",
                meta["environment"].as_str().unwrap_or_default(),
                meta["path"].as_str().unwrap_or_default(),
                meta["ownerTeam"].as_str().unwrap_or_default(),
                meta["rotationStrategy"].as_str().unwrap_or_default(),
                meta["aliases"]["current"],
                meta["aliases"]["previous"],
                meta["aliases"]["next"],
            );
            for v in meta["versions"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\n    {:>5}  {:<10}  {}  by {}",
                    v["version"],
                    v["status"].as_str().unwrap_or_default(),
                    v["createdAt"].as_str().unwrap_or_default(),
                    v["createdBy"].as_str().unwrap_or_default()
                ));
            }
            (meta, text)
        }
    };
    let (value, text) = output;
    if json_output {
        out!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(CliError::other)?
        );
    } else {
        out!("{text}");
    }
    Ok(())
}

async fn status_change(
    client: &ApiClient,
    secret: &str,
    version: i64,
    verb: &str,
) -> Result<(Value, String), CliError> {
    let id = resolve(client, secret).await?;
    let changed: Value = client
        .call(
            Method::POST,
            &format!("/v1/secrets/{id}/versions/{version}/{verb}"),
            None::<&()>,
        )
        .await?;
    let text = format!(
        "Version {version} of {secret} is now {}",
        changed["status"].as_str().unwrap_or("?")
    );
    Ok((changed, text))
}

fn split_location(location: &str) -> Result<(&str, &str), CliError> {
    location.split_once('/').ok_or_else(|| {
        CliError::Usage(format!(
            "{location:?} is not ENVIRONMENT/PATH (e.g. prod/payments/stripe-api-key)"
        ))
    })
}

/// The id of SECRET, given as an id or as `environment/path`.
pub(super) async fn resolve(client: &ApiClient, secret: &str) -> Result<String, CliError> {
    if uuid::Uuid::parse_str(secret).is_ok() {
        return Ok(secret.to_owned());
    }
    let (environment, path) = split_location(secret)?;
    let list: Value = client
        .call(
            Method::GET,
            &format!("/v1/secrets?environment={environment}&pathPrefix={path}&limit=1000"),
            None::<&()>,
        )
        .await?;
    list["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["path"].as_str() == Some(path))
        .and_then(|s| s["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Usage(format!("no secret at {secret}")))
}

pub(super) fn read_value(
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Zeroizing<String>, CliError> {
    let mut text = Zeroizing::new(String::new());
    match (value, file) {
        (Some(value), _) => *text = value,
        (None, Some(path)) if path.as_os_str() != "-" => {
            *text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        }
        (None, _) => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        }
    }
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}
