//! End to end: the real `leasehold` binary, started the way an operator starts it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `leasehold` binary next to this test's executable: `cargo test --workspace` builds it,
/// with the `fail-points` feature this crate's dev-dependency turns on.
fn leasehold_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("leasehold");
    assert!(
        bin.exists(),
        "{} missing: run the tests with `cargo test --workspace` (or tests/run), which builds it",
        bin.display()
    );
    bin
}

struct Server {
    child: Child,
    addr: String,
    root_token: Option<String>,
    /// The server's log lines (stderr), for the message of a failing assertion.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `leasehold server ARGS` and waits for it to print where it listens.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(leasehold_bin())
            .arg("server")
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn leasehold server");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut log_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = log_lines.next_line().await {
                sink.lock().expect("log lock").push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut root_token = None;
        let dev = args.contains(&"--dev");
        let read = async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    addr = Some(rest.trim().to_owned());
                }
                if let Some(token) = line.strip_prefix("Root Token: ") {
                    root_token = Some(token.trim().to_owned());
                }
                if addr.is_some() && (!dev || root_token.is_some()) {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("server start within 30 s");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            addr: addr.expect("listening line"),
            root_token,
            log,
        }
    }

    /// The server's warnings and errors so far, one per line.
    fn warnings(&self) -> String {
        let log = self.log.lock().expect("log lock");
        log.iter()
            .filter(|line| line.contains("\"WARN\"") || line.contains("\"ERROR\""))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM, then the exit status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("graceful exit within 20 s")
            .expect("wait")
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn dev_server_keeps_secrets_and_root_token_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let args = ["--dev", "--data-dir", data_arg, "--listen", "127.0.0.1:0"];
    let server = Server::start(&args, &[]).await;
    let token = server.root_token.clone().expect("Root Token line");
    assert!(token.starts_with("lh_"));

    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(data.join("master.key"))
        .expect("master.key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600, "master key file is private");

    let client = reqwest::Client::new();
    let (status, created) = call(&client, reqwest::Method::POST, format!("{}/v1/secrets", server.addr), &token,
        Some(json!({"environment":"prod","path":"payments/stripe-api-key","ownerTeam":"payments","rotationStrategy":"manual-overlap"}))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id of the new secret");
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/secrets/{id}/versions", server.addr),
        &token,
        Some(json!({"value":"dev-persisted","status":"CURRENT"})),
    )
    .await;
    assert_eq!(status, 201);

    let status = server.terminate().await;
    assert!(status.success(), "SIGTERM is a clean exit: {status}");

    let db = std::fs::read(data.join("leasehold.db")).expect("database file");
    let key = std::fs::read(data.join("master.key")).expect("key file");
    assert!(
        !db.windows(key.len().min(40))
            .any(|w| w == &key[..key.len().min(40)]),
        "the master key never enters the database"
    );

    let server = Server::start(&args, &[]).await;
    assert_eq!(
        server.root_token.as_deref(),
        Some(token.as_str()),
        "the same root token after a restart"
    );
    let (status, read) = call(
        &client,
        reqwest::Method::GET,
        format!(
            "{}/v1/secrets/prod/payments/stripe-api-key?alias=current",
            server.addr
        ),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read,
        json!({"path":"payments/stripe-api-key","version":1,"value":"dev-persisted","expiresAt":null})
    );
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn ephemeral_dev_server_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("never-created");
    let args = [
        "--dev",
        "--ephemeral",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ];
    let first = Server::start(&args, &[]).await;
    let first_token = first.root_token.clone().expect("token");
    let client = reqwest::Client::new();
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/secrets", first.addr),
        &first_token,
        Some(json!({"environment":"dev","path":"x","ownerTeam":"t"})),
    )
    .await;
    assert_eq!(status, 201);
    // A body that fails to parse while the token is being looked up cancels that lookup; the
    // in-memory store must survive the connection the pool closes for it.
    for _ in 0..3 {
        let (status, _) = call(
            &client,
            reqwest::Method::POST,
            format!("{}/v1/revocations", first.addr),
            &first_token,
            Some(json!({"selector": {"issuedAfter": "yesterday"}, "reason": "r", "ticket": "t"})),
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, list) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/secrets", first.addr),
        &first_token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["secrets"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(first.terminate().await.success());
    assert!(!data.exists(), "--ephemeral writes nothing to disk");

    let second = Server::start(&args, &[]).await;
    let second_token = second.root_token.clone().expect("token");
    assert_ne!(first_token, second_token);
    let (status, list) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/secrets", second.addr),
        &second_token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["secrets"], json!([]));
    assert!(second.terminate().await.success());
}

fn postgres_admin_url() -> String {
    std::env::var("LEASEHOLD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh PostgreSQL database to serve as one test's broker store.
struct StoreDatabase {
    name: String,
    url: String,
    admin: sqlx::PgPool,
}

impl StoreDatabase {
    async fn create() -> Self {
        let name = format!("lh_e2e_{}", uuid::Uuid::new_v4().simple());
        let admin_url = postgres_admin_url();
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create db");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            name,
            admin,
        }
    }

    async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .expect("drop db");
    }
}

/// `leasehold … | head` closes the pipe before the command is done printing: the command ends
/// quietly and successfully instead of panicking on the write.
#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("leasehold.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\n[kms]\nprovider = \"local\"\nkey_file = \"{}\"\n",
            dir.path().join("store.db").display(),
            dir.path().join("master.key").display()
        ),
    )
    .expect("write config");
    let mut migrate = Command::new(leasehold_bin())
        .args(["migrate", "--config", config.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn migrate");
    // The reader goes away before the command prints its one line.
    drop(migrate.stdout.take());
    let output = migrate.wait_with_output().await.expect("migrate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn production_server_on_postgres_with_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StoreDatabase::create().await;
    let database_url = store.url.clone();

    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let cert_file = dir.path().join("server.crt");
    let key_file = dir.path().join("server.key");
    std::fs::write(&cert_file, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write key");
    let config = dir.path().join("leasehold.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ndatabase_url = \"postgres://placeholder@127.0.0.1:1/none\"\n\
             [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[kms]\nprovider = \"local\"\nkey_file = \"{}\"\n",
            cert_file.display(),
            key_file.display(),
            dir.path().join("master.key").display()
        ),
    )
    .expect("write config");
    let config_arg = config.to_str().expect("utf-8");
    // The DSN comes from the environment, as production deployments pass it.
    let env = [("LEASEHOLD_DATABASE_URL", database_url.as_str())];

    let migrate = Command::new(leasehold_bin())
        .args(["migrate", "--config", config_arg])
        .envs(env)
        .output()
        .await
        .expect("migrate");
    assert!(
        migrate.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let init = Command::new(leasehold_bin())
        .args(["operator", "init", "--config", config_arg, "--json"])
        .envs(env)
        .output()
        .await
        .expect("init");
    assert!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let init: Value = serde_json::from_slice(&init.stdout).expect("init JSON");
    let token = init["token"].as_str().expect("token").to_owned();
    let again = Command::new(leasehold_bin())
        .args(["operator", "init", "--config", config_arg])
        .envs(env)
        .output()
        .await
        .expect("init again");
    assert!(!again.status.success(), "a store is initialised once");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));

    let server = Server::start(&["--config", config_arg, "--listen", "127.0.0.1:0"], &env).await;
    assert!(server.addr.starts_with("https://"), "{}", server.addr);
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("ca"),
        )
        .build()
        .expect("client");
    let (status, health) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/sys/health", server.addr),
        "",
        None,
    )
    .await;
    assert_eq!(status, 200, "{health}");

    let cli = Command::new(leasehold_bin())
        .args([
            "secret",
            "create",
            "prod/tls/checked",
            "--owner-team",
            "platform",
            "--ca-cert",
            cert_file.to_str().expect("utf-8"),
        ])
        .env("LEASEHOLD_ADDR", &server.addr)
        .env("LEASEHOLD_TOKEN", &token)
        .output()
        .await
        .expect("cli");
    assert!(
        cli.status.success(),
        "CLI over TLS: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let (status, list) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/secrets", server.addr),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["secrets"][0]["path"], "tls/checked");

    assert!(server.terminate().await.success());
    store.drop().await;
}

