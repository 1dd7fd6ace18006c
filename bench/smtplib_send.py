#!/usr/bin/python3
"""smtplib_send.py - the Python peer: sends every file of a folder (sorted)
over ONE smtplib connection, reusing it (smtplib does not pipeline).

usage: smtplib_send.py --host 127.0.0.1 --port P --from A --to B --raw PATH
Prints {"sent": N, "failed": M, "seconds": S} and exits 0 only if all were sent.
"""
import argparse
import json
import os
import smtplib
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--from", dest="sender", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("smtplib_send: loopback only")
    if os.path.isdir(a.raw):
        files = sorted(os.path.join(a.raw, n) for n in os.listdir(a.raw)
                       if not n.startswith("."))
    else:
        files = [a.raw]
    sent = failed = 0
    t0 = time.perf_counter()
    with smtplib.SMTP(a.host, a.port, local_hostname="localhost", timeout=a.timeout) as s:
        s.ehlo()
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            try:
                refused = s.sendmail(a.sender, [a.to], data)
                if refused:
                    failed += 1
                else:
                    sent += 1
            except smtplib.SMTPException as e:
                print(f"smtplib_send: {path}: {e}", file=sys.stderr)
                failed += 1
                s.rset()
    seconds = time.perf_counter() - t0
    print(json.dumps({"sent": sent, "failed": failed, "seconds": seconds}))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
