#!/usr/bin/env bash
# Creates the compose stack's secret files under deploy/compose/secrets/ (ignored by git), once: random passwords for
# the PostgreSQL superuser, the migrator and the runtime role, their connection strings, and the admin key. Existing
# files are kept, so re-running never changes a password the database already has.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir" && chmod 700 "$dir"
random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
put() { [ -s "$dir/$1" ] || { printf '%s' "$2" >"$dir/$1"; chmod 600 "$dir/$1"; echo "secrets.sh: wrote $1"; }; }

put postgres_password "$(random)"
put fts_migrator_password "$(random)"
put fts_app_password "$(random)"
put admin_key "sk-fts-admin-$(random)"
db="Host=postgres;Port=5432;Database=fts"
put migrations_connection "$db;Username=fts_migrator;Password=$(cat "$dir/fts_migrator_password")"
put app_connection "$db;Username=fts_app;Password=$(cat "$dir/fts_app_password")"
echo "secrets.sh: admin key in $dir/admin_key"
