#!/usr/bin/python3
"""gen_providers.py - writes src/account/providers.c from data/providers.tsv.

Why: the provider table is data that people research and correct (hosts, ports, login formats,
app-password rules, MX suffixes, each with its sources). It lives as a TSV so a correction is a
one-line diff with its source next to it; this script turns it into static C data, checked on
the way, so mailout never reads a data file at run time.

Usage (from the repo root, at development time only; the build never runs it):
    /usr/bin/python3 tools/gen_providers.py [data/providers.tsv] [-o src/account/providers.c]

Columns (tab-separated, one header line, "-" means empty):
    id display_name email_domains smtp_host port_starttls port_implicit_tls username_format
    needs_app_password oauth2_supported known_send_limits help_url_app_password source_url
    mx_suffixes notes

What the TSV does not say is decided here, each with its reason:
  - behaviour flags (dots, +tags, sender rules, From rewriting, app-password spaces, OAuth only)
    come from the research notes' sections 11 and 12 (smtp-errors.md), see FLAGS below;
  - which URL is the owner's help page and which the app-password page (official_url(),
    HELP_URL_OVERRIDES, APP_PASSWORD_URL_OVERRIDES);
  - daily_limit is parsed from known_send_limits only when it says "N/day" (messages, not
    recipients).
The generated file also carries the lookup functions (TEMPLATE_LOOKUPS), so providers.c is
self-contained. The local sandbox ("Sandbox (local test inbox)", src/sandbox/) is not research
but mailout's own server: it is a built-in row here (BUILTIN_ROWS), appended to the TSV's rows.
Leaves out: the "custom" (own server) choice, which is a NULL provider.
Stdlib only (Debian's /usr/bin/python3).
"""

import argparse
import csv
import os
import re
import sys
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_TSV = os.path.join(REPO, "data", "providers.tsv")
DEFAULT_OUT = os.path.join(REPO, "src", "account", "providers.c")

COLUMNS = ["id", "display_name", "email_domains", "smtp_host", "port_starttls",
           "port_implicit_tls", "username_format", "needs_app_password", "oauth2_supported",
           "known_send_limits", "help_url_app_password", "source_url", "mx_suffixes", "notes"]

# ---- behaviour flags -------------------------------------------------------------------
# Sources: smtp-errors.md section 11 ("Address rules the form must know") and section 12
# ("App-password formats"); the TSV's notes say the same for each row.
FLAGS = {
    # Gmail ignores dots, for gmail.com/googlemail.com only; Google says dots DO matter on
    # Workspace domains (section 11, row 1).
    "DOTS_IGNORED": {"gmail"},
    # name+tag reaches name: Gmail, Outlook.com and Exchange Online (an organisation setting),
    # Yandex ("probably", unconfirmed), Fastmail (section 11). Google Workspace: not in the
    # notes; third-party Workspace guides (lexnetcg.com "unlimited email addresses") say plus
    # addressing works there as on Gmail. Yahoo has none (base-keyword addresses instead).
    "PLUS_TAGS": {"gmail", "google-workspace", "outlook-com", "microsoft-365", "yandex",
                  "fastmail"},
    # Refuses a sender other than the login (section 11 "Sender must be the login"): Yandex
    # 553 5.7.1, Mail.ru 550, Yahoo 550, Zoho 553 (all data centres), Microsoft SendAsDenied /
    # 5.7.60. AOL, Verizon (on AOL) and AT&T (hosted by Yahoo) run on Yahoo's platform and
    # section 3 covers "Yahoo and AOL (also AT&T)": inferred, not separately verified.
    # La Poste: "550 5.5.0 Emetteur invalide. Invalid Sender" (section 9).
    "SENDER_MUST_MATCH": {"yandex", "mail-ru", "yahoo", "aol", "verizon", "att", "zoho",
                          "zoho-eu", "zoho-in", "zoho-au", "zoho-jp", "zoho-ca",
                          "microsoft-365", "outlook-com", "laposte"},
    # Silently replaces a From that is not the login or a verified "Send mail as" alias
    # (section 1, last row; section 11).
    "REWRITES_FROM": {"gmail", "google-workspace"},
    # App password shown in groups with spaces, which are not part of it (section 12: Google,
    # Fastmail, AOL; Verizon's settings are AOL's, per the TSV notes).
    "STRIP_PASSWORD_SPACES": {"gmail", "google-workspace", "fastmail", "aol", "verizon"},
    # Passwords and app passwords are refused: 535 5.7.139 (section 2; section 12).
    "OAUTH_ONLY": {"outlook-com"},
    # A server on this machine: mailout's own sandbox receiver (src/sandbox/sandbox.h).
    "LOCAL": {"sandbox"},
}
FLAG_ORDER = ["DOTS_IGNORED", "PLUS_TAGS", "SENDER_MUST_MATCH", "REWRITES_FROM",
              "STRIP_PASSWORD_SPACES", "OAUTH_ONLY", "LOCAL"]

