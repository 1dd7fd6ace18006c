"""Integration tests of `mailout detect` and `mailout providers`, with a real DNS server.

DNS: dnsmasq (/usr/sbin/dnsmasq) on 127.0.0.1 and a free port, authoritative for the made-up
.test names below and for nothing else (--no-resolv, --local=/test/): nothing leaves the
machine. mailout asks it with --dns-server 127.0.0.1:PORT, for MX records and, when it
probes, for the probed hosts' addresses.

  shop-one.test    MX aspmx.l.google.com                          -> google-workspace
  shop-two.test    MX shop-two-test.mail.protection.outlook.com   -> microsoft-365
  shop-three.test  MX mx.yandex.net                               -> yandex
  shop-aol.test    MX mx-aol.mail.gm0.yahoodns.net (and a lower-preference yahoodns.net
                   host)                                          -> aol (longest suffix)
  own-mx.test      MX mx.own-mx.test (nobody mailout knows)       -> none
  nothing.test     no MX, no addresses                            -> none
  probe.test       A smtp.probe.test = 127.0.0.1, where aiosmtpd listens with implicit TLS
                   on port 465 and offers AUTH                    -> probe (465, tls)
  closed.test      A smtp./mail.closed.test = 127.0.0.3, where nothing listens -> none

CLI under test (exit codes: 0 found, 1 nothing found, 2 bad usage or input):
  mailout detect EMAIL [--dns-server IP:PORT] [--no-probe] [--timeout S] [--ca-file F] [--json]
  mailout providers [--json]

The probe case needs 127.0.0.1:465 (a fixed port: the probe order is smtp.DOMAIN:465 first);
it is skipped, saying why, when that port is taken. The module is skipped only when the
binary or dnsmasq does not exist.
"""

import json
import os
import socket

import pytest

from harness import netutil, procs
from harness.mailout import describe, mailout_bin, run_mailout
from harness.servers import HERE as HARNESS_DIR, python_with_aiosmtpd

BIN = mailout_bin()
DNSMASQ = "/usr/sbin/dnsmasq"
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)
if not os.access(DNSMASQ, os.X_OK):
    pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)", allow_module_level=True)

PROBE_PORT = 465

MX_RECORDS = [
    ("shop-one.test", "aspmx.l.google.com", 10),
    ("shop-two.test", "shop-two-test.mail.protection.outlook.com", 0),
    ("shop-three.test", "mx.yandex.net", 10),
    ("shop-aol.test", "mx-aol.mail.gm0.yahoodns.net", 10),
    ("shop-aol.test", "mta5.am0.yahoodns.net", 20),
    ("own-mx.test", "mx.own-mx.test", 10),
]
ADDRESSES = [
    ("smtp.probe.test", "127.0.0.1"),
    ("smtp.closed.test", "127.0.0.3"),
    ("mail.closed.test", "127.0.0.3"),
]


@pytest.fixture(scope="module")
def dns(run_dir):
    """dnsmasq on 127.0.0.1:PORT with the records above; yields "127.0.0.1:PORT"."""
    directory = run_dir.sub("dnsmasq")
    port = netutil.free_port()
    argv = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
            "--conf-file=/dev/null", "--pid-file=", "--user=root",
            "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces",
            "--local=/test/", "--log-queries",
            "--log-facility=" + os.path.join(directory, "queries.log")]
    argv += ["--mx-host=%s,%s,%d" % r for r in MX_RECORDS]
    argv += ["--address=/%s/%s" % a for a in ADDRESSES]
    proc = procs.ManagedProcess("dnsmasq", argv, os.path.join(directory, "dnsmasq.log"), run_dir)
    proc.start(ready_prefix=None)
    try:
        netutil.wait_for_port(port, alive=proc.alive)  # dnsmasq serves TCP on the same port
        yield "127.0.0.1:%d" % port
    finally:
        proc.stop()


