-- Rotation: a policy per secret (windows, cron schedule, deadline, target) and the runs that carry
-- one rotation through its nine steps. A run's due work (`next_due_at`) is claimed by one replica
-- at a time; a claim that outlives its replica expires (`claim_until`).

CREATE TABLE rotation_policies (
    secret_id         UUID PRIMARY KEY REFERENCES secrets (id),
    tenant            TEXT NOT NULL,
    -- After promotion: both versions work downstream this long, then the old one is retired.
    overlap_seconds   BIGINT NOT NULL,
    -- After the overlap: the old version stays readable (rollback possible) this long, then it
    -- is disabled.
    rollback_seconds  BIGINT NOT NULL,
    -- After being disabled: destroyed this long later; NULL keeps disabled versions.
    retention_seconds BIGINT,
    schedule          TEXT,
    deadline_seconds  BIGINT,
    paused            BOOLEAN NOT NULL DEFAULT FALSE,
    -- JSON password policy for values the broker generates (scheduled rotations).
    generate          TEXT,
    -- The static database role whose user receives each new value.
    static_role       TEXT,
    -- Or a webhook told of each step (it reads the new version itself, with its own token).
    webhook           TEXT,
    next_run_at       TIMESTAMPTZ,
    deadline_at       TIMESTAMPTZ,
    last_rotated_at   TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX rotation_policies_due ON rotation_policies (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX rotation_policies_deadline ON rotation_policies (tenant, deadline_at) WHERE deadline_at IS NOT NULL;

CREATE TABLE rotation_runs (
    id              UUID PRIMARY KEY,
    tenant          TEXT NOT NULL,
    secret_id       UUID NOT NULL REFERENCES secrets (id),
    trigger_kind    TEXT NOT NULL CHECK (trigger_kind IN ('manual', 'schedule')),
    state           TEXT NOT NULL CHECK (state IN ('RUNNING', 'COMPLETED', 'FAILED', 'ROLLED_BACK')),
    step            TEXT NOT NULL,
    from_version    BIGINT,
    to_version      BIGINT,
    error           TEXT,
    overlap_ends_at TIMESTAMPTZ,
    disable_at      TIMESTAMPTZ,
    destroy_at      TIMESTAMPTZ,
    next_due_at     TIMESTAMPTZ,
    claimed_by      TEXT,
    claim_until     TIMESTAMPTZ,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);

CREATE INDEX rotation_runs_due ON rotation_runs (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX rotation_runs_secret ON rotation_runs (secret_id, created_at);
CREATE INDEX rotation_runs_tenant ON rotation_runs (tenant, created_at);

-- A static database role: existing users on a backend whose passwords the broker rotates. Its
-- credentials are the versions of the secret `<environment>/static-roles/<name>`.
CREATE TABLE static_roles (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    backend     TEXT NOT NULL,
    environment TEXT NOT NULL,
    -- JSON array of one user (its password rotates) or two (used alternately).
    usernames   TEXT NOT NULL,
    secret_id   UUID NOT NULL REFERENCES secrets (id),
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, backend) REFERENCES backends (tenant, name)
);
