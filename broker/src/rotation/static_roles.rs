//! Static database roles: existing users on a backend whose passwords the broker owns and
//! rotates. A role's credentials are the versions of its secret
//! `<environment>/static-roles/<name>` (`{"username", "password"}`), so they rotate through the
//! same nine steps as any secret; with two users the versions alternate between them, and both
//! credentials log in during the overlap window.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Actor, PutRotationPolicy, RotateOptions, RotationError, RotationPolicyView, RotationService,
    StaticCredential,
};
use crate::audit::EventType;
use crate::domain::{AliasName, Environment, OwnerTeam, RotationStrategy, SecretPath, Tenant};
use crate::dynamic::check_name;
use crate::secrets::{CreateSecret, SecretError};
use crate::store::{SecretRow, StaticRoleRow};

const MAX_USERNAME: usize = 63;

/// The body of `PUT /v1/static-roles/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutStaticRole {
    pub backend: String,
    pub environment: String,
    /// One existing user (its password rotates) or two used alternately.
    pub usernames: Vec<String>,
    /// The team that owns the role's secret (default `platform`).
    pub owner_team: Option<String>,
    #[serde(default)]
    pub rotation: PutRotationPolicy,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticRoleView {
    pub name: String,
    pub backend: String,
    pub environment: String,
    pub usernames: Vec<String>,
    pub secret_id: uuid::Uuid,
    /// The secret holding the credentials, and the policy resource for reading them.
    pub secret_path: String,
    pub rotation: RotationPolicyView,
    pub created_at: DateTime<Utc>,
}

/// What `GET /v1/static-roles/{name}/credentials` returns.
pub struct StaticCredentials {
    pub secret: SecretRow,
    pub version: i64,
    pub credential: StaticCredential,
}

fn check_username(name: &str) -> Result<(), RotationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(RotationError::invalid(
            "usernames",
            format!(
                "usernames: each 1-{MAX_USERNAME} characters of letters, digits, '_', '-' and '.'"
            ),
        ))
    }
}

#[derive(Clone)]
pub struct StaticRoleService {
    rotation: RotationService,
}

impl StaticRoleService {
    pub fn new(rotation: RotationService) -> Self {
        Self { rotation }
    }

    fn path(name: &str) -> String {
        format!("static-roles/{name}")
    }

    /// The description of a static role's secret, by which a left-over one is recognised.
    fn description(name: &str) -> String {
        format!("credentials of static role {name}")
    }

