#!/usr/bin/env bash
# Usage: docs/bench/audit-threads.sh BINARY [ROUNDS]
# Where an audited read's CPU goes. Starts a broker on a SQLite store of its own, runs
# `bench read --concurrency 32 --duration 5s` against it, and over 2 s of the read phase counts
# (perf stat, software events: they work in VMs without hardware counters) the server's CPU per
# read, split by thread group (HTTP workers, SQLite worker threads, the audit writer), and the
# pread calls per read (a pooled connection re-reading pages after its cache was discarded).
# Reads are counted from the server's own metrics over the same window, and the machine's idle
# share (idle and iowait, from /proc/stat) too.
set -euo pipefail
. "$(dirname "$0")/broker.sh"
B=$1; ROUNDS=${2:-1}; PORT=18730
command -v perf >/dev/null || { echo "needs perf (Debian: linux-perf)" >&2; exit 2; }
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
reads() { curl -s "$LEASEHOLD_ADDR/metrics" | awk '/^leasehold_secret_read_duration_seconds_count/ {print $2}'; }
for round in $(seq 1 "$ROUNDS"); do
  DIR=$(mktemp -d /tmp/lhthreads.XXXX); PIDS=()
  printf 'listen = "127.0.0.1:%s"\ndatabase_url = "sqlite://%s/leasehold.db"\n[kms]\nprovider = "local"\nkey_file = "%s/master.key"\n' \
    "$PORT" "$DIR" "$DIR" > "$DIR/leasehold.toml"
  serve_broker "$B" "$DIR" "$PORT"
  export LEASEHOLD_ADDR=http://127.0.0.1:$PORT LEASEHOLD_TOKEN
  LEASEHOLD_TOKEN=$(cat "$DIR/token")
  "$B" secret create bench/audit/read --owner-team bench >/dev/null
  printf 'bench-value' | "$B" secret put bench/audit/read --value-file - >/dev/null
  # `bench read` first runs 5 s of an unaudited route, then 5 s of reads: measure from 6.5 s on.
  ( sleep 6.5; before=$(reads); head -1 /proc/stat > "$DIR/stat"
    perf stat -x, --per-thread -e task-clock,syscalls:sys_enter_pread64 -p "${PIDS[0]}" \
      -o "$DIR/perf.csv" -- sleep 2
    head -1 /proc/stat >> "$DIR/stat"
    echo $(( $(reads) - before )) > "$DIR/reads" ) &
  window=$!
  "$B" --json bench read --concurrency 32 --duration 5s --rounds 1 --secret bench/audit/read > "$DIR/bench.json"
  wait "$window"
  python3 - "$DIR" <<'PY'
import collections, json, re, sys
d = sys.argv[1]
reads = int(open(f"{d}/reads").read()) or 1
cpu, pread = collections.Counter(), collections.Counter()
for line in open(f"{d}/perf.csv"):
    f = line.strip().split(",")
    if len(f) < 4 or line.startswith("#"):
        continue
    group = re.sub(r"-?\d+$", "", f[0]).split()[0]
    try:
        value = float(f[1])
    except ValueError:
        continue
    (cpu if f[3] == "task-clock" else pread)[group] += value
rps = json.load(open(f"{d}/bench.json"))["read_median_rps"]
first, last = ([int(x) for x in line.split()[1:]] for line in open(f"{d}/stat"))
ticks = [b - a for a, b in zip(first, last)]
idle = (ticks[3] + ticks[4]) * 100 / sum(ticks)
parts = " · ".join(f"{g} {ms * 1000 / reads:.0f}" for g, ms in cpu.most_common(3))
print(f"{rps:7.0f} reads/s   server CPU per read {sum(cpu.values()) * 1000 / reads:.0f} µs ({parts})"
      f"   pread per read {sum(pread.values()) / reads:.2f}   machine idle {idle:.0f}%")
PY
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  rm -rf "$DIR"
done
