"""Integration tests of the sendmail way into the queue: `mailout sendmail` (also as PHP's
mail() and cron call it), the spool for users that may not open the database, and
`mailout send` without --host (queued for a stored account, or --now).

Mail goes in with `mailout --home D sendmail [-t] [-i] ...` (an RFC 5322 message on stdin; exit
0 once it is committed to the queue or the spool) and comes out with `mailout --home D queue
run`, which first moves the spool into the queue and then delivers to aiosmtpd's STARTTLS
listener (conftest.py), where the bytes are stored exactly as received and read back with
Python's email package. The account is set as a shop owner would: `account set --email
shop@example.test --host localhost --port P --security starttls --ca-file CA
--password-stdin`.

Exit codes of `mailout sendmail` (sysexits): 0 queued; 64 EX_USAGE (options, no recipients);
65 EX_DATAERR (too large, NUL byte, a line break through -F/-f); 67 EX_NOUSER (a recipient
argument that is not an address); 73 EX_CANTCREAT (no permission); 75 EX_TEMPFAIL (disk
full, database busy); 78 EX_CONFIG (no account to send with). Every failure prints exactly
one line on stderr.

Skipped: the whole module without the binary; a test that needs `mailout sendmail` or
`mailout queue run` while that command is not there yet; the PHP tests without php-cli
(apt-get install php-cli php-mbstring); the spool tests unless run as root (they switch to
the user nobody with setpriv); the full-disk tests when a tmpfs cannot be mounted.
"""

import email.utils
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid

import pytest

from harness.account_fixtures import home  # noqa: F401  (fixture)
from harness.mailout import describe, mailout_bin, run_mailout
from harness.servers import USERS
from harness.stores import norm_msgid

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
PASSWORD = USERS[SHOP]
SHOP_NAME = "Example Shop"
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG = 64, 65, 67, 73, 75, 78


# --- helpers ----------------------------------------------------------------------------------

def _has_command(*argv):
    p = subprocess.run([BIN, *argv, "--help"], capture_output=True, timeout=30)
    return not (p.returncode != 0 and b"unknown command" in p.stderr)


HAS_SENDMAIL = _has_command("sendmail")
HAS_QUEUE = _has_command("queue")
needs_sendmail = pytest.mark.skipif(not HAS_SENDMAIL,
                                    reason="`mailout sendmail` is not wired into main.c yet")
needs_queue = pytest.mark.skipif(not HAS_QUEUE,
                                 reason="`mailout queue` (src/cli/queue.c) is not there yet: "
                                        "nothing delivers queued mail")
pytestmark = needs_sendmail


def token():
    return uuid.uuid4().hex[:10]


class Run:
    def __init__(self, p):
        self.rc = p.returncode
        self.stdout = p.stdout.decode("utf-8", "replace")
        self.stderr = p.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "rc=%d\nstdout: %s\nstderr: %s" % (self.rc, self.stdout[-2000:], self.stderr[-2000:])


