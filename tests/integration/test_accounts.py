"""End-to-end tests of sender accounts (issue "Sender accounts"): `mailout account set|show|
list|remove|check` and `mailout test`, against a Gmail-like server (harness/gmail_like.py) and
Postfix + Dovecot (conftest.py).

The story comes from the seed's help article: a shop owner sets up Gmail with an app password
in an admin form. The old form failed on Gmail addresses with dots and on passwords that did
not start and end with letters, and turned fields red without saying why. Here the owner's
address keeps its dots, the login may be typed without "@gmail.com", the app password may be
pasted in Google's groups of four, any password works, and every failure names the field at
fault with a fix (reference smtp-errors.md, section 1, for Gmail's real replies).

Each test says how the server behaves, what we run, what must arrive (read back and parsed by
Python's email package) and the exit code (0 ok, 1 failed, 2 invalid settings, 75 temporary).
Every command gets a fresh data folder (`--home`). Every run that involves a password checks
that no form of it (plain, Google's spaced form, base64 as PLAIN/LOGIN send it) appears in
stdout, stderr or the JSON.

Since the real smtp.gmail.com cannot be used, Gmail accounts are set with
`--provider gmail --host localhost --port P --ca-file CA`: validation and diagnosis keep the
Gmail rules while the connection stays on 127.0.0.1.
"""

import json
import os
import smtplib
import ssl
import stat
import subprocess
import time

import pytest

from harness import gmail_like as G
from harness.smtpauth import auth_login, auth_plain
from harness.account_fixtures import free_closed_port, gmail_like, home, mo  # noqa: F401
from harness.mailout import assert_no_secret, describe, mailout_bin, secret_forms
from harness.servers import USERS
from harness.stores import norm_msgid

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
STEPS_CHECK = ["dns", "connect", "greeting", "tls", "login", "sender"]
GOOGLE_APP_PASSWORDS_URL = "https://myaccount.google.com/apppasswords"


# --- helpers ------------------------------------------------------------------------------

def json_strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from json_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from json_strings(v)


def assert_no_leak(result, *passwords, username=None):
    """No form of any of the passwords in stdout, stderr or the decoded JSON strings."""
    for pw in passwords:
        assert_no_secret(result.stdout, pw, username, "stdout")
        assert_no_secret(result.stderr, pw, username, "stderr")
        if result.json is not None:
            assert_no_secret("\n".join(json_strings(result.json)), pw, username, "the JSON")


def gmail_set(home_dir, server, certs, password, kind="starttls", security="starttls",
              email=G.SEED_EMAIL, host="localhost", port=None, extra=(), expect_rc=0):
    """`account set --provider gmail` pointed at the Gmail-like server; asserts expect_rc."""
    args = ["account", "set", "--provider", "gmail", "--email", email, "--host", host,
            "--port", str(port or server.port(kind)), "--security", security,
            "--ca-file", certs.ca_file, "--json", *extra]
    r = mo(home_dir, *args, password=password)
    assert r.rc == expect_rc, "account set: expected exit %d\n%s" % (expect_rc, describe(r))
    return r


def custom_set(home_dir, port, certs, email=SHOP, password=None, security="starttls",
               host="localhost", extra=()):
    """`account set` for a server mailout does not know (no provider)."""
    args = ["account", "set", "--email", email, "--host", host, "--port", str(port),
            "--security", security, "--json", *extra]
    if security != "none":
        args += ["--ca-file", certs.ca_file]
    r = mo(home_dir, *args, password=password)
    assert r.rc == 0, "account set failed\n%s" % describe(r)
    return r


def run_check(home_dir, command="check", timeout_s=5, extra=(), passwords=(), username=None):
    """`account check --json` or `test --json` with a short timeout; leak-checked."""
    cmd = ["account", "check"] if command == "check" else ["test"]
    r = mo(home_dir, *cmd, "--json", "--timeout", str(timeout_s), *extra)
    assert r.json is not None
    assert_no_leak(r, *passwords, username=username)
    return r


