//! The `aws-kms` provider against a real KMS-compatible server (`moto`), the data-key cache in
//! front of it, KMS outages, and re-wrapping a store from the local key ring to AWS KMS and back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use leasehold_broker::crypto::{Binding, DataKey, Kms, KmsError, WrappedKey};
use leasehold_broker::settings::DataKeyCacheSettings;
use leasehold_broker::startup;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::leasehold;
use crate::helpers::{
    Backend, TestApp, contains, raw_dump, spawn_app, spawn_app_with, start_with_kms,
};
use crate::moto::{self, Moto};
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

const CANARY: &str = "CANARY-aws-kms-2c41d9e0-never-stored";

async fn spawn_on_aws(backend: Backend, moto: &Moto, cache: DataKeyCacheSettings) -> TestApp {
    spawn_app_with(backend, |settings| {
        settings.kms = moto.settings(None, cache)
    })
    .await
}

/// The real providers, with every `unwrap` that reaches the KMS counted.
struct CountingKms {
    inner: Arc<dyn Kms>,
    unwraps: AtomicUsize,
}

#[async_trait]
impl Kms for CountingKms {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }
    fn active_key(&self) -> &str {
        self.inner.active_key()
    }
    fn holds(&self, key_id: &str) -> bool {
        self.inner.holds(key_id)
    }
    async fn wrap_under(
        &self,
        key_id: &str,
        key: &DataKey,
        binding: &Binding,
    ) -> Result<WrappedKey, KmsError> {
        self.inner.wrap_under(key_id, key, binding).await
    }
    async fn unwrap(&self, wrapped: &WrappedKey, binding: &Binding) -> Result<DataKey, KmsError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(wrapped, binding).await
    }
    async fn resolve(&self, key_id: &str) -> Result<String, KmsError> {
        self.inner.resolve(key_id).await
    }
}