# Rows that are not research: mailout's own local test inbox. The port is a placeholder
# (SANDBOX_DEFAULT_PORT): `mailout serve` records the sandbox listener's real port in the data
# folder and puts it into every sandbox account. Same columns as the TSV.
BUILTIN_ROWS = [
    {"id": "sandbox", "display_name": "Sandbox (local test inbox)", "email_domains": "-",
     "smtp_host": "127.0.0.1", "port_starttls": "2526", "port_implicit_tls": "-",
     "username_format": "fixed:sandbox", "needs_app_password": "no", "oauth2_supported": "no",
     "known_send_limits": "-", "help_url_app_password": "-", "source_url": "-",
     "mx_suffixes": "-",
     "notes": "Letters go to the sandbox inbox in mailout's data folder, not to the internet: "
              "see them in the admin panel (Sandbox inbox) or with `mailout sandbox list`. A real "
              "SMTP conversation with STARTTLS and AUTH; faults of real providers can be switched "
              "on with `mailout sandbox fault`."},
]

# Hosts of aggregators, forums and third-party guides: fine as research sources, not as the
# page we send a shop owner to.
THIRD_PARTY_HOSTS = {
    "github.com", "gist.github.com", "pastebin.com", "developer.nylas.com", "docs.rs",
    "glama.ai", "wiki.stretchpowered.com", "support.resales-online.com", "spreecommerce.org",
    "dev.to", "rubydoc.info", "nango.dev", "bentonow.com", "microsoft.github.io",
    "cloud.google.com",
}

# help_url where the rule in help_url_for() picks a poor page.
HELP_URL_OVERRIDES = {
    # The only official source is Yandex's OAuth page; the mail-clients page (the row's help
    # column) is the one that explains SMTP access and app passwords.
    "yandex": "https://yandex.com/support/mail/mail-clients/others.html",
    # The first official source is an SDK reference page (SendRawEmail); the help column is
    # the SES SMTP guide.
    "amazon-ses": "https://docs.aws.amazon.com/ses/latest/dg/send-email-smtp.html",
}

# app_password_url where the help column holds something else.
APP_PASSWORD_URL_OVERRIDES = {
    # The column points at chatmail's provider-db page; Fastmail's own help page
    # (fastmail.com/help/clients/apppassword.html) walks through Settings > Privacy & Security.
    "fastmail": "https://www.fastmail.com/help/clients/apppassword.html",
    # The column is the SMTP AUTH page for administrators (kept as help_url). Microsoft's page
    # on app passwords for legacy per-user MFA, as linked from Nylas' app-password guide
    # (developer.nylas.com/docs/provider-guides/app-passwords).
    "microsoft-365": "https://support.microsoft.com/en-us/account-billing/using-app-passwords-"
                     "with-apps-that-don-t-support-two-step-verification-"
                     "5896ed9b-4263-e681-128a-a6f2979a7944",
}

USERNAME_FORMATS = {
    "full_email": "ACCOUNT_USERNAME_FULL_EMAIL",
    "local_part": "ACCOUNT_USERNAME_LOCAL_PART",
    "other": "ACCOUNT_USERNAME_OTHER",
}
APP_PASSWORD = {
    "no": "ACCOUNT_APP_PASSWORD_NO",
    "yes": "ACCOUNT_APP_PASSWORD_YES",
    "when-2fa": "ACCOUNT_APP_PASSWORD_WHEN_2FA",
}

HOST_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|\{region\})"
                     r"(?:\.(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|\{region\}))+$")
IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
DOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}"
                       r"[a-z0-9])?)+$|^[a-z0-9-]+\.[a-z]+$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# "500/day", "2000/day per user", "300 emails/day": messages a day. Not "recipients/day".
