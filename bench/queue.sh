#!/usr/bin/env bash
# bench/queue.sh - benchmark of mailout's durable queue against its peers, on loopback.
#
# Builds nothing: takes the binary from $MAILOUT_BIN or ./build/src/cli/mailout (and runs a
# copy of it, so a rebuild cannot swap it mid-run). Starts Postfix's smtp-sink on a free
# 127.0.0.1 port (and a second one pinned to CPU 0 for the pinned rows), makes 2 KB message
# files, runs bench/queue/cases.py (queue -> delivered vs smtp-source; sendmail one process
# per message vs msmtp and curl; the HTTP API with 8 clients through wrk; the service's peak
# memory with 100,000 queued), and prints the Markdown report (bench/queue/report.py), also
# written to bench/queue/results.md. Everything it started is stopped on exit. Only 127.0.0.1
# is ever contacted. See bench/queue/cases.py for what each case measures and checks.
#
# Environment:
#   MAILOUT_BIN            the binary (default: ./build/src/cli/mailout)
#   BENCH_QUICK=1          CI size: fewer messages, one repeat (~1 minute)
#   BENCH_REPEAT           repeats of each case but memory (default 3; quick 1)
#   BENCH_MESSAGES         queue -> delivered, per sample (default 20000; quick 2000)
#   BENCH_SENDMAIL_MESSAGES  mailout sendmail processes per sample (default 1000; quick 200)
#   BENCH_PEER_MESSAGES    msmtp and curl processes per sample (default 200; quick 50)
#   BENCH_CONCURRENCY      processes at once in the second sendmail row (default 8)
#   BENCH_API_SECONDS      wrk's duration (default 8; quick 3)
#   BENCH_MEM_MESSAGES     queued for the memory case (default 100000; quick 10000)
#   BENCH_CASES            comma list of deliver,sendmail,api,memory (default: all)
#   BENCH_PIN=0            skip the pinned one-connection rows
#   BENCH_TIMEOUT          seconds allowed for one step (default 300)
#   BENCH_RESULTS          where to write the report (default bench/queue/results.md)
#   BENCH_STRICT=1         exit 2 when a target is missed (default: only failed samples,
#                          i.e. messages not arriving, fail the run)
#   BENCH_KEEP_TMP=1       keep the temporary folder (printed at the end)
# Needs (Debian): postfix (smtp-sink, smtp-source), msmtp, curl, wrk (else a Python client
# stands in for the API case), util-linux (taskset), python3 (/usr/bin/python3, stdlib).
# Exit status: 0 done, 1 a sample failed (or setup failed), 2 target missed with
# BENCH_STRICT=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    d_rep=1 d_n=2000 d_sm=200 d_peer=50 d_api=3 d_mem=10000
else
    d_rep=3 d_n=20000 d_sm=1000 d_peer=200 d_api=8 d_mem=100000
fi
REPEAT=${BENCH_REPEAT:-$d_rep}
N=${BENCH_MESSAGES:-$d_n}
N_SM=${BENCH_SENDMAIL_MESSAGES:-$d_sm}
N_PEER=${BENCH_PEER_MESSAGES:-$d_peer}
CONC=${BENCH_CONCURRENCY:-8}
API_S=${BENCH_API_SECONDS:-$d_api}
N_MEM=${BENCH_MEM_MESSAGES:-$d_mem}
CASES=${BENCH_CASES:-deliver,sendmail,api,memory}
TIMEOUT=${BENCH_TIMEOUT:-300}
RESULTS_MD=${BENCH_RESULTS:-$HERE/queue/results.md}
MAILOUT=${MAILOUT_BIN:-$ROOT/build/src/cli/mailout}
HOST=127.0.0.1

die() { echo "bench: $*" >&2; exit 1; }
for v in REPEAT N N_SM N_PEER CONC API_S N_MEM TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer (got '${!v}')"
done
(( REPEAT <= 20 && N <= 200000 && N_MEM <= 1000000 )) || die "counts too large"

# --- tools ------------------------------------------------------------------------------
[[ -x $PY ]] || die "$PY is missing (apt-get install -y python3)"
export PATH="$PATH:/usr/sbin"
for t in smtp-sink smtp-source; do
    command -v $t >/dev/null || die "$t is missing (apt-get install -y postfix)"
done
command -v curl >/dev/null || die "curl is missing (apt-get install -y curl)"
command -v msmtp >/dev/null || die "msmtp is missing (apt-get install -y msmtp)"
WRK=$(command -v wrk || true)
[[ -n $WRK ]] || echo "bench: wrk is missing (apt-get install -y wrk); the API case uses bench/queue/httpload.py" >&2
[[ -x $MAILOUT ]] || die "no mailout binary at $MAILOUT (build it, or set MAILOUT_BIN)"
MAILOUT_SRC=$(cd "$(dirname "$MAILOUT")" && pwd)/$(basename "$MAILOUT")

