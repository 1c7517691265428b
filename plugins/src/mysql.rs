//! The MySQL and MariaDB plugin (mysql_async over rustls).
//!
//! MariaDB receives a `mysql_native_password` hash (`IDENTIFIED BY PASSWORD '*…'`), so the
//! plaintext never reaches its general or binary log. A role's statements are sent as one
//! multi-statement query; revocations of a batch likewise, split across the pool's connections.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use secrecy::{ExposeSecret, SecretString};

use crate::error::scrub;
use crate::hashing::mysql_native_hash;
use crate::pool::{Connect, Pool};
use crate::script;
use crate::template::{Dialect, Purpose, Values, quote_literal};
use crate::{
    Connection, CreateUser, CredentialBackend, PluginError, PluginKind, PreparedUser, RenewUser,
    RevokeUser, SslMode,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// ER_CANNOT_USER: e.g. `DROP USER` of a user that does not exist (without `IF EXISTS`).
const CANNOT_USER: u16 = 1396;

pub struct MysqlBackend {
    kind: PluginKind,
    pool: Pool<MysqlConnector>,
}

/// Opens mysql_async connections (its own pool is not used: ours bounds connections exactly).
struct MysqlConnector {
    options: Mutex<OptsBuilder>,
}

impl Connect for MysqlConnector {
    type Conn = Conn;

    async fn connect(&self) -> Result<Conn, PluginError> {
        let options = self
            .options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(options))
            .await
            .map_err(|_| PluginError::unavailable("no connection to the target within 5s"))?
            .map_err(|e| classify(&e, &[]))
    }

    /// Connections that saw an error are discarded, so an idle one is usable.
    fn is_usable(_: &Conn) -> bool {
        true
    }
}

impl MysqlConnector {
    fn new(connection: &Connection) -> Self {
        let mut options = OptsBuilder::default()
            .ip_or_hostname(connection.host.clone())
            .tcp_port(connection.port)
            .user(Some(connection.username.clone()))
            .pass(Some(connection.password.expose_secret().to_owned()))
            .db_name(connection.database.clone())
            // Otherwise mysql_async re-connects over the Unix socket after a TCP login to
            // 127.0.0.1: a second connection per checkout (breaking the pool's bound, seen in the
            // conformance suite) and a login as a different host than the one configured.
            .prefer_socket(false);
        if connection.ssl_mode == SslMode::VerifyFull {
            let mut ssl = SslOpts::default();
            if let Some(pem) = &connection.root_certificate {
                ssl = ssl.with_root_certs(vec![pem.as_bytes().to_vec().into()]);
            }
            options = options.ssl_opts(Some(ssl));
        }
        Self {
            options: Mutex::new(options),
        }
    }

    fn set_password(&self, password: &SecretString) {
        let mut options = self.options.lock().unwrap_or_else(PoisonError::into_inner);
        *options = options
            .clone()
            .pass(Some(password.expose_secret().to_owned()));
    }
}

impl MysqlBackend {
    /// # Errors
    /// `InvalidInput` when `maxOpenConnections` is zero.
    pub fn new(kind: PluginKind, connection: Connection) -> Result<Self, PluginError> {
        if connection.max_open_connections == 0 {
            return Err(PluginError::invalid(
                "maxOpenConnections must be at least 1",
            ));
        }
        Ok(Self {
            kind,
            pool: Pool::new(
                MysqlConnector::new(&connection),
                connection.max_open_connections,
            ),
        })
    }

    async fn execute(&self, script: &str, secrets: &[&str]) -> Result<(), PluginError> {
        let mut conn = self.pool.get().await?;
        match conn.query_drop(script).await {
            Ok(()) => Ok(()),
            Err(e) => {
                conn.discard();
                Err(classify(&e, secrets))
            }
        }
    }

    async fn execute_unless_gone(&self, script: &str) -> Result<(), PluginError> {
        match self.execute(script, &[]).await {
            Err(e) if e.message.starts_with(&format!("[{CANNOT_USER}]")) => Ok(()),
            other => other,
        }
    }

    /// `IDENTIFIED BY …` for `password` in this flavour's pre-hashed form where there is one.
    fn identified_by(&self, password: &SecretString) -> Result<SecretString, PluginError> {
        Ok(SecretString::from(match self.kind {
            PluginKind::Mariadb => format!(
                "IDENTIFIED BY PASSWORD {}",
                quote_literal(Dialect::Mysql, &mysql_native_hash(password.expose_secret()))?
            ),
            _ => format!(
                "IDENTIFIED BY {}",
                quote_literal(Dialect::Mysql, password.expose_secret())?
            ),
        }))
    }
}

