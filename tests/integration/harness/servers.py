"""The real SMTP servers of the integration tests: configure, start, describe, stop.

- Postfix 3.7 (private instance: own config, queue and data directories, `postfix -c DIR`)
  with Dovecot 2.3 as SASL server (private instance, `dovecot -F -c FILE`, passwd-file with
  {PLAIN} passwords, auth socket for Postfix). Listeners:
    submission ("starttls"): smtpd_tls_security_level=encrypt, smtpd_tls_auth_only=yes
    smtps ("tls"): smtpd_tls_wrappermode=yes
  Every recipient of every domain is accepted for SASL-authenticated clients and delivered
  by virtual(8) into one catch-all Maildir; recipients starting "refuse" get 550 5.1.1 (for
  authenticated clients too). Postfix adds no missing headers (local_header_rewrite_clients
  is empty) but its cleanup always deletes Bcc: headers.
- aiosmtpd 1.4 (see aiosmtpd_server.py): starttls, tls, plain_auth, plain_noauth listeners,
  plus a "faulty" listener that drops the connection in the middle of DATA and a "silent"
  one that never greets.
- nodemailer's smtp-server (tests/node/server.js): starttls, tls, plain_auth listeners.

Each start_* function returns fixture objects (SmtpServer) and registers its own stop for
atexit. Everything lives under the run directory; nothing is written to system paths
(Postfix reads /etc/postfix/postfix-files, dynamicmaps.cf and the post-install scripts
from the package, read-only).

RFCs: 5321, 3207, 4954, 8314, 6409 (submission).
"""

import base64
import dataclasses
import grp
import json
import os
import pty
import pwd
import re
import select
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import time

from . import netutil, procs
from .stores import MaildirStore, SpoolDirStore

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
NODE_DIR = os.path.join(REPO_ROOT, "tests", "node")

# Users known to every server (Dovecot passwd-file, aiosmtpd, smtp-server).
USERS = {
    "shop@example.test": "123456",
    "spaces@example.test": "pass word with spaces",
    "utf8@example.test": "pässwörd-ünïcode",
    "quote@example.test": "a\"b\\c'd",
}

MESSAGE_SIZE_LIMIT = 50 * 1024 * 1024  # bytes; a 20 MB attachment is ~27 MB in base64


@dataclasses.dataclass
class SmtpServer:
    """What a test needs to know about one running server."""

    name: str                    # "postfix", "aiosmtpd", "smtp-server"
    host: str
    ports: dict                  # kind -> port: starttls, tls, plain_auth, plain_noauth
    users: dict                  # login -> password
    store: object                # stores.Store: read messages back
    auth_mechanisms: tuple = ()  # upper case, as advertised after STARTTLS
    events_path: str = None      # JSON lines (aiosmtpd, smtp-server): connect/wire/auth/message
    logs: tuple = ()             # log files worth showing when something fails
    smtputf8: bool = False
    maillog: str = None          # Postfix: its log file, for AUTH records

    def port(self, kind):
        if kind not in self.ports:
            raise KeyError("%s has no %r listener (has %s)" % (self.name, kind, sorted(self.ports)))
        return self.ports[kind]

    # --- events (aiosmtpd, smtp-server) ------------------------------------------------
    def events_mark(self):
        """Current end of the events file; events(since=mark) returns what came after."""
        if not self.events_path:
            return 0
        try:
            return os.path.getsize(self.events_path)
        except FileNotFoundError:
            return 0

    def events(self, since=0, port=None, kind=None):
        if not self.events_path:
            raise RuntimeError("%s records no events" % self.name)
        out = []
        with open(self.events_path, "rb") as f:
            f.seek(since)
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue  # a line being written right now
                if port is not None and ev.get("port") != port:
                    continue
                if kind is not None and ev.get("event") != kind:
                    continue
                out.append(ev)
        return out

    def mark(self):
        """Where the server's records end now; auth_attempts(mark) looks only after it."""
        maillog = 0
        if self.maillog:
            try:
                maillog = os.path.getsize(self.maillog)
            except FileNotFoundError:
                pass
        return {"events": self.events_mark(), "maillog": maillog}

    def auth_attempts(self, mark, port=None, settle_s=0.3):
        """AUTH attempts after mark: [(mechanism upper case, login or None, ok or None)].

        aiosmtpd: every AUTH command (ok=None) and every verdict; smtp-server: every
        verdict; Postfix: its log lines "sasl_method=..., sasl_username=..." (success) and
        "SASL ... authentication failed" (failure). Postfix logs through postlogd, so this
        waits settle_s for the log to catch up.
        """
        time.sleep(settle_s)
        out = []
        if self.events_path:
            for ev in self.events(mark["events"], port=port):
                if ev["event"] == "auth_command":
                    out.append((ev["mechanism"], None, None))
                elif ev["event"] == "auth_result":
                    out.append((ev["mechanism"].upper(), ev["login"], ev["ok"]))
        if self.maillog:
            with open(self.maillog, "rb") as f:
                f.seek(mark["maillog"])
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if port is not None and not self._maillog_line_for_port(line, port):
                    continue
                m = re.search(r"sasl_method=([A-Za-z0-9-]+), sasl_username=(\S+)", line)
                if m:
                    out.append((m.group(1).upper(), m.group(2), True))
                    continue
                m = re.search(r"SASL ([A-Za-z0-9-]+) authentication failed", line)
                if m:
                    out.append((m.group(1).upper(), None, False))
        return out

    def _maillog_line_for_port(self, line, port):
        kind = "submission" if port == self.ports.get("starttls") else "smtps"
        return ("postfix/%s/" % kind) in line

    def wire_bytes(self, since=0, port=None):
        """Everything clients sent (first MiB per connection), concatenated (aiosmtpd only)."""
        return b"".join(base64.b64decode(e["b64"]) for e in self.events(since, port, "wire"))

    def log_tail(self, n_bytes=3000):
        parts = []
        for path in self.logs:
            try:
                with open(path, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - n_bytes))
                    parts.append("==> %s <==\n%s" % (path, f.read().decode("utf-8", "replace")))
            except OSError:
                pass
        return "\n".join(parts)