/// Runs SQL as MariaDB's root (127.0.0.1:3306, empty password, as `tests/run` sets up).
async fn mariadb_root(sql: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"));
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .expect("MariaDB on 127.0.0.1:3306");
    let rows: Vec<String> = conn.query(sql).await.unwrap_or_default();
    let _ = conn.disconnect().await;
    rows
}

/// A MariaDB admin login `<prefix>_admin` with every privilege and grant option.
async fn create_mariadb_admin(prefix: &str, password: &str) {
    mariadb_root(&format!(
        "CREATE USER '{prefix}_admin'@'%' IDENTIFIED BY '{password}'; \
         GRANT ALL PRIVILEGES ON *.* TO '{prefix}_admin'@'%' WITH GRANT OPTION"
    ))
    .await;
}

/// Writes `dir/leasehold.toml` for a store at `database_url` and a local key in `dir`, with
/// `extra` top-level settings; answers its path.
fn write_config(dir: &Path, database_url: &str, extra: &str) -> String {
    let config = dir.join("leasehold.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"{database_url}\"\n{extra}\
             [kms]\nprovider = \"local\"\nkey_file = \"{}\"\n",
            dir.join("master.key").display()
        ),
    )
    .expect("write config");
    config.to_str().expect("utf-8").to_owned()
}

