"""Integration tests of delivery from the queue: `mailout queue run` against real SMTP servers.

Mail goes into the queue with `mailout sendmail -t` (an RFC 5322 message on stdin, exit 0 once
queued); `mailout queue run` then delivers what is due (worker_run with once) and `mailout
queue list|show --json` reads back what the queue recorded. Accounts are made with
`mailout account set ... --host localhost --port P --security starttls --ca-file CA
--password-stdin`, as a shop owner would.

Servers: aiosmtpd (conftest.py) for the good path, and harness/faults_server.py, an aiosmtpd
whose misbehaviour each test picks (421 greeting, 451 after the data, a line dropped before or
after the final ".", a stall, a refused login, Gmail's daily limit, a drop on the second
message of a connection). Each case states how the server behaves, what we run, what must
arrive (read back and parsed by Python's email package) and the exit code.

Exit codes: `queue run` exits 0 whenever it could run, whatever the messages' fates (they are
in the queue, deferred or failed, not in the exit code); 1 only when the data folder cannot be
used. The module is skipped when the binary does not exist, and a test that needs
`mailout sendmail` is skipped while that command is missing.
"""

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from harness.account_fixtures import home  # noqa: F401  (fixture)
from harness.faults_server import FaultServer
from harness.mailout import describe, mailout_bin, run_mailout
from harness.servers import USERS

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

