//! The embedded default (`leasehold server --dev`): SQLite and a local key ring in one data
//! directory, or both in memory with `--ephemeral`, and a root token printed at start.
//!
//! The root token's text is kept in `<data-dir>/root-token` (mode 0600) so every restart can
//! print the same token, as a developer expects; production stores never hold a token's text.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::auth::{MintRequest, TokenService};
use crate::domain::Tenant;
use crate::settings::{DEFAULT_MAX_VALUE_BYTES, KmsSettings, Settings};
use crate::store::StoreError;

pub const ROOT_PRINCIPAL: &str = "user:root";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the dev server keeps its state; `None` keeps everything in memory.
pub struct DevMode {
    data_dir: Option<PathBuf>,
}

impl DevMode {
    pub fn persistent(data_dir: PathBuf) -> Self {
        Self {
            data_dir: Some(data_dir),
        }
    }

    pub fn ephemeral() -> Self {
        Self { data_dir: None }
    }

    /// Creates the data directory (mode 0700) and returns the settings that live in it.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn settings(&self, listen: std::net::SocketAddr) -> Result<Settings, DevError> {
        let (database_url, kms) = match &self.data_dir {
            Some(dir) => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| DevError::DataDir {
                        path: dir.clone(),
                        source,
                    })?;
                (
                    format!("sqlite://{}", dir.join("leasehold.db").display()),
                    KmsSettings::local(dir.join("master.key")),
                )
            }
            None => ("sqlite::memory:".to_owned(), KmsSettings::ephemeral()),
        };
        Ok(Settings {
            listen,
            database_url: SecretString::from(database_url),
            max_connections: 8,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            tls: None,
            kms,
            alert_webhook_url: None,
            audit_timeout_ms: 2000,
            audit_sink: None,
            lease_intent_grace_seconds: crate::dynamic::INTENT_GRACE.as_secs(),
            revocation_retry_budget_seconds: 24 * 3600,
            scheduler_claim_seconds: 60,
            revocation_fence_seconds: 24 * 3600,
            revoked_lease_retention_seconds: 7 * 24 * 3600,
        })
    }

    /// The root token for this start: `fixed` if given, else the one remembered in the data
    /// directory, else a new one. It is minted in the store if the store does not know it.
    ///
    /// # Errors
    /// Storage errors, or when the token file cannot be read or written.
    pub async fn root_token(
        &self,
        tokens: &TokenService,
        fixed: Option<SecretString>,
    ) -> Result<SecretString, DevError> {
        let remembered = match &self.data_dir {
            Some(dir) => read_token_file(&dir.join("root-token"))?,
            None => None,
        };
        let wanted = fixed.or(remembered);
        if let Some(token) = &wanted
            && tokens.exists(token.expose_secret()).await?
        {
            return Ok(token.clone());
        }
        let tenant = Tenant::default_tenant();
        let issued = tokens
            .mint(MintRequest {
                text: wanted,
                ..MintRequest::administrator(ROOT_PRINCIPAL, &tenant)
            })
            .await?;
        if let Some(dir) = &self.data_dir {
            write_token_file(&dir.join("root-token"), &issued.token)?;
        }
        Ok(issued.token)
    }
}

fn read_token_file(path: &Path) -> Result<Option<SecretString>, DevError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(SecretString::from(text.trim().to_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DevError::DataDir {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_token_file(path: &Path, token: &SecretString) -> Result<(), DevError> {
    let err = |source| DevError::DataDir {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    crate::private_file::create(path, token.expose_secret().as_bytes()).map_err(err)
}