DAILY_RE = re.compile(r"(?:^|[\s(:;])(\d+)\s*(?:(?:emails?|messages?)\s*)?/\s*day\b")


class TableError(Exception):
    pass


def split_list(value):
    if value.strip() in ("", "-"):
        return []
    return [v.strip().lower() for v in value.split(",") if v.strip()]


def split_urls(value):
    if value.strip() in ("", "-"):
        return []
    return value.split()


def port(value, where):
    if value.strip() in ("", "-"):
        return 0
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise TableError("%s: port %r is not 1-65535" % (where, value))
    return int(value)


def official_url(url):
    host = (urlparse(url).hostname or "").lower()
    return host not in THIRD_PARTY_HOSTS


def help_url_for(row, app_password):
    """The provider's own page for the owner: override, else the first official source,
    else the help column (which, with app passwords, may be the creation page)."""
    if row["id"] in HELP_URL_OVERRIDES:
        return HELP_URL_OVERRIDES[row["id"]]
    for url in split_urls(row["source_url"]):
        if official_url(url):
            return url
    for url in split_urls(row["help_url_app_password"]):
        if official_url(url):
            return url
    return APP_PASSWORD_URL_OVERRIDES.get(row["id"])


def app_password_url_for(row, app_password):
    """Where the owner creates an app password: the last URL of the help column (the first
    is often the explanation, the last the settings page), only for providers that use them."""
    if app_password == "no":
        return None
    if row["id"] in APP_PASSWORD_URL_OVERRIDES:
        return APP_PASSWORD_URL_OVERRIDES[row["id"]]
    urls = split_urls(row["help_url_app_password"])
    return urls[-1] if urls else None


def daily_limit(text):
    m = DAILY_RE.search(text)
    return int(m.group(1)) if m else 0


def parse_row(row, lineno):
    where = "line %d (%s)" % (lineno, row.get("id", "?"))
    pid = row["id"].strip()
    if not ID_RE.match(pid):
        raise TableError("%s: id %r must be lowercase letters, digits and '-'" % (where, pid))
    host = row["smtp_host"].strip().lower()
    if not (HOST_RE.match(host) or IPV4_RE.match(host)):
        raise TableError("%s: smtp_host %r is not a host name" % (where, host))
    p_starttls = port(row["port_starttls"], where)
    p_tls = port(row["port_implicit_tls"], where)
    if p_starttls == 0 and p_tls == 0:
        raise TableError("%s: neither a STARTTLS nor an implicit-TLS port" % where)
    fmt = row["username_format"].strip()
    fixed = None
    if fmt.startswith("fixed:"):
        fixed = fmt[len("fixed:"):]
        if not fixed:
            raise TableError("%s: empty fixed user name" % where)
        fmt = "other"
    if fmt not in USERNAME_FORMATS:
        raise TableError("%s: username_format %r" % (where, fmt))
    app = row["needs_app_password"].strip()
    if app not in APP_PASSWORD:
        raise TableError("%s: needs_app_password %r" % (where, app))
    oauth = row["oauth2_supported"].strip()
    if oauth not in ("yes", "no"):
        raise TableError("%s: oauth2_supported %r" % (where, oauth))
    domains = split_list(row["email_domains"])
    mx = split_list(row["mx_suffixes"])
    for d in domains + mx:
        if not DOMAIN_RE.match(d):
            raise TableError("%s: %r is not a domain" % (where, d))
    limits = row["known_send_limits"].strip()
    if limits in ("", "-", "unknown"):
        limits = None
    flags = [f for f in FLAG_ORDER if pid in FLAGS[f]]
    if "OAUTH_ONLY" in flags and oauth != "yes":
        raise TableError("%s: OAuth only but oauth2_supported is not yes" % where)
    notes = row["notes"].strip()
    return {
        "id": pid,
        "name": row["display_name"].strip(),
        "domains": domains,
        "host": host,
        "port_starttls": p_starttls,
        "port_tls": p_tls,
        "username_format": USERNAME_FORMATS[fmt],
        "fixed_username": fixed,
        "app_password": APP_PASSWORD[app],
        "oauth2": oauth == "yes",
        "daily_limit": daily_limit(limits or ""),
        "limits": limits,
        "app_password_url": app_password_url_for(row, app),
        "help_url": help_url_for(row, app),
        "mx": mx,
        "flags": flags,
        "notes": notes if notes not in ("", "-") else None,
    }


