//! Where a rotation sets its new value: nowhere (a plain secret, whose consumers read it), a
//! static database role's user through its backend's plugin, or a webhook that is told of each
//! step and reads the version itself.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{RotationError, RotationPolicy};
use crate::dynamic::PluginRegistry;
use crate::store::{SecretRow, Store};
use leasehold_plugins::CredentialBackend;
use leasehold_plugins::password::PasswordPolicy;

/// A static role's credential: the value of one version of its secret, as JSON
/// `{"username", "password"}`.
#[derive(Deserialize)]
pub struct StaticCredential {
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for StaticCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl StaticCredential {
    /// # Errors
    /// `Storage(Corrupt)` when a static role's version is not such JSON.
    pub fn parse(value: &SecretString) -> Result<Self, RotationError> {
        serde_json::from_str(value.expose_secret()).map_err(|_| {
            RotationError::Storage(crate::store::StoreError::Corrupt(
                "a static role's credential is not {\"username\", \"password\"} JSON".into(),
            ))
        })
    }

    pub fn to_value(&self) -> SecretString {
        let text = Zeroizing::new(
            serde_json::json!({
                "username": self.username,
                "password": self.password.expose_secret(),
            })
            .to_string(),
        );
        SecretString::from(text.as_str())
    }
}

/// A static role's users on its backend.
pub struct StaticTarget {
    pub backend: String,
    pub usernames: Vec<String>,
    plugin: Arc<dyn CredentialBackend>,
}

/// A deployer told of each step by a JSON POST; it reads the version through the API with its
/// own token (audited like any read), so the webhook never carries a value.
pub struct WebhookTarget {
    url: String,
    http: reqwest::Client,
}

pub enum Downstream {
    None,
    StaticRole(StaticTarget),
    Webhook(WebhookTarget),
}

fn scrubbed(backend: &str, error: &leasehold_plugins::PluginError) -> String {
    format!("backend `{backend}`: {error}")
}

impl Downstream {
    /// The target of `secret`'s rotations under `policy`.
    ///
    /// # Errors
    /// `NotFound` for a static role or backend that went away; storage errors.
    pub async fn of(
        store: &Store,
        registry: &PluginRegistry,
        http: &reqwest::Client,
        policy: &RotationPolicy,
        secret: &SecretRow,
    ) -> Result<Self, RotationError> {
        if let Some(url) = &policy.webhook {
            // A policy stored before a rule was added is held to it too.
            super::policy::check_webhook(url)?;
            return Ok(Self::Webhook(WebhookTarget {
                url: url.clone(),
                http: http.clone(),
            }));
        }
        let Some(name) = &policy.static_role else {
            return Ok(Self::None);
        };
        let role = store
            .find_static_role(&secret.tenant, name)
            .await?
            .ok_or_else(|| RotationError::NotFound(format!("no static role {name}")))?;
        let usernames: Vec<String> = serde_json::from_str(&role.usernames).map_err(|_| {
            RotationError::Storage(crate::store::StoreError::Corrupt(format!(
                "static role {name} has unreadable usernames"
            )))
        })?;
        let live = registry.get(&secret.tenant, &role.backend).await?;
        Ok(Self::StaticRole(StaticTarget {
            backend: role.backend,
            usernames,
            plugin: live.plugin,
        }))
    }
}

impl StaticTarget {
    /// The user the next version goes to: the other one of two, or the only one.
    pub fn next_user(&self, current: Option<&str>) -> &str {
        match (self.usernames.as_slice(), current) {
            ([first, second], Some(current)) if current == first => second,
            ([first, ..], _) => first,
            ([], _) => "",
        }
    }

    /// Whether old and new credentials can both work during the overlap window.
    pub fn alternates(&self) -> bool {
        self.usernames.len() == 2
    }

    /// # Errors
    /// The plugin's (scrubbed) message.
    pub async fn set(&self, credential: &StaticCredential) -> Result<(), String> {
        self.plugin
            .set_password(&credential.username, &credential.password)
            .await
            .map_err(|e| scrubbed(&self.backend, &e))
    }

    /// # Errors
    /// The plugin's (scrubbed) message when the credential does not log in.
    pub async fn test(&self, credential: &StaticCredential) -> Result<(), String> {
        self.plugin
            .check_login(&credential.username, &credential.password)
            .await
            .map_err(|e| scrubbed(&self.backend, &e))
    }

    /// Ends an old credential after the overlap window: its user gets a password nobody
    /// knows. With one user there is nothing to retire (the new password replaced it).
    ///
    /// # Errors
    /// The plugin's (scrubbed) message.
    pub async fn retire(&self, username: &str) -> Result<(), String> {
        if !self.alternates() {
            return Ok(());
        }
        let unknown = PasswordPolicy::new(48, false)
            .map_err(|e| e.message)?
            .generate();
        self.plugin
            .set_password(username, &unknown)
            .await
            .map_err(|e| scrubbed(&self.backend, &e))
    }
}

impl WebhookTarget {
    /// Tells the webhook that `step` happened to `version` (`previous` is the version it
    /// replaces, or replaced).
    ///
    /// # Errors
    /// Why the webhook did not answer 2xx.
    pub async fn notify(
        &self,
        step: &str,
        secret: &SecretRow,
        version: i64,
        previous: Option<i64>,
    ) -> Result<(), String> {
        let body = serde_json::json!({
            "step": step,
            "tenant": secret.tenant,
            "secretId": secret.id,
            "environment": secret.environment,
            "path": secret.path,
            "version": version,
            "previousVersion": previous,
        });
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("webhook {step}: not reached: {}", e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "webhook {step}: answered {}, not 2xx",
                response.status()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_round_trips_and_never_prints_its_password() {
        let credential = StaticCredential {
            username: "app_v1".into(),
            password: SecretString::from("s3cret-canary"),
        };
        let back = StaticCredential::parse(&credential.to_value()).expect("parse");
        assert_eq!(back.username, "app_v1");
        assert_eq!(back.password.expose_secret(), "s3cret-canary");
        assert!(!format!("{back:?}").contains("s3cret"));
    }
}
