//! Policy documents as callers write them, validated whole before anything is stored: a
//! malformed statement, an unknown action or an unknown condition rejects the entire policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Action;
use super::glob::Glob;

/// One statement, exactly the seed's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatementDocument {
    /// `allow` or `deny`.
    pub effect: String,
    /// A principal (`service:prod:payments-api`, `user:alice`, `group:payments-oncall`) or a glob
    /// over principals (`service:prod:*`).
    pub principal: String,
    pub actions: Vec<String>,
    /// Globs over `environment/path`; `*` stays within a segment, `**` crosses segments.
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub conditions: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    pub statements: Vec<StatementDocument>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A CIDR block, `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.parse().ok()?
        };
        (prefix <= max).then_some(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Conditions that must all hold for a statement to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// The caller logged in from one of these clusters.
    pub source_cluster: Option<Vec<String>>,
    /// `true`: the caller's token carries MFA. `false` (or absent): no requirement.
    pub mfa: bool,
    /// `true`: the request names a ticket (`X-Leasehold-Ticket`, or `ticketUrl` for break-glass).
    pub ticket_required: bool,
    /// The caller's address is in one of these blocks.
    pub source_ip: Option<Vec<Cidr>>,
}

/// A validated statement, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Statement {
    pub effect: Effect,
    pub principal: Glob,
    pub actions: u32,
    pub resources: Vec<Glob>,
    pub conditions: Conditions,
}

/// Why a policy document was refused; `field` is a JSON path such as `statements[2].actions[0]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

fn error(field: String, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field,
        message: message.into(),
    }
}

const MAX_STATEMENTS: usize = 256;

fn string_list(value: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| error(format!("{field}[{i}]"), "must be a string"))
            })
            .collect(),
        _ => Err(error(
            field.to_owned(),
            "must be a string or a non-empty list of strings",
        )),
    }
}

pub(super) fn valid_glob(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 600
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '*' | ':'))
}

