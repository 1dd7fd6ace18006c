"""The servers the browser test walks against, started by panel.test.mjs as a child process.

What it starts (all on 127.0.0.1, free ports, certificates made for the run):
  - the Gmail-like SMTP server of the integration tests (tests/integration/harness/
    gmail_like.py), run as its own child process with its config: Gmail's greeting, EHLO,
    refusals and login rules. Its accounts are the harness's seed accounts plus the browser
    story's "digits.only@gmail.com", whose app password is made only of digits ("123456")
    and whose normal password ("Normal.Passw0rd") gets Gmail's 534 5.7.9 "Application-
    specific password required";
  - `mailout serve --http 127.0.0.1:PORT` (with its delivery worker) on a fresh data folder.
    Before it starts, `mailout account set` stores a placeholder "default" account whose
    only lasting value is the run's CA file: the panel's form does not show a CA file, and
    what the form does not show comes from the stored account (issue 5).
It prints one line "READY {json}" (addresses, ports, paths, the seed's values) and runs until
its standard input closes or it gets SIGTERM/SIGINT; then it stops both servers and removes
the run folder (MAILOUT_BROWSER_KEEP=1 keeps it). A run killed with SIGKILL is reaped by the
next run (harness/procs.py).

Usage: /usr/bin/python3 tests/browser/stack.py   (MAILOUT_BIN: the binary; default
build/src/cli/mailout)
"""

import json
import os
import signal
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import certs as certs_mod  # noqa: E402
from harness import gmail_like, netutil, procs  # noqa: E402
from harness.servers import python_with_aiosmtpd, stop_postfix  # noqa: E402

STORY_EMAIL = "digits.only@gmail.com"   # an address with dots
STORY_PASSWORD = "123456"               # an app password made only of digits
STORY_NORMAL_PASSWORD = "Normal.Passw0rd"


def main():
    binary = os.path.abspath(os.environ.get("MAILOUT_BIN") or
                             os.path.join(ROOT, "build", "src", "cli", "mailout"))
    if not os.access(binary, os.X_OK):
        sys.exit("stack.py: no mailout binary at %s (build it, or set MAILOUT_BIN)" % binary)
    procs.reap_stale_runs(stop_postfix)
    rd = procs.RunDir(keep=os.environ.get("MAILOUT_BROWSER_KEEP", "") not in ("", "0"))
    started = []
    stopping = threading.Event()

    def stop(*_):
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        certs = certs_mod.make_certs(rd.sub("certs"))

        # --- the Gmail-like server -------------------------------------------------------
        gdir = rd.sub("gmail-like")
        accounts = dict(gmail_like.GMAIL_ACCOUNTS)
        accounts[STORY_EMAIL] = {"password": STORY_PASSWORD, "normal": STORY_NORMAL_PASSWORD}
        ports = {k: netutil.free_port() for k in ("starttls", "tls")}
        config = {"cert": certs.server_cert, "key": certs.server_key, "accounts": accounts,
                  "store": os.path.join(gdir, "store"),
                  "events": os.path.join(gdir, "events.jsonl"),
                  "listeners": [{"name": k, "port": p, "kind": k} for k, p in ports.items()]}
        cfg_path = os.path.join(gdir, "config.json")
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        gm = procs.ManagedProcess("gmail-like", [python_with_aiosmtpd(), gmail_like.__file__,
                                                 cfg_path],
                                  os.path.join(gdir, "server.log"), rd)
        gm.start()
        started.append(gm)

        # --- mailout: the placeholder account with the CA file, then serve -----------------
        home = rd.sub("home", mode=0o700)
        r = subprocess.run([binary, "--home", home, "account", "set", "--name", "default",
                            "--email", "placeholder@example.test", "--host", "localhost",
                            "--port", str(ports["starttls"]), "--security", "starttls",
                            "--ca-file", certs.ca_file, "--password-stdin", "--json"],
                           input=b"placeholder-password", capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("account set failed (%d): %s %s"
                               % (r.returncode, r.stdout.decode(), r.stderr.decode()))
        http_port = netutil.free_port()
        env = dict(os.environ)
        env.pop("SSL_CERT_FILE", None)  # the CA must come from the stored account
        env.pop("SSL_CERT_DIR", None)
        serve = procs.ManagedProcess("mailout-serve",
                                     [binary, "--home", home, "serve", "--http",
                                      "127.0.0.1:%d" % http_port],
                                     os.path.join(rd.path, "serve.log"), rd, env=env)
        serve.start(ready_prefix=None)
        started.append(serve)
        netutil.wait_for_port(http_port, alive=serve.alive)

        info = {"base_url": "http://127.0.0.1:%d" % http_port, "http_port": http_port,
                "home": home, "run_dir": rd.path, "mailout_bin": binary,
                "serve_log": os.path.join(rd.path, "serve.log"),
                "gmail": {"starttls": ports["starttls"], "tls": ports["tls"],
                          "store": config["store"], "events": config["events"]},
                "ca_file": certs.ca_file,
                "story": {"email": STORY_EMAIL, "password": STORY_PASSWORD,
                          "normal_password": STORY_NORMAL_PASSWORD}}
        print("READY " + json.dumps(info), flush=True)

        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except OSError:
                pass
            stopping.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        while not stopping.wait(0.5):
            if not serve.alive():
                print("mailout serve stopped by itself; see %s" % serve.log_path,
                      file=sys.stderr, flush=True)
                break
    finally:
        for p in reversed(started):
            try:
                p.stop()
            except Exception as e:  # keep going: the others must stop too
                print("stopping %s failed: %s" % (p.name, e), file=sys.stderr)
        rd.remove()


if __name__ == "__main__":
    main()
