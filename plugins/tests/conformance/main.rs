//! The conformance suite: every plugin against its real server, no mocks.
//!
//! PostgreSQL runs in a private cluster per test (scram-sha-256, `log_statement = all`); MariaDB
//! is the machine's shared server, isolated by a random prefix per test.

mod scratch_postgres;
mod targets;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use leasehold_plugins::password::PasswordPolicy;
use leasehold_plugins::username::{DEFAULT_TEMPLATE, UsernameInputs, UsernameTemplate};
use leasehold_plugins::{
    CreateUser, CredentialBackend, ErrorKind, PluginError, RenewUser, RevokeUser,
};
use secrecy::{ExposeSecret, SecretString};

use targets::{MariadbTarget, PostgresTarget, Target};

fn new_username(target: &dyn Target) -> String {
    UsernameTemplate::parse(DEFAULT_TEMPLATE)
        .expect("valid")
        .generate(
            UsernameInputs {
                role: target.prefix(),
                principal: "service:test:conformance",
                unix_time: Utc::now().timestamp(),
            },
            target.kind().max_username_len(),
        )
}

fn creation(target: &dyn Target, username: &str, password: &SecretString) -> CreateUser {
    CreateUser {
        username: username.to_owned(),
        password: password.clone(),
        expires_at: Utc::now() + chrono::Duration::hours(1),
        statements: target.kind().default_statements(&[target.group()]).creation,
    }
}

/// Creates a user in one go: prepared, then committed at once (the broker records its lease
/// intent in between).
async fn create(backend: &dyn CredentialBackend, request: &CreateUser) -> Result<(), PluginError> {
    backend.prepare(request).await?.commit().await
}

/// Creates a new user of the target's default statements with a generated password.
async fn new_user(
    target: &dyn Target,
    backend: &dyn CredentialBackend,
) -> Result<(String, SecretString), PluginError> {
    let username = new_username(target);
    let password = PasswordPolicy::default().generate();
    create(backend, &creation(target, &username, &password)).await?;
    Ok((username, password))
}

fn revocation(target: &dyn Target, username: &str) -> RevokeUser {
    RevokeUser {
        username: username.to_owned(),
        statements: target.kind().default_statements(&[]).revocation,
    }
}