def sendmail(home_dir, *args, data=b"", env=None, as_nobody=False, binary=None, timeout_s=60):
    """`mailout --home HOME sendmail ARGS` with data on stdin (bytes or str)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    argv = [binary or BIN, "--home", home_dir, "sendmail", *args]
    if as_nobody:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + argv
    p = subprocess.run(argv, input=data, capture_output=True, timeout=timeout_s,
                       env=dict(os.environ, **(env or {})))
    return Run(p)


def assert_one_line_failure(r, rc, *words):
    """Exit rc, exactly one line on stderr naming the reason, nothing on stdout."""
    assert r.rc == rc, "expected exit %d\n%r" % (rc, r)
    lines = r.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("mailout sendmail: "), r
    low = lines[0].lower()
    for w in words:
        assert w.lower() in low, "%r not in %r" % (w, lines[0])
    assert r.stdout == "", r


def mo(home_dir, *args, password=None, stdin_text=None, timeout_s=120):
    return run_mailout(["--home", home_dir, *args], password=password, stdin_text=stdin_text,
                       timeout_s=timeout_s)


def set_account(home_dir, server, certs, name=None, email=SHOP, sender_name=SHOP_NAME):
    args = ["account", "set", "--email", email, "--username", SHOP, "--host", "localhost",
            "--port", str(server.port("starttls")), "--security", "starttls", "--ca-file",
            certs.ca_file, "--json"]
    if name:
        args += ["--name", name]
    if sender_name:
        args += ["--sender-name", sender_name]
    r = mo(home_dir, *args, password=PASSWORD)
    assert r.rc == 0, "account set failed\n%s" % describe(r)


def queue_messages(home_dir):
    r = mo(home_dir, "queue", "list", "--json")
    assert r.rc == 0, describe(r)
    return r.json["messages"]


def queued_count(home_dir):
    if not os.path.exists(os.path.join(home_dir, "mailout.db")) or not HAS_QUEUE:
        return 0
    return len(queue_messages(home_dir))


def queue_run(home_dir):
    r = mo(home_dir, "queue", "run", "--json", "--timeout", "30")
    assert r.rc == 0, "queue run failed\n%s" % describe(r)
    return r.json


def only_queued_message_id(home_dir):
    ms = queue_messages(home_dir)
    assert len(ms) == 1, ms
    return ms[0]["message_id"]


def deliver(home_dir, server, expect_imported=0):
    """`queue run`; returns {Message-ID: ReceivedMessage} of what it sent."""
    ids = [m["message_id"] for m in queue_messages(home_dir)] if expect_imported == 0 else None
    out = queue_run(home_dir)
    assert out["imported"] == expect_imported, out
    if ids is None:
        ids = [m["message_id"] for m in queue_messages(home_dir)]
    assert out["stats"]["sent"] == len(ids), out
    return server.store.wait_for_many(ids)


def body_of(m):
    """The text body with LF line ends (the stored bytes have CRLF)."""
    return m.msg.get_content().replace("\r\n", "\n")


def header_block(raw):
    raw = raw.replace(b"\r\n", b"\n")
    return raw.split(b"\n\n", 1)[0]


def assert_from_is_shop(m, name=SHOP_NAME):
    display, addr = email.utils.parseaddr(str(m.msg["From"]))
    assert addr == SHOP, m.msg["From"]
    assert display == name, m.msg["From"]


def assert_added_headers(m):
    assert email.utils.parsedate_to_datetime(str(m.msg["Date"])) is not None, m.msg["Date"]
    mid = norm_msgid(m.msg["Message-ID"])
    assert mid and mid.endswith("@example.test"), m.msg["Message-ID"]


# --- 1. sendmail -t -i: queued, then delivered by queue run -----------------------------------

@needs_queue
def test_sendmail_t_i_queues_and_queue_run_delivers(aiosmtpd, certs, home):
    """Server: aiosmtpd STARTTLS + AUTH, behaving.
    We run: `sendmail -t -i` with a message as a PHP script writes it: LF line ends, To with a
    display name, Cc, Bcc, no From, no Date, no Message-ID, and body lines ".", "..dots" and
    "From here"; then `queue run`.
    Must arrive: one message, envelope from shop@example.test to the To, Cc and Bcc addresses;
    no Bcc header anywhere in the stored bytes; From "Example Shop <shop@example.test>" (the
    account's sender), a Date and a Message-ID @example.test added; the body line for line,
    "." and ".." lines included (-i).
    Exit code: 0 with no output, then `queue run` 0."""
    set_account(home, aiosmtpd, certs)
    t = token()
    bob, carol, dave = ("%s-%s@example.org" % (n, t) for n in ("bob", "carol", "dave"))
    subject = "order %s" % t
    msg = ("To: Bob Example <%s>\nCc: %s\nBcc: %s\nSubject: %s\nMIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=utf-8\n\nHello Bob,\n.\n..dots\nFrom here\nbye\n"
           % (bob, carol, dave, subject))
    r = sendmail(home, "-t", "-i", data=msg)
    assert r.rc == 0 and r.stdout == "" and r.stderr == "", r
    queued = queue_messages(home)
    assert len(queued) == 1 and queued[0]["source"] == "sendmail", queued
    assert queued[0]["subject"] == subject
    got = deliver(home, aiosmtpd)
    m = got[queued[0]["message_id"]]
    assert m.copies == 1
    assert m.sender == SHOP
    assert m.recipients == sorted([bob, carol, dave]), m.recipients
    assert b"bcc" not in header_block(m.raw).lower() and dave.encode() not in m.raw
    assert_from_is_shop(m)
    assert_added_headers(m)
    assert m.msg["Subject"] == subject
    assert email.utils.parseaddr(str(m.msg["To"])) == ("Bob Example", bob)
    assert body_of(m) == "Hello Bob,\n.\n..dots\nFrom here\nbye\n"
    assert b"\r\n" in m.raw and b"\n" not in m.raw.replace(b"\r\n", b""), "bare LF went out"


@needs_queue
def test_dot_line_ends_input_without_i_and_arguments_give_recipients(aiosmtpd, certs, home):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: `sendmail -f shop@example.test RCPT` (no -t, no -i) with a message whose body has
    a line with a single "." followed by more text, and a Bcc header; then `queue run`.
    Must arrive: the message cut at the "." line (as sendmail does without -i); only the
    argument recipient in the envelope (the To header is not used without -t); the Bcc header
    removed all the same.
    Exit code: 0, then 0."""
    set_account(home, aiosmtpd, certs)
    t = token()
    rcpt = "arg-%s@example.org" % t
    msg = ("To: not-used-%s@example.org\nBcc: hidden-%s@example.org\nSubject: dot %s\n\n"
           "before\n.\nafter the dot\n" % (t, t, t))
    r = sendmail(home, "-f", SHOP, rcpt, data=msg)
    assert r.rc == 0, r
    got = deliver(home, aiosmtpd)
    (m,) = got.values()
    assert m.recipients == [rcpt]
    assert body_of(m) == "before\n"
    assert b"hidden-" not in m.raw


@needs_queue
def test_cron(aiosmtpd, certs, home):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: what Debian's cron runs, `sendmail -FCronDaemon -i -B8BITMIME -oem root`, with
    cron's message ("From: root (Cron Daemon)", "To: root", no Date/Message-ID); `queue run`.
    Must arrive: the message at the account's own address (root is a local user; mailout has
    no local mailboxes), From completed to "Cron Daemon <shop@example.test>".
    Exit code: 0, then 0."""
    set_account(home, aiosmtpd, certs, sender_name=None)
    t = token()
    msg = ("From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> backup %s\n"
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
           "X-Cron-Env: <SHELL=/bin/sh>\n\nbackup done\n" % t)
    r = sendmail(home, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root", data=msg)
    assert r.rc == 0, r
    got = deliver(home, aiosmtpd)
    (m,) = got.values()
    assert m.recipients == [SHOP] and m.sender == SHOP
    assert_from_is_shop(m, name="Cron Daemon")
    assert m.msg["Subject"] == "Cron <root@host> backup %s" % t
    assert_added_headers(m)


@needs_queue
def test_sender_picks_the_account(aiosmtpd, certs, home):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: two accounts, "default" (shop@example.test) and "news" (news@example.test, same
    login); `sendmail -t -i -f news@example.test` and `sendmail -t -i` with From
    news@example.test, and one with a From of nobody's; then `queue run`.
    Must arrive: the first two queued for account "news" with envelope sender
    news@example.test; the third for "default" with envelope shop@example.test and its From
    kept as written.
    Exit code: 0 each."""
    set_account(home, aiosmtpd, certs)
    set_account(home, aiosmtpd, certs, name="news", email="news@example.test",
                sender_name="News")
    t = token()
    base = "To: r-%s@example.org\nSubject: %%s %s\n\nx\n" % (t, t)
    assert sendmail(home, "-t", "-i", "-f", "news@example.test", data=base % "one").rc == 0
    assert sendmail(home, "-t", "-i",
                    data="From: News <news@example.test>\n" + base % "two").rc == 0
    assert sendmail(home, "-t", "-i",
                    data="From: Stranger <someone@elsewhere.example>\n" + base % "three").rc == 0
    by_subject = {m["subject"].split()[0]: m for m in queue_messages(home)}
    assert by_subject["one"]["account"] == "news" and by_subject["one"]["from"] == "news@example.test"
    assert by_subject["two"]["account"] == "news" and by_subject["two"]["from"] == "news@example.test"
    # the queue may spell the default account as null
    assert by_subject["three"]["account"] in ("default", None)
    assert by_subject["three"]["from"] == SHOP
    got = deliver(home, aiosmtpd)
    three = got[by_subject["three"]["message_id"]]
    assert email.utils.parseaddr(str(three.msg["From"]))[1] == "someone@elsewhere.example"
    one = got[by_subject["one"]["message_id"]]
    assert email.utils.parseaddr(str(one.msg["From"])) == ("News", "news@example.test")
    assert one.sender == "news@example.test"


