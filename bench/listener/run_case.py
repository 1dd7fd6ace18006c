#!/usr/bin/python3
"""run_case.py - one sample of the listener benchmark: smtp-source against one server.

usage: run_case.py --out RESULTS.jsonl --case C --server mailout|postfix --messages N
                   [--rep R] [--timeout S] --pid PID
                   (--mailout-db HOME/mailout.db | --postfix-log MAILLOG)
                   -- smtp-source ARG...

Wall clock: time.perf_counter() around the smtp-source process (start-up and exit included,
the same for both servers); rate = N / wall.
Server CPU: user + sys of the server's processes from /proc, before and after: mailout is
one process (its threads included); Postfix is its master, the children it has reaped
(cutime/cstime) and the children alive at the end (smtpd, cleanup, qmgr, ...).
Checks (a failed one is recorded with ok=false and the reason, never averaged in):
  - smtp-source exits 0 (it stops at the first reply that is not 2xx/3xx);
  - mailout: the queue (a separate read of mailout.db) holds exactly N more messages right
    after smtp-source exits: every 250 was committed before it was sent;
  - postfix: its log shows exactly N more cleanup "message-id=" lines (polled up to 10 s,
    Postfix logs through postlogd).
Appends one JSON line to --out; exit status 1 when a check failed.
"""
import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")
CLEANUP_RE = re.compile(rb"postfix/cleanup\[\d+\]: [0-9A-Za-z]+: message-id=")


def proc_times(pid, children=False):
    """user+sys seconds of pid (and of its reaped children with children=True)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / CLK


def child_pids(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def server_cpu(server, pid):
    if server == "mailout":
        return proc_times(pid)
    return proc_times(pid, children=True) + sum(proc_times(c) for c in child_pids(pid))


def mailout_count(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        con.close()


def postfix_count(log):
    try:
        with open(log, "rb") as f:
            return len(CLEANUP_RE.findall(f.read()))
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--server", choices=("mailout", "postfix"), required=True)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--rep", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--mailout-db")
    ap.add_argument("--postfix-log")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    count = (lambda: mailout_count(a.mailout_db)) if a.server == "mailout" \
        else (lambda: postfix_count(a.postfix_log))

    before = count()
    cpu0 = server_cpu(a.server, a.pid)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=a.timeout)
    wall = time.perf_counter() - t0
    cpu1 = server_cpu(a.server, a.pid)
    rec = {"case": a.case, "server": a.server, "rep": a.rep, "messages": a.messages,
           "wall": wall, "rate": a.messages / wall if wall > 0 else 0.0,
           "server_cpu_ms_per_msg": (cpu1 - cpu0) * 1000.0 / a.messages, "ok": True}
    reason = None
    if p.returncode != 0:
        reason = "smtp-source exited %d: %s" % (p.returncode,
                                                p.stderr.decode("utf-8", "replace")[-300:])
    else:
        got = count() - before
        if a.server == "postfix":
            deadline = time.monotonic() + 10
            while got < a.messages and time.monotonic() < deadline:
                time.sleep(0.1)
                got = count() - before
        if got != a.messages:
            reason = "%s holds %d new messages, expected %d" % (a.server, got, a.messages)
    if reason:
        rec["ok"] = False
        rec["reason"] = reason
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print("%-22s %-8s rep %d: %s" % (a.case, a.server, a.rep,
                                       "%.0f msgs/s" % rec["rate"] if rec["ok"] else reason),
          file=sys.stderr)
    return 0 if rec["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
