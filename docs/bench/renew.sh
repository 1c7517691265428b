#!/usr/bin/env bash
# Usage: docs/bench/renew.sh BINARY — PostgreSQL, concurrency 8 (run issue.sh postgresql first: it creates lhb_admin)
set -euo pipefail
B=$1
DATA=$(mktemp -d /tmp/lhbench.XXXX)
$B server --dev --data-dir "$DATA" --listen 127.0.0.1:18501 > "$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 2
export LEASEHOLD_ADDR=http://127.0.0.1:18501
export LEASEHOLD_TOKEN=$(grep "Root Token" "$DATA/server.log" | cut -d' ' -f3)
export LEASEHOLD_BENCH_BASELINE_URL="postgres://lhb_admin:bench-admin@127.0.0.1:5432/postgres"
echo '{"plugin":"postgresql","connection":{"host":"127.0.0.1","port":5432,"database":"postgres","username":"lhb_admin","password":"bench-admin","sslMode":"disable"},"maxOpenConnections":8}' | $B backend put bench-db --file - >/dev/null
echo '{"backend":"bench-db","environment":"bench","memberOf":["lhb_readers"],"defaultTtl":"10m","maxTtl":"24h"}' | $B role put bench-role --file - >/dev/null
$B bench renew --role bench-role --concurrency 8 --duration 5s --rounds 3