def advertised_auth(port, ca_file, implicit_tls=False, host="127.0.0.1"):
    """EHLO over verified TLS; return (AUTH mechanisms upper case, EHLO features dict)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if implicit_tls:
        s = smtplib.SMTP_SSL(host, port, timeout=10, context=ctx)
    else:
        s = smtplib.SMTP(host, port, timeout=10)
    try:
        s.ehlo("probe.test")
        if not implicit_tls:
            s.starttls(context=ctx)
            s.ehlo("probe.test")
        feats = dict(s.esmtp_features)
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
    return tuple(feats.get("auth", "").upper().split()), feats


# ======================================================================================
# Postfix + Dovecot
# ======================================================================================

DOVECOT_CONF = """\
# Private Dovecot instance for mailout's integration tests: SASL only, no IMAP/POP3.
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols =
ssl = no
# Postfix only offers AUTH after TLS (smtpd_tls_auth_only); Dovecot need not check again.
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_verbose = yes
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener {base}/auth-postfix {{
    mode = 0666
  }}
}}
# No authentication penalty: the wrong-password tests would slow every later AUTH from
# 127.0.0.1 by 2-15 s (Dovecot's documented way to turn it off).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

POSTFIX_MASTER_CF = """\
# Private Postfix instance for mailout's integration tests. Nothing is chrooted.
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
127.0.0.1:{smtps} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _run_with_tty(argv, timeout_s=60):
    """Run argv with stdout/stderr on a pty and return (rc, output).

    Postfix commands print their errors on stderr only when it is a terminal; otherwise
    they go to the mail log, which may not exist yet.
    """
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             close_fds=True)
        os.close(slave)
        slave = None
        out = b""
        deadline = time.monotonic() + timeout_s
        while True:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the pty
                    chunk = b""
                out += chunk
                if not chunk and p.poll() is not None:
                    break
            elif p.poll() is not None:
                break
            if time.monotonic() > deadline:
                p.kill()
                break
        rc = p.wait()
        return rc, out.decode("utf-8", "replace").replace("\r\n", "\n")
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


def _postfix_master_pid(spool):
    try:
        with open(os.path.join(spool, "pid", "master.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def stop_postfix(config_dir, timeout_s=15.0):
    """Stop the Postfix instance of config_dir; abort and kill its master if it lingers."""
    spool = subprocess.run(["postconf", "-c", config_dir, "-h", "queue_directory"],
                           capture_output=True, text=True).stdout.strip()
    pid = _postfix_master_pid(spool) if spool else None
    _run_with_tty(["postfix", "-c", config_dir, "stop"], timeout_s=timeout_s)
    if pid is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and procs._pid_alive(pid):
        time.sleep(0.1)
    if procs._pid_alive(pid):
        _run_with_tty(["postfix", "-c", config_dir, "abort"], timeout_s=timeout_s)
        time.sleep(0.5)
        if procs._pid_alive(pid) and "postfix" in procs._cmdline(pid):
            os.kill(pid, signal.SIGKILL)


def _spool_busy(spool):
    """True while any message waits in the Postfix queue (or is being received)."""
    for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _dirpath, _dirs, files in os.walk(os.path.join(spool, sub)):
            if files:
                return True
    return False


class PostfixDovecot:
    def __init__(self, run_dir, certs, users=USERS):
        self.run_dir = run_dir
        self.certs = certs
        self.users = dict(users)
        self.base = run_dir.sub("postfix")
        self.etc = run_dir.sub("postfix", "etc")
        self.spool = run_dir.sub("postfix", "spool")
        self.data = run_dir.sub("postfix", "data", mode=0o700)
        self.mail = run_dir.sub("postfix", "mail")
        self.maildir = os.path.join(self.mail, "catchall")
        self.maillog = os.path.join(self.base, "maillog")
        self.dovecot_dir = run_dir.sub("dovecot")
        self.dovecot_conf = os.path.join(self.dovecot_dir, "dovecot.conf")
        self.dovecot_log = os.path.join(self.dovecot_dir, "dovecot.log")
        self.auth_socket = os.path.join(self.dovecot_dir, "auth-postfix")
        self.ports = {"starttls": netutil.free_port(), "tls": netutil.free_port()}
        self.dovecot = None
        self.mechanisms = ("plain", "login", "cram-md5", "scram-sha-256")
        self._cleanup = None
        self._postfix_started = False

    # --- Dovecot ------------------------------------------------------------------------
    def _write_dovecot(self, mechanisms):
        with open(self.dovecot_conf, "w") as f:
            f.write(DOVECOT_CONF.format(base=self.dovecot_dir, mechanisms=" ".join(mechanisms)))
        users_file = os.path.join(self.dovecot_dir, "users")
        with open(users_file, "w", encoding="utf-8") as f:
            for login, password in self.users.items():
                # passwd-file fields are separated by ':'; no escaping exists for it.
                assert ":" not in login + password and "\n" not in password
                f.write("%s:{PLAIN}%s\n" % (login, password))
        os.chmod(users_file, 0o644)  # the auth process runs as user "dovecot"

    def _start_dovecot(self):
        self._write_dovecot(self.mechanisms)
        self.dovecot = procs.ManagedProcess(
            "dovecot", ["dovecot", "-F", "-c", self.dovecot_conf],
            os.path.join(self.dovecot_dir, "stdout.log"), self.run_dir)
        self.dovecot.start(ready_prefix=None)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.auth_socket):
            if not self.dovecot.alive() or time.monotonic() > deadline:
                raise RuntimeError("dovecot did not create %s\n%s\n%s" % (
                    self.auth_socket, self.dovecot.log_tail(), _tail(self.dovecot_log)))
            time.sleep(0.05)
        # Prove the passdb works before Postfix depends on it (and start the auth process,
        # which is where an unknown mechanism would be fatal).
        login, password = next(iter(self.users.items()))
        r = subprocess.run(["doveadm", "-c", self.dovecot_conf, "auth", "test", login, password],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            log = _tail(self.dovecot_log)
            if "scram-sha-256" in self.mechanisms and "mechanism" in log.lower():
                # This Dovecot build has no SCRAM-SHA-256: run without it.
                self.dovecot.stop()
                self.mechanisms = tuple(m for m in self.mechanisms if m != "scram-sha-256")
                return self._start_dovecot()
            raise RuntimeError("dovecot auth test failed: %s%s\n%s" % (r.stdout, r.stderr, log))

    # --- Postfix ------------------------------------------------------------------------
    def _postconf(self, settings):
        args = ["postconf", "-c", self.etc, "-e"] + ["%s=%s" % kv for kv in settings.items()]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            raise RuntimeError("postconf failed: %s%s" % (r.stdout, r.stderr))

    def _write_postfix(self):
        nobody = pwd.getpwnam("nobody")
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.data, postfix_user.pw_uid, postfix_user.pw_gid)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        grp.getgrnam("postdrop")  # set-gid group of the queue; must exist
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(submission=self.ports["starttls"], smtps=self.ports["tls"]))
        access = os.path.join(self.etc, "recipient_access")
        with open(access, "w") as f:
            f.write("# Recipients the tests want refused (checked before SASL permits).\n"
                    "/^refuse/  550 5.1.1 Recipient refused by test policy\n")
        open(os.path.join(self.etc, "main.cf"), "w").close()
        self._postconf({
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.run_dir.path,
            "myhostname": "postfix.test",
            "mydomain": "example.test",
            "myorigin": "example.test",
            "mydestination": "",
            "relayhost": "",
            "local_transport": "error:5.1.1 no local delivery in tests",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.1/32",
            # Every domain is "virtual"; every recipient goes to one catch-all Maildir.
            # (virtual(8) forbids $1 substitution in regexp maps, hence no per-user dirs.)
            "virtual_mailbox_domains": "static:all",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "static:catchall/",
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "virtual_mailbox_limit": "0",
            "mailbox_size_limit": "0",
            "message_size_limit": str(MESSAGE_SIZE_LIMIT),
            "smtpd_recipient_limit": "1000",
            # A client with 25 refused recipients must not be cut off or slowed down.
            "smtpd_hard_error_limit": "1000",
            "smtpd_soft_error_limit": "1000",
            "smtpd_error_sleep_time": "0",
            "smtpd_junk_command_limit": "1000",
            "smtpd_peername_lookup": "no",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "smtpd_client_auth_rate_limit": "0",
            "smtpd_tls_cert_file": self.certs.server_cert,
            "smtpd_tls_key_file": self.certs.server_key,
            "smtpd_tls_loglevel": "1",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": self.auth_socket,
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_sasl_tls_security_options": "noanonymous",
            "smtpd_tls_auth_only": "yes",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
            "smtpd_recipient_restrictions":
                "check_recipient_access regexp:%s, permit_sasl_authenticated, reject" % access,
            "smtpd_sender_restrictions": "",
            # Keep what the client sent: add no Date/Message-ID/From of our own.
            "local_header_rewrite_clients": "",
            "always_add_missing_headers": "no",
            "append_dot_mydomain": "no",
            "biff": "no",
            "smtputf8_enable": "yes",
            "delay_warning_time": "0",
            "bounce_queue_lifetime": "0",
            "maximal_queue_lifetime": "1h",
            "default_destination_concurrency_limit": "50",
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
        })

    def start(self):
        self._cleanup = procs.register_cleanup("postfix+dovecot", self.stop)
        self._start_dovecot()
        self._write_postfix()
        self.run_dir.record_postfix(self.etc)
        rc, out = _run_with_tty(["postfix", "-c", self.etc, "check"])
        if rc != 0:
            raise RuntimeError("postfix check failed (%d):\n%s\n%s" % (rc, out, _tail(self.maillog)))
        rc, out = _run_with_tty(["postfix", "-c", self.etc, "start"])
        self._postfix_started = True
        if rc != 0:
            raise RuntimeError("postfix start failed (%d):\n%s\n%s" % (rc, out, _tail(self.maillog)))
        for port in self.ports.values():
            netutil.wait_for_port(port)
        advertised, feats = advertised_auth(self.ports["starttls"], self.certs.ca_file)
        return SmtpServer(
            name="postfix",
            host="127.0.0.1",
            ports=dict(self.ports),
            users=dict(self.users),
            store=MaildirStore("postfix", self.maildir, settled=lambda: not _spool_busy(self.spool),
                               describe_extra=lambda: "maillog tail:\n" + _tail(self.maillog, 2500)),
            auth_mechanisms=advertised,
            logs=(self.maillog, self.dovecot_log),
            smtputf8="smtputf8" in feats,
            maillog=self.maillog,
        )

    def stop(self):
        try:
            if self._postfix_started:
                stop_postfix(self.etc)
        finally:
            if self.dovecot is not None:
                self.dovecot.stop()
            if self._cleanup is not None:
                self._cleanup[1] = None


def _tail(path, n_bytes=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return "(no %s)" % path


# ======================================================================================
# aiosmtpd
# ======================================================================================

def python_with_aiosmtpd():
    """This interpreter if it has aiosmtpd, else Debian's /usr/bin/python3 (which must)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and subprocess.run([exe, "-c", "import aiosmtpd"], capture_output=True).returncode == 0:
            return exe
    raise RuntimeError("no Python with aiosmtpd found: apt-get install python3-aiosmtpd")


