"""Crash test of the durable queue: `mailout serve` killed with SIGKILL again and again in the
middle of delivery loses nothing, and sends twice only what it marked uncertain.

The promise under test (src/queue/queue.h, points 1 and 4): "queued" means committed; a claim
whose worker died is in flight and becomes "uncertain", resent only after a grace period or at
once when an admin says so; nothing else is ever sent twice, and nothing accepted is ever lost.

How it runs (one test; 5,000 messages take about 15 s on 2 cores):
  1. Accepting: `serve --no-worker --http` takes most messages through POST
     /api/v1/messages/raw (8 concurrent keep-alive clients, an API key from `apikey create`)
     while 4 threads run `mailout sendmail -t -i` one process per message for every 10th.
     A Message-ID counts as accepted only after its 202 or its exit 0.
  2. Delivering: `serve --no-http --lease 3 --uncertain-grace 2` delivers to aiosmtpd; at
     random moments while the server's count of received messages grows, the test sends
     SIGKILL, waits until the dead service's claims are past their lease (3 s), and starts the
     service again, which recovers them as uncertain.
  3. Draining: the service resends the uncertain messages by itself once their grace period
     (2 s) is over, and runs until nothing is queued, deferred, sending or uncertain; then
     SIGTERM.
The short lease and grace are the service's own options (the defaults are 300 s and 30 min);
the test touches neither the database nor the queue by hand.

Environment: MAILOUT_CRASH_MESSAGES (default 5000), MAILOUT_CRASH_KILLS (default 5),
MAILOUT_CRASH_SEED (the random kill moments; printed, so a failure can be replayed).
The module is skipped when the binary does not exist.
"""

import concurrent.futures
import email.parser
import email.policy
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid

import pytest

from harness import netutil, procs
from harness.mailout import describe, mailout_bin, run_mailout
from harness.servers import USERS

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
PASSWORD = USERS[SHOP]