@needs_queue
def test_invoked_as_sendmail(aiosmtpd, certs, home, tmp_path):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: the binary through a symlink named `sendmail`, with MAILOUT_HOME set (no --home),
    `sendmail -t -i`; then `queue run`.
    Must arrive: the message.
    Exit code: 0."""
    set_account(home, aiosmtpd, certs)
    link = tmp_path / "sendmail"
    os.symlink(BIN, str(link))
    t = token()
    p = subprocess.run([str(link), "-t", "-i"], capture_output=True, timeout=60,
                       input=("To: sym-%s@example.org\nSubject: symlink %s\n\nx\n" % (t, t)).encode(),
                       env=dict(os.environ, MAILOUT_HOME=home))
    if p.returncode != 0 and b"unknown" in p.stderr:
        pytest.skip("main.c does not route argv[0] \"sendmail\" yet")
    assert p.returncode == 0, p.stderr
    got = deliver(home, aiosmtpd)
    (m,) = got.values()
    assert m.msg["Subject"] == "symlink %s" % t


# --- 2. PHP's mail() ------------------------------------------------------------------------------

PHP = shutil.which("php")
needs_php = pytest.mark.skipif(PHP is None, reason="php-cli is not installed "
                                                   "(apt-get install php-cli php-mbstring)")

SUBJECT_UTF8 = "Bestellung Nr. 123 – Größe L, Farbe Weiß ✓"
PHP_SCRIPT = r"""
$to = $argv[1];
$subject = $argv[2];
$mode = $argv[3];
if ($mode === 'mb') {
    $subject = mb_encode_mimeheader($subject, 'UTF-8', 'B');
} elseif ($mode === 'b64') {
    $subject = '=?UTF-8?B?' . base64_encode($subject) . '?=';
}
$headers = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
         . "Content-Transfer-Encoding: 8bit\r\nX-Mailer: PHP/" . phpversion();
