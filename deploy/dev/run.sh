#!/usr/bin/env bash
# The README's "run" command for a fresh Debian machine:
#   installs what is missing (PostgreSQL via apt, NuGet packages), starts a private PostgreSQL cluster under .data/
#   while it builds the two hosts it runs (API and worker, nothing else), serves the shipped base model
#   models/safetune-tiny (with its located safety layers), starts the worker host in the background and serves the API
#   at http://127.0.0.1:8080 (Development) in the foreground. Ctrl+C stops everything it started.
#   Only when the models folder has no model at all does it build the bootstrap model (fts bootstrap build, ~15 min).
# Settings (environment): FTS_PG_PORT (5544), FTS_URL (http://127.0.0.1:8080), FTS_WORKER_URL (the worker's health
#   endpoints, http://127.0.0.1:8081), FTS_MODELS_DIR (models),
#   FTS_BOOTSTRAP_SIZE (tiny; "test" builds a toy model in about a minute), FTS_KEEP_POSTGRES=1 leaves the cluster up.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

pg_port=${FTS_PG_PORT:-5544}
url=${FTS_URL:-http://127.0.0.1:8080}
worker_url=${FTS_WORKER_URL:-http://127.0.0.1:8081}
models=$(mkdir -p "${FTS_MODELS_DIR:-models}" && cd "${FTS_MODELS_DIR:-models}" && pwd)
data="$root/.data"
config=Release
say() { echo "run.sh: $*" >&2; }

ensure_dotnet() {
  command -v dotnet >/dev/null && dotnet --list-sdks | grep -q '^10\.' && return
  if [ "$(id -u)" = 0 ] && apt-cache show dotnet-sdk-10.0 >/dev/null 2>&1; then
    say "installing the .NET 10 SDK (apt-get install dotnet-sdk-10.0)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dotnet-sdk-10.0 >&2
    return
  fi
  say "the .NET 10 SDK is required: https://learn.microsoft.com/dotnet/core/install/linux-debian"
  exit 1
}

worker_pid=""
pg_dir=""
cleanup() {
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    say "stopping the worker ($worker_pid)"
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  if [ "${FTS_KEEP_POSTGRES:-0}" != 1 ]; then
    say "stopping PostgreSQL"
    deploy/dev/postgres.sh stop "$pg_dir" || true
  fi
}

# As root the cluster runs as the "postgres" user, which must be able to reach its data folder. A checkout under a
# private home (e.g. /root) is not reachable; the cluster then lives under /var/lib/fts-dev instead.
world_traversable() {
  local d=$1
  while [ "$d" != / ]; do
    [ -n "$(find "$d" -maxdepth 0 -perm -o+x)" ] || return 1
    d=$(dirname "$d")
  done
}

ensure_dotnet
mkdir -p "$data"
chmod 755 "$data"
pg_dir="$data/postgres"
if [ "$(id -u)" = 0 ] && ! world_traversable "$data"; then
  pg_dir="/var/lib/fts-dev/$(basename "$root")-$(echo "$root" | sha1sum | cut -c1-8)"
  mkdir -p "$pg_dir" && chmod 755 /var/lib/fts-dev "$pg_dir"
fi
trap cleanup EXIT
trap 'exit 130' INT TERM
# PostgreSQL starts (initdb on the first run) while the hosts build.
deploy/dev/postgres.sh start "$pg_dir" "$pg_port" >"$data/connection" &
pg_pid=$!

say "restoring and building the API and worker hosts ($config)"
dotnet build deploy/dev/run.slnf -c "$config" -v q -nologo

if ! ls "$models"/*/config.json >/dev/null 2>&1; then
  size=${FTS_BOOTSTRAP_SIZE:-tiny}
  say "no base model in $models: building the bootstrap model (size $size; about 12 minutes for tiny, once)"
  dotnet run --project src/FineTuneService.Cli -c "$config" -- bootstrap build --size "$size" --out "$models/safetune-tiny"
fi

wait "$pg_pid" || { say "PostgreSQL did not start"; exit 1; }
connection=$(cat "$data/connection")
say "PostgreSQL: $connection (data in $pg_dir)"

export ConnectionStrings__Postgres="$connection"
export ASPNETCORE_ENVIRONMENT=Development DOTNET_ENVIRONMENT=Development
export Database__MigrateOnStartup=true
export Models__Directory="$models"

bin() { echo "$root/src/$1/bin/$config/net10.0"; }

# The API applies migrations before it listens and then imports the base models in the background (its /readyz
# answers 200 once they are in); the worker starts once the API listens, so the two never race on a fresh database.
say "starting the API at $url (Swagger: $url/swagger, Hangfire: $url/hangfire, sign in with the admin key)"
(cd "$(bin FineTuneService.Api)" && exec dotnet FineTuneService.Api.dll --urls "$url") &
api_pid=$!
trap 'kill -TERM $api_pid 2>/dev/null; wait $api_pid 2>/dev/null; exit 130' INT TERM
hostport=${url#*://}; hostport=${hostport%%/*}

# GET a path with bash alone (a fresh machine may have no curl); true when it answers 200.
answers_200() (
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$hostport" >&3
  IFS= read -r status <&3 || true
  [[ $status == "HTTP/1."?" 200"* ]]
)
wait_for() { # path, what
  for _ in $(seq 300); do
    answers_200 "$1" 2>/dev/null && return
    kill -0 "$api_pid" 2>/dev/null || { say "the API exited during start"; exit 1; }
    sleep 0.5
  done
  say "the API did not get $2 in time"; exit 1
}

wait_for /healthz "to listen"
say "starting the worker host (health at $worker_url)"
(cd "$(bin FineTuneService.Worker)" && exec dotnet FineTuneService.Worker.dll --urls "$worker_url") &
worker_pid=$!

wait_for /readyz "its base models imported"
say "ready: $url  (dev admin key: sk-fts-admin-dev; base models: $(ls -d "$models"/*/ | xargs -n1 basename | tr '\n' ' '))"
wait "$api_pid"