async fn credential_lifecycle(target: &dyn Target) {
    let backend = target.backend(2);
    backend.verify().await.expect("the admin login works");
    let username = new_username(target);
    let password = PasswordPolicy::default().generate();
    let secret = password.expose_secret();
    create(&*backend, &creation(target, &username, &password))
        .await
        .expect("create");

    // It logs in and can do exactly what its group role allows.
    let granted = format!("SELECT id FROM {}", target.granted_table());
    target
        .run_as(&username, secret, &granted)
        .await
        .expect("read the granted table");
    let other = format!("SELECT id FROM {}", target.other_table());
    assert!(
        target.run_as(&username, secret, &other).await.is_err(),
        "reads another table"
    );
    let write = format!("INSERT INTO {} VALUES (2)", target.granted_table());
    assert!(
        target.run_as(&username, secret, &write).await.is_err(),
        "writes"
    );
    assert!(
        target
            .run_as(&username, "wrong-password-123", &granted)
            .await
            .is_err(),
        "a wrong password logs in"
    );

    // Revoked: gone, cannot log in; revoking again is fine.
    let results = backend.revoke(&[revocation(target, &username)]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(!target.user_exists(&username).await);
    assert!(target.run_as(&username, secret, &granted).await.is_err());
    let again = backend.revoke(&[revocation(target, &username)]).await;
    assert!(again.iter().all(Result::is_ok), "double revoke: {again:?}");
    target.cleanup().await;
}

#[tokio::test]
async fn postgresql_credential_lifecycle() {
    credential_lifecycle(&PostgresTarget::start().await).await;
}

#[tokio::test]
async fn mariadb_credential_lifecycle() {
    credential_lifecycle(&MariadbTarget::start().await).await;
}

/// What `prepare` does leaves no user behind: the user exists only once committed, and a
/// preparation dropped instead (the broker's intent failed, or the process died) never appears.
async fn users_exist_only_once_committed(target: &dyn Target) {
    let backend = target.backend(1);
    let username = new_username(target);
    let abandoned = backend
        .prepare(&creation(
            target,
            &username,
            &PasswordPolicy::default().generate(),
        ))
        .await
        .expect("prepare");
    assert!(
        !target.user_exists(&username).await,
        "the user exists before its commit"
    );
    drop(abandoned);

    // The same name again, on the pool's only connection slot: the abandoned creation was
    // rolled back and its connection was not handed out mid-transaction.
    let password = PasswordPolicy::default().generate();
    let prepared = backend
        .prepare(&creation(target, &username, &password))
        .await
        .expect("prepare the same name again");
    assert!(!target.user_exists(&username).await);
    prepared.commit().await.expect("commit");
    assert!(target.user_exists(&username).await);
    target
        .run_as(&username, password.expose_secret(), "SELECT 1")
        .await
        .expect("the committed user logs in");
    let results = backend.revoke(&[revocation(target, &username)]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    target.cleanup().await;
}

#[tokio::test]
async fn postgresql_users_exist_only_once_committed() {
    users_exist_only_once_committed(&PostgresTarget::start().await).await;
}

#[tokio::test]
async fn mariadb_users_exist_only_once_committed() {
    users_exist_only_once_committed(&MariadbTarget::start().await).await;
}

async fn batch_revocation_isolates_failures(target: &dyn Target) {
    let backend = target.backend(4);
    let mut users = Vec::new();
    for _ in 0..120 {
        let username = new_username(target);
        let password = PasswordPolicy::default().generate();
        create(&*backend, &creation(target, &username, &password))
            .await
            .expect("create");
        users.push(revocation(target, &username));
    }
    // A user that never existed, in the first chunk (whose users share the default statements,
    // so it is tried in list form first), and one whose statement the target rejects.
    users.insert(
        10,
        revocation(target, &format!("{}_never_created", target.prefix())),
    );
    let mut broken = revocation(target, &new_username(target));
    broken.statements = vec!["DROP TABLE {{name}}".into()];
    users.push(broken);
    let results = backend.revoke(&users).await;
    assert_eq!(results.len(), users.len());
    let failed: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "only the broken statement fails: {failed:?}"
    );
    assert_eq!(failed[0].0, users.len() - 1);
    for user in &users[..121] {
        assert!(!target.user_exists(&user.username).await);
    }
    target.cleanup().await;
}

#[tokio::test]
async fn postgresql_batch_revocation_isolates_failures() {
    batch_revocation_isolates_failures(&PostgresTarget::start().await).await;
}

#[tokio::test]
async fn mariadb_batch_revocation_isolates_failures() {
    batch_revocation_isolates_failures(&MariadbTarget::start().await).await;
}

/// A batch of users of one role is revoked with one statement per template (`DROP OWNED BY a,
/// b, …`); the objects they own still pass to the admin, as user by user.
#[tokio::test]
async fn postgresql_batch_revocation_reassigns_owned_objects() {
    let target = PostgresTarget::start().await;
    let p = target.prefix().to_owned();
    target
        .superuser(&format!(
            "CREATE SCHEMA {p}_work; GRANT USAGE, CREATE ON SCHEMA {p}_work TO {p}_readers"
        ))
        .await;
    let backend = target.backend(2);
    let mut users = Vec::new();
    for i in 0..3 {
        let (username, password) = new_user(&target, &*backend).await.expect("create");
        target
            .run_as(
                &username,
                password.expose_secret(),
                &format!("CREATE TABLE {p}_work.t{i} (id int)"),
            )
            .await
            .expect("the user creates a table");
        users.push(revocation(&target, &username));
    }
    let results = backend.revoke(&users).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for user in &users {
        assert!(!target.user_exists(&user.username).await);
    }
    let owned_by_admin = target
        .superuser_query_i64(&format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{p}_work' AND tableowner = '{p}_admin'"
        ))
        .await;
    assert_eq!(owned_by_admin, 3, "the users' tables pass to the admin");
}

