"""The service's sendmail socket (home/sendmail.sock): while `mailout serve` runs,
mailout-sendmail hands each message to it instead of opening the database itself; without the
service it runs `mailout sendmail` beside it. Messages are read back from aiosmtpd and parsed
with Python's email package."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from harness import netutil, procs
from harness.account_fixtures import home  # noqa: F401  (fixture)
from test_sendmail import (BIN, EX_USAGE, Run, assert_added_headers, assert_from_is_shop,
                           assert_one_line_failure, body_of, deliver, queue_messages, set_account,
                           token)

SENDMAIL = os.path.join(os.path.dirname(BIN), "mailout-sendmail")
EX_PROTOCOL = 76

pytestmark = pytest.mark.skipif(not os.path.exists(SENDMAIL), reason="mailout-sendmail not built")


def start_serve(run_dir, home_dir, name, deliver=False):
    port = netutil.free_port()
    log = os.path.join(run_dir.sub("sendmail-socket"), name + ".log")
    args = [BIN, "--home", home_dir, "serve", "--http", "127.0.0.1:%d" % port]
    if not deliver:
        args.append("--no-worker")
    proc = procs.ManagedProcess("mailout-" + name, args, log, run_dir)
    proc.start(ready_prefix=None)
    try:
        netutil.wait_for_port(port, alive=proc.alive)
    except Exception:
        proc.stop()
        raise AssertionError("mailout serve did not start; log:\n%s" % proc.log_tail())
    sock = os.path.join(home_dir, "sendmail.sock")
    deadline = time.monotonic() + 10
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.exists(sock), proc.log_tail()
    return proc


def small_sendmail(home_dir, *args, data=b"", binary=SENDMAIL, as_nobody=False):
    if isinstance(data, str):
        data = data.encode("utf-8")
    argv = [binary, "--home", home_dir, *args]
    if as_nobody:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + argv
    return Run(subprocess.run(argv, input=data, capture_output=True, timeout=60))


def read_all(sock):
    """Everything the peer sends until it closes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def served(run_dir, aiosmtpd, certs, home):
    set_account(home, aiosmtpd, certs)
    proc = start_serve(run_dir, home, "serve")
    try:
        yield home, proc
    finally:
        proc.stop()


def test_queued_through_the_service_and_delivered(served, aiosmtpd):
    """Server: aiosmtpd STARTTLS + AUTH; `mailout serve --no-worker` on the data folder.
    We run: mailout-sendmail -t -i -v with a message without From, Date or Message-ID, and a
    Bcc; then `queue run`.
    Must hold: exit 0 and one line "queued as #N" (the service's answer, printed by the
    client); the message is queued at once with source sendmail (no spool file); it arrives
    with the account's From, added Date and Message-ID, and no Bcc header."""
    home_dir, _ = served
    t = token()
    msg = "To: sock-%s@example.org\nBcc: hid-%s@example.org\nSubject: socket %s\n\nhanded over\n" % (
        t, t, t)
    r = small_sendmail(home_dir, "-t", "-i", "-v", data=msg)
    assert r.rc == 0, r
    assert r.stderr.startswith("mailout sendmail: queued as #"), r
    ms = queue_messages(home_dir)
    assert len(ms) == 1 and ms[0]["state"] == "queued" and ms[0]["source"] == "sendmail", ms
    assert os.listdir(os.path.join(home_dir, "spool", "new")) == []
    got = deliver(home_dir, aiosmtpd)
    (m,) = got.values()
    assert m.recipients == sorted(["sock-%s@example.org" % t, "hid-%s@example.org" % t])
    assert_from_is_shop(m)
    assert_added_headers(m)
    assert m.msg["Bcc"] is None
    assert body_of(m) == "handed over\n"


def test_the_services_refusal_reaches_the_caller(served):
    """Service running. We run: mailout-sendmail -i with a message and no recipients.
    Must hold: exit 64 (EX_USAGE) and the one line that `mailout sendmail` prints, naming the
    missing recipients; nothing queued."""
    home_dir, _ = served
    r = small_sendmail(home_dir, "-i", data="Subject: none\n\nno one\n")
    assert_one_line_failure(r, EX_USAGE, "no recipients")
    assert queue_messages(home_dir) == []


