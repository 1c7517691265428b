//! The `aws-kms` provider: data keys wrapped by AWS KMS (or a KMS-compatible server) with
//! `Encrypt` and unwrapped with `Decrypt`, under an encryption context that repeats the row
//! binding, so a wrapped key copied onto another row is refused by the KMS itself.
//!
//! Every call is bounded by `timeout_ms` (one retry inside it), so an unreachable or silent KMS
//! turns into `KmsError::Unavailable` quickly and never hangs a request.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::{Binding, DataKey, Kms, KmsError, WrappedKey};
use crate::settings::AwsKmsSettings;

/// The AWS KMS provider.
pub struct AwsKms {
    client: Client,
    key_id: String,
    /// The ARN behind `key_id`, looked up once (an alias may name it).
    resolved: OnceCell<String>,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// Builds the client. Nothing is sent until the first wrap, unwrap or health check, so a
    /// KMS that is down at start-up delays no start.
    pub async fn new(settings: &AwsKmsSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()));
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.expose_secret().to_owned(),
                None,
                None,
                "leasehold-settings",
            ));
        }
        let shared = loader.load().await;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut config = aws_sdk_kms::config::Builder::from(&shared)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout / 2)
                    .operation_attempt_timeout(timeout / 2)
                    .operation_timeout(timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(url) = &settings.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        Self {
            client: Client::from_conf(config.build()),
            key_id: settings.key_id.clone(),
            resolved: OnceCell::new(),
        }
    }
}

/// Whether `key_id` has the shape of an AWS KMS key id: an ARN, an alias, a key UUID or a
/// multi-region key id. Local key-ring ids (`local-N`) never do.
fn is_aws_key_id(key_id: &str) -> bool {
    key_id.starts_with("arn:aws")
        || key_id.starts_with("alias/")
        || key_id.starts_with("mrk-")
        || uuid::Uuid::parse_str(key_id).is_ok()
}

/// The encryption context: the row binding, field by field, checked by the KMS on `Decrypt`.
fn encryption_context(binding: &Binding) -> HashMap<String, String> {
    HashMap::from([
        ("leasehold:tenant".to_owned(), binding.tenant.clone()),
        (
            "leasehold:environment".to_owned(),
            binding.environment.clone(),
        ),
        ("leasehold:path".to_owned(), binding.path.clone()),
        ("leasehold:version".to_owned(), binding.version.to_string()),
    ])
}

/// Sorts an SDK failure into what the broker does about it: retry later (unreachable,
/// throttled, KMS-internal), an integrity failure (wrong context or ciphertext), a key the KMS
/// does not know, or a refusal an operator must fix (disabled key, missing permission).
fn classify<E>(error: SdkError<E>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let Some(service) = error.as_service_error() else {
        return KmsError::Unavailable(DisplayErrorContext(&error).to_string());
    };
    let message = service.message().unwrap_or("no message").to_owned();
    match service.code().unwrap_or_default() {
        "InvalidCiphertextException" | "IncorrectKeyException" => KmsError::Integrity,
        "NotFoundException" => KmsError::UnknownKey(message),
        "ThrottlingException"
        | "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ServiceUnavailableException"
        | "InternalFailure" => KmsError::Unavailable(message),
        code => KmsError::Rejected(format!("{code}: {message}")),
    }
}

#[async_trait]
impl Kms for AwsKms {
    fn provider(&self) -> &'static str {
        "aws-kms"
    }

    fn active_key(&self) -> &str {
        &self.key_id
    }

    fn holds(&self, key_id: &str) -> bool {
        is_aws_key_id(key_id)
    }

    async fn wrap_under(
        &self,
        key_id: &str,
        key: &DataKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError> {
        if !self.holds(key_id) {
            return Err(KmsError::UnknownKey(key_id.to_owned()));
        }
        // The SDK owns this copy while it builds the request; ours are zeroized.
        let output = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(key.expose().to_vec()))
            .set_encryption_context(Some(encryption_context(binding)))
            .send()
            .await
            .map_err(classify)?;
        let (Some(blob), Some(arn)) = (output.ciphertext_blob, output.key_id) else {
            return Err(KmsError::Rejected(
                "Encrypt answered without a ciphertext or key id".into(),
            ));
        };
        Ok(WrappedKey {
            key_id: arn,
            blob: blob.into_inner(),
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, binding: &Binding) -> Result<DataKey, KmsError> {
        if !self.holds(&wrapped.key_id) {
            return Err(KmsError::UnknownKey(wrapped.key_id.clone()));
        }
        let output = self
            .client
            .decrypt()
            .key_id(&wrapped.key_id)
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .set_encryption_context(Some(encryption_context(binding)))
            .send()
            .await
            .map_err(classify)?;
        let plaintext = Zeroizing::new(
            output
                .plaintext
                .map(Blob::into_inner)
                .ok_or(KmsError::Integrity)?,
        );
        let key: [u8; 32] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| KmsError::Integrity)?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }

    async fn resolve(&self, key_id: &str) -> Result<String, KmsError> {
        if !self.holds(key_id) {
            return Err(KmsError::UnknownKey(key_id.to_owned()));
        }
        let describe = || async {
            let output = self
                .client
                .describe_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(classify)?;
            output
                .key_metadata
                .and_then(|metadata| metadata.arn)
                .ok_or_else(|| KmsError::UnknownKey(key_id.to_owned()))
        };
        if key_id == self.key_id {
            self.resolved.get_or_try_init(describe).await.cloned()
        } else {
            describe().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_key_ids_are_told_apart_from_local_ones() {
        for (key_id, aws, case) in [
            (
                "arn:aws:kms:us-east-1:123456789012:key/0b6bdbd6-4d1b-4c25-9c5a-2f2c1c8d0f5e",
                true,
                "key ARN",
            ),
            ("alias/leasehold", true, "alias"),
            ("0b6bdbd6-4d1b-4c25-9c5a-2f2c1c8d0f5e", true, "bare key id"),
            ("mrk-1234abcd", true, "multi-region key"),
            ("local-1", false, "local key ring id"),
            ("", false, "empty"),
        ] {
            assert_eq!(is_aws_key_id(key_id), aws, "case: {case}");
        }
    }

    #[test]
    fn the_encryption_context_names_every_binding_field() {
        let context = encryption_context(&Binding {
            tenant: "t".into(),
            environment: "prod".into(),
            path: "a/b".into(),
            version: 7,
        });
        assert_eq!(context.len(), 4);
        assert_eq!(context["leasehold:version"], "7");
        assert_eq!(context["leasehold:path"], "a/b");
    }
}
