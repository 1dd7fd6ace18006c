#!/usr/bin/env bash
# bench/listener.sh - the SMTP submission listener's accept rate (`mailout serve --smtp`)
# against Postfix's own smtpd, side by side in one run on the same machine, both fed by
# Postfix's smtp-source with 2 KB messages, 1 and 8 sessions, connections kept (-d) and a
# connection per message.
#
# What is compared is acceptance into a durable queue:
#   mailout  `serve --no-http --no-worker --smtp 127.0.0.1:P`: a 250 only after the message
#            is committed to mailout.db (SQLite WAL, synchronous=FULL, group commit);
#   Postfix  a private instance (bench/listener/postfix.sh): smtpd -> cleanup, which fsyncs
#            the queue file before the 250; delivery by discard(8), in_flow_delay=0.
# Both data folders live in the same temporary folder (same file system). Samples are
# interleaved (mailout, Postfix, then Postfix, mailout on the next repeat) and checked:
# smtp-source must exit 0, mailout's queue must hold exactly N new messages right after
# smtp-source exits, Postfix's log exactly N new cleanup records.
#
# Builds nothing: takes $MAILOUT_BIN or ./build/src/cli/mailout (copied, so a rebuild during
# the run does not swap it). Needs root (Postfix's master) and the postfix package
# (smtp-source, postfix, postconf). Only 127.0.0.1 is contacted; everything started is
# stopped on exit.
#
# Environment:
#   MAILOUT_BIN       the binary (default ./build/src/cli/mailout)
#   BENCH_REPEAT      repeats of every case (default 5; quick 2)
#   BENCH_MESSAGES    messages per sample (default 2000; quick 400)
#   BENCH_QUICK=1     fewer messages and repeats
#   BENCH_TIMEOUT     seconds allowed for one sample (default 300)
#   BENCH_RESULTS     where the report goes (default bench/listener/results.md)
#   BENCH_STRICT=1    exit 2 when a target is missed
#   BENCH_KEEP_TMP=1  keep the temporary folder
# Exit status: 0 done; 1 a sample or the set-up failed; 2 a target missed (BENCH_STRICT=1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then d_rep=2 d_n=400; else d_rep=5 d_n=2000; fi
REPEAT=${BENCH_REPEAT:-$d_rep}
N=${BENCH_MESSAGES:-$d_n}
TIMEOUT=${BENCH_TIMEOUT:-300}
RESULTS_MD=${BENCH_RESULTS:-$HERE/listener/results.md}
MAILOUT=${MAILOUT_BIN:-$ROOT/build/src/cli/mailout}
FROM=shop@bench.test
TO=customer@example.org
export PATH="$PATH:/usr/sbin"

die() { echo "bench: $*" >&2; exit 1; }
for v in REPEAT N TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer (got '${!v}')"
done
(( REPEAT <= 50 && N <= 100000 )) || die "counts too large"
[[ $(id -u) == 0 ]] || die "run as root: Postfix's master must start as root"
[[ -x $PY ]] || die "$PY is missing (apt-get install -y python3)"
for t in smtp-source postfix postconf; do
    command -v $t >/dev/null || die "$t is missing (apt-get install -y postfix)"
done
[[ -x $MAILOUT ]] || die "no mailout binary at $MAILOUT (build it, or set MAILOUT_BIN)"

