#!/usr/bin/env bash
# API hot-path benchmark: starts PostgreSQL and the API host (Production settings, no worker), creates a tenant, a
# file and a job through the API, then drives `hey` on loopback against the static Swagger page (the framework's
# ceiling) and GET job / events / checkpoints, at a fixed offered rate and at saturation, all in one run.
# Writes <out>/api.md and <out>/api.json. Run it on a quiet machine: the load generator shares the cores.
#   deploy/bench/api.sh [--out docs/benchmarks/api] [--rate 1000] [--fixed-seconds 20] [--saturation-seconds 10]
#                       [--connections 16] [--quick] [--no-build]
# --quick (3 s phases, writes to /tmp unless --out is given) smoke-tests the harness; its figures mean nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

out=docs/benchmarks/api; rate=1000; fixed=20; saturation=10; connections=16; build=1; quick=0; out_given=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; out_given=1; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --fixed-seconds) fixed=$2; shift 2 ;;
    --saturation-seconds) saturation=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --quick) quick=1; fixed=3; saturation=3; shift ;;
    --no-build) build=0; shift ;;
    *) echo "api.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$quick" = 1 ] && [ "$out_given" = 0 ] && out=/tmp/fts-bench-api-quick
say() { echo "api.sh: $*" >&2; }

if ! command -v hey >/dev/null; then
  [ "$(id -u)" = 0 ] || { say "hey is required: sudo apt-get install -y hey"; exit 1; }
  say "installing hey (apt-get install hey)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey >&2
fi

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  say "no free port"; return 1
}

work=$(mktemp -d /tmp/fts-bench-api.XXXXXX)
chmod 755 "$work"
api_pid=""
cleanup() {
  if [ -n "$api_pid" ] && kill -0 "$api_pid" 2>/dev/null; then kill -TERM "$api_pid"; wait "$api_pid" 2>/dev/null || true; fi
  deploy/dev/postgres.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

connection=$(deploy/dev/postgres.sh start "$work/pg" auto)
[ "$build" = 1 ] && { say "building the API (Release)"; dotnet build src/FineTuneService.Api/FineTuneService.Api.csproj -c Release -v q -nologo >&2; }

# A base model only needs its config.json to be registered; no worker runs, so the job stays queued.
mkdir -p "$work/models/bench-tiny"
cat > "$work/models/bench-tiny/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 256, "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 128, "tie_word_embeddings": false, "torch_dtype": "float32"}
JSON
port=$(free_port); base="http://127.0.0.1:$port"
admin_key="sk-fts-bench-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
say "starting the API at $base (Production)"
(cd src/FineTuneService.Api/bin/Release/net10.0 && ASPNETCORE_ENVIRONMENT=Production ConnectionStrings__Postgres="$connection" \
  Database__MigrateOnStartup=true Models__Directory="$work/models" FTS_ADMIN_KEY="$admin_key" Logging__LogLevel__Default=Warning \
  exec dotnet FineTuneService.Api.dll --urls "$base") >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 180); do
  curl -sf -o /dev/null "$base/swagger/index.html" && break
  kill -0 "$api_pid" 2>/dev/null || { cat "$work/api.log" >&2; say "the API exited during start"; exit 1; }
  sleep 1
done

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
key=$(curl -sf "$base/v1/admin/tenants" -H "Authorization: Bearer $admin_key" -H "Content-Type: application/json" -d '{"name": "bench"}' | field api_key)
for i in $(seq 20); do echo "{\"messages\": [{\"role\": \"user\", \"content\": \"What is $i + $i?\"}, {\"role\": \"assistant\", \"content\": \"$((2 * i))\"}]}"; done >"$work/train.jsonl"
file=$(curl -sf "$base/v1/files" -H "Authorization: Bearer $key" -F purpose=fine-tune -F file=@"$work/train.jsonl" | field id)
job=$(curl -sf "$base/v1/fine_tuning/jobs" -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
  -d "{\"model\": \"bench-tiny\", \"training_file\": \"$file\", \"suffix\": \"bench\", \"safety\": {\"strategy\": [\"antidote\"], \"params\": {}}}" | field id)
for _ in $(seq 60); do
  status=$(curl -sf "$base/v1/fine_tuning/jobs/$job" -H "Authorization: Bearer $key" | field status)
  [ "$status" != validating_files ] && break
  sleep 1
done
say "job $job is $status"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() { # the postmaster's reaped children plus its live ones
  local pm s p; pm=$(head -1 "$work/pg/data/postmaster.pid"); s=$(awk '{print $16 + $17}' "/proc/$pm/stat")
  for p in $pm $(pgrep -P "$pm"); do [ -r "/proc/$p/stat" ] && s=$((s + $(cpu_ticks "$p"))); done; echo "$s"
}
tick=$(getconf CLK_TCK)

