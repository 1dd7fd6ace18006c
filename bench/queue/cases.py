#!/usr/bin/python3
"""cases.py - the queue benchmark's cases, run against smtp-sink; one JSON line per sample.

usage: cases.py --mailout BIN --tmp DIR --sink-port P --sink-log F [--pin-port P --pin-log F]
                --out RESULTS.jsonl [--quick] [options, see --help]

Why: bench/run.sh measures the SMTP engine alone (`mailout send --raw`); this measures the
queue around it, as a shop uses it: messages accepted durably (sendmail, HTTP API) and then
delivered by the worker. bench/queue.sh starts the sinks and calls this, then report.py.

Cases (each mailout sample interleaved with its peers, --repeat times):
  deliver   N × 2 KB queued first (HTTP API, 32 clients, not timed), then `mailout queue run
            --connections C` timed from start to exit (C = 1, 4), beside `smtp-source -d -sC`
            on the same sink and `mailout send --raw` (the engine alone, for reference).
            With --pin-port: the 1-connection rows again with a sink pinned to CPU 0 and the
            client on CPU 0 ("same") or CPU 1 ("cross"), as bench/run.sh does.
  sendmail  `mailout sendmail -t -i` one process per message (stdin: a 2 KB message), 1 and
            --concurrency at a time, with `serve --no-worker` running as in production (the
            message goes through its socket), beside msmtp and curl one process per message
            (to the sink). mailout's figure is "queued durably" (exit 0 = committed); the
            queue is then delivered (not timed) and the sink must count every message. Again
            without the service's socket (the fallback: each process queues by itself), for
            reference.
  api       wrk -t2 -c8 (or httpload.py if wrk is missing) POSTing ~2 KB JSON messages to
            `serve --no-worker`, then to `serve` with the worker delivering to the sink.
  memory    --mem-messages queued through the API, then `serve` (worker and HTTP) run with
            the account unreachable (a closed port) for a while, then delivering all of them
            to the sink; VmHWM of the serve process sampled from /proc every 0.2 s.
Checks (a failed check makes the sample ok=false, never averaged in): exit status 0;
mailout's --json stats; the sink's counter grew by exactly the messages sent; the queue's
state counts (read from mailout.db's queue_state_counts, read-only) match.

The accounts send without a login (`account set --no-login`): smtp-sink answers AUTH with
"250" (not 235), which mailout rightly treats as a refusal, so the sink runs with -a (no AUTH
offered), like a local relay.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import httpload  # noqa: E402
from measure import sink_count  # noqa: E402  (bench/measure.py)

SHOP = "a@example.test"
RCPT = "b@example.test"
HOST = "127.0.0.1"
CHILDREN = {}  # pid -> Popen of services still running (stopped on exit)


# --- processes -----------------------------------------------------------------------------

def stop_children(*_args):
    for p in list(CHILDREN.values()):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if _args:
        sys.exit(128 + _args[0])


def sendmail_argv(mailout, home):
    """The command PHP runs per message: mailout-sendmail (built beside mailout) when there."""
    small = os.path.join(os.path.dirname(mailout), "mailout-sendmail")
    if os.path.exists(small):
        return [small, "--home", home, "-t", "-i"]
    return [mailout, "--home", home, "sendmail", "-t", "-i"]


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the service exited (%s) before it listened" % proc.returncode)
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d after %.0f s" % (port, timeout_s))


def run_timed(argv, timeout_s, stdin_path=None, env=None):
    """Runs argv; returns (rc, stdout, stderr, wall s, CPU s of the child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, env=env,
                             start_new_session=True)
        if stdin_path:
            stdin.close()
        CHILDREN[p.pid] = p
        timer = threading.Timer(timeout_s, lambda: os.killpg(p.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
            CHILDREN.pop(p.pid, None)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), wall, ru.ru_utime + ru.ru_stime)


