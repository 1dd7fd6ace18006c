#!/usr/bin/env bash
# bench/run.sh - benchmark of mailout's SMTP engine against its peers.
#
# Builds nothing: takes the binary from $MAILOUT_BIN or ./build/src/cli/mailout.
# Starts smtp-sink on a free 127.0.0.1 port (and a reply-delay proxy in front
# of it), makes the message files in a temporary folder, checks once that
# mailout's messages arrive intact, then runs every case (each mailout run
# interleaved with its peers, BENCH_REPEAT times), and prints the Markdown
# report, also written to bench/results.md. Everything it started is stopped
# on exit. Only 127.0.0.1 is ever contacted.
#
# Environment:
#   MAILOUT_BIN         the binary (default: ./build/src/cli/mailout)
#   BENCH_REPEAT        repeats of the fast cases (default 5; quick: 2)
#   BENCH_SLOW_REPEAT   repeats of the proxy and one-process-per-message cases
#                       (default 3; quick: 1)
#   BENCH_QUICK=1       CI mode: fewer messages and repeats
#   BENCH_MESSAGES      messages in the main cases (default 2000; quick 500)
#   BENCH_PROXY_MESSAGES  through the proxy (default 200; quick 40)
#   BENCH_CURL_MESSAGES / BENCH_MSMTP_MESSAGES  one process each (200/50; quick 30/10)
#   BENCH_BIG_BYTES     size of the big message (default 10 MiB)
#   BENCH_PROXY_DELAY_MS  (default 10)
#   BENCH_TIMEOUT       seconds allowed for one sample (default 180)
#   BENCH_PEERS_ONLY=1  run only the peers (no mailout binary needed)
#   BENCH_RESULTS       where to write the report (default bench/results.md)
#   BENCH_STRICT=1      exit 2 when a target is missed (default: only
#                       failures, i.e. messages not delivered, fail the run)
#   BENCH_KEEP_TMP=1    keep the temporary folder (printed at the end)
#   BENCH_PIN=0         skip the pinned one-connection rows (sink on CPU 0,
#                       client on CPU 0 = "same", on CPU 1 = "cross")
#   BENCH_SOURCE_PAYLOAD=l  smtp-source with -l 2048 instead of -F (same file)
# Exit status: 0 done, 1 a sample failed (or setup failed), 2 target missed
# with BENCH_STRICT=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    d_rep=2 d_slow=1 d_n=500 d_proxy=40 d_curl=30 d_msmtp=10
else
    d_rep=5 d_slow=3 d_n=2000 d_proxy=200 d_curl=200 d_msmtp=50
fi
REPEAT=${BENCH_REPEAT:-$d_rep}
SLOW_REPEAT=${BENCH_SLOW_REPEAT:-$d_slow}
N=${BENCH_MESSAGES:-$d_n}
N_PROXY=${BENCH_PROXY_MESSAGES:-$d_proxy}
N_CURL=${BENCH_CURL_MESSAGES:-$d_curl}
N_MSMTP=${BENCH_MSMTP_MESSAGES:-$d_msmtp}
BIG=${BENCH_BIG_BYTES:-10485760}
DELAY_MS=${BENCH_PROXY_DELAY_MS:-10}
TIMEOUT=${BENCH_TIMEOUT:-180}
PEERS_ONLY=${BENCH_PEERS_ONLY:-0}
RESULTS_MD=${BENCH_RESULTS:-$HERE/results.md}
MAILOUT=${MAILOUT_BIN:-$ROOT/build/src/cli/mailout}
FROM=a@example.test
TO=b@example.test
HOST=127.0.0.1

die() { echo "bench: $*" >&2; exit 1; }
for v in REPEAT SLOW_REPEAT N N_PROXY N_CURL N_MSMTP BIG DELAY_MS TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer (got '${!v}')"
done
(( REPEAT <= 50 && SLOW_REPEAT <= 50 && N <= 100000 )) || die "counts too large"

# --- tools ------------------------------------------------------------------
[[ -x $PY ]] || die "$PY is missing (apt-get install -y python3)"
for t in smtp-sink smtp-source; do
    command -v $t >/dev/null || [[ -x /usr/sbin/$t ]] || die "$t is missing (apt-get install -y postfix)"
done
export PATH="$PATH:/usr/sbin"
command -v curl >/dev/null || die "curl is missing (apt-get install -y curl)"
command -v msmtp >/dev/null || die "msmtp is missing (apt-get install -y msmtp)"
if [[ $PEERS_ONLY != 1 ]]; then
    [[ -x $MAILOUT ]] || die "no mailout binary at $MAILOUT (build it, or set MAILOUT_BIN; BENCH_PEERS_ONLY=1 runs the peers alone)"
    MAILOUT=$(cd "$(dirname "$MAILOUT")" && pwd)/$(basename "$MAILOUT")
