#!/usr/bin/python3
"""httpload.py - POSTs many messages to mailout's HTTP API from concurrent keep-alive clients.

usage: httpload.py --port P --key KEY --count N [--clients C] [--raw FILE | --json]
                   [--prefix P] [--out RESULT.json]

Why: the queue benchmark needs 20,000 to 100,000 messages queued quickly before it times
delivery, and a client for the API case when wrk is missing. Standard library only
(asyncio streams, HTTP/1.1 keep-alive, one connection per client).

--raw FILE  POST /api/v1/messages/raw with FILE's bytes (an RFC 5322 message), its
            Message-ID header replaced per message: <PREFIX-NNNNNNN@bench.test>
--json      POST /api/v1/messages with {"to", "subject", "text"} of about 2 KB (the API
            makes the Message-ID; the subject carries the number).
Every answer must be 202; anything else is counted and shown (the exit status is then 1).
Prints (and with --out writes) one JSON object: count, accepted, failed, seconds,
per_second, latency_ms p50/p99, first_errors.
Leaves out: TLS, HTTP pipelining (clients wait for each answer, as a shop's code does).
"""
import argparse
import asyncio
import json
import re
import sys
import time

MSGID_RE = re.compile(rb"^Message-ID:[^\r\n]*\r?\n", re.M | re.I)
TEXT_LINE = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\n"


def raw_bodies(path, prefix):
    with open(path, "rb") as f:
        template = f.read()
    if not MSGID_RE.search(template):
        raise SystemExit("httpload: %s has no Message-ID header" % path)
    head, _, rest = template.partition(MSGID_RE.search(template).group(0))

    def body(i):
        return head + b"Message-ID: <%s-%07d@bench.test>\r\n" % (prefix.encode(), i) + rest
    return body


def json_bodies(prefix):
    text = TEXT_LINE * 29  # ~2 KB of text, ~2.1 KB of JSON

    def body(i):
        return json.dumps({"to": ["b@example.test"], "subject": "%s %d" % (prefix, i),
                           "text": text}).encode()
    return body


async def client(port, key, path, ctype, make_body, todo, stats):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while todo:
            i = todo.pop()
            body = make_body(i)
            req = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                   b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n"
                   % (path, key, ctype, len(body))) + body
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            payload = await reader.readexactly(int(m.group(1))) if m else b""
            stats["lat"].append(time.perf_counter() - t0)
            if status == 202:
                stats["accepted"] += 1
            else:
                stats["failed"] += 1
                if len(stats["errors"]) < 5:
                    stats["errors"].append(
                        "%d %s" % (status, payload[:200].decode("utf-8", "replace")))
            if re.search(rb"\r\nconnection:\s*close", head, re.I):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def run(a):
    if a.raw:
        make_body = raw_bodies(a.raw, a.prefix)
        path, ctype = b"/api/v1/messages/raw", b"message/rfc822"
    else:
        make_body, path, ctype = json_bodies(a.prefix), b"/api/v1/messages", b"application/json"
    todo = list(range(a.count, 0, -1))
    stats = {"accepted": 0, "failed": 0, "errors": [], "lat": []}
    t0 = time.perf_counter()
    await asyncio.gather(*(client(a.port, a.key.encode(), path, ctype, make_body, todo, stats)
                           for _ in range(a.clients)))
    secs = time.perf_counter() - t0
    lat = sorted(stats["lat"]) or [0.0]
    return {"count": a.count, "clients": a.clients, "accepted": stats["accepted"],
            "failed": stats["failed"], "seconds": round(secs, 3),
            "per_second": round(stats["accepted"] / secs, 1) if secs > 0 else None,
            "latency_ms": {"p50": round(lat[len(lat) // 2] * 1000, 2),
                           "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2)},
            "first_errors": stats["errors"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--raw")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--prefix", default="q")
    ap.add_argument("--out")
    a = ap.parse_args()
    if bool(a.raw) == bool(a.json):
        ap.error("give --raw FILE or --json")
    res = asyncio.run(run(a))
    text = json.dumps(res)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    sys.exit(0 if res["failed"] == 0 and res["accepted"] == a.count else 1)


if __name__ == "__main__":
    main()
