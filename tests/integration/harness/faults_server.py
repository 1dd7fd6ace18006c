"""A steerable SMTP server for the worker's fault tests: aiosmtpd with STARTTLS and AUTH (the
harness's "starttls" listener) whose misbehaviour a test picks before each run.

Why: the worker must be judged on what real servers do when things go wrong (a 421 greeting,
a 451 after the data, a line dropped before or after the final ".", a server that stops
answering, a refused login, Gmail's 550 5.4.5 daily limit). The servers of harness/servers.py
behave well; this one misbehaves on request, one listener, one mode at a time.

Two halves in one file (the convention of gmail_like.py):
  - the server, run as a child process: /usr/bin/python3 faults_server.py CONFIG.json
    It imports aiosmtpd_server.py (same folder) for the users, the message store (.eml + .json,
    read back by stores.SpoolDirStore) and the events file (connect, wire, auth_command,
    auth_result, message), so SmtpServer.events()/auth_attempts() work on it.
  - FaultServer, the launcher: start() returns a FaultControl (server, port, set_mode()).

Control: the test writes the mode with FaultControl.set_mode(name) into a JSON file; the server
reads it when a connection is accepted, so a mode holds for whole connections. Modes:
  ok              behaves (STARTTLS required, AUTH required, "refuse*" recipients get 550 5.1.1)
  greeting_421    "421 4.3.2 Service not available, closing transmission channel", then closes
  greeting_421_rate  Google's "421-4.7.0 Try again later, closing connection. (EHLO)", closes
  auth_535        every AUTH gets "535 5.7.8 Username and Password not accepted."
  mail_quota      MAIL FROM gets Gmail's "550 5.4.5 Daily user sending limit exceeded."
  data_451        the reply to the final "." is "451 4.3.0 Mail server temporarily rejected
                  message." (nothing stored)
  drop_in_data    after the 354, reads at most 4 KiB of the body and closes without a reply:
                  the final "." of a larger message never went out
  drop_after_dot  reads the whole body including the final ".", then closes without a reply
  stall_mail      never answers MAIL FROM (the client's timeout must end it)
  drop_second_data  per connection: the first message is accepted, the second one is cut as
                  in drop_in_data (the connection then is gone)
  slow_data       behaves, but answers each final "." after SLOW_DATA_S (a slow provider)
Every dropped or stalled DATA is recorded as an event "fault" with the mode and the body bytes
seen. Leaves out: implicit TLS, pipelining quirks.
RFCs: 5321, 3207 (STARTTLS), 4954 (AUTH), 3463.
"""

import asyncio
import json
import logging
import os
import signal
import sys
import warnings

MODES = ("ok", "greeting_421", "greeting_421_rate", "auth_535", "mail_quota", "data_451",
         "drop_in_data", "drop_after_dot", "stall_mail", "drop_second_data", "slow_data")

REPLY_GREETING_421 = "421 4.3.2 Service not available, closing transmission channel"
REPLY_GREETING_421_RATE = ("421-4.7.0 Try again later, closing connection. (EHLO)\r\n"
                           "421-4.7.0 For more information, go to\r\n"
                           "421 4.7.0 About SMTP error messages x - gsmtp")
REPLY_AUTH_535 = "535 5.7.8 Username and Password not accepted. x - gsmtp"
REPLY_QUOTA = "550 5.4.5 Daily user sending limit exceeded. x - gsmtp"
REPLY_DATA_451 = "451 4.3.0 Mail server temporarily rejected message. x - gsmtp"
DROP_AFTER_BYTES = 4096
SLOW_DATA_S = 0.1


