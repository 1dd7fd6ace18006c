"""aiosmtpd test servers, run as a child process of the integration-test harness.

Why: aiosmtpd (Debian's python3-aiosmtpd 1.4) is the second real SMTP server the protocol
tests run against. Running it in its own process keeps its event loop away from pytest, and
lets the harness kill it by pid however a test run ends.

Usage: /usr/bin/python3 aiosmtpd_server.py CONFIG.json
CONFIG: {"cert", "key", "users": {login: password}, "store": dir, "events": file.jsonl,
         "data_size_limit": bytes,
         "listeners": [{"name", "port", "kind"}]}
Kinds:
  starttls      STARTTLS required before MAIL, AUTH required, AUTH only after TLS.
  tls           implicit TLS on the socket, AUTH required.
  plain_auth    no TLS at all, AUTH PLAIN/LOGIN/CRAM-MD5 offered in clear (loopback only).
  plain_noauth  no TLS, no AUTH: anyone may send.
  faulty        no TLS, no AUTH; answers DATA with 354, reads some of the body, then closes
                the connection without any reply (see FaultySMTP).
  silent        accepts TCP connections and never says a word (greeting timeout tests).
Every listener but "silent" refuses RCPT TO addresses whose local part starts with
"refuse" with 550 5.1.1.

When all sockets listen it prints one line "READY {json}" on stdout. Each accepted message is
stored as NNNNNN-<uuid>.eml (the exact bytes received, dot-unstuffed, CRLF kept) and then
NNNNNN-<uuid>.json (envelope), written last and atomically, so a .json means a whole message.
Every byte a client sends (the first MiB of each connection), and every AUTH attempt, is appended to the events file, so tests
can prove that a client did not send AUTH or a password.

Leaves out: LMTP, SMTPUTF8 address checks, PROXY protocol.
RFCs: 5321 (SMTP), 3207 (STARTTLS), 4954 (AUTH), 4616 (PLAIN), 2195 (CRAM-MD5), 8314 (implicit TLS).
"""

import asyncio
import base64
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

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOSTNAME = "aiosmtpd.test"
# Faulty server: how many body bytes to read before dropping the connection.
FAULTY_DROP_AFTER_BYTES = 8192
# Wire log: bytes recorded per connection. AUTH comes first in a session, so 1 MiB covers
# it; the cap keeps a 20 MB DATA out of the events file.
WIRE_LOG_MAX_BYTES = 1024 * 1024


class Events:
    """Append-only JSON-lines log shared by all listeners (one writer thread: the loop)."""

    def __init__(self, path):
        self._f = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, **event):
        event["t"] = time.time()
        with self._lock:
            self._f.write(json.dumps(event) + "\n")
            self._f.flush()


class Handler:
    """Stores messages, refuses "refuse*" recipients, checks AUTH against the users."""

    _seq = itertools.count(1)

    def __init__(self, listener, users, store, events):
        self.listener = listener
        self.users = {k.encode("utf-8"): v.encode("utf-8") for k, v in users.items()}
        self.store = store
        self.events = events

    # aiosmtpd calls this for PLAIN and LOGIN with the decoded login and password bytes.
    def authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login in self.users
            and hmac.compare_digest(self.users[auth_data.login], auth_data.password)
        )
        self.events.write(
            event="auth_result",
            listener=self.listener["name"],
            port=self.listener["port"],
            mechanism=mechanism,
            login=auth_data.login.decode("utf-8", "replace") if auth_data else None,
            ok=ok,
        )
        # handled=False: let aiosmtpd send its 535 on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # Custom mechanism: aiosmtpd maps auth_CRAM__MD5 to "CRAM-MD5".
    async def auth_CRAM__MD5(self, server, args):
        if len(args) != 1:
            await server.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = "<%s.%d@%s>" % (uuid.uuid4().hex, int(time.time()), HOSTNAME)
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=True)
        login, _, digest = response.rpartition(b" ")
        password = self.users.get(login)
        ok = False
        if password is not None:
            want = hmac.new(password, challenge.encode(), "md5").hexdigest().encode()
            ok = hmac.compare_digest(want, digest.lower())
        self.events.write(
            event="auth_result",
            listener=self.listener["name"],
            port=self.listener["port"],
            mechanism="CRAM-MD5",
            login=login.decode("utf-8", "replace"),
            ok=ok,
        )
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, b""))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("refuse"):
            return "550 5.1.1 <%s>: Recipient address rejected: refused by test policy" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        n = next(self._seq)
        base = os.path.join(self.store, "%06d-%s" % (n, uuid.uuid4().hex[:12]))
        raw = envelope.original_content
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        is_tls = server._tls_protocol is not None or (
            server.transport is not None
            and server.transport.get_extra_info("sslcontext") is not None
        )
        auth = session.auth_data
        login = auth.login if isinstance(auth, LoginPassword) else None
        meta = {
            "server": "aiosmtpd",
            "listener": self.listener["name"],
            "port": self.listener["port"],
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": login.decode("utf-8", "replace") if isinstance(login, bytes) else login,
            "tls": is_tls,
            "size": len(raw),
            "received_at": time.time(),
        }
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        self.events.write(event="message", listener=self.listener["name"],
                          port=self.listener["port"], file=base + ".eml")
        return "250 2.0.0 Ok: queued as %06d" % n


