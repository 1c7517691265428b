//! Plugin errors, classified by what the caller should do about them.

use std::fmt;

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The target could not be reached, refused a login, or ran out of connections: retry later.
    Unavailable,
    /// The target rejected a statement (syntax, permission, unknown group role): retrying the
    /// same request fails the same way; fix the role or backend configuration.
    Rejected,
    /// The request itself cannot be carried out (a value that cannot be quoted, a bad template).
    InvalidInput,
}

/// An error from a backend. Its message never contains a password or a verifier: messages from
/// the target are scrubbed of them before they are wrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Unavailable,
            message: message.into(),
        }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Rejected,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Unavailable => "target unavailable",
            ErrorKind::Rejected => "target rejected the statement",
            ErrorKind::InvalidInput => "invalid input",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

/// Replaces every occurrence of each secret in `message` (a target's error text may quote the
/// statement it failed on).
pub(crate) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut scrubbed = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        scrubbed = scrubbed.replace(secret, "<redacted>");
    }
    scrubbed
}
