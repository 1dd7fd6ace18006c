/*
 * parse.c - the listener's pure parsers: SMTP command lines (verb,
 * argument, MAIL/RCPT path and parameters), base64 AUTH payloads, the PLAIN
 * message, and the listening address.
 *
 * Why apart: the session's state machine should read as SMTP, and whatever a
 * client may send goes through here first, so this is what the unit tests
 * table and the fuzz target hammer. No I/O, no clock, no allocation.
 *
 * Liberal where real clients differ (Postfix's defaults): verbs and keywords
 * in any case, blanks after "FROM:" and between parameters, a path without
 * angle brackets. Strict where it matters: the mailbox (RFC 5321 4.1.2, with
 * RFC 6531's UTF-8 when well-formed), its length limits, control
 * characters, parameters we did not offer (555).
 * Leaves out: DSN parameters (not offered), General-address-literals.
 * RFCs: 5321 4.1.1-4.1.2 and 4.5.3.1, 1870 (SIZE), 6152 (BODY), 6531
 * (SMTPUTF8), 4954 (AUTH, and AUTH= on MAIL), 4616 (PLAIN), 4648 (base64).
 */
#include "listener/listener_internal.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

static const char *const verb_names[LISTENER_VERB_COUNT] = {
    [LISTENER_VERB_UNKNOWN] = "unknown",   [LISTENER_VERB_HELO] = "HELO",
    [LISTENER_VERB_EHLO] = "EHLO",         [LISTENER_VERB_MAIL] = "MAIL",
    [LISTENER_VERB_RCPT] = "RCPT",         [LISTENER_VERB_DATA] = "DATA",
    [LISTENER_VERB_RSET] = "RSET",         [LISTENER_VERB_NOOP] = "NOOP",
    [LISTENER_VERB_QUIT] = "QUIT",         [LISTENER_VERB_VRFY] = "VRFY",
    [LISTENER_VERB_EXPN] = "EXPN",         [LISTENER_VERB_HELP] = "HELP",
    [LISTENER_VERB_STARTTLS] = "STARTTLS", [LISTENER_VERB_AUTH] = "AUTH",
    [LISTENER_VERB_BDAT] = "BDAT",
};

const char *
listener_verb_name(enum listener_verb verb)
{
    if ((int)verb < 0 || verb >= LISTENER_VERB_COUNT)
        return "unknown";
    return verb_names[verb];
}

static int
cmd_fail(struct listener_cmd *c, int code, const char *enhanced, const char *text)
{
    c->code = code;
    c->enhanced = enhanced;
    c->text = text;
    return -1;
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

bool
listener_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- the mailbox (RFC 5321 4.1.2, RFC 6531 3.3) ------------------------------------ */

static bool
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_atext(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c >= 0x80 ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A Dot-string: atoms separated by single dots. */
static bool
dot_string_ok(const char *s, size_t len)
{
    bool after_dot = true; /* no leading dot */

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.') {
            if (after_dot)
                return false;
            after_dot = true;
        } else if (is_atext(c)) {
            after_dot = false;
        } else {
            return false;
        }
    }
    return !after_dot;
}

/* A Quoted-string with its quotes: qtextSMTP, quoted-pairSMTP, and UTF-8 (RFC 6531). */
static bool
quoted_string_ok(const char *s, size_t len)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return false;
    for (size_t i = 1; i < len - 1; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\\') {
            if (i + 1 >= len - 1)
                return false;
            c = (unsigned char)s[++i];
            if (c < 32 || c > 126)
                return false;
        } else if (c == '"' || (c < 32) || c == 127) {
            return false;
        }
    }
    return true;
}

