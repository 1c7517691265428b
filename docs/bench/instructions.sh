#!/usr/bin/env bash
# Usage: docs/bench/instructions.sh BINARY [REQUESTS] [PATH]
# Instructions the server executes per request, counted by callgrind: repeatable for the same
# binary whatever else the machine is doing, where requests per second are not. Starts a dev
# server under valgrind, sends 30 warm-up requests, zeroes the counters, sends REQUESTS (default
# 200) GETs of PATH (default an unknown lease id: routing, the token check, the handler's 404)
# one at a time with the root token, dumps the counters and divides. Background work of the
# server during those requests (the scheduler's idle polls) is counted too; it is small.
set -euo pipefail
B=$1; N=${2:-200}; ROUTE=${3:-/v1/leases/0193a0b0-0000-7000-8000-000000000001}
PORT=$((18700 + RANDOM % 200))
D=$(mktemp -d /tmp/lhcg.XXXX)
valgrind --tool=callgrind --callgrind-out-file="$D/callgrind.%p" \
  "$B" server --dev --data-dir "$D/data" --listen 127.0.0.1:$PORT > "$D/server.log" 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q "Root Token" "$D/server.log" 2>/dev/null && break; sleep 1; done
TOKEN=$(grep "Root Token" "$D/server.log" | cut -d' ' -f3)
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$PORT/v1/sys/health > /dev/null && break; sleep 1; done
send() {
  for _ in $(seq 1 "$1"); do
    curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$ROUTE"
  done | sort | uniq -c | awk '{printf "%s %s× ", $2, $1}'
}
send 30 > /dev/null
callgrind_control -z $VG > /dev/null 2>&1
CODES=$(send "$N")
callgrind_control -d $VG > /dev/null 2>&1
TOTAL=$(grep -h -m1 "^summary:" "$D"/callgrind.*.1 | awk '{print $2}')
echo "$(basename "$B"): GET $ROUTE ×$N (answers: $CODES): $TOTAL instructions, $((TOTAL / N)) per request (profile for callgrind_annotate: $D)"
