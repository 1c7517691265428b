//! Token fingerprints for the audit trail: HMAC-SHA256 of a token's text under a key kept next to
//! the master key (never in the database). Events can be tied to the token that made them, and
//! a leaked token can be searched for, without the trail holding anything that helps guess one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::KeyRingError;
use crate::settings::{KmsProvider, KmsSettings};

pub struct TokenHmac {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for TokenHmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHmac(<redacted>)")
    }
}

impl TokenHmac {
    /// The key beside the KMS configuration: `kms.audit_hmac_key_file` when set, else
    /// `<key_file>.audit-hmac` beside the local key ring, a random in-memory key for an
    /// ephemeral one.
    ///
    /// # Errors
    /// When the key file cannot be read, created, or is readable by others.
    pub fn for_kms(settings: &KmsSettings) -> Result<Self, KeyRingError> {
        match (&settings.audit_hmac_key_file, &settings.key_file) {
            (Some(path), _) => Self::load_or_create(path),
            _ if settings.provider == KmsProvider::Ephemeral => Ok(Self::random()),
            (None, Some(key_file)) => {
                Self::load_or_create(&PathBuf::from(format!("{}.audit-hmac", key_file.display())))
            }
            (None, None) => Ok(Self::random()),
        }
    }

    fn random() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        Self { key }
    }

    fn load_or_create(path: &Path) -> Result<Self, KeyRingError> {
        let read_err = |source| KeyRingError::Read {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            let mode = fs::metadata(path).map_err(read_err)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyRingError::Permissions {
                    path: path.to_owned(),
                    mode: mode & 0o777,
                });
            }
            let bytes = Zeroizing::new(fs::read(path).map_err(read_err)?);
            let key: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyRingError::Malformed {
                        path: path.to_owned(),
                        reason: "the audit HMAC key must be 32 bytes".into(),
                    })?;
            return Ok(Self {
                key: Zeroizing::new(key),
            });
        }
        let created = Self::random();
        let write_err = |source| KeyRingError::Write {
            path: path.to_owned(),
            source,
        };
        crate::private_file::create(path, created.key.as_slice()).map_err(write_err)?;
        Ok(created)
    }

    /// The hex HMAC of `token`.
    pub fn of(&self, token: &str) -> String {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_slice()) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_per_key_and_reveal_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = KmsSettings::local(dir.path().join("master.key"));
        let first = TokenHmac::for_kms(&settings).expect("create");
        let again = TokenHmac::for_kms(&settings).expect("load");
        let token = "lh_example-token-text";
        assert_eq!(first.of(token), again.of(token), "the key persists");
        assert_ne!(first.of(token), first.of("lh_other"));
        assert_ne!(
            first.of(token),
            TokenHmac::random().of(token),
            "another key, another fingerprint"
        );
        assert!(!first.of(token).contains("example"));
        assert_eq!(first.of(token).len(), 64);
    }
}
