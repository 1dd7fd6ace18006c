"""Integration tests of the HTTP API: `mailout serve --http 127.0.0.1:PORT` with API keys from
`mailout apikey create`, delivering through aiosmtpd (conftest.py).

A shop's code POSTs JSON (or a ready-made RFC 5322 message) with "Authorization: Bearer KEY";
mailout answers 202 {"id"} once the message is committed to the queue, and the delivery
worker that `serve` runs hands it to the account's server. GET /api/v1/messages/{id} tells
what became of it. Bad input is refused with 400 and {"errors": [{"field", "message"}]}
naming the field at fault; a missing, wrong or revoked key with 401.

Each test says how the server behaves, what we run, what must arrive (read back from
aiosmtpd's store and parsed by Python's email package) and the HTTP status (or exit code).

One service runs for the whole module: its data folder has the default account (aiosmtpd's
STARTTLS listener, the run's CA, sender name with non-ASCII letters) and an API key.
`serve` gets --max-body 262144 so the oversized-body cases stay small.
The module is skipped when the binary does not exist; it fails when `serve` does not start.
"""

import base64
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import uuid

import pytest

from harness import netutil, procs
from harness.mailout import describe, mailout_bin, run_mailout
from harness.servers import USERS

BIN = mailout_bin()
if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
    pytest.skip("mailout binary not built yet: %s (build it, or set MAILOUT_BIN)" % BIN,
                allow_module_level=True)

SHOP = "shop@example.test"
PASSWORD = USERS[SHOP]
SENDER_NAME = "Shöp Ünïcode"
MAX_BODY = 262144
STATES = {"queued", "sending", "sent", "deferred", "failed", "uncertain"}


# --- the service -----------------------------------------------------------------------------

def mo(home_dir, *args, password=None, stdin_text=None, timeout_s=60):
    return run_mailout(["--home", home_dir, *args], password=password, stdin_text=stdin_text,
                       timeout_s=timeout_s)


