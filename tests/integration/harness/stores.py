"""Reading back what a server received, parsed by Python's email package.

Two layouts:
- SpoolDirStore: aiosmtpd and smtp-server write NNNNNN-<id>.eml (bytes as received) and then
  NNNNNN-<id>.json (envelope: mail_from, rcpt_tos, port, auth_user, tls). One pair per SMTP
  transaction. The .json is written last, so a .json means a complete message.
- MaildirStore: Postfix's virtual(8) delivers one copy per accepted recipient into one
  catch-all Maildir. virtual(8) prepends Return-Path (the envelope sender), X-Original-To and
  Delivered-To (that copy's envelope recipient) and a Received header, and stores lines ending
  in LF. The envelope is rebuilt from those headers; copies are grouped by Message-ID.

Both give ReceivedMessage objects. wait_for() polls (default 10 s) for a Message-ID; for
Postfix it also waits for the queue to empty, so every copy has been delivered.

Leaves out: IMAP, mbox.
"""

import dataclasses
import email
import email.parser
import email.policy
import json
import os
import time


def norm_msgid(value):
    """'<abc@x>' / ' abc@x ' -> 'abc@x' (None stays None)."""
    if value is None:
        return None
    v = str(value).strip()
    if v.startswith("<") and v.endswith(">"):
        v = v[1:-1]
    return v.strip()


def norm_addr(value):
    v = (value or "").strip()
    if v.startswith("<") and v.endswith(">"):
        v = v[1:-1]
    return v


@dataclasses.dataclass
class ReceivedMessage:
    raw: bytes                 # bytes as stored by the server (first copy for Postfix)
    msg: email.message.EmailMessage
    sender: str                # envelope MAIL FROM
    recipients: list           # envelope RCPT TOs the server accepted (sorted, unique)
    copies: int                # stored transactions (aiosmtpd/smtp-server) or copies (Postfix)
    meta: list                 # per copy: the .json envelope, or the Maildir trace headers
    files: list

    @property
    def message_id(self):
        return norm_msgid(self.msg["Message-ID"])


def _read_header_block(path, limit=256 * 1024):
    with open(path, "rb") as f:
        head = f.read(limit)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = head.find(sep)
        if i >= 0:
            return head[: i + len(sep)]
    return head


_header_parser = email.parser.BytesHeaderParser(policy=email.policy.default)


def _parse_headers(path):
    return _header_parser.parsebytes(_read_header_block(path))


