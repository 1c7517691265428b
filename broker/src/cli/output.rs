//! Shared pieces of the client commands: calling the API, printing JSON or human output,
//! reading a JSON document from a file or stdin, and writing lines to standard output.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use super::{ApiClient, CliError, ClientArgs};

/// `println!` for command output (see [`write_line`]).
macro_rules! out {
    () => {
        $crate::cli::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Writes one line to standard output. A reader that went away (`leasehold audit query | head`)
/// ends the command quietly and successfully, as Unix tools do, where `println!` would panic;
/// any other write failure ends it with an error that says so.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("Error: could not write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

/// Prints `value` as pretty JSON with `--json`, else as `human` renders it.
pub async fn print(
    client_args: &ClientArgs,
    value: Value,
    human: impl FnOnce(&Value) -> String,
) -> Result<(), CliError> {
    if client_args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(CliError::other)?
        );
    } else {
        out!("{}", human(&value));
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
