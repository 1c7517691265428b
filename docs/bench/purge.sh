#!/usr/bin/env bash
# Usage: docs/bench/purge.sh BINARY [LEASES] [STORE]
# How fast a broker purges revoked leases past their retention, and what a write waits meanwhile.
# The store (STORE = sqlite | postgres) gets LEASES leases revoked eight days ago (time-ordered
# ids, as the broker makes them) and one in 30 as many live ones, inserted directly; the broker
# starts with the default retention (7 days) and purges at once. The script times until only the
# live leases are left, while writing a secret version every 100 ms and timing each write; then
# the same writes with nothing to purge, for comparison.
set -euo pipefail
B=$1; N=${2:-1000000}; STORE=${3:-sqlite}
DIR=$(mktemp -d /tmp/lhpurge.XXXX)
DB=lh_bench_purge
source "$(dirname "$0")/store.sh"
URL=$(bench_store_url "$STORE" "$DB" "$DIR")
LEASEHOLD_TOKEN=$(bench_store_init "$B" "$DIR" "$URL" 18704)
export LEASEHOLD_TOKEN
LIVE=$((N / 30))
case $STORE in
  sqlite)
    python3 - "$DIR/store.db" "$N" "$LIVE" <<'PY'
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
revoked, live = int(sys.argv[2]), int(sys.argv[3])
start_ms = int((time.time() - 8 * 86400) * 1000)
def lease(i, state, ms):
    lid = ms.to_bytes(6, "big") + os.urandom(10)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".000000+00:00"
    later = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 86400)) + ".000000+00:00"
    return (lid, "default", "prod", "role-%d" % (i % 20), "db", "service:prod:app", "lh_user_%d" % i,
            state, at, later, later, at if state == "REVOKED" else None, at, None if state == "REVOKED" else later)
rows = [lease(i, "REVOKED", start_ms + i // 100) for i in range(revoked)]
rows += [lease(revoked + i, "ACTIVE", start_ms + i) for i in range(live)]
db.executemany("INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state, "
               "issued_at, expires_at, max_expires_at, revoked_at, updated_at, due_at) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
    count() { sqlite3 "$DIR/store.db" "SELECT COUNT(*) FROM leases"; } ;;
  postgres)
    psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "
      INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state, issued_at,
                          expires_at, max_expires_at, revoked_at, updated_at, due_at)
      SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || substr(md5(random()::text), 1, 20))::uuid,
             'default', 'prod', 'role-' || (i % 20), 'db', 'service:prod:app', 'lh_user_' || i,
             CASE WHEN i <= $N THEN 'REVOKED' ELSE 'ACTIVE' END, t, now() + interval '1 day',
             now() + interval '1 day', CASE WHEN i <= $N THEN t END, t,
             CASE WHEN i > $N THEN now() + interval '1 day' END
        FROM generate_series(1, $N + $LIVE) AS i, LATERAL (SELECT now() - interval '8 days' + i * interval '1 ms' AS t) AS at;
      ANALYZE leases;"
    count() { psql -Atq -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT COUNT(*) FROM leases"; } ;;
esac
echo "leases before: $(count)"
$B server --config "$DIR/leasehold.toml" > "$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT
export LEASEHOLD_ADDR=http://127.0.0.1:18704
START=$(date +%s.%N)
until curl -sf "$LEASEHOLD_ADDR/v1/sys/health" >/dev/null; do sleep 0.05; done
ID=$(curl -sf -H "Authorization: Bearer $LEASEHOLD_TOKEN" -H 'Content-Type: application/json' \
  -X POST "$LEASEHOLD_ADDR/v1/secrets" -d '{"environment":"prod","path":"bench/purge","ownerTeam":"bench","rotationStrategy":"manual-overlap"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
write() {
  curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $LEASEHOLD_TOKEN" \
    -H 'Content-Type: application/json' -X POST "$LEASEHOLD_ADDR/v1/secrets/$ID/versions" -d '{"value":"v","status":"PENDING"}'
}
: > "$DIR/during.txt"
while LEFT=$(count) && [ "$LEFT" -gt "$LIVE" ]; do write >> "$DIR/during.txt"; sleep 0.1; done
[ "$LEFT" -eq "$LIVE" ] || { echo "could not count the leases left (last answer: '$LEFT')" >&2; exit 1; }
END=$(date +%s.%N)
: > "$DIR/after.txt"
for _ in $(seq "$(wc -l < "$DIR/during.txt")"); do write >> "$DIR/after.txt"; sleep 0.1; done
python3 - "$START" "$END" "$N" "$DIR/during.txt" "$DIR/after.txt" <<'PY'
import statistics, sys
start, end, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def read(path):
    return sorted(float(line) * 1000 for line in open(path) if line.strip())
during, after = read(sys.argv[4]), read(sys.argv[5])
print("purged %d leases in %.1f s (%.0f a second)" % (n, end - start, n / (end - start)))
for name, times in (("during the purge", during), ("after it", after)):
    if not times:
        print("secret writes %s: none (the purge was done before the first)" % name)
        continue
    print("secret writes %s: %d, median %.1f ms, p99 %.1f ms, max %.1f ms" % (
        name, len(times), statistics.median(times), times[int(len(times) * 0.99) - 1 if len(times) > 1 else 0], times[-1]))
PY