def assert_failure(r, rc, field, stage=None, code=None, enhanced=None):
    """A failed check/test: exit code, error and diagnosis naming the field."""
    j = r.json
    assert j["ok"] is False, describe(r)
    assert j["error"] is not None and j["diagnosis"] is not None, describe(r)
    assert j["diagnosis"]["field"] == field, (
        "diagnosis names field %r, expected %r\n%s"
        % (j["diagnosis"]["field"], field, json.dumps(j["diagnosis"], indent=1)))
    if stage is not None:
        assert j["error"]["stage"] == stage, json.dumps(j["error"])
    if code is not None:
        assert j["error"]["code"] == code, json.dumps(j["error"])
    if enhanced is not None:
        assert j["error"]["enhanced"] == enhanced, json.dumps(j["error"])
    for key in ("title", "explanation", "fix"):
        assert j["diagnosis"][key].strip(), "diagnosis has an empty %s: %s" % (key, j["diagnosis"])
    assert r.rc == rc, "exit code %d, expected %d\n%s" % (r.rc, rc, describe(r))
    assert "message_id" not in j or not j["message_id"], "a failed run reports a Message-ID"


def auth_verdicts(server, mark):
    """[(login, verdict)] the Gmail-like server decided after mark."""
    return [(e["login"], e["verdict"]) for e in server.events(mark["events"], kind="auth_result")]


def list_accounts(home_dir, *passwords):
    """`account list --json` (a JSON array, which run_mailout's object check would refuse)."""
    p = subprocess.run([BIN, "--home", home_dir, "account", "list", "--json"],
                       capture_output=True, timeout=30)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, "account list failed (%d): %s%s" % (p.returncode, out, err)
    for pw in passwords:
        assert_no_secret(out + err, pw, None, "account list")
    value = json.loads(out)
    assert isinstance(value, list), out
    return value


def text_of(part):
    return part.get_content() if part is not None else ""


# --- 0. the Gmail-like server itself --------------------------------------------------------

def test_gmail_like_server_answers_as_gmail(gmail_like, certs):
    """Server: Gmail-like, STARTTLS and implicit-TLS ports (proves the harness, with smtplib).
    We run: EHLO, MAIL and AUTH before STARTTLS; STARTTLS; AUTH with the normal password, a
    wrong one, and the app password under another spelling of the login (no dots,
    googlemail.com); MAIL before a login; then the same login on the implicit-TLS port.
    Must arrive: Gmail's EHLO (SIZE 35882577, 8BITMIME, STARTTLS, ENHANCEDSTATUSCODES,
    PIPELINING, SMTPUTF8; AUTH LOGIN PLAIN only after TLS), "530 5.7.0 Must issue a STARTTLS
    command first", 534 5.7.9 and 535 5.7.8 as two-line replies with their Google links, 235.
    Exit code: none (no mailout run).
    """
    ctx = ssl.create_default_context(cafile=certs.ca_file)
    with smtplib.SMTP("127.0.0.1", gmail_like.port("starttls"), timeout=10) as s:
        code, banner = s.ehlo("client.test")
        assert code == 250 and banner.startswith(b"smtp.gmail.com at your service")
        f = s.esmtp_features
        assert f["size"] == "35882577" and "starttls" in f and "auth" not in f, f
        for k in ("8bitmime", "enhancedstatuscodes", "pipelining", "smtputf8"):
            assert k in f, f
        assert s.docmd("MAIL", "FROM:<%s>" % G.SEED_EMAIL) == (
            530, b"5.7.0 Must issue a STARTTLS command first. x - gsmtp")
        assert s.docmd("AUTH", "PLAIN")[0] == 530
        s.starttls(context=ctx)
        s.ehlo("client.test")
        assert s.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"], s.esmtp_features
        assert "starttls" not in s.esmtp_features
        assert s.docmd("MAIL", "FROM:<%s>" % G.SEED_EMAIL)[0] == 530  # login first
        code, text = auth_plain(s, G.SEED_EMAIL, G.NORMAL_PASSWORD)
        assert code == 534 and b"5.7.9 Application-specific password required" in text
        assert b"p=InvalidSecondFactor" in text and b"\n" in text, text
        code, text = auth_login(s, "testmailotcommerce@gmail.com", "wrong")
        assert code == 535 and b"5.7.8 Username and Password not accepted" in text
        assert b"p=BadCredentials" in text and b"\n" in text, text
        assert auth_plain(s, "TestMailOtCommerce@googlemail.com", G.APP_PASSWORD) == (
            235, b"2.7.0 Accepted")
    with smtplib.SMTP_SSL("127.0.0.1", gmail_like.port("tls"), timeout=10, context=ctx) as s:
        s.ehlo("client.test")
        assert "auth" in s.esmtp_features and "starttls" not in s.esmtp_features
        assert auth_login(s, G.SEED_EMAIL, G.APP_PASSWORD)[0] == 235


