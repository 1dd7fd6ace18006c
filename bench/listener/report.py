#!/usr/bin/python3
"""report.py - the listener benchmark's Markdown report from run_case.py's JSON lines.

usage: report.py RESULTS.jsonl HEADER.txt > results.md

For each case: the median accept rate of mailout and of Postfix over the repeats (failed
samples are listed, never averaged in), the ratio mailout / Postfix against the target
(>= 1.0x), the spread (min-max), and the server CPU per message (info). Exit status 2 when
a target is missed, 1 when a sample failed, else 0.
"""
import json
import statistics
import sys

TARGET = 1.0
CASES = [
    ("1s-keep", "1 session, connection kept (smtp-source -d -s 1)"),
    ("8s-keep", "8 sessions, connections kept (smtp-source -d -s 8)"),
    ("1s-conn", "1 session, a connection per message (smtp-source -s 1)"),
    ("8s-conn", "8 sessions, a connection per message (smtp-source -s 8)"),
]


def main():
    recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    header = open(sys.argv[2]).read().rstrip("\n")
    failed = [r for r in recs if not r["ok"]]
    missed = False
    out = [header, "",
           "| case | mailout (msgs/s) | Postfix smtpd (msgs/s) | ratio | target | met? |",
           "| --- | ---: | ---: | ---: | --- | --- |"]
    detail = ["", "## All samples (medians; min-max over the repeats)", "",
              "| case | server | ok/runs | msgs | msgs/s | min-max msgs/s | server CPU ms/msg |",
              "| --- | --- | --- | ---: | ---: | --- | ---: |"]
    for case, title in CASES:
        med = {}
        for server in ("mailout", "postfix"):
            runs = [r for r in recs if r["case"] == case and r["server"] == server]
            ok = [r for r in runs if r["ok"]]
            if not runs:
                continue
            rates = [r["rate"] for r in ok]
            cpu = [r["server_cpu_ms_per_msg"] for r in ok]
            med[server] = statistics.median(rates) if rates else None
            detail.append("| %s | %s | %d/%d | %d | %s | %s | %s |" % (
                case, "mailout" if server == "mailout" else "Postfix smtpd", len(ok), len(runs),
                runs[0]["messages"], "{:,.0f}".format(med[server]) if rates else "-",
                "{:,.0f}-{:,.0f}".format(min(rates), max(rates)) if rates else "-",
                "%.3f" % statistics.median(cpu) if cpu else "-"))
        if med.get("mailout") and med.get("postfix"):
            ratio = med["mailout"] / med["postfix"]
            met = ratio >= TARGET
            missed = missed or not met
            out.append("| %s | {:,.0f} | {:,.0f} | %.2fx | >= %.1fx | %s |".format(
                med["mailout"], med["postfix"]) % (title, ratio, TARGET,
                                                   "yes" if met else "**NO**"))
        elif med:
            out.append("| %s | %s | %s | - | >= %.1fx | **no data** |" % (
                title, med.get("mailout") or "-", med.get("postfix") or "-", TARGET))
            missed = True
    out += ["", "Ratio = mailout / Postfix (higher is better). Rates are the client's: messages "
            "divided by the wall clock of the smtp-source process. Every mailout sample is "
            "checked against the queue (exactly N new committed messages right after "
            "smtp-source exits), every Postfix sample against its log (N new cleanup "
            "records)."]
    out += detail
    if failed:
        out += ["", "## Failed samples", ""]
        out += ["- %s %s rep %d: %s" % (r["case"], r["server"], r["rep"], r["reason"])
                for r in failed]
    print("\n".join(out))
    return 1 if failed else (2 if missed else 0)


if __name__ == "__main__":
    sys.exit(main())
