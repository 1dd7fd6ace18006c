#!/usr/bin/env bash
# bench/panel.sh - how fast the admin panel answers with 100,000 messages in the log
# (issue 5: under 50 ms for the page and its JSON endpoints).
#
# Builds nothing: takes the binary from $MAILOUT_BIN or ./build/src/cli/mailout. In a fresh
# data folder under /tmp it stores an account (nothing is delivered: serve runs with
# --no-worker), an API key and the admin password, starts `mailout serve --http` on a free
# 127.0.0.1 port, fills the log through the HTTP API (bench/panel/fill.py: COUNT POSTs,
# each answered 202 only once committed), logs in like the browser does (POST /panel/login,
# the session cookie), and measures each endpoint with wrk: first with one connection (the
# latency one person sees), then with BENCH_PANEL_CONNECTIONS at once. Every request must
# answer 2xx. bench/panel/report.py writes the medians and 99th percentiles to
# bench/panel/results.md. Only 127.0.0.1 is contacted; everything started is stopped on exit.
#
# Environment:
#   MAILOUT_BIN               the binary (default ./build/src/cli/mailout)
#   BENCH_PANEL_MESSAGES      messages in the log (default 100000)
#   BENCH_PANEL_SECONDS       seconds per wrk run (default 10)
#   BENCH_PANEL_CONNECTIONS   connections of the concurrent runs (default 4)
#   BENCH_PANEL_RESULTS       the report (default bench/panel/results.md)
#   BENCH_PANEL_KEEP=1        keep the data folder (printed at the end)
# Needs: wrk, curl, /usr/bin/python3 (stdlib only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=${MAILOUT_BIN:-./build/src/cli/mailout}
count=${BENCH_PANEL_MESSAGES:-100000}
seconds=${BENCH_PANEL_SECONDS:-10}
conns=${BENCH_PANEL_CONNECTIONS:-4}
results=${BENCH_PANEL_RESULTS:-bench/panel/results.md}
case "$results" in /*) ;; *) results="$root/$results" ;; esac
admin_password="bench admin password"

for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench/panel.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench/panel.sh: no mailout binary at $bin (build it, or set MAILOUT_BIN)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d /tmp/mailout-panel-bench.XXXXXX)
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  if [ "${BENCH_PANEL_KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
home="$work/home"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

echo "== data folder $home"
printf 'bench-password' | "$bin" --home "$home" account set --email shop@example.test \
  --host localhost --port 2525 --security starttls --password-stdin >/dev/null
key=$("$bin" --home "$home" apikey create bench --json | /usr/bin/python3 -c 'import sys,json; print(json.load(sys.stdin)["key"])')
printf '%s\n' "$admin_password" | "$bin" --home "$home" admin password >/dev/null
"$bin" --home "$home" serve --http "127.0.0.1:$port" --no-worker --quiet >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

echo "== filling the log with $count messages through the API"
fill=$(/usr/bin/python3 bench/panel/fill.py "$port" "$key" "$count" 8)
echo "$fill"
echo "$fill" >"$work/fill.json"

echo "== logging in"
curl -sf -c "$work/cookies" -H 'Content-Type: application/json' \
  -d "{\"password\":\"$admin_password\"}" "$base/panel/login" >/dev/null
session=$(awk '$6 == "mo_session" { print $7 }' "$work/cookies")
[ -n "$session" ] || { echo "bench/panel.sh: the login gave no session cookie" >&2; exit 1; }
cookie="Cookie: mo_session=$session"
newest=$(curl -sf -H "$cookie" "$base/panel/api/messages?limit=1" | /usr/bin/python3 -c 'import sys,json; print(json.load(sys.stdin)["messages"][0]["id"])')
middle=$((newest - count / 2))
cursor=$(curl -sf -H "$cookie" "$base/panel/api/messages?before=$middle&limit=1" | /usr/bin/python3 -c 'import sys,json; m=json.load(sys.stdin)["messages"][0]; print("before=%d&before_t=%d" % (m["id"], m["created_at"]))')

# name|path
cases=(
  "the panel page (GET /panel/)|/panel/"
  "dashboard|/panel/api/dashboard"
  "mail log, first page (50)|/panel/api/messages"
  "mail log, a page in the middle|/panel/api/messages?$cursor"
  "filter by state (queued)|/panel/api/messages?state=queued"
  "search, common term (\"Order\")|/panel/api/messages?q=Order"
  "search, rare term (\"needle\", 1 in 1000)|/panel/api/messages?q=needle"
  "search, no match (reads every message)|/panel/api/messages?q=nomatchanywhere"
  "a message's page (headers, preview, attempts)|/panel/api/messages/$middle"
  "app.js (asset)|/assets/app.js"
)

echo "== measuring (${seconds}s per run)"
cut -d' ' -f1-3 /proc/loadavg >"$work/load-before.txt"
: >"$work/cases.txt"
i=0
for c in "${cases[@]}"; do
  name=${c%%|*}
  path=${c#*|}
  i=$((i + 1))
  echo "$i|$name|$path" >>"$work/cases.txt"
  # wrk counts a 3xx as success: make sure the endpoint really answers 200 first
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "$cookie" "$base$path")
  [ "$status" = 200 ] || { echo "bench/panel.sh: $path answered $status, not 200" >&2; exit 1; }
  for mode in one many; do
    if [ "$mode" = one ]; then t=1; n=1; else t=2; n=$conns; fi
    wrk -t"$t" -c"$n" -d"${seconds}s" --latency -H "$cookie" "$base$path" >"$work/wrk-$i-$mode.txt"
    printf '  %-52s %-4s %s\n' "$name" "$mode" "$(grep -E '^ +50%|^ +99%' "$work/wrk-$i-$mode.txt" | tr -s ' ' | tr '\n' ' ')"
  done
done

cut -d' ' -f1-3 /proc/loadavg >"$work/load-after.txt"
/usr/bin/python3 bench/panel/report.py "$work" "$count" "$seconds" "$conns" >"$results"
echo "== written to $results"
cat "$results"
