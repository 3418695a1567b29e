#!/usr/bin/env bash
# OIDC endpoint benchmark: idp (Granian, 2 workers, PostgreSQL + Redis) against panva's
# node-oidc-provider (one process, in-memory), same load generator, same run, loopback.
# Documented in benchmarks/oidc/README.md. Usage (from the repository root):
#
#     make bench-oidc                      # or: bash benchmarks/oidc/run.sh
#     RUNS=1 DURATION=3 WARMUP=1 make bench-oidc   # a quick smoke test of the harness
#
# Knobs (environment): RUNS (3), DURATION (15 s), WARMUP (3 s), CONNECTIONS (16),
# THREADS (2, wrk threads), OURS_PORT (18080), NODE_PORT (18081), GUNICORN_PORT (18082;
# the same idp app under gunicorn gthread, as issue 3 words it; GUNICORN=0 leaves it out),
# BENCH_DATABASE (postgresql | sqlite; default postgresql),
# BENCH_PG_ADMIN_URL (postgresql://postgres@127.0.0.1:5432/test: where the fresh
# database is created), BENCH_PG_DB (idp_bench), IDP_REDIS_URL (redis://127.0.0.1:6379/0).
# Output: benchmarks/.work/oidc/report.md (Markdown for benchmarks/RESULTS.md),
# results.jsonl (every wrk run), the servers' logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/benchmarks/oidc
WORK=$ROOT/benchmarks/.work/oidc
PY=$ROOT/.venv/bin/python
IDP=$ROOT/.venv/bin/idp
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
OURS_PORT=${OURS_PORT:-18080}
NODE_PORT=${NODE_PORT:-18081}
GUNICORN_PORT=${GUNICORN_PORT:-18082}
GUNICORN=${GUNICORN:-1}
BENCH_DATABASE=${BENCH_DATABASE:-postgresql}
BENCH_PG_ADMIN_URL=${BENCH_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/test}
BENCH_PG_DB=${BENCH_PG_DB:-idp_bench}
REDIS_URL=${IDP_REDIS_URL:-redis://127.0.0.1:6379/0}
OURS=http://127.0.0.1:$OURS_PORT
NODE=http://127.0.0.1:$NODE_PORT
GUNI=http://127.0.0.1:$GUNICORN_PORT
TOKENS_PER_WRK=$((2 * CONNECTIONS))  # refresh chains: two per connection, one spare

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench-oidc: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ dependencies
[ -x "$IDP" ] || die "no .venv: run 'make bench-oidc' (it builds .venv) or 'make run' first"
command -v node >/dev/null || die "node is required (Node.js 20 or later)"
if ! command -v wrk >/dev/null; then
  say "installing wrk from Debian"
  [ "$(id -u)" = 0 ] || die "wrk is missing; install it with: sudo apt-get install -y wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null || {
    apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null
  }
fi
if [ "$GUNICORN" = 1 ] && ! "$PY" -c 'import gunicorn' 2>/dev/null; then
  say "installing the bench extra (gunicorn, for the comparison server)"
  "$PY" -m pip install --quiet -e "$ROOT[bench]"
