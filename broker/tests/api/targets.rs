//! Target databases for dynamic-credential tests: the machine's PostgreSQL and MariaDB, each
//! test isolated by a random prefix (its own admin login, group role and table), removed by
//! `cleanup`.

use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "Target-admin-pw-9";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Mariadb,
}

pub struct Target {
    pub kind: Kind,
    pub prefix: String,
}

fn mariadb(user: &str, password: Option<&str>) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some(user))
        .pass(password)
        .into()
}

async fn postgres(user: &str, password: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(5432)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

impl Target {
    pub async fn create(kind: Kind) -> Self {
        let prefix = format!("lht{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let target = Self { kind, prefix };
        let p = &target.prefix;
        match kind {
            Kind::Postgres => {
                target
                    .admin_sql(&format!(
                        "CREATE ROLE {p}_admin WITH LOGIN CREATEROLE PASSWORD '{ADMIN_PASSWORD}';
                         CREATE ROLE {p}_readers NOLOGIN;
                         GRANT {p}_readers TO {p}_admin WITH ADMIN OPTION;
                         CREATE TABLE {p}_granted (id int);
                         GRANT SELECT ON {p}_granted TO {p}_readers;"
                    ))
                    .await;
            }
            Kind::Mariadb => {
                target
                    .admin_sql(&format!(
                        "CREATE DATABASE {p};
                         CREATE TABLE {p}.granted (id int);
                         CREATE USER '{p}_admin'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';
                         GRANT ALL PRIVILEGES ON *.* TO '{p}_admin'@'%' WITH GRANT OPTION;"
                    ))
                    .await;
                let mut conn =
                    mysql_async::Conn::new(mariadb(&format!("{p}_admin"), Some(ADMIN_PASSWORD)))
                        .await
                        .expect("admin login");
                conn.query_drop(format!(
                    "CREATE ROLE {p}_readers; GRANT SELECT ON {p}.granted TO {p}_readers"
                ))
                .await
                .expect("group role");
                let _ = conn.disconnect().await;
            }
        }
        target
    }

    /// Runs statements as the server's superuser.
    pub async fn admin_sql(&self, sql: &str) {
        match self.kind {
            Kind::Postgres => {
                let client = postgres("postgres", "").await.expect("superuser");
                client
                    .batch_execute(sql)
                    .await
                    .expect("superuser statement");
            }
            Kind::Mariadb => {
                let mut conn = mysql_async::Conn::new(mariadb("root", None))
                    .await
                    .expect("root");
                conn.query_drop(sql).await.expect("root statement");
                let _ = conn.disconnect().await;
            }
        }
    }

    pub fn admin_user(&self) -> String {
        format!("{}_admin", self.prefix)
    }

    pub fn group(&self) -> String {
        format!("{}_readers", self.prefix)
    }

    /// `PUT /v1/backends/{name}` body with `password` as the admin password.
    pub fn backend_body(&self, password: &str) -> Value {
        match self.kind {
            Kind::Postgres => json!({
                "plugin": "postgresql",
                "connection": {"host": "127.0.0.1", "port": 5432, "database": "postgres",
                    "username": self.admin_user(), "password": password, "sslMode": "disable"},
                "maxOpenConnections": 4
            }),
            Kind::Mariadb => json!({
                "plugin": "mariadb",
                "connection": {"host": "127.0.0.1", "port": 3306,
                    "username": self.admin_user(), "password": password, "sslMode": "disable"},
                "maxOpenConnections": 4
            }),
        }
    }

    /// A role body whose usernames start with this target's prefix.
    pub fn role_body(&self, backend: &str) -> Value {
        json!({
            "backend": backend,
            "environment": "prod",
            "memberOf": [self.group()],
            "defaultTtl": "15m",
            "maxTtl": "1h",
            "usernameTemplate": format!("{}_{{{{random}}}}", self.prefix),
        })
    }

    pub fn granted_query(&self) -> String {
        match self.kind {
            Kind::Postgres => format!("SELECT id FROM {}_granted", self.prefix),
            Kind::Mariadb => format!("SELECT id FROM {}.granted", self.prefix),
        }
    }

    /// Logs in as `user` and reads the granted table. (PostgreSQL's shared server trusts
    /// loopback logins, so there this proves the user exists and may log in, not the password;
    /// the plugins' conformance suite checks passwords on a scram-only cluster.)
    pub async fn login(&self, user: &str, password: &str) -> Result<(), String> {
        match self.kind {
            Kind::Postgres => {
                let client = postgres(user, password).await?;
                client
                    .batch_execute(&self.granted_query())
                    .await
                    .map_err(|e| e.to_string())
            }
            Kind::Mariadb => {
                let mut conn = mysql_async::Conn::new(mariadb(user, Some(password)))
                    .await
                    .map_err(|e| e.to_string())?;
                let result = conn
                    .query_drop(self.granted_query())
                    .await
                    .map_err(|e| e.to_string());
                let _ = conn.disconnect().await;
                result
            }
        }
    }

    pub async fn user_exists(&self, user: &str) -> bool {
        match self.kind {
            Kind::Postgres => {
                let client = postgres("postgres", "").await.expect("superuser");
                let row = client
                    .query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&user])
                    .await
                    .expect("query");
                row.get::<_, i64>(0) > 0
            }
            Kind::Mariadb => {
                let mut conn = mysql_async::Conn::new(mariadb("root", None))
                    .await
                    .expect("root");
                let count: Option<i64> = conn
                    .exec_first("SELECT COUNT(*) FROM mysql.user WHERE user = ?", (user,))
                    .await
                    .expect("query");
                let _ = conn.disconnect().await;
                count.unwrap_or(0) > 0
            }
        }
    }

    /// MariaDB only: locks the admin account and ends its sessions, so every new login of the
    /// broker fails (the target is "down" for it).
    pub async fn take_down(&self) {
        self.admin_sql(&format!(
            "ALTER USER '{}'@'%' ACCOUNT LOCK",
            self.admin_user()
        ))
        .await;
        self.kill_sessions_of(&self.admin_user()).await;
    }

    /// MariaDB only: undoes [`Self::take_down`].
    pub async fn bring_back(&self) {
        self.admin_sql(&format!(
            "ALTER USER '{}'@'%' ACCOUNT UNLOCK",
            self.admin_user()
        ))
        .await;
    }

    /// MariaDB only: ends every session of `user`.
    pub async fn kill_sessions_of(&self, user: &str) {
        let mut conn = mysql_async::Conn::new(mariadb("root", None))
            .await
            .expect("root");
        let ids: Vec<u64> = conn
            .exec(
                "SELECT id FROM information_schema.processlist WHERE user = ?",
                (user,),
            )
            .await
            .expect("processlist");
        for id in ids {
            let _ = conn.query_drop(format!("KILL {id}")).await;
        }
        let _ = conn.disconnect().await;
    }

    /// PostgreSQL only: the password verifier PostgreSQL keeps for the user.
    pub async fn stored_verifier(&self, user: &str) -> String {
        let client = postgres("postgres", "").await.expect("superuser");
        client
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&user],
            )
            .await
            .expect("query")
            .get(0)
    }

    /// PostgreSQL only: the user's `VALID UNTIL` as a Unix time.
    pub async fn valid_until(&self, user: &str) -> i64 {
        let client = postgres("postgres", "").await.expect("superuser");
        client
            .query_one(
                "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = $1",
                &[&user],
            )
            .await
            .expect("query")
            .get(0)
    }

    /// Drops every user, role, table and database this target created.
    pub async fn cleanup(&self) {
        let p = &self.prefix;
        match self.kind {
            Kind::Postgres => {
                let client = postgres("postgres", "").await.expect("superuser");
                let rows = client
                    .query(
                        "SELECT rolname FROM pg_roles WHERE rolname LIKE $1 || '%'",
                        &[&self.prefix],
                    )
                    .await
                    .expect("roles");
                let _ = client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {p}_granted"))
                    .await;
                for row in rows {
                    let role: String = row.get(0);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
                        ))
                        .await;
                }
            }
            Kind::Mariadb => {
                let mut conn = mysql_async::Conn::new(mariadb("root", None))
                    .await
                    .expect("root");
                let users: Vec<(String, String, String)> = conn
                    .exec(
                        "SELECT user, host, is_role FROM mysql.user WHERE user LIKE CONCAT(?, '%')",
                        (self.prefix.clone(),),
                    )
                    .await
                    .expect("users");
                for (user, host, is_role) in users {
                    let statement = if is_role == "Y" {
                        format!("DROP ROLE IF EXISTS '{user}'")
                    } else {
                        format!("DROP USER IF EXISTS '{user}'@'{host}'")
                    };
                    let _ = conn.query_drop(statement).await;
                }
                let _ = conn
                    .query_drop(format!("DROP DATABASE IF EXISTS {p}"))
                    .await;
                let _ = conn.disconnect().await;
            }
        }
    }
}
