//! The `local` KMS provider: a key ring of 256-bit master keys in a file outside the database.
//!
//! The file is JSON, `{"activeKeyId": "...", "keys": [{"id": "...", "key": "<base64>"}]}`, with
//! mode 0600. New data keys are wrapped under the active key; every key in the ring still
//! unwraps what it wrapped, so rotating the ring (`leasehold kms rotate-local-key`) never makes an
//! old version unreadable.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Binding, DataKey, Kms, KmsError, WrappedKey};

const NONCE_LEN: usize = 12;
const WRAP_CONTEXT: &[u8] = b"leasehold-local-kms-v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("cannot read master key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write master key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("master key file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyRingFile {
    active_key_id: String,
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    id: String,
    key: String,
}

/// The embedded KMS provider.
pub struct LocalKms {
    active_key_id: String,
    keys: BTreeMap<String, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("active_key_id", &self.active_key_id)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn new_key_id(existing: usize) -> String {
    format!("local-{}", existing + 1)
}

fn random_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::fill(&mut key[..]);
    key
}

impl LocalKms {
    /// A key ring that lives only in memory (for `--dev --ephemeral` and tests).
    pub fn ephemeral() -> Self {
        let id = new_key_id(0);
        Self {
            keys: BTreeMap::from([(id.clone(), random_key())]),
            active_key_id: id,
        }
    }

    /// Loads the key ring at `path`, creating it with one fresh key when it does not exist.
    ///
    /// # Errors
    /// When the file cannot be read or written, is malformed, or is readable by others.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyRingError> {
        if path.exists() {
            return Self::load(path);
        }
        let ring = Self::ephemeral();
        ring.write_new(path)?;
        Ok(ring)
    }

    /// Loads an existing key ring.
    ///
    /// # Errors
    /// When the file cannot be read, is malformed, or is readable by others.
    pub fn load(path: &Path) -> Result<Self, KeyRingError> {
        let read_err = |source| KeyRingError::Read {
            path: path.to_owned(),
            source,
        };
        let malformed = |reason: &str| KeyRingError::Malformed {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let mode = fs::metadata(path).map_err(read_err)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyRingError::Permissions {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let raw = Zeroizing::new(fs::read(path).map_err(read_err)?);
        let file: KeyRingFile =
            serde_json::from_slice(&raw).map_err(|_| malformed("not the expected JSON shape"))?;
        let mut keys = BTreeMap::new();
        for entry in file.keys {
            let encoded = Zeroizing::new(entry.key);
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|_| malformed("a key is not base64"))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| malformed("a key is not 32 bytes"))?;
            keys.insert(entry.id, Zeroizing::new(key));
        }
        if !keys.contains_key(&file.active_key_id) {
            return Err(malformed("activeKeyId names no key in the ring"));
        }
        Ok(Self {
            active_key_id: file.active_key_id,
            keys,
        })
    }

    /// Adds a fresh key to the ring at `path` and makes it the active one; returns its id.
    ///
    /// # Errors
    /// When the ring cannot be loaded or rewritten.
    pub fn rotate_file(path: &Path) -> Result<String, KeyRingError> {
        let mut ring = Self::load(path)?;
        // One past the highest numbered id, so no existing key is ever replaced.
        let highest = ring
            .keys
            .keys()
            .filter_map(|id| id.strip_prefix("local-")?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        let id = new_key_id(highest.max(ring.keys.len()));
        if ring.keys.contains_key(&id) {
            return Err(KeyRingError::Malformed {
                path: path.to_owned(),
                reason: format!("key id {id} already exists"),
            });
        }
        ring.keys.insert(id.clone(), random_key());
        ring.active_key_id = id.clone();
        ring.replace_file(path)?;
        Ok(id)
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let file = KeyRingFile {
            active_key_id: self.active_key_id.clone(),
            keys: self
                .keys
                .iter()
                .map(|(id, key)| KeyEntry {
                    id: id.clone(),
                    key: STANDARD.encode(key.as_slice()),
                })
                .collect(),
        };
        let encoded = Zeroizing::new(serde_json::to_vec_pretty(&file).unwrap_or_default());
        for entry in file.keys {
            drop(Zeroizing::new(entry.key));
        }
        encoded
    }

    fn write_new(&self, path: &Path) -> Result<(), KeyRingError> {
        let write_err = |source| KeyRingError::Write {
            path: path.to_owned(),
            source,
        };
        crate::private_file::create(path, &self.encode()).map_err(write_err)
    }

    fn replace_file(&self, path: &Path) -> Result<(), KeyRingError> {
        let write_err = |source| KeyRingError::Write {
            path: path.to_owned(),
            source,
        };
        let staging = path.with_extension("rotating");
        let _ = fs::remove_file(&staging);
        self.write_new(&staging)?;
        fs::rename(&staging, path).map_err(write_err)
    }

    fn cipher(&self, key_id: &str) -> Result<Aes256Gcm, KmsError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| KmsError::UnknownKey(key_id.to_owned()))?;
        Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| KmsError::Integrity)
    }
}

fn wrap_aad(binding: &Binding, key_id: &str) -> Vec<u8> {
    let mut aad = WRAP_CONTEXT.to_vec();
    aad.extend_from_slice(&binding.canonical());
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

#[async_trait]
impl Kms for LocalKms {
    fn provider(&self) -> &'static str {
        "local"
    }

    fn active_key(&self) -> &str {
        &self.active_key_id
    }

    fn holds(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    async fn wrap_under(
        &self,
        key_id: &str,
        key: &DataKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError> {
        let cipher = self.cipher(key_id)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let aad = wrap_aad(binding, key_id);
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.expose(),
                    aad: &aad,
                },
            )
            .map_err(|_| KmsError::Integrity)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(WrappedKey {
            key_id: key_id.to_owned(),
            blob,
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, binding: &Binding) -> Result<DataKey, KmsError> {
        let cipher = self.cipher(&wrapped.key_id)?;
        if wrapped.blob.len() < NONCE_LEN {
            return Err(KmsError::Integrity);
        }
        let (nonce, sealed) = wrapped.blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KmsError::Integrity)?;
        let aad = wrap_aad(binding, &wrapped.key_id);
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| KmsError::Integrity)?,
        );
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KmsError::Integrity)?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotated_ring_still_unwraps_old_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let ring = LocalKms::load_or_create(&path).expect("create");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let binding = Binding::health_probe();
        let key = DataKey::generate();
        let old = ring.wrap(&key, &binding).await.expect("wrap");

        let new_id = LocalKms::rotate_file(&path).expect("rotate");
        let rotated = LocalKms::load(&path).expect("reload");
        assert_eq!(rotated.active_key(), new_id);
        assert_ne!(old.key_id, new_id);
        let unwrapped = rotated
            .unwrap(&old, &binding)
            .await
            .expect("old key unwraps");
        assert_eq!(unwrapped.expose(), key.expose());
        let fresh = rotated.wrap(&key, &binding).await.expect("wrap");
        assert_eq!(fresh.key_id, new_id);
    }

    #[test]
    fn world_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        LocalKms::load_or_create(&path).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            LocalKms::load(&path),
            Err(KeyRingError::Permissions { .. })
        ));
    }
}
