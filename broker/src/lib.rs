//! Leasehold broker.
//!
//! A request flows through these layers:
//!
//! 1. **`api`** — actix-web routes. `middleware` gives each request an id, a log span and
//!    metrics; `json` parses bodies (JSON only, size-bounded, errors that name the field);
//!    `error` is the one place errors become HTTP statuses.
//! 2. **`auth`** — the `Caller` extractor resolves the bearer token (stored only as a hash);
//!    `Access::authorize` decides whether the caller may perform the action on the resource.
//! 3. **`secrets`** — the static-secret operations: versioning, aliases with compare-and-swap,
//!    disable/enable/destroy, reads.
//! 4. **`crypto`** — envelope encryption: a fresh data key per version, AES-256-GCM bound to its
//!    row, the data key wrapped by a `Kms` provider (`local` key ring or `aws-kms`), unwrapped
//!    keys held for a bounded time in the data-key cache.
//! 5. **`store`** — SQLite or PostgreSQL through sqlx; migrations in `migrations/`.
//!
//! `rotation` runs the nine-step overlap rotation of secrets and static database roles, and
//! its scheduler. `rewrap` moves stored data keys to another master key without touching ciphertext.
//! `startup` wires these together and runs the server; `cli` is the `leasehold` binary's
//! command line (server, client commands, benchmarks).

pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod crypto;
pub mod dev;
pub mod domain;
pub mod dynamic;
pub mod failpoint;
pub mod policy;
pub mod private_file;
pub mod revocations;
pub mod rewrap;
pub mod rotation;
pub mod secrets;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