# --- temporary folder and clean-up ---------------------------------------------------------
TMP=$(mktemp -d /tmp/mailout-qbench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
CASES_PID=
cleanup() {
    local rc=$?
    trap - INT TERM
    if [[ -n $CASES_PID ]]; then
        kill -TERM "$CASES_PID" 2>/dev/null || true
        wait "$CASES_PID" 2>/dev/null || true
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
        echo "bench: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, wait_port
source "$HERE/lib.sh"
SINK_USER=()
if [[ $(id -u) == 0 ]]; then SINK_USER=(-u nobody); fi
# -a: no AUTH offered. smtp-sink answers AUTH with 250, not 235, so a client that logs in
# fails; cases.py gives its accounts no login (see its docstring) and smtp-source, msmtp
# (--auth=off) and curl send without one too.
start_sink() { # port logfile [cpu]
    smtp-sink "${SINK_USER[@]}" -a -c "$HOST:$1" 1000 >"$2" 2>&1 &
    PIDS+=($!)
    [[ -n ${3:-} ]] && taskset -pc "$3" "$!" >/dev/null
    wait_port "$1" 10 || die "smtp-sink did not start on port $1: $(cat "$2")"
}

cp "$MAILOUT_SRC" "$TMP/mailout" || die "cannot copy $MAILOUT_SRC"
# The small sendmail program PHP would run, when it was built beside mailout.
[ -x "$(dirname "$MAILOUT_SRC")/mailout-sendmail" ] && cp "$(dirname "$MAILOUT_SRC")/mailout-sendmail" "$TMP/mailout-sendmail"
MAILOUT=$TMP/mailout
MAILOUT_SUM=$(sha256sum "$MAILOUT" | cut -c1-12)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- messages -------------------------------------------------------------------------------
MAXN=$N
(( N_SM > MAXN )) && MAXN=$N_SM
(( N_PEER > MAXN )) && MAXN=$N_PEER
echo "bench: making $MAXN messages of 2,048 bytes in $TMP" >&2
$PY "$ROOT/bench/genmsgs.py" --dir "$TMP/msgs" --count "$MAXN" --size 2048 --prefix q \
    --lf-copy "$TMP/one-lf.eml"
cat "$TMP"/msgs/* >/dev/null

# --- sinks ------------------------------------------------------------------------------------
SINK_PORT=$(free_port)
SINK_LOG=$TMP/sink.log
start_sink "$SINK_PORT" "$SINK_LOG"
PIN_ARGS=()
if [[ ${BENCH_PIN:-1} == 1 ]] && command -v taskset >/dev/null && (( $(nproc) >= 2 )); then
    PIN_PORT=$(free_port)
    start_sink "$PIN_PORT" "$TMP/pin-sink.log" 0
    PIN_ARGS=(--pin-port "$PIN_PORT" --pin-log "$TMP/pin-sink.log")
fi

# --- cases ------------------------------------------------------------------------------------
RESULTS=$TMP/results.jsonl
: >"$RESULTS"
CASES_RC=0
$PY "$HERE/queue/cases.py" --mailout "$MAILOUT" --tmp "$TMP" --sink-port "$SINK_PORT" \
    --sink-log "$SINK_LOG" "${PIN_ARGS[@]}" --out "$RESULTS" --msgs-dir "$TMP/msgs" \
    --msg-lf "$TMP/one-lf.eml" --messages "$N" --sendmail-messages "$N_SM" \
    --peer-messages "$N_PEER" --concurrency "$CONC" --api-seconds "$API_S" \
    --mem-messages "$N_MEM" --repeat "$REPEAT" --timeout "$TIMEOUT" --wrk "$WRK" \
    --cases "$CASES" </dev/null &
CASES_PID=$!
wait "$CASES_PID" || CASES_RC=$?
CASES_PID=

# --- report -------------------------------------------------------------------------------------
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -c1)
meta=(
    "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    "machine: $(nproc) CPUs, $cpu_model, $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); data folders on $(df -T "$TMP" | awk 'NR==2 {print $2}')"
    "sink: smtp-sink -a -c (Postfix $(postconf -d -h mail_version 2>/dev/null || echo '?')) on 127.0.0.1:$SINK_PORT$([[ ${#PIN_ARGS[@]} -gt 0 ]] && echo "; a second one pinned to CPU 0 for the pinned rows")"
    "messages: 2,048 bytes (CRLF, dot-stuffing every 16th line); queue -> delivered: $N per sample, queued first through the HTTP API (not timed); sendmail: $N_SM per sample, msmtp/curl: $N_PEER; concurrency $CONC; API: wrk ${API_S} s; memory: $N_MEM queued"
    "stand-in: the accounts have no login (smtp-sink cannot take AUTH), see bench/queue/cases.py"
    "load average at start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    "repeats: $REPEAT; mode: $([[ $QUICK == 1 ]] && echo quick || echo full)"
    "peers: smtp-source (Postfix), $(curl --version | head -n1 | cut -d' ' -f1-2), $(msmtp --version | head -n1), $(if [[ -n $WRK ]]; then { wrk -v 2>&1 || true; } | head -n1 | cut -d' ' -f1-2; else echo 'httpload.py (no wrk)'; fi)"
    "mailout: $MAILOUT_SRC ($("$MAILOUT" --version 2>/dev/null || echo '?'), sha256 $MAILOUT_SUM…; git $rev${dirty:+ + uncommitted changes}), run from a copy"
)
set +e
$PY "$HERE/queue/report.py" --results "$RESULTS" --out "$RESULTS_MD" "${meta[@]/#/--meta=}"
rep_rc=$?
set -e
echo "bench: report written to $RESULTS_MD" >&2
if (( CASES_RC != 0 )); then
    echo "bench: some samples FAILED (see the report)" >&2
    exit 1
fi
if (( rep_rc == 2 )); then
    echo "bench: some targets were not met" >&2
    [[ ${BENCH_STRICT:-0} == 1 ]] && exit 2
elif (( rep_rc != 0 )); then
    exit 1
fi
exit 0
