"""SASL for the harness self-tests, over Python's smtplib.

Why not smtplib.login(): it base64-encodes credentials as ASCII, so it cannot send the UTF-8
password, and it has no SCRAM. These helpers send UTF-8 bytes and return the final reply.

RFCs: 4954 (SMTP AUTH), 4616 (PLAIN), draft-murchison-sasl-login (LOGIN), 2195 (CRAM-MD5),
5802 + 7677 (SCRAM-SHA-256, without channel binding).
"""

import base64
import hashlib
import hmac
import os


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def auth_plain(smtp, user, password):
    blob = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
    return smtp.docmd("AUTH", "PLAIN " + _b64(blob))


def auth_login(smtp, user, password):
    code, resp = smtp.docmd("AUTH", "LOGIN")
    if code != 334:
        return code, resp
    code, resp = smtp.docmd(_b64(user.encode("utf-8")))
    if code != 334:
        return code, resp
    return smtp.docmd(_b64(password.encode("utf-8")))


def auth_cram_md5(smtp, user, password):
    code, resp = smtp.docmd("AUTH", "CRAM-MD5")
    if code != 334:
        return code, resp
    challenge = base64.b64decode(resp)
    digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
    return smtp.docmd(_b64(user.encode("utf-8") + b" " + digest.encode("ascii")))


def auth_scram_sha256(smtp, user, password):
    """SCRAM-SHA-256 (no channel binding). Also verifies the server's signature."""
    nonce = _b64(os.urandom(18))
    saslname = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = "n=%s,r=%s" % (saslname, nonce)
    code, resp = smtp.docmd("AUTH", "SCRAM-SHA-256 " + _b64(("n,," + first_bare).encode("utf-8")))
    if code != 334:
        return code, resp
    server_first = base64.b64decode(resp).decode("utf-8")
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(nonce), "server nonce does not extend ours"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"),
                                 base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_wo_proof = "c=%s,r=%s" % (_b64(b"n,,"), attrs["r"])
    auth_message = ",".join([first_bare, server_first, final_wo_proof]).encode("utf-8")
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    code, resp = smtp.docmd(_b64((final_wo_proof + ",p=" + _b64(proof)).encode("utf-8")))
    if code == 334:
        server_final = base64.b64decode(resp).decode("utf-8")
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        want = "v=" + _b64(hmac.new(server_key, auth_message, hashlib.sha256).digest())
        assert server_final == want, "server signature wrong: %r" % server_final
        code, resp = smtp.docmd("")
    return code, resp


MECHANISMS = {
    "PLAIN": auth_plain,
    "LOGIN": auth_login,
    "CRAM-MD5": auth_cram_md5,
    "SCRAM-SHA-256": auth_scram_sha256,
}


def authenticate(smtp, mechanism, user, password):
    """Run one SASL exchange; returns the final (code, text). EHLO must have been sent."""
    return MECHANISMS[mechanism.upper()](smtp, user, password)
