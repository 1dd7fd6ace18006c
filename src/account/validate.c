/*
 * validate.c - checks every field of an account at once and normalises what
 * the provider needs, so the panel can mark each field with what is wrong
 * and what to do.
 *
 * Why: the help article this product replaces made shop owners remove the
 * dots from Gmail addresses and pick passwords that start and end with
 * letters, because the old form compared addresses byte for byte and
 * mangled passwords. Here a password is never refused for its characters
 * and is stored exactly as typed (the one exception: an app password pasted
 * in its displayed groups "abcd efgh ijkl mnop" loses the spaces, with a
 * note). Addresses are compared the way the provider compares them: Gmail
 * ignores dots and +tags on gmail.com/googlemail.com only, never on Google
 * Workspace domains.
 *
 * Issues are errors (the account cannot be saved), warnings (it will
 * probably fail or surprise) and notes (what mailout changed or reminds);
 * warnings and notes have is_error false.
 * Leaves out: anything that needs the network (account_check does that).
 * Address rules: RFC 5321/5322 via the mime module; IDN host names: RFC 5891
 * via libidn2; ports: RFC 8314 (465, implicit TLS), RFC 6409 (587).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/account.h"
#include "mime/mime.h"

#define VALIDATE_NAME_MAX 64
#define VALIDATE_SENDER_NAME_MAX 200 /* characters */
#define VALIDATE_SECRET_MAX 8192     /* bytes; smtp_auth_new's limit */
#define VALIDATE_TIMEOUT_MAX_S 3600
#define APP_PASSWORD_LEN 16

struct vctx {
    struct account_settings *s;
    struct account_issues *issues;
    const struct account_provider *p;        /* chosen, or recognised by its host */
    bool p_from_host;                        /* p was recognised by the host, not chosen */
    const struct account_provider *domain_p; /* the email domain's provider, or NULL */
    struct mime_address email;
    bool email_ok;
    struct mime_address login; /* the login as an address (username, else email) */
    bool login_ok;
    bool host_ok;
    bool host_is_loopback;
    bool oom;
};

/* ---- small helpers -------------------------------------------------------- */

static void issue_add(struct vctx *v, const char *field, bool is_error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Adds an issue. When the list is full an error replaces the last warning or
 * note (an error must never be lost); a warning is dropped. n_errors counts
 * every error either way.
 */
static void
issue_add(struct vctx *v, const char *field, bool is_error, const char *fmt, ...)
{
    struct account_issues *is = v->issues;
    struct account_issue *it = NULL;
    va_list ap;

    if (is->n < ACCOUNT_ISSUES_MAX) {
        it = &is->items[is->n++];
    } else if (is_error) {
        for (size_t i = is->n; i-- > 0;)
            if (!is->items[i].is_error) {
                it = &is->items[i];
                break;
            }
    }
    if (is_error)
        is->n_errors++;
    if (it == NULL)
        return;
    it->field = field;
    it->is_error = is_error;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof(it->message), fmt, ap);
    va_end(ap);
}

/* Replaces *dst with a copy of val (NULL allowed). false when memory ran out. */
static bool
set_string(struct vctx *v, char **dst, const char *val)
{
    char *copy = NULL;

    if (val != NULL) {
        copy = strdup(val);
        if (copy == NULL) {
            v->oom = true;
            return false;
        }
    }
    free(*dst);
    *dst = copy;
    return true;
}