def run_each(make_argv, files, concurrency, timeout_s):
    """One process per file (stdin = the file), at most `concurrency` at once.
    Returns (failures, first error, wall s, CPU s summed over the processes)."""
    todo = list(files)
    running = {}
    fails, first_err, cpu = 0, None, 0.0
    deadline = time.monotonic() + timeout_s
    t0 = time.perf_counter()
    while todo or running:
        while todo and len(running) < concurrency:
            f = todo.pop(0)
            with open(f, "rb") as stdin:
                p = subprocess.Popen(make_argv(f), stdin=stdin, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE if first_err is None else
                                     subprocess.DEVNULL)
            running[p.pid] = p
        if time.monotonic() > deadline:
            for p in running.values():
                p.kill()
            return fails + len(running) + len(todo), "timed out", time.perf_counter() - t0, cpu
        pid, status, ru = os.wait4(-1, 0)
        p = running.pop(pid, None)
        if p is None:
            continue
        cpu += ru.ru_utime + ru.ru_stime
        rc = os.waitstatus_to_exitcode(status)
        p.returncode = rc
        if rc != 0:
            fails += 1
            if first_err is None and p.stderr is not None:
                first_err = "exit %d: %s" % (rc, p.stderr.read(300).decode("utf-8", "replace"))
        if p.stderr is not None:
            p.stderr.close()
    return fails, first_err, time.perf_counter() - t0, cpu


