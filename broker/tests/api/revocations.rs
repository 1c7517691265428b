//! Mass revocation through the HTTP API, against the machine's real PostgreSQL and MariaDB:
//! selectors take exactly the leases they describe, a dry run changes nothing, the fence refuses
//! matching issues at once, a job revokes every user, and a target that fails for part of the
//! job shows as partial failure until the scheduler's retries finish it.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::on_both_stores;
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

async fn put_backend(app: &TestApp, name: &str, target: &Target) {
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/backends/{name}"),
            Some(target.backend_body(ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn put_role(app: &TestApp, name: &str, backend: &str, environment: &str, target: &Target) {
    let mut role = target.role_body(backend);
    role["environment"] = json!(environment);
    let (status, body) = app
        .request(Method::PUT, &format!("/v1/roles/{name}"), Some(role))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

struct Lease {
    id: String,
    username: String,
}

async fn issue_as(app: &TestApp, token: Option<&str>, role: &str) -> Lease {
    let body = json!({"role": role, "ttl": "30m"});
    let (status, lease) = match token {
        Some(token) => {
            app.request_as(token, Method::POST, "/v1/leases", Some(body), &[])
                .await
        }
        None => app.post("/v1/leases", body).await,
    };
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    Lease {
        id: lease["leaseId"].as_str().expect("id").to_owned(),
        username: lease["username"].as_str().expect("username").to_owned(),
    }
}

/// A policy `name` allowing `principal` the `action` on `resource`.
async fn allow(app: &TestApp, name: &str, principal: &str, action: &str, resource: &str) {
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/policies/{name}"),
            Some(
                json!({"statements": [{"effect": "allow", "principal": principal,
                "actions": [action], "resources": [resource]}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn revocation(selector: Value, dry_run: bool) -> Value {
    json!({"selector": selector, "reason": "credentials leaked in a build log",
           "ticket": "INC-4711", "dryRun": dry_run})
}

/// The ids a dry run of `selector` matches (its sample holds them all while there are ≤ 10).
async fn matched(app: &TestApp, selector: Value) -> BTreeSet<String> {
    let (status, body) = app
        .post("/v1/revocations", revocation(selector.clone(), true))
        .await;
    assert_eq!(status, StatusCode::OK, "{selector}: {body}");
    assert_eq!(body["dryRun"], true);
    let ids: BTreeSet<String> = body["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .map(|l| l["leaseId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(body["matched"], ids.len(), "{selector}: {body}");
    ids
}

/// A 403 from a job's fence, naming the job.
fn assert_fenced(status: StatusCode, refused: &Value, job: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "fenced");
    assert!(
        refused["error"]["message"]
            .as_str()
            .expect("message")
            .contains(job),
        "{refused}"
    );
}

fn ids(leases: &[&Lease]) -> BTreeSet<String> {
    leases.iter().map(|l| l.id.clone()).collect()
}

/// Waits (the broker holds the request) until the job leaves RUNNING or `within` passes;
/// answers the last view.
async fn wait_for_job(app: &TestApp, job: &str, within: Duration) -> Value {
    let (status, view) = app
        .get(&format!(
            "/v1/revocations/{job}?wait={}s",
            within.as_secs().clamp(1, 60)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

on_both_stores!(
    selectors_fences_and_jobs_take_exactly_what_they_name,
    |app: TestApp| async move {
        let main = Target::create(Kind::Postgres).await;
        let other = Target::create(Kind::Postgres).await;
        put_backend(&app, "db", &main).await;
        put_backend(&app, "db2", &other).await;
        put_role(&app, "alpha", "db", "prod", &main).await;
        put_role(&app, "beta", "db", "prod", &main).await;
        put_role(&app, "gamma", "db2", "staging", &other).await;
        allow(
            &app,
            "issuers",
            "service:prod:api",
            "leases:issue",
            "prod/roles/*",
        )
        .await;
        let service = app.token_for("service:prod:api", json!({})).await;

        let l1 = issue_as(&app, None, "alpha").await;
        let l2 = issue_as(&app, Some(&service), "alpha").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let midpoint = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let l3 = issue_as(&app, None, "beta").await;
        let l4 = issue_as(&app, None, "gamma").await;
        // A lease of another tenant, with the same role and backend names.
        let foreign = issue_as(&app, None, "alpha").await;
        app.execute(&format!(
            "UPDATE leases SET tenant = 'acme' WHERE username = '{}'",
            foreign.username
        ))
        .await;

        let (_, me) = app.get("/v1/auth/self").await;
        let root = me["principal"].as_str().expect("principal").to_owned();
        let tenant = me["tenant"].as_str().expect("tenant").to_owned();
        let midpoint = midpoint.to_rfc3339();
        let cases = [
            (json!({"role": "alpha"}), ids(&[&l1, &l2])),
            (json!({"backend": "db"}), ids(&[&l1, &l2, &l3])),
            (json!({"backend": "db2"}), ids(&[&l4])),
            (json!({"principal": "service:prod:api"}), ids(&[&l2])),
            (json!({"environment": "staging"}), ids(&[&l4])),
            (json!({"issuedAfter": midpoint}), ids(&[&l3, &l4])),
            (json!({"issuedBefore": midpoint}), ids(&[&l1, &l2])),
            (json!({"leaseIdPrefix": l3.id}), ids(&[&l3])),
            (json!({"leaseIdPrefix": &l3.id[..23]}), ids(&[&l3])),
            (json!({"tenant": tenant}), ids(&[&l1, &l2, &l3, &l4])),
            (json!({"role": "alpha", "principal": root}), ids(&[&l1])),
            (
                json!({"backend": "db", "issuedAfter": midpoint}),
                ids(&[&l3]),
            ),
            (
                json!({"role": "gamma", "environment": "prod"}),
                BTreeSet::new(),
            ),
        ];
        for (selector, expected) in cases {
            assert_eq!(
                matched(&app, selector.clone()).await,
                expected,
                "{selector}"
            );
        }
        // A dry run breaks what it matched down by role and backend.
        let (_, preview) = app
            .post(
                "/v1/revocations",
                revocation(json!({"backend": "db"}), true),
            )
            .await;
        let mut groups: Vec<(String, String, String, i64)> = preview["byRole"]
            .as_array()
            .expect("byRole")
            .iter()
            .map(|g| {
                (
                    g["role"].as_str().expect("role").to_owned(),
                    g["backend"].as_str().expect("backend").to_owned(),
                    g["environment"].as_str().expect("environment").to_owned(),
                    g["count"].as_i64().expect("count"),
                )
            })
            .collect();
        groups.sort();
        assert_eq!(
            groups,
            [
                ("alpha".into(), "db".into(), "prod".into(), 2),
                ("beta".into(), "db".into(), "prod".into(), 1)
            ],
            "{preview}"
        );
        let (status, body) = app
            .post(
                "/v1/revocations",
                revocation(json!({"tenant": "acme"}), true),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (_, denied) = app
            .get("/v1/audit/events?eventType=ACCESS_DENIED&decision=DENY")
            .await;
        assert!(
            denied["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["detail"]["reason"] == "the selector names another tenant"),
            "every deny is audited, a rule's as a policy's: {denied}"
        );

        // The dry runs changed nothing.
        for lease in [&l1, &l2, &l3, &l4] {
            assert!(
                main.user_exists(&lease.username).await || other.user_exists(&lease.username).await
            );
            let (_, view) = app.get(&format!("/v1/leases/{}", lease.id)).await;
            assert_eq!(view["state"], "ACTIVE");
        }

        let (status, accepted) = app
            .post(
                "/v1/revocations",
                revocation(json!({"role": "alpha"}), false),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        assert_eq!(accepted["matched"], 2);
        let job = accepted["jobId"].as_str().expect("job id").to_owned();

        // The fence refuses matching issues at once and lets others through.
        let (status, refused) = app.post("/v1/leases", json!({"role": "alpha"})).await;
        assert_fenced(status, &refused, &job);
        let l6 = issue_as(&app, None, "beta").await;
        let (status, body) = app
            .post(&format!("/v1/leases/{}/renew", l6.id), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let view = wait_for_job(&app, &job, Duration::from_secs(30)).await;
        assert_eq!(view["state"], "COMPLETED", "{view}");
        assert_eq!(
            (
                view["total"].clone(),
                view["revoked"].clone(),
                view["failed"].clone(),
                view["remaining"].clone()
            ),
            (json!(2), json!(2), json!(0), json!(0)),
            "{view}"
        );
        assert_eq!(view["fenced"], true);
        let started = view["startedAt"].as_str().expect("startedAt");
        let finished = view["finishedAt"].as_str().expect("finishedAt");
        assert!(
            chrono::DateTime::parse_from_rfc3339(finished).expect("time")
                >= chrono::DateTime::parse_from_rfc3339(started).expect("time"),
            "{view}"
        );
        for lease in [&l1, &l2] {
            assert!(
                !main.user_exists(&lease.username).await,
                "{} survived",
                lease.username
            );
            let (_, view) = app.get(&format!("/v1/leases/{}", lease.id)).await;
            assert_eq!(view["state"], "REVOKED");
        }
        assert!(main.user_exists(&l3.username).await);
        assert!(other.user_exists(&l4.username).await);
        assert!(
            main.user_exists(&foreign.username).await,
            "another tenant's lease was revoked"
        );

        // Lifting the fence lets matching issues through again; lifting twice is a conflict.
        let (status, lifted) = app
            .request(
                Method::DELETE,
                &format!("/v1/revocations/{job}/fence"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{lifted}");
        assert_eq!(lifted["fenced"], false);
        let (status, _) = app
            .request(
                Method::DELETE,
                &format!("/v1/revocations/{job}/fence"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        issue_as(&app, None, "alpha").await;

        let (_, list) = app.get("/v1/revocations").await;
        assert_eq!(list["jobs"][0]["jobId"], job.as_str(), "{list}");
        for event_type in [
            "REVOCATION_REQUEST",
            "REVOCATION_COMPLETE",
            "REVOCATION_FENCE_LIFT",
        ] {
            let (_, events) = app
                .get(&format!("/v1/audit/events?eventType={event_type}"))
                .await;
            let events = events["events"].as_array().expect("events");
            assert_eq!(events.len(), 1, "{event_type}: {events:?}");
            assert_eq!(events[0]["detail"]["jobId"], job.as_str());
            let counts = &events[0]["detail"];
            match event_type {
                "REVOCATION_REQUEST" => assert_eq!(counts["matched"], 2, "{counts}"),
                "REVOCATION_COMPLETE" => assert_eq!(
                    (
                        counts["total"].clone(),
                        counts["revoked"].clone(),
                        counts["failed"].clone()
                    ),
                    (json!(2), json!(2), json!(0)),
                    "{counts}"
                ),
                _ => {}
            }
        }
        let (_, denied) = app
            .get("/v1/audit/events?eventType=LEASE_ISSUE&decision=DENY")
            .await;
        assert_eq!(
            denied["events"].as_array().expect("events").len(),
            1,
            "{denied}"
        );

        app.remove_backend("db").await;
        app.remove_backend("db2").await;
        main.cleanup().await;
        other.cleanup().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    mass_revocation_needs_the_right_on_everything_it_covers,
    |app: TestApp| async move {
        let target = Target::create(Kind::Postgres).await;
        put_backend(&app, "db", &target).await;
        put_role(&app, "alpha", "db", "prod", &target).await;
        put_role(&app, "beta", "db", "prod", &target).await;
        issue_as(&app, None, "alpha").await;
        allow(
            &app,
            "oncall",
            "user:oncall",
            "leases:revoke-mass",
            "prod/roles/beta",
        )
        .await;
        let oncall = app.token_for("user:oncall", json!({})).await;
        let attempt = |selector: Value| {
            let oncall = oncall.clone();
            let app = &app;
            async move {
                app.request_as(
                    &oncall,
                    Method::POST,
                    "/v1/revocations",
                    Some(revocation(selector, true)),
                    &[],
                )
                .await
                .0
            }
        };
        assert_eq!(attempt(json!({"role": "beta"})).await, StatusCode::OK);
        assert_eq!(
            attempt(json!({"role": "alpha"})).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            attempt(json!({"environment": "prod"})).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            attempt(json!({"backend": "db"})).await,
            StatusCode::FORBIDDEN
        );

        // Bad input: 400 naming the field, and nothing is created.
        let bad = [
            (
                json!({"selector": {}, "reason": "r", "ticket": "t"}),
                "selector",
            ),
            (json!({"selector": {"role": "beta"}, "ticket": "t"}), ""),
            (
                json!({"selector": {"role": "beta"}, "reason": " ", "ticket": "t"}),
                "reason",
            ),
            (
                json!({"selector": {"role": "beta"}, "reason": "r", "ticket": ""}),
                "ticket",
            ),
            (
                json!({"selector": {"role": "Beta'; DROP TABLE leases; --"}, "reason": "r", "ticket": "t"}),
                "selector.role",
            ),
            (
                json!({"selector": {"leaseIdPrefix": "' OR 1=1 --"}, "reason": "r", "ticket": "t"}),
                "selector.leaseIdPrefix",
            ),
            (
                json!({"selector": {"principal": "a\u{0}b"}, "reason": "r", "ticket": "t"}),
                "selector.principal",
            ),
            (
                json!({"selector": {"issuedAfter": "2026-01-02T00:00:00Z", "issuedBefore": "2026-01-01T00:00:00Z"}, "reason": "r", "ticket": "t"}),
                "selector.issuedBefore",
            ),
            (
                json!({"selector": {"role": "beta", "colour": "red"}, "reason": "r", "ticket": "t"}),
                "",
            ),
            (
                json!({"selector": {"role": "beta"}, "reason": "r", "ticket": "t", "fenceTtl": "forever"}),
                "fenceTtl",
            ),
        ];
        for (body, field) in bad {
            let (status, answer) = app.post("/v1/revocations", body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            if !field.is_empty() {
                assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
            }
        }
        let (_, list) = app.get("/v1/revocations").await;
        assert_eq!(list["jobs"], json!([]), "{list}");
        let (status, _) = app
            .get(&format!("/v1/revocations/{}", uuid::Uuid::now_v7()))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // A fence with its own TTL refuses matching issues until it expires, then lets them
        // through without anyone lifting it.
        let mut body = revocation(json!({"role": "beta"}), false);
        body["fenceTtl"] = json!("2s");
        let (status, accepted) = app.post("/v1/revocations", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let (status, _) = app.post("/v1/leases", json!({"role": "beta"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        issue_as(&app, None, "beta").await;

        app.remove_backend("db").await;
        target.cleanup().await;
        app.cleanup().await;
    }
);

on_both_stores!(
    a_job_finishes_only_with_its_event,
    |app: TestApp| async move {
        let target = Target::create(Kind::Mariadb).await;
        put_backend(&app, "db", &target).await;
        put_role(&app, "app", "db", "prod", &target).await;
        let mut leases = Vec::new();
        for _ in 0..3 {
            leases.push(issue_as(&app, None, "app").await);
        }
        app.break_audit_of(&["REVOCATION_COMPLETE"]).await;
        let (status, accepted) = app
            .post("/v1/revocations", revocation(json!({"role": "app"}), false))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let job = accepted["jobId"].as_str().expect("job").to_owned();
        // Every user is dropped and every lease recorded, but the job cannot finish unaudited.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let view = loop {
            let (_, view) = app.get(&format!("/v1/revocations/{job}")).await;
            if view["revoked"] == 3 || tokio::time::Instant::now() > deadline {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(view["revoked"], 3, "{view}");
        for lease in &leases {
            assert!(!target.user_exists(&lease.username).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, view) = app.get(&format!("/v1/revocations/{job}")).await;
        assert_eq!(
            view["state"], "RUNNING",
            "finished without its event: {view}"
        );
        let (_, events) = app
            .get("/v1/audit/events?eventType=REVOCATION_COMPLETE")
            .await;
        assert_eq!(
            events["events"].as_array().map(Vec::len),
            Some(0),
            "{events}"
        );

        app.mend_audit().await;
        let view = wait_for_job(&app, &job, Duration::from_secs(15)).await;
        assert_eq!(view["state"], "COMPLETED", "{view}");
        let (_, events) = app
            .get("/v1/audit/events?eventType=REVOCATION_COMPLETE")
            .await;
        let events = events["events"].as_array().expect("events");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["detail"]["jobId"], job.as_str());
        assert_eq!(events[0]["detail"]["revoked"], 3);
        target.cleanup().await;
        app.cleanup().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_fails_for_part_of_a_job_is_retried_to_the_end() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let up = Target::create(Kind::Mariadb).await;
    let down = Target::create(Kind::Mariadb).await;
    put_backend(&app, "up", &up).await;
    put_backend(&app, "down", &down).await;
    put_role(&app, "app-up", "up", "prod", &up).await;
    put_role(&app, "app-down", "down", "prod", &down).await;
    let mut survivors = Vec::new();
    for _ in 0..5 {
        issue_as(&app, None, "app-up").await;
        survivors.push(issue_as(&app, None, "app-down").await);
    }
    down.take_down().await;

    let (status, accepted) = app
        .post(
            "/v1/revocations",
            revocation(json!({"environment": "prod"}), false),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job = accepted["jobId"].as_str().expect("job").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let view = loop {
        let (_, view) = app.get(&format!("/v1/revocations/{job}")).await;
        if view["failed"] == 5 || tokio::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view["state"], "RUNNING", "{view}");
    assert_eq!(
        (view["revoked"].clone(), view["failed"].clone()),
        (json!(5), json!(5)),
        "{view}"
    );
    assert_eq!(view["errorsByBackend"][0]["backend"], "down", "{view}");
    assert!(
        view["errorsByBackend"][0]["lastError"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{view}"
    );
    for lease in &survivors {
        assert!(
            down.user_exists(&lease.username).await,
            "nothing is dropped while the target is down"
        );
    }
    // A renewal the fence covers is refused with 403 naming the job, like an issue.
    let (status, refused) = app
        .post(&format!("/v1/leases/{}/renew", survivors[0].id), json!({}))
        .await;
    assert_fenced(status, &refused, &job);

    // A wait on a job that cannot finish answers RUNNING when the wait is over.
    let asked = tokio::time::Instant::now();
    let view = wait_for_job(&app, &job, Duration::from_secs(1)).await;
    assert_eq!(view["state"], "RUNNING", "{view}");
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    for wait in ["0s", "61s", "2m", "soon", ""] {
        let (status, body) = app.get(&format!("/v1/revocations/{job}?wait={wait}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "wait={wait}: {body}");
        assert_eq!(body["error"]["field"], "wait", "{body}");
    }

    // A waiting request answers as soon as the job finishes, long before its wait is over.
    let asked = tokio::time::Instant::now();
    let (view, ()) = tokio::join!(wait_for_job(&app, &job, Duration::from_secs(60)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        down.bring_back().await;
    });
    let waited = asked.elapsed();
    assert!(waited < Duration::from_secs(45), "{waited:?}");
    assert_eq!(view["state"], "COMPLETED", "{view}");
    assert_eq!(
        (view["revoked"].clone(), view["failed"].clone()),
        (json!(10), json!(0)),
        "{view}"
    );
    for lease in &survivors {
        assert!(!down.user_exists(&lease.username).await);
    }
    let (_, events) = app
        .get("/v1/audit/events?eventType=REVOCATION_FAILURES")
        .await;
    let events = events["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["failed"], 5);
    up.cleanup().await;
    down.cleanup().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_a_restart_and_is_shared_by_replicas() {
    // A batch the stopped broker had claimed is taken again once its claim lapses.
    let app = spawn_app_with(Backend::Postgres, |s| s.scheduler_claim_seconds = 3).await;
    let target = Target::create(Kind::Postgres).await;
    put_backend(&app, "db", &target).await;
    put_role(&app, "bulk", "db", "prod", &target).await;
    let mut leases = Vec::new();
    for _ in 0..300 {
        leases.push(issue_as(&app, None, "bulk").await);
    }
    let (status, accepted) = app
        .post(
            "/v1/revocations",
            revocation(json!({"role": "bulk"}), false),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job = accepted["jobId"].as_str().expect("job").to_owned();
    // Stop mid-job, start again beside a second replica: the two finish the job together,
    // within the wait even when the stop left a batch claimed.
    let app = app.restart().await;
    let replica = app.spawn_replica().await;
    let view = wait_for_job(&replica, &job, Duration::from_secs(60)).await;
    assert_eq!(view["state"], "COMPLETED", "{view}");
    assert_eq!(
        (
            view["total"].clone(),
            view["revoked"].clone(),
            view["failed"].clone(),
            view["remaining"].clone()
        ),
        (json!(300), json!(300), json!(0), json!(0)),
        "the counts add up: {view}"
    );
    for lease in &leases {
        assert!(
            !target.user_exists(&lease.username).await,
            "{} survived",
            lease.username
        );
    }
    let (_, events) = app
        .get("/v1/audit/events?eventType=REVOCATION_COMPLETE")
        .await;
    assert_eq!(
        events["events"].as_array().expect("events").len(),
        1,
        "completed once: {events}"
    );
    replica.shutdown().await;
    target.cleanup().await;
    app.cleanup().await;
}

/// With a retention of two seconds, a lease revoked through the API leaves the store (its
/// `LEASE_PURGE` event says so), while a live lease and a lease a job revoked stay: the job's
/// report keeps its count.
async fn revoked_leases_leave_the_store_after_their_retention(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.revoked_lease_retention_seconds = 2;
    })
    .await;
    let target = Target::create(Kind::Postgres).await;
    put_backend(&app, "db", &target).await;
    put_role(&app, "app-rw", "db", "prod", &target).await;
    let [revoked, live, by_job] = [
        issue_as(&app, None, "app-rw").await,
        issue_as(&app, None, "app-rw").await,
        issue_as(&app, None, "app-rw").await,
    ];
    let (status, body) = app
        .post(&format!("/v1/leases/{}/revoke", revoked.id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, accepted) = app
        .post(
            "/v1/revocations",
            revocation(json!({"leaseIdPrefix": by_job.id}), false),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job = accepted["jobId"].as_str().expect("job id").to_owned();
    assert_eq!(
        wait_for_job(&app, &job, Duration::from_secs(30)).await["state"],
        "COMPLETED"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.get(&format!("/v1/leases/{}", revoked.id)).await.0 != StatusCode::NOT_FOUND {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked lease was never purged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, gone) = app.get(&format!("/v1/leases/{}", revoked.id)).await;
    assert!(
        gone["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("revoked_lease_retention_seconds")),
        "{gone}"
    );
    let (status, kept) = app.get(&format!("/v1/leases/{}", live.id)).await;
    assert_eq!(
        (status, kept["state"].clone()),
        (StatusCode::OK, json!("ACTIVE")),
        "{kept}"
    );
    let (status, kept) = app.get(&format!("/v1/leases/{}", by_job.id)).await;
    assert_eq!(
        (status, kept["state"].clone()),
        (StatusCode::OK, json!("REVOKED")),
        "{kept}"
    );
    let (_, report) = app.get(&format!("/v1/revocations/{job}")).await;
    assert_eq!(report["revoked"], 1, "{report}");
    assert_eq!(app.rows("leases").await, 2);

    let (status, events) = app.get("/v1/audit/events?eventType=LEASE_PURGE").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let purged: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .collect();
    assert_eq!(purged.len(), 1, "{events}");
    assert_eq!(purged[0]["detail"]["purged"], 1, "{events}");
    assert_eq!(purged[0]["principal"], "system:leasehold", "{events}");
    target.cleanup().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_leases_leave_the_store_after_their_retention_sqlite() {
    revoked_leases_leave_the_store_after_their_retention(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_leases_leave_the_store_after_their_retention_postgres() {
    revoked_leases_leave_the_store_after_their_retention(Backend::Postgres).await;
}
