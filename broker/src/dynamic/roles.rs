//! The operations behind `/v1/roles`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::role_definition::ValidRole;
use super::{DynamicError, PluginRegistry, PutRole, RoleDefinition, check_name};
use crate::audit::TransactionEvents;
use crate::auth::Resource;
use crate::domain::{Environment, Ttl};
use crate::store::{RoleRow, Store, StoreError};

/// A stored role, parsed.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub backend: String,
    pub environment: Environment,
    pub definition: RoleDefinition,
    pub default_ttl: Ttl,
    pub max_ttl: Ttl,
}

impl Role {
    /// The policy resource of the role's leases: `<environment>/roles/<name>`.
    pub fn resource(&self) -> Resource {
        Resource::role(&self.environment, &self.name)
    }
}

/// A role as `GET` shows it, with every default filled in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    pub name: String,
    pub backend: String,
    pub environment: String,
    #[serde(flatten)]
    pub definition: RoleDefinition,
    pub default_ttl: String,
    pub max_ttl: String,
    /// The policy resource that `leases:*` statements name for this role.
    pub resource: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct RoleService {
    store: Store,
    registry: Arc<PluginRegistry>,
}

impl RoleService {
    pub fn new(store: Store, registry: Arc<PluginRegistry>) -> Self {
        Self { store, registry }
    }

    /// Validates `put` against its backend's plugin; answers the role as it will be stored.
    ///
    /// # Errors
    /// `Invalid` for a bad body or an unknown backend.
    pub async fn validate(
        &self,
        tenant: &str,
        name: &str,
        put: PutRole,
    ) -> Result<ValidRole, DynamicError> {
        check_name("name", name)?;
        check_name("backend", &put.backend)?;
        let backend = self
            .registry
            .get(tenant, &put.backend)
            .await
            .map_err(|e| match e {
                DynamicError::NotFound(_) => DynamicError::Invalid {
                    field: "backend",
                    message: format!("backend: no backend `{}`; create it first", put.backend),
                },
                other => other,
            })?;
        put.validate(backend.kind)
    }

    /// Stores the role, committing `audit`'s event with it.
    ///
    /// # Errors
    /// Storage and audit errors.
    pub async fn put(
        &self,
        tenant: &str,
        name: &str,
        role: ValidRole,
        actor: &str,
        audit: &TransactionEvents,
    ) -> Result<RoleView, DynamicError> {
        let now = Utc::now();
        let definition = serde_json::to_string(&role.definition)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .upsert_role(
                &RoleRow {
                    tenant: tenant.to_owned(),
                    name: name.to_owned(),
                    backend: role.backend,
                    environment: role.environment.to_string(),
                    definition,
                    default_ttl_seconds: seconds(role.default_ttl),
                    max_ttl_seconds: seconds(role.max_ttl),
                    created_by: actor.to_owned(),
                    created_at: now,
                    updated_at: now,
                },
                audit,
            )
            .await?;
        self.view(tenant, name).await
    }

    /// # Errors
    /// `NotFound`, storage errors.
    pub async fn find(&self, tenant: &str, name: &str) -> Result<Role, DynamicError> {
        let row = self
            .store
            .find_role(tenant, name)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no role `{name}`")))?;
        parse_row(&row)
    }

    /// # Errors
    /// `NotFound`, storage errors.
    pub async fn view(&self, tenant: &str, name: &str) -> Result<RoleView, DynamicError> {
        let row = self
            .store
            .find_role(tenant, name)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no role `{name}`")))?;
        let role = parse_row(&row)?;
        Ok(RoleView {
            resource: role.resource().as_str().to_owned(),
            name: role.name,
            backend: role.backend,
            environment: role.environment.to_string(),
            definition: role.definition,
            default_ttl: format!("{}s", role.default_ttl.seconds()),
            max_ttl: format!("{}s", role.max_ttl.seconds()),
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// # Errors
    /// Storage errors.
    pub async fn list(&self, tenant: &str) -> Result<Vec<String>, DynamicError> {
        Ok(self
            .store
            .list_roles(tenant)
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect())
    }

    /// Deletes a role, committing `audit`'s event with it; refused while it has live leases
    /// (they revoke with its statements).
    ///
    /// # Errors
    /// `NotFound`, `Conflict`, storage and audit errors.
    pub async fn delete(
        &self,
        tenant: &str,
        name: &str,
        audit: &TransactionEvents,
    ) -> Result<(), DynamicError> {
        let role = self.find(tenant, name).await?;
        let live = self
            .store
            .live_leases(tenant, &role.backend, Some(name), 20)
            .await?;
        if !live.is_empty() {
            let ids: Vec<String> = live.iter().map(|l| l.id.to_string()).collect();
            return Err(DynamicError::Conflict(format!(
                "role `{name}` has live leases ({}); revoke them first",
                ids.join(", ")
            )));
        }
        if !self.store.delete_role(tenant, name, audit).await? {
            return Err(DynamicError::NotFound(format!("no role `{name}`")));
        }
        Ok(())
    }
}

fn seconds(ttl: Ttl) -> i64 {
    i64::try_from(ttl.seconds()).unwrap_or(i64::MAX)
}

fn parse_row(row: &RoleRow) -> Result<Role, DynamicError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("role `{}` has {what}", row.name));
    let ttl =
        |seconds: i64| Ttl::parse("ttl", &format!("{seconds}s")).map_err(|_| corrupt("a bad TTL"));
    Ok(Role {
        name: row.name.clone(),
        backend: row.backend.clone(),
        environment: Environment::parse(&row.environment)
            .map_err(|_| corrupt("a bad environment"))?,
        definition: serde_json::from_str(&row.definition)
            .map_err(|_| corrupt("an unreadable definition"))?,
        default_ttl: ttl(row.default_ttl_seconds)?,
        max_ttl: ttl(row.max_ttl_seconds)?,
    })
}
