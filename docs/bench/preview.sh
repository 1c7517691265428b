#!/usr/bin/env bash
# Usage: docs/bench/preview.sh BINARY [LEASES] [LIVE_EVERY] [ROUNDS]
# How long a mass revocation's dry run (POST /v1/revocations with "dryRun": true: the count by
# role, backend and environment, and a sample) takes on a SQLite store whose leases table holds
# LEASES leases (default 1,000,000), one in LIVE_EVERY (default 30) live and the rest revoked
# history, as a store has after months of short leases. The leases are inserted directly with the
# sqlite3 shell; each selector below is asked ROUNDS times (default 5) and the median printed.
# Then the same for lease listings (GET /v1/leases, first page of 100) by state and by
# principal (a listing by role needs the role to exist; these leases are inserted without one).
set -euo pipefail
B=$1; N=${2:-1000000}; EVERY=${3:-30}; ROUNDS=${4:-5}
DIR=$(mktemp -d /tmp/lhpreview.XXXX)
source "$(dirname "$0")/store.sh"
URL=$(bench_store_url sqlite "" "$DIR")
TOKEN=$(bench_store_init "$B" "$DIR" "$URL" 18702)
# Revoked yesterday: inside the default retention, so the broker purges none of them meanwhile.
YESTERDAY=$(date -u -d '1 day ago' +%Y-%m-%dT%H:%M:%S.000000+00:00)
TOMORROW=$(date -u -d '1 day' +%Y-%m-%dT%H:%M:%S.000000+00:00)
sqlite3 "$DIR/store.db" "
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
  INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state, issued_at,
                      expires_at, max_expires_at, revoked_at, updated_at, due_at)
  SELECT randomblob(16), 'default', CASE WHEN i % 11 < 3 THEN 'staging' ELSE 'prod' END,
         'role-' || (i % 20), 'db-' || (i % 7), 'service:prod:app-' || (i % 50), 'lh_user_' || i,
         CASE WHEN i % $EVERY = 0 THEN 'ACTIVE' ELSE 'REVOKED' END, '$YESTERDAY', '$TOMORROW', '$TOMORROW',
         CASE WHEN i % $EVERY = 0 THEN NULL ELSE '$YESTERDAY' END, '$YESTERDAY',
         CASE WHEN i % $EVERY = 0 THEN '$TOMORROW' END
    FROM n;"
$B server --config "$DIR/leasehold.toml" > "$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT
until curl -sf http://127.0.0.1:18702/v1/sys/health >/dev/null; do sleep 0.05; done
for selector in '"role":"role-0"' '"backend":"db-0"' '"principal":"service:prod:app-0"' '"environment":"staging"'; do
  for _ in $(seq "$ROUNDS"); do
    curl -s -o "$DIR/answer.json" -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/json' -X POST http://127.0.0.1:18702/v1/revocations \
      -d "{\"selector\":{$selector},\"reason\":\"bench\",\"ticket\":\"BENCH-1\",\"dryRun\":true}"
    grep -q '"matched"' "$DIR/answer.json" || { cat "$DIR/answer.json" >&2; exit 1; }
  done | python3 -c "
import statistics, sys
times = [float(line) * 1000 for line in sys.stdin]
print('dry run {$selector}: median %.1f ms (%s)' % (statistics.median(times), ' · '.join('%.1f' % t for t in times)))"
  python3 -c 'import json,sys; print("  matched:", json.load(open(sys.argv[1]))["matched"])' "$DIR/answer.json"
done
for filter in 'state=irrevocable' 'state=active' 'principal=service:prod:app-0'; do
  for _ in $(seq "$ROUNDS"); do
    curl -s -o "$DIR/page.json" -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:18702/v1/leases?$filter&limit=100"
    grep -q '"leases"' "$DIR/page.json" || { cat "$DIR/page.json" >&2; exit 1; }
  done | python3 -c "
import statistics, sys
times = [float(line) * 1000 for line in sys.stdin]
print('list $filter: median %.1f ms (%s)' % (statistics.median(times), ' · '.join('%.1f' % t for t in times)))"
done
