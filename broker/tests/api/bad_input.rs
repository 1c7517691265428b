//! Every kind of bad input answers its 4xx with a message naming what to fix, and changes
//! nothing in the store.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_stores;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<String>,
    token: Option<&'static str>,
    status: u16,
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Option<String>,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        content_type: Some("application/json"),
        body,
        token: None,
        status,
        field,
    }
}

/// Sends `GET target` exactly as written, without client-side path normalisation.
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.addr.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        app.token
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, response)
}

fn create(body: serde_json::Value) -> Option<String> {
    Some(body.to_string())
}

on_both_stores!(
    bad_input_is_refused_and_changes_nothing,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "payments/existing").await;
        app.put_version(&id, "one", "CURRENT").await;
        app.put_version(&id, "two", "CURRENT").await;
        let before = app.snapshot().await;
        let versions = format!("/v1/secrets/{id}/versions");
        let promote = format!("/v1/secrets/{id}/aliases/current");
        let big = "x".repeat(64 * 1024 + 1);

        let mut cases = vec![
            case(
                "malformed JSON",
                Method::POST,
                "/v1/secrets",
                Some("{\"environment\":".into()),
                400,
                None,
            ),
            case(
                "missing field",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","ownerTeam":"p"})),
                400,
                Some("path"),
            ),
            case(
                "unknown field",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","path":"a/b","ownerTeam":"p","colour":"red"})),
                400,
                None,
            ),
            case(
                "uppercase environment",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"Prod","path":"a/b","ownerTeam":"p"})),
                400,
                Some("environment"),
            ),
            case(
                "uuid-shaped environment",
                Method::POST,
                "/v1/secrets",
                create(
                    json!({"environment":"0b9c4a4e-2c4f-4f59-9d5c-6b1a2f8b9c01","path":"a/b","ownerTeam":"p"}),
                ),
                400,
                Some("environment"),
            ),
            case(
                "dot-dot path",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","path":"a/../b","ownerTeam":"p"})),
                400,
                Some("path"),
            ),
            case(
                "leading slash",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","path":"/a/b","ownerTeam":"p"})),
                400,
                Some("path"),
            ),
            case(
                "empty segment",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","path":"a//b","ownerTeam":"p"})),
                400,
                Some("path"),
            ),
            case(
                "path too long",
                Method::POST,
                "/v1/secrets",
                create(
                    json!({"environment":"prod","path":vec!["a".repeat(100); 6].join("/"),"ownerTeam":"p"}),
                ),
                400,
                Some("path"),
            ),
            case(
                "sql in path",
                Method::POST,
                "/v1/secrets",
                create(
                    json!({"environment":"prod","path":"a/x';DROP TABLE secrets;--","ownerTeam":"p"}),
                ),
                400,
                Some("path"),
            ),
            case(
                "bad owner team",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","path":"a/b","ownerTeam":"Pay Ments"})),
                400,
                Some("ownerTeam"),
            ),
            case(
                "bad rotation strategy",
                Method::POST,
                "/v1/secrets",
                create(
                    json!({"environment":"prod","path":"a/b","ownerTeam":"p","rotationStrategy":"yearly"}),
                ),
                400,
                Some("rotationStrategy"),
            ),
            case(
                "duplicate secret",
                Method::POST,
                "/v1/secrets",
                create(json!({"environment":"prod","path":"payments/existing","ownerTeam":"p"})),
                409,
                None,
            ),
            case(
                "value of wrong type",
                Method::POST,
                &versions,
                create(json!({"value": 12345})),
                400,
                Some("value"),
            ),
            case(
                "unknown status",
                Method::POST,
                &versions,
                create(json!({"value":"v","status":"CURRENTLY"})),
                400,
                Some("status"),
            ),
            case(
                "status not allowed on create",
                Method::POST,
                &versions,
                create(json!({"value":"v","status":"DESTROYED"})),
                400,
                Some("status"),
            ),
            case(
                "value over the limit",
                Method::POST,
                &versions,
                create(json!({"value": big})),
                413,
                Some("value"),
            ),
            case(
                "body over the limit",
                Method::POST,
                &versions,
                Some(format!("{{\"value\":\"{}\"}}", "y".repeat(700 * 1024))),
                413,
                None,
            ),
            case(
                "version of unknown secret",
                Method::POST,
                "/v1/secrets/0b9c4a4e-2c4f-4f59-9d5c-6b1a2f8b9c01/versions",
                create(json!({"value":"v"})),
                404,
                None,
            ),
            case(
                "stale CAS",
                Method::POST,
                &promote,
                create(json!({"version":1,"expectedPreviousVersion":1})),
                409,
                None,
            ),
            case(
                "promote missing version",
                Method::POST,
                &promote,
                create(json!({"version":99,"expectedPreviousVersion":2})),
                404,
                None,
            ),
            case(
                "set previous directly",
                Method::POST,
                format!("/v1/secrets/{id}/aliases/previous"),
                create(json!({"version":1,"expectedPreviousVersion":1})),
                400,
                Some("alias"),
            ),
            case(
                "unknown alias",
                Method::POST,
                format!("/v1/secrets/{id}/aliases/latest"),
                create(json!({"version":1})),
                400,
                Some("alias"),
            ),
            case(
                "non-numeric version in path",
                Method::POST,
                format!("/v1/secrets/{id}/versions/abc/disable"),
                None,
                400,
                Some("path"),
            ),
            case(
                "disable current",
                Method::POST,
                format!("/v1/secrets/{id}/versions/2/disable"),
                None,
                409,
                None,
            ),
            case(
                "destroy current",
                Method::POST,
                format!("/v1/secrets/{id}/versions/2/destroy"),
                None,
                409,
                None,
            ),
            case(
                "disable missing version",
                Method::POST,
                format!("/v1/secrets/{id}/versions/7/disable"),
                None,
                404,
                None,
            ),
            case(
                "read unknown secret",
                Method::GET,
                "/v1/secrets/prod/payments/missing",
                None,
                404,
                None,
            ),
            case(
                "read unknown version",
                Method::GET,
                "/v1/secrets/prod/payments/existing?version=9",
                None,
                404,
                None,
            ),
            case(
                "read alias and version",
                Method::GET,
                "/v1/secrets/prod/payments/existing?alias=current&version=1",
                None,
                400,
                Some("alias"),
            ),
            case(
                "read bad alias",
                Method::GET,
                "/v1/secrets/prod/payments/existing?alias=latest",
                None,
                400,
                Some("alias"),
            ),
            case(
                "read bad environment",
                Method::GET,
                "/v1/secrets/PROD/payments/existing",
                None,
                400,
                Some("environment"),
            ),
            case(
                "read non-numeric version",
                Method::GET,
                "/v1/secrets/prod/payments/existing?version=two",
                None,
                400,
                Some("version"),
            ),
            case(
                "list injection",
                Method::GET,
                "/v1/secrets?environment=prod%27%20OR%20%271%27=%271",
                None,
                400,
                Some("environment"),
            ),
            case(
                "list limit",
                Method::GET,
                "/v1/secrets?limit=0",
                None,
                400,
                Some("limit"),
            ),
            case(
                "list bad cursor",
                Method::GET,
                "/v1/secrets?after=nocursor",
                None,
                400,
                Some("after"),
            ),
            case(
                "unknown route",
                Method::GET,
                "/v1/nothing-here",
                None,
                404,
                None,
            ),
        ];
        let mut wrong_type = case(
            "wrong content type",
            Method::POST,
            "/v1/secrets",
            create(json!({"environment":"prod","path":"a/b","ownerTeam":"p"})),
            415,
            None,
        );
        wrong_type.content_type = Some("text/plain");
        cases.push(wrong_type);
        let mut no_type = case(
            "no content type",
            Method::POST,
            &versions,
            create(json!({"value":"v"})),
            415,
            None,
        );
        no_type.content_type = None;
        cases.push(no_type);
        let mut no_token = case("no token", Method::GET, "/v1/secrets", None, 401, None);
        no_token.token = Some("");
        cases.push(no_token);
        let mut bad_token = case(
            "unknown token",
            Method::POST,
            "/v1/secrets",
            create(json!({"environment":"prod","path":"a/b","ownerTeam":"p"})),
            401,
            None,
        );
        bad_token.token = Some("lh_not-a-real-token");
        cases.push(bad_token);

        for case in cases {
            let mut request = app
                .http
                .request(case.method.clone(), format!("{}{}", app.addr, case.path));
            match case.token {
                Some("") => {}
                Some(token) => request = request.bearer_auth(token),
                None => request = request.bearer_auth(&app.token),
            }
            if let Some(content_type) = case.content_type {
                request = request.header("Content-Type", content_type);
            }
            if let Some(body) = case.body.clone() {
                request = request.body(body);
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let body: serde_json::Value = response
                .json()
                .await
                .unwrap_or_else(|_| panic!("case {}: JSON error body", case.name));
            assert_eq!(status, case.status, "case {}: {body}", case.name);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "case {}: error message", case.name);
            assert!(
                body["error"]["code"].is_string(),
                "case {}: error code",
                case.name
            );
            if let Some(field) = case.field {
                assert_eq!(body["error"]["field"], field, "case {}: {body}", case.name);
            }
            assert!(
                !message.contains("12345") && !message.contains("CURRENTLY"),
                "case {}: values are never echoed",
                case.name
            );
            assert_eq!(
                app.snapshot().await,
                before,
                "case {}: the store changed",
                case.name
            );
        }
        // HTTP clients resolve `..` before sending, so the traversal attempts go over a raw socket.
        for target in [
            "/v1/secrets/prod/payments/../payments/existing",
            "/v1/secrets/prod/payments/%2E%2E/payments/existing",
            "/v1/secrets/prod/./payments/existing",
        ] {
            let (status, body) = raw_get(&app, target).await;
            assert_eq!(status, 400, "traversal {target}: {body}");
            assert!(
                body.contains(r#""field":"path""#),
                "traversal {target}: {body}"
            );
        }
        let (status, read) = app.get("/v1/secrets/prod/payments/existing").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read["value"], "two");
        app.cleanup().await;
    }
);
