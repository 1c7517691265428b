//! The PostgreSQL plugin (tokio-postgres over rustls).
//!
//! Passwords reach PostgreSQL only as SCRAM-SHA-256 verifiers computed here, so `log_statement`
//! never writes a usable password into the server log. PostgreSQL does not hash them again, but
//! it checks every new verifier against the empty password, which costs it the verifier's
//! PBKDF2 rounds (the backend's `scram_iterations`): at the default 4,096 that check is most of
//! a `CREATE ROLE`'s cost on the server.
//! Creation statements run in one explicit transaction, left open until the broker has recorded
//! the lease (one round trip for the statements, one for the `COMMIT`); a batch of
//! revocations runs in as few round trips as it can, split across the pool's connections.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::scrub;
use crate::hashing::scram_sha256_verifier;
use crate::pool::{Connect, Pool, Pooled};
use crate::script;
use crate::template::{Dialect, Purpose, Values, quote_identifier, quote_literal};
use crate::{
    Connection, CreateUser, CredentialBackend, PluginError, PluginKind, PreparedUser, RenewUser,
    RevokeUser, SslMode,
};

/// SQLSTATE `undefined_object`: the role is already gone.
const UNDEFINED_OBJECT: &str = "42704";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresBackend {
    pool: Pool<PgConnector>,
    scram_iterations: u32,
}

/// Opens tokio-postgres connections; the password changes when the admin password rotates.
struct PgConnector {
    config: Mutex<tokio_postgres::Config>,
    tls: Option<MakeRustlsConnect>,
}

impl Connect for PgConnector {
    type Conn = Client;

    async fn connect(&self) -> Result<Client, PluginError> {
        let config = self
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.open(config).await
    }

    fn is_usable(client: &Client) -> bool {
        !client.is_closed()
    }
}

impl PgConnector {
    async fn open(&self, config: tokio_postgres::Config) -> Result<Client, PluginError> {
        let connected = match &self.tls {
            None => config.connect(NoTls).await.map(|(client, connection)| {
                tokio::spawn(connection);
                client
            }),
            Some(tls) => config
                .connect(tls.clone())
                .await
                .map(|(client, connection)| {
                    tokio::spawn(connection);
                    client
                }),
        };
        connected.map_err(|e| classify(&e, &[]))
    }

    fn new(connection: &Connection) -> Result<Self, PluginError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&connection.host)
            .port(connection.port)
            .user(&connection.username)
            .password(connection.password.expose_secret())
            .dbname(connection.database.as_deref().unwrap_or("postgres"))
            .application_name(&connection.application_name)
            .connect_timeout(CONNECT_TIMEOUT)
            // A statement stuck behind a lock must not hold one of the few connections forever.
            .options("-c statement_timeout=30000");
        let tls = match connection.ssl_mode {
            SslMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            SslMode::VerifyFull => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(MakeRustlsConnect::new(client_tls(
                    connection.root_certificate.as_deref(),
                )?))
            }
        };
        Ok(Self {
            config: Mutex::new(config),
            tls,
        })
    }

    fn set_password(&self, password: &SecretString) {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .password(password.expose_secret());
    }
}

