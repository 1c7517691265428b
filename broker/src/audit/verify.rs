//! Verifying the hash chain: every event's `prev_hash` is its predecessor's hash, its hash
//! covers its sequence number and canonical content, sequence numbers have no gaps, and the last
//! event matches the head. Editing, deleting, inserting or reordering rows breaks one of these.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Store, StoreError, chain_hash};

const PAGE: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub ok: bool,
    pub events: i64,
    /// The first sequence number where the chain breaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Walks the whole chain.
///
/// # Errors
/// Storage errors.
pub async fn verify_chain(store: &Store) -> Result<VerifyReport, StoreError> {
    let mut prev = vec![0u8; 32];
    let mut expected_seq = 1i64;
    let mut after = 0i64;
    let broken = |seq: i64, reason: &str, events: i64| VerifyReport {
        ok: false,
        events,
        broken_at: Some(seq),
        reason: Some(reason.to_owned()),
    };
    loop {
        let rows = store.audit_chain_page(after, PAGE).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            if row.seq != expected_seq {
                return Ok(broken(
                    expected_seq,
                    "an event is missing or out of order",
                    expected_seq - 1,
                ));
            }
            if row.prev_hash != prev {
                return Ok(broken(
                    row.seq,
                    "the event does not follow its predecessor",
                    row.seq - 1,
                ));
            }
            if chain_hash(&prev, &row.event(), row.seq) != row.hash {
                return Ok(broken(
                    row.seq,
                    "the event's content does not match its hash",
                    row.seq - 1,
                ));
            }
            prev = row.hash.clone();
            expected_seq += 1;
            after = row.seq;
        }
    }
    let (head_seq, head_hash) = store.audit_head().await?;
    let events = expected_seq - 1;
    if head_seq != events || head_hash != prev {
        return Ok(broken(
            events + 1,
            "events after the last one were deleted (the head is further along)",
            events,
        ));
    }
    Ok(VerifyReport {
        ok: true,
        events,
        broken_at: None,
        reason: None,
    })
}
