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