/* A copy of untrusted text fit for a message: control bytes become '?', long text is cut. */
static const char *
shown(const char *in, char *buf, size_t size)
{
    size_t n = 0;

    if (in == NULL)
        in = "";
    for (; *in != '\0' && n + 1 < size; in++)
        buf[n++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
    buf[n] = '\0';
    if (*in != '\0' && size > 4)
        memcpy(buf + size - 4, "...", 4);
    return buf;
}

/* The provider's name without a trailing "(...)": "Gmail (consumer)" -> "Gmail". */
static const char *
short_name(const struct account_provider *p, char *buf, size_t size)
{
    const char *paren = strstr(p->name, " (");
    size_t n = paren != NULL ? (size_t)(paren - p->name) : strlen(p->name);

    snprintf(buf, size, "%.*s", (int)n, p->name);
    return buf;
}

static bool
is_blank(const char *s)
{
    if (s == NULL)
        return true;
    for (; *s != '\0'; s++)
        if (*s != ' ' && *s != '\t')
            return false;
    return true;
}

static bool
has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool
host_is_template(const struct account_provider *p)
{
    return p != NULL && strchr(p->host, '{') != NULL;
}

/* "local@domain" from a parsed address (domain as written, lowercased). false: too long. */
static bool
address_text(const struct mime_address *a, char *out, size_t size)
{
    int n = snprintf(out, size, "%s@%s", a->local, a->domain);

    return n > 0 && (size_t)n < size;
}

/* Trims spaces and tabs around *str in place (a copy); NULL stays NULL. */
static void
trim_in_place(struct vctx *v, char **str)
{
    const char *s = *str;
    size_t len;

    if (s == NULL)
        return;
    while (*s == ' ' || *s == '\t')
        s++;
    len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (s == *str && len == strlen(*str))
        return;
    {
        char *copy = strndup(s, len);
        if (copy == NULL) {
            v->oom = true;
            return;
        }
        free(*str);
        *str = copy;
    }
}

/*
 * The form a provider compares mailboxes in, for "is the sender the login?":
 * ASCII-lowercased local part and domain; on a dots-ignored domain (gmail.com,
 * googlemail.com) also without dots and +tag, and googlemail.com as gmail.com.
 * Workspace domains are not in the table's domains, so they keep their dots.
 */
static void
mailbox_key(const struct mime_address *a, char *out, size_t size)
{
    const struct account_provider *dp = account_provider_for_domain(a->domain_ascii);
    bool gmail_rules = dp != NULL && (dp->flags & ACCOUNT_PROVIDER_DOTS_IGNORED);
    const char *domain = gmail_rules ? dp->domains[0] : a->domain_ascii;
    size_t n = 0;

    for (const char *c = a->local; *c != '\0' && n + 1 < size; c++) {
        if (gmail_rules && *c == '+')
            break;
        if (gmail_rules && *c == '.')
            continue;
        out[n++] = (char)tolower((unsigned char)*c);
    }
    snprintf(out + n, size - n, "@%s", domain);
    for (char *c = out + n; *c != '\0'; c++)
        *c = (char)tolower((unsigned char)*c);
}

static bool
same_mailbox(const struct mime_address *a, const struct mime_address *b)
{
    char ka[MIME_ADDRESS_MAX + 8];
    char kb[MIME_ADDRESS_MAX + 8];

    mailbox_key(a, ka, sizeof(ka));
    mailbox_key(b, kb, sizeof(kb));
    return strcmp(ka, kb) == 0;
}

static bool
is_loopback_host(const char *h)
{
    unsigned char addr[16];

    if (strcasecmp(h, "localhost") == 0 || strcasecmp(h, "localhost.") == 0)
        return true;
    if (inet_pton(AF_INET, h, addr) == 1)
        return addr[0] == 127;
    if (inet_pton(AF_INET6, h, addr) == 1) {
        static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return memcmp(addr, loop6, 16) == 0 || (memcmp(addr, mapped, 12) == 0 && addr[12] == 127);
    }
    return false;
}

/* Bytes of the white space at s that app-password displays use: space, tab, line breaks,
 * NBSP (U+00A0), narrow NBSP (U+202F), figure space (U+2007); 0 for anything else. */
static size_t
display_space_len(const unsigned char *s)
{
    if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        return 1;
    if (s[0] == 0xc2 && s[1] == 0xa0)
        return 2;
    if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xaf || s[2] == 0x87))
        return 3;
    return 0;
}

/*
 * Whether pw is an app password as the provider shows it: 16 letters (Google)
 * or 16 letters and digits (others), possibly in groups of 4 separated by
 * white space. out receives the 16 characters without the white space.
 * Google's format is documented (research notes, section 12); the others'
 * is assumed, which is why nothing else is ever touched.
 */
static bool
app_password_groups(const char *pw, bool letters_only, char out[APP_PASSWORD_LEN + 1])
{
    const unsigned char *c = (const unsigned char *)pw;
    size_t n = 0;
    size_t run = 0;

    while (*c != '\0') {
        size_t ws = display_space_len(c);
        if (ws > 0) {
            if (run % 4 != 0)
                return false;
            run = 0;
            c += ws;
            continue;
        }
        if (!(isalpha(*c) || (!letters_only && isdigit(*c))) || *c >= 0x80)
            return false;
        if (n == APP_PASSWORD_LEN)
            return false;
        out[n++] = (char)*c++;
        run++;
    }
    out[n] = '\0';
    return n == APP_PASSWORD_LEN && run % 4 == 0;
}

static bool
is_google(const struct account_provider *p)
{
    return p != NULL && (p->flags & ACCOUNT_PROVIDER_REWRITES_FROM) &&
           strcmp(p->host, "smtp.gmail.com") == 0;
}

