"""A Gmail-like SMTP server for the sender-account tests: aiosmtpd scripted to answer as
smtp.gmail.com does (reference smtp-errors.md, section 1).

Why: the seed's shop owners set up Gmail with an app password; the real smtp.gmail.com cannot
be used in tests, so this server gives Gmail's EHLO, Gmail's refusals (word for word, with the
"<id> - gsmtp" tails and the multi-line 534/535 replies) and Gmail's login rules (dots and
+tags in the local part do not matter on gmail.com, googlemail.com is gmail.com). mailout is
pointed at it with `--provider gmail --host localhost --port P --ca-file CA`, so the Gmail
rules of validation and diagnosis stay on while the connection stays on 127.0.0.1.

Two halves in one file:
  - the server, run as a child process: /usr/bin/python3 gmail_like.py CONFIG.json
    (the harness convention of aiosmtpd_server.py: keeps its event loop out of pytest,
    prints "READY {json}" once every socket listens);
  - GmailLike, the launcher the fixtures use (harness/account_fixtures.py).

Behaviour of every listener (all on 127.0.0.1 with the run's certificate):
  - greeting "220 smtp.gmail.com ESMTP x - gsmtp";
  - EHLO: "smtp.gmail.com at your service", SIZE 35882577, 8BITMIME, STARTTLS (before TLS),
    AUTH LOGIN PLAIN (after TLS only), ENHANCEDSTATUSCODES, PIPELINING, SMTPUTF8;
  - before STARTTLS, AUTH, MAIL, RCPT and DATA get
    "530 5.7.0 Must issue a STARTTLS command first. x - gsmtp";
  - MAIL before a login: "530-5.7.0 Authentication Required. ..." (WantAuthError);
  - AUTH with an account's password: "235 2.7.0 Accepted"; with the account's "normal"
    password (2-Step Verification on): "534-5.7.9 Application-specific password required.
    Learn more at" / "534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor x -
    gsmtp"; anything else: "535-5.7.8 Username and Password not accepted. Learn more at" /
    "535 5.7.8 https://support.google.com/mail/?p=BadCredentials x - gsmtp";
  - accepted messages are stored as NNNNNN-<uuid>.eml + .json like aiosmtpd_server.py, so
    stores.SpoolDirStore reads them back; recipients starting "refuse" get 550 5.1.1.
Listener kinds:
  starttls       Gmail's 587.
  tls            Gmail's 465: implicit TLS, AUTH offered at once.
  owned_sender   like starttls, but MAIL FROM must be the login's own mailbox (compared with
                 Gmail's rules), else "553 5.7.1 Sender address rejected: not owned by auth
                 user." - Yandex's reply (section 4.4); real Gmail rewrites the From instead.
  auth_in_clear  like starttls, but it also advertises AUTH before STARTTLS, so a client on
                 Security None actually sends AUTH and gets Gmail's 530 5.7.0. (Real Gmail
                 does not advertise AUTH before TLS: the "starttls" listener shows that case.)
A listener may carry "host" (default 127.0.0.1): the harness puts a second starttls
listener on 127.0.0.2, a name the certificate does not hold.

Events (JSON lines, same vocabulary as aiosmtpd_server.py, so SmtpServer.auth_attempts and
wire_bytes work): connect, wire (the first MiB a client sent per connection, decrypted; as
in aiosmtpd_server.py this includes AUTH exchanges, so tests can look for a password on the
wire), auth_command, auth_result (login, ok, and "verdict": ok / normal-password / bad; no
password), mail_refused, message.

Leaves out: CHUNKING/BDAT (aiosmtpd has none), XOAUTH2, the silent From rewrite, quotas.
RFCs: 5321, 3207 (STARTTLS), 4954 (AUTH), 4616 (PLAIN), 8314 (implicit TLS), 3463.
"""

import asyncio
import base64
import dataclasses
import hmac
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
import uuid
import warnings

GMAIL_HOSTNAME = "smtp.gmail.com"
SESSION_TAIL = "x - gsmtp"  # Google's "<session-id> - gsmtp"
SIZE_LIMIT = 35882577       # what smtp.gmail.com advertises
WIRE_LOG_MAX_BYTES = 1024 * 1024

