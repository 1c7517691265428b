#!/usr/bin/env bash
# Usage: docs/bench/audit.sh AUDIT_BINARY NOAUDIT_BINARY [STORE] [CONCURRENCY] [DURATION] [ROUNDS]
# `bench read` against two brokers running side by side, each on its own store (STORE = sqlite |
# postgres): one built as usual, one built with `--features leasehold-broker/bench-without-audit`
# (events acknowledged without being written). Rounds alternate between them so that the
# machine's noise hits both alike; medians are reported with every round.
set -euo pipefail
. "$(dirname "$0")/broker.sh"
ON=$1; OFF=$2; STORE=${3:-sqlite}; C=${4:-32}; DUR=${5:-5s}; ROUNDS=${6:-5}
DIR=$(mktemp -d /tmp/lhaudit.XXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

# start NAME PORT BINARY: a broker; its token goes to $DIR/NAME/token
start() {
  local name=$1 port=$2 b=$3 dir=$DIR/$1 url
  mkdir -p "$dir"
  case $STORE in
    sqlite) url="sqlite://$dir/leasehold.db" ;;
    postgres)
      psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS lh_bench_audit_$name" \
        -c "CREATE DATABASE lh_bench_audit_$name"
      url="postgres://postgres@127.0.0.1:5432/lh_bench_audit_$name" ;;
    *) echo "STORE must be sqlite or postgres" >&2; exit 2 ;;
  esac
  printf 'listen = "127.0.0.1:%s"\ndatabase_url = "%s"\n[kms]\nprovider = "local"\nkey_file = "%s"\n' \
    "$port" "$url" "$dir/master.key" > "$dir/leasehold.toml"
  serve_broker "$b" "$dir" "$port"
  export LEASEHOLD_ADDR=http://127.0.0.1:$port LEASEHOLD_TOKEN
  LEASEHOLD_TOKEN=$(cat "$dir/token")
  $b secret create bench/audit/read --owner-team bench >/dev/null
  printf 'bench-value' | $b secret put bench/audit/read --value-file - >/dev/null
}

start on 18720 "$ON"
start off 18721 "$OFF"
for round in $(seq 1 "$ROUNDS"); do
  for entry in on:18720 off:18721; do
    name=${entry%%:*}; port=${entry##*:}
    LEASEHOLD_ADDR=http://127.0.0.1:$port LEASEHOLD_TOKEN=$(cat "$DIR/$name/token") \
      "$ON" --json bench read --concurrency "$C" --duration "$DUR" --rounds 1 --secret bench/audit/read \
      > "$DIR/$name.$round.json"
  done
done
python3 - "$DIR" "$C" "$ROUNDS" "$STORE" <<'PY'
import json, statistics, sys
d, c, rounds, store = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = {}
for name in ("on", "off"):
    reads = [json.load(open(f"{d}/{name}.{r}.json"))["read_median_rps"] for r in range(1, rounds + 1)]
    rows[name] = (statistics.median(reads), reads)
print(f"bench read on {store}, concurrency {c}, {rounds} alternating rounds")
for name, label in (("on", "audit on"), ("off", "audit off")):
    median, reads = rows[name]
    print(f"{label:<10} median {median:>7.0f} reads/s   rounds {' · '.join(f'{x:.0f}' for x in reads)}")
print(f"audit on keeps {rows['on'][0] / rows['off'][0] * 100:.0f}% of the reads/s with audit off")
PY
