#!/usr/bin/env python3
"""Replays a mass revocation job's SQLite statements without the broker's driver.

Usage: python3 docs/bench/job-batch.py [REVOKED]

Builds a store from migrations/sqlite in a temporary file, with 10,000 ACTIVE leases (ids
time-ordered, as UUIDv7 lease ids are) and REVOKED more (default 0), then runs what one job does
per batch of 500, 20 times: read the accounts by id, mark them REVOKED in a BEGIN IMMEDIATE
transaction, commit (synchronous = FULL). Prints the median of each step. Python's sqlite3 is a
thin C binding, so the figures are SQLite's own cost, to set against the job's sqlx timings
(RUST_LOG=...,sqlx::query=debug).
"""
import glob, os, statistics, sqlite3, sys, tempfile, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
LIVE, BATCH = 10000, 500
revoked = int(sys.argv[1]) if len(sys.argv) > 1 else 0
scratch = tempfile.TemporaryDirectory(prefix="lhjob.")  # removed at exit
path = os.path.join(scratch.name, "store.db")
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
for migration in sorted(glob.glob(os.path.join(ROOT, "migrations", "sqlite", "*.sql"))):
    db.executescript(open(migration).read())
now = "2026-12-03T17:00:00.123456Z"
ids = []
db.execute("BEGIN")
for i in range(LIVE + revoked):
    lease = (1700000000000000 + i).to_bytes(8, "big") + os.urandom(8)
    state = "ACTIVE" if i < LIVE else "REVOKED"
    if state == "ACTIVE":
        ids.append(lease)
    db.execute(
        "INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state, "
        "issued_at, expires_at, max_expires_at, updated_at, due_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (lease, "internal", "prod", "bench-role", "bench-pg", "service:bench:x",
         "v_bench_%08d" % i, state, now, now, now, now, now if state == "ACTIVE" else None))
db.execute("COMMIT")
ids.sort()
read = ("SELECT id, tenant, backend, role, username FROM leases WHERE id IN (%s) "
        "AND state IN ('PENDING','ACTIVE','IRREVOCABLE') AND revocation_job IS NULL"
        % ",".join("$%d" % (i + 1) for i in range(BATCH)))
mark = ("UPDATE leases SET state = $1, revoked_at = $2, updated_at = $2, last_error = NULL, "
        "due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, "
        "revocation_job = COALESCE($3, revocation_job) WHERE state <> $1 AND id IN (%s)"
        % ",".join("$%d" % (i + 4) for i in range(BATCH)))
job = os.urandom(16)
reads, marks, commits = [], [], []
for b in range(LIVE // BATCH):
    chunk = ids[b * BATCH:(b + 1) * BATCH]
    t0 = time.perf_counter()
    rows = db.execute(read, {str(i + 1): v for i, v in enumerate(chunk)}).fetchall()
    t1 = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    args = {"1": "REVOKED", "2": now, "3": job}
    args.update({str(i + 4): v for i, v in enumerate(chunk)})
    db.execute(mark, args)
    t2 = time.perf_counter()
    db.execute("COMMIT")
    t3 = time.perf_counter()
    assert len(rows) == BATCH
    reads.append((t1 - t0) * 1e3)
    marks.append((t2 - t1) * 1e3)
    commits.append((t3 - t2) * 1e3)
print("per batch of %d (median of %d): read %.2f ms, mark %.2f ms, commit %.2f ms"
      % (BATCH, len(reads), statistics.median(reads), statistics.median(marks), statistics.median(commits)))
