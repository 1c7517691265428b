//! The selector of a mass revocation: which leases of the caller's tenant it takes. Every given
//! field must match; at least one must be given.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Environment;
use crate::dynamic::{DynamicError, check_name};
use crate::store::{LeaseRow, LeaseSelector, StoreError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// e.g. `service:prod:payments-api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Must be the caller's own tenant; tenants never see each other's leases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Leases issued at or after this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_after: Option<DateTime<Utc>>,
    /// Leases issued before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<DateTime<Utc>>,
    /// The start of a lease id, e.g. `019a7c3e` or `019a7c3e-5b2f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id_prefix: Option<String>,
}

const MAX_PRINCIPAL_LEN: usize = 256;

fn invalid(field: &'static str, message: String) -> DynamicError {
    DynamicError::Invalid { field, message }
}

impl Selector {
    /// The selector stored with job `job`.
    ///
    /// # Errors
    /// `Corrupt` when the stored JSON is not a selector (callers fail closed).
    pub fn from_stored(job: Uuid, json: &str) -> Result<Self, StoreError> {
        serde_json::from_str(json).map_err(|error| {
            StoreError::Corrupt(format!("the selector of revocation job {job}: {error}"))
        })
    }

    /// Checks every field and that at least one is given.
    ///
    /// # Errors
    /// `Invalid`, naming the field and its valid form.
    pub fn validate(&self) -> Result<(), DynamicError> {
        if *self == Self::default() {
            return Err(invalid(
                "selector",
                "selector: give at least one of role, backend, principal, tenant, environment, \
                 issuedAfter, issuedBefore, leaseIdPrefix"
                    .into(),
            ));
        }
        if let Some(role) = &self.role {
            check_name("selector.role", role)?;
        }
        if let Some(backend) = &self.backend {
            check_name("selector.backend", backend)?;
        }
        if let Some(environment) = &self.environment {
            Environment::parse(environment)?;
        }
        if let Some(principal) = &self.principal {
            let valid = !principal.is_empty()
                && principal.len() <= MAX_PRINCIPAL_LEN
                && !principal.chars().any(char::is_control);
            if !valid {
                return Err(invalid(
                    "selector.principal",
                    format!(
                        "selector.principal: 1-{MAX_PRINCIPAL_LEN} characters without control characters, e.g. service:prod:payments-api"
                    ),
                ));
            }
        }
        if let (Some(after), Some(before)) = (self.issued_after, self.issued_before)
            && after >= before
        {
            return Err(invalid(
                "selector.issuedBefore",
                "selector.issuedBefore must be later than selector.issuedAfter".into(),
            ));
        }
        if let Some(prefix) = &self.lease_id_prefix {
            id_range(prefix)?;
        }
        Ok(())
    }

    /// The selector as the store runs it. Call [`Self::validate`] first.
    ///
    /// # Errors
    /// `Invalid` for a malformed lease-id prefix.
    pub fn to_store(&self) -> Result<LeaseSelector, DynamicError> {
        Ok(LeaseSelector {
            role: self.role.clone(),
            backend: self.backend.clone(),
            principal: self.principal.clone(),
            environment: self.environment.clone(),
            issued_after: self.issued_after,
            issued_before: self.issued_before,
            id_range: self.lease_id_prefix.as_deref().map(id_range).transpose()?,
        })
    }

    /// Whether `lease` (of the selector's tenant) is one the selector takes.
    pub fn matches(&self, lease: &LeaseRow) -> bool {
        let equal =
            |field: &Option<String>, value: &str| field.as_deref().is_none_or(|f| f == value);
        equal(&self.role, &lease.role)
            && equal(&self.backend, &lease.backend)
            && equal(&self.principal, &lease.principal)
            && equal(&self.tenant, &lease.tenant)
            && equal(&self.environment, &lease.environment)
            && self.issued_after.is_none_or(|t| lease.issued_at >= t)
            && self.issued_before.is_none_or(|t| lease.issued_at < t)
            && self
                .lease_id_prefix
                .as_deref()
                .and_then(|p| id_range(p).ok())
                .is_none_or(|(low, high)| lease.id >= low && lease.id <= high)
    }

    /// The policy resource the whole selector covers: `<environment>/roles/<role>`, with `*`
    /// for an environment or role it leaves open (`role_environment`, the environment of the
    /// named role, closes the first). Only a policy whose resource glob covers the open parts
    /// allows it.
    pub fn scope(&self, role_environment: Option<&str>) -> String {
        format!(
            "{}/roles/{}",
            self.environment
                .as_deref()
                .or(role_environment)
                .unwrap_or("*"),
            self.role.as_deref().unwrap_or("*")
        )
    }
}

/// The inclusive id range a lease-id prefix covers: hex digits, dashes only where a UUID has
/// them.
fn id_range(prefix: &str) -> Result<(Uuid, Uuid), DynamicError> {
    let error = || {
        invalid(
            "selector.leaseIdPrefix",
            format!(
                "selector.leaseIdPrefix: the start of a lease id (hex digits, dashes where the id has them, at most 36 characters), e.g. 019a7c3e-5b2f; got {} characters",
                prefix.chars().count()
            ),
        )
    };
    let dashes_in_place = prefix
        .char_indices()
        .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23));
    let digits: String = prefix.chars().filter(|c| *c != '-').collect();
    if prefix.is_empty()
        || prefix.len() > 36
        || !dashes_in_place
        || !digits.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(error());
    }
    let digits = digits.to_ascii_lowercase();
    let low = format!("{digits:0<32}");
    let high = format!("{digits:f<32}");
    let parse = |hex: &str| Uuid::parse_str(hex).map_err(|_| error());
    Ok((parse(&low)?, parse(&high)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_covers_exactly_the_ids_that_start_with_it() {
        let (low, high) = id_range("019a7c3e-5b").expect("valid");
        assert_eq!(low.to_string(), "019a7c3e-5b00-0000-0000-000000000000");
        assert_eq!(high.to_string(), "019a7c3e-5bff-ffff-ffff-ffffffffffff");
        let (low, high) = id_range("019A7C3E").expect("upper case");
        assert_eq!(low.to_string(), "019a7c3e-0000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "019a7c3e-ffff-ffff-ffff-ffffffffffff");
    }

    #[test]
    fn malformed_prefixes_are_refused() {
        for bad in [
            "",
            "019a7c3e5b",
            "xyz",
            "019a-7c3e",
            "'; DROP TABLE leases; --",
            "0".repeat(37).as_str(),
        ] {
            assert!(id_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_selector_is_refused() {
        assert!(Selector::default().validate().is_err());
        let only_tenant = Selector {
            tenant: Some("internal".into()),
            ..Selector::default()
        };
        assert!(only_tenant.validate().is_ok());
    }

    #[test]
    fn the_scope_leaves_open_what_the_selector_leaves_open() {
        let selector = Selector {
            environment: Some("prod".into()),
            ..Selector::default()
        };
        assert_eq!(selector.scope(None), "prod/roles/*");
        let selector = Selector {
            role: Some("app".into()),
            ..Selector::default()
        };
        assert_eq!(selector.scope(None), "*/roles/app");
        assert_eq!(selector.scope(Some("prod")), "prod/roles/app");
    }
}
