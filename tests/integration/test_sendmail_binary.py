"""`mailout-sendmail`, the sendmail command as its own small program (for php.ini's
sendmail_path): it must queue exactly like `mailout sendmail`, and load no HTTP library."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAILOUT = os.environ.get("MAILOUT_BIN", os.path.join(ROOT, "build", "src", "cli", "mailout"))
SENDMAIL = os.path.join(os.path.dirname(MAILOUT), "mailout-sendmail")

pytestmark = pytest.mark.skipif(not os.path.exists(SENDMAIL), reason="mailout-sendmail not built")


def run(args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, timeout=60)


def test_queues_like_mailout_sendmail(tmp_path):
    """Server: none (the message only has to be queued).
    We run: `account set` (a default account), then `mailout-sendmail --home D -t -i` with a
    message on stdin that has a Bcc and no Date or Message-ID.
    Must hold: exit 0; `queue list --json` shows one queued message; `queue show --json` has
    both the To and the Bcc recipient in the envelope, the account's sender as From, and a
    Message-ID that mailout added. (What the stored bytes look like is proven in
    test_sendmail.py, which reads them back at a server.)"""
    home = str(tmp_path / "home")
    r = run([MAILOUT, "--home", home, "account", "set", "--email", "shop@example.test",
             "--host", "127.0.0.1", "--port", "2525", "--security", "none",
             "--password-stdin"], stdin=b"123456")
    assert r.returncode == 0, r.stderr
    message = b"To: a@example.test\nBcc: secret@example.test\nSubject: hello\n\nbody\n"
    r = run([SENDMAIL, "--home", home, "-t", "-i"], stdin=message)
    assert r.returncode == 0, r.stderr
    r = run([MAILOUT, "--home", home, "queue", "list", "--json"])
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    messages = listed["messages"] if isinstance(listed, dict) else listed
    assert len(messages) == 1
    m = messages[0]
    assert m["state"] == "queued"
    r = run([MAILOUT, "--home", home, "queue", "show", str(m["id"]), "--json"])
    shown = json.loads(r.stdout)["message"]
    assert sorted(x["address"] for x in shown["recipients"]) == [
        "a@example.test", "secret@example.test"]
    assert shown["header_from"] == "shop@example.test"
    assert shown["from"] == "shop@example.test"
    assert "@" in (shown["message_id"] or "")
    assert shown["source"] == "sendmail"


def test_loads_libc_alone():
    """We run: ldd on mailout-sendmail. Must hold: the only libraries it loads are libc and
    the loader (no OpenSSL, SQLite, libsodium, libidn2, libmicrohttpd): PHP starts this program
    once per message and it only hands the message over (to the service's socket, or to
    `mailout sendmail`), which is why it exists."""
    r = run(["ldd", SENDMAIL])
    assert r.returncode == 0
    libs = sorted(line.split()[0] for line in r.stdout.decode().splitlines() if line.strip())
    others = [x for x in libs if not (x.startswith("linux-vdso") or x.startswith("libc.so")
                                      or "ld-linux" in x)]
    assert others == [], libs


def test_bad_usage_exit_code(tmp_path):
    """We run: mailout-sendmail with no recipients and no -t. Must hold: exit 64 (EX_USAGE)
    and a one-line reason on stderr."""
    r = run([SENDMAIL, "--home", str(tmp_path), "-i"], stdin=b"Subject: x\n\nbody\n")
    assert r.returncode == 64
    assert len(r.stderr.decode().strip().splitlines()) >= 1
