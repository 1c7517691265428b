#!/usr/bin/env bash
# Usage: docs/bench/create-role.sh [SECONDS]
# What a user's creation costs PostgreSQL itself, by the rounds of the SCRAM verifier it is sent:
# pgbench runs the default creation statements (CREATE ROLE … PASSWORD '<verifier>' VALID UNTIL,
# GRANT the group role, in one transaction) with verifiers of 4096, 256 and 16 rounds computed in
# advance, at concurrency 1 and 8, then once per statement (-r) with the password set apart, so
# the password statement's own latency shows. Drops every role it created at the end.
set -euo pipefail
T=${1:-4}
PG="-h 127.0.0.1 -U postgres"
DIR=$(mktemp -d /tmp/lhcreate.XXXX)
cleanup() {
  while [ "$(psql $PG -Atc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'lhx\_%'")" != 0 ]; do
    psql $PG -Atc "SELECT format('DROP ROLE %I;', rolname) FROM pg_roles WHERE rolname LIKE 'lhx\_%' LIMIT 5000" \
      | psql -q $PG >/dev/null
  done
  rm -rf "$DIR"
}
trap cleanup EXIT
psql -q $PG -c "DO \$\$BEGIN CREATE ROLE lhx_readers NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$"
verifier() {
  python3 - "$1" <<'PY'
import base64, hashlib, hmac, os, sys
rounds, salt = int(sys.argv[1]), os.urandom(16)
salted = hashlib.pbkdf2_hmac("sha256", os.urandom(24).hex().encode(), salt, rounds)
key = lambda label: hmac.new(salted, label, "sha256").digest()
b64 = lambda raw: base64.b64encode(raw).decode()
print(f"SCRAM-SHA-256${rounds}:{b64(salt)}${b64(hashlib.sha256(key(b'Client Key')).digest())}:{b64(key(b'Server Key'))}")
PY
}
for rounds in 4096 256 16; do
  V=$(verifier "$rounds")
  printf '%s\n' '\set n random(1, 9000000000000000)' 'BEGIN;' \
    "CREATE ROLE lhx_:n WITH LOGIN PASSWORD '$V' VALID UNTIL '2100-01-01';" \
    'GRANT lhx_readers TO lhx_:n;' 'COMMIT;' > "$DIR/create-$rounds.sql"
  for c in 1 8; do
    printf '%5s rounds, concurrency %s: ' "$rounds" "$c"
    pgbench -n $PG -c "$c" -T "$T" -f "$DIR/create-$rounds.sql" postgres 2>&1 | grep -E '^tps' || echo 'pgbench failed'
  done
done
V=$(verifier 4096)
printf '%s\n' '\set n random(1, 9000000000000000)' 'BEGIN;' \
  "CREATE ROLE lhx_:n WITH LOGIN VALID UNTIL '2100-01-01';" 'GRANT lhx_readers TO lhx_:n;' \
  "ALTER ROLE lhx_:n WITH PASSWORD '$V';" "ALTER ROLE lhx_:n WITH PASSWORD 'md5d41d8cd98f00b204e9800998ecf8427e';" \
  'COMMIT;' > "$DIR/split.sql"
echo "per statement, concurrency 1 (ms):"
pgbench -n -r $PG -c 1 -T "$T" -f "$DIR/split.sql" postgres 2>&1 | sed -n '/statement latencies/,$p' | cut -c1-100