def port_is_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def tls_on_465(run_dir, certs):
    """aiosmtpd with implicit TLS and AUTH on 127.0.0.1:465 (the harness's server script)."""
    if not port_is_free(PROBE_PORT):
        pytest.skip("127.0.0.1:%d is taken; the probe tries the fixed port 465 first, so this "
                    "case cannot run here" % PROBE_PORT)
    directory = run_dir.sub("probe-465")
    config = {
        "cert": certs.server_cert, "key": certs.server_key,
        "users": {"shop@probe.test": "123456"},
        "store": os.path.join(directory, "store"),
        "events": os.path.join(directory, "events.jsonl"),
        "listeners": [{"name": "tls", "port": PROBE_PORT, "kind": "tls"}],
    }
    cfg = os.path.join(directory, "config.json")
    with open(cfg, "w", encoding="utf-8") as f:
        json.dump(config, f)
    proc = procs.ManagedProcess(
        "aiosmtpd-465", [python_with_aiosmtpd(), os.path.join(HARNESS_DIR, "aiosmtpd_server.py"),
                         cfg], os.path.join(directory, "server.log"), run_dir)
    proc.start()
    try:
        yield config["events"]
    finally:
        proc.stop()


def detect(email, dns_server, *extra):
    return run_mailout(["detect", email, "--dns-server", dns_server, "--json", *extra],
                       timeout_s=60)


# --- the address's domain ----------------------------------------------------------------

@pytest.mark.parametrize("email, provider, host, port, security", [
    ("test.mail.ot.commerce@gmail.com", "gmail", "smtp.gmail.com", 587, "starttls"),
    ("someone@googlemail.com", "gmail", "smtp.gmail.com", 587, "starttls"),
    ("shop@yandex.ru", "yandex", "smtp.yandex.com", 587, "starttls"),
    ("shop@aol.com", "aol", "smtp.aol.com", 465, "tls"),
    ("Shop@Hotmail.CO.UK", "outlook-com", "smtp-mail.outlook.com", 587, "starttls"),
])
def test_domain_in_the_table(dns, email, provider, host, port, security):
    """Known domains need no DNS at all; the answer names the server and the app-password rule."""
    r = detect(email, dns, "--no-probe")
    assert r.rc == 0, describe(r)
    assert r.json["source"] == "domain"
    assert r.json["provider"] == provider
    assert (r.json["host"], r.json["port"], r.json["security"]) == (host, port, security)
    assert r.json["mx"] is None
    assert r.json["app_password"] in ("yes", "no", "when-2fa")


def test_gmail_text_output_gives_the_app_password_link(dns):
    r = run_mailout(["detect", "testdukan4you@gmail.com", "--dns-server", dns, "--no-probe"])
    assert r.rc == 0, describe(r)
    assert "smtp.gmail.com port 587, STARTTLS" in r.stdout
    assert "https://myaccount.google.com/apppasswords" in r.stdout
    assert "500/day" in r.stdout


# --- MX records --------------------------------------------------------------------------

@pytest.mark.parametrize("email, provider, mx, host", [
    ("info@shop-one.test", "google-workspace", "aspmx.l.google.com", "smtp.gmail.com"),
    ("info@shop-two.test", "microsoft-365", "shop-two-test.mail.protection.outlook.com",
     "smtp.office365.com"),
    ("info@shop-three.test", "yandex", "mx.yandex.net", "smtp.yandex.com"),
    # the best MX (preference 10) is AOL's gm0.yahoodns.net, which beats yahoodns.net
    ("info@SHOP-AOL.test", "aol", "mx-aol.mail.gm0.yahoodns.net", "smtp.aol.com"),
])
def test_custom_domain_by_mx(dns, email, provider, mx, host):
    r = detect(email, dns, "--no-probe")
    assert r.rc == 0, describe(r)
    assert r.json["source"] == "mx"
    assert r.json["provider"] == provider
    assert r.json["mx"] == mx
    assert r.json["host"] == host
    assert mx in r.json["explanation"]


