"""Integration tests of `mailout send` against real SMTP servers on 127.0.0.1.

Each test states how the server behaves, what we run, what must arrive (read back and parsed
by Python's email package) and the exit code. Servers: Postfix + Dovecot SASL, aiosmtpd,
nodemailer's smtp-server (see conftest.py). Every run that involves a password also checks,
in run_mailout(), that the password appears nowhere in stdout, stderr or the JSON, and every
--json run checks that stdout is one JSON object.

CLI under test (exit codes: 0 sent to every recipient, 1 failed or some recipients refused,
2 bad usage or invalid input, 75 temporary failure):
  mailout send --host H --port P --security starttls|tls|none
               [--username U (--password-stdin | --password-file F)]
               --from ADDR --to ADDR [--to ...] [--cc ...] [--bcc ...] [--subject S]
               [--text-file F] [--html-file F] [--attach F ...] [--ca-file F]
               [--auth MECH] [--timeout SECONDS] [--json]
  mailout send ... --raw PATH [--connections N]

The module is skipped only when the binary does not exist (set MAILOUT_BIN to use another).
"""

import hashlib
import os
import time
import uuid

import pytest

from harness import netutil
from harness.mailout import describe, mailout_bin, run_mailout, secret_forms
from harness.servers import USERS

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

ALL = ["postfix", "aiosmtpd", "smtp-server"]
SPOOL = ["aiosmtpd", "smtp-server"]  # servers that store the bytes exactly as received
SHOP = "shop@example.test"
SECURITY_OF = {"starttls": "starttls", "tls": "tls", "plain_auth": "none", "plain_noauth": "none"}
STAGES = {"dns", "connect", "tls", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt",
          "data", "quit"}


# --- helpers ------------------------------------------------------------------------------

def token():
    return uuid.uuid4().hex[:10]


def conn_args(server, kind, certs, user=SHOP, auth=None, ca_file=None, host=None,
              security=None, timeout_s=60):
    """--host/--port/--security [--ca-file] [--username] [--auth] --timeout for a listener."""
    security = security or SECURITY_OF[kind]
    args = ["send", "--host", host or server.host, "--port", str(server.port(kind)),
            "--security", security, "--timeout", str(timeout_s)]
    if security != "none":
        args += ["--ca-file", ca_file or certs.ca_file]
    if user is not None:
        args += ["--username", user]
    if auth is not None:
        args += ["--auth", auth]
    return args


def write(tmp_path, name, content):
    p = tmp_path / name
    if isinstance(content, str):
        p.write_text(content, encoding="utf-8")
    else:
        p.write_bytes(content)
    return str(p)


def simple_message(tmp_path, to=("bob@example.org",), subject=None, body=None, sender=SHOP):
    """--from/--to/--subject/--text-file for a one-part text message; returns (args, subject, body)."""
    subject = subject or "test " + token()
    body = body or "Hello %s.\nSecond line.\n" % subject
    args = ["--from", sender]
    for r in to:
        args += ["--to", r]
    args += ["--subject", subject, "--text-file", write(tmp_path, "body-%s.txt" % token(), body)]
    return args, subject, body


def text_of(part):
    """Decoded text of a text/* part, newlines normalised to \\n."""
    return part.get_content().replace("\r\n", "\n")


def assert_sent(r, rcpts):
    """Exit 0 and the success JSON: ok, no error, every recipient accepted with a 2xx."""
    assert r.rc == 0, describe(r)
    j = r.json
    assert j["ok"] is True, j
    assert j["error"] is None, j
    got = sorted(x["address"] for x in j["recipients"])
    assert got == sorted(rcpts), j["recipients"]
    for x in j["recipients"]:
        assert x["ok"] is True and 200 <= int(x["code"]) < 300, x
    assert isinstance(j["message_id"], str) and j["message_id"].strip("<> "), j
    assert isinstance(j["transcript"], list) and all(isinstance(t, str) for t in j["transcript"])


def assert_failed(r, rc, stage, temporary):
    """Exit rc and a failure JSON with error.stage == stage and error.temporary."""
    assert r.rc == rc, describe(r)
    j = r.json
    assert j["ok"] is False, j
    err = j["error"]
    assert err is not None, j
    assert err["stage"] in STAGES, err
    if isinstance(stage, (tuple, set, list)):
        assert err["stage"] in stage, err
    else:
        assert err["stage"] == stage, err
    assert err["temporary"] is temporary, err
    assert isinstance(err["text"], str) and err["text"].strip(), err
    return err


def read_back(server, r, **kw):
    return server.store.wait_for(r.json["message_id"], **kw)


