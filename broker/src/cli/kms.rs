//! `leasehold kms …`: `rotate-local-key` works on the key-ring file directly; `status` and
//! `rewrap` go through the API of a running broker (an administrator token).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{call, out, print};
use super::{ApiClient, CliError, ClientArgs};
use crate::crypto::LocalKms;

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Add a fresh master key to a local key ring and make it the one new writes use; older
    /// keys stay in the ring so every existing version still reads.
    RotateLocalKey {
        /// The key-ring file (`kms.key_file` in the configuration, `master.key` in dev).
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Which master keys wrap the stored data keys, and how many each.
    Status,
    /// Re-wrap every stored data key under the active master key, in batches, without touching
    /// any ciphertext. Interrupted, it resumes by running it again.
    Rewrap {
        /// The target: the active master key (`local-N`, or the AWS key id, alias or ARN).
        #[arg(long)]
        to: String,
        /// Data keys per request.
        #[arg(long, default_value_t = 200)]
        batch_size: usize,
    },
}

pub async fn run(client_args: &ClientArgs, command: KmsCommand) -> Result<(), CliError> {
    match command {
        KmsCommand::RotateLocalKey { key_file } => {
            let id = LocalKms::rotate_file(&key_file).map_err(CliError::other)?;
            out!(
                "New writes now use master key {id} once the broker restarts; then `leasehold kms rewrap --to {id}` moves the stored data keys to it."
            );
            Ok(())
        }
        KmsCommand::Status => status(client_args).await,
        KmsCommand::Rewrap { to, batch_size } => rewrap(client_args, &to, batch_size).await,
    }
}

async fn status(client_args: &ClientArgs) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let status = call(&client, Method::GET, "/v1/sys/kms", None).await?;
    print(client_args, status, |s| {
        let mut out = format!(
            "Active: {} key {}{}\n",
            s["provider"].as_str().unwrap_or("?"),
            s["activeKey"].as_str().unwrap_or("?"),
            match (s["activeKeyId"].as_str(), s["kmsError"].as_str()) {
                (Some(id), _) if Some(id) != s["activeKey"].as_str() => format!(" ({id})"),
                (_, Some(error)) => format!(" (cannot be resolved now: {error})"),
                _ => String::new(),
            }
        );
        for key in s["keys"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<80} {:>8} data keys{}{}\n",
                key["keyId"].as_str().unwrap_or("?"),
                key["rows"],
                if key["active"].as_bool() == Some(true) {
                    "  (active)"
                } else {
                    ""
                },
                if key["held"].as_bool() == Some(false) {
                    "  NOT HELD by any configured provider: these rows cannot be read"
                } else {
                    ""
                },
            ));
        }
        out.push_str(&format!(
            "{} data keys are not under the active key.",
            s["notUnderActiveKey"]
        ));
        out
    })
    .await
}

async fn rewrap(client_args: &ClientArgs, to: &str, batch_size: usize) -> Result<(), CliError> {
    let client = ApiClient::new(client_args)?;
    let status = call(&client, Method::GET, "/v1/sys/kms", None).await?;
    let total = status["notUnderActiveKey"].as_u64().unwrap_or(0);
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if !client_args.json && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {pos}/{len} re-wrapped ({per_sec}, ETA {eta})",
        )
        .map_err(CliError::other)?,
    );
    let (mut rewrapped, mut skipped) = (0u64, 0u64);
    let mut failed: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    let (target, remaining) = loop {
        let batch = call(
            &client,
            Method::POST,
            "/v1/sys/kms/rewrap",
            Some(json!({"to": to, "batchSize": batch_size, "after": after})),
        )
        .await?;
        let done = batch["rewrapped"].as_u64().unwrap_or(0);
        rewrapped += done;
        skipped += batch["skipped"].as_u64().unwrap_or(0);
        failed.extend(batch["failed"].as_array().cloned().unwrap_or_default());
        bar.inc(done);
        after = batch["next"].as_str().map(str::to_owned);
        if after.is_none() {
            break (
                batch["targetKeyId"].as_str().unwrap_or(to).to_owned(),
                batch["remaining"].as_i64().unwrap_or(0),
            );
        }
    };
    bar.finish_and_clear();
    let summary = json!({
        "targetKeyId": target,
        "rewrapped": rewrapped,
        "skipped": skipped,
        "failed": failed,
        "remaining": remaining,
    });
    print(client_args, summary, |s| {
        let mut out = format!(
            "Re-wrapped {rewrapped} data keys under {}; {remaining} remain under other keys.",
            s["targetKeyId"].as_str().unwrap_or(to)
        );
        for row in &failed {
            out.push_str(&format!(
                "\n  failed: {}: {}",
                row["row"].as_str().unwrap_or("?"),
                row["error"].as_str().unwrap_or("?")
            ));
        }
        if remaining > 0 {
            out.push_str("\nRun `leasehold kms status` to see which keys still hold data keys.");
        }
        out
    })
    .await?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other(format!(
            "{} data keys could not be re-wrapped",
            failed.len()
        )))
    }
}