# The seed's Gmail account: the address as the owner writes it (with dots), the login the
# seed's form wanted (without), the app password as Google shows it and as it is.
SEED_EMAIL = "test.mail.ot.commerce@gmail.com"
SEED_LOGIN = "testmailotcommerce@gmail.com"
APP_PASSWORD = "abcdefghijklmnop"
APP_PASSWORD_SHOWN = "abcd efgh ijkl mnop"
NORMAL_PASSWORD = "MyNormalPassw0rd"
# Passwords the seed's admin panel refused or mangled; Gmail takes any app password bytes.
DIGITS_EMAIL = "digits.only@gmail.com"
DIGITS_PASSWORD = "123456"
SPACES_EMAIL = "spaces.inside@gmail.com"
SPACES_PASSWORD = "pass word 42"

# login (any spelling Gmail accepts for it) -> {"password": ..., "normal": ... or absent}
GMAIL_ACCOUNTS = {
    SEED_EMAIL: {"password": APP_PASSWORD, "normal": NORMAL_PASSWORD},
    DIGITS_EMAIL: {"password": DIGITS_PASSWORD},
    SPACES_EMAIL: {"password": SPACES_PASSWORD},
}

KINDS = ("starttls", "tls", "owned_sender", "auth_in_clear")

REPLY_GREETING_IDENT = "ESMTP " + SESSION_TAIL
REPLY_STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first. " + SESSION_TAIL
REPLY_WANT_AUTH = ("530-5.7.0 Authentication Required. Learn more at\r\n"
                   "530 5.7.0  https://support.google.com/mail/?p=WantAuthError " + SESSION_TAIL)
REPLY_ACCEPTED = "235 2.7.0 Accepted"
REPLY_APP_PASSWORD_REQUIRED = (
    "534-5.7.9 Application-specific password required. Learn more at\r\n"
    "534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor " + SESSION_TAIL)
REPLY_BAD_CREDENTIALS = (
    "535-5.7.8 Username and Password not accepted. Learn more at\r\n"
    "535 5.7.8 https://support.google.com/mail/?p=BadCredentials " + SESSION_TAIL)
REPLY_NOT_OWNED = "553 5.7.1 Sender address rejected: not owned by auth user."


def mailbox_key(address):
    """The mailbox an address or login names, as Gmail compares them: lowercase; on gmail.com
    and googlemail.com without dots and +tag in the local part, googlemail.com as gmail.com."""
    a = (address or "").strip()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    local, at, domain = a.rpartition("@")
    if not at:
        return a.lower()
    local, domain = local.lower(), domain.lower()
    if domain in ("gmail.com", "googlemail.com"):
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return local + "@" + domain


# ======================================================================================
# The server (child process)
# ======================================================================================

