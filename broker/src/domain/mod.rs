//! Domain types whose invariants are checked once, at construction: names and paths that reach
//! SQL, routes and AEAD associated data can only exist in their valid form.

mod names;
mod principal;
mod ttl;
mod version;

pub use names::{AliasName, Environment, InvalidName, OwnerTeam, SecretPath, Tenant};
pub use principal::Principal;
pub use ttl::Ttl;
pub use version::{RotationStrategy, VersionNumber, VersionStatus};
