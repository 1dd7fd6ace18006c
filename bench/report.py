#!/usr/bin/python3
"""report.py - turns measure.py's JSON lines into the Markdown report.

usage: report.py --results RESULTS.jsonl --out results.md [--meta "key: value"]...

Medians over the repeats of one run; ratios compare medians from this same
run only. Higher is better for msgs/s and MB/s; for CPU and memory the
target is an absolute bound (the ratio is shown for information).
Exit status 0 if every target was met and no sample failed, 2 otherwise.
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict

MB = 1e6  # MB/s in decimal megabytes, as curl prints them


def load(path):
    groups = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                groups[(r["case"], r["tool"])].append(r)
    return groups


class Stat:
    """Medians of one (case, tool) over its good samples."""

    def __init__(self, samples):
        self.samples = samples
        self.good = [s for s in samples if s["ok"]]
        self.failed = len(samples) - len(self.good)
        g = self.good
        self.n = len(samples)
        self.messages = samples[0]["messages"] if samples else 0
        if not g:
            self.mps = self.mbps = self.cpu_ms = self.rss_mb = self.wall = None
            self.internal_mps = self.rt_per_msg = None
            self.min_mps = self.max_mps = None
            return
        rates = [s["messages"] / s["wall"] for s in g]
        self.mps = statistics.median(rates)
        self.min_mps, self.max_mps = min(rates), max(rates)
        self.wall = statistics.median(s["wall"] for s in g)
        self.mbps = (statistics.median(s["bytes"] / s["wall"] / MB for s in g)
                     if g[0]["bytes"] else None)
        self.cpu_ms = statistics.median(1000 * s["cpu"] / s["messages"] for s in g)
        self.rss_mb = statistics.median(s["maxrss_kb"] / 1024 for s in g)
        rt = [s["round_trips"] / s["messages"] for s in g if s.get("round_trips")]
        self.rt_per_msg = statistics.median(rt) if rt else None
        internal = [s["internal_mps"] for s in g if s.get("internal_mps") is not None]
        self.internal_mps = statistics.median(internal) if internal else None


def fmt(v, unit, digits=None):
    if v is None:
        return "n/a"
    if digits is None:
        digits = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return f"{v:,.{digits}f} {unit}".strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--proxy-delay-ms", type=float, default=10)
    a = ap.parse_args()
    groups = load(a.results)

    def st(case, tool):
        return Stat(groups.get((case, tool), []))

    rows = []
    all_met = True

    def status(mo, peer):
        """Problems that make a row's figures untrustworthy."""
        probs = []
        for name, s in (("mailout", mo), ("peer", peer)):
            if s is None:
                continue
            if s.n == 0:
                probs.append(f"{name} not run")
            elif s.failed:
                probs.append(f"{name} failed {s.failed}/{s.n}")
        return probs

    def add(case_label, mo, mo_val, unit, peer_label, peer, peer_val, target_kind,
            target=None, digits=None):
        """target_kind: 'ratio' (mo/peer >= target), 'max' (mo <= target),
        'min' (mo >= target), or None (information only)."""
        nonlocal all_met
        ratio = (mo_val / peer_val) if (mo_val is not None and peer_val) else None
        probs = status(mo, peer)
        if target_kind == "ratio":
            tgt = f"≥ {target:.1f}×"
            ok = ratio is not None and ratio >= target
        elif target_kind == "max":
            tgt = f"≤ {target:g} {unit}"
            ok = mo_val is not None and mo_val <= target
        elif target_kind == "min":
            tgt = f"≥ {target:g} {unit}"
            ok = mo_val is not None and mo_val >= target
        else:
            tgt, ok = "(info)", None
        mo_failed = mo is not None and (mo.failed or mo.n == 0)
        if ok is None:
            met = "—" if not probs else "⚠ " + "; ".join(probs)
        else:
            if mo_failed:
                ok = False
            met = ("yes" if ok else "**NO**") + ("" if not probs else " (" + "; ".join(probs) + ")")
            all_met = all_met and ok
        rows.append((case_label, fmt(mo_val, unit, digits), peer_label,
                     fmt(peer_val, unit, digits), "n/a" if ratio is None else f"{ratio:.2f}×",
                     tgt, met))

    m1, s1, py1 = st("2k-1conn", "mailout"), st("2k-1conn", "smtp-source -d -s1"), \
        st("2k-1conn", "python smtplib")
    n1 = m1.messages or s1.messages
    m4, s4 = st("2k-4conn", "mailout --connections 4"), st("2k-4conn", "smtp-source -d -s4")
    n4 = m4.messages or s4.messages
    curl_each = st("per-process", "curl (1 process/msg)")
    msmtp_each = st("per-process", "msmtp (1 process/msg)")
    mbig, cbig = st("10MB", "mailout"), st("10MB", "curl")
    mp, sp, pyp = st("proxy", "mailout"), st("proxy", "smtp-source -d -s1"), \
        st("proxy", "python smtplib")
    d = f"{a.proxy_delay_ms:g} ms"

    c1 = f"{n1:,} × 2 KB, 1 connection (msgs/s)"
    add(c1, m1, m1.mps, "", "smtp-source -d -s1", s1, s1.mps, "ratio", 1.0)
    for where, label in (("same", "client on the sink's CPU"), ("cross", "client on the other CPU")):
        mo_p, ss_p = st(f"2k-1conn-{where}cpu", "mailout"), st(f"2k-1conn-{where}cpu",
                                                              "smtp-source -d -s1")
        if mo_p.n or ss_p.n:
            add(f"{n1:,} × 2 KB, 1 connection, pinned: {label} (msgs/s)", mo_p, mo_p.mps, "",
                "smtp-source -d -s1 (same pinning)", ss_p, ss_p.mps, "ratio", 1.0)
    add(c1, m1, m1.mps, "", "Python smtplib, 1 connection", py1, py1.mps, None)
    add(c1, m1, m1.mps, "", f"curl, 1 process/msg ({curl_each.messages} msgs)", curl_each,
        curl_each.mps, None)
    add(c1, m1, m1.mps, "", f"msmtp, 1 process/msg ({msmtp_each.messages} msgs)", msmtp_each,
        msmtp_each.mps, None)
    add(f"{n4:,} × 2 KB, 4 connections (msgs/s)", m4, m4.mps, "", "smtp-source -d -s4", s4,
        s4.mps, "ratio", 0.8)
    add("one 10 MB message (MB/s)", mbig, mbig.mbps, "", "curl --upload-file", cbig,
        cbig.mbps, "ratio", 1.0)
    cp = f"{mp.messages or sp.messages} × 2 KB via {d} reply-delay proxy, 1 conn (msgs/s)"
    add(cp, mp, mp.mps, "", "smtp-source -d -s1", sp, sp.mps, "min", 45)
    add(cp, mp, mp.mps, "", "Python smtplib, 1 connection", pyp, pyp.mps, "min", 45)
    add(f"client CPU per message, {n1:,} msgs, 1 conn (ms)", m1, m1.cpu_ms, "ms",
        "smtp-source -d -s1", s1, s1.cpu_ms, "max", 0.1, digits=4)
    mx, sx = st("2k-1conn-crosscpu", "mailout"), st("2k-1conn-crosscpu", "smtp-source -d -s1")
    if mx.n or sx.n:
        add(f"client CPU per message, {n1:,} msgs, 1 conn, client on the other CPU (ms)", mx,
            mx.cpu_ms, "ms", "smtp-source -d -s1 (same pinning)", sx, sx.cpu_ms, "max", 0.1,
            digits=4)
    add(f"client CPU per message, {n4:,} msgs, 4 conns (ms)", m4, m4.cpu_ms, "ms",
        "smtp-source -d -s4", s4, s4.cpu_ms, "max", 0.1, digits=4)
    add(f"peak memory (max RSS), {n1:,} msgs, 1 conn (MB)", m1, m1.rss_mb, "MB",
        "smtp-source -d -s1", s1, s1.rss_mb, "max", 6, digits=1)
    add(f"peak memory (max RSS), {n4:,} msgs, 4 conns (MB)", m4, m4.rss_mb, "MB",
        "smtp-source -d -s4", s4, s4.rss_mb, "max", 6, digits=1)
    add("peak memory (max RSS), 10 MB message (MB)", mbig, mbig.rss_mb, "MB", "curl", cbig,
        cbig.rss_mb, None, digits=1)

    out = []
    out.append("# mailout SMTP engine benchmark\n")
    for m in a.meta:
        out.append(f"- {m}")
    out.append("")
    out.append("| case | mailout | peer | peer figure | ratio | target | met? |")
    out.append("| --- | ---: | --- | ---: | ---: | --- | --- |")
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    out.append("")
    out.append("Figures are medians over the repeats, wall clock around the whole process "
               "(start-up and exit included), interleaved mailout/peer runs. Ratio = "
               "mailout ÷ peer (for CPU and memory lower is better and the target is the "
               "absolute bound). MB = 10^6 bytes.")
    out.append("")
    rts = [(t, st("proxy", t).rt_per_msg) for t in ("mailout", "smtp-source -d -s1",
                                                     "python smtplib")]
    if any(v is not None for _, v in rts):
        out.append("Through the proxy, server reply bursts (= round trips paid) per message, "
                   "connection set-up included: "
                   + ", ".join(f"{t} {v:.2f}" for t, v in rts if v is not None) + ".")
        out.append("")
    out.append("## All samples (medians; min–max of msgs/s over the repeats)\n")
    out.append("| case | tool | ok/runs | msgs | wall s | msgs/s | min–max msgs/s | MB/s "
               "| internal msgs/s | CPU ms/msg | max RSS MB | round trips/msg |")
    out.append("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for (case, tool), samples in groups.items():
        s = Stat(samples)
        if s.good:
            out.append(
                f"| {case} | {tool} | {len(s.good)}/{s.n} | {s.messages} | {s.wall:.3f} | "
                f"{s.mps:,.1f} | {s.min_mps:,.0f}–{s.max_mps:,.0f} | "
                f"{'' if s.mbps is None else f'{s.mbps:.1f}'} | "
                f"{'' if s.internal_mps is None else f'{s.internal_mps:,.1f}'} | "
                f"{s.cpu_ms:.4f} | {s.rss_mb:.1f} | "
                f"{'' if s.rt_per_msg is None else f'{s.rt_per_msg:.2f}'} |")
        else:
            out.append(f"| {case} | {tool} | 0/{s.n} | {s.messages} | | | | | | | | |")
    fails = [r for rs in groups.values() for r in rs if not r["ok"]]
    if fails:
        out.append("\n## Failed samples\n")
        for r in fails[:20]:
            out.append(f"- {r['case']} / {r['tool']} rep {r['rep']}: {r['error']}"
                       + (f" — stderr: `{r['stderr'].strip()[-200:]}`" if r.get("stderr") else ""))
        all_met = False
    out.append("")
    out.append("All targets met: " + ("**yes**" if all_met else "**no**"))
    text = "\n".join(out) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    sys.exit(0 if all_met else 2)


if __name__ == "__main__":
    main()
