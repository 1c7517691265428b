//! What the store holds: no plaintext anywhere, ciphertext bound to its row, and a rotated key
//! ring that still opens old versions.

use leasehold_broker::crypto::LocalKms;
use reqwest::StatusCode;

use crate::helpers::{TestApp, contains, raw_dump};
use crate::on_both_stores;

const CANARY: &str = "CANARY-plaintext-7f3e9a1c-do-not-store";

on_both_stores!(raw_dump_holds_no_plaintext, |app: TestApp| async move {
    let id = app.create_secret("prod", "canary/value").await;
    app.put_version(&id, CANARY, "CURRENT").await;
    app.put_version(&id, &format!("{CANARY}-pending"), "PENDING")
        .await;
    let (status, read) = app.get("/v1/secrets/prod/canary/value").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["value"], CANARY);
    let dump = raw_dump(&app).await;
    assert!(dump.len() > 1000, "the dump is not empty");
    assert!(!contains(&dump, CANARY), "plaintext found in the store");
    assert!(
        !contains(&dump, &app.token),
        "a token's text found in the store"
    );
    app.cleanup().await;
});

on_both_stores!(
    ciphertext_copied_to_another_row_fails_to_open,
    |app: TestApp| async move {
        let a = app.create_secret("prod", "row/a").await;
        let b_id = app.create_secret("prod", "row/b").await;
        app.put_version(&a, "value-of-a", "CURRENT").await;
        app.put_version(&b_id, "value-of-b", "CURRENT").await;

        app.copy_sealed_value("row/a", "row/b").await;

        let (status, body) = app.get("/v1/secrets/prod/row/b").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "integrity_error");
        assert!(!body.to_string().contains("value-of-a"));
        let (status, read) = app.get("/v1/secrets/prod/row/a").await;
        assert_eq!(status, StatusCode::OK, "the original row still opens");
        assert_eq!(read["value"], "value-of-a");
        app.cleanup().await;
    }
);

on_both_stores!(
    key_ring_rotation_keeps_old_versions_readable,
    |app: TestApp| async move {
        let id = app.create_secret("prod", "rotate/key").await;
        app.put_version(&id, "sealed-under-first-key", "CURRENT")
            .await;
        let key_file = app.db.key_file();
        let mut app = app;
        app.stop().await;
        let new_key = LocalKms::rotate_file(&key_file).expect("rotate key ring");
        let app = app.restart().await;

        app.put_version(&id, "sealed-under-second-key", "CURRENT")
            .await;
        let (_, old) = app.get("/v1/secrets/prod/rotate/key?version=1").await;
        assert_eq!(old["value"], "sealed-under-first-key");
        let (_, new) = app.get("/v1/secrets/prod/rotate/key?version=2").await;
        assert_eq!(new["value"], "sealed-under-second-key");

        let key_ids: Vec<String> = match &app.store {
            leasehold_broker::store::Store::Sqlite(p) => {
                sqlx::query_scalar("SELECT kms_key_id FROM secret_versions ORDER BY version")
                    .fetch_all(p)
                    .await
            }
            leasehold_broker::store::Store::Postgres(p) => {
                sqlx::query_scalar("SELECT kms_key_id FROM secret_versions ORDER BY version")
                    .fetch_all(p)
                    .await
            }
        }
        .expect("key ids");
        assert_eq!(key_ids, ["local-1".to_owned(), new_key]);
        app.cleanup().await;
    }
);
