//! Shared pieces of the client commands: calling the API, printing JSON or human output,
//! reading a JSON document from a file or stdin.

use std::io::Read;
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use super::{ApiClient, CliError, ClientArgs};

/// Prints `value` as pretty JSON with `--json`, else as `human` renders it.
pub async fn print(
    client_args: &ClientArgs,
    value: Value,
    human: impl FnOnce(&Value) -> String,
) -> Result<(), CliError> {
    if client_args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(CliError::other)?
        );
    } else {
        println!("{}", human(&value));
    }
    Ok(())
}

/// Calls the API; a 204 answer (no body) is `Null`.
pub async fn call(
    client: &ApiClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CliError> {
    match client.call::<Value>(method, path, body.as_ref()).await {
        Err(CliError::Other(_)) => Ok(Value::Null),
        other => other,
    }
}

/// A JSON document from `file`, or from stdin when `file` is `-`.
pub fn read_json_file(file: &Path) -> Result<Value, CliError> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(CliError::other)?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    }
    serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", file.display())))
}
