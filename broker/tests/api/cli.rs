//! The `leasehold secret …` commands against a running server.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::TestApp;
use crate::on_both_stores;

pub async fn leasehold(
    app: &TestApp,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(args)
        .env("LEASEHOLD_ADDR", &app.addr)
        .env("LEASEHOLD_TOKEN", &app.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run leasehold");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().await.expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

on_both_stores!(cli_round_trip, |app: TestApp| async move {
    let (ok, out, err) = leasehold(
        &app,
        &[
            "secret",
            "create",
            "prod/payments/cli-key",
            "--owner-team",
            "payments",
        ],
        None,
    )
    .await;
    assert!(ok, "create: {out} {err}");
    assert!(out.starts_with("Created secret "), "{out}");

    let (ok, out, err) = leasehold(
        &app,
        &[
            "secret",
            "put",
            "prod/payments/cli-key",
            "--value-file",
            "-",
        ],
        Some("from-stdin\n"),
    )
    .await;
    assert!(ok, "put: {out} {err}");
    assert!(out.contains("Wrote version 1 (CURRENT)"), "{out}");
    let (ok, _, err) = leasehold(
        &app,
        &[
            "secret",
            "put",
            "prod/payments/cli-key",
            "--value",
            "second",
            "--status",
            "PENDING",
        ],
        None,
    )
    .await;
    assert!(ok, "put pending: {err}");

    let (ok, out, _) = leasehold(&app, &["secret", "get", "prod/payments/cli-key"], None).await;
    assert!(ok);
    assert_eq!(out.trim_end(), "from-stdin");

    let (ok, out, err) = leasehold(
        &app,
        &[
            "secret",
            "promote",
            "prod/payments/cli-key",
            "--version",
            "2",
            "--expected-previous",
            "1",
        ],
        None,
    )
    .await;
    assert!(ok, "promote: {out} {err}");
    let (ok, _, err) = leasehold(
        &app,
        &[
            "secret",
            "promote",
            "prod/payments/cli-key",
            "--version",
            "1",
            "--expected-previous",
            "1",
        ],
        None,
    )
    .await;
    assert!(!ok, "stale promotion fails");
    assert!(err.contains("HTTP 409"), "{err}");

    let (ok, out, _) = leasehold(
        &app,
        &[
            "--json",
            "secret",
            "get",
            "prod/payments/cli-key",
            "--alias",
            "previous",
        ],
        None,
    )
    .await;
    assert!(ok);
    let read: serde_json::Value = serde_json::from_str(&out).expect("--json output");
    assert_eq!(read["value"], "from-stdin");
    assert_eq!(read["version"], 1);

    for (verb, status) in [
        ("disable", "DISABLED"),
        ("enable", "PREVIOUS"),
        ("destroy", "DESTROYED"),
    ] {
        let (ok, out, err) = leasehold(
            &app,
            &["secret", verb, "prod/payments/cli-key", "--version", "1"],
            None,
        )
        .await;
        assert!(ok, "{verb}: {err}");
        assert!(out.contains(status), "{verb}: {out}");
    }

    let (ok, out, _) = leasehold(&app, &["secret", "list", "--environment", "prod"], None).await;
    assert!(ok);
    assert!(out.contains("prod/payments/cli-key"), "{out}");
    let (ok, out, _) = leasehold(&app, &["secret", "show", "prod/payments/cli-key"], None).await;
    assert!(ok);
    assert!(
        out.contains("current=2") && out.contains("DESTROYED"),
        "{out}"
    );
    assert!(!out.contains("from-stdin"), "show never prints values");

    let policy = r#"{"statements":[{"effect":"allow","principal":"service:prod:payments-api","actions":["secrets:read"],"resources":["prod/payments/*"]}]}"#;
    let (ok, out, err) = leasehold(
        &app,
        &["policy", "put", "payments-read", "--file", "-"],
        Some(policy),
    )
    .await;
    assert!(ok, "policy put: {out} {err}");
    let (ok, out, _) = leasehold(
        &app,
        &[
            "policy",
            "simulate",
            "--principal",
            "service:prod:payments-api",
            "--action",
            "secrets:read",
            "--resource",
            "prod/payments/cli-key",
        ],
        None,
    )
    .await;
    assert!(ok);
    assert_eq!(
        out.trim(),
        "ALLOW: allowed by statement 0 of policy payments-read"
    );
    let (ok, out, _) = leasehold(
        &app,
        &[
            "policy",
            "simulate",
            "--principal",
            "service:prod:payments-api",
            "--action",
            "secrets:write",
            "--resource",
            "prod/payments/cli-key",
        ],
        None,
    )
    .await;
    assert!(ok);
    assert!(out.starts_with("DENY: no statement matched"), "{out}");
    let (ok, out, err) = leasehold(
        &app,
        &[
            "--json",
            "token",
            "create",
            "--principal",
            "service:prod:payments-api",
        ],
        None,
    )
    .await;
    assert!(ok, "token create: {err}");
    let minted: serde_json::Value = serde_json::from_str(&out).expect("json");
    let (ok, out, err) = leasehold(
        &app,
        &["token", "revoke", minted["id"].as_str().expect("id")],
        None,
    )
    .await;
    assert!(ok, "token revoke: {out} {err}");
    let (ok, out, _) = leasehold(&app, &["whoami"], None).await;
    assert!(ok);
    assert_eq!(out.trim(), "user:test-admin (tenant default)");

    let (ok, out, err) = leasehold(&app, &["audit", "verify"], None).await;
    assert!(ok, "audit verify: {out} {err}");
    assert!(out.starts_with("Audit chain intact"), "{out}");
    let (ok, out, _) = leasehold(
        &app,
        &["audit", "query", "--event-type", "SECRET_READ"],
        None,
    )
    .await;
    assert!(ok);
    assert!(
        out.contains("SECRET_READ") && out.contains("prod/payments/cli-key"),
        "{out}"
    );
    assert!(!out.contains("from-stdin"), "audit never shows values");
    let (ok, out, err) = leasehold(&app, &["audit", "summary", "reads-by-secret"], None).await;
    assert!(ok, "audit summary: {out} {err}");
    let row = out
        .lines()
        .find(|l| l.ends_with("prod/payments/cli-key"))
        .unwrap_or_else(|| panic!("a row for the secret read above: {out}"));
    assert!(
        row.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            >= Some(1),
        "{row}"
    );
    let (ok, _, err) = leasehold(&app, &["audit", "summary", "reads-by-nobody"], None).await;
    assert!(!ok);
    assert!(err.contains("stale-secrets"), "clap lists the kinds: {err}");

    let (ok, _, err) = leasehold(&app, &["secret", "get", "prod/payments/missing"], None).await;
    assert!(!ok);
    assert!(err.contains("HTTP 404"), "{err}");
    app.cleanup().await;
});
