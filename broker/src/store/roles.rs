//! Rows of `roles`: what a lease on a backend creates.

use chrono::{DateTime, Utc};

use super::audit::change_with_event;
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    pub tenant: String,
    pub name: String,
    pub backend: String,
    pub environment: String,
    pub definition: String,
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "tenant, name, backend, environment, definition, default_ttl_seconds, \
     max_ttl_seconds, created_by, created_at, updated_at";

impl Store {
    /// # Errors
    /// Storage errors.
    pub async fn find_role(&self, tenant: &str, name: &str) -> StoreResult<Option<RoleRow>> {
        let sql = format!("SELECT {COLUMNS} FROM roles WHERE tenant = $1 AND name = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RoleRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn list_roles(&self, tenant: &str) -> StoreResult<Vec<RoleRow>> {
        let sql = format!("SELECT {COLUMNS} FROM roles WHERE tenant = $1 ORDER BY name");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RoleRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The names of the roles on a backend.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn roles_on_backend(&self, tenant: &str, backend: &str) -> StoreResult<Vec<String>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT name FROM roles WHERE tenant = $1 AND backend = $2 ORDER BY name")
                .bind(tenant)
                .bind(backend)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Creates or replaces a role, committing `audit`'s event with it.
    ///
    /// # Errors
    /// Storage errors, including a foreign-key violation for an unknown backend.
    pub async fn upsert_role(&self, row: &RoleRow, audit: &TransactionEvents) -> StoreResult<()> {
        on_pool!(self, pool => {
            change_with_event!(
                pool,
                sqlx::query(
                    "INSERT INTO roles (tenant, name, backend, environment, definition, \
                     default_ttl_seconds, max_ttl_seconds, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (tenant, name) DO UPDATE SET backend = excluded.backend, \
                     environment = excluded.environment, definition = excluded.definition, \
                     default_ttl_seconds = excluded.default_ttl_seconds, \
                     max_ttl_seconds = excluded.max_ttl_seconds, updated_at = excluded.updated_at",
                )
                .bind(&row.tenant)
                .bind(&row.name)
                .bind(&row.backend)
                .bind(&row.environment)
                .bind(&row.definition)
                .bind(row.default_ttl_seconds)
                .bind(row.max_ttl_seconds)
                .bind(&row.created_by)
                .bind(row.created_at)
                .bind(row.updated_at),
                audit
            );
        });
        Ok(())
    }

    /// Deletes a role, committing `audit`'s event with it; `false` (and no event) when there
    /// was none.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_role(
        &self,
        tenant: &str,
        name: &str,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query("DELETE FROM roles WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name),
            audit
        )))
    }
}
