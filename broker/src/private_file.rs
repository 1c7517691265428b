//! Files that hold key material or tokens: created new with mode 0600 and synced to disk
//! before anyone relies on them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` (which must not exist) readable only by its owner, writes `bytes`, and syncs.
///
/// # Errors
/// When the file exists already or cannot be written.
pub fn create(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