impl script::RevokeTarget for MysqlBackend {
    async fn run(&self, script: &str) -> Result<(), PluginError> {
        self.execute(script, &[]).await
    }

    async fn run_unless_gone(&self, script: &str) -> Result<(), PluginError> {
        self.execute_unless_gone(script).await
    }
}

#[async_trait]
impl CredentialBackend for MysqlBackend {
    fn kind(&self) -> PluginKind {
        self.kind
    }

    async fn verify(&self) -> Result<(), PluginError> {
        self.execute("SELECT 1", &[]).await
    }

    async fn check_login(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<(), PluginError> {
        let options = self
            .pool
            .connector()
            .options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .user(Some(username))
            .pass(Some(password.expose_secret()));
        let secrets = [password.expose_secret()];
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(options))
            .await
            .map_err(|_| PluginError::unavailable("no connection to the target within 5s"))?
            .map_err(|e| classify(&e, &secrets))?;
        let checked = conn
            .query_drop("SELECT 1")
            .await
            .map_err(|e| classify(&e, &secrets));
        let _ = conn.disconnect().await;
        checked
    }

    async fn prepare<'a>(
        &'a self,
        user: &CreateUser,
    ) -> Result<Box<dyn PreparedUser + 'a>, PluginError> {
        let hash = SecretString::from(mysql_native_hash(user.password.expose_secret()));
        let script = SecretString::from(script::render(
            Dialect::Mysql,
            Purpose::Creation,
            &user.statements,
            &Values {
                name: &user.username,
                password: Some(user.password.expose_secret()),
                password_hash: Some(hash.expose_secret()),
                expiration: Some(user.expires_at),
            },
        )?);
        Ok(Box::new(RenderedCreation {
            backend: self,
            script,
            password: user.password.clone(),
            hash,
        }))
    }

    async fn renew(&self, user: &RenewUser) -> Result<(), PluginError> {
        match script::renewal(Dialect::Mysql, user)? {
            Some(script) => self.execute(&script, &[]).await,
            None => Ok(()),
        }
    }

    async fn revoke(&self, users: &[RevokeUser]) -> Vec<Result<(), PluginError>> {
        script::revoke_batch(Dialect::Mysql, users, self).await
    }

    async fn set_password(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<(), PluginError> {
        let statement = SecretString::from(format!(
            "ALTER USER {}@'%' {}",
            quote_literal(Dialect::Mysql, username)?,
            self.identified_by(password)?.expose_secret()
        ));
        let hash = mysql_native_hash(password.expose_secret());
        self.execute(
            statement.expose_secret(),
            &[password.expose_secret(), &hash],
        )
        .await
    }

    async fn rotate_admin_password(&self, new_password: &SecretString) -> Result<(), PluginError> {
        // MariaDB ignores `ALTER USER CURRENT_USER() IDENTIFIED BY PASSWORD`; `SET PASSWORD`
        // without `FOR` changes the session user's own password.
        let hash = mysql_native_hash(new_password.expose_secret());
        let statement = SecretString::from(match self.kind {
            PluginKind::Mariadb => {
                format!("SET PASSWORD = {}", quote_literal(Dialect::Mysql, &hash)?)
            }
            _ => format!(
                "ALTER USER USER() IDENTIFIED BY {}",
                quote_literal(Dialect::Mysql, new_password.expose_secret())?
            ),
        });
        self.execute(
            statement.expose_secret(),
            &[new_password.expose_secret(), &hash],
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

/// MySQL commits `CREATE USER` and `GRANT` on their own, so nothing runs before `commit`: the
/// statements are rendered with the password's hash, ready to send.
struct RenderedCreation<'a> {
    backend: &'a MysqlBackend,
    script: SecretString,
    password: SecretString,
    hash: SecretString,
}

#[async_trait]
impl PreparedUser for RenderedCreation<'_> {
    async fn commit(self: Box<Self>) -> Result<(), PluginError> {
        self.backend
            .execute(
                self.script.expose_secret(),
                &[self.password.expose_secret(), self.hash.expose_secret()],
            )
            .await
    }
}

/// Classifies a mysql_async error; server errors start with `[code]` and hold none of `secrets`.
fn classify(error: &mysql_async::Error, secrets: &[&str]) -> PluginError {
    match error {
        mysql_async::Error::Server(server) => {
            let message = format!("[{}] {}", server.code, scrub(&server.message, secrets));
            // Too many connections, access denied, account locked, lock wait timeout, deadlock,
            // server shutdown: the admin login or the server may come back.
            if [1040, 1045, 4151, 1205, 1213, 1053].contains(&server.code) {
                PluginError::unavailable(message)
            } else {
                PluginError::rejected(message)
            }
        }
        other => PluginError::unavailable(scrub(&other.to_string(), secrets)),
    }
}
