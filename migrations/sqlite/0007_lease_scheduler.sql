-- Lease scheduler: one due time per live lease (expiry, intent grace, or next retry), claims that
-- expire so a dead replica's work is picked up, the retry budget, and the IRREVOCABLE state.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.

CREATE TABLE leases_new (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant           TEXT NOT NULL,
    environment      TEXT NOT NULL,
    role             TEXT NOT NULL,
    backend          TEXT NOT NULL,
    principal        TEXT NOT NULL,
    username         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('PENDING', 'ACTIVE', 'REVOKED', 'IRREVOCABLE')),
    issued_at        TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    max_expires_at   TEXT NOT NULL,
    revoked_at       TEXT,
    updated_at       TEXT NOT NULL,
    last_error       TEXT,
    due_at           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    failing_since    TEXT,
    claimed_by       TEXT,
    claim_expires_at TEXT
);

INSERT INTO leases_new (id, tenant, environment, role, backend, principal, username, state,
                        issued_at, expires_at, max_expires_at, revoked_at, updated_at, last_error,
                        due_at)
SELECT id, tenant, environment, role, backend, principal, username, state, issued_at, expires_at,
       max_expires_at, revoked_at, updated_at, last_error,
       CASE WHEN state = 'PENDING' THEN strftime('%Y-%m-%dT%H:%M:%f+00:00', updated_at, '+120 seconds')
            WHEN state = 'ACTIVE' THEN expires_at END
  FROM leases;

DROP TABLE leases;
ALTER TABLE leases_new RENAME TO leases;

CREATE UNIQUE INDEX leases_backend_username ON leases (tenant, backend, username);
CREATE INDEX leases_tenant_role ON leases (tenant, role, state);
CREATE INDEX leases_tenant_principal ON leases (tenant, principal, state);
CREATE INDEX leases_due ON leases (due_at) WHERE state IN ('PENDING', 'ACTIVE');
CREATE INDEX leases_state ON leases (tenant, state);