fi
pinned=$(node -p "require('$HERE/node/package.json').dependencies['oidc-provider']")
installed=$(node -p "try { require('$HERE/node/node_modules/oidc-provider/package.json').version } catch { '' }")
if [ "$pinned" != "$installed" ]; then
  say "installing oidc-provider $pinned (npm ci, from package-lock.json)"
  (cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

mkdir -p "$WORK"
rm -f "$WORK"/*.txt "$WORK"/results.jsonl "$WORK"/*.log
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ our server
say "idp: fresh $BENCH_DATABASE database, clients, user"
if [ "$BENCH_DATABASE" = postgresql ]; then
  "$PY" - "$BENCH_PG_ADMIN_URL" "$BENCH_PG_DB" <<'EOF'
import sys, psycopg
admin, name = sys.argv[1:3]
with psycopg.connect(admin, autocommit=True) as conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.execute(f'CREATE DATABASE "{name}"')
EOF
  base=${BENCH_PG_ADMIN_URL%/*}
  export IDP_DATABASE_URL="${base/postgresql:/postgresql+psycopg:}/$BENCH_PG_DB"
elif [ "$BENCH_DATABASE" = sqlite ]; then
  rm -f "$WORK/idp.sqlite3"
  export IDP_DATABASE_URL="sqlite:///$WORK/idp.sqlite3"
else
  die "BENCH_DATABASE must be postgresql or sqlite"
fi
export IDP_REDIS_URL=$REDIS_URL
export IDP_REDIS_PREFIX="idp-bench-$$"          # own counters in a shared Redis; nothing flushed
export IDP_ISSUER=$OURS
export IDP_KEYS_DIR=$WORK/keys
export IDP_MAIL_OUTBOX=$WORK/outbox
export IDP_MFA_POLICY=optional                    # password-only sign-in for the set-up flow
# The per-address limits (300 token and 1200 introspection requests a minute) would turn a
# load test from one address into a 429 test. They stay enabled (each request still pays
# for its Redis counter), only the ceiling is lifted.
export IDP_RATE_LIMIT_TOKEN="10000000 per minute"
export IDP_RATE_LIMIT_INTROSPECTION="10000000 per minute"
unset IDP_ENV IDP_KEK
"$IDP" db upgrade >/dev/null
password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
printf '%s\n' "$password" | "$IDP" users create --email bench@example.com --password-stdin --verified >/dev/null
cc=$("$IDP" clients create --name bench-service --grant-type client_credentials --scope api --json)
rp=$("$IDP" clients create --name bench-app --first-party --redirect-uri http://127.0.0.1:9/callback \
  --grant-type authorization_code --grant-type refresh_token --scope "openid api" --json)
"$PY" - "$cc" "$rp" "$WORK/ours-clients.json" <<'EOF'
import json, sys
cc, rp, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rp["redirect_uri"] = "http://127.0.0.1:9/callback"
json.dump({"cc": cc, "rp": rp, "user": "bench@example.com"}, open(out, "w"))
EOF
"$PY" - "$WORK/node-clients.json" <<'EOF'
import json, secrets, sys
new = lambda: {"client_id": secrets.token_urlsafe(16), "client_secret": secrets.token_urlsafe(32)}
rp = new() | {"redirect_uri": "http://127.0.0.1:9/callback"}
json.dump({"cc": new(), "rp": rp, "user": "bench"}, open(sys.argv[1], "w"))
EOF

SERVED=("$OURS" "$NODE")
[ "$GUNICORN" = 1 ] && SERVED+=("$GUNI")
for url in "${SERVED[@]}"; do  # a server already there would be measured instead of ours
  ! curl -s -o /dev/null --max-time 2 "$url/" || die "something already listens on $url (set OURS_PORT / NODE_PORT)"
done
say "starting idp (Granian, 2 workers) on $OURS and node-oidc-provider on $NODE"
setsid "$IDP" serve --workers 2 --port "$OURS_PORT" >"$WORK/ours.log" 2>&1 &
PIDS+=($!)
setsid node "$HERE/node/server.mjs" "$NODE_PORT" "$WORK/node-clients.json" >"$WORK/node.log" 2>&1 &
PIDS+=($!)
if [ "$GUNICORN" = 1 ]; then
  # The same app, database and Redis under gunicorn: 2 gthread workers of 8 threads,
  # keep-alive, one SO_REUSEPORT socket per worker (what `idp serve` ran until
  # 2026-11-28), access log on as under `idp serve`. Measured on the two target cases.
  setsid "$ROOT/.venv/bin/gunicorn" --bind "127.0.0.1:$GUNICORN_PORT" --workers 2 --worker-class gthread \
    --threads 8 --keep-alive 5 --reuse-port --access-logfile - --forwarded-allow-ips "" \
    'idp.server:application()' >"$WORK/gunicorn.log" 2>&1 &
  PIDS+=($!)
fi
for url in "${SERVED[@]}"; do
  for _ in $(seq 1 60); do
    curl -sf -o /dev/null "$url/.well-known/openid-configuration" && break
    sleep 0.5
  done
  curl -sf -o /dev/null "$url/.well-known/openid-configuration" || die "$url did not start (see $WORK/*.log)"
done

# ------------------------------------------------------------------ refresh tokens
# Every wrk run (warm-up and measured, per server) gets its own fresh chains, plus one
# token per server that introspection looks at (never rotated).
per_server=$((RUNS * 2 * TOKENS_PER_WRK + 1))
# The gunicorn server shares idp's database: its chains are more tokens from idp.
ours_count=$((per_server + GUNICORN * RUNS * 2 * TOKENS_PER_WRK))
say "obtaining $per_server refresh tokens from each server (authorization code + PKCE)"
printf '%s\n' "$password" | "$PY" "$HERE/prepare.py" ours "$OURS" "$WORK/ours-clients.json" "$ours_count" \
  "$WORK/ours-refresh-all.txt" --password-stdin --outbox "$IDP_MAIL_OUTBOX"
"$PY" "$HERE/prepare.py" node "$NODE" "$WORK/node-clients.json" "$per_server" "$WORK/node-refresh-all.txt"
if [ "$GUNICORN" = 1 ]; then
  tail -n $((RUNS * 2 * TOKENS_PER_WRK)) "$WORK/ours-refresh-all.txt" |
    split -l "$TOKENS_PER_WRK" -d -a 3 --additional-suffix=.txt - "$WORK/gunicorn-chain-"
  head -n "$per_server" "$WORK/ours-refresh-all.txt" >"$WORK/ours-refresh-own.txt"
  mv "$WORK/ours-refresh-own.txt" "$WORK/ours-refresh-all.txt"
fi
for s in ours node; do
  head -n 1 "$WORK/$s-refresh-all.txt" >"$WORK/$s-introspect.txt"
  tail -n +2 "$WORK/$s-refresh-all.txt" | split -l "$TOKENS_PER_WRK" -d -a 3 --additional-suffix=.txt - "$WORK/$s-chain-"
done

field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' "$@"; }
basic() { printf 'Basic %s' "$(printf '%s:%s' "$(field "$1" "$2" client_id)" "$(field "$1" "$2" client_secret)" | base64 -w0)"; }
OURS_CC=$(basic "$WORK/ours-clients.json" cc)
OURS_RP=$(basic "$WORK/ours-clients.json" rp)
NODE_CC=$(basic "$WORK/node-clients.json" cc)
NODE_RP=$(basic "$WORK/node-clients.json" rp)

# ------------------------------------------------------------------ measuring
chain=0
next_chain() { printf '%s/%s-chain-%03d.txt' "$WORK" "$1" "$2"; }

# wrk_case SERVER CASE URL SCRIPT ARGS... : warm-up (discarded), then the measured run.
wrk_case() {
  local server=$1 name=$2 url=$3 script=$4
  shift 4
  local warm_args=("$@") measure_args=("$@")
  if [ "$name" = refresh_token ]; then  # fresh chains for each of the two runs
    warm_args[2]=$(next_chain "$server" "$chain")
    measure_args[2]=$(next_chain "$server" $((chain + 1)))
  fi
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" -s "$HERE/lua/$script" "$url" -- "${warm_args[@]}" >/dev/null
  local load line
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  line=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s -s "$HERE/lua/$script" "$url" -- "${measure_args[@]}" |
    sed -n 's/^BENCH //p')
  [ -n "$line" ] || die "wrk printed no result for $server $name"
  printf '{"run":%d,"server":"%s","case":"%s","load_before":"%s","result":%s}\n' \
    "$run" "$server" "$name" "$load" "$line" >>"$WORK/results.jsonl"
  "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); print("  %-5s %-34s %9.1f req/s  p50 %7.2f ms  p99 %7.2f ms  non-2xx %d  bad body %d" % (sys.argv[2], sys.argv[3], r["rps"], r["p50_ms"], r["p99_ms"], r["bad_status"], r["bad_body"]))' \
    "$line" "$server" "$name" >&2
}

bench_server() {
  local s=$1
  if [ "$s" = gunicorn ]; then  # the two target cases only
    wrk_case "$s" client_credentials "$GUNI" fixed.lua POST /token '"access_token"' "$OURS_CC" \
      "grant_type=client_credentials&scope=api"
    wrk_case "$s" refresh_token "$GUNI" refresh.lua /token "$OURS_RP" CHAIN "$THREADS" ""
    return
  fi
  if [ "$s" = ours ]; then
    local url=$OURS cc=$OURS_CC rp=$OURS_RP token=/token introspect=/introspect jwks=/jwks.json refresh_extra=""
  else
    local url=$NODE cc=$NODE_CC rp=$NODE_RP token=/token introspect=/token/introspection jwks=/jwks
    # No ID token on refresh, as idp: node-oidc-provider issues one whenever the refresh
    # token's scope has openid, unless the request narrows the scope.
    local refresh_extra="&scope=api"
  fi
  wrk_case "$s" client_credentials "$url" fixed.lua POST "$token" '"access_token"' "$cc" \
    "grant_type=client_credentials&scope=api"
  wrk_case "$s" refresh_token "$url" refresh.lua "$token" "$rp" CHAIN "$THREADS" "$refresh_extra"
  wrk_case "$s" introspection "$url" fixed.lua POST "$introspect" '"active"%s*:%s*true' "$rp" \
    "token=$(cat "$WORK/$s-introspect.txt")&token_type_hint=refresh_token"
  if [ "$s" = ours ]; then
    # idp only: node-oidc-provider does not store JWT access tokens, so it cannot
    # introspect them (active:false); idp checks the signature and the jti deny-list.
    local at
    at=$(curl -sf -H "Authorization: $cc" -d grant_type=client_credentials -d scope=api "$url$token" |
      "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    wrk_case "$s" "introspection (JWT access token)" "$url" fixed.lua POST "$introspect" '"active"%s*:%s*true' "$cc" \
      "token=$at&token_type_hint=access_token"
  fi
  wrk_case "$s" jwks "$url" fixed.lua GET "$jwks" '"keys"' "" ""
  wrk_case "$s" discovery "$url" fixed.lua GET /.well-known/openid-configuration '"token_endpoint"' "" ""
}

uptime >"$WORK/uptime-start.txt"
date -u +%Y-%m-%dT%H:%M:%SZ >"$WORK/started.txt"
for run in $(seq 1 "$RUNS"); do
  say "run $run of $RUNS (${CONNECTIONS} connections, ${THREADS} wrk threads, ${WARMUP} s warm-up, ${DURATION} s measured); load: $(cut -d' ' -f1-3 /proc/loadavg)"
  # Alternate which server goes first, so drifting background load hits both alike.
  if [ $((run % 2)) = 1 ]; then order="ours node"; else order="node ours"; fi
  [ "$GUNICORN" = 1 ] && order="$order gunicorn"
  for s in $order; do
    bench_server "$s"
  done
  chain=$((chain + 2))
done
uptime >"$WORK/uptime-end.txt"

# ------------------------------------------------------------------ report
export RUNS DURATION WARMUP CONNECTIONS THREADS BENCH_DATABASE BENCH_PG_ADMIN_URL
"$PY" "$HERE/report.py" "$WORK" >"$WORK/report.md"
cat "$WORK/report.md"
printf '\nbench-oidc: report in %s (append it to benchmarks/RESULTS.md)\n' "$WORK/report.md" >&2
