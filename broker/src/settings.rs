//! Server settings: a TOML file, then `LEASEHOLD_…` environment overrides, then command-line
//! flags. Unknown keys in the file are errors, so a typo never silently falls back to a default.
//!
//! Environment overrides (each replaces one key): `LEASEHOLD_LISTEN`, `LEASEHOLD_DATABASE_URL`,
//! `LEASEHOLD_MAX_CONNECTIONS`, `LEASEHOLD_MAX_VALUE_BYTES`, `LEASEHOLD_TLS_CERT_FILE`,
//! `LEASEHOLD_TLS_KEY_FILE`, `LEASEHOLD_KMS_PROVIDER`, `LEASEHOLD_KMS_KEY_FILE`,
//! `LEASEHOLD_KMS_AWS_KEY_ID`, `LEASEHOLD_KMS_AWS_REGION`, `LEASEHOLD_KMS_AWS_ENDPOINT_URL` (these
//! three only adjust an existing `[kms.aws]` section), `LEASEHOLD_ALERT_WEBHOOK_URL`,
//! `LEASEHOLD_LEASE_INTENT_GRACE_SECONDS`, `LEASEHOLD_REVOCATION_RETRY_BUDGET_SECONDS`,
//! `LEASEHOLD_SCHEDULER_CLAIM_SECONDS`, `LEASEHOLD_REVOCATION_FENCE_SECONDS`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use leasehold_scheduler::SchedulerConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8200));
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name} is invalid: {message}")]
    Env { name: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}

fn unset_database_url() -> SecretString {
    SecretString::from(String::new())
}

fn default_max_connections() -> u32 {
    16
}

fn default_max_value_bytes() -> usize {
    DEFAULT_MAX_VALUE_BYTES
}

/// Everything `leasehold server` needs to run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `postgres://…` in production, `sqlite://PATH` for a single node. May be left out of the
    /// file when `LEASEHOLD_DATABASE_URL` gives it (it holds a password).
    #[serde(default = "unset_database_url")]
    pub database_url: SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Secret values above this many bytes are refused with 413.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
    pub tls: Option<TlsSettings>,
    pub kms: KmsSettings,
    /// Break-glass grants and reads are POSTed here as JSON alerts.
    #[serde(default)]
    pub alert_webhook_url: Option<String>,
    /// A request whose audit event is not durable within this many milliseconds fails with 503.
    #[serde(default = "default_audit_timeout_ms")]
    pub audit_timeout_ms: u64,
    /// Also stream every audit event as a JSON line to a file or stdout.
    #[serde(default)]
    pub audit_sink: Option<crate::audit::SinkSettings>,
    /// A PENDING lease intent older than this many seconds is abandoned and revoked. It must
    /// exceed the longest an issue can take (about a minute).
    #[serde(default = "default_lease_intent_grace_seconds")]
    pub lease_intent_grace_seconds: u64,
    /// A lease whose revocation keeps failing is retried (exponential backoff) for this long
    /// after its first failure, then becomes IRREVOCABLE and is alerted on.
    #[serde(default = "default_revocation_retry_budget_seconds")]
    pub revocation_retry_budget_seconds: u64,
    /// How long a replica's claim on a batch of due leases holds; a replica that dies mid-batch
    /// has its leases picked up by the others after this.
    #[serde(default = "default_scheduler_claim_seconds")]
    pub scheduler_claim_seconds: u64,
    /// How long a mass revocation's fence holds unless the request names its own `fenceTtl`
    /// or an operator lifts it.
    #[serde(default = "default_revocation_fence_seconds")]
    pub revocation_fence_seconds: u64,
    /// A lease revoked (or force-revoked) this many seconds ago leaves the store (1 s to ten
    /// years); the audit trail keeps its issue and revocation. Leases a mass revocation job
    /// revoked stay as that job's record.
    #[serde(default = "default_revoked_lease_retention_seconds")]
    pub revoked_lease_retention_seconds: u64,
}

fn default_revocation_fence_seconds() -> u64 {
    24 * 3600
}

fn default_revoked_lease_retention_seconds() -> u64 {
    7 * 24 * 3600
}

/// Ten years: long enough to keep revoked leases as long as anyone wants, short enough to stay
/// a date.
const MAX_REVOKED_LEASE_RETENTION_SECONDS: u64 = 10 * 365 * 24 * 3600;

fn default_scheduler_claim_seconds() -> u64 {
    60
}

fn default_revocation_retry_budget_seconds() -> u64 {
    24 * 3600
}

