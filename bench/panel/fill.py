"""fill.py - fills a mailout data folder with messages through the HTTP API, for the panel
benchmark (bench/panel.sh).

Usage: /usr/bin/python3 bench/panel/fill.py PORT API_KEY COUNT [THREADS]

POSTs COUNT messages to http://127.0.0.1:PORT/api/v1/messages with "Authorization: Bearer
API_KEY", THREADS connections at once (default 8), each kept alive. Message i goes to
customer<i>@example.org with the subject "Order #<i> confirmed"; every 1000th also carries
the word "needle" in its subject, so a search has a rare term to find. Every answer must be
202 (the message is committed); the first other answer stops the run with exit status 1.
Prints one JSON line: {"count", "seconds", "per_second"}. Stdlib only.
"""

import http.client
import json
import sys
import threading
import time


def worker(port, key, ids, failures):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    for i in ids:
        subject = "Order #%d confirmed" % i
        if i % 1000 == 0:
            subject += " (needle %d)" % i
        body = json.dumps({"to": ["customer%d@example.org" % i], "subject": subject,
                           "text": "Dear customer %d,\n\nthank you for your order %d.\n" % (i, i)})
        conn.request("POST", "/api/v1/messages", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 202:
            failures.append("message %d: %d %s" % (i, resp.status, data[:200]))
            return
        if failures:
            return
    conn.close()


def main():
    port, key, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    failures = []
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(port, key, range(k + 1, count + 1, threads),
                                                failures)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - t0
    if failures:
        print("fill.py: " + failures[0], file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"count": count, "seconds": round(took, 2),
                      "per_second": round(count / took)}))


if __name__ == "__main__":
    main()
