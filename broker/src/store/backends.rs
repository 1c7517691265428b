//! Rows of `backends`: plugin instances, with the admin password sealed like a secret value.

use chrono::{DateTime, Utc};

use super::audit::commit_with_event;
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

/// A sealed admin password as stored.
#[derive(Debug, Clone)]
pub struct SealedPassword {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub kms_key_id: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackendRow {
    pub tenant: String,
    pub name: String,
    pub plugin: String,
    pub connection: String,
    pub max_open_connections: i64,
    pub password_ciphertext: Vec<u8>,
    pub password_wrapped_key: Vec<u8>,
    pub password_kms_key_id: String,
    pub pending_ciphertext: Option<Vec<u8>>,
    pub pending_wrapped_key: Option<Vec<u8>>,
    pub pending_kms_key_id: Option<String>,
    pub generation: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl BackendRow {
    pub fn password(&self) -> SealedPassword {
        SealedPassword {
            ciphertext: self.password_ciphertext.clone(),
            wrapped_key: self.password_wrapped_key.clone(),
            kms_key_id: self.password_kms_key_id.clone(),
        }
    }

    pub fn pending_password(&self) -> Option<SealedPassword> {
        Some(SealedPassword {
            ciphertext: self.pending_ciphertext.clone()?,
            wrapped_key: self.pending_wrapped_key.clone()?,
            kms_key_id: self.pending_kms_key_id.clone()?,
        })
    }
}

/// A backend as written by `PUT`: its generation is the one its password was sealed for.
pub struct BackendWrite<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    pub plugin: &'a str,
    pub connection: &'a str,
    pub max_open_connections: i64,
    pub password: &'a SealedPassword,
    pub generation: i64,
    pub actor: &'a str,
    pub now: DateTime<Utc>,
}

const COLUMNS: &str = "tenant, name, plugin, connection, max_open_connections, \
     password_ciphertext, password_wrapped_key, password_kms_key_id, pending_ciphertext, \
     pending_wrapped_key, pending_kms_key_id, generation, created_by, created_at, updated_at";

impl Store {
    /// # Errors
    /// Storage errors.
    pub async fn find_backend(&self, tenant: &str, name: &str) -> StoreResult<Option<BackendRow>> {
        let sql = format!("SELECT {COLUMNS} FROM backends WHERE tenant = $1 AND name = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, BackendRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The generation of a backend, or `None`: what a cached plugin instance is checked against.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn backend_generation(&self, tenant: &str, name: &str) -> StoreResult<Option<i64>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT generation FROM backends WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn list_backends(&self, tenant: &str) -> StoreResult<Vec<BackendRow>> {
        let sql = format!("SELECT {COLUMNS} FROM backends WHERE tenant = $1 ORDER BY name");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, BackendRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Creates the backend (`generation` 1) or replaces it when its stored generation is
    /// `generation - 1`, committing `audit`'s event with it; `false` (and no event) when another
    /// writer got there first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn write_backend(
        &self,
        write: &BackendWrite<'_>,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        let affected = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let affected = if write.generation == 1 {
                sqlx::query(
                    "INSERT INTO backends (tenant, name, plugin, connection, max_open_connections, \
                     password_ciphertext, password_wrapped_key, password_kms_key_id, generation, \
                     created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $10) \
                     ON CONFLICT (tenant, name) DO NOTHING",
                )
                .bind(write.tenant)
                .bind(write.name)
                .bind(write.plugin)
                .bind(write.connection)
                .bind(write.max_open_connections)
                .bind(&write.password.ciphertext)
                .bind(&write.password.wrapped_key)
                .bind(&write.password.kms_key_id)
                .bind(write.actor)
                .bind(write.now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                sqlx::query(
                    "UPDATE backends SET plugin = $3, connection = $4, max_open_connections = $5, \
                     password_ciphertext = $6, password_wrapped_key = $7, password_kms_key_id = $8, \
                     pending_ciphertext = NULL, pending_wrapped_key = NULL, pending_kms_key_id = NULL, \
                     generation = $9, updated_at = $10 \
                     WHERE tenant = $1 AND name = $2 AND generation = $9 - 1",
                )
                .bind(write.tenant)
                .bind(write.name)
                .bind(write.plugin)
                .bind(write.connection)
                .bind(write.max_open_connections)
                .bind(&write.password.ciphertext)
                .bind(&write.password.wrapped_key)
                .bind(&write.password.kms_key_id)
                .bind(write.generation)
                .bind(write.now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            };
            if affected == 1 {
                commit_with_event!(tx, Some(audit));
            }
            affected
        });
        Ok(affected == 1)
    }

    /// Records a new admin password before the target is told about it; `false` when the
    /// backend moved past `generation`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn stage_backend_password(
        &self,
        tenant: &str,
        name: &str,
        generation: i64,
        pending: Option<&SealedPassword>,
    ) -> StoreResult<bool> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE backends SET pending_ciphertext = $4, pending_wrapped_key = $5, \
                 pending_kms_key_id = $6 WHERE tenant = $1 AND name = $2 AND generation = $3",
            )
            .bind(tenant)
            .bind(name)
            .bind(generation)
            .bind(pending.map(|p| p.ciphertext.clone()))
            .bind(pending.map(|p| p.wrapped_key.clone()))
            .bind(pending.map(|p| p.kms_key_id.clone()))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Makes the staged password the current one (the target has accepted it).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn promote_backend_password(
        &self,
        tenant: &str,
        name: &str,
        generation: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let affected = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE backends SET password_ciphertext = pending_ciphertext, \
                 password_wrapped_key = pending_wrapped_key, password_kms_key_id = pending_kms_key_id, \
                 pending_ciphertext = NULL, pending_wrapped_key = NULL, pending_kms_key_id = NULL, \
                 generation = generation + 1, updated_at = $4 \
                 WHERE tenant = $1 AND name = $2 AND generation = $3 AND pending_ciphertext IS NOT NULL",
            )
            .bind(tenant)
            .bind(name)
            .bind(generation)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Deletes a backend and its roles in one transaction, committing `audit`'s event with
    /// them; `false` (and no event) when there was none.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_backend(
        &self,
        tenant: &str,
        name: &str,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        let affected = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM roles WHERE tenant = $1 AND backend = $2")
                .bind(tenant)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            let affected = sqlx::query("DELETE FROM backends WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected == 1 {
                commit_with_event!(tx, Some(audit));
            }
            affected
        });
        Ok(affected == 1)
    }
}