/// A rustls client configuration trusting `root_pem` when given, the public web roots otherwise.
fn client_tls(root_pem: Option<&str>) -> Result<rustls::ClientConfig, PluginError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert =
                    cert.map_err(|_| PluginError::invalid("rootCertificate is not valid PEM"))?;
                roots.add(cert).map_err(|_| {
                    PluginError::invalid("rootCertificate holds a certificate rustls cannot use")
                })?;
            }
            if roots.is_empty() {
                return Err(PluginError::invalid("rootCertificate holds no certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl PostgresBackend {
    /// # Errors
    /// `InvalidInput` when the TLS settings cannot be used.
    pub fn new(connection: Connection) -> Result<Self, PluginError> {
        Ok(Self {
            pool: Pool::new(
                PgConnector::new(&connection)?,
                connection.max_open_connections,
            ),
            scram_iterations: connection.scram_iterations,
        })
    }

    async fn execute(&self, script: &str, secrets: &[&str]) -> Result<(), PluginError> {
        let client = self.pool.get().await?;
        match client.batch_execute(script).await {
            Ok(()) => Ok(()),
            Err(e) => {
                client.discard();
                Err(classify(&e, secrets))
            }
        }
    }

    /// Runs a revocation; a role that no longer exists counts as revoked.
    async fn execute_unless_gone(&self, script: &str) -> Result<(), PluginError> {
        let client = self.pool.get().await?;
        match client.batch_execute(script).await {
            Err(e)
                if e.as_db_error()
                    .is_some_and(|d| d.code().code() == UNDEFINED_OBJECT) =>
            {
                Ok(())
            }
            other => other.map_err(|e| classify(&e, &[])),
        }
    }
}

impl script::RevokeTarget for PostgresBackend {
    async fn run(&self, script: &str) -> Result<(), PluginError> {
        self.execute(script, &[]).await
    }

    async fn run_unless_gone(&self, script: &str) -> Result<(), PluginError> {
        self.execute_unless_gone(script).await
    }
}

#[async_trait]
impl CredentialBackend for PostgresBackend {
    fn kind(&self) -> PluginKind {
        PluginKind::Postgresql
    }

    async fn verify(&self) -> Result<(), PluginError> {
        self.execute("SELECT 1", &[]).await
    }

    async fn check_login(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<(), PluginError> {
        let connector = self.pool.connector();
        let mut config = connector
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        config.user(username).password(password.expose_secret());
        let client = connector.open(config).await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, &[password.expose_secret()]))
    }

    async fn prepare<'a>(
        &'a self,
        user: &CreateUser,
    ) -> Result<Box<dyn PreparedUser + 'a>, PluginError> {
        let verifier = compute_verifier(&user.password, self.scram_iterations).await?;
        let script = script::render(
            Dialect::Postgres,
            Purpose::Creation,
            &user.statements,
            &Values {
                name: &user.username,
                password: Some(verifier.expose_secret()),
                password_hash: None,
                expiration: Some(user.expires_at),
            },
        )?;
        let script = SecretString::from(format!("BEGIN;\n{script}"));
        let client = self.pool.get().await?;
        match client.batch_execute(script.expose_secret()).await {
            Ok(()) => Ok(Box::new(OpenCreation {
                client: Some(client),
            })),
            Err(e) => {
                client.discard();
                Err(classify(
                    &e,
                    &[user.password.expose_secret(), verifier.expose_secret()],
                ))
            }
        }
    }

    async fn renew(&self, user: &RenewUser) -> Result<(), PluginError> {
        match script::renewal(Dialect::Postgres, user)? {
            Some(script) => self.execute(&script, &[]).await,
            None => Ok(()),
        }
    }

    async fn revoke(&self, users: &[RevokeUser]) -> Vec<Result<(), PluginError>> {
        script::revoke_batch(Dialect::Postgres, users, self).await
    }

    async fn set_password(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<(), PluginError> {
        if username.contains('\0') {
            return Err(PluginError::invalid("a username contains a NUL byte"));
        }
        let verifier = compute_verifier(password, self.scram_iterations).await?;
        let statement = SecretString::from(format!(
            "ALTER ROLE {} WITH PASSWORD {}",
            quote_identifier(Dialect::Postgres, username),
            quote_literal(Dialect::Postgres, verifier.expose_secret())?
        ));
        self.execute(
            statement.expose_secret(),
            &[password.expose_secret(), verifier.expose_secret()],
        )
        .await
    }

    async fn rotate_admin_password(&self, new_password: &SecretString) -> Result<(), PluginError> {
        let verifier = compute_verifier(new_password, self.scram_iterations).await?;
        let statement = SecretString::from(format!(
            "ALTER ROLE CURRENT_USER WITH PASSWORD {}",
            quote_literal(Dialect::Postgres, verifier.expose_secret())?
        ));
        self.execute(
            statement.expose_secret(),
            &[new_password.expose_secret(), verifier.expose_secret()],
        )
        .await?;
        self.pool.connector().set_password(new_password);
        self.pool.clear_idle();
        Ok(())
    }

    async fn close(&self) {
        self.pool.close();
    }
}

/// A user created inside a transaction still open on one of the pool's connections.
struct OpenCreation<'a> {
    client: Option<Pooled<'a, PgConnector>>,
}

#[async_trait]
impl PreparedUser for OpenCreation<'_> {
    async fn commit(mut self: Box<Self>) -> Result<(), PluginError> {
        let Some(client) = self.client.take() else {
            return Err(PluginError::unavailable(
                "the creation was already finished",
            ));
        };
        match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                client.discard();
                Err(classify(&e, &[]))
            }
        }
    }
}

impl Drop for OpenCreation<'_> {
    /// Not committed: closing the connection makes PostgreSQL roll the transaction back, and
    /// the connection never serves another request mid-transaction.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            client.discard();
        }
    }
}

/// The verifier costs thousands of HMAC rounds: computed off the async workers.
async fn compute_verifier(
    password: &SecretString,
    iterations: u32,
) -> Result<SecretString, PluginError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        SecretString::from(scram_sha256_verifier(password.expose_secret(), iterations))
    })
    .await
    .map_err(|_| PluginError::unavailable("password hashing was interrupted"))
}

/// Classifies a tokio-postgres error; the message ends with the SQLSTATE in parentheses and holds
/// none of `secrets`.
pub(crate) fn classify(error: &tokio_postgres::Error, secrets: &[&str]) -> PluginError {
    let Some(db) = error.as_db_error() else {
        // Connection refused, TLS failure, closed connection, timeout.
        return PluginError::unavailable(scrub(&error.to_string(), secrets));
    };
    let code = db.code().code();
    let message = format!("{} ({code})", scrub(db.message(), secrets));
    // 08: connection, 28: login refused, 40: serialization/deadlock, 53: resources, 57: shutdown
    // or statement timeout. Each may pass; everything else will fail the same way again.
    if ["08", "28", "40", "53", "57"]
        .iter()
        .any(|c| code.starts_with(c))
    {
        PluginError::unavailable(message)
    } else {
        PluginError::rejected(message)
    }
}
