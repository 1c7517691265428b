#!/usr/bin/env bash
# Usage: docs/bench/startup.sh BINARY LEASES
# Start-up time and resident memory of a broker whose PostgreSQL store already holds LEASES active
# leases (inserted directly, expiring tomorrow so the scheduler has nothing to do).
set -euo pipefail
B=$1; N=$2
DB=lh_startup_$N
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
DIR=$(mktemp -d /tmp/lhstartup.XXXX)
cat > "$DIR/leasehold.toml" <<TOML
listen = "127.0.0.1:18600"
database_url = "postgres://postgres@127.0.0.1:5432/$DB"
[kms]
provider = "local"
key_file = "$DIR/master.key"
TOML
$B migrate --config "$DIR/leasehold.toml"
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "
  INSERT INTO leases (id, tenant, environment, role, backend, principal, username, state, issued_at,
                      expires_at, max_expires_at, updated_at, due_at)
  SELECT gen_random_uuid(), 'default', 'prod', 'app-rw', 'db', 'service:prod:app', 'lh_user_' || i, 'ACTIVE',
         now(), now() + interval '1 day', now() + interval '1 day', now(), now() + interval '1 day'
    FROM generate_series(1, $N) AS i;
  ANALYZE leases;"
START=$(date +%s.%N)
$B server --config "$DIR/leasehold.toml" > "$DIR/server.log" 2>&1 &
PID=$!
until curl -sf http://127.0.0.1:18600/v1/sys/health >/dev/null; do sleep 0.01; done
READY=$(date +%s.%N)
RSS_READY=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
sleep 20
RSS_LATER=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
kill $PID; wait $PID 2>/dev/null || true
printf 'leases %s: ready after %.3f s; resident memory %s KiB at ready, %s KiB 20 s later\n' \
  "$N" "$(echo "$READY - $START" | bc)" "$RSS_READY" "$RSS_LATER"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $DB"
