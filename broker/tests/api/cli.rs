//! The `leasehold` commands (secrets, audit, backends, roles, leases) against a running server.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_stores;
use crate::targets::{ADMIN_PASSWORD, Kind, Target};

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
    let (ok, first_page, err) = leasehold(&app, &["audit", "query", "--limit", "1"], None).await;
    assert!(ok, "{err}");
    assert!(
        err.contains("--after 1"),
        "a page says how to get the next: {err}"
    );
    let (ok, second_page, _) = leasehold(
        &app,
        &["audit", "query", "--limit", "1", "--after", "1"],
        None,
    )
    .await;
    assert!(ok);
    assert!(
        first_page.trim_start().starts_with("1 ") && second_page.trim_start().starts_with("2 "),
        "{first_page} / {second_page}"
    );
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

    // `audit tail` streams the trail from its start as JSON lines.
    let mut tail = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["audit", "tail", "--interval-ms", "100"])
        .env("LEASEHOLD_ADDR", &app.addr)
        .env("LEASEHOLD_TOKEN", &app.token)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run leasehold audit tail");
    let mut lines = BufReader::new(tail.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10 s")
        .expect("read")
        .expect("a line");
    let first: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    assert_eq!(first["seq"], 1, "{first}");
    tail.kill().await.expect("stop tail");

    // An edited event breaks the chain: `audit verify` says where and exits non-zero.
    app.execute("UPDATE audit_events SET principal = 'user:someone-else' WHERE seq = 2")
        .await;
    let (ok, out, _) = leasehold(&app, &["audit", "verify"], None).await;
    assert!(!ok, "a broken chain is a failure: {out}");
    assert!(out.contains("BROKEN at event 2"), "{out}");
    app.cleanup().await;
});

/// `leasehold … --json` as JSON, asserting it succeeded.
async fn leasehold_json(app: &TestApp, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let (ok, out, err) = leasehold(app, &with_json, stdin).await;
    assert!(ok, "{args:?}: {out} {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_role_and_lease_commands_issue_credentials_that_log_in_and_revoke_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let target = Target::create(Kind::Postgres).await;
    let backend = target.backend_body(ADMIN_PASSWORD).to_string();
    let (ok, out, err) = leasehold(
        &app,
        &["backend", "put", "db", "--file", "-"],
        Some(&backend),
    )
    .await;
    assert!(ok, "backend put: {out} {err}");
    assert!(
        !out.contains(ADMIN_PASSWORD),
        "the admin password is never shown"
    );
    let (ok, out, err) = leasehold(&app, &["backend", "verify", "db"], None).await;
    assert!(ok, "backend verify: {out} {err}");
    let role = target.role_body("db").to_string();
    let (ok, out, err) = leasehold(&app, &["role", "put", "app", "--file", "-"], Some(&role)).await;
    assert!(ok, "role put: {out} {err}");

    let lease = leasehold_json(
        &app,
        &["lease", "issue", "--role", "app", "--ttl", "10m"],
        None,
    )
    .await;
    let (id, username) = (
        lease["leaseId"].as_str().expect("leaseId").to_owned(),
        lease["username"].as_str().expect("username").to_owned(),
    );
    let password = lease["password"].as_str().expect("password");
    target
        .login(&username, password)
        .await
        .expect("the issued user logs in");
    let listed = leasehold_json(&app, &["lease", "list", "--role", "app"], None).await;
    let leases = listed["leases"].as_array().expect("leases");
    assert!(
        leases.iter().any(|l| l["leaseId"] == id.as_str()),
        "{listed}"
    );
    assert!(
        !listed.to_string().contains(password),
        "listings never carry passwords"
    );

    let reason = ["--reason", "leaked in CI", "--ticket", "INC-1"];
    let mut dry_run = vec!["lease", "revoke-mass", "--role", "app", "--dry-run"];
    dry_run.extend_from_slice(&reason);
    let preview = leasehold_json(&app, &dry_run, None).await;
    assert_eq!(preview["matched"], 1, "{preview}");
    assert!(
        target.user_exists(&username).await,
        "a dry run changes nothing"
    );

    let (ok, out, err) = leasehold(&app, &["lease", "revoke", &id], None).await;
    assert!(ok, "lease revoke: {out} {err}");
    assert!(
        target.login(&username, password).await.is_err(),
        "revoked means gone"
    );

    // Without --yes a mass revocation asks on a terminal; from a script it refuses, revoking
    // nothing.
    let second = leasehold_json(&app, &["lease", "issue", "--role", "app"], None).await;
    let second_user = second["username"].as_str().expect("username").to_owned();
    let mut mass = vec!["lease", "revoke-mass", "--role", "app"];
    mass.extend_from_slice(&reason);
    let (ok, _, err) = leasehold(&app, &mass, Some("yes\n")).await;
    assert!(!ok && err.contains("pass --yes"), "{err}");
    assert!(target.user_exists(&second_user).await);
    mass.extend_from_slice(&["--yes", "--wait"]);
    let job = leasehold_json(&app, &mass, None).await;
    assert_eq!(
        (job["state"].as_str(), job["revoked"].as_i64()),
        (Some("COMPLETED"), Some(1)),
        "{job}"
    );
    assert!(!target.user_exists(&second_user).await);
    let job_id = job["jobId"].as_str().expect("jobId");
    let (ok, _, err) = leasehold(&app, &["lease", "issue", "--role", "app"], None).await;
    assert!(
        !ok && err.contains(job_id),
        "the fence names its job: {err}"
    );
    let (ok, out, err) = leasehold(&app, &["lease", "lift-fence", job_id], None).await;
    assert!(ok, "lift-fence: {out} {err}");
    let third = leasehold_json(&app, &["lease", "issue", "--role", "app"], None).await;
    let third_id = third["leaseId"].as_str().expect("leaseId");

    // A backend with a live lease is kept, unless its leases are revoked first.
    let (ok, _, err) = leasehold(&app, &["backend", "delete", "db"], None).await;
    assert!(
        !ok && err.contains(third_id),
        "409 names the live lease: {err}"
    );
    let (ok, out, err) =
        leasehold(&app, &["backend", "delete", "db", "--revoke-leases"], None).await;
    assert!(ok, "backend delete --revoke-leases: {out} {err}");
    assert!(
        !target
            .user_exists(third["username"].as_str().expect("username"))
            .await
    );
    target.cleanup().await;
    app.cleanup().await;
}
