-- Lease scheduler: one due time per live lease (expiry, intent grace, or next retry), claims that
-- expire so a dead replica's work is picked up, the retry budget, and the IRREVOCABLE state.

ALTER TABLE leases ADD COLUMN due_at TIMESTAMPTZ;
ALTER TABLE leases ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN failing_since TIMESTAMPTZ;
ALTER TABLE leases ADD COLUMN claimed_by TEXT;
ALTER TABLE leases ADD COLUMN claim_expires_at TIMESTAMPTZ;

-- Existing intents are due after the default grace; active leases at their expiry.
UPDATE leases SET due_at = CASE WHEN state = 'PENDING' THEN updated_at + INTERVAL '120 seconds'
                                ELSE expires_at END
 WHERE state IN ('PENDING', 'ACTIVE');

ALTER TABLE leases DROP CONSTRAINT leases_state_check;
ALTER TABLE leases ADD CONSTRAINT leases_state_check
    CHECK (state IN ('PENDING', 'ACTIVE', 'REVOKED', 'IRREVOCABLE'));

DROP INDEX leases_state_expiry;
DROP INDEX leases_state_updated;
-- The scheduler's only scan: live leases by due time.
CREATE INDEX leases_due ON leases (due_at) WHERE state IN ('PENDING', 'ACTIVE');
CREATE INDEX leases_state ON leases (tenant, state);
