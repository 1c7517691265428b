//! The `leasehold` binary: server, operator tools and API client in one command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    leasehold_broker::tls::install_crypto_provider();
    leasehold_broker::cli::run(leasehold_broker::cli::Cli::parse()).await
}
