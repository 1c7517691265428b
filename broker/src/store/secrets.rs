//! Rows of `secrets`, `secret_versions` and `secret_aliases`, and the transactions that keep
//! versions immutable, version numbers monotonic and alias moves compare-and-swap.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::commit_with_event;
use super::{BeginWrite, Store, StoreResult, TokenRow, on_pool};
use crate::audit::TransactionEvents;
use crate::domain::{AliasName, VersionNumber, VersionStatus};

/// A secret's metadata row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    pub id: Uuid,
    pub tenant: String,
    pub environment: String,
    pub path: String,
    pub owner_team: String,
    pub description: String,
    pub rotation_strategy: String,
    pub latest_version: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A version's metadata, never its value.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub status_changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AliasRow {
    pub alias: String,
    pub version: i64,
}

/// What an authenticated read found in one round trip: the token, and — in that token's
/// tenant — the secret (`secret_id`), the alias target when reading by alias, and the selected
/// version with its sealed value (ciphertext columns are `None` for destroyed versions).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReadRow {
    #[sqlx(flatten)]
    pub token: TokenRow,
    #[sqlx(flatten)]
    pub selected: SelectedVersion,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SelectedVersion {
    pub secret_id: Option<Uuid>,
    pub alias_version: Option<i64>,
    pub version: Option<i64>,
    pub status: Option<String>,
    pub ciphertext: Option<Vec<u8>>,
    pub wrapped_key: Option<Vec<u8>>,
    pub kms_key_id: Option<String>,
    pub version_expires_at: Option<DateTime<Utc>>,
}

pub struct NewSecret<'a> {
    pub id: Uuid,
    pub tenant: &'a str,
    pub environment: &'a str,
    pub path: &'a str,
    pub owner_team: &'a str,
    pub description: &'a str,
    pub rotation_strategy: &'a str,
    pub created_by: &'a str,
    pub now: DateTime<Utc>,
}

pub struct NewVersion<'a> {
    pub secret_id: Uuid,
    pub version: VersionNumber,
    pub ciphertext: &'a [u8],
    pub wrapped_key: &'a [u8],
    pub kms_key_id: &'a str,
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// An alias move: point `alias` at `target` if it now points at `expected` (`None`: unset).
#[derive(Debug, Clone, Copy)]
pub struct AliasChange {
    pub alias: AliasName,
    pub target: VersionNumber,
    pub expected: Option<VersionNumber>,
    pub now: DateTime<Utc>,
}

pub struct SecretUpdate<'a> {
    pub owner_team: Option<&'a str>,
    pub description: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub struct SecretListPage {
    pub secrets: Vec<SecretRow>,
    pub has_more: bool,
}

/// The result of an alias move, decided inside the transaction that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasMove {
    Moved { previous: Option<VersionNumber> },
    SecretNotFound,
    VersionNotFound,
    VersionUnreadable(VersionStatus),
    Conflict { actual: Option<VersionNumber> },
}

/// The result of a status change, decided inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChangeOutcome {
    Changed(VersionStatus),
    SecretNotFound,
    VersionNotFound,
    VersionIsCurrent,
    AlreadyDestroyed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Disable,
    Enable,
    Destroy,
}

const SECRET_COLUMNS: &str = "id, tenant, environment, path, owner_team, description, \
     rotation_strategy, latest_version, created_by, created_at, updated_at";

/// Moves `current` to `$target` inside an open transaction `$tx` whose secret row is locked:
/// the old current becomes PREVIOUS (and `previous` follows it), the old PREVIOUS becomes
/// DEPRECATED, and `next` is cleared if it pointed at the new current.
macro_rules! move_current {
    ($tx:expr, $secret_id:expr, $target:expr, $old_current:expr, $now:expr) => {{
        let (secret_id, target, old_current, now) = ($secret_id, $target, $old_current, $now);
        if let Some(old) = old_current.filter(|old| *old != target) {
            sqlx::query(
                "UPDATE secret_versions SET status = 'DEPRECATED', status_changed_at = $3 \
                 WHERE secret_id = $1 AND status = 'PREVIOUS' AND version <> $2",
            )
            .bind(secret_id)
            .bind(target)
            .bind(now)
            .execute(&mut *$tx)
            .await?;
            sqlx::query(
                "UPDATE secret_versions SET status = 'PREVIOUS', status_changed_at = $3 \
                 WHERE secret_id = $1 AND version = $2 AND status = 'CURRENT'",
            )
            .bind(secret_id)
            .bind(old)
            .bind(now)
            .execute(&mut *$tx)
            .await?;
            upsert_alias!($tx, secret_id, "previous", old, now);
        }
        sqlx::query(
            "UPDATE secret_versions SET status = 'CURRENT', status_changed_at = $3 \
             WHERE secret_id = $1 AND version = $2",
        )
        .bind(secret_id)
        .bind(target)
        .bind(now)
        .execute(&mut *$tx)
        .await?;
        upsert_alias!($tx, secret_id, "current", target, now);
        sqlx::query(
            "DELETE FROM secret_aliases WHERE secret_id = $1 AND alias = 'next' AND version = $2",
        )
        .bind(secret_id)
        .bind(target)
        .execute(&mut *$tx)
        .await?;
    }};
}

