//! Operator commands that work on the store and key files directly, not through the API:
//! `migrate`, `operator init`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use super::CliError;
use super::output::out;
use crate::auth::{MintRequest, TokenService};
use crate::domain::Tenant;
use crate::settings::Settings;
use crate::startup;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Configuration file naming the store.
    #[arg(long, env = "LEASEHOLD_CONFIG")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create the first administrator token on a fresh store and print it once.
    Init {
        #[arg(long, env = "LEASEHOLD_CONFIG")]
        config: PathBuf,
        /// The principal the administrator token is issued to.
        #[arg(long, default_value = "user:admin")]
        principal: String,
        /// Print `{"token": …, "principal": …}` instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn migrate(args: MigrateArgs) -> Result<(), CliError> {
    let settings = Settings::load(&args.config).map_err(CliError::other)?;
    let store = startup::open_store(&settings)
        .await
        .map_err(CliError::other)?;
    out!("Store ({}) is at the latest schema.", store.dialect());
    Ok(())
}

pub async fn operator(command: OperatorCommand) -> Result<(), CliError> {
    let OperatorCommand::Init {
        config,
        principal,
        json,
    } = command;
    let settings = Settings::load(&config).map_err(CliError::other)?;
    let store = startup::open_store(&settings)
        .await
        .map_err(CliError::other)?;
    if store.has_admin_token().await.map_err(CliError::other)? {
        return Err(CliError::Usage(
            "this store is already initialised: an administrator token exists".into(),
        ));
    }
    let tenant = Tenant::default_tenant();
    let issued = TokenService::new(store)
        .mint(MintRequest::administrator(&principal, &tenant))
        .await
        .map_err(CliError::other)?;
    if json {
        out!(
            "{}",
            serde_json::json!({"token": issued.token.expose_secret(), "principal": issued.principal, "tenant": issued.tenant.as_str()})
        );
    } else {
        out!(
            "Administrator token for {} (shown once; store it safely):",
            issued.principal
        );
        out!("{}", issued.token.expose_secret());
    }
    Ok(())
}
