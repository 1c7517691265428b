//! Dynamic credentials through the HTTP API, against the machine's real PostgreSQL and MariaDB:
//! backends, roles, leases, their authorization and their audit trail.

use std::time::Duration;

use leasehold_broker::store::{JournalEffect, LeaseRow, PENDING, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, contains, raw_dump, spawn_app_with};
use crate::on_both_stores;
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

const KINDS: [Kind; 2] = [Kind::Postgres, Kind::Mariadb];

/// A backend named `name` and a role `role` on it; answers the target.
async fn setup(app: &TestApp, kind: Kind, name: &str, role: &str) -> Target {
    let target = Target::create(kind).await;
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/backends/{name}"),
            Some(target.backend_body(ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "backend: {body}");
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/roles/{role}"),
            Some(target.role_body(name)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "role: {body}");
    target
}

async fn audit_types(app: &TestApp) -> Vec<String> {
    let (_, page) = app.get("/v1/audit/events?limit=1000").await;
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn lifecycle(app: &TestApp, kind: Kind) {
    let target = setup(app, kind, "db-main", "app-rw").await;

    // The backend never shows its password; verify logs in with it.
    let (status, backend) = app.get("/v1/backends/db-main").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!backend.to_string().contains(ADMIN_PASSWORD), "{backend}");
    assert_eq!(backend["roles"], json!(["app-rw"]));
    let (status, body) = app.post("/v1/backends/db-main/verify", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The role shows the defaults it will run, and its policy resource.
    let (_, role) = app.get("/v1/roles/app-rw").await;
    assert_eq!(role["resource"], "prod/roles/app-rw");
    assert!(
        role["creationStatements"][0]
            .as_str()
            .expect("statement")
            .contains("{{"),
        "{role}"
    );

    let (status, lease) = app
        .post("/v1/leases", json!({"role": "app-rw", "ttl": "10m"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let username = lease["username"].as_str().expect("username").to_owned();
    let password = lease["password"].as_str().expect("password").to_owned();
    let id = lease["leaseId"].as_str().expect("lease id").to_owned();
    assert!(username.starts_with(&target.prefix));
    assert_eq!(lease["renewable"], true);
    target
        .login(&username, &password)
        .await
        .expect("the credential logs in and reads");
    if kind == Kind::Mariadb {
        assert!(target.login(&username, "not-the-password").await.is_err());
    }
    if kind == Kind::Postgres {
        let expires: chrono::DateTime<chrono::Utc> = lease["expiresAt"]
            .as_str()
            .expect("expiresAt")
            .parse()
            .expect("time");
        assert_eq!(target.valid_until(&username).await, expires.timestamp());
    }

    // Renewal moves the expiry, capped at the lease's maximum, and reaches the target.
    let (status, renewed) = app
        .post(
            &format!("/v1/leases/{id}/renew"),
            json!({"increment": "30m"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert!(renewed["expiresAt"].as_str() > lease["expiresAt"].as_str());
    if kind == Kind::Postgres {
        let expires: chrono::DateTime<chrono::Utc> = renewed["expiresAt"]
            .as_str()
            .expect("expiresAt")
            .parse()
            .expect("time");
        assert_eq!(target.valid_until(&username).await, expires.timestamp());
    }
    let (_, capped) = app
        .post(
            &format!("/v1/leases/{id}/renew"),
            json!({"increment": "5h"}),
        )
        .await;
    assert_eq!(capped["expiresAt"], capped["maxExpiresAt"], "{capped}");
    assert!(capped["warning"].is_string());
    assert_eq!(capped["renewable"], false);

    // Reads never carry the password.
    let (_, one) = app.get(&format!("/v1/leases/{id}")).await;
    assert_eq!(one["state"], "ACTIVE");
    let (_, page) = app.get("/v1/leases?role=app-rw&state=active").await;
    assert_eq!(page["leases"].as_array().map(Vec::len), Some(1));
    assert!(!page.to_string().contains(&password) && !one.to_string().contains(&password));

    // Revoked: the user is gone and cannot log in; revoking again is a no-op.
    let (status, revoked) = app
        .post(&format!("/v1/leases/{id}/revoke"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["state"], "REVOKED");
    assert!(!target.user_exists(&username).await);
    assert!(target.login(&username, &password).await.is_err());
    let (status, _) = app
        .post(&format!("/v1/leases/{id}/revoke"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let types = audit_types(app).await;
    for expected in [
        "BACKEND_WRITE",
        "ROLE_WRITE",
        "LEASE_ISSUE",
        "LEASE_RENEW",
        "LEASE_REVOKE",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }

    // Deleting the role and backend leaves nothing behind.
    let (status, _) = app.request(Method::DELETE, "/v1/roles/app-rw", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .request(Method::DELETE, "/v1/backends/db-main", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    target.cleanup().await;
}

on_both_stores!(
    issue_renew_revoke_on_postgresql_and_mariadb,
    |app: TestApp| async move {
        for kind in KINDS {
            lifecycle(&app, kind).await;
        }
        app.cleanup().await;
    }
);

on_both_stores!(
    ttl_above_the_maximum_is_capped_with_a_warning,
    |app: TestApp| async move {
        let target = setup(&app, Kind::Mariadb, "db", "capped").await;
        let (status, lease) = app
            .post("/v1/leases", json!({"role": "capped", "ttl": "48h"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{lease}");
        assert_eq!(lease["expiresAt"], lease["maxExpiresAt"]);
        assert!(
            lease["warning"]
                .as_str()
                .expect("warning")
                .contains("maxTtl")
        );
        app.remove_backend("db").await;
        target.cleanup().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    deleting_a_backend_with_live_leases_names_them,
    |app: TestApp| async move {
        let target = setup(&app, Kind::Postgres, "doomed", "doomed-rw").await;
        let (_, lease) = app.post("/v1/leases", json!({"role": "doomed-rw"})).await;
        let id = lease["leaseId"].as_str().expect("lease id");
        let username = lease["username"].as_str().expect("username");

        let (status, body) = app
            .request(Method::DELETE, "/v1/backends/doomed", None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains(id),
            "{body}"
        );
        assert!(
            target.user_exists(username).await,
            "a refused delete changes nothing"
        );
        let (status, _) = app
            .request(Method::DELETE, "/v1/roles/doomed-rw", None)
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a role with live leases stays"
        );

        let (status, body) = app
            .request(
                Method::DELETE,
                "/v1/backends/doomed?revokeLeases=true",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(!target.user_exists(username).await);
        let (_, gone) = app.get(&format!("/v1/leases/{id}")).await;
        assert_eq!(gone["state"], "REVOKED");
        // The revocation is in the trail, before the deletion that asked for it.
        let (_, page) = app.get("/v1/audit/events?limit=1000").await;
        let trail: Vec<(&str, &str)> = page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                let lease = e["detail"]["leaseId"].as_str().unwrap_or_default();
                (e["eventType"].as_str().expect("type"), lease)
            })
            .filter(|(t, _)| ["LEASE_REVOKE", "BACKEND_DELETE"].contains(t))
            .collect();
        assert_eq!(
            trail,
            [("LEASE_REVOKE", id), ("BACKEND_DELETE", "")],
            "{page}"
        );
        let (status, _) = app.get("/v1/roles/doomed-rw").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "the backend's roles go with it"
        );
        target.cleanup().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    leases_are_authorized_per_role_and_denials_audited,
    |app: TestApp| async move {
        let target = setup(&app, Kind::Mariadb, "db", "allowed").await;
        let (status, _) = app
            .request(
                Method::PUT,
                "/v1/roles/forbidden",
                Some(target.role_body("db")),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = app
        .request(
            Method::PUT,
            "/v1/policies/issuer",
            Some(json!({"statements": [{"effect": "allow", "principal": "service:prod:api",
                "actions": ["leases:issue", "leases:renew"], "resources": ["prod/roles/allowed"]}]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = app.token_for("service:prod:api", json!({})).await;
        let other = app.token_for("service:prod:other", json!({})).await;

        let (status, lease) = app
            .request_as(
                &token,
                Method::POST,
                "/v1/leases",
                Some(json!({"role": "allowed"})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{lease}");
        let id = lease["leaseId"].as_str().expect("lease id");
        let (status, _) = app
            .request_as(
                &token,
                Method::POST,
                "/v1/leases",
                Some(json!({"role": "forbidden"})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Its own lease: readable and renewable, not revocable (no leases:revoke).
        let (status, _) = app
            .request_as(&token, Method::GET, &format!("/v1/leases/{id}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = app
            .request_as(
                &token,
                Method::POST,
                &format!("/v1/leases/{id}/renew"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "renew with an empty body: {body}");
        let (status, _) = app
            .request_as(
                &token,
                Method::POST,
                &format!("/v1/leases/{id}/revoke"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Another principal sees neither the lease nor the list; nor may it manage backends.
        let (status, _) = app
            .request_as(&other, Method::GET, &format!("/v1/leases/{id}"), None, &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app
            .request_as(&other, Method::GET, "/v1/leases", None, &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, page) = app
            .request_as(
                &other,
                Method::GET,
                "/v1/leases?principal=service:prod:other",
                None,
                &[],
            )
            .await;
        assert_eq!(
            (status, page["leases"].clone()),
            (StatusCode::OK, json!([]))
        );
        let (status, _) = app
            .request_as(
                &token,
                Method::PUT,
                "/v1/backends/db",
                Some(target.backend_body("x")),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (_, denied) = app.get("/v1/audit/events?decision=DENY&limit=100").await;
        let actions: Vec<&str> = denied["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["detail"]["action"].as_str())
            .collect();
        for expected in [
            "leases:issue",
            "leases:revoke",
            "leases:read",
            "backends:admin",
        ] {
            assert!(
                actions.contains(&expected),
                "{expected} deny not audited: {actions:?}"
            );
        }
        app.remove_backend("db").await;
        target.cleanup().await;
        app.cleanup().await;
    }
);

// A PostgreSQL backend's `scramIterations` is shown back and reaches the verifiers of the users
// it creates.
on_both_stores!(
    a_backends_scram_iterations_reach_its_users,
    |app: TestApp| async move {
        let target = Target::create(Kind::Postgres).await;
        let mut body = target.backend_body(ADMIN_PASSWORD);
        body["connection"]["scramIterations"] = json!(64);
        let (status, answer) = app
            .request(Method::PUT, "/v1/backends/db", Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (_, backend) = app.get("/v1/backends/db").await;
        assert_eq!(backend["connection"]["scramIterations"], 64, "{backend}");
        let (status, answer) = app
            .request(Method::PUT, "/v1/roles/fast", Some(target.role_body("db")))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, lease) = app.post("/v1/leases", json!({"role": "fast"})).await;
        assert_eq!(status, StatusCode::CREATED, "{lease}");
        let username = lease["username"].as_str().expect("username");
        let verifier = target.stored_verifier(username).await;
        assert!(verifier.starts_with("SCRAM-SHA-256$64:"), "{verifier}");
        app.remove_backend("db").await;
        target.cleanup().await;
        app.cleanup().await;
    }
);

// Each bad body answers 400 naming the field, and nothing is stored.
on_both_stores!(
    bad_backend_and_role_bodies_change_nothing,
    |app: TestApp| async move {
        let target = setup(&app, Kind::Postgres, "db", "good").await;
        let good_backend = target.backend_body(ADMIN_PASSWORD);
        let mut bad_backends: Vec<(&str, Value)> = Vec::new();
        let mut b = good_backend.clone();
        b["plugin"] = json!("oracle");
        bad_backends.push(("plugin", b));
        let mut b = good_backend.clone();
        b["connection"]["sslMode"] = json!("prefer");
        bad_backends.push(("connection.sslMode", b));
        let mut b = good_backend.clone();
        b["maxOpenConnections"] = json!(0);
        bad_backends.push(("maxOpenConnections", b));
        let mut b = good_backend.clone();
        b["connection"]["host"] = json!("db; rm -rf /");
        bad_backends.push(("connection.host", b));
        let mut b = good_backend.clone();
        b["connection"]["scramIterations"] = json!(0);
        bad_backends.push(("connection.scramIterations", b));
        let mut b = good_backend.clone();
        b["plugin"] = json!("mysql");
        b["connection"]["scramIterations"] = json!(4096);
        bad_backends.push(("connection.scramIterations", b));
        for (field, body) in bad_backends {
            let (status, answer) = app
                .request(Method::PUT, "/v1/backends/new-db", Some(body))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
        let mut b = good_backend.clone();
        b["connection"]
            .as_object_mut()
            .expect("object")
            .remove("password");
        let (status, answer) = app
            .request(Method::PUT, "/v1/backends/new-db", Some(b))
            .await;
        assert_eq!(
            (status, answer["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("connection.password"))
        );
        let (status, _) = app
            .request(
                Method::PUT,
                "/v1/backends/Bad%20Name",
                Some(good_backend.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let good_role = target.role_body("db");
        let cases: Vec<(&str, &str, Value)> = vec![
            (
                "creationStatements",
                "unknown placeholder",
                json!({"creationStatements": ["CREATE ROLE {{nam}}"]}),
            ),
            (
                "revocationStatements",
                "only creation",
                json!({"revocationStatements": ["ALTER ROLE {{name}} PASSWORD {{password}}"]}),
            ),
            (
                "revocationStatements",
                "must not be empty",
                json!({"revocationStatements": []}),
            ),
            (
                "usernameTemplate",
                "random",
                json!({"usernameTemplate": "fixed_name"}),
            ),
            (
                "usernameTemplate",
                "a-z",
                json!({"usernameTemplate": "x\"; DROP TABLE t; --{{random}}"}),
            ),
            (
                "memberOf",
                "group role",
                json!({"memberOf": ["a\"; DROP ROLE postgres; --"]}),
            ),
            (
                "defaultTtl",
                "exceed",
                json!({"defaultTtl": "2h", "maxTtl": "1h"}),
            ),
            (
                "passwordPolicy",
                "between",
                json!({"passwordPolicy": {"length": 8}}),
            ),
            ("backend", "create it first", json!({"backend": "missing"})),
            ("environment", "", json!({"environment": "Prod!"})),
        ];
        for (field, words, change) in cases {
            let mut body = good_role.clone();
            for (k, v) in change.as_object().expect("object") {
                body[k] = v.clone();
            }
            let (status, answer) = app
                .request(Method::PUT, "/v1/roles/bad-role", Some(body))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
            assert_eq!(answer["error"]["field"], field, "{answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .expect("message")
                    .contains(words),
                "{answer}"
            );
        }
        let (status, _) = app
            .request(Method::PUT, "/v1/roles/Bad_Role", Some(good_role.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, answer) = app
            .post("/v1/leases", json!({"role": "good", "ttl": "forever"}))
            .await;
        assert_eq!(
            (status, answer["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("ttl"))
        );
        let (status, _) = app.post("/v1/leases", json!({"role": "ghost"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (_, backends) = app.get("/v1/backends").await;
        assert_eq!(backends["backends"], json!(["db"]));
        let (_, roles) = app.get("/v1/roles").await;
        assert_eq!(roles["roles"], json!(["good"]));
        let (_, leases) = app.get("/v1/leases").await;
        assert_eq!(leases["leases"], json!([]));
        target.cleanup().await;
        app.cleanup().await;
    }
);

/// A role whose second creation statement fails after the first created the user.
/// PostgreSQL fails while preparing (nothing commits); MariaDB commits `CREATE USER` before the
/// failing `GRANT`, while the lease's activation commits beside it.
async fn failed_issue(app: &TestApp, kind: Kind) {
    let target = setup(app, kind, "db", "plain").await;
    let mut role = target.role_body("db");
    role["creationStatements"] = match kind {
        Kind::Postgres => json!([
            "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}",
            "GRANT no_such_group_role_anywhere TO {{name}}"
        ]),
        Kind::Mariadb => json!([
            "CREATE USER {{name}}@'%' IDENTIFIED BY PASSWORD {{password_hash}}",
            format!(
                "GRANT SELECT ON {}.no_such_table TO {{{{name}}}}@'%'",
                target.prefix
            ),
        ]),
    };
    let (status, body) = app
        .request(Method::PUT, "/v1/roles/broken", Some(role))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.post("/v1/leases", json!({"role": "broken"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "backend_rejected");
    let (_, page) = app.get("/v1/leases?role=broken").await;
    let leases: Vec<&Value> = page["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .filter(|l| {
            l["username"]
                .as_str()
                .is_some_and(|u| u.starts_with(&target.prefix))
        })
        .collect();
    assert_eq!(leases.len(), 1, "{page}");
    assert_eq!(leases[0]["state"], "REVOKED", "{page}");
    let username = leases[0]["username"].as_str().expect("username");
    assert!(
        !target.user_exists(username).await,
        "{kind:?}: the user must not survive"
    );
    // The lease becomes ACTIVE, with its event, only once the user exists: a failed issue is
    // never in the trail as issued.
    let id = leases[0]["leaseId"].as_str().expect("lease id");
    let (_, trail) = app.get("/v1/audit/events?limit=1000").await;
    let issued = trail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["detail"]["leaseId"] == id && e["eventType"] == "LEASE_ISSUE")
        .count();
    assert_eq!(issued, 0, "{kind:?}: {trail}");
    // The next kind reuses the names; the backend's roles go with it.
    let (status, _) = app.request(Method::DELETE, "/v1/backends/db", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    target.cleanup().await;
}

on_both_stores!(
    a_failed_issue_leaves_no_user_and_no_pending_lease,
    |app: TestApp| async move {
        for kind in KINDS {
            failed_issue(&app, kind).await;
        }
        app.cleanup().await;
    }
);

on_both_stores!(
    rotate_root_leaves_nobody_knowing_the_admin_password,
    |app: TestApp| async move {
        let target = setup(&app, Kind::Mariadb, "db", "after-rotation").await;
        let (status, body) = app.post("/v1/backends/db/rotate-root", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["generation"], 2);
        assert!(
            target
                .login(&target.admin_user(), ADMIN_PASSWORD)
                .await
                .is_err(),
            "the old admin password still works"
        );
        let (status, body) = app.post("/v1/backends/db/verify", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, lease) = app
            .post("/v1/leases", json!({"role": "after-rotation"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{lease}");
        // A later PUT without a password keeps the rotated one.
        let mut body = target.backend_body("unused");
        body["connection"]
            .as_object_mut()
            .expect("object")
            .remove("password");
        body["maxOpenConnections"] = json!(2);
        let (status, answer) = app
            .request(Method::PUT, "/v1/backends/db", Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, body) = app.post("/v1/backends/db/verify", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.remove_backend("db").await;
        target.cleanup().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    admin_passwords_are_sealed_at_rest,
    |app: TestApp| async move {
        let target = Target::create(Kind::Mariadb).await;
        let canary = format!("Canary-admin-{}", uuid::Uuid::new_v4().simple());
        target
            .admin_sql(&format!(
                "ALTER USER '{}'@'%' IDENTIFIED BY '{canary}'",
                target.admin_user()
            ))
            .await;
        let (status, body) = app
            .request(
                Method::PUT,
                "/v1/backends/sealed",
                Some(target.backend_body(&canary)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app.post("/v1/backends/sealed/verify", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, read) = app.get("/v1/backends/sealed").await;
        assert!(!read.to_string().contains(&canary));
        assert!(
            !contains(&raw_dump(&app).await, &canary),
            "the admin password is stored in plaintext"
        );
        assert!(!app.metrics().await.contains(&canary));
        target.cleanup().await;
        app.cleanup().await;
    }
);

/// Applies `effect` to the store as the audit writer would, without an event.
async fn apply(app: &TestApp, effect: JournalEffect) -> bool {
    let mut connection = app.store.writer_connection().await.expect("a connection");
    let appended = Store::append_audit(&mut connection, &[], &[&effect], None)
        .await
        .expect("apply");
    appended.applied[0]
}

/// A lease intent as `issue` writes it before the user is created, due at the end of its
/// grace period (`due_in`, negative for one whose grace is over).
fn intent(role: &str, username: &str, due_in: chrono::Duration) -> LeaseRow {
    let now = chrono::Utc::now();
    LeaseRow {
        id: uuid::Uuid::now_v7(),
        tenant: "default".into(),
        environment: "prod".into(),
        role: role.into(),
        backend: "db".into(),
        principal: "user:root".into(),
        username: username.into(),
        state: PENDING.into(),
        issued_at: now,
        expires_at: now + chrono::Duration::hours(1),
        max_expires_at: now + chrono::Duration::hours(1),
        revoked_at: None,
        updated_at: now,
        last_error: None,
        due_at: Some(now + due_in),
        attempts: 0,
        failing_since: None,
    }
}

fn activate(id: uuid::Uuid) -> JournalEffect {
    JournalEffect::ActivateLease {
        id,
        at: chrono::Utc::now(),
    }
}

on_both_stores!(
    an_intent_a_revocation_took_is_never_activated,
    |app: TestApp| async move {
        let grace = chrono::Duration::minutes(2);
        let [untouched, expedited, failed, overdue, claimed] = [
            intent("race", "race_0", grace),
            intent("race", "race_1", grace),
            intent("race", "race_2", grace),
            intent("race", "race_3", -chrono::Duration::seconds(1)),
            intent("race", "race_4", grace),
        ];
        for lease in [&untouched, &expedited, &failed, &overdue, &claimed] {
            assert!(
                apply(
                    &app,
                    JournalEffect::InsertLeaseIntent(Box::new(lease.clone()))
                )
                .await
            );
        }
        // The issue prepares its activation, then a revocation asks for the intent before the
        // activation reaches the store: whatever the clocks say, it cannot activate.
        let prepared = activate(expedited.id);
        let now = chrono::Utc::now();
        let handed = app
            .store
            .expedite_intents(&[expedited.id], None, now)
            .await
            .expect("expedite");
        assert_eq!(handed, 1);
        app.store
            .record_lease_error(failed.id, "target down", now)
            .await
            .expect("record");
        // A revocation took three of them: due now, failed, grace over. Their issues cannot
        // activate them (each drops its user instead); the untouched one activates.
        assert!(!apply(&app, prepared).await, "expedited");
        assert!(
            !apply(&app, activate(failed.id)).await,
            "a revocation failed"
        );
        assert!(!apply(&app, activate(overdue.id)).await, "grace over");
        assert!(apply(&app, activate(untouched.id)).await, "untouched");
        // The scheduler flags the intents it claimed before it drops their users; an activated
        // lease is not flagged (it keeps its user, and is left alone).
        let flagged = app
            .store
            .request_intent_revocation(&[claimed.id, untouched.id])
            .await
            .expect("flag");
        assert_eq!(flagged, [claimed.id].into_iter().collect());
        assert!(!apply(&app, activate(claimed.id)).await, "claimed");
        app.cleanup().await;
    }
);

/// Two issues caught between the user's commit and the lease's activation, one revoked by hand and
/// one by a mass revocation: no user survives, and the job completes once the intents' grace is
/// over (3 s here; their issues, had they lived, would have dropped their users at once).
async fn a_revocation_that_meets_an_issue_in_flight_leaves_no_user(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.lease_intent_grace_seconds = 3).await;
    let target = setup(&app, Kind::Mariadb, "db", "inflight").await;
    // Two issues caught between the user's commit and the lease's activation: the users
    // exist, their leases are intents.
    let mut intents = Vec::new();
    for n in 0..2 {
        let username = format!("{}_flight{n}", target.prefix);
        target
            .admin_sql(&format!(
                "CREATE USER '{username}'@'%' IDENTIFIED BY 'In-flight-pw-1'"
            ))
            .await;
        let lease = intent("inflight", &username, chrono::Duration::seconds(3));
        assert!(
            apply(
                &app,
                JournalEffect::InsertLeaseIntent(Box::new(lease.clone()))
            )
            .await
        );
        intents.push(lease);
    }
    // One is revoked by hand, the other by a mass revocation of the role.
    let (status, body) = app
        .post(&format!("/v1/leases/{}/revoke", intents[0].id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, accepted) = app
        .post(
            "/v1/revocations",
            json!({"selector": {"role": "inflight"}, "reason": "in flight", "ticket": "INC-3"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job = accepted["jobId"].as_str().expect("job");
    let (_, view) = app.get(&format!("/v1/revocations/{job}?wait=30s")).await;
    assert_eq!(view["state"], "COMPLETED", "{view}");
    for lease in &intents {
        let (_, row) = app.get(&format!("/v1/leases/{}", lease.id)).await;
        assert_eq!(row["state"], "REVOKED", "{row}");
        assert!(
            !target.user_exists(&lease.username).await,
            "the scheduler dropped {}",
            lease.username
        );
        assert!(
            !apply(&app, activate(lease.id)).await,
            "an issue that comes back finds its lease revoked and drops its user"
        );
    }
    app.remove_backend("db").await;
    target.cleanup().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_meets_an_issue_in_flight_leaves_no_user_sqlite() {
    a_revocation_that_meets_an_issue_in_flight_leaves_no_user(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_meets_an_issue_in_flight_leaves_no_user_postgres() {
    a_revocation_that_meets_an_issue_in_flight_leaves_no_user(Backend::Postgres).await;
}

/// An issue commits its user after the scheduler already dropped it for a revoked intent: the
/// scheduler drops it again when the intent's grace ends, and only then marks it REVOKED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_committed_after_its_intent_was_revoked_is_dropped_at_the_grace_end() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.lease_intent_grace_seconds = 3).await;
    let target = setup(&app, Kind::Mariadb, "db", "late").await;
    let username = format!("{}_late", target.prefix);
    let lease = intent("late", &username, chrono::Duration::seconds(3));
    assert!(
        apply(
            &app,
            JournalEffect::InsertLeaseIntent(Box::new(lease.clone()))
        )
        .await
    );
    let (status, body) = app
        .post(&format!("/v1/leases/{}/revoke", lease.id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The scheduler drops the user that does not exist yet; the intent stays PENDING.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, row) = app.get(&format!("/v1/leases/{}", lease.id)).await;
    assert_eq!(row["state"], "PENDING", "{row}");
    // Now the issue commits its user (and cannot activate the intent).
    target
        .admin_sql(&format!(
            "CREATE USER '{username}'@'%' IDENTIFIED BY 'Late-pw-1'"
        ))
        .await;
    assert!(!apply(&app, activate(lease.id)).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, row) = app.get(&format!("/v1/leases/{}", lease.id)).await;
        if row["state"] == "REVOKED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not revoked after its grace: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !target.user_exists(&username).await,
        "the late user is dropped at the grace end"
    );
    app.remove_backend("db").await;
    target.cleanup().await;
    app.cleanup().await;
}
