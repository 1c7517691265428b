//! Identity and access through the HTTP API: the authorization matrix, the simulator's agreement
//! with enforcement, policy validation, tokens, tenants and break-glass.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::TestApp;
use crate::on_both_stores;

const RESOURCE: &str = "prod/payments/matrix";

async fn put_policy(app: &TestApp, name: &str, statements: Value) {
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/policies/{name}"),
            Some(json!({"statements": statements})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "policy {name}: {body}");
}

/// The statuses one caller gets for each action, in `ACTIONS` order.
const ACTIONS: [&str; 7] = [
    "secrets:read",
    "secrets:write",
    "secrets:rotate",
    "secrets:admin",
    "secrets:destroy",
    "secrets:list",
    "policies:admin",
];

/// Performs `action` as `token` on the matrix secret; returns the status.
async fn perform(app: &TestApp, token: &str, action: &str, id: &str) -> u16 {
    let admin = |path: String, body: Value| async move { app.post(&path, body).await };
    let (status, _) = match action {
        "secrets:read" => {
            app.request_as(
                token,
                Method::GET,
                "/v1/secrets/prod/payments/matrix",
                None,
                &[],
            )
            .await
        }
        "secrets:write" => {
            app.request_as(
                token,
                Method::POST,
                &format!("/v1/secrets/{id}/versions"),
                Some(json!({"value":"w","status":"PENDING"})),
                &[],
            )
            .await
        }
        "secrets:rotate" => {
            let (_, meta) = app.get(&format!("/v1/secrets/{id}")).await;
            let (_, v) = admin(
                format!("/v1/secrets/{id}/versions"),
                json!({"value":"r","status":"PENDING"}),
            )
            .await;
            app.request_as(token, Method::POST, &format!("/v1/secrets/{id}/aliases/next"),
                Some(json!({"version": v["version"], "expectedPreviousVersion": meta["aliases"]["next"]})), &[]).await
        }
        "secrets:admin" => {
            app.request_as(
                token,
                Method::PATCH,
                &format!("/v1/secrets/{id}"),
                Some(json!({"description":"edited"})),
                &[],
            )
            .await
        }
        "secrets:destroy" => {
            let (_, v) = admin(
                format!("/v1/secrets/{id}/versions"),
                json!({"value":"d","status":"PENDING"}),
            )
            .await;
            app.request_as(
                token,
                Method::POST,
                &format!("/v1/secrets/{id}/versions/{}/destroy", v["version"]),
                None,
                &[],
            )
            .await
        }
        "secrets:list" => {
            app.request_as(token, Method::GET, &format!("/v1/secrets/{id}"), None, &[])
                .await
        }
        "policies:admin" => {
            app.request_as(token, Method::GET, "/v1/policies", None, &[])
                .await
        }
        other => panic!("no HTTP operation for {other}"),
    };
    status.as_u16()
}

