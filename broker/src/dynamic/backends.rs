//! The operations behind `/v1/backends`: configure, read, verify, rotate the admin password,
//! delete (refused while leases are live, unless they are revoked first).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use leasehold_plugins::password::PasswordPolicy;
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use super::registry::{open_plugin, stored_config};
use super::{
    BackendConfig, ConnectionConfig, DynamicError, LeaseService, PluginRegistry, check_name,
};
use crate::audit::TransactionEvents;
use crate::auth::Caller;
use crate::store::{BackendWrite, Store};

/// A backend as `GET` shows it: never the password.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendView {
    pub name: String,
    pub plugin: String,
    pub connection: ConnectionConfig,
    pub max_open_connections: u32,
    /// Counts every change, including root rotations.
    pub generation: i64,
    pub roles: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct BackendService {
    store: Store,
    registry: Arc<PluginRegistry>,
}

/// How many live leases a refused delete names.
const NAMED_LEASES: i64 = 20;

impl BackendService {
    pub fn new(store: Store, registry: Arc<PluginRegistry>) -> Self {
        Self { store, registry }
    }

    /// Creates or replaces a backend, committing `audit`'s event with it. The password is
    /// required on creation; omitted later, the current one is kept (re-sealed for the new
    /// generation).
    ///
    /// # Errors
    /// `Invalid` for a bad body, `Conflict` when a concurrent change won, storage, KMS and audit
    /// errors.
    pub async fn put(
        &self,
        tenant: &str,
        name: &str,
        config: BackendConfig,
        password: Option<SecretString>,
        actor: &str,
        audit: &TransactionEvents,
    ) -> Result<BackendView, DynamicError> {
        check_name("name", name)?;
        let existing = self.store.find_backend(tenant, name).await?;
        let (generation, password) = match (&existing, password) {
            (None, None) => {
                return Err(DynamicError::Invalid {
                    field: "connection.password",
                    message: "connection.password is required when a backend is created".into(),
                });
            }
            (None, Some(password)) => (1, password),
            (Some(row), Some(password)) => (row.generation + 1, password),
            (Some(row), None) => (
                row.generation + 1,
                self.registry
                    .open_password(tenant, name, row.generation, &row.password())
                    .await?,
            ),
        };
        let sealed = self
            .registry
            .seal_password(tenant, name, generation, &password)
            .await?;
        let connection = serde_json::to_string(&config.connection)
            .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
        let written = self
            .store
            .write_backend(
                &BackendWrite {
                    tenant,
                    name,
                    plugin: config.plugin.as_str(),
                    connection: &connection,
                    max_open_connections: i64::from(config.max_open_connections),
                    password: &sealed,
                    generation,
                    actor,
                    now: Utc::now(),
                },
                audit,
            )
            .await?;
        if !written {
            return Err(DynamicError::Conflict(format!(
                "backend `{name}` changed while this request was applied; retry"
            )));
        }
        self.registry.forget(tenant, name).await;
        self.get(tenant, name).await
    }

    /// # Errors
    /// `NotFound`, storage errors.
    pub async fn get(&self, tenant: &str, name: &str) -> Result<BackendView, DynamicError> {
        let row = self
            .store
            .find_backend(tenant, name)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no backend `{name}`")))?;
        let config = stored_config(&row)?;
        Ok(BackendView {
            roles: self.store.roles_on_backend(tenant, name).await?,
            name: row.name,
            plugin: config.plugin.as_str().to_owned(),
            connection: config.connection,
            max_open_connections: config.max_open_connections,
            generation: row.generation,
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
            .list_backends(tenant)
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect())
    }

    /// Logs in to the target with the stored admin credential.
    ///
    /// # Errors
    /// `NotFound`; `Backend` with the target's (scrubbed) answer.
    pub async fn verify(&self, tenant: &str, name: &str) -> Result<(), DynamicError> {
        let backend = self.registry.get(tenant, name).await?;
        backend
            .plugin
            .verify()
            .await
            .map_err(|e| DynamicError::backend(name, e))
    }

    /// Replaces the admin password with one nobody knows. The new password is stored (sealed)
    /// before the target is told, so a crash in between never loses the working one.
    ///
    /// # Errors
    /// `NotFound`, `Conflict` on a concurrent change, `Backend` when the target refuses.
    pub async fn rotate_root(&self, tenant: &str, name: &str) -> Result<i64, DynamicError> {
        let row = self
            .store
            .find_backend(tenant, name)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no backend `{name}`")))?;
        let config = stored_config(&row)?;
        let current = self
            .registry
            .open_password(tenant, name, row.generation, &row.password())
            .await?;
        let new_password = PasswordPolicy::new(40, false)
            .map_err(|e| DynamicError::backend(name, e))?
            .generate();
        let sealed = self
            .registry
            .seal_password(tenant, name, row.generation + 1, &new_password)
            .await?;
        let conflict = || {
            DynamicError::Conflict(format!(
                "backend `{name}` changed during the rotation; retry"
            ))
        };
        if !self
            .store
            .stage_backend_password(tenant, name, row.generation, Some(&sealed))
            .await?
        {
            return Err(conflict());
        }
        // A private instance: the shared one keeps serving with the current password meanwhile.
        let plugin = open_plugin(&config, tenant, name, current)?;
        let rotated = plugin.rotate_admin_password(&new_password).await;
        plugin.close().await;
        if let Err(error) = rotated {
            self.store
                .stage_backend_password(tenant, name, row.generation, None)
                .await?;
            return Err(DynamicError::backend(name, error));
        }
        if !self
            .store
            .promote_backend_password(tenant, name, row.generation, Utc::now())
            .await?
        {
            return Err(conflict());
        }
        self.registry.forget(tenant, name).await;
        Ok(row.generation + 1)
    }

    /// Deletes a backend of `caller`'s tenant and its roles, committing `audit`'s event with
    /// them. With live leases it answers `Conflict` naming them, unless `revoke_leases` asks to
    /// revoke them first (each audited as `caller`'s `LEASE_REVOKE`).
    ///
    /// # Errors
    /// `NotFound`, `Conflict`, `Backend` when a revocation fails, storage and audit errors.
    pub async fn delete(
        &self,
        caller: &Caller,
        name: &str,
        revoke_leases: bool,
        leases: &LeaseService,
        audit: &TransactionEvents,
    ) -> Result<(), DynamicError> {
        let tenant = caller.tenant.as_str();
        if self.store.find_backend(tenant, name).await?.is_none() {
            return Err(DynamicError::NotFound(format!("no backend `{name}`")));
        }
        if revoke_leases {
            leases.revoke_all_on_backend(caller, name).await?;
        }
        let live = self
            .store
            .live_leases(tenant, name, None, NAMED_LEASES)
            .await?;
        if !live.is_empty() {
            let ids: Vec<String> = live.iter().map(|l| l.id.to_string()).collect();
            return Err(DynamicError::Conflict(format!(
                "backend `{name}` has live leases ({}{}); revoke them first or delete with ?revokeLeases=true",
                ids.join(", "),
                if live.len() as i64 == NAMED_LEASES {
                    ", …"
                } else {
                    ""
                }
            )));
        }
        if !self.store.delete_backend(tenant, name, audit).await? {
            return Err(DynamicError::NotFound(format!("no backend `{name}`")));
        }
        self.registry.forget(tenant, name).await;
        Ok(())
    }
}
