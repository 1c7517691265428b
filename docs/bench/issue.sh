#!/usr/bin/env bash
# Usage: [CS="1 8 32"] docs/bench/issue.sh BINARY PLUGIN(postgresql|mariadb) [DURATION] [ROUNDS]
# CS lists the concurrencies to run (default 1, 8 and 32). SCRAM_ITERATIONS sets the PostgreSQL
# backend's connection.scramIterations (default: not set, 4096); the plain client's verifiers follow it.
set -euo pipefail
B=$1; PLUGIN=$2; DUR=${3:-5s}; ROUNDS=${4:-3}
DATA=$(mktemp -d /tmp/lhbench.XXXX)
$B server --dev --data-dir "$DATA" --listen 127.0.0.1:18500 > "$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 2
export LEASEHOLD_ADDR=http://127.0.0.1:18500
export LEASEHOLD_TOKEN=$(grep "Root Token" "$DATA/server.log" | cut -d' ' -f3)
if [ "$PLUGIN" = postgresql ]; then
  psql -q -h 127.0.0.1 -U postgres -c "DROP TABLE IF EXISTS lhb_orders" -c "DROP ROLE IF EXISTS lhb_readers" -c "DROP ROLE IF EXISTS lhb_admin" \
    -c "CREATE ROLE lhb_admin LOGIN CREATEROLE PASSWORD 'bench-admin'" -c "CREATE ROLE lhb_readers NOLOGIN" \
    -c "GRANT lhb_readers TO lhb_admin WITH ADMIN OPTION" -c "CREATE TABLE lhb_orders (id int)" -c "GRANT SELECT ON lhb_orders TO lhb_readers"
  CONN='{"host":"127.0.0.1","port":5432,"database":"postgres","username":"lhb_admin","password":"bench-admin","sslMode":"disable"'"${SCRAM_ITERATIONS:+,\"scramIterations\":$SCRAM_ITERATIONS}"'}'
  export LEASEHOLD_BENCH_BASELINE_URL="postgres://lhb_admin:bench-admin@127.0.0.1:5432/postgres"
else
  mariadb -h 127.0.0.1 -u root -e "DROP USER IF EXISTS 'lhb_admin'@'%'; DROP ROLE IF EXISTS lhb_readers; DROP DATABASE IF EXISTS lhb;
    CREATE DATABASE lhb; CREATE TABLE lhb.orders (id int); CREATE USER 'lhb_admin'@'%' IDENTIFIED BY 'bench-admin';
    GRANT ALL PRIVILEGES ON *.* TO 'lhb_admin'@'%' WITH GRANT OPTION;"
  mariadb -h 127.0.0.1 -u lhb_admin -pbench-admin -e "CREATE ROLE lhb_readers; GRANT SELECT ON lhb.orders TO lhb_readers"
  CONN='{"host":"127.0.0.1","port":3306,"username":"lhb_admin","password":"bench-admin","sslMode":"disable"}'
  export LEASEHOLD_BENCH_BASELINE_URL="mysql://lhb_admin:bench-admin@127.0.0.1:3306"
fi
for C in ${CS:-1 8 32}; do
  echo "{\"plugin\":\"$PLUGIN\",\"connection\":$CONN,\"maxOpenConnections\":$C}" | $B backend put bench-db --file - >/dev/null
  echo '{"backend":"bench-db","environment":"bench","memberOf":["lhb_readers"],"defaultTtl":"10m","maxTtl":"1h"}' | $B role put bench-role --file - >/dev/null
  $B bench issue --role bench-role --concurrency $C --duration $DUR --rounds $ROUNDS
done
