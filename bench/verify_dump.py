#!/usr/bin/python3
"""verify_dump.py - checks that what smtp-sink captured is what was sent.

usage: verify_dump.py --dump-dir D --originals DIR [--expect N]
                      [--mail-from A] [--rcpt B]

smtp-sink -d writes one file per transaction: its own X-* headers and a
three-line Received: header, then the message as received (dot-stuffing
undone, CRLF turned into LF), then an empty line. Each captured message is
matched to its original by Message-ID and must be byte-identical to it
(after CRLF -> LF); the envelope (X-Mail-Args / X-Rcpt-Args) must match too.
Exit status 0 when every original arrived exactly once and intact.
"""
import argparse
import os
import re
import sys

MSGID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.I | re.M)


def parse_dump(data):
    """Returns (sink_headers dict of lists, content bytes)."""
    lines = data.split(b"\n")
    hdr = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(b"Received:"):
            i += 1
            while i < len(lines) and lines[i].startswith(b"\t"):
                i += 1
            break
        name, _, value = line.partition(b":")
        hdr.setdefault(name.decode("ascii", "replace"), []).append(value.strip())
        i += 1
    content = b"\n".join(lines[i:])
    # The dump ends with the message's last newline plus one empty line.
    if content.endswith(b"\n\n"):
        content = content[:-1]
    return hdr, content


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump-dir", required=True)
    ap.add_argument("--originals", required=True)
    ap.add_argument("--expect", type=int)
    ap.add_argument("--mail-from", default="a@example.test")
    ap.add_argument("--rcpt", default="b@example.test")
    a = ap.parse_args()

    originals = {}
    for n in sorted(os.listdir(a.originals)):
        with open(os.path.join(a.originals, n), "rb") as f:
            data = f.read()
        m = MSGID.search(data)
        if not m:
            sys.exit(f"verify_dump: {n} has no Message-ID")
        originals[m.group(1)] = (n, data.replace(b"\r\n", b"\n"))
    if a.expect is not None and a.expect != len(originals):
        sys.exit(f"verify_dump: {len(originals)} originals, expected {a.expect}")

    seen = {}
    problems = []
    dumps = []
    for root, _, names in os.walk(a.dump_dir):
        dumps += [os.path.join(root, n) for n in names]
    for path in sorted(dumps):
        with open(path, "rb") as f:
            hdr, content = parse_dump(f.read())
        m = MSGID.search(content)
        if not m or m.group(1) not in originals:
            problems.append(f"{path}: a message that was not sent (Message-ID "
                            f"{m.group(1) if m else None})")
            continue
        name, want = originals[m.group(1)]
        seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        if hdr.get("X-Mail-Args", [b""])[0].split(b" ")[0] != b"<" + a.mail_from.encode() + b">":
            problems.append(f"{name}: MAIL FROM was {hdr.get('X-Mail-Args')}")
        if [v.split(b" ")[0] for v in hdr.get("X-Rcpt-Args", [])] != [b"<" + a.rcpt.encode() + b">"]:
            problems.append(f"{name}: RCPT TO was {hdr.get('X-Rcpt-Args')}")
        if content != want:
            k = next((i for i, (x, y) in enumerate(zip(content, want)) if x != y),
                     min(len(content), len(want)))
            problems.append(f"{name}: content differs at byte {k} (got {len(content)} bytes, "
                            f"want {len(want)}): got {content[max(0, k - 20):k + 20]!r} "
                            f"want {want[max(0, k - 20):k + 20]!r}")
    for mid, (name, _) in originals.items():
        c = seen.get(mid, 0)
        if c != 1:
            problems.append(f"{name}: arrived {c} times")
    if problems:
        for p in problems[:20]:
            print("verify_dump: " + p, file=sys.stderr)
        sys.exit(1)
    print(f"verify_dump: all {len(originals)} messages arrived once, intact")


if __name__ == "__main__":
    main()