    /// Creates a role (and sets a first password nobody knows on its first user) or updates
    /// its users and rotation policy.
    ///
    /// # Errors
    /// `Invalid` for bad names; `Conflict` for a role moved to another backend or
    /// environment; backend and rotation errors.
    pub async fn put(
        &self,
        actor: &Actor,
        tenant: &Tenant,
        name: &str,
        body: PutStaticRole,
    ) -> Result<StaticRoleView, RotationError> {
        check_name("name", name)?;
        check_name("backend", &body.backend)?;
        let environment = Environment::parse(&body.environment).map_err(|e| {
            RotationError::invalid("environment", format!("environment: {}", e.reason))
        })?;
        if body.usernames.is_empty() || body.usernames.len() > 2 {
            return Err(RotationError::invalid(
                "usernames",
                "usernames: one user (its password rotates) or two (used alternately)",
            ));
        }
        for username in &body.usernames {
            check_username(username)?;
        }
        if body.usernames.len() == 2 && body.usernames[0] == body.usernames[1] {
            return Err(RotationError::invalid(
                "usernames",
                "usernames: the two users must differ",
            ));
        }
        let owner_team = OwnerTeam::parse(body.owner_team.as_deref().unwrap_or("platform"))
            .map_err(|e| RotationError::invalid("ownerTeam", format!("ownerTeam: {}", e.reason)))?;
        let policy = body.rotation.validate(Some(name.to_owned()))?;
        let store = self.rotation.store();
        // The backend must exist (and be usable) before anything is written.
        self.rotation
            .registry
            .get(tenant.as_str(), &body.backend)
            .await?;
        let usernames = serde_json::to_string(&body.usernames)
            .map_err(|_| RotationError::invalid("usernames", "usernames: not encodable"))?;
        let now = Utc::now();
        let existing = store.find_static_role(tenant.as_str(), name).await?;
        let (secret, created) = match &existing {
            Some(role) => {
                if role.backend != body.backend || role.environment != environment.as_str() {
                    return Err(RotationError::Conflict(format!(
                        "static role {name} lives on backend {} in environment {}; choose another name to use another backend or environment",
                        role.backend, role.environment
                    )));
                }
                (self.rotation.secret(tenant, role.secret_id).await?, false)
            }
            None => {
                let path = SecretPath::parse(&Self::path(name))
                    .map_err(|e| RotationError::invalid("name", format!("name: {}", e.reason)))?;
                match self
                    .rotation
                    .secrets
                    .find_by_path(tenant, &environment, &path)
                    .await
                {
                    // Left by an earlier attempt whose role row did not commit (the audit trail
                    // was unavailable, say): taken over while it holds no version, or the name
                    // would stay blocked for good. Only a secret this code created, though.
                    Ok(secret)
                        if secret.latest_version == 0
                            && secret.description == Self::description(name) =>
                    {
                        (secret, true)
                    }
                    Ok(_) => {
                        return Err(RotationError::Conflict(format!(
                            "a secret {environment}/{path} exists already and is not an unused static-role secret; remove it or choose another name for the static role"
                        )));
                    }
                    Err(SecretError::SecretNotFound(_)) => {
                        let event = self.rotation.audit.in_transaction(
                            actor
                                .event_at(
                                    EventType::SecretCreate,
                                    environment.as_str(),
                                    path.as_str(),
                                )
                                .detail("ownerTeam", owner_team.as_str()),
                        );
                        let secret = self
                            .rotation
                            .secrets
                            .create(
                                tenant,
                                &actor.principal,
                                CreateSecret {
                                    environment: environment.clone(),
                                    path,
                                    owner_team,
                                    description: Self::description(name),
                                    rotation_strategy: RotationStrategy::ManualOverlap,
                                },
                                &event,
                            )
                            .await?;
                        (secret, true)
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let audit = self.rotation.audit.in_transaction(
            actor
                .event(EventType::StaticRoleWrite, &secret)
                .detail("role", name)
                .detail("backend", body.backend.as_str())
                .detail("usernames", body.usernames.clone()),
        );
        let old_policy = store.find_rotation_policy(secret.id).await?;
        store
            .put_static_role(
                &StaticRoleRow {
                    tenant: tenant.as_str().to_owned(),
                    name: name.to_owned(),
                    backend: body.backend.clone(),
                    environment: environment.as_str().to_owned(),
                    usernames,
                    secret_id: secret.id,
                    created_by: actor.principal.clone(),
                    created_at: now,
                    updated_at: now,
                },
                &policy.to_row(
                    secret.id,
                    tenant.as_str(),
                    old_policy.as_ref(),
                    secret.created_at,
                    now,
                ),
                &audit,
            )
            .await?;
        if created {
            self.rotation
                .rotate(actor, &secret, RotateOptions::generated(false))
                .await?;
        }
        self.view(tenant, name).await
    }

    /// # Errors
    /// `NotFound`.
    pub async fn find(&self, tenant: &Tenant, name: &str) -> Result<StaticRoleRow, RotationError> {
        check_name("name", name)?;
        self.rotation
            .store()
            .find_static_role(tenant.as_str(), name)
            .await?
            .ok_or_else(|| RotationError::NotFound(format!("no static role {name}")))
    }

    /// # Errors
    /// `NotFound`.
    pub async fn view(&self, tenant: &Tenant, name: &str) -> Result<StaticRoleView, RotationError> {
        let role = self.find(tenant, name).await?;
        let secret = self.rotation.secret(tenant, role.secret_id).await?;
        Ok(StaticRoleView {
            usernames: serde_json::from_str(&role.usernames).unwrap_or_default(),
            secret_path: format!("{}/{}", secret.environment, secret.path),
            rotation: self.rotation.policy_view(&secret).await?,
            name: role.name,
            backend: role.backend,
            environment: role.environment,
            secret_id: role.secret_id,
            created_at: role.created_at,
        })
    }

    /// The credential `current` points at. The caller authorises and audits the read.
    ///
    /// # Errors
    /// `NotFound`; decryption errors.
    pub async fn credentials(
        &self,
        tenant: &Tenant,
        role: &StaticRoleRow,
    ) -> Result<StaticCredentials, RotationError> {
        let secret = self.rotation.secret(tenant, role.secret_id).await?;
        let aliases = self.rotation.store().list_aliases(secret.id).await?;
        let version = super::current_of(&aliases, AliasName::Current).ok_or_else(|| {
            RotationError::NotFound(format!(
                "static role {} has no current credential yet; rotate it",
                role.name
            ))
        })?;
        let value = self.rotation.secrets.open_version(&secret, version).await?;
        Ok(StaticCredentials {
            secret,
            version,
            credential: StaticCredential::parse(&value)?,
        })
    }
}
