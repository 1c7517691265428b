//! The definition of a role: what `PUT /v1/roles/{name}` accepts, validated against the plugin
//! of its backend, and stored with every default filled in, so `GET` shows exactly the
//! statements a lease runs.

use leasehold_plugins::password::PasswordPolicy;
use leasehold_plugins::template::{Purpose, parse_all};
use leasehold_plugins::username::{DEFAULT_TEMPLATE, UsernameTemplate};
use leasehold_plugins::{PluginKind, Statements};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DynamicError;
use crate::domain::{Environment, Ttl};

const DEFAULT_TTL: &str = "1h";
const DEFAULT_MAX_TTL: &str = "24h";
const MAX_STATEMENTS: usize = 32;
const MAX_STATEMENT_BYTES: usize = 8 * 1024;

/// The body of `PUT /v1/roles/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutRole {
    pub backend: String,
    /// The environment the role's leases belong to (policy resources are `<env>/roles/<name>`).
    pub environment: String,
    /// Templates with `{{name}}`, `{{password}}`, `{{password_hash}}` (MariaDB), `{{expiration}}`.
    /// Default: a login user that is a member of `memberOf`.
    pub creation_statements: Option<Vec<String>>,
    pub revocation_statements: Option<Vec<String>>,
    pub renew_statements: Option<Vec<String>>,
    /// Group roles that hold the privileges (used by the default creation statements).
    #[serde(default)]
    pub member_of: Vec<String>,
    /// e.g. `15m` (default `1h`).
    pub default_ttl: Option<String>,
    /// e.g. `24h` (the default); requests above it are capped.
    pub max_ttl: Option<String>,
    /// Default `lh_{{role}}_{{principal}}_{{unix_time}}_{{random}}`.
    pub username_template: Option<String>,
    pub password_policy: Option<PasswordPolicyConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordPolicyConfig {
    /// 16-128 (default 32).
    pub length: usize,
    /// Adds `-_.~!#%^*+=` to letters and digits.
    #[serde(default)]
    pub symbols: bool,
}

/// What is stored in `roles.definition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub member_of: Vec<String>,
    pub username_template: String,
    pub password_policy: PasswordPolicyConfig,
}

/// A validated role, ready to store.
#[derive(Debug, Clone)]
pub struct ValidRole {
    pub backend: String,
    pub environment: Environment,
    pub definition: RoleDefinition,
    pub default_ttl: Ttl,
    pub max_ttl: Ttl,
}

fn invalid(field: &'static str, message: impl Into<String>) -> DynamicError {
    DynamicError::Invalid {
        field,
        message: message.into(),
    }
}

fn check_statements(
    field: &'static str,
    kind: PluginKind,
    purpose: Purpose,
    statements: &[String],
) -> Result<(), DynamicError> {
    if statements.len() > MAX_STATEMENTS || statements.iter().any(|s| s.len() > MAX_STATEMENT_BYTES)
    {
        return Err(invalid(
            field,
            format!("{field}: at most {MAX_STATEMENTS} statements of at most 8 KiB each"),
        ));
    }
    parse_all(kind.dialect(), purpose, statements)
        .map(|_| ())
        .map_err(|e| invalid(field, format!("{field}: {}", e.message)))
}

impl PutRole {
    /// Validates the role for a backend running `kind` and fills in every default.
    ///
    /// # Errors
    /// `Invalid` naming the field at fault.
    pub fn validate(self, kind: PluginKind) -> Result<ValidRole, DynamicError> {
        let environment = Environment::parse(&self.environment)?;
        let default_ttl = Ttl::parse(
            "defaultTtl",
            self.default_ttl.as_deref().unwrap_or(DEFAULT_TTL),
        )?;
        let max_ttl = Ttl::parse("maxTtl", self.max_ttl.as_deref().unwrap_or(DEFAULT_MAX_TTL))?;
        if default_ttl > max_ttl {
            return Err(invalid("defaultTtl", "defaultTtl must not exceed maxTtl"));
        }
        for group in &self.member_of {
            let ok = !group.is_empty()
                && group.len() <= 63
                && group
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(invalid(
                    "memberOf",
                    "memberOf: group role names are 1-63 characters of letters, digits, '_' and '-'",
                ));
            }
        }
        let defaults: Statements = kind.default_statements(&self.member_of);
        let creation = self.creation_statements.unwrap_or(defaults.creation);
        let revocation = self.revocation_statements.unwrap_or(defaults.revocation);
        let renew = self.renew_statements.unwrap_or(defaults.renewal);
        if creation.is_empty() {
            return Err(invalid(
                "creationStatements",
                "creationStatements must not be empty",
            ));
        }
        if revocation.is_empty() {
            return Err(invalid(
                "revocationStatements",
                "revocationStatements must not be empty: a lease must be revocable",
            ));
        }
        check_statements("creationStatements", kind, Purpose::Creation, &creation)?;
        check_statements(
            "revocationStatements",
            kind,
            Purpose::Revocation,
            &revocation,
        )?;
        check_statements("renewStatements", kind, Purpose::Renewal, &renew)?;
        let username_template = self
            .username_template
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
        UsernameTemplate::parse(&username_template)
            .map_err(|e| invalid("usernameTemplate", e.message))?;
        let policy = self.password_policy.unwrap_or(PasswordPolicyConfig {
            length: PasswordPolicy::default().length,
            symbols: false,
        });
        PasswordPolicy::new(policy.length, policy.symbols)
            .map_err(|e| invalid("passwordPolicy", e.message))?;
        Ok(ValidRole {
            backend: self.backend,
            environment,
            definition: RoleDefinition {
                creation_statements: creation,
                revocation_statements: revocation,
                renew_statements: renew,
                member_of: self.member_of,
                username_template,
                password_policy: policy,
            },
            default_ttl,
            max_ttl,
        })
    }
}

impl RoleDefinition {
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy::new(self.password_policy.length, self.password_policy.symbols)
            .unwrap_or_default()
    }

    /// # Errors
    /// When the stored template no longer parses (the store was edited by hand).
    pub fn username_template(&self) -> Result<UsernameTemplate, DynamicError> {
        UsernameTemplate::parse(&self.username_template)
            .map_err(|e| invalid("usernameTemplate", e.message))
    }
}