def assert_no_auth_seen(server, mark, port):
    attempts = server.auth_attempts(mark, port=port)
    assert attempts == [], "%s saw AUTH: %r" % (server.name, attempts)


def assert_password_not_on_wire(server, mark, port, user, password):
    """aiosmtpd only: nothing the client sent contains AUTH or the password in any form."""
    wire = server.wire_bytes(since=mark["events"], port=port)
    assert wire, "no client bytes recorded on port %d" % port
    for line in wire.split(b"\r\n"):
        assert not line.upper().startswith(b"AUTH"), line
    for form in secret_forms(password, user):
        assert form.encode("utf-8") not in wire, "password sent on the wire as %r" % form


# --- AUTH, TLS ------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, "plain", "login", "cram-md5"])
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_starttls_auth(server, certs, tmp_path, auth):
    """Server: STARTTLS port (TLS required before AUTH), CA = the run's CA, offers PLAIN,
    LOGIN and CRAM-MD5. We run: send over --security starttls with --auth <mech> (or no
    --auth: mailout picks). Must arrive: subject, From, To and body equal; envelope sender
    shop@example.test; the server logged an AUTH with that mechanism. Exit 0. The JSON
    transcript shows STARTTLS and EHLO sent again after it."""
    mark = server.mark()
    msg_args, subject, body = simple_message(tmp_path, to=["bob@example.org"])
    r = run_mailout(conn_args(server, "starttls", certs, auth=auth) + msg_args + ["--json"],
                    password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    got = read_back(server, r)
    assert got.msg["Subject"] == subject
    assert got.msg["From"].addresses[0].addr_spec == SHOP
    assert got.msg["To"].addresses[0].addr_spec == "bob@example.org"
    assert text_of(got.msg.get_body(("plain",))) == body
    assert got.sender == SHOP
    assert got.recipients == ["bob@example.org"]
    attempts = [a for a in server.auth_attempts(mark, port=server.port("starttls")) if a[2] is not None]
    assert len(attempts) == 1 and attempts[0][2] is True and attempts[0][1] == SHOP, attempts
    if auth is not None:
        assert attempts[0][0] == auth.upper()
    transcript = "\n".join(r.json["transcript"])
    assert "STARTTLS" in transcript.upper()
    assert transcript.upper().count("EHLO") >= 2, r.json["transcript"]


def test_scram_sha_256_postfix(postfix, certs, tmp_path):
    """Server: Postfix + Dovecot offering SCRAM-SHA-256 after STARTTLS. We run: --auth
    scram-sha-256 with the UTF-8 password. Must arrive: the message. Exit 0. Skipped if
    this Dovecot lacks SCRAM or if mailout rejects the mechanism as bad usage (exit 2)."""
    if "SCRAM-SHA-256" not in postfix.auth_mechanisms:
        pytest.skip("Dovecot does not offer SCRAM-SHA-256")
    user = "utf8@example.test"
    msg_args, subject, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(postfix, "starttls", certs, user=user, auth="scram-sha-256")
                    + msg_args + ["--json"], password=USERS[user])
    if r.rc == 2:
        pytest.skip("mailout does not offer --auth scram-sha-256: %s" % (r.json or {}).get("error"))
    assert_sent(r, ["bob@example.org"])
    assert read_back(postfix, r).msg["Subject"] == subject


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_implicit_tls(server, certs, tmp_path):
    """Server: implicit-TLS port (TLS from the first byte), AUTH required. We run:
    --security tls with the run's CA. Must arrive: subject and body equal, two recipients
    in the envelope. Exit 0."""
    rcpts = ["carol@example.org", "dave@example.net"]
    msg_args, subject, body = simple_message(tmp_path, to=rcpts)
    r = run_mailout(conn_args(server, "tls", certs) + msg_args + ["--json"], password=USERS[SHOP])
    assert_sent(r, rcpts)
    got = read_back(server, r, min_recipients=2)
    assert got.msg["Subject"] == subject
    assert text_of(got.msg.get_body(("plain",))) == body
    assert got.recipients == sorted(rcpts)