def test_dot_line_ends_the_message_before_the_service_gets_it(served, aiosmtpd):
    """Service running. We run: mailout-sendmail RCPT (no -i) with a message whose input goes
    on after a line holding a single dot. Must hold: exit 0; the stored message ends before the
    dot line."""
    home_dir, _ = served
    t = token()
    data = "To: dot-%s@example.org\nSubject: dot %s\n\nkept\n.\nnot kept\n" % (t, t)
    r = small_sendmail(home_dir, "dot-%s@example.org" % t, data=data)
    assert r.rc == 0, r
    (m,) = deliver(home_dir, aiosmtpd).values()
    assert body_of(m) == "kept\n"


def test_a_bad_request_is_refused_and_the_service_goes_on(served):
    """Service running. We write garbage to home/sendmail.sock from a raw socket.
    Must hold: the reply is status 76 (EX_PROTOCOL) with a reason; afterwards mailout-sendmail
    still queues."""
    home_dir, _ = served
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.path.join(home_dir, "sendmail.sock"))
    s.sendall(b"HELO there, this is not mailout-sendmail talking\n" * 3)
    s.shutdown(socket.SHUT_WR)
    reply = read_all(s)
    s.close()
    status, _, text = reply.partition(b"\n")
    assert int(status) == EX_PROTOCOL and b"not one mailout-sendmail sends" in text, reply
    r = small_sendmail(home_dir, "-i", "after@example.org", data="Subject: after\n\nok\n")
    assert r.rc == 0, r
    assert len(queue_messages(home_dir)) == 1


def test_many_senders_at_once(served):
    """Service running. We run 24 mailout-sendmail processes at the same time, each with its own
    message. Must hold: every one exits 0 and the queue holds 24 messages with 24 distinct
    subjects (the service commits them together; none is lost or doubled)."""
    home_dir, _ = served
    results = []
    lock = threading.Lock()

    def one(i):
        r = small_sendmail(home_dir, "-i", "many-%d@example.org" % i,
                           data="Subject: many %d\n\nbody %d\n" % (i, i))
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(r.rc == 0 for r in results), [r for r in results if r.rc != 0]
    subjects = sorted(m["subject"] for m in queue_messages(home_dir))
    assert subjects == sorted("many %d" % i for i in range(24))


def test_without_the_service_it_queues_by_itself(run_dir, aiosmtpd, certs, home):
    """We start and stop `mailout serve`, then run mailout-sendmail -t -i.
    Must hold: the stopped service removed home/sendmail.sock; mailout-sendmail still exits 0
    (it ran `mailout sendmail` beside it, which queued the message itself) and the message
    arrives after `queue run`."""
    set_account(home, aiosmtpd, certs)
    proc = start_serve(run_dir, home, "serve-stopped")
    proc.stop()
    assert not os.path.exists(os.path.join(home, "sendmail.sock"))
    t = token()
    r = small_sendmail(home, "-t", "-i", data="To: alone-%s@example.org\nSubject: alone\n\nx\n" % t)
    assert r.rc == 0, r
    (m,) = deliver(home, aiosmtpd).values()
    assert m.recipients == ["alone-%s@example.org" % t]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")