/* Length in code points of valid UTF-8 text, or -1 when it is not valid UTF-8. */
static long
utf8_length(const char *s)
{
    const unsigned char *c = (const unsigned char *)s;
    long n = 0;

    while (*c != '\0') {
        size_t len;
        unsigned cp;
        if (*c < 0x80) {
            len = 1;
            cp = *c;
        } else if ((*c & 0xe0) == 0xc0) {
            len = 2;
            cp = *c & 0x1fu;
        } else if ((*c & 0xf0) == 0xe0) {
            len = 3;
            cp = *c & 0x0fu;
        } else if ((*c & 0xf8) == 0xf0) {
            len = 4;
            cp = *c & 0x07u;
        } else {
            return -1;
        }
        for (size_t i = 1; i < len; i++) {
            if ((c[i] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (c[i] & 0x3fu);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        c += len;
        n++;
    }
    return n;
}

/* ---- the fields, in the order a form shows them ----------------------------- */

static void
check_name(struct vctx *v)
{
    struct account_settings *s = v->s;
    char buf[80];

    if (s->name == NULL || s->name[0] == '\0') {
        set_string(v, &s->name, "default");
        return;
    }
    if (strlen(s->name) > VALIDATE_NAME_MAX) {
        issue_add(v, "name", true,
                  "The account name is longer than %d characters. Choose a short name such as "
                  "\"shop\" or \"default\".",
                  VALIDATE_NAME_MAX);
        return;
    }
    for (const char *c = s->name; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.') {
            issue_add(v, "name", true,
                      "The account name \"%s\" may only hold letters, digits, '-', '_' and '.'. "
                      "Choose a name such as \"shop\" or \"default\".",
                      shown(s->name, buf, sizeof(buf)));
            return;
        }
}

static void
check_email(struct vctx *v)
{
    struct account_settings *s = v->s;
    struct mo_error err;
    char text[MIME_ADDRESS_MAX * 2 + 8];

    if (is_blank(s->email)) {
        issue_add(v, "email", true,
                  "Email is empty. Enter the address of the mailbox the shop sends from, for "
                  "example shop@gmail.com.");
        return;
    }
    if (mime_address_parse(s->email, "email", &v->email, &err) != 0) {
        issue_add(v, "email", true, "Email: %s. Enter the full address, like name@example.com.",
                  err.text);
        return;
    }
    if (!address_text(&v->email, text, sizeof(text))) {
        issue_add(v, "email", true, "Email is too long. Enter the mailbox's address only.");
        mime_address_clear(&v->email);
        return;
    }
    v->email_ok = true;
    if (v->email.display_name != NULL) {
        if (s->sender_name == NULL || s->sender_name[0] == '\0') {
            char name[120];
            set_string(v, &s->sender_name, v->email.display_name);
            issue_add(v, "email", false,
                      "Email holds the address only: mailout keeps %s there and uses \"%s\" as "
                      "the sender's name.",
                      text, shown(v->email.display_name, name, sizeof(name)));
        } else {
            issue_add(v, "email", false,
                      "Email holds the address only: mailout keeps %s there (the sender's name "
                      "is set separately).",
                      text);
        }
    }
    if (strcmp(text, s->email) != 0)
        set_string(v, &s->email, text);
    v->domain_p = account_provider_for_domain(v->email.domain_ascii);
}

/* The provider whose server the owner typed, when no provider was chosen. Several rows
 * can share a host (Gmail and Workspace): the email's own provider, else one without
 * address domains of its own (Workspace-like), else the first. */
static const struct account_provider *
provider_by_host(const char *host, const struct account_provider *domain_p)
{
    const struct account_provider *first = NULL;
    const struct account_provider *domainless = NULL;
    size_t n = strlen(host);

    if (n > 0 && host[n - 1] == '.')
        n--;
    for (size_t i = 0; i < account_provider_count(); i++) {
        const struct account_provider *q = account_provider_at(i);
        if (strlen(q->host) != n || strncasecmp(q->host, host, n) != 0)
            continue;
        if (q == domain_p)
            return q;
        if (first == NULL)
            first = q;
        if (domainless == NULL && q->domains[0] == NULL)
            domainless = q;
    }
    return domainless != NULL ? domainless : first;
}

static void
check_provider(struct vctx *v, const struct account_provider *provider)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = provider;
    char a[64], b[64], c[64];

    if (p == NULL && s->provider_id != NULL && s->provider_id[0] != '\0' &&
        strcasecmp(s->provider_id, "custom") != 0) {
        p = account_provider_find(s->provider_id);
        if (p == NULL) {
            issue_add(v, "provider", true,
                      "mailout does not know the mail service \"%s\". Choose one from the list "
                      "(mailout providers), or choose \"Other\" and enter your server.",
                      shown(s->provider_id, a, sizeof(a)));
            return;
        }
    }
    if (p == NULL) {
        if (s->provider_id != NULL)
            set_string(v, &s->provider_id, NULL);
        if (!is_blank(s->host)) {
            v->p = provider_by_host(s->host, v->domain_p);
            v->p_from_host = v->p != NULL;
        }
        return;
    }
    v->p = p;
    if (s->provider_id == NULL || strcmp(s->provider_id, p->id) != 0)
        set_string(v, &s->provider_id, p->id);
    /* Same server and same rules (AOL and Verizon): nothing would change. */
    if (v->domain_p != NULL && v->domain_p != p &&
        !(strcmp(v->domain_p->host, p->host) == 0 && v->domain_p->flags == p->flags))
        issue_add(v, "provider", false,
                  "%s addresses belong to %s, but the mail service chosen is %s. Choose %s, "
                  "or check the address.",
                  v->email.domain, short_name(v->domain_p, a, sizeof(a)),
                  short_name(p, b, sizeof(b)), short_name(v->domain_p, c, sizeof(c)));
}

/* Fills host, port and security from the provider (or the standard ports) when unset. */
static void
fill_server(struct vctx *v)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = v->p;

    if (is_blank(s->host) && p != NULL && !v->p_from_host && !host_is_template(p))
        set_string(v, &s->host, p->host);
    if (!s->has_security) {
        if (s->port == 0 && p != NULL) {
            /* STARTTLS on 587 where offered, else implicit TLS on 465. */
            s->security = p->port_starttls != 0 ? SMTP_SECURITY_STARTTLS : SMTP_SECURITY_TLS;
            s->port = p->port_starttls != 0 ? p->port_starttls : p->port_tls;
        } else if (s->port != 0) {
            if (p != NULL && s->port == p->port_tls)
                s->security = SMTP_SECURITY_TLS;
            else if (p != NULL && s->port == p->port_starttls)
                s->security = SMTP_SECURITY_STARTTLS;
            else
                s->security = s->port == 465 ? SMTP_SECURITY_TLS : SMTP_SECURITY_STARTTLS;
        }
        if (s->port != 0)
            s->has_security = true;
    } else if (s->port == 0) {
        switch (s->security) {
        case SMTP_SECURITY_TLS:
            s->port = p != NULL && p->port_tls != 0 ? p->port_tls : 465;
            break;
        case SMTP_SECURITY_STARTTLS:
            s->port = p != NULL && p->port_starttls != 0 ? p->port_starttls : 587;
            break;
        case SMTP_SECURITY_NONE:
            s->port = 25;
            break;
        default:
            break; /* reported by check_port_security */
        }
    }
}

static void
check_host(struct vctx *v)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = v->p;
    char a[64], b[64], h[128];
    char *ascii = NULL;
    const char *colon;
    unsigned char ip[16];
    int rc;

    if (is_blank(s->host)) {
        if (host_is_template(p))
            issue_add(v, "host", true,
                      "%s has one server per region. Enter the SMTP server your %s console "
                      "shows (%s), for example %s.",
                      short_name(p, a, sizeof(a)), short_name(p, b, sizeof(b)), p->host,
                      "email-smtp.eu-west-1.amazonaws.com");
        else if (v->domain_p != NULL && !host_is_template(v->domain_p))
            issue_add(v, "host", true,
                      "Server is empty. %s addresses use %s: choose %s as the mail service, or "
                      "enter %s as the server.",
                      v->email.domain, short_name(v->domain_p, a, sizeof(a)),
                      short_name(v->domain_p, b, sizeof(b)), v->domain_p->host);
        else
            issue_add(v, "host", true,
                      "Server is empty. Enter your mail server's name (your mail host's help "
                      "page lists it, often smtp.<your domain>), or let mailout detect it from "
                      "the address (mailout detect).");
        return;
    }
    trim_in_place(v, &s->host);
    shown(s->host, h, sizeof(h));
    if (strchr(s->host, '{') != NULL) {
        issue_add(v, "host", true,
                  "Server \"%s\" still holds a placeholder. Replace {region} with your region, "
                  "as your provider's console shows the server.",
                  h);
        return;
    }
    if (strpbrk(s->host, " \t\r\n") != NULL || has_control(s->host)) {
        issue_add(v, "host", true,
                  "Server \"%s\" contains spaces or line breaks. Enter the server name only, "
                  "like smtp.example.com.",
                  h);
        return;
    }
    if (strstr(s->host, "://") != NULL) {
        const char *sep = strstr(s->host, "://");
        const char *rest = sep + 3;
        int scheme_len = (int)(sep - s->host) < 16 ? (int)(sep - s->host) : 16;
        size_t n = strcspn(rest, ":/");
        if (n == 0)
            issue_add(v, "host", true,
                      "Server takes the name only, without \"%.*s://\": enter a name like "
                      "smtp.example.com and put the port in Port.",
                      scheme_len, s->host);
        else
            issue_add(v, "host", true,
                      "Server takes the name only, without \"%.*s://\": enter %.*s and put the "
                      "port in Port.",
                      scheme_len, s->host, n < 100 ? (int)n : 100, rest);
        return;
    }
    if (strchr(s->host, '@') != NULL) {
        issue_add(v, "host", true,
                  "Server is the mail server's name (like smtp.gmail.com), not an email "
                  "address. Enter the server your mail host names for sending.");
        return;
    }
    if (strchr(s->host, '/') != NULL) {
        issue_add(v, "host", true,
                  "Server \"%s\" contains '/'. Enter the server name only, like "
                  "smtp.example.com, without a path.",
                  h);
        return;
    }
    /* "[2001:db8::1]" -> "2001:db8::1": the bracket form belongs to URLs. */
    if (s->host[0] == '[' && s->host[strlen(s->host) - 1] == ']') {
        char inner[64];
        size_t n = strlen(s->host) - 2;
        if (n < sizeof(inner)) {
            memcpy(inner, s->host + 1, n);
            inner[n] = '\0';
            if (inet_pton(AF_INET6, inner, ip) == 1)
                set_string(v, &s->host, inner);
        }
    }
    if (inet_pton(AF_INET6, s->host, ip) == 1 || inet_pton(AF_INET, s->host, ip) == 1) {
        v->host_ok = true;
        v->host_is_loopback = is_loopback_host(s->host);
        return;
    }
    colon = strrchr(s->host, ':');
    if (colon != NULL) {
        long port;
        if (mo_parse_long(colon + 1, 0, 99999, &port) == 0)
            issue_add(v, "host", true,
                      "Put the port in Port, not in Server: enter %.*s as the server and %ld as "
                      "the port.",
                      (int)(colon - s->host) < 100 ? (int)(colon - s->host) : 100, s->host, port);
        else
            issue_add(v, "host", true,
                      "Server \"%s\" is not a server name or IP address. Enter a name like "
                      "smtp.example.com.",
                      h);
        return;
    }
    rc = idn2_to_ascii_8z(s->host, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK)
        rc = idn2_to_ascii_8z(s->host, &ascii, IDN2_TRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
        issue_add(v, "host", true,
                  "Server \"%s\" is not a valid server name (%s). Enter a name like "
                  "smtp.example.com.",
                  h, idn2_strerror(rc));
        return;
    }
    {
        size_t len = strlen(ascii);
        const char *label = ascii;
        bool ok = len > 0 && len <= 254;
        bool last_numeric = true;

        if (ok && ascii[len - 1] == '.')
            ascii[--len] = '\0';
        ok = ok && len > 0 && len <= 253;
        while (ok && *label != '\0') {
            size_t n = strcspn(label, ".");
            ok = n >= 1 && n <= 63 && label[0] != '-' && label[n - 1] != '-';
            last_numeric = true;
            for (size_t i = 0; ok && i < n; i++) {
                char ch = label[i];
                ok = isalnum((unsigned char)ch) || ch == '-' || ch == '_';
                if (!isdigit((unsigned char)ch))
                    last_numeric = false;
            }
            label += n;
            if (*label == '.') {
                label++;
                ok = ok && *label != '\0';
            }
        }
        if (ok && last_numeric) /* "192.168.1" or "587": neither a name nor an address */
            ok = false;
        if (!ok) {
            issue_add(v, "host", true,
                      "Server \"%s\" is not a valid server name. Enter a name like "
                      "smtp.example.com, or an IP address.",
                      h);
            free(ascii);
            return;
        }
    }
    free(ascii);
    /* ASCII names are case-insensitive: store them lowercased. */
    {
        bool is_ascii = true;
        for (const char *c = s->host; *c != '\0'; c++)
            if ((unsigned char)*c >= 0x80)
                is_ascii = false;
        if (is_ascii)
            for (char *c = s->host; *c != '\0'; c++)
                *c = (char)tolower((unsigned char)*c);
    }
    v->host_ok = true;
    v->host_is_loopback = is_loopback_host(s->host);
    if (p != NULL && !v->p_from_host && !host_is_template(p) && strcasecmp(s->host, p->host) != 0)
        issue_add(v, "host", false,
                  "%s's server is %s, but Server is %s. Keep it only if %s told you to use "
                  "this server.",
                  short_name(p, a, sizeof(a)), p->host, s->host, short_name(p, b, sizeof(b)));
}