$ok = mail($to, $subject, "Danke für Ihre Bestellung.\n.\nZeile 3\n", $headers);
echo $ok ? "true" : "false";
"""


@needs_php
@needs_queue
@pytest.mark.parametrize("mode", ["raw", "mb", "b64"])
def test_php_mail(aiosmtpd, certs, home, mode):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: `php -d sendmail_path="MAILOUT sendmail -t -i"` with MAILOUT_HOME=HOME and
    mail($to, $subject, $body, $headers): the subject as a shop writes it - raw UTF-8 (most
    shops), mb_encode_mimeheader (mbstring), or a hand-made =?UTF-8?B?...?=; the extra headers
    with CRLF, the rest with PHP's LF; then `queue run`.
    Must arrive: the message to $to, From the account's sender, the subject decoding to the
    same text in each case (a raw UTF-8 subject goes out as encoded words), the body as
    written (its "." line kept: -i).
    Exit code: mail() returns true; `queue run` 0."""
    if mode == "mb":
        p = subprocess.run([PHP, "-r", "echo function_exists('mb_encode_mimeheader') ? 1 : 0;"],
                           capture_output=True, timeout=30)
        if p.stdout.strip() != b"1":
            pytest.skip("php-mbstring is not installed")
    set_account(home, aiosmtpd, certs)
    to = "php-%s@example.org" % token()
    p = subprocess.run([PHP, "-d", "sendmail_path=%s sendmail -t -i" % BIN, "-r", PHP_SCRIPT,
                        "--", to, SUBJECT_UTF8, mode],
                       capture_output=True, timeout=60, env=dict(os.environ, MAILOUT_HOME=home))
    assert p.stdout == b"true", p
    got = deliver(home, aiosmtpd)
    (m,) = got.values()
    assert m.recipients == [to]
    assert m.msg["Subject"] == SUBJECT_UTF8
    assert_from_is_shop(m)
    assert_added_headers(m)
    # PHP's mail() adds a line end after the body; the rest is as written
    assert body_of(m).rstrip("\n") == "Danke für Ihre Bestellung.\n.\nZeile 3"
    assert m.msg["X-Mailer"].startswith("PHP/")