# --- 1. the seed's story ----------------------------------------------------------------------

def test_seed_story_gmail_dots_login_without_at_app_password_with_spaces(gmail_like, certs, home):
    """Server: Gmail-like, STARTTLS port; it accepts the login testmailotcommerce@gmail.com
    (any dots) with the app password abcdefghijklmnop, and stores what it accepts.
    We run: account set --provider gmail with the address WITH dots, the user name as the seed's
    form wanted it (the part before @, no dots), the sender without dots, and the app password
    pasted as Google shows it ("abcd efgh ijkl mnop") on stdin; then account show, account
    check and test.
    Must arrive: nothing from the check; from test one confirmation letter, parsed by email:
    subject with "mailout", a text and an HTML part listing the settings (service, server,
    port, security, user name, email, sender), no form of the password; Message-ID equal to the
    one test printed and to last_message_id of account show.
    Exit codes: 0 for set, show, check and test.
    """
    r = gmail_set(home, gmail_like, certs, G.APP_PASSWORD_SHOWN,
                  extra=["--username", "testmailotcommerce",
                         "--sender", "testmailotcommerce@gmail.com"])
    assert_no_leak(r, G.APP_PASSWORD, G.APP_PASSWORD_SHOWN)
    j = r.json
    assert j["ok"] is True and "errors" not in j, describe(r)
    assert j["provider"] == "gmail"
    assert j["email"] == G.SEED_EMAIL, "the address must keep its dots"
    assert j["username"] == "testmailotcommerce@gmail.com", "Gmail logs in with the full address"
    assert j["sender"] == "testmailotcommerce@gmail.com"
    assert j["password_set"] is True
    notes = j["notes"]
    pw_notes = [n["message"] for n in notes if n["field"] == "password"]
    assert any("space" in m.lower() and "removed" in m.lower() for m in pw_notes), (
        "no note says the app password's spaces were removed: %s" % notes)
    for n in notes:
        assert "dot" not in n["message"].lower(), "a note complains about dots: %s" % n

    r = mo(home, "account", "show", "--json")
    assert r.rc == 0, describe(r)
    assert_no_leak(r, G.APP_PASSWORD, G.APP_PASSWORD_SHOWN)
    assert r.json["password_set"] is True
    assert "password" not in r.json, "account show must not have a password key: %s" % r.json
    r_text = mo(home, "account", "show")
    assert r_text.rc == 0
    assert_no_leak(r_text, G.APP_PASSWORD, G.APP_PASSWORD_SHOWN)

    snap = gmail_like.store.snapshot()
    mark = gmail_like.mark()
    r = run_check(home, "check", passwords=(G.APP_PASSWORD, G.APP_PASSWORD_SHOWN),
                  username="testmailotcommerce@gmail.com")
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    assert r.json["error"] is None and r.json["diagnosis"] is None
    steps = r.json["steps"]
    assert [s["name"] for s in steps] == STEPS_CHECK, steps
    for s in steps:
        assert s["ok"] is True and isinstance(s["ms"], int) and s["ms"] >= 0, s
    assert auth_verdicts(gmail_like, mark) == [("testmailotcommerce@gmail.com", "ok")], (
        "the server should have seen one successful login with the stripped app password")
    assert any(line.startswith("C: MAIL FROM:<testmailotcommerce@gmail.com>")
               for line in r.json["transcript"]), r.json["transcript"]
    gmail_like.store.assert_nothing_new(snap, settle_s=0.3)

    r = run_check(home, "test", passwords=(G.APP_PASSWORD, G.APP_PASSWORD_SHOWN),
                  username="testmailotcommerce@gmail.com")
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    assert r.json["steps"][-1]["name"] in ("send", "data"), r.json["steps"]
    mid = norm_msgid(r.json["message_id"])
    assert mid and r.json["to"] == G.SEED_EMAIL
    got = gmail_like.store.wait_for(mid)
    assert got.sender == "testmailotcommerce@gmail.com"
    assert got.recipients == [G.SEED_EMAIL]
    assert got.meta[0]["auth_user"] == "testmailotcommerce@gmail.com" and got.meta[0]["tls"]
    msg = got.msg
    assert "mailout" in str(msg["Subject"]).lower(), msg["Subject"]
    assert norm_msgid(msg["Message-ID"]) == mid
    assert msg.get_content_type() == "multipart/alternative"
    text = text_of(msg.get_body(("plain",)))
    html = text_of(msg.get_body(("html",)))
    assert text and html, "the letter needs a text and an HTML part"
    for body, kind in ((text, "text"), (html, "HTML")):
        for want in ("Gmail", "localhost", str(gmail_like.port("starttls")), "STARTTLS",
                     "testmailotcommerce@gmail.com", G.SEED_EMAIL):
            assert want in body, "the %s part does not list %r:\n%s" % (kind, want, body)
    raw = got.raw.decode("utf-8", "replace")
    for pw in (G.APP_PASSWORD, G.APP_PASSWORD_SHOWN):
        for where, blob in (("raw letter", raw), ("text part", text), ("HTML part", html)):
            assert_no_secret(blob, pw, "testmailotcommerce@gmail.com", where)

    r = mo(home, "account", "show", "--json")
    assert r.rc == 0, describe(r)
    assert norm_msgid(r.json["last_message_id"]) == mid, r.json
    assert r.json["last_check"] and r.json["last_check"]["ok"] is True, r.json


