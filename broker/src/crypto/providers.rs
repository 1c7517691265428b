//! Several KMS providers behind one: the active one wraps new data keys; every configured one
//! unwraps the keys it holds. This is what lets a store hold data keys wrapped by a local key
//! ring and by AWS KMS at the same time while `leasehold kms rewrap` moves them across.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Binding, DataKey, Kms, KmsError, WrappedKey};

/// The configured providers; the first is the active one.
pub struct KmsProviders {
    active: Arc<dyn Kms>,
    others: Vec<Arc<dyn Kms>>,
}

impl KmsProviders {
    pub fn new(active: Arc<dyn Kms>, others: Vec<Arc<dyn Kms>>) -> Self {
        Self { active, others }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<dyn Kms>> {
        std::iter::once(&self.active).chain(&self.others)
    }

    fn holder(&self, key_id: &str) -> Result<&Arc<dyn Kms>, KmsError> {
        self.all()
            .find(|provider| provider.holds(key_id))
            .ok_or_else(|| KmsError::UnknownKey(key_id.to_owned()))
    }
}

#[async_trait]
impl Kms for KmsProviders {
    fn provider(&self) -> &'static str {
        self.active.provider()
    }

    fn active_key(&self) -> &str {
        self.active.active_key()
    }

    fn holds(&self, key_id: &str) -> bool {
        self.all().any(|provider| provider.holds(key_id))
    }

    async fn wrap_under(
        &self,
        key_id: &str,
        key: &DataKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError> {
        self.holder(key_id)?.wrap_under(key_id, key, binding).await
    }

    async fn unwrap(&self, wrapped: &WrappedKey, binding: &Binding) -> Result<DataKey, KmsError> {
        self.holder(&wrapped.key_id)?.unwrap(wrapped, binding).await
    }

    async fn resolve(&self, key_id: &str) -> Result<String, KmsError> {
        self.holder(key_id)?.resolve(key_id).await
    }

    async fn wrap(&self, key: &DataKey, binding: &Binding) -> Result<WrappedKey, KmsError> {
        self.active.wrap(key, binding).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::LocalKms;

    #[tokio::test]
    async fn new_keys_go_to_the_active_provider_and_unknown_key_ids_are_named() {
        let active: Arc<dyn Kms> = Arc::new(LocalKms::ephemeral());
        let providers = KmsProviders::new(active.clone(), Vec::new());
        let binding = Binding::health_probe();
        let key = DataKey::generate();

        let wrapped = providers.wrap(&key, &binding).await.expect("wrap");
        let back = active
            .unwrap(&wrapped, &binding)
            .await
            .expect("active unwraps");
        assert_eq!(back.expose(), key.expose());

        let unknown = WrappedKey {
            key_id: "local-99".into(),
            blob: wrapped.blob.clone(),
        };
        assert!(matches!(
            providers.unwrap(&unknown, &binding).await,
            Err(KmsError::UnknownKey(id)) if id == "local-99"
        ));
        assert!(matches!(
            providers.wrap_under("alias/nowhere", &key, &binding).await,
            Err(KmsError::UnknownKey(_))
        ));
    }
}
