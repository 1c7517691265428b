//! Principals: `service:<environment>:<name>`, `user:<name>` and `group:<name>`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::InvalidName;

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(String);

fn is_name(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.len() <= 64
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl Principal {
    /// # Errors
    /// When `value` is not one of the three principal forms.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let valid = match value.split(':').collect::<Vec<_>>().as_slice() {
            ["service", environment, name] => {
                super::Environment::parse(environment).is_ok() && is_name(name)
            }
            ["user", name] | ["group", name] => is_name(name),
            _ => false,
        };
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidName {
                field: "principal",
                reason: "must be service:<environment>:<name>, user:<name> or group:<name>, names of lowercase letters, digits, '-', '_' and '.'".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_group(&self) -> bool {
        self.0.starts_with("group:")
    }

    pub fn is_user(&self) -> bool {
        self.0.starts_with("user:")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(|e| serde::de::Error::custom(e.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::Principal;

    #[test]
    fn the_three_forms_parse() {
        for (input, valid, case) in [
            ("service:prod:payments-api", true, "service"),
            ("user:alice", true, "user"),
            ("group:payments-oncall", true, "group"),
            ("service:payments-api", false, "service without environment"),
            ("service:Prod:x", false, "bad environment"),
            ("robot:x", false, "unknown kind"),
            ("user:", false, "empty name"),
            ("user:a:b", false, "extra segment"),
            ("user:alice'--", false, "injection"),
        ] {
            assert_eq!(Principal::parse(input).is_ok(), valid, "case: {case}");
        }
    }
}
