"""Self-tests of the integration harness, with Python's smtplib as the client.

They prove that each server behaves as test_send.py assumes: TLS with the run's CA (and not
with the wrong CA), AUTH with every test user and mechanism, implicit TLS, refused recipients,
big messages, the faulty server dropping DATA, and that read-back returns exactly what was
sent. If one of these fails, a test_send.py failure says nothing about mailout.
"""

import email.message
import email.policy
import email.utils
import hashlib
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time

import pytest

from harness import procs
from harness.servers import USERS
from harness.smtpauth import authenticate

ALL = ["postfix", "aiosmtpd", "smtp-server"]
SENDER = "shop@example.test"


def make_message(subject, to, body="Hello from the harness.\n", sender=SENDER, **headers):
    m = email.message.EmailMessage()
    m["From"] = sender
    m["To"] = ", ".join(to)
    m["Subject"] = subject
    m["Date"] = email.utils.formatdate()
    m["Message-ID"] = email.utils.make_msgid(domain="harness.test")
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


def connect(server, kind, ca_file, host=None):
    """smtplib connection to server's `kind` port; TLS verified against ca_file."""
    host = host or server.host
    ctx = ssl.create_default_context(cafile=ca_file)
    port = server.port(kind)
    if kind == "tls":
        s = smtplib.SMTP_SSL(host, port, timeout=30, context=ctx)
        s.ehlo("harness.test")
    else:
        s = smtplib.SMTP(host, port, timeout=30)
        s.ehlo("harness.test")
        if kind == "starttls":
            s.starttls(context=ctx)
            s.ehlo("harness.test")
    return s


def send(server, kind, ca_file, msg, rcpts, user=None, mechanism="PLAIN"):
    """Connect, AUTH (if user), send msg; return the refused-recipients dict."""
    s = connect(server, kind, ca_file)
    try:
        if user is not None:
            code, text = authenticate(s, mechanism, user, server.users[user])
            assert code == 235, "AUTH %s as %s: %s %r" % (mechanism, user, code, text)
        return s.sendmail(SENDER, rcpts, msg.as_bytes(policy=email.policy.SMTP))
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def assert_same(got, sent, rcpts):
    assert got.msg["Subject"] == sent["Subject"]
    assert got.msg["From"] == sent["From"]
    assert got.msg["To"] == sent["To"]
    assert got.msg.get_content().replace("\r\n", "\n") == sent.get_content()
    assert got.sender == SENDER
    assert got.recipients == sorted(rcpts)


# --- certificates ------------------------------------------------------------------------

