//! A secret's rotation policy as the API takes it (`PUT /v1/secrets/{id}/rotation`) and as it
//! is stored: the windows of steps 6–9, the cron schedule, the deadline and the password policy.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::RotationError;
use crate::domain::Ttl;
use crate::dynamic::PasswordPolicyConfig;
use crate::store::RotationPolicyRow;
use leasehold_plugins::password::PasswordPolicy;

const DEFAULT_OVERLAP_SECONDS: u64 = 3600;
const DEFAULT_ROLLBACK_SECONDS: u64 = 24 * 3600;

/// The body of `PUT /v1/secrets/{id}/rotation`. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutRotationPolicy {
    /// After promotion, how long both versions keep working downstream (default `1h`).
    pub overlap_window: Option<String>,
    /// After the overlap, how long the old version stays readable for a rollback before it is
    /// disabled (default `24h`).
    pub rollback_window: Option<String>,
    /// After being disabled, how long until the old version is destroyed; absent: never.
    pub retention: Option<String>,
    /// Cron expression in UTC, seconds first (`0 0 3 * * *`: daily at 03:00).
    pub schedule: Option<String>,
    /// The rotation SLA: a secret not rotated for this long is overdue.
    pub deadline: Option<String>,
    /// A paused schedule does not run until resumed.
    #[serde(default)]
    pub paused: bool,
    /// How scheduled rotations generate the new value (default: 32 letters and digits).
    pub generate: Option<PasswordPolicyConfig>,
    /// A rotation target told of each step by a JSON POST (`setSecret`, `testSecret`,
    /// `finishSecret`, `rollbackSecret`) naming the secret and version; it reads the version
    /// itself with its own token, so no value travels in the webhook. Any answer but 2xx fails
    /// the step.
    pub webhook: Option<String>,
}

/// A validated policy, in seconds.
#[derive(Debug, Clone)]
pub struct RotationPolicy {
    pub overlap_seconds: u64,
    pub rollback_seconds: u64,
    pub retention_seconds: Option<u64>,
    pub schedule: Option<String>,
    pub deadline_seconds: Option<u64>,
    pub paused: bool,
    pub generate: PasswordPolicyConfig,
    pub static_role: Option<String>,
    pub webhook: Option<String>,
}

/// A policy as `GET /v1/secrets/{id}/rotation` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationPolicyView {
    pub secret_id: Uuid,
    pub overlap_window: String,
    pub rollback_window: String,
    pub retention: Option<String>,
    pub schedule: Option<String>,
    pub deadline: Option<String>,
    pub paused: bool,
    pub generate: PasswordPolicyConfig,
    pub static_role: Option<String>,
    pub webhook: Option<String>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub last_rotated_at: Option<DateTime<Utc>>,
    pub overdue: bool,
}

fn seconds(field: &'static str, text: &str) -> Result<u64, RotationError> {
    Ttl::parse(field, text)
        .map(Ttl::seconds)
        .map_err(|e| RotationError::invalid(field, format!("{field}: {}", e.reason)))
}

fn optional_seconds(field: &'static str, text: Option<&str>) -> Result<Option<u64>, RotationError> {
    text.map(|t| seconds(field, t)).transpose()
}

fn parse_schedule(text: &str) -> Result<cron::Schedule, RotationError> {
    cron::Schedule::from_str(text).map_err(|_| {
        RotationError::invalid(
            "schedule",
            "schedule: not a cron expression; use six or seven fields, seconds first, in UTC (\"0 0 3 * * *\" is daily at 03:00)",
        )
    })
}

