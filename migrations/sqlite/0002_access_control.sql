-- Access control: policies, group membership, token attributes, break-glass grants.
ALTER TABLE tokens ADD COLUMN mfa INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN source_cluster TEXT;
ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

CREATE TABLE policies (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    document   TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE group_members (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    member     TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, member)
);

CREATE TABLE break_glass_grants (
    id         BLOB PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    resources  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    ticket_url TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at   TEXT
);
CREATE INDEX break_glass_grants_by_principal ON break_glass_grants (tenant, principal);
