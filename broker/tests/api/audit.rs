//! The audit trail: events for allowed and denied operations, no plaintext in them, a hash chain
//! that detects tampering, and fail-closed behaviour when the audit write fails or hangs.

use std::time::{Duration, Instant};

use leasehold_broker::audit::{AuditEvent, EventType};
use leasehold_broker::store::{ChainHead, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_stores;
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

const CANARY: &str = "CANARY-audit-5d1e-never-logged";

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/v1/audit/events?limit=1000{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["events"].as_array().expect("events").clone()
}

/// Asserts that each of `expected` is the type of some event in `all`.
fn assert_has_types(all: &[Value], expected: &[&str]) {
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["eventType"].as_str().expect("type"))
        .collect();
    for expected in expected {
        assert!(
            types.contains(expected),
            "{expected} missing from {types:?}"
        );
    }
}

/// The value of the metric series starting with `series` (0 when absent).
async fn counter(app: &TestApp, series: &str) -> f64 {
    app.metrics()
        .await
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0)
}

async fn verify(app: &TestApp) -> Value {
    let (status, report) = app.post("/v1/audit/verify", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

on_both_stores!(
    operations_are_audited_without_plaintext,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "payments/audited").await;
        app.put_version(&id, CANARY, "CURRENT").await;
        let (status, _) = app.get("/v1/secrets/prod/payments/audited").await;
        assert_eq!(status, StatusCode::OK);
        let outsider = app.token_for("service:prod:outsider", json!({})).await;
        let (status, _) = app
            .request_as(
                &outsider,
                Method::GET,
                "/v1/secrets/prod/payments/audited",
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let all = events(&app, "").await;
        assert_has_types(
            &all,
            &[
                "SECRET_CREATE",
                "VERSION_CREATE",
                "SECRET_READ",
                "TOKEN_MINT",
                "ACCESS_DENIED",
            ],
        );
        let read = &events(&app, "&eventType=SECRET_READ").await[0];
        assert_eq!(read["environment"], "prod");
        assert_eq!(read["path"], "payments/audited");
        assert_eq!(read["version"], 1);
        assert_eq!(read["principal"], "user:test-admin");
        assert_eq!(read["decision"], "ALLOW");
        assert_eq!(read["tenantId"], "default");
        assert!(
            read["requestId"]
                .as_str()
                .expect("request id")
                .starts_with("req_")
        );
        let admin_hmac = read["detail"]["tokenHmac"]
            .as_str()
            .expect("token HMAC")
            .to_owned();
        assert_eq!(admin_hmac.len(), 64, "a token is named by its HMAC");
        let denied = events(&app, "&decision=DENY").await;
        assert_eq!(denied.len(), 1);
        let outsider_hmac = denied[0]["detail"]["tokenHmac"]
            .as_str()
            .expect("token HMAC");
        assert_ne!(
            outsider_hmac, admin_hmac,
            "each token has its own fingerprint"
        );
        let key = std::fs::read(format!("{}.audit-hmac", app.db.key_file().display()))
            .expect("HMAC key beside the master key");
        assert_eq!(key.len(), 32);
        assert_eq!(denied[0]["principal"], "service:prod:outsider");
        assert_eq!(denied[0]["detail"]["action"], "secrets:read");
        let by_principal = events(&app, "&principal=service:prod:outsider").await;
        assert_eq!(by_principal.len(), 1);
        let by_prefix = events(&app, "&pathPrefix=prod/payments/").await;
        assert!(by_prefix.len() >= 3);

        let v2 = app.put_version(&id, "second", "PENDING").await;
        let (status, _) = app
            .post(
                &format!("/v1/secrets/{id}/aliases/current"),
                json!({"version": v2, "expectedPreviousVersion": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let summary = |kind: &'static str, query: &'static str| {
            let app = &app;
            async move {
                let (status, body) = app.get(&format!("/v1/audit/summary/{kind}{query}")).await;
                assert_eq!(status, StatusCode::OK, "{kind}: {body}");
                body["rows"].as_array().expect("rows").clone()
            }
        };
        let subjects = |rows: Vec<Value>| -> Vec<Value> {
            rows.into_iter().map(|r| r["subject"].clone()).collect()
        };
        let rows = summary("reads-by-principal", "").await;
        assert_eq!(
            (rows[0]["subject"].clone(), rows[0]["count"].clone()),
            (json!("user:test-admin"), json!(1))
        );
        let rows = summary("reads-by-secret", "").await;
        assert_eq!(rows[0]["subject"], "prod/payments/audited");
        let rows = summary("denied-reads", "").await;
        assert_eq!(
            rows[0]["subject"],
            "service:prod:outsider prod/payments/audited"
        );
        // A rotation run promotes `current` too, and counts for its secret's team.
        let (status, billing) = app
            .post(
                "/v1/secrets",
                json!({"environment": "prod", "path": "billing/rotated", "ownerTeam": "billing"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{billing}");
        let billing = billing["id"].as_str().expect("id");
        app.put_version(billing, "first", "CURRENT").await;
        let (status, run) = app
            .post(
                &format!("/v1/secrets/{billing}/rotate"),
                json!({"value": "second"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        let rows = summary("rotations-by-team", "").await;
        let teams: Vec<(Value, Value)> = rows
            .iter()
            .map(|r| (r["subject"].clone(), r["count"].clone()))
            .collect();
        assert_eq!(
            teams,
            [(json!("billing"), json!(1)), (json!("payments"), json!(1))]
        );
        assert_eq!(summary("break-glass-reads", "").await.len(), 0);
        assert_eq!(
            summary("stale-secrets", "").await.len(),
            0,
            "nothing is older than 30 days"
        );
        // A secret past its own rotation deadline is stale whatever the window.
        let late = app.create_secret("prod", "payments/late").await;
        app.put_version(&late, "fresh", "CURRENT").await;
        let (status, body) = app
            .request(
                Method::PUT,
                &format!("/v1/secrets/{late}/rotation"),
                Some(json!({"deadline": "1s"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            subjects(summary("stale-secrets", "").await),
            [json!("prod/payments/late")]
        );
        assert_eq!(
            subjects(summary("stale-secrets", "?since=2999-01-01T00:00:00Z").await),
            [
                json!("prod/billing/rotated"),
                json!("prod/payments/audited"),
                json!("prod/payments/late")
            ]
        );
        let (status, _) = app.get("/v1/audit/summary/everything").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Every other kind of write is audited too.
        let (status, body) = app
            .request(
                Method::PATCH,
                &format!("/v1/secrets/{id}"),
                Some(json!({"ownerTeam": "payments-core"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for step in ["disable", "enable", "disable", "destroy"] {
            let (status, body) = app
                .post(&format!("/v1/secrets/{id}/versions/1/{step}"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{step}: {body}");
        }
        let (status, body) = app
            .request(
                Method::PUT,
                "/v1/policies/audited-readers",
                Some(
                    json!({"statements": [{"effect": "allow", "principal": "service:prod:*",
                    "actions": ["secrets:read"], "resources": ["prod/payments/*"]}]}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, minted) = app
            .post(
                "/v1/auth/tokens",
                json!({"principal": "service:prod:short-lived", "ttl": "1h"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{minted}");
        let minted_id = minted["id"].as_str().expect("token id");
        let (status, body) = app
            .post(&format!("/v1/auth/tokens/{minted_id}/revoke"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let all = events(&app, "").await;
        assert_has_types(
            &all,
            &[
                "ALIAS_PROMOTE",
                "SECRET_UPDATE",
                "VERSION_DISABLE",
                "VERSION_ENABLE",
                "VERSION_DESTROY",
                "POLICY_CHANGE",
                "TOKEN_REVOKE",
            ],
        );

        let text = serde_json::to_string(&all).expect("json");
        assert!(!text.contains(CANARY), "a value reached the audit trail");
        assert!(
            !text.contains(&app.token) && !text.contains(&outsider),
            "a token reached the audit trail"
        );
        let report = verify(&app).await;
        assert_eq!(report["ok"], true, "{report}");
        assert!(report["events"].as_i64().expect("count") >= 5);

        let (status, _) = app
            .request_as(&outsider, Method::GET, "/v1/audit/events", None, &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "audit:read is required");
        app.cleanup().await;
    }
);

async fn execute(store: &Store, sql: &str) {
    match store {
        Store::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .map(|_| ()),
        Store::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .map(|_| ()),
    }
    .expect(sql);
}

async fn tamper_case(backend: Backend, name: &str, statements: &[&str], broken_at: i64) {
    let app = spawn_app(backend).await;
    for n in 0..4 {
        app.create_secret("prod", &format!("chain/s{n}")).await;
    }
    assert_eq!(verify(&app).await["ok"], true, "{name}: intact chain");
    for sql in statements {
        execute(&app.store, sql).await;
    }
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{name}: tampering detected: {report}");
    assert_eq!(
        report["brokenAt"], broken_at,
        "{name}: first broken link: {report}"
    );
    app.cleanup().await;
}

async fn tampering_is_detected(backend: Backend) {
    // Events 1-4 are TOKEN_MINT-free SECRET_CREATEs (the admin token is minted directly).
    tamper_case(
        backend,
        "edit",
        &["UPDATE audit_events SET principal = 'user:someone-else' WHERE seq = 2"],
        2,
    )
    .await;
    tamper_case(
        backend,
        "delete in the middle",
        &["DELETE FROM audit_events WHERE seq = 3"],
        3,
    )
    .await;
    tamper_case(
        backend,
        "delete the newest",
        &["DELETE FROM audit_events WHERE seq = 4"],
        4,
    )
    .await;
    tamper_case(
        backend,
        "insert",
        &["INSERT INTO audit_events (seq, event_type, tenant, environment, path, version, principal, source_ip, request_id, decision, detail, created_at, prev_hash, hash) \
           SELECT 5, event_type, tenant, environment, path, version, principal, source_ip, request_id, decision, detail, created_at, hash, hash FROM audit_events WHERE seq = 4"],
        5,
    )
    .await;
    tamper_case(
        backend,
        "reorder",
        &[
            "UPDATE audit_events SET seq = 100 WHERE seq = 2",
            "UPDATE audit_events SET seq = 2 WHERE seq = 3",
            "UPDATE audit_events SET seq = 3 WHERE seq = 100",
        ],
        2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_sqlite() {
    tampering_is_detected(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_postgres() {
    tampering_is_detected(Backend::Postgres).await;
}

on_both_stores!(
    a_failing_audit_write_fails_closed,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "payments/closed").await;
        app.put_version(&id, CANARY, "CURRENT").await;
        let before = app.snapshot().await;
        app.break_audit().await;
        let (status, body) = app.get("/v1/secrets/prod/payments/closed").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "audit_unavailable");
        assert!(!body.to_string().contains(CANARY), "no audit, no secret");
        let (status, _) = app
            .post(
                &format!("/v1/secrets/{id}/versions"),
                json!({"value":"new","status":"CURRENT"}),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _) = app
            .post(
                "/v1/secrets",
                json!({"environment":"prod","path":"payments/new","ownerTeam":"p"}),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(app.snapshot().await, before, "nothing changed");
        let (status, health) = app.get("/v1/sys/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
        assert_eq!(health["audit"]["ok"], false);
        assert_eq!(health["storage"]["ok"], true);
        let (status, _) = app.get("/v1/auth/self").await;
        assert_eq!(status, StatusCode::OK, "the server keeps answering");

        app.mend_audit().await;
        let (status, read) = app.get("/v1/secrets/prod/payments/closed").await;
        assert_eq!(status, StatusCode::OK, "recovers without a restart: {read}");
        let (status, _) = app.get("/v1/sys/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(verify(&app).await["ok"], true);
        app.cleanup().await;
    }
);

on_both_stores!(
    a_hanging_audit_write_answers_503_in_time,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "payments/hang").await;
        app.put_version(&id, "hang-value", "CURRENT").await;
        // Another session takes the audit head's lock and sits on it.
        let blocker = match &app.store {
            Store::Sqlite(_) => {
                let pool = sqlx::SqlitePool::connect(&app.db.url)
                    .await
                    .expect("second connection");
                let mut conn = pool.acquire().await.expect("conn");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *conn)
                    .await
                    .expect("lock");
                Box::new((pool, conn)) as Box<dyn std::any::Any + Send>
            }
            Store::Postgres(_) => {
                let pool = sqlx::PgPool::connect(&app.db.url)
                    .await
                    .expect("second connection");
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .expect("lock");
                Box::new((pool, tx)) as Box<dyn std::any::Any + Send>
            }
        };
        let started = Instant::now();
        let (status, body) = app.get("/v1/secrets/prod/payments/hang").await;
        let waited = started.elapsed();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            waited < Duration::from_secs(5),
            "answered within the audit timeout, not frozen: {waited:?}"
        );
        let (status, _) = app.get("/v1/auth/self").await;
        assert_eq!(status, StatusCode::OK, "other requests are still served");
        drop(blocker);
        // The stuck batch finishes or fails once the lock is gone; then reads work again.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _) = app.get("/v1/secrets/prod/payments/hang").await;
            if status == StatusCode::OK {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "audit recovers after the lock is released"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        app.cleanup().await;
    }
);

/// A broker on SQLite whose JSON-lines audit sink writes to `path`; `timeout_ms` replaces the
/// default audit timeout.
async fn app_with_sink(path: &std::path::Path, required: bool, timeout_ms: Option<u64>) -> TestApp {
    let path = path.to_str().expect("utf-8").to_owned();
    crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        if let Some(timeout_ms) = timeout_ms {
            s.audit_timeout_ms = timeout_ms;
        }
        s.audit_sink = Some(leasehold_broker::audit::SinkSettings { path, required });
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_lines_sink_streams_reopens_and_fails_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs dir");
    let file = logs.join("audit.jsonl");
    let app = app_with_sink(&file, true, None).await;
    let id = app.create_secret("prod", "payments/siem").await;
    app.put_version(&id, CANARY, "CURRENT").await;
    let (status, _) = app.get("/v1/secrets/prod/payments/siem").await;
    assert_eq!(status, StatusCode::OK);
    let text = std::fs::read_to_string(&file).expect("sink file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["eventType"] == "SECRET_READ" && l["version"] == 1),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["seq"].is_i64() && l["hash"].is_string())
    );
    assert!(
        !text.contains(CANARY) && !text.contains(&app.token),
        "no value or token in the stream"
    );

    // Rotated away (or deleted): the sink notices and writes a fresh file.
    std::fs::rename(&file, logs.join("audit.jsonl.1")).expect("rotate");
    let (status, _) = app.get("/v1/secrets/prod/payments/siem").await;
    assert_eq!(status, StatusCode::OK);
    let fresh = std::fs::read_to_string(&file).expect("reopened sink file");
    assert_eq!(
        fresh.lines().count(),
        1,
        "the new file holds the new event: {fresh}"
    );
    std::fs::remove_file(&file).expect("delete");
    let (status, _) = app.get("/v1/secrets/prod/payments/siem").await;
    assert_eq!(status, StatusCode::OK);
    let recreated = std::fs::read_to_string(&file).expect("recreated sink file");
    assert_eq!(recreated.lines().count(), 1, "{recreated}");

    // The directory is gone: a required sink fails the operation closed.
    std::fs::remove_dir_all(&logs).expect("remove logs");
    let (status, body) = app.get("/v1/secrets/prod/payments/siem").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body.to_string().contains(CANARY));
    let (status, health) = app.get("/v1/sys/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["audit"]["ok"], false);
    // A write whose event cannot be streamed changes nothing.
    let before = app.snapshot().await;
    let (status, body) = app
        .post(
            &format!("/v1/secrets/{id}/versions"),
            json!({"value": CANARY, "status": "PENDING"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(app.snapshot().await, before, "nothing changed");

    std::fs::create_dir(&logs).expect("logs dir again");
    let (status, _) = app.get("/v1/secrets/prod/payments/siem").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "recovers once the sink can be written again"
    );
    app.cleanup().await;
}

/// A required sink on a disk that is full (`/dev/full` answers every write with ENOSPC): reads
/// and writes fail closed with 503, nothing changes, health says why, the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_on_a_full_disk_fails_closed() {
    let app = app_with_sink(std::path::Path::new("/dev/full"), true, None).await;
    let before = app.snapshot().await;
    let events_before = app.rows("audit_events").await;
    let (status, body) = app
        .post(
            "/v1/secrets",
            json!({"environment": "prod", "path": "payments/full", "ownerTeam": "payments"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "audit_unavailable");
    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert_eq!(
        app.rows("audit_events").await,
        events_before,
        "no event without its copy"
    );
    let (status, health) = app.get("/v1/sys/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["audit"]["ok"], false);
    assert_eq!(health["storage"]["ok"], true);
    let (status, _) = app.get("/v1/auth/self").await;
    assert_eq!(status, StatusCode::OK, "the server keeps answering");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_hangs_turns_requests_into_503_in_time_and_recovers() {
    // A FIFO nobody reads: opening it for writing blocks, as a stuck mount or socket would.
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let app = app_with_sink(&fifo, true, Some(500)).await;
    let before = app.snapshot().await;
    let asked = std::time::Instant::now();
    let (status, body) = app
        .post(
            "/v1/secrets",
            json!({"environment": "prod", "path": "payments/hung", "ownerTeam": "payments"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        asked.elapsed() < Duration::from_millis(1900),
        "answered within the configured 500 ms, not the 2 s default: {:?}",
        asked.elapsed()
    );
    assert_eq!(app.snapshot().await, before, "nothing changed");
    let (status, health) = app.get("/v1/sys/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["audit"]["ok"], false);

    // Someone reads the stream again: the sink gets through and requests succeed.
    let reader = fifo.clone();
    std::thread::spawn(move || {
        let mut stream = std::fs::File::open(reader).expect("open the FIFO for reading");
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app
            .post(
                "/v1/secrets",
                json!({"environment": "prod", "path": "payments/unhung", "ownerTeam": "payments"}),
            )
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_effort_sink_that_fails_is_counted_and_does_not_fail_the_operation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gone").join("audit.jsonl");
    let app = app_with_sink(&file, false, None).await;
    let id = app.create_secret("prod", "payments/best-effort").await;
    app.put_version(&id, CANARY, "CURRENT").await;
    let (status, read) = app.get("/v1/secrets/prod/payments/best-effort").await;
    assert_eq!(
        (status, read["value"].as_str()),
        (StatusCode::OK, Some(CANARY))
    );
    assert!(!file.exists());
    // The store's trail, the primary sink, still has every event.
    let read_events = events(&app, "&eventType=SECRET_READ").await;
    assert_eq!(read_events.len(), 1);
    let failures = counter(&app, "leasehold_audit_sink_failures_total").await;
    assert!(failures >= 1.0, "sink failures counted: {failures}");
    app.cleanup().await;
}

async fn writes(app: &TestApp, replica: usize) {
    for n in 0..15 {
        app.create_secret("prod", &format!("replica-{replica}/s{n}"))
            .await;
    }
}

on_both_stores!(
    a_writer_whose_head_moved_chains_onto_the_new_one,
    |app: TestApp| async move {
        // A read goes through the app's writer, which now knows the head: its next batch moves
        // it without reading it.
        let id = app.create_secret("prod", "chain/first").await;
        app.put_version(&id, "v", "CURRENT").await;
        let (status, _) = app.get("/v1/secrets/prod/chain/first").await;
        assert_eq!(status, StatusCode::OK);
        let (seq, hash) = app.store.audit_head().await.expect("head");
        let known = ChainHead { seq, hash };
        // Someone else (another replica) appends twice, the second time from a stale head.
        let event = || AuditEvent::system("internal", EventType::LeaseExpire);
        let mut other = app.store.writer_connection().await.expect("a connection");
        let fresh = Store::append_audit(&mut other, &[event()], &[], Some(&known))
            .await
            .expect("append from the current head");
        assert_eq!(fresh.placed[0].0, known.seq + 1);
        let stale = Store::append_audit(&mut other, &[event(), event()], &[], Some(&known))
            .await
            .expect("append from a stale head");
        assert_eq!(
            stale.placed.iter().map(|p| p.0).collect::<Vec<_>>(),
            [known.seq + 2, known.seq + 3],
            "chained after the head it found, not after the stale one"
        );
        drop(other);
        // The app's own writer is stale too now, and must not fork the chain either.
        let (status, _) = app.get("/v1/secrets/prod/chain/first").await;
        assert_eq!(status, StatusCode::OK);
        let report = verify(&app).await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["events"], known.seq + 4);
        app.cleanup().await;
    }
);

/// How many events of `event_type` the trail holds.
async fn count(app: &TestApp, event_type: &str) -> usize {
    events(app, &format!("&eventType={event_type}")).await.len()
}

on_both_stores!(
    a_write_and_its_event_commit_together,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "together/one").await;
        assert_eq!(count(&app, "SECRET_CREATE").await, 1);
        let first = app.put_version(&id, "v1", "CURRENT").await;
        let second = app.put_version(&id, "v2", "PENDING").await;
        let created = events(&app, "&eventType=VERSION_CREATE").await;
        let numbers: Vec<i64> = created
            .iter()
            .map(|e| e["version"].as_i64().expect("a version number"))
            .collect();
        assert_eq!(numbers, [first, second], "each event names its version");

        // Writes that do not happen record nothing.
        let (status, body) = app
            .post(
                &format!("/v1/secrets/{id}/aliases/current"),
                json!({"version": second, "expectedPreviousVersion": second}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = app
            .post(
                "/v1/secrets",
                json!({"environment": "prod", "path": "together/one", "ownerTeam": "p"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = app
            .post(
                &format!("/v1/secrets/{id}/versions/{first}/disable"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "current cannot be disabled");
        let (status, _) = app
            .post(
                &format!("/v1/auth/tokens/{}/revoke", uuid::Uuid::new_v4()),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app
            .request(Method::DELETE, "/v1/policies/never-written", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        for event_type in [
            "ALIAS_PROMOTE",
            "VERSION_DISABLE",
            "TOKEN_REVOKE",
            "POLICY_CHANGE",
        ] {
            assert_eq!(count(&app, event_type).await, 0, "{event_type}");
        }
        assert_eq!(count(&app, "SECRET_CREATE").await, 1);

        // Writes in their own transactions and reads through the writer, all at once, make
        // one unbroken chain.
        let writes = (0..12).map(|n| {
            let app = &app;
            let id = id.clone();
            async move {
                if n % 2 == 0 {
                    app.put_version(&id, &format!("v{n}"), "PENDING").await;
                } else {
                    app.create_secret("prod", &format!("together/s{n}")).await;
                }
            }
        });
        let reads = (0..24).map(|_| async {
            let (status, _) = app.get("/v1/secrets/prod/together/one").await;
            assert_eq!(status, StatusCode::OK);
        });
        tokio::join!(
            futures_util::future::join_all(writes),
            futures_util::future::join_all(reads)
        );
        let report = verify(&app).await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(count(&app, "VERSION_CREATE").await, 2 + 6);
        let (status, meta) = app.get(&format!("/v1/secrets/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{meta}");
        let mut numbers: Vec<i64> = meta["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["version"].as_i64().expect("number"))
            .collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            (1..=8).collect::<Vec<i64>>(),
            "racing writers get gapless numbers"
        );
        assert_eq!(meta["latestVersion"], 8);
        assert_eq!(count(&app, "SECRET_CREATE").await, 1 + 6);
        assert_eq!(count(&app, "SECRET_READ").await, 24);
        app.cleanup().await;
    }
);

on_both_stores!(
    configuration_writes_commit_with_their_events,
    |app: TestApp| async move {
        let target = Target::create(Kind::Mariadb).await;
        let put = |path: String, body: Value| {
            let app = &app;
            async move { app.request(Method::PUT, &path, Some(body)).await }
        };
        let (status, body) = put(
            "/v1/backends/cfg-db".into(),
            target.backend_body(ADMIN_PASSWORD),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = put("/v1/roles/cfg-rw".into(), target.role_body("cfg-db")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = app.create_secret("prod", "cfg/rotated").await;
        let policy = json!({"overlapWindow": "1h", "schedule": "0 0 3 * * *"});
        let (status, body) = put(format!("/v1/secrets/{id}/rotation"), policy).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let grant = json!({"resources": ["prod/cfg/*"], "reason": "incident", "ticketUrl": "INC-7", "durationMinutes": 5});
        let (status, opened) = app.post("/v1/break-glass", grant.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        for event_type in [
            "BACKEND_WRITE",
            "ROLE_WRITE",
            "ROTATION_POLICY_CHANGE",
            "BREAK_GLASS_GRANT",
        ] {
            assert_eq!(count(&app, event_type).await, 1, "{event_type}");
        }

        // Changes that find nothing to change record nothing.
        let missing = uuid::Uuid::new_v4();
        for (method, path, body) in [
            (Method::DELETE, "/v1/backends/never-made".to_owned(), None),
            (
                Method::DELETE,
                "/v1/auth/kubernetes/roles/never-made".to_owned(),
                None,
            ),
            (
                Method::POST,
                format!("/v1/break-glass/{missing}/end"),
                Some(json!({})),
            ),
            (
                Method::POST,
                "/v1/backends/never-made/rotate-root".to_owned(),
                Some(json!({})),
            ),
        ] {
            let (status, body) = app.request(method, &path, body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
        for event_type in [
            "BACKEND_DELETE",
            "AUTH_ROLE_CHANGE",
            "BREAK_GLASS_END",
            "BACKEND_ROTATE_ROOT",
        ] {
            assert_eq!(count(&app, event_type).await, 0, "{event_type}");
        }

        // With the trail unwritable, each of them fails closed and changes nothing.
        let tables = [
            "backends",
            "roles",
            "rotation_policies",
            "break_glass_grants",
        ];
        let mut before = Vec::new();
        for table in tables {
            before.push(app.rows(table).await);
        }
        let generation = app.get("/v1/backends/cfg-db").await.1["generation"].clone();
        let default_ttl = app.get("/v1/roles/cfg-rw").await.1["defaultTtl"].clone();
        let overlap =
            app.get(&format!("/v1/secrets/{id}/rotation")).await.1["overlapWindow"].clone();
        app.break_audit().await;
        let mut role = target.role_body("cfg-db");
        role["defaultTtl"] = json!("5m");
        let refused = [
            put(
                "/v1/backends/cfg-db".into(),
                target.backend_body(ADMIN_PASSWORD),
            )
            .await,
            put(
                "/v1/backends/cfg-other".into(),
                target.backend_body(ADMIN_PASSWORD),
            )
            .await,
            put("/v1/roles/cfg-rw".into(), role).await,
            put(
                format!("/v1/secrets/{id}/rotation"),
                json!({"overlapWindow": "2h"}),
            )
            .await,
            app.post("/v1/break-glass", grant).await,
            app.post(
                &format!("/v1/break-glass/{}/end", opened["id"].as_str().expect("id")),
                json!({}),
            )
            .await,
            app.request(Method::DELETE, "/v1/roles/cfg-rw", None).await,
            app.request(Method::DELETE, "/v1/backends/cfg-db", None)
                .await,
        ];
        for (status, body) in refused {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["error"]["code"], "audit_unavailable");
        }
        app.mend_audit().await;
        let mut after = Vec::new();
        for table in tables {
            after.push(app.rows(table).await);
        }
        assert_eq!(after, before, "rows of {tables:?}");
        assert_eq!(
            app.get("/v1/backends/cfg-db").await.1["generation"],
            generation
        );
        assert_eq!(
            app.get("/v1/roles/cfg-rw").await.1["defaultTtl"],
            default_ttl
        );
        assert_eq!(
            app.get(&format!("/v1/secrets/{id}/rotation")).await.1["overlapWindow"],
            overlap
        );
        let (_, grants) = app.get("/v1/break-glass").await;
        assert_eq!(
            grants["grants"].as_array().map(Vec::len),
            Some(1),
            "{grants}"
        );
        let report = verify(&app).await;
        assert_eq!(report["ok"], true, "{report}");
        target.cleanup().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    refused_tokens_are_audited_by_their_hmac,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "refused/one").await;
        app.put_version(&id, CANARY, "CURRENT").await;
        let (status, minted) = app
            .post(
                "/v1/auth/tokens",
                json!({"principal": "service:prod:api", "ttl": "1h"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{minted}");
        let revoked = minted["token"].as_str().expect("token").to_owned();
        let token_id = minted["id"].as_str().expect("id").to_owned();
        let (status, _) = app
            .post(&format!("/v1/auth/tokens/{token_id}/revoke"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let unknown = "lh_CANARY-never-a-token-7f3a";
        for token in [revoked.as_str(), unknown] {
            for path in ["/v1/secrets/prod/refused/one", "/v1/auth/self"] {
                let (status, body) = app.request_as(token, Method::GET, path, None, &[]).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
            }
        }

        let rows = app.store.audit_chain_page(0, 10_000).await.expect("trail");
        let refusals: Vec<_> = rows
            .iter()
            .filter(|r| r.event_type == "LOGIN" && r.decision == "DENY")
            .map(|r| r.event())
            .collect();
        assert_eq!(refusals.len(), 4, "{refusals:?}");
        let of_revoked: Vec<_> = refusals
            .iter()
            .filter(|e| e.detail["reason"] == "revoked token")
            .collect();
        assert_eq!(of_revoked.len(), 2);
        for event in &of_revoked {
            assert_eq!(event.principal, "service:prod:api");
            assert_eq!(event.tenant_id, minted["tenant"].as_str().expect("tenant"));
            assert_eq!(event.detail["tokenId"], token_id.as_str());
        }
        let of_unknown: Vec<_> = refusals
            .iter()
            .filter(|e| e.detail["reason"] == "unknown token")
            .collect();
        assert_eq!(of_unknown.len(), 2);
        assert!(of_unknown.iter().all(|e| e.tenant_id == "_unknown"));
        // Each token is named by one HMAC, never by its text.
        let hmac = |events: &[&AuditEvent]| {
            let names: std::collections::BTreeSet<String> = events
                .iter()
                .map(|e| e.detail["tokenHmac"].as_str().expect("an HMAC").to_owned())
                .collect();
            assert_eq!(names.len(), 1, "{names:?}");
            names.into_iter().next()
        };
        assert_ne!(hmac(&of_revoked), hmac(&of_unknown));
        for row in &rows {
            let text = format!("{:?}", row.event());
            assert!(!text.contains(&revoked) && !text.contains(unknown) && !text.contains(CANARY));
        }
        // The recorder is shared by every test of this process: at least these four.
        let refused = counter(&app, "leasehold_login_failures_total{method=\"token\"}").await;
        assert!(refused >= 4.0, "refusals counted: {refused}");
        app.cleanup().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_write_one_chain() {
    let first = spawn_app(Backend::Postgres).await;
    let second = first.spawn_replica().await;
    let third = first.spawn_replica().await;
    tokio::join!(writes(&first, 1), writes(&second, 2), writes(&third, 3));
    let report = verify(&second).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["events"], 45,
        "every replica's events are in the one chain"
    );
    second.shutdown().await;
    third.shutdown().await;
    first.cleanup().await;
}
