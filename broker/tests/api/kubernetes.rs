//! Kubernetes workload login: tokens signed with keys the test generates, validated offline
//! against the role's JWKS; every rejection has its own case.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_stores;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "leasehold";

struct Keys {
    ec: EncodingKey,
    ec_other: EncodingKey,
    rsa: EncodingKey,
    jwks: Value,
}

/// The PKCS#1 key inside a PKCS#8 `PrivateKeyInfo` (the last OCTET STRING of the sequence).
fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
    fn read_len(bytes: &[u8], at: &mut usize) -> usize {
        let first = bytes[*at];
        *at += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let count = usize::from(first & 0x7f);
        let mut len = 0;
        for _ in 0..count {
            len = (len << 8) | usize::from(bytes[*at]);
            *at += 1;
        }
        len
    }
    let mut at = 1;
    read_len(der, &mut at); // outer SEQUENCE
    for _ in 0..2 {
        at += 1; // INTEGER version, then SEQUENCE algorithm
        let len = read_len(der, &mut at);
        at += len;
    }
    assert_eq!(der[at], 0x04, "OCTET STRING");
    at += 1;
    let len = read_len(der, &mut at);
    der[at..at + len].to_vec()
}

fn keys() -> Keys {
    let ec_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    let point = ec_pair.public_key_raw();
    let rsa_pair =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa key");
    let pkcs8 = rsa_pair.as_der().expect("pkcs8");
    let public = rsa_pair.public_key();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    Keys {
        ec: EncodingKey::from_ec_der(&ec_pair.serialize_der()),
        ec_other: EncodingKey::from_ec_der(&other.serialize_der()),
        rsa: EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(pkcs8.as_ref())),
        jwks: json!({"keys": [
            {"kty":"EC","crv":"P-256","kid":"ec-1","alg":"ES256","use":"sig","x": b64(&point[1..33]),"y": b64(&point[33..65])},
            {"kty":"RSA","kid":"rsa-1","alg":"RS256","use":"sig",
             "n": b64(public.modulus().big_endian_without_leading_zero()),
             "e": b64(public.exponent().big_endian_without_leading_zero())},
        ]}),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

async fn login(app: &TestApp, jwt: &str) -> (StatusCode, Value) {
    app.request_as(
        "",
        Method::POST,
        "/v1/auth/kubernetes/login",
        Some(json!({"role": "payments", "jwt": jwt})),
        &[],
    )
    .await
}

on_both_stores!(
    kubernetes_login_accepts_valid_tokens_and_rejects_each_fault,
    |app: TestApp| async move {
        let keys = keys();
        let (status, body) = app
        .request(
            Method::PUT,
            "/v1/auth/kubernetes/roles/payments",
            Some(json!({"cluster":"prod-us-east-1","issuer":ISSUER,"audience":AUDIENCE,"jwks":keys.jwks,
                "serviceAccounts":["payments-api"],"namespaces":["payments"],"principal":"service:prod:payments-api","ttl":"15m"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = app
        .request(Method::PUT, "/v1/policies/k8s", Some(json!({"statements":[
            {"effect":"allow","principal":"service:prod:payments-api","actions":["secrets:read"],"resources":["prod/payments/*"],"conditions":{"sourceCluster":"prod-us-east-1"}}
        ]})))
        .await;
        assert_eq!(status, StatusCode::OK);
        let id = app.create_secret("prod", "payments/k8s").await;
        app.put_version(&id, "from-a-pod", "CURRENT").await;

        let good = claims("system:serviceaccount:payments:payments-api");
        for (alg, kid, key) in [
            (Algorithm::ES256, "ec-1", &keys.ec),
            (Algorithm::RS256, "rsa-1", &keys.rsa),
        ] {
            let (status, body) = login(&app, &sign(alg, kid, &good, key)).await;
            assert_eq!(status, StatusCode::OK, "{alg:?}: {body}");
            assert_eq!(body["principal"], "service:prod:payments-api");
            assert_eq!(body["sourceCluster"], "prod-us-east-1");
            let token = body["token"].as_str().expect("token");
            let (status, me) = app
                .request_as(token, Method::GET, "/v1/auth/self", None, &[])
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(me["sourceCluster"], "prod-us-east-1");
            let (status, read) = app
                .request_as(
                    token,
                    Method::GET,
                    "/v1/secrets/prod/payments/k8s",
                    None,
                    &[],
                )
                .await;
            assert_eq!(
                status,
                StatusCode::OK,
                "the sourceCluster condition holds: {read}"
            );
            assert_eq!(read["value"], "from-a-pod");
        }

        let mut wrong_issuer = good.clone();
        wrong_issuer["iss"] = json!("https://evil.example");
        let mut wrong_audience = good.clone();
        wrong_audience["aud"] = json!("vault");
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 3600);
        let mut early = good.clone();
        early["nbf"] = json!(now() + 3600);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(good.to_string())
        );
        let hmac = sign(
            Algorithm::HS256,
            "ec-1",
            &good,
            &EncodingKey::from_secret(b"public key as secret"),
        );
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "bad signature",
                sign(Algorithm::ES256, "ec-1", &good, &keys.ec_other),
                "signature",
            ),
            (
                "wrong issuer",
                sign(Algorithm::ES256, "ec-1", &wrong_issuer, &keys.ec),
                "issuer",
            ),
            (
                "wrong audience",
                sign(Algorithm::ES256, "ec-1", &wrong_audience, &keys.ec),
                "audience",
            ),
            (
                "expired",
                sign(Algorithm::ES256, "ec-1", &expired, &keys.ec),
                "expired",
            ),
            (
                "not yet valid",
                sign(Algorithm::ES256, "ec-1", &early, &keys.ec),
                "not valid yet",
            ),
            (
                "unknown service account",
                sign(
                    Algorithm::ES256,
                    "ec-1",
                    &claims("system:serviceaccount:payments:intruder"),
                    &keys.ec,
                ),
                "service account intruder",
            ),
            (
                "wrong namespace",
                sign(
                    Algorithm::ES256,
                    "ec-1",
                    &claims("system:serviceaccount:search:payments-api"),
                    &keys.ec,
                ),
                "namespace search",
            ),
            ("alg none", none, "algorithm"),
            ("hmac algorithm", hmac, "algorithm"),
            (
                "unknown key id",
                sign(Algorithm::ES256, "ec-9", &good, &keys.ec),
                "key id",
            ),
            ("garbage", "not.a.jwt".to_owned(), "malformed"),
        ];
        for (case, jwt, reason) in cases {
            let (status, body) = login(&app, &jwt).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "case {case}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(reason), "case {case}: {message}");
        }
        let (status, body) = app
            .request_as(
                "",
                Method::POST,
                "/v1/auth/kubernetes/login",
                Some(json!({"role": "nope", "jwt": "x.y.z"})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

        let (status, body) = app
            .request(
                Method::PUT,
                "/v1/auth/kubernetes/roles/broken",
                Some(json!({"cluster":"c","issuer":ISSUER,"audience":AUDIENCE,
            "serviceAccounts":["a"],"namespaces":["b"],"principal":"service:prod:x"})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a role needs its keys: {body}"
        );
        assert_eq!(body["error"]["field"], "jwks");
        app.cleanup().await;
    }
);

on_both_stores!(
    auth_role_changes_commit_with_their_events,
    |app: TestApp| async move {
        let role = |cluster: &str| {
            json!({"cluster": cluster, "issuer": ISSUER, "audience": AUDIENCE, "jwks": keys().jwks,
                "serviceAccounts": ["a"], "namespaces": ["b"], "principal": "service:prod:x"})
        };
        let path = "/v1/auth/kubernetes/roles/audited";
        let (status, body) = app.request(Method::PUT, path, Some(role("one"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        app.break_audit().await;
        let (status, body) = app.request(Method::PUT, path, Some(role("two"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let (status, body) = app.request(Method::DELETE, path, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        app.mend_audit().await;

        // Neither refused change happened: the role is still there, unchanged.
        assert_eq!(app.rows("kubernetes_roles").await, 1);
        assert_eq!(
            app.rows(r#"kubernetes_roles WHERE document LIKE '%"cluster":"one"%'"#)
                .await,
            1
        );
        let (status, body) = app.request(Method::DELETE, path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (_, page) = app
            .get("/v1/audit/events?limit=100&eventType=AUTH_ROLE_CHANGE")
            .await;
        let operations: Vec<&str> = page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["detail"]["operation"].as_str().expect("operation"))
            .collect();
        assert_eq!(operations, ["put", "delete"], "one event per change made");
        app.cleanup().await;
    }
);
