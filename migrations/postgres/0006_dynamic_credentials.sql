-- Dynamic credentials: backends (plugin instances), roles (what a lease creates) and leases.

CREATE TABLE backends (
    tenant                       TEXT NOT NULL,
    name                         TEXT NOT NULL,
    plugin                       TEXT NOT NULL,
    -- JSON: host, port, database, username, sslMode, rootCertificate. Never the password.
    connection                   TEXT NOT NULL,
    max_open_connections         BIGINT NOT NULL,
    -- The admin password, envelope-encrypted; its AEAD binding carries `generation`.
    password_ciphertext          BYTEA NOT NULL,
    password_wrapped_key         BYTEA NOT NULL,
    password_kms_key_id          TEXT NOT NULL,
    -- A new admin password being rotated in (sealed for `generation + 1`), kept until the target
    -- has accepted it, so a crash mid-rotation never loses the only working password.
    pending_ciphertext           BYTEA,
    pending_wrapped_key          BYTEA,
    pending_kms_key_id           TEXT,
    -- Bumped by every change; replicas rebuild their plugin instance when it moves.
    generation                   BIGINT NOT NULL,
    created_by                   TEXT NOT NULL,
    created_at                   TIMESTAMPTZ NOT NULL,
    updated_at                   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE roles (
    tenant              TEXT NOT NULL,
    name                TEXT NOT NULL,
    backend             TEXT NOT NULL,
    environment         TEXT NOT NULL,
    -- JSON: statements, username template, group roles, password policy.
    definition          TEXT NOT NULL,
    default_ttl_seconds BIGINT NOT NULL,
    max_ttl_seconds     BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, backend) REFERENCES backends (tenant, name)
);

CREATE TABLE leases (
    id             UUID PRIMARY KEY,
    tenant         TEXT NOT NULL,
    environment    TEXT NOT NULL,
    role           TEXT NOT NULL,
    backend        TEXT NOT NULL,
    principal      TEXT NOT NULL,
    username       TEXT NOT NULL,
    -- PENDING: intent written, user may or may not exist; ACTIVE: handed out; REVOKED: user gone.
    state          TEXT NOT NULL CHECK (state IN ('PENDING', 'ACTIVE', 'REVOKED')),
    issued_at      TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    max_expires_at TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL,
    last_error     TEXT
);

CREATE UNIQUE INDEX leases_backend_username ON leases (tenant, backend, username);
CREATE INDEX leases_state_expiry ON leases (state, expires_at);
CREATE INDEX leases_state_updated ON leases (state, updated_at);
CREATE INDEX leases_tenant_role ON leases (tenant, role, state);
CREATE INDEX leases_tenant_principal ON leases (tenant, principal, state);
