"""Accounts that send without a login: a relay that accepts this machine as it is (a hosting
company's local relay, a provider's relay by IP). `account set --no-login` stores "no AUTH";
the test letter, the check and queued mail then go out without AUTH, and no password is asked
for or kept."""
import os
import sqlite3

from harness.account_fixtures import home, mo  # noqa: F401  (fixtures and helpers)


def test_no_login_account_sends_without_auth(aiosmtpd, home):  # noqa: F811
    """Server: aiosmtpd plain_noauth port (no STARTTLS, no AUTH; anyone may send).
    We run: `account set --no-login` (no password given), `account show --json`, `test`, then
    `sendmail -t -i` and `queue run`.
    Must arrive: the confirmation letter and the queued message, each read back; the server saw
    no AUTH command. Exit codes: 0 for every command; show reports username null, auth "none",
    password_set false."""
    port = aiosmtpd.port("plain_noauth")
    r = mo(home, "account", "set", "--email", "shop@example.test", "--host", "127.0.0.1",
           "--port", str(port), "--security", "none", "--no-login", "--json")
    assert r.rc == 0, (r.stdout, r.stderr)
    assert r.json["ok"] is True
    r = mo(home, "account", "show", "--json")
    assert r.rc == 0
    assert r.json["username"] is None
    assert r.json["auth"] == "none"
    assert r.json["password_set"] is False
    assert r.json["provider"] is None  # 127.0.0.1 alone names no mail service

    mark = aiosmtpd.events_mark()
    r = mo(home, "test", "--json")
    assert r.rc == 0, (r.stdout, r.stderr)
    assert [s["name"] for s in r.json["steps"]] == ["dns", "connect", "greeting", "send"]
    letter = aiosmtpd.store.wait_for(r.json["message_id"])
    assert "mailout" in str(letter.msg["Subject"])
    assert letter.recipients == ["shop@example.test"]

    message = ("From: shop@example.test\nTo: customer@example.test\n"
               "Subject: order 7\n\nThank you.\n")
    r = mo(home, "sendmail", "-t", "-i", stdin_text=message)
    assert r.rc == 0, r.stderr
    r = mo(home, "queue", "run", "--json")
    assert r.rc == 0, r.stderr
    r = mo(home, "queue", "list", "--state", "sent", "--json")
    sent = r.json["messages"] if isinstance(r.json, dict) else r.json
    assert len(sent) == 1
    arrived = aiosmtpd.store.wait_for(sent[0]["message_id"])
    assert str(arrived.msg["Subject"]) == "order 7"
    assert arrived.sender == "shop@example.test"
    assert aiosmtpd.events(since=mark, port=port, kind="auth_command") == []


def test_login_again_after_no_login(aiosmtpd, home):  # noqa: F811
    """We run: `account set --no-login`, then `account set --username U --password-stdin`.
    Must hold: the second makes it a login account again (auth "auto", username U, password
    set); the password is stored encrypted (not in mailout.db in clear). Exit codes 0."""
    port = aiosmtpd.port("plain_auth")
    r = mo(home, "account", "set", "--email", "shop@example.test", "--host", "127.0.0.1",
           "--port", str(port), "--security", "none", "--no-login")
    assert r.rc == 0, r.stderr
    r = mo(home, "account", "set", "--username", "shop@example.test", "--password-stdin",
           password="123456")
    assert r.rc == 0, r.stderr
    r = mo(home, "account", "show", "--json")
    assert r.json["auth"] == "auto" and r.json["password_set"] is True
    assert r.json["username"] == "shop@example.test"
    db = sqlite3.connect(os.path.join(home, "mailout.db"))
    try:
        row = db.execute("SELECT auth FROM accounts WHERE name = 'default'").fetchone()
    finally:
        db.close()
    assert row[0] == "auto"
    with open(os.path.join(home, "mailout.db"), "rb") as f:
        assert b"123456" not in f.read()