def test_certificates_made_per_run(certs):
    """The run's CA verifies the server certificate; the wrong CA does not; names are right."""
    ok = subprocess.run(["openssl", "verify", "-CAfile", certs.ca_file, certs.server_cert],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(["openssl", "verify", "-CAfile", certs.wrong_ca_file, certs.server_cert],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    text = subprocess.run(["openssl", "x509", "-in", certs.server_cert, "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True).stdout
    for name in ("DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"):
        assert name in text


# --- AUTH and TLS, per server -------------------------------------------------------------

@pytest.mark.parametrize("server", ALL, indirect=True)
def test_mechanisms_advertised_after_starttls(server):
    """Server: STARTTLS port. The EHLO after STARTTLS offers PLAIN, LOGIN and CRAM-MD5."""
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        assert mech in server.auth_mechanisms, server.auth_mechanisms


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_no_auth_before_starttls(server, certs):
    """Server: STARTTLS port. Before STARTTLS, EHLO offers STARTTLS; Postfix and aiosmtpd
    offer no AUTH yet, smtp-server does offer it but answers an AUTH in clear with 538.
    MAIL without AUTH is refused; nothing arrives."""
    s = smtplib.SMTP(server.host, server.port("starttls"), timeout=30)
    try:
        s.ehlo("harness.test")
        assert s.has_extn("starttls")
        if server.name == "smtp-server":
            assert s.has_extn("auth")
            code, _ = s.docmd("AUTH", "LOGIN")
            assert code == 538
        else:
            assert not s.has_extn("auth"), s.esmtp_features
    finally:
        s.quit()
    snap = server.store.snapshot()
    msg = make_message("no auth", ["bob@example.org"])
    with pytest.raises(smtplib.SMTPException):
        send(server, "starttls", certs.ca_file, msg, ["bob@example.org"], user=None)
    server.store.assert_nothing_new(snap, settle_s=0.5)


@pytest.mark.parametrize("user", sorted(USERS))
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_starttls_auth_plain_each_user(server, certs, user):
    """Server: STARTTLS + AUTH PLAIN. Each test user (digits, spaces, UTF-8, quote and
    backslash passwords) authenticates; the message arrives with its envelope."""
    rcpts = ["bob@example.org"]
    msg = make_message("plain %s" % user, rcpts, body="Password of %s works.\n" % user)
    assert send(server, "starttls", certs.ca_file, msg, rcpts, user=user) == {}
    got = server.store.wait_for(msg["Message-ID"])
    assert_same(got, msg, rcpts)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"])
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_starttls_auth_each_mechanism(server, certs, mechanism):
    """Server: STARTTLS + AUTH <mechanism> with the UTF-8 password (the hardest one);
    mechanisms the server does not offer are skipped (SCRAM: Postfix+Dovecot only)."""
    if mechanism not in server.auth_mechanisms:
        pytest.skip("%s does not offer %s" % (server.name, mechanism))
    rcpts = ["carol@example.org"]
    msg = make_message("mech %s" % mechanism, rcpts)
    assert send(server, "starttls", certs.ca_file, msg, rcpts, user="utf8@example.test",
                mechanism=mechanism) == {}
    assert_same(server.store.wait_for(msg["Message-ID"]), msg, rcpts)


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_implicit_tls(server, certs):
    """Server: implicit-TLS port, AUTH PLAIN. The message arrives."""
    rcpts = ["dave@example.org", "erin@example.net"]
    msg = make_message("implicit tls", rcpts)
    assert send(server, "tls", certs.ca_file, msg, rcpts, user="shop@example.test") == {}
    assert_same(server.store.wait_for(msg["Message-ID"]), msg, rcpts)


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_certificate_name_localhost(server, certs):
    """Server: implicit-TLS port reached as "localhost": the name check passes."""
    s = connect(server, "tls", certs.ca_file, host="localhost")
    s.quit()


@pytest.mark.parametrize("kind", ["starttls", "tls"])
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_wrong_ca_rejected(server, certs, kind):
    """Server: any TLS port. A client trusting only the wrong CA fails the handshake."""
    with pytest.raises(ssl.SSLCertVerificationError):
        s = connect(server, kind, certs.wrong_ca_file)
        s.quit()


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_wrong_password_535(server, certs):
    """Server: STARTTLS + AUTH PLAIN with a wrong password: 535, and MAIL is refused."""
    s = connect(server, "starttls", certs.ca_file)
    try:
        code, text = authenticate(s, "PLAIN", "shop@example.test", "654321")
        assert code == 535, (code, text)
    finally:
        s.quit()


# --- recipients -------------------------------------------------------------------------

@pytest.mark.parametrize("server", ALL, indirect=True)
def test_refused_recipient_550(server, certs):
    """Server: refuses RCPT TO refuse*@ with 550 5.1.1, also for authenticated clients.
    The message arrives for the accepted recipient only."""
    rcpts = ["refuse-1@example.org", "frank@example.org"]
    msg = make_message("refused one", rcpts)
    refused = send(server, "starttls", certs.ca_file, msg, rcpts, user="shop@example.test")
    assert list(refused) == ["refuse-1@example.org"]
    code, text = refused["refuse-1@example.org"]
    assert code == 550
    assert b"5.1.1" in text
    got = server.store.wait_for(msg["Message-ID"])
    assert got.recipients == ["frank@example.org"]


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_500_recipients_25_refused(server, certs):
    """Server: 500 RCPT TO in one transaction, 25 of them refuse*@. No error limit cuts the
    session; the message arrives for exactly the 475 others."""
    rcpts = ["r%03d@example.org" % i for i in range(475)] + ["refuse%02d@example.org" % i for i in range(25)]
    msg = make_message("500 recipients", ["undisclosed-recipients:;"])
    refused = send(server, "starttls", certs.ca_file, msg, rcpts, user="shop@example.test")
    assert sorted(refused) == sorted(r for r in rcpts if r.startswith("refuse"))
    assert all(code == 550 for code, _ in refused.values())
    got = server.store.wait_for(msg["Message-ID"], timeout_s=30, min_recipients=475)
    assert got.recipients == sorted(r for r in rcpts if not r.startswith("refuse"))


# --- content ------------------------------------------------------------------------------

@pytest.mark.parametrize("server", ALL, indirect=True)
def test_dot_lines_read_back_exactly(server, certs):
    """Server: STARTTLS. A body with a lone "." line and lines starting with "." and ".."
    (smtplib dot-stuffs them) reads back exactly."""
    body = "first\n.\n..two dots\n.one dot\nlast\n"
    rcpts = ["gina@example.org"]
    msg = make_message("dots", rcpts, body=body)
    send(server, "starttls", certs.ca_file, msg, rcpts, user="shop@example.test")
    got = server.store.wait_for(msg["Message-ID"])
    assert got.msg.get_content().replace("\r\n", "\n") == body


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_20mb_attachment(server, certs):
    """Server: message_size_limit 50 MB. A 20 MB random attachment (27 MB in base64)
    arrives byte-identical (sha256)."""
    data = os.urandom(20 * 1024 * 1024)
    rcpts = ["big@example.org"]
    msg = make_message("20 MB", rcpts)
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename="big.bin")
    send(server, "tls", certs.ca_file, msg, rcpts, user="shop@example.test")
    got = server.store.wait_for(msg["Message-ID"], timeout_s=60)
    parts = list(got.msg.iter_attachments())
    assert [p.get_filename() for p in parts] == ["big.bin"]
    assert hashlib.sha256(parts[0].get_content()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_postfix_strips_bcc_header(postfix, certs):
    """Server: Postfix. Its cleanup(8) deletes Bcc: headers by itself, so a "no Bcc header
    arrived" check proves nothing against Postfix; test_send.py checks Bcc on aiosmtpd and
    smtp-server, which store the bytes as received."""
    rcpts = ["hank@example.org", "secret@example.org"]
    msg = make_message("bcc", ["hank@example.org"], Bcc="secret@example.org")
    send(postfix, "starttls", certs.ca_file, msg, rcpts, user="shop@example.test")
    got = postfix.store.wait_for(msg["Message-ID"], min_recipients=2)
    assert got.recipients == sorted(rcpts)
    assert got.msg["Bcc"] is None


@pytest.mark.parametrize("server", ["aiosmtpd", "smtp-server"], indirect=True)
def test_spool_servers_store_bytes_as_received(server, certs):
    """Server: aiosmtpd / smtp-server. The stored .eml is byte-identical to what smtplib
    sent (after dot-unstuffing), Bcc header included: these servers change nothing."""
    rcpts = ["ivan@example.org"]
    msg = make_message("exact bytes", rcpts, Bcc="ivan@example.org")
    wire = msg.as_bytes(policy=email.policy.SMTP)
    send(server, "starttls", certs.ca_file, msg, rcpts, user="shop@example.test")
    got = server.store.wait_for(msg["Message-ID"])
    assert got.raw == wire
    assert got.meta[0]["tls"] is True
    assert got.meta[0]["auth_user"] == "shop@example.test"


# --- plain ports (loopback only) ------------------------------------------------------------

@pytest.mark.parametrize("server", ["aiosmtpd", "smtp-server"], indirect=True)
def test_plain_port_auth_in_clear(server, certs):
    """Server: plain_auth port, no TLS, AUTH offered in clear. AUTH LOGIN works, the
    message arrives, the server recorded the login."""
    s = smtplib.SMTP(server.host, server.port("plain_auth"), timeout=30)
    try:
        s.ehlo("harness.test")
        assert not s.has_extn("starttls")
        assert "LOGIN" in s.esmtp_features.get("auth", "").upper()
        code, text = authenticate(s, "LOGIN", "spaces@example.test", USERS["spaces@example.test"])
        assert code == 235, (code, text)
        msg = make_message("plain auth", ["judy@example.org"])
        s.sendmail(SENDER, ["judy@example.org"], msg.as_bytes(policy=email.policy.SMTP))
    finally:
        s.quit()
    got = server.store.wait_for(msg["Message-ID"])
    assert got.meta[0]["auth_user"] == "spaces@example.test"
    assert got.meta[0]["tls"] is False


def test_aiosmtpd_plain_noauth_and_wire_log(aiosmtpd):
    """Server: aiosmtpd plain_noauth port: no STARTTLS, no AUTH, anyone may send. The
    events file records the bytes the client sent, which test_send.py uses to prove that no
    AUTH and no password went over the wire."""
    mark = aiosmtpd.events_mark()
    port = aiosmtpd.port("plain_noauth")
    s = smtplib.SMTP(aiosmtpd.host, port, timeout=30)
    try:
        s.ehlo("harness.test")
        assert not s.has_extn("starttls") and not s.has_extn("auth")
        msg = make_message("no auth at all", ["kim@example.org"])
        s.sendmail(SENDER, ["kim@example.org"], msg.as_bytes(policy=email.policy.SMTP))
    finally:
        s.quit()
    aiosmtpd.store.wait_for(msg["Message-ID"])
    wire = aiosmtpd.wire_bytes(since=mark, port=port)
    assert b"ehlo harness.test\r\n" in wire.lower()
    assert b"to:<kim@example.org>" in wire.lower()
    assert aiosmtpd.events(since=mark, port=port, kind="auth_command") == []


# --- failure servers --------------------------------------------------------------------------

def test_faulty_server_drops_mid_data(faulty_server):
    """Server: faulty aiosmtpd. After 354 it reads ~8 KB of a 1 MB body and closes the
    connection without a reply: the client sees the connection die during DATA; nothing
    is stored."""
    port = faulty_server.port("plain_noauth")
    mark = faulty_server.events_mark()
    snap = faulty_server.store.snapshot()
    msg = make_message("faulty big", ["lee@example.org"], body=("y" * 76 + "\n") * 14000)
    s = smtplib.SMTP(faulty_server.host, port, timeout=30)
    s.ehlo("harness.test")
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        s.sendmail(SENDER, ["lee@example.org"], msg.as_bytes(policy=email.policy.SMTP))
    s.close()
    drops = faulty_server.events(since=mark, port=port, kind="dropped_in_data")
    assert len(drops) == 1 and drops[0]["saw_end"] is False
    faulty_server.store.assert_nothing_new(snap, settle_s=0.2)


def test_faulty_server_no_reply_after_dot(faulty_server):
    """Server: faulty aiosmtpd with a small body: it reads everything up to the final dot,
    then closes without the final reply."""
    port = faulty_server.port("plain_noauth")
    mark = faulty_server.events_mark()
    msg = make_message("faulty small", ["lee@example.org"])
    s = smtplib.SMTP(faulty_server.host, port, timeout=30)
    s.ehlo("harness.test")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.sendmail(SENDER, ["lee@example.org"], msg.as_bytes(policy=email.policy.SMTP))
    s.close()
    drops = faulty_server.events(since=mark, port=port, kind="dropped_in_data")
    assert len(drops) == 1 and drops[0]["saw_end"] is True


def test_silent_server_never_greets(silent_server):
    """Server: accepts TCP and says nothing; a reader waiting for the greeting times out."""
    with socket.create_connection((silent_server.host, silent_server.port("plain_noauth")), 5) as c:
        c.settimeout(1.0)
        with pytest.raises(socket.timeout):
            c.recv(1)


# --- process management -------------------------------------------------------------------

def test_managed_process_stops_its_group(run_dir, tmp_path):
    """A ManagedProcess and the children it spawned are gone after stop()."""
    script = tmp_path / "child.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('READY {\"child\": %d}' % c.pid, flush=True)\n"
        "time.sleep(60)\n")
    p = procs.ManagedProcess("selftest", [sys.executable, str(script)],
                             str(tmp_path / "log"), run_dir)
    info = p.start(timeout_s=10)
    assert p.alive()
    p.stop(timeout_s=5)
    assert not p.alive()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and procs._pid_alive(info["child"]):
        time.sleep(0.05)
    assert not procs._pid_alive(info["child"]) or \
        open("/proc/%d/stat" % info["child"]).read().split()[2] == "Z"
