#!/usr/bin/python3
"""measure.py - runs one benchmark sample and appends it as a JSON line.

usage: measure.py --out RESULTS.jsonl --case C --tool T --messages N
                  [--bytes B] [--rep R] [--timeout S] [--sink-log F]
                  [--check mailout|smtplib|exit] [--each DIR [--stdin-each]]
                  -- COMMAND ARG...

Wall clock: time.perf_counter() from just before the (first) child is
started to just after the (last) child is reaped, so process start-up and
exit are included, the same way for every tool.
CPU: the children's rusage from wait4() (user + sys, microsecond resolution).
Peak memory: each command runs under `/usr/bin/time -f %M`, whose figure is
kept. (wait4()'s own ru_maxrss is useless here: a child forked from this
Python process inherits its ~10 MB high-water mark before exec; forked from
the small GNU time process, the contamination is well under 0.1 MB.)
GNU time's own start-up (~1 ms, the same for every tool) is inside the wall
clock and its few hundred microseconds of CPU inside the CPU figure.

--each DIR   run COMMAND once per file of DIR (sorted), one after the other;
             "{}" in the arguments is replaced by the file's path, and with
             --stdin-each the file is also given as standard input. CPU is
             summed and max RSS is the largest over all the processes.
--check      mailout: stdout must be mailout's --json with ok=true and
                      sent == N (its own seconds/messages_per_second are kept
                      as the "internal" figure);
             smtplib: stdout must be smtplib_send.py's JSON with sent == N;
             exit:    every process must exit 0 (always required anyway).
--proxy-stats F  delayproxy.py's --stats file: the server reply bursts
             (= round trips) of the connections made during the sample are
             recorded (waits up to 3 s for --proxy-conns connections to end).
--sink-log F smtp-sink's -c output: the sink's message counter must grow by
             exactly N during the sample (polled for up to 5 s afterwards).

A failed check is recorded with ok=false (and the reason), never silently
counted; the exit status is 1 then.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

MESG_RE = re.compile(rb"mesg=(\d+)")


def sink_count(path):
    """The last mesg=N that smtp-sink -c printed (0 if none yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return 0
    found = MESG_RE.findall(tail)
    return int(found[-1]) if found else 0


GNU_TIME = "/usr/bin/time"


def proxy_lines(path):
    try:
        with open(path) as f:
            return [x for x in f.read().splitlines() if x.strip()]
    except OSError:
        return []


CURRENT = {"pid": None}


def on_signal(signum, frame):
    """SIGTERM/SIGINT: take the running sample's process group down too."""
    pid = CURRENT["pid"]
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def run_one(argv, stdin_path, timeout, out_f, err_f, rss_file):
    """Starts argv under GNU time, reaps it with wait4;
    returns (status, rusage, max RSS in KB or None, timed_out)."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        os.unlink(rss_file)
    except FileNotFoundError:
        pass
    try:
        p = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", rss_file, "--"] + argv,
                             stdin=stdin, stdout=out_f, stderr=err_f,
                             start_new_session=True)
    finally:
        if stdin_path:
            stdin.close()
    CURRENT["pid"] = p.pid
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        while True:
            try:
                _, status, ru = os.wait4(p.pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        timer.cancel()
        CURRENT["pid"] = None
    p.returncode = os.waitstatus_to_exitcode(status)
    rss = None
    try:
        with open(rss_file) as f:
            last = f.read().strip().splitlines()[-1]
        rss = int(last)
    except (OSError, IndexError, ValueError):
        pass
    return p.returncode, ru, rss, timed_out.is_set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--rep", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--sink-log")
    ap.add_argument("--check", choices=("mailout", "smtplib", "exit"), default="exit")
    ap.add_argument("--each")
    ap.add_argument("--stdin-each", action="store_true")
    ap.add_argument("--proxy-stats")
    ap.add_argument("--proxy-conns", type=int, default=1)
    ap.add_argument("--keep-stdout", help="copy the (last) child's stdout here")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")

    if a.each:
        files = sorted(os.path.join(a.each, n) for n in os.listdir(a.each)
                       if not n.startswith("."))
        runs = [([x.replace("{}", f) for x in cmd], f if a.stdin_each else None)
                for f in files]
    else:
        runs = [(cmd, None)]

    rec = {"case": a.case, "tool": a.tool, "rep": a.rep, "messages": a.messages,
           "bytes": a.bytes, "ok": True, "error": None}
    before = sink_count(a.sink_log) if a.sink_log else None
    proxy_before = proxy_lines(a.proxy_stats) if a.proxy_stats else None
    user = sys_t = 0.0
    maxrss = 0
    bad_rc = None
    deadline = time.monotonic() + a.timeout
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"measure: {GNU_TIME} is missing (apt-get install -y time)")
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f, \
            tempfile.TemporaryDirectory() as tmpd:
        rss_file = os.path.join(tmpd, "rss")
        t0 = time.perf_counter()
        for argv, stdin_path in runs:
            left = deadline - time.monotonic()
            if left <= 0:
                rec["ok"] = False
                rec["error"] = f"timed out after {a.timeout:.0f} s"
                break
            if a.each:
                out_f.seek(0)
                out_f.truncate()
            rc, ru, rss, timed_out = run_one(argv, stdin_path, left, out_f, err_f, rss_file)
            user += ru.ru_utime
            sys_t += ru.ru_stime
            if rss is not None:
                maxrss = max(maxrss, rss)
            if timed_out:
                rec["ok"] = False
                rec["error"] = f"timed out after {a.timeout:.0f} s"
                break
            if rc != 0 and bad_rc is None:
                bad_rc = (rc, argv[0])
        wall = time.perf_counter() - t0
        out_f.seek(0)
        stdout = out_f.read()
        err_f.seek(0)
        stderr = err_f.read()

    rec.update({"wall": wall, "user": user, "sys": sys_t, "cpu": user + sys_t,
                "maxrss_kb": maxrss})
    if a.keep_stdout:
        with open(a.keep_stdout, "wb") as f:
            f.write(stdout)
    if rec["ok"] and bad_rc is not None:
        rec["ok"] = False
        rec["error"] = f"{os.path.basename(bad_rc[1])} exited {bad_rc[0]}"

    if rec["ok"] and a.check in ("mailout", "smtplib"):
        try:
            doc = json.loads(stdout)
        except ValueError:
            doc = None
            rec["ok"] = False
            rec["error"] = "stdout is not JSON: " + stdout[:200].decode("utf-8", "replace")
        if doc is not None:
            sent = doc.get("sent")
            rec["reported_sent"] = sent
            if "seconds" in doc:
                rec["internal_seconds"] = doc["seconds"]
            if "messages_per_second" in doc:
                rec["internal_mps"] = doc["messages_per_second"]
            if a.check == "mailout" and doc.get("ok") is not True:
                rec["ok"] = False
                rec["error"] = f"mailout reported ok={doc.get('ok')}, failed={doc.get('failed')}"
            elif sent != a.messages:
                rec["ok"] = False
                rec["error"] = f"reported sent={sent}, expected {a.messages}"
            if not rec["ok"] and a.check == "mailout":
                errs = [m.get("error") for m in doc.get("messages", []) if not m.get("ok")]
                if errs:
                    rec["error"] += f"; first error: {errs[0]}"

    if a.sink_log:
        want = before + a.messages
        got = sink_count(a.sink_log)
        give_up = time.monotonic() + 5.0
        while got < want and time.monotonic() < give_up:
            time.sleep(0.02)
            got = sink_count(a.sink_log)
        rec["sink_delta"] = got - before
        if rec["ok"] and got - before != a.messages:
            rec["ok"] = False
            rec["error"] = f"the sink counted {got - before} messages, expected {a.messages}"

    if a.proxy_stats:
        give_up = time.monotonic() + 3.0
        lines = proxy_lines(a.proxy_stats)
        while len(lines) - len(proxy_before) < a.proxy_conns and time.monotonic() < give_up:
            time.sleep(0.02)
            lines = proxy_lines(a.proxy_stats)
        new = [json.loads(x) for x in lines[len(proxy_before):]]
        rec["proxy_conns"] = len(new)
        rec["round_trips"] = sum(x["s2c_chunks"] for x in new)

    if not rec["ok"] and stderr:
        rec["stderr"] = stderr[-400:].decode("utf-8", "replace")
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    mps = a.messages / wall if wall > 0 else 0
    line = (f"  {a.case:<10} {a.tool:<22} rep {a.rep}: {wall:8.3f} s  {mps:9.1f} msg/s"
            f"  cpu {1000 * (user + sys_t) / max(1, a.messages):.4f} ms/msg"
            f"  rss {maxrss / 1024:.1f} MB")
    if a.bytes and a.messages == 1:
        line += f"  {a.bytes / wall / 1e6:7.1f} MB/s"
    if rec.get("round_trips"):
        line += f"  {rec['round_trips'] / max(1, a.messages):.2f} round trips/msg"
    if not rec["ok"]:
        line += f"  FAILED: {rec['error']}"
    print(line, flush=True)
    sys.exit(0 if rec["ok"] else 1)


if __name__ == "__main__":
    main()
