#!/usr/bin/env bash
# Usage: docs/bench/kms.sh BINARY [CONCURRENCY] [DURATION] [ROUNDS]
# `bench read` against three brokers running side by side, each on its own SQLite store, with
# rounds alternating between them so that the machine's noise hits all three alike: the local
# key ring; aws-kms with the data-key cache (warm); aws-kms with the cache off, whose KMS calls
# per read are counted from the broker's own `leasehold_kms_calls_total`. The KMS is a moto
# server on 127.0.0.1 ($LEASEHOLD_TEST_MOTO_SERVER or moto_server).
set -euo pipefail
. "$(dirname "$0")/broker.sh"
B=$1; C=${2:-8}; DUR=${3:-5s}; ROUNDS=${4:-3}
MOTO=${LEASEHOLD_TEST_MOTO_SERVER:-moto_server}
DIR=$(mktemp -d /tmp/lhkms.XXXX)
PIDS=()
$MOTO -H 127.0.0.1 -p 18710 > "$DIR/moto.log" 2>&1 &
PIDS+=($!)
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
until curl -s -o /dev/null http://127.0.0.1:18710/; do sleep 0.2; done
kms() {
  curl -sf -X POST http://127.0.0.1:18710/ -H "X-Amz-Target: TrentService.$1" \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0' \
    -d "$2"
}
KEY=$(kms CreateKey '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["KeyMetadata"]["KeyId"])')
kms CreateAlias "{\"AliasName\":\"alias/leasehold-bench\",\"TargetKeyId\":\"$KEY\"}" >/dev/null

# start NAME PORT PROVIDER CACHE_ENTRIES: a broker; its token goes to $DIR/NAME/token
start() {
  local name=$1 port=$2 provider=$3 entries=$4 dir=$DIR/$1
  mkdir -p "$dir"
  {
    echo "listen = \"127.0.0.1:$port\""
    echo "database_url = \"sqlite://$dir/leasehold.db\""
    echo '[kms]'
    echo "provider = \"$provider\""
    if [ "$provider" = local ]; then
      echo "key_file = \"$dir/master.key\""
    else
      echo "audit_hmac_key_file = \"$dir/audit-hmac.key\""
    fi
    echo '[kms.cache]'
    echo "max_entries = $entries"
    if [ "$provider" = aws-kms ]; then
      echo '[kms.aws]'
      echo 'key_id = "alias/leasehold-bench"'
      echo 'region = "us-east-1"'
      echo 'endpoint_url = "http://127.0.0.1:18710"'
      echo 'access_key_id = "test"'
      echo 'secret_access_key = "test"'
    fi
  } > "$dir/leasehold.toml"
  serve_broker "$B" "$dir" "$port"
  # The secret every round reads.
  LEASEHOLD_ADDR=http://127.0.0.1:$port LEASEHOLD_TOKEN=$(cat "$dir/token") \
    $B secret create bench/kms/read --owner-team bench >/dev/null
  printf 'bench-value-%s' "$name" | LEASEHOLD_ADDR=http://127.0.0.1:$port \
    LEASEHOLD_TOKEN=$(cat "$dir/token") $B secret put bench/kms/read --value-file - >/dev/null
}

unwraps() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^leasehold_kms_calls_total\{.*operation="unwrap"/ {n += $2} END {print n + 0}'
}

start local 18700 local 10000
start aws-warm 18701 aws-kms 10000
start aws-nocache 18702 aws-kms 0
for round in $(seq 1 "$ROUNDS"); do
  for entry in local:18700 aws-warm:18701 aws-nocache:18702; do
    name=${entry%%:*}; port=${entry##*:}
    before=$(unwraps "$port")
    LEASEHOLD_ADDR=http://127.0.0.1:$port LEASEHOLD_TOKEN=$(cat "$DIR/$name/token") \
      $B --json bench read --concurrency "$C" --duration "$DUR" --rounds 1 --secret bench/kms/read \
      > "$DIR/$name.$round.json"
    after=$(unwraps "$port")
    echo "$before $after" > "$DIR/$name.$round.calls"
  done
done
python3 - "$DIR" "$C" "$ROUNDS" <<'PY'
import json, statistics, sys
d, c, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = {}
for name in ("local", "aws-warm", "aws-nocache"):
    reads, p50, p99, ratio, calls = [], [], [], [], []
    for r in range(1, rounds + 1):
        rep = json.load(open(f"{d}/{name}.{r}.json"))
        before, after = map(float, open(f"{d}/{name}.{r}.calls").read().split())
        requests = rep["rounds"][0][1]["requests"]
        reads.append(rep["read_median_rps"]); p50.append(rep["read_median_p50_ms"])
        p99.append(rep["read_median_p99_ms"]); ratio.append(rep["ratio"])
        calls.append((after - before) / requests if requests else 0)
    rows[name] = [statistics.median(x) for x in (reads, p50, p99, ratio, calls)] + [reads]
print(f"bench read, concurrency {c}, {rounds} alternating rounds, medians")
print(f"{'provider':<22} {'reads/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs trivial':>10} {'unwraps/read':>13}  rounds")
for name, label in (("local", "local key ring"), ("aws-warm", "aws-kms, cache warm"), ("aws-nocache", "aws-kms, cache off")):
    reads, p50, p99, ratio, calls, all_reads = rows[name]
    print(f"{label:<22} {reads:>8.0f} {p50:>7.3f} {p99:>7.3f} {ratio*100:>9.0f}% {calls:>13.3f}  {' · '.join(f'{x:.0f}' for x in all_reads)}")
print(f"aws-kms with a warm cache reaches {rows['aws-warm'][0] / rows['local'][0] * 100:.0f}% of the local key ring's reads/s")
PY
