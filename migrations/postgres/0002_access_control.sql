-- Access control: policies, group membership, token attributes, break-glass grants.
ALTER TABLE tokens ADD COLUMN mfa BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE tokens ADD COLUMN source_cluster TEXT;
ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

CREATE TABLE policies (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    document   TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE group_members (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    member     TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, member)
);

CREATE TABLE break_glass_grants (
    id         UUID PRIMARY KEY,
    tenant     TEXT NOT NULL,
    principal  TEXT NOT NULL,
    resources  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    ticket_url TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ
);
CREATE INDEX break_glass_grants_by_principal ON break_glass_grants (tenant, principal);