macro_rules! upsert_alias {
    ($tx:expr, $secret_id:expr, $alias:expr, $version:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO secret_aliases (secret_id, alias, version, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (secret_id, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind($secret_id)
        .bind($alias)
        .bind($version)
        .bind($now)
        .execute(&mut *$tx)
        .await?
    };
}

/// Locks the secret row for the rest of the transaction; `None` when it is not the tenant's.
macro_rules! lock_secret {
    ($tx:expr, $tenant:expr, $secret_id:expr, $now:expr) => {
        sqlx::query_scalar::<_, Uuid>(
            "UPDATE secrets SET updated_at = $3 WHERE id = $1 AND tenant = $2 RETURNING id",
        )
        .bind($secret_id)
        .bind($tenant)
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?
    };
}

macro_rules! alias_target {
    ($tx:expr, $secret_id:expr, $alias:expr) => {
        sqlx::query_scalar::<_, i64>(
            "SELECT version FROM secret_aliases WHERE secret_id = $1 AND alias = $2",
        )
        .bind($secret_id)
        .bind($alias)
        .fetch_optional(&mut *$tx)
        .await?
    };
}

macro_rules! version_status {
    ($tx:expr, $secret_id:expr, $version:expr) => {
        sqlx::query_scalar::<_, String>(
            "SELECT status FROM secret_versions WHERE secret_id = $1 AND version = $2",
        )
        .bind($secret_id)
        .bind($version)
        .fetch_optional(&mut *$tx)
        .await?
        .map(|s| parse_status(&s))
        .transpose()?
    };
}

fn parse_status(stored: &str) -> StoreResult<VersionStatus> {
    VersionStatus::from_stored(stored)
        .ok_or_else(|| super::StoreError::Corrupt(format!("unknown version status {stored:?}")))
}

impl Store {
    /// Inserts a secret, committing `audit`'s event with it.
    ///
    /// # Errors
    /// A unique violation when the tenant already has a secret at this environment and path.
    pub async fn insert_secret(
        &self,
        new: &NewSecret<'_>,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO secrets (id, tenant, environment, path, owner_team, description, \
                 rotation_strategy, latest_version, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $9)",
            )
            .bind(new.id)
            .bind(new.tenant)
            .bind(new.environment)
            .bind(new.path)
            .bind(new.owner_team)
            .bind(new.description)
            .bind(new.rotation_strategy)
            .bind(new.created_by)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            commit_with_event!(tx, audit);
        });
        Ok(())
    }

    /// # Errors
    /// Storage errors.
    pub async fn find_secret(&self, tenant: &str, id: Uuid) -> StoreResult<Option<SecretRow>> {
        let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE tenant = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn find_secret_by_path(
        &self,
        tenant: &str,
        environment: &str,
        path: &str,
    ) -> StoreResult<Option<SecretRow>> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE tenant = $1 AND environment = $2 AND path = $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(environment)
                .bind(path)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The number the secret's next version would get, with the secret's environment and path
    /// (the sealed value is bound to all three); `None` when it is not the tenant's secret. The
    /// number is only claimed by [`Store::insert_version`].
    ///
    /// # Errors
    /// Storage errors.
    pub async fn next_version(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> StoreResult<Option<(VersionNumber, String, String)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, String, String)>(
                "SELECT latest_version + 1, environment, path FROM secrets WHERE id = $1 AND tenant = $2",
            )
            .bind(id)
            .bind(tenant)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Claims `new.version` as the secret's latest number (compare-and-set on the number
    /// before it), inserts the sealed version as PENDING and, when `make_current`, moves
    /// `current` to it, all in one transaction that also commits `audit`'s event. `false`, with
    /// nothing changed, when the number is no longer free (another version took it while this
    /// one was being sealed) or the secret is gone: ask [`Store::next_version`] again. Numbers
    /// are therefore gapless and a write that fails leaves no trace.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn insert_version(
        &self,
        tenant: &str,
        new: &NewVersion<'_>,
        make_current: bool,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<bool> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed = sqlx::query_scalar::<_, Uuid>(
                "UPDATE secrets SET latest_version = $3, updated_at = $4 \
                 WHERE id = $1 AND tenant = $2 AND latest_version = $3 - 1 RETURNING id",
            )
            .bind(new.secret_id)
            .bind(tenant)
            .bind(new.version)
            .bind(new.now)
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.is_none() {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO secret_versions (secret_id, version, status, ciphertext, wrapped_key, \
                 kms_key_id, created_by, created_at, expires_at, status_changed_at) \
                 VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, $7, $8, $7)",
            )
            .bind(new.secret_id)
            .bind(new.version)
            .bind(new.ciphertext)
            .bind(new.wrapped_key)
            .bind(new.kms_key_id)
            .bind(new.created_by)
            .bind(new.now)
            .bind(new.expires_at)
            .execute(&mut *tx)
            .await?;
            if make_current {
                let previous = alias_target!(tx, new.secret_id, "current");
                move_current!(tx, new.secret_id, new.version, previous, new.now);
            }
            commit_with_event!(tx, audit);
            Ok(true)
        })
    }

    /// Makes `change` (a compare-and-swap on the alias's target), and commits `audit`'s event
    /// with the move (a move that does not happen records nothing).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn move_alias(
        &self,
        tenant: &str,
        secret_id: Uuid,
        change: AliasChange,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<AliasMove> {
        let AliasChange {
            alias,
            target,
            expected,
            now,
        } = change;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if lock_secret!(tx, tenant, secret_id, now).is_none() {
                return Ok(AliasMove::SecretNotFound);
            }
            let Some(status) = version_status!(tx, secret_id, target) else {
                return Ok(AliasMove::VersionNotFound);
            };
            if !status.is_readable() {
                return Ok(AliasMove::VersionUnreadable(status));
            }
            let actual = alias_target!(tx, secret_id, alias.as_str());
            if actual != expected {
                return Ok(AliasMove::Conflict { actual });
            }
            if alias == AliasName::Current {
                move_current!(tx, secret_id, target, actual, now);
            } else {
                upsert_alias!(tx, secret_id, alias.as_str(), target, now);
            }
            commit_with_event!(tx, audit);
            Ok(AliasMove::Moved { previous: actual })
        })
    }

    /// Disables, enables or destroys one version, committing `audit`'s event with the change.
    /// The version `current` points at can do none of these: promote another version first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn change_status(
        &self,
        tenant: &str,
        secret_id: Uuid,
        version: VersionNumber,
        change: StatusChange,
        now: DateTime<Utc>,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<StatusChangeOutcome> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            if lock_secret!(tx, tenant, secret_id, now).is_none() {
                return Ok(StatusChangeOutcome::SecretNotFound);
            }
            let Some(status) = version_status!(tx, secret_id, version) else {
                return Ok(StatusChangeOutcome::VersionNotFound);
            };
            if status == VersionStatus::Destroyed {
                return Ok(StatusChangeOutcome::AlreadyDestroyed);
            }
            if status == VersionStatus::Current {
                return Ok(StatusChangeOutcome::VersionIsCurrent);
            }
            let new_status = match change {
                StatusChange::Disable => VersionStatus::Disabled,
                StatusChange::Destroy => VersionStatus::Destroyed,
                StatusChange::Enable if status != VersionStatus::Disabled => status,
                StatusChange::Enable => {
                    let previous = alias_target!(tx, secret_id, "previous");
                    let current = alias_target!(tx, secret_id, "current");
                    if previous == Some(version) {
                        VersionStatus::Previous
                    } else if current.is_none_or(|c| version > c) {
                        VersionStatus::Pending
                    } else {
                        VersionStatus::Deprecated
                    }
                }
            };
            if change == StatusChange::Destroy {
                // Cryptographic shredding: the ciphertext and its wrapped key leave the row.
                sqlx::query(
                    "UPDATE secret_versions SET status = 'DESTROYED', ciphertext = NULL, \
                     wrapped_key = NULL, kms_key_id = NULL, status_changed_at = $3 \
                     WHERE secret_id = $1 AND version = $2",
                )
                .bind(secret_id)
                .bind(version)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM secret_aliases WHERE secret_id = $1 AND version = $2")
                    .bind(secret_id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            } else if new_status != status {
                sqlx::query(
                    "UPDATE secret_versions SET status = $3, status_changed_at = $4 \
                     WHERE secret_id = $1 AND version = $2",
                )
                .bind(secret_id)
                .bind(version)
                .bind(new_status.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            commit_with_event!(tx, audit);
            Ok(StatusChangeOutcome::Changed(new_status))
        })
    }

    /// The token with hash `token_hash` and, in its tenant, the version of
    /// `environment/path` that `alias` points at or that has number `version` (one of the two is
    /// given). One round trip serves the whole authenticated read; `None` for an unknown token.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn select_for_read(
        &self,
        token_hash: &[u8],
        environment: &str,
        path: &str,
        alias: Option<AliasName>,
        version: Option<VersionNumber>,
    ) -> StoreResult<Option<ReadRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ReadRow>(
                "SELECT t.id, t.tenant, t.principal, t.is_admin, t.mfa, t.source_cluster, t.created_by, \
                 t.created_at, t.expires_at, t.revoked_at, \
                 s.id AS secret_id, a.version AS alias_version, v.version AS version, v.status, \
                 v.ciphertext, v.wrapped_key, v.kms_key_id, v.expires_at AS version_expires_at \
                 FROM tokens t \
                 LEFT JOIN secrets s ON s.tenant = t.tenant AND s.environment = $2 AND s.path = $3 \
                 LEFT JOIN secret_aliases a ON a.secret_id = s.id AND a.alias = $4 \
                 LEFT JOIN secret_versions v ON v.secret_id = s.id AND v.version = COALESCE($5, a.version) \
                 WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .bind(environment)
            .bind(path)
            .bind(alias.map(AliasName::as_str))
            .bind(version)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// One version of a secret with its sealed value, for the broker's own use (rotation tests
    /// the value it wrote, and restores an old one downstream on rollback).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn select_version(
        &self,
        secret_id: Uuid,
        version: VersionNumber,
    ) -> StoreResult<SelectedVersion> {
        let found = on_pool!(self, pool => {
            sqlx::query_as::<_, SelectedVersion>(
                "SELECT secret_id, NULL AS alias_version, version, status, ciphertext,                  wrapped_key, kms_key_id, expires_at AS version_expires_at                  FROM secret_versions WHERE secret_id = $1 AND version = $2",
            )
            .bind(secret_id)
            .bind(version)
            .fetch_optional(pool)
            .await?
        });
        Ok(found.unwrap_or(SelectedVersion {
            secret_id: Some(secret_id),
            alias_version: None,
            version: None,
            status: None,
            ciphertext: None,
            wrapped_key: None,
            kms_key_id: None,
            version_expires_at: None,
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn list_versions(&self, secret_id: Uuid) -> StoreResult<Vec<VersionRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, VersionRow>(
                "SELECT version, status, created_by, created_at, expires_at, status_changed_at \
                 FROM secret_versions WHERE secret_id = $1 ORDER BY version",
            )
            .bind(secret_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn list_aliases(&self, secret_id: Uuid) -> StoreResult<Vec<AliasRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AliasRow>(
                "SELECT alias, version FROM secret_aliases WHERE secret_id = $1 ORDER BY alias",
            )
            .bind(secret_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// A page of a tenant's secrets in (environment, path) order, after the cursor `after`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_secrets(
        &self,
        tenant: &str,
        environment: Option<&str>,
        path_prefix: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> StoreResult<SecretListPage> {
        let (after_env, after_path) = after.unwrap_or(("", ""));
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE tenant = $1 \
             AND ($2 IS NULL OR environment = $2) \
             AND ($3 IS NULL OR substr(path, 1, length($3)) = $3) \
             AND (environment > $4 OR (environment = $4 AND path > $5)) \
             ORDER BY environment, path LIMIT $6"
        );
        let mut secrets = on_pool!(self, pool => {
            sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(environment)
                .bind(path_prefix)
                .bind(after_env)
                .bind(after_path)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let has_more = secrets.len() > limit as usize;
        secrets.truncate(limit as usize);
        Ok(SecretListPage { secrets, has_more })
    }

    /// Edits the mutable metadata of a secret; `None` fields stay as they are. `audit`'s event
    /// commits with the edit.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn update_secret(
        &self,
        tenant: &str,
        id: Uuid,
        update: &SecretUpdate<'_>,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<Option<SecretRow>> {
        let sql = format!(
            "UPDATE secrets SET owner_team = COALESCE($3, owner_team), \
             description = COALESCE($4, description), updated_at = $5 \
             WHERE tenant = $1 AND id = $2 RETURNING {SECRET_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .bind(update.owner_team)
                .bind(update.description)
                .bind(update.now)
                .fetch_optional(&mut *tx)
                .await?;
            if updated.is_some() {
                commit_with_event!(tx, audit);
            }
            Ok(updated)
        })
    }
}