def _server_main(config):
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    class Events:
        def __init__(self, path):
            self._f = open(path, "a", encoding="utf-8")
            self._lock = threading.Lock()

        def write(self, **event):
            event["t"] = time.time()
            with self._lock:
                self._f.write(json.dumps(event) + "\n")
                self._f.flush()

    class Handler:
        _seq = itertools.count(1)

        def __init__(self, listener, accounts, store, events):
            self.listener = listener
            self.accounts = {mailbox_key(k): v for k, v in accounts.items()}
            self.store = store
            self.events = events

        def _ev(self, **kw):
            self.events.write(listener=self.listener["name"], port=self.listener["port"], **kw)

        def authenticator(self, server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode("utf-8", "replace") if auth_data else ""
            account = self.accounts.get(mailbox_key(login))
            password = auth_data.password if auth_data else b""
            verdict = "bad"
            if account is not None:
                if hmac.compare_digest(account["password"].encode("utf-8"), password):
                    verdict = "ok"
                elif account.get("normal") and hmac.compare_digest(
                        account["normal"].encode("utf-8"), password):
                    verdict = "normal-password"
            self._ev(event="auth_result", mechanism=mechanism, login=login, ok=verdict == "ok",
                     verdict=verdict)
            if verdict == "ok":
                return AuthResult(success=True, auth_data=auth_data, message=REPLY_ACCEPTED)
            return AuthResult(success=False, handled=False,
                              message=REPLY_APP_PASSWORD_REQUIRED if verdict == "normal-password"
                              else REPLY_BAD_CREDENTIALS)

        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            if self.listener["kind"] == "owned_sender":
                login = session.login_data
                login = login.decode("utf-8", "replace") if isinstance(login, bytes) else login
                if mailbox_key(address) != mailbox_key(login):
                    self._ev(event="mail_refused", mail_from=address, login=login)
                    return REPLY_NOT_OWNED
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 2.1.0 OK " + SESSION_TAIL

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.lower().startswith("refuse"):
                return ("550-5.1.1 The email account that you tried to reach does not exist.\r\n"
                        "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser " + SESSION_TAIL)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return "250 2.1.5 OK " + SESSION_TAIL

        async def handle_RSET(self, server, session, envelope):
            return "250 2.1.5 Flushed " + SESSION_TAIL

        async def handle_DATA(self, server, session, envelope):
            n = next(self._seq)
            base = os.path.join(self.store, "%06d-%s" % (n, uuid.uuid4().hex[:12]))
            raw = envelope.original_content
            with open(base + ".eml", "wb") as f:
                f.write(raw)
            auth = session.auth_data
            login = auth.login if isinstance(auth, LoginPassword) else None
            if isinstance(login, bytes):
                login = login.decode("utf-8", "replace")
            meta = {
                "server": "gmail-like",
                "listener": self.listener["name"],
                "port": self.listener["port"],
                "mail_from": envelope.mail_from,
                "mail_options": envelope.mail_options,
                "rcpt_tos": envelope.rcpt_tos,
                "auth_user": login,
                "tls": server.is_tls(),
                "size": len(raw),
                "received_at": time.time(),
            }
            with open(base + ".json.tmp", "w", encoding="utf-8") as f:
                json.dump(meta, f)
            os.rename(base + ".json.tmp", base + ".json")
            self._ev(event="message", file=base + ".eml")
            return "250 2.0.0 OK  %d %s" % (int(time.time()), SESSION_TAIL)

    class GmailSMTP(SMTP):
        def __init__(self, handler, events, listener, **kw):
            super().__init__(handler, **kw)
            self._events = events
            self._listener = listener
            self._conn_id = uuid.uuid4().hex[:8]
            self._wire_logged = 0

        def _ev(self, **kw):
            self._events.write(listener=self._listener["name"], port=self._listener["port"],
                               conn=self._conn_id, **kw)

        def is_tls(self):
            return self._listener["kind"] == "tls" or self._tls_protocol is not None

        def connection_made(self, transport):
            if self._original_transport is None and self.transport is None:
                self._ev(event="connect")
            super().connection_made(transport)

        def data_received(self, data):
            room = WIRE_LOG_MAX_BYTES - self._wire_logged
            if room > 0:
                self._wire_logged += min(room, len(data))
                self._ev(event="wire", tls=self.is_tls(),
                         b64=base64.b64encode(data[:room]).decode("ascii"))
            super().data_received(data)

        async def smtp_EHLO(self, hostname):
            if not hostname:
                await self.push("501-5.5.4 Empty HELO/EHLO argument not allowed, closing "
                                "connection.\r\n501 5.5.4  https://support.google.com/mail/"
                                "?p=helo " + SESSION_TAIL)
                return
            self._set_rset_state()
            self.session.extended_smtp = True
            self.session.host_name = hostname
            self.command_size_limits["MAIL"] += 36  # SIZE= and SMTPUTF8 parameters
            peer = self.session.peer[0] if self.session.peer else "127.0.0.1"
            lines = ["%s at your service, [%s]" % (GMAIL_HOSTNAME, peer),
                     "SIZE %d" % SIZE_LIMIT, "8BITMIME"]
            if not self.is_tls():
                lines.append("STARTTLS")
            if self.is_tls() or self._listener["kind"] == "auth_in_clear":
                lines.append("AUTH LOGIN PLAIN")
            lines += ["ENHANCEDSTATUSCODES", "PIPELINING", "SMTPUTF8"]
            await self.push("\r\n".join("250-" + x for x in lines[:-1]) + "\r\n250 " + lines[-1])

        async def _tls_first(self):
            if not self.is_tls():
                await self.push(REPLY_STARTTLS_FIRST)
                return True
            return False

        async def smtp_AUTH(self, arg):
            self._ev(event="auth_command", mechanism=(arg or "").split(" ")[0].upper())
            if await self.check_helo_needed("EHLO"):
                return
            if await self._tls_first():
                return
            await super().smtp_AUTH(arg)

        async def smtp_MAIL(self, arg):
            if await self._tls_first():
                return
            if self.session.host_name and not self.session.authenticated:
                await self.push(REPLY_WANT_AUTH)
                return
            await super().smtp_MAIL(arg)

        async def smtp_RCPT(self, arg):
            if await self._tls_first():
                return
            await super().smtp_RCPT(arg)

        async def smtp_DATA(self, arg):
            if await self._tls_first():
                return
            await super().smtp_DATA(arg)

        async def smtp_QUIT(self, arg):
            if arg:
                await self.push("501 Syntax: QUIT")
                return
            await self.push("221 2.0.0 closing connection " + SESSION_TAIL)
            self._handler_coroutine.cancel()
            self.transport.close()

    async def main():
        loop = asyncio.get_running_loop()
        events = Events(config["events"])
        store = config["store"]
        os.makedirs(store, exist_ok=True)
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ctx.load_cert_chain(config["cert"], config["key"])
        tls_ctx.check_hostname = False
        tls_ctx.verify_mode = ssl.CERT_NONE
        servers, ready = [], {}
        for lst in config["listeners"]:
            kind = lst["kind"]
            if kind not in KINDS:
                raise SystemExit("unknown listener kind %r" % kind)
            handler = Handler(lst, config["accounts"], store, events)
            kw = dict(hostname=GMAIL_HOSTNAME, ident=REPLY_GREETING_IDENT,
                      data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True,
                      authenticator=handler.authenticator, auth_required=False,
                      auth_require_tls=False, require_starttls=False, timeout=60, loop=loop)
            sock_ssl = None
            if kind == "tls":
                sock_ssl = tls_ctx
            else:
                kw["tls_context"] = tls_ctx

            def factory(handler=handler, lst=lst, kw=kw):
                return GmailSMTP(handler, events, lst, **kw)

            srv = await loop.create_server(factory, lst.get("host", "127.0.0.1"), lst["port"],
                                           ssl=sock_ssl)
            servers.append(srv)
            ready[lst["name"]] = lst["port"]
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        print("READY " + json.dumps({"pid": os.getpid(), "ports": ready}), flush=True)
        await stop
        for srv in servers:
            srv.close()

    asyncio.run(main())


# ======================================================================================
# The launcher (used by the fixtures)
# ======================================================================================

@dataclasses.dataclass
class GmailLikeInfo:
    """What the tests need beyond SmtpServer: where the 127.0.0.2 listener is."""
    alt_host: str
    alt_port: int


class GmailLike:
    """Starts the Gmail-like server in a child process; start() returns an SmtpServer
    (harness.servers) named "gmail-like" with ports starttls, tls, owned_sender,
    auth_in_clear, and the extra attribute .alt (GmailLikeInfo: the 127.0.0.2 listener)."""

    ALT_HOST = "127.0.0.2"

    def __init__(self, run_dir, certs, extra_users=None):
        from . import netutil
        self.run_dir = run_dir
        self.dir = run_dir.sub("gmail-like")
        self.certs = certs
        self.accounts = dict(GMAIL_ACCOUNTS)
        for login, password in (extra_users or {}).items():
            self.accounts.setdefault(login, {"password": password})
        self.ports = {k: netutil.free_port() for k in KINDS}
        self.alt_port = netutil.free_port(self.ALT_HOST)
        self.proc = None

    def start(self):
        from . import procs
        from .servers import SmtpServer, advertised_auth, python_with_aiosmtpd
        from .stores import SpoolDirStore
        store_dir = os.path.join(self.dir, "store")
        events = os.path.join(self.dir, "events.jsonl")
        listeners = [{"name": k, "port": p, "kind": k} for k, p in self.ports.items()]
        listeners.append({"name": "starttls_alt_ip", "port": self.alt_port, "kind": "starttls",
                          "host": self.ALT_HOST})
        config = {"cert": self.certs.server_cert, "key": self.certs.server_key,
                  "accounts": self.accounts, "store": store_dir, "events": events,
                  "listeners": listeners}
        cfg_path = os.path.join(self.dir, "config.json")
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False)
        log = os.path.join(self.dir, "server.log")
        self.proc = procs.ManagedProcess(
            "gmail-like", [python_with_aiosmtpd(), os.path.abspath(__file__), cfg_path],
            log, self.run_dir)
        self.proc.start()
        advertised, feats = advertised_auth(self.ports["starttls"], self.certs.ca_file)
        server = SmtpServer(
            name="gmail-like", host="127.0.0.1", ports=dict(self.ports),
            users={k: v["password"] for k, v in self.accounts.items()},
            store=SpoolDirStore("gmail-like", store_dir), auth_mechanisms=advertised,
            events_path=events, logs=(log,), smtputf8="smtputf8" in feats)
        server.alt = GmailLikeInfo(alt_host=self.ALT_HOST, alt_port=self.alt_port)
        return server

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    with open(sys.argv[1], encoding="utf-8") as f:
        _server_main(json.load(f))
