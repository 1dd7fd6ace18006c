"""Integration tests of the sandbox (issue 6): the local test inbox behind the provider
"sandbox". No outside server: `mailout serve` runs the sandbox receiver on 127.0.0.1 (a
free port, recorded in HOME/sandbox/port) and the account made by `mailout sandbox
ensure-account` sends to it with STARTTLS (certificate verified against the sandbox's own
certificate, its ca_file) and AUTH (the sandbox's password).

Each test says what the sandbox does, what we run, and what must be seen.
Service: one module-wide data folder, `mailout serve --no-http` (worker on); a test that
switches a fault on switches it off at the end.
"""

import json
import os
import smtplib
import ssl
import subprocess
import tempfile
import shutil
import time

import pytest

from harness.mailout import describe, mailout_bin, run_mailout

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)


def mo(home, *args, **kw):
    return run_mailout(["--home", home, *args], **kw)


def letters(home):
    p = subprocess.run([BIN, "--home", home, "sandbox", "list", "--json"], capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def sandbox():
    home = tempfile.mkdtemp(prefix="mailout-sandbox-it-")
    r = mo(home, "sandbox", "ensure-account")
    assert r.rc == 0, describe(r)
    env = dict(os.environ)
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    log = open(os.path.join(home, "serve.log"), "wb")
    proc = subprocess.Popen([BIN, "--home", home, "serve", "--no-http"], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    port_file = os.path.join(home, "sandbox", "port")
    deadline = time.time() + 15
    while not os.path.exists(port_file) and time.time() < deadline:
        assert proc.poll() is None, open(os.path.join(home, "serve.log")).read()
        time.sleep(0.05)
    time.sleep(0.3)
    port = int(open(port_file).read())
    yield {"home": home, "port": port, "proc": proc}
    proc.terminate()
    proc.wait(timeout=20)
    log.close()
    if not os.environ.get("MAILOUT_IT_KEEP"):
        shutil.rmtree(home, ignore_errors=True)


def test_ensure_account_only_when_none(tmp_path):
    """Fresh folder: the sandbox account "default" appears; a second run changes nothing;
    a folder with another account gets none."""
    home = str(tmp_path / "a")
    r = mo(home, "sandbox", "ensure-account")
    assert r.rc == 0 and "made the account" in r.stdout, describe(r)
    r = mo(home, "account", "show", "--json")
    assert r.rc == 0, describe(r)
    acc = r.json.get("account", r.json)
    assert acc["provider"] == "sandbox"
    assert acc["host"] == "127.0.0.1"
    assert acc["ca_file"].endswith("/sandbox/cert.pem")
    r = mo(home, "sandbox", "ensure-account")
    assert r.rc == 0 and "nothing changed" in r.stdout, describe(r)
    other = str(tmp_path / "b")
    r = mo(other, "account", "set", "--email", "shop@example.test", "--host", "localhost",
           "--port", "2525", "--security", "starttls", password="Pw-9q7z!kk")
    assert r.rc == 0, describe(r)
    r = mo(other, "sandbox", "ensure-account")
    assert r.rc == 0 and "nothing changed" in r.stdout, describe(r)
    assert not os.path.exists(os.path.join(other, "sandbox", "password"))


def test_green_button_path_lands_in_the_inbox(sandbox):
    """serve put the sandbox's port into the account; `mailout test` (the panel's green
    button) goes through TLS and AUTH and the letter is in the sandbox inbox."""
    home = sandbox["home"]
    r = mo(home, "account", "show", "--json")
    acc = r.json.get("account", r.json)
    assert acc["port"] == sandbox["port"]
    before = len(letters(home))
    r = mo(home, "test", "--json")
    assert r.rc == 0 and r.json["ok"], describe(r)
    got = letters(home)
    assert len(got) == before + 1
    assert "mail settings work" in got[0]["subject"]  # decoded from RFC 2047
    raw = subprocess.run([BIN, "--home", home, "sandbox", "show", got[0]["id"]],
                         capture_output=True, timeout=30).stdout
    assert b"authenticated with the sandbox password" in raw
    assert b"TLSv1.3" in raw or b"TLSv1.2" in raw


def test_real_smtp_client_tls_verified_and_auth(sandbox):
    """A plain smtplib client: no AUTH before STARTTLS (530 for MAIL), the certificate
    verifies for 127.0.0.1 with cert.pem as the only CA, a wrong password gets 535, the
    right one sends."""
    home = sandbox["home"]
    password = open(os.path.join(home, "sandbox", "password")).read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(home, "sandbox", "cert.pem"))
    with smtplib.SMTP("127.0.0.1", sandbox["port"], timeout=10) as s:
        s.ehlo("client.test")
        assert not s.has_extn("auth")
        code, _ = s.mail("a@example.test")
        assert code == 530
    with smtplib.SMTP("127.0.0.1", sandbox["port"], timeout=10) as s:
        s.starttls(context=ctx)  # verifies the name 127.0.0.1
        s.ehlo("client.test")
        assert s.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("sandbox", "wrong")
        assert e.value.smtp_code == 535
    before = len(letters(home))
    with smtplib.SMTP("127.0.0.1", sandbox["port"], timeout=10) as s:
        s.starttls(context=ctx)
        s.login("sandbox", password)
        s.sendmail("a@example.test", ["b@example.test"],
                   b"From: a@example.test\r\nTo: b@example.test\r\nSubject: by hand\r\n\r\nhi\r\n")
    got = letters(home)
    assert len(got) == before + 1 and got[0]["subject"] == "by hand"


@pytest.mark.parametrize("kind,code,enhanced,field", [
    ("auth-534", 534, "5.7.9", "password"),
    ("auth-535", 535, "5.7.8", "password"),
    ("greeting-421", 421, "4.7.0", None),
    ("data-550-545", 550, "5.4.5", None),
    ("drop-mid-data", None, None, None),
])
def test_fault_gives_the_real_providers_reply(sandbox, kind, code, enhanced, field):
    """The fault for the next session: the test letter fails with Gmail's code, the
    diagnosis names the field, nothing reaches the inbox, and the fault is used up."""
    home = sandbox["home"]
    before = len(letters(home))
    r = mo(home, "sandbox", "fault", kind, "--next", "1")
    assert r.rc == 0, describe(r)
    r = mo(home, "test", "--json")
    assert r.rc != 0 and not r.json["ok"], describe(r)
    assert r.json["error"]["code"] == code, describe(r)
    assert r.json["error"]["enhanced"] == enhanced
    assert r.json["diagnosis"]["field"] == field
    assert len(letters(home)) == before
    assert "fault: off" in mo(home, "sandbox", "fault").stdout
    r = mo(home, "test", "--json")
    assert r.rc == 0 and r.json["ok"], describe(r)


def test_fault_next_n_and_share(sandbox):
    """--next 2 refuses two sessions then none; --share 100 refuses every one until off."""
    home = sandbox["home"]
    try:
        assert mo(home, "sandbox", "fault", "auth-535", "--next", "2").rc == 0
        results = [mo(home, "test", "--json").json["ok"] for _ in range(3)]
        assert results == [False, False, True]
        assert mo(home, "sandbox", "fault", "greeting-421", "--share", "100").rc == 0
        assert [mo(home, "test", "--json").json["ok"] for _ in range(2)] == [False, False]
        assert "100% of sessions" in mo(home, "sandbox", "fault").stdout
    finally:
        mo(home, "sandbox", "fault", "off")
    assert mo(home, "test", "--json").json["ok"]


def test_stall_times_out(sandbox):
    """stall: no answer after the data; the client gives up after its timeout."""
    home = sandbox["home"]
    try:
        assert mo(home, "sandbox", "fault", "stall").rc == 0
        t0 = time.time()
        r = mo(home, "test", "--timeout", "2", "--json")
        assert not r.json["ok"], describe(r)
        assert r.json["error"]["temporary"] is True
        assert time.time() - t0 < 30
    finally:
        mo(home, "sandbox", "fault", "off")


def test_bad_fault_usage_and_clear(sandbox):
    home = sandbox["home"]
    assert mo(home, "sandbox", "fault", "nope").rc == 2
    assert mo(home, "sandbox", "fault", "stall", "--share", "101").rc == 2
    assert mo(home, "sandbox", "show", "../../etc/passwd").rc == 2
    assert len(letters(home)) > 0
    r = mo(home, "sandbox", "clear")
    assert r.rc == 0 and "deleted" in r.stdout
    assert letters(home) == []
