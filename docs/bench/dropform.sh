#!/usr/bin/env bash
# Usage: docs/bench/dropform.sh each|list
# psql alone: 10,000 roles in a group role, created by a CREATEROLE admin, then dropped over four
# sessions, 50 users per round trip, with PostgreSQL's default revocation statements (GRANT,
# REASSIGN OWNED BY, DROP OWNED BY, DROP ROLE IF EXISTS) user by user (`each`) or in list form
# (`list`, one statement per template for the 50 users). Prints the drop time.
set -euo pipefail
MODE=$1; N=10000; C=4; P="psql -q -X -h 127.0.0.1 -U lhb_admin -d postgres"
psql -q -X -h 127.0.0.1 -U postgres -c "DROP TABLE IF EXISTS lhb_orders" -c "DROP ROLE IF EXISTS lhb_readers" -c "DROP ROLE IF EXISTS lhb_admin" \
  -c "CREATE ROLE lhb_admin LOGIN CREATEROLE PASSWORD 'bench-admin'" -c "CREATE ROLE lhb_readers NOLOGIN" \
  -c "GRANT lhb_readers TO lhb_admin WITH ADMIN OPTION"
W=$(mktemp -d /tmp/lhdropform.XXXX)
trap 'rm -rf "$W"' EXIT
for c in $(seq 0 $((C-1))); do
  python3 - $c $N $C $MODE $W <<'PY'
import sys
c,n,k=map(int,sys.argv[1:4]); mode=sys.argv[4]; w=sys.argv[5]
ids=[f"lhb_form_{i}" for i in range(n) if i%k==c]
cr=open(f"{w}/create.{c}.sql","w"); dr=open(f"{w}/drop.{c}.sql","w")
for j in range(0,len(ids),50):
    ch=ids[j:j+50]
    cr.write(" \\; ".join(f"CREATE ROLE {u} LOGIN VALID UNTIL '2030-01-01' \\; GRANT lhb_readers TO {u}" for u in ch)+";\n")
    if mode=="each":
        dr.write(" \\; ".join(f"GRANT {u} TO CURRENT_USER \\; REASSIGN OWNED BY {u} TO CURRENT_USER \\; DROP OWNED BY {u} \\; DROP ROLE IF EXISTS {u}" for u in ch)+";\n")
    else:
        l=", ".join(ch)
        dr.write(f"GRANT {l} TO CURRENT_USER \\; REASSIGN OWNED BY {l} TO CURRENT_USER \\; DROP OWNED BY {l} \\; DROP ROLE IF EXISTS {l};\n")
PY
done
CP=(); for c in $(seq 0 $((C-1))); do $P -f $W/create.$c.sql & CP+=($!); done; wait "${CP[@]}"
psql -q -X -h 127.0.0.1 -U postgres -c CHECKPOINT
t0=$(date +%s.%N)
DP=(); for c in $(seq 0 $((C-1))); do $P -f $W/drop.$c.sql & DP+=($!); done; wait "${DP[@]}"
t1=$(date +%s.%N)
echo "mode=$MODE drop=$(python3 -c "print(round($t1-$t0,3))") left=$(psql -AtX -h 127.0.0.1 -U postgres -c "select count(*) from pg_roles where rolname like 'lhb\\_form\\_%'")"
