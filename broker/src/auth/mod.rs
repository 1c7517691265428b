//! Who is calling and what they may do.
//!
//! `token` mints and hashes bearer tokens; `caller` resolves the `Authorization` header into a
//! [`Caller`]; `access` decides whether a caller may perform an [`Action`] on a [`Resource`].
//! Handlers only ever ask `access`, so the policy engine replaces its one decision function
//! without any handler changing.

mod access;
mod break_glass;
mod caller;
mod kubernetes;
mod token;

pub use crate::policy::Action;
pub use access::{Access, AccessDecision, Resource};
pub use break_glass::{BreakGlass, Grant, GrantRequest};
pub use caller::{Caller, RequestFacts, TICKET_HEADER, bearer, refuse_token};
pub use kubernetes::{KubernetesRole, LoginError, Workload};
pub use token::{IssuedToken, MintRequest, TokenService, hash_token, is_live};
