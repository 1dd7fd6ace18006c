#!/usr/bin/python3
"""report.py - the queue benchmark's Markdown report from cases.py's JSON lines.

usage: report.py --results RESULTS.jsonl --out results.md [--meta=TEXT ...]

Medians over the repeats of each (case, tool); failed samples are listed, never averaged in.
The table: case | mailout | peer | peer figure | ratio | target | met?  Ratio = mailout ÷
peer (throughput: higher is better). Targets (the issue's): queue -> delivered >= 0.8x
smtp-source with 1 and 4 connections; sendmail one process per message >= 500 msgs/s
queued durably; the HTTP API with 8 clients >= 5,000 msgs/s accepted; the service's peak
memory with 100,000 messages queued <= 64 MB. Prints the report and writes it to --out.
Exit status: 0 all targets met, 2 some missed, 1 no usable samples.
"""
import argparse
import collections
import json
import statistics
import sys


def fmt(v, unit=""):
    if v is None:
        return "—"
    if unit == "MB":
        return "%.1f MB" % v
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    samples = collections.defaultdict(list)
    failed = []
    with open(a.results) as f:
        for line in f:
            r = json.loads(line)
            (samples[(r["case"], r["tool"])] if r["ok"] else failed).append(r)

    def med(case, tool, key="per_second"):
        vals = [s[key] for s in samples.get((case, tool), []) if s.get(key) is not None]
        return statistics.median(vals) if vals else None

    rows = []
    met_all = True

    def row(label, case, tool, peer_case, peer_tool, peer_label, target=None, kind="ratio",
            key="per_second", unit="", stricter=None):
        nonlocal met_all
        mine = med(case, tool, key)
        peer = med(peer_case, peer_tool, key) if peer_tool else None
        ratio = mine / peer if mine is not None and peer else None
        if mine is None and peer is None:
            return  # a tool this run did not use (httpload.py when wrk is there)
        if stricter is not None:
            # Our own stricter check, beyond the targets: shown, not counted.
            tgt = "(stricter: ≥ %.1f×)" % stricter
            met = "—" if ratio is None else ("yes" if ratio >= stricter else "no")
        elif target is None:
            tgt, met = "(info)", "—"
        else:
            if kind == "ratio":
                ok = ratio is not None and ratio >= target
                tgt = "≥ %.1f×" % target
            elif kind == "min":
                ok = mine is not None and mine >= target
                tgt = "≥ {:,}/s".format(target)
            else:
                ok = mine is not None and mine <= target
                tgt = "≤ %d MB" % target
            met = "yes" if ok else "**NO**"
            met_all &= ok
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            label, fmt(mine, unit), peer_label if peer_tool else "—", fmt(peer, unit),
            "%.2f×" % ratio if ratio is not None else "—", tgt, met))

    n_deliver = max((s["messages"] for (c, _t), ss in samples.items() if c.startswith("deliver")
                     for s in ss), default=0)
    for conns in (1, 4):
        case = "deliver-%dconn" % conns
        row("queue → delivered, {:,} × 2 KB, {} connection{} (msgs/s)".format(
            n_deliver, conns, "s" if conns > 1 else ""), case, "mailout queue run", case,
            "smtp-source -d -s%d" % conns, "smtp-source -d -s%d" % conns, 0.8)
        if conns == 1:
            for pin, text in (("samecpu", "client on the sink's CPU"),
                              ("crosscpu", "client on the other CPU")):
                c = "deliver-1conn-" + pin
                row("queue → delivered, 1 connection, pinned: %s (msgs/s)" % text, c,
                    "mailout queue run", c, "smtp-source -d -s1",
                    "smtp-source -d -s1 (same pinning)", stricter=0.8)
        row("queue → delivered, %d connection%s, vs the engine alone (msgs/s)" % (
            conns, "s" if conns > 1 else ""), case, "mailout queue run", case,
            "mailout send --raw (engine)", "mailout send --raw (engine alone)")
    concs = sorted({s["concurrency"] for (c, _t), ss in samples.items()
                    if c.startswith("sendmail") for s in ss})
    for conc in concs:
        case = "sendmail-%dproc" % conc
        at = "1 at a time" if conc == 1 else "%d at a time" % conc
        for tool in ("msmtp (1 process/msg)", "curl (1 process/msg)"):
            row("sendmail, 1 process/msg, %s: queued durably (msgs/s)" % at, case,
                "mailout sendmail -t -i", case, tool, tool.replace(")", ", to the sink)"),
                500, kind="min")
        row("sendmail, 1 process/msg, %s, no service (each queues by itself) (msgs/s)" % at,
            case, "mailout sendmail -t -i, no service", case, "msmtp (1 process/msg)",
            "msmtp (1 process/msg, to the sink)")
    for case, text in (("api-8clients", "HTTP API, 8 clients, serve --no-worker: accepted"),
                       ("api-8clients-delivering",
                        "HTTP API, 8 clients, worker delivering: accepted")):
        for tool in ("wrk -t2 -c8", "httpload.py, 8 clients"):
            row("%s (msgs/s)" % text, case, tool, None, None, None, 5000, kind="min")
            if case.endswith("delivering"):
                row("HTTP API, 8 clients, worker delivering: delivered meanwhile (msgs/s)", case,
                    tool, None, None, None, key="delivered_per_second_during")
    n_mem = max((s["messages"] for (c, _t), ss in samples.items() if c.startswith("memory")
                 for s in ss), default=0)
    for case, tool, text, target in (
            ("memory-deliver", "mailout serve", "delivering them to the sink", 64),
            ("memory-unreachable", "mailout serve", "the account unreachable", 64),
            ("memory-accept", "mailout serve --no-worker", "while accepting them (API)", None)):
        row("peak memory (VmHWM) of serve, {:,} queued, {}".format(n_mem, text), case, tool,
            None, None, None, target, kind="max", key="peak_mb", unit="MB")

    out = ["# mailout queue benchmark", ""]
    out += ["- " + m for m in a.meta]
    out += ["", "| case | mailout | peer | peer figure | ratio | target | met? |",
            "| --- | ---: | --- | ---: | ---: | --- | --- |"] + rows
    out += ["", "Medians over the repeats; wall clock from the process start to its exit (the "
            "queue run, smtp-source, wrk's own duration, or the first to the last of the "
            "one-process-per-message runs). Ratio = mailout ÷ peer. MB = 10^6 bytes.", "",
            "## All samples (medians; min–max over the repeats)", "",
            "| case | tool | ok/runs | msgs | wall s | msgs/s | min–max msgs/s | CPU ms/msg | "
            "peak MB | notes |",
            "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    keys = sorted(set(samples) | {(r["case"], r["tool"]) for r in failed})
    for key in keys:
        ss = samples.get(key, [])
        nfail = sum(1 for r in failed if (r["case"], r["tool"]) == key)
        if not ss:
            out.append("| %s | %s | 0/%d | | | | | | | |" % (key[0], key[1], nfail))
            continue
        rates = [s["per_second"] for s in ss if s.get("per_second")]
        cpu = [s["cpu_s"] * 1000 / s["messages"] for s in ss if s.get("cpu_s") and s["messages"]]
        notes = []
        for k in ("p50_ms", "p99_ms", "drain_seconds", "delivered_per_second_during",
                  "queue_per_second", "connections_opened", "api_reads"):
            vals = [s[k] for s in ss if s.get(k) is not None]
            if vals:
                notes.append("%s %s" % (k, fmt(statistics.median(vals))))
        out.append("| %s | %s | %d/%d | %d | %.3f | %s | %s | %s | %s | %s |" % (
            key[0], key[1], len(ss), len(ss) + nfail, statistics.median(s["messages"] for s in ss),
            statistics.median(s.get("seconds") or 0 for s in ss),
            fmt(statistics.median(rates)) if rates else "",
            "%s–%s" % (fmt(min(rates)), fmt(max(rates))) if rates else "",
            "%.3f" % statistics.median(cpu) if cpu else "",
            fmt(max(s["peak_mb"] for s in ss if s.get("peak_mb") is not None), "MB")
            if any(s.get("peak_mb") is not None for s in ss) else "",
            ", ".join(notes)))
    if failed:
        out += ["", "## Failed samples (not counted)", ""]
        for r in failed:
            out.append("- %s / %s rep %s: %s" % (r["case"], r["tool"], r.get("rep"), r["error"]))
    out += ["", "All targets met: **%s**" % ("yes" if met_all else "no"), ""]
    text = "\n".join(out)
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    if not samples:
        sys.exit(1)
    sys.exit(0 if met_all else 2)


if __name__ == "__main__":
    main()
