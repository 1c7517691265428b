-- Kubernetes workload login: auth roles binding service accounts of one cluster to a principal.
CREATE TABLE kubernetes_roles (
    name       TEXT PRIMARY KEY NOT NULL,
    tenant     TEXT NOT NULL,
    document   TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
