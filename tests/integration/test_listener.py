"""Integration tests of the SMTP submission listener: `mailout serve --smtp 127.0.0.1:PORT`.

Real clients send to the listener: Python's smtplib (STARTTLS + AUTH with an API key as the
password), swaks, nodemailer (tests/node/send.js) and hand-written SMTP over a socket where
the exact bytes matter (pipelining, STARTTLS injection, dot-unstuffing). What mailout
accepted comes out of the queue, through the worker that `serve` runs, to a real server:
aiosmtpd (which stores the bytes as received) and Postfix (which stores them in a Maildir),
and must be byte-identical to what the client sent except for the headers mailout adds (a
Received field on top; Date and Message-ID at the end of the header block when missing).
Refusals are checked by their reply codes, and by what the queue holds afterwards (read
from a separate SQLite connection to mailout.db: "250" must mean "committed").

Each test says how the server behaves, what we run, what must arrive, and the reply codes.

Services:
  relay   module: data folder with the default account (aiosmtpd's STARTTLS listener, the
          run's CA) and an API key; `serve --no-http --smtp 127.0.0.1:P --smtp-cert
          --smtp-key`, worker on (delivers to aiosmtpd).
  parked  module: the same folder layout plus a second account "news" (news@example.test),
          worker off (--no-worker) so the queue keeps what was accepted; small limits:
          --smtp-max-size 65536 --smtp-max-recipients 3.
  others  per test: non-loopback (0.0.0.0), --smtp-require-auth, --smtp-rate,
          --smtp-max-connections, a data folder on a small tmpfs (needs root; skipped
          otherwise).
The module is skipped when the binary does not exist; it fails when `serve` does not start.
"""

import base64
import email
import email.policy
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import time
import uuid

import pytest

from harness import netutil, procs
from harness.mailout import describe, mailout_bin, run_mailout
from harness.servers import NODE_DIR, USERS

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
PASSWORD = USERS[SHOP]
NEWS = "news@example.test"
PARKED_MAX_SIZE = 65536
PARKED_MAX_RCPTS = 3


# --- services -----------------------------------------------------------------------------------

def mo(home_dir, *args, password=None, stdin_text=None, timeout_s=60):
    return run_mailout(["--home", home_dir, *args], password=password, stdin_text=stdin_text,
                       timeout_s=timeout_s)


def set_account(home_dir, port, certs, name=None, email_addr=SHOP):
    args = ["account", "set", "--email", email_addr, "--username", SHOP, "--host", "localhost",
            "--port", str(port), "--security", "starttls", "--ca-file", certs.ca_file, "--json"]
    if name:
        args += ["--name", name]
    r = mo(home_dir, *args, password=PASSWORD)
    assert r.rc == 0, "account set failed\n%s" % describe(r)


def create_key(home_dir, name):
    r = mo(home_dir, "apikey", "create", name)
    assert r.rc == 0, describe(r)
    key = r.stdout.strip()
    assert key.startswith("mo_") and len(key) == 46, r.stdout
    return key


class Listener:
    def __init__(self, home, port, key, proc):
        self.home = home
        self.port = port
        self.key = key
        self.proc = proc

    def log(self):
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def start_listener(run_dir, home_dir, key, name, *extra, listen_host="127.0.0.1", worker=True,
                   certs=None):
    port = netutil.free_port()
    argv = [BIN, "--home", home_dir, "serve", "--no-http", "--smtp",
            "%s:%d" % (listen_host, port)]
    if certs is not None:
        argv += ["--smtp-cert", certs.server_cert, "--smtp-key", certs.server_key]
    if not worker:
        argv.append("--no-worker")
    argv += list(extra)
    log = os.path.join(run_dir.sub("listener"), name + ".log")
    proc = procs.ManagedProcess("mailout-" + name, argv, log, run_dir)
    proc.start(ready_prefix=None)
    try:
        netutil.wait_for_port(port, alive=proc.alive)
    except Exception:
        proc.stop()
        raise AssertionError("mailout serve --smtp did not start; log:\n%s" % proc.log_tail())
    return Listener(home_dir, port, key, proc)


