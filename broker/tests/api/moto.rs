//! A private `moto` server per test: a real KMS-compatible server on 127.0.0.1 speaking the AWS
//! KMS wire protocol, with one fresh key behind an alias. `pause` freezes the process (SIGSTOP),
//! so the broker meets a KMS that accepts connections and never answers; `resume` lets it go on
//! with its keys intact.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use leasehold_broker::settings::{AwsKmsSettings, DataKeyCacheSettings, KmsProvider, KmsSettings};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const ALIAS: &str = "alias/leasehold-test";

pub struct Moto {
    pub url: String,
    /// The ARN of the key behind [`ALIAS`].
    pub key_arn: String,
    child: tokio::process::Child,
    /// Holds the audit HMAC key of a broker that has no local key ring.
    dir: tempfile::TempDir,
}

/// `moto_server`, or what `LEASEHOLD_TEST_MOTO_SERVER` names (`tests/run` installs it).
fn moto_binary() -> String {
    std::env::var("LEASEHOLD_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Moto {
    pub async fn start() -> Self {
        let port = free_port();
        let child = tokio::process::Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Killed with the test, frozen or not.
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server (pip install 'moto[server]', or run tests/run)");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while http.get(&url).send().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto_server did not answer on {url} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut moto = Self {
            url,
            key_arn: String::new(),
            child,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let created = moto
            .call("CreateKey", json!({"Description": "leasehold test"}))
            .await;
        moto.key_arn = created["KeyMetadata"]["Arn"]
            .as_str()
            .expect("key ARN")
            .to_owned();
        let key_id = created["KeyMetadata"]["KeyId"].as_str().expect("key id");
        moto.call(
            "CreateAlias",
            json!({"AliasName": ALIAS, "TargetKeyId": key_id}),
        )
        .await;
        moto
    }

    /// One KMS request in the wire protocol, as any AWS client sends it.
    pub async fn call(&self, operation: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(&self.url)
            .header("X-Amz-Target", format!("TrentService.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            // moto routes a request to a service by the credential scope of its signature.
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("moto request");
        let status = response.status();
        let text = response.text().await.expect("moto body");
        assert!(status.is_success(), "{operation}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("moto is running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Freezes the server: connections are accepted, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `provider = "aws-kms"` against this server, with the local key ring `key_file` kept
    /// beside it when given (its audit HMAC key stays the one beside the ring).
    pub fn settings(&self, key_file: Option<PathBuf>, cache: DataKeyCacheSettings) -> KmsSettings {
        KmsSettings {
            provider: KmsProvider::AwsKms,
            audit_hmac_key_file: key_file
                .is_none()
                .then(|| self.dir.path().join("audit-hmac.key")),
            key_file,
            aws: Some(self.aws_settings()),
            cache,
        }
    }

    pub fn aws_settings(&self) -> AwsKmsSettings {
        AwsKmsSettings {
            key_id: ALIAS.to_owned(),
            region: "us-east-1".to_owned(),
            endpoint_url: Some(self.url.clone()),
            // Explicit credentials: the AWS chain would otherwise look for an instance role.
            access_key_id: Some("test".to_owned()),
            secret_access_key: Some(SecretString::from("test")),
            timeout_ms: 600,
        }
    }
}