def test_gmail_address_variants_log_in_and_own_the_sender(gmail_like, certs, home):
    """Server: Gmail-like "owned_sender" port: Gmail's logins (dots and googlemail.com do not
    matter), and MAIL FROM must be the login's own mailbox (else 553 5.7.1).
    We run: account set --provider gmail with email testmailotcommerce@googlemail.com, user name
    test.mail.ot.commerce@gmail.com and sender test.mailotcommerce@gmail.com, then check.
    Must arrive: nothing (a check sends no letter); the server saw one successful login.
    Exit codes: 0 and 0. The seed told owners to remove the dots; here no spelling is refused.
    """
    r = gmail_set(home, gmail_like, certs, G.APP_PASSWORD, kind="owned_sender",
                  email="testmailotcommerce@googlemail.com",
                  extra=["--username", G.SEED_EMAIL, "--sender", "test.mailotcommerce@gmail.com"])
    assert not [n for n in r.json["notes"] if n["field"] == "sender"], (
        "Gmail treats these spellings as one mailbox; no sender warning expected: %s"
        % r.json["notes"])
    mark = gmail_like.mark()
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    assert auth_verdicts(gmail_like, mark) == [(G.SEED_EMAIL, "ok")]


def test_test_letter_to_another_address(gmail_like, certs, home):
    """Server: Gmail-like STARTTLS port, the seed's account with its app password.
    We run: account set --provider gmail, then test --to owner@example.org.
    Must arrive: the confirmation letter for owner@example.org only (envelope and To:), from
    the account's address. Exit codes: 0 and 0.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD)
    r = run_check(home, "test", extra=["--to", "owner@example.org"], passwords=(G.APP_PASSWORD,))
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    assert r.json["to"] == "owner@example.org"
    got = gmail_like.store.wait_for(r.json["message_id"])
    assert got.recipients == ["owner@example.org"] and got.sender == G.SEED_EMAIL
    assert got.msg["To"].addresses[0].addr_spec == "owner@example.org"


def test_check_with_stored_settings_no_longer_valid(gmail_like, certs, home, tmp_path):
    """Server: Gmail-like STARTTLS port (never contacted).
    We run: account set with --ca-file pointing at a copy of the CA, delete the copy, then
    account check --json.
    Must arrive: nothing, and no connection: the stored settings are checked first and the
    errors name ca_file. Exit code 2.
    """
    ca_copy = tmp_path / "ca-copy.pem"
    ca_copy.write_bytes(open(certs.ca_file, "rb").read())
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, extra=["--ca-file", str(ca_copy)])
    ca_copy.unlink()
    mark = gmail_like.mark()
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert r.rc == 2, describe(r)
    assert r.json["ok"] is False and [e["field"] for e in r.json["errors"]] == ["ca_file"], r.json
    assert gmail_like.events(mark["events"], kind="connect") == []


# --- 2. Google's login refusals --------------------------------------------------------------

def test_normal_gmail_password_needs_app_password(gmail_like, certs, home):
    """Server: Gmail-like STARTTLS port; the account has 2-Step Verification, so its normal
    password gets "534-5.7.9 Application-specific password required ... InvalidSecondFactor".
    We run: account set --provider gmail with the normal password (saved, with a note that
    Gmail wants an app password), then test.
    Must arrive: nothing. The diagnosis names Password and its fix links Google's App Password
    page. Exit codes: set 0, test 1.
    """
    r = gmail_set(home, gmail_like, certs, G.NORMAL_PASSWORD)
    assert any(n["field"] == "password" and "app password" in n["message"].lower()
               for n in r.json["notes"]), r.json["notes"]
    snap = gmail_like.store.snapshot()
    mark = gmail_like.mark()
    r = run_check(home, "test", passwords=(G.NORMAL_PASSWORD,))
    assert_failure(r, 1, "password", stage="auth", code=534, enhanced="5.7.9")
    fix = r.json["diagnosis"]["fix"]
    assert "app password" in fix.lower() and GOOGLE_APP_PASSWORDS_URL in fix, fix
    assert r.json["diagnosis"]["temporary"] is False
    assert auth_verdicts(gmail_like, mark) == [(G.SEED_EMAIL, "normal-password")]
    gmail_like.store.assert_nothing_new(snap, settle_s=0.3)
    show = mo(home, "account", "show", "--json").json
    assert show["last_check"]["ok"] is False and show["last_message_id"] is None, show
    assert show["last_check"]["diagnosis"]["field"] == "password", show["last_check"]


@pytest.mark.parametrize("username", [None, "testmailotcommerce"],
                         ids=["login-full-address", "login-before-at"])
def test_wrong_gmail_password_bad_credentials(gmail_like, certs, home, username):
    """Server: Gmail-like STARTTLS port; any password that is neither the app password nor the
    normal one gets "535-5.7.8 Username and Password not accepted ... BadCredentials".
    We run: account set --provider gmail with a wrong password, the user name either left out
    (the email is used) or typed as the part before @; then account check.
    Must arrive: nothing. mailout stores the Gmail login as the full address either way, so
    the login has an "@" and the sensible field is Password (not User name); the fix points
    to App Passwords. Exit codes: set 0, check 1.
    """
    extra = ["--username", username] if username else []
    gmail_set(home, gmail_like, certs, "wrong-password-1", extra=extra)
    show = mo(home, "account", "show", "--json").json
    assert "@" in show["username"], show
    r = run_check(home, "check", passwords=("wrong-password-1",))
    assert_failure(r, 1, "password", stage="auth", code=535, enhanced="5.7.8")
    assert GOOGLE_APP_PASSWORDS_URL in r.json["diagnosis"]["fix"]
    assert "535" in r.json["error"]["text"] and "BadCredentials" in r.json["error"]["text"]


# --- 3. security and port swapped ------------------------------------------------------------

def test_starttls_against_implicit_tls_port(gmail_like, certs, home):
    """Server: Gmail-like implicit-TLS port (465-like): it waits for a TLS ClientHello and
    never greets in clear.
    We run: account set --security starttls on that port, then account check --timeout 3.
    Must arrive: nothing. The greeting never comes: diagnosis field Security; it is reported
    as temporary (a timeout). Exit code 75, within a few seconds.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, kind="tls", security="starttls")
    t0 = time.monotonic()
    r = run_check(home, "check", timeout_s=3, passwords=(G.APP_PASSWORD,))
    took = time.monotonic() - t0
    assert_failure(r, 75, "security", stage="greeting")
    assert took < 15, "the check took %.1fs with --timeout 3" % took


