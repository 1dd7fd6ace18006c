"""pytest fixtures for mailout's integration tests: real SMTP servers on 127.0.0.1.

Run from the repo root with Debian's Python (it has aiosmtpd):
    /usr/bin/python3 -m pytest -q tests/integration

Session fixtures, each started on first use and stopped at the end of the run (also after
failures, Ctrl-C, SIGTERM or SIGHUP; see harness/procs.py for what happens after SIGKILL):
  run_dir        /tmp/mailout-it-XXXXXX, removed at the end (MAILOUT_IT_KEEP=1 keeps it)
  certs          test CA, localhost server certificate, unrelated "wrong" CA
  postfix        Postfix + Dovecot SASL      ports: starttls, tls
  aiosmtpd       aiosmtpd                    ports: starttls, tls, plain_auth, plain_noauth
  smtp_server    nodemailer smtp-server      ports: starttls, tls, plain_auth
  faulty_server  aiosmtpd that drops the connection in the middle of DATA (port plain_noauth)
  silent_server  accepts TCP connections, never greets (port plain_noauth)
  servers        {"postfix": ..., "aiosmtpd": ..., "smtp-server": ...}
  server         indirect parametrization by name: @pytest.mark.parametrize("server",
                 ["postfix", "aiosmtpd"], indirect=True)
Every server knows the users in harness.servers.USERS; every server refuses recipients whose
local part starts with "refuse" with 550 5.1.1.
"""

import os
import shutil
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import certs as certs_mod  # noqa: E402
from harness import procs, servers as srv  # noqa: E402

SERVER_NAMES = ("postfix", "aiosmtpd", "smtp-server")


def _interrupt(signum, frame):
    # pytest tears fixtures down on KeyboardInterrupt; a bare SIGTERM would skip that.
    raise KeyboardInterrupt("signal %d" % signum)


def pytest_configure(config):
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _interrupt)


@pytest.fixture(scope="session")
def run_dir():
    procs.reap_stale_runs(srv.stop_postfix)
    rd = procs.RunDir(keep=os.environ.get("MAILOUT_IT_KEEP", "") not in ("", "0"))
    handle = procs.register_cleanup("run_dir", rd.remove)
    yield rd
    # Registered last, so atexit would run it after the servers; here fixtures that use
    # run_dir are torn down first by pytest.
    procs.run_cleanup(handle)


@pytest.fixture(scope="session")
def certs(run_dir):
    return certs_mod.make_certs(run_dir.sub("certs"))


@pytest.fixture(scope="session")
def postfix(run_dir, certs):
    for tool in ("postfix", "postconf", "dovecot", "doveadm"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            pytest.fail("%s is not installed (apt-get install postfix dovecot-core)" % tool)
    instance = srv.PostfixDovecot(run_dir, certs)
    try:
        server = instance.start()
        yield server
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def _aiosmtpd_all(run_dir, certs):
    instance = srv.Aiosmtpd(run_dir, certs)
    try:
        yield instance.start()
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def aiosmtpd(_aiosmtpd_all):
    return _aiosmtpd_all[0]


@pytest.fixture(scope="session")
def faulty_server(_aiosmtpd_all):
    return _aiosmtpd_all[1]


@pytest.fixture(scope="session")
def silent_server(_aiosmtpd_all):
    return _aiosmtpd_all[2]


@pytest.fixture(scope="session")
def smtp_server(run_dir, certs):
    why = srv.NodeSmtpServer.available()
    if why:
        pytest.fail("smtp-server unavailable: " + why)
    instance = srv.NodeSmtpServer(run_dir, certs)
    try:
        yield instance.start()
    finally:
        instance.stop()


_FIXTURE_OF = {"postfix": "postfix", "aiosmtpd": "aiosmtpd", "smtp-server": "smtp_server"}


@pytest.fixture
def server(request):
    """The server named by the test's parameter (indirect parametrization)."""
    return request.getfixturevalue(_FIXTURE_OF[request.param])


@pytest.fixture(scope="session")
def servers(postfix, aiosmtpd, smtp_server):
    return {"postfix": postfix, "aiosmtpd": aiosmtpd, "smtp-server": smtp_server}


def pytest_runtest_makereport(item, call):
    """On failure, append the tails of the involved servers' logs to the report."""
    if call.when != "call" or call.excinfo is None:
        return
    funcargs = getattr(item, "funcargs", {})
    seen = set()
    for value in funcargs.values():
        candidates = value.values() if isinstance(value, dict) else [value]
        for s in candidates:
            if isinstance(s, srv.SmtpServer) and id(s) not in seen:
                seen.add(id(s))
                item.add_report_section("call", "server log: " + s.name, s.log_tail())