@needs_root
def test_a_user_without_the_database_queues_through_the_service(run_dir, aiosmtpd, certs):
    """A data folder as the README sets it up for PHP: 0711, the database and key 0600, the
    spool not opened to others. We run mailout-sendmail as nobody (setpriv) while the service
    runs. Must hold: nobody cannot read the database; its sendmail exits 0; the message is in
    the queue at once (not in the spool) and arrives with the account's From."""
    base = tempfile.mkdtemp(prefix="mailout-socket-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        binary = os.path.join(base, "mailout-sendmail")
        shutil.copy2(SENDMAIL, binary)
        shutil.copy2(BIN, os.path.join(base, "mailout"))
        home_dir = os.path.join(base, "home")
        set_account(home_dir, aiosmtpd, certs)
        proc = start_serve(run_dir, home_dir, "serve-nobody")
        try:
            os.chmod(home_dir, 0o711)
            assert subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup",
                                   "--clear-groups", "cat", os.path.join(home_dir, "mailout.db")],
                                  capture_output=True).returncode != 0
            t = token()
            r = small_sendmail(home_dir, "-t", "-i", binary=binary, as_nobody=True,
                               data="To: web-%s@example.org\nSubject: from php\n\nphp\n" % t)
            assert r.rc == 0, r
            ms = queue_messages(home_dir)
            assert len(ms) == 1 and ms[0]["source"] == "sendmail", ms
            assert os.listdir(os.path.join(home_dir, "spool", "new")) == []
        finally:
            proc.stop()
        (m,) = deliver(home_dir, aiosmtpd).values()
        assert_from_is_shop(m)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_service_that_never_answers_loses_nothing(aiosmtpd, certs, home):
    """A stand-in on home/sendmail.sock that takes every connection, reads the message and
    closes without a reply (a service that died mid-message). We run mailout-sendmail -t -i.
    Must hold: exit 0; the message was read by the stand-in and is also in the queue (mailout
    queued it itself: a message goes twice rather than not at all), and it arrives whole."""
    set_account(home, aiosmtpd, certs)
    path = os.path.join(home, "sendmail.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    seen = []

    def mute():
        srv.settimeout(30)
        try:
            while True:
                c, _ = srv.accept()
                seen.append(read_all(c))
                c.close()
        except OSError:
            pass

    th = threading.Thread(target=mute, daemon=True)
    th.start()
    t = token()
    try:
        r = small_sendmail(home, "-t", "-i",
                           data="To: mute-%s@example.org\nSubject: mute %s\n\nstill here\n" % (t, t))
    finally:
        srv.close()
        os.unlink(path)
    assert r.rc == 0, r
    assert seen and all(b"still here" in d for d in seen), seen
    (m,) = deliver(home, aiosmtpd).values()
    assert m.recipients == ["mute-%s@example.org" % t]
    assert body_of(m) == "still here\n"


# --- the story, end to end --------------------------------------------------------------

from harness.faults_server import FaultServer  # noqa: E402
from harness.servers import USERS  # noqa: E402
from test_sendmail import PHP, PHP_SCRIPT, SUBJECT_UTF8, needs_php  # noqa: E402

FIRST_RETRY_MAX_S = 72  # the first retry comes 60 s +- 20 % after the first attempt


@pytest.fixture
def failing_provider(run_dir, certs):
    instance = FaultServer(run_dir, certs, USERS)
    try:
        yield instance.start()
    finally:
        instance.stop()


def wait_until(what, predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "not within %d s: %s" % (timeout_s, what)
        time.sleep(0.5)


@needs_php
def test_php_mail_while_the_provider_fails_then_a_restart_then_it_arrives(
        run_dir, failing_provider, certs, home):
    """The issue's "done when": a shop points PHP's sendmail_path at mailout-sendmail, sends
    while the provider is failing, the machine restarts, and the mail arrives once the
    provider recovers.
    Server: the fault server (aiosmtpd, STARTTLS + AUTH), first answering every connection
    with "421 4.3.2 Service not available".
    We run: `mailout serve` (delivering); PHP's mail() with sendmail_path = "mailout-sendmail
    --home HOME -t -i" and a UTF-8 subject; wait for the failed attempt; SIGTERM the service
    (the restart) and start it again; the provider recovers (mode ok); wait for the retry
    (about a minute after the first attempt, by the backoff; nobody runs `queue retry`).
    Must hold: mail() returned true at once; the message was deferred with the provider's 421
    kept as its last reply; after the restart it arrives once, with its subject, From the
    account; the queue says sent after 2 attempts."""
    set_account(home, failing_provider.server, certs)
    failing_provider.set_mode("greeting_421")
    service = start_serve(run_dir, home, "serve-story-1", deliver=True)
    to = "story-%s@example.org" % token()
    try:
        p = subprocess.run([PHP, "-d", "sendmail_path=%s --home %s -t -i" % (SENDMAIL, home),
                            "-r", PHP_SCRIPT, "--", to, SUBJECT_UTF8, "raw"],
                           capture_output=True, timeout=60)
        assert p.stdout == b"true", p
        deferred = wait_until("the failed first attempt", lambda: [
            m for m in queue_messages(home) if m["state"] == "deferred"], 30)
        assert "421" in (deferred[0].get("last_reply") or ""), deferred
    finally:
        service.stop()
    snap = failing_provider.server.store.snapshot()
    service = start_serve(run_dir, home, "serve-story-2", deliver=True)
    try:
        failing_provider.set_mode("ok")
        wait_until("the retry after the restart", lambda: [
            m for m in queue_messages(home) if m["state"] == "sent"], FIRST_RETRY_MAX_S + 30)
    finally:
        service.stop()
    (m,) = failing_provider.server.store.new_since(snap)
    assert m.recipients == [to]
    assert m.msg["Subject"] == SUBJECT_UTF8
    assert_from_is_shop(m)
    (q,) = queue_messages(home)
    assert q["state"] == "sent" and q["attempts"] == 2, q
