//! Bearer tokens: 32 random bytes shown once as `lh_<base64url>`, stored as SHA-256 hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::TransactionEvents;
use crate::domain::Tenant;
use crate::store::{NewToken, Store, StoreError, TokenRow};

const TOKEN_PREFIX: &str = "lh_";

/// SHA-256 of the token text. Tokens carry 256 bits of entropy, so a plain hash is enough to
/// make a stolen `tokens` table useless.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token just minted; the only time its text exists outside the caller's hands.
pub struct IssuedToken {
    pub id: Uuid,
    pub token: SecretString,
    pub principal: String,
    pub tenant: Tenant,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// What a new token says about its holder.
pub struct MintRequest<'a> {
    pub principal: &'a str,
    pub tenant: &'a Tenant,
    /// Administrator tokens may do everything in their tenant and mint tokens in any tenant.
    pub is_admin: bool,
    pub mfa: bool,
    pub source_cluster: Option<&'a str>,
    pub created_by: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub text: Option<SecretString>,
    /// The mint's event, committed with the token and given its id; `None` for bootstrap
    /// tokens.
    pub audit: Option<TransactionEvents>,
}

impl<'a> MintRequest<'a> {
    /// An administrator token without expiry (bootstrap: dev root token, `operator init`).
    pub fn administrator(principal: &'a str, tenant: &'a Tenant) -> Self {
        Self {
            principal,
            tenant,
            is_admin: true,
            mfa: false,
            source_cluster: None,
            created_by: "bootstrap",
            expires_at: None,
            text: None,
            audit: None,
        }
    }
}

/// Mints and resolves tokens against the store.
#[derive(Clone)]
pub struct TokenService {
    store: Store,
}

impl TokenService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Mints a token; `request.text` fixes the token's text (the dev root token only).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn mint(&self, request: MintRequest<'_>) -> Result<IssuedToken, StoreError> {
        let token = request.text.unwrap_or_else(generate_token);
        let id = Uuid::new_v4();
        let audit = request
            .audit
            .map(|audit| audit.map(|event| event.detail("tokenId", id.to_string())));
        self.store
            .insert_token(
                &NewToken {
                    id,
                    token_hash: &hash_token(token.expose_secret()),
                    tenant: request.tenant.as_str(),
                    principal: request.principal,
                    is_admin: request.is_admin,
                    mfa: request.mfa,
                    source_cluster: request.source_cluster,
                    created_by: request.created_by,
                    expires_at: request.expires_at,
                    now: Utc::now(),
                },
                audit.as_ref(),
            )
            .await?;
        Ok(IssuedToken {
            id,
            token,
            principal: request.principal.to_owned(),
            tenant: request.tenant.clone(),
            expires_at: request.expires_at,
        })
    }

    /// The token with this text, live or not ([`is_live`] tells); `None` when unknown.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn find(&self, token: &str) -> Result<Option<TokenRow>, StoreError> {
        self.store.find_token(&hash_token(token)).await
    }

    /// Whether a token with this text exists at all (dev restarts reuse the stored root token).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn exists(&self, token: &str) -> Result<bool, StoreError> {
        Ok(self.store.find_token(&hash_token(token)).await?.is_some())
    }
}

/// Whether a token row may authenticate now: not revoked and not expired.
pub fn is_live(row: &TokenRow) -> bool {
    row.revoked_at.is_none() && row.expires_at.is_none_or(|e| e > Utc::now())
}

fn generate_token() -> SecretString {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::fill(&mut bytes[..]);
    SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_slice())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.expose_secret().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose_secret().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(hash_token(a.expose_secret()), hash_token(b.expose_secret()));
    }
}