def test_tls_against_starttls_port(gmail_like, certs, home):
    """Server: Gmail-like STARTTLS port (587-like): greets in clear.
    We run: account set --security tls on that port, then account check.
    Must arrive: nothing; OpenSSL reads the clear greeting as "wrong version number".
    Diagnosis field Security. Exit code 1.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, kind="starttls", security="tls")
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert_failure(r, 1, "security", stage="tls")
    assert "wrong version number" in r.json["error"]["text"], r.json["error"]


def test_security_none_refused_for_remote_host(home):
    """Server: none (nothing is contacted).
    We run: account set --provider gmail --host smtp.gmail.com --security none.
    Must arrive: nothing; the error names Security (the password would travel in clear) and
    nothing is saved. Exit code 2.
    """
    r = mo(home, "account", "set", "--provider", "gmail", "--email", G.SEED_EMAIL,
           "--host", "smtp.gmail.com", "--port", "587", "--security", "none", "--json",
           password=G.APP_PASSWORD)
    assert r.rc == 2, describe(r)
    assert [e["field"] for e in r.json["errors"]] == ["security"], r.json
    assert list_accounts(home) == [], "an invalid account was saved"


def test_security_none_on_localhost_gmail_offers_no_login_in_clear(gmail_like, certs, home):
    """Server: Gmail-like STARTTLS port: before STARTTLS its EHLO offers no AUTH (as Gmail).
    We run: account set --security none --host localhost (allowed: loopback), account check.
    Must arrive: nothing, and the server sees no AUTH command at all (mailout does not try a
    login the server did not offer). Diagnosis field Security. Exit code 1.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, kind="starttls", security="none")
    mark = gmail_like.mark()
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert_failure(r, 1, "security")
    port = gmail_like.port("starttls")
    assert gmail_like.auth_attempts(mark, port=port, settle_s=0.1) == []
    wire = gmail_like.wire_bytes(mark["events"], port=port)
    assert b"EHLO" in wire and b"AUTH" not in wire, wire[:500]