/// The broker dies between "user created" and "lease activated" (a fail-point aborts it, like a
/// SIGKILL). After a restart the intent is revoked: the user is gone and no lease stays PENDING.
#[tokio::test]
async fn a_crash_after_creating_a_user_never_orphans_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = format!("lhcrash{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = "Crash-admin-pw-1";
    create_mariadb_admin(&prefix, password).await;
    let database_url = format!("sqlite://{}", dir.path().join("leasehold.db").display());
    let config = write_config(
        dir.path(),
        &database_url,
        "lease_intent_grace_seconds = 1\n",
    );
    let config_arg = config.as_str();
    let init = Command::new(leasehold_bin())
        .args(["operator", "init", "--config", config_arg, "--json"])
        .output()
        .await
        .expect("init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let init: Value = serde_json::from_slice(&init.stdout).expect("init JSON");
    let token = init["token"].as_str().expect("token").to_owned();
    let client = reqwest::Client::new();

    let mut server = Server::start(
        &["--config", config_arg],
        &[("LEASEHOLD_FAILPOINT", "lease-after-create")],
    )
    .await;
    let (status, body) = call(
        &client,
        reqwest::Method::PUT,
        format!("{}/v1/backends/maria", server.addr),
        &token,
        Some(
            json!({"plugin": "mariadb", "connection": {"host": "127.0.0.1", "port": 3306,
            "username": format!("{prefix}_admin"), "password": password, "sslMode": "disable"}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &client,
        reqwest::Method::PUT,
        format!("{}/v1/roles/crash", server.addr),
        &token,
        Some(json!({"backend": "maria", "environment": "prod",
            "usernameTemplate": format!("{prefix}_{{{{random}}}}")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let issue = client
        .post(format!("{}/v1/leases", server.addr))
        .bearer_auth(&token)
        .json(&json!({"role": "crash"}))
        .send()
        .await;
    assert!(
        issue.is_err(),
        "the broker answered instead of dying at the fail-point"
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("the broker dies")
        .expect("wait");
    assert!(!exit.success());
    let users_like = format!(
        "SELECT user FROM mysql.user WHERE user LIKE '{prefix}\\_%' AND user <> '{prefix}_admin'"
    );
    let orphans = mariadb_root(&users_like).await;
    assert_eq!(
        orphans.len(),
        1,
        "the user was created before the crash: {orphans:?}"
    );

    let server = Server::start(&["--config", config_arg], &[]).await;
    let mut remaining = orphans.clone();
    for _ in 0..100 {
        remaining = mariadb_root(&users_like).await;
        if remaining.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        remaining.is_empty(),
        "the orphan survived the restart: {remaining:?}"
    );
    // The scheduler drops the user, then records the lease REVOKED: the record may trail the
    // drop by a moment.
    let mut page = Value::Null;
    for _ in 0..100 {
        let (status, body) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/leases", server.addr),
            &token,
            None,
        )
        .await;
        assert_eq!(status, 200);
        page = body;
        if page["leases"][0]["state"] == "REVOKED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leases = page["leases"].as_array().expect("leases");
    assert_eq!(leases.len(), 1, "{page}");
    assert_eq!(leases[0]["state"], "REVOKED", "{page}");
    assert_eq!(leases[0]["username"], orphans[0].as_str());
    server.terminate().await;
    mariadb_root(&format!("DROP USER IF EXISTS '{prefix}_admin'@'%'")).await;
}

/// Brokers on one fresh PostgreSQL store, with a MariaDB backend `maria` (its admin named after
/// `prefix`) and a role `expiring` whose users are named `<prefix>_<random>`.
struct Cluster {
    dir: tempfile::TempDir,
    store: StoreDatabase,
    token: String,
    prefix: String,
    replicas: Vec<Server>,
}

impl Cluster {
    async fn start(replicas: usize, prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StoreDatabase::create().await;
        let password = "Replica-admin-pw-1";
        create_mariadb_admin(prefix, password).await;
        // The real URL comes from LEASEHOLD_DATABASE_URL (see `env`).
        write_config(dir.path(), "postgres://placeholder@127.0.0.1:1/none", "");
        let mut cluster = Self {
            dir,
            store,
            token: String::new(),
            prefix: prefix.to_owned(),
            replicas: Vec::new(),
        };
        let init = Command::new(leasehold_bin())
            .args(["operator", "init", "--config", &cluster.config(), "--json"])
            .envs(cluster.env())
            .output()
            .await
            .expect("init");
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let init: Value = serde_json::from_slice(&init.stdout).expect("init JSON");
        cluster.token = init["token"].as_str().expect("token").to_owned();
        for _ in 0..replicas {
            cluster.add_replica().await;
        }
        let client = reqwest::Client::new();
        let first = cluster.replicas[0].addr.clone();
        let (status, body) = call(
            &client,
            reqwest::Method::PUT,
            format!("{first}/v1/backends/maria"),
            &cluster.token,
            Some(json!({"plugin": "mariadb", "maxOpenConnections": 4, "connection": {"host": "127.0.0.1",
                "port": 3306, "username": format!("{prefix}_admin"), "password": password, "sslMode": "disable"}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = call(
            &client,
            reqwest::Method::PUT,
            format!("{first}/v1/roles/expiring"),
            &cluster.token,
            Some(json!({"backend": "maria", "environment": "prod",
                "usernameTemplate": format!("{prefix}_{{{{random}}}}")})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        cluster
    }

    fn config(&self) -> String {
        self.dir
            .path()
            .join("leasehold.toml")
            .to_str()
            .expect("utf-8")
            .to_owned()
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("LEASEHOLD_DATABASE_URL", self.store.url.clone()),
            ("LEASEHOLD_SCHEDULER_CLAIM_SECONDS", "3".to_owned()),
        ]
    }

    async fn add_replica(&mut self) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let config = self.config();
        self.replicas
            .push(Server::start(&["--config", &config], &env).await);
    }

    /// Issues `count` leases of the role `expiring` with `ttl`, the replicas taking turns;
    /// answers their ids.
    async fn issue(&self, count: usize, ttl: &str) -> Vec<String> {
        let client = reqwest::Client::new();
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let addr = &self.replicas[i % self.replicas.len()].addr;
            let (status, lease) = call(
                &client,
                reqwest::Method::POST,
                format!("{addr}/v1/leases"),
                &self.token,
                Some(json!({"role": "expiring", "ttl": ttl})),
            )
            .await;
            assert_eq!(status, 201, "{lease}");
            ids.push(lease["leaseId"].as_str().expect("id").to_owned());
        }
        ids
    }

    /// The WARN and ERROR lines of `killed` and of every replica, for a failure message.
    fn warnings(&self, killed: &Server) -> String {
        let mut all = format!("killed replica:\n{}", killed.warnings());
        for (i, replica) in self.replicas.iter().enumerate() {
            all.push_str(&format!("\nreplica {i}:\n{}", replica.warnings()));
        }
        all
    }

    /// A lease's scheduling columns as the store holds them, for a failure message.
    async fn lease_row(&self, id: &str) -> String {
        let store = sqlx::PgPool::connect(&self.store.url)
            .await
            .expect("store connection");
        let row: Option<String> = sqlx::query_scalar(
            "SELECT format('state %s, due_at %s, claims %s, attempts %s, now %s', state, due_at, \
             (SELECT string_agg(owner || ' until ' || expires_at, ', ') FROM lease_claims \
              WHERE leases.id = ANY(lease_ids)), attempts, now()) FROM leases WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_optional(&store)
        .await
        .expect("lease row");
        row.unwrap_or_else(|| "no such row".into())
    }

    /// The users of this cluster's leases still on MariaDB.
    async fn users_left(&self) -> Vec<String> {
        let prefix = &self.prefix;
        mariadb_root(&format!(
            "SELECT user FROM mysql.user WHERE user LIKE '{prefix}\\_%' AND user <> '{prefix}_admin'"
        ))
        .await
    }

    async fn stop(self) {
        for replica in self.replicas {
            replica.terminate().await;
        }
        mariadb_root(&format!("DROP USER IF EXISTS '{}_admin'@'%'", self.prefix)).await;
        self.store.drop().await;
    }
}

/// SIGKILL, and the exit.
async fn kill(server: &Server) {
    let pid = server.child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
}

/// Three brokers on one PostgreSQL store share lease expiry; one is killed with SIGKILL while the
/// leases expire. Every lease is still revoked, every user is gone, and no revocation counted as
/// failed (a second DROP of a user another replica already dropped is not a failure).
#[tokio::test]
async fn three_replicas_share_expiry_and_survive_a_sigkill() {
    let prefix = format!("lhrep{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut cluster = Cluster::start(3, &prefix).await;
    let token = cluster.token.clone();
    let client = reqwest::Client::new();
    const LEASES: usize = 120;
    let ids = cluster.issue(LEASES, "4s").await;
    // Kill one replica while the leases come due.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let victim = cluster.replicas.remove(1);
    kill(&victim).await;

    // Claims last 3 s and an idle replica looks again within 5 s, so under any sane load the
    // survivors finish well inside these deadlines; a slow CI machine only makes them wait longer.
    let killed_at = tokio::time::Instant::now();
    let deadline = killed_at + Duration::from_secs(45);
    let mut remaining;
    loop {
        remaining = cluster.users_left().await;
        if remaining.is_empty() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let users_gone_after = killed_at.elapsed();
    let logs = || cluster.warnings(&victim);
    assert!(
        remaining.is_empty(),
        "{} users survived their leases\n{}",
        remaining.len(),
        logs()
    );
    // A user the killed replica dropped without recording it is recorded once its claim lapses
    // and a survivor takes the lease again: that gets a budget of its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let survivor = cluster.replicas[0].addr.clone();
    let mut states = std::collections::HashMap::new();
    loop {
        let (_, page) = call(
            &client,
            reqwest::Method::GET,
            format!("{survivor}/v1/leases?limit=1000"),
            &token,
            None,
        )
        .await;
        states.clear();
        for lease in page["leases"].as_array().expect("leases") {
            let state = lease["state"].as_str().unwrap_or_default().to_owned();
            let attempts = lease["revocationAttempts"].as_i64().unwrap_or(-1);
            states.insert(
                lease["leaseId"].as_str().unwrap_or_default().to_owned(),
                (state, attempts),
            );
        }
        let settled = states.values().all(|(s, _)| s == "REVOKED") && states.len() == LEASES;
        if settled || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        if states.get(id) != Some(&("REVOKED".to_owned(), 0)) {
            let row = cluster.lease_row(id).await;
            panic!(
                "lease {id} is {:?}, not (REVOKED, 0 attempts); its row: {row}; users gone {users_gone_after:?} \
                 after the kill, leases read {:?} after it\n{}",
                states.get(id),
                killed_at.elapsed(),
                logs()
            );
        }
    }
    cluster.stop().await;
}

/// The value of the sample `series` (name and labels, as rendered) in a broker's `/metrics`.
async fn metric(client: &reqwest::Client, addr: &str, series: &str) -> Option<f64> {
    let text = client
        .get(format!("{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

/// The lease-count gauges of a broker that starts on a store already holding leases: live
/// leases by state, and those due within a minute; a revoked lease counts in neither.
#[tokio::test]
async fn the_lease_gauges_count_live_leases() {
    let prefix = format!("lhgauge{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut cluster = Cluster::start(1, &prefix).await;
    let client = reqwest::Client::new();
    let mut ids = cluster.issue(2, "50s").await;
    ids.extend(cluster.issue(3, "1h").await);
    let addr = cluster.replicas[0].addr.clone();
    let (status, body) = call(
        &client,
        reqwest::Method::POST,
        format!("{addr}/v1/leases/{}/revoke", ids[4]),
        &cluster.token,
        Some(json!({})),
    )
    .await;
    assert_eq!((status, &body["state"]), (200, &json!("REVOKED")), "{body}");
    // The gauges are counted when a broker starts, then every 15 s: a restart counts these.
    let first = cluster.replicas.remove(0);
    first.terminate().await;
    cluster.add_replica().await;
    let addr = cluster.replicas[0].addr.clone();
    let expected = [
        ("leasehold_leases{state=\"ACTIVE\"}", 4.0),
        ("leasehold_leases{state=\"PENDING\"}", 0.0),
        ("leasehold_leases{state=\"IRREVOCABLE\"}", 0.0),
        ("leasehold_leases_due_within_minute", 2.0),
    ];
    let wanted: Vec<Option<f64>> = expected.iter().map(|(_, value)| Some(*value)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut seen = Vec::new();
        for (series, _) in expected {
            seen.push(metric(&client, &addr, series).await);
        }
        if seen == wanted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gauges {seen:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids[..4] {
        let (status, body) = call(
            &client,
            reqwest::Method::POST,
            format!("{addr}/v1/leases/{id}/revoke"),
            &cluster.token,
            Some(json!({})),
        )
        .await;
        assert_eq!((status, &body["state"]), (200, &json!("REVOKED")), "{body}");
    }
    assert!(cluster.users_left().await.is_empty());
    cluster.stop().await;
}

/// Two brokers work one mass revocation; the one that accepted it is killed with SIGKILL
/// mid-job and a third starts. The job finishes: every user is gone, and the counts add up
/// (each lease revoked once).
#[tokio::test]
async fn a_mass_revocation_survives_a_sigkill_and_is_shared() {
    let prefix = format!("lhmass{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut cluster = Cluster::start(2, &prefix).await;
    let token = cluster.token.clone();
    let client = reqwest::Client::new();
    const LEASES: usize = 1000;
    cluster.issue(LEASES, "1h").await;
    let first = cluster.replicas[0].addr.clone();
    let (status, accepted) = call(
        &client,
        reqwest::Method::POST,
        format!("{first}/v1/revocations"),
        &token,
        Some(
            json!({"selector": {"role": "expiring"}, "reason": "compromised workload",
            "ticket": "INC-9"}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = accepted["jobId"].as_str().expect("job").to_owned();
    let victim = cluster.replicas.remove(0);
    kill(&victim).await;
    cluster.add_replica().await;

    let survivor = cluster.replicas[0].addr.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let view = loop {
        let (_, view) = call(
            &client,
            reqwest::Method::GET,
            format!("{survivor}/v1/revocations/{job}"),
            &token,
            None,
        )
        .await;
        if view["state"] != "RUNNING" || tokio::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let logs = || cluster.warnings(&victim);
    assert_eq!(view["state"], "COMPLETED", "{view}\n{}", logs());
    assert_eq!(
        (
            view["total"].clone(),
            view["revoked"].clone(),
            view["failed"].clone(),
            view["remaining"].clone()
        ),
        (json!(LEASES), json!(LEASES), json!(0), json!(0)),
        "the counts add up: {view}"
    );
    assert_eq!(cluster.users_left().await, Vec::<String>::new());
    cluster.stop().await;
}

/// The broker is killed with SIGKILL between a rotation's promotion and the disable of the old
/// version; after a restart the disable still happens, on time.
#[tokio::test]
async fn a_rotation_survives_a_sigkill_before_its_disable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let args = ["--dev", "--data-dir", data_arg, "--listen", "127.0.0.1:0"];
    let server = Server::start(&args, &[]).await;
    let token = server.root_token.clone().expect("Root Token line");
    let client = reqwest::Client::new();
    let (status, created) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/secrets", server.addr),
        &token,
        Some(json!({"environment":"prod","path":"app/db-password","ownerTeam":"app"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/secrets/{id}/versions", server.addr),
        &token,
        Some(json!({"value":"before","status":"CURRENT"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, policy) = call(
        &client,
        reqwest::Method::PUT,
        format!("{}/v1/secrets/{id}/rotation", server.addr),
        &token,
        Some(json!({"overlapWindow":"1s","rollbackWindow":"2s"})),
    )
    .await;
    assert_eq!(status, 200, "{policy}");
    let (status, run) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/v1/secrets/{id}/rotate", server.addr),
        &token,
        Some(json!({"value":"after"})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["step"], "overlap");
    kill(&server).await;
    drop(server);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let server = Server::start(&args, &[]).await;
    let run_id = run["id"].as_str().expect("run id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, now) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/rotations/{run_id}", server.addr),
            &token,
            None,
        )
        .await;
        if now["state"] == "COMPLETED" {
            assert_eq!(now["step"], "disabled", "{now}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the disable after the restart is late: {now}\n{}",
            server.warnings()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, old) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/secrets/prod/app/db-password?version=1", server.addr),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404, "{old}");
    assert_eq!(old["error"]["code"], "version_disabled");
    let (_, current) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/secrets/prod/app/db-password", server.addr),
        &token,
        None,
    )
    .await;
    assert_eq!(current["value"], "after");
    assert!(server.terminate().await.success());
}
