//! No plaintext anywhere: a canary value and a canary token driven through every kind of path —
//! success, deny, bad input, server error, break-glass — never appear in the logs (captured at
//! debug level), the audit trail, the SIEM stream, the metrics, any response body, or the store.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, contains, raw_dump, spawn_app_with};

const CANARY: &str = "CANARY-7c0ffee-plaintext-must-never-leak";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test process, at debug level, as the broker formats them.
fn captured_logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        capture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_appears_nowhere() {
    let logs = captured_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let sink_file = dir.path().join("audit.jsonl");
    let sink_path = sink_file.to_str().expect("utf-8").to_owned();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.audit_sink = Some(leasehold_broker::audit::SinkSettings {
            path: sink_path,
            required: true,
        });
    })
    .await;
    let mut bodies = Vec::new();
    let mut record = |label: &str, status: StatusCode, body: serde_json::Value| {
        bodies.push(format!("{label} {status} {body}"));
    };

    for (name, statements) in [
        (
            "reader",
            json!([{"effect":"allow","principal":"service:prod:canary-reader","actions":["secrets:read"],"resources":["prod/canary/*"]}]),
        ),
        (
            "oncall",
            json!([{"effect":"allow","principal":"user:oncall","actions":["secrets:read-break-glass"],"resources":["prod/canary/*"]}]),
        ),
    ] {
        let (status, body) = app
            .request(
                Method::PUT,
                &format!("/v1/policies/{name}"),
                Some(json!({"statements": statements})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        record("policy", status, body);
    }
    let reader = app.token_for("service:prod:canary-reader", json!({})).await;
    let outsider = app.token_for("service:prod:outsider", json!({})).await;
    let oncall = app.token_for("user:oncall", json!({})).await;
    let tokens = [
        app.token.clone(),
        reader.clone(),
        outsider.clone(),
        oncall.clone(),
    ];

    // Success.
    let id = app.create_secret("prod", "canary/value").await;
    let other = app.create_secret("prod", "canary/other").await;
    app.put_version(&id, CANARY, "CURRENT").await;
    app.put_version(&other, "not-the-canary", "CURRENT").await;
    let (status, body) = app
        .request_as(
            &reader,
            Method::GET,
            "/v1/secrets/prod/canary/value",
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(CANARY)),
        "the canary is readable where it should be"
    );

    // Deny.
    let (status, body) = app
        .request_as(
            &outsider,
            Method::GET,
            "/v1/secrets/prod/canary/value",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    record("deny", status, body);

    // Bad input carrying the canary.
    for (label, raw) in [
        (
            "wrong type",
            format!(r#"{{"value": {{"nested": "{CANARY}"}}}}"#),
        ),
        (
            "unknown status",
            format!(r#"{{"value": "x", "status": "{CANARY}"}}"#),
        ),
        ("truncated", format!(r#"{{"value": "{CANARY}"#)),
        (
            "unknown field",
            format!(r#"{{"value": "x", "{CANARY}": 1}}"#),
        ),
        (
            "too large",
            format!(r#"{{"value": "{CANARY}{}"}}"#, "x".repeat(70 * 1024)),
        ),
    ] {
        let response = app
            .http
            .post(format!("{}/v1/secrets/{id}/versions", app.addr))
            .bearer_auth(&app.token)
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("send");
        let status = response.status();
        assert!(status.is_client_error(), "{label}: {status}");
        record(label, status, response.json().await.unwrap_or_default());
    }
    let (status, body) = app
        .get(&format!("/v1/secrets/prod/canary/value?alias={CANARY}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    record("bad alias", status, body);
    let (status, body) = app
        .request_as(
            &format!("lh_{CANARY}"),
            Method::GET,
            "/v1/secrets/prod/canary/value",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    record("canary as a token", status, body);

    // Server error: the canary's ciphertext moved onto another row.
    app.copy_sealed_value("canary/value", "canary/other").await;
    let (status, body) = app.get("/v1/secrets/prod/canary/other").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    record("integrity error", status, body);

    // Rotation with the canary as the new value: a canary stop, promotion, rollback, and a
    // refused rotation.
    let (status, run) = app
        .post(
            &format!("/v1/secrets/{id}/rotate"),
            json!({"value": format!("{CANARY}-rotated"), "stopAfter": "next"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let run_id = run["id"].as_str().unwrap_or_default().to_owned();
    record("rotate", status, run);
    let (status, body) = app
        .post(&format!("/v1/rotations/{run_id}/promote"), json!({}))
        .await;
    record("rotation promote", status, body);
    let (status, body) = app
        .post(
            &format!("/v1/secrets/{id}/rotate"),
            json!({"value": CANARY, "expectedCurrentVersion": 99}),
        )
        .await;
    record("refused rotation", status, body);
    let (status, body) = app
        .post(&format!("/v1/secrets/{id}/rollback"), json!({}))
        .await;
    record("rollback", status, body);

    // Break-glass.
    let (status, body) = app
        .request_as(&oncall, Method::POST, "/v1/break-glass", Some(json!({"resources":["prod/canary/*"],"reason":"INC-1","ticketUrl":"https://t/1","durationMinutes":5})), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .request_as(
            &oncall,
            Method::GET,
            "/v1/secrets/prod/canary/value",
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(CANARY))
    );

    let metrics = app.metrics().await;
    let (_, events) = app.get("/v1/audit/events?limit=1000").await;
    let stream = std::fs::read_to_string(&sink_file).expect("sink");
    let store = raw_dump(&app).await;
    let logs = logs.0.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(contains(&logs, "request served"), "logs were captured");
    assert!(
        events["events"].as_array().is_some_and(|e| e.len() > 10),
        "events were recorded"
    );

    let places: [(&str, Vec<u8>); 5] = [
        ("logs", logs),
        ("audit events", events.to_string().into_bytes()),
        ("SIEM stream", stream.into_bytes()),
        ("metrics", metrics.into_bytes()),
        ("error bodies", bodies.join("\n").into_bytes()),
    ];
    for (place, bytes) in &places {
        assert!(
            !contains(bytes, CANARY),
            "the canary value leaked into {place}"
        );
        for token in &tokens {
            assert!(!contains(bytes, token), "a token leaked into {place}");
        }
    }
    assert!(
        !contains(&store, CANARY),
        "the canary value is in the store in plaintext"
    );
    for token in &tokens {
        assert!(!contains(&store, token), "a token's text is in the store");
    }
    app.cleanup().await;
}

/// Dynamic credentials: a canary admin password and every issued password (and its MariaDB hash,
/// which is password-equivalent) appear nowhere but in the issue answer — including when the
/// target rejects a statement that quotes the password back in its error message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_and_admin_passwords_appear_nowhere() {
    use crate::targets::{Kind, Target};
    use leasehold_plugins::hashing::mysql_native_hash;

    let logs = captured_logs();
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let target = Target::create(Kind::Mariadb).await;
    let admin_canary = format!("Admin-{CANARY}");
    target
        .admin_sql(&format!(
            "ALTER USER '{}'@'%' IDENTIFIED BY '{admin_canary}'",
            target.admin_user()
        ))
        .await;
    let mut bodies = Vec::new();
    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/backends/canary-db",
            Some(target.backend_body(&admin_canary)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    bodies.push(body.to_string());
    // Bad input carrying the admin password.
    let mut bad = target.backend_body(&admin_canary);
    bad["maxOpenConnections"] = json!(admin_canary.clone());
    let (status, body) = app
        .request(Method::PUT, "/v1/backends/canary-db", Some(bad))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    bodies.push(body.to_string());
    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/roles/canary-rw",
            Some(target.role_body("canary-db")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, lease) = app.post("/v1/leases", json!({"role": "canary-rw"})).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let password = lease["password"].as_str().expect("password").to_owned();
    let id = lease["leaseId"].as_str().expect("lease id").to_owned();
    let hash = mysql_native_hash(&password);
    for path in [
        format!("/v1/leases/{id}/renew"),
        format!("/v1/leases/{id}/revoke"),
    ] {
        let (status, body) = app.post(&path, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        bodies.push(body.to_string());
    }
    let (_, listed) = app.get("/v1/leases").await;
    bodies.push(listed.to_string());

    // A mass revocation of a live lease: its preview, its job and their audit events.
    let (status, second) = app.post("/v1/leases", json!({"role": "canary-rw"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_password = second["password"].as_str().expect("password").to_owned();
    let (status, accepted) = app
        .post(
            "/v1/revocations",
            json!({"selector": {"role": "canary-rw"}, "reason": "canary", "ticket": "CANARY-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    bodies.push(accepted.to_string());
    let job = accepted["jobId"].as_str().expect("job").to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, view) = app.get(&format!("/v1/revocations/{job}")).await;
        if view["state"] != "RUNNING" || tokio::time::Instant::now() > deadline {
            assert_eq!(view["state"], "COMPLETED", "{view}");
            bodies.push(view.to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A statement the target rejects, with the password where MariaDB's "near '…'" quotes it.
    let mut role = target.role_body("canary-db");
    role["creationStatements"] = json!([
        "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}} {{password}} {{password_hash}}"
    ]);
    let (status, body) = app
        .request(Method::PUT, "/v1/roles/canary-broken", Some(role))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post("/v1/leases", json!({"role": "canary-broken"}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("<redacted>"),
        "the target's message quoted nothing: {message}"
    );
    bodies.push(body.to_string());

    let metrics = app.metrics().await;
    let (_, events) = app.get("/v1/audit/events?limit=1000").await;
    let store = raw_dump(&app).await;
    let logs = logs.0.lock().map(|l| l.clone()).unwrap_or_default();
    let places: [(&str, Vec<u8>); 5] = [
        ("logs", logs),
        ("audit events", events.to_string().into_bytes()),
        ("metrics", metrics.into_bytes()),
        ("later bodies", bodies.join("\n").into_bytes()),
        ("store", store),
    ];
    for (place, bytes) in &places {
        for (what, secret) in [
            ("admin password", &admin_canary),
            ("lease password", &password),
            ("second lease password", &second_password),
            ("password hash", &hash),
        ] {
            assert!(!contains(bytes, secret), "the {what} leaked into {place}");
        }
    }
    let (status, _) = app
        .request(
            Method::DELETE,
            "/v1/backends/canary-db?revokeLeases=true",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    target.cleanup().await;
    app.cleanup().await;
}