on_both_stores!(
    authorization_matrix_and_simulator_agree,
    |app: TestApp| async move {
        let all: Vec<&str> = ACTIONS.to_vec();
        put_policy(&app, "payments", json!([
        {"effect":"allow","principal":"service:prod:payments-api","actions": all,"resources":["prod/payments/*", "*"]},
    ])).await;
        put_policy(&app, "search", json!([
        {"effect":"allow","principal":"service:prod:search-api","actions": all,"resources":["prod/search/*"]},
    ])).await;
        put_policy(&app, "staging", json!([
        {"effect":"allow","principal":"service:staging:payments-api","actions": all,"resources":["staging/**"]},
    ])).await;
        put_policy(&app, "mallory", json!([
        {"effect":"allow","principal":"user:mallory","actions": all,"resources":["prod/**", "*"]},
        {"effect":"deny","principal":"user:mallory","actions": all,"resources":["prod/payments/*", "*"]},
    ])).await;
        let id = app.create_secret("prod", "payments/matrix").await;
        app.put_version(&id, "matrix-value", "CURRENT").await;

        let owner = app.token_for("service:prod:payments-api", json!({})).await;
        let other_team = app.token_for("service:prod:search-api", json!({})).await;
        let other_env = app
            .token_for("service:staging:payments-api", json!({}))
            .await;
        let denied = app.token_for("user:mallory", json!({})).await;
        let other_tenant = app
            .token_for("service:prod:payments-api", json!({"tenant": "acme"}))
            .await;
        let expired = app
            .token_for("service:prod:payments-api", json!({"ttl": "1s"}))
            .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // (caller, token, principal for the simulator, expected status per action)
        let rows: Vec<(&str, String, Option<&str>, [u16; 7])> = vec![
            (
                "owner service",
                owner,
                Some("service:prod:payments-api"),
                [200, 201, 200, 200, 200, 200, 200],
            ),
            (
                "other team's service",
                other_team,
                Some("service:prod:search-api"),
                [403; 7],
            ),
            (
                "other tenant",
                other_tenant,
                None,
                [403, 404, 404, 404, 404, 404, 403],
            ),
            (
                "other-environment wildcard",
                other_env,
                Some("service:staging:payments-api"),
                [403; 7],
            ),
            ("explicitly denied", denied, Some("user:mallory"), [403; 7]),
            ("no token", String::new(), None, [401; 7]),
            ("expired token", expired, None, [401; 7]),
        ];
        for (caller, token, principal, expected) in rows {
            for (action, want) in ACTIONS.iter().zip(expected) {
                let got = perform(&app, &token, action, &id).await;
                assert_eq!(got, want, "{caller} × {action}");
                if let Some(principal) = principal {
                    let resource = if *action == "policies:admin" {
                        "*"
                    } else {
                        RESOURCE
                    };
                    let (status, sim) = app
                        .post(
                            "/v1/policies/simulate",
                            json!({"principal": principal, "action": action, "resource": resource}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::OK, "{sim}");
                    let enforced = (200..300).contains(&got);
                    assert_eq!(
                        sim["allowed"], enforced,
                        "simulator disagrees: {caller} × {action}: {sim}"
                    );
                }
            }
        }

        // The simulator names the deciding statement, or says nothing matched.
        let (_, sim) = app
            .post(
                "/v1/policies/simulate",
                json!({"principal":"user:mallory","action":"secrets:read","resource":RESOURCE}),
            )
            .await;
        assert_eq!(sim["decision"], "deny");
        assert_eq!(sim["decidedBy"], json!({"policy":"mallory","index":1}));
        let (_, sim) = app.post("/v1/policies/simulate", json!({"principal":"service:prod:payments-api","action":"secrets:read","resource":"prod/payments-ledger/x"})).await;
        assert_eq!(
            sim["decision"], "deny",
            "prod/payments/* never matches prod/payments-ledger/x"
        );
        assert_eq!(sim["decidedBy"], Value::Null);
        assert!(
            sim["reason"]
                .as_str()
                .expect("reason")
                .contains("no statement matched")
        );
        for action in [
            "leases:issue",
            "leases:renew",
            "leases:revoke",
            "leases:revoke-mass",
            "audit:read",
            "secrets:read-break-glass",
        ] {
            let (status, sim) = app.post("/v1/policies/simulate", json!({"principal":"service:prod:payments-api","action":action,"resource":RESOURCE})).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(sim["allowed"], false, "{action} was never granted");
        }
        app.cleanup().await;
    }
);

on_both_stores!(
    rotate_does_not_imply_read_and_listing_is_filtered,
    |app: TestApp| async move {
        put_policy(&app, "rotator", json!([
        {"effect":"allow","principal":"service:prod:rotator","actions":["secrets:rotate","secrets:list"],"resources":["prod/payments/*"]},
    ])).await;
        let id = app.create_secret("prod", "payments/key").await;
        app.create_secret("prod", "search/key").await;
        let v1 = app.put_version(&id, "v1", "CURRENT").await;
        let v2 = app.put_version(&id, "v2", "PENDING").await;
        let token = app.token_for("service:prod:rotator", json!({})).await;
        let (status, _) = app
            .request_as(
                &token,
                Method::POST,
                &format!("/v1/secrets/{id}/aliases/current"),
                Some(json!({"version": v2, "expectedPreviousVersion": v1})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "rotate allowed");
        let (status, body) = app
            .request_as(
                &token,
                Method::GET,
                "/v1/secrets/prod/payments/key",
                None,
                &[],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "rotating never grants reading: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("secrets:read")
        );
        let (_, list) = app
            .request_as(&token, Method::GET, "/v1/secrets", None, &[])
            .await;
        let paths: Vec<_> = list["secrets"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["path"].clone())
            .collect();
        assert_eq!(
            paths,
            [json!("payments/key")],
            "only listable secrets are listed"
        );
        app.cleanup().await;
    }
);

on_both_stores!(
    malformed_policies_are_refused_whole,
    |app: TestApp| async move {
        put_policy(&app, "keep", json!([{"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["prod/*"]}])).await;
        let cases = [
            (
                json!({"statements":[{"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["x/*"]},
                              {"effect":"allow","principal":"user:a","actions":["secrets:teleport"],"resources":["x/*"]}]}),
                "statements[1].actions[0]",
            ),
            (
                json!({"statements":[{"effect":"allow","principal":"user:a","actions":["secrets:read"],"resources":["x/*"],"conditions":{"moonPhase":"full"}}]}),
                "statements[0].conditions.moonPhase",
            ),
            (
                json!({"statements":[{"effect":"maybe","principal":"user:a","actions":["secrets:read"],"resources":["x/*"]}]}),
                "statements[0].effect",
            ),
            (json!({"statements":[]}), "statements"),
            (
                json!({"statements":[{"effect":"allow","principal":"user:a","actions":["secrets:read"]}]}),
                "statements[0]",
            ),
        ];
        for (document, field) in cases {
            let (status, body) = app
                .request(Method::PUT, "/v1/policies/keep", Some(document))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
            assert!(
                body["error"]["field"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(field),
                "{field}: {body}"
            );
        }
        let (status, body) = app
            .request(
                Method::PUT,
                "/v1/policies/Bad%20Name",
                Some(json!({"statements":[]})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (_, kept) = app.get("/v1/policies/keep").await;
        assert_eq!(
            kept["statements"][0]["resources"],
            json!(["prod/*"]),
            "nothing was half-applied"
        );
        let (status, _) = app.request(Method::DELETE, "/v1/policies/keep", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.get("/v1/policies/keep").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.cleanup().await;
    }
);

on_both_stores!(
    tokens_are_minted_looked_up_and_revoked,
    |app: TestApp| async move {
        put_policy(&app, "svc", json!([{"effect":"allow","principal":"service:prod:api","actions":["secrets:list"],"resources":["*"]}])).await;
        let (status, minted) = app
            .post(
                "/v1/auth/tokens",
                json!({"principal":"service:prod:api","ttl":"1h"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{minted}");
        let token = minted["token"].as_str().expect("token").to_owned();
        let (status, me) = app
            .request_as(&token, Method::GET, "/v1/auth/self", None, &[])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["principal"], "service:prod:api");
        assert_eq!(me["tenant"], "default");
        let id = minted["id"].as_str().expect("id");
        let (status, info) = app.get(&format!("/v1/auth/tokens/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !info.to_string().contains(&token),
            "lookup never shows the token"
        );
        let (status, body) = app
            .request_as(
                &token,
                Method::POST,
                "/v1/auth/tokens",
                Some(json!({"principal":"user:x"})),
                &[],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "minting needs policies:admin: {body}"
        );
        for (body, field) in [
            (json!({"principal":"robot:x"}), "principal"),
            (json!({"principal":"user:x","ttl":"forever"}), "ttl"),
            (
                json!({"principal":"user:x","tenant":"Bad Tenant"}),
                "tenant",
            ),
        ] {
            let (status, answer) = app.post("/v1/auth/tokens", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(answer["error"]["field"], field);
        }
        let (status, _) = app
            .request_as(
                &token,
                Method::POST,
                &format!("/v1/auth/tokens/{id}/revoke"),
                None,
                &[],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "a caller may revoke its own token"
        );
        let (status, _) = app
            .request_as(&token, Method::GET, "/v1/auth/self", None, &[])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        app.cleanup().await;
    }
);

async fn next_alert(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("alert within 10 s")
        .expect("alert")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_grants_work_expire_and_alert() {
    let (url, mut alerts) = crate::helpers::webhook().await;
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
        s.alert_webhook_url = Some(url)
    })
    .await;
    put_policy(&app, "oncall", json!([
        {"effect":"allow","principal":"group:payments-oncall","actions":["secrets:rotate","secrets:read-break-glass"],
         "resources":["prod/payments/*"],"conditions":{"mfa":true,"ticketRequired":true}},
    ])).await;
    let (status, _) = app
        .request(
            Method::PUT,
            "/v1/groups/payments-oncall",
            Some(json!({"members":["user:alice"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = app.create_secret("prod", "payments/stripe-api-key").await;
    app.put_version(&id, "glass-value", "CURRENT").await;

    let without_mfa = app.token_for("user:alice", json!({})).await;
    let alice = app.token_for("user:alice", json!({"mfa": true})).await;
    let request = |reason: &str, ticket: &str| json!({"resources":["prod/payments/*"],"reason":reason,"ticketUrl":ticket,"durationMinutes":30});

    let (status, body) = app
        .request_as(
            &alice,
            Method::GET,
            "/v1/secrets/prod/payments/stripe-api-key",
            None,
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no read without a grant: {body}"
    );
    let (status, body) = app
        .request_as(
            &without_mfa,
            Method::POST,
            "/v1/break-glass",
            Some(request(
                "production incident INC-1842",
                "https://tickets/INC-1842",
            )),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no mfa: {body}");
    let (status, body) = app
        .request_as(
            &alice,
            Method::POST,
            "/v1/break-glass",
            Some(request("", "https://tickets/INC-1842")),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("reason"))
    );
    let (status, body) = app
        .request_as(
            &alice,
            Method::POST,
            "/v1/break-glass",
            Some(request("production incident INC-1842", "")),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("ticketUrl"))
    );

    let (status, grant) = app
        .request_as(
            &alice,
            Method::POST,
            "/v1/break-glass",
            Some(request(
                "production incident INC-1842",
                "https://tickets/INC-1842",
            )),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let granted = next_alert(&mut alerts).await;
    assert_eq!(granted["event"], "BREAK_GLASS_GRANTED");
    assert_eq!(granted["reason"], "production incident INC-1842");

    let response = app
        .http
        .get(format!(
            "{}/v1/secrets/prod/payments/stripe-api-key",
            app.addr
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("read");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("x-leasehold-break-glass")
            .and_then(|v| v.to_str().ok()),
        grant["id"].as_str()
    );
    let read: Value = response.json().await.expect("json");
    assert_eq!(read["value"], "glass-value");
    let alert = next_alert(&mut alerts).await;
    assert_eq!(alert["event"], "BREAK_GLASS_READ");
    assert_eq!(alert["resource"], "prod/payments/stripe-api-key");
    assert!(
        !alert.to_string().contains("glass-value"),
        "alerts never carry values"
    );
    // The trail holds the grant and the read, each with the reason and the ticket.
    for event_type in ["BREAK_GLASS_GRANT", "BREAK_GLASS_READ"] {
        let (_, page) = app
            .get(&format!("/v1/audit/events?eventType={event_type}"))
            .await;
        let event = &page["events"][0];
        assert_eq!(
            (
                event["detail"]["reason"].as_str(),
                event["detail"]["ticketUrl"].as_str(),
                event["detail"]["grantId"].as_str()
            ),
            (
                Some("production incident INC-1842"),
                Some("https://tickets/INC-1842"),
                grant["id"].as_str()
            ),
            "{event_type}: {page}"
        );
        assert!(!page.to_string().contains("glass-value"));
    }
    let (status, summary) = app.get("/v1/audit/summary/break-glass-reads").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        (&summary["rows"][0]["subject"], &summary["rows"][0]["count"]),
        (&json!("user:alice prod/payments/stripe-api-key"), &json!(1)),
        "{summary}"
    );
    let (status, _) = app
        .request_as(
            &without_mfa,
            Method::GET,
            "/v1/secrets/prod/payments/stripe-api-key",
            None,
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a grant belongs to the token that opened it"
    );
    put_policy(&app, "freeze", json!([
        {"effect":"deny","principal":"group:payments-oncall","actions":["secrets:read-break-glass"],"resources":["prod/payments/stripe-api-key"]},
    ])).await;
    let (status, _) = app
        .request_as(
            &alice,
            Method::GET,
            "/v1/secrets/prod/payments/stripe-api-key",
            None,
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a later deny wins over an open grant"
    );
    let (status, _) = app
        .request(Method::DELETE, "/v1/policies/freeze", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let metrics = app.metrics().await;
    assert!(metrics.contains("leasehold_break_glass_reads_total"));

    let (_, listed) = app.get("/v1/break-glass").await;
    assert_eq!(listed["grants"][0]["id"], grant["id"]);
    // Expire it: the grant no longer works.
    app.execute("UPDATE break_glass_grants SET expires_at = created_at")
        .await;
    let (status, _) = app
        .request_as(
            &alice,
            Method::GET,
            "/v1/secrets/prod/payments/stripe-api-key",
            None,
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an expired grant no longer works"
    );

    // A new grant, ended early.
    let (_, second) = app
        .request_as(
            &alice,
            Method::POST,
            "/v1/break-glass",
            Some(request("INC-1843", "https://tickets/INC-1843")),
            &[],
        )
        .await;
    let (status, _) = app
        .request_as(
            &alice,
            Method::POST,
            &format!("/v1/break-glass/{}/end", second["id"].as_str().expect("id")),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .request_as(
            &alice,
            Method::GET,
            "/v1/secrets/prod/payments/stripe-api-key",
            None,
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an ended grant no longer works"
    );
    app.cleanup().await;
}
