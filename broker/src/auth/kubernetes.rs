//! Kubernetes workload login: a pod presents its service-account JWT; the broker validates it
//! offline against the cluster's JWKS (RS256 or ES256 only), checks issuer, audience, expiry and
//! not-before, matches the service account and namespace against the auth role, and mints a
//! token for the role's principal with `sourceCluster` set to the role's cluster.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Principal, Ttl};

/// An auth role as stored and as `PUT /v1/auth/kubernetes/roles/{name}` takes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesRole {
    /// The cluster's name; becomes the token's `sourceCluster`.
    pub cluster: String,
    /// The `iss` the cluster's tokens carry.
    pub issuer: String,
    /// The `aud` the tokens must be issued for.
    pub audience: String,
    /// The cluster's JWKS inline …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<JwkSet>,
    /// … or a file the broker reads at each login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub jwks_file: Option<PathBuf>,
    /// Service-account names allowed to log in (`*` for any).
    pub service_accounts: Vec<String>,
    /// Namespaces allowed to log in (`*` for any).
    pub namespaces: Vec<String>,
    /// The principal the minted token speaks for.
    #[schema(value_type = String, example = "service:prod:payments-api")]
    pub principal: Principal,
    /// Token lifetime, e.g. `1h` (the default).
    #[serde(default = "default_ttl")]
    pub ttl: String,
}

const MAX_JWKS_BYTES: u64 = 1024 * 1024;

fn default_ttl() -> String {
    "1h".into()
}

/// Why a login was refused. Every variant answers 401, with a message that names the check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("the JWT is malformed")]
    Malformed,
    #[error("the JWT's algorithm is not accepted; use RS256 or ES256")]
    Algorithm,
    #[error("no key in the cluster's JWKS matches the JWT's key id")]
    UnknownKey,
    #[error("the JWT's signature does not verify against the cluster's JWKS")]
    Signature,
    #[error("the JWT was issued by another issuer")]
    Issuer,
    #[error("the JWT was issued for another audience")]
    Audience,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT is not valid yet")]
    NotYetValid,
    #[error("the JWT does not name a service account (sub system:serviceaccount:NAMESPACE:NAME)")]
    Subject,
    #[error("service account {0} may not log in with this role")]
    ServiceAccount(String),
    #[error("namespace {0} may not log in with this role")]
    Namespace(String),
    #[error("the role's JWKS cannot be loaded")]
    Jwks,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

/// A service account that proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub service_account: String,
}

impl KubernetesRole {
    /// Checks everything that does not need a JWT.
    ///
    /// # Errors
    /// A `(field, message)` for the first invalid field.
    pub fn validate(&self) -> Result<Ttl, (&'static str, String)> {
        let ttl = Ttl::parse("ttl", &self.ttl).map_err(|e| ("ttl", e.to_string()))?;
        for (field, value) in [
            ("cluster", &self.cluster),
            ("issuer", &self.issuer),
            ("audience", &self.audience),
        ] {
            if value.trim().is_empty() || value.len() > 512 {
                return Err((field, format!("{field}: required, at most 512 characters")));
            }
        }
        if self.jwks.is_some() == self.jwks_file.is_some() {
            return Err((
                "jwks",
                "jwks: give the cluster's keys either inline (jwks) or as a file (jwksFile)".into(),
            ));
        }
        if self.service_accounts.is_empty() || self.namespaces.is_empty() {
            return Err((
                "serviceAccounts",
                "serviceAccounts and namespaces: at least one each (`*` for any)".into(),
            ));
        }
        Ok(ttl)
    }

    fn key_set(&self) -> Result<JwkSet, LoginError> {
        match (&self.jwks, &self.jwks_file) {
            (Some(set), _) => Ok(set.clone()),
            (None, Some(path)) => {
                // Only regular files of bounded size: a JWKS is a few kilobytes.
                let readable =
                    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_JWKS_BYTES);
                if !readable {
                    return Err(LoginError::Jwks);
                }
                std::fs::read(path)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or(LoginError::Jwks)
            }
            (None, None) => Err(LoginError::Jwks),
        }
    }

    /// Validates `jwt` offline and returns the workload it proves.
    ///
    /// # Errors
    /// The first check that failed.
    pub fn verify(&self, jwt: &str) -> Result<Workload, LoginError> {
        // The algorithm is checked on the raw header first, so `none` (which the JWT library
        // cannot even represent) and HMAC algorithms are refused by name.
        let alg = jwt
            .split('.')
            .next()
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_owned))
            .ok_or(LoginError::Malformed)?;
        if alg != "RS256" && alg != "ES256" {
            return Err(LoginError::Algorithm);
        }
        let header = jsonwebtoken::decode_header(jwt).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => LoginError::Algorithm,
            _ => LoginError::Malformed,
        })?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(LoginError::Algorithm);
        }
        let keys = self.key_set()?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or(LoginError::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| LoginError::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(jwt, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => LoginError::Signature,
                K::InvalidIssuer => LoginError::Issuer,
                K::InvalidAudience => LoginError::Audience,
                K::ExpiredSignature => LoginError::Expired,
                K::ImmatureSignature => LoginError::NotYetValid,
                K::InvalidAlgorithm => LoginError::Algorithm,
                _ => LoginError::Malformed,
            }
        })?;
        let workload = data
            .claims
            .sub
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .map(|(namespace, name)| Workload {
                namespace: namespace.to_owned(),
                service_account: name.to_owned(),
            })
            .ok_or(LoginError::Subject)?;
        let allowed = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        if !allowed(&self.namespaces, &workload.namespace) {
            return Err(LoginError::Namespace(workload.namespace));
        }
        if !allowed(&self.service_accounts, &workload.service_account) {
            return Err(LoginError::ServiceAccount(workload.service_account));
        }
        Ok(workload)
    }
}