# run NAME PATH MODE SECONDS: one hey run; prints a JSON object and keeps a markdown row.
rows=(); results=()
run() {
  local name=$1 path=$2 mode=$3 seconds=$4 args
  if [ "$mode" = fixed ]; then
    local workers=$(( rate / 20 )); args=(-c "$workers" -q 20)   # workers x 20 req/s each = the offered rate
  else
    args=(-c "$connections")
  fi
  local a p; a=$(cpu_ticks "$api_pid"); p=$(pg_ticks)
  hey -z "${seconds}s" "${args[@]}" -H "Authorization: Bearer $key" "$base$path" >"$work/hey.txt"
  local a2 p2; a2=$(cpu_ticks "$api_pid"); p2=$(pg_ticks)
  awk -v name="$name" -v mode="$mode" -v offered="$([ "$mode" = fixed ] && echo "$rate" || echo null)" \
      -v api=$((a2 - a)) -v pg=$((p2 - p)) -v tick="$tick" -v sec="$seconds" '
    /Requests\/sec:/ { rps = $2 }
    /^ +50% in/ { p50 = $3 * 1000 }  /^ +90% in/ { p90 = $3 * 1000 }  /^ +99% in/ { p99 = $3 * 1000 }
    /^ +\[[0-9]+\]/ { code = substr($1, 2, 3); n = $2; total += n; if (code != "200") bad += n }
    /^Error distribution/ { errors = 1 }  errors && /^ +\[[0-9]+\]/ { bad += $2 }
    END {
      ms_api = total ? api * 1000 / tick / total : 0; ms_pg = total ? pg * 1000 / tick / total : 0
      printf "{\"name\": \"%s\", \"mode\": \"%s\", \"offered_rps\": %s, \"seconds\": %d, \"requests\": %d, \"non_200\": %d, \"rps\": %.1f, \"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, \"api_cpu_ms_per_request\": %.3f, \"postgres_cpu_ms_per_request\": %.3f}\n", name, mode, offered, sec, total, bad, rps, p50, p90, p99, ms_api, ms_pg
    }' "$work/hey.txt"
}

endpoints=("static page|/swagger/index.html" "GET job|/v1/fine_tuning/jobs/$job" "GET events|/v1/fine_tuning/jobs/$job/events" "GET checkpoints|/v1/fine_tuning/jobs/$job/checkpoints")
say "warming up"
for e in "${endpoints[@]}"; do hey -n 3000 -c 8 -H "Authorization: Bearer $key" "$base${e#*|}" >/dev/null; done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for mode in fixed saturation; do
  for e in "${endpoints[@]}"; do
    seconds=$([ "$mode" = fixed ] && echo "$fixed" || echo "$saturation")
    say "$mode: ${e%%|*} (${seconds} s)"
    results+=("$(run "${e%%|*}" "${e#*|}" "$mode" "$seconds")")
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$out"
num() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" <<<"$1"; }
pick() { local r; for r in "${results[@]}"; do case "$r" in *"\"name\": \"$1\", \"mode\": \"$2\""*) echo "$r"; return ;; esac; done; }
job_fixed=$(pick "GET job" fixed); job_sat=$(pick "GET job" saturation); static_sat=$(pick "static page" saturation)
p99=$(num "$job_fixed" p99_ms); sat=$(num "$job_sat" rps); ceiling=$(num "$static_sat" rps)
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "le") ? v <= t : v >= t; print ok ? "met" : "not met" }'; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo "+changes")

{
  echo "{"
  echo "  \"created_at\": \"$started\", \"commit\": \"$commit\", \"quick\": $([ "$quick" = 1 ] && echo true || echo false),"
  echo "  \"machine\": {\"cpu\": \"$cpu\", \"logical_cores\": $(nproc), \"load_average_before\": \"$load_before\", \"load_average_after\": \"$load_after\"},"
  echo "  \"load_generator\": \"hey $(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo '?') on loopback, same machine\", \"saturation_connections\": $connections,"
  echo "  \"results\": ["
  for i in "${!results[@]}"; do echo "    ${results[$i]}$([ "$i" -lt $((${#results[@]} - 1)) ] && echo ,)"; done
  echo "  ]"
  echo "}"
} >"$out/api.json"

{
  echo "# API hot-path benchmark (\`deploy/bench/api.sh\`)"
  echo
  echo "Measured $started on $cpu, $(nproc) logical cores, commit $commit. Load average before $load_before, after $load_after."
  [ "$quick" = 1 ] && echo && echo "**Quick smoke run (3 s phases): not a measurement.**"
  echo
  echo "The API host runs with Production settings and no worker; \`hey\` runs on the same machine over loopback, so it"
  echo "takes part of the same cores. Fixed rate: $((rate / 20)) workers × 20 req/s ($rate req/s offered) for $fixed s."
  echo "Saturation: $connections connections as fast as they go for $saturation s. CPU ms per request are the API process's"
  echo "and PostgreSQL's user+system time over the run divided by the requests served."
  echo
  echo "| endpoint | load | req/s | p50 ms | p90 ms | p99 ms | non-200 | API CPU ms/req | PostgreSQL CPU ms/req |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${results[@]}"; do
    name=$(sed -n 's/.*"name": "\([^"]*\)".*/\1/p' <<<"$r"); mode=$(sed -n 's/.*"mode": "\([^"]*\)".*/\1/p' <<<"$r")
    label=$([ "$mode" = fixed ] && echo "$rate req/s offered" || echo "saturation ($connections conn.)")
    echo "| $name | $label | $(num "$r" rps) | $(num "$r" p50_ms) | $(num "$r" p90_ms) | $(num "$r" p99_ms) | $(num "$r" non_200) | $(num "$r" api_cpu_ms_per_request) | $(num "$r" postgres_cpu_ms_per_request) |"
  done
  echo
  echo "- GET job p99 at $rate req/s: **$p99 ms** (goal ≤ 10 ms: $(verdict "$p99" 10 le))."
  echo "- GET job at saturation: **$sat req/s** (goal ≥ 4,000: $(verdict "$sat" 4000 ge)), $(awk -v a="$sat" -v b="$ceiling" 'BEGIN { printf "%.0f", b ? 100 * a / b : 0 }') % of the static page's $ceiling req/s in the same run."
} >"$out/api.md"
say "wrote $out/api.md and $out/api.json"
