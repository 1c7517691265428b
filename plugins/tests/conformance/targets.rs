//! The two targets the conformance suite runs against, each isolated by a random prefix: its own
//! database, admin login, group role and tables, dropped at the end.

use async_trait::async_trait;
use leasehold_plugins::hashing::SCRAM_ITERATIONS;
use leasehold_plugins::{Connection, CredentialBackend, PluginKind, SslMode, open};
use mysql_async::prelude::Queryable;
use secrecy::SecretString;

use crate::scratch_postgres::{SUPERUSER, SUPERUSER_PASSWORD, ScratchPostgres};

pub const ADMIN_PASSWORD: &str = "Conformance-admin-pw-1";

/// What the suite needs from a target besides the plugin under test.
#[async_trait]
pub trait Target: Send + Sync {
    fn kind(&self) -> PluginKind;
    /// Unique to this test run; every name the test creates starts with it.
    fn prefix(&self) -> &str;
    /// The group role holding `SELECT` on `granted_table` (and nothing on `other_table`).
    fn group(&self) -> String {
        format!("{}_readers", self.prefix())
    }
    /// A plugin instance on this target with its own admin login.
    fn backend(&self, max_open_connections: u32) -> Box<dyn CredentialBackend>;
    /// Logs in as `user` and runs `sql`; the error text when either fails.
    async fn run_as(&self, user: &str, password: &str, sql: &str) -> Result<(), String>;
    async fn user_exists(&self, user: &str) -> bool;
    /// Connections the backend's admin login holds open right now.
    async fn admin_connections(&self) -> i64;
    /// A table (qualified as the target needs) the group may read.
    fn granted_table(&self) -> String;
    fn other_table(&self) -> String;
    async fn cleanup(&self);
}

fn random_prefix(tag: &str) -> String {
    format!(
        "lhc{tag}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub struct PostgresTarget {
    pub cluster: ScratchPostgres,
    prefix: String,
}

impl PostgresTarget {
    pub async fn start() -> Self {
        Self::on(ScratchPostgres::start()).await
    }

    pub async fn on(cluster: ScratchPostgres) -> Self {
        let target = Self {
            cluster,
            prefix: random_prefix("pg"),
        };
        let p = &target.prefix;
        target
            .superuser(&format!(
                "CREATE ROLE {p}_admin WITH LOGIN CREATEROLE PASSWORD '{ADMIN_PASSWORD}';
                 CREATE ROLE {p}_readers NOLOGIN;
                 GRANT {p}_readers TO {p}_admin WITH ADMIN OPTION;
                 CREATE TABLE {p}_granted (id int); INSERT INTO {p}_granted VALUES (1);
                 CREATE TABLE {p}_other (id int);
                 GRANT SELECT ON {p}_granted TO {p}_readers;"
            ))
            .await;
        target
    }

    pub async fn superuser(&self, sql: &str) {
        self.run_as(SUPERUSER, SUPERUSER_PASSWORD, sql)
            .await
            .unwrap_or_else(|e| panic!("superuser statement failed: {e}"));
    }

    pub async fn superuser_query_i64(&self, sql: &str) -> i64 {
        let client = self
            .connect(SUPERUSER, SUPERUSER_PASSWORD)
            .await
            .expect("connect");
        client.query_one(sql, &[]).await.expect("query").get(0)
    }

    pub async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, String> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.cluster.port)
            .user(user)
            .password(password)
            .dbname("postgres");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })?;
        tokio::spawn(connection);
        Ok(client)
    }

    pub fn connection(&self, user: &str, password: &str, max: u32) -> Connection {
        Connection {
            host: "127.0.0.1".into(),
            port: self.cluster.port,
            database: Some("postgres".into()),
            username: user.into(),
            password: SecretString::from(password),
            ssl_mode: SslMode::Disable,
            root_certificate: None,
            max_open_connections: max,
            scram_iterations: SCRAM_ITERATIONS,
            application_name: format!("{}_app", self.prefix),
        }
    }

    /// The admin's backend, sending verifiers of `iterations` PBKDF2 rounds.
    pub fn backend_hashing(&self, max: u32, iterations: u32) -> Box<dyn CredentialBackend> {
        let admin = format!("{}_admin", self.prefix);
        let connection = Connection {
            scram_iterations: iterations,
            ..self.connection(&admin, ADMIN_PASSWORD, max)
        };
        open(PluginKind::Postgresql, connection).expect("plugin")
    }
}