/* "587 (STARTTLS) or 465 (SSL/TLS)" for a provider's ports. */
static const char *
provider_ports(const struct account_provider *p, char *buf, size_t size)
{
    if (p->port_starttls != 0 && p->port_tls != 0)
        snprintf(buf, size, "%u (STARTTLS) or %u (SSL/TLS)", p->port_starttls, p->port_tls);
    else if (p->port_starttls != 0)
        snprintf(buf, size, "%u (STARTTLS)", p->port_starttls);
    else
        snprintf(buf, size, "%u (SSL/TLS)", p->port_tls);
    return buf;
}

static void
check_port_security(struct vctx *v)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = v->p;
    char a[64], ports[64];
    bool tls_port, starttls_port;
    bool security_error = false;

    if ((unsigned)s->security >= SMTP_SECURITY_COUNT) {
        issue_add(v, "security", true,
                  "Security has an unknown value. Choose STARTTLS (port 587) or SSL/TLS "
                  "(port 465).");
        return;
    }
    if (s->port == 0) {
        issue_add(v, "port", true,
                  "Port is empty. Use 587 with STARTTLS or 465 with SSL/TLS (your mail host's "
                  "help page says which).");
        return;
    }
    if (s->port > 65535) {
        issue_add(v, "port", true,
                  "Port %u does not exist (ports go from 1 to 65535). Use 587 with STARTTLS or "
                  "465 with SSL/TLS.",
                  s->port);
        return;
    }
    tls_port = s->port == 465 || (p != NULL && s->port == p->port_tls);
    starttls_port = s->port == 587 || s->port == 25 || (p != NULL && s->port == p->port_starttls);
    if (s->security == SMTP_SECURITY_STARTTLS && tls_port && !starttls_port) {
        issue_add(v, "security", true,
                  "Port %u expects SSL/TLS from the first byte, but Security is STARTTLS. "
                  "Choose SSL/TLS for port %u, or use port 587 with STARTTLS.",
                  s->port, s->port);
        security_error = true;
    } else if (s->security == SMTP_SECURITY_TLS && starttls_port && !tls_port) {
        issue_add(v, "security", true,
                  "Port %u is for STARTTLS, but Security is SSL/TLS. Choose STARTTLS for port "
                  "%u, or use port 465 with SSL/TLS.",
                  s->port, s->port);
        security_error = true;
    }
    if (s->security == SMTP_SECURITY_NONE && v->host_ok && !v->host_is_loopback) {
        issue_add(v, "security", true,
                  "Security is None, so the password would travel unencrypted to %s. Choose "
                  "STARTTLS (port 587) or SSL/TLS (port 465); None is only for a server on "
                  "this machine.",
                  s->host);
        security_error = true;
    }
    if (s->port == 25 && !v->host_is_loopback)
        issue_add(v, "port", false,
                  "Many hosting and home networks block port 25, and mail services expect "
                  "programs on 587 or 465. Use 587 (STARTTLS) or 465 (SSL/TLS) unless your "
                  "mail host tells you to use 25.");
    if (p == NULL || security_error)
        return;
    if (s->security == SMTP_SECURITY_TLS && p->port_tls == 0)
        issue_add(v, "security", false,
                  "%s has no SSL/TLS port (connections there time out). Use port %u with "
                  "STARTTLS.",
                  short_name(p, a, sizeof(a)), p->port_starttls);
    else if (s->security == SMTP_SECURITY_STARTTLS && p->port_starttls == 0 && s->port != 25)
        issue_add(v, "security", false, "%s offers SSL/TLS only. Use port %u with SSL/TLS.",
                  short_name(p, a, sizeof(a)), p->port_tls);
    else if (s->port != p->port_starttls && s->port != p->port_tls && s->port != 25 &&
             s->port != 2525)
        issue_add(v, "port", false, "%s uses port %s; port %u may not work.",
                  short_name(p, a, sizeof(a)), provider_ports(p, ports, sizeof(ports)), s->port);
}

