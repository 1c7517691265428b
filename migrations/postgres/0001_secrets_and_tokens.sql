-- Static secrets (immutable, envelope-encrypted versions; aliases) and hashed bearer tokens.
CREATE TABLE secrets (
    id                UUID PRIMARY KEY,
    tenant            TEXT NOT NULL,
    environment       TEXT NOT NULL,
    path              TEXT NOT NULL,
    owner_team        TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    rotation_strategy TEXT NOT NULL,
    latest_version    BIGINT NOT NULL DEFAULT 0,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant, environment, path)
);

CREATE TABLE secret_versions (
    secret_id         UUID NOT NULL REFERENCES secrets (id),
    version           BIGINT NOT NULL,
    status            TEXT NOT NULL,
    ciphertext        BYTEA,
    wrapped_key       BYTEA,
    kms_key_id        TEXT,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ,
    status_changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (secret_id, version),
    -- DESTROYED means shredded: no ciphertext and no wrapped key, and nothing else is.
    CHECK ((status = 'DESTROYED') = (ciphertext IS NULL AND wrapped_key IS NULL AND kms_key_id IS NULL))
);

CREATE TABLE secret_aliases (
    secret_id  UUID NOT NULL REFERENCES secrets (id),
    alias      TEXT NOT NULL CHECK (alias IN ('current', 'previous', 'next')),
    version    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (secret_id, alias),
    FOREIGN KEY (secret_id, version) REFERENCES secret_versions (secret_id, version)
);

CREATE TABLE tokens (
    id         UUID PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    is_admin   BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
