//! Static secrets: the operations behind `/v1/secrets`, combining the store with envelope
//! encryption. Values enter and leave only as `SecretString`; everything else is metadata.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::audit::TransactionEvents;
use crate::crypto::{self, Binding, EnvelopeError, Kms, WrappedKey};
use crate::domain::{
    AliasName, Environment, OwnerTeam, RotationStrategy, SecretPath, Tenant, VersionNumber,
    VersionStatus,
};
use crate::store::{
    AliasChange, AliasMove, AliasRow, NewSecret, NewVersion, ReadRow, SecretRow, SecretUpdate,
    SelectedVersion, StatusChange, StatusChangeOutcome, Store, StoreError, VersionRow,
};

/// Why a secrets operation failed; `api::error` maps each variant to its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no secret {0}")]
    SecretNotFound(String),
    #[error("a secret already exists at {0}; add a version to it instead")]
    AlreadyExists(String),
    #[error("alias `{0}` is not set on this secret")]
    AliasUnset(AliasName),
    #[error("version {0} does not exist")]
    VersionNotFound(VersionNumber),
    #[error("version {0} is disabled; enable it or read another version")]
    VersionDisabled(VersionNumber),
    #[error("version {0} was destroyed and can never be read again")]
    VersionDestroyed(VersionNumber),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the value is {size} bytes; the limit is {limit} bytes")]
    ValueTooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// A secret's metadata with its versions and aliases; never a value.
#[derive(Debug, Clone)]
pub struct SecretMetadata {
    pub secret: SecretRow,
    pub versions: Vec<VersionRow>,
    pub aliases: Vec<AliasRow>,
}

/// A decrypted value and what identifies it.
pub struct RevealedSecret {
    pub path: SecretPath,
    pub version: VersionNumber,
    pub value: SecretString,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Which version a read asks for.
#[derive(Debug, Clone, Copy)]
pub enum VersionSelector {
    Alias(AliasName),
    Number(VersionNumber),
}

pub struct CreateSecret {
    pub environment: Environment,
    pub path: SecretPath,
    pub owner_team: OwnerTeam,
    pub description: String,
    pub rotation_strategy: RotationStrategy,
}

/// The status a new version is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialStatus {
    Pending,
    Current,
}

/// A new version's value and what it is created with.
pub struct NewVersionValue<'a> {
    pub value: &'a SecretString,
    pub status: InitialStatus,
    pub expires_at: Option<DateTime<Utc>>,
}

pub struct CreatedVersion {
    pub version: VersionNumber,
    pub status: VersionStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct SecretService {
    store: Store,
    kms: Arc<dyn Kms>,
    max_value_bytes: usize,
}

const MAX_DESCRIPTION_CHARS: usize = 1024;
/// How many version numbers a new version tries before it gives up to concurrent writers.
const SEAL_ATTEMPTS: usize = 8;

impl SecretService {
    pub fn new(store: Store, kms: Arc<dyn Kms>, max_value_bytes: usize) -> Self {
        Self {
            store,
            kms,
            max_value_bytes,
        }
    }

    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Creates a secret; `audit`'s event commits with it.
    ///
    /// # Errors
    /// `AlreadyExists` for a taken environment and path; `Invalid` for an over-long description.
    pub async fn create(
        &self,
        tenant: &Tenant,
        principal: &str,
        request: CreateSecret,
        audit: &TransactionEvents,
    ) -> Result<SecretRow, SecretError> {
        check_description(&request.description)?;
        let now = Utc::now();
        let id = Uuid::new_v4();
        let inserted = self
            .store
            .insert_secret(
                &NewSecret {
                    id,
                    tenant: tenant.as_str(),
                    environment: request.environment.as_str(),
                    path: request.path.as_str(),
                    owner_team: request.owner_team.as_str(),
                    description: &request.description,
                    rotation_strategy: request.rotation_strategy.as_str(),
                    created_by: principal,
                    now,
                },
                Some(audit),
            )
            .await;
        match inserted {
            Err(e) if e.is_unique_violation() => Err(SecretError::AlreadyExists(format!(
                "{}/{}",
                request.environment, request.path
            ))),
            other => other.map_err(SecretError::from),
        }?;
        self.store
            .find_secret(tenant.as_str(), id)
            .await?
            .ok_or_else(|| SecretError::SecretNotFound(id.to_string()))
    }

