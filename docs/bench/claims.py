# Usage: python3 docs/bench/claims.py DATABASE VARIANT [LEASES] [REVOKED_HISTORY]  (pip install psycopg2-binary)
# The PostgreSQL store work of the lease scheduler for LEASES due leases, alone, on one connection:
# claim 500, mark them REVOKED, repeat. DATABASE holds the store schema (all of migrations/postgres).
# VARIANT: in / any (claim columns; the revoked mark by IN list or = ANY), batch (one lease_claims
# row per batch), lock (row locks held from the claim to the mark), keepdue (as any, the mark
# leaving due_at).
import psycopg2, time, uuid, sys, statistics
DB = sys.argv[1]; variant = sys.argv[2]; N = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
HIST = int(sys.argv[4]) if len(sys.argv) > 4 else 50000
c = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=DB); c.autocommit = True
q = c.cursor()
q.execute("ALTER TABLE leases DROP CONSTRAINT IF EXISTS leases_tenant_backend_fkey")
q.execute("TRUNCATE leases")
q.execute("""INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state,
  issued_at, expires_at, max_expires_at, revoked_at, updated_at, due_at)
  SELECT gen_random_uuid(), 'internal', 'bench', 'bench-role', 'bench-db', 'token:x', 'v_old_' || g, 'REVOKED',
  now(), now(), now(), now(), now(), NULL FROM generate_series(1, %s) g""", (HIST,))
q.execute("""INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state,
  issued_at, expires_at, max_expires_at, updated_at, due_at)
  SELECT gen_random_uuid(), 'internal', 'bench', 'bench-role', 'bench-db', 'token:x', 'v_new_' || g, 'ACTIVE',
  now(), now(), now(), now(), now() - interval '1 second' FROM generate_series(1, %s) g""", (N,))
q.execute("VACUUM ANALYZE leases"); q.execute("CHECKPOINT")
COLS = "id, tenant, environment, role, backend, principal, username, state, issued_at, expires_at, max_expires_at, revoked_at, updated_at, last_error, due_at, attempts, failing_since, claimed_by, claim_expires_at, revocation_job"
claim_t = []; mark_t = []
t0 = time.perf_counter()
while True:
    a = time.perf_counter()
    if variant == "lock":
        q.execute("BEGIN")
        q.execute(f"""SELECT {COLS} FROM leases WHERE state IN ('PENDING', 'ACTIVE') AND due_at <= now()
          AND (claim_expires_at IS NULL OR claim_expires_at < now()) ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED""")
        rows = q.fetchall(); b = time.perf_counter(); claim_t.append(b - a)
        if not rows: q.execute("COMMIT"); break
        ids = [str(r[0]) for r in rows]
        q.execute("""UPDATE leases SET state = 'REVOKED', revoked_at = now(), updated_at = now(), last_error = NULL,
          due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, revocation_job = COALESCE(NULL, revocation_job)
          WHERE state <> 'REVOKED' AND id = ANY(%s::uuid[])""", (ids,))
        q.execute("COMMIT"); mark_t.append(time.perf_counter() - b); continue
    if variant == "batch":
        q.execute("BEGIN"); q.execute("SET LOCAL synchronous_commit TO OFF")
        q.execute("SELECT pg_advisory_xact_lock(4242)")
        q.execute(f"""SELECT {COLS} FROM leases WHERE state IN ('PENDING', 'ACTIVE') AND due_at <= now()
          AND id NOT IN (SELECT unnest(lease_ids) FROM lease_claims WHERE expires_at > now()) ORDER BY due_at LIMIT 500""")
        rows = q.fetchall()
        cid = None
        if rows:
            cid = str(uuid.uuid4())
            q.execute("INSERT INTO lease_claims VALUES (%s, 'me', now() + interval '2 minutes', %s::uuid[])", (cid, [r[0] for r in rows]))
        q.execute("COMMIT")
        b = time.perf_counter(); claim_t.append(b - a)
        if not rows: break
        ids = [str(r[0]) for r in rows]
        q.execute("BEGIN")
        q.execute("""UPDATE leases SET state = 'REVOKED', revoked_at = now(), updated_at = now(), last_error = NULL,
          due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, revocation_job = COALESCE(NULL, revocation_job)
          WHERE state <> 'REVOKED' AND id = ANY(%s::uuid[])""", (ids,))
        q.execute("DELETE FROM lease_claims WHERE id = %s", (cid,))
        q.execute("COMMIT"); mark_t.append(time.perf_counter() - b); continue
    q.execute("BEGIN"); q.execute("SET LOCAL synchronous_commit TO OFF")
    q.execute(f"""UPDATE leases SET claimed_by = 'me', claim_expires_at = now() + interval '2 minutes' WHERE id IN (
      SELECT id FROM leases WHERE state IN ('PENDING', 'ACTIVE') AND due_at <= now()
      AND (claim_expires_at IS NULL OR claim_expires_at < now()) ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED)
      RETURNING {COLS}""")
    rows = q.fetchall(); q.execute("COMMIT")
    b = time.perf_counter(); claim_t.append(b - a)
    if not rows: break
    ids = [str(r[0]) for r in rows]
    q.execute("BEGIN")
    if variant == "in":
        ph = ", ".join(["%s"] * len(ids))
        q.execute(f"""UPDATE leases SET state = 'REVOKED', revoked_at = now(), updated_at = now(), last_error = NULL,
          due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, revocation_job = COALESCE(NULL, revocation_job)
          WHERE state <> 'REVOKED' AND id IN ({ph})""", ids)
    elif variant == "any":
        q.execute("""UPDATE leases SET state = 'REVOKED', revoked_at = now(), updated_at = now(), last_error = NULL,
          due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, revocation_job = COALESCE(NULL, revocation_job)
          WHERE state <> 'REVOKED' AND id = ANY(%s::uuid[])""", (ids,))
    elif variant == "keepdue":
        q.execute("""UPDATE leases SET state = 'REVOKED', revoked_at = now(), updated_at = now(), last_error = NULL,
          claimed_by = NULL, claim_expires_at = NULL
          WHERE state <> 'REVOKED' AND id = ANY(%s::uuid[])""", (ids,))
    q.execute("COMMIT")
    mark_t.append(time.perf_counter() - b)
total = time.perf_counter() - t0
q.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname='leases'")
print(f"{variant}: total {total*1000:.0f} ms; claim median {statistics.median(claim_t)*1000:.1f} ms, mark median {statistics.median(mark_t)*1000:.1f} ms per 500; upd/hot {q.fetchone()}")
