//! Envelope encryption: every sealed value gets its own data key, which a KMS provider wraps.
//!
//! `envelope` owns the ciphertext format and the associated-data binding; `kms` the provider
//! trait; `local` the embedded provider backed by a key-ring file outside the database.

mod envelope;
mod kms;
mod local;

pub use envelope::{Binding, EnvelopeError, Sealed, open, seal};
pub use kms::{DataKey, Kms, KmsError, WrappedKey};
pub use local::{KeyRingError, LocalKms};
