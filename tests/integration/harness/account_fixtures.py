"""Fixtures and helpers for the sender-account tests (test_accounts.py, test_setup_wizard.py).

Import the fixtures into a test module with
    from harness.account_fixtures import gmail_like, dns_nx, home  # noqa: F401
(they use conftest.py's session fixtures run_dir and certs).

  gmail_like  session: the Gmail-like server (harness/gmail_like.py), an SmtpServer named
              "gmail-like" with ports starttls, tls, owned_sender, auth_in_clear and .alt
              (a starttls listener on 127.0.0.2). It also knows the harness's USERS.
  dns_nx      session: dnsmasq on a free 127.0.0.1 port that answers NXDOMAIN to every
              question and forwards nothing: "127.0.0.1:PORT" for --dns-server, so
              detection stays on this machine and ends at once.
  home        function: a fresh, empty data folder for `mailout --home`.
Helpers:
  mo(home, *args, password=None, ...)    run_mailout with --home; password goes to stdin.
  free_closed_port()                     a loopback port nothing listens on.
Leaves out: IPv6, DNS records (dns_nx has none on purpose).
"""

import os
import shutil
import socket

import pytest

from . import netutil, procs
from .gmail_like import GmailLike
from .mailout import run_mailout
from .servers import USERS


@pytest.fixture(scope="session")
def gmail_like(run_dir, certs):
    instance = GmailLike(run_dir, certs, extra_users=USERS)
    try:
        yield instance.start()
    finally:
        instance.stop()


class DnsNx:
    """dnsmasq with --local=/#/: every name is "local" and none exists, so NXDOMAIN."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.dir = run_dir.sub("dnsmasq")
        self.port = netutil.free_port()
        self.proc = None

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not os.path.exists(exe):
            pytest.fail("dnsmasq is not installed (apt-get install dnsmasq-base)")
        argv = [exe, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--port=%d" % self.port, "--pid-file=" + os.path.join(self.dir, "dnsmasq.pid"),
                "--local=/#/", "--log-queries", "--log-facility=-", "--user=root"]
        self.log = os.path.join(self.dir, "dnsmasq.log")
        self.proc = procs.ManagedProcess("dnsmasq", argv, self.log, self.run_dir)
        self.proc.start(ready_prefix=None)
        netutil.wait_for_port(self.port, alive=self.proc.alive)
        return self

    def queries(self):
        """The names asked so far ("query[MX] example.test from 127.0.0.1" lines)."""
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return [line.strip() for line in f if "query[" in line]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture(scope="session")
def dns_nx(run_dir):
    instance = DnsNx(run_dir)
    try:
        yield instance.start()
    finally:
        instance.stop()


@pytest.fixture
def home(tmp_path):
    d = tmp_path / "mailout-home"
    return str(d)


def mo(home_dir, *args, password=None, stdin_text=None, timeout_s=60):
    """`mailout --home HOME args...`; the password (if any) is fed on stdin with
    --password-stdin and checked not to leak (harness.mailout.run_mailout)."""
    return run_mailout(["--home", home_dir, *args], password=password, stdin_text=stdin_text,
                       timeout_s=timeout_s)


def free_closed_port():
    """A port on 127.0.0.1 that nothing listens on (connect gets ECONNREFUSED)."""
    port = netutil.free_port()
    with socket.socket() as s:
        s.settimeout(0.5)
        assert s.connect_ex(("127.0.0.1", port)) != 0, "port %d is in use" % port
    return port
