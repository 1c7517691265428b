-- The audit trail: append-only events in one hash chain. `audit_head` holds the chain's last
-- sequence number and hash; writers lock it, so events from every replica form one chain.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY NOT NULL,
    event_type  TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    environment TEXT,
    path        TEXT,
    version     BIGINT,
    principal   TEXT NOT NULL,
    source_ip   TEXT,
    request_id  TEXT,
    decision    TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX audit_events_by_tenant_time ON audit_events (tenant, created_at);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
