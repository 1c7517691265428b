//! Rows of `policies`, `group_members` and `break_glass_grants`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{change_with_event, commit_with_event};
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub name: String,
    pub document: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    pub id: Uuid,
    pub principal: String,
    pub resources: String,
    pub reason: String,
    pub ticket_url: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub token_id: String,
}

pub struct NewGrant<'a> {
    pub id: Uuid,
    /// The token that opened the grant; only that token can read under it.
    pub token_id: &'a str,
    pub tenant: &'a str,
    pub principal: &'a str,
    pub resources: &'a str,
    pub reason: &'a str,
    pub ticket_url: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const GRANT_COLUMNS: &str =
    "id, principal, resources, reason, ticket_url, created_at, expires_at, ended_at, token_id";

impl Store {
    /// Creates or replaces a policy document, committing `audit`'s event with it.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn put_policy(
        &self,
        tenant: &str,
        name: &str,
        document: &str,
        by: &str,
        now: DateTime<Utc>,
        audit: &TransactionEvents,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO policies (tenant, name, document, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant, name) DO UPDATE SET document = excluded.document, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(name)
            .bind(document)
            .bind(by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            commit_with_event!(tx, Some(audit));
        });
        Ok(())
    }

    /// Deletes a policy, committing `audit`'s event with the deletion; `false` (and no event)
    /// when there is no such policy.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_policy(
        &self,
        tenant: &str,
        name: &str,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query("DELETE FROM policies WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name),
            audit
        )))
    }

    /// Every policy of a tenant, in name order.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_policies(&self, tenant: &str) -> StoreResult<Vec<PolicyRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, PolicyRow>(
                "SELECT name, document, updated_by, updated_at FROM policies WHERE tenant = $1 ORDER BY name",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Replaces the members of a group, committing `audit`'s event with them.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn set_group_members(
        &self,
        tenant: &str,
        group: &str,
        members: &[String],
        audit: &TransactionEvents,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM group_members WHERE tenant = $1 AND group_name = $2")
                .bind(tenant)
                .bind(group)
                .execute(&mut *tx)
                .await?;
            for member in members {
                sqlx::query("INSERT INTO group_members (tenant, group_name, member) VALUES ($1, $2, $3)")
                    .bind(tenant)
                    .bind(group)
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
            }
            commit_with_event!(tx, Some(audit));
        });
        Ok(())
    }

    /// Every (group, member) pair of a tenant.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_group_members(&self, tenant: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (String, String)>(
                "SELECT group_name, member FROM group_members WHERE tenant = $1 ORDER BY group_name, member",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Opens a grant, committing `audit`'s event with it.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn insert_grant(
        &self,
        grant: &NewGrant<'_>,
        audit: &TransactionEvents,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            change_with_event!(
                pool,
                sqlx::query(
                    "INSERT INTO break_glass_grants (id, tenant, principal, resources, reason, ticket_url, created_at, expires_at, token_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(grant.id)
                .bind(grant.tenant)
                .bind(grant.principal)
                .bind(grant.resources)
                .bind(grant.reason)
                .bind(grant.ticket_url)
                .bind(grant.now)
                .bind(grant.expires_at)
                .bind(grant.token_id),
                audit
            );
        });
        Ok(())
    }

    /// Grants of a tenant (of one principal when given) that have not been ended; the caller
    /// drops expired ones.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn open_grants(
        &self,
        tenant: &str,
        principal: Option<&str>,
    ) -> StoreResult<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM break_glass_grants WHERE tenant = $1 \
             AND ($2 IS NULL OR principal = $2) AND ended_at IS NULL ORDER BY created_at"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(principal)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Ends a grant early, committing `audit`'s event with it; `false` (and no event) when
    /// there is no open grant with this id.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn end_grant(
        &self,
        tenant: &str,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query("UPDATE break_glass_grants SET ended_at = $3 WHERE tenant = $1 AND id = $2 AND ended_at IS NULL")
                .bind(tenant)
                .bind(id)
                .bind(now),
            audit
        )))
    }
}

impl Store {
    /// Creates or replaces a Kubernetes auth role, committing `audit`'s event with it. Role
    /// names are global (a login names only the role); a name taken by another tenant is
    /// refused with `Ok(false)`, and nothing is recorded.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn put_kubernetes_role(
        &self,
        tenant: &str,
        name: &str,
        document: &str,
        now: DateTime<Utc>,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query(
                "INSERT INTO kubernetes_roles (name, tenant, document, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at \
                 WHERE kubernetes_roles.tenant = excluded.tenant",
            )
            .bind(name)
            .bind(tenant)
            .bind(document)
            .bind(now),
            audit
        )))
    }

    /// The role's tenant and document.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn find_kubernetes_role(&self, name: &str) -> StoreResult<Option<(String, String)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (String, String)>("SELECT tenant, document FROM kubernetes_roles WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Deletes a Kubernetes auth role, committing `audit`'s event with it; `false` (and no
    /// event) when the tenant has no such role.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_kubernetes_role(
        &self,
        tenant: &str,
        name: &str,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query("DELETE FROM kubernetes_roles WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name),
            audit
        )))
    }
}
