#!/usr/bin/env bash
# Usage: docs/bench/revoke.sh BINARY [LEASES] [STORE] [CONNECTIONS]
# A broker on a SQLite or PostgreSQL store (STORE = sqlite | postgres); LEASES PostgreSQL leases
# revoked by one mass revocation job, timed until the job reports COMPLETED (then checked in
# pg_roles: the bench fails if any user is left); compared
# with a plain client dropping as many users of the same role over CONNECTIONS connections.
# BENCH=BINARY runs the bench client itself from another build (to compare servers under one clock).
set -euo pipefail
B=$1; N=${2:-10000}; STORE=${3:-sqlite}; C=${4:-4}
DIR=$(mktemp -d /tmp/lhrevoke.XXXX)
DB=lh_bench_revoke
source "$(dirname "$0")/store.sh"
URL=$(bench_store_url "$STORE" "$DB" "$DIR")
psql -q -h 127.0.0.1 -U postgres -c "DROP TABLE IF EXISTS lhb_orders" -c "DROP ROLE IF EXISTS lhb_readers" -c "DROP ROLE IF EXISTS lhb_admin" \
  -c "CREATE ROLE lhb_admin LOGIN CREATEROLE PASSWORD 'bench-admin'" -c "CREATE ROLE lhb_readers NOLOGIN" \
  -c "GRANT lhb_readers TO lhb_admin WITH ADMIN OPTION" -c "CREATE TABLE lhb_orders (id int)" -c "GRANT SELECT ON lhb_orders TO lhb_readers"
# The bench checkpoints the server before each timed phase (PostgreSQL 15+).
psql -q -h 127.0.0.1 -U postgres -c "GRANT pg_checkpoint TO lhb_admin" 2>/dev/null ||
  echo "note: no pg_checkpoint role here; timed phases may share the disk with a checkpoint" >&2
LEASEHOLD_TOKEN=$(bench_store_init "$B" "$DIR" "$URL" 18701)
export LEASEHOLD_TOKEN
RUST_LOG=${RUST_LOG:-info} $B server --config "$DIR/leasehold.toml" > "$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 2
export LEASEHOLD_ADDR=http://127.0.0.1:18701
echo "{\"plugin\":\"postgresql\",\"connection\":{\"host\":\"127.0.0.1\",\"port\":5432,\"database\":\"postgres\",\"username\":\"lhb_admin\",\"password\":\"bench-admin\",\"sslMode\":\"disable\"},\"maxOpenConnections\":$C}" | $B backend put bench-db --file - >/dev/null
echo '{"backend":"bench-db","environment":"bench","memberOf":["lhb_readers"],"defaultTtl":"1h","maxTtl":"2h"}' | $B role put bench-role --file - >/dev/null
LEASEHOLD_BENCH_BASELINE_URL="postgres://lhb_admin:bench-admin@127.0.0.1:5432/postgres" \
  ${BENCH:-$B} bench revoke --role bench-role --leases "$N" --connections "$C"
