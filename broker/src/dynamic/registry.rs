//! One live plugin instance per backend, shared by every request and worker of this replica.
//!
//! An instance is built from the backend's row (its admin password opened through the KMS) and
//! kept while the row's `generation` stays the same; the generation is re-checked at most every
//! two seconds, so a change made through another replica is picked up within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use leasehold_plugins::{CredentialBackend, PluginKind};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{BackendConfig, ConnectionConfig, DynamicError};
use crate::crypto::{self, Binding, Kms, WrappedKey};
use crate::store::{BackendRow, SealedPassword, Store};

const RECHECK_AFTER: Duration = Duration::from_secs(2);

/// A backend's plugin, with what it was built from.
#[derive(Clone)]
pub struct LiveBackend {
    pub name: String,
    pub kind: PluginKind,
    pub generation: i64,
    pub plugin: Arc<dyn CredentialBackend>,
}

struct Cached {
    backend: LiveBackend,
    checked_at: Instant,
}

pub struct PluginRegistry {
    store: Store,
    kms: Arc<dyn Kms>,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

/// The AEAD binding of a backend's admin password at `generation`.
pub fn password_binding(tenant: &str, name: &str, generation: i64) -> Binding {
    Binding {
        tenant: tenant.to_owned(),
        environment: "_backends".to_owned(),
        path: name.to_owned(),
        version: generation,
    }
}

impl PluginRegistry {
    pub fn new(store: Store, kms: Arc<dyn Kms>) -> Self {
        Self {
            store,
            kms,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The plugin of backend `name` in `tenant`.
    ///
    /// # Errors
    /// `NotFound` for an unknown backend; storage and KMS errors while building it.
    pub async fn get(&self, tenant: &str, name: &str) -> Result<LiveBackend, DynamicError> {
        let key = (tenant.to_owned(), name.to_owned());
        let cached = self
            .cache()
            .get(&key)
            .map(|c| (c.backend.clone(), c.checked_at));
        if let Some((backend, checked_at)) = &cached
            && checked_at.elapsed() < RECHECK_AFTER
        {
            return Ok(backend.clone());
        }
        let generation = self.store.backend_generation(tenant, name).await?;
        match (cached, generation) {
            (_, None) => {
                self.forget(tenant, name).await;
                Err(DynamicError::NotFound(format!("no backend `{name}`")))
            }
            (Some((backend, _)), Some(generation)) if backend.generation == generation => {
                if let Some(entry) = self.cache().get_mut(&key) {
                    entry.checked_at = Instant::now();
                }
                Ok(backend)
            }
            (_, Some(_)) => {
                let row = self
                    .store
                    .find_backend(tenant, name)
                    .await?
                    .ok_or_else(|| DynamicError::NotFound(format!("no backend `{name}`")))?;
                let backend = self.build(&row).await?;
                let previous = self.cache().insert(
                    key,
                    Cached {
                        backend: backend.clone(),
                        checked_at: Instant::now(),
                    },
                );
                if let Some(previous) = previous {
                    previous.backend.plugin.close().await;
                }
                Ok(backend)
            }
        }
    }

    /// Drops (and closes) the instance of a backend that changed or was deleted.
    pub async fn forget(&self, tenant: &str, name: &str) {
        let removed = self.cache().remove(&(tenant.to_owned(), name.to_owned()));
        if let Some(removed) = removed {
            removed.backend.plugin.close().await;
        }
    }

    async fn build(&self, row: &BackendRow) -> Result<LiveBackend, DynamicError> {
        let config = stored_config(row)?;
        if let Some(recovered) = self.recover_rotation(row, &config).await? {
            return Ok(recovered);
        }
        let password = self
            .open_password(&row.tenant, &row.name, row.generation, &row.password())
            .await?;
        let plugin = open_plugin(&config, &row.tenant, &row.name, password)?;
        Ok(LiveBackend {
            name: row.name.clone(),
            kind: config.plugin,
            generation: row.generation,
            plugin: Arc::from(plugin),
        })
    }

    /// Finishes a root rotation a crash interrupted: when the staged password logs in, the
    /// target accepted it, so it becomes the current one. Otherwise the current one stays.
    async fn recover_rotation(
        &self,
        row: &BackendRow,
        config: &BackendConfig,
    ) -> Result<Option<LiveBackend>, DynamicError> {
        let Some(pending) = row.pending_password() else {
            return Ok(None);
        };
        let password = self
            .open_password(&row.tenant, &row.name, row.generation + 1, &pending)
            .await?;
        let candidate: Arc<dyn CredentialBackend> =
            Arc::from(open_plugin(config, &row.tenant, &row.name, password)?);
        if candidate.verify().await.is_ok()
            && self
                .store
                .promote_backend_password(
                    &row.tenant,
                    &row.name,
                    row.generation,
                    chrono::Utc::now(),
                )
                .await?
        {
            tracing::warn!(backend = %row.name, "finished an interrupted root rotation");
            return Ok(Some(LiveBackend {
                name: row.name.clone(),
                kind: config.plugin,
                generation: row.generation + 1,
                plugin: candidate,
            }));
        }
        candidate.close().await;
        Ok(None)
    }

    /// Seals an admin password for `generation` of a backend.
    ///
    /// # Errors
    /// KMS errors.
    pub async fn seal_password(
        &self,
        tenant: &str,
        name: &str,
        generation: i64,
        password: &SecretString,
    ) -> Result<SealedPassword, DynamicError> {
        use secrecy::ExposeSecret;
        let sealed = crypto::seal(
            self.kms.as_ref(),
            &password_binding(tenant, name, generation),
            password.expose_secret().as_bytes(),
        )
        .await?;
        Ok(SealedPassword {
            ciphertext: sealed.ciphertext,
            wrapped_key: sealed.wrapped_key.blob,
            kms_key_id: sealed.wrapped_key.key_id,
        })
    }

    /// Opens a sealed admin password.
    ///
    /// # Errors
    /// KMS and integrity errors.
    pub async fn open_password(
        &self,
        tenant: &str,
        name: &str,
        generation: i64,
        sealed: &SealedPassword,
    ) -> Result<SecretString, DynamicError> {
        let plaintext: Zeroizing<Vec<u8>> = crypto::open(
            self.kms.as_ref(),
            &password_binding(tenant, name, generation),
            &sealed.ciphertext,
            &WrappedKey {
                key_id: sealed.kms_key_id.clone(),
                blob: sealed.wrapped_key.clone(),
            },
        )
        .await?;
        let text =
            String::from_utf8(plaintext.to_vec()).map_err(|_| crypto::EnvelopeError::Integrity)?;
        Ok(SecretString::from(text))
    }
}

/// The stored configuration of a backend row.
///
/// # Errors
/// When the row holds an unknown plugin or unreadable JSON (edited by hand).
pub fn stored_config(row: &BackendRow) -> Result<BackendConfig, DynamicError> {
    let corrupt = |what: &str| {
        DynamicError::Storage(crate::store::StoreError::Corrupt(format!(
            "backend `{}` has {what}",
            row.name
        )))
    };
    let plugin = PluginKind::parse(&row.plugin).ok_or_else(|| corrupt("an unknown plugin"))?;
    let connection: ConnectionConfig =
        serde_json::from_str(&row.connection).map_err(|_| corrupt("an unreadable connection"))?;
    Ok(BackendConfig {
        plugin,
        connection,
        max_open_connections: u32::try_from(row.max_open_connections)
            .map_err(|_| corrupt("a bad maxOpenConnections"))?,
    })
}

/// A plugin instance for a backend configuration and admin password.
///
/// # Errors
/// `Invalid` when the plugin refuses the configuration (e.g. an unusable CA certificate).
pub fn open_plugin(
    config: &BackendConfig,
    tenant: &str,
    name: &str,
    password: SecretString,
) -> Result<Box<dyn CredentialBackend>, DynamicError> {
    let application_name: String = format!("leasehold:{tenant}:{name}")
        .chars()
        .take(63)
        .collect();
    leasehold_plugins::open(
        config.plugin,
        config.plugin_connection(password, application_name),
    )
    .map_err(|e| DynamicError::Invalid {
        field: "connection",
        message: e.message,
    })
}
