"""Per-run certificates, made with the openssl command line tool.

- a test CA ("mailout test CA");
- a server certificate for CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1, signed by it;
- a second, unrelated CA ("mailout wrong CA") that signed nothing we serve: a client that
  trusts only it must refuse our servers.
Keys are RSA 2048 (every server and client here speaks it), valid for 2 days.
Leaves out: intermediates, client certificates, revocation.
"""

import dataclasses
import os
import subprocess


@dataclasses.dataclass(frozen=True)
class Certs:
    dir: str
    ca_file: str        # PEM, the CA that signed server_cert
    ca_key: str
    server_cert: str    # PEM, CN=localhost
    server_key: str     # PEM, unencrypted
    wrong_ca_file: str  # PEM, a CA unrelated to server_cert


def _openssl(args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed (%d):\n%s%s"
                           % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r.stdout


def _make_ca(cwd, name, cn):
    _openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
              "-keyout", name + ".key", "-out", name + ".pem", "-subj", "/CN=" + cn,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-addext", "subjectKeyIdentifier=hash"], cwd)


def make_certs(directory):
    """Create the run's certificates in directory (created if missing). Returns Certs."""
    os.makedirs(directory, exist_ok=True)
    _make_ca(directory, "ca", "mailout test CA")
    _make_ca(directory, "wrong-ca", "mailout wrong CA")
    _openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
              "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], directory)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-sha256", "-days", "2", "-extfile", "server.ext",
              "-out", "server.pem"], directory)
    out = _openssl(["verify", "-CAfile", "ca.pem", "server.pem"], directory)
    assert "OK" in out, out
    # Servers drop privileges (Postfix reads its key as root first; aiosmtpd and node run
    # as root here). Test keys, throwaway: readable is fine, but keep them private anyway.
    for key in ("ca.key", "wrong-ca.key", "server.key"):
        os.chmod(os.path.join(directory, key), 0o600)
    p = lambda n: os.path.join(directory, n)  # noqa: E731
    return Certs(dir=directory, ca_file=p("ca.pem"), ca_key=p("ca.key"),
                 server_cert=p("server.pem"), server_key=p("server.key"),
                 wrong_ca_file=p("wrong-ca.pem"))
