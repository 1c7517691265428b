-- Mass revocation: a job is a row (it survives restarts and every replica works it); while its
-- fence holds, no lease matching its selector is issued or renewed.

CREATE TABLE revocation_jobs (
    id                UUID PRIMARY KEY,
    tenant            TEXT NOT NULL,
    -- JSON: the selector's fields (role, backend, principal, environment, issuedAfter,
    -- issuedBefore, leaseIdPrefix); the tenant is the column above.
    selector          TEXT NOT NULL,
    reason            TEXT NOT NULL,
    ticket            TEXT NOT NULL,
    requested_by      TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('RUNNING', 'COMPLETED', 'FAILED')),
    -- Live leases that matched when the job was accepted.
    total             BIGINT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    -- The fence holds until then; NULL once lifted.
    fence_until       TIMESTAMPTZ,
    -- Failed revocations already reported in an audit event.
    failures_reported BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX revocation_jobs_fences ON revocation_jobs (tenant, fence_until) WHERE fence_until IS NOT NULL;
CREATE INDEX revocation_jobs_running ON revocation_jobs (created_at) WHERE state = 'RUNNING';

-- The job that revoked a lease, or whose failed revocation the scheduler is retrying.
ALTER TABLE leases ADD COLUMN revocation_job UUID;
CREATE INDEX leases_revocation_job ON leases (revocation_job) WHERE revocation_job IS NOT NULL;