class Api:
    """The running service: base address, a key, the data folder, an HTTP helper."""

    def __init__(self, home, port, key, proc):
        self.home = home
        self.port = port
        self.key = key
        self.proc = proc

    def request(self, method, path, body=None, key=None, headers=None, auth=True,
                content_type="application/json"):
        """One request on a fresh connection. body: bytes, str or a JSON-able object.
        Returns (status, headers as a case-insensitive dict of lists, parsed JSON or None)."""
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = "Bearer " + (key or self.key)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None and content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            return read_response(conn.getresponse())
        finally:
            conn.close()

    def post(self, message, **kw):
        return self.request("POST", "/api/v1/messages", message, **kw)

    def get(self, msg_id, **kw):
        return self.request("GET", "/api/v1/messages/%s" % msg_id, **kw)

    def wait_state(self, msg_id, want, timeout_s=20.0):
        """Poll GET until state is in want; return the last JSON."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, _h, j = self.get(msg_id)
            assert status == 200, (status, j)
            if j["state"] in want or time.monotonic() > deadline:
                return j
            time.sleep(0.1)


def read_response(resp):
    raw = resp.read()
    headers = {}
    for k, v in resp.getheaders():
        headers.setdefault(k.lower(), []).append(v)
    parsed = None
    if raw:
        ctype = headers.get("content-type", [""])[0]
        assert ctype == "application/json; charset=utf-8", (resp.status, ctype, raw[:300])
        parsed = json.loads(raw.decode("utf-8"))
    # every response: the security headers, never a cookie
    assert headers.get("x-content-type-options") == ["nosniff"], headers
    assert headers.get("cache-control") == ["no-store"], headers
    assert "set-cookie" not in headers, headers
    return resp.status, headers, parsed


def set_account(home_dir, port, certs):
    r = mo(home_dir, "account", "set", "--email", SHOP, "--username", SHOP, "--sender-name",
           SENDER_NAME, "--host", "localhost", "--port", str(port), "--security", "starttls",
           "--ca-file", certs.ca_file, "--json", password=PASSWORD)
    assert r.rc == 0, "account set failed\n%s" % describe(r)


def create_key(home_dir, name):
    r = mo(home_dir, "apikey", "create", name)
    assert r.rc == 0, describe(r)
    key = r.stdout.strip()
    assert key.startswith("mo_") and len(key) == 46, r.stdout
    return key


def start_serve(run_dir, home_dir, key, name="serve"):
    """`mailout --home HOME serve --http 127.0.0.1:PORT --max-body MAX_BODY`, listening."""
    port = netutil.free_port()
    log = os.path.join(run_dir.sub("api"), name + ".log")
    proc = procs.ManagedProcess("mailout-" + name, [BIN, "--home", home_dir, "serve", "--http",
                                                    "127.0.0.1:%d" % port, "--max-body",
                                                    str(MAX_BODY)], log, run_dir)
    proc.start(ready_prefix=None)
    try:
        netutil.wait_for_port(port, alive=proc.alive)
    except Exception:
        proc.stop()
        raise AssertionError("mailout serve did not start; log:\n%s" % proc.log_tail())
    return Api(home_dir, port, key, proc)


@pytest.fixture(scope="module")
def api(run_dir, certs, aiosmtpd, tmp_path_factory):
    home_dir = str(tmp_path_factory.mktemp("api") / "home")
    set_account(home_dir, aiosmtpd.port("starttls"), certs)
    service = start_serve(run_dir, home_dir, create_key(home_dir, "shop"))
    try:
        yield service
    finally:
        service.proc.stop()


def token():
    return uuid.uuid4().hex[:10]


def queued_count(home_dir):
    r = mo(home_dir, "queue", "list", "--json", "--limit", "1000")
    assert r.rc == 0, describe(r)
    return len(r.json["messages"])


def errors_of(j):
    assert isinstance(j, dict) and isinstance(j.get("errors"), list) and j["errors"], j
    for e in j["errors"]:
        assert set(e) == {"field", "message"}, e
        assert isinstance(e["message"], str) and e["message"], e
    return [e["field"] for e in j["errors"]]


# --- the good path -----------------------------------------------------------------------------

def test_json_message_is_queued_and_delivered(api, aiosmtpd):
    """Server: aiosmtpd's STARTTLS listener, behaving.
    We run: POST /api/v1/messages with a UTF-8 subject, text and HTML, an attachment holding
    every byte value, cc, bcc, a custom header, no from (the account's sender is used).
    Must arrive: one message, subject and body as sent, the attachment byte for byte, the
    custom header, From = the account's sender and name, the Bcc recipient in the envelope
    but in no header; GET says queued/sending/sent, then sent with 250 for every recipient.
    Status: 202 with the id and a Location; GET 200."""
    t = token()
    blob = bytes(range(256)) * 40
    to, cc, bcc = ("Bob <bob-%s@example.org>" % t, "cc-%s@example.org" % t,
                   "hidden-%s@example.org" % t)
    subject = "Bestellung %s – Grüße 🎉" % t
    status, headers, j = api.post({
        "to": [to], "cc": [cc], "bcc": [bcc], "subject": subject,
        "text": "Hallo Bob,\nIhre Bestellung ist unterwegs.\n", "html": "<p>Hallo <b>Bob</b></p>",
        "headers": {"X-Order": "order-%s" % t},
        "attachments": [{"filename": "rechnung-ä.bin", "content_type": "application/octet-stream",
                         "content_base64": base64.b64encode(blob).decode("ascii")}],
    })
    assert status == 202, (status, j)
    assert isinstance(j["id"], int) and j["id"] > 0, j
    assert headers["location"] == ["/api/v1/messages/%d" % j["id"]], headers
    msg_id = j["id"]

    status, _h, info = api.get(msg_id)
    assert status == 200 and info["id"] == msg_id and info["state"] in STATES, info
    assert info["state"] in {"queued", "sending", "sent"}, info
    assert info["subject"] == subject, info
    assert info["message_id"] == j["message_id"], (info, j)
    assert sorted(r["address"] for r in info["recipients"]) == sorted(
        ["bob-%s@example.org" % t, cc, bcc]), info

    got = aiosmtpd.store.wait_for(j["message_id"], timeout_s=20, min_recipients=3)
    assert got.copies == 1
    assert got.sender == SHOP, got.sender
    assert got.recipients == sorted(["bob-%s@example.org" % t, cc, bcc]), got.recipients
    m = got.msg
    assert m["Subject"] == subject
    assert m["From"].addresses[0].addr_spec == SHOP
    assert m["From"].addresses[0].display_name == SENDER_NAME
    assert m["X-Order"] == "order-%s" % t
    assert m["Bcc"] is None and b"hidden-" not in got.raw and b"Bcc" not in got.raw
    # quoted-printable keeps the CRLF line ends as written on the wire
    plain = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain == "Hallo Bob,\nIhre Bestellung ist unterwegs.\n"
    assert "<b>Bob</b>" in m.get_body(("html",)).get_content()
    atts = list(m.iter_attachments())
    assert len(atts) == 1 and atts[0].get_filename() == "rechnung-ä.bin"
    assert atts[0].get_content() == blob

    final = api.wait_state(msg_id, {"sent", "failed", "deferred"})
    assert final["state"] == "sent", final
    assert final["attempts"] >= 1 and final["last_code"] == 250, final
    assert all(r["state"] == "delivered" and r["code"] == 250 for r in final["recipients"]), final
    for k in ("id", "state", "attempts", "last_reply", "last_code", "created_at", "updated_at",
              "next_attempt_at", "message_id", "subject", "from", "recipients"):
        assert k in final, k


def test_explicit_from_and_reply_to(api, aiosmtpd):
    """Server: aiosmtpd, behaving.
    We run: POST with from (a display name with a comma), reply_to and an HTML-only body.
    Must arrive: From and Reply-To as given; envelope sender the from address.
    Status: 202."""
    t = token()
    status, _h, j = api.post({"from": "\"Shop, Support\" <%s>" % SHOP,
                              "reply_to": "help-%s@example.test" % t,
                              "to": ["r-%s@example.org" % t], "subject": "html only",
                              "html": "<p>only html</p>"})
    assert status == 202, j
    got = aiosmtpd.store.wait_for(j["message_id"], timeout_s=20)
    assert got.sender == SHOP
    assert got.msg["From"].addresses[0].display_name == "Shop, Support"
    assert got.msg["Reply-To"].addresses[0].addr_spec == "help-%s@example.test" % t
    assert "only html" in got.msg.get_body(("html",)).get_content()


def test_raw_message(api, aiosmtpd):
    """Server: aiosmtpd, behaving.
    We run: POST /api/v1/messages/raw with a message as a PHP script writes it (LF line ends,
    a Bcc header, no Date, no Message-ID), envelope from the headers.
    Must arrive: the message with CRLF line ends, a Date and a Message-ID added, no Bcc header,
    the Bcc address in the envelope; GET knows its Message-ID.
    Status: 202, then 200."""
    t = token()
    text = ("From: Shop <%s>\nTo: raw-%s@example.org\nBcc: secret-%s@example.org\n"
            "Subject: raw %s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
            "Grüße aus dem Rohformat.\n" % (SHOP, t, t, t))
    status, _h, j = api.request("POST", "/api/v1/messages/raw", text,
                                content_type="message/rfc822")
    assert status == 202, j
    got = aiosmtpd.store.wait_for(j["message_id"], timeout_s=20, min_recipients=2)
    assert got.sender == SHOP
    assert got.recipients == sorted(["raw-%s@example.org" % t, "secret-%s@example.org" % t])
    assert b"Bcc" not in got.raw and b"secret-" not in got.raw
    assert b"\n" not in got.raw.replace(b"\r\n", b""), "a bare LF reached the server"
    assert got.msg["Date"] is not None and got.msg["Subject"] == "raw %s" % t
    assert "Rohformat" in got.msg.get_content()
    status, _h, info = api.get(j["id"])
    assert status == 200 and info["message_id"] == j["message_id"], info


def test_raw_message_envelope_from_query(api, aiosmtpd):
    """Server: aiosmtpd, behaving.
    We run: POST /api/v1/messages/raw?to=A&to=B (a + in one, percent-encoded) with a message
    whose To names someone else; text/plain as the content type.
    Must arrive: at A and B only (the query wins over the headers).
    Status: 202."""
    t = token()
    a, b = "q1-%s@example.org" % t, "q2+tag-%s@example.org" % t
    text = "From: %s\r\nTo: other-%s@example.org\r\nSubject: q\r\n\r\nx\r\n" % (SHOP, t)
    path = "/api/v1/messages/raw?to=%s&to=%s" % (a, b.replace("+", "%2B"))
    status, _h, j = api.request("POST", path, text, content_type="text/plain")
    assert status == 202, j
    got = aiosmtpd.store.wait_for(j["message_id"], timeout_s=20, min_recipients=2)
    assert got.recipients == sorted([a, b]), got.recipients


def test_concurrent_clients_all_committed(api):
    """Server: aiosmtpd (the worker delivers in the background; not checked here).
    We run: 8 threads POSTing 20 messages each at once (group commits).
    Must arrive: every request answered 202 with its own id, each id readable with GET.
    Status: 202 for all 160."""
    ids, problems = [], []
    lock = threading.Lock()

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
        for i in range(20):
            body = json.dumps({"to": ["c%d-%d@example.org" % (n, i)], "subject": "c %d %d" % (n, i),
                               "text": "x" * 2000})
            conn.request("POST", "/api/v1/messages", body=body,
                         headers={"Authorization": "Bearer " + api.key,
                                  "Content-Type": "application/json"})
            status, _h, j = read_response(conn.getresponse())
            with lock:
                (ids if status == 202 else problems).append(j["id"] if status == 202 else j)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not problems, problems[:3]
    assert len(ids) == 160 and len(set(ids)) == 160
    for msg_id in ids[::16]:
        status, _h, info = api.get(msg_id)
        assert status == 200 and info["state"] in STATES, info


# --- keys --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["none", "wrong", "malformed", "basic"])
def test_401_without_a_valid_key(api, case):
    """We run: POST and GET with no Authorization, a well-formed key that was never made, a
    malformed one, and HTTP Basic credentials.
    Must arrive: nothing queued.
    Status: 401 with WWW-Authenticate: Bearer and an errors body."""
    before = queued_count(api.home)
    headers = {}
    auth = case != "none"
    key = {"wrong": "mo_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
           "malformed": "mo_short", "basic": None, "none": None}[case]
    if case == "basic":
        auth = False
        headers["Authorization"] = "Basic " + base64.b64encode(b"shop:123456").decode()
    msg = {"to": ["x@example.org"], "subject": "x"}
    for method, path, body in (("POST", "/api/v1/messages", msg), ("GET", "/api/v1/messages/1",
                                                                    None)):
        status, h, j = api.request(method, path, body, key=key, auth=auth, headers=headers)
        assert status == 401, (case, method, status, j)
        assert h["www-authenticate"][0].startswith("Bearer"), h
        assert errors_of(j) == [None]
    assert queued_count(api.home) == before


def test_key_lifecycle(api):
    """We run: `apikey create` while the service runs, use the key, `apikey revoke`, use it again;
    `apikey list` (plain and --json) throughout.
    Must arrive: the new key works at once; the list never shows a key, only its prefix; after
    revoke the key gets 401 within 3 seconds; a name cannot be used twice (exit 2).
    Status: 202, then 401."""
    name = "lifecycle-" + token()
    r = mo(api.home, "apikey", "create", name)
    assert r.rc == 0, describe(r)
    key = r.stdout.strip()
    assert "cannot be shown again" in r.stderr, r.stderr
    status, _h, j = api.post({"to": ["k@example.org"], "subject": "k"}, key=key)
    assert status == 202, j

    r = mo(api.home, "apikey", "list", "--json")
    assert r.rc == 0, describe(r)
    mine = [k for k in r.json["keys"] if k["name"] == name]
    assert len(mine) == 1 and mine[0]["revoked"] is False and key.startswith(mine[0]["prefix"])
    assert key not in r.stdout
    r = mo(api.home, "apikey", "list")
    assert r.rc == 0 and name in r.stdout and key not in r.stdout, describe(r)

    r = mo(api.home, "apikey", "create", name)
    assert r.rc == 2, describe(r)

    r = mo(api.home, "apikey", "revoke", name)
    assert r.rc == 0, describe(r)
    deadline = time.monotonic() + 3
    while True:
        status, _h, j = api.post({"to": ["k@example.org"], "subject": "k"}, key=key)
        if status == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 401, (status, j)
    r = mo(api.home, "apikey", "list", "--json")
    assert [k["revoked"] for k in r.json["keys"] if k["name"] == name] == [True]
    # the module's own key still works
    status, _h, j = api.post({"to": ["k@example.org"], "subject": "k"})
    assert status == 202, j
    r = mo(api.home, "apikey", "revoke", "no-such-key-" + token())
    assert r.rc == 2, describe(r)


# --- refused input -------------------------------------------------------------------------------

BAD_BODIES = [
    ("bad-json", '{"to": ["a@example.org"], "subject": "x"', [None]),
    ("not-an-object", '["a@example.org"]', [None]),
    ("missing-to", {"subject": "x", "text": "y"}, ["to"]),
    ("missing-subject", {"to": ["a@example.org"]}, ["subject"]),
    ("bad-address", {"to": ["a@example.org", "a@@b"], "subject": "x"}, ["to[1]"]),
    ("crlf-subject", {"to": ["a@example.org"], "subject": "hi\r\nBcc: victim@example.org"},
     ["subject"]),
    ("crlf-header", {"to": ["a@example.org"], "subject": "x",
                     "headers": {"X-Foo": "a\r\nBcc: victim@example.org"}}, ["headers.X-Foo"]),
    ("reserved-header", {"to": ["a@example.org"], "subject": "x", "headers": {"Bcc": "v@x.org"}},
     ["headers.Bcc"]),
    ("bad-base64", {"to": ["a@example.org"], "subject": "x",
                    "attachments": [{"filename": "a.pdf", "content_base64": "not base64!"}]},
     ["attachments[0].content_base64"]),
    ("unknown-account", {"to": ["a@example.org"], "subject": "x", "account": "nope"},
     ["account"]),
    ("several", {"to": ["a@@b"], "cc": ["ok@example.org", "x"], "subject": "a\nb"},
     ["to[0]", "cc[1]", "subject"]),
]


@pytest.mark.parametrize("case,body,fields", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_400_names_the_field(api, aiosmtpd, case, body, fields):
    """We run: POST /api/v1/messages with a body that is wrong in one (or several) ways.
    Must arrive: nothing queued, nothing at the server; each problem named by its field.
    Status: 400 with {"errors": [{"field", "message"}]}."""
    before = queued_count(api.home)
    status, _h, j = api.post(body)
    assert status == 400, (case, status, j)
    assert errors_of(j) == fields, j
    assert queued_count(api.home) == before


def test_oversized_bodies(api):
    """We run: a JSON body over --max-body (Content-Length), the same chunked, and a
    Content-Length over the limit with Expect: 100-continue (the body is never sent).
    Must arrive: nothing queued.
    Status: 413 with an errors body each time; with Expect, before any body byte."""
    before = queued_count(api.home)
    big = {"to": ["a@example.org"], "subject": "big", "text": "x" * (MAX_BODY + 10)}
    status, _h, j = api.post(big)
    assert status == 413 and errors_of(j) == [None], (status, j)

    data = json.dumps(big).encode()
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.request("POST", "/api/v1/messages",
                     body=(data[i:i + 16384] for i in range(0, len(data), 16384)),
                     headers={"Authorization": "Bearer " + api.key,
                              "Content-Type": "application/json"}, encode_chunked=True)
        status, _h, j = read_response(conn.getresponse())
    finally:
        conn.close()
    assert status == 413 and errors_of(j) == [None], (status, j)

    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(("POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n"
                   "Expect: 100-continue\r\n\r\n" % (api.key, 50 * MAX_BODY)).encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert queued_count(api.home) == before


def test_raw_refusals(api):
    """We run: raw messages without recipients, with a bad ?to=, with no header, an unknown
    parameter, and the wrong content type.
    Must arrive: nothing queued.
    Status: 400 naming to / to[0] / message / the parameter; 415 for application/json."""
    before = queued_count(api.home)
    cases = [
        ("/api/v1/messages/raw", "From: %s\nSubject: x\n\nbody\n" % SHOP, ["to"]),
        ("/api/v1/messages/raw?to=a@@b", "From: %s\nSubject: x\n\nbody\n" % SHOP, ["to[0]"]),
        ("/api/v1/messages/raw?to=a@example.org", "\njust a body\n", ["message"]),
        ("/api/v1/messages/raw?cc=a@example.org", "Subject: x\n\nbody\n", ["cc"]),
    ]
    for path, text, fields in cases:
        status, _h, j = api.request("POST", path, text, content_type="message/rfc822")
        assert status == 400 and errors_of(j) == fields, (path, status, j)
    status, _h, j = api.request("POST", "/api/v1/messages/raw?to=a@example.org",
                                "Subject: x\n\nbody\n", content_type="application/json")
    assert status == 415 and errors_of(j) == [None], (status, j)
    assert queued_count(api.home) == before


# --- routes -------------------------------------------------------------------------------------

def test_routes_and_methods(api):
    """We run: unknown routes, unknown and malformed ids, wrong methods, HEAD.
    Status: 404 (errors body), 405 with Allow, 200 for HEAD without a body."""
    for path in ("/", "/api/v1/message", "/api/v1/messages/", "/api/v1/messages/abc",
                 "/api/v1/messages/0", "/api/v1/messages/1/x", "/api/v2/messages"):
        status, _h, j = api.request("GET", path)
        assert status == 404 and errors_of(j), (path, status, j)
    status, _h, j = api.get(2 ** 62)
    assert status == 404 and errors_of(j) == ["id"], j
    for method, path, allow in (("PUT", "/api/v1/messages", "POST"),
                                ("GET", "/api/v1/messages", "POST"),
                                ("GET", "/api/v1/messages/raw", "POST"),
                                ("POST", "/api/v1/messages/1", "GET, HEAD"),
                                ("DELETE", "/api/v1/messages/1", "GET, HEAD")):
        status, h, j = api.request(method, path, body=None)
        assert status == 405 and h["allow"] == [allow] and errors_of(j) == [None], (method, path)
    status, _h, j = api.post({"to": ["head@example.org"], "subject": "h"})
    assert status == 202
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.request("HEAD", "/api/v1/messages/%d" % j["id"],
                     headers={"Authorization": "Bearer " + api.key})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
    finally:
        conn.close()


def test_keep_alive(api):
    """We run: a POST and three GETs on one connection.
    Status: 202, then 200 three times, without reconnecting."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    auth = {"Authorization": "Bearer " + api.key}
    try:
        conn.request("POST", "/api/v1/messages",
                     body=json.dumps({"to": ["ka@example.org"], "subject": "ka"}),
                     headers={**auth, "Content-Type": "application/json"})
        status, _h, j = read_response(conn.getresponse())
        assert status == 202
        sock = conn.sock
        for _ in range(3):
            conn.request("GET", "/api/v1/messages/%d" % j["id"], headers=auth)
            status, _h, info = read_response(conn.getresponse())
            assert status == 200 and info["id"] == j["id"]
            assert conn.sock is sock, "the connection was not kept alive"
    finally:
        conn.close()


# --- a full disk ----------------------------------------------------------------------------------

def test_full_disk_is_507(run_dir, certs, aiosmtpd, tmp_path):
    """Server: aiosmtpd (delivery not checked).
    We run: a second service whose data folder is on a 1 MB tmpfs; POST messages with 150 KB
    attachments until the disk is full. Needs root for mount; skipped otherwise.
    Must arrive: 202 while there is room, then 507 with the disk-full error and no field; the
    messages accepted before are still readable, and the service still answers.
    Status: 202, ..., 507."""
    small = tmp_path / "small"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs (needs root): " + r.stderr.strip())
    service = None
    try:
        home_dir = str(small / "home")
        set_account(home_dir, aiosmtpd.port("starttls"), certs)
        service = start_serve(run_dir, home_dir, create_key(home_dir, "shop"), name="serve-full")
        blob = base64.b64encode(os.urandom(150000)).decode("ascii")
        accepted = []
        for i in range(20):
            status, _h, j = service.post({"to": ["full@example.org"], "subject": "full %d" % i,
                                          "attachments": [{"filename": "a.bin",
                                                           "content_base64": blob}]})
            if status != 202:
                break
            accepted.append(j["id"])
        assert status == 507, (status, j)
        assert j == {"errors": [{"field": None,
                                 "message": "the disk is full: the message was not queued"}]}, j
        assert accepted, "not even one message fitted"
        for msg_id in accepted:
            status, _h, info = service.get(msg_id)
            assert status == 200 and info["state"] in STATES, info
    finally:
        if service is not None:
            service.proc.stop()
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
