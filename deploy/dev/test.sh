#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL cluster that it starts and removes itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

command -v dotnet >/dev/null || { echo "test.sh: the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }

# Whole-suite runs on one machine take turns: run side by side they share the CPUs and each takes several times
# longer. A filtered run (arguments given) does not wait. Long-lived children (PostgreSQL, build servers) get the
# lock descriptor closed (9>&-) so that they cannot hold the lock after this script ends.
if [ $# -eq 0 ] && command -v flock >/dev/null; then
  exec 9>/tmp/fts-test-suite.lock
  flock -n 9 || { echo "test.sh: another whole-suite run is going on this machine; waiting for it" >&2; flock 9; }
fi

work=$(mktemp -d /tmp/fts-test.XXXXXX)
chmod 755 "$work"
cleanup() { deploy/dev/postgres.sh stop "$work/pg" || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

export FTS_TEST_POSTGRES
FTS_TEST_POSTGRES=$(deploy/dev/postgres.sh start "$work/pg" auto --fast 9>&-)
echo "PostgreSQL for tests: $FTS_TEST_POSTGRES"

dotnet build FineTuneService.sln -c Release -v q -nologo 9>&-
set +e
dotnet test FineTuneService.sln -c Release --no-build -nologo "$@" 9>&- 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e

# One plain closing line over all test assemblies.
awk '/(Passed|Failed)! +- Failed:/ {
       gsub(",", ""); for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
     } END { printf "Tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$work/test.log"
exit "$status"