fn default_lease_intent_grace_seconds() -> u64 {
    crate::dynamic::INTENT_GRACE.as_secs()
}

fn default_audit_timeout_ms() -> u64 {
    2000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Which KMS provider wraps new data keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KmsProvider {
    /// The key ring in `key_file` (created on first start).
    Local,
    /// AWS KMS (or a KMS-compatible server), configured in `[kms.aws]`.
    AwsKms,
    /// A key ring that lives only in memory: everything sealed under it dies with the process.
    Ephemeral,
}

impl KmsProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::AwsKms => "aws-kms",
            Self::Ephemeral => "ephemeral",
        }
    }
}

/// The KMS configuration: the provider that wraps new data keys, and every provider that can
/// still unwrap old ones. Keeping the previous provider configured beside the new one is what
/// lets `leasehold kms rewrap` migrate a store between them online.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSettings {
    pub provider: KmsProvider,
    /// The local key ring: required for `local`; beside `aws-kms` it still unwraps data keys
    /// wrapped before a migration.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// AWS KMS: required for `aws-kms`; beside `local` it still unwraps data keys it wrapped.
    #[serde(default)]
    pub aws: Option<AwsKmsSettings>,
    /// The key that names tokens in audit events. Default: `<key_file>.audit-hmac`; required
    /// when there is no `key_file`.
    #[serde(default)]
    pub audit_hmac_key_file: Option<PathBuf>,
    #[serde(default)]
    pub cache: DataKeyCacheSettings,
}

/// An AWS KMS key and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsSettings {
    /// Key id, key ARN or `alias/…`.
    pub key_id: String,
    pub region: String,
    /// Another endpoint than AWS's own, e.g. a KMS-compatible server.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Static credentials; without them the usual AWS chain (environment, profile, web
    /// identity, instance role) is used.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<SecretString>,
    /// A KMS call that has not answered within this many milliseconds fails (and the request
    /// that needed it answers 503), so an unreachable KMS never hangs the broker.
    #[serde(default = "default_kms_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_kms_timeout_ms() -> u64 {
    2000
}

/// Bounds on the in-memory cache of unwrapped data keys. `max_entries = 0` turns it off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataKeyCacheSettings {
    /// A cached key is dropped (and zeroized) this long after it was unwrapped.
    #[serde(default = "default_cache_max_age_seconds")]
    pub max_age_seconds: u64,
    /// A cached key is dropped after serving this many reads.
    #[serde(default = "default_cache_max_uses")]
    pub max_uses: u64,
    /// At most this many keys are cached; the oldest goes first.
    #[serde(default = "default_cache_max_entries")]
    pub max_entries: usize,
}

impl Default for DataKeyCacheSettings {
    fn default() -> Self {
        Self {
            max_age_seconds: default_cache_max_age_seconds(),
            max_uses: default_cache_max_uses(),
            max_entries: default_cache_max_entries(),
        }
    }
}

fn default_cache_max_age_seconds() -> u64 {
    300
}

fn default_cache_max_uses() -> u64 {
    10_000
}

fn default_cache_max_entries() -> usize {
    10_000
}

impl KmsSettings {
    /// The local key ring at `key_file`, nothing else.
    pub fn local(key_file: PathBuf) -> Self {
        Self {
            provider: KmsProvider::Local,
            key_file: Some(key_file),
            aws: None,
            audit_hmac_key_file: None,
            cache: DataKeyCacheSettings::default(),
        }
    }

    /// An in-memory key ring.
    pub fn ephemeral() -> Self {
        Self {
            provider: KmsProvider::Ephemeral,
            key_file: None,
            aws: None,
            audit_hmac_key_file: None,
            cache: DataKeyCacheSettings::default(),
        }
    }