def test_security_none_on_localhost_gets_gmail_530_starttls_first(gmail_like, certs, home):
    """Server: Gmail-like "auth_in_clear" port: it advertises AUTH before STARTTLS and answers
    it with Gmail's "530 5.7.0 Must issue a STARTTLS command first. x - gsmtp".
    We run: account set --security none --host localhost, then account check.
    Must arrive: nothing. error.code 530, enhanced 5.7.0; diagnosis field Security.
    Exit code 1.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, kind="auth_in_clear", security="none")
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert_failure(r, 1, "security", code=530, enhanced="5.7.0")
    assert "STARTTLS" in r.json["error"]["text"]


# --- 4. nothing listening, no such host ---------------------------------------------------------

def test_closed_port(gmail_like, certs, home):
    """Server: none: nothing listens on the port (connect gets "connection refused").
    We run: account set --provider gmail --host localhost --port <closed>, account check.
    Must arrive: nothing. Diagnosis field Port; refused counts as temporary. Exit code 75.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, port=free_closed_port())
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert_failure(r, 75, "port", stage="connect")
    assert r.json["error"]["temporary"] is True and r.json["diagnosis"]["temporary"] is True


def test_unknown_host(gmail_like, certs, home):
    """Server: none: the host name no-such-host.invalid does not exist (RFC 6761 .invalid is
    never resolvable).
    We run: account set --host no-such-host.invalid, account check.
    Must arrive: nothing. Diagnosis field Host, stage dns. Exit code 1 (75 only if the
    resolver called the failure temporary).
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, host="no-such-host.invalid",
              port=gmail_like.port("starttls"))
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    rc = 75 if r.json["error"] and r.json["error"]["temporary"] else 1
    assert_failure(r, rc, "host", stage="dns")
    assert "no-such-host.invalid" in r.json["diagnosis"]["explanation"]


# --- 5. certificates ------------------------------------------------------------------------

def test_wrong_ca(gmail_like, certs, home):
    """Server: Gmail-like STARTTLS port with the run's certificate (signed by the test CA).
    We run: account set --ca-file <an unrelated CA>, account check.
    Must arrive: nothing; the certificate is not trusted, nothing after STARTTLS is sent.
    Diagnosis field Security. Exit code 1.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD)
    r = mo(home, "account", "set", "--ca-file", certs.wrong_ca_file, "--json")
    assert r.rc == 0, describe(r)
    mark = gmail_like.mark()
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert_failure(r, 1, "security", stage="tls")
    assert "not trusted" in r.json["error"]["text"], r.json["error"]
    assert gmail_like.auth_attempts(mark, settle_s=0.1) == []


def test_certificate_name_mismatch(gmail_like, certs, home):
    """Server: Gmail-like STARTTLS listener on 127.0.0.2; its certificate names only
    localhost, 127.0.0.1 and ::1.
    We run: account set --host 127.0.0.2 (trusted CA), account check.
    Must arrive: nothing. Diagnosis field Host, and the explanation names what the
    certificate is issued for (localhost), so the owner knows what to type. Exit code 1.
    """
    gmail_set(home, gmail_like, certs, G.APP_PASSWORD, host=gmail_like.alt.alt_host,
              port=gmail_like.alt.alt_port)
    r = run_check(home, "check", passwords=(G.APP_PASSWORD,))
    assert_failure(r, 1, "host", stage="tls")
    d = r.json["diagnosis"]
    assert "localhost" in d["explanation"], (
        "PRODUCT BUG: the name-mismatch diagnosis does not name the certificate's names "
        "(localhost); explanation: %r; engine text: %r"
        % (d["explanation"], r.json["error"]["text"]))