static void
check_username(struct vctx *v)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = v->p;
    char a[64], b[64], u[160], text[MIME_ADDRESS_MAX * 2 + 8];
    struct mo_error err;

    if (s->no_login) {
        /* No AUTH: the sender is compared with the address itself. */
        free(s->username);
        s->username = NULL;
        if (v->email_ok && mime_address_parse(s->email, "email", &v->login, NULL) == 0)
            v->login_ok = true;
        return;
    }
    trim_in_place(v, &s->username);
    if (s->username == NULL || s->username[0] == '\0') {
        if (p != NULL && p->fixed_username != NULL) {
            set_string(v, &s->username, p->fixed_username);
        } else if (p != NULL && p->username_format == ACCOUNT_USERNAME_OTHER) {
            issue_add(v, "username", true,
                      "%s gives you separate SMTP credentials: enter the SMTP user name from "
                      "your %s account, not your mailbox address.%s%s",
                      short_name(p, a, sizeof(a)), short_name(p, b, sizeof(b)),
                      p->help_url != NULL ? " See " : "", p->help_url ? p->help_url : "");
            return;
        } else if (v->email_ok) {
            if (p != NULL && p->username_format == ACCOUNT_USERNAME_LOCAL_PART)
                set_string(v, &s->username, v->email.local);
            else
                set_string(v, &s->username, s->email);
        }
        if (s->username == NULL)
            return;
    }
    shown(s->username, u, sizeof(u));
    if (has_control(s->username)) {
        issue_add(v, "username", true,
                  "User name \"%s\" contains a line break or another control character. Type it "
                  "again without them.",
                  u);
        return;
    }
    if (p != NULL && p->fixed_username != NULL) {
        if (strcmp(s->username, p->fixed_username) != 0)
            issue_add(v, "username", false,
                      "%s's user name is always \"%s\" (the password is your API key). Set User "
                      "name to %s.",
                      short_name(p, a, sizeof(a)), p->fixed_username, p->fixed_username);
        return;
    }
    if (strchr(s->username, '@') == NULL) {
        if (p != NULL && p->username_format == ACCOUNT_USERNAME_FULL_EMAIL && v->email_ok) {
            /* The old form asked for "the part before @"; this provider wants it all. */
            int n = snprintf(text, sizeof(text), "%s@%s", s->username, v->email.domain);
            struct mime_address probe = {0};
            if (n < 0 || (size_t)n >= sizeof(text) ||
                mime_address_parse(text, "username", &probe, &err) != 0) {
                issue_add(v, "username", true,
                          "%s logs in with the full address, and \"%s\" cannot be the start of "
                          "one. Enter your full address, such as %s.",
                          short_name(p, a, sizeof(a)), u, s->email);
                return;
            }
            mime_address_clear(&probe);
            issue_add(v, "username", false,
                      "%s logs in with the full address, so mailout uses %s as the user name "
                      "(you entered %s).",
                      short_name(p, a, sizeof(a)), text, u);
            set_string(v, &s->username, text);
        } else {
            /* A login that is not an address (local part, account id): the login is the
             * mailbox of email as far as sender rules go. */
            return;
        }
    }
    if (mime_address_parse(s->username, "username", &v->login, &err) != 0) {
        if (p != NULL && p->username_format == ACCOUNT_USERNAME_FULL_EMAIL)
            issue_add(v, "username", true,
                      "User name: %s. %s logs in with your full address, such as %s.", err.text,
                      short_name(p, a, sizeof(a)), v->email_ok ? s->email : "name@example.com");
        return;
    }
    v->login_ok = true;
    if (v->login.display_name != NULL || !address_text(&v->login, text, sizeof(text))) {
        issue_add(v, "username", true, "User name \"%s\" should be the login only, such as %s.", u,
                  v->email_ok ? s->email : "name@example.com");
        return;
    }
    if (strcmp(text, s->username) != 0)
        set_string(v, &s->username, text);
    if (p != NULL && p->username_format == ACCOUNT_USERNAME_LOCAL_PART)
        issue_add(v, "username", false,
                  "%s usually logs in with the part before @ (%s). If the check fails with a "
                  "login error, try that.",
                  short_name(p, a, sizeof(a)), v->login.local);
    {
        const struct account_provider *lp = account_provider_for_domain(v->login.domain_ascii);
        bool plus_tags = (p != NULL && (p->flags & ACCOUNT_PROVIDER_PLUS_TAGS)) ||
                         (lp != NULL && (lp->flags & ACCOUNT_PROVIDER_PLUS_TAGS));
        const char *plus = strchr(v->login.local, '+');
        if (plus_tags && plus != NULL && plus != v->login.local)
            issue_add(v, "username", false,
                      "Log in with the plain address %.*s@%s: a +tag address receives mail, but "
                      "it is not a login.",
                      (int)(plus - v->login.local), v->login.local, v->login.domain);
    }
}