    /// # Errors
    /// When the provider's own section is missing or the audit HMAC key has no home.
    pub fn validate(&self) -> Result<(), SettingsError> {
        match self.provider {
            KmsProvider::Local if self.key_file.is_none() => {
                return Err(SettingsError::Invalid(
                    "kms.provider = \"local\" needs kms.key_file (the key-ring file)".into(),
                ));
            }
            KmsProvider::AwsKms if self.aws.is_none() => {
                return Err(SettingsError::Invalid(
                    "kms.provider = \"aws-kms\" needs a [kms.aws] section with key_id and region"
                        .into(),
                ));
            }
            _ => {}
        }
        if let Some(aws) = &self.aws {
            if aws.access_key_id.is_some() != aws.secret_access_key.is_some() {
                return Err(SettingsError::Invalid(
                    "kms.aws: set both access_key_id and secret_access_key, or neither (to use the AWS credential chain)".into(),
                ));
            }
            if aws.timeout_ms == 0 {
                return Err(SettingsError::Invalid(
                    "kms.aws.timeout_ms must be at least 1".into(),
                ));
            }
        }
        if self.provider != KmsProvider::Ephemeral
            && self.key_file.is_none()
            && self.audit_hmac_key_file.is_none()
        {
            return Err(SettingsError::Invalid(
                "kms.audit_hmac_key_file is required when there is no kms.key_file: it holds the key that names tokens in audit events".into(),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Reads `path`, then applies the environment overrides.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or an override is malformed.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut settings: Self = toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        settings.apply_env(|name| std::env::var(name).ok())?;
        settings.validate()?;
        Ok(settings)
    }

    /// Applies `LEASEHOLD_…` overrides read through `var`.
    ///
    /// # Errors
    /// When an override does not parse.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        fn parsed<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, SettingsError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| SettingsError::Env {
                name,
                message: e.to_string(),
            })
        }
        if let Some(v) = var("LEASEHOLD_LISTEN") {
            self.listen = parsed("LEASEHOLD_LISTEN", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_DATABASE_URL") {
            self.database_url = SecretString::from(v);
        }
        if let Some(v) = var("LEASEHOLD_MAX_CONNECTIONS") {
            self.max_connections = parsed("LEASEHOLD_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_MAX_VALUE_BYTES") {
            self.max_value_bytes = parsed("LEASEHOLD_MAX_VALUE_BYTES", &v)?;
        }
        match (
            var("LEASEHOLD_TLS_CERT_FILE"),
            var("LEASEHOLD_TLS_KEY_FILE"),
        ) {
            (Some(cert_file), Some(key_file)) => {
                self.tls = Some(TlsSettings {
                    cert_file: cert_file.into(),
                    key_file: key_file.into(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(SettingsError::Invalid(
                    "set both LEASEHOLD_TLS_CERT_FILE and LEASEHOLD_TLS_KEY_FILE, or neither"
                        .into(),
                ));
            }
        }
        if let Some(v) = var("LEASEHOLD_LEASE_INTENT_GRACE_SECONDS") {
            self.lease_intent_grace_seconds = parsed("LEASEHOLD_LEASE_INTENT_GRACE_SECONDS", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_REVOCATION_RETRY_BUDGET_SECONDS") {
            self.revocation_retry_budget_seconds =
                parsed("LEASEHOLD_REVOCATION_RETRY_BUDGET_SECONDS", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_SCHEDULER_CLAIM_SECONDS") {
            self.scheduler_claim_seconds = parsed("LEASEHOLD_SCHEDULER_CLAIM_SECONDS", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_REVOCATION_FENCE_SECONDS") {
            self.revocation_fence_seconds = parsed("LEASEHOLD_REVOCATION_FENCE_SECONDS", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_REVOKED_LEASE_RETENTION_SECONDS") {
            self.revoked_lease_retention_seconds =
                parsed("LEASEHOLD_REVOKED_LEASE_RETENTION_SECONDS", &v)?;
        }
        if let Some(v) = var("LEASEHOLD_ALERT_WEBHOOK_URL") {
            self.alert_webhook_url = Some(v);
        }
        if let Some(v) = var("LEASEHOLD_KMS_PROVIDER") {
            self.kms.provider = match v.as_str() {
                "local" => KmsProvider::Local,
                "aws-kms" => KmsProvider::AwsKms,
                "ephemeral" => KmsProvider::Ephemeral,
                _ => {
                    return Err(SettingsError::Env {
                        name: "LEASEHOLD_KMS_PROVIDER",
                        message: "must be local, aws-kms or ephemeral".into(),
                    });
                }
            };
        }
        if let Some(v) = var("LEASEHOLD_KMS_KEY_FILE") {
            self.kms.key_file = Some(v.into());
        }
        if let Some(aws) = self.kms.aws.as_mut() {
            if let Some(v) = var("LEASEHOLD_KMS_AWS_KEY_ID") {
                aws.key_id = v;
            }
            if let Some(v) = var("LEASEHOLD_KMS_AWS_REGION") {
                aws.region = v;
            }
            if let Some(v) = var("LEASEHOLD_KMS_AWS_ENDPOINT_URL") {
                aws.endpoint_url = Some(v);
            }
        }
        Ok(())
    }

    /// # Errors
    /// When a value is out of range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.database_url.expose_secret().is_empty() {
            return Err(SettingsError::Invalid(
                "database_url is not set: give it in the configuration file or in LEASEHOLD_DATABASE_URL".into(),
            ));
        }
        self.kms.validate()?;
        if self.max_connections == 0 {
            return Err(SettingsError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        if !(1..=16 * 1024 * 1024).contains(&self.max_value_bytes) {
            return Err(SettingsError::Invalid(
                "max_value_bytes must be between 1 and 16777216".into(),
            ));
        }
        if self.scheduler_claim_seconds == 0 {
            return Err(SettingsError::Invalid(
                "scheduler_claim_seconds must be at least 1 (a claim that lapses at once lets every replica revoke the same leases)".into(),
            ));
        }
        if self.revocation_retry_budget_seconds == 0 {
            return Err(SettingsError::Invalid(
                "revocation_retry_budget_seconds must be at least 1 (with none, a revocation's first failure makes its lease IRREVOCABLE)".into(),
            ));
        }
        if !(1..=MAX_REVOKED_LEASE_RETENTION_SECONDS)
            .contains(&self.revoked_lease_retention_seconds)
        {
            return Err(SettingsError::Invalid(format!(
                "revoked_lease_retention_seconds must be between 1 (a revoke still answers the lease it revoked) and {MAX_REVOKED_LEASE_RETENTION_SECONDS} (ten years)"
            )));
        }
        Ok(())
    }

    /// The lease scheduler's configuration as replica `owner`: how long its claims hold and how
    /// long a failing revocation is retried come from these settings.
    pub fn scheduler_config(&self, owner: impl Into<String>) -> SchedulerConfig {
        let mut config = SchedulerConfig::new(owner);
        config.claim_for = std::time::Duration::from_secs(self.scheduler_claim_seconds);
        config.retry.budget = std::time::Duration::from_secs(self.revocation_retry_budget_seconds);
        config
    }

    pub fn audit_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.audit_timeout_ms)
    }

    /// The request-body limit that fits the largest value plus JSON escaping and metadata.
    pub fn max_body_bytes(&self) -> usize {
        self.max_value_bytes
            .saturating_mul(6)
            .saturating_add(16 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const EXAMPLE: &str = r#"
        listen = "0.0.0.0:8443"
        database_url = "postgres://leasehold@db/leasehold"
        [tls]
        cert_file = "/etc/leasehold/tls.crt"
        key_file = "/etc/leasehold/tls.key"
        [kms]
        provider = "local"
        key_file = "/etc/leasehold/master.key"
    "#;

    #[test]
    fn the_scheduler_takes_its_claim_and_retry_budget_from_the_settings() {
        let mut settings: Settings = toml::from_str(EXAMPLE).expect("parse");
        settings
            .apply_env(|name| match name {
                "LEASEHOLD_SCHEDULER_CLAIM_SECONDS" => Some("3".into()),
                "LEASEHOLD_REVOCATION_RETRY_BUDGET_SECONDS" => Some("90".into()),
                _ => None,
            })
            .expect("env");
        let config = settings.scheduler_config("replica-a");
        assert_eq!(config.owner, "replica-a");
        assert_eq!(config.claim_for, std::time::Duration::from_secs(3));
        assert_eq!(config.retry.budget, std::time::Duration::from_secs(90));
        let defaults: Settings = toml::from_str(EXAMPLE).expect("parse");
        assert_eq!(
            defaults.scheduler_config("r").claim_for,
            std::time::Duration::from_secs(60)
        );
        settings.scheduler_claim_seconds = 0;
        assert!(settings.validate().is_err());
        settings.scheduler_claim_seconds = 3;
        assert!(settings.validate().is_ok());
        settings.revocation_retry_budget_seconds = 0;
        assert!(settings.validate().is_err());
    }

    #[test]
    fn revoked_leases_are_kept_between_a_second_and_ten_years() {
        let mut settings: Settings = toml::from_str(EXAMPLE).expect("parse");
        assert_eq!(settings.revoked_lease_retention_seconds, 7 * 24 * 3600);
        settings
            .apply_env(|name| {
                (name == "LEASEHOLD_REVOKED_LEASE_RETENTION_SECONDS").then(|| "86400".into())
            })
            .expect("env");
        assert_eq!(settings.revoked_lease_retention_seconds, 86400);
        assert!(settings.validate().is_ok());
        for out_of_range in [0, MAX_REVOKED_LEASE_RETENTION_SECONDS + 1] {
            settings.revoked_lease_retention_seconds = out_of_range;
            let error = settings.validate().expect_err("out of range");
            assert!(
                error
                    .to_string()
                    .contains("revoked_lease_retention_seconds"),
                "{error}"
            );
        }
    }

    #[test]
    fn file_then_environment() {
        let mut settings: Settings = toml::from_str(EXAMPLE).expect("parse");
        assert_eq!(settings.max_value_bytes, DEFAULT_MAX_VALUE_BYTES);
        settings
            .apply_env(|name| match name {
                "LEASEHOLD_LISTEN" => Some("127.0.0.1:9000".into()),
                "LEASEHOLD_DATABASE_URL" => Some("sqlite:///tmp/x.db".into()),
                _ => None,
            })
            .expect("env");
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.database_url.expose_secret(), "sqlite:///tmp/x.db");
    }

    #[test]
    fn the_database_url_may_come_from_the_environment_alone() {
        let without: String = EXAMPLE
            .lines()
            .filter(|line| !line.trim_start().starts_with("database_url"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut settings: Settings = toml::from_str(&without).expect("parse");
        let error = settings.validate().expect_err("no database_url anywhere");
        assert!(
            error.to_string().contains("LEASEHOLD_DATABASE_URL"),
            "{error}"
        );
        settings
            .apply_env(|name| {
                (name == "LEASEHOLD_DATABASE_URL").then(|| "postgres://db.internal/lh".into())
            })
            .expect("env");
        settings.validate().expect("valid");
        assert_eq!(
            settings.database_url.expose_secret(),
            "postgres://db.internal/lh"
        );
    }

    #[test]
    fn unknown_keys_and_bad_overrides_are_errors() {
        let typo = EXAMPLE.replace("listen", "listne");
        assert!(toml::from_str::<Settings>(&typo).is_err());
        let mut settings: Settings = toml::from_str(EXAMPLE).expect("parse");
        let result = settings.apply_env(|name| (name == "LEASEHOLD_LISTEN").then(|| "nope".into()));
        assert!(matches!(result, Err(SettingsError::Env { .. })));
    }

    #[test]
    fn aws_kms_settings_parse_and_incomplete_ones_say_what_is_missing() {
        let aws = r#"
            database_url = "sqlite:///tmp/x.db"
            [kms]
            provider = "aws-kms"
            audit_hmac_key_file = "/etc/leasehold/audit-hmac.key"
            [kms.aws]
            key_id = "alias/leasehold"
            region = "eu-west-1"
            [kms.cache]
            max_entries = 0
        "#;
        let settings: Settings = toml::from_str(aws).expect("parse");
        settings.validate().expect("valid");
        assert_eq!(settings.kms.provider, KmsProvider::AwsKms);
        assert_eq!(settings.kms.cache.max_entries, 0);
        assert_eq!(
            settings.kms.cache.max_age_seconds, 300,
            "defaults fill the rest"
        );

        for (text, needle, case) in [
            (
                aws.replace(
                    "audit_hmac_key_file = \"/etc/leasehold/audit-hmac.key\"",
                    "",
                ),
                "audit_hmac_key_file",
                "no home for the audit HMAC key",
            ),
            (
                aws.replace("[kms.aws]", "[kms.elsewhere]")
                    .replace("key_id = \"alias/leasehold\"", "")
                    .replace("region = \"eu-west-1\"", ""),
                "unknown field",
                "misspelt section",
            ),
            (
                aws.replace(
                    "region = \"eu-west-1\"",
                    "region = \"eu-west-1\"\naccess_key_id = \"AKIA\"",
                ),
                "secret_access_key",
                "half a static credential",
            ),
        ] {
            let error = toml::from_str::<Settings>(&text)
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate().map_err(|e| e.to_string()));
            let message = error.expect_err(case);
            assert!(message.contains(needle), "case: {case}: {message}");
        }

        let mut settings: Settings = toml::from_str(aws).expect("parse");
        let result =
            settings.apply_env(|name| (name == "LEASEHOLD_KMS_PROVIDER").then(|| "vault".into()));
        assert!(matches!(result, Err(SettingsError::Env { .. })));
    }

    #[test]
    fn the_shipped_example_parses() {
        let example = include_str!("../../deploy/leasehold.example.toml");
        let settings: Settings = toml::from_str(example).expect("deploy/leasehold.example.toml");
        settings.validate().expect("valid");
    }
}