impl StatementDocument {
    /// # Errors
    /// The first thing wrong with the statement, naming its field.
    pub fn compile(&self, at: &str) -> Result<Statement, PolicyError> {
        let effect = match self.effect.as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            _ => {
                return Err(error(
                    format!("{at}.effect"),
                    "must be \"allow\" or \"deny\"",
                ));
            }
        };
        let principal_ok = self.principal == "*"
            || (valid_glob(&self.principal)
                && (self.principal.contains('*')
                    || crate::domain::Principal::parse(&self.principal).is_ok()));
        if !principal_ok {
            return Err(error(
                format!("{at}.principal"),
                "must be a principal (service:<env>:<name>, user:<name>, group:<name>), a glob such as service:prod:*, or *",
            ));
        }
        if self.actions.is_empty() {
            return Err(error(
                format!("{at}.actions"),
                "must name at least one action",
            ));
        }
        let mut actions = 0u32;
        for (i, name) in self.actions.iter().enumerate() {
            let action = Action::parse(name).ok_or_else(|| {
                error(
                    format!("{at}.actions[{i}]"),
                    format!(
                        "unknown action; known actions: {}",
                        Action::ALL.map(Action::as_str).join(", ")
                    ),
                )
            })?;
            actions |= action.bit();
        }
        if self.resources.is_empty() {
            return Err(error(
                format!("{at}.resources"),
                "must name at least one resource glob",
            ));
        }
        let mut resources = Vec::with_capacity(self.resources.len());
        for (i, pattern) in self.resources.iter().enumerate() {
            if !valid_glob(pattern) || pattern.contains("..") {
                return Err(error(
                    format!("{at}.resources[{i}]"),
                    "must be a glob over environment/path: letters, digits, '/', '.', '_', '-', '*'",
                ));
            }
            resources.push(Glob::new(pattern));
        }
        let conditions = self.compile_conditions(at)?;
        Ok(Statement {
            effect,
            principal: Glob::new(&self.principal),
            actions,
            resources,
            conditions,
        })
    }

    fn compile_conditions(&self, at: &str) -> Result<Conditions, PolicyError> {
        let mut conditions = Conditions::default();
        for (key, value) in &self.conditions {
            let field = format!("{at}.conditions.{key}");
            match key.as_str() {
                "sourceCluster" => conditions.source_cluster = Some(string_list(value, &field)?),
                "mfa" => {
                    conditions.mfa = value
                        .as_bool()
                        .ok_or_else(|| error(field.clone(), "must be true or false"))?;
                }
                "ticketRequired" => {
                    conditions.ticket_required = value
                        .as_bool()
                        .ok_or_else(|| error(field.clone(), "must be true or false"))?;
                }
                "sourceIp" => {
                    let blocks = string_list(value, &field)?
                        .iter()
                        .enumerate()
                        .map(|(i, text)| {
                            Cidr::parse(text).ok_or_else(|| {
                                error(
                                    format!("{field}[{i}]"),
                                    "must be a CIDR block such as 10.0.0.0/8",
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    conditions.source_ip = Some(blocks);
                }
                _ => {
                    return Err(error(
                        field,
                        "unknown condition; known conditions: sourceCluster, mfa, ticketRequired, sourceIp",
                    ));
                }
            }
        }
        Ok(conditions)
    }
}

impl PolicyDocument {
    /// Validates every statement; nothing is returned unless all of them are valid.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn compile(&self) -> Result<Vec<Statement>, PolicyError> {
        if self.statements.is_empty() {
            return Err(error(
                "statements".into(),
                "must contain at least one statement",
            ));
        }
        if self.statements.len() > MAX_STATEMENTS {
            return Err(error(
                "statements".into(),
                "at most 256 statements per policy",
            ));
        }
        self.statements
            .iter()
            .enumerate()
            .map(|(i, s)| s.compile(&format!("statements[{i}]")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(json: Value) -> Result<Statement, PolicyError> {
        serde_json::from_value::<StatementDocument>(json)
            .expect("shape")
            .compile("statements[0]")
    }

    #[test]
    fn the_seed_statements_compile() {
        statement(serde_json::json!({"effect":"allow","principal":"service:prod:payments-api","actions":["secrets:read"],
            "resources":["prod/payments/*"],"conditions":{"sourceCluster":"prod-us-east-1","mfa":false}}))
        .expect("first seed statement");
        statement(serde_json::json!({"effect":"allow","principal":"group:payments-oncall","actions":["secrets:rotate","secrets:read-break-glass"],
            "resources":["prod/payments/*"],"conditions":{"mfa":true,"ticketRequired":true}}))
        .expect("second seed statement");
    }

    #[test]
    fn bad_statements_name_their_field() {
        let cases = [
            (
                serde_json::json!({"effect":"permit","principal":"user:a","actions":["secrets:read"],"resources":["*"]}),
                "statements[0].effect",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"robot:a","actions":["secrets:read"],"resources":["*"]}),
                "statements[0].principal",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"user:a","actions":["secrets:read","secrets:fly"],"resources":["*"]}),
                "statements[0].actions[1]",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"user:a","actions":[],"resources":["*"]}),
                "statements[0].actions",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["prod/'; --"]}),
                "statements[0].resources[0]",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["*"],"conditions":{"weekday":"mon"}}),
                "statements[0].conditions.weekday",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["*"],"conditions":{"sourceIp":["10.0.0.0/33"]}}),
                "statements[0].conditions.sourceIp[0]",
            ),
            (
                serde_json::json!({"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["*"],"conditions":{"mfa":"yes"}}),
                "statements[0].conditions.mfa",
            ),
        ];
        for (json, field) in cases {
            let err = statement(json).expect_err(field);
            assert_eq!(err.field, field);
        }
    }

    #[test]
    fn cidr_blocks() {
        let block = Cidr::parse("10.2.0.0/16").expect("cidr");
        assert!(block.contains("10.2.4.17".parse().expect("ip")));
        assert!(!block.contains("10.3.0.1".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            Cidr::parse("::1")
                .expect("v6")
                .contains("::1".parse().expect("ip"))
        );
        assert!(Cidr::parse("nonsense").is_none());
        assert!(
            block.contains("::ffff:10.2.4.17".parse().expect("mapped")),
            "IPv4-mapped IPv6"
        );
    }
}
