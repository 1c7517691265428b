//! Rotation as a workflow: the nine steps with aliases and statuses visible after each, rollback
//! inside and outside its window, cron schedules raced by replicas, pause and overdue, a restart
//! between promotion and the disable, and static database users on MariaDB and on a private
//! PostgreSQL that really checks passwords.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::leasehold;
use crate::helpers::{Backend, TestApp, spawn_app, webhook_answering};
use crate::on_both_stores;
use crate::scratch_postgres::{SUPERUSER, SUPERUSER_PASSWORD, ScratchPostgres};
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

/// Waits (up to 30 s) until `check` is true of the run's JSON.
async fn wait_for_run(
    app: &TestApp,
    run: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app.get(&format!("/v1/rotations/{run}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if check(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metadata(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/secrets/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn status_of(metadata: &Value, version: i64) -> String {
    metadata["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["version"] == version)
        .map(|v| v["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn alias(metadata: &Value, name: &str) -> Option<i64> {
    metadata["aliases"][name].as_i64()
}

async fn read(app: &TestApp, path: &str, query: &str) -> (StatusCode, Value) {
    app.get(&format!("/v1/secrets/prod/{path}?{query}")).await
}

async fn put_policy(app: &TestApp, id: &str, policy: Value) {
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/secrets/{id}/rotation"),
            Some(policy),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

on_both_stores!(nine_steps_each_visible, |app: TestApp| async move {
    let id = app.create_secret("prod", "rotate/nine").await;
    app.put_version(&id, "value-one", "CURRENT").await;
    put_policy(
        &app,
        &id,
        json!({"overlapWindow": "2s", "rollbackWindow": "2s", "retention": "2s"}),
    )
    .await;

    // Steps 1–3: PENDING, (no target), `next` for canaries.
    let (status, run) = app
        .post(
            &format!("/v1/secrets/{id}/rotate"),
            json!({"value": "value-two", "stopAfter": "next"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["step"], "next");
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let meta = metadata(&app, &id).await;
    assert_eq!(status_of(&meta, 2), "PENDING");
    assert_eq!(
        (alias(&meta, "current"), alias(&meta, "next")),
        (Some(1), Some(2))
    );
    let (_, canary) = read(&app, "rotate/nine", "alias=next").await;
    assert_eq!(canary["value"], "value-two");
    let (_, current) = read(&app, "rotate/nine", "alias=current").await;
    assert_eq!(current["value"], "value-one");
    // A second rotation waits for this one.
    let (status, body) = app
        .post(&format!("/v1/secrets/{id}/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Steps 4–5: tested, `current` promoted; the overlap window runs.
    let (status, run) = app
        .post(&format!("/v1/rotations/{run_id}/promote"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["step"], "overlap");
    let meta = metadata(&app, &id).await;
    assert_eq!(
        (status_of(&meta, 1).as_str(), status_of(&meta, 2).as_str()),
        ("PREVIOUS", "CURRENT")
    );
    assert_eq!(
        (
            alias(&meta, "current"),
            alias(&meta, "previous"),
            alias(&meta, "next")
        ),
        (Some(2), Some(1), None)
    );
    let (_, previous) = read(&app, "rotate/nine", "alias=previous").await;
    assert_eq!(previous["value"], "value-one");

    // Steps 6–7: the overlap ends; version 1 stays PREVIOUS and readable for a rollback.
    wait_for_run(&app, &run_id, "overlap end", |r| r["step"] == "previous").await;
    assert_eq!(status_of(&metadata(&app, &id).await, 1), "PREVIOUS");
    // Step 8: the rollback window ends; version 1 is disabled.
    wait_for_run(&app, &run_id, "disable", |r| r["step"] == "disabled").await;
    assert_eq!(status_of(&metadata(&app, &id).await, 1), "DISABLED");
    let (status, body) = read(&app, "rotate/nine", "alias=previous").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Step 9: retention ends; version 1 is shredded and the run is done.
    let done = wait_for_run(&app, &run_id, "destroy", |r| r["state"] == "COMPLETED").await;
    assert_eq!(done["step"], "destroyed");
    assert_eq!(status_of(&metadata(&app, &id).await, 1), "DESTROYED");
    let (_, current) = read(&app, "rotate/nine", "alias=current").await;
    assert_eq!(current["value"], "value-two");

    let (status, runs) = app.get(&format!("/v1/rotations?secretId={id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    let (_, events) = app.get("/v1/audit/events?eventType=ROTATION_STEP").await;
    assert!(events.to_string().contains("destroyed"), "{events}");
    app.cleanup().await;
});

on_both_stores!(
    rollback_inside_and_outside_its_window,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "rotate/back").await;
        app.put_version(&id, "good", "CURRENT").await;
        put_policy(
            &app,
            &id,
            json!({"overlapWindow": "1s", "rollbackWindow": "1s"}),
        )
        .await;

        let (status, run) = app
            .post(&format!("/v1/secrets/{id}/rotate"), json!({"value": "bad"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        let (status, body) = app
            .post(&format!("/v1/secrets/{id}/rollback"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["current"], 1);
        let (_, current) = read(&app, "rotate/back", "alias=current").await;
        assert_eq!(current["value"], "good");
        assert_eq!(status_of(&metadata(&app, &id).await, 2), "DISABLED");
        let run_id = run["id"].as_str().expect("id");
        let (_, rolled_back) = app.get(&format!("/v1/rotations/{run_id}")).await;
        assert_eq!(rolled_back["state"], "ROLLED_BACK");

        // Past the rollback window the old version is disabled and rollback is refused.
        let (status, run) = app
            .post(
                &format!("/v1/secrets/{id}/rotate"),
                json!({"generate": {"length": 24}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        let run_id = run["id"].as_str().expect("id").to_owned();
        wait_for_run(&app, &run_id, "disable", |r| r["state"] == "COMPLETED").await;
        let (status, body) = app
            .post(&format!("/v1/secrets/{id}/rollback"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("rollback window has closed"),
            "{body}"
        );
        let (_, current) = read(&app, "rotate/back", "alias=current").await;
        assert_eq!(current["version"], 3);
        assert_eq!(current["value"].as_str().map(str::len), Some(24));
        app.cleanup().await;
    }
);

on_both_stores!(
    a_step_is_saved_only_with_its_event,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "rotate/audited").await;
        app.put_version(&id, "old", "CURRENT").await;
        put_policy(
            &app,
            &id,
            json!({"overlapWindow": "1s", "rollbackWindow": "10s"}),
        )
        .await;
        let steps_of = |events: &Value, run: &str, step: &str| {
            events["events"]
                .as_array()
                .expect("events")
                .iter()
                .filter(|e| e["detail"]["run"] == run && e["detail"]["step"] == step)
                .count()
        };

        // A promotion that cannot be audited does not move `current`.
        app.break_audit_of(&["ROTATION_STEP"]).await;
        let (status, body) = app
            .post(
                &format!("/v1/secrets/{id}/rotate"),
                json!({"value": "lost"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        let meta = metadata(&app, &id).await;
        assert_eq!(alias(&meta, "current"), Some(1), "{meta}");
        assert_eq!(status_of(&meta, 2), "DISABLED", "{meta}");
        app.mend_audit().await;

        let (status, run) = app
            .post(&format!("/v1/secrets/{id}/rotate"), json!({"value": "new"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        assert_eq!(run["step"], "overlap");
        let run_id = run["id"].as_str().expect("id").to_owned();
        let (_, events) = app.get("/v1/audit/events?eventType=ROTATION_STEP").await;
        assert_eq!(steps_of(&events, &run_id, "promoted"), 1, "{events}");

        // Each later step waits for its event: the overlap's end, then the disable of version 1
        // (due 10 s after the overlap's end, so that the first step is taken well before).
        let disable_at: chrono::DateTime<chrono::Utc> = run["disableAt"]
            .as_str()
            .expect("disableAt")
            .parse()
            .expect("time");
        for (from, to) in [("overlap", "previous"), ("previous", "disabled")] {
            app.break_audit_of(&["ROTATION_STEP"]).await;
            let due = if to == "previous" {
                chrono::Utc::now() + chrono::Duration::seconds(3)
            } else {
                disable_at + chrono::Duration::seconds(3)
            };
            tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap_or_default()).await;
            let (_, stuck) = app.get(&format!("/v1/rotations/{run_id}")).await;
            assert_eq!(stuck["step"], from, "saved without its event: {stuck}");
            let meta = metadata(&app, &id).await;
            assert_eq!(
                status_of(&meta, 1),
                "PREVIOUS",
                "changed without its event: {meta}"
            );
            let (_, events) = app.get("/v1/audit/events?eventType=ROTATION_STEP").await;
            assert_eq!(steps_of(&events, &run_id, to), 0, "{events}");

            // Audit back, and the failed attempt's claim lapsed: the step is taken with its
            // event.
            app.mend_audit().await;
            app.execute("UPDATE rotation_runs SET claim_until = NULL")
                .await;
            wait_for_run(&app, &run_id, to, |r| r["step"] == to).await;
            let (_, events) = app.get("/v1/audit/events?eventType=ROTATION_STEP").await;
            assert_eq!(steps_of(&events, &run_id, to), 1, "{events}");
        }
        assert_eq!(status_of(&metadata(&app, &id).await, 1), "DISABLED");
        app.cleanup().await;
    }
);

/// A cron expression that fires once, `seconds` from now.
fn once_in(seconds: i64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    at.format("%S %M %H %d %m *").to_string()
}

on_both_stores!(
    replicas_racing_for_a_due_rotation_run_it_once,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "rotate/cron").await;
        app.put_version(&id, "first", "CURRENT").await;
        let second = app.spawn_replica().await;
        let third = app.spawn_replica().await;
        put_policy(&app, &id, json!({"schedule": once_in(3)})).await;
        let (_, policy) = app.get(&format!("/v1/secrets/{id}/rotation")).await;
        assert!(policy["nextRunAt"].is_string(), "{policy}");
        tokio::time::sleep(Duration::from_secs(6)).await;
        let (_, runs) = app.get(&format!("/v1/rotations?secretId={id}")).await;
        let runs = runs.as_array().expect("runs").clone();
        assert_eq!(runs.len(), 1, "exactly one rotation: {runs:?}");
        assert_eq!(runs[0]["trigger"], "schedule");
        assert_eq!(runs[0]["createdBy"], "system:leasehold");
        let meta = metadata(&app, &id).await;
        assert_eq!(meta["versions"].as_array().map(Vec::len), Some(2));
        assert_eq!(alias(&meta, "current"), Some(2));
        second.shutdown().await;
        third.shutdown().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    a_restart_between_promotion_and_disable_keeps_the_schedule,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "rotate/restart").await;
        app.put_version(&id, "old", "CURRENT").await;
        put_policy(
            &app,
            &id,
            json!({"overlapWindow": "1s", "rollbackWindow": "2s"}),
        )
        .await;
        let (status, run) = app
            .post(&format!("/v1/secrets/{id}/rotate"), json!({"value": "new"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        let disable_at: chrono::DateTime<chrono::Utc> = run["disableAt"]
            .as_str()
            .expect("disableAt")
            .parse()
            .expect("time");
        let mut app = app;
        app.stop().await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let app = app.restart().await;
        let run_id = run["id"].as_str().expect("id");
        wait_for_run(&app, run_id, "disable after restart", |r| {
            r["state"] == "COMPLETED"
        })
        .await;
        assert_eq!(status_of(&metadata(&app, &id).await, 1), "DISABLED");
        assert!(
            chrono::Utc::now() - disable_at < chrono::Duration::seconds(10),
            "late: due {disable_at}"
        );
        app.cleanup().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_schedules_wait_and_overdue_secrets_are_reported() {
    let app = spawn_app(Backend::Sqlite).await;
    let id = app.create_secret("prod", "rotate/paused").await;
    app.put_version(&id, "v1", "CURRENT").await;
    put_policy(
        &app,
        &id,
        json!({"schedule": "* * * * * *", "paused": true, "deadline": "1s"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, runs) = app.get(&format!("/v1/rotations?secretId={id}")).await;
    assert_eq!(runs, json!([]), "a paused schedule does not run");
    let (status, overdue) = app.get("/v1/rotations/overdue").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overdue[0]["path"], "rotate/paused", "{overdue}");
    assert!(
        app.metrics()
            .await
            .contains("leasehold_secrets_past_rotation_deadline")
    );

    put_policy(
        &app,
        &id,
        json!({"schedule": "* * * * * *", "paused": false, "deadline": "1h"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, runs) = app.get(&format!("/v1/rotations?secretId={id}")).await;
        if runs.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "resumed schedule never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, overdue) = app.get("/v1/rotations/overdue").await;
    assert_eq!(overdue, json!([]), "rotated, so no longer overdue");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rotation_requests_change_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let id = app.create_secret("prod", "rotate/bad").await;
    app.put_version(&id, "v1", "CURRENT").await;
    let before = app.snapshot().await;
    for (path, body, case) in [
        (
            "rotation",
            json!({"overlapWindow": "forever"}),
            "bad window",
        ),
        (
            "rotation",
            json!({"schedule": "'; DROP TABLE secrets; --"}),
            "bad cron",
        ),
        (
            "rotation",
            json!({"generate": {"length": 3}}),
            "short passwords",
        ),
        (
            "rotate",
            json!({"value": "x", "generate": {"length": 32}}),
            "value and generate",
        ),
        ("rotate", json!({"stopAfter": "promote"}), "unknown stop"),
    ] {
        let method = if path == "rotation" {
            Method::PUT
        } else {
            Method::POST
        };
        let (status, answer) = app
            .request(method, &format!("/v1/secrets/{id}/{path}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "case: {case}: {answer}");
    }
    let (status, body) = app
        .post(
            &format!("/v1/secrets/{id}/rotate"),
            json!({"value": "v2", "expectedCurrentVersion": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app
        .post(&format!("/v1/secrets/{id}/rollback"), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "nothing to roll back to: {body}"
    );
    assert_eq!(app.snapshot().await, before);
    let reader = app.token_for("service:prod:reader", json!({})).await;
    let (status, _) = app
        .request_as(
            &reader,
            Method::POST,
            &format!("/v1/secrets/{id}/rotate"),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.cleanup().await;
}

/// A database with two existing application users, for static roles.
enum Users {
    Mariadb(Target),
    Postgres {
        cluster: ScratchPostgres,
        prefix: String,
    },
}

const INITIAL: &str = "Initial-unknown-pw-1";

async fn pg(port: u16, user: &str, password: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

impl Users {
    async fn create(kind: Kind) -> Self {
        match kind {
            Kind::Mariadb => {
                let target = Target::create(Kind::Mariadb).await;
                let p = target.prefix.clone();
                target
                    .admin_sql(&format!(
                        "CREATE USER '{p}_a'@'%' IDENTIFIED BY '{INITIAL}'; \
                         CREATE USER '{p}_b'@'%' IDENTIFIED BY '{INITIAL}'; \
                         CREATE USER '{p}_solo'@'%' IDENTIFIED BY '{INITIAL}';"
                    ))
                    .await;
                Self::Mariadb(target)
            }
            Kind::Postgres => {
                let cluster = ScratchPostgres::start();
                let prefix = format!("lhs{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
                let p = &prefix;
                pg(cluster.port, SUPERUSER, SUPERUSER_PASSWORD)
                    .await
                    .expect("superuser")
                    .batch_execute(&format!(
                        "CREATE ROLE {p}_admin LOGIN CREATEROLE PASSWORD '{ADMIN_PASSWORD}'; \
                         CREATE ROLE {p}_a LOGIN PASSWORD '{INITIAL}'; \
                         CREATE ROLE {p}_b LOGIN PASSWORD '{INITIAL}'; \
                         CREATE ROLE {p}_solo LOGIN PASSWORD '{INITIAL}'; \
                         GRANT {p}_a, {p}_b, {p}_solo TO {p}_admin WITH ADMIN OPTION;"
                    ))
                    .await
                    .expect("users");
                Self::Postgres { cluster, prefix }
            }
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Self::Mariadb(target) => &target.prefix,
            Self::Postgres { prefix, .. } => prefix,
        }
    }

    fn backend_body(&self) -> Value {
        match self {
            Self::Mariadb(target) => target.backend_body(ADMIN_PASSWORD),
            Self::Postgres { cluster, prefix } => json!({
                "plugin": "postgresql",
                "connection": {"host": "127.0.0.1", "port": cluster.port, "database": "postgres",
                    "username": format!("{prefix}_admin"), "password": ADMIN_PASSWORD, "sslMode": "disable"},
                "maxOpenConnections": 2
            }),
        }
    }

    async fn logs_in(&self, user: &str, password: &str) -> bool {
        match self {
            Self::Mariadb(target) => {
                let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname("127.0.0.1")
                    .tcp_port(3306)
                    .user(Some(user))
                    .pass(Some(password))
                    .prefer_socket(false)
                    .into();
                let _ = target;
                match mysql_async::Conn::new(opts).await {
                    Ok(conn) => {
                        let _ = conn.disconnect().await;
                        true
                    }
                    Err(_) => false,
                }
            }
            Self::Postgres { cluster, .. } => pg(cluster.port, user, password).await.is_ok(),
        }
    }

    /// Makes the backend unusable for the broker: its admin can no longer log in.
    async fn take_down(&self) {
        match self {
            Self::Mariadb(target) => target.take_down().await,
            Self::Postgres { cluster, prefix } => {
                let client = pg(cluster.port, SUPERUSER, SUPERUSER_PASSWORD)
                    .await
                    .expect("superuser");
                client
                    .batch_execute(&format!(
                        "ALTER ROLE {prefix}_admin NOLOGIN; \
                         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{prefix}_admin';"
                    ))
                    .await
                    .expect("take down");
            }
        }
    }

    async fn bring_back(&self) {
        match self {
            Self::Mariadb(target) => target.bring_back().await,
            Self::Postgres { cluster, prefix } => {
                pg(cluster.port, SUPERUSER, SUPERUSER_PASSWORD)
                    .await
                    .expect("superuser")
                    .batch_execute(&format!("ALTER ROLE {prefix}_admin LOGIN"))
                    .await
                    .expect("bring back");
            }
        }
    }

    async fn cleanup(self) {
        if let Self::Mariadb(target) = self {
            target.cleanup().await;
        }
    }
}

async fn credentials(app: &TestApp, role: &str) -> (String, String, i64) {
    let (status, body) = app
        .get(&format!("/v1/static-roles/{role}/credentials"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["username"].as_str().expect("username").to_owned(),
        body["password"].as_str().expect("password").to_owned(),
        body["version"].as_i64().expect("version"),
    )
}

async fn static_users_rotate_with_an_overlap(kind: Kind) {
    let app = spawn_app(Backend::Sqlite).await;
    let users = Users::create(kind).await;
    let p = users.prefix().to_owned();
    let (status, body) = app
        .request(Method::PUT, "/v1/backends/db", Some(users.backend_body()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An empty secret where the role's goes, as an earlier attempt whose role row did not
    // commit leaves it: the role takes it over instead of being refused for good. A secret
    // someone else put there is not taken.
    let (status, left_over) = app
        .post(
            "/v1/secrets",
            json!({"environment": "prod", "path": "static-roles/app", "ownerTeam": "platform",
                "description": "credentials of static role app"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{left_over}");
    let left_over = left_over["id"].as_str().expect("id").to_owned();
    app.create_secret("prod", "static-roles/taken").await;
    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/static-roles/taken",
            Some(json!({"backend": "db", "environment": "prod", "usernames": [format!("{p}_a")]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Two users, used alternately.
    let (status, role) = app
        .request(
            Method::PUT,
            "/v1/static-roles/app",
            Some(json!({"backend": "db", "environment": "prod",
                "usernames": [format!("{p}_a"), format!("{p}_b")],
                "rotation": {"overlapWindow": "3s", "rollbackWindow": "1h"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    assert_eq!(role["secretPath"], "prod/static-roles/app");
    assert_eq!(role["secretId"], left_over.as_str(), "{role}");
    let (user1, password1, version1) = credentials(&app, "app").await;
    assert_eq!((user1.as_str(), version1), (format!("{p}_a").as_str(), 1));
    assert!(
        users.logs_in(&user1, &password1).await,
        "the first credential logs in"
    );
    assert!(
        !users.logs_in(&user1, INITIAL).await,
        "the broker replaced the initial password"
    );

    let (status, run) = app.post("/v1/static-roles/app/rotate", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let (user2, password2, _) = credentials(&app, "app").await;
    assert_eq!(user2, format!("{p}_b"));
    assert!(users.logs_in(&user2, &password2).await, "new credential");
    assert!(
        users.logs_in(&user1, &password1).await,
        "old credential during the overlap"
    );
    let run_id = run["id"].as_str().expect("id").to_owned();
    wait_for_run(&app, &run_id, "overlap end", |r| r["step"] == "previous").await;
    assert!(
        !users.logs_in(&user1, &password1).await,
        "old credential after the overlap"
    );
    assert!(
        users.logs_in(&user2, &password2).await,
        "new credential after the overlap"
    );

    // The target is down for the broker: the rotation fails, `current` and its login stay.
    users.take_down().await;
    let (status, body) = app.post("/v1/static-roles/app/rotate", json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "rotation_failed");
    users.bring_back().await;
    let (user, password, version) = credentials(&app, "app").await;
    assert_eq!(
        (user.as_str(), password.as_str(), version),
        (user2.as_str(), password2.as_str(), 2)
    );
    assert!(
        users.logs_in(&user2, &password2).await,
        "the credential in use still works"
    );
    let (_, runs) = app.get("/v1/rotations").await;
    assert_eq!(runs[0]["state"], "FAILED", "{runs}");
    assert_eq!(runs[0]["step"], "set-downstream", "{runs}");
    let (_, meta) = app
        .get(&format!(
            "/v1/secrets/{}",
            role["secretId"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        status_of(&meta, 3),
        "DISABLED",
        "the value that may have reached the target is never used"
    );
    // After recovery the next rotation uses a fresh value.
    let (status, run) = app.post("/v1/static-roles/app/rotate", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let (user4, password4, version4) = credentials(&app, "app").await;
    assert_eq!((user4.as_str(), version4), (user1.as_str(), 4));
    assert!(users.logs_in(&user4, &password4).await);

    // One user: its password is replaced, the old one stops at once.
    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/static-roles/solo",
            Some(
                json!({"backend": "db", "environment": "prod", "usernames": [format!("{p}_solo")]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (solo, first, _) = credentials(&app, "solo").await;
    let (status, body) = app.post("/v1/static-roles/solo/rotate", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, second, _) = credentials(&app, "solo").await;
    assert!(users.logs_in(&solo, &second).await);
    assert!(!users.logs_in(&solo, &first).await);

    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/static-roles/bad",
            Some(json!({"backend": "db", "environment": "prod", "usernames": ["x'@'%'; DROP USER root; --"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.cleanup().await;
    users.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_users_rotate_with_an_overlap_mariadb() {
    static_users_rotate_with_an_overlap(Kind::Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_users_rotate_with_an_overlap_postgres() {
    static_users_rotate_with_an_overlap(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rotates_canaries_promotes_and_rolls_back() {
    let app = spawn_app(Backend::Sqlite).await;
    let id = app.create_secret("prod", "rotate/cli").await;
    app.put_version(&id, "cli-one", "CURRENT").await;
    let (ok, out, err) = leasehold(
        &app,
        &[
            "--json",
            "rotation",
            "rotate",
            "prod/rotate/cli",
            "--value-file",
            "-",
            "--stop-after-next",
        ],
        Some("cli-two"),
    )
    .await;
    assert!(ok, "{out} {err}");
    let run: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(run["step"], "next");
    let run_id = run["id"].as_str().expect("id");
    let (ok, out, err) = leasehold(&app, &["rotation", "promote", run_id], None).await;
    assert!(ok && out.contains("step overlap"), "{out} {err}");
    let (_, current) = read(&app, "rotate/cli", "alias=current").await;
    assert_eq!(current["value"], "cli-two");
    let (ok, out, err) = leasehold(
        &app,
        &["rotation", "list", "--secret", "prod/rotate/cli"],
        None,
    )
    .await;
    assert!(ok && out.contains(run_id), "{out} {err}");
    let (ok, out, err) = leasehold(&app, &["rotation", "rollback", "prod/rotate/cli"], None).await;
    assert!(ok && out.contains("version 1 again"), "{out} {err}");
    let (ok, _, err) = leasehold(&app, &["rotation", "rollback", "prod/rotate/cli"], None).await;
    assert!(
        !ok && err.contains("409"),
        "a second rollback has nothing readable to go to: {err}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_hears_every_step_and_a_refusal_keeps_current() {
    let answer = Arc::new(AtomicU16::new(204));
    let (url, mut calls) = webhook_answering(answer.clone()).await;
    let app = spawn_app(Backend::Sqlite).await;
    let id = app.create_secret("prod", "rotate/hook").await;
    app.put_version(&id, "hook-one", "CURRENT").await;
    put_policy(
        &app,
        &id,
        json!({"overlapWindow": "1s", "rollbackWindow": "1h", "webhook": url}),
    )
    .await;
    let mut next_call = async || {
        tokio::time::timeout(Duration::from_secs(10), calls.recv())
            .await
            .expect("a webhook call within 10 s")
            .expect("call")
    };

    let (status, run) = app
        .post(
            &format!("/v1/secrets/{id}/rotate"),
            json!({"value": "hook-two"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    for step in ["setSecret", "testSecret"] {
        let call = next_call().await;
        assert_eq!(
            (
                call["step"].as_str(),
                call["version"].as_i64(),
                call["previousVersion"].as_i64()
            ),
            (Some(step), Some(2), Some(1)),
            "{call}"
        );
        assert_eq!(call["path"], "rotate/hook");
        assert!(
            !call.to_string().contains("hook-two"),
            "no value travels in the webhook"
        );
    }
    let finish = next_call().await;
    assert_eq!(
        (finish["step"].as_str(), finish["version"].as_i64()),
        (Some("finishSecret"), Some(2)),
        "{finish}"
    );

    // The deployer refuses: the step fails, `current` stays, the new version is disabled.
    answer.store(500, Ordering::SeqCst);
    let (status, body) = app
        .post(
            &format!("/v1/secrets/{id}/rotate"),
            json!({"value": "hook-three"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("setSecret"),
        "{body}"
    );
    let (_, current) = read(&app, "rotate/hook", "alias=current").await;
    assert_eq!(current["value"], "hook-two");
    assert_eq!(status_of(&metadata(&app, &id).await, 3), "DISABLED");
    assert_eq!(next_call().await["step"], "setSecret");

    // A rollback tells the deployer first; while it refuses, nothing moves.
    let (status, body) = app
        .post(&format!("/v1/secrets/{id}/rollback"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(next_call().await["step"], "rollbackSecret");
    let (_, current) = read(&app, "rotate/hook", "alias=current").await;
    assert_eq!(current["value"], "hook-two");
    answer.store(204, Ordering::SeqCst);
    let (status, body) = app
        .post(&format!("/v1/secrets/{id}/rollback"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rollback = next_call().await;
    assert_eq!(
        (
            rollback["step"].as_str(),
            rollback["version"].as_i64(),
            rollback["previousVersion"].as_i64()
        ),
        (Some("rollbackSecret"), Some(1), Some(2)),
        "{rollback}"
    );
    let (_, current) = read(&app, "rotate/hook", "alias=current").await;
    assert_eq!(current["value"], "hook-one");

    for (policy, case) in [
        (json!({"webhook": "ftp://deployer/rotate"}), "not http"),
        (
            json!({"webhook": "https://user:pw@deployer/rotate"}),
            "credentials in the URL",
        ),
        (
            json!({"webhook": "https://token@deployer/rotate"}),
            "a user name (a bearer token, often) in the URL",
        ),
        (json!({"webhook": "not a url"}), "not a URL"),
    ] {
        let (status, body) = app
            .request(
                Method::PUT,
                &format!("/v1/secrets/{id}/rotation"),
                Some(policy),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "case: {case}: {body}");
        assert_eq!(body["error"]["field"], "webhook", "case: {case}");
    }
    app.cleanup().await;
}
