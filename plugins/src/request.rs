//! The typed requests a backend receives.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::template::{Dialect, quote_identifier};

/// The database plugins. MySQL and MariaDB share an implementation but differ in username limit,
/// role syntax and in whether they accept a pre-hashed password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Postgresql,
    Mysql,
    Mariadb,
}

impl PluginKind {
    pub const ALL: [Self; 3] = [Self::Postgresql, Self::Mysql, Self::Mariadb];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Mariadb => "mariadb",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Self::Postgresql => Dialect::Postgres,
            Self::Mysql | Self::Mariadb => Dialect::Mysql,
        }
    }

    /// The longest username the target accepts.
    pub fn max_username_len(self) -> usize {
        match self {
            Self::Postgresql => 63,
            Self::Mysql => 32,
            Self::Mariadb => 80,
        }
    }

    /// The statements a role runs when it names none: a login user that is a member of the group
    /// roles in `member_of` (which hold the privileges), and a revocation that removes it and
    /// whatever it owns.
    ///
    /// PostgreSQL receives a SCRAM-SHA-256 verifier for `{{password}}` and MariaDB a
    /// `mysql_native_password` hash, so the plaintext never reaches the target's logs. MySQL 8
    /// cannot take a pre-hashed `caching_sha2_password` from a client in a portable way, so its
    /// default sends the password itself (`{{password}}`).
    pub fn default_statements(self, member_of: &[String]) -> Statements {
        let dialect = self.dialect();
        let groups: Vec<String> = member_of
            .iter()
            .map(|g| quote_identifier(dialect, g))
            .collect();
        match self {
            Self::Postgresql => {
                let mut creation = vec![
                    "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}"
                        .to_owned(),
                ];
                creation.extend(groups.iter().map(|g| format!("GRANT {g} TO {{{{name}}}}")));
                Statements {
                    creation,
                    renewal: vec!["ALTER ROLE {{name}} VALID UNTIL {{expiration}}".to_owned()],
                    // Membership first: a non-superuser admin may only reassign objects of
                    // roles it is a member of.
                    revocation: vec![
                        "GRANT {{name}} TO CURRENT_USER".to_owned(),
                        "REASSIGN OWNED BY {{name}} TO CURRENT_USER".to_owned(),
                        "DROP OWNED BY {{name}}".to_owned(),
                        "DROP ROLE IF EXISTS {{name}}".to_owned(),
                    ],
                }
            }
            Self::Mysql | Self::Mariadb => {
                let create = if self == Self::Mariadb {
                    "CREATE USER {{name}}@'%' IDENTIFIED BY PASSWORD {{password_hash}}"
                } else {
                    "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}"
                };
                let default_role = if self == Self::Mariadb {
                    "SET DEFAULT ROLE {group} FOR {{name}}@'%'"
                } else {
                    "SET DEFAULT ROLE {group} TO {{name}}@'%'"
                };
                let mut creation = vec![create.to_owned()];
                for group in &groups {
                    creation.push(format!("GRANT {group} TO {{{{name}}}}@'%'"));
                }
                // MariaDB and MySQL activate one default role per user.
                if let Some(group) = groups.first() {
                    creation.push(default_role.replace("{group}", group));
                }
                Statements {
                    creation,
                    renewal: Vec::new(),
                    revocation: vec!["DROP USER IF EXISTS {{name}}@'%'".to_owned()],
                }
            }
        }
    }
}

/// How to reach the target with the admin login. No `Debug`: it holds the admin password.
#[derive(Clone)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    /// PostgreSQL: the database to connect to (and where `REASSIGN OWNED` acts); MySQL: optional.
    pub database: Option<String>,
    pub username: String,
    pub password: SecretString,
    pub ssl_mode: SslMode,
    /// PEM certificates to trust instead of the public web roots (`verify-full` only).
    pub root_certificate: Option<String>,
    /// The most connections this backend ever holds open to the target.
    pub max_open_connections: u32,
    /// PostgreSQL: the PBKDF2 rounds of the SCRAM-SHA-256 verifiers sent for passwords
    /// ([`crate::hashing::SCRAM_ITERATIONS`] unless the backend asks for another count).
    pub scram_iterations: u32,
    /// Reported to the target (PostgreSQL `application_name`), so its connections can be found.
    pub application_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS with the server certificate checked against the roots and the host name.
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "disable" => Some(Self::Disable),
            "verify-full" => Some(Self::VerifyFull),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Statement templates of a role (see [`crate::template`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Statements {
    pub creation: Vec<String>,
    pub renewal: Vec<String>,
    pub revocation: Vec<String>,
}

/// A user to create. No `Debug`: it holds the password.
pub struct CreateUser {
    pub username: String,
    pub password: SecretString,
    pub expires_at: DateTime<Utc>,
    pub statements: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RenewUser {
    pub username: String,
    pub expires_at: DateTime<Utc>,
    pub statements: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RevokeUser {
    pub username: String,
    pub statements: Vec<String>,
}
