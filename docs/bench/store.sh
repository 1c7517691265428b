# Sourced by the bench scripts: `bench_store_url STORE DB DIR` prints the broker's store URL for
# STORE (sqlite: a file in DIR; postgres: the database DB, created afresh on the local server).
bench_store_url() {
  case $1 in
    sqlite) echo "sqlite://$3/store.db" ;;
    postgres)
      psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $2" -c "CREATE DATABASE $2" >&2
      echo "postgres://postgres@127.0.0.1:5432/$2" ;;
    *) echo "STORE must be sqlite or postgres" >&2; return 2 ;;
  esac
}

# `bench_store_init BINARY DIR URL PORT` writes DIR/leasehold.toml (the store at URL, a local
# master key in DIR, listening on 127.0.0.1:PORT), applies the migrations and prints the root
# token.
bench_store_init() {
  cat > "$2/leasehold.toml" <<TOML
listen = "127.0.0.1:$4"
database_url = "$3"
[kms]
provider = "local"
key_file = "$2/master.key"
TOML
  "$1" migrate --config "$2/leasehold.toml" >&2
  "$1" operator init --config "$2/leasehold.toml" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