/// Values, wrapped keys and key ids of every secret version, for before/after comparisons.
async fn sealed_rows(app: &TestApp) -> Vec<(Vec<u8>, Vec<u8>, String)> {
    let sql = "SELECT ciphertext, wrapped_key, kms_key_id FROM secret_versions \
               WHERE ciphertext IS NOT NULL ORDER BY secret_id, version";
    match &app.store {
        leasehold_broker::store::Store::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        leasehold_broker::store::Store::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .expect("sealed rows")
}

async fn read_value(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.get(&format!("/v1/secrets/prod/{path}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kms_wraps_data_keys_bound_to_their_row() {
    let moto = Moto::start().await;
    let app = spawn_on_aws(Backend::Sqlite, &moto, DataKeyCacheSettings::default()).await;
    let a = app.create_secret("prod", "aws/a").await;
    let b = app.create_secret("prod", "aws/b").await;
    app.put_version(&a, CANARY, "CURRENT").await;
    app.put_version(&b, "value-of-b", "CURRENT").await;

    let (status, read) = read_value(&app, "aws/a").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["value"], CANARY);
    for (ciphertext, wrapped, key_id) in sealed_rows(&app).await {
        assert_eq!(
            key_id, moto.key_arn,
            "wrapped under the alias's key, named by ARN"
        );
        assert!(!contains(&ciphertext, CANARY) && !contains(&wrapped, CANARY));
    }
    assert!(
        !contains(&raw_dump(&app).await, CANARY),
        "plaintext in the store"
    );

    // Read through a broker with a cold cache, so the KMS itself judges the context: a
    // wrapped key moved onto another row is refused there.
    app.copy_sealed_value("aws/a", "aws/b").await;
    let replica = app.spawn_replica().await;
    let (status, body) = read_value(&replica, "aws/b").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "integrity_error");
    assert!(!body.to_string().contains(CANARY));
    let (status, read) = read_value(&replica, "aws/a").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["value"], CANARY);

    let (status, health) = replica.get("/v1/sys/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let metrics = replica.metrics().await;
    assert!(
        metrics.contains("leasehold_kms_calls_total{provider=\"aws-kms\",operation=\"unwrap\"}"),
        "KMS calls are counted by provider and operation"
    );
    assert!(!metrics.contains(CANARY));
    replica.shutdown().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_cold_reads_make_one_decrypt_call() {
    let moto = Moto::start().await;
    let app = spawn_on_aws(Backend::Sqlite, &moto, DataKeyCacheSettings::default()).await;
    let id = app.create_secret("prod", "hot/key").await;
    app.put_version(&id, "hot-value", "CURRENT").await;

    // Another broker on the same store: nothing in its cache yet.
    let counting = Arc::new(CountingKms {
        inner: startup::kms_from_settings(&app.db.settings().kms)
            .await
            .expect("kms"),
        unwraps: AtomicUsize::new(0),
    });
    let cold = start_with_kms(app.db.clone(), Some(app.token.clone()), counting.clone()).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1000)
        .build()
        .expect("client");
    let url = format!("{}/v1/secrets/prod/hot/key", cold.addr);
    let reads = (0..1000).map(|_| {
        let request = http.get(&url).bearer_auth(&cold.token).send();
        async move {
            let response = request.await.expect("read");
            (
                response.status(),
                response.json::<Value>().await.expect("json"),
            )
        }
    });
    for (status, body) in futures_util::future::join_all(reads).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"], "hot-value");
    }
    assert_eq!(counting.unwraps.load(Ordering::SeqCst), 1);
    cold.shutdown().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_outage_fails_closed_within_its_timeout_and_heals_without_a_restart() {
    let moto = Moto::start().await;
    let cache = DataKeyCacheSettings {
        max_age_seconds: 4,
        ..DataKeyCacheSettings::default()
    };
    let app = spawn_on_aws(Backend::Sqlite, &moto, cache).await;
    let warm = app.create_secret("prod", "outage/warm").await;
    let cold = app.create_secret("prod", "outage/cold").await;
    app.put_version(&warm, "warm-value", "CURRENT").await;
    app.put_version(&cold, "cold-value", "CURRENT").await;
    // A fresh broker that has read only the warm secret.
    let app = app.restart().await;
    let (status, _) = read_value(&app, "outage/warm").await;
    assert_eq!(status, StatusCode::OK);
    let warmed_at = Instant::now();
    let versions_before = app.snapshot().await[1];

    moto.pause();
    let (status, read) = read_value(&app, "outage/warm").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a cached data key keeps working: {read}"
    );
    assert_eq!(read["value"], "warm-value");

    let started = Instant::now();
    let (status, body) = read_value(&app, "outage/cold").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "kms_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the KMS timeout, took {:?}",
        started.elapsed()
    );
    let (status, body) = app
        .post(
            &format!("/v1/secrets/{warm}/versions"),
            json!({"value": "written-during-outage", "status": "CURRENT"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "kms_unavailable");
    assert_eq!(app.snapshot().await[1], versions_before, "no partial write");
    let (status, health) = app.get("/v1/sys/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["kms"]["ok"], false);
    assert_eq!(health["storage"]["ok"], true);

    // Past the cache's max age even the warm key is gone.
    let expiry = Duration::from_secs(4).saturating_sub(warmed_at.elapsed());
    tokio::time::sleep(expiry + Duration::from_millis(300)).await;
    let (status, body) = read_value(&app, "outage/warm").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    moto.resume();
    let (status, health) = app.get("/v1/sys/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    for (path, value) in [("outage/warm", "warm-value"), ("outage/cold", "cold-value")] {
        let (status, read) = read_value(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(read["value"], value);
    }
    let version = app
        .put_version(&warm, "written-after-outage", "CURRENT")
        .await;
    let (_, read) = read_value(&app, "outage/warm").await;
    assert_eq!(read["version"], version);
    assert_eq!(read["value"], "written-after-outage");
    app.cleanup().await;
}

/// Re-wraps batch after batch until the broker says every table was walked.
async fn rewrap_all(app: &TestApp, to: &str, batch_size: u64) -> u64 {
    let mut after: Option<String> = None;
    let mut rewrapped = 0;
    loop {
        let (status, batch) = app
            .post(
                "/v1/sys/kms/rewrap",
                json!({"to": to, "batchSize": batch_size, "after": after}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{batch}");
        assert_eq!(batch["failed"], json!([]), "{batch}");
        rewrapped += batch["rewrapped"].as_u64().expect("count");
        match batch["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                assert_eq!(batch["remaining"], 0, "{batch}");
                return rewrapped;
            }
        }
    }
}

async fn not_under_active_key(app: &TestApp) -> i64 {
    let (status, kms) = app.get("/v1/sys/kms").await;
    assert_eq!(status, StatusCode::OK, "{kms}");
    kms["notUnderActiveKey"].as_i64().expect("count")
}

/// Every secret reads back as written and the backend's sealed admin password still logs in.
async fn assert_everything_reads(app: &TestApp, values: &[(String, String)]) {
    for (path, value) in values {
        let (status, read) = read_value(app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {read}");
        assert_eq!(read["value"], value.as_str(), "{path}");
    }
    let (status, body) = app.post("/v1/backends/db/verify", json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the backend's admin password opens: {body}"
    );
}

async fn migrate_local_to_aws_and_back(backend: Backend) {
    let moto = Moto::start().await;
    let app = spawn_app(backend).await;
    let target = Target::create(Kind::Mariadb).await;
    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/backends/db",
            Some(target.backend_body(ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut values = Vec::new();
    for n in 0..3 {
        let path = format!("migrate/s{n}");
        let id = app.create_secret("prod", &path).await;
        app.put_version(&id, &format!("first-{n}"), "CURRENT").await;
        app.put_version(&id, &format!("second-{n}"), "CURRENT")
            .await;
        values.push((path, format!("second-{n}")));
        if n == 0 {
            let (status, body) = app
                .post(&format!("/v1/secrets/{id}/versions/1/destroy"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let ciphertexts = |rows: Vec<(Vec<u8>, Vec<u8>, String)>| {
        rows.into_iter().map(|row| row.0).collect::<Vec<_>>()
    };
    let sealed_before = ciphertexts(sealed_rows(&app).await);
    assert_eq!(sealed_before.len(), 5);
    assert_eq!(not_under_active_key(&app).await, 0);

    // AWS KMS becomes the active provider; the local ring stays to unwrap what it wrapped.
    let key_file = app.db.key_file();
    app.db
        .set_kms(moto.settings(Some(key_file.clone()), DataKeyCacheSettings::default()));
    let app = app.restart().await;
    assert_everything_reads(&app, &values).await;
    // Five versions and the backend's admin password.
    assert_eq!(not_under_active_key(&app).await, 6);

    // A run interrupted by a restart after its first batch resumes by starting again.
    let (status, first) = app
        .post(
            "/v1/sys/kms/rewrap",
            json!({"to": moto::ALIAS, "batchSize": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["rewrapped"], 2);
    assert_eq!(first["remaining"], 4);
    assert_eq!(first["targetKeyId"], moto.key_arn.as_str());
    let app = app.restart().await;
    assert_eq!(rewrap_all(&app, &moto.key_arn, 2).await, 4);
    assert_eq!(not_under_active_key(&app).await, 0);
    let sealed = sealed_rows(&app).await;
    assert!(sealed.iter().all(|row| row.2 == moto.key_arn));
    assert_eq!(
        ciphertexts(sealed),
        sealed_before,
        "no ciphertext was touched"
    );

    // The local ring can be retired.
    app.db
        .set_kms(moto.settings(None, DataKeyCacheSettings::default()));
    let app = app.restart().await;
    assert_everything_reads(&app, &values).await;

    // And back: the local ring active again, AWS KMS kept until the re-wrap is done.
    let mut back = leasehold_broker::settings::KmsSettings::local(key_file.clone());
    back.aws = Some(moto.aws_settings());
    app.db.set_kms(back);
    let app = app.restart().await;
    assert_eq!(rewrap_all(&app, "local-1", 200).await, 6);
    app.db
        .set_kms(leasehold_broker::settings::KmsSettings::local(key_file));
    let app = app.restart().await;
    assert_everything_reads(&app, &values).await;
    assert_eq!(ciphertexts(sealed_rows(&app).await), sealed_before);
    app.cleanup().await;
    target.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_local_to_aws_and_back_sqlite() {
    migrate_local_to_aws_and_back(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_local_to_aws_and_back_postgres() {
    migrate_local_to_aws_and_back(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_refuses_bad_requests_and_changes_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let id = app.create_secret("prod", "rewrap/bad").await;
    app.put_version(&id, "v", "CURRENT").await;
    let before = sealed_rows(&app).await;
    for (body, field, case) in [
        (
            json!({"to": "local-2"}),
            "to",
            "a key the ring does not hold",
        ),
        (
            json!({"to": "alias/elsewhere"}),
            "to",
            "a provider that is not configured",
        ),
        (
            json!({"to": "local-1", "batchSize": 0}),
            "batchSize",
            "empty batch",
        ),
        (
            json!({"to": "local-1", "batchSize": 5000}),
            "batchSize",
            "batch too large",
        ),
        (
            json!({"to": "local-1", "after": "x'; DROP TABLE secrets; --"}),
            "after",
            "forged cursor",
        ),
        (
            json!({"to": "local-1", "extra": true}),
            "unknown field",
            "unknown field",
        ),
        (json!({}), "to", "no target"),
    ] {
        let (status, answer) = app.post("/v1/sys/kms/rewrap", body).await;
        assert!(status.is_client_error(), "case: {case}: {status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            answer["error"]["field"] == field || message.contains(field),
            "case: {case}: {answer}"
        );
    }
    let service = app.token_for("service:prod:app", json!({})).await;
    for (method, path) in [
        (Method::GET, "/v1/sys/kms"),
        (Method::POST, "/v1/sys/kms/rewrap"),
    ] {
        let (status, answer) = app
            .request_as(&service, method, path, Some(json!({"to": "local-1"})), &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
    assert_eq!(sealed_rows(&app).await, before, "nothing changed");
    app.cleanup().await;
}

/// The operator's path for a local key ring, through the binary: rotate the ring, restart, see
/// the old key's rows in `kms status`, re-wrap them, and read every version back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rotates_the_local_ring_and_rewraps_under_the_new_key() {
    let app = spawn_app(Backend::Sqlite).await;
    let id = app.create_secret("prod", "cli/rewrap").await;
    for n in 1..=3 {
        app.put_version(&id, &format!("value-{n}"), "CURRENT").await;
    }
    let key_file = app.db.key_file().display().to_string();
    let (ok, out, err) = leasehold(
        &app,
        &["kms", "rotate-local-key", "--key-file", &key_file],
        None,
    )
    .await;
    assert!(ok, "{out} {err}");
    assert!(out.contains("local-2"), "{out}");
    let app = app.restart().await;

    let (ok, out, err) = leasehold(&app, &["kms", "status"], None).await;
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("local-2") && out.contains("3 data keys are not under the active key"),
        "{out}"
    );

    let (ok, out, err) = leasehold(
        &app,
        &[
            "--json",
            "kms",
            "rewrap",
            "--to",
            "local-2",
            "--batch-size",
            "2",
        ],
        None,
    )
    .await;
    assert!(ok, "{out} {err}");
    let summary: Value = serde_json::from_str(&out).expect("json summary");
    assert_eq!(summary["rewrapped"], 3, "{summary}");
    assert_eq!(summary["remaining"], 0, "{summary}");
    assert_eq!(not_under_active_key(&app).await, 0);

    let (ok, out, err) = leasehold(&app, &["kms", "rewrap", "--to", "local-1"], None).await;
    assert!(
        !ok,
        "re-wrapping under a key that is not the active one is refused: {out}"
    );
    assert!(err.contains("make `local-1` the active key first"), "{err}");
    for n in 1..=3 {
        let (status, read) = app
            .get(&format!("/v1/secrets/prod/cli/rewrap?version={n}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(read["value"], format!("value-{n}"));
    }
    app.cleanup().await;
}
