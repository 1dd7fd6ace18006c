"""Child processes and the run directory, cleaned up however the test run ends.

Why: the servers must stop at the end of a run, also when a test fails, on Ctrl-C, on
SIGTERM/SIGHUP, and as far as possible after a crash. Three layers do that:
  1. the pytest session fixtures stop what they started (normal end, failures, Ctrl-C);
  2. an atexit hook stops whatever is still registered (errors during fixture setup);
  3. the next run reaps what a killed run (SIGKILL) left behind: every run directory records
     its owner pid and its children, and a run whose owner is gone is stopped and removed.
Children run in their own session (process group), so a Ctrl-C in the terminal reaches only
pytest, which then stops them in order; they are stopped by their process group id.

Leaves out: cgroups or namespaces.
"""

import atexit
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time

RUN_DIR_PREFIX = "mailout-it-"

_cleanups = []  # list of [name, callable]; entries set to None once run
_cleanup_lock = threading.Lock()


def register_cleanup(name, fn):
    """Remember fn to be called at exit if nobody called it before. Returns a handle."""
    entry = [name, fn]
    with _cleanup_lock:
        _cleanups.append(entry)
    return entry


def run_cleanup(entry):
    """Run a registered cleanup now (once)."""
    with _cleanup_lock:
        fn = entry[1]
        entry[1] = None
    if fn is not None:
        fn()


@atexit.register
def _run_all_cleanups():
    for entry in reversed(list(_cleanups)):
        try:
            run_cleanup(entry)
        except Exception as e:  # keep going: the others must stop too
            print("cleanup %s failed: %s" % (entry[0], e))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class RunDir:
    """/tmp/mailout-it-XXXXXX: everything one run writes (certs, configs, spools, logs).

    Mode 0755, because Postfix and Dovecot daemons running as their own users must reach
    files below it (pytest's own tmp dirs are 0700).
    """

    def __init__(self, keep=False):
        self.path = tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir="/tmp")
        os.chmod(self.path, 0o755)
        self.keep = keep
        self._write_owner()

    def _write_owner(self):
        with open(os.path.join(self.path, "owner.json"), "w") as f:
            json.dump({"pid": os.getpid(), "started": time.time(), "keep": self.keep}, f)

    def sub(self, *parts, mode=0o755):
        p = os.path.join(self.path, *parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def record_child(self, pid, match):
        """Note a child for the reaper: pid, and a string its /proc cmdline must contain."""
        with open(os.path.join(self.path, "children.jsonl"), "a") as f:
            f.write(json.dumps({"pid": pid, "match": match}) + "\n")

    def record_postfix(self, config_dir):
        with open(os.path.join(self.path, "postfix.jsonl"), "a") as f:
            f.write(json.dumps({"config_dir": config_dir}) + "\n")

    def remove(self):
        if self.keep:
            print("\nintegration run directory kept: %s" % self.path)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def reap_stale_runs(stop_postfix):
    """Stop servers of earlier runs whose pytest process is gone, and remove their dirs.

    stop_postfix(config_dir): stops a Postfix instance by its config directory.
    A child pid is killed only if its command line still names that run's directory.
    """
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        if not name.startswith(RUN_DIR_PREFIX):
            continue
        path = os.path.join(base, name)
        try:
            with open(os.path.join(path, "owner.json")) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            continue
        if _pid_alive(owner.get("pid", -1)):
            continue
        try:
            with open(os.path.join(path, "postfix.jsonl")) as f:
                for line in f:
                    cfg = json.loads(line)["config_dir"]
                    if os.path.isdir(cfg):
                        stop_postfix(cfg)
        except (OSError, ValueError):
            pass
        try:
            with open(os.path.join(path, "children.jsonl")) as f:
                for line in f:
                    child = json.loads(line)
                    pid = child["pid"]
                    if _pid_alive(pid) and child["match"] in _cmdline(pid):
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
        except (OSError, ValueError):
            pass
        if not owner.get("keep"):
            shutil.rmtree(path, ignore_errors=True)


class ManagedProcess:
    """A server child process that prints "READY {json}" on stdout once it listens.

    stdout and stderr go to log_path (stdout through a reader thread that also watches for
    the READY line).
    """

    def __init__(self, name, argv, log_path, run_dir, cwd=None, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.run_dir = run_dir
        self.cwd = cwd
        self.env = env
        self.proc = None
        self._lines = queue.Queue()
        self._cleanup = None

    def start(self, timeout_s=20.0, ready_prefix="READY "):
        """Start and wait for the READY line. Returns its parsed JSON (or {} if none)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            cwd=self.cwd, env=self.env, start_new_session=True)
        self._cleanup = register_cleanup(self.name, self.stop)
        self.run_dir.record_child(self.proc.pid, self.run_dir.path)

        def pump():
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                self._lines.put(line.decode("utf-8", "replace"))
            self._lines.put(None)

        threading.Thread(target=pump, name="pump-" + self.name, daemon=True).start()
        if ready_prefix is None:
            return {}
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise TimeoutError("%s: no READY line after %.0fs; log:\n%s"
                                   % (self.name, timeout_s, self.log_tail()))
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait()
                raise RuntimeError("%s exited (%s) before READY; log:\n%s"
                                   % (self.name, rc, self.log_tail()))
            if line.startswith(ready_prefix):
                return json.loads(line[len(ready_prefix):])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=5.0):
        """SIGTERM the process group, then SIGKILL after timeout_s. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout_s)
        else:
            # The leader is gone; make sure no straggler of its group survives.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._cleanup is not None:
            self._cleanup[1] = None

    def log_tail(self, n_bytes=4000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - n_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
