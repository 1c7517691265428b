//! Envelope encryption: every sealed value gets its own data key, which a KMS provider wraps.
//!
//! `envelope` owns the ciphertext format and the associated-data binding; `kms` the provider
//! trait; `local` the embedded provider backed by a key-ring file outside the database; `aws`
//! the AWS KMS provider; `providers` the set of configured providers (the active one wraps,
//! each unwraps its own keys); `cache` the bounded data-key cache in front of them all, which
//! also meters every KMS call.

mod aws;
mod cache;
mod envelope;
mod kms;
mod local;
mod providers;

pub use aws::AwsKms;
pub use cache::CachedKms;
pub use envelope::{Binding, EnvelopeError, Sealed, open, seal};
pub use kms::{DataKey, Kms, KmsError, WrappedKey};
pub use local::{KeyRingError, LocalKms};
pub use providers::KmsProviders;
