//! The KMS provider boundary: wrap and unwrap data keys under a master key the broker never
//! stores next to the data.

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::Binding;

/// A 256-bit data key in plaintext; zeroized on drop and never printed.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        Self(key)
    }

    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key as the KMS wrapped it, with the id of the master key that can unwrap it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: String,
    pub blob: Vec<u8>,
}

/// Why a KMS operation failed. `Unavailable` is worth retrying; the others are not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KmsError {
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
    #[error(
        "master key `{0}` is held by no configured KMS provider; restore the key-ring file that holds it or configure the provider that owns it"
    )]
    UnknownKey(String),
    #[error("wrapped data key failed its integrity check (it does not belong to this row)")]
    Integrity,
    #[error("the KMS refused the request: {0}")]
    Rejected(String),
}

/// A KMS provider. Implementations bind every wrapped key to the row it belongs to through
/// `binding`, so a wrapped key copied onto another row does not unwrap.
#[async_trait]
pub trait Kms: Send + Sync {
    /// Short provider name for metrics and health (`local`, `aws-kms`).
    fn provider(&self) -> &'static str;

    /// The master key new data keys are wrapped under, as configured (an AWS alias stays an
    /// alias; [`Kms::resolve`] names the key behind it).
    fn active_key(&self) -> &str;

    /// Whether `key_id` is one of this provider's master keys.
    fn holds(&self, key_id: &str) -> bool;

    /// Wraps `key` under the master key `key_id`.
    ///
    /// # Errors
    /// `UnknownKey` for a key the provider does not hold, `Unavailable` when unreachable,
    /// `Rejected` when the provider refuses (a disabled key, missing permission).
    async fn wrap_under(
        &self,
        key_id: &str,
        key: &DataKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError>;

    /// # Errors
    /// `UnknownKey` for a key id the provider does not hold, `Integrity` when the wrapped key was
    /// tampered with or belongs to another binding, `Unavailable` when unreachable.
    async fn unwrap(&self, wrapped: &WrappedKey, binding: &Binding) -> Result<DataKey, KmsError>;

    /// The id that wrapped keys carry for `key_id` (an AWS alias becomes its key ARN).
    ///
    /// # Errors
    /// `UnknownKey`, `Unavailable`.
    async fn resolve(&self, key_id: &str) -> Result<String, KmsError> {
        if self.holds(key_id) {
            Ok(key_id.to_owned())
        } else {
            Err(KmsError::UnknownKey(key_id.to_owned()))
        }
    }

    /// Wraps `key` under the active master key.
    ///
    /// # Errors
    /// As [`Kms::wrap_under`].
    async fn wrap(&self, key: &DataKey, binding: &Binding) -> Result<WrappedKey, KmsError> {
        self.wrap_under(self.active_key(), key, binding).await
    }

    /// Proves the provider can wrap and unwrap right now.
    ///
    /// # Errors
    /// Whatever the round trip failed with.
    async fn check(&self) -> Result<(), KmsError> {
        let probe = Binding::health_probe();
        let key = DataKey::generate();
        let wrapped = self.wrap(&key, &probe).await?;
        let unwrapped = self.unwrap(&wrapped, &probe).await?;
        if unwrapped.expose() == key.expose() {
            Ok(())
        } else {
            Err(KmsError::Integrity)
        }
    }
}