async fn hostile_names_cannot_inject(target: &dyn Target) {
    let backend = target.backend(2);
    let pwned = format!("{}_pwned", target.prefix());
    let hostile = [
        format!("{}_a\"; CREATE ROLE {pwned}; --", target.prefix()),
        format!("{}_b'; CREATE USER {pwned}; --", target.prefix()),
        format!("{}_c`; CREATE USER {pwned}; --", target.prefix()),
    ];
    for name in &hostile {
        let password = PasswordPolicy::default().generate();
        let mut request = creation(target, name, &password);
        request.statements = target.kind().default_statements(&[]).creation;
        // Either the name is taken literally or refused; never executed.
        if create(&*backend, &request).await.is_ok() {
            assert!(
                target.user_exists(name).await,
                "{name} was created under another name"
            );
            let results = backend.revoke(&[revocation(target, name)]).await;
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
        assert!(!target.user_exists(&pwned).await, "{name} injected SQL");
    }
    // A hostile group role name is quoted as one identifier.
    let username = new_username(target);
    let password = PasswordPolicy::default().generate();
    let mut request = creation(target, &username, &password);
    request.statements = target
        .kind()
        .default_statements(&[format!("x\"`; CREATE ROLE {pwned}; --")])
        .creation;
    let error = create(&*backend, &request)
        .await
        .expect_err("no such group role");
    assert_eq!(error.kind, ErrorKind::Rejected, "{error}");
    assert!(!target.user_exists(&pwned).await);
    let _ = backend.revoke(&[revocation(target, &username)]).await;
    target.cleanup().await;
}

#[tokio::test]
async fn postgresql_hostile_names_cannot_inject() {
    hostile_names_cannot_inject(&PostgresTarget::start().await).await;
}

#[tokio::test]
async fn mariadb_hostile_names_cannot_inject() {
    hostile_names_cannot_inject(&MariadbTarget::start().await).await;
}

async fn pool_never_exceeds_its_limit(target: &dyn Target) {
    const LIMIT: u32 = 4;
    let backend: Arc<dyn CredentialBackend> = Arc::from(target.backend(LIMIT));
    let peak = Arc::new(AtomicI64::new(0));
    let issuing = async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let backend = Arc::clone(&backend);
                let username = new_username(target);
                let request = creation(target, &username, &PasswordPolicy::default().generate());
                tokio::spawn(
                    async move { create(&*backend, &request).await.map(|()| request.username) },
                )
            })
            .collect();
        let mut created = Vec::new();
        for task in tasks {
            created.push(task.await.expect("task").expect("create"));
        }
        created
    };
    let sampling = async {
        loop {
            let now = target.admin_connections().await;
            peak.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let created = tokio::select! {
        created = issuing => created,
        () = sampling => unreachable!(),
    };
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak >= 1, "the sampler never saw the pool's connections");
    assert!(
        peak <= i64::from(LIMIT),
        "{peak} connections open, limit {LIMIT}"
    );
    let revocations: Vec<_> = created.iter().map(|u| revocation(target, u)).collect();
    assert!(backend.revoke(&revocations).await.iter().all(Result::is_ok));
    target.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_pool_never_exceeds_its_limit() {
    pool_never_exceeds_its_limit(&PostgresTarget::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_pool_never_exceeds_its_limit() {
    pool_never_exceeds_its_limit(&MariadbTarget::start().await).await;
}

async fn passwords_rotate(target: &dyn Target, admin: &str) {
    let backend = target.backend(2);
    let username = new_username(target);
    let first = PasswordPolicy::default().generate();
    create(&*backend, &creation(target, &username, &first))
        .await
        .expect("create");
    let second = PasswordPolicy::default().generate();
    backend
        .set_password(&username, &second)
        .await
        .expect("set password");
    let granted = format!("SELECT id FROM {}", target.granted_table());
    target
        .run_as(&username, second.expose_secret(), &granted)
        .await
        .expect("new password");
    assert!(
        target
            .run_as(&username, first.expose_secret(), &granted)
            .await
            .is_err()
    );
    // `check_login` is what a rotation's test step relies on: it must tell the two apart.
    backend
        .check_login(&username, &second)
        .await
        .expect("the new password logs in");
    let refused = backend
        .check_login(&username, &first)
        .await
        .expect_err("the old password is refused");
    assert!(!refused.message.contains(first.expose_secret()));

    // The admin's own password: afterwards only the new one works, and the backend uses it.
    let new_admin = PasswordPolicy::default().generate();
    backend
        .rotate_admin_password(&new_admin)
        .await
        .expect("rotate admin");
    backend
        .verify()
        .await
        .expect("the backend logs in with its new password");
    assert!(
        target
            .run_as(admin, targets::ADMIN_PASSWORD, "SELECT 1")
            .await
            .is_err()
    );
    target
        .run_as(admin, new_admin.expose_secret(), "SELECT 1")
        .await
        .expect("new admin password");
    assert!(
        backend
            .revoke(&[revocation(target, &username)])
            .await
            .iter()
            .all(Result::is_ok)
    );
    target.cleanup().await;
}

#[tokio::test]
async fn postgresql_passwords_rotate() {
    let target = PostgresTarget::start().await;
    let admin = format!("{}_admin", target.prefix());
    passwords_rotate(&target, &admin).await;
}

#[tokio::test]
async fn mariadb_passwords_rotate() {
    let target = MariadbTarget::start().await;
    let admin = format!("{}_adm", target.prefix());
    passwords_rotate(&target, &admin).await;
}

#[tokio::test]
async fn postgresql_renewal_moves_the_expiry() {
    let target = PostgresTarget::start().await;
    let backend = target.backend(1);
    let username = new_username(&target);
    let password = PasswordPolicy::default().generate();
    let mut request = creation(&target, &username, &password);
    request.expires_at = Utc::now() + chrono::Duration::seconds(2);
    create(&*backend, &request).await.expect("create");
    let renewed_until = Utc::now() + chrono::Duration::hours(2);
    backend
        .renew(&RenewUser {
            username: username.clone(),
            expires_at: renewed_until,
            statements: target.kind().default_statements(&[]).renewal,
        })
        .await
        .expect("renew");
    let valid_until = target
        .superuser_query_i64(&format!(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = '{username}'"
        ))
        .await;
    assert_eq!(valid_until, renewed_until.timestamp());
    // Past the original expiry the credential still works, because the renewal reached the target.
    tokio::time::sleep(Duration::from_secs(3)).await;
    target
        .run_as(&username, password.expose_secret(), "SELECT 1")
        .await
        .expect("still valid after the original expiry");
}

#[tokio::test]
async fn postgresql_credentials_die_at_valid_until_without_the_broker() {
    let target = PostgresTarget::start().await;
    let backend = target.backend(1);
    let username = new_username(&target);
    let password = PasswordPolicy::default().generate();
    let mut request = creation(&target, &username, &password);
    request.expires_at = Utc::now() + chrono::Duration::seconds(2);
    create(&*backend, &request).await.expect("create");
    target
        .run_as(&username, password.expose_secret(), "SELECT 1")
        .await
        .expect("valid now");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let error = target
        .run_as(&username, password.expose_secret(), "SELECT 1")
        .await
        .expect_err("expired");
    assert!(error.contains("password authentication failed"), "{error}");
}

#[tokio::test]
async fn postgresql_passwords_never_reach_the_server_log() {
    let target = PostgresTarget::start().await;
    let backend = target.backend(2);
    let username = new_username(&target);
    let password = PasswordPolicy::new(40, true).expect("policy").generate();
    create(&*backend, &creation(&target, &username, &password))
        .await
        .expect("create");
    backend
        .set_password(&username, &password)
        .await
        .expect("set password");
    target
        .run_as(&username, password.expose_secret(), "SELECT 1")
        .await
        .expect("logs in with password authentication (scram-sha-256)");
    let log = target.cluster.log();
    assert!(
        log.contains(&format!("CREATE ROLE \"{username}\"")),
        "log_statement is on"
    );
    assert!(
        log.contains("SCRAM-SHA-256$4096:"),
        "the verifier is what was sent"
    );
    assert!(
        !log.contains(password.expose_secret()),
        "the password reached the server log"
    );
}

/// A backend may send verifiers of fewer PBKDF2 rounds than the default (its
/// `scramIterations`): PostgreSQL keeps the count in the verifier, and both tokio-postgres and
/// libpq (`psql`) log in with it, for created users and for passwords set later.
#[tokio::test]
async fn postgresql_verifiers_carry_the_backends_iteration_count() {
    let target = PostgresTarget::start().await;
    let backend = target.backend_hashing(2, 16);
    let (username, password) = new_user(&target, &*backend).await.expect("create");
    target
        .run_as(&username, password.expose_secret(), "SELECT 1")
        .await
        .expect("tokio-postgres logs in with a 16-round verifier");
    target
        .cluster
        .psql_login(&username, password.expose_secret())
        .expect("libpq logs in with a 16-round verifier");
    let wrong = target.cluster.psql_login(&username, "not-the-password");
    assert!(
        wrong.is_err_and(|e| e.contains("password authentication failed")),
        "a wrong password is refused"
    );
    let replaced = PasswordPolicy::default().generate();
    backend
        .set_password(&username, &replaced)
        .await
        .expect("set password");
    target
        .cluster
        .psql_login(&username, replaced.expose_secret())
        .expect("the new password logs in");
    let log = target.cluster.log();
    assert!(
        log.contains("SCRAM-SHA-256$16:"),
        "16-round verifiers were sent"
    );
    assert!(
        !log.contains("SCRAM-SHA-256$4096:"),
        "no default-round verifier was sent"
    );
}

/// 5,000 live leases on one group role: membership does not grow any table's ACL, which per-lease
/// `GRANT … ON table` would until PostgreSQL refuses at roughly 2,400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_holds_five_thousand_live_leases() {
    const LEASES: usize = 5_000;
    let target = PostgresTarget::start().await;
    let backend: Arc<dyn CredentialBackend> = Arc::from(target.backend(8));
    let mut tasks = tokio::task::JoinSet::new();
    let mut last = None;
    for i in 0..LEASES {
        let backend = Arc::clone(&backend);
        let username = new_username(&target);
        let password = PasswordPolicy::default().generate();
        let request = creation(&target, &username, &password);
        if i == LEASES - 1 {
            last = Some((username.clone(), password));
        }
        tasks.spawn(async move { create(&*backend, &request).await.map(|()| username) });
        while tasks.len() >= 16 {
            tasks
                .join_next()
                .await
                .expect("task")
                .expect("join")
                .expect("create");
        }
    }
    let mut created = Vec::new();
    while let Some(result) = tasks.join_next().await {
        created.push(result.expect("join").expect("create"));
    }
    let members = target
        .superuser_query_i64(&format!(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
             WHERE g.rolname = '{}'",
            target.group()
        ))
        .await;
    assert!(members >= LEASES as i64, "{members} members");
    let (username, password) = last.expect("last lease");
    target
        .run_as(
            &username,
            password.expose_secret(),
            &format!("SELECT id FROM {}", target.granted_table()),
        )
        .await
        .expect("the 5,000th lease reads through its group role");
}

#[tokio::test]
async fn unreachable_targets_are_retryable_errors() {
    let target = MariadbTarget::start().await;
    let mut connection = target.connection("nobody", "nothing", 1);
    connection.port = 1;
    let backend = leasehold_plugins::open(target.kind(), connection).expect("plugin");
    let error = backend
        .verify()
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_retryable(), "{error}");
    let wrong_password = leasehold_plugins::open(
        target.kind(),
        target.connection(&format!("{}_adm", target.prefix()), "wrong-password", 1),
    )
    .expect("plugin");
    let error = wrong_password.verify().await.expect_err("wrong password");
    assert!(error.is_retryable(), "{error}");
    assert!(!error.message.contains("wrong-password"));
    target.cleanup().await;
}

/// `verify-full` over rustls: the credential is created through TLS when the server's certificate
/// chains to the configured root, and the connection is refused when it does not.
#[tokio::test]
async fn postgresql_verify_full_checks_the_server_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cert_pem = cert.cert.pem();
    let target = PostgresTarget::on(scratch_postgres::ScratchPostgres::start_with_tls(
        &cert_pem,
        &cert.signing_key.serialize_pem(),
    ))
    .await;
    let admin = format!("{}_admin", target.prefix());
    let mut connection = target.connection(&admin, targets::ADMIN_PASSWORD, 2);
    connection.ssl_mode = leasehold_plugins::SslMode::VerifyFull;
    connection.root_certificate = Some(cert_pem);
    let backend = leasehold_plugins::open(target.kind(), connection.clone()).expect("plugin");
    backend
        .verify()
        .await
        .expect("TLS with the configured root");
    let (username, _) = new_user(&target, &*backend).await.expect("create over TLS");
    assert!(target.user_exists(&username).await);
    let encrypted = target
        .superuser_query_i64(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.usename = '{admin}'"
        ))
        .await;
    assert!(encrypted >= 1, "the backend's connection is not encrypted");

    // Without the root, the public web roots do not vouch for a self-signed certificate.
    connection.root_certificate = None;
    let untrusting = leasehold_plugins::open(target.kind(), connection).expect("plugin");
    let error = untrusting
        .verify()
        .await
        .expect_err("an untrusted certificate");
    assert!(error.is_retryable(), "{error}");
}
