//! The static-secrets API end to end: the seed's four requests, aliases, versions, metadata,
//! compare-and-swap, disable/enable/destroy, listing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_stores;

on_both_stores!(seed_requests_work_as_written, |app: TestApp| async move {
    let (status, created) = app
        .post(
            "/v1/secrets",
            json!({"environment":"prod","path":"payments/stripe-api-key","ownerTeam":"payments","rotationStrategy":"manual-overlap"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    // Version 41 becomes current, then 42 is written PENDING and promoted with CAS on 41.
    for n in 1..=41 {
        app.put_version(&id, &format!("sk_live_old_{n}"), "CURRENT")
            .await;
    }
    let (status, version) = app
        .post(
            &format!("/v1/secrets/{id}/versions"),
            json!({"value":"sk_live_redacted","status":"PENDING"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    assert_eq!(version["version"], 42);
    assert_eq!(version["status"], "PENDING");

    let (_, before) = app
        .get("/v1/secrets/prod/payments/stripe-api-key?alias=current")
        .await;
    assert_eq!(
        before["version"], 41,
        "a PENDING version does not move current"
    );

    let (status, promoted) = app
        .post(
            &format!("/v1/secrets/{id}/aliases/current"),
            json!({"version":42,"expectedPreviousVersion":41}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");

    let (status, read) = app
        .get("/v1/secrets/prod/payments/stripe-api-key?alias=current")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read,
        json!({"path":"payments/stripe-api-key","version":42,"value":"sk_live_redacted","expiresAt":null})
    );
    app.cleanup().await;
});

on_both_stores!(aliases_versions_and_metadata, |app: TestApp| async move {
    let id = app.create_secret("prod", "db/password").await;
    let v1 = app.put_version(&id, "first-value", "CURRENT").await;
    let v2 = app.put_version(&id, "second-value", "CURRENT").await;
    let v3 = app.put_version(&id, "third-value", "PENDING").await;
    assert_eq!((v1, v2, v3), (1, 2, 3), "numbers are monotonic");

    let (_, current) = app.get("/v1/secrets/prod/db/password").await;
    assert_eq!(
        current["value"], "second-value",
        "current is the default alias"
    );
    let (_, previous) = app.get("/v1/secrets/prod/db/password?alias=previous").await;
    assert_eq!(previous["value"], "first-value");
    let (status, _) = app.get("/v1/secrets/prod/db/password?alias=next").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "next is unset");

    let (status, body) = app
        .post(
            &format!("/v1/secrets/{id}/aliases/next"),
            json!({"version": v3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, next) = app.get("/v1/secrets/prod/db/password?alias=next").await;
    assert_eq!(next["value"], "third-value");
    let (_, by_number) = app.get("/v1/secrets/prod/db/password?version=1").await;
    assert_eq!(by_number["value"], "first-value");

    let (status, meta) = app.get(&format!("/v1/secrets/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        meta["aliases"],
        json!({"current": 2, "previous": 1, "next": 3})
    );
    let statuses: Vec<_> = meta["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["status"].as_str().expect("status").to_owned())
        .collect();
    assert_eq!(statuses, ["PREVIOUS", "CURRENT", "PENDING"]);
    let text = meta.to_string();
    for value in ["first-value", "second-value", "third-value"] {
        assert!(!text.contains(value), "metadata never contains a value");
    }
    assert_eq!(meta["versions"][0]["createdBy"], "user:test-admin");

    // Promoting next moves current, previous follows, next is cleared, v1 is deprecated.
    let (status, _) = app
        .post(
            &format!("/v1/secrets/{id}/aliases/current"),
            json!({"version": v3, "expectedPreviousVersion": v2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, meta) = app.get(&format!("/v1/secrets/{id}")).await;
    assert_eq!(
        meta["aliases"],
        json!({"current": 3, "previous": 2, "next": null})
    );
    assert_eq!(meta["versions"][0]["status"], "DEPRECATED");
    let (_, old) = app.get("/v1/secrets/prod/db/password?version=1").await;
    assert_eq!(
        old["value"], "first-value",
        "deprecated versions stay readable by number"
    );

    let (status, edited) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/secrets/{id}"),
            Some(json!({"description": "primary DB", "ownerTeam": "platform"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["ownerTeam"], "platform");
    assert_eq!(edited["description"], "primary DB");
    app.cleanup().await;
});

on_both_stores!(
    stale_cas_conflicts_and_changes_nothing,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "api/key").await;
        app.put_version(&id, "one", "CURRENT").await;
        app.put_version(&id, "two", "CURRENT").await;
        let v3 = app.put_version(&id, "three", "PENDING").await;
        let before = app.snapshot().await;
        let (_, meta_before) = app.get(&format!("/v1/secrets/{id}")).await;

        let (status, body) = app
            .post(
                &format!("/v1/secrets/{id}/aliases/current"),
                json!({"version": v3, "expectedPreviousVersion": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "conflict");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("points at version 2")
        );

        let (status, _) = app
            .post(
                &format!("/v1/secrets/{id}/aliases/current"),
                json!({"version": v3}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a set alias needs expectedPreviousVersion"
        );

        let (_, meta_after) = app.get(&format!("/v1/secrets/{id}")).await;
        assert_eq!(meta_before["aliases"], meta_after["aliases"]);
        assert_eq!(meta_before["versions"], meta_after["versions"]);
        assert_eq!(before, app.snapshot().await);
        app.cleanup().await;
    }
);

on_both_stores!(
    racing_promotions_exactly_one_wins,
    |app: TestApp| async move {
        for round in 0..5 {
            let id = app
                .create_secret("prod", &format!("race/key-{round}"))
                .await;
            let v1 = app.put_version(&id, "base", "CURRENT").await;
            let a = app.put_version(&id, "candidate-a", "PENDING").await;
            let b = app.put_version(&id, "candidate-b", "PENDING").await;
            let path = format!("/v1/secrets/{id}/aliases/current");
            let (ra, rb) = tokio::join!(
                app.post(&path, json!({"version": a, "expectedPreviousVersion": v1})),
                app.post(&path, json!({"version": b, "expectedPreviousVersion": v1})),
            );
            let mut statuses = [ra.0.as_u16(), rb.0.as_u16()];
            statuses.sort_unstable();
            assert_eq!(
                statuses,
                [200, 409],
                "round {round}: exactly one promotion wins"
            );
            let winner = if ra.0 == StatusCode::OK { a } else { b };
            let (_, meta) = app.get(&format!("/v1/secrets/{id}")).await;
            assert_eq!(meta["aliases"]["current"], winner);
            assert_eq!(meta["aliases"]["previous"], v1);
        }
        app.cleanup().await;
    }
);

on_both_stores!(
    disabled_and_destroyed_versions_are_unreadable,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "svc/token").await;
        app.put_version(&id, "v1-value", "CURRENT").await;
        app.put_version(&id, "v2-value", "CURRENT").await;

        let (status, body) = app
            .post(&format!("/v1/secrets/{id}/versions/2/disable"), json!({}))
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "the current version cannot be disabled: {body}"
        );

        let (status, body) = app
            .post(&format!("/v1/secrets/{id}/versions/1/disable"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "DISABLED");
        let (status, body) = app.get("/v1/secrets/prod/svc/token?version=1").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "version_disabled");
        let (status, _) = app.get("/v1/secrets/prod/svc/token?alias=previous").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "an alias on a disabled version does not read it"
        );

        let (status, body) = app
            .post(&format!("/v1/secrets/{id}/versions/1/enable"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "PREVIOUS");
        let (status, read) = app.get("/v1/secrets/prod/svc/token?version=1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read["value"], "v1-value");

        let (status, body) = app
            .post(&format!("/v1/secrets/{id}/versions/1/destroy"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "DESTROYED");
        let (status, body) = app.get("/v1/secrets/prod/svc/token?version=1").await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(body["error"]["code"], "version_destroyed");
        let (status, _) = app
            .post(&format!("/v1/secrets/{id}/versions/1/enable"), json!({}))
            .await;
        assert_eq!(status, StatusCode::GONE, "destroyed is final");
        let (status, _) = app
            .post(
                &format!("/v1/secrets/{id}/aliases/current"),
                json!({"version": 1, "expectedPreviousVersion": 2}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a destroyed version cannot be promoted"
        );

        let raw = crate::helpers::raw_dump(&app).await;
        assert!(!crate::helpers::contains(&raw, "v1-value"));
        let nulls: i64 = match &app.store {
        leasehold_broker::store::Store::Sqlite(p) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM secret_versions WHERE version = 1 AND ciphertext IS NULL AND wrapped_key IS NULL AND kms_key_id IS NULL",
        ).fetch_one(p).await,
        leasehold_broker::store::Store::Postgres(p) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM secret_versions WHERE version = 1 AND ciphertext IS NULL AND wrapped_key IS NULL AND kms_key_id IS NULL",
        ).fetch_one(p).await,
    }
    .expect("query");
        assert_eq!(
            nulls, 1,
            "a destroyed row holds no ciphertext and no wrapped key"
        );
        app.cleanup().await;
    }
);

on_both_stores!(listing_filters_and_paginates, |app: TestApp| async move {
    for (env, path) in [
        ("prod", "payments/a"),
        ("prod", "payments/b"),
        ("prod", "payments-ledger/x"),
        ("staging", "payments/a"),
        ("prod", "search/c"),
    ] {
        app.create_secret(env, path).await;
    }
    let (_, page) = app
        .get("/v1/secrets?environment=prod&pathPrefix=payments/")
        .await;
    let paths: Vec<_> = page["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|s| s["path"].as_str().expect("path").to_owned())
        .collect();
    assert_eq!(paths, ["payments/a", "payments/b"]);

    let mut seen = Vec::new();
    let mut query = "/v1/secrets?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&query).await;
        assert_eq!(status, StatusCode::OK);
        for s in page["secrets"].as_array().expect("secrets") {
            seen.push(format!(
                "{}/{}",
                s["environment"].as_str().expect("env"),
                s["path"].as_str().expect("path")
            ));
            assert!(s.get("value").is_none());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("/v1/secrets?limit=2&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "prod/payments-ledger/x",
            "prod/payments/a",
            "prod/payments/b",
            "prod/search/c",
            "staging/payments/a"
        ]
    );
    app.cleanup().await;
});

on_both_stores!(
    restart_keeps_every_secret_and_token,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "keep/me").await;
        app.put_version(&id, "persisted-value", "CURRENT").await;
        let app = app.restart().await;
        let (status, read) = app.get("/v1/secrets/prod/keep/me").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the old token still works after a restart: {read}"
        );
        assert_eq!(read["value"], "persisted-value");
        app.cleanup().await;
    }
);

on_both_stores!(
    health_and_metrics_report_components,
    |app: TestApp| async move {
        let (status, health) = app.get("/v1/sys/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health["storage"]["ok"], true);
        assert_eq!(health["kms"]["ok"], true);
        let id = app.create_secret("prod", "metrics/probe").await;
        app.put_version(&id, "metric-value", "CURRENT").await;
        app.get("/v1/secrets/prod/metrics/probe").await;
        let text = app.metrics().await;
        for metric in [
            "leasehold_http_requests_total",
            "leasehold_http_request_duration_seconds_bucket",
            "leasehold_secret_read_duration_seconds",
            "leasehold_kms_operation_duration_seconds",
        ] {
            assert!(text.contains(metric), "missing {metric}");
        }
        assert!(text.contains(r#"route="/v1/secrets/{environment}/{path:.*}""#));
        assert!(!text.contains("metric-value"));
        app.cleanup().await;
    }
);

on_both_stores!(openapi_describes_every_route, |app: TestApp| async move {
    let (status, doc) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/v1/secrets", "post"),
        ("/v1/secrets", "get"),
        ("/v1/secrets/{id}", "get"),
        ("/v1/secrets/{id}", "patch"),
        ("/v1/secrets/{id}/versions", "post"),
        ("/v1/secrets/{id}/aliases/{alias}", "post"),
        ("/v1/secrets/{id}/versions/{version}/disable", "post"),
        ("/v1/secrets/{id}/versions/{version}/enable", "post"),
        ("/v1/secrets/{id}/versions/{version}/destroy", "post"),
        ("/v1/secrets/{environment}/{path}", "get"),
        ("/v1/sys/health", "get"),
        ("/v1/auth/self", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(
        doc["components"]["schemas"]
            .get("CreateSecretRequest")
            .is_some()
    );
    app.cleanup().await;
});