# --- 3. the spool: a user that may not open the database ---------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")


@pytest.fixture
def shared_home():
    """A data folder nobody can reach: /tmp/mailout-sendmail-XXXX (0755) with home/ inside
    and a copy of the binary nobody may run."""
    base = tempfile.mkdtemp(prefix="mailout-sendmail-", dir="/tmp")
    os.chmod(base, 0o755)
    binary = os.path.join(base, "mailout")
    shutil.copy2(BIN, binary)
    os.chmod(binary, 0o755)
    try:
        yield os.path.join(base, "home"), binary
    finally:
        subprocess.run(["umount", "-l", os.path.join(base, "home")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def open_spool_to_others(home_dir):
    """The README's setup: the owner makes the spool (`queue run`), opens the folder to be
    passed through, and keeps the database and key to itself."""
    queue_run(home_dir)
    os.chmod(home_dir, 0o711)
    for name in os.listdir(home_dir):
        if name.startswith("mailout.db") or name == "secret.key":
            os.chmod(os.path.join(home_dir, name), 0o600)


def as_nobody(*argv):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           *argv], capture_output=True, timeout=30)


@needs_root
@needs_queue
def test_spool_for_a_user_without_the_database(aiosmtpd, certs, shared_home):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: as root, account set and the README's spool setup; as nobody (setpriv), `sendmail
    -t -i -F "Web Shop"` with a message without From; then, as root, `queue run`.
    Must arrive: nothing before the queue run; nobody could not read the database or list the
    spool; a spool file owned by nobody, mode 0644, in spool/new; after the run the message
    with From "Web Shop <shop@example.test>" (the name from -F, the address from the account),
    Bcc removed, Date and Message-ID added; the spool empty.
    Exit code: 0 (nobody's sendmail), 0 (queue run)."""
    home_dir, binary = shared_home
    set_account(home_dir, aiosmtpd, certs)
    open_spool_to_others(home_dir)
    assert as_nobody("cat", os.path.join(home_dir, "mailout.db")).returncode != 0
    t = token()
    to = "spool-%s@example.org" % t
    msg = "To: %s\nBcc: hidden-%s@example.org\nSubject: spool %s\n\nvia the spool\n" % (to, t, t)
    r = sendmail(home_dir, "-t", "-i", "-F", "Web Shop", data=msg, as_nobody=True, binary=binary)
    assert r.rc == 0, r
    new = os.path.join(home_dir, "spool", "new")
    files = os.listdir(new)
    assert len(files) == 1, files
    st = os.stat(os.path.join(new, files[0]))
    assert pwd.getpwuid(st.st_uid).pw_name == "nobody" and stat.S_IMODE(st.st_mode) == 0o644
    assert as_nobody("ls", new).returncode != 0, "nobody may list the spool"
    assert queued_count(home_dir) == 0
    got = deliver(home_dir, aiosmtpd, expect_imported=1)
    (m,) = got.values()
    assert m.recipients == sorted([to, "hidden-%s@example.org" % t])
    assert_from_is_shop(m, name="Web Shop")
    assert_added_headers(m)
    assert b"hidden-" not in header_block(m.raw)
    assert body_of(m) == "via the spool\n"
    assert os.listdir(new) == [] and os.listdir(os.path.join(home_dir, "spool", "cur")) == []
    # imported once: a second run has nothing to import
    assert queue_run(home_dir)["imported"] == 0


@needs_root
def test_spool_refused_without_permission(aiosmtpd, certs, shared_home):
    """Server: none contacted.
    We run: as root, account set only (the data folder stays 0700, no spool opened); as nobody,
    `sendmail -t -i`.
    Must arrive: nothing; no file anywhere.
    Exit code: 73 (EX_CANTCREAT) with one line saying permission is missing."""
    home_dir, binary = shared_home
    set_account(home_dir, aiosmtpd, certs)
    r = sendmail(home_dir, "-t", "-i", data="To: x@example.org\n\nx\n", as_nobody=True,
                 binary=binary)
    assert_one_line_failure(r, EX_CANTCREAT, "permission")


# --- 4. refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args,data,env,rc,words", [
    (["-t", "-i"], b"To: a@example.org\nSubject: a\x00b\n\nx\n", {}, EX_DATAERR, ["NUL"]),
    (["-t", "-i"], b"To: a@example.org\n\nbody with \x00 inside\n", {}, EX_DATAERR, ["NUL"]),
    (["-t", "-i"], b"To: a@example.org\n\n" + b"x" * 5000, {"MAILOUT_MAX_MESSAGE_BYTES": "1000"},
     EX_DATAERR, ["larger than the limit of 1000 bytes"]),
    (["-t", "-i", "-O", "MaxMessageSize=1000"], b"To: a@example.org\n\n" + b"y" * 5000, {},
     EX_DATAERR, ["limit"]),
    (["-i"], b"To: a@example.org\n\nx\n", {}, EX_USAGE, ["no recipients"]),
    (["-t", "-i"], b"Subject: nobody to send to\n\nx\n", {}, EX_USAGE, ["no recipients"]),
    (["-t", "-i", "-F", "Evil\nBcc: evil@example.org"], b"To: a@example.org\n\nx\n", {},
     EX_DATAERR, ["line break"]),
    (["-t", "-i", "-f", "a@example.org\r\nBcc: evil@example.org"], b"To: a@example.org\n\nx\n",
     {}, EX_DATAERR, ["line break"]),
    (["-i", "a@@example.org"], b"Subject: x\n\nx\n", {}, EX_NOUSER, ["a@@example.org"]),
    (["-t", "-i"], b"To: a@@example.org\n\nx\n", {}, EX_DATAERR, ["To header"]),
    (["-bs"], b"", {}, EX_USAGE, ["-bs"]),
    (["-bp"], b"", {}, EX_USAGE, ["queue list"]),
    (["-q"], b"", {}, EX_USAGE, ["queue run"]),
    (["-k", "a@example.org"], b"x", {}, EX_USAGE, ["unknown option -k"]),
    (["-t", "-i"], b"", {}, EX_DATAERR, ["empty"]),
])
def test_refusals_queue_nothing(aiosmtpd, certs, home, args, data, env, rc, words):
    """Server: none contacted.
    We run: `sendmail` with bad input (a NUL byte, a message over the limit, no recipients, a
    line break through -F or -f, a bad recipient, a mode mailout does not have, an unknown
    option, nothing at all).
    Must arrive: nothing queued.
    Exit code: the sysexits code of the case, one line on stderr."""
    set_account(home, aiosmtpd, certs)
    r = sendmail(home, *args, data=data, env=env)
    usage_tail = rc == EX_USAGE and args and args[0].startswith("-") and args[0] in (
        "-bs", "-bp", "-q", "-k")
    if usage_tail:
        # an option error adds the usage line after the reason
        assert r.rc == rc, r
        first = r.stderr.split("\n")[0]
        assert first.startswith("mailout sendmail: ")
        for w in words:
            assert w in first, r
    else:
        assert_one_line_failure(r, rc, *words)
    assert queued_count(home) == 0


def test_nothing_set_up(home):
    """Server: none.
    We run: `sendmail -t -i` and `send --to R` with a data folder that does not exist yet.
    Must arrive: nothing; no spool made.
    Exit code: 78 (EX_CONFIG) with one line saying to set up an account; `send` 2."""
    r = sendmail(home, "-t", "-i", data="To: a@example.org\n\nx\n")
    assert_one_line_failure(r, EX_CONFIG, "no account is set up", "account set")
    r = mo(home, "send", "--to", "a@example.org", "--json")
    assert r.rc == 2 and r.json["error"]["field"] == "account", describe(r)
    assert not os.path.exists(os.path.join(home, "spool"))


def test_no_account(home):
    """Server: none.
    We run: `sendmail -t -i` in a data folder whose database exists but has no account.
    Must arrive: nothing.
    Exit code: 78 (EX_CONFIG), one line naming the account "default"."""
    p = subprocess.run([BIN, "--home", home, "account", "list"], capture_output=True, timeout=30)
    assert p.returncode == 0, p  # the database exists now, with no account
    r = sendmail(home, "-t", "-i", data="To: a@example.org\n\nx\n")
    assert_one_line_failure(r, EX_CONFIG, "default")


def _mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % p.stderr.decode(errors="replace").strip())


@needs_root
@needs_queue
def test_full_disk(aiosmtpd, certs, shared_home):
    """Server: none contacted.
    We run: the data folder on a 1 MB tmpfs; account set; `sendmail -t -i` with a 3 MB message
    by the owner (straight into the database) and by nobody (into the spool).
    Must arrive: nothing queued, no spool file left behind.
    Exit code: 75 (EX_TEMPFAIL) both times, one line saying the disk is full."""
    home_dir, binary = shared_home
    _mount_tmpfs(home_dir, "1m")
    set_account(home_dir, aiosmtpd, certs)
    open_spool_to_others(home_dir)
    big = "To: big@example.org\nSubject: big\n\n" + ("z" * 99 + "\n") * 30000
    r = sendmail(home_dir, "-t", "-i", data=big)
    assert_one_line_failure(r, EX_TEMPFAIL, "disk is full")
    assert queued_count(home_dir) == 0
    r = sendmail(home_dir, "-t", "-i", data=big, as_nobody=True, binary=binary)
    assert_one_line_failure(r, EX_TEMPFAIL, "disk is full")
    for sub in ("tmp", "new"):
        assert os.listdir(os.path.join(home_dir, "spool", sub)) == []


# --- mailout send without --host -------------------------------------------------------------------

@needs_queue
def test_send_queues_by_default(aiosmtpd, certs, home, tmp_path):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: `mailout send --to R --bcc B --subject S --text-file F --json` without --host (the
    stored account "default"), then `queue run`.
    Must arrive: after the run only, From "Example Shop <shop@example.test>", the Bcc in the
    envelope only.
    Exit code: 0 with {"ok": true, "queued": true, "id": N, "message_id": ...}; then 0."""
    set_account(home, aiosmtpd, certs)
    t = token()
    body = tmp_path / "body.txt"
    body.write_text("queued by send\n", encoding="utf-8")
    to, bcc = "q-%s@example.org" % t, "qb-%s@example.org" % t
    snap = aiosmtpd.store.snapshot()
    r = mo(home, "send", "--to", to, "--bcc", bcc, "--subject", "queued %s" % t, "--text-file",
           str(body), "--json")
    assert r.rc == 0, describe(r)
    j = r.json
    assert j["ok"] is True and j["queued"] is True and isinstance(j["id"], int), j
    aiosmtpd.store.assert_nothing_new(snap, settle_s=0.3)
    got = deliver(home, aiosmtpd)
    m = got[j["message_id"]]
    assert m.recipients == sorted([to, bcc])
    assert_from_is_shop(m)
    assert bcc.encode() not in m.raw
    assert body_of(m) == "queued by send\n"
    # human output
    r = mo(home, "send", "--to", to, "--subject", "again")
    assert r.rc == 0 and r.stdout.startswith("queued as #"), describe(r)


def test_send_without_host_refusals(home, aiosmtpd, certs):
    """Server: none contacted.
    We run: `send` without --host for an account that does not exist, and with a connection
    option (--port) but no --host.
    Must arrive: nothing.
    Exit code: 2 both times, the error naming "account" and "host"."""
    set_account(home, aiosmtpd, certs)
    r = mo(home, "send", "--account", "nope", "--to", "a@example.org", "--json")
    assert r.rc == 2 and r.json["error"]["field"] == "account", describe(r)
    r = mo(home, "send", "--port", "25", "--to", "a@example.org", "--json")
    assert r.rc == 2 and r.json["error"]["field"] == "host", describe(r)


def test_send_now_uses_the_stored_account(aiosmtpd, certs, home):
    """Server: aiosmtpd STARTTLS + AUTH.
    We run: `mailout send --now --to R --subject S --json` (no --host: the stored account's
    server, login and password).
    Must arrive: the message at once, from shop@example.test; nothing queued.
    Exit code: 0, JSON ok with steps and a Message-ID, never the password."""
    set_account(home, aiosmtpd, certs)
    t = token()
    to = "now-%s@example.org" % t
    r = mo(home, "send", "--now", "--to", to, "--subject", "now %s" % t, "--json",
           password=None)
    assert r.rc == 0 and r.json["ok"] is True, describe(r)
    assert PASSWORD not in r.stdout + r.stderr
    m = aiosmtpd.store.wait_for(r.json["message_id"])
    assert m.recipients == [to] and m.sender == SHOP
    assert_from_is_shop(m)
    assert queued_count(home) == 0
