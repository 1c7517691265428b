//! Re-wrapping data keys under another master key, online and in batches, without touching a
//! ciphertext: the operation behind `POST /v1/sys/kms/rewrap` and `leasehold kms rewrap`.
//!
//! The rows themselves are the durable progress: a batch takes the next rows whose key is not
//! yet wrapped under the target, unwraps each with whichever provider holds its key, wraps it
//! under the target and swaps it in only if the row still holds what was read. A crash, a
//! restart or a second operator running the same command loses nothing and breaks nothing;
//! running it again continues with what is left. The cursor only lets one run step past rows
//! that failed (so that one bad row never blocks the rest); it is never needed for correctness.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{Binding, Kms, KmsError, WrappedKey};
use crate::dynamic::password_binding;
use crate::store::{BackendPassword, KeyUsage, Rewrap, Store, StoreError};

pub const MAX_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    #[error("{0}")]
    Invalid(String),
    #[error("cursor `after` is not one this broker returned; start again without it")]
    BadCursor,
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// Where a re-wrap run stands: secret versions first, then backends. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Cursor {
    Versions { after: Option<(Uuid, i64)> },
    Backends { after: Option<(String, String)> },
}

impl Cursor {
    pub fn start() -> Self {
        Self::Versions { after: None }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// # Errors
    /// `BadCursor` for anything `encode` did not produce.
    pub fn decode(text: &str) -> Result<Self, RewrapError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| RewrapError::BadCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| RewrapError::BadCursor)
    }
}

/// A row whose key could not be re-wrapped, and why (never a value).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailedRow {
    pub row: String,
    pub error: String,
}

/// What one batch did.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub target_key_id: String,
    pub rewrapped: u64,
    /// Rows that changed while the batch ran (destroyed, rotated, re-wrapped by another run).
    pub skipped: u64,
    pub failed: Vec<FailedRow>,
    /// Where the next batch starts; `None` once every table was walked.
    pub next: Option<Cursor>,
    /// Stored data keys not wrapped under the target after this batch.
    pub remaining: i64,
}

/// The active master key and where every stored data key stands.
#[derive(Debug, Clone)]
pub struct KmsStatus {
    pub provider: &'static str,
    pub active_key: String,
    /// The id wrapped keys carry for the active key (an alias resolved to its ARN), when the
    /// KMS could be asked.
    pub active_key_id: Result<String, KmsError>,
    pub keys: Vec<(KeyUsage, bool)>,
}

#[derive(Clone)]
pub struct RewrapService {
    store: Store,
    kms: Arc<dyn Kms>,
}

impl RewrapService {
    pub fn new(store: Store, kms: Arc<dyn Kms>) -> Self {
        Self { store, kms }
    }

    /// # Errors
    /// Storage errors; a KMS failure only shows in `active_key_id`.
    pub async fn status(&self) -> Result<KmsStatus, RewrapError> {
        let active_key = self.kms.active_key().to_owned();
        let active_key_id = self.kms.resolve(&active_key).await;
        let keys = self
            .store
            .key_usage()
            .await?
            .into_iter()
            .map(|usage| {
                let held = self.kms.holds(&usage.key_id);
                (usage, held)
            })
            .collect();
        Ok(KmsStatus {
            provider: self.kms.provider(),
            active_key,
            active_key_id,
            keys,
        })
    }

    /// The id wrapped keys will carry under `to`, which must name the active master key: data
    /// keys re-wrapped under any other would leave new writes on a key the operator means to
    /// retire.
    async fn target(&self, to: &str) -> Result<String, RewrapError> {
        let active = self.kms.active_key();
        let active_id = self.kms.resolve(active).await?;
        if to == active || to == active_id {
            return Ok(active_id);
        }
        let named = if active_id == active {
            format!("`{active}`")
        } else {
            format!("`{active}` ({active_id})")
        };
        Err(RewrapError::Invalid(format!(
            "to: new data keys are wrapped under {named}, not `{to}`; make `{to}` the active key first (kms.provider and its key in the configuration, or `leasehold kms rotate-local-key`), restart, then re-wrap to it"
        )))
    }

