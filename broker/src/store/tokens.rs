//! Rows of `tokens`: bearer tokens stored only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{change_with_event, commit_with_event};
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub tenant: String,
    pub principal: String,
    pub is_admin: bool,
    pub mfa: bool,
    pub source_cluster: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewToken<'a> {
    pub id: Uuid,
    pub token_hash: &'a [u8],
    pub tenant: &'a str,
    pub principal: &'a str,
    pub is_admin: bool,
    pub mfa: bool,
    pub source_cluster: Option<&'a str>,
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

const TOKEN_COLUMNS: &str = "id, tenant, principal, is_admin, mfa, source_cluster, created_by, \
     created_at, expires_at, revoked_at";

impl Store {
    /// Stores a new token, committing `audit`'s event with it (`None` for bootstrap tokens,
    /// minted before there is anyone to audit).
    ///
    /// # Errors
    /// Storage errors, or a unique violation for a hash that is already stored.
    pub async fn insert_token(
        &self,
        new: &NewToken<'_>,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO tokens (id, token_hash, tenant, principal, is_admin, mfa, source_cluster, \
                 created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(new.id)
            .bind(new.token_hash)
            .bind(new.tenant)
            .bind(new.principal)
            .bind(new.is_admin)
            .bind(new.mfa)
            .bind(new.source_cluster)
            .bind(new.created_by)
            .bind(new.now)
            .bind(new.expires_at)
            .execute(&mut *tx)
            .await?;
            commit_with_event!(tx, audit);
        });
        Ok(())
    }

    /// The token with this hash, whatever its state; the caller checks expiry and revocation.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn find_token(&self, token_hash: &[u8]) -> StoreResult<Option<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A token's metadata by id, within a tenant.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn find_token_by_id(&self, tenant: &str, id: Uuid) -> StoreResult<Option<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Revokes a token, committing `audit`'s event with the revocation; `false` (and no event)
    /// when the tenant has no unrevoked token with this id.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn revoke_token(
        &self,
        tenant: &str,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query(
                "UPDATE tokens SET revoked_at = $3 WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(id)
            .bind(now),
            audit
        )))
    }

    /// Whether the store already has an administrator token (a store is initialised once).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn has_admin_token(&self) -> StoreResult<bool> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE is_admin = $1")
                .bind(true)
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }
}
