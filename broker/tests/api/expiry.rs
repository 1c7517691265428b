//! The lease scheduler in the broker, against the machine's real PostgreSQL and MariaDB: leases
//! are revoked when they expire, failures are retried until the target returns, and a lease
//! whose retry budget runs out becomes IRREVOCABLE, listed, audited and force-revocable.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_with, webhook};
use crate::on_both_stores;
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

async fn setup(app: &TestApp, kind: Kind) -> Target {
    let target = Target::create(kind).await;
    let (status, body) = app
        .request(
            Method::PUT,
            "/v1/backends/db",
            Some(target.backend_body(ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .request(Method::PUT, "/v1/roles/short", Some(target.role_body("db")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    target
}

/// Polls the lease until `done` holds or `within` passes; answers the last view.
async fn wait_for(
    app: &TestApp,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (_, lease) = app.get(&format!("/v1/leases/{id}")).await;
        if done(&lease) || tokio::time::Instant::now() > deadline {
            return lease;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `LEASE_EXPIRE` events whose `detail[key]` lists the lease `id`.
async fn expire_events_naming(app: &TestApp, key: &str, id: &str) -> Vec<Value> {
    let (_, events) = app.get("/v1/audit/events?eventType=LEASE_EXPIRE").await;
    events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["detail"][key]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(id)))
        })
        .cloned()
        .collect()
}

/// Removes what `setup` made, then the app's store.
async fn teardown(app: TestApp, target: Target) {
    app.remove_backend("db").await;
    target.cleanup().await;
    app.cleanup().await;
}

async fn issue(app: &TestApp, ttl: &str) -> (String, String) {
    let (status, lease) = app
        .post("/v1/leases", json!({"role": "short", "ttl": ttl}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    (
        lease["leaseId"].as_str().expect("id").to_owned(),
        lease["username"].as_str().expect("username").to_owned(),
    )
}

on_both_stores!(
    short_leases_are_revoked_when_they_expire,
    |app: TestApp| async move {
        for kind in [Kind::Postgres, Kind::Mariadb] {
            let target = setup(&app, kind).await;
            let (id, username) = issue(&app, "2s").await;
            let (long_id, long_user) = issue(&app, "1h").await;
            assert!(target.user_exists(&username).await);
            let lease = wait_for(&app, &id, Duration::from_secs(10), |l| {
                l["state"] == "REVOKED"
            })
            .await;
            assert_eq!(lease["state"], "REVOKED", "{kind:?}: {lease}");
            let expires: chrono::DateTime<chrono::Utc> = lease["expiresAt"]
                .as_str()
                .expect("expiry")
                .parse()
                .expect("time");
            let revoked: chrono::DateTime<chrono::Utc> = lease["revokedAt"]
                .as_str()
                .expect("revokedAt")
                .parse()
                .expect("time");
            assert!(revoked >= expires, "revoked before it expired: {lease}");
            assert!(
                revoked - expires < chrono::Duration::seconds(3),
                "revoked late: {lease}"
            );
            assert!(
                !target.user_exists(&username).await,
                "{kind:?}: the user survived its lease"
            );
            let (_, long) = app.get(&format!("/v1/leases/{long_id}")).await;
            assert_eq!(long["state"], "ACTIVE");
            assert!(target.user_exists(&long_user).await);
            app.remove_backend("db").await;
            target.cleanup().await;
        }
        let (_, events) = app.get("/v1/audit/events?eventType=LEASE_EXPIRE").await;
        assert!(!events["events"].as_array().expect("events").is_empty());
        app.cleanup().await;
    }
);

/// A revocation the scheduler cannot audit is not recorded: the lease stays live, no event is
/// half-written, and once the trail accepts events again the lease is revoked (its user, already
/// dropped, counts as gone) and its `LEASE_EXPIRE` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_is_recorded_only_with_its_event() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app_with(backend, |s| {
            s.scheduler_claim_seconds = 1;
            s.audit_timeout_ms = 1_000;
        })
        .await;
        let target = setup(&app, Kind::Mariadb).await;
        let (id, username) = issue(&app, "1s").await;
        let events_before = app.rows("audit_events").await;
        app.break_audit().await;
        // The scheduler drops the user, then fails to record it with its event, round after
        // round.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while target.user_exists(&username).await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !target.user_exists(&username).await,
            "{backend:?}: not dropped"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, lease) = app.get(&format!("/v1/leases/{id}")).await;
        assert_eq!(
            lease["state"], "ACTIVE",
            "{backend:?}: recorded without its event: {lease}"
        );
        assert_eq!(app.rows("audit_events").await, events_before, "{backend:?}");
        let (_, health) = app.get("/v1/sys/health").await;
        assert_eq!(health["audit"]["ok"], false, "{backend:?}: {health}");

        app.mend_audit().await;
        let lease = wait_for(&app, &id, Duration::from_secs(15), |l| {
            l["state"] == "REVOKED"
        })
        .await;
        assert_eq!(lease["state"], "REVOKED", "{backend:?}: {lease}");
        let named = expire_events_naming(&app, "revoked", &id).await;
        assert_eq!(named.len(), 1, "{backend:?}: {named:?}");
        let (status, verified) = app.post("/v1/audit/verify", json!({})).await;
        assert_eq!(
            (status, verified["ok"].clone()),
            (StatusCode::OK, json!(true)),
            "{verified}"
        );
        teardown(app, target).await;
    }
}