/// The first time `schedule` fires after `now`.
pub fn next_run(schedule: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    parse_schedule(schedule).ok()?.after(&now).next()
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn as_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// `since + seconds`, saturating.
pub fn plus(since: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    chrono::Duration::try_seconds(as_i64(seconds))
        .and_then(|d| since.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn show(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl PutRotationPolicy {
    /// # Errors
    /// `Invalid`, naming the field.
    pub fn validate(self, static_role: Option<String>) -> Result<RotationPolicy, RotationError> {
        if let Some(schedule) = &self.schedule {
            parse_schedule(schedule)?;
        }
        let generate = self.generate.unwrap_or_else(default_generate);
        PasswordPolicy::new(generate.length, generate.symbols)
            .map_err(|e| RotationError::invalid("generate", e.message))?;
        if let Some(url) = &self.webhook {
            check_webhook(url)?;
            if static_role.is_some() {
                return Err(RotationError::invalid(
                    "webhook",
                    "webhook: a static role's secret is set on its database users; it cannot have a webhook too",
                ));
            }
        }
        Ok(RotationPolicy {
            overlap_seconds: optional_seconds("overlapWindow", self.overlap_window.as_deref())?
                .unwrap_or(DEFAULT_OVERLAP_SECONDS),
            rollback_seconds: optional_seconds("rollbackWindow", self.rollback_window.as_deref())?
                .unwrap_or(DEFAULT_ROLLBACK_SECONDS),
            retention_seconds: optional_seconds("retention", self.retention.as_deref())?,
            schedule: self.schedule,
            deadline_seconds: optional_seconds("deadline", self.deadline.as_deref())?,
            paused: self.paused,
            generate,
            static_role,
            webhook: self.webhook,
        })
    }
}

/// A webhook URL the broker will call: http(s), a host, no credentials, at most 2,048 bytes.
///
/// # Errors
/// `Invalid` naming `webhook`.
pub(super) fn check_webhook(url: &str) -> Result<(), RotationError> {
    let parsed = reqwest::Url::parse(url).ok();
    let ok = parsed.is_some_and(|u| {
        matches!(u.scheme(), "https" | "http")
            && u.host().is_some()
            && u.username().is_empty()
            && u.password().is_none()
    });
    if ok && url.len() <= 2048 {
        Ok(())
    } else {
        Err(RotationError::invalid(
            "webhook",
            "webhook: an http(s) URL with a host and no credentials in it, e.g. \"https://deployer.internal/rotate\"",
        ))
    }
}

pub fn default_generate() -> PasswordPolicyConfig {
    PasswordPolicyConfig {
        length: PasswordPolicy::default().length,
        symbols: false,
    }
}

impl RotationPolicy {
    /// What a secret without a stored policy rotates by.
    pub fn defaults() -> Self {
        Self {
            overlap_seconds: DEFAULT_OVERLAP_SECONDS,
            rollback_seconds: DEFAULT_ROLLBACK_SECONDS,
            retention_seconds: None,
            schedule: None,
            deadline_seconds: None,
            paused: false,
            generate: default_generate(),
            static_role: None,
            webhook: None,
        }
    }

    /// # Errors
    /// `Storage(Corrupt)` for a stored password policy that does not parse.
    pub fn from_row(row: &RotationPolicyRow) -> Result<Self, RotationError> {
        let generate = match &row.generate {
            Some(text) => serde_json::from_str(text).map_err(|_| {
                RotationError::Storage(crate::store::StoreError::Corrupt(
                    "a rotation policy's password policy does not parse".into(),
                ))
            })?,
            None => default_generate(),
        };
        Ok(Self {
            overlap_seconds: as_u64(row.overlap_seconds),
            rollback_seconds: as_u64(row.rollback_seconds),
            retention_seconds: row.retention_seconds.map(as_u64),
            schedule: row.schedule.clone(),
            deadline_seconds: row.deadline_seconds.map(as_u64),
            paused: row.paused,
            generate,
            static_role: row.static_role.clone(),
            webhook: row.webhook.clone(),
        })
    }

    /// The row to store for `secret_id`, keeping the history (`last_rotated_at`) of `old`.
    pub fn to_row(
        &self,
        secret_id: Uuid,
        tenant: &str,
        old: Option<&RotationPolicyRow>,
        secret_created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RotationPolicyRow {
        let last_rotated_at = old.and_then(|o| o.last_rotated_at);
        let since = last_rotated_at.unwrap_or(secret_created_at);
        RotationPolicyRow {
            secret_id,
            tenant: tenant.to_owned(),
            overlap_seconds: as_i64(self.overlap_seconds),
            rollback_seconds: as_i64(self.rollback_seconds),
            retention_seconds: self.retention_seconds.map(as_i64),
            schedule: self.schedule.clone(),
            deadline_seconds: self.deadline_seconds.map(as_i64),
            paused: self.paused,
            generate: serde_json::to_string(&self.generate).ok(),
            static_role: self.static_role.clone(),
            webhook: self.webhook.clone(),
            next_run_at: self.schedule.as_deref().and_then(|s| next_run(s, now)),
            deadline_at: self.deadline_seconds.map(|d| plus(since, d)),
            last_rotated_at,
            updated_at: now,
        }
    }
}

impl RotationPolicyView {
    /// # Errors
    /// As [`RotationPolicy::from_row`].
    pub fn from_row(row: &RotationPolicyRow, now: DateTime<Utc>) -> Result<Self, RotationError> {
        let policy = RotationPolicy::from_row(row)?;
        Ok(Self {
            secret_id: row.secret_id,
            overlap_window: show(policy.overlap_seconds),
            rollback_window: show(policy.rollback_seconds),
            retention: policy.retention_seconds.map(show),
            schedule: policy.schedule,
            deadline: policy.deadline_seconds.map(show),
            paused: policy.paused,
            generate: policy.generate,
            static_role: policy.static_role,
            webhook: policy.webhook,
            next_run_at: if row.paused { None } else { row.next_run_at },
            deadline_at: row.deadline_at,
            last_rotated_at: row.last_rotated_at,
            overdue: row.deadline_at.is_some_and(|d| d < now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_default_and_bad_fields_are_named() {
        let policy = PutRotationPolicy::default()
            .validate(None)
            .expect("defaults");
        assert_eq!(policy.overlap_seconds, 3600);
        assert_eq!(policy.rollback_seconds, 86_400);
        assert_eq!(policy.retention_seconds, None);
        for (body, field, case) in [
            (
                PutRotationPolicy {
                    overlap_window: Some("soon".into()),
                    ..Default::default()
                },
                "overlapWindow",
                "not a duration",
            ),
            (
                PutRotationPolicy {
                    schedule: Some("every day".into()),
                    ..Default::default()
                },
                "schedule",
                "not cron",
            ),
            (
                PutRotationPolicy {
                    generate: Some(PasswordPolicyConfig {
                        length: 4,
                        symbols: false,
                    }),
                    ..Default::default()
                },
                "generate",
                "too short",
            ),
        ] {
            match body.validate(None) {
                Err(RotationError::Invalid { field: f, .. }) => {
                    assert_eq!(f, field, "case: {case}")
                }
                other => panic!("case: {case}: {other:?}"),
            }
        }
    }

    #[test]
    fn schedules_fire_in_utc_and_windows_saturate() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T02:59:59Z")
            .expect("time")
            .with_timezone(&Utc);
        let next = next_run("0 0 3 * * *", now).expect("next");
        assert_eq!(next.to_rfc3339(), "2026-12-01T03:00:00+00:00");
        assert_eq!(plus(now, u64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(show(90), "90s");
        assert_eq!(show(7 * 86_400), "7d");
    }
}