@pytest.mark.parametrize("email, says", [
    ("info@nothing.test", "no MX records"),
    ("info@own-mx.test", "mx.own-mx.test"),
])
def test_nothing_found_without_probing(dns, email, says):
    r = detect(email, dns, "--no-probe")
    assert r.rc == 1, describe(r)
    assert r.json["source"] == "none"
    assert r.json["provider"] is None and r.json["host"] is None and r.json["port"] is None
    assert says in r.json["explanation"]


def test_nothing_found_with_probing_stays_local(dns):
    """nothing.test has no addresses at all; closed.test's point at 127.0.0.3 where nothing
    listens. Probing finds nothing, quickly, and connects nowhere else."""
    for email in ("info@nothing.test", "info@closed.test"):
        r = detect(email, dns, "--timeout", "2")
        assert r.rc == 1, describe(r)
        assert r.json["source"] == "none"
        assert "no smtp. or mail. server answered" in r.json["explanation"]


# --- probing -----------------------------------------------------------------------------

def test_probe_finds_tls_server_with_auth(dns, certs, tls_on_465):
    """smtp.probe.test -> 127.0.0.1, where a server speaks TLS on 465 and offers AUTH."""
    r = detect("shop@probe.test", dns, "--ca-file", certs.ca_file, "--timeout", "5")
    assert r.rc == 0, describe(r)
    assert r.json["source"] == "probe"
    assert r.json["provider"] is None
    assert (r.json["host"], r.json["port"], r.json["security"]) == ("smtp.probe.test", 465, "tls")
    # The probe logged nothing in: no AUTH command reached the server.
    with open(tls_on_465, encoding="utf-8") as f:
        events = [json.loads(line) for line in f if line.strip()]
    assert any(e["event"] == "connect" for e in events)
    assert not any(e["event"] in ("auth_command", "auth_result") for e in events)


def test_probe_requires_a_trusted_certificate(dns, certs, tls_on_465):
    """The same server, but its CA is not trusted: a probe only counts with verified TLS."""
    r = detect("shop@probe.test", dns, "--ca-file", certs.wrong_ca_file, "--timeout", "3")
    assert r.rc == 1, describe(r)
    assert r.json["source"] == "none"


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["detect", "testdukan4you", "--json"],          # the old form's "part before @"
    ["detect", "a@b.example", "--dns-server", "localhost:53", "--json"],
    ["detect", "a@b.example", "--timeout", "0"],
    ["detect"],
    ["detect", "a@b.example", "c@d.example"],
])
def test_bad_input(args):
    r = run_mailout(args)
    assert r.rc == 2, describe(r)
    if "--json" in args:
        assert r.json["error"]["field"] in ("email", "dns_server")


# --- the table ---------------------------------------------------------------------------

def test_providers_json():
    r = run_mailout(["providers", "--json"])
    assert r.rc == 0, describe(r)
    rows = {p["id"]: p for p in r.json["providers"]}
    assert len(rows) >= 60
    assert "custom" not in rows
    gmail = rows["gmail"]
    assert gmail["host"] == "smtp.gmail.com"
    assert (gmail["port_starttls"], gmail["port_tls"]) == (587, 465)
    assert "googlemail.com" in gmail["domains"]
    assert "dots-ignored" in gmail["flags"]
    assert gmail["daily_limit"] == 500
    assert "dots-ignored" not in rows["google-workspace"]["flags"]
    assert rows["sendgrid"]["fixed_username"] == "apikey"
    assert rows["outlook-com"]["port_tls"] is None
    assert "oauth-only" in rows["outlook-com"]["flags"]


def test_providers_text():
    r = run_mailout(["providers"])
    assert r.rc == 0, describe(r)
    assert "smtp.gmail.com" in r.stdout
    assert "Other:" in r.stdout
