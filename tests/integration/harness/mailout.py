"""Running `mailout send` from the tests, and checking it never leaks the password.

mailout_bin(): $MAILOUT_BIN, else <repo>/build/src/cli/mailout.
run_mailout(args, password=None): runs it, feeding the password on stdin (with one trailing
newline, which --password-stdin must strip) unless args already say --password-file.
With --json in args, stdout must be exactly one JSON object. Whenever a password or a
password file was involved, neither the password nor its base64 forms (PLAIN blob, LOGIN
reply) may appear in stdout or stderr. Both checks fail the test on the spot.
"""

import base64
import json
import os
import subprocess
import typing

from .servers import REPO_ROOT


def mailout_bin():
    return os.environ.get("MAILOUT_BIN") or os.path.join(REPO_ROOT, "build", "src", "cli", "mailout")


class MailoutResult(typing.NamedTuple):
    rc: int
    stdout: str
    stderr: str
    json: typing.Optional[dict]

    @property
    def output(self):
        return self.stdout + self.stderr


def secret_forms(password, username=None):
    """The password as it could leak: plain, and base64 as PLAIN/LOGIN would send it."""
    pw = password.encode("utf-8")
    forms = [password, base64.b64encode(pw).decode("ascii")]
    if username is not None:
        u = username.encode("utf-8")
        for blob in (b"\0" + u + b"\0" + pw, u + b"\0" + u + b"\0" + pw):
            forms.append(base64.b64encode(blob).decode("ascii"))
    # A few bytes of the password could match by accident in base64 noise only if very
    # short; every test password is 6+ characters.
    return [f for f in forms if f]


def assert_no_secret(text, password, username=None, where="output"):
    for form in secret_forms(password, username):
        assert form not in text, "the password leaked into %s (as %r)" % (where, form)


def _json_strings(obj):
    """Every string (keys too) inside a parsed JSON value, decoded."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _json_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _json_strings(v)


def _arg_value(args, name):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def run_mailout(args, password=None, timeout_s=180, stdin_text=None):
    """Run `mailout <args>`; return MailoutResult(rc, stdout, stderr, json).

    password: fed on stdin as password + "\\n" and "--password-stdin" is added, unless args
    contain --password-stdin/--password-file already (then pass stdin_text yourself, or the
    password is only used for the leak checks).
    """
    args = [str(a) for a in args]
    stdin = stdin_text
    if password is not None and "--password-file" not in args:
        if "--password-stdin" not in args:
            args.append("--password-stdin")
        if stdin is None:
            stdin = password + "\n"
    p = subprocess.run([mailout_bin(), *args], input=(stdin or "").encode("utf-8"),
                       capture_output=True, timeout=timeout_s)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    parsed = None
    if "--json" in args:
        try:
            parsed = json.loads(out)
        except ValueError as e:
            raise AssertionError("--json output is not one JSON object (%s); rc=%d\nstdout: %r\nstderr: %r"
                                 % (e, p.returncode, out[:2000], err[:2000])) from None
        assert isinstance(parsed, dict), "--json output is not an object: %r" % out[:500]
    if password is not None:
        user = _arg_value(args, "--username")
        assert_no_secret(out, password, user, "stdout")
        assert_no_secret(err, password, user, "stderr")
        if parsed is not None:
            # JSON may escape the password (\u00e4, \"): look at the decoded strings too.
            assert_no_secret("\n".join(_json_strings(parsed)), password, user, "the JSON")
    return MailoutResult(p.returncode, out, err, parsed)


def describe(result):
    """Text for assertion messages."""
    return "rc=%s\nstdout:\n%s\nstderr:\n%s" % (result.rc, result.stdout[-4000:], result.stderr[-4000:])