    /// Seals `value` as the next version of the secret `id`. `audit`'s event, given the number
    /// the version gets, commits with the version; `None` when the caller audits the change in
    /// its own terms (a rotation's steps).
    ///
    /// The value is sealed outside any transaction (its number is part of the associated data,
    /// and a KMS call must not hold the store's write lock); should another version take the
    /// number meanwhile, the value is sealed again under the next one.
    ///
    /// # Errors
    /// `ValueTooLarge`, `SecretNotFound`, `Conflict` when other writers took every number tried,
    /// and storage or KMS failures; a failed write changes nothing.
    pub async fn add_version(
        &self,
        tenant: &Tenant,
        principal: &str,
        id: Uuid,
        new: NewVersionValue<'_>,
        audit: Option<TransactionEvents>,
    ) -> Result<CreatedVersion, SecretError> {
        let NewVersionValue {
            value,
            status,
            expires_at,
        } = new;
        let size = value.expose_secret().len();
        if size > self.max_value_bytes {
            return Err(SecretError::ValueTooLarge {
                size,
                limit: self.max_value_bytes,
            });
        }
        for _ in 0..SEAL_ATTEMPTS {
            let now = Utc::now();
            let (version, environment, path) = self
                .store
                .next_version(tenant.as_str(), id)
                .await?
                .ok_or_else(|| SecretError::SecretNotFound(id.to_string()))?;
            let binding = Binding {
                tenant: tenant.as_str().to_owned(),
                environment,
                path,
                version,
            };
            let sealed = crypto::seal(
                self.kms.as_ref(),
                &binding,
                value.expose_secret().as_bytes(),
            )
            .await?;
            let inserted = self
                .store
                .insert_version(
                    tenant.as_str(),
                    &NewVersion {
                        secret_id: id,
                        version,
                        ciphertext: &sealed.ciphertext,
                        wrapped_key: &sealed.wrapped_key.blob,
                        kms_key_id: &sealed.wrapped_key.key_id,
                        created_by: principal,
                        expires_at,
                        now,
                    },
                    status == InitialStatus::Current,
                    audit
                        .clone()
                        .map(|audit| audit.map(|event| event.version(version)))
                        .as_ref(),
                )
                .await?;
            if inserted {
                return Ok(CreatedVersion {
                    version,
                    status: match status {
                        InitialStatus::Pending => VersionStatus::Pending,
                        InitialStatus::Current => VersionStatus::Current,
                    },
                    created_at: now,
                    expires_at,
                });
            }
        }
        Err(SecretError::Conflict(format!(
            "other versions kept being added to secret {id} while this one was written ({SEAL_ATTEMPTS} tries); retry"
        )))
    }

    /// Fetches, in one round trip, the token with hash `token_hash` and the version of
    /// `environment/path` that `selector` names in that token's tenant. Nothing is decrypted:
    /// the caller authorises first, then calls [`Self::reveal`].
    ///
    /// # Errors
    /// Storage errors.
    pub async fn fetch_for_read(
        &self,
        token_hash: &[u8],
        environment: &Environment,
        path: &SecretPath,
        selector: VersionSelector,
    ) -> Result<Option<ReadRow>, SecretError> {
        let (alias, number) = match selector {
            VersionSelector::Alias(alias) => (Some(alias), None),
            VersionSelector::Number(n) => (None, Some(n)),
        };
        Ok(self
            .store
            .select_for_read(
                token_hash,
                environment.as_str(),
                path.as_str(),
                alias,
                number,
            )
            .await?)
    }