def vmhwm_mb(pid):
    """Peak resident memory of pid (VmHWM), MB (10^6 bytes); None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


# --- the bench ------------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.out = open(a.out, "a")
        self.failed = 0
        self.n_homes = 0

    def record(self, rec):
        rec.setdefault("ok", True)
        rec.setdefault("error", None)
        is_rate = not rec["case"].startswith("memory-") or rec["case"] == "memory-accept"
        if is_rate and rec.get("seconds") and rec.get("messages") and "per_second" not in rec:
            rec["per_second"] = rec["messages"] / rec["seconds"]
        if not rec["ok"]:
            self.failed += 1
            print("bench: FAILED %s / %s: %s" % (rec["case"], rec["tool"], rec["error"]),
                  file=sys.stderr)
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()

    def mo(self, home, *args, stdin_text=None, timeout_s=120):
        p = subprocess.run([self.a.mailout, "--home", home, *args],
                           input=(stdin_text or "").encode(), capture_output=True,
                           timeout=timeout_s)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    # --- data folders ---
    def make_home(self, port=None):
        self.n_homes += 1
        home = os.path.join(self.a.tmp, "home-%03d" % self.n_homes)
        # smtp-sink takes no AUTH: the account sends without a login, as to a local relay.
        rc, out, err = self.mo(home, "account", "set", "--email", SHOP, "--host", HOST, "--port",
                               str(port or self.a.sink_port), "--security", "none", "--no-login")
        if rc != 0:
            raise RuntimeError("account set failed (%d): %s%s" % (rc, out, err))
        return home

    def set_port(self, home, port):
        rc, out, err = self.mo(home, "account", "set", "--port", str(port))
        if rc != 0:
            raise RuntimeError("account set --port failed (%d): %s%s" % (rc, out, err))

    @staticmethod
    def counts(home):
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(home, "mailout.db"), uri=True,
                              timeout=10)
        try:
            return dict(con.execute("SELECT state, n FROM queue_state_counts").fetchall())
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return {}  # the queue's tables are made when it is first opened
            raise
        finally:
            con.close()

    @staticmethod
    def drop_home(home):
        subprocess.run(["rm", "-rf", home])

    def api_key(self, home):
        rc, out, err = self.mo(home, "apikey", "create", "bench-%d" % time.time_ns())
        if rc != 0:
            raise RuntimeError("apikey create failed: %s%s" % (out, err))
        return out.strip()

    def start_serve(self, home, *args, http_port=None, name="serve"):
        argv = [self.a.mailout, "--home", home, "serve", "--quiet"]
        argv += ["--http", "%s:%d" % (HOST, http_port)] if http_port else ["--no-http"]
        argv += list(args)
        log = open(os.path.join(self.a.tmp, "%s-%d.log" % (name, time.time_ns())), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
        log.close()
        CHILDREN[p.pid] = p
        if http_port:
            wait_port(http_port, p)
        return p

    @staticmethod
    def stop_serve(p, timeout_s=120):
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
        CHILDREN.pop(p.pid, None)
        return rc

    def queue_via_api(self, home, n, prefix, clients=32):
        """Queues n 2 KB messages through POST /api/v1/messages/raw; returns
        (the client's result, VmHWM of that serve in MB)."""
        key = self.api_key(home)
        port = free_port()
        before = self.counts(home).get("queued", 0)
        p = self.start_serve(home, "--no-worker", http_port=port, name="accept")
        args = argparse.Namespace(port=port, key=key, count=n, clients=clients,
                                  raw=self.a.msg_file, json=False, prefix=prefix)
        res = asyncio.run(httpload.run(args))
        hwm = vmhwm_mb(p.pid)
        rc = self.stop_serve(p)
        queued = self.counts(home).get("queued", 0) - before
        if rc != 0 or res["failed"] or res["accepted"] != n or queued != n:
            raise RuntimeError("queueing %d messages failed: serve exit %s, %s, %d queued"
                               % (n, rc, res, queued))
        return res, hwm

    def wait_sink(self, log, want, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while True:
            n = sink_count(log)
            if n >= want or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    # --- (a) queue -> delivered ---
    def case_deliver(self, rep, conns, pin=None):
        a = self.a
        n = a.messages
        port, log = (a.pin_port, a.pin_log) if pin is not None else (a.sink_port, a.sink_log)
        label = "" if pin is None else ("-samecpu" if pin == 0 else "-crosscpu")
        case = "deliver-%dconn%s" % (conns, label)
        taskset = ["taskset", "-c", str(pin)] if pin is not None else []
        home = self.make_home(port)
        qres, _ = self.queue_via_api(home, n, "d%d%s-%d" % (conns, label, rep))
        before = sink_count(log)
        rc, out, err, wall, cpu = run_timed(
            taskset + [a.mailout, "--home", home, "queue", "run", "--connections", str(conns),
                       "--json"], a.timeout)
        rec = {"case": case, "tool": "mailout queue run", "rep": rep, "messages": n,
               "seconds": wall, "cpu_s": cpu, "queue_per_second": qres["per_second"]}
        try:
            j = json.loads(out)
            stats = j["stats"]
        except (ValueError, KeyError):
            stats = None
        got = self.wait_sink(log, before + n) - before
        left = self.counts(home)
        if rc != 0 or stats is None or stats["sent"] != n:
            rec.update(ok=False, error="exit %d, stats %s: %s" % (rc, stats, err[-300:]))
        elif got != n:
            rec.update(ok=False, error="the sink counted %d of %d" % (got, n))
        elif left.get("sent") != n:
            rec.update(ok=False, error="the queue says %s" % left)
        else:
            rec["connections_opened"] = stats["connections"]
        self.record(rec)
        self.drop_home(home)

        before = sink_count(log)
        rc, out, err, wall, cpu = run_timed(
            taskset + ["smtp-source", "-d", "-s%d" % conns, "-m", str(n), "-M", "localhost",
                       "-f", SHOP, "-t", RCPT, "-F", a.msg_lf, "%s:%d" % (HOST, port)], a.timeout)
        got = self.wait_sink(log, before + n) - before
        rec = {"case": case, "tool": "smtp-source -d -s%d" % conns, "rep": rep, "messages": n,
               "seconds": wall, "cpu_s": cpu}
        if rc != 0 or got != n:
            rec.update(ok=False, error="exit %d, the sink counted %d of %d: %s"
                       % (rc, got, n, err[-300:]))
        self.record(rec)

        if pin is None:
            before = sink_count(log)
            rc, out, err, wall, cpu = run_timed(
                [a.mailout, "send", "--host", HOST, "--port", str(port), "--security", "none",
                 "--from", SHOP, "--to", RCPT, "--raw", a.msgs_dir, "--connections", str(conns),
                 "--json"], a.timeout)
            got = self.wait_sink(log, before + n) - before
            rec = {"case": case, "tool": "mailout send --raw (engine)", "rep": rep,
                   "messages": n, "seconds": wall, "cpu_s": cpu}
            try:
                sent = json.loads(out).get("sent")
            except ValueError:
                sent = None
            if rc != 0 or sent != n or got != n:
                rec.update(ok=False, error="exit %d, sent %s, the sink counted %d of %d: %s"
                           % (rc, sent, got, n, err[-300:]))
            self.record(rec)

    # --- (b) one process per message ---
    def case_sendmail(self, rep, conc):
        a = self.a
        case = "sendmail-%dproc" % conc
        files = a.files[:a.sendmail_messages]
        home = self.make_home()
        m = len(files)
        # As in production the service runs meanwhile (here without delivering): it keeps the
        # database open, so a sendmail process is never its last user (which would checkpoint
        # the WAL on close, and the next one rebuild the WAL index by reading the whole WAL).
        service = self.start_serve(home, "--no-worker", name="sendmail")
        fails, first_err, wall, cpu = run_each(
            lambda f: sendmail_argv(a.mailout, home), files, conc, a.timeout)
        rc = self.stop_serve(service)
        if rc != 0:
            fails, first_err = fails + 1, first_err or "serve --no-worker exited %d" % rc
        queued = self.counts(home).get("queued", 0)
        rec = {"case": case, "tool": "mailout sendmail -t -i", "rep": rep, "messages": m,
               "seconds": wall, "cpu_s": cpu, "concurrency": conc}
        if fails or queued != m:
            rec.update(ok=False, error="%d failed (%s), %d queued" % (fails, first_err, queued))
        else:
            # Really deliverable: send them (not timed) and count at the sink.
            before = sink_count(a.sink_log)
            rc, out, err, _w, _c = run_timed([a.mailout, "--home", home, "queue", "run",
                                              "--connections", "4", "--json"], a.timeout)
            got = self.wait_sink(a.sink_log, before + m) - before
            if rc != 0 or got != m:
                rec.update(ok=False, error="delivering the queued messages: exit %d, the sink "
                           "counted %d of %d" % (rc, got, m))
        self.record(rec)
        self.drop_home(home)

        # Without the service, mailout-sendmail runs `mailout sendmail`, which queues by itself
        # (the fallback; for reference). A second connection keeps the database open here too.
        home = self.make_home()
        keeper = self.start_serve(home, "--no-worker", name="sendmail-keeper")
        sock = os.path.join(home, "sendmail.sock")
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        os.unlink(sock)  # the service stays (the database open), its socket is gone
        fails, first_err, wall, cpu = run_each(
            lambda f: sendmail_argv(a.mailout, home), files, conc, a.timeout)
        self.stop_serve(keeper)
        queued = self.counts(home).get("queued", 0)
        rec = {"case": case, "tool": "mailout sendmail -t -i, no service", "rep": rep,
               "messages": m, "seconds": wall, "cpu_s": cpu, "concurrency": conc}
        if fails or queued != m:
            rec.update(ok=False, error="%d failed (%s), %d queued" % (fails, first_err, queued))
        self.record(rec)
        self.drop_home(home)

        peer_files = a.files[:a.peer_messages]
        k = len(peer_files)
        peers = [
            ("msmtp (1 process/msg)", lambda f: [
                "msmtp", "-C", "/dev/null", "--host=" + HOST, "--port=%d" % a.sink_port,
                "--domain=localhost", "--from=" + SHOP, "--auth=off", "--tls=off",
                "--timeout=30", RCPT]),
            ("curl (1 process/msg)", lambda f: [
                "curl", "-sS", "--max-time", "30", "smtp://%s:%d/localhost" % (HOST, a.sink_port),
                "--mail-from", SHOP, "--mail-rcpt", RCPT, "--upload-file", f]),
        ]
        for tool, make in peers:
            before = sink_count(a.sink_log)
            fails, first_err, wall, cpu = run_each(make, peer_files, conc, a.timeout)
            got = self.wait_sink(a.sink_log, before + k) - before
            rec = {"case": case, "tool": tool, "rep": rep, "messages": k, "seconds": wall,
                   "cpu_s": cpu, "concurrency": conc}
            if fails or got != k:
                rec.update(ok=False, error="%d failed (%s), the sink counted %d of %d"
                           % (fails, first_err, got, k))
            self.record(rec)

    # --- (c) the HTTP API ---
    def case_api(self, rep, with_worker):
        a = self.a
        case = "api-8clients" + ("-delivering" if with_worker else "")
        home = self.make_home()
        key = self.api_key(home)
        port = free_port()
        p = self.start_serve(home, *([] if with_worker else ["--no-worker"]), http_port=port,
                             name="api")
        sink_before = sink_count(a.sink_log)
        rec = {"case": case, "tool": "wrk -t2 -c8" if a.wrk else "httpload.py, 8 clients",
               "rep": rep}
        if a.wrk:
            env = dict(os.environ, BENCH_API_KEY=key)
            rc, out, err, wall, cpu = run_timed(
                [a.wrk, "-t2", "-c8", "-d%ds" % a.api_seconds, "--timeout", "10s", "-s",
                 os.path.join(HERE, "post.lua"), "http://%s:%d/api/v1/messages" % (HOST, port)],
                a.api_seconds + 60, env=env)
            line = [x for x in out.splitlines() if x.startswith("WRKRESULT ")]
            res = json.loads(line[-1][len("WRKRESULT "):]) if line else None
            if rc != 0 or res is None:
                rec.update(ok=False, error="wrk exit %d: %s %s" % (rc, out[-300:], err[-300:]))
                res = {"accepted": 0, "other": 0, "errors": 0, "duration_us": 1}
            secs = res["duration_us"] / 1e6
            accepted, bad = res["accepted"], res["other"] + res["errors"]
            rec.update(p50_ms=res.get("p50_ms"), p99_ms=res.get("p99_ms"))
        else:
            n = a.api_seconds * 6000
            args = argparse.Namespace(port=port, key=key, count=n, clients=8, raw=None,
                                      json=True, prefix="api")
            res = asyncio.run(httpload.run(args))
            secs, accepted, bad = res["seconds"], res["accepted"], res["failed"]
            rec.update(p50_ms=res["latency_ms"]["p50"], p99_ms=res["latency_ms"]["p99"])
        delivered_in_window = sink_count(a.sink_log) - sink_before
        rec.update(messages=accepted, seconds=secs, rejected=bad)
        if with_worker:
            rec["delivered_per_second_during"] = delivered_in_window / secs
            # Drain: everything accepted must reach the sink.
            t0 = time.monotonic()
            deadline = t0 + a.timeout
            while time.monotonic() < deadline:
                c = self.counts(home)
                if c.get("queued", 0) + c.get("sending", 0) + c.get("deferred", 0) == 0:
                    break
                time.sleep(0.2)
            rec["drain_seconds"] = time.monotonic() - t0
        rc = self.stop_serve(p)
        c = self.counts(home)
        total = sum(c.values())
        if rec.get("ok", True):
            if rc != 0 or bad:
                rec.update(ok=False, error="serve exit %d, %d requests not answered 202"
                           % (rc, bad))
            elif not accepted <= total <= accepted + 8:  # wrk does not count the last in flight
                rec.update(ok=False, error="%d answered 202 but %d in the queue"
                           % (accepted, total))
            elif with_worker:
                got = self.wait_sink(a.sink_log, sink_before + total) - sink_before
                if c.get("sent") != total or got != total:
                    rec.update(ok=False, error="queue %s, the sink counted %d of %d"
                               % (c, got, total))
        self.record(rec)
        self.drop_home(home)

    # --- (d) memory ---
    def case_memory(self):
        a = self.a
        n = a.mem_messages
        home = self.make_home()
        qres, hwm_accept = self.queue_via_api(home, n, "mem")
        self.record({"case": "memory-accept", "tool": "mailout serve --no-worker", "rep": 1,
                     "messages": n, "peak_mb": hwm_accept, "seconds": qres["seconds"],
                     "ok": hwm_accept is not None})

        def watch(p, until, timeout_s, poke=None):
            peak, t0 = 0.0, time.monotonic()
            while time.monotonic() - t0 < timeout_s and p.poll() is None:
                v = vmhwm_mb(p.pid)
                if v is not None:
                    peak = max(peak, v)
                if poke is not None:
                    poke()
                if until():
                    break
                time.sleep(0.2)
            v = vmhwm_mb(p.pid)
            return max(peak, v or 0.0), time.monotonic() - t0

        # The account unreachable: the worker claims, fails to connect, defers; mail waits.
        closed = free_port()
        self.set_port(home, closed)
        p = self.start_serve(home, http_port=free_port(), name="mem-unreachable")
        peak, secs = watch(p, lambda: False, a.mem_idle_seconds)
        rc = self.stop_serve(p)
        c = self.counts(home)
        rec = {"case": "memory-unreachable", "tool": "mailout serve", "rep": 1, "messages": n,
               "peak_mb": peak, "seconds": secs, "queue": c}
        if rc != 0 or sum(c.values()) != n:
            rec.update(ok=False, error="serve exit %d, queue %s" % (rc, c))
        self.record(rec)

        # Delivering all of them to the sink, with API reads going on.
        rc, out, err = self.mo(home, "queue", "retry", "--all-deferred")
        self.set_port(home, a.sink_port)
        key = self.api_key(home)
        port = free_port()
        before = sink_count(a.sink_log)
        p = self.start_serve(home, http_port=port, name="mem-deliver")
        reads = {"n": 0, "bad": 0}

        def poke():
            if reads["n"] >= 2000:
                return
            try:
                import http.client
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                for i in range(10):
                    conn.request("GET", "/api/v1/messages/%d" % (1 + (reads["n"] * 37) % n),
                                 headers={"Authorization": "Bearer " + key})
                    r = conn.getresponse()
                    r.read()
                    reads["n"] += 1
                    reads["bad"] += r.status != 200
                conn.close()
            except OSError:
                reads["bad"] += 1

        def all_sent():
            return self.counts(home).get("sent", 0) >= n

        peak, secs = watch(p, all_sent, a.timeout, poke)
        rc = self.stop_serve(p)
        got = self.wait_sink(a.sink_log, before + n) - before
        c = self.counts(home)
        rec = {"case": "memory-deliver", "tool": "mailout serve", "rep": 1, "messages": n,
               "peak_mb": peak, "seconds": secs, "api_reads": reads["n"], "queue": c}
        if rc != 0 or got != n or c.get("sent") != n or reads["bad"]:
            rec.update(ok=False, error="serve exit %d, the sink counted %d of %d, queue %s, "
                       "%d bad reads" % (rc, got, n, c, reads["bad"]))
        self.record(rec)
        self.drop_home(home)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mailout", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--sink-port", type=int, required=True)
    ap.add_argument("--sink-log", required=True)
    ap.add_argument("--pin-port", type=int)
    ap.add_argument("--pin-log")
    ap.add_argument("--out", required=True)
    ap.add_argument("--msgs-dir", required=True, help="N files of 2 KB (CRLF)")
    ap.add_argument("--msg-lf", required=True, help="one of them with LF ends, for smtp-source")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sendmail-messages", type=int, default=1000)
    ap.add_argument("--peer-messages", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--api-seconds", type=int, default=8)
    ap.add_argument("--mem-messages", type=int, default=100000)
    ap.add_argument("--mem-idle-seconds", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--wrk", default="")
    ap.add_argument("--cases", default="deliver,sendmail,api,memory")
    a = ap.parse_args()
    a.files = sorted(os.path.join(a.msgs_dir, f) for f in os.listdir(a.msgs_dir))
    a.msg_file = a.files[0]
    if len(a.files) < max(a.messages, a.sendmail_messages, a.peer_messages):
        ap.error("--msgs-dir holds fewer files than the cases need")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_children)
    b = Bench(a)
    cases = a.cases.split(",")
    try:
        for rep in range(1, a.repeat + 1):
            if "deliver" in cases:
                print("bench: rep %d: %d messages queued, then delivered" % (rep, a.messages),
                      file=sys.stderr)
                for conns in (1, 4):
                    b.case_deliver(rep, conns)
                if a.pin_port:
                    b.case_deliver(rep, 1, pin=0)
                    b.case_deliver(rep, 1, pin=1)
            if "sendmail" in cases:
                print("bench: rep %d: one process per message" % rep, file=sys.stderr)
                for conc in (1, a.concurrency):
                    b.case_sendmail(rep, conc)
            if "api" in cases:
                print("bench: rep %d: HTTP API, 8 clients, %d s" % (rep, a.api_seconds),
                      file=sys.stderr)
                b.case_api(rep, False)
                b.case_api(rep, True)
        if "memory" in cases:
            print("bench: memory with %d messages queued" % a.mem_messages, file=sys.stderr)
            b.case_memory()
    finally:
        stop_children()
    sys.exit(1 if b.failed else 0)


if __name__ == "__main__":
    main()
