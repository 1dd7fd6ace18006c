"""End-to-end tests of `mailout setup`, the wizard for a person at a terminal (issue "Sender
accounts"), against the Gmail-like server (harness/gmail_like.py).

The wizard asks for the address, detects the mail service (DNS MX, then probes), asks for
the server when it does not know the service, reads the password without echo, checks the
connection, and on a failure names the field at fault and asks for that field again; then it
saves and offers the confirmation letter. The seed's old form only turned fields red.

Terminal: the wizard runs on a pseudo-terminal (Python's pty module; no pexpect needed), so
its password prompt really is a terminal with echo that it has to turn off. Before typing a
password the test waits until the terminal's ECHO flag is off (the pty's termios, read from
the master side); if the wizard never turns it off, the password is typed anyway and the
echo check fails.
DNS: for an unknown domain the wizard asks DNS first. To stay on this machine and be quick,
it gets --dns-server pointing at a local dnsmasq that answers NXDOMAIN to everything
(harness/account_fixtures.py: dns_nx), so no probe host resolves and nothing is contacted.

Each test states how the server behaves, what we run, what must arrive and the exit code.
"""

import os
import pty
import re
import select
import signal
import subprocess
import termios
import time

import pytest

from harness.account_fixtures import dns_nx, gmail_like, home, mo  # noqa: F401
from harness.mailout import assert_no_secret, describe, mailout_bin
from harness.servers import USERS
from harness.stores import norm_msgid

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
RIGHT_PASSWORD = USERS[SHOP]       # "123456": digits only, which the seed's panel refused
WRONG_PASSWORD = "Wrong-Pass-9876"