def test_certificate_name_localhost(aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd implicit TLS on 127.0.0.1 with a certificate for DNS:localhost.
    We run: --host localhost (if localhost resolves to ::1 first, nothing listens there and
    mailout must try 127.0.0.1 next). Must arrive: the message. Exit 0."""
    msg_args, subject, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(aiosmtpd, "tls", certs, host="localhost") + msg_args + ["--json"],
                    password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    assert read_back(aiosmtpd, r).msg["Subject"] == subject


@pytest.mark.parametrize("kind", ["starttls", "tls"])
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_wrong_ca(server, certs, tmp_path, kind):
    """Server: TLS port whose certificate the wrong CA did not sign. We run: --ca-file
    wrong CA. Must arrive: nothing; the server saw no AUTH (the password never left).
    Exit 1, error.stage "tls", not temporary."""
    mark = server.mark()
    snap = server.store.snapshot()
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(server, kind, certs, ca_file=certs.wrong_ca_file) + msg_args
                    + ["--json"], password=USERS[SHOP])
    assert_failed(r, 1, "tls", temporary=False)
    server.store.assert_nothing_new(snap, settle_s=0.5)
    assert_no_auth_seen(server, mark, server.port(kind))


@pytest.mark.parametrize("user", sorted(USERS))
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_passwords(server, certs, tmp_path, user):
    """Server: STARTTLS + AUTH; the user's password is digits only ("123456"), has spaces,
    is UTF-8 ("pässwörd-ünïcode") or holds a quote, a backslash and an apostrophe. We run:
    --password-stdin. Must arrive: the message, authenticated as that user. Exit 0."""
    mark = server.mark()
    msg_args, subject, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(server, "starttls", certs, user=user) + msg_args + ["--json"],
                    password=USERS[user])
    assert_sent(r, ["bob@example.org"])
    assert read_back(server, r).msg["Subject"] == subject
    ok = [a for a in server.auth_attempts(mark, port=server.port("starttls")) if a[2]]
    assert [a[1] for a in ok] == [user], ok


def test_password_file(postfix, certs, tmp_path):
    """Server: Postfix STARTTLS + AUTH. We run: --password-file F where F holds the
    password with spaces plus one newline. Must arrive: the message. Exit 0."""
    user = "spaces@example.test"
    pw_file = write(tmp_path, "pw", USERS[user] + "\n")
    os.chmod(pw_file, 0o600)
    msg_args, subject, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(postfix, "starttls", certs, user=user)
                    + ["--password-file", pw_file] + msg_args + ["--json"], password=USERS[user])
    assert_sent(r, ["bob@example.org"])
    assert read_back(postfix, r).msg["Subject"] == subject


def test_password_stdin_without_newline(aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd STARTTLS + AUTH. We run: --password-stdin with stdin "123456" and
    no newline at all. Must arrive: the message. Exit 0."""
    msg_args, subject, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(aiosmtpd, "starttls", certs) + ["--password-stdin"] + msg_args
                    + ["--json"], password=USERS[SHOP], stdin_text=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    assert read_back(aiosmtpd, r).msg["Subject"] == subject


def test_password_stdin_strips_only_one_newline(aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd STARTTLS + AUTH. We run: --password-stdin with stdin "123456\\n\\n":
    the password is "123456\\n", which is wrong. Must arrive: nothing. Exit 1 at stage
    auth (535), or exit 2 with field "password" if mailout refuses a newline in it."""
    snap = aiosmtpd.store.snapshot()
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(aiosmtpd, "starttls", certs) + ["--password-stdin"] + msg_args
                    + ["--json"], password=USERS[SHOP], stdin_text=USERS[SHOP] + "\n\n")
    if r.rc == 2:
        assert r.json["error"]["field"] == "password", r.json
    else:
        err = assert_failed(r, 1, "auth", temporary=False)
        assert int(err["code"]) == 535, err
    aiosmtpd.store.assert_nothing_new(snap, settle_s=0.3)


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_wrong_password(server, certs, tmp_path):
    """Server: STARTTLS + AUTH; the password is wrong. We run: send as shop@example.test
    with "654321". Must arrive: nothing. Exit 1, error.stage "auth", code 535, not
    temporary, field "password" or "username"."""
    snap = server.store.snapshot()
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(server, "starttls", certs) + msg_args + ["--json"], password="654321")
    err = assert_failed(r, 1, "auth", temporary=False)
    assert int(err["code"]) == 535, err
    assert err["field"] in ("password", "username"), err
    server.store.assert_nothing_new(snap, settle_s=0.5)


# --- content ----------------------------------------------------------------------------------

@pytest.mark.parametrize("server", ALL, indirect=True)
def test_utf8_subject_and_display_names(server, certs, tmp_path):
    """Server: STARTTLS + AUTH. We run: --from "Jöhn Dœ <shop@example.test>", --to
    "Zoë Ünïcode <zoe@example.org>", subject "Заказ №42 подтверждён ✓", a UTF-8 body.
    Must arrive: subject, display names, addresses and body equal after decoding; the
    envelope holds the bare addresses. Exit 0."""
    subject = "Заказ №42 подтверждён ✓"
    body = "Здравствуйте, Zoë!\nВаш заказ №42 подтверждён ✓\n"
    args = ["--from", "Jöhn Dœ <shop@example.test>", "--to", "Zoë Ünïcode <zoe@example.org>",
            "--subject", subject, "--text-file", write(tmp_path, "body.txt", body), "--json"]
    r = run_mailout(conn_args(server, "starttls", certs) + args, password=USERS[SHOP])
    assert_sent(r, ["zoe@example.org"])
    got = read_back(server, r)
    assert got.msg["Subject"] == subject
    frm = got.msg["From"].addresses[0]
    assert (frm.display_name, frm.addr_spec) == ("Jöhn Dœ", SHOP)
    to = got.msg["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Zoë Ünïcode", "zoe@example.org")
    assert text_of(got.msg.get_body(("plain",))) == body
    assert got.sender == SHOP and got.recipients == ["zoe@example.org"]


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_attachments(server, certs, tmp_path):
    """Server: STARTTLS + AUTH. We run: a text body plus --attach data.bin (100 KB of
    random bytes) and --attach счёт.pdf. Must arrive: multipart/mixed whose attachments
    have those file names and byte-identical content; the body equal. Exit 0."""
    data = os.urandom(100 * 1024)
    pdf = b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n"
    f1 = write(tmp_path, "data.bin", data)
    f2 = write(tmp_path, "счёт.pdf", pdf)
    msg_args, subject, body = simple_message(tmp_path)
    r = run_mailout(conn_args(server, "starttls", certs) + msg_args
                    + ["--attach", f1, "--attach", f2, "--json"], password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    got = read_back(server, r)
    assert got.msg.get_content_type() == "multipart/mixed"
    atts = {p.get_filename(): p.get_content() for p in got.msg.iter_attachments()}
    assert sorted(atts) == sorted(["data.bin", "счёт.pdf"])
    assert atts["data.bin"] == data
    assert atts["счёт.pdf"] == pdf
    assert text_of(got.msg.get_body(("plain",))) == body


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_text_and_html(server, certs, tmp_path):
    """Server: STARTTLS + AUTH. We run: --text-file and --html-file. Must arrive:
    multipart/alternative with text/plain then text/html, each equal to its file. Exit 0."""
    text = "Plain version ✓\n"
    html = "<!doctype html>\n<p>HTML <b>version</b> ✓</p>\n"
    args = ["--from", SHOP, "--to", "bob@example.org", "--subject", "alt " + token(),
            "--text-file", write(tmp_path, "t.txt", text), "--html-file", write(tmp_path, "h.html", html),
            "--json"]
    r = run_mailout(conn_args(server, "starttls", certs) + args, password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    got = read_back(server, r)
    assert got.msg.get_content_type() == "multipart/alternative"
    parts = list(got.msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert text_of(parts[0]) == text
    assert text_of(parts[1]) == html


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_text_html_and_attachment(server, certs, tmp_path):
    """Server: STARTTLS + AUTH. We run: --text-file, --html-file and --attach. Must
    arrive: multipart/mixed holding a multipart/alternative (text, HTML) and the
    attachment, all equal. Exit 0."""
    text, html, blob = "T ✓\n", "<p>H ✓</p>\n", os.urandom(3000)
    args = ["--from", SHOP, "--to", "bob@example.org", "--subject", "mixed " + token(),
            "--text-file", write(tmp_path, "t.txt", text), "--html-file", write(tmp_path, "h.html", html),
            "--attach", write(tmp_path, "a.bin", blob), "--json"]
    r = run_mailout(conn_args(server, "starttls", certs) + args, password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    got = read_back(server, r)
    assert got.msg.get_content_type() == "multipart/mixed"
    assert text_of(got.msg.get_body(("plain",))) == text
    assert text_of(got.msg.get_body(("html",))) == html
    atts = [(p.get_filename(), p.get_content()) for p in got.msg.iter_attachments()]
    assert atts == [("a.bin", blob)]


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_dot_lines(server, certs, tmp_path):
    """Server: STARTTLS + AUTH. We run: a body holding a line with a single ".", lines
    starting with ".." and ".", and a last line "." (dot-stuffing, RFC 5321 4.5.2). Must
    arrive: the body exactly. Exit 0."""
    body = "first\n.\n..two dots\n.one dot\n. dot space\nlast but one\n.\n"
    msg_args, _, _ = simple_message(tmp_path, body=body)
    r = run_mailout(conn_args(server, "starttls", certs) + msg_args + ["--json"], password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    assert text_of(read_back(server, r).msg.get_body(("plain",))) == body


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_20mb_attachment(server, certs, tmp_path):
    """Server: implicit TLS, message size limit 50 MB. We run: a 20 MB random attachment
    (about 27 MB on the wire). Must arrive: the attachment, sha256 equal. Exit 0."""
    data = os.urandom(20 * 1024 * 1024)
    f = write(tmp_path, "big.bin", data)
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(server, "tls", certs, timeout_s=120) + msg_args
                    + ["--attach", f, "--json"], password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    got = read_back(server, r, timeout_s=60)
    parts = [p for p in got.msg.iter_attachments() if p.get_filename() == "big.bin"]
    assert len(parts) == 1
    assert hashlib.sha256(parts[0].get_content()).hexdigest() == hashlib.sha256(data).hexdigest()


# --- recipients -------------------------------------------------------------------------------

@pytest.mark.parametrize("server", ALL, indirect=True)
def test_500_recipients_25_refused(server, certs, tmp_path):
    """Server: accepts any recipient but refuses refuse*@ with 550 5.1.1; no error limit
    cuts the session. We run: 500 --to, 25 of them refuse00..24@example.org. Must arrive:
    one message whose envelope holds exactly the 475 accepted recipients. Exit 1; the JSON
    lists all 500, exactly the 25 refused with ok false and code 550, the rest ok."""
    ok_rcpts = ["r%03d@example.org" % i for i in range(475)]
    bad_rcpts = ["refuse%02d@example.org" % i for i in range(25)]
    rcpts = ok_rcpts[:200] + bad_rcpts + ok_rcpts[200:]
    msg_args, _, _ = simple_message(tmp_path, to=rcpts)
    r = run_mailout(conn_args(server, "starttls", certs) + msg_args + ["--json"], password=USERS[SHOP])
    assert r.rc == 1, describe(r)
    j = r.json
    assert j["ok"] is False
    assert j["error"] is None or j["error"]["stage"] == "rcpt", j["error"]
    by_addr = {x["address"]: x for x in j["recipients"]}
    assert sorted(by_addr) == sorted(rcpts)
    refused = sorted(a for a, x in by_addr.items() if not x["ok"])
    assert refused == sorted(bad_rcpts)
    for a in bad_rcpts:
        assert int(by_addr[a]["code"]) == 550, by_addr[a]
        assert by_addr[a]["enhanced"] == "5.1.1", by_addr[a]
    for a in ok_rcpts:
        assert 200 <= int(by_addr[a]["code"]) < 300, by_addr[a]
    got = read_back(server, r, timeout_s=30, min_recipients=475)
    assert got.recipients == sorted(ok_rcpts)


@pytest.mark.parametrize("server", SPOOL, indirect=True)
def test_cc_and_bcc(server, certs, tmp_path):
    """Server: aiosmtpd / smtp-server, which store the bytes as received (Postfix deletes
    Bcc: headers itself, so it could not catch a leak). We run: --to, --cc and --bcc. Must
    arrive: one message for all three envelope recipients; To and Cc headers as given; no
    Bcc header, and the Bcc address nowhere in the message. Exit 0."""
    secret = "hidden-%s@example.org" % token()
    msg_args, _, _ = simple_message(tmp_path, to=["to@example.org"])
    r = run_mailout(conn_args(server, "starttls", certs) + msg_args
                    + ["--cc", "cc@example.org", "--bcc", secret, "--json"], password=USERS[SHOP])
    assert_sent(r, ["to@example.org", "cc@example.org", secret])
    got = read_back(server, r, min_recipients=3)
    assert got.recipients == sorted(["to@example.org", "cc@example.org", secret])
    assert [a.addr_spec for a in got.msg["To"].addresses] == ["to@example.org"]
    assert [a.addr_spec for a in got.msg["Cc"].addresses] == ["cc@example.org"]
    assert got.msg["Bcc"] is None
    assert secret.encode() not in got.raw


def test_bcc_envelope_postfix(postfix, certs, tmp_path):
    """Server: Postfix. We run: --to and --bcc. Must arrive: a copy for both envelope
    recipients. Exit 0. (The header check is in test_cc_and_bcc.)"""
    msg_args, _, _ = simple_message(tmp_path, to=["to@example.org"])
    r = run_mailout(conn_args(postfix, "starttls", certs) + msg_args
                    + ["--bcc", "bcc@example.org", "--json"], password=USERS[SHOP])
    assert_sent(r, ["to@example.org", "bcc@example.org"])
    got = read_back(postfix, r, min_recipients=2)
    assert got.recipients == ["bcc@example.org", "to@example.org"]


# --- failures on the way --------------------------------------------------------------------

def test_drop_mid_data(faulty_server, tmp_path):
    """Server: faulty aiosmtpd; after 354 it reads ~8 KB of the body and closes the
    connection without a reply. We run: --security none, a 1 MB text body. Must arrive:
    nothing. Exit 75, error.stage "data", temporary true."""
    port = faulty_server.port("plain_noauth")
    mark = faulty_server.mark()
    body = ("The quick brown fox jumps over the lazy dog, line after line. %s\n" % token()) * 16000
    msg_args, _, _ = simple_message(tmp_path, body=body)
    r = run_mailout(conn_args(faulty_server, "plain_noauth", certs=None, user=None)
                    + msg_args + ["--json"])
    assert_failed(r, 75, "data", temporary=True)
    drops = faulty_server.events(mark["events"], port=port, kind="dropped_in_data")
    assert len(drops) == 1 and drops[0]["saw_end"] is False, drops
    assert faulty_server.events(mark["events"], port=port, kind="message") == []


def test_no_reply_after_dot(faulty_server, tmp_path):
    """Server: faulty aiosmtpd; a small body is read up to the final dot, then the
    connection closes with no reply. We run: --security none, a short body. Must arrive:
    nothing. Exit 75, error.stage "data", temporary true."""
    port = faulty_server.port("plain_noauth")
    mark = faulty_server.mark()
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(faulty_server, "plain_noauth", certs=None, user=None)
                    + msg_args + ["--json"])
    assert_failed(r, 75, "data", temporary=True)
    drops = faulty_server.events(mark["events"], port=port, kind="dropped_in_data")
    assert len(drops) == 1 and drops[0]["saw_end"] is True, drops


def test_connection_refused(tmp_path):
    """Server: none; nothing listens on the port. We run: --security none to it. Must
    arrive: nothing. Exit 75, error.stage "connect", temporary true."""
    port = netutil.free_port()
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(["send", "--host", "127.0.0.1", "--port", str(port), "--security", "none",
                     "--timeout", "10"] + msg_args + ["--json"])
    assert_failed(r, 75, "connect", temporary=True)


def test_greeting_timeout(silent_server, tmp_path):
    """Server: accepts TCP, never sends a greeting. We run: --timeout 2. Must arrive:
    nothing. Exit 75 within ~2 s (well under 15 s), error.stage "greeting", temporary."""
    msg_args, _, _ = simple_message(tmp_path)
    t0 = time.monotonic()
    r = run_mailout(conn_args(silent_server, "plain_noauth", certs=None, user=None, timeout_s=2)
                    + msg_args + ["--json"])
    elapsed = time.monotonic() - t0
    assert_failed(r, 75, "greeting", temporary=True)
    assert elapsed < 15, "took %.1fs with --timeout 2" % elapsed


# --- security none / STARTTLS missing ----------------------------------------------------------

@pytest.mark.parametrize("server", SPOOL, indirect=True)
def test_security_none_auth_on_loopback(server, certs, tmp_path):
    """Server: plain port, no TLS, AUTH offered in clear. We run: --security none with
    --username to 127.0.0.1 (the loopback exception). Must arrive: the message, over no
    TLS, authenticated as shop@example.test. Exit 0."""
    msg_args, subject, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(server, "plain_auth", certs) + msg_args + ["--json"],
                    password=USERS[SHOP])
    assert_sent(r, ["bob@example.org"])
    got = read_back(server, r)
    assert got.msg["Subject"] == subject
    assert got.meta[0]["tls"] is False
    assert got.meta[0]["auth_user"] == SHOP


@pytest.mark.parametrize("server", SPOOL, indirect=True)
def test_starttls_required_but_not_offered(server, certs, tmp_path):
    """Server: plain port with no STARTTLS that offers AUTH in clear (a downgrade). We run:
    --security starttls with --username. Must arrive: nothing; the server saw no AUTH, and
    (aiosmtpd, which records the client's bytes) no AUTH command and no form of the
    password crossed the wire. Exit 1, error.stage "starttls" or "tls", not temporary."""
    port = server.port("plain_auth")
    mark = server.mark()
    snap = server.store.snapshot()
    msg_args, _, _ = simple_message(tmp_path)
    r = run_mailout(conn_args(server, "plain_auth", certs, security="starttls") + msg_args
                    + ["--json"], password=USERS[SHOP])
    assert_failed(r, 1, ("starttls", "tls"), temporary=False)
    server.store.assert_nothing_new(snap, settle_s=0.3)
    assert_no_auth_seen(server, mark, port)
    if server.name == "aiosmtpd":
        assert_password_not_on_wire(server, mark, port, SHOP, USERS[SHOP])


# --- bad usage --------------------------------------------------------------------------------

def _assert_usage_error(aiosmtpd, r, mark, snap, field=None):
    assert r.rc == 2, describe(r)
    if field is not None:
        assert r.json["ok"] is False
        got = r.json["error"]["field"]
        assert got in (field if isinstance(field, tuple) else (field,)), r.json["error"]
    assert aiosmtpd.events(mark["events"], port=aiosmtpd.port("plain_noauth"), kind="connect") == [], \
        "mailout connected although its input was invalid"
    aiosmtpd.store.assert_nothing_new(snap, settle_s=0.2)


def _usage_base(aiosmtpd):
    return ["send", "--host", aiosmtpd.host, "--port", str(aiosmtpd.port("plain_noauth")),
            "--security", "none", "--timeout", "10"]


def test_missing_to(aiosmtpd, tmp_path):
    """Server: aiosmtpd plain port (must not even be contacted). We run: no --to. Must
    arrive: nothing, no connection. Exit 2; --json output still parses."""
    mark, snap = aiosmtpd.mark(), aiosmtpd.store.snapshot()
    r = run_mailout(_usage_base(aiosmtpd) + ["--from", SHOP, "--subject", "no rcpt", "--json"])
    _assert_usage_error(aiosmtpd, r, mark, snap)


@pytest.mark.parametrize("option,bad,field", [
    ("--to", "a@@b", ("recipient", "email")),
    ("--cc", "a@@b", ("recipient", "email")),
    ("--bcc", "a@@b", ("recipient", "email")),
    ("--from", "a@@b", ("sender", "email")),
    ("--to", "no-at-sign", ("recipient", "email")),
    ("--to", "bob@example.org\r\nBcc: x@y.z", ("recipient", "email")),
    ("--from", "Evil\r\nBcc: x@y.z <shop@example.test>", ("sender", "email")),
])
def test_malformed_address(aiosmtpd, tmp_path, option, bad, field):
    """Server: aiosmtpd plain port (must not be contacted). We run: a malformed address
    ("a@@b", no "@", or one carrying CR LF and a header). Must arrive: nothing, no
    connection. Exit 2, error.field names the address kind (or "email")."""
    mark, snap = aiosmtpd.mark(), aiosmtpd.store.snapshot()
    args = {"--from": SHOP, "--to": "bob@example.org"}
    args[option] = bad
    argv = _usage_base(aiosmtpd) + ["--subject", "bad address"]
    for k, v in args.items():
        argv += [k, v]
    r = run_mailout(argv + ["--json"])
    _assert_usage_error(aiosmtpd, r, mark, snap, field)


@pytest.mark.parametrize("subject", ["hi\r\nBcc: x@y.z", "hi\nBcc: x@y.z", "hi\rBcc: x@y.z"])
def test_subject_header_injection(aiosmtpd, tmp_path, subject):
    """Server: aiosmtpd plain port (must not be contacted). We run: a subject holding
    CR and/or LF followed by a Bcc header. Must arrive: nothing, no connection. Exit 2."""
    mark, snap = aiosmtpd.mark(), aiosmtpd.store.snapshot()
    r = run_mailout(_usage_base(aiosmtpd) + ["--from", SHOP, "--to", "bob@example.org",
                                              "--subject", subject, "--json"])
    _assert_usage_error(aiosmtpd, r, mark, snap)


@pytest.mark.parametrize("override,field", [
    (["--security", "sometimes"], "security"),
    (["--port", "70000"], "port"),
    (["--port", "smtp25"], "port"),
    (["--host", ""], "host"),
])
def test_invalid_connection_options(aiosmtpd, tmp_path, override, field):
    """Server: aiosmtpd plain port (must not be contacted). We run: an invalid --security,
    --port or --host. Must arrive: nothing, no connection. Exit 2, error.field names it."""
    mark, snap = aiosmtpd.mark(), aiosmtpd.store.snapshot()
    base = _usage_base(aiosmtpd)
    opt = override[0]
    i = base.index(opt)
    base[i + 1] = override[1]
    r = run_mailout(base + ["--from", SHOP, "--to", "bob@example.org", "--json"])
    _assert_usage_error(aiosmtpd, r, mark, snap, field)


def test_username_without_password_source(aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd STARTTLS port (must not be contacted). We run: --username with
    neither --password-stdin nor --password-file. Must arrive: nothing. Exit 2."""
    mark, snap = aiosmtpd.mark(), aiosmtpd.store.snapshot()
    r = run_mailout(conn_args(aiosmtpd, "starttls", certs)
                    + ["--from", SHOP, "--to", "bob@example.org", "--json"])
    assert r.rc == 2, describe(r)
    assert aiosmtpd.events(mark["events"], port=aiosmtpd.port("starttls"), kind="connect") == []
    aiosmtpd.store.assert_nothing_new(snap, settle_s=0.2)


# --- human output -------------------------------------------------------------------------------

def test_human_output(aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd STARTTLS + AUTH. We run: without --json, first a good send, then
    one with the wrong CA. Must arrive: the first message only. Exit 0, then 1; both
    outputs are non-empty and never show the password; the failure names TLS or the
    certificate in words."""
    msg_args, _, _ = simple_message(tmp_path)
    ok = run_mailout(conn_args(aiosmtpd, "starttls", certs) + msg_args, password=USERS[SHOP])
    assert ok.rc == 0, describe(ok)
    assert ok.output.strip()
    snap = aiosmtpd.store.snapshot()
    bad = run_mailout(conn_args(aiosmtpd, "starttls", certs, ca_file=certs.wrong_ca_file) + msg_args,
                      password=USERS[SHOP])
    assert bad.rc == 1, describe(bad)
    assert any(w in bad.output.lower() for w in ("tls", "certificate")), bad.output
    aiosmtpd.store.assert_nothing_new(snap, settle_s=0.3)


# --- raw mode -------------------------------------------------------------------------------

def make_raw_folder(tmp_path, n, sender=SHOP, to="raw@example.org"):
    """n ready-made RFC 5322 messages (CRLF line ends) in a folder; returns (dir, {msgid: bytes})."""
    d = tmp_path / ("raw-" + token())
    d.mkdir()
    msgs = {}
    for i in range(n):
        mid = "raw-%d-%s@mailout.test" % (i, token())
        raw = ("From: Shop <%s>\r\nTo: <%s>\r\nSubject: raw %d\r\n"
               "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <%s>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n"
               "Message %d ✓\r\n.\r\n..dots\r\n.x\r\nend\r\n" % (sender, to, i, mid, i)).encode("utf-8")
        (d / ("%02d.eml" % i)).write_bytes(raw)
        msgs[mid] = raw
    return str(d), msgs


def _body_lf(raw):
    raw = raw.replace(b"\r\n", b"\n")
    return raw.split(b"\n\n", 1)[1]


@pytest.mark.parametrize("connections", [1, 2])
@pytest.mark.parametrize("server", ALL, indirect=True)
def test_raw_folder(server, certs, tmp_path, connections):
    """Server: STARTTLS + AUTH. We run: --raw <folder of 20 .eml files> --connections N
    with --from/--to as the envelope. Must arrive: all 20, each with that envelope and the
    body byte-identical (dot lines included); aiosmtpd and smtp-server store them
    byte-identical as a whole, and saw exactly N connections. Exit 0; JSON sent 20,
    failed 0, 20 entries all ok."""
    folder, msgs = make_raw_folder(tmp_path, 20)
    mark = server.mark()
    r = run_mailout(conn_args(server, "starttls", certs)
                    + ["--from", SHOP, "--to", "raw@example.org", "--raw", folder,
                       "--connections", str(connections), "--json"], password=USERS[SHOP])
    assert r.rc == 0, describe(r)
    j = r.json
    assert j["ok"] is True and j["sent"] == 20 and j["failed"] == 0, j
    assert len(j["messages"]) == 20 and all(m["ok"] for m in j["messages"]), j["messages"]
    assert sorted(os.path.basename(m["file"]) for m in j["messages"]) == ["%02d.eml" % i for i in range(20)]
    assert isinstance(j["seconds"], (int, float)) and isinstance(j["messages_per_second"], (int, float))
    got = server.store.wait_for_many(list(msgs), timeout_s=30)
    for mid, raw in msgs.items():
        m = got[mid]
        assert m.sender == SHOP and m.recipients == ["raw@example.org"]
        assert _body_lf(m.raw) == _body_lf(raw)
        if server.name in SPOOL:
            assert m.raw == raw
    if server.events_path:
        conns = server.events(mark["events"], port=server.port("starttls"), kind="connect")
        assert len(conns) == connections, conns


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_raw_single_file(server, certs, tmp_path):
    """Server: STARTTLS + AUTH. We run: --raw <one file>. Must arrive: that message with
    the given envelope, body byte-identical. Exit 0; JSON sent 1."""
    folder, msgs = make_raw_folder(tmp_path, 1)
    path = os.path.join(folder, "00.eml")
    r = run_mailout(conn_args(server, "starttls", certs)
                    + ["--from", SHOP, "--to", "raw@example.org", "--raw", path, "--json"],
                    password=USERS[SHOP])
    assert r.rc == 0, describe(r)
    assert r.json["sent"] == 1 and r.json["failed"] == 0, r.json
    (mid, raw), = msgs.items()
    m = server.store.wait_for(mid)
    assert m.recipients == ["raw@example.org"]
    assert _body_lf(m.raw) == _body_lf(raw)