/// An issue whose activation cannot be audited is undone: its user is dropped at once. When
/// the undoing cannot be audited either, the lease is left to the scheduler, which records the
/// revocation with its own event once the trail accepts events again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_undone_without_audit_is_recorded_by_the_scheduler() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app_with(backend, |s| {
            s.audit_timeout_ms = 1_000;
            s.scheduler_claim_seconds = 1;
            s.lease_intent_grace_seconds = 3;
        })
        .await;
        let target = setup(&app, Kind::Mariadb).await;
        app.break_audit_of(&["LEASE_ISSUE", "LEASE_REVOKE"]).await;
        let (status, body) = app
            .post("/v1/leases", json!({"role": "short", "ttl": "1h"}))
            .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{backend:?}: {body}"
        );
        let (_, listed) = app.get("/v1/leases?role=short").await;
        let leases = listed["leases"].as_array().expect("leases").clone();
        assert_eq!(leases.len(), 1, "{backend:?}: {listed}");
        let (id, username) = (
            leases[0]["leaseId"].as_str().expect("id").to_owned(),
            leases[0]["username"].as_str().expect("username").to_owned(),
        );
        assert!(
            !target.user_exists(&username).await,
            "{backend:?}: the user outlived its issue"
        );
        assert_eq!(
            leases[0]["state"], "PENDING",
            "{backend:?}: recorded without its event"
        );

        app.mend_audit().await;
        let lease = wait_for(&app, &id, Duration::from_secs(15), |l| {
            l["state"] == "REVOKED"
        })
        .await;
        assert_eq!(lease["state"], "REVOKED", "{backend:?}: {lease}");
        assert!(
            !expire_events_naming(&app, "abandonedIntentsRevoked", &id)
                .await
                .is_empty(),
            "{backend:?}: no LEASE_EXPIRE names the abandoned intent"
        );
        assert!(!target.user_exists(&username).await);
        teardown(app, target).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_until_the_target_returns() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let target = setup(&app, Kind::Mariadb).await;
    let (id, username) = issue(&app, "1s").await;
    target.take_down().await;
    let lease = wait_for(&app, &id, Duration::from_secs(10), |l| {
        l["revocationAttempts"].as_i64() >= Some(2)
    })
    .await;
    assert_eq!(
        lease["state"], "ACTIVE",
        "nothing is marked revoked that is not: {lease}"
    );
    assert!(
        lease["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{lease}"
    );
    assert!(target.user_exists(&username).await);
    target.bring_back().await;
    let lease = wait_for(&app, &id, Duration::from_secs(20), |l| {
        l["state"] == "REVOKED"
    })
    .await;
    assert_eq!(lease["state"], "REVOKED", "{lease}");
    assert!(!target.user_exists(&username).await);
    target.cleanup().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_budget_a_lease_is_irrevocable_until_an_operator_acts() {
    let (hook, mut alerts) = webhook().await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.revocation_retry_budget_seconds = 2;
        s.alert_webhook_url = Some(hook);
    })
    .await;
    let target = setup(&app, Kind::Mariadb).await;
    let (retried, retried_user) = issue(&app, "1s").await;
    let (forced, forced_user) = issue(&app, "1s").await;
    // A lease nothing has failed to revoke is revoked, not marked gone by force.
    let (live, live_user) = issue(&app, "1h").await;
    let (status, body) = app
        .post(
            &format!("/v1/leases/{live}/force-revoke"),
            json!({"reason": "just because"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(target.user_exists(&live_user).await);
    target.take_down().await;
    for id in [&retried, &forced] {
        let lease = wait_for(&app, id, Duration::from_secs(15), |l| {
            l["state"] == "IRREVOCABLE"
        })
        .await;
        assert_eq!(lease["state"], "IRREVOCABLE", "{lease}");
    }
    let (_, listed) = app.get("/v1/leases?state=irrevocable").await;
    assert_eq!(
        listed["leases"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let (_, events) = app
        .get("/v1/audit/events?eventType=LEASE_IRREVOCABLE")
        .await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(2),
        "{events}"
    );
    assert!(
        app.metrics()
            .await
            .contains("leasehold_leases_irrevocable_total")
    );
    // On-call hears of each one, with what to do.
    let mut alerted = std::collections::BTreeSet::new();
    while alerted.len() < 2 {
        let alert = tokio::time::timeout(Duration::from_secs(10), alerts.recv())
            .await
            .expect("an alert within 10 s")
            .expect("alert");
        if alert["event"] == "LEASE_IRREVOCABLE" {
            assert!(
                alert["action"]
                    .as_str()
                    .is_some_and(|a| a.contains("force-revoke")),
                "{alert}"
            );
            alerted.insert(alert["leaseId"].as_str().expect("leaseId").to_owned());
        }
    }
    assert_eq!(
        alerted,
        [retried.clone(), forced.clone()].into_iter().collect()
    );
    // Still failing: a retry by hand answers 503 and changes nothing.
    let (status, _) = app
        .post(&format!("/v1/leases/{retried}/revoke"), json!({}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    target.bring_back().await;
    // The target is back: a retry drops the user.
    let (status, lease) = app
        .post(&format!("/v1/leases/{retried}/revoke"), json!({}))
        .await;
    assert_eq!(
        (status, lease["state"].clone()),
        (StatusCode::OK, json!("REVOKED")),
        "{lease}"
    );
    assert!(!target.user_exists(&retried_user).await);
    // Or the operator drops the user by hand and force-revokes, with a reason.
    let (status, body) = app
        .post(&format!("/v1/leases/{forced}/force-revoke"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    target
        .admin_sql(&format!("DROP USER '{forced_user}'@'%'"))
        .await;
    let (status, lease) = app
        .post(
            &format!("/v1/leases/{forced}/force-revoke"),
            json!({"reason": "dropped by hand, INC-42"}),
        )
        .await;
    assert_eq!(
        (status, lease["state"].clone()),
        (StatusCode::OK, json!("REVOKED")),
        "{lease}"
    );
    let (_, events) = app
        .get("/v1/audit/events?eventType=LEASE_FORCE_REVOKE")
        .await;
    assert_eq!(
        events["events"][0]["detail"]["reason"],
        "dropped by hand, INC-42"
    );
    target.cleanup().await;
    app.cleanup().await;
}

on_both_stores!(
    claims_are_disjoint_lapse_with_their_replica_and_end_with_the_outcomes,
    |app: TestApp| async move {
        use leasehold_broker::store::LeaseOutcome;
        let target = setup(&app, Kind::Postgres).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(issue(&app, "1h").await.0);
        }
        ids.sort();
        // Two hours on, all three are due; the broker's own scheduler, on the real clock, is
        // not looking at them yet.
        let later = chrono::Utc::now() + chrono::Duration::hours(2);
        let minute = Duration::from_secs(60);
        let claimed = |rows: &[leasehold_broker::store::LeaseRow]| {
            let mut ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
            ids.sort();
            ids
        };
        // Two replicas claiming at the same moment never share a lease.
        let (a, b) = tokio::join!(
            app.store.claim_due_leases("replica-a", later, minute, 2),
            app.store.claim_due_leases("replica-b", later, minute, 2),
        );
        let ((_, a), (_, b)) = (a.expect("claim a"), b.expect("claim b"));
        let mut both = [claimed(&a), claimed(&b)].concat();
        both.sort();
        assert_eq!(both, ids, "each lease claimed exactly once");
        let (_, none) = app
            .store
            .claim_due_leases("replica-c", later, minute, 10)
            .await
            .expect("claim c");
        assert!(none.is_empty(), "claimed leases are not claimed again");

        // Both replicas die: after their claims' minute, another replica takes every lease.
        let after = later + chrono::Duration::seconds(61);
        let (claim, rows) = app
            .store
            .claim_due_leases("replica-c", after, minute, 10)
            .await
            .expect("claim after the lapse");
        assert_eq!(claimed(&rows), ids);

        // Recording the outcomes ends the claim: still due, the leases are claimable at once.
        let outcomes: Vec<LeaseOutcome<'_>> = rows
            .iter()
            .map(|row| LeaseOutcome::Retry {
                id: row.id,
                at: after,
                failing_since: after,
                error: "target unreachable",
            })
            .collect();
        let audit = leasehold_broker::audit::AuditLog::start(
            app.store.clone(),
            Duration::from_secs(2),
            None,
        )
        .expect("audit writer");
        app.store
            .complete_claimed_leases(
                claim,
                &outcomes,
                after,
                &audit.all_in_transaction(Vec::new()),
            )
            .await
            .expect("record");
        let (_, again) = app
            .store
            .claim_due_leases("replica-d", after, minute, 10)
            .await
            .expect("claim again");
        assert_eq!(claimed(&again), ids);
        teardown(app, target).await;
    }
);
