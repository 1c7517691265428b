#!/usr/bin/env bash
# Usage: docs/bench/kms.sh BINARY [CONCURRENCY] [DURATION] [ROUNDS]
# `bench read` against three brokers in one run, one after the other, each on a fresh SQLite
# store: the local key ring; aws-kms with the data-key cache (warm); aws-kms with the cache off,
# whose KMS calls per read are counted from the broker's own `leasehold_kms_calls_total`. The
# KMS is a moto server on 127.0.0.1 ($LEASEHOLD_TEST_MOTO_SERVER or moto_server).
set -euo pipefail
B=$1; C=${2:-8}; DUR=${3:-5s}; ROUNDS=${4:-3}
MOTO=${LEASEHOLD_TEST_MOTO_SERVER:-moto_server}
DIR=$(mktemp -d /tmp/lhkms.XXXX)
SERVER=
$MOTO -H 127.0.0.1 -p 18710 > "$DIR/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID $SERVER 2>/dev/null || true' EXIT
until curl -s -o /dev/null http://127.0.0.1:18710/; do sleep 0.2; done
kms() {
  curl -sf -X POST http://127.0.0.1:18710/ -H "X-Amz-Target: TrentService.$1" \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0' \
    -d "$2"
}
KEY=$(kms CreateKey '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["KeyMetadata"]["KeyId"])')
kms CreateAlias "{\"AliasName\":\"alias/leasehold-bench\",\"TargetKeyId\":\"$KEY\"}" >/dev/null

unwraps() {
  curl -s http://127.0.0.1:18700/metrics |
    awk '/^leasehold_kms_calls_total\{.*operation="unwrap"/ {n += $2} END {print n + 0}'
}

# run NAME PROVIDER CACHE_ENTRIES: prints the bench's JSON report to $DIR/NAME.json
run() {
  local name=$1 provider=$2 entries=$3 dir=$DIR/$1
  mkdir -p "$dir"
  {
    echo 'listen = "127.0.0.1:18700"'
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
  $B migrate --config "$dir/leasehold.toml" >/dev/null
  export LEASEHOLD_ADDR=http://127.0.0.1:18700
  LEASEHOLD_TOKEN=$($B operator init --config "$dir/leasehold.toml" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  export LEASEHOLD_TOKEN
  $B server --config "$dir/leasehold.toml" > "$dir/server.log" 2>&1 &
  SERVER=$!
  until curl -sf http://127.0.0.1:18700/v1/sys/health >/dev/null; do sleep 0.1; done
  local before after
  before=$(unwraps)
  $B --json bench read --concurrency "$C" --duration "$DUR" --rounds "$ROUNDS" > "$DIR/$name.json"
  after=$(unwraps)
  python3 - "$DIR/$name.json" "$before" "$after" <<'PY'
import json, sys
path, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
report = json.load(open(path))
reads = sum(r[1]["requests"] for r in report["rounds"])
report["kms_unwraps_per_read"] = (after - before) / reads if reads else 0
json.dump(report, open(path, "w"))
PY
  kill $SERVER; wait $SERVER 2>/dev/null || true
  SERVER=
}

run local local 10000
run aws-warm aws-kms 10000
run aws-nocache aws-kms 0
python3 - "$DIR" "$C" <<'PY'
import json, sys
d, c = sys.argv[1], sys.argv[2]
r = {n: json.load(open(f"{d}/{n}.json")) for n in ("local", "aws-warm", "aws-nocache")}
print(f"bench read, concurrency {c}, medians of {len(r['local']['rounds'])} rounds")
print(f"{'provider':<28} {'reads/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'vs trivial':>10} {'KMS unwraps/read':>17}")
for name, label in (("local", "local key ring"), ("aws-warm", "aws-kms, cache warm"), ("aws-nocache", "aws-kms, cache off")):
    x = r[name]
    print(f"{label:<28} {x['read_median_rps']:>9.0f} {x['read_median_p50_ms']:>7.3f} {x['read_median_p99_ms']:>7.3f} "
          f"{x['ratio']*100:>9.0f}% {x['kms_unwraps_per_read']:>17.3f}")
print(f"aws-kms with a warm cache reaches {r['aws-warm']['read_median_rps'] / r['local']['read_median_rps'] * 100:.0f}% of the local provider's reads/s")
PY