/* Domain: sub-domains of letters, digits, hyphens (not first or last), or UTF-8 U-labels. */
static bool
domain_ok(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > LISTENER_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : '.';

        if (c == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_alpha(c) || is_digit(c) || c >= 0x80 || (c == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
static bool
address_literal_ok(const char *s, size_t len)
{
    char ip[64];
    unsigned char bin[16];

    if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof(ip))
        return false;
    memcpy(ip, s + 1, len - 2);
    ip[len - 2] = '\0';
    if (strncasecmp(ip, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, ip + 5, bin) == 1;
    return inet_pton(AF_INET, ip, bin) == 1;
}

/* Local-part "@" (Domain / address-literal), lengths included. */
static bool
mailbox_ok(const char *s, size_t len)
{
    const char *at;
    size_t local_len;

    if (len == 0 || !listener_utf8_valid(s, len))
        return false;
    /* the last @ separates: a quoted local part may hold one */
    at = NULL;
    for (size_t i = len; i > 0; i--) {
        if (s[i - 1] == '@') {
            at = s + i - 1;
            break;
        }
    }
    if (at == NULL)
        return false;
    local_len = (size_t)(at - s);
    if (local_len == 0 || local_len > LISTENER_LOCAL_MAX)
        return false;
    if (!(s[0] == '"' ? quoted_string_ok(s, local_len) : dot_string_ok(s, local_len)))
        return false;
    if (local_len + 1 < len && at[1] == '[')
        return address_literal_ok(at + 1, len - local_len - 1);
    return domain_ok(at + 1, len - local_len - 1);
}

/*
 * The path at p: "<mailbox>", "<@a,@b:mailbox>", "<>" (only when null_ok), or a
 * bare mailbox. *end gets the first byte after it.
 */
static int
parse_path(struct listener_cmd *c, const char *p, const char *line_end, bool null_ok,
           const char **end)
{
    const char *enhanced = c->verb == LISTENER_VERB_MAIL ? "5.1.7" : "5.1.3";
    const char *text = c->verb == LISTENER_VERB_MAIL ? "Bad sender address syntax"
                                                     : "Bad recipient address syntax";
    const char *start;
    const char *stop;
    size_t len;

    if (p < line_end && *p == '<') {
        bool quoted = false;

        start = p + 1;
        stop = start;
        /* the closing bracket, skipping those inside a quoted local part */
        while (stop < line_end && (quoted || *stop != '>')) {
            if (*stop == '\\' && quoted && stop + 1 < line_end)
                stop++;
            else if (*stop == '"')
                quoted = !quoted;
            stop++;
        }
        if (stop >= line_end)
            return cmd_fail(c, 501, enhanced, text);
        *end = stop + 1;
        if ((size_t)(stop - start) + 2 > LISTENER_PATH_MAX)
            return cmd_fail(c, 501, enhanced, "Path too long");
        /* a source route "@a,@b:" is ignored (RFC 5321 4.1.2, C.) */
        if (start < stop && *start == '@') {
            const char *colon = memchr(start, ':', (size_t)(stop - start));

            if (colon == NULL)
                return cmd_fail(c, 501, enhanced, text);
            start = colon + 1;
        }
    } else {
        start = p;
        stop = p;
        while (stop < line_end && *stop != ' ')
            stop++;
        *end = stop;
        if (stop == start)
            return cmd_fail(c, 501, "5.5.4",
                            c->verb == LISTENER_VERB_MAIL ? "Syntax: MAIL FROM:<address>"
                                                          : "Syntax: RCPT TO:<address>");
        if ((size_t)(stop - start) + 2 > LISTENER_PATH_MAX)
            return cmd_fail(c, 501, enhanced, "Path too long");
    }
    len = (size_t)(stop - start);
    if (len == 0) {
        if (!null_ok)
            return cmd_fail(c, 501, enhanced, text);
        c->is_null_path = true;
        c->address[0] = '\0';
        return 0;
    }
    if (!mailbox_ok(start, len))
        return cmd_fail(c, 501, enhanced, text);
    memcpy(c->address, start, len);
    c->address[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)start[i] >= 0x80)
            c->address_is_utf8 = true;
    return 0;
}

/* ---- ESMTP parameters (RFC 5321 4.1.2 Mail-parameters) ---------------------------- */

static bool
keyword_ok(const char *s, size_t len)
{
    if (len == 0 || !(is_alpha((unsigned char)s[0]) || is_digit((unsigned char)s[0])))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

static bool
word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Parses the parameters after the path. RCPT takes none (no DSN offered). */
static int
parse_params(struct listener_cmd *c, const char *p, const char *line_end)
{
    bool seen_auth = false;

    for (;;) {
        const char *kw;
        const char *eq;
        const char *stop;
        const char *val = NULL;
        size_t kw_len;
        size_t val_len = 0;

        while (p < line_end && *p == ' ')
            p++;
        if (p >= line_end)
            return 0;
        kw = p;
        stop = p;
        while (stop < line_end && *stop != ' ')
            stop++;
        eq = memchr(kw, '=', (size_t)(stop - kw));
        kw_len = (size_t)((eq != NULL ? eq : stop) - kw);
        if (eq != NULL) {
            val = eq + 1;
            val_len = (size_t)(stop - val);
        }
        p = stop;
        if (!keyword_ok(kw, kw_len) || (eq != NULL && val_len == 0))
            return cmd_fail(c, 501, "5.5.4", "Bad parameter syntax");
        if (c->verb != LISTENER_VERB_MAIL)
            return cmd_fail(c, 555, "5.5.4", "Unsupported RCPT TO parameter");
        if (word_is(kw, kw_len, "SIZE")) {
            uint64_t v = 0;

            if (c->has_size || val == NULL || val_len > 20)
                return cmd_fail(c, 501, "5.5.4", "Bad SIZE parameter");
            for (size_t i = 0; i < val_len; i++) {
                unsigned d;

                if (!is_digit((unsigned char)val[i]))
                    return cmd_fail(c, 501, "5.5.4", "Bad SIZE parameter");
                d = (unsigned)(val[i] - '0');
                v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
            }
            c->has_size = true;
            c->size = v;
        } else if (word_is(kw, kw_len, "BODY")) {
            if (c->body != LISTENER_BODY_NONE || val == NULL)
                return cmd_fail(c, 501, "5.5.4", "Bad BODY parameter");
            if (word_is(val, val_len, "7BIT"))
                c->body = LISTENER_BODY_7BIT;
            else if (word_is(val, val_len, "8BITMIME"))
                c->body = LISTENER_BODY_8BITMIME;
            else
                return cmd_fail(c, 555, "5.5.4", "Unsupported BODY type");
        } else if (word_is(kw, kw_len, "SMTPUTF8")) {
            if (c->smtputf8 || val != NULL)
                return cmd_fail(c, 501, "5.5.4", "Bad SMTPUTF8 parameter");
            c->smtputf8 = true;
        } else if (word_is(kw, kw_len, "AUTH")) {
            /* RFC 4954 5: the submitter's identity for relays; noted by nobody here. */
            if (seen_auth || val == NULL)
                return cmd_fail(c, 501, "5.5.4", "Bad AUTH parameter");
            seen_auth = true;
        } else {
            return cmd_fail(c, 555, "5.5.4", "Unsupported MAIL FROM parameter");
        }
    }
}

/* ---- the command line ------------------------------------------------------------- */

static const struct {
    const char *name;
    enum listener_verb verb;
} verbs[] = {
    {"HELO", LISTENER_VERB_HELO}, {"EHLO", LISTENER_VERB_EHLO},
    {"MAIL", LISTENER_VERB_MAIL}, {"RCPT", LISTENER_VERB_RCPT},
    {"DATA", LISTENER_VERB_DATA}, {"RSET", LISTENER_VERB_RSET},
    {"NOOP", LISTENER_VERB_NOOP}, {"QUIT", LISTENER_VERB_QUIT},
    {"VRFY", LISTENER_VERB_VRFY}, {"EXPN", LISTENER_VERB_EXPN},
    {"HELP", LISTENER_VERB_HELP}, {"STARTTLS", LISTENER_VERB_STARTTLS},
    {"AUTH", LISTENER_VERB_AUTH}, {"BDAT", LISTENER_VERB_BDAT},
};

/* Copies s[0..len) into a field of size bytes; -1 when it does not fit. */
static int
copy_field(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size)
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

int
listener_cmd_parse(const char *line, size_t len, struct listener_cmd *out)
{
    const char *end;
    const char *p;
    const char *arg;
    size_t verb_len;
    size_t raw_len = len;

    memset(out, 0, sizeof(*out));
    out->verb = LISTENER_VERB_UNKNOWN;
    /* trailing blanks are common and harmless */
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    end = line + len;
    verb_len = 0;
    while (verb_len < len && line[verb_len] != ' ')
        verb_len++;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (word_is(line, verb_len, verbs[i].name)) {
            out->verb = verbs[i].verb;
            break;
        }
    }
    if (raw_len + 2 >
        (out->verb == LISTENER_VERB_AUTH ? LISTENER_AUTH_LINE_MAX + 2 : LISTENER_COMMAND_MAX))
        return cmd_fail(out, 500, "5.5.2", "Line too long");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return cmd_fail(out, 500, "5.5.2", "Bad character in command");
    }
    if (out->verb == LISTENER_VERB_UNKNOWN)
        return cmd_fail(out, 500, "5.5.1", "Command unrecognized");
    arg = line + verb_len;
    while (arg < end && (*arg == ' ' || *arg == '\t'))
        arg++;

    switch (out->verb) {
    case LISTENER_VERB_HELO:
    case LISTENER_VERB_EHLO:
        if (arg == end)
            return cmd_fail(out, 501, "5.5.4",
                            out->verb == LISTENER_VERB_HELO ? "Syntax: HELO hostname"
                                                            : "Syntax: EHLO hostname");
        if (copy_field(out->arg, sizeof(out->arg), arg, (size_t)(end - arg)) != 0)
            return cmd_fail(out, 500, "5.5.2", "Line too long");
        return 0;
    case LISTENER_VERB_MAIL:
    case LISTENER_VERB_RCPT: {
        const char *want = out->verb == LISTENER_VERB_MAIL ? "FROM:" : "TO:";
        size_t want_len = strlen(want);
        const char *after;

        if ((size_t)(end - arg) < want_len || strncasecmp(arg, want, want_len) != 0)
            return cmd_fail(out, 501, "5.5.4",
                            out->verb == LISTENER_VERB_MAIL ? "Syntax: MAIL FROM:<address>"
                                                            : "Syntax: RCPT TO:<address>");
        p = arg + want_len;
        while (p < end && *p == ' ')
            p++;
        if (parse_path(out, p, end, out->verb == LISTENER_VERB_MAIL, &after) != 0)
            return -1;
        if (after < end && *after != ' ')
            return cmd_fail(out, 501, "5.5.4", "Bad parameter syntax");
        return parse_params(out, after, end);
    }
    case LISTENER_VERB_DATA:
    case LISTENER_VERB_RSET:
    case LISTENER_VERB_QUIT:
    case LISTENER_VERB_STARTTLS:
        if (arg != end)
            return cmd_fail(out, 501, "5.5.4", "Syntax: no parameters allowed");
        return 0;
    case LISTENER_VERB_AUTH: {
        const char *mech_end = arg;
        const char *ir;

        while (mech_end < end && *mech_end != ' ')
            mech_end++;
        if (mech_end == arg)
            return cmd_fail(out, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        if (copy_field(out->arg, sizeof(out->arg), arg, (size_t)(mech_end - arg)) != 0)
            return cmd_fail(out, 504, "5.5.4", "Unrecognized authentication type");
        for (char *q = out->arg; *q != '\0'; q++)
            if (*q >= 'a' && *q <= 'z')
                *q = (char)(*q - 'a' + 'A');
        ir = mech_end;
        while (ir < end && *ir == ' ')
            ir++;
        if (ir < end) {
            if (memchr(ir, ' ', (size_t)(end - ir)) != NULL)
                return cmd_fail(out, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
            if (copy_field(out->auth_initial, sizeof(out->auth_initial), ir, (size_t)(end - ir)) !=
                0)
                return cmd_fail(out, 500, "5.5.2", "Line too long");
            out->has_initial = true;
        }
        return 0;
    }
    case LISTENER_VERB_NOOP:
    case LISTENER_VERB_VRFY:
    case LISTENER_VERB_EXPN:
    case LISTENER_VERB_HELP:
    case LISTENER_VERB_BDAT:
        if (copy_field(out->arg, sizeof(out->arg), arg, (size_t)(end - arg)) != 0)
            return cmd_fail(out, 500, "5.5.2", "Line too long");
        return 0;
    case LISTENER_VERB_UNKNOWN:
    case LISTENER_VERB_COUNT:
        break;
    }
    return cmd_fail(out, 500, "5.5.1", "Command unrecognized");
}

/* ---- AUTH payloads ------------------------------------------------------------------ */

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int
listener_b64_decode(const char *in, size_t len, unsigned char *out, size_t out_size,
                    size_t *out_len)
{
    unsigned char block[LISTENER_AUTH_LINE_MAX / 4 * 3 + 3];
    size_t pad;
    int n;

    *out_len = 0;
    if (len == 1 && in[0] == '=') {
        if (out_size > 0)
            out[0] = '\0';
        return 0;
    }
    if (len % 4 != 0 || len > LISTENER_AUTH_LINE_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (b64_value((unsigned char)in[i]) >= 0)
            continue;
        if (in[i] == '=' && (i == len - 1 || (i == len - 2 && in[len - 1] == '=')))
            continue;
        return -1;
    }
    if (len == 0) {
        if (out_size > 0)
            out[0] = '\0';
        return 0;
    }
    pad = (size_t)(in[len - 1] == '=') + (size_t)(in[len - 2] == '=');
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off */
    n = EVP_DecodeBlock(block, (const unsigned char *)in, (int)len);
    if (n < 0 || (size_t)n < pad || (size_t)n - pad > out_size) {
        OPENSSL_cleanse(block, sizeof(block));
        return -1;
    }
    memcpy(out, block, (size_t)n - pad);
    *out_len = (size_t)n - pad;
    if (*out_len < out_size)
        out[*out_len] = '\0';
    OPENSSL_cleanse(block, sizeof(block));
    return 0;
}

int
listener_plain_split(const unsigned char *msg, size_t len, const char **authcid,
                     const char **passwd)
{
    const unsigned char *nul1 = memchr(msg, '\0', len);
    const unsigned char *nul2;

    if (nul1 == NULL)
        return -1;
    nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg));
    if (nul2 == NULL || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - msg)) != NULL)
        return -1;
    if (nul2 == nul1 + 1 || nul2 + 1 == msg + len)
        return -1;
    *authcid = (const char *)(nul1 + 1);
    *passwd = (const char *)(nul2 + 1);
    return 0;
}

/* ---- the listening address ------------------------------------------------------------ */

int
listener_listen_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len,
                      bool *is_loopback, struct mo_error *err)
{
    return mo_listen_parse(text, LISTENER_DEFAULT_LISTEN, "smtp", out, out_len, is_loopback, err);
}
