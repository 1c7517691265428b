-- Scheduler claims on PostgreSQL: one row per claimed batch, naming its leases, in place of the
-- claim columns (`claimed_by`, `claim_expires_at`) written on every claimed lease. Writing those
-- cost a new version of each claimed row; a batch of 500 now costs one row. Replicas take the
-- table's lock to claim, so no two claim the same lease; a claim past `expires_at` belongs to a
-- replica that died mid-batch and is deleted by the next claimer. The claim columns stay for
-- SQLite and are cleared, as before, when an outcome is recorded.
CREATE TABLE lease_claims (
    id         UUID PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    lease_ids  UUID[] NOT NULL
);