    /// Re-wraps up to `limit` data keys, starting at `from`.
    ///
    /// # Errors
    /// `Invalid` for a target that is not the active key or a bad limit; `Kms` when the KMS is
    /// unreachable (the batch stops; what was swapped in stays, the rest is left for the next
    /// run); storage errors.
    pub async fn batch(
        &self,
        to: &str,
        from: Cursor,
        limit: usize,
    ) -> Result<BatchOutcome, RewrapError> {
        if !(1..=MAX_BATCH).contains(&limit) {
            return Err(RewrapError::Invalid(format!(
                "batchSize: must be between 1 and {MAX_BATCH}"
            )));
        }
        let target = self.target(to).await?;
        let mut outcome = BatchOutcome {
            target_key_id: target.clone(),
            rewrapped: 0,
            skipped: 0,
            failed: Vec::new(),
            next: None,
            remaining: 0,
        };
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        outcome.next = match from {
            Cursor::Versions { after } => {
                let rows = self
                    .store
                    .versions_not_under(&target, after, sql_limit)
                    .await?;
                let last = rows.last().map(|row| (row.secret_id, row.version));
                for row in &rows {
                    let binding = Binding {
                        tenant: row.tenant.clone(),
                        environment: row.environment.clone(),
                        path: row.path.clone(),
                        version: row.version,
                    };
                    let label = || {
                        format!(
                            "secret {}/{} version {} (tenant {})",
                            row.environment, row.path, row.version, row.tenant
                        )
                    };
                    let old = WrappedKey {
                        key_id: row.kms_key_id.clone(),
                        blob: row.wrapped_key.clone(),
                    };
                    match self.rewrap_one(&target, &old, &binding).await {
                        Ok(new) => {
                            let swapped = self
                                .store
                                .rewrap_version(row.secret_id, row.version, &swap(&old, &new))
                                .await?;
                            outcome.count(swapped);
                        }
                        Err(error) => outcome.fail(label(), error)?,
                    }
                }
                Some(if rows.len() < limit {
                    Cursor::Backends { after: None }
                } else {
                    Cursor::Versions { after: last }
                })
            }
            Cursor::Backends { after } => {
                let after = after.as_ref().map(|(t, n)| (t.as_str(), n.as_str()));
                let rows = self
                    .store
                    .backends_not_under(&target, after, sql_limit)
                    .await?;
                for row in &rows {
                    let sealed = [
                        (
                            BackendPassword::Current,
                            row.generation,
                            Some(&row.password_kms_key_id),
                            Some(&row.password_wrapped_key),
                        ),
                        (
                            BackendPassword::Staged,
                            row.generation + 1,
                            row.pending_kms_key_id.as_ref(),
                            row.pending_wrapped_key.as_ref(),
                        ),
                    ];
                    for (which, generation, key_id, blob) in sealed {
                        let (Some(key_id), Some(blob)) = (key_id, blob) else {
                            continue;
                        };
                        if *key_id == target {
                            continue;
                        }
                        let old = WrappedKey {
                            key_id: key_id.clone(),
                            blob: blob.clone(),
                        };
                        let binding = password_binding(&row.tenant, &row.name, generation);
                        match self.rewrap_one(&target, &old, &binding).await {
                            Ok(new) => {
                                let swapped = self
                                    .store
                                    .rewrap_backend_password(
                                        &row.tenant,
                                        &row.name,
                                        row.generation,
                                        which,
                                        &swap(&old, &new),
                                    )
                                    .await?;
                                outcome.count(swapped);
                            }
                            Err(error) => outcome.fail(
                                format!(
                                    "backend {} admin password (tenant {})",
                                    row.name, row.tenant
                                ),
                                error,
                            )?,
                        }
                    }
                }
                (rows.len() == limit).then(|| Cursor::Backends {
                    after: rows
                        .last()
                        .map(|row| (row.tenant.clone(), row.name.clone())),
                })
            }
        };
        outcome.remaining = self
            .store
            .key_usage()
            .await?
            .iter()
            .filter(|usage| usage.key_id != target)
            .map(|usage| usage.row_count)
            .sum();
        Ok(outcome)
    }

    async fn rewrap_one(
        &self,
        target: &str,
        old: &WrappedKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError> {
        let data_key = self.kms.unwrap(old, binding).await?;
        self.kms.wrap_under(target, &data_key, binding).await
    }
}

fn swap<'a>(old: &'a WrappedKey, new: &'a WrappedKey) -> Rewrap<'a> {
    Rewrap {
        old_key_id: &old.key_id,
        old_blob: &old.blob,
        new_key_id: &new.key_id,
        new_blob: &new.blob,
    }
}

impl BatchOutcome {
    fn count(&mut self, swapped: bool) {
        if swapped {
            self.rewrapped += 1;
        } else {
            self.skipped += 1;
        }
    }

    /// Records a row that cannot be re-wrapped and goes on, unless the KMS is unreachable:
    /// then every further row would fail the same way, so the batch stops.
    fn fail(&mut self, row: String, error: KmsError) -> Result<(), RewrapError> {
        if matches!(error, KmsError::Unavailable(_)) {
            return Err(RewrapError::Kms(error));
        }
        self.failed.push(FailedRow {
            row,
            error: error.to_string(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_text_is_refused() {
        for cursor in [
            Cursor::start(),
            Cursor::Versions {
                after: Some((Uuid::new_v4(), 7)),
            },
            Cursor::Backends {
                after: Some(("default".into(), "pg-main".into())),
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()).expect("decode"), cursor);
        }
        for bad in [
            "",
            "not base64!",
            "e30",
            "'; DROP TABLE secret_versions; --",
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(RewrapError::BadCursor)),
                "case: {bad:?}"
            );
        }
    }
}
