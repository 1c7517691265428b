//! The JSON-lines stream of audit events for a SIEM: a file (appended to, reopened when it is
//! deleted or rotated away) or standard output. A *required* sink that cannot take a batch fails
//! that batch's requests closed; a *best-effort* one logs and counts the failure.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

/// `[audit_sink]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// A file path, or `-` for standard output.
    pub path: String,
    /// Whether an event that cannot reach the sink fails its operation.
    #[serde(default = "required_by_default")]
    pub required: bool,
}

fn required_by_default() -> bool {
    true
}

enum Target {
    Stdout,
    File { path: PathBuf, file: Option<File> },
}

/// A JSON-lines sink; writes run on a blocking thread, bounded by a timeout.
#[derive(Clone)]
pub struct JsonLinesSink {
    target: Arc<Mutex<Target>>,
    pub required: bool,
    timeout: Duration,
}

impl JsonLinesSink {
    pub fn new(settings: &SinkSettings, timeout: Duration) -> Self {
        let target = if settings.path == "-" {
            Target::Stdout
        } else {
            Target::File {
                path: PathBuf::from(&settings.path),
                file: None,
            }
        };
        Self {
            target: Arc::new(Mutex::new(target)),
            required: settings.required,
            timeout,
        }
    }

    /// Appends `lines` (one JSON document each) and flushes them to the file.
    ///
    /// # Errors
    /// A description of what failed: the file could not be (re)opened or written, or the write
    /// did not finish within the timeout.
    pub async fn write(&self, lines: Vec<String>) -> Result<(), String> {
        let target = self.target.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut target = target.lock().map_err(|_| "sink lock poisoned".to_owned())?;
            write_lines(&mut target, &lines)
        });
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("sink writer panicked".into()),
            Err(_) => Err("sink write timed out".into()),
        }
    }
}

fn write_lines(target: &mut Target, lines: &[String]) -> Result<(), String> {
    let mut text = lines.join("\n");
    text.push('\n');
    match target {
        Target::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("stdout: {e}"))
        }
        Target::File { path, file } => {
            // Deleted or rotated away: the open handle no longer names the file at `path`.
            let still_there = match (file.as_ref(), std::fs::metadata(&*path)) {
                (Some(open), Ok(on_disk)) => open
                    .metadata()
                    .is_ok_and(|m| m.ino() == on_disk.ino() && m.dev() == on_disk.dev()),
                _ => false,
            };
            if !still_there {
                if file.is_some() {
                    tracing::warn!(path = %path.display(), "audit file was deleted or rotated; reopening");
                }
                *file = Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(&*path)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                );
            }
            let open = file
                .as_mut()
                .ok_or_else(|| "audit file not open".to_owned())?;
            let written = open.write_all(text.as_bytes()).and_then(|()| {
                match open.sync_data() {
                    // A FIFO or socket a shipper reads from has nothing to sync: the lines are
                    // with the reader once written (fsync(2) answers EINVAL for those).
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
                    synced => synced,
                }
            });
            if let Err(e) = written {
                *file = None;
                return Err(format!("{}: {e}", path.display()));
            }
            Ok(())
        }
    }
}
