//! Credential backends: the systems Leasehold creates short-lived users in.
//!
//! Every backend implements [`CredentialBackend`], an object-safe async trait the broker and the
//! scheduler drive without knowing which database is behind it. This crate never imports the
//! broker: it receives typed requests (a username, a password, an expiry, statement templates)
//! and answers with typed errors that say whether a retry can help.
//!
//! - [`template`] renders statement templates, quoting every substitution for its dialect;
//! - [`list_form`] revokes a batch of users with one statement per template where SQL allows;
//! - [`username`] derives usernames from a template, cut to the target's limit;
//! - [`password`] generates passwords; [`hashing`] turns them into the verifiers sent instead;
//! - [`postgres`] and [`mysql`] are the two database plugins, each with a bounded pool.

mod error;
pub mod hashing;
pub mod list_form;
pub mod mysql;
pub mod password;
mod pool;
pub mod postgres;
mod request;
mod script;
pub mod template;
pub mod username;

use async_trait::async_trait;

pub use error::{ErrorKind, PluginError};
pub use request::{Connection, CreateUser, PluginKind, RenewUser, RevokeUser, SslMode, Statements};

/// A configured backend: one target system reached with one admin login.
///
/// Implementations bound the connections they open to the target (`maxOpenConnections`) and
/// never log or return a password, a verifier or a statement that contains one.
#[async_trait]
pub trait CredentialBackend: Send + Sync {
    /// Which plugin this is; decides the username limit and the default statements.
    fn kind(&self) -> PluginKind;

    /// Logs in with the admin credential and runs a trivial query.
    async fn verify(&self) -> Result<(), PluginError>;

    /// Prepares the user a lease hands out: does every part of the creation that leaves
    /// nothing on the target if the process dies here — hashing the password and, where the
    /// target's DDL is transactional (PostgreSQL), running the creation statements inside a
    /// transaction not yet committed. [`PreparedUser::commit`] makes the user exist; dropping
    /// the prepared user instead leaves nothing behind. The broker records its lease intent
    /// while this runs and commits only once the intent is durable.
    async fn prepare<'a>(
        &'a self,
        user: &CreateUser,
    ) -> Result<Box<dyn PreparedUser + 'a>, PluginError>;

    /// Pushes a new expiry to the target (PostgreSQL `VALID UNTIL`); a no-op where the role
    /// has no renewal statements.
    async fn renew(&self, user: &RenewUser) -> Result<(), PluginError>;

    /// Revokes a batch of users, several per round trip; one result per user, in order. A user
    /// that no longer exists counts as revoked.
    async fn revoke(&self, users: &[RevokeUser]) -> Vec<Result<(), PluginError>>;

    /// Sets a new password on an existing user (static roles, admin rotation).
    async fn set_password(
        &self,
        username: &str,
        password: &secrecy::SecretString,
    ) -> Result<(), PluginError>;

    /// Logs in as `username` with `password` on a connection of its own and runs a trivial
    /// query: how a rotation proves the credential it set works before promoting it.
    async fn check_login(
        &self,
        username: &str,
        password: &secrecy::SecretString,
    ) -> Result<(), PluginError>;

    /// Changes the admin login's own password; afterwards this backend connects with the new one.
    async fn rotate_admin_password(
        &self,
        new_password: &secrecy::SecretString,
    ) -> Result<(), PluginError>;

    /// Closes idle connections; used when a backend is reconfigured or deleted.
    async fn close(&self);
}

/// A user whose creation has run up to the step that makes it exist; see
/// [`CredentialBackend::prepare`].
#[async_trait]
pub trait PreparedUser: Send {
    /// Makes the user exist on the target (PostgreSQL: commits its transaction; MySQL: runs
    /// the creation statements, which MySQL commits one by one).
    async fn commit(self: Box<Self>) -> Result<(), PluginError>;
}

/// Opens the plugin `kind` for `connection`. Connections are made lazily, so this succeeds even
/// while the target is down; `verify` checks it.
///
/// # Errors
/// `InvalidInput` when the connection settings cannot be used (e.g. an unreadable CA certificate).
pub fn open(
    kind: PluginKind,
    connection: Connection,
) -> Result<Box<dyn CredentialBackend>, PluginError> {
    Ok(match kind {
        PluginKind::Postgresql => Box::new(postgres::PostgresBackend::new(connection)?),
        PluginKind::Mysql | PluginKind::Mariadb => {
            Box::new(mysql::MysqlBackend::new(kind, connection)?)
        }
    })
}