# --- 6. a sender the server refuses ----------------------------------------------------------

def test_sender_not_owned_by_login(gmail_like, certs, home):
    """Server: Gmail-like "owned_sender" port: after the login, MAIL FROM must be the login's
    own mailbox, else "553 5.7.1 Sender address rejected: not owned by auth user." (Yandex's
    reply; Postfix in the harness has no sender-login map, so it would accept any sender).
    We run: account set for shop@example.test (a server mailout does not know) with sender
    other@example.test; account check. Then the same with the sender set to the login.
    Must arrive: nothing (checks send nothing). First check: diagnosis field Sender, error
    stage mail, 553 5.7.1; second check passes, proving the refusal was about the sender.
    Exit codes: 1, then 0.
    """
    port = gmail_like.port("owned_sender")
    custom_set(home, port, certs, password=USERS[SHOP], extra=["--sender", "other@example.test"])
    r = run_check(home, "check", passwords=(USERS[SHOP],))
    assert_failure(r, 1, "sender", stage="mail", code=553, enhanced="5.7.1")
    assert "other@example.test" in r.json["diagnosis"]["explanation"]

    r = mo(home, "account", "set", "--sender", SHOP, "--json")
    assert r.rc == 0, describe(r)
    r = run_check(home, "check", passwords=(USERS[SHOP],))
    assert r.rc == 0 and r.json["ok"] is True, describe(r)


# --- 7. any password works --------------------------------------------------------------------

@pytest.mark.parametrize("user", sorted(USERS))
def test_any_password_postfix(postfix, certs, home, user):
    """Server: Postfix + Dovecot SASL, submission port (STARTTLS required); users with the
    passwords the seed's panel refused or mangled: digits only ("123456"), spaces, UTF-8,
    quote and backslash.
    We run: account set --email <user> --host localhost (password on stdin), then test.
    Must arrive: the confirmation letter for <user>, envelope from and to <user>, with the
    Message-ID test printed and without the password. Exit codes: 0 and 0.
    """
    password = USERS[user]
    r = custom_set(home, postfix.port("starttls"), certs, email=user, password=password)
    assert not r.json.get("errors"), r.json
    r = run_check(home, "test", timeout_s=20, passwords=(password,), username=user)
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    got = postfix.store.wait_for(r.json["message_id"])
    assert got.sender == user and got.recipients == [user]
    assert_no_secret(got.raw.decode("utf-8", "replace"), password, user, "the letter")


def test_password_file_postfix(postfix, certs, home, tmp_path):
    """Server: Postfix + Dovecot SASL, submission port; spaces@example.test has the password
    "pass word with spaces".
    We run: account set --password-file F (F holds the password and one newline), then test.
    Must arrive: the confirmation letter (the login used the password without the newline,
    spaces kept). Exit codes: 0 and 0.
    """
    user = "spaces@example.test"
    pw_file = tmp_path / "password"
    pw_file.write_text(USERS[user] + "\n", encoding="utf-8")
    r = mo(home, "account", "set", "--email", user, "--host", "localhost", "--port",
           str(postfix.port("starttls")), "--security", "starttls", "--ca-file", certs.ca_file,
           "--password-file", str(pw_file), "--json")
    assert r.rc == 0, describe(r)
    assert_no_leak(r, USERS[user], username=user)
    r = run_check(home, "test", timeout_s=20, passwords=(USERS[user],), username=user)
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    postfix.store.wait_for(r.json["message_id"])


@pytest.mark.parametrize("email,password", [(G.DIGITS_EMAIL, G.DIGITS_PASSWORD),
                                            (G.SPACES_EMAIL, G.SPACES_PASSWORD)],
                         ids=["digits-only", "spaces-inside"])
def test_any_password_gmail_provider(gmail_like, certs, home, email, password):
    """Server: Gmail-like STARTTLS port; accounts whose app password is digits only ("123456")
    or has spaces that are part of it ("pass word 42": not Google's 4x4 letter groups).
    We run: account set --provider gmail (the Gmail rules apply) with that password, then test.
    Must arrive: the letter, after a login with the password byte for byte (the server
    accepts only the exact bytes: spaces kept, digits accepted). Exit codes: 0 and 0.
    """
    r = gmail_set(home, gmail_like, certs, password, email=email)
    assert not any("removed" in n["message"] for n in r.json["notes"]), (
        "mailout changed a password that is not a Google app password: %s" % r.json["notes"])
    mark = gmail_like.mark()
    r = run_check(home, "test", passwords=(password,), username=email)
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    assert [v for _, v in auth_verdicts(gmail_like, mark)] == ["ok"]
    got = gmail_like.store.wait_for(r.json["message_id"])
    assert got.recipients == [email]
    assert_no_secret(got.raw.decode("utf-8", "replace"), password, email, "the letter")


