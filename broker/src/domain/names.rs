//! Validated names: environments, secret paths, tenants, owner teams and aliases.
//!
//! Grammar (documented in `docs/architecture.md`, enforced here and nowhere else):
//! - environment: `[a-z][a-z0-9-]{0,31}` — short enough that it can never be mistaken for a
//!   36-character secret id in `/v1/secrets/{environment}/{path}`;
//! - path: 1 to 16 segments joined by `/`, each `[A-Za-z0-9._-]{1,128}` and neither `.` nor `..`,
//!   at most 512 bytes; no leading or trailing `/`, no empty segment;
//! - tenant and owner team: `[a-z0-9][a-z0-9_-]{0,63}`;
//! - alias: `current`, `previous` or `next`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a name was rejected; the message says what the valid form is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidName {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidName {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

const MAX_PATH_BYTES: usize = 512;
const MAX_PATH_SEGMENTS: usize = 16;
const MAX_SEGMENT_BYTES: usize = 128;

fn is_lower_slug(value: &str, max: usize) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.len() <= max
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

macro_rules! string_newtype {
    ($name:ident, $field:literal) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(|e| serde::de::Error::custom(e.reason))
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

/// A deployment environment such as `prod` or `staging`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Environment(String);
string_newtype!(Environment, "environment");

impl Environment {
    /// # Errors
    /// When `value` is not `[a-z][a-z0-9-]{0,31}`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let mut chars = value.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
            && value.len() <= 32
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidName::new(
                "environment",
                "must be 1-32 characters of lowercase letters, digits and '-', starting with a letter (e.g. \"prod\")",
            ))
        }
    }
}

/// A secret's path inside its environment, such as `payments/stripe-api-key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretPath(String);
string_newtype!(SecretPath, "path");

impl SecretPath {
    /// # Errors
    /// When `value` breaks the path grammar in the module documentation.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let fail = |reason: &str| Err(InvalidName::new("path", reason));
        if value.is_empty() {
            return fail("must not be empty (e.g. \"payments/stripe-api-key\")");
        }
        if value.len() > MAX_PATH_BYTES {
            return fail("must be at most 512 bytes");
        }
        if value.starts_with('/') || value.ends_with('/') {
            return fail("must not start or end with '/'");
        }
        let segments: Vec<&str> = value.split('/').collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return fail("must have at most 16 segments");
        }
        for segment in segments {
            if segment.is_empty() {
                return fail("must not contain an empty segment ('//')");
            }
            if segment == "." || segment == ".." {
                return fail("must not contain '.' or '..' segments");
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return fail("each segment must be at most 128 bytes");
            }
            if !segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return fail(
                    "segments may contain only letters, digits, '.', '_' and '-', separated by '/'",
                );
            }
        }
        Ok(Self(value.to_owned()))
    }
}

/// The tenant that owns a secret or a token; tenants never see each other's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);
string_newtype!(Tenant, "tenant");

impl Tenant {
    /// # Errors
    /// When `value` is not `[a-z0-9][a-z0-9_-]{0,63}`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        if is_lower_slug(value, 64) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidName::new(
                "tenant",
                "must be 1-64 characters of lowercase letters, digits, '-' and '_'",
            ))
        }
    }

    /// The tenant of the dev server and of tokens minted without one.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }
}

/// The team that owns a secret, used by audit summaries and rotation reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerTeam(String);
string_newtype!(OwnerTeam, "ownerTeam");

impl OwnerTeam {
    /// # Errors
    /// When `value` is not `[a-z0-9][a-z0-9_-]{0,63}`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        if is_lower_slug(value, 64) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidName::new(
                "ownerTeam",
                "must be 1-64 characters of lowercase letters, digits, '-' and '_' (e.g. \"payments\")",
            ))
        }
    }
}

/// A named pointer at one version of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AliasName {
    Current,
    Previous,
    Next,
}

impl AliasName {
    /// # Errors
    /// When `value` is not one of `current`, `previous`, `next`.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        match value {
            "current" => Ok(Self::Current),
            "previous" => Ok(Self::Previous),
            "next" => Ok(Self::Next),
            _ => Err(InvalidName::new(
                "alias",
                "must be one of \"current\", \"previous\", \"next\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Next => "next",
        }
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_grammar() {
        let cases = [
            ("payments/stripe-api-key", true, "two plain segments"),
            ("a", true, "single segment"),
            (
                "v1.2/key_name",
                true,
                "dots and underscores inside segments",
            ),
            ("", false, "empty"),
            ("/payments/key", false, "leading slash"),
            ("payments/key/", false, "trailing slash"),
            ("payments//key", false, "empty segment"),
            ("payments/../key", false, "parent segment"),
            ("./key", false, "dot segment"),
            ("pay ments/key", false, "space"),
            ("payments/key%00", false, "percent"),
            ("payments/'; DROP TABLE secrets;--", false, "sql injection"),
            ("payments/ключ", false, "non-ascii"),
        ];
        for (input, valid, case) in cases {
            assert_eq!(SecretPath::parse(input).is_ok(), valid, "case: {case}");
        }
        assert!(SecretPath::parse("a/".repeat(16).trim_end_matches('/')).is_ok());
        assert!(SecretPath::parse("a/".repeat(17).trim_end_matches('/')).is_err());
        assert!(
            SecretPath::parse(&"a".repeat(129)).is_err(),
            "segment too long"
        );
        assert!(
            SecretPath::parse(&vec!["a".repeat(128); 5].join("/")).is_err(),
            "path too long"
        );
    }

    #[test]
    fn environments_follow_the_grammar() {
        let cases = [
            ("prod", true, "plain"),
            ("us-east-1", true, "digits and dashes"),
            ("Prod", false, "uppercase"),
            ("1prod", false, "leading digit"),
            ("", false, "empty"),
            ("prod/x", false, "slash"),
            ("0b9c4a4e-2c4f-4f59-9d5c-6b1a2f8b9c01", false, "uuid-shaped"),
        ];
        for (input, valid, case) in cases {
            assert_eq!(Environment::parse(input).is_ok(), valid, "case: {case}");
        }
        assert!(Environment::parse(&"a".repeat(33)).is_err(), "too long");
    }

    #[test]
    fn aliases_parse_only_known_names() {
        assert_eq!(AliasName::parse("current"), Ok(AliasName::Current));
        assert!(AliasName::parse("latest").is_err());
    }
}
