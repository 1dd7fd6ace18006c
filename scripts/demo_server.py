#!/usr/bin/python3
"""A throw-away STARTTLS submission server for the README's first command.

Real third-party SMTP code (aiosmtpd), on 127.0.0.1, with a certificate made
for this run: STARTTLS is required before login, and the only account is
shop@example.test with the password 123456 (digits only, on purpose: the
seed's admin panel could not take such a password). Each message received is
written to OUTDIR as an .eml file.

usage: demo_server.py PORT CERT KEY OUTDIR
"""
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

USER, PASSWORD = b"shop@example.test", b"123456"


class Store:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.outdir, "message-%d.eml" % self.count)
        with open(path, "wb") as f:
            f.write(envelope.original_content)
        print("demo server: received a message for %s -> %s"
              % (", ".join(envelope.rcpt_tos), path), flush=True)
        return "250 2.0.0 OK: stored as %s" % os.path.basename(path)


def check_login(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER and auth_data.password == PASSWORD
    return AuthResult(success=ok, handled=False)


def main():
    port, cert, key, outdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(Store(outdir), hostname="127.0.0.1", port=port,
                            server_hostname="localhost", tls_context=context,
                            require_starttls=True, authenticator=check_login,
                            auth_require_tls=True)
    controller.start()
    print("demo server: listening on 127.0.0.1:%d (STARTTLS, login %s / %s)"
          % (port, USER.decode(), PASSWORD.decode()), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