class LoggingSMTP(SMTP):
    """aiosmtpd's SMTP, plus a record of every byte the client sends and every AUTH."""

    def __init__(self, handler, events, listener, **kw):
        super().__init__(handler, **kw)
        self._events = events
        self._listener = listener
        self._conn_id = uuid.uuid4().hex[:8]
        self._wire_logged = 0

    def connection_made(self, transport):
        if self._original_transport is None and self.transport is None:
            self._events.write(event="connect", listener=self._listener["name"],
                               port=self._listener["port"], conn=self._conn_id)
        super().connection_made(transport)

    def data_received(self, data):
        # Before STARTTLS this is the cleartext socket; afterwards aiosmtpd's SSLProtocol
        # hands us the decrypted bytes. Either way: what the client said, in clear.
        room = WIRE_LOG_MAX_BYTES - self._wire_logged
        if room > 0:
            self._wire_logged += min(room, len(data))
            self._events.write(event="wire", listener=self._listener["name"],
                               port=self._listener["port"], conn=self._conn_id,
                               tls=self._tls_protocol is not None,
                               b64=base64.b64encode(data[:room]).decode("ascii"))
        super().data_received(data)

    async def smtp_AUTH(self, arg):
        self._events.write(event="auth_command", listener=self._listener["name"],
                           port=self._listener["port"], conn=self._conn_id,
                           mechanism=(arg or "").split(" ")[0].upper())
        await super().smtp_AUTH(arg)


class FaultySMTP(LoggingSMTP):
    """Drops the connection in the middle of DATA.

    After the 354 it reads the body until it has FAULTY_DROP_AFTER_BYTES bytes or sees the
    end-of-data dot, whichever comes first, then closes the TCP connection without sending
    any reply. A large body is therefore cut while the client is still sending; a small one
    is read whole and left without its final reply.
    """

    async def smtp_DATA(self, arg):
        if await self.check_helo_needed():
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        got = b""
        while len(got) < FAULTY_DROP_AFTER_BYTES and not got.endswith(b"\r\n.\r\n"):
            chunk = await self._reader.read(65536)
            if not chunk:
                break
            got += chunk
        self._events.write(event="dropped_in_data", listener=self._listener["name"],
                           port=self._listener["port"], conn=self._conn_id,
                           body_bytes=len(got), saw_end=got.endswith(b"\r\n.\r\n"))
        transport = self._original_transport or self.transport
        transport.abort()


class Silent(asyncio.Protocol):
    """Accepts the connection and never answers."""

    def __init__(self, events, listener):
        self.events = events
        self.listener = listener

    def connection_made(self, transport):
        self.transport = transport
        self.events.write(event="connect", listener=self.listener["name"],
                          port=self.listener["port"])


def make_server_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def main(config):
    loop = asyncio.get_running_loop()
    events = Events(config["events"])
    store = config["store"]
    os.makedirs(store, exist_ok=True)
    users = config["users"]
    limit = int(config.get("data_size_limit", 50 * 1024 * 1024))
    tls_ctx = make_server_context(config["cert"], config["key"])
    servers = []
    ready = {}

    for lst in config["listeners"]:
        kind = lst["kind"]
        handler = Handler(lst, users, store, events)
        common = dict(
            hostname=HOSTNAME,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            authenticator=handler.authenticator,
            timeout=60,
            loop=loop,
        )
        sock_ssl = None
        if kind == "starttls":
            kw = dict(tls_context=tls_ctx, require_starttls=True, auth_required=True,
                      auth_require_tls=True)
        elif kind == "tls":
            # The socket is TLS already; aiosmtpd 1.4 only knows about STARTTLS, so it
            # must not demand it again before AUTH (auth_require_tls refers to STARTTLS).
            sock_ssl = tls_ctx
            kw = dict(auth_required=True, auth_require_tls=False)
        elif kind == "plain_auth":
            kw = dict(auth_required=False, auth_require_tls=False)
        elif kind in ("plain_noauth", "faulty"):
            kw = dict(auth_required=False, auth_require_tls=True,
                      auth_exclude_mechanism=["PLAIN", "LOGIN", "CRAM-MD5"])
            common.pop("authenticator")
        elif kind == "silent":
            srv = await loop.create_server(lambda lst=lst: Silent(events, lst),
                                           "127.0.0.1", lst["port"])
            servers.append(srv)
            ready[lst["name"]] = lst["port"]
            continue
        else:
            raise SystemExit("unknown listener kind %r" % kind)
        cls = FaultySMTP if kind == "faulty" else LoggingSMTP

        def factory(cls=cls, handler=handler, lst=lst, kw=kw, common=common):
            return cls(handler, events, lst, **common, **kw)

        srv = await loop.create_server(factory, "127.0.0.1", lst["port"], ssl=sock_ssl)
        servers.append(srv)
        ready[lst["name"]] = lst["port"]

    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print("READY " + json.dumps({"pid": os.getpid(), "ports": ready}), flush=True)
    await stop
    for srv in servers:
        srv.close()


if __name__ == "__main__":
    # The implicit-TLS listener sets auth_require_tls=False on purpose (see main()).
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    asyncio.run(main(cfg))
