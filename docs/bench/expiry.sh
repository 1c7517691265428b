#!/usr/bin/env bash
# Usage: docs/bench/expiry.sh BINARY [LEASES] [CONNECTIONS] [STORE]
# A broker on a PostgreSQL or SQLite store (STORE = postgres | sqlite, default postgres); LEASES
# PostgreSQL leases come due in the same second; compared with a plain client dropping as many
# users of the same role over CONNECTIONS connections.
set -euo pipefail
B=$1; N=${2:-10000}; C=${3:-4}; STORE=${4:-postgres}
DB=lh_bench_expiry
DIR=$(mktemp -d /tmp/lhexpiry.XXXX)
source "$(dirname "$0")/store.sh"
URL=$(bench_store_url "$STORE" "$DB" "$DIR")
psql -q -h 127.0.0.1 -U postgres -c "DROP TABLE IF EXISTS lhb_orders" -c "DROP ROLE IF EXISTS lhb_readers" -c "DROP ROLE IF EXISTS lhb_admin" \
  -c "CREATE ROLE lhb_admin LOGIN CREATEROLE PASSWORD 'bench-admin'" -c "CREATE ROLE lhb_readers NOLOGIN" \
  -c "GRANT lhb_readers TO lhb_admin WITH ADMIN OPTION" -c "CREATE TABLE lhb_orders (id int)" -c "GRANT SELECT ON lhb_orders TO lhb_readers"
# The bench checkpoints the server before each timed phase (PostgreSQL 15+).
psql -q -h 127.0.0.1 -U postgres -c "GRANT pg_checkpoint TO lhb_admin" 2>/dev/null ||
  echo "note: no pg_checkpoint role here; timed phases may share the disk with a checkpoint" >&2
LEASEHOLD_TOKEN=$(bench_store_init "$B" "$DIR" "$URL" 18700)
export LEASEHOLD_TOKEN
RUST_LOG=${RUST_LOG:-info} $B server --config "$DIR/leasehold.toml" > "$DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 2
export LEASEHOLD_ADDR=http://127.0.0.1:18700
echo "{\"plugin\":\"postgresql\",\"connection\":{\"host\":\"127.0.0.1\",\"port\":5432,\"database\":\"postgres\",\"username\":\"lhb_admin\",\"password\":\"bench-admin\",\"sslMode\":\"disable\"},\"maxOpenConnections\":$C}" | $B backend put bench-db --file - >/dev/null
echo '{"backend":"bench-db","environment":"bench","memberOf":["lhb_readers"],"defaultTtl":"1h","maxTtl":"2h"}' | $B role put bench-role --file - >/dev/null
LEASEHOLD_BENCH_STORE_URL="$URL" \
LEASEHOLD_BENCH_BASELINE_URL="postgres://lhb_admin:bench-admin@127.0.0.1:5432/postgres" \
  $B bench expiry --role bench-role --leases "$N" --connections "$C"
