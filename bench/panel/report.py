"""report.py - turns bench/panel.sh's wrk outputs into bench/panel/results.md (Markdown).

Usage: /usr/bin/python3 bench/panel/report.py WORK_DIR COUNT SECONDS CONNECTIONS > results.md

Reads WORK_DIR/cases.txt ("n|name|path" lines), WORK_DIR/wrk-<n>-one.txt and
wrk-<n>-many.txt (wrk --latency output) and WORK_DIR/fill.json. A run with any non-2xx
answer or socket error is marked FAILED, and the report's verdict names every figure over
the 50 ms target (the 99th percentile with one connection). Exit status 0 either way.
"""

import json
import os
import platform
import re
import sys
import time

TARGET_MS = 50.0


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return None
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def parse(path):
    out = {"p50": None, "p99": None, "rps": None, "errors": None}
    with open(path) as f:
        text = f.read()
    for pct, key in (("50%", "p50"), ("99%", "p99")):
        m = re.search(r"^\s+" + re.escape(pct) + r"\s+(\S+)", text, re.M)
        if m:
            out[key] = ms(m.group(1))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    if bad or sock:
        out["errors"] = (bad.group(0) if bad else "") + (" " + sock.group(0) if sock else "")
    return out


def fmt(v):
    if v is None:
        return "?"
    return "%.2f" % v if v < 10 else "%.1f" % v


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main():
    work, count, seconds, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(os.path.join(work, "fill.json")) as f:
        fill = json.load(f)
    rows, over, failed = [], [], []
    with open(os.path.join(work, "cases.txt")) as f:
        for line in f:
            n, name, path = line.rstrip("\n").split("|", 2)
            one = parse(os.path.join(work, "wrk-%s-one.txt" % n))
            many = parse(os.path.join(work, "wrk-%s-many.txt" % n))
            for r in (one, many):
                if r["errors"]:
                    failed.append("%s: %s" % (name, r["errors"]))
            if one["p99"] is None or one["p99"] > TARGET_MS:
                over.append(name)
            rows.append("| %s | `%s` | %s | %s | %s | %s | %s | %s |" % (
                name, re.sub(r"before=\d+&before_t=\d+", "before=ID&before_t=T", path),
                fmt(one["p50"]), fmt(one["p99"]), fmt(one["rps"]),
                fmt(many["p50"]), fmt(many["p99"]), fmt(many["rps"])))
    print("# Admin panel with %s messages in the log\n" % format(count, ","))
    print("Made by `bash bench/panel.sh` on %s: %s, %d CPUs, %s. `mailout serve --http "
          "--no-worker` on a fresh data folder filled through the HTTP API (%s messages in "
          "%.1f s, %s/s, each answered 202 once committed), logged in with the session "
          "cookie; wrk, %s s per run. Times in milliseconds.\n"
          % (time.strftime("%Y-%m-%d"), cpu_model(), os.cpu_count(), platform.platform(),
             format(fill["count"], ","), fill["seconds"], format(fill["per_second"], ","),
             seconds))
    load = []
    for name in ("load-before.txt", "load-after.txt"):
        try:
            with open(os.path.join(work, name)) as f:
                load.append(f.read().strip())
        except OSError:
            load.append("?")
    print("Load average (1, 5, 15 min) before the measurements: %s; after: %s. Other work on "
          "this 2-CPU machine shows up in the 99th percentiles.\n" % (load[0], load[1]))
    print("| endpoint | path | 1 conn p50 | 1 conn p99 | 1 conn req/s | %s conns p50 | "
          "%s conns p99 | %s conns req/s |" % (conns, conns, conns))
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(r)
    print()
    if failed:
        print("**FAILED runs** (answers other than 2xx): " + "; ".join(failed) + "\n")
    if over:
        print("**Over the 50 ms target** (p99, one connection): " + ", ".join(over) + "\n")
    else:
        print("Every endpoint answers within the 50 ms target (p99, one connection).\n")
    print("Notes: all messages are queued (no worker runs), so \"filter by state (queued)\" "
          "matches every message; the log walks newest first by id and stops when the page "
          "is full, so a common term costs little and a term found nowhere reads every "
          "message's search text once. The dashboard reads the counts the queue's triggers "
          "keep. The session is checked against the database on every request.")


if __name__ == "__main__":
    main()
