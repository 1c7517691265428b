//! Every stored wrapped data key, across tables, for re-wrapping: secret versions and backend
//! admin passwords (current and staged). Ciphertext is never read or written here; a re-wrap
//! replaces a wrapped key only if it is still the one that was read (compare-and-swap), so it
//! can run beside live writes, destroys and root rotations.

use uuid::Uuid;

use super::{Store, StoreResult, on_pool};

/// How many stored data keys one master key wraps.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyUsage {
    pub key_id: String,
    pub row_count: i64,
}

/// A secret version's wrapped key and the row it is bound to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionEnvelope {
    pub secret_id: Uuid,
    pub version: i64,
    pub tenant: String,
    pub environment: String,
    pub path: String,
    pub wrapped_key: Vec<u8>,
    pub kms_key_id: String,
}

/// A backend's wrapped admin-password keys; the staged one belongs to `generation + 1`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackendEnvelope {
    pub tenant: String,
    pub name: String,
    pub generation: i64,
    pub password_wrapped_key: Vec<u8>,
    pub password_kms_key_id: String,
    pub pending_wrapped_key: Option<Vec<u8>>,
    pub pending_kms_key_id: Option<String>,
}

/// Which of a backend's two sealed passwords a re-wrap replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendPassword {
    Current,
    Staged,
}

/// A wrapped key as read, and what replaces it.
pub struct Rewrap<'a> {
    pub old_key_id: &'a str,
    pub old_blob: &'a [u8],
    pub new_key_id: &'a str,
    pub new_blob: &'a [u8],
}

impl Store {
    /// Stored data keys per master key, over every table that holds them.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn key_usage(&self) -> StoreResult<Vec<KeyUsage>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, KeyUsage>(
                "SELECT key_id, CAST(COUNT(*) AS BIGINT) AS row_count FROM ( \
                   SELECT kms_key_id AS key_id FROM secret_versions WHERE kms_key_id IS NOT NULL \
                   UNION ALL SELECT password_kms_key_id FROM backends \
                   UNION ALL SELECT pending_kms_key_id FROM backends WHERE pending_kms_key_id IS NOT NULL \
                 ) AS keys GROUP BY key_id ORDER BY key_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Up to `limit` secret versions after `after` whose data key is not wrapped under `key_id`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn versions_not_under(
        &self,
        key_id: &str,
        after: Option<(Uuid, i64)>,
        limit: i64,
    ) -> StoreResult<Vec<VersionEnvelope>> {
        let (after_id, after_version) = after.unwrap_or((Uuid::nil(), -1));
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, VersionEnvelope>(
                "SELECT v.secret_id, v.version, s.tenant, s.environment, s.path, v.wrapped_key, \
                        v.kms_key_id \
                   FROM secret_versions v JOIN secrets s ON s.id = v.secret_id \
                  WHERE v.kms_key_id IS NOT NULL AND v.kms_key_id <> $1 \
                    AND (v.secret_id > $2 OR (v.secret_id = $2 AND v.version > $3)) \
                  ORDER BY v.secret_id, v.version LIMIT $4",
            )
            .bind(key_id)
            .bind(after_id)
            .bind(after_version)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Replaces a version's wrapped key if it is still `rewrap.old_*`; false when it changed
    /// (destroyed or re-wrapped meanwhile).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn rewrap_version(
        &self,
        secret_id: Uuid,
        version: i64,
        rewrap: &Rewrap<'_>,
    ) -> StoreResult<bool> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE secret_versions SET wrapped_key = $1, kms_key_id = $2 \
                  WHERE secret_id = $3 AND version = $4 AND kms_key_id = $5 AND wrapped_key = $6",
            )
            .bind(rewrap.new_blob)
            .bind(rewrap.new_key_id)
            .bind(secret_id)
            .bind(version)
            .bind(rewrap.old_key_id)
            .bind(rewrap.old_blob)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Up to `limit` backends after `after` (tenant, name) with a sealed password whose data key
    /// is not wrapped under `key_id`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn backends_not_under(
        &self,
        key_id: &str,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<BackendEnvelope>> {
        let (after_tenant, after_name) = after.unwrap_or(("", ""));
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, BackendEnvelope>(
                "SELECT tenant, name, generation, password_wrapped_key, password_kms_key_id, \
                        pending_wrapped_key, pending_kms_key_id \
                   FROM backends \
                  WHERE (password_kms_key_id <> $1 \
                         OR (pending_kms_key_id IS NOT NULL AND pending_kms_key_id <> $1)) \
                    AND (tenant > $2 OR (tenant = $2 AND name > $3)) \
                  ORDER BY tenant, name LIMIT $4",
            )
            .bind(key_id)
            .bind(after_tenant)
            .bind(after_name)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Replaces one of a backend's wrapped password keys if the backend is still at
    /// `generation` and the key is still `rewrap.old_*`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn rewrap_backend_password(
        &self,
        tenant: &str,
        name: &str,
        generation: i64,
        which: BackendPassword,
        rewrap: &Rewrap<'_>,
    ) -> StoreResult<bool> {
        let sql = match which {
            BackendPassword::Current => {
                "UPDATE backends SET password_wrapped_key = $1, password_kms_key_id = $2 \
                  WHERE tenant = $3 AND name = $4 AND generation = $5 \
                    AND password_kms_key_id = $6 AND password_wrapped_key = $7"
            }
            BackendPassword::Staged => {
                "UPDATE backends SET pending_wrapped_key = $1, pending_kms_key_id = $2 \
                  WHERE tenant = $3 AND name = $4 AND generation = $5 \
                    AND pending_kms_key_id = $6 AND pending_wrapped_key = $7"
            }
        };
        let changed = on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(rewrap.new_blob)
                .bind(rewrap.new_key_id)
                .bind(tenant)
                .bind(name)
                .bind(generation)
                .bind(rewrap.old_key_id)
                .bind(rewrap.old_blob)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }
}