/* The provider's reply when the sender is not the login (research notes, sections 2-9). */
static const char *
sender_refusal(const struct account_provider *p, const char **unless)
{
    static const struct {
        const char *id_prefix;
        const char *reply;
        const char *unless;
    } replies[] = {
        {"yandex", "553 5.7.1 Sender address rejected: not owned by auth user", NULL},
        {"mail-ru", "550 not local sender over smtp", NULL},
        {"yahoo", "550 Request failed; Mailbox unavailable", NULL},
        {"aol", "550 Request failed; Mailbox unavailable", NULL},
        {"verizon", "550 Request failed; Mailbox unavailable", NULL},
        {"att", "550 Request failed; Mailbox unavailable", NULL},
        {"zoho", "553 Relaying disallowed", "it is one of your Zoho aliases"},
        {"microsoft-365", "550 5.7.60 Client does not have permissions to send as this sender",
         "the mailbox has \"Send As\" rights for it"},
        {"outlook-com", "550 5.7.60 Client does not have permissions to send as this sender",
         "it is an alias of your account"},
        {"laposte", "550 5.5.0 Emetteur invalide. Invalid Sender", NULL},
    };

    *unless = NULL;
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++)
        if (strncmp(p->id, replies[i].id_prefix, strlen(replies[i].id_prefix)) == 0) {
            *unless = replies[i].unless;
            return replies[i].reply;
        }
    return NULL;
}

