//! Access decisions. Until the policy engine lands, administrators may do everything and
//! every other caller nothing: no policy means deny.

use crate::api::ApiError;
use crate::domain::{Environment, SecretPath};

use super::Caller;

/// What a caller wants to do; the names are the policy language's action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SecretsRead,
    SecretsWrite,
    SecretsList,
    SecretsAdmin,
    SecretsDestroy,
    SecretsRotate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretsRead => "secrets:read",
            Self::SecretsWrite => "secrets:write",
            Self::SecretsList => "secrets:list",
            Self::SecretsAdmin => "secrets:admin",
            Self::SecretsDestroy => "secrets:destroy",
            Self::SecretsRotate => "secrets:rotate",
        }
    }
}

/// What an action touches: `environment/path` for secrets, `*` for tenant-wide operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource(String);

impl Resource {
    pub fn secret(environment: &Environment, path: &SecretPath) -> Self {
        Self(format!("{environment}/{path}"))
    }

    pub fn tenant_wide() -> Self {
        Self("*".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one place that says yes or no.
#[derive(Debug, Clone, Default)]
pub struct Access;

impl Access {
    /// # Errors
    /// `Forbidden`, naming the action and resource, when the caller may not do it.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
    ) -> Result<(), ApiError> {
        if caller.is_admin {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "{} may not {} on {}: no policy allows it",
            caller.principal,
            action.as_str(),
            resource.as_str()
        )))
    }
}