#[async_trait]
impl Target for PostgresTarget {
    fn kind(&self) -> PluginKind {
        PluginKind::Postgresql
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn backend(&self, max: u32) -> Box<dyn CredentialBackend> {
        self.backend_hashing(max, SCRAM_ITERATIONS)
    }

    async fn run_as(&self, user: &str, password: &str, sql: &str) -> Result<(), String> {
        let client = self.connect(user, password).await?;
        client.batch_execute(sql).await.map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        })
    }

    async fn user_exists(&self, user: &str) -> bool {
        let client = self
            .connect(SUPERUSER, SUPERUSER_PASSWORD)
            .await
            .expect("connect");
        let row = client
            .query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&user])
            .await
            .expect("query");
        row.get::<_, i64>(0) > 0
    }

    async fn admin_connections(&self) -> i64 {
        let client = self
            .connect(SUPERUSER, SUPERUSER_PASSWORD)
            .await
            .expect("connect");
        let app = format!("{}_app", self.prefix);
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("query")
            .get(0)
    }

    fn granted_table(&self) -> String {
        format!("{}_granted", self.prefix)
    }

    fn other_table(&self) -> String {
        format!("{}_other", self.prefix)
    }

    /// The whole cluster goes away when the target is dropped.
    async fn cleanup(&self) {}
}

/// The machine's shared MariaDB (it checks the passwords of the users it creates).
pub struct MariadbTarget {
    prefix: String,
}

pub fn mariadb_root() -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .into()
}

impl MariadbTarget {
    pub async fn start() -> Self {
        let target = Self {
            prefix: random_prefix("my"),
        };
        let p = &target.prefix;
        target
            .root(&format!(
                "CREATE DATABASE {p};
                 CREATE USER '{p}_adm'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';
                 GRANT ALL PRIVILEGES ON *.* TO '{p}_adm'@'%' WITH GRANT OPTION;
                 CREATE TABLE {p}.granted (id int); INSERT INTO {p}.granted VALUES (1);
                 CREATE TABLE {p}.other (id int);"
            ))
            .await;
        // The admin creates the group role, so it holds the role's ADMIN OPTION.
        target
            .run_as(
                &format!("{p}_adm"),
                ADMIN_PASSWORD,
                &format!("CREATE ROLE {p}_readers; GRANT SELECT ON {p}.granted TO {p}_readers"),
            )
            .await
            .expect("group role");
        target
    }

    pub async fn root(&self, sql: &str) {
        let mut conn = mysql_async::Conn::new(mariadb_root())
            .await
            .expect("connect as root");
        conn.query_drop(sql).await.expect("root statement");
        let _ = conn.disconnect().await;
    }

    pub fn connection(&self, user: &str, password: &str, max: u32) -> Connection {
        Connection {
            host: "127.0.0.1".into(),
            port: 3306,
            database: None,
            username: user.into(),
            password: SecretString::from(password),
            ssl_mode: SslMode::Disable,
            root_certificate: None,
            max_open_connections: max,
            scram_iterations: SCRAM_ITERATIONS,
            application_name: "leasehold-conformance".into(),
        }
    }
}

#[async_trait]
impl Target for MariadbTarget {
    fn kind(&self) -> PluginKind {
        PluginKind::Mariadb
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn backend(&self, max: u32) -> Box<dyn CredentialBackend> {
        let admin = format!("{}_adm", self.prefix);
        open(
            PluginKind::Mariadb,
            self.connection(&admin, ADMIN_PASSWORD, max),
        )
        .expect("plugin")
    }

    async fn run_as(&self, user: &str, password: &str, sql: &str) -> Result<(), String> {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(3306)
            .user(Some(user))
            .pass(Some(password));
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| e.to_string())?;
        let result = conn.query_drop(sql).await.map_err(|e| e.to_string());
        let _ = conn.disconnect().await;
        result
    }

    async fn user_exists(&self, user: &str) -> bool {
        let mut conn = mysql_async::Conn::new(mariadb_root())
            .await
            .expect("connect as root");
        let count: Option<i64> = conn
            .exec_first("SELECT COUNT(*) FROM mysql.user WHERE user = ?", (user,))
            .await
            .expect("query");
        let _ = conn.disconnect().await;
        count.unwrap_or(0) > 0
    }

    async fn admin_connections(&self) -> i64 {
        let mut conn = mysql_async::Conn::new(mariadb_root())
            .await
            .expect("connect as root");
        let count: Option<i64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE user = ?",
                (format!("{}_adm", self.prefix),),
            )
            .await
            .expect("query");
        let _ = conn.disconnect().await;
        count.unwrap_or(0)
    }

    fn granted_table(&self) -> String {
        format!("{}.granted", self.prefix)
    }

    fn other_table(&self) -> String {
        format!("{}.other", self.prefix)
    }

    async fn cleanup(&self) {
        let mut conn = mysql_async::Conn::new(mariadb_root())
            .await
            .expect("connect as root");
        let users: Vec<(String, String, String)> = conn
            .exec(
                "SELECT user, host, is_role FROM mysql.user WHERE user LIKE CONCAT(?, '%')",
                (self.prefix.clone(),),
            )
            .await
            .expect("list users");
        for (user, host, is_role) in users {
            let user = user.replace('\'', "''");
            let statement = if is_role == "Y" {
                format!("DROP ROLE IF EXISTS '{user}'")
            } else {
                format!("DROP USER IF EXISTS '{user}'@'{host}'")
            };
            conn.query_drop(statement).await.expect("drop user");
        }
        conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.prefix))
            .await
            .expect("drop database");
        let _ = conn.disconnect().await;
    }
}