static void
check_sender(struct vctx *v)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = v->p;
    struct mime_address sender = {0};
    const struct mime_address *login;
    struct mo_error err;
    char a[64], text[MIME_ADDRESS_MAX * 2 + 8], login_text[MIME_ADDRESS_MAX * 2 + 8];
    char sv[160];

    if (is_blank(s->sender)) {
        if (v->email_ok)
            set_string(v, &s->sender, s->email);
        else if (s->sender != NULL)
            set_string(v, &s->sender, NULL);
        return; /* the email itself: nothing to compare */
    }
    if (mime_address_parse(s->sender, "sender", &sender, &err) != 0) {
        issue_add(v, "sender", true,
                  "Sender's email: %s. Enter the address your shop sends from, such as %s.",
                  err.text, v->email_ok ? s->email : "shop@example.com");
        return;
    }
    if (!address_text(&sender, text, sizeof(text))) {
        issue_add(v, "sender", true, "Sender's email is too long. Enter the address only.");
        goto out;
    }
    if (sender.display_name != NULL) {
        if (s->sender_name == NULL || s->sender_name[0] == '\0') {
            set_string(v, &s->sender_name, sender.display_name);
            issue_add(v, "sender", false,
                      "Sender's email holds the address only: mailout keeps %s there and uses "
                      "\"%s\" as the sender's name.",
                      text, shown(sender.display_name, sv, sizeof(sv)));
        } else {
            issue_add(v, "sender", false,
                      "Sender's email holds the address only: mailout keeps %s there (the "
                      "sender's name is set separately).",
                      text);
        }
    }
    if (strcmp(text, s->sender) != 0)
        set_string(v, &s->sender, text);
    login = v->login_ok ? &v->login : v->email_ok ? &v->email : NULL;
    if (p == NULL || login == NULL || same_mailbox(&sender, login))
        goto out;
    if (!address_text(login, login_text, sizeof(login_text)))
        goto out;
    if (p->flags & ACCOUNT_PROVIDER_SENDER_MUST_MATCH) {
        const char *unless = NULL;
        const char *reply = sender_refusal(p, &unless);
        issue_add(v, "sender", false,
                  "%s only sends from the address you log in with (%s)%s%s, so it will refuse "
                  "%s%s%s%s. Set Sender's email to %s.",
                  short_name(p, a, sizeof(a)), login_text, unless ? " unless " : "",
                  unless ? unless : "", text, reply ? " with \"" : "", reply ? reply : "",
                  reply ? "\"" : "", login_text);
    } else if (p->flags & ACCOUNT_PROVIDER_REWRITES_FROM) {
        issue_add(v, "sender", false,
                  "%s will replace the sender %s with %s (the login) unless %s is a verified "
                  "\"Send mail as\" address in Gmail's settings "
                  "(support.google.com/mail/answer/22370). Use %s as Sender's email, or add it "
                  "there.",
                  short_name(p, a, sizeof(a)), text, login_text, text, login_text);
    }
out:
    mime_address_clear(&sender);
}

static void
check_password(struct vctx *v)
{
    struct account_settings *s = v->s;
    const struct account_provider *p = v->p;
    bool is_token = s->auth == SMTP_AUTH_XOAUTH2;
    char a[64], stripped[APP_PASSWORD_LEN + 1];
    bool looks_like_app_password = false;

    if (p != NULL && (p->flags & ACCOUNT_PROVIDER_OAUTH_ONLY) && !is_token)
        issue_add(v, "password", false,
                  "Microsoft refuses passwords and app passwords for %s accounts (\"535 5.7.139 "
                  "Authentication unsuccessful, basic authentication is disabled\"). Sending "
                  "needs an OAuth2 access token: paste the token as the password and set the "
                  "login method to XOAUTH2 (auth xoauth2).",
                  short_name(p, a, sizeof(a)));
    if (s->no_login)
        return; /* nothing is sent: the password is not used */
    if (s->password == NULL)
        return; /* an update that keeps the stored password */
    if (s->password[0] == '\0') {
        issue_add(v, "password", true, "Password is empty. Enter the %s for %s.",
                  is_token                                                   ? "OAuth2 access token"
                  : p != NULL && p->app_password == ACCOUNT_APP_PASSWORD_YES ? "app password"
                                                                             : "password",
                  s->username != NULL && !has_control(s->username) ? s->username : "this mailbox");
        return;
    }
    if (strlen(s->password) > VALIDATE_SECRET_MAX) {
        issue_add(v, "password", true,
                  "Password is longer than %d bytes, which no mail server takes. Check that "
                  "only the password was pasted.",
                  VALIDATE_SECRET_MAX);
        return;
    }
    if (is_token)
        return;
    if (p != NULL)
        looks_like_app_password = app_password_groups(s->password, is_google(p), stripped);
    if (looks_like_app_password && (p->flags & ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES) &&
        strcmp(stripped, s->password) != 0) {
        char *copy = strdup(stripped);
        if (copy == NULL) {
            v->oom = true;
        } else {
            mo_free_secret(s->password);
            s->password = copy;
            issue_add(v, "password", false,
                      "%s shows app passwords in groups of four; the spaces are not part of the "
                      "password, so mailout removed them.",
                      short_name(p, a, sizeof(a)));
        }
    } else if (looks_like_app_password && strcmp(stripped, s->password) != 0) {
        /* Not known to be safe to strip here: say so, change nothing. */
        issue_add(v, "password", false,
                  "Password has spaces, as app passwords are often shown in groups. mailout "
                  "keeps it exactly as typed; if the login fails, try it without the spaces.");
    } else if (isspace((unsigned char)s->password[0]) ||
               isspace((unsigned char)s->password[strlen(s->password) - 1])) {
        issue_add(v, "password", false,
                  "Password starts or ends with a space. mailout keeps it exactly as typed; "
                  "remove the space if it came with copying.");
    }
    mo_wipe(stripped, sizeof(stripped));
    if (p != NULL && p->app_password == ACCOUNT_APP_PASSWORD_YES && !looks_like_app_password)
        issue_add(v, "password", false,
                  "%s does not accept your normal password here: create an app password%s%s "
                  "and paste it as the password.",
                  short_name(p, a, sizeof(a)), p->app_password_url ? " at " : "",
                  p->app_password_url ? p->app_password_url
                                      : " in your account's security settings");
}

