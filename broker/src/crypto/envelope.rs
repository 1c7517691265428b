//! Sealing and opening values with a per-value data key.
//!
//! Ciphertext layout (format version 1):
//! `[0x01][key-id length: u8][key id][nonce: 12 bytes][AES-256-GCM ciphertext + tag]`.
//! The key id is the master key that wrapped the data key when the value was sealed. The AEAD
//! associated data is the canonical encoding of the row binding (tenant, environment, path,
//! version) followed by that key id, so a ciphertext copied onto another row fails to open.
//! Re-wrapping a data key under another master key changes the wrapped key, never the ciphertext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::{DataKey, Kms, KmsError, WrappedKey};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// The row a ciphertext belongs to. Its canonical encoding is the AEAD associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub tenant: String,
    pub environment: String,
    pub path: String,
    pub version: i64,
}

impl Binding {
    /// Length-prefixed fields, so that no two different bindings encode the same.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.path.len());
        for field in [
            self.tenant.as_bytes(),
            self.environment.as_bytes(),
            self.path.as_bytes(),
        ] {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }

    /// The binding of the throw-away key the health check wraps.
    pub fn health_probe() -> Self {
        Self {
            tenant: "_system".into(),
            environment: "_health".into(),
            path: "kms-probe".into(),
            version: 0,
        }
    }
}

/// A sealed value as stored: ciphertext plus the wrapped data key.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: WrappedKey,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(
        "stored ciphertext failed its integrity check (it was altered or does not belong to this row)"
    )]
    Integrity,
    #[error("stored ciphertext has unknown format version {0}")]
    UnknownFormat(u8),
}

fn associated_data(binding: &Binding, key_id: &str) -> Vec<u8> {
    let mut aad = binding.canonical();
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// Seals `plaintext` for the row `binding` with a fresh data key wrapped by `kms`.
///
/// # Errors
/// When the KMS cannot wrap the data key.
pub async fn seal(
    kms: &dyn Kms,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Sealed, EnvelopeError> {
    let data_key = DataKey::generate();
    let wrapped_key = kms.wrap(&data_key, binding).await?;

    let key_id = wrapped_key.key_id.as_bytes();
    let key_id_len = u8::try_from(key_id.len()).map_err(|_| EnvelopeError::Integrity)?;
    let cipher = Aes256Gcm::new(data_key.expose().into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce[..]);
    let aad = associated_data(binding, &wrapped_key.key_id);
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| EnvelopeError::Integrity)?;

    let mut ciphertext = Vec::with_capacity(2 + key_id.len() + NONCE_LEN + sealed.len());
    ciphertext.push(FORMAT_V1);
    ciphertext.push(key_id_len);
    ciphertext.extend_from_slice(key_id);
    ciphertext.extend_from_slice(&nonce);
    ciphertext.extend_from_slice(&sealed);
    Ok(Sealed {
        ciphertext,
        wrapped_key,
    })
}

/// Opens a value sealed by [`seal`] for the same `binding`.
///
/// # Errors
/// `Integrity` when the ciphertext was altered or belongs to another row; KMS errors as they come.
pub async fn open(
    kms: &dyn Kms,
    binding: &Binding,
    ciphertext: &[u8],
    wrapped_key: &WrappedKey,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let (&format, rest) = ciphertext.split_first().ok_or(EnvelopeError::Integrity)?;
    if format != FORMAT_V1 {
        return Err(EnvelopeError::UnknownFormat(format));
    }
    let (&key_id_len, rest) = rest.split_first().ok_or(EnvelopeError::Integrity)?;
    let key_id_len = usize::from(key_id_len);
    if rest.len() < key_id_len + NONCE_LEN {
        return Err(EnvelopeError::Integrity);
    }
    let (sealing_key_id, rest) = rest.split_at(key_id_len);
    let sealing_key_id =
        std::str::from_utf8(sealing_key_id).map_err(|_| EnvelopeError::Integrity)?;
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| EnvelopeError::Integrity)?;

    let data_key = kms.unwrap(wrapped_key, binding).await?;

    let cipher = Aes256Gcm::new(data_key.expose().into());
    let aad = associated_data(binding, sealing_key_id);
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Integrity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::LocalKms;

    fn binding(path: &str, version: i64) -> Binding {
        Binding {
            tenant: "default".into(),
            environment: "prod".into(),
            path: path.into(),
            version,
        }
    }

    #[tokio::test]
    async fn sealed_values_open_only_on_their_own_row() {
        let kms = LocalKms::ephemeral();
        let sealed = seal(&kms, &binding("a/b", 1), b"hunter2")
            .await
            .expect("seal");
        let opened = open(
            &kms,
            &binding("a/b", 1),
            &sealed.ciphertext,
            &sealed.wrapped_key,
        )
        .await
        .expect("open");
        assert_eq!(opened.as_slice(), b"hunter2");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));

        for (other, case) in [
            (binding("a/c", 1), "other path"),
            (binding("a/b", 2), "other version"),
            (
                Binding {
                    tenant: "other".into(),
                    ..binding("a/b", 1)
                },
                "other tenant",
            ),
        ] {
            let err = open(&kms, &other, &sealed.ciphertext, &sealed.wrapped_key).await;
            assert!(err.is_err(), "case: {case}");
        }
    }

    #[tokio::test]
    async fn tampered_ciphertext_is_an_integrity_error() {
        let kms = LocalKms::ephemeral();
        let b = binding("a/b", 1);
        let mut sealed = seal(&kms, &b, b"value").await.expect("seal");
        let last = sealed.ciphertext.len() - 1;
        sealed.ciphertext[last] ^= 1;
        let err = open(&kms, &b, &sealed.ciphertext, &sealed.wrapped_key).await;
        assert!(matches!(err, Err(EnvelopeError::Integrity)));
    }

    #[test]
    fn canonical_binding_is_unambiguous() {
        let a = Binding {
            tenant: "ab".into(),
            environment: "c".into(),
            path: "d".into(),
            version: 1,
        };
        let b = Binding {
            tenant: "a".into(),
            environment: "bc".into(),
            path: "d".into(),
            version: 1,
        };
        assert_ne!(a.canonical(), b.canonical());
    }
}