class Aiosmtpd:
    KINDS = ("starttls", "tls", "plain_auth", "plain_noauth", "faulty", "silent")

    def __init__(self, run_dir, certs, users=USERS):
        self.run_dir = run_dir
        self.dir = run_dir.sub("aiosmtpd")
        self.certs = certs
        self.users = dict(users)
        self.ports = {k: netutil.free_port() for k in self.KINDS}
        self.proc = None

    def start(self):
        store_dir = os.path.join(self.dir, "store")
        events = os.path.join(self.dir, "events.jsonl")
        config = {
            "cert": self.certs.server_cert,
            "key": self.certs.server_key,
            "users": self.users,
            "store": store_dir,
            "events": events,
            "data_size_limit": MESSAGE_SIZE_LIMIT,
            "listeners": [{"name": k, "port": p, "kind": k} for k, p in self.ports.items()],
        }
        cfg_path = os.path.join(self.dir, "config.json")
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False)
        log = os.path.join(self.dir, "server.log")
        self.proc = procs.ManagedProcess(
            "aiosmtpd", [python_with_aiosmtpd(), os.path.join(HERE, "aiosmtpd_server.py"), cfg_path],
            log, self.run_dir)
        self.proc.start()
        advertised, feats = advertised_auth(self.ports["starttls"], self.certs.ca_file)
        main_ports = {k: self.ports[k] for k in ("starttls", "tls", "plain_auth", "plain_noauth")}
        main = SmtpServer(
            name="aiosmtpd", host="127.0.0.1", ports=main_ports, users=dict(self.users),
            store=SpoolDirStore("aiosmtpd", store_dir, port_filter=set(main_ports.values())),
            auth_mechanisms=advertised, events_path=events, logs=(log,),
            smtputf8="smtputf8" in feats)
        faulty = SmtpServer(
            name="aiosmtpd-faulty", host="127.0.0.1", ports={"plain_noauth": self.ports["faulty"]},
            users={}, store=SpoolDirStore("aiosmtpd-faulty", store_dir,
                                          port_filter={self.ports["faulty"]}),
            events_path=events, logs=(log,))
        silent = SmtpServer(
            name="silent", host="127.0.0.1", ports={"plain_noauth": self.ports["silent"]},
            users={}, store=SpoolDirStore("silent", store_dir, port_filter={self.ports["silent"]}),
            events_path=events, logs=(log,))
        return main, faulty, silent

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