class Terminal:
    """A program on a pseudo-terminal: expect(regex) on what it shows, sendline(text)."""

    def __init__(self, argv):
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.master = master
        self.shown = b""  # everything the terminal displayed (program output + echo)
        self.pos = 0      # how far expect() has consumed self.shown
        self.eof = False

    def _pump(self, timeout_s):
        if self.eof:
            time.sleep(min(timeout_s, 0.05))
            return
        r, _, _ = select.select([self.master], [], [], timeout_s)
        if not r:
            return
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the program closed the terminal
            chunk = b""
        if chunk:
            self.shown += chunk
        else:
            self.eof = True

    def text(self):
        return self.shown.decode("utf-8", "replace")

    def expect(self, pattern, timeout_s=20.0):
        """Wait for regex pattern in the output after the last match; return the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            tail = self.shown[self.pos:].decode("utf-8", "replace")
            m = rx.search(tail)
            if m:
                self.pos += len(tail[: m.end()].encode("utf-8"))
                return m
            if time.monotonic() > deadline or (self.eof and self.proc.poll() is not None):
                raise AssertionError("the wizard did not show %r (%s); terminal so far:\n%s"
                                     % (pattern, "it exited" if self.eof else "timeout",
                                        self.text()[-4000:]))
            self._pump(0.1)

    def wait_echo_off(self, timeout_s=3.0):
        """True once the terminal's ECHO flag is off (the wizard hides what is typed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not termios.tcgetattr(self.master)[3] & termios.ECHO:
                return True
            self._pump(0.02)
        return False

    def sendline(self, text):
        os.write(self.master, text.encode("utf-8") + b"\n")

    def close(self, timeout_s=20.0):
        """Wait for the exit (reading what is left); returns the exit code."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.1)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        rc = self.proc.wait()
        for _ in range(20):
            if self.eof:
                break
            self._pump(0.05)
        os.close(self.master)
        return rc


def type_password(term, password, echo_off_seen):
    """Type a password once the wizard has turned the echo off (record whether it did)."""
    echo_off_seen.append(term.wait_echo_off())
    term.sendline(password)


def test_setup_wizard_unknown_provider_wrong_then_right_password(gmail_like, certs, home, dns_nx):
    """Server: Gmail-like STARTTLS port on localhost; it knows shop@example.test with the
    password "123456" (digits only) and answers any other password with Gmail's
    "535-5.7.8 Username and Password not accepted ...". DNS: dnsmasq answering NXDOMAIN.
    We run: `mailout --home D setup --ca-file CA --dns-server 127.0.0.1:PORT` on a
    pseudo-terminal and answer: email shop@example.test (unknown service, so it asks for the
    server), host localhost, the STARTTLS port, starttls, the default user name, a WRONG
    password, default sender, no sender name. The check fails: the wizard shows the
    diagnosis, names the password as the field to change and asks only for it again; we type
    the right one; the check passes; it saves (answering yes if it asks) and we answer yes to
    the confirmation letter.
    Must arrive: one confirmation letter for shop@example.test with the Message-ID the saved
    account records; the server saw the wrong login, then the right one. Neither password
    appears on the terminal (echo off at both password prompts). The detection asked only
    the local dnsmasq. Exit code 0.
    """
    snap = gmail_like.store.snapshot()
    mark = gmail_like.mark()
    port = gmail_like.port("starttls")
    term = Terminal([BIN, "--home", home, "setup", "--ca-file", certs.ca_file,
                     "--dns-server", dns_nx.server])
    echo_off = []
    try:
        term.expect(r"email address[^\n]*: ")
        t0 = time.monotonic()
        term.sendline(SHOP)
        term.expect(r"(?i)does not know this mail service")
        detect_s = time.monotonic() - t0
        term.expect(r"Server \(host\)[^\n]*: ")
        term.sendline("localhost")
        term.expect(r"Port[^\n]*: ")
        term.sendline(str(port))
        term.expect(r"Security[^\n]*: ")
        term.sendline("starttls")
        term.expect(r"User name[^\n]*\[%s\]: " % re.escape(SHOP))
        term.sendline("")
        term.expect(r"Password[^\n]*\(not shown\): ")
        type_password(term, WRONG_PASSWORD, echo_off)
        term.expect(r"Sender's email[^\n]*: ")
        term.sendline("")
        term.expect(r"Sender name[^\n]*: ")
        term.sendline("")
        term.expect(r"Checking the connection")
        failed = term.expect(r"Let's change the ([^.\n]+)\.")
        diagnosis_text = term.text()[: term.pos]
        assert failed.group(1).strip().lower() == "password", (
            "the wizard asks for %r after a refused password" % failed.group(1))
        assert "FAILED" in diagnosis_text and "login" in diagnosis_text, diagnosis_text[-1500:]
        assert re.search(r"(?i)password", diagnosis_text.split("Checking the connection")[-1]), (
            "the diagnosis does not mention the password:\n" + diagnosis_text[-1500:])
        term.expect(r"Password[^\n]*\(not shown\): ")
        type_password(term, RIGHT_PASSWORD, echo_off)
        term.expect(r"The server accepts your login and sender")
        m = term.expect(r"(Save[^\n]*\[Y/n\]: |Saved as account)")
        if m.group(1).startswith("Save") and "[Y/n]" in m.group(1):
            term.sendline("y")
            term.expect(r"Saved as account")
        term.expect(r"confirmation letter[^\n]*\[Y/n\]: ")
        term.sendline("y")
        term.expect(r"Sent\. Check the inbox of " + re.escape(SHOP))
    finally:
        rc = term.close()
    shown = term.text()
    assert rc == 0, "setup exited %d; terminal:\n%s" % (rc, shown[-3000:])
    assert echo_off == [True, True], (
        "the terminal still echoed at a password prompt (echo off seen: %s)" % echo_off)
    for pw in (WRONG_PASSWORD, RIGHT_PASSWORD):
        assert_no_secret(shown, pw, SHOP, "the terminal")
    assert detect_s < 10, "detection took %.1fs with a local DNS server" % detect_s
    asked = dns_nx.queries()
    assert any("example.test" in q for q in asked), (
        "the wizard's detection did not ask the local DNS server: %s" % asked)

    verdicts = [(e["login"], e["verdict"])
                for e in gmail_like.events(mark["events"], kind="auth_result")]
    assert verdicts[:2] == [(SHOP, "bad"), (SHOP, "ok")], verdicts

    show = mo(home, "account", "show", "--json")
    assert show.rc == 0, describe(show)
    assert_no_secret(show.stdout, RIGHT_PASSWORD, SHOP, "account show")
    a = show.json
    assert (a["email"], a["username"], a["host"], a["port"], a["security"]) == (
        SHOP, SHOP, "localhost", port, "starttls"), a
    assert a["password_set"] is True
    mid = norm_msgid(a["last_message_id"])
    assert mid, "the saved account records no test letter: %s" % a
    got = gmail_like.store.wait_for(mid)
    assert got.recipients == [SHOP] and got.sender == SHOP
    assert "mailout" in str(got.msg["Subject"]).lower()
    assert_no_secret(got.raw.decode("utf-8", "replace"), RIGHT_PASSWORD, SHOP, "the letter")
    new = gmail_like.store.new_since(snap, settle_s=0.3)
    assert [m.message_id for m in new] == [mid], "expected exactly the one letter"

    # The saved account works without the wizard.
    r = mo(home, "account", "check", "--json", "--timeout", "5")
    assert r.rc == 0 and r.json["ok"] is True, describe(r)


def test_setup_wizard_answered_by_a_program(gmail_like, certs, home, dns_nx):
    """Server: Gmail-like STARTTLS port; shop@example.test with "123456".
    We run: `mailout setup` with its answers piped on stdin (no terminal): email, host, port,
    security, default user name, the right password, default sender, no sender name, and
    "n" to the confirmation letter.
    Must arrive: nothing (no letter was asked for); the account is saved with those settings,
    and the password is not in the output. Exit code 0.
    """
    snap = gmail_like.store.snapshot()
    port = gmail_like.port("starttls")
    answers = "\n".join([SHOP, "localhost", str(port), "starttls", "", RIGHT_PASSWORD, "", "",
                         "n"]) + "\n"
    p = subprocess.run([BIN, "--home", home, "setup", "--ca-file", certs.ca_file,
                        "--dns-server", dns_nx.server], input=answers.encode("utf-8"),
                       capture_output=True, timeout=60)
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, "setup exited %d:\n%s" % (p.returncode, out[-3000:])
    assert_no_secret(out, RIGHT_PASSWORD, SHOP, "the output")
    assert "The server accepts your login and sender" in out, out[-2000:]
    show = mo(home, "account", "show", "--json")
    assert show.rc == 0, describe(show)
    assert (show.json["host"], show.json["port"], show.json["password_set"]) == (
        "localhost", port, True), show.json
    assert show.json["last_message_id"] is None
    gmail_like.store.assert_nothing_new(snap, settle_s=0.3)


def test_setup_wizard_port_prompt_offers_a_real_port(home, dns_nx):
    """Server: none (the wizard stops at the end of its input, before any check).
    We run: `mailout setup` with only the email (unknown service) and the host piped on
    stdin, so it shows the Port and Security prompts and then stops for lack of input.
    Must arrive: nothing is saved; the Port prompt's default (shown in [...], taken on Enter)
    is a usable port such as 587, not 0. Exit code 2 (no more input).
    """
    p = subprocess.run([BIN, "--home", home, "setup", "--dns-server", dns_nx.server],
                       input=b"shop@example.test\nlocalhost\n", capture_output=True, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 2, "setup exited %d:\n%s" % (p.returncode, out[-2000:])
    m = re.search(r"Port \([^)]*\)(?: \[([^\]]*)\])?: ", out)
    assert m, out[-2000:]
    default = m.group(1)
    assert default not in ("0", None, ""), (
        "PRODUCT BUG: the wizard's Port prompt offers %r as the default for an unknown "
        "service (Enter gives an invalid port); prompt: %r" % (default, m.group(0)))
