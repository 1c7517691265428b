//! `spawn_app()`: the real server on port 0 against a fresh SQLite file or a fresh PostgreSQL
//! database made for one test, with an admin token and typed request helpers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use leasehold_broker::auth::{MintRequest, TokenService};
use leasehold_broker::crypto::Kms;
use leasehold_broker::domain::Tenant;
use leasehold_broker::settings::{KmsSettings, Settings};
use leasehold_broker::startup::{self, Application};
use leasehold_broker::store::Store;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("LEASEHOLD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that belongs to one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub name: String,
    pub dir: tempfile::TempDir,
    pub alert_webhook_url: Option<String>,
    pub audit_sink: Option<leasehold_broker::audit::SinkSettings>,
    pub revocation_retry_budget_seconds: u64,
    pub scheduler_claim_seconds: u64,
    pub lease_intent_grace_seconds: u64,
    pub audit_timeout_ms: u64,
    pub revoked_lease_retention_seconds: u64,
    /// The KMS configuration of the next start, when not the local key ring in `dir`.
    kms: std::sync::Mutex<Option<KmsSettings>>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("lh_test_{}", uuid::Uuid::new_v4().simple());
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("leasehold.db").display()),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let pool = sqlx::PgPool::connect(&admin).await.expect(
                    "PostgreSQL on 127.0.0.1:5432 (set LEASEHOLD_TEST_POSTGRES_URL or run tests/run)",
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        };
        Self {
            backend,
            url,
            name,
            dir,
            alert_webhook_url: None,
            audit_sink: None,
            revocation_retry_budget_seconds: 24 * 3600,
            scheduler_claim_seconds: 60,
            lease_intent_grace_seconds: 120,
            audit_timeout_ms: 2000,
            revoked_lease_retention_seconds: 7 * 24 * 3600,
            kms: std::sync::Mutex::new(None),
        }
    }

    /// Starts every later server (restarts, replicas) with this KMS configuration.
    pub fn set_kms(&self, kms: KmsSettings) {
        *self.kms.lock().expect("kms settings") = Some(kms);
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    pub fn settings(&self) -> Settings {
        Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: SecretString::from(self.url.clone()),
            max_connections: 8,
            max_value_bytes: 64 * 1024,
            tls: None,
            kms: self
                .kms
                .lock()
                .expect("kms settings")
                .clone()
                .unwrap_or_else(|| KmsSettings::local(self.key_file())),
            alert_webhook_url: self.alert_webhook_url.clone(),
            audit_timeout_ms: self.audit_timeout_ms,
            audit_sink: self.audit_sink.clone(),
            lease_intent_grace_seconds: self.lease_intent_grace_seconds,
            revocation_retry_budget_seconds: self.revocation_retry_budget_seconds,
            scheduler_claim_seconds: self.scheduler_claim_seconds,
            revocation_fence_seconds: 24 * 3600,
            revoked_lease_retention_seconds: self.revoked_lease_retention_seconds,
        }
    }

    /// Drops the PostgreSQL database; the SQLite file goes with the temporary directory.
    pub async fn drop_database(&self) {
        if self.backend == Backend::Postgres {
            let pool = sqlx::PgPool::connect(&postgres_admin_url())
                .await
                .expect("admin");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&pool)
            .await
            .expect("drop test database");
            pool.close().await;
        }
    }
}

pub struct TestApp {
    pub addr: String,
    pub token: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub db: Arc<TestDb>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// `spawn_app` with the settings adjusted first (e.g. an alert webhook).
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut db = TestDb::create(backend).await;
    let mut settings = db.settings();
    adjust(&mut settings);
    db.alert_webhook_url = settings.alert_webhook_url;
    db.audit_sink = settings.audit_sink;
    db.revocation_retry_budget_seconds = settings.revocation_retry_budget_seconds;
    db.scheduler_claim_seconds = settings.scheduler_claim_seconds;
    db.lease_intent_grace_seconds = settings.lease_intent_grace_seconds;
    db.audit_timeout_ms = settings.audit_timeout_ms;
    db.revoked_lease_retention_seconds = settings.revoked_lease_retention_seconds;
    db.set_kms(settings.kms);
    let db = Arc::new(db);
    let mut app = start(db, None).await;
    let tenant = Tenant::default_tenant();
    let issued = TokenService::new(app.store.clone())
        .mint(MintRequest::administrator("user:test-admin", &tenant))
        .await
        .expect("mint admin token");
    app.token = issued.token.expose_secret().to_owned();
    app
}

