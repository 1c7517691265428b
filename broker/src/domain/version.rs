//! Version numbers, version lifecycle states and rotation strategies.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A version number; monotonic per secret, starting at 1.
pub type VersionNumber = i64;

/// Where a version is in its lifecycle.
///
/// `PENDING` versions were written but never promoted; `CURRENT` is what `current` points at;
/// `PREVIOUS` is the version `current` pointed at before the last promotion; `DEPRECATED` versions
/// left `PREVIOUS` and are readable only by number; `DISABLED` versions are unreadable until
/// enabled; `DESTROYED` versions have lost their ciphertext and wrapped key for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionStatus {
    Pending,
    Current,
    Previous,
    Deprecated,
    Disabled,
    Destroyed,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Current => "CURRENT",
            Self::Previous => "PREVIOUS",
            Self::Deprecated => "DEPRECATED",
            Self::Disabled => "DISABLED",
            Self::Destroyed => "DESTROYED",
        }
    }

    /// Parses the stored form; `None` for anything the store should never contain.
    pub fn from_stored(value: &str) -> Option<Self> {
        Some(match value {
            "PENDING" => Self::Pending,
            "CURRENT" => Self::Current,
            "PREVIOUS" => Self::Previous,
            "DEPRECATED" => Self::Deprecated,
            "DISABLED" => Self::Disabled,
            "DESTROYED" => Self::Destroyed,
            _ => return None,
        })
    }

    /// Whether a reader may be given this version's value.
    pub fn is_readable(self) -> bool {
        !matches!(self, Self::Disabled | Self::Destroyed)
    }
}

impl fmt::Display for VersionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a secret is rotated. Scheduled rotation arrives with the rotation workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RotationStrategy {
    /// New versions are written and promoted by hand.
    #[default]
    Manual,
    /// New versions are written as PENDING, canaried through `next`, then promoted with an
    /// overlap window during which `previous` stays readable.
    ManualOverlap,
}

impl RotationStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::ManualOverlap => "manual-overlap",
        }
    }

    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "manual" => Some(Self::Manual),
            "manual-overlap" => Some(Self::ManualOverlap),
            _ => None,
        }
    }
}
