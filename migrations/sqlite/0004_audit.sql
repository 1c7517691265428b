-- The audit trail: append-only events in one hash chain. `audit_head` holds the chain's last
-- sequence number and hash; writers lock it, so events from every replica form one chain.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY NOT NULL,
    event_type  TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    environment TEXT,
    path        TEXT,
    version     INTEGER,
    principal   TEXT NOT NULL,
    source_ip   TEXT,
    request_id  TEXT,
    decision    TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX audit_events_by_tenant_time ON audit_events (tenant, created_at);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));