def read_table(path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header != COLUMNS:
            raise TableError("%s: header must be %s" % (path, "\t".join(COLUMNS)))
        rows = []
        for lineno, fields in enumerate(reader, start=2):
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != len(COLUMNS):
                raise TableError("%s line %d: %d fields, want %d"
                                 % (path, lineno, len(fields), len(COLUMNS)))
            rows.append(parse_row(dict(zip(COLUMNS, fields)), lineno))
    for i, row in enumerate(BUILTIN_ROWS):
        rows.append(parse_row(row, -1 - i))
    check_table(rows)
    return rows


def check_table(rows):
    ids, domains, suffixes = {}, {}, {}
    for r in rows:
        if r["id"] in ids:
            raise TableError("id %r twice" % r["id"])
        ids[r["id"]] = r
        for d in r["domains"]:
            if d in domains:
                raise TableError("domain %r in %s and %s" % (d, domains[d], r["id"]))
            domains[d] = r["id"]
        for s in r["mx"]:
            if s in suffixes:
                raise TableError("MX suffix %r in %s and %s" % (s, suffixes[s], r["id"]))
            suffixes[s] = r["id"]
    for flag, members in FLAGS.items():
        unknown = members - set(ids)
        if unknown:
            raise TableError("FLAGS[%s] names unknown ids %s" % (flag, sorted(unknown)))
    for pid in list(HELP_URL_OVERRIDES) + list(APP_PASSWORD_URL_OVERRIDES):
        if pid not in ids:
            raise TableError("a URL override names unknown id %r" % pid)
    if "custom" in ids:
        raise TableError("\"custom\" is reserved: a NULL provider means the owner's own server")


# ---- C output ----------------------------------------------------------------------------

def c_escape(s):
    out = []
    prev = ""
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise TableError("control character in %r" % s)
        elif ch == "?" and prev == "?":
            out.append("\\?")  # no trigraphs in C17
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def c_string(s, indent, width=100):
    """A C string literal, split into adjacent literals after spaces when it is long; or NULL.
    UTF-8 is kept as is (the source files are UTF-8)."""
    if s is None:
        return "NULL"
    esc = c_escape(s)
    avail = max(40, width - indent - 3)
    if len(esc) <= avail:
        return '"%s"' % esc
    pieces, cur = [], ""
    for word in re.split(r"(?<= )", esc):
        if cur and len(cur) + len(word) > avail:
            pieces.append(cur)
            cur = ""
        cur += word
    pieces.append(cur)
    return ("\n" + " " * indent).join('"%s"' % p for p in pieces)


def c_ident(pid):
    return "p_" + pid.replace("-", "_")


def names_array(name, values):
    if not values:
        return None
    lines = ["static const char *const %s[] = {" % name]
    cur = "   "
    for v in values:
        item = ' "%s",' % v
        if len(cur) + len(item) > 96:
            lines.append(cur)
            cur = "   "
        cur += item
    if len(cur) + len(" NULL,") > 96:
        lines.append(cur)
        cur = "   "
    cur += " NULL,"
    lines.append(cur)
    lines.append("};")
    return "\n".join(lines)


HEADER = """\
/*
 * providers.c - the built-in provider table and its look-ups.
 *
 * generated by tools/gen_providers.py from providers.tsv; edit the generator or the table,
 * not this file. (data/providers.tsv -> /usr/bin/python3 tools/gen_providers.py)
 *
 * Each row is what the research in data/providers.tsv found, with its sources there; rows
 * whose notes say "not verified" are best knowledge, not tested fact. Behaviour flags come
 * from the address rules in the research notes (see FLAGS in the generator).
 * Leaves out: the owner's own server (a NULL provider).
 * Look-ups are linear scans over %(rows)d rows and %(names)d names: fine below 10k rows.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "account/account.h"

/* An empty NULL-terminated list, so callers can always iterate. */
static const char *const no_names[] = {NULL};

/* The generator lays the table out; clang-format would only reflow it. */
/* clang-format off */
"""

TEMPLATE_LOOKUPS = r"""/* clang-format on */

/* ---- look-ups (written by the generator's TEMPLATE_LOOKUPS) -------------------------- */

#define PROVIDER_COUNT (sizeof(providers) / sizeof(providers[0]))

size_t
account_provider_count(void)
{
    return PROVIDER_COUNT;
}

const struct account_provider *
account_provider_at(size_t i)
{
    return i < PROVIDER_COUNT ? &providers[i] : NULL;
}

const struct account_provider *
account_provider_find(const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < PROVIDER_COUNT; i++)
        if (strcasecmp(providers[i].id, id) == 0)
            return &providers[i];
    return NULL;
}

/* Length of name without one trailing dot (a fully qualified "gmail.com."). */
static size_t
name_len(const char *name)
{
    size_t n = strlen(name);

    if (n > 0 && name[n - 1] == '.')
        n--;
    return n;
}

const struct account_provider *
account_provider_for_domain(const char *domain)
{
    size_t n;

    if (domain == NULL)
        return NULL;
    n = name_len(domain);
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < PROVIDER_COUNT; i++)
        for (const char *const *d = providers[i].domains; *d != NULL; d++)
            if (strlen(*d) == n && strncasecmp(*d, domain, n) == 0)
                return &providers[i];
    return NULL;
}

/* Whether host (n bytes) is suffix or ends in "." suffix, ignoring case. */
static bool
ends_with_label(const char *host, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);

    if (m > n || strncasecmp(host + n - m, suffix, m) != 0)
        return false;
    return m == n || host[n - m - 1] == '.';
}

const struct account_provider *
account_provider_for_mx(const char *mx_host)
{
    const struct account_provider *best = NULL;
    size_t best_len = 0;
    size_t n;

    if (mx_host == NULL)
        return NULL;
    n = name_len(mx_host);
    /* Longest suffix wins: gm0.yahoodns.net (AOL) over yahoodns.net (Yahoo). */
    for (size_t i = 0; i < PROVIDER_COUNT; i++)
        for (const char *const *s = providers[i].mx_suffixes; *s != NULL; s++) {
            size_t m = strlen(*s);
            if (m > best_len && ends_with_label(mx_host, n, *s)) {
                best = &providers[i];
                best_len = m;
            }
        }
    return best;
}
"""


def generate(rows):
    n_names = sum(len(r["domains"]) + len(r["mx"]) for r in rows)
    out = [HEADER % {"rows": len(rows), "names": n_names}]
    for r in rows:
        ident = c_ident(r["id"])
        for kind in ("domains", "mx"):
            arr = names_array("%s_%s" % (ident, kind), r[kind])
            if arr:
                out.append(arr)
    out.append("")
    out.append("static const struct account_provider providers[] = {")
    for r in rows:
        ident = c_ident(r["id"])
        flags = (" |\n" + " " * 17).join("ACCOUNT_PROVIDER_" + f for f in r["flags"]) or "0"
        fields = [
            ("id", c_string(r["id"], 15)),
            ("name", c_string(r["name"], 17)),
            ("domains", "%s_domains" % ident if r["domains"] else "no_names"),
            ("host", c_string(r["host"], 17)),
            ("port_starttls", str(r["port_starttls"])),
            ("port_tls", str(r["port_tls"])),
            ("username_format", r["username_format"]),
            ("app_password", r["app_password"]),
            ("oauth2_supported", "true" if r["oauth2"] else "false"),
            ("daily_limit", str(r["daily_limit"])),
            ("limits_text", c_string(r["limits"], 24)),
            ("app_password_url", c_string(r["app_password_url"], 29)),
            ("help_url", c_string(r["help_url"], 21)),
            ("mx_suffixes", "%s_mx" % ident if r["mx"] else "no_names"),
            ("flags", flags),
            ("notes", c_string(r["notes"], 18)),
            ("fixed_username", c_string(r["fixed_username"], 27)),
        ]
        out.append("    {")
        for name, value in fields:
            out.append("        .%s = %s," % (name, value))
        out.append("    },")
    out.append("};")
    out.append(TEMPLATE_LOOKUPS)
    return "\n".join(out)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tsv", nargs="?", default=DEFAULT_TSV, help="providers.tsv (default: %(default)s)")
    ap.add_argument("-o", "--output", default=DEFAULT_OUT, help="default: %(default)s")
    args = ap.parse_args(argv)
    try:
        rows = read_table(args.tsv)
    except (TableError, OSError) as e:
        print("gen_providers: %s" % e, file=sys.stderr)
        return 1
    text = generate(rows)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.output)
    print("gen_providers: %d providers -> %s" % (len(rows), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
