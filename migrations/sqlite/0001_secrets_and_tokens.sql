-- Static secrets (immutable, envelope-encrypted versions; aliases) and hashed bearer tokens.
CREATE TABLE secrets (
    id                BLOB PRIMARY KEY NOT NULL,
    tenant            TEXT NOT NULL,
    environment       TEXT NOT NULL,
    path              TEXT NOT NULL,
    owner_team        TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    rotation_strategy TEXT NOT NULL,
    latest_version    INTEGER NOT NULL DEFAULT 0,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (tenant, environment, path)
);

CREATE TABLE secret_versions (
    secret_id         BLOB NOT NULL REFERENCES secrets (id),
    version           INTEGER NOT NULL,
    status            TEXT NOT NULL,
    ciphertext        BLOB,
    wrapped_key       BLOB,
    kms_key_id        TEXT,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    expires_at        TEXT,
    status_changed_at TEXT NOT NULL,
    PRIMARY KEY (secret_id, version),
    -- DESTROYED means shredded: no ciphertext and no wrapped key, and nothing else is.
    CHECK ((status = 'DESTROYED') = (ciphertext IS NULL AND wrapped_key IS NULL AND kms_key_id IS NULL))
);

CREATE TABLE secret_aliases (
    secret_id  BLOB NOT NULL REFERENCES secrets (id),
    alias      TEXT NOT NULL CHECK (alias IN ('current', 'previous', 'next')),
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (secret_id, alias),
    FOREIGN KEY (secret_id, version) REFERENCES secret_versions (secret_id, version)
);

CREATE TABLE tokens (
    id         BLOB PRIMARY KEY NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    is_admin   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