# ======================================================================================
# nodemailer smtp-server
# ======================================================================================

class NodeSmtpServer:
    KINDS = ("starttls", "tls", "plain_auth")

    def __init__(self, run_dir, certs, users=USERS):
        self.run_dir = run_dir
        self.dir = run_dir.sub("smtp-server")
        self.certs = certs
        self.users = dict(users)
        self.ports = {k: netutil.free_port() for k in self.KINDS}
        self.proc = None

    @staticmethod
    def available():
        """None if node and smtp-server are usable, else the reason why not."""
        if shutil.which("node") is None:
            return "node is not installed"
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "smtp-server")):
            return "tests/node/node_modules/smtp-server missing: run `npm ci` in tests/node"
        return None

    def start(self):
        store_dir = os.path.join(self.dir, "store")
        events = os.path.join(self.dir, "events.jsonl")
        config = {
            "cert": self.certs.server_cert,
            "key": self.certs.server_key,
            "users": self.users,
            "store": store_dir,
            "events": events,
            "size": MESSAGE_SIZE_LIMIT,
            "listeners": [{"name": k, "port": p, "kind": k} for k, p in self.ports.items()],
        }
        cfg_path = os.path.join(self.dir, "config.json")
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False)
        log = os.path.join(self.dir, "server.log")
        self.proc = procs.ManagedProcess(
            "smtp-server", ["node", os.path.join(NODE_DIR, "server.js"), cfg_path],
            log, self.run_dir, cwd=NODE_DIR)
        self.proc.start()
        advertised, feats = advertised_auth(self.ports["starttls"], self.certs.ca_file)
        return SmtpServer(
            name="smtp-server", host="127.0.0.1", ports=dict(self.ports), users=dict(self.users),
            store=SpoolDirStore("smtp-server", store_dir), auth_mechanisms=advertised,
            events_path=events, logs=(log,), smtputf8="smtputf8" in feats)

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