    /// Decrypts what [`Self::fetch_for_read`] selected, after the caller was authorised.
    ///
    /// # Errors
    /// Not-found, disabled and destroyed versions; KMS and integrity failures.
    pub async fn reveal(
        &self,
        tenant: &Tenant,
        environment: &Environment,
        path: &SecretPath,
        selector: VersionSelector,
        selected: SelectedVersion,
    ) -> Result<RevealedSecret, SecretError> {
        if selected.secret_id.is_none() {
            return Err(SecretError::SecretNotFound(format!("{environment}/{path}")));
        }
        let version = match (selected.version, selected.alias_version, selector) {
            (Some(v), _, _) => v,
            (None, None, VersionSelector::Alias(alias)) => {
                return Err(SecretError::AliasUnset(alias));
            }
            (None, Some(v), VersionSelector::Alias(_)) => {
                return Err(SecretError::VersionNotFound(v));
            }
            (None, _, VersionSelector::Number(n)) => return Err(SecretError::VersionNotFound(n)),
        };
        let status = selected
            .status
            .as_deref()
            .and_then(VersionStatus::from_stored)
            .ok_or(SecretError::VersionNotFound(version))?;
        match status {
            VersionStatus::Disabled => return Err(SecretError::VersionDisabled(version)),
            VersionStatus::Destroyed => return Err(SecretError::VersionDestroyed(version)),
            _ => {}
        }
        let (Some(ciphertext), Some(blob), Some(key_id)) = (
            selected.ciphertext,
            selected.wrapped_key,
            selected.kms_key_id,
        ) else {
            return Err(SecretError::Envelope(EnvelopeError::Integrity));
        };
        let binding = Binding {
            tenant: tenant.as_str().to_owned(),
            environment: environment.as_str().to_owned(),
            path: path.as_str().to_owned(),
            version,
        };
        let plaintext = crypto::open(
            self.kms.as_ref(),
            &binding,
            &ciphertext,
            &WrappedKey { key_id, blob },
        )
        .await?;
        let text = String::from_utf8(plaintext.to_vec())
            .map_err(|_| SecretError::Envelope(EnvelopeError::Integrity))?;
        Ok(RevealedSecret {
            path: path.clone(),
            version,
            value: SecretString::from(text),
            expires_at: selected.version_expires_at,
        })
    }

    /// Decrypts version `version` of `secret` for the broker's own use; readers go through
    /// [`Self::fetch_for_read`] and [`Self::reveal`].
    ///
    /// # Errors
    /// As [`Self::reveal`].
    pub async fn open_version(
        &self,
        secret: &SecretRow,
        version: VersionNumber,
    ) -> Result<SecretString, SecretError> {
        let selected = self.store.select_version(secret.id, version).await?;
        let invalid = |_| SecretError::Envelope(EnvelopeError::Integrity);
        let tenant = Tenant::parse(&secret.tenant).map_err(invalid)?;
        let environment = Environment::parse(&secret.environment).map_err(invalid)?;
        let path = SecretPath::parse(&secret.path).map_err(invalid)?;
        Ok(self
            .reveal(
                &tenant,
                &environment,
                &path,
                VersionSelector::Number(version),
                selected,
            )
            .await?
            .value)
    }

    /// Points `alias` at `version` if it now points at `expected` (compare-and-swap); `audit`'s
    /// event commits with the move.
    ///
    /// # Errors
    /// `Conflict` on a stale `expected` or an unreadable target; not-found errors.
    pub async fn promote(
        &self,
        tenant: &Tenant,
        id: Uuid,
        alias: AliasName,
        version: VersionNumber,
        expected: Option<VersionNumber>,
        audit: Option<&TransactionEvents>,
    ) -> Result<Option<VersionNumber>, SecretError> {
        if alias == AliasName::Previous {
            return Err(SecretError::Invalid {
                field: "alias",
                message: "alias `previous` follows promotions of `current` and cannot be set directly; promote `current` or `next`".into(),
            });
        }
        let outcome = self
            .store
            .move_alias(
                tenant.as_str(),
                id,
                AliasChange {
                    alias,
                    target: version,
                    expected,
                    now: Utc::now(),
                },
                audit,
            )
            .await?;
        match outcome {
            AliasMove::Moved { previous } => Ok(previous),
            AliasMove::SecretNotFound => Err(SecretError::SecretNotFound(id.to_string())),
            AliasMove::VersionNotFound => Err(SecretError::VersionNotFound(version)),
            AliasMove::VersionUnreadable(status) => Err(SecretError::Conflict(format!(
                "version {version} is {status}; only readable versions can be promoted"
            ))),
            AliasMove::Conflict { actual } => Err(SecretError::Conflict(match actual {
                Some(actual) => format!(
                    "alias `{alias}` points at version {actual}, not {}; read the secret's metadata and retry with \"expectedPreviousVersion\": {actual}",
                    expected.map_or_else(|| "unset".to_owned(), |e| e.to_string())
                ),
                None => format!(
                    "alias `{alias}` is not set yet; retry without expectedPreviousVersion (or with null)"
                ),
            })),
        }
    }