static void
check_sender_name(struct vctx *v)
{
    struct account_settings *s = v->s;
    long len;

    if (s->sender_name == NULL)
        return;
    if (s->sender_name[0] == '\0') {
        set_string(v, &s->sender_name, NULL);
        return;
    }
    if (strpbrk(s->sender_name, "\r\n") != NULL) {
        issue_add(v, "sender_name", true, "Sender's name must be one line: remove the line break.");
        return;
    }
    if (has_control(s->sender_name)) {
        issue_add(v, "sender_name", true,
                  "Sender's name contains a control character (such as a tab). Type it again "
                  "with letters, digits and punctuation only.");
        return;
    }
    len = utf8_length(s->sender_name);
    if (len < 0)
        issue_add(v, "sender_name", true,
                  "Sender's name is not valid text (UTF-8). Type it again.");
    else if (len > VALIDATE_SENDER_NAME_MAX)
        issue_add(v, "sender_name", true,
                  "Sender's name has %ld characters; keep it to %d (recipients see only the "
                  "start of it).",
                  len, VALIDATE_SENDER_NAME_MAX);
}

static void
check_auth(struct vctx *v)
{
    struct account_settings *s = v->s;
    char a[64];

    if ((unsigned)s->auth >= SMTP_AUTH_COUNT) {
        issue_add(v, "auth", true,
                  "The login method has an unknown value. Choose automatic (auto) unless your "
                  "mail host names one.");
        return;
    }
    if (s->auth == SMTP_AUTH_XOAUTH2 && v->p != NULL && !v->p->oauth2_supported)
        issue_add(v, "auth", false,
                  "%s is not known to offer OAuth2 (XOAUTH2). Choose the automatic login method "
                  "and use the password.",
                  short_name(v->p, a, sizeof(a)));
}

static void
check_ca_file(struct vctx *v)
{
    struct account_settings *s = v->s;
    struct stat st;
    char path[160];

    if (s->ca_file == NULL)
        return;
    if (s->ca_file[0] == '\0') {
        set_string(v, &s->ca_file, NULL);
        return;
    }
    shown(s->ca_file, path, sizeof(path));
    if (stat(s->ca_file, &st) != 0 || !S_ISREG(st.st_mode))
        issue_add(v, "ca_file", true,
                  "CA file %s does not exist or is not a file. Check the path, or leave it "
                  "empty to trust the system's certificates.",
                  path);
    else if (access(s->ca_file, R_OK) != 0)
        issue_add(v, "ca_file", true,
                  "CA file %s cannot be read by mailout. Make it readable, or leave it empty to "
                  "trust the system's certificates.",
                  path);
}

static void
check_timeout(struct vctx *v)
{
    if (v->s->timeout_s < 0 || v->s->timeout_s > VALIDATE_TIMEOUT_MAX_S)
        issue_add(v, "timeout", true,
                  "Timeout must be 1 to %d seconds (or empty for the defaults).",
                  VALIDATE_TIMEOUT_MAX_S);
}

size_t
account_validate(struct account_settings *s, const struct account_provider *provider,
                 struct account_issues *issues)
{
    struct vctx v;

    memset(issues, 0, sizeof(*issues));
    memset(&v, 0, sizeof(v));
    v.s = s;
    v.issues = issues;
    check_name(&v);
    check_email(&v);
    trim_in_place(&v, &s->host); /* before the provider is recognised by it */
    check_provider(&v, provider);
    fill_server(&v);
    check_host(&v);
    check_port_security(&v);
    check_username(&v);
    check_sender(&v);
    check_password(&v);
    check_sender_name(&v);
    check_auth(&v);
    check_ca_file(&v);
    check_timeout(&v);
    if (v.oom)
        issue_add(&v, "internal", true,
                  "mailout ran out of memory while checking the settings. Try again.");
    mime_address_clear(&v.email);
    mime_address_clear(&v.login);
    return issues->n_errors;
}
