#!/usr/bin/env bash
# docker-entrypoint-initdb.d hook of the postgres image (first start of an empty volume only): creates the migrator
# and runtime roles of roles.sql with the passwords of the compose secrets.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v migrator=fts_migrator -v migrator_password="$(cat /run/secrets/fts_migrator_password)" \
  -v app=fts_app -v app_password="$(cat /run/secrets/fts_app_password)" \
  -f /etc/fts/roles.sql
