# Sourced by the bench scripts. `serve_broker BINARY DIR PORT`: migrates the store configured in
# DIR/leasehold.toml, initialises it (the root token goes to DIR/token), starts the server in the
# background (its pid is appended to the caller's PIDS array) and waits until it is healthy.
serve_broker() {
  local b=$1 dir=$2 port=$3
  "$b" migrate --config "$dir/leasehold.toml" >/dev/null
  "$b" operator init --config "$dir/leasehold.toml" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$dir/token"
  "$b" server --config "$dir/leasehold.toml" > "$dir/server.log" 2>&1 &
  PIDS+=($!)
  until curl -sf "http://127.0.0.1:$port/v1/sys/health" >/dev/null; do sleep 0.1; done
}