# --- 8. validation: every field at once ----------------------------------------------------

def test_validation_reports_every_field_at_once(home):
    """Server: none (validation happens before any connection).
    We run: account set --json with a bad email ("not an email"), host "smtp.gmail.com:587",
    port 465 with security starttls, sender "bad@@x" and a sender name with a line break.
    Must arrive: nothing; errors name email, host, security, sender and sender_name, each with
    a message; nothing is saved. Exit code 2.
    """
    r = mo(home, "account", "set", "--email", "not an email", "--host", "smtp.gmail.com:587",
           "--port", "465", "--security", "starttls", "--sender", "bad@@x",
           "--sender-name", "Shop\nBcc: victim@example.com", "--json", password="x-123456")
    assert r.rc == 2, describe(r)
    assert r.json["ok"] is False
    fields = {e["field"] for e in r.json["errors"]}
    assert fields == {"email", "host", "security", "sender", "sender_name"}, r.json["errors"]
    for e in r.json["errors"]:
        assert len(e["message"]) > 20, e
    host_msg = [e["message"] for e in r.json["errors"] if e["field"] == "host"][0]
    assert "587" in host_msg and "Port" in host_msg, host_msg
    assert list_accounts(home) == [], "an invalid account was saved"


# --- 9. several accounts, and the data folder ---------------------------------------------------

def test_named_accounts_and_data_folder(gmail_like, certs, home):
    """Server: none needed for set/list/show/remove (the check at the end uses the Gmail-like
    STARTTLS port).
    We run: account set --name shop and --name news (different passwords), account list
    --json, account show --name news --json, account remove news, list again, remove news
    again, then account check --name shop.
    Must arrive: list shows both, then only shop; show never holds a password; the second
    remove fails; mailout.db (and any -wal/-journal file) holds the accounts' addresses but
    neither password in any form; secret.key has mode 0600; the check of "shop" logs in with
    its stored password. Exit codes: 0 ... 0, 2 for the second remove and the show of the
    removed account, 0 for the check.
    """
    pw_shop, pw_news = USERS[SHOP], "news secret pw 0815"
    custom_set(home, gmail_like.port("starttls"), certs, password=pw_shop,
               extra=["--name", "shop"])
    r = mo(home, "account", "set", "--name", "news", "--email", "news@example.test",
           "--host", "localhost", "--port", "2526", "--security", "tls", "--json",
           password=pw_news)
    assert r.rc == 0, describe(r)

    accounts = list_accounts(home, pw_shop, pw_news)
    assert sorted(a["name"] for a in accounts) == ["news", "shop"], accounts
    for a in accounts:
        assert a["password_set"] is True and "password" not in a, a

    r = mo(home, "account", "show", "--name", "news", "--json")
    assert r.rc == 0 and r.json["email"] == "news@example.test" and r.json["port"] == 2526
    assert r.json["security"] == "tls"
    assert_no_leak(r, pw_shop, pw_news)

    files = [os.path.join(home, n) for n in os.listdir(home) if n.startswith("mailout.db")]
    assert os.path.join(home, "mailout.db") in files, os.listdir(home)
    blob = b"".join(open(f, "rb").read() for f in files)
    assert b"news@example.test" in blob, "control: the store should hold the address"
    for pw in (pw_shop, pw_news):
        for form in secret_forms(pw):
            assert form.encode("utf-8") not in blob, "a password is stored readable (%r)" % form
    key = os.path.join(home, "secret.key")
    mode = stat.S_IMODE(os.stat(key).st_mode)
    assert mode == 0o600, "secret.key has mode %o" % mode

    r = mo(home, "account", "remove", "news")
    assert r.rc == 0, describe(r)
    assert [a["name"] for a in list_accounts(home)] == ["shop"]
    r = mo(home, "account", "remove", "news")
    assert r.rc == 2, describe(r)
    r = mo(home, "account", "show", "--name", "news")
    assert r.rc == 2, describe(r)

    r = run_check(home, "check", extra=["--name", "shop"], passwords=(pw_shop, pw_news))
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