_probe = subprocess.run([BIN, "queue", "--help"], capture_output=True, timeout=30)
if _probe.returncode != 0 and b"unknown command" in _probe.stderr:
    pytest.skip("`mailout queue` is not wired into %s yet (cli_queue_main)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
PASSWORD = USERS[SHOP]


# --- fixtures and helpers -------------------------------------------------------------------

@pytest.fixture(scope="module")
def faults(run_dir, certs):
    instance = FaultServer(run_dir, certs, USERS)
    try:
        control = instance.start()
        yield control
    finally:
        instance.stop()


@pytest.fixture
def fault(faults):
    """The fault server, back in mode "ok" after the test whatever it set."""
    faults.set_mode("ok")
    yield faults
    faults.set_mode("ok")


def mo(home_dir, *args, password=None, stdin_text=None, timeout_s=120):
    return run_mailout(["--home", home_dir, *args], password=password, stdin_text=stdin_text,
                       timeout_s=timeout_s)


def set_account(home_dir, port, certs):
    """The default account: shop@example.test on localhost:port, STARTTLS, the run's CA."""
    r = mo(home_dir, "account", "set", "--email", SHOP, "--username", SHOP, "--host", "localhost",
           "--port", str(port), "--security", "starttls", "--ca-file", certs.ca_file, "--json",
           password=PASSWORD)
    assert r.rc == 0, "account set failed\n%s" % describe(r)


def token():
    return uuid.uuid4().hex[:10]


def make_message(to, subject=None, body_bytes=0):
    """An RFC 5322 message (LF line ends, as a PHP script would pipe it) and its Message-ID."""
    msgid = "%s@worker.test" % token()
    subject = subject or "worker " + token()
    body = "Hello from the worker test.\n"
    if body_bytes:
        line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy\n"
        body += line * (body_bytes // len(line) + 1)
    text = ("From: Shop <%s>\nTo: %s\nSubject: %s\nMessage-ID: <%s>\n"
            "Date: Thu, 26 Nov 2026 05:00:00 +0000\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n%s" % (SHOP, ", ".join(to), subject,
                                                                msgid, body))
    return text, msgid, subject


def enqueue(home_dir, to=("bob@example.org",), body_bytes=0):
    """Queue one message with `mailout sendmail -t`; returns its Message-ID."""
    text, msgid, _subject = make_message(list(to), body_bytes=body_bytes)
    r = mo(home_dir, "sendmail", "-t", "-f", SHOP, stdin_text=text)
    if r.rc != 0 and "unknown command" in r.stderr:
        pytest.skip("`mailout sendmail` is not there yet: nothing can put mail into the queue")
    assert r.rc == 0, "sendmail -t failed\n%s" % describe(r)
    return msgid


def queue_run(home_dir, *extra, timeout_s=120):
    r = mo(home_dir, "queue", "run", "--json", *extra, timeout_s=timeout_s)
    assert r.rc == 0, "queue run: exit %d, expected 0\n%s" % (r.rc, describe(r))
    assert r.json["ok"] is True, describe(r)
    return r.json["stats"]


def queue_list(home_dir):
    r = mo(home_dir, "queue", "list", "--json")
    assert r.rc == 0, describe(r)
    return r.json


def messages(home_dir):
    """{Message-ID: the queue's JSON of that message}, with the details of `queue show`."""
    out = {}
    for m in queue_list(home_dir)["messages"]:
        r = mo(home_dir, "queue", "show", str(m["id"]), "--json")
        assert r.rc == 0, describe(r)
        full = r.json["message"]
        out[full["message_id"] or str(full["id"])] = full
    return out


def only_message(home_dir):
    ms = list(messages(home_dir).values())
    assert len(ms) == 1, ms
    return ms[0]


def account_note(home_dir, name="default"):
    notes = [a for a in queue_list(home_dir)["accounts"] if a["name"] == name]
    return notes[0] if notes else None


def auth_commands(server, mark):
    return [e for e in server.events(mark["events"], kind="auth_command")]


# --- the good path -----------------------------------------------------------------------------

def test_delivers_queued_mail_over_one_connection(aiosmtpd, certs, home):
    """Server: aiosmtpd's STARTTLS listener, behaving.
    We run: account set, three `sendmail -t`, then `queue run`.
    Must arrive: all three, each once, envelope sender shop@example.test and its own recipient,
    the bytes as queued; the queue says sent; ONE connection and ONE login carried all three.
    Exit code: 0."""
    set_account(home, aiosmtpd.port("starttls"), certs)
    rcpts = ["a-%s@example.org" % token() for _ in range(3)]
    ids = [enqueue(home, to=[r]) for r in rcpts]
    mark = aiosmtpd.mark()
    stats = queue_run(home)
    assert stats["sent"] == 3 and stats["attempts"] == 3, stats
    assert stats["connections"] == 1, stats
    got = aiosmtpd.store.wait_for_many(ids)
    for msgid, rcpt in zip(ids, rcpts):
        m = got[msgid]
        assert m.copies == 1, "message %s arrived %d times" % (msgid, m.copies)
        assert m.sender == SHOP and m.recipients == [rcpt], (m.sender, m.recipients)
        assert m.msg["Subject"].startswith("worker "), m.msg["Subject"]
        assert "Hello from the worker test." in m.msg.get_content()
    port = aiosmtpd.port("starttls")
    connects = aiosmtpd.events(mark["events"], port=port, kind="connect")
    assert len(connects) == 1, "expected one connection for three messages, saw %d" % len(connects)
    assert len([e for e in auth_commands(aiosmtpd, mark) if e["port"] == port]) == 1
    for msgid, m in messages(home).items():
        assert m["state"] == "sent", m
        assert [r["state"] for r in m["recipients"]] == ["delivered"], m
        assert m["attempt_log"][-1]["result"] == "sent"
        transcript = m["attempt_log"][-1]["transcript"] or ""
        assert "C: MAIL FROM:<%s>" % SHOP in transcript, transcript
        assert PASSWORD not in transcript
    # Nothing is due any more: a second run does nothing.
    again = queue_run(home)
    assert again["attempts"] == 0 and again["connections"] == 0, again


def test_parallel_connections_deliver_each_message_once(aiosmtpd, certs, home):
    """Server: aiosmtpd's STARTTLS listener, behaving.
    We run: 60 messages, `queue run --batch 10 --connections 2`.
    Must arrive: all 60, each exactly once, to its own recipient; at most two connections
    (the second opens only after the first login worked), one login per connection; the queue
    says every message is sent.
    Exit code: 0."""
    set_account(home, aiosmtpd.port("starttls"), certs)
    t = token()
    rcpts = ["p%02d-%s@example.org" % (i, t) for i in range(60)]
    ids = [enqueue(home, to=[r]) for r in rcpts]
    mark = aiosmtpd.mark()
    stats = queue_run(home, "--batch", "10", "--connections", "2")
    assert stats["sent"] == 60 and stats["attempts"] == 60, stats
    assert 1 <= stats["connections"] <= 2, stats
    got = aiosmtpd.store.wait_for_many(ids, timeout_s=30)
    for msgid, rcpt in zip(ids, rcpts):
        assert got[msgid].copies == 1 and got[msgid].recipients == [rcpt], msgid
    port = aiosmtpd.port("starttls")
    connects = aiosmtpd.events(mark["events"], port=port, kind="connect")
    logins = [e for e in auth_commands(aiosmtpd, mark) if e["port"] == port]
    assert len(connects) == stats["connections"] == len(logins), (connects, logins)
    assert {m["state"] for m in queue_list(home)["messages"]} == {"sent"}


def test_one_of_three_recipients_refused(fault, certs, home):
    """Server: the fault server in mode ok; it refuses RCPT TO:<refuse-...> with 550 5.1.1.
    We run: one message to three recipients (the middle one refused), `queue run`.
    Must arrive: one copy for the two others; the queue says the message is sent, the refused
    recipient failed with 550 5.1.1 and the two others delivered; nothing is retried.
    Exit code: 0."""
    set_account(home, fault.port, certs)
    t = token()
    to = ["one-%s@example.org" % t, "refuse-%s@example.org" % t, "three-%s@example.org" % t]
    msgid = enqueue(home, to=to)
    stats = queue_run(home)
    assert stats["sent"] == 1, stats
    got = fault.server.store.wait_for(msgid)
    assert got.recipients == sorted([to[0], to[2]]), got.recipients
    m = only_message(home)
    assert m["state"] == "sent", m
    states = {r["address"]: (r["state"], r["code"]) for r in m["recipients"]}
    assert states == {to[0]: ("delivered", 250), to[1]: ("failed", 550),
                      to[2]: ("delivered", 250)}, states
    refused = [r for r in m["recipients"] if r["address"] == to[1]][0]
    assert "5.1.1" in (refused["reply"] or ""), refused
    assert queue_run(home)["attempts"] == 0


# --- temporary trouble: deferred ---------------------------------------------------------------

def test_greeting_421_defers_then_delivers(fault, certs, home):
    """Server: the fault server answers every connection with "421 4.3.2 Service not
    available" and closes (mode greeting_421); later it behaves (mode ok).
    We run: one message, `queue run` (421), then `queue retry ID` and `queue run` again.
    Must arrive: nothing after the first run (deferred, next attempt in the future, last reply
    the 421, two connections: one retry, then the batch waits; the account is NOT paused: a
    421 greeting is passing trouble); after the retry, the message, once.
    Exit code: 0 for every command."""
    set_account(home, fault.port, certs)
    msgid = enqueue(home)
    fault.set_mode("greeting_421")
    mark = fault.server.mark()
    snap = fault.server.store.snapshot()
    stats = queue_run(home)
    assert stats["deferred"] == 1 and stats["open_failures"] == 2, stats
    assert stats["pauses"] == 0, stats
    assert fault.connections(mark) == 2
    fault.server.store.assert_nothing_new(snap, settle_s=0.2)
    m = only_message(home)
    assert m["state"] == "deferred", m
    assert m["next_attempt_at"] > time.time(), m
    assert m["last_code"] == 421 and "4.3.2" in m["last_reply"], m
    assert "S: 421 4.3.2" in (m["attempt_log"][0]["transcript"] or "")
    assert account_note(home)["paused"] is False
    # Not due yet: a run now leaves it alone.
    assert queue_run(home)["attempts"] == 0
    fault.set_mode("ok")
    r = mo(home, "queue", "retry", str(m["id"]))
    assert r.rc == 0, describe(r)
    stats = queue_run(home)
    assert stats["sent"] == 1, stats
    assert fault.server.store.wait_for(msgid).copies == 1
    assert only_message(home)["state"] == "sent"


def test_451_after_data_defers(fault, certs, home):
    """Server: the fault server answers the final "." with "451 4.3.0 Mail server temporarily
    rejected message." (mode data_451) and stores nothing.
    We run: one message, `queue run`.
    Must arrive: nothing; the message is deferred with last reply 451 4.3.0, its recipient
    still pending, and the attempt's transcript shows the 451.
    Exit code: 0."""
    set_account(home, fault.port, certs)
    enqueue(home)
    fault.set_mode("data_451")
    snap = fault.server.store.snapshot()
    stats = queue_run(home)
    assert stats["deferred"] == 1 and stats["pauses"] == 0, stats
    fault.server.store.assert_nothing_new(snap, settle_s=0.2)
    m = only_message(home)
    assert m["state"] == "deferred" and m["last_code"] == 451, m
    assert [r["state"] for r in m["recipients"]] == ["pending"], m
    assert "S: 451 4.3.0" in m["attempt_log"][0]["transcript"]


def test_drop_before_final_dot_defers(fault, certs, home):
    """Server: after the 354 the fault server reads 4 KiB of the body and closes the connection
    without a reply (mode drop_in_data). The message is 24 MB, more than the loopback socket
    buffers hold, so mailout is still writing the body when the line breaks: its final "."
    never left. (A small message would fit in the buffers whole; the client would then have
    sent the "." and must call the outcome uncertain: see the next test.)
    We run: one message, `queue run`.
    Must arrive: nothing; the server saw no end of data; the message is deferred (not
    uncertain: the server cannot have accepted it).
    Exit code: 0."""
    set_account(home, fault.port, certs)
    enqueue(home, body_bytes=24_000_000)
    fault.set_mode("drop_in_data")
    mark = fault.server.mark()
    snap = fault.server.store.snapshot()
    stats = queue_run(home)
    assert stats["deferred"] == 1 and stats["uncertain"] == 0, stats
    events = fault.fault_events(mark)
    assert events and events[0]["saw_end"] is False, events
    fault.server.store.assert_nothing_new(snap, settle_s=0.2)
    m = only_message(home)
    assert m["state"] == "deferred", m


def test_drop_after_final_dot_is_uncertain(fault, certs, home):
    """Server: the fault server reads the whole message, final "." included, then closes the
    connection without a reply (mode drop_after_dot): it may have kept the message.
    We run: one message, `queue run`, then `queue run` again at once.
    Must arrive: nothing stored; the message is uncertain (not deferred: resending at once could
    deliver it twice), and the second run does not resend it (the grace period holds it).
    Exit code: 0 both times."""
    set_account(home, fault.port, certs)
    enqueue(home)
    fault.set_mode("drop_after_dot")
    mark = fault.server.mark()
    stats = queue_run(home)
    assert stats["uncertain"] == 1 and stats["deferred"] == 0, stats
    events = fault.fault_events(mark)
    assert events and events[0]["saw_end"] is True, events
    m = only_message(home)
    assert m["state"] == "uncertain", m
    assert [r["state"] for r in m["recipients"]] == ["pending"], m
    fault.set_mode("ok")
    again = queue_run(home)
    assert again["attempts"] == 0 and again["connections"] == 0, again


def test_stall_past_timeout_defers(fault, certs, home):
    """Server: the fault server never answers MAIL FROM (mode stall_mail).
    We run: one message, `queue run --timeout 3`.
    Must arrive: nothing; the run ends within seconds (the 3 s cap on every wait), the message
    is deferred and its last reply says the server did not answer in time.
    Exit code: 0."""
    set_account(home, fault.port, certs)
    enqueue(home)
    fault.set_mode("stall_mail")
    t0 = time.monotonic()
    stats = queue_run(home, "--timeout", "3", timeout_s=60)
    elapsed = time.monotonic() - t0
    assert stats["deferred"] == 1, stats
    assert elapsed < 20, "queue run took %.1f s with --timeout 3" % elapsed
    m = only_message(home)
    assert m["state"] == "deferred", m
    assert m["last_reply"], m


def test_reconnects_after_a_drop_for_the_rest(fault, certs, home):
    """Server: on each connection, the fault server accepts the first message and cuts the
    second in the middle of its data (mode drop_second_data).
    We run: three messages (the second 24 MB, so the line breaks while mailout still writes
    it, before its final "."), `queue run`.
    Must arrive: the first and the third, once each (the third on a new connection); the
    second is deferred, nothing uncertain; two connections and two logins in all.
    Exit code: 0."""
    set_account(home, fault.port, certs)
    ids = [enqueue(home, body_bytes=size) for size in (1000, 24_000_000, 1000)]
    fault.set_mode("drop_second_data")
    mark = fault.server.mark()
    stats = queue_run(home)
    assert stats["sent"] == 2 and stats["deferred"] == 1 and stats["uncertain"] == 0, stats
    assert stats["reconnects"] == 1 and stats["connections"] == 2, stats
    assert fault.connections(mark) == 2
    got = fault.server.store.wait_for_many([ids[0], ids[2]])
    assert all(m.copies == 1 for m in got.values())
    states = {k: v["state"] for k, v in messages(home).items()}
    assert states == {ids[0]: "sent", ids[1]: "deferred", ids[2]: "sent"}, states


# --- the breaker --------------------------------------------------------------------------------

def test_auth_535_pauses_the_account_after_one_login(fault, certs, home):
    """Server: the fault server refuses every login with "535 5.7.8 Username and Password not
    accepted." (mode auth_535).
    We run: two messages, then `queue run` three times.
    Must arrive: nothing; exactly ONE AUTH reached the server over the three runs (the first run
    pauses the account, the next two do not connect at all); `queue list` shows both messages
    still waiting (deferred to the pause's end), the account paused with the 535 as reason.
    Exit code: 0 for every run."""
    set_account(home, fault.port, certs)
    enqueue(home)
    enqueue(home)
    fault.set_mode("auth_535")
    mark = fault.server.mark()
    first = queue_run(home)
    assert first["pauses"] == 1 and first["deferred"] == 2 and first["connections"] == 0, first
    for _ in range(2):
        later = queue_run(home)
        assert later["attempts"] == 0 and later["open_failures"] == 0, later
    assert len(auth_commands(fault.server, mark)) == 1, auth_commands(fault.server, mark)
    assert fault.connections(mark) == 1
    listing = queue_list(home)
    assert [m["state"] for m in listing["messages"]] == ["deferred", "deferred"], listing
    note = account_note(home)
    assert note["paused"] is True and "535" in note["pause_reason"], note
    for m in listing["messages"]:
        assert m["next_attempt_at"] >= note["paused_until"], (m, note)
        assert "paused" in (m["held"] or ""), m
    text = mo(home, "queue", "list")
    assert text.rc == 0 and "paused until" in text.stdout, describe(text)
    assert PASSWORD not in text.output


def test_daily_limit_550_5_4_5_defers_and_pauses(fault, certs, home):
    """Server: the fault server answers MAIL FROM with Gmail's "550 5.4.5 Daily user sending
    limit exceeded." (mode mail_quota).
    We run: two messages, `queue run`, then `queue run` again.
    Must arrive: nothing; the 5xx is NOT a failure: both messages are deferred (the first with
    the 550 5.4.5 as last reply, the second without being offered), the account is paused with
    that reply as reason; only one MAIL FROM reached the server; the second run connects to
    nothing.
    Exit code: 0 both times."""
    set_account(home, fault.port, certs)
    enqueue(home)
    enqueue(home)
    fault.set_mode("mail_quota")
    mark = fault.server.mark()
    stats = queue_run(home)
    assert stats["pauses"] == 1 and stats["deferred"] == 2 and stats["failed"] == 0, stats
    wire = fault.server.wire_bytes(mark["events"], port=fault.port)
    assert wire.count(b"MAIL FROM:") == 1, wire.count(b"MAIL FROM:")
    ms = sorted(messages(home).values(), key=lambda m: m["id"])
    assert [m["state"] for m in ms] == ["deferred", "deferred"], ms
    assert ms[0]["last_code"] == 550 and "5.4.5" in ms[0]["last_reply"], ms[0]
    note = account_note(home)
    assert note["paused"] is True and "5.4.5" in note["pause_reason"], note
    again = queue_run(home)
    assert again["attempts"] == 0 and again["connections"] == 0, again


# --- shutdown ------------------------------------------------------------------------------------

def test_a_slow_provider_gets_its_outcomes_recorded_as_they_come(fault, certs, home):
    """Server: the fault server answering each final "." after 0.1 s (mode slow_data).
    We run: 30 messages queued, `queue run --connections 1` in the background (one batch of
    30 takes about 3 s); `queue list` after 1.5 s.
    Must hold: mid-batch, some messages are already recorded as sent while others are still
    being sent (outcomes are committed every 200 ms, not only at the batch's end, so a crash
    would resend at most that much); in the end all 30 are sent, each arrived once.
    Exit code: 0."""
    set_account(home, fault.port, certs)
    ids = [enqueue(home) for _ in range(30)]
    fault.set_mode("slow_data")
    snap = fault.server.store.snapshot()
    p = subprocess.Popen([BIN, "--home", home, "queue", "run", "--connections", "1", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    middle = [m["state"] for m in queue_list(home)["messages"]]
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, (p.returncode, out, err)
    assert middle.count("sent") >= 3 and middle.count("sending") >= 3, middle
    assert [(m["state"], m["attempts"]) for m in queue_list(home)["messages"]] == [
        ("sent", 1)] * 30
    fault.server.store.wait_for_many(ids)
    assert len(fault.server.store.new_since(snap)) == 30


def test_sigterm_finishes_the_message_in_flight_and_releases_the_rest(fault, certs, home):
    """Server: the fault server never answers MAIL FROM (mode stall_mail).
    We run: three messages, `queue run --timeout 4 --json` in the background, SIGTERM after
    1.5 s (while the first message waits for its MAIL reply).
    Must arrive: nothing; the run ends after the message in flight timed out (about 4 s): that
    one is deferred, the two not yet tried go back to "queued" untouched (no attempt counted).
    Exit code: 0, and the JSON says it stopped."""
    set_account(home, fault.port, certs)
    for _ in range(3):
        enqueue(home)
    fault.set_mode("stall_mail")
    p = subprocess.Popen([BIN, "--home", home, "queue", "run", "--timeout", "4", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, (p.returncode, out, err)
    result = json.loads(out)
    assert result["stopped"] is True, result
    stats = result["stats"]
    assert stats["attempts"] == 1 and stats["deferred"] == 1 and stats["released"] == 2, stats
    states = sorted((m["state"], m["attempts"]) for m in queue_list(home)["messages"])
    assert states == [("deferred", 1), ("queued", 0), ("queued", 0)], states