def parse_message(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


class Store:
    """Base: subclasses fill _scan() -> {key: entry} with entry["msgid"] and load()."""

    def __init__(self, name, settled=None, describe_extra=None):
        self.name = name
        self._settled = settled or (lambda: True)
        self._describe_extra = describe_extra
        self._cache = {}

    # --- subclass interface -------------------------------------------------------------
    def _list_keys(self):
        raise NotImplementedError

    def _index_entry(self, key):
        raise NotImplementedError

    def _load(self, keys):
        raise NotImplementedError

    # --- common -------------------------------------------------------------------------
    def _index(self):
        keys = self._list_keys()
        for k in keys:
            if k not in self._cache:
                try:
                    self._cache[k] = self._index_entry(k)
                except FileNotFoundError:  # moved new/ -> cur/ by someone; rescan later
                    continue
        return {k: self._cache[k] for k in keys if k in self._cache}

    def snapshot(self):
        """Opaque mark of what is stored now; pass it to new_since()."""
        return frozenset(self._index())

    def settled(self):
        return self._settled()

    def _group(self, index, keys):
        by_id = {}
        for k in sorted(keys):
            by_id.setdefault(index[k]["msgid"], []).append(k)
        return by_id

    def find(self, message_id):
        """All copies of message_id now stored, merged; None if none."""
        mid = norm_msgid(message_id)
        index = self._index()
        keys = [k for k, e in index.items() if e["msgid"] == mid]
        return self._load(sorted(keys)) if keys else None

    def wait_for(self, message_id, timeout_s=10.0, min_recipients=1):
        """Wait until message_id arrived (and the server is settled); return it.

        min_recipients: wait until at least this many envelope recipients were seen.
        Raises AssertionError, listing what did arrive, if it does not show up in time.
        """
        deadline = time.monotonic() + timeout_s
        found = None
        while True:
            found = self.find(message_id)
            if found is not None and len(found.recipients) >= min_recipients and self.settled():
                return found
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if found is not None:
            return found  # arrived, but fewer recipients than hoped: let the test say so
        raise AssertionError("message %r did not arrive at %s within %.0fs\n%s"
                             % (message_id, self.name, timeout_s, self.describe()))

    def wait_for_many(self, message_ids, timeout_s=20.0):
        """Wait until every Message-ID in message_ids arrived; return {msgid: ReceivedMessage}."""
        want = {norm_msgid(m) for m in message_ids}
        deadline = time.monotonic() + timeout_s
        while True:
            index = self._index()
            have = {e["msgid"] for e in index.values()}
            if want <= have and self.settled():
                break
            if time.monotonic() >= deadline:
                missing = sorted(want - have)
                raise AssertionError("%d of %d messages did not arrive at %s within %.0fs: %s\n%s"
                                     % (len(missing), len(want), self.name, timeout_s,
                                        missing[:10], self.describe()))
            time.sleep(0.1)
        return {m: self.find(m) for m in want}

    def new_since(self, snapshot, settle_s=1.0, timeout_s=10.0):
        """Messages stored after snapshot, after waiting settle_s and for the server to settle."""
        time.sleep(settle_s)
        deadline = time.monotonic() + timeout_s
        while not self.settled() and time.monotonic() < deadline:
            time.sleep(0.1)
        index = self._index()
        new = [k for k in index if k not in snapshot]
        return [self._load(keys) for keys in self._group(index, new).values()]

    def assert_nothing_new(self, snapshot, settle_s=1.0):
        new = self.new_since(snapshot, settle_s=settle_s)
        assert not new, "%s received %d message(s) but should have received none: %s" % (
            self.name, len(new), [(m.message_id, m.msg["Subject"]) for m in new])

    def describe(self, limit=15):
        index = self._index()
        lines = ["%s holds %d stored item(s); last %d:" % (self.name, len(index), min(limit, len(index)))]
        for k in sorted(index)[-limit:]:
            e = index[k]
            lines.append("  %s msgid=%s subject=%r" % (os.path.basename(k), e["msgid"], e.get("subject")))
        if self._describe_extra:
            lines.append(self._describe_extra())
        return "\n".join(lines)


class SpoolDirStore(Store):
    """aiosmtpd / smtp-server: NNNNNN-<id>.eml + .json pairs, one per transaction."""

    def __init__(self, name, directory, port_filter=None, **kw):
        super().__init__(name, **kw)
        self.dir = directory
        self.port_filter = port_filter  # None: all listeners of that process

    def _list_keys(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return [os.path.join(self.dir, n[:-5]) for n in names if n.endswith(".json")]

    def _index_entry(self, key):
        with open(key + ".json", encoding="utf-8") as f:
            meta = json.load(f)
        h = _parse_headers(key + ".eml")
        return {"msgid": norm_msgid(h["Message-ID"]), "subject": h["Subject"], "meta": meta}

    def _index(self):
        index = super()._index()
        if self.port_filter is not None:
            index = {k: e for k, e in index.items() if e["meta"]["port"] in self.port_filter}
        return index

    def _load(self, keys):
        metas = [self._cache[k]["meta"] for k in keys]
        with open(keys[0] + ".eml", "rb") as f:
            raw = f.read()
        rcpts = sorted({r for m in metas for r in m["rcpt_tos"]})
        return ReceivedMessage(raw=raw, msg=parse_message(raw), sender=metas[0]["mail_from"],
                               recipients=rcpts, copies=len(keys), meta=metas,
                               files=[k + ".eml" for k in keys])


class MaildirStore(Store):
    """Postfix virtual(8) catch-all Maildir: one file per delivered recipient."""

    def __init__(self, name, maildir, **kw):
        super().__init__(name, **kw)
        self.maildir = maildir

    def _list_keys(self):
        keys = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            try:
                keys.extend(os.path.join(d, n) for n in os.listdir(d))
            except FileNotFoundError:
                pass
        return keys

    def _index_entry(self, key):
        h = _parse_headers(key)
        return {
            "msgid": norm_msgid(h["Message-ID"]),
            "subject": h["Subject"],
            "return_path": norm_addr(h["Return-Path"]),
            "delivered_to": norm_addr(h["Delivered-To"]),
            "x_original_to": norm_addr(h["X-Original-To"]),
        }

    def _load(self, keys):
        entries = [self._cache[k] for k in keys]
        with open(keys[0], "rb") as f:
            raw = f.read()
        rcpts = sorted({e["delivered_to"] for e in entries})
        return ReceivedMessage(raw=raw, msg=parse_message(raw), sender=entries[0]["return_path"],
                               recipients=rcpts, copies=len(keys), meta=entries, files=list(keys))