fi

# --- temporary folder and clean-up ---------------------------------------------
TMP=$(mktemp -d /tmp/mailout-bench.XXXXXX)
chmod 755 "$TMP"   # smtp-sink runs as nobody and writes its capture files below
PIDS=()
cleanup() {
    local rc=$?
    trap - INT TERM
    if [[ -n ${MEASURE_PID:-} ]]; then
        kill -TERM "$MEASURE_PID" 2>/dev/null || true
        wait "$MEASURE_PID" 2>/dev/null || true
    fi
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        # bounded wait: at most ~2 s per process, then SIGKILL
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
start_sink() { # port logfile [extra args...]
    local port=$1 log=$2; shift 2
    smtp-sink "${SINK_USER[@]}" "$@" "$HOST:$port" 1000 >"$log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" 10 || die "smtp-sink did not start on port $port: $(cat "$log")"
}

# Work on a copy of the binary: a rebuild during the run must not swap it (or
# make it unreadable for a moment) under the benchmark.
MAILOUT_SRC=$MAILOUT
if [[ $PEERS_ONLY != 1 ]]; then
    cp "$MAILOUT_SRC" "$TMP/mailout" || die "cannot copy $MAILOUT_SRC"
    MAILOUT=$TMP/mailout
    MAILOUT_SUM=$(sha256sum "$MAILOUT" | cut -c1-12)
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- messages -------------------------------------------------------------------
echo "bench: making messages in $TMP" >&2
$PY "$HERE/genmsgs.py" --dir "$TMP/msgs" --count "$N" --size 2048 --lf-copy "$TMP/one-lf.eml"
$PY "$HERE/genmsgs.py" --dir "$TMP/proxy" --count "$N_PROXY" --size 2048 --prefix p
$PY "$HERE/genmsgs.py" --dir "$TMP/curl" --count "$N_CURL" --size 2048 --prefix c
$PY "$HERE/genmsgs.py" --dir "$TMP/msmtp" --count "$N_MSMTP" --size 2048 --prefix s
$PY "$HERE/genmsgs.py" --dir "$TMP/big" --count 1 --size "$BIG" --prefix big
BIGFILE=$(ls "$TMP"/big/*.eml)
# Read everything once so the first timed run does not pay for a cold cache.
cat "$TMP"/msgs/* "$BIGFILE" >/dev/null

# --- sink and proxy ---------------------------------------------------------------
SINK_PORT=$(free_port)
SINK_LOG=$TMP/sink.log
start_sink "$SINK_PORT" "$SINK_LOG" -c
# A second sink pinned to CPU 0, for the pinned one-connection rows: on this
# VM a client on the sink's CPU runs several times faster than one on the
# other CPU (cross-CPU wake-ups are expensive), which is where the big swings
# of unpinned one-connection runs come from.
PIN=0
if [[ ${BENCH_PIN:-1} == 1 ]] && command -v taskset >/dev/null && (( $(nproc) >= 2 )); then
    PIN=1
    PIN_PORT=$(free_port)
    PIN_LOG=$TMP/pin-sink.log
    smtp-sink "${SINK_USER[@]}" -c "$HOST:$PIN_PORT" 1000 >"$PIN_LOG" 2>&1 &
    PIDS+=($!)
    taskset -pc 0 "$!" >/dev/null
    wait_port "$PIN_PORT" 10 || die "the pinned smtp-sink did not start: $(cat "$PIN_LOG")"
fi
PROXY_PORT=$(free_port)
PROXY_STATS=$TMP/proxy-stats.jsonl
$PY "$HERE/delayproxy.py" --listen "$PROXY_PORT" --target "$SINK_PORT" --delay-ms "$DELAY_MS" \
    --stats "$PROXY_STATS" --max-seconds 7200 2>"$TMP/proxy.log" &
PIDS+=($!)
wait_port "$PROXY_PORT" 10 || die "the delay proxy did not start: $(cat "$TMP/proxy.log")"

RESULTS=$TMP/results.jsonl
: >"$RESULTS"
FAILED=0
MEASURE_PID=
sample() { # case tool rep messages bytes check [measure args...] -- cmd...
    local c=$1 t=$2 r=$3 n=$4 b=$5 chk=$6 rc=0; shift 6
    # In the background + wait, so that a signal runs the clean-up trap at once
    # (measure.py takes its own child down on SIGTERM).
    $PY "$HERE/measure.py" --out "$RESULTS" --case "$c" --tool "$t" --rep "$r" --messages "$n" \
        --bytes "$b" --check "$chk" --sink-log "$SINK_LOG" --timeout "$TIMEOUT" "$@" </dev/null &
    MEASURE_PID=$!
    wait "$MEASURE_PID" || rc=$?
    MEASURE_PID=
    (( rc == 0 )) || FAILED=$((FAILED + 1))
}
MO=()
mo() { # port path [extra...]: sets MO to the mailout command line
    local port=$1 path=$2; shift 2
    MO=("$MAILOUT" send --host "$HOST" --port "$port" --security none --from "$FROM" --to "$TO"
        --raw "$path" --json "$@")
}
# smtp-source sends the same 2,048 bytes as mailout (-F, one of the files with LF
# ends: it appends CRLF itself); BENCH_SOURCE_PAYLOAD=l uses -l 2048 instead
# (its own headers + 2,048 bytes of payload, ~2.3 KB).
if [[ ${BENCH_SOURCE_PAYLOAD:-F} == l ]]; then
    SMTP_SOURCE=(smtp-source -M localhost -f "$FROM" -t "$TO" -l 2048)
else
    SMTP_SOURCE=(smtp-source -M localhost -f "$FROM" -t "$TO" -F "$TMP/one-lf.eml")
fi

# --- correctness gate: mailout's messages arrive, once, intact ------------------------
if [[ $PEERS_ONLY != 1 ]]; then
    echo "bench: checking that mailout's messages arrive intact" >&2
    mkdir -p "$TMP/verify/orig" "$TMP/verify/dump"
    small=("$TMP"/msgs/*.eml)
    cp "${small[@]:0:50}" "$TMP/verify/orig/"
    cp "$BIGFILE" "$TMP/verify/orig/"
    NV=$(ls "$TMP/verify/orig" | wc -l)
    [[ $(id -u) == 0 ]] && chown nobody "$TMP/verify/dump"
    VPORT=$(free_port)
    start_sink "$VPORT" "$TMP/verify/sink.log" -d "$TMP/verify/dump/m."
    for conns in 1 3; do
        rm -rf "$TMP/verify/dump/"*
        mo "$VPORT" "$TMP/verify/orig" --connections $conns
        if ! timeout "$TIMEOUT" "${MO[@]}" \
            >"$TMP/verify/out.json" 2>"$TMP/verify/err.txt"; then
            echo "bench: mailout failed in the correctness check (--connections $conns):" >&2
            head -c 2000 "$TMP/verify/out.json" "$TMP/verify/err.txt" >&2
            exit 1
        fi
        kill -0 "${PIDS[-1]}" 2>/dev/null || die "the capturing smtp-sink died: $(cat "$TMP/verify/sink.log")"
        sleep 0.3   # the sink closes the dump files when it sees QUIT
        $PY "$HERE/verify_dump.py" --dump-dir "$TMP/verify/dump" --originals "$TMP/verify/orig" \
            --expect "$NV" --mail-from "$FROM" --rcpt "$TO" >&2 \
            || die "mailout's messages did not arrive intact (--connections $conns); not benchmarking failures"
    done
fi

# --- cases ---------------------------------------------------------------------------
echo "bench: $N x 2 KB, 1 and 4 connections; one $BIG-byte message; $REPEAT repeats" >&2
for r in $(seq "$REPEAT"); do
    if [[ $PEERS_ONLY != 1 ]]; then
        mo "$SINK_PORT" "$TMP/msgs"
        sample 2k-1conn mailout "$r" "$N" $((N * 2048)) mailout -- "${MO[@]}"
    fi
    sample 2k-1conn "smtp-source -d -s1" "$r" "$N" $((N * 2048)) exit -- \
        "${SMTP_SOURCE[@]}" -d -s1 -m "$N" "$HOST:$SINK_PORT"
    sample 2k-1conn "python smtplib" "$r" "$N" $((N * 2048)) smtplib -- \
        $PY "$HERE/smtplib_send.py" --port "$SINK_PORT" --from "$FROM" --to "$TO" --raw "$TMP/msgs"

    if (( PIN )); then
        for pin in same:0 cross:1; do
            c="2k-1conn-${pin%%:*}cpu" cpu=${pin#*:}
            if [[ $PEERS_ONLY != 1 ]]; then
                mo "$PIN_PORT" "$TMP/msgs"
                sample "$c" mailout "$r" "$N" $((N * 2048)) mailout --sink-log "$PIN_LOG" -- \
                    taskset -c "$cpu" "${MO[@]}"
            fi
            sample "$c" "smtp-source -d -s1" "$r" "$N" $((N * 2048)) exit --sink-log "$PIN_LOG" -- \
                taskset -c "$cpu" "${SMTP_SOURCE[@]}" -d -s1 -m "$N" "$HOST:$PIN_PORT"
        done
    fi

    if [[ $PEERS_ONLY != 1 ]]; then
        mo "$SINK_PORT" "$TMP/msgs" --connections 4
        sample 2k-4conn "mailout --connections 4" "$r" "$N" $((N * 2048)) mailout -- "${MO[@]}"
    fi
    sample 2k-4conn "smtp-source -d -s4" "$r" "$N" $((N * 2048)) exit -- \
        "${SMTP_SOURCE[@]}" -d -s4 -m "$N" "$HOST:$SINK_PORT"

    if [[ $PEERS_ONLY != 1 ]]; then
        mo "$SINK_PORT" "$BIGFILE"
        sample 10MB mailout "$r" 1 "$BIG" mailout -- "${MO[@]}"
    fi
    sample 10MB curl "$r" 1 "$BIG" exit -- curl -sS --max-time "$TIMEOUT" \
        "smtp://$HOST:$SINK_PORT/localhost" --mail-from "$FROM" --mail-rcpt "$TO" --upload-file "$BIGFILE"
done

echo "bench: through the ${DELAY_MS} ms reply-delay proxy ($N_PROXY messages), and one process per message; $SLOW_REPEAT repeats" >&2
for r in $(seq "$SLOW_REPEAT"); do
    if [[ $PEERS_ONLY != 1 ]]; then
        mo "$PROXY_PORT" "$TMP/proxy"
        sample proxy mailout "$r" "$N_PROXY" $((N_PROXY * 2048)) mailout --proxy-stats "$PROXY_STATS" \
            -- "${MO[@]}"
    fi
    sample proxy "smtp-source -d -s1" "$r" "$N_PROXY" $((N_PROXY * 2048)) exit --proxy-stats "$PROXY_STATS" \
        -- "${SMTP_SOURCE[@]}" -d -s1 -m "$N_PROXY" "$HOST:$PROXY_PORT"
    sample proxy "python smtplib" "$r" "$N_PROXY" $((N_PROXY * 2048)) smtplib --proxy-stats "$PROXY_STATS" -- \
        $PY "$HERE/smtplib_send.py" --port "$PROXY_PORT" --from "$FROM" --to "$TO" --raw "$TMP/proxy"

    sample per-process "curl (1 process/msg)" "$r" "$N_CURL" $((N_CURL * 2048)) exit --each "$TMP/curl" -- \
        curl -sS --max-time 30 "smtp://$HOST:$SINK_PORT/localhost" --mail-from "$FROM" --mail-rcpt "$TO" \
        --upload-file "{}"
    sample per-process "msmtp (1 process/msg)" "$r" "$N_MSMTP" $((N_MSMTP * 2048)) exit --each "$TMP/msmtp" \
        --stdin-each -- msmtp -C /dev/null --host="$HOST" --port="$SINK_PORT" --domain=localhost \
        --from="$FROM" --auth=off --tls=off --timeout=30 "$TO"
done

# --- report ----------------------------------------------------------------------------
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
meta=(
    "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    "machine: $(nproc) CPUs, $cpu_model, $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    "sink: smtp-sink -c (Postfix $(/usr/sbin/postconf -d -h mail_version 2>/dev/null || echo '?')) on 127.0.0.1:$SINK_PORT; reply-delay proxy: bench/delayproxy.py, ${DELAY_MS} ms per server chunk"
    "messages: $N × 2,048 bytes (CRLF, dot-stuffing needed every 16th line), big message $BIG bytes; smtp-source: $([[ ${BENCH_SOURCE_PAYLOAD:-F} == l ]] && echo '-l 2048' || echo '-F (the same 2 KB file)')"
    "load average at start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"
    "repeats: $REPEAT (main cases), $SLOW_REPEAT (proxy, one-process-per-message); mode: $([[ $QUICK == 1 ]] && echo quick || echo full)"
    "peers: $(curl --version | head -n1 | cut -d' ' -f1-2), $(msmtp --version | head -n1), Python $($PY -c 'import platform; print(platform.python_version())') smtplib"
)
if [[ $PEERS_ONLY != 1 ]]; then
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
    dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -c1)
    meta+=("mailout: $MAILOUT_SRC ($("$MAILOUT" --version 2>/dev/null || echo '?'), sha256 $MAILOUT_SUM…; git $rev${dirty:+ + uncommitted changes}), run from a copy")
else
    meta+=("mailout: not run (BENCH_PEERS_ONLY=1)")
fi
set +e
$PY "$HERE/report.py" --results "$RESULTS" --out "$RESULTS_MD" --proxy-delay-ms "$DELAY_MS" \
    "${meta[@]/#/--meta=}"
rep_rc=$?
set -e
echo "bench: report written to $RESULTS_MD" >&2
if (( FAILED > 0 )); then
    echo "bench: $FAILED sample(s) FAILED (see the report)" >&2
    exit 1
fi
if (( rep_rc != 0 )); then
    echo "bench: some targets were not met" >&2
    [[ ${BENCH_STRICT:-0} == 1 ]] && exit 2
fi
exit 0