/// Starts a server on `db`; a restart passes the token of the previous run.
async fn start(db: Arc<TestDb>, token: Option<String>) -> TestApp {
    let kms: Arc<dyn Kms> = startup::kms_from_settings(&db.settings().kms)
        .await
        .expect("kms");
    start_with_kms(db, token, kms).await
}

/// Starts a server on `db` whose KMS providers are `kms` (a test's counting wrapper around the
/// real ones, say); the data-key cache goes in front as always.
pub async fn start_with_kms(db: Arc<TestDb>, token: Option<String>, kms: Arc<dyn Kms>) -> TestApp {
    let settings = db.settings();
    let store = startup::open_store(&settings).await.expect("store");
    let app = Application::build(&settings, store.clone(), kms).expect("build");
    let addr = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        token: token.unwrap_or_default(),
        http: reqwest::Client::new(),
        store,
        db,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server gracefully, keeping the database.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("server result");
        }
        self.store.close().await;
    }

    /// Stops and starts the server on the same database and key file.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let token = std::mem::take(&mut self.token);
        start(self.db.clone(), Some(token)).await
    }

    /// A second broker on the same database and key file, as another replica would be.
    pub async fn spawn_replica(&self) -> TestApp {
        start(self.db.clone(), Some(self.token.clone())).await
    }

    /// Stops the server, keeping the database for the other replicas.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Stops the server and drops the test database.
    pub async fn cleanup(mut self) {
        self.stop().await;
        self.db.drop_database().await;
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.addr))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    /// Deletes backend `name`, revoking its live leases first, and checks that it is gone.
    pub async fn remove_backend(&self, name: &str) {
        let path = format!("/v1/backends/{name}?revokeLeases=true");
        let (status, body) = self.request(Method::DELETE, &path, None).await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "deleting backend {name}: {body}"
        );
    }

    /// Mints a token for `principal` through the API and returns its text.
    pub async fn token_for(&self, principal: &str, body: Value) -> String {
        let mut request = json!({"principal": principal, "ttl": "1h"});
        if let (Some(target), Some(extra)) = (request.as_object_mut(), body.as_object()) {
            target.extend(extra.clone());
        }
        let (status, body) = self.post("/v1/auth/tokens", request).await;
        assert_eq!(status, StatusCode::CREATED, "mint token: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// The same request as another caller.
    pub async fn request_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.addr))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates `environment/path` and returns its id.
    pub async fn create_secret(&self, environment: &str, path: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/secrets",
                json!({"environment": environment, "path": path, "ownerTeam": "payments"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create secret: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Adds a version and returns its number.
    pub async fn put_version(&self, id: &str, value: &str, status: &str) -> i64 {
        let (code, body) = self
            .post(
                &format!("/v1/secrets/{id}/versions"),
                json!({"value": value, "status": status}),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "put version: {body}");
        body["version"].as_i64().expect("version")
    }

    /// Row counts and version counters, to prove a rejected request changed nothing.
    pub async fn snapshot(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for sql in [
            "SELECT COUNT(*) FROM secrets",
            "SELECT COUNT(*) FROM secret_versions",
            "SELECT COUNT(*) FROM secret_aliases",
            "SELECT CAST(COALESCE(SUM(latest_version), 0) AS BIGINT) FROM secrets",
            "SELECT COUNT(*) FROM secret_versions WHERE status = 'DISABLED'",
        ] {
            let value: i64 = match &self.store {
                Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
                Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            }
            .expect("snapshot query");
            counts.push(value);
        }
        counts
    }

    /// The Prometheus exposition text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Tampering: copies the sealed value (ciphertext and wrapped key) of the secret at path
    /// `from` onto the versions of the secret at path `to`.
    pub async fn copy_sealed_value(&self, from: &str, to: &str) {
        let source = |column: &str| {
            format!(
                "{column} = (SELECT v.{column} FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.path = '{from}')"
            )
        };
        self.execute(&format!(
            "UPDATE secret_versions SET {}, {}, {} WHERE secret_id = (SELECT id FROM secrets WHERE path = '{to}')",
            source("ciphertext"),
            source("wrapped_key"),
            source("kms_key_id")
        ))
        .await;
    }

    /// Makes every insert into the audit trail fail, as a broken audit table would: a trigger
    /// that raises, until `mend_audit`.
    pub async fn break_audit(&self) {
        match &self.store {
            Store::Sqlite(_) => {
                self.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END")
                    .await;
            }
            Store::Postgres(_) => {
                self.execute("CREATE OR REPLACE FUNCTION audit_broken() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected audit failure'; END $$ LANGUAGE plpgsql")
                    .await;
                self.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_broken()")
                    .await;
            }
        }
    }

    /// Makes inserts of events of the `event_types` fail (a trigger that raises for them
    /// alone), until `mend_audit`: an audit failure at exact steps of an operation.
    pub async fn break_audit_of(&self, event_types: &[&str]) {
        assert!(
            event_types
                .iter()
                .all(|t| t.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        );
        let listed = event_types
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        match &self.store {
            Store::Sqlite(_) => {
                self.execute(&format!("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events WHEN NEW.event_type IN ({listed}) BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END"))
                    .await;
            }
            Store::Postgres(_) => {
                self.execute(&format!("CREATE OR REPLACE FUNCTION audit_broken() RETURNS trigger AS $$ BEGIN IF NEW.event_type IN ({listed}) THEN RAISE EXCEPTION 'injected audit failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
                    .await;
                self.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_broken()")
                    .await;
            }
        }
    }

    /// Removes the trigger `break_audit` or `break_audit_of` created.
    pub async fn mend_audit(&self) {
        match &self.store {
            Store::Sqlite(_) => self.execute("DROP TRIGGER audit_broken").await,
            Store::Postgres(_) => {
                self.execute("DROP TRIGGER audit_broken ON audit_events")
                    .await;
            }
        }
    }

    /// The rows of `table` in the store (`table` may carry a `WHERE` clause).
    pub async fn rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.store {
            Store::Sqlite(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
            }
        }
        .expect("count rows")
    }

    /// Runs a statement directly against the store (tests that tamper with rows).
    pub async fn execute(&self, sql: &str) {
        match &self.store {
            Store::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(pool)
                .await
                .map(|_| ()),
            Store::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(pool)
                .await
                .map(|_| ()),
        }
        .expect("execute");
    }
}

/// An HTTP listener that forwards every JSON body it receives and answers 204.
pub async fn webhook() -> (String, mpsc::UnboundedReceiver<Value>) {
    webhook_answering(Arc::new(AtomicU16::new(204))).await
}

/// An HTTP listener that forwards every JSON body it receives and answers with the status held
/// in `status` at that moment (a test switches it to make the receiver fail).
pub async fn webhook_answering(status: Arc<AtomicU16>) -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let status = status.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            if let Ok(value) = serde_json::from_str(&body[..length]) {
                                let _ = tx.send(value);
                            }
                            let code = status.load(Ordering::SeqCst);
                            let reply = format!(
                                "HTTP/1.1 {code} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = socket.write_all(reply.as_bytes()).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

/// Every byte the store holds: the SQLite files, or a `pg_dump` of the test database.
pub async fn raw_dump(app: &TestApp) -> Vec<u8> {
    match app.db.backend {
        Backend::Sqlite => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(app.db.dir.path()).expect("dir") {
                let path = entry.expect("entry").path();
                if path.to_string_lossy().contains("leasehold.db") {
                    bytes.extend(std::fs::read(&path).expect("read db file"));
                }
            }
            bytes
        }
        Backend::Postgres => {
            let base = postgres_admin_url();
            let base = base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b);
            let output = tokio::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(format!("{base}/{}", app.db.name))
                .output()
                .await
                .expect("pg_dump (PostgreSQL client tools) must be installed");
            assert!(
                output.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }
    }
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Defines one test per store dialect from one async body taking a `TestApp`.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                ($body)(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await;
                ($body)(app).await;
            }
        }
    };
}
