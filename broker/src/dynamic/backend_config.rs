//! The configuration of a backend: what `PUT /v1/backends/{name}` accepts and what is stored.
//! The admin password travels separately, sealed; it is never part of the stored or returned
//! configuration.

use leasehold_plugins::hashing::{MAX_SCRAM_ITERATIONS, SCRAM_ITERATIONS};
use leasehold_plugins::{Connection, PluginKind, SslMode};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DynamicError;

pub const DEFAULT_MAX_OPEN_CONNECTIONS: u32 = 4;
pub const MAX_OPEN_CONNECTIONS_LIMIT: u32 = 100;

/// The body of `PUT /v1/backends/{name}`. No `Debug`: it holds the admin password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutBackend {
    /// `postgresql`, `mysql` or `mariadb`.
    pub plugin: String,
    pub connection: PutConnection,
    /// At most this many connections to the target, ever (default 4, at most 100).
    pub max_open_connections: Option<u32>,
}

/// No `Debug`: it holds the admin password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutConnection {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub username: String,
    /// Required when the backend is created; omit it on a later `PUT` to keep the current one
    /// (after `rotate-root` nobody knows it).
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    /// `disable` or `verify-full` (the default).
    pub ssl_mode: Option<String>,
    /// PEM certificates to trust for `verify-full` instead of the public web roots.
    pub root_certificate: Option<String>,
    /// PostgreSQL only: PBKDF2 rounds of the SCRAM-SHA-256 verifiers the broker sends for
    /// passwords (default 4096, PostgreSQL's own `scram_iterations` default; 1 to 1,000,000).
    pub scram_iterations: Option<u32>,
}

/// The connection as stored and returned: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionConfig {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub username: String,
    pub ssl_mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_certificate: Option<String>,
    /// Absent: the default count ([`SCRAM_ITERATIONS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram_iterations: Option<u32>,
}

/// A validated backend configuration.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub plugin: PluginKind,
    pub connection: ConnectionConfig,
    pub max_open_connections: u32,
}

fn invalid(field: &'static str, message: impl Into<String>) -> DynamicError {
    DynamicError::Invalid {
        field,
        message: message.into(),
    }
}

impl PutBackend {
    /// Splits the body into a validated configuration and the password, if one was given.
    ///
    /// # Errors
    /// `Invalid` naming the field at fault.
    pub fn validate(self) -> Result<(BackendConfig, Option<SecretString>), DynamicError> {
        let plugin = PluginKind::parse(&self.plugin)
            .ok_or_else(|| invalid("plugin", "plugin must be one of postgresql, mysql, mariadb"))?;
        let c = self.connection;
        let host_ok = !c.host.is_empty()
            && c.host.len() <= 253
            && c.host
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ".-:[]".contains(ch));
        if !host_ok {
            return Err(invalid(
                "connection.host",
                "connection.host must be a host name or an IP address",
            ));
        }
        if c.port == 0 {
            return Err(invalid(
                "connection.port",
                "connection.port must be 1-65535",
            ));
        }
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 80 && !s.contains('\0');
        if !name_ok(&c.username) {
            return Err(invalid(
                "connection.username",
                "connection.username must be 1-80 characters",
            ));
        }
        if c.database.as_deref().is_some_and(|d| !name_ok(d)) {
            return Err(invalid(
                "connection.database",
                "connection.database must be 1-80 characters",
            ));
        }
        let ssl_mode = c.ssl_mode.as_deref().unwrap_or("verify-full");
        SslMode::parse(ssl_mode).ok_or_else(|| {
            invalid(
                "connection.sslMode",
                "connection.sslMode must be disable or verify-full",
            )
        })?;
        if c.root_certificate
            .as_deref()
            .is_some_and(|pem| pem.len() > 64 * 1024)
        {
            return Err(invalid(
                "connection.rootCertificate",
                "connection.rootCertificate must be at most 64 KiB of PEM",
            ));
        }
        if let Some(iterations) = c.scram_iterations {
            if plugin != PluginKind::Postgresql {
                return Err(invalid(
                    "connection.scramIterations",
                    "connection.scramIterations applies to the postgresql plugin only; remove it",
                ));
            }
            if !(1..=MAX_SCRAM_ITERATIONS).contains(&iterations) {
                return Err(invalid(
                    "connection.scramIterations",
                    format!(
                        "connection.scramIterations must be between 1 and {MAX_SCRAM_ITERATIONS}"
                    ),
                ));
            }
        }
        let max_open_connections = self
            .max_open_connections
            .unwrap_or(DEFAULT_MAX_OPEN_CONNECTIONS);
        if !(1..=MAX_OPEN_CONNECTIONS_LIMIT).contains(&max_open_connections) {
            return Err(invalid(
                "maxOpenConnections",
                format!("maxOpenConnections must be between 1 and {MAX_OPEN_CONNECTIONS_LIMIT}"),
            ));
        }
        Ok((
            BackendConfig {
                plugin,
                connection: ConnectionConfig {
                    host: c.host,
                    port: c.port,
                    database: c.database,
                    username: c.username,
                    ssl_mode: ssl_mode.to_owned(),
                    root_certificate: c.root_certificate,
                    scram_iterations: c.scram_iterations,
                },
                max_open_connections,
            },
            c.password,
        ))
    }
}

impl BackendConfig {
    /// What the plugin needs to connect, with the admin password.
    pub fn plugin_connection(
        &self,
        password: SecretString,
        application_name: String,
    ) -> Connection {
        Connection {
            host: self.connection.host.clone(),
            port: self.connection.port,
            database: self.connection.database.clone(),
            username: self.connection.username.clone(),
            password,
            ssl_mode: SslMode::parse(&self.connection.ssl_mode).unwrap_or(SslMode::VerifyFull),
            root_certificate: self.connection.root_certificate.clone(),
            max_open_connections: self.max_open_connections,
            scram_iterations: self.connection.scram_iterations.unwrap_or(SCRAM_ITERATIONS),
            application_name,
        }
    }
}
