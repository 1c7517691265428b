//! Who is calling and what they may do.
//!
//! `token` mints and hashes bearer tokens; `caller` resolves the `Authorization` header into a
//! [`Caller`]; `access` decides whether a caller may perform an [`Action`] on a [`Resource`].
//! Handlers only ever ask `access`, so the policy engine replaces its one decision function
//! without any handler changing.

mod access;
mod caller;
mod token;

pub use access::{Access, Action, Resource};
pub use caller::Caller;
pub use token::{IssuedToken, TokenService, hash_token};
