//! A small connection pool for tokio-postgres, bounded by a semaphore: at most
//! `max_open_connections` connections exist at once, idle ones are reused, closed ones dropped.

use std::ops::Deref;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Connection, PluginError, SslMode};

/// How long a caller waits for one of the pool's connections before the target counts as busy.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgPool {
    config: Mutex<tokio_postgres::Config>,
    tls: Option<MakeRustlsConnect>,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    max: u32,
}

/// A connection on loan; it goes back to the pool when dropped, unless it was closed.
pub(crate) struct PooledClient<'a> {
    client: Option<Client>,
    pool: &'a PgPool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for PooledClient<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Present from construction until `drop`.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.pool.idle_list().push(client);
        }
    }
}

impl PgPool {
    pub(crate) fn new(connection: &Connection) -> Result<Self, PluginError> {
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
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(connection.max_open_connections as usize),
            max: connection.max_open_connections,
        })
    }

    /// A connection, waiting for a free slot when all are in use.
    pub(crate) async fn get(&self) -> Result<PooledClient<'_>, PluginError> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| {
                PluginError::unavailable(format!(
                    "all {} connections to the target stayed busy for {}s",
                    self.max,
                    ACQUIRE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|_| PluginError::unavailable("the backend is closed"))?;
        let reused = {
            let mut idle = self.idle_list();
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect().await?,
        };
        Ok(PooledClient {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client, PluginError> {
        let config = self
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
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
        connected.map_err(|e| crate::postgres::classify(&e, &[]))
    }

    /// Uses `password` for every new connection and drops the idle ones.
    pub(crate) fn set_password(&self, password: &SecretString) {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .password(password.expose_secret());
        self.idle_list().clear();
    }

    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle_list().clear();
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A rustls client configuration trusting `root_pem` when given, the public web roots otherwise.
pub(crate) fn client_tls(root_pem: Option<&str>) -> Result<rustls::ClientConfig, PluginError> {
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