def _server_main(config):
    from aiosmtpd.smtp import AuthResult

    import aiosmtpd_server as base  # the harness's aiosmtpd server, same folder

    mode_file = config["mode_file"]

    def current_mode():
        try:
            with open(mode_file, encoding="utf-8") as f:
                mode = json.load(f)["mode"]
        except (OSError, ValueError, KeyError):
            return "ok"
        return mode if mode in MODES else "ok"

    class FaultHandler(base.Handler):
        def authenticator(self, server, session, envelope, mechanism, auth_data):
            if server.fault_mode == "auth_535":
                self.events.write(event="auth_result", listener=self.listener["name"],
                                  port=self.listener["port"], mechanism=mechanism,
                                  login=getattr(auth_data, "login", b"").decode("utf-8", "replace"),
                                  ok=False)
                return AuthResult(success=False, handled=False, message=REPLY_AUTH_535)
            return super().authenticator(server, session, envelope, mechanism, auth_data)

        async def auth_CRAM__MD5(self, server, args):
            if server.fault_mode != "auth_535":
                return await super().auth_CRAM__MD5(server, args)
            # Take the client's answer, then refuse it whatever it is.
            response = await server.challenge_auth("<refuse.0@faults.test>")
            login = response.rpartition(b" ")[0] if isinstance(response, bytes) else b""
            self.events.write(event="auth_result", listener=self.listener["name"],
                              port=self.listener["port"], mechanism="CRAM-MD5",
                              login=login.decode("utf-8", "replace"), ok=False)
            return AuthResult(success=False, handled=False, message=REPLY_AUTH_535)

        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            if server.fault_mode == "mail_quota":
                return REPLY_QUOTA
            if server.fault_mode == "stall_mail":
                self.events.write(event="fault", mode="stall_mail", port=self.listener["port"])
                await asyncio.sleep(3600)
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 2.1.0 Ok"

        async def handle_DATA(self, server, session, envelope):
            if server.fault_mode == "data_451":
                return REPLY_DATA_451
            if server.fault_mode == "slow_data":
                await asyncio.sleep(SLOW_DATA_S)
            return await super().handle_DATA(server, session, envelope)

    class FaultSMTP(base.LoggingSMTP):
        def __init__(self, *a, mode="ok", **kw):
            super().__init__(*a, **kw)
            self.fault_mode = mode
            self.data_count = 0

        async def _handle_client(self):
            if self.fault_mode in ("greeting_421", "greeting_421_rate"):
                await self.push(REPLY_GREETING_421 if self.fault_mode == "greeting_421"
                                else REPLY_GREETING_421_RATE)
                self._events.write(event="fault", mode=self.fault_mode,
                                   port=self._listener["port"])
                transport = self._original_transport or self.transport
                transport.close()
                return
            await super()._handle_client()

        async def _drop_in_data(self, until_end):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            got = b""
            while True:
                if not until_end and len(got) >= DROP_AFTER_BYTES:
                    break
                if got.endswith(b"\r\n.\r\n"):
                    break
                chunk = await self._reader.read(65536)
                if not chunk:
                    break
                got += chunk
            self._events.write(event="fault", mode=self.fault_mode, port=self._listener["port"],
                               body_bytes=len(got), saw_end=got.endswith(b"\r\n.\r\n"))
            transport = self._original_transport or self.transport
            transport.abort()

        async def smtp_DATA(self, arg):
            if await self.check_helo_needed():
                return
            if await self.check_auth_needed("DATA"):
                return
            if not self.envelope.rcpt_tos:
                await self.push("503 Error: need RCPT command")
                return
            self.data_count += 1
            if self.fault_mode == "drop_in_data" or (
                    self.fault_mode == "drop_second_data" and self.data_count == 2):
                return await self._drop_in_data(until_end=False)
            if self.fault_mode == "drop_after_dot":
                return await self._drop_in_data(until_end=True)
            await super().smtp_DATA(arg)

    async def main():
        loop = asyncio.get_running_loop()
        events = base.Events(config["events"])
        os.makedirs(config["store"], exist_ok=True)
        tls_ctx = base.make_server_context(config["cert"], config["key"])
        lst = {"name": "faults", "port": config["port"], "kind": "starttls"}
        handler = FaultHandler(lst, config["users"], config["store"], events)

        def factory():
            return FaultSMTP(handler, events, lst, mode=current_mode(), hostname="faults.test",
                             data_size_limit=50 * 1024 * 1024, enable_SMTPUTF8=True,
                             authenticator=handler.authenticator, tls_context=tls_ctx,
                             require_starttls=True, auth_required=True, auth_require_tls=True,
                             timeout=120, loop=loop)

        srv = await loop.create_server(factory, "127.0.0.1", config["port"])
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        print("READY " + json.dumps({"pid": os.getpid(), "ports": {"faults": config["port"]}}),
              flush=True)
        await stop
        srv.close()

    asyncio.run(main())


# ======================================================================================
# The launcher (used by the test fixtures)
# ======================================================================================

class FaultControl:
    """What a test holds: the SmtpServer (events, auth_attempts, store), the port, the mode."""

    def __init__(self, server, port, mode_file):
        self.server = server
        self.port = port
        self._mode_file = mode_file

    def set_mode(self, mode):
        assert mode in MODES, mode
        tmp = self._mode_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"mode": mode}, f)
        os.replace(tmp, self._mode_file)

    def fault_events(self, mark):
        return self.server.events(mark["events"], kind="fault")

    def connections(self, mark):
        return len(self.server.events(mark["events"], port=self.port, kind="connect"))


class FaultServer:
    """Starts faults_server.py in a child process (one STARTTLS listener on 127.0.0.1)."""

    def __init__(self, run_dir, certs, users):
        from . import netutil
        self.run_dir = run_dir
        self.dir = run_dir.sub("faults")
        self.certs = certs
        self.users = dict(users)
        self.port = netutil.free_port()
        self.proc = None

    def start(self):
        from . import procs
        from .servers import SmtpServer, python_with_aiosmtpd
        from .stores import SpoolDirStore
        store_dir = os.path.join(self.dir, "store")
        events = os.path.join(self.dir, "events.jsonl")
        mode_file = os.path.join(self.dir, "mode.json")
        config = {"cert": self.certs.server_cert, "key": self.certs.server_key,
                  "users": self.users, "store": store_dir, "events": events,
                  "port": self.port, "mode_file": mode_file}
        cfg_path = os.path.join(self.dir, "config.json")
        with open(cfg_path, "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False)
        log = os.path.join(self.dir, "server.log")
        self.proc = procs.ManagedProcess(
            "faults", [python_with_aiosmtpd(), os.path.abspath(__file__), cfg_path], log,
            self.run_dir)
        self.proc.start()
        server = SmtpServer(name="faults", host="127.0.0.1", ports={"starttls": self.port},
                            users=dict(self.users), store=SpoolDirStore("faults", store_dir),
                            events_path=events, logs=(log,))
        control = FaultControl(server, self.port, mode_file)
        control.set_mode("ok")
        return control

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    with open(sys.argv[1], encoding="utf-8") as f:
        _server_main(json.load(f))