@pytest.fixture(scope="module")
def relay(run_dir, certs, aiosmtpd, tmp_path_factory):
    home_dir = str(tmp_path_factory.mktemp("relay") / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    svc = start_listener(run_dir, home_dir, create_key(home_dir, "shop"), "relay", certs=certs)
    try:
        yield svc
    finally:
        svc.proc.stop()


@pytest.fixture(scope="module")
def parked(run_dir, certs, aiosmtpd, tmp_path_factory):
    home_dir = str(tmp_path_factory.mktemp("parked") / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    set_account(home_dir, aiosmtpd.port("starttls"), certs, name="news", email_addr=NEWS)
    svc = start_listener(run_dir, home_dir, create_key(home_dir, "shop"), "parked",
                         "--smtp-max-size", str(PARKED_MAX_SIZE), "--smtp-max-recipients",
                         str(PARKED_MAX_RCPTS), worker=False, certs=certs)
    try:
        yield svc
    finally:
        svc.proc.stop()


# --- helpers ------------------------------------------------------------------------------------

def token():
    return uuid.uuid4().hex[:10]


def tls_context(certs):
    return ssl.create_default_context(cafile=certs.ca_file)


def client(svc, certs=None, tls=True, login=True, helo="client.test"):
    """smtplib on the listener: EHLO, STARTTLS (verified against the run's CA), AUTH."""
    s = smtplib.SMTP("localhost", svc.port, local_hostname=helo, timeout=20)
    s.ehlo()
    if tls:
        s.starttls(context=tls_context(certs))
        s.ehlo()
    if login:
        s.login("any-user", svc.key)
    return s


def db_rows(home_dir, sql, args=()):
    """A read on mailout.db through its own connection: what is committed, nothing else."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(home_dir, "mailout.db"), uri=True,
                          timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def queued(home_dir, msg_id):
    """(account, env_from, [recipients], data bytes) of queue id msg_id, or None."""
    rows = db_rows(home_dir, "SELECT m.account, m.env_from, d.data FROM messages m "
                   "JOIN message_data d ON d.id = m.id WHERE m.id = ?", (msg_id,))
    if not rows:
        return None
    rows = [("default" if rows[0][0] is None else rows[0][0],) + tuple(rows[0][1:])]
    rcpts = [r[0] for r in db_rows(home_dir, "SELECT address FROM recipients WHERE message_id = ?"
                                   " ORDER BY rowid", (msg_id,))]
    account, env_from, data = rows[0]
    return account, env_from, rcpts, bytes(data)


def count_messages(home_dir):
    return db_rows(home_dir, "SELECT COUNT(*) FROM messages")[0][0]


def queued_id(reply_text):
    m = re.search(rb"queued as (\d+)", reply_text if isinstance(reply_text, bytes)
                  else reply_text.encode())
    assert m, reply_text
    return int(m.group(1))


def split_received(raw):
    """(our Received field, the rest): the field is the first one, with its folded lines."""
    assert raw.startswith(b"Received: from "), raw[:200]
    end = raw.index(b"\r\n") + 2
    while raw[end:end + 1] in (b"\t", b" "):
        end = raw.index(b"\r\n", end) + 2
    return raw[:end], raw[end:]


def header_block(raw):
    return raw.split(b"\r\n\r\n", 1)[0]


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def make_message(t, extra_headers="", body=None, date=True, msgid=True, frm=SHOP, to="bob@example.org"):
    lines = ["From: Shop <%s>" % frm, "To: %s" % to, "Subject: listener %s" % t]
    if date:
        lines.append("Date: Tue, 24 Nov 2026 10:00:00 +0100")
    if msgid:
        lines.append("Message-ID: <%s@example.test>" % t)
    if extra_headers:
        lines.append(extra_headers)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 8bit"]
    if body is None:
        body = ("Hello,\n.\n..two dots\n.leading dot\nFrom the shop\nGr\u00fc\u00dfe, "
                "\u00e7a va\n\ttabbed line\n\nbye\n")
    return crlf("\n".join(lines) + "\n\n" + body)


class Wire:
    """Plain SMTP over a socket, for the tests where the exact bytes and their order matter."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=20)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode("utf-8"))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; had %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """(code, [texts]) of one reply, multi-line ones joined."""
        texts = []
        while True:
            line = self._line()
            code = int(line[:3])
            texts.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return code, texts

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self, certs):
        assert self.cmd("STARTTLS")[0] == 220
        self.sock = tls_context(certs).wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def auth_plain(key, user="shop"):
    return "AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + key.encode()).decode()


# --- 1. real clients, delivered byte for byte ---------------------------------------------------

def test_smtplib_starttls_auth_delivered_byte_identical(relay, aiosmtpd, certs):
    """Server: aiosmtpd's STARTTLS listener behind mailout's queue.
    We run: smtplib: EHLO, STARTTLS (verified), AUTH LOGIN with the API key, MAIL FROM with
    BODY=8BITMIME, two RCPTs, DATA: a message with Date and Message-ID, UTF-8 8-bit body,
    lines ".", "..two dots", ".leading dot" (smtplib dot-stuffs them).
    Must arrive: at aiosmtpd, for both recipients from the envelope sender, the exact bytes
    sent with one Received field on top that names the client, ESMTPSA, the TLS version and
    the key's number, never the key itself; the key is not in the service's log either.
    Replies: 235, 250 2.1.0, 250 2.1.5, 250 2.0.0 "Ok: queued as N"."""
    t = token()
    raw = make_message(t)
    rcpts = ["bob-%s@example.org" % t, "carol-%s@example.org" % t]
    s = client(relay, certs)
    try:
        assert "PIPELINING" in s.ehlo_resp.decode().upper()
        assert s.has_extn("smtputf8") and s.has_extn("8bitmime") and s.has_extn("size")
        assert not s.has_extn("starttls"), "STARTTLS offered again after TLS"
        code, text = s.mail(SHOP, ["BODY=8BITMIME"])
        assert code == 250 and text.startswith(b"2.1.0"), (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250 and text.startswith(b"2.1.5"), (code, text)
        code, text = s.data(raw)
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as "), (code, text)
        msg_id = queued_id(text)
    finally:
        s.quit()
    got = aiosmtpd.store.wait_for("%s@example.test" % t, min_recipients=2)
    assert got is not None, aiosmtpd.store.describe()
    assert got.sender == SHOP
    assert sorted(got.recipients) == sorted(rcpts)
    received, rest = split_received(got.raw)
    assert rest == raw, "the message changed on its way:\n%r\n%r" % (rest[:600], raw[:600])
    text = received.decode()
    assert "from client.test ([127.0.0.1])" in text, text
    assert "with ESMTPSA" in text and "using TLSv1." in text, text
    assert "authenticated with API key #" in text, text
    assert relay.key not in text and relay.key not in relay.log()
    # and the queue knows it by the number the 250 gave
    info = queued(relay.home, msg_id)
    assert info is not None and info[1] == SHOP and sorted(info[2]) == sorted(rcpts)


def test_swaks_pipelining_missing_headers_added(relay, aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd behind the queue.
    We run: swaks --auth PLAIN --pipeline on loopback (AUTH in clear is allowed there; swaks'
    --tls needs Perl's Net::SSLeay, which the test machine need not have: TLS is covered by
    smtplib and nodemailer) with a message that has no Date and no Message-ID (From, To,
    Subject, a body with a "." line).
    Must arrive: the header block as sent plus Date and Message-ID (…@example.test, the From
    domain) at its end, the body unchanged; swaks sees 250 for the data.
    Exit code: 0."""
    t = token()
    raw = make_message(t, date=False, msgid=False)
    path = tmp_path / "msg.eml"
    path.write_bytes(raw[:-2])  # swaks adds the last line end itself
    before = aiosmtpd.store.snapshot()
    p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % relay.port, "--helo", "swaks.test",
                        "--auth", "PLAIN", "--auth-user", "whoever", "--auth-password", relay.key,
                        "--pipeline", "--from", SHOP, "--to", "dave-%s@example.org" % t,
                        "--data", "@" + str(path)], capture_output=True, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out + p.stderr.decode()
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as \d+", out), out
    new = aiosmtpd.store.new_since(before, timeout_s=20)
    assert len(new) == 1, aiosmtpd.store.describe()
    got = new[0]
    _received, rest = split_received(got.raw)
    head, body = rest.split(b"\r\n\r\n", 1)
    sent_head, sent_body = raw.split(b"\r\n\r\n", 1)
    assert body == sent_body
    assert head.startswith(sent_head + b"\r\n"), head
    added = head[len(sent_head) + 2:].split(b"\r\n")
    assert [a.split(b":")[0] for a in added] == [b"Date", b"Message-ID"], added
    assert email.utils.parsedate_to_datetime(added[0][6:].decode()) is not None
    assert re.fullmatch(rb"Message-ID: <[^@<>\s]+@example\.test>", added[1]), added[1]


def test_nodemailer_raw_message(relay, aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd behind the queue.
    We run: nodemailer (tests/node/send.js) with requireTLS, the run's CA, auth user/pass =
    the key's name / the key, and a raw message (sent as is, SMTPUTF8 not needed).
    Must arrive: byte-identical after our Received field; nodemailer reports
    "250 2.0.0 Ok: queued as N"."""
    if shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                                                       "nodemailer")):
        pytest.fail("node or nodemailer missing: run `npm ci` in tests/node")
    t = token()
    raw = make_message(t)
    cfg = {"port": relay.port, "host": "127.0.0.1", "ca": certs.ca_file, "requireTLS": True,
           "user": "shop", "pass": relay.key,
           "envelope": {"from": SHOP, "to": ["erin-%s@example.org" % t]},
           "raw": raw.decode("utf-8")}
    cfg_path = tmp_path / "node.json"
    cfg_path.write_text(json.dumps(cfg))
    p = subprocess.run(["node", os.path.join(NODE_DIR, "send.js"), str(cfg_path)],
                       capture_output=True, timeout=60, cwd=NODE_DIR)
    res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert res["ok"], res
    assert re.match(r"250 2\.0\.0 Ok: queued as \d+", res["response"]), res
    got = aiosmtpd.store.wait_for("%s@example.test" % t)
    assert got is not None, aiosmtpd.store.describe()
    _received, rest = split_received(got.raw)
    assert rest == raw


def test_delivered_through_postfix(run_dir, certs, postfix, tmp_path):
    """Server: Postfix (submission, STARTTLS + Dovecot SASL) behind mailout's queue.
    We run: a listener whose account sends through Postfix; smtplib submits over STARTTLS
    with AUTH PLAIN.
    Must arrive: in Postfix's Maildir (Postfix converts to LF and prepends its own
    Return-Path, Delivered-To and Received): after those, our Received field, then every
    header line and the body exactly as sent.
    Replies: 250 "queued as N"."""
    home_dir = str(tmp_path / "home")
    set_account(home_dir, postfix.port("starttls"), certs)
    svc = start_listener(run_dir, home_dir, create_key(home_dir, "shop"), "via-postfix",
                         certs=certs)
    try:
        t = token()
        raw = make_message(t)
        s = client(svc, certs, login=False)
        try:
            code, _ = s.docmd(auth_plain(svc.key))
            assert code == 235
            s.sendmail(SHOP, ["frank-%s@example.org" % t], raw)
        finally:
            s.quit()
        got = postfix.store.wait_for("%s@example.test" % t, timeout_s=30)
        assert got is not None, postfix.store.describe()
        stored = got.raw.replace(b"\r\n", b"\n")
        mine = stored.index(b"\nReceived: from client.test ([127.0.0.1])") + 1
        rest = stored[mine:]
        _rcv, rest = split_received(rest.replace(b"\n", b"\r\n"))
        assert rest == raw
    finally:
        svc.proc.stop()


# --- 2. what the listener does to the message ---------------------------------------------------

def test_bcc_removed_from_added_account_sender(parked, certs):
    """Server: none (worker off): the queue is read back.
    We run: a message without From, Date and Message-ID, with a Bcc header; envelope to the
    To and the Bcc address.
    Must be queued: both recipients; no Bcc header; From set to the account's address; Date
    and Message-ID added; account "default"."""
    t = token()
    raw = crlf("To: bob@example.org\nBcc: hidden-%s@example.org\nSubject: bcc %s\n\nhi\n" % (t, t))
    s = client(parked, certs)
    try:
        s.mail(SHOP)
        s.rcpt("bob@example.org")
        s.rcpt("hidden-%s@example.org" % t)
        code, text = s.data(raw)
        assert code == 250, (code, text)
    finally:
        s.quit()
    account, env_from, rcpts, data = queued(parked.home, queued_id(text))
    assert account == "default" and env_from == SHOP
    assert rcpts == ["bob@example.org", "hidden-%s@example.org" % t]
    _rcv, rest = split_received(data)
    head = header_block(rest)
    assert b"Bcc" not in head and b"hidden-" not in head, head
    assert re.search(rb"\r\nFrom: [^\r]*shop@example\.test", b"\r\n" + head), head
    assert b"\r\nDate: " in head and b"\r\nMessage-ID: <" in head, head


def test_dot_unstuffing_long_lines_bare_lf(parked, certs):
    """Server: none (worker off).
    We run: over a plain socket (loopback, AUTH in clear): DATA with stuffed lines "..",
    "...", a line of 5000 bytes, a line "x.", a bare LF inside a line, and the end ".".
    Must be queued: leading dots taken off once, the 5000-byte line whole (liberal), the bare
    LF turned into CRLF, nothing after the final dot.
    Replies: 354, then 250."""
    t = token()
    w = Wire(parked.port)
    try:
        assert w.greeting[0] == 220
        assert w.cmd("EHLO wire.test")[0] == 250
        assert w.cmd(auth_plain(parked.key))[0] == 235
        assert w.cmd("MAIL FROM:<%s>" % SHOP)[0] == 250
        assert w.cmd("RCPT TO:<bob@example.org>")[0] == 250
        assert w.cmd("DATA")[0] == 354
        long_line = "y" * 5000
        w.send("Subject: dots %s\r\nMessage-ID: <%s@example.test>\r\nDate: Tue, 24 Nov 2026 "
               "10:00:00 +0100\r\nFrom: %s\r\n\r\n..\r\n...\r\n..a\r\n%s\r\nx.\r\nbare\nlf\r\n.\r\n"
               % (t, t, SHOP, long_line))
        code, texts = w.reply()
        assert code == 250, (code, texts)
        msg_id = queued_id(texts[0])
        assert w.cmd("QUIT")[0] == 221
    finally:
        w.close()
    _a, _f, _r, data = queued(parked.home, msg_id)
    _rcv, rest = split_received(data)
    body = rest.split(b"\r\n\r\n", 1)[1]
    assert body == (".\r\n..\r\n.a\r\n%s\r\nx.\r\nbare\r\nlf\r\n" % long_line).encode(), body[:200]


def test_routing_by_envelope_sender(parked, certs):
    """Server: none (worker off).
    We run: three messages: MAIL FROM the "news" account's address, from the default
    account's, and from an address no account has.
    Must be queued: under "news", "default" and "default"."""
    accounts = []
    for sender in (NEWS, SHOP, "someone@else.example"):
        s = client(parked, certs)
        try:
            s.mail(sender)
            s.rcpt("bob@example.org")
            code, text = s.data(make_message(token(), frm=sender))
            assert code == 250
        finally:
            s.quit()
        accounts.append(queued(parked.home, queued_id(text))[0])
    assert accounts == ["news", "default", "default"]


def test_smtputf8(parked, certs):
    """Server: none (worker off).
    We run: MAIL FROM with a UTF-8 address without SMTPUTF8 (refused), then with SMTPUTF8,
    a UTF-8 recipient and a UTF-8 Subject in raw UTF-8.
    Replies: 553 5.6.7; then 250s. Queued: the addresses and bytes as sent."""
    utf_from = "j\u00f6rg@b\u00fccher.example"
    utf_to = "\u7528\u6237@\u4f8b\u5b50.example"
    w = Wire(parked.port)
    try:
        w.cmd("EHLO wire.test")
        w.cmd(auth_plain(parked.key))
        code, texts = w.cmd("MAIL FROM:<%s>" % utf_from)
        assert code == 553 and texts[0].startswith("5.6.7"), (code, texts)
        assert w.cmd("MAIL FROM:<%s> SMTPUTF8" % utf_from)[0] == 250
        assert w.cmd("RCPT TO:<%s>" % utf_to)[0] == 250
        assert w.cmd("DATA")[0] == 354
        w.send("Subject: gr\u00fc\u00dfe\r\nFrom: %s\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
               "Message-ID: <%s@example.test>\r\n\r\nhi\r\n.\r\n" % (utf_from, token()))
        code, texts = w.reply()
        assert code == 250, texts
        _a, env_from, rcpts, data = queued(parked.home, queued_id(texts[0]))
        assert env_from == utf_from and rcpts == [utf_to]
        assert "Subject: gr\u00fc\u00dfe\r\n".encode() in data
        flag = db_rows(parked.home, "SELECT needs_smtputf8 FROM messages WHERE id = ?",
                       (queued_id(texts[0]),))[0][0]
        assert flag == 1
    finally:
        w.close()


# --- 3. the protocol: order, pipelining, STARTTLS --------------------------------------------------

def test_pipelined_transactions_answered_in_order(parked):
    """Server: none (worker off).
    We run: EHLO, then one write holding AUTH, MAIL, RCPT (good), RCPT (bad syntax), RCPT
    (good), DATA; after the 354 one write holding the message, the ".", a second MAIL, RCPT,
    DATA; then its message and QUIT in one write.
    Replies, in order: 235, 250, 250, 501 5.1.3, 250, 354, 250 queued, 250, 250, 354, 250
    queued, 221. Both messages are in the queue with their good recipients."""
    w = Wire(parked.port)
    try:
        code, texts = w.cmd("EHLO pipe.test")
        assert code == 250 and "PIPELINING" in texts
        w.send(auth_plain(parked.key) + "\r\nMAIL FROM:<%s>\r\nRCPT TO:<a@example.org>\r\n"
               "RCPT TO:<bad address@x>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" % SHOP)
        codes = [w.reply()[0] for _ in range(6)]
        assert codes == [235, 250, 250, 501, 250, 354], codes
        t1, t2 = token(), token()
        w.send("Subject: %s\r\n\r\none\r\n.\r\nMAIL FROM:<%s>\r\nRCPT TO:<c@example.org>\r\n"
               "DATA\r\n" % (t1, SHOP))
        first = w.reply()
        assert first[0] == 250 and "queued as" in first[1][0], first
        assert [w.reply()[0] for _ in range(3)] == [250, 250, 354]
        w.send("Subject: %s\r\n\r\ntwo\r\n.\r\nQUIT\r\n" % t2)
        second = w.reply()
        assert second[0] == 250 and "queued as" in second[1][0], second
        assert w.reply()[0] == 221
    finally:
        w.close()
    assert queued(parked.home, queued_id(first[1][0]))[2] == ["a@example.org", "b@example.org"]
    assert queued(parked.home, queued_id(second[1][0]))[2] == ["c@example.org"]


def test_starttls_command_injection_ignored(parked, certs):
    """Server: none.
    We run: "STARTTLS\\r\\nNOOP\\r\\n" in one packet (the plaintext NOOP is an injection
    attempt), then the TLS handshake, then EHLO.
    Replies: 220, then after TLS only the EHLO's 250 (no stray 250 for the NOOP), which no
    longer offers STARTTLS but offers AUTH."""
    w = Wire(parked.port)
    try:
        w.cmd("EHLO inject.test")
        w.send("STARTTLS\r\nNOOP\r\n")
        assert w.reply()[0] == 220
        w.sock = tls_context(certs).wrap_socket(w.sock, server_hostname="localhost")
        w.buf = b""
        code, texts = w.cmd("EHLO inject.test")
        assert code == 250 and texts[0] != "2.0.0 Ok", texts
        assert "STARTTLS" not in texts and "AUTH PLAIN LOGIN" in texts, texts
        code, texts = w.cmd("NOOP")
        assert code == 250
    finally:
        w.close()


@pytest.mark.parametrize("script", [
    # (command, code, enhanced prefix or None)
    [("MAIL FROM:<a@example.test>", 503, "5.5.1")],
    [("EHLO x.test", 250, None), ("RCPT TO:<b@example.org>", 503, "5.5.1")],
    [("EHLO x.test", 250, None), ("DATA", 503, "5.5.1")],
    [("EHLO x.test", 250, None), ("XYZZY", 500, "5.5.1"), ("VRFY bob", 252, "2.5.0"),
     ("EXPN list", 502, "5.5.1"), ("BDAT 10 LAST", 502, "5.5.1"), ("HELP", 214, "2.0.0"),
     ("NOOP", 250, "2.0.0")],
    [("EHLO x.test", 250, None), ("MAIL FROM:<a@example.test> RET=HDRS", 555, "5.5.4"),
     ("MAIL FROM:<a@@example.test>", 501, "5.1.7"), ("MAIL FROM:<a@example.test>", 250, "2.1.0"),
     ("MAIL FROM:<a@example.test>", 503, "5.5.1"), ("RCPT TO:<>", 501, "5.1.3"),
     ("RCPT TO:<postmaster>", 501, "5.1.3"), ("DATA", 554, "5.5.1"),
     ("RCPT TO:<b@example.org> NOTIFY=NEVER", 555, "5.5.4"), ("RSET", 250, "2.0.0"),
     ("RCPT TO:<b@example.org>", 503, "5.5.1")],
    [("EHLO x.test", 250, None), ("AUTH CRAM-MD5", 504, "5.5.4"), ("AUTH PLAIN !!!!", 501, "5.5.2"),
     ("AUTH PLAIN " + base64.b64encode(b"\0u\0mo_wrong").decode(), 535, "5.7.8"),
     ("STARTTLS now", 501, "5.5.4")],
], ids=["mail-before-ehlo", "rcpt-before-mail", "data-before-mail", "other-verbs",
        "envelope-syntax", "auth-refusals"])
def test_replies_to_bad_sequences(parked, script):
    """Server: none.
    We run: each script over a plain socket after the greeting.
    Replies: exactly the codes and enhanced codes listed; the session stays usable (QUIT 221)."""
    w = Wire(parked.port)
    try:
        for line, want, enhanced in script:
            code, texts = w.cmd(line)
            assert code == want, (line, code, texts)
            if enhanced is not None:
                assert texts[0].startswith(enhanced + " "), (line, texts)
        assert w.cmd("QUIT")[0] == 221
    finally:
        w.close()


def test_auth_plain_and_login_in_two_steps_and_revoked_key(parked, certs):
    """Server: none.
    We run: AUTH PLAIN without an initial response (334, then the blob), AUTH LOGIN
    (334 Username, 334 Password), "*" to cancel, and a key made a moment ago.
    Replies: 334 ""/235; 334 VXNlcm5hbWU6, 334 UGFzc3dvcmQ6, 235; 501 5.0.0; 235.
    Nothing of the keys (plain or base64) in the service's log."""
    w = Wire(parked.port)
    try:
        w.cmd("EHLO auth.test")
        assert w.cmd("AUTH PLAIN") == (334, [""])
        assert w.cmd(base64.b64encode(b"\0x\0" + parked.key.encode()).decode())[0] == 235
    finally:
        w.close()
    w = Wire(parked.port)
    try:
        w.cmd("EHLO auth.test")
        assert w.cmd("AUTH LOGIN") == (334, ["VXNlcm5hbWU6"])
        assert w.cmd(base64.b64encode(b"shop").decode()) == (334, ["UGFzc3dvcmQ6"])
        assert w.cmd(base64.b64encode(parked.key.encode()).decode())[0] == 235
    finally:
        w.close()
    w = Wire(parked.port)
    try:
        w.cmd("EHLO auth.test")
        assert w.cmd("AUTH LOGIN")[0] == 334
        code, texts = w.cmd("*")
        assert code == 501 and texts[0].startswith("5.0.0")
    finally:
        w.close()
    # a key made a moment ago works at once (the keyring looks again on a miss)
    other = create_key(parked.home, "fresh-" + token())
    w = Wire(parked.port)
    try:
        w.cmd("EHLO auth.test")
        assert w.cmd(auth_plain(other))[0] == 235
    finally:
        w.close()
    log = parked.log()
    assert parked.key not in log and other not in log
    for b in (base64.b64encode(b"\0x\0" + parked.key.encode()).decode(),
              base64.b64encode(parked.key.encode()).decode()):
        assert b not in log


def test_revoked_key_refused(parked):
    """Server: none.
    We run: a key is made, works (235), is revoked with `mailout apikey revoke`; after the
    keyring's refresh time (1 s) the same AUTH is refused.
    Replies: 235, then 535 5.7.8."""
    name = "revoked-" + token()
    key = create_key(parked.home, name)
    w = Wire(parked.port)
    try:
        w.cmd("EHLO auth.test")
        assert w.cmd(auth_plain(key))[0] == 235
    finally:
        w.close()
    r = mo(parked.home, "apikey", "revoke", name)
    assert r.rc == 0, describe(r)
    time.sleep(1.2)
    w = Wire(parked.port)
    try:
        w.cmd("EHLO auth.test")
        code, texts = w.cmd(auth_plain(key))
        assert code == 535 and texts[0].startswith("5.7.8"), texts
    finally:
        w.close()


def test_concurrent_sessions_all_committed(parked, certs):
    """Server: none (worker off).
    We run: 8 smtplib sessions at once (STARTTLS + AUTH), 25 messages each on one
    connection, so the committer groups messages of several sessions in one transaction.
    Replies: 250 "queued as N" for all 200, with 200 distinct ids.
    Queued: each id holds its own message (its Subject) and recipient."""
    import concurrent.futures

    def session(n):
        got = []
        s = client(parked, certs)
        try:
            for i in range(25):
                t = "c%d-%d-%s" % (n, i, token())
                s.mail(SHOP)
                s.rcpt("%s@example.org" % t)
                code, text = s.data(crlf("Subject: %s\n\nbody %s\n" % (t, t)))
                assert code == 250, (code, text)
                got.append((queued_id(text), t))
        finally:
            s.quit()
        return got

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = [x for r in pool.map(session, range(8)) for x in r]
    assert len(results) == 200 and len({i for i, _ in results}) == 200
    for msg_id, t in results:
        _a, _f, rcpts, data = queued(parked.home, msg_id)
        assert rcpts == ["%s@example.org" % t] and ("Subject: %s\r\n" % t).encode() in data


# --- 4. limits ------------------------------------------------------------------------------------

def test_size_refused_before_and_after_data(parked, certs):
    """Server: none (worker off), --smtp-max-size 65536.
    We run: MAIL FROM with SIZE=65537; then a 70 KB message without SIZE; then a good one in
    the same session.
    Replies: 552 5.3.4 to MAIL (before any data); 250 to MAIL, 552 5.3.4 after the data;
    then 250 queued. Nothing of the large ones is in the queue."""
    before = count_messages(parked.home)
    s = client(parked, certs)
    try:
        assert s.has_extn("size") and s.esmtp_features["size"] == str(PARKED_MAX_SIZE)
        code, text = s.mail(SHOP, ["SIZE=%d" % (PARKED_MAX_SIZE + 1)])
        assert code == 552 and text.startswith(b"5.3.4"), (code, text)
        assert s.mail(SHOP)[0] == 250
        assert s.rcpt("bob@example.org")[0] == 250
        big = make_message(token(), body="z" * 70 + "\n") * 1
        big = big + (b"z" * 76 + b"\r\n") * 1000
        code, text = s.data(big)
        assert code == 552 and text.startswith(b"5.3.4"), (code, text)
        assert count_messages(parked.home) == before
        assert s.mail(SHOP, ["SIZE=2000"])[0] == 250
        assert s.rcpt("bob@example.org")[0] == 250
        code, text = s.data(make_message(token()))
        assert code == 250
    finally:
        s.quit()
    assert count_messages(parked.home) == before + 1


def test_too_many_recipients(parked, certs):
    """Server: none, --smtp-max-recipients 3.
    We run: four RCPTs, then DATA.
    Replies: 250 x3, 452 4.5.3 for the fourth; the message is queued for the first three."""
    s = client(parked, certs)
    try:
        s.mail(SHOP)
        for i in range(3):
            assert s.rcpt("r%d@example.org" % i)[0] == 250
        code, text = s.rcpt("r3@example.org")
        assert code == 452 and text.startswith(b"4.5.3"), (code, text)
        code, text = s.data(make_message(token()))
        assert code == 250
    finally:
        s.quit()
    assert queued(parked.home, queued_id(text))[2] == ["r0@example.org", "r1@example.org",
                                                        "r2@example.org"]


def test_rate_and_connection_limits(run_dir, certs, aiosmtpd, tmp_path):
    """Server: none (worker off); --smtp-rate 3 --smtp-max-connections 2.
    We run: four messages in a row from 127.0.0.1; then three connections at once.
    Replies: 250 for three MAILs, 450 4.7.1 for the fourth; the third connection is greeted
    with 421 4.7.0 and closed, while the two others work."""
    home_dir = str(tmp_path / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    svc = start_listener(run_dir, home_dir, create_key(home_dir, "shop"), "limits",
                         "--smtp-rate", "3", "--smtp-max-connections", "2", worker=False)
    try:
        w = Wire(svc.port)
        w.cmd("EHLO rate.test")
        for i in range(3):
            assert w.cmd("MAIL FROM:<%s>" % SHOP)[0] == 250
            assert w.cmd("RSET")[0] == 250
        code, texts = w.cmd("MAIL FROM:<%s>" % SHOP)
        assert code == 450 and texts[0].startswith("4.7.1"), texts
        w2 = Wire(svc.port)
        assert w2.greeting[0] == 220
        w3 = Wire(svc.port)
        assert w3.greeting[0] == 421 and w3.greeting[1][0].startswith("4.7.0"), w3.greeting
        with pytest.raises((EOFError, ConnectionError)):
            w3.cmd("NOOP")
        assert w2.cmd("NOOP")[0] == 250
        for x in (w, w2, w3):
            x.close()
    finally:
        svc.proc.stop()


# --- 5. no open relay ----------------------------------------------------------------------------------

def test_non_loopback_needs_starttls_and_auth(run_dir, certs, aiosmtpd, tmp_path):
    """Server: none (worker off).
    We run: `serve --smtp 0.0.0.0:P` with a certificate; a client on 127.0.0.1.
    Replies: before TLS: EHLO offers STARTTLS but no AUTH; MAIL 530 5.7.0 (STARTTLS first);
    AUTH 538 5.7.11. After TLS: EHLO offers AUTH; MAIL 530 5.7.0 (authentication
    required); RCPT 503. After AUTH: MAIL 250, RCPT to any domain 250, DATA 250.
    And `serve --smtp 0.0.0.0:P` without a certificate refuses to start: exit 2 naming
    --smtp-cert."""
    home_dir = str(tmp_path / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    key = create_key(home_dir, "shop")
    p = subprocess.run([BIN, "--home", home_dir, "serve", "--no-http", "--no-worker", "--smtp",
                        "0.0.0.0:%d" % netutil.free_port()], capture_output=True, timeout=30)
    assert p.returncode == 2, p
    assert b"--smtp-cert" in p.stderr and b"STARTTLS" in p.stderr, p.stderr
    svc = start_listener(run_dir, home_dir, key, "public", listen_host="0.0.0.0", worker=False,
                         certs=certs)
    try:
        w = Wire(svc.port)
        code, texts = w.cmd("EHLO public.test")
        assert "STARTTLS" in texts and not any(t.startswith("AUTH") for t in texts), texts
        code, texts = w.cmd("MAIL FROM:<%s>" % SHOP)
        assert code == 530 and texts[0].startswith("5.7.0") and "STARTTLS" in texts[0], texts
        code, texts = w.cmd(auth_plain(key))
        assert code == 538 and texts[0].startswith("5.7.11"), texts
        assert w.cmd("RCPT TO:<victim@example.org>")[0] == 503
        w.starttls(certs)
        code, texts = w.cmd("EHLO public.test")
        assert "AUTH PLAIN LOGIN" in texts and "STARTTLS" not in texts, texts
        code, texts = w.cmd("MAIL FROM:<%s>" % SHOP)
        assert code == 530 and texts[0].startswith("5.7.0"), texts
        assert w.cmd("RCPT TO:<victim@example.org>")[0] == 503
        assert w.cmd("DATA")[0] == 503
        assert w.cmd(auth_plain("mo_" + "A" * 43))[0] == 535
        assert w.cmd(auth_plain(key))[0] == 235
        assert w.cmd("MAIL FROM:<%s>" % SHOP)[0] == 250
        assert w.cmd("RCPT TO:<victim@example.org>")[0] == 250
        assert w.cmd("DATA")[0] == 354
        w.send("Subject: x\r\n\r\nx\r\n.\r\n")
        assert w.reply()[0] == 250
        w.close()
    finally:
        svc.proc.stop()


def test_loopback_require_auth(run_dir, certs, aiosmtpd, tmp_path):
    """Server: none (worker off); `--smtp 127.0.0.1:P --smtp-require-auth`, no certificate.
    Replies: EHLO offers AUTH (loopback: in clear), no STARTTLS; MAIL without AUTH 530 5.7.0;
    after AUTH 250."""
    home_dir = str(tmp_path / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    key = create_key(home_dir, "shop")
    svc = start_listener(run_dir, home_dir, key, "require-auth", "--smtp-require-auth",
                         worker=False)
    try:
        w = Wire(svc.port)
        code, texts = w.cmd("EHLO ra.test")
        assert "AUTH PLAIN LOGIN" in texts and "STARTTLS" not in texts, texts
        assert w.cmd("STARTTLS")[0] == 502
        code, texts = w.cmd("MAIL FROM:<%s>" % SHOP)
        assert code == 530 and texts[0].startswith("5.7.0"), texts
        assert w.cmd(auth_plain(key))[0] == 235
        assert w.cmd("MAIL FROM:<%s>" % SHOP)[0] == 250
        w.close()
    finally:
        svc.proc.stop()


@pytest.mark.parametrize("args,words", [
    (["--smtp-cert", "/nonexistent"], ["--smtp"]),
    (["--smtp", "127.0.0.1:0", "--smtp-cert", "/nonexistent.pem"], ["--smtp-key"]),
    (["--smtp", "127.0.0.1:0", "--smtp-cert", "/nonexistent.pem", "--smtp-key", "/nonexistent.key"],
     ["--smtp-cert", "/nonexistent.pem"]),
    (["--smtp", "mail.example:25"], ["--smtp", "not an address"]),
    (["--smtp", "127.0.0.1:2525", "--smtp-max-size", "12"], ["--smtp-max-size"]),
    (["--smtp", "127.0.0.1:2525", "--smtp-rate", "0"], ["--smtp-rate"]),
], ids=["option-without-smtp", "cert-without-key", "unreadable-cert", "bad-address",
        "tiny-size", "zero-rate"])
def test_serve_refuses_bad_options(tmp_path, args, words):
    """We run: `serve --no-http --no-worker` with a bad --smtp option.
    Exit code: 2 (usage), one line naming the option; nothing listens."""
    p = subprocess.run([BIN, "--home", str(tmp_path / "home"), "serve", "--no-http",
                        "--no-worker", *args], capture_output=True, timeout=30)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 2, (p.returncode, err)
    for w in words:
        assert w in err, err


def test_shutdown_says_421(run_dir, certs, aiosmtpd, tmp_path):
    """We run: an idle session, then SIGTERM to the service.
    Replies: the idle client gets 421 4.3.2 and the connection closes; the service exits 0."""
    home_dir = str(tmp_path / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    svc = start_listener(run_dir, home_dir, create_key(home_dir, "shop"), "stop", worker=False)
    try:
        w = Wire(svc.port)
        w.cmd("EHLO stop.test")
        os.killpg(svc.proc.proc.pid, signal.SIGTERM)
        code, texts = w.reply()
        assert code == 421 and texts[0].startswith("4.3.2"), texts
        assert svc.proc.proc.wait(10) == 0
        w.close()
    finally:
        svc.proc.stop()


# --- 6. a full disk: never 250 for a message that is not committed ------------------------------------

def test_full_disk_is_452(run_dir, certs, aiosmtpd, tmp_path):
    """Server: none (worker off); the data folder on an 8 MB tmpfs (needs root: skipped
    otherwise); --smtp-max-size 16 MB.
    We run: a 300 KB message (fits); MAIL with a SIZE larger than the free space; a message
    larger than the free space without SIZE (so MAIL passes and the commit fails); then
    200 KB messages until refused.
    Replies: 250; 452 4.3.1 to MAIL (before any data); 452 4.3.1 after the data; then 250 or
    452 4.3.1 only, ending with 452 4.3.1 (never a 250 for a message that is not in the
    queue, never another code); NOOP still 250.
    Queued: exactly the messages answered 250, readable."""
    small = tmp_path / "small"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs (needs root): " + r.stderr.strip())
    svc = None
    try:
        home_dir = str(small / "home")
        set_account(home_dir, aiosmtpd.port("starttls"), certs)
        svc = start_listener(run_dir, home_dir, create_key(home_dir, "shop"), "full",
                             "--smtp-max-size", str(16 * 1024 * 1024), worker=False)
        accepted = []
        w = Wire(svc.port)
        w.cmd("EHLO full.test")

        def send(size, declare=False):
            code, texts = w.cmd("MAIL FROM:<%s>%s" % (SHOP, " SIZE=%d" % size if declare else ""))
            if code != 250:
                return "mail", code, texts
            assert w.cmd("RCPT TO:<bob@example.org>")[0] == 250
            assert w.cmd("DATA")[0] == 354
            w.send(b"Subject: full\r\n\r\n" + (b"f" * 998 + b"\r\n") * (size // 1000) + b".\r\n")
            code, texts = w.reply()
            if code == 250:
                accepted.append(queued_id(texts[0]))
            return "data", code, texts

        assert send(300 * 1000)[1] == 250
        st = os.statvfs(home_dir)
        free = st.f_bavail * st.f_frsize
        assert free > 2 * 1024 * 1024, free
        stage, code, texts = send(free + 512 * 1024, declare=True)
        assert (stage, code) == ("mail", 452) and texts[0].startswith("4.3.1"), (stage, code, texts)
        stage, code, texts = send(free + 512 * 1024)
        assert (stage, code) == ("data", 452) and texts[0].startswith("4.3.1"), (stage, code, texts)
        assert w.cmd("RSET")[0] == 250
        for _ in range(60):
            stage, code, texts = send(200 * 1000)
            if code != 250:
                break
        assert code == 452 and texts[0].startswith("4.3.1"), (stage, code, texts)
        assert w.cmd("NOOP")[0] == 250
        w.close()
        ids = sorted(r[0] for r in db_rows(home_dir, "SELECT id FROM messages"))
        assert ids == sorted(accepted), (ids, accepted)
        for msg_id in accepted:
            assert queued(home_dir, msg_id)[3].startswith(b"Received: ")
    finally:
        if svc is not None:
            svc.proc.stop()
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
