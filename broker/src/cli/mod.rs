//! The `leasehold` command line: `server`, operator tools (`migrate`, `operator`, `kms`), API
//! client commands (`secret …`, `rotation …`, `static-role …`, `backend|role|lease …`) and `bench`. Client commands print human output by default and
//! the API's JSON with `--json`.

mod access;
mod admin;
mod audit;
mod bench;
mod bench_drop;
mod bench_expiry;
mod bench_leases;
mod bench_revoke;
mod client;
mod dynamic;
mod kms;
mod output;
mod revoke_mass;
mod rotation;
mod secret;
mod server;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use client::{ApiClient, CliError};

#[derive(Debug, Parser)]
#[command(
    name = "leasehold",
    version,
    about = "Dynamic-credentials lease broker and secret store"
)]
pub struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Server(server::ServerArgs),
    /// Apply pending store migrations and exit.
    Migrate(admin::MigrateArgs),
    /// Operator tasks on a store (initialisation).
    #[command(subcommand)]
    Operator(admin::OperatorCommand),
    /// Master keys: rotate the local key ring, see which keys wrap the stored data keys,
    /// re-wrap them under the active key.
    #[command(subcommand)]
    Kms(kms::KmsCommand),
    /// Policies and the policy simulator.
    #[command(subcommand)]
    Policy(access::PolicyCommand),
    /// Bearer tokens.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Group membership.
    #[command(subcommand)]
    Group(access::GroupCommand),
    /// Emergency, time-bound, alerted read grants.
    #[command(subcommand)]
    BreakGlass(access::BreakGlassCommand),
    /// Show who the current token speaks for.
    Whoami,
    /// The audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Static secrets.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Credential backends (database servers leases create users in).
    #[command(subcommand)]
    Backend(dynamic::BackendCommand),
    /// Roles: what a lease on a backend creates.
    #[command(subcommand)]
    Role(dynamic::RoleCommand),
    /// Leases: issue, renew, revoke and list dynamic credentials.
    #[command(subcommand)]
    Lease(dynamic::LeaseCommand),
    /// Rotation: policies, rotate, rollback, runs, overdue secrets.
    #[command(subcommand)]
    Rotation(rotation::RotationCommand),
    /// Static database roles: existing users whose passwords the broker rotates.
    #[command(subcommand)]
    StaticRole(rotation::StaticRoleCommand),
    /// Measure the broker against its physical limits.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Where the API is and who is calling; shared by every client command.
#[derive(Clone, Args)]
pub struct ClientArgs {
    /// Broker address.
    #[arg(
        long,
        env = "LEASEHOLD_ADDR",
        default_value = "http://127.0.0.1:8200",
        global = true
    )]
    pub addr: String,
    /// Bearer token (prefer the environment variable: arguments show up in `ps`).
    #[arg(long, env = "LEASEHOLD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// PEM file of a CA to trust for the broker's TLS certificate.
    #[arg(long, env = "LEASEHOLD_CACERT", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print the API's JSON instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("json", &self.json)
            .finish()
    }
}

/// Runs one command; the exit code is 0 on success, 1 on failure.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Migrate(args) => admin::migrate(args).await,
        Command::Operator(command) => admin::operator(command).await,
        Command::Kms(command) => kms::run(&cli.client, command).await,
        Command::Policy(command) => access::policy(&cli.client, command).await,
        Command::Token(command) => access::token(&cli.client, command).await,
        Command::Group(command) => access::group(&cli.client, command).await,
        Command::BreakGlass(command) => access::break_glass(&cli.client, command).await,
        Command::Audit(command) => audit::run(&cli.client, command).await,
        Command::Whoami => access::whoami(&cli.client).await,
        Command::Secret(args) => secret::run(&cli.client, args).await,
        Command::Backend(command) => dynamic::backend(&cli.client, command).await,
        Command::Role(command) => dynamic::role(&cli.client, command).await,
        Command::Lease(command) => dynamic::lease(&cli.client, command).await,
        Command::Rotation(command) => rotation::rotation(&cli.client, command).await,
        Command::StaticRole(command) => rotation::static_role(&cli.client, command).await,
        Command::Bench(command) => bench::run(&cli.client, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}
