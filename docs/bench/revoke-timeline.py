#!/usr/bin/env python3
"""Usage: docs/bench/revoke-timeline.py SERVER_LOG

Splits one mass revocation job of `docs/bench/revoke.sh` into its phases, from the server's JSON
log (run with RUST_LOG=info,leasehold_broker::revocations=debug): the POST's latency, the time
from its answer to the first batch's drops, the batches, and the time from the last batch's
record to the answer of the bench's waiting GET."""
import json
import sys


def seconds(timestamp):
    # "2026-12-03T13:22:21.211226Z": minutes and seconds are enough within one job.
    return 60 * int(timestamp[14:16]) + float(timestamp[17:-1])


request = first = last = answered = None
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    entry = json.loads(line)
    fields, at = entry["fields"], seconds(entry["timestamp"])
    route = entry.get("span", {}).get("route", "")
    message = fields.get("message", "")
    if message == "request served" and route == "/v1/revocations":
        request = (at, fields["latency_ms"])
    elif message == "revocation batch recorded":
        began = at - (fields["drop_ms"] + fields["record_ms"]) / 1000
        first = began if first is None else min(first, began)
        last = at
    elif message == "request served" and route == "/v1/revocations/{id}":
        answered = at
if None in (request, first, last, answered):
    sys.exit("no complete job in this log (was it run with revocations=debug?)")
print(
    f"request {request[1]:.1f} ms | answer -> first drop {1000 * (first - request[0]):.1f} ms"
    f" | batches {1000 * (last - first):.0f} ms | last batch -> answered {1000 * (answered - last):.1f} ms"
    f" | total {1000 * (answered - (request[0] - request[1] / 1000)):.0f} ms"
)
