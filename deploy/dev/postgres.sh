#!/usr/bin/env bash
# A private PostgreSQL cluster on 127.0.0.1 for the dev run and the tests.
#   postgres.sh start <dir> <port|auto> [--fast]   initdb if needed, start, create database "fts"; prints the connection string
#     "auto" picks a free port below the kernel's ephemeral range and tries another when the bind still loses a race.
#   postgres.sh stop <dir>
# Installs Debian's postgresql when it is missing. initdb refuses root, so as root the cluster runs as "postgres".
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  return 1
}

ensure_installed() {
  pg_bin >/dev/null && return
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed; run: sudo apt-get install -y postgresql"
  echo "Installing PostgreSQL (apt-get install postgresql)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# A port below the ephemeral range, so no outgoing connection can hold it; a listener there is skipped.
random_free_port() {
  local low p
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] 2>/dev/null || low=32768
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % (low - 10000)))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: postgres.sh start <dir> <port|auto> [--fast] | stop <dir>"
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)

case "$cmd" in
  start)
    requested=${3:?port or auto required}; port=$requested
    fast=${4:-}
    ensure_installed
    bin=$(pg_bin)
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -A trust -U fts -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    opts="-k $dir -c listen_addresses=127.0.0.1 -c max_connections=200"
    # Throwaway test clusters need no durability.
    [ "$fast" = "--fast" ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      tries=1; [ "$requested" = auto ] && tries=5
      for try in $(seq "$tries"); do
        [ "$requested" = auto ] && port=$(random_free_port)
        rm -f "$dir/postgres.log"
        as_owner "$bin/pg_ctl" -D "$dir/data" -o "$opts -p $port" -l "$dir/postgres.log" -w -t 60 start >/dev/null && break
        if [ "$try" -lt "$tries" ] && grep -q "Address already in use" "$dir/postgres.log"; then
          echo "postgres.sh: port $port is taken; trying another" >&2; continue
        fi
        cat "$dir/postgres.log" >&2; die "PostgreSQL did not start"
      done
    else
      port=$(as_owner head -4 "$dir/data/postmaster.pid" | tail -1)
    fi
    if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U fts -d postgres -tAc "select 1 from pg_database where datname='fts'" | grep -q 1; then
      "$bin/psql" -h 127.0.0.1 -p "$port" -U fts -d postgres -qc "create database fts" >/dev/null
    fi
    echo "Host=127.0.0.1;Port=$port;Username=fts;Database=fts"
    ;;
  stop)
    bin=$(pg_bin) || exit 0
    [ -f "$dir/data/PG_VERSION" ] || exit 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *) die "unknown command $cmd" ;;
esac