# --- temporary folder and clean-up -------------------------------------------------------
TMP=$(mktemp -d /tmp/mailout-listener-bench.XXXXXX)
chmod 755 "$TMP"
MAILOUT_PID=
cleanup() {
    local rc=$?
    trap - INT TERM
    if [[ -n $MAILOUT_PID ]]; then
        kill "$MAILOUT_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$MAILOUT_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$MAILOUT_PID" 2>/dev/null || true
    fi
    bash "$HERE/listener/postfix.sh" stop "$TMP/postfix" || true
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

cp "$MAILOUT" "$TMP/mailout" || die "cannot copy $MAILOUT"
MO=$TMP/mailout
HOME_DIR=$TMP/mailout-home
MPORT=$(free_port)
PPORT=$(free_port)
while [[ $PPORT == "$MPORT" ]]; do PPORT=$(free_port); done

# --- mailout: an account (never contacted: no worker) and the listener ---------------------
echo "bench-password" | "$MO" --home "$HOME_DIR" account set --email "$FROM" --username "$FROM" \
    --host localhost --port 9 --security starttls --password-stdin --json >"$TMP/account.json" \
    || die "mailout account set failed: $(cat "$TMP/account.json")"
"$MO" --home "$HOME_DIR" serve --no-http --no-worker --smtp "127.0.0.1:$MPORT" \
    --smtp-max-connections 64 >"$TMP/mailout.log" 2>&1 &
MAILOUT_PID=$!
wait_port "$MPORT" 15 || die "mailout serve did not start: $(tail -5 "$TMP/mailout.log")"

# --- Postfix -------------------------------------------------------------------------------
bash "$HERE/listener/postfix.sh" start "$TMP/postfix" "$PPORT" >"$TMP/postfix-start.log" 2>&1 \
    || die "Postfix did not start: $(tail -5 "$TMP/postfix-start.log")"
wait_port "$PPORT" 15 || die "Postfix did not listen on $PPORT"
PF_PID=$(tr -d ' ' <"$TMP/postfix/spool/pid/master.pid")
PF_LOG=$TMP/postfix/maillog

# --- the cases ------------------------------------------------------------------------------
RESULTS=$TMP/results.jsonl
: >"$RESULTS"
source_args() { # case -> smtp-source options
    case $1 in
        1s-keep) echo "-d -s 1" ;;
        8s-keep) echo "-d -s 8" ;;
        1s-conn) echo "-s 1" ;;
        8s-conn) echo "-s 8" ;;
    esac
}
sample() { # server case rep messages
    local server=$1 case=$2 rep=$3 n=$4 port check
    if [[ $server == mailout ]]; then
        port=$MPORT check=(--pid "$MAILOUT_PID" --mailout-db "$HOME_DIR/mailout.db")
    else
        port=$PPORT check=(--pid "$PF_PID" --postfix-log "$PF_LOG")
    fi
    # shellcheck disable=SC2046
    $PY "$HERE/listener/run_case.py" --out "$RESULTS" --case "$case" --server "$server" \
        --messages "$n" --rep "$rep" --timeout "$TIMEOUT" "${check[@]}" -- \
        smtp-source $(source_args "$case") -m "$n" -l 2048 -M localhost -f "$FROM" -t "$TO" \
        "127.0.0.1:$port" || FAILED=1
}
FAILED=0
# Warm-up (not reported): caches, Postfix's first processes, SQLite's first pages.
WARM=$TMP/warmup.jsonl
for s in mailout postfix; do
    RESULTS_SAVE=$RESULTS RESULTS=$WARM
    sample "$s" 8s-keep 0 200
    RESULTS=$RESULTS_SAVE
done
[[ $FAILED == 0 ]] || die "the warm-up failed: $(cat "$WARM")"

for rep in $(seq "$REPEAT"); do
    for case in 1s-keep 8s-keep 1s-conn 8s-conn; do
        if (( rep % 2 )); then order=(mailout postfix); else order=(postfix mailout); fi
        for s in "${order[@]}"; do
            sample "$s" "$case" "$rep" "$N"
        done
    done
done

# --- the report -------------------------------------------------------------------------------
mo_version=$("$MO" --version 2>/dev/null | head -1 || echo "?")
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
git_dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)
{
    echo "# mailout SMTP listener benchmark: accept rate against Postfix's smtpd"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), $(df -hT "$TMP" | awk 'NR==2 {print $2 " on " $1}') for both queues"
    echo "- client: smtp-source (Postfix $(postconf -d -h mail_version 2>/dev/null)), -l 2048 (2 KB body), $N messages per sample, $REPEAT repeats, interleaved"
    echo "- mailout: $mo_version (git $git_rev${git_dirty:+ + uncommitted changes}): serve --no-http --no-worker --smtp 127.0.0.1:P --smtp-max-connections 64, log at INFO (one line per message)"
    echo "- Postfix: smtpd on 127.0.0.1, mynetworks relay, cleanup fsync, discard(8) delivery, in_flow_delay=0 (bench/listener/postfix.sh)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the figures)"
} >"$TMP/header.txt"
set +e
$PY "$HERE/listener/report.py" "$RESULTS" "$TMP/header.txt" >"$TMP/results.md"
report_rc=$?
set -e
cat "$TMP/results.md"
cp "$TMP/results.md" "$RESULTS_MD"
echo "bench: report written to $RESULTS_MD" >&2
if [[ $FAILED == 1 || $report_rc == 1 ]]; then exit 1; fi
if [[ $report_rc == 2 && ${BENCH_STRICT:-0} == 1 ]]; then exit 2; fi
exit 0