N_MESSAGES = int(os.environ.get("MAILOUT_CRASH_MESSAGES") or 5000)
N_KILLS = int(os.environ.get("MAILOUT_CRASH_KILLS") or 5)
SEED = int(os.environ.get("MAILOUT_CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
HTTP_CLIENTS = 8
SENDMAIL_EVERY = 10      # every 10th message goes through `mailout sendmail`
SENDMAIL_THREADS = 4
KILL_DELAY_MAX_S = 0.05  # after the server's count reached the kill's mark (~1 batch)
STEP_TIMEOUT_S = 60      # delivery must make progress within this after each start
DRAIN_TIMEOUT_S = 90
LIST_LIMIT = 10000
LEASE_S = 3              # serve --lease: a dead service's claims are recovered after this
GRACE_S = 2              # serve --uncertain-grace: uncertain messages are resent after this
DELIVER_ARGS = ["--no-http", "--lease", str(LEASE_S), "--uncertain-grace", str(GRACE_S)]       # `queue list --limit` maximum; we page with --before beyond it


# --- mailout --------------------------------------------------------------------------------

def mo(home_dir, *args, stdin_text=None, password=None, timeout_s=120):
    return run_mailout(["--home", home_dir, *args], password=password, stdin_text=stdin_text,
                       timeout_s=timeout_s)


def queue_ids(home_dir, state, limit=None):
    """{queue id: Message-ID} of the messages in state, from `queue list --state S --json`."""
    out = {}
    before = None
    while True:
        args = ["queue", "list", "--state", state, "--json", "--limit",
                str(min(limit or LIST_LIMIT, LIST_LIMIT))]
        if before is not None:
            args += ["--before", str(before)]
        r = mo(home_dir, *args)
        assert r.rc == 0 and r.json["ok"], describe(r)
        for m in r.json["messages"]:
            out[m["id"]] = m["message_id"]
        before = r.json["next_before"]
        if before is None or (limit is not None and len(out) >= limit):
            return out


def attempt_results(home_dir, queue_id):
    r = mo(home_dir, "queue", "show", str(queue_id), "--json")
    assert r.rc == 0, describe(r)
    return [a["result"] for a in r.json["message"]["attempt_log"]]


class Service:
    """One `mailout serve` process; its log goes to the run directory."""

    def __init__(self, run_dir, home_dir, name, args):
        log = os.path.join(run_dir.sub("crash"), name + ".log")
        self.proc = procs.ManagedProcess("mailout-" + name, [BIN, "--home", home_dir, "serve",
                                                             *args], log, run_dir)
        self.proc.start(ready_prefix=None)

    def kill9(self):
        self.proc.proc.send_signal(signal.SIGKILL)
        rc = self.proc.proc.wait(30)
        self.proc.stop()  # forget the cleanup; nothing is left to stop
        return rc

    def terminate(self, timeout_s=60):
        """SIGTERM (finish what is in flight, stop); returns the exit code."""
        self.proc.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.proc.wait(timeout_s)
        finally:
            self.proc.stop()
        return rc

    def log_tail(self):
        return self.proc.log_tail()


# --- messages and the server's store ------------------------------------------------------------

def make_message(i, token):
    """Message i: (RFC 5322 text with LF line ends, Message-ID, recipient)."""
    msgid = "%d.%s@crash.test" % (i, token)
    rcpt = "c%d-%s@example.org" % (i, token)
    body = "".join("line %02d of message %d: the queue must not lose me.\n" % (n, i)
                   for n in range(16))
    text = ("From: Shop <%s>\nTo: %s\nSubject: crash %d %s\nMessage-ID: <%s>\n"
            "Date: Thu, 26 Nov 2026 05:00:00 +0000\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n%s"
            % (SHOP, rcpt, i, token, msgid, body))
    return text, msgid, rcpt


class Received:
    """What aiosmtpd stored since the test began (its .eml + .json pairs)."""

    def __init__(self, server):
        self.dir = server.store.dir
        self.baseline = set(self._names())

    def _names(self):
        try:
            return [n[:-5] for n in os.listdir(self.dir) if n.endswith(".json")]
        except FileNotFoundError:
            return []

    def count(self):
        return sum(1 for n in self._names() if n not in self.baseline)

    def messages(self, token):
        """[(Message-ID, parsed headers, envelope)] of this run's messages, one per copy."""
        parser = email.parser.BytesHeaderParser(policy=email.policy.default)
        out = []
        for n in sorted(set(self._names()) - self.baseline):
            base = os.path.join(self.dir, n)
            with open(base + ".json", encoding="utf-8") as f:
                meta = json.load(f)
            with open(base + ".eml", "rb") as f:
                head = f.read(16384).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            h = parser.parsebytes(head)
            msgid = (h["Message-ID"] or "").strip().strip("<>")
            if msgid.endswith("." + token + "@crash.test"):
                out.append((msgid, h, meta))
        return out

    def wait_until(self, predicate, what, timeout_s, service=None):
        deadline = time.monotonic() + timeout_s
        while True:
            n = self.count()
            if predicate(n):
                return n
            if service is not None and not service.proc.alive():
                raise AssertionError("the service died while waiting for %s (%d received)\n%s"
                                     % (what, n, service.log_tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%s: not within %d s (%d received)\n%s"
                                     % (what, timeout_s, n, service.log_tail() if service else ""))
            time.sleep(0.02)


# --- the phases -------------------------------------------------------------------------------

def accept_all(run_dir, home_dir, n, token):
    """Queues n messages through the API and sendmail at once; returns {Message-ID: i}."""
    r = mo(home_dir, "apikey", "create", "crash")
    assert r.rc == 0, describe(r)
    key = r.stdout.strip()
    port = netutil.free_port()
    service = Service(run_dir, home_dir, "accept",
                      ["--no-worker", "--http", "127.0.0.1:%d" % port])
    netutil.wait_for_port(port, alive=service.proc.alive)
    accepted, problems = {}, []
    lock = threading.Lock()
    via_sendmail = [i for i in range(n) if i % SENDMAIL_EVERY == 0]
    via_api = [i for i in range(n) if i % SENDMAIL_EVERY != 0]

    def api_client(items):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in items:
                text, msgid, _rcpt = make_message(i, token)
                conn.request("POST", "/api/v1/messages/raw", body=text.encode("ascii"),
                             headers={"Authorization": "Bearer " + key,
                                      "Content-Type": "message/rfc822"})
                resp = conn.getresponse()
                body = resp.read()
                with lock:
                    if resp.status == 202 and json.loads(body)["message_id"] == msgid:
                        accepted[msgid] = i
                    else:
                        problems.append(("api", i, resp.status, body[:300]))
        finally:
            conn.close()

    def sendmail_client(items):
        for i in items:
            text, msgid, _rcpt = make_message(i, token)
            p = subprocess.run([BIN, "--home", home_dir, "sendmail", "-t", "-i"],
                               input=text.encode("ascii"), capture_output=True, timeout=60)
            with lock:
                if p.returncode == 0:
                    accepted[msgid] = i
                else:
                    problems.append(("sendmail", i, p.returncode, p.stderr[:300]))

    threads = [threading.Thread(target=api_client, args=(via_api[k::HTTP_CLIENTS],))
               for k in range(HTTP_CLIENTS)]
    threads += [threading.Thread(target=sendmail_client, args=(via_sendmail[k::SENDMAIL_THREADS],))
                for k in range(SENDMAIL_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rc = service.terminate()
    assert rc == 0, "serve --no-worker exited %s\n%s" % (rc, service.log_tail())
    assert not problems, "%d messages were not accepted, e.g. %r" % (len(problems), problems[:3])
    return accepted


def test_sigkill_during_delivery_loses_nothing(run_dir, aiosmtpd, certs, tmp_path):
    """Server: aiosmtpd's STARTTLS listener (AUTH with shop@example.test), behaving; it stores
    every transaction it accepts, so a message sent twice is there twice.
    We run: account set (starttls, the run's CA); N (default 5,000) messages with unique
    Message-IDs queued through the API (202) and `sendmail -t -i` (exit 0); `serve --no-http`
    killed with SIGKILL at random moments while its deliveries go on, K (default 5) times, and
    started again each time once its claims' 3 s lease ran out (after each start: every claim
    of the dead service must be recorded as an "uncertain" attempt; the service resends them
    after its 2 s grace); then it runs until nothing waits, and SIGTERM.
    Must arrive: every accepted Message-ID at least once, to its own recipient, from
    shop@example.test (read back with Python's email parser); nothing that was not accepted;
    every Message-ID that arrived more than once was marked uncertain (listed as uncertain
    after a restart, and "uncertain" in its attempt log). The queue ends with every message
    sent: nothing queued, deferred, sending, uncertain or failed. The server's count grew
    before every kill.
    Exit code: 0 for every command; 0 for `serve` after SIGTERM."""
    t_start = time.monotonic()
    token = uuid.uuid4().hex[:10]
    rng = random.Random(SEED)
    home_dir = str(tmp_path / "home")
    print("\ncrash test: %d messages, %d kills, seed %d (MAILOUT_CRASH_SEED)"
          % (N_MESSAGES, N_KILLS, SEED))
    r = mo(home_dir, "account", "set", "--email", SHOP, "--username", SHOP, "--host", "localhost",
           "--port", str(aiosmtpd.port("starttls")), "--security", "starttls", "--ca-file",
           certs.ca_file, "--json", password=PASSWORD)
    assert r.rc == 0, "account set failed\n%s" % describe(r)

    # 1. accepting
    accepted = accept_all(run_dir, home_dir, N_MESSAGES, token)
    assert len(accepted) == N_MESSAGES
    queued = queue_ids(home_dir, "queued")
    assert sorted(queued.values()) == sorted(accepted), "the queue does not hold what was accepted"
    t_accepted = time.monotonic()
    print("accepted %d messages in %.1f s" % (len(accepted), t_accepted - t_start))

    # 2. delivering, with kills
    received = Received(aiosmtpd)
    ever_uncertain = {}  # queue id -> Message-ID
    kills = []
    service = Service(run_dir, home_dir, "deliver-0", DELIVER_ARGS)
    at_start = 0
    for k in range(1, N_KILLS + 1):
        # Spread the kills over the first ~70 % of the deliveries (duplicates count too).
        mark = at_start + max(1, int(rng.uniform(0.5, 1.0) * N_MESSAGES / (N_KILLS + 2)))
        received.wait_until(lambda n, mark=mark: n >= mark,
                            "kill %d: the server's count to reach %d (if everything but the "
                            "uncertain was delivered already, raise MAILOUT_CRASH_MESSAGES)"
                            % (k, mark),
                            STEP_TIMEOUT_S, service)
        time.sleep(rng.uniform(0, KILL_DELAY_MAX_S))
        rc = service.kill9()
        assert rc == -signal.SIGKILL, "serve ended by itself (%s) before kill %d\n%s" % (
            rc, k, service.log_tail())
        at_kill = received.count()
        in_flight = queue_ids(home_dir, "sending")
        time.sleep(LEASE_S + 0.5)  # the dead service's claims are past their lease now
        service = Service(run_dir, home_dir, "deliver-%d" % k, DELIVER_ARGS)
        # The new worker recovers the dead one's claims as uncertain (an attempt in their log,
        # checked after the last kill) and resends them after the grace period.
        ever_uncertain.update(in_flight)
        uncertain = queue_ids(home_dir, "uncertain")
        at_start = received.count()
        kills.append({"kill": k, "received_at_kill": at_kill, "in_flight": len(in_flight),
                      "uncertain": len(uncertain)})
        print("kill %d: %d received at the kill, %d in flight -> uncertain"
              % (k, at_kill, len(in_flight)))
    # Every claim of a killed service was recorded as an uncertain attempt (its log keeps it);
    # the last restart's recovery may still be under way.
    not_recovered = sorted(ever_uncertain)
    deadline = time.monotonic() + 20
    while not_recovered and time.monotonic() < deadline:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            logs = list(pool.map(lambda q: (q, attempt_results(home_dir, q)), not_recovered))
        not_recovered = [q for q, results in logs if "uncertain" not in results]
        if not_recovered:
            time.sleep(0.2)
    assert not not_recovered, (
        "%d messages were in flight at a kill but were not recorded as uncertain after the "
        "restart, e.g. %s" % (len(not_recovered), not_recovered[:5]))
    counts = [kl["received_at_kill"] for kl in kills]
    assert all(b > a for a, b in zip([0] + counts, counts)), (
        "the server's count did not grow between kills: %s" % counts)
    assert any(kl["in_flight"] > 0 for kl in kills), (
        "no kill caught a message in flight: the test proved nothing about recovery (%s)" % kills)

    # 3. draining: the service resends the uncertain messages once their grace is over.
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        uncertain = queue_ids(home_dir, "uncertain")
        ever_uncertain.update(uncertain)
        waiting = {s: queue_ids(home_dir, s, limit=1) for s in ("queued", "deferred", "sending")}
        if not uncertain and not any(waiting.values()):
            break
        assert service.proc.alive(), "serve died while draining\n%s" % service.log_tail()
        assert time.monotonic() < deadline, (
            "the queue did not drain within %d s: %s\n%s"
            % (DRAIN_TIMEOUT_S, {s: len(v) for s, v in waiting.items()}, service.log_tail()))
        time.sleep(0.3)
    rc = service.terminate()
    assert rc == 0, "serve exited %s after SIGTERM\n%s" % (rc, service.log_tail())
    t_drained = time.monotonic()

    # What the queue says: everything sent, nothing failed.
    sent = queue_ids(home_dir, "sent")
    assert sorted(sent.values()) == sorted(accepted), (
        "%d accepted messages are not sent" % len(set(accepted) - set(sent.values())))
    assert not queue_ids(home_dir, "failed", limit=1), "some messages failed"

    # What the server got.
    copies = {}
    for msgid, h, meta in received.messages(token):
        i = accepted.get(msgid)
        assert i is not None, "%s arrived but was never accepted" % msgid
        _text, _msgid, rcpt = make_message(i, token)
        assert meta["mail_from"] == SHOP and meta["rcpt_tos"] == [rcpt], (msgid, meta)
        assert h["Subject"] == "crash %d %s" % (i, token), (msgid, h["Subject"])
        copies[msgid] = copies.get(msgid, 0) + 1
    missing = sorted(set(accepted) - set(copies))
    assert not missing, "%d accepted messages never arrived (lost), e.g. %s" % (
        len(missing), missing[:5])
    duplicates = {m: c for m, c in copies.items() if c > 1}
    uncertain_msgids = set(ever_uncertain.values())
    not_uncertain = sorted(set(duplicates) - uncertain_msgids)
    assert not not_uncertain, (
        "%d messages arrived more than once without ever being marked uncertain, e.g. %s"
        % (len(not_uncertain), not_uncertain[:5]))
    by_msgid = {v: k for k, v in sent.items()}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        logs = pool.map(lambda m: (m, attempt_results(home_dir, by_msgid[m])), sorted(duplicates))
        for msgid, results in logs:
            assert "uncertain" in results, (
                "%s arrived twice; its attempt log does not say uncertain: %s" % (msgid, results))
    print("done in %.1f s (accepting %.1f s, delivering with %d kills %.1f s): %d messages, "
          "%d marked uncertain, %d arrived twice or more (%d extra copies)"
          % (time.monotonic() - t_start, t_accepted - t_start, N_KILLS, t_drained - t_accepted,
             len(accepted), len(uncertain_msgids), len(duplicates),
             sum(duplicates.values()) - len(duplicates)))
