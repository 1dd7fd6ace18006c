#!/usr/bin/python3
"""genmsgs.py - writes ready-made RFC 5322 messages for the benchmark.

usage: genmsgs.py --dir D --count N --size BYTES [--lf-copy FILE] [--prefix P]

Each file D/P000001.eml is exactly BYTES long (CRLF line ends, lines of at
most 78 characters, 7-bit text) with a unique Message-ID. Every 16th body
line starts with "." so the sender must dot-stuff. Deterministic: the same
arguments give the same bytes.

--lf-copy FILE also writes the first message with LF line ends, for
`smtp-source -F` (which appends CRLF to each line it reads).
"""
import argparse
import os

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua ut enim ad minim "
         "veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea "
         "commodo consequat").split()


def message(i, size, prefix):
    head = (
        "From: Bench Sender <a@example.test>\r\n"
        "To: Bench Rcpt <b@example.test>\r\n"
        f"Subject: mailout bench {prefix} message {i}\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        f"Message-ID: <bench-{prefix}-{i:06d}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    if len(head) + 4 > size:
        raise SystemExit(f"genmsgs: --size {size} is too small for the headers")
    body = bytearray()
    room = size - len(head)
    n = 0
    w = i
    # Text lines until less than 160 bytes are left, then one padding line
    # (at most ~160 characters, well under the 998 limit) to hit `size`.
    while room - len(body) >= 160:
        line = "." if n % 16 == 15 else ""
        while len(line) < 70:
            line += WORDS[(w >> 8) % len(WORDS)] + " "
            w = (w * 1103515245 + 12345) & 0x7fffffff
        line = line.rstrip()[:76] + "\r\n"
        body += line.encode("ascii")
        n += 1
    left = room - len(body)
    body += b"x" * (left - 2) + b"\r\n"
    data = head + bytes(body)
    assert len(data) == size, (len(data), size)
    assert data.endswith(b"\r\n")
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--prefix", default="m")
    ap.add_argument("--lf-copy")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    for i in range(1, a.count + 1):
        data = message(i, a.size, a.prefix)
        with open(os.path.join(a.dir, f"{a.prefix}{i:06d}.eml"), "wb") as f:
            f.write(data)
        if i == 1 and a.lf_copy:
            with open(a.lf_copy, "wb") as f:
                f.write(data.replace(b"\r\n", b"\n"))


if __name__ == "__main__":
    main()