    /// Disables, enables or destroys one version; returns its new status. `audit`'s event
    /// commits with the change.
    ///
    /// # Errors
    /// Not-found errors; `Conflict` for the current version; `VersionDestroyed`.
    pub async fn change_status(
        &self,
        tenant: &Tenant,
        id: Uuid,
        version: VersionNumber,
        change: StatusChange,
        audit: Option<&TransactionEvents>,
    ) -> Result<VersionStatus, SecretError> {
        let outcome = self
            .store
            .change_status(tenant.as_str(), id, version, change, Utc::now(), audit)
            .await?;
        match outcome {
            StatusChangeOutcome::Changed(status) => Ok(status),
            StatusChangeOutcome::SecretNotFound => Err(SecretError::SecretNotFound(id.to_string())),
            StatusChangeOutcome::VersionNotFound => Err(SecretError::VersionNotFound(version)),
            StatusChangeOutcome::AlreadyDestroyed => Err(SecretError::VersionDestroyed(version)),
            StatusChangeOutcome::VersionIsCurrent => Err(SecretError::Conflict(format!(
                "version {version} is current; promote another version to `current` first"
            ))),
        }
    }

    /// # Errors
    /// `SecretNotFound`; storage errors.
    pub async fn metadata(&self, tenant: &Tenant, id: Uuid) -> Result<SecretMetadata, SecretError> {
        let secret = self
            .store
            .find_secret(tenant.as_str(), id)
            .await?
            .ok_or_else(|| SecretError::SecretNotFound(id.to_string()))?;
        let versions = self.store.list_versions(id).await?;
        let aliases = self.store.list_aliases(id).await?;
        Ok(SecretMetadata {
            secret,
            versions,
            aliases,
        })
    }

    /// # Errors
    /// `SecretNotFound`; storage errors.
    pub async fn find_by_path(
        &self,
        tenant: &Tenant,
        environment: &Environment,
        path: &SecretPath,
    ) -> Result<SecretRow, SecretError> {
        self.store
            .find_secret_by_path(tenant.as_str(), environment.as_str(), path.as_str())
            .await?
            .ok_or_else(|| SecretError::SecretNotFound(format!("{environment}/{path}")))
    }

    /// # Errors
    /// Storage errors.
    pub async fn list(
        &self,
        tenant: &Tenant,
        environment: Option<&Environment>,
        path_prefix: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<(Vec<SecretRow>, bool), SecretError> {
        let page = self
            .store
            .list_secrets(
                tenant.as_str(),
                environment.map(Environment::as_str),
                path_prefix,
                after,
                limit,
            )
            .await?;
        Ok((page.secrets, page.has_more))
    }

    /// Edits a secret's metadata; `audit`'s event commits with the edit.
    ///
    /// # Errors
    /// `SecretNotFound`; `Invalid` for an over-long description.
    pub async fn update(
        &self,
        tenant: &Tenant,
        id: Uuid,
        owner_team: Option<&OwnerTeam>,
        description: Option<&str>,
        audit: &TransactionEvents,
    ) -> Result<SecretRow, SecretError> {
        if let Some(description) = description {
            check_description(description)?;
        }
        self.store
            .update_secret(
                tenant.as_str(),
                id,
                &SecretUpdate {
                    owner_team: owner_team.map(OwnerTeam::as_str),
                    description,
                    now: Utc::now(),
                },
                Some(audit),
            )
            .await?
            .ok_or_else(|| SecretError::SecretNotFound(id.to_string()))
    }
}

fn check_description(description: &str) -> Result<(), SecretError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(SecretError::Invalid {
            field: "description",
            message: format!("description: must be at most {MAX_DESCRIPTION_CHARS} characters"),
        });
    }
    Ok(())
}
