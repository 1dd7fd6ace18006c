/*
 * address.c - parsing, checking and writing mailbox addresses.
 *
 * Why: every address a user types (sender, recipients, reply-to) passes
 * through here before it reaches an SMTP command or a header, so this is
 * where header injection (CR, LF, control characters) is refused and where
 * a typo gets a plain-language error naming what is wrong.
 * What is accepted: an addr-spec, "<addr-spec>" or "Name <addr-spec>"; the
 * name may be atoms, quoted strings and raw UTF-8; comments are skipped.
 * Local parts are dot-atoms (UTF-8 allowed, flagged) or quoted strings.
 * Domains are names of two labels or more (converted with libidn2) or
 * IPv4/IPv6 address literals.
 * Leaves out: obsolete syntax (routes, CFWS inside the addr-spec), encoded
 * words in input (they stay as typed), general address literals, single-label
 * domains such as "localhost" (use [127.0.0.1]).
 * RFCs: 5322 3.2-3.4, 5321 4.1.2 and 4.5.3.1, 6531/6532 (UTF-8 local parts),
 * 5890-5892 via libidn2 with UTS #46 mapping, 2047 for writing names.
 */
#include "mime/mime.h"
#include "mime/mime_internal.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOMAIN_NAME_MAX 253 /* RFC 1035 2.3.4, as text without the root dot */
#define LABEL_MAX 63
#define LITERAL_MAX 64
#define NAME_WORD_MAX 60 /* longer runs without a space become encoded words */

/* What the error texts of one address need. */
struct addr_ctx {
    const char *field;
    char desc[MIME_DESCRIBE_MAX];
};

static void addr_fail(const struct addr_ctx *ctx, struct mo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
addr_fail(const struct addr_ctx *ctx, struct mo_error *err, const char *fmt, ...)
{
    char reason[MO_ERROR_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    mo_error_set(err, MO_ERR_CONFIG, ctx->field, "\"%s\" is not a valid address: %s", ctx->desc,
                 reason);
}

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static char *
dup_slice(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* Skips "(...)" at s[*pos], nested and with quoted pairs; false when unclosed. */
static bool
skip_comment(const char *s, size_t len, size_t *pos)
{
    size_t depth = 0;

    for (size_t i = *pos; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '(') {
            depth++;
        } else if (s[i] == ')' && --depth == 0) {
            *pos = i + 1;
            return true;
        }
    }
    return false;
}

/* Skips the quoted string at s[*pos]; false when unclosed. */
static bool
skip_quoted(const char *s, size_t len, size_t *pos)
{
    for (size_t i = *pos + 1; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            *pos = i + 1;
            return true;
        }
    }
    return false;
}

/* Skips white space and comments; false on an unclosed comment. */
static bool
skip_cfws(const char *s, size_t len, size_t *pos)
{
    while (*pos < len) {
        if (is_wsp(s[*pos]))
            (*pos)++;
        else if (s[*pos] != '(')
            break;
        else if (!skip_comment(s, len, pos))
            return false;
    }
    return true;
}

/* A dot-atom of atext and UTF-8 bytes (RFC 5322 3.2.3, RFC 6532 3.2). */
static bool
is_dot_atom(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.' && s[i + 1] == '.')
            return false;
        if (c != '.' && c < 0x80 && !mime_is_atext(c))
            return false;
    }
    return true;
}

/* ---- display names ----------------------------------------------------- */

/*
 * The phrase before '<': atoms and quoted strings; white space runs and
 * comments become one space. *name_out is NULL for an empty name.
 */
static int
parse_phrase(const char *s, size_t len, const struct addr_ctx *ctx, char **name_out,
             struct mo_error *err)
{
    struct mo_buf b;
    bool pending_space = false;
    size_t pos = 0;
    int rc = -1;

    mo_buf_init(&b, len + 1);
    while (pos < len) {
        unsigned char c = (unsigned char)s[pos];

        if (is_wsp((char)c) || c == '(') {
            if (c == '(' && !skip_comment(s, len, &pos)) {
                addr_fail(ctx, err, "a parenthesis in the name is not closed");
                goto out;
            }
            if (c != '(')
                pos++;
            pending_space = true;
            continue;
        }
        if (pending_space && b.len > 0 && mo_buf_append(&b, " ", 1, err) != 0)
            goto out;
        pending_space = false;
        if (c == '"') {
            for (pos++; pos < len && s[pos] != '"'; pos++) {
                if (s[pos] == '\\' && pos + 1 < len)
                    pos++;
                if (mo_buf_append(&b, s + pos, 1, err) != 0)
                    goto out;
            }
            if (pos >= len) {
                addr_fail(ctx, err, "a double quote in the name is not closed");
                goto out;
            }
            pos++;
        } else if (mime_is_atext(c) || c == '.' || c >= 0x80) {
            if (mo_buf_append(&b, s + pos, 1, err) != 0)
                goto out;
            pos++;
        } else if (c == ',') {
            addr_fail(ctx, err,
                      "the name has a comma; put it in double quotes, like "
                      "\"Doe, John\" <john@example.com>");
            goto out;
        } else {
            addr_fail(ctx, err, "the name has the character '%c'; put the name in double quotes",
                      c);
            goto out;
        }
    }
    *name_out = NULL;
    if (b.len > 0) {
        *name_out = mo_strdup(b.data);
        if (*name_out == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    mo_buf_free(&b);
    return rc;
}

/* ---- local parts ------------------------------------------------------- */

static int
check_atom_local(const char *s, size_t len, const struct addr_ctx *ctx, struct mo_error *err)
{
    if (s[0] == '.') {
        addr_fail(ctx, err, "it starts with a dot");
        return -1;
    }
    if (s[len - 1] == '.') {
        addr_fail(ctx, err, "there is a dot right before the @");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.' && s[i + 1] == '.') {
            addr_fail(ctx, err, "two dots in a row before the @");
            return -1;
        }
        if (is_wsp((char)c)) {
            addr_fail(ctx, err, "it contains a space");
            return -1;
        }
        if (c != '.' && c < 0x80 && !mime_is_atext(c)) {
            addr_fail(ctx, err,
                      "the character '%c' is not allowed before the @ "
                      "(unless that part is in double quotes)",
                      c);
            return -1;
        }
    }
    return 0;
}

/*
 * A quoted local part starting at s[0] == '"'. Writes the wire form to b:
 * without quotes when the content is a dot-atom (RFC 5321 4.1.2 asks for the
 * simplest form), else quoted with '"' and '\' escaped. *at gets the index of
 * the '@' that must follow.
 */
static int
parse_quoted_local(const char *s, size_t len, const struct addr_ctx *ctx, struct mo_buf *b,
                   size_t *at, struct mo_error *err)
{
    struct mo_buf content;
    size_t pos;
    int rc = -1;

    mo_buf_init(&content, len + 1);
    for (pos = 1; pos < len && s[pos] != '"'; pos++) {
        if (s[pos] == '\\' && pos + 1 < len)
            pos++;
        if (s[pos] == '\t') {
            addr_fail(ctx, err, "it contains a tab before the @");
            goto out;
        }
        if (mo_buf_append(&content, s + pos, 1, err) != 0)
            goto out;
    }
    if (pos >= len) {
        addr_fail(ctx, err, "the double quote before the @ is not closed");
        goto out;
    }
    pos++;
    if (pos >= len || s[pos] != '@') {
        addr_fail(ctx, err,
                  pos >= len ? "it has no @" : "there is text between the quote and the @");
        goto out;
    }
    if (content.len == 0) {
        addr_fail(ctx, err, "there is nothing before the @");
        goto out;
    }
    *at = pos;
    if (is_dot_atom(content.data, content.len)) {
        rc = mo_buf_append(b, content.data, content.len, err);
        goto out;
    }
    if (mo_buf_append(b, "\"", 1, err) != 0)
        goto out;
    for (size_t i = 0; i < content.len; i++) {
        char c = content.data[i];

        if ((c == '"' || c == '\\') && mo_buf_append(b, "\\", 1, err) != 0)
            goto out;
        if (mo_buf_append(b, &c, 1, err) != 0)
            goto out;
    }
    rc = mo_buf_append(b, "\"", 1, err);
out:
    mo_buf_free(&content);
    return rc;
}

/* ---- domains ----------------------------------------------------------- */

static int
parse_literal(const char *s, size_t len, const struct addr_ctx *ctx, struct mime_address *a,
              struct mo_error *err)
{
    char inner[LITERAL_MAX];
    unsigned char bin[16];
    bool ok;

    if (s[len - 1] != ']') {
        addr_fail(ctx, err, "the address literal after the @ is missing its ]");
        return -1;
    }
    if (len - 2 >= sizeof(inner)) {
        addr_fail(ctx, err, "the address literal after the @ is too long");
        return -1;
    }
    memcpy(inner, s + 1, len - 2);
    inner[len - 2] = '\0';
    if (mo_ascii_prefix(inner, "IPv6:"))
        ok = inet_pton(AF_INET6, inner + 5, bin) == 1;
    else
        ok = inet_pton(AF_INET, inner, bin) == 1;
    if (!ok) {
        addr_fail(ctx, err, "[%s] is not an IPv4 address nor \"IPv6:\" and an IPv6 address", inner);
        return -1;
    }
    a->domain = dup_slice(s, len);
    a->domain_ascii = dup_slice(s, len);
    if (a->domain == NULL || a->domain_ascii == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* Checks the A-label form: LDH labels of 1-63, at most 253 in all, two labels or more. */
static int
check_ascii_domain(const char *d, const struct addr_ctx *ctx, struct mo_error *err)
{
    size_t len = strlen(d);
    size_t label_start = 0;
    bool last_all_digits = true;

    if (len > DOMAIN_NAME_MAX) {
        addr_fail(ctx, err, "the domain is longer than %d characters", DOMAIN_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)d[i];
        size_t label_len = i - label_start;

        if (c != '.' && c != '\0') {
            if (!is_ascii_alnum(c) && c != '-') {
                addr_fail(ctx, err, "the character '%c' is not allowed in the domain", c);
                return -1;
            }
            last_all_digits = last_all_digits && c >= '0' && c <= '9';
            continue;
        }
        if (label_len == 0) {
            addr_fail(ctx, err, "the domain has an empty part between dots");
            return -1;
        }
        if (label_len > LABEL_MAX) {
            addr_fail(ctx, err, "the domain part \"%.20s...\" is longer than %d characters",
                      d + label_start, LABEL_MAX);
            return -1;
        }
        if (d[label_start] == '-' || d[i - 1] == '-') {
            addr_fail(ctx, err, "the domain part \"%.*s\" starts or ends with a hyphen",
                      (int)label_len, d + label_start);
            return -1;
        }
        if (c == '.') {
            label_start = i + 1;
            last_all_digits = true;
        }
    }
    if (label_start == 0) {
        addr_fail(ctx, err,
                  "the domain \"%s\" has no dot; write a full domain such as example.com "
                  "(or an address literal such as [192.0.2.1])",
                  d);
        return -1;
    }
    if (last_all_digits) {
        addr_fail(ctx, err, "the domain looks like an IP address; write it in brackets, like [%s]",
                  d);
        return -1;
    }
    return 0;
}

/* True when uni converts back to exactly ace. */
static bool
uni_roundtrips(const char *uni, const char *ace)
{
    char *back = NULL;
    bool same;

    if (idn2_to_ascii_8z(uni, &back, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK &&
        idn2_to_ascii_8z(uni, &back, IDN2_NFC_INPUT | IDN2_TRANSITIONAL) != IDN2_OK)
        return false;
    for (char *p = back; *p != '\0'; p++)
        *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    same = strcmp(back, ace) == 0;
    idn2_free(back);
    return same;
}

static int
parse_domain(const char *s, size_t len, const struct addr_ctx *ctx, struct mime_address *a,
             struct mo_error *err)
{
    char *raw = NULL;
    char *ace = NULL;
    char *uni = NULL;
    int rc = -1;
    int idn_rc;

    if (s[0] == '[')
        return parse_literal(s, len, ctx, a, err);
    if (s[0] == '.') {
        addr_fail(ctx, err, "the domain starts with a dot");
        goto out;
    }
    if (s[len - 1] == '.') {
        addr_fail(ctx, err, "the domain ends with a dot");
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.' && s[i + 1] == '.') {
            addr_fail(ctx, err, "two dots in a row after the @");
            goto out;
        }
        if (is_wsp(s[i])) {
            addr_fail(ctx, err, "it contains a space");
            goto out;
        }
    }
    raw = dup_slice(s, len);
    if (raw == NULL)
        goto oom;
    if (mime_is_ascii(s, len)) {
        for (size_t i = 0; i < len; i++)
            raw[i] = ascii_lower(raw[i]);
        if (check_ascii_domain(raw, ctx, err) != 0)
            goto out;
        a->domain = mo_strdup(raw);
        a->domain_ascii = mo_strdup(raw);
        if (a->domain == NULL || a->domain_ascii == NULL)
            goto oom;
        rc = 0;
        goto out;
    }
    idn_rc = idn2_to_ascii_8z(raw, &ace, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (idn_rc != IDN2_OK)
        idn_rc = idn2_to_ascii_8z(raw, &ace, IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
    if (idn_rc != IDN2_OK) {
        addr_fail(ctx, err, "the domain is not a valid international domain name (%s)",
                  idn2_strerror(idn_rc));
        goto out;
    }
    for (char *p = ace; *p != '\0'; p++)
        *p = ascii_lower(*p);
    if (check_ascii_domain(ace, ctx, err) != 0)
        goto out;
    /* The U-label form of the A-labels is the domain as written, case-folded; it is kept
     * only when it converts back to the same A-labels, so that parsing the address again
     * gives the same result (labels typed as "xn--..." may not). */
    if (idn2_to_unicode_8z8z(ace, &uni, 0) == IDN2_OK && uni_roundtrips(uni, ace)) {
        a->domain = mo_strdup(uni);
    } else {
        for (char *p = raw; *p != '\0'; p++)
            *p = ascii_lower(*p);
        a->domain = mo_strdup(raw);
    }
    a->domain_ascii = mo_strdup(ace);
    if (a->domain == NULL || a->domain_ascii == NULL)
        goto oom;
    rc = 0;
    goto out;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    free(raw);
    idn2_free(ace);
    idn2_free(uni);
    return rc;
}

/* ---- addr-spec --------------------------------------------------------- */

static int
parse_addr_spec(const char *s, size_t len, const struct addr_ctx *ctx, struct mime_address *a,
                struct mo_error *err)
{
    struct mo_buf local;
    const char *at_p;
    size_t at = 0;
    int rc = -1;

    mo_buf_init(&local, 4 * len + 3);
    if (s[0] == '"') {
        if (parse_quoted_local(s, len, ctx, &local, &at, err) != 0)
            goto out;
    } else {
        at_p = memchr(s, '@', len);
        if (at_p == NULL) {
            addr_fail(ctx, err, "it has no @");
            goto out;
        }
        at = (size_t)(at_p - s);
        if (at == 0) {
            addr_fail(ctx, err, "there is nothing before the @");
            goto out;
        }
        if (check_atom_local(s, at, ctx, err) != 0 || mo_buf_append(&local, s, at, err) != 0)
            goto out;
    }
    if (local.len > MIME_LOCAL_MAX) {
        addr_fail(ctx, err, "the part before the @ has %zu characters; at most %d are allowed",
                  local.len, MIME_LOCAL_MAX);
        goto out;
    }
    if (at + 1 == len) {
        addr_fail(ctx, err, "there is nothing after the @");
        goto out;
    }
    if (memchr(s + at + 1, '@', len - at - 1) != NULL) {
        addr_fail(ctx, err, "it has more than one @");
        goto out;
    }
    if (parse_domain(s + at + 1, len - at - 1, ctx, a, err) != 0)
        goto out;
    if (local.len + 1 + strlen(a->domain_ascii) > MIME_ADDRESS_MAX) {
        addr_fail(ctx, err, "it is longer than %d characters", MIME_ADDRESS_MAX);
        goto out;
    }
    a->has_utf8_local = !mime_is_ascii(local.data, local.len);
    a->local = mo_strdup(local.data);
    if (a->local == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = 0;
out:
    mo_buf_free(&local);
    return rc;
}

/* ---- one mailbox ------------------------------------------------------- */

/* Finds the top-level '<' (outside quotes and comments); *lt = len when there is none. */
static int
find_angle_open(const char *s, size_t len, const struct addr_ctx *ctx, size_t *lt,
                struct mo_error *err)
{
    size_t pos = 0;

    while (pos < len) {
        if (s[pos] == '"') {
            if (!skip_quoted(s, len, &pos)) {
                addr_fail(ctx, err, "a double quote is not closed");
                return -1;
            }
        } else if (s[pos] == '(') {
            if (!skip_comment(s, len, &pos)) {
                addr_fail(ctx, err, "a parenthesis is not closed");
                return -1;
            }
        } else if (s[pos] == '<') {
            break;
        } else if (s[pos] == '>') {
            addr_fail(ctx, err, "it has a > without a <");
            return -1;
        } else {
            pos++;
        }
    }
    *lt = pos;
    return 0;
}

/* Finds the '>' closing the '<' at s[lt], skipping quoted strings and literals. */
static int
find_angle_close(const char *s, size_t len, size_t lt, const struct addr_ctx *ctx, size_t *gt,
                 struct mo_error *err)
{
    size_t pos = lt + 1;

    while (pos < len && s[pos] != '>') {
        if (s[pos] == '"') {
            if (!skip_quoted(s, len, &pos)) {
                addr_fail(ctx, err, "a double quote is not closed");
                return -1;
            }
            continue;
        }
        if (s[pos] == '[') {
            const char *close = memchr(s + pos, ']', len - pos);
            pos = close != NULL ? (size_t)(close - s) : len;
        }
        if (pos < len && s[pos] == '<') {
            addr_fail(ctx, err, "it has a < inside < and >");
            return -1;
        }
        pos++;
    }
    if (pos >= len) {
        addr_fail(ctx, err, "the < has no matching >");
        return -1;
    }
    *gt = pos;
    return 0;
}

static int
address_parse_slice(const char *s, size_t len, const char *field, struct mime_address *out,
                    struct mo_error *err)
{
    struct addr_ctx ctx;
    struct mime_address a = {0};
    const char *spec;
    size_t spec_len;
    size_t lt;
    size_t gt;
    size_t pos = 0;
    size_t ctl;
    int rc = -1;

    while (len > 0 && is_wsp(s[len - 1]))
        len--;
    while (len > 0 && is_wsp(s[0])) {
        s++;
        len--;
    }
    ctx.field = field;
    mime_describe(s, len, ctx.desc, sizeof(ctx.desc));
    if (len == 0) {
        addr_fail(&ctx, err, "it is empty");
        goto out;
    }
    ctl = mime_find_ctl(s, len, true);
    if (ctl < len) {
        addr_fail(&ctx, err, "it contains %s", mime_ctl_name((unsigned char)s[ctl]));
        goto out;
    }
    if (!mime_utf8_valid(s, len)) {
        addr_fail(&ctx, err, "it is not valid UTF-8");
        goto out;
    }
    if (find_angle_open(s, len, &ctx, &lt, err) != 0)
        goto out;
    if (lt < len) {
        if (find_angle_close(s, len, lt, &ctx, &gt, err) != 0)
            goto out;
        pos = gt + 1;
        if (!skip_cfws(s, len, &pos)) {
            addr_fail(&ctx, err, "a parenthesis is not closed");
            goto out;
        }
        if (pos < len) {
            addr_fail(&ctx, err, "there is text after the >");
            goto out;
        }
        if (parse_phrase(s, lt, &ctx, &a.display_name, err) != 0)
            goto out;
        spec = s + lt + 1;
        spec_len = gt - lt - 1;
        while (spec_len > 0 && is_wsp(spec[spec_len - 1]))
            spec_len--;
        while (spec_len > 0 && is_wsp(spec[0])) {
            spec++;
            spec_len--;
        }
        if (spec_len == 0) {
            addr_fail(&ctx, err, "there is no address between < and >");
            goto out;
        }
    } else {
        /* a bare addr-spec, perhaps with comments around it */
        if (!skip_cfws(s, len, &pos)) {
            addr_fail(&ctx, err, "a parenthesis is not closed");
            goto out;
        }
        spec = s + pos;
        while (pos < len && !is_wsp(s[pos]) && s[pos] != '(') {
            if (s[pos] == '"')
                (void)skip_quoted(s, len, &pos); /* closed: find_angle_open checked */
            else
                pos++;
        }
        spec_len = (size_t)(s + pos - spec);
        if (!skip_cfws(s, len, &pos)) {
            addr_fail(&ctx, err, "a parenthesis is not closed");
            goto out;
        }
        if (pos < len || spec_len == 0) {
            addr_fail(&ctx, err,
                      memchr(s, '@', len) == NULL ? "it has no @"
                      : memchr(s, ',', len) != NULL
                          ? "it holds more than one address; only one is allowed here"
                          : "it contains a space (to add a name, write Name <address>)");
            goto out;
        }
    }
    if (parse_addr_spec(spec, spec_len, &ctx, &a, err) != 0)
        goto out;
    *out = a;
    rc = 0;
out:
    if (rc != 0)
        mime_address_clear(&a);
    return rc;
}

int
mime_address_parse(const char *text, const char *field, struct mime_address *out,
                   struct mo_error *err)
{
    if (text == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, field, "no address was given");
        return -1;
    }
    return address_parse_slice(text, strlen(text), field, out, err);
}

/* ---- lists ------------------------------------------------------------- */

static bool
is_blank(const char *s, size_t len)
{
    size_t pos = 0;

    return skip_cfws(s, len, &pos) && pos == len;
}

static int
list_push(struct mime_address **list, size_t *n, size_t *cap, struct mime_address *a,
          struct mo_error *err)
{
    if (*n == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 4;
        struct mime_address *p = realloc(*list, new_cap * sizeof(*p));

        if (p == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
        *list = p;
        *cap = new_cap;
    }
    (*list)[(*n)++] = *a;
    return 0;
}

int
mime_address_list_parse(const char *text, const char *field, struct mime_address **out,
                        size_t *n_out, struct mo_error *err)
{
    struct mime_address *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t len;
    size_t ctl;
    size_t seg = 0;
    size_t pos = 0;
    bool in_group = false;
    char desc[MIME_DESCRIBE_MAX];
    int rc = -1;

    if (text == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, field, "no address list was given");
        goto out;
    }
    len = strlen(text);
    mime_describe(text, len, desc, sizeof(desc));
    ctl = mime_find_ctl(text, len, true);
    if (ctl < len) {
        mo_error_set(err, MO_ERR_CONFIG, field,
                     "\"%s\" is not a valid address list: it contains %s", desc,
                     mime_ctl_name((unsigned char)text[ctl]));
        goto out;
    }
    /* Split at top-level ',' and ';'; a top-level ':' opens a group. A quote,
     * comment or bracket left open runs to the end, where the mailbox parser
     * reports it. */
    while (pos <= len) {
        char c = pos < len ? text[pos] : ',';

        if (c == ',' || c == ';') {
            if (c == ';' && !in_group) {
                mo_error_set(err, MO_ERR_CONFIG, field,
                             "\"%s\" is not a valid address list: it has a ';' without a group "
                             "name and ':' before it",
                             desc);
                goto out;
            }
            if (!is_blank(text + seg, pos - seg)) {
                struct mime_address a = {0};

                if (address_parse_slice(text + seg, pos - seg, field, &a, err) != 0)
                    goto out;
                if (list_push(&list, &n, &cap, &a, err) != 0) {
                    mime_address_clear(&a);
                    goto out;
                }
            }
            in_group = in_group && c != ';';
            seg = ++pos;
        } else if (c == '"') {
            if (!skip_quoted(text, len, &pos))
                pos = len;
        } else if (c == '(') {
            if (!skip_comment(text, len, &pos))
                pos = len;
        } else if (c == '<' || c == '[') {
            const char *close = memchr(text + pos, c == '<' ? '>' : ']', len - pos);
            pos = close != NULL ? (size_t)(close - text) + 1 : len;
        } else if (c == ':') {
            if (in_group) {
                mo_error_set(err, MO_ERR_CONFIG, field,
                             "\"%s\" is not a valid address list: a group is opened inside a "
                             "group (or a name has an unquoted ':')",
                             desc);
                goto out;
            }
            in_group = true; /* the group's name is not kept: members are flattened */
            seg = ++pos;
        } else {
            pos++;
        }
    }
    *out = list;
    *n_out = n;
    list = NULL;
    n = 0;
    rc = 0;
out:
    mime_address_list_free(list, n);
    return rc;
}

void
mime_address_clear(struct mime_address *a)
{
    if (a == NULL)
        return;
    free(a->display_name);
    free(a->local);
    free(a->domain);
    free(a->domain_ascii);
    memset(a, 0, sizeof(*a));
}

void
mime_address_list_free(struct mime_address *list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        mime_address_clear(&list[i]);
    free(list);
}

/* ---- writing ----------------------------------------------------------- */

static const char *
address_domain(const struct mime_address *a, bool want_ascii)
{
    if (want_ascii)
        return a->domain_ascii != NULL ? a->domain_ascii : a->domain;
    return a->domain != NULL ? a->domain : a->domain_ascii;
}

int
mime_address_envelope(const struct mime_address *a, char *out, size_t out_size,
                      struct mo_error *err)
{
    const char *domain = address_domain(a, true);
    int n;

    if (a->local == NULL || domain == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the address has no local part or no domain");
        return -1;
    }
    n = snprintf(out, out_size, "%s@%s", a->local, domain);
    if (n < 0 || (size_t)n >= out_size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the address does not fit in %zu bytes", out_size);
        return -1;
    }
    return 0;
}

/* Atoms separated by single spaces: RFC 5322 3.2.5 phrase with no quoting needed. */
static bool
name_is_plain(const char *s, size_t len)
{
    if (s[0] == ' ' || s[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ' ? s[i + 1] == ' ' : !mime_is_atext((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool
name_needs_encoding(const char *s, size_t len)
{
    size_t run = 0;

    if (!mime_is_ascii(s, len) || mime_find_ctl(s, len, false) < len || strstr(s, "=?") != NULL)
        return true;
    for (size_t i = 0; i < len; i++) {
        run = s[i] == ' ' ? 0 : run + 1;
        if (run > NAME_WORD_MAX)
            return true; /* a word that long could not be folded */
    }
    return false;
}

static int
name_append(const char *name, struct mo_buf *out, struct mo_error *err)
{
    size_t len = strlen(name);

    if (name_needs_encoding(name, len))
        return mime_ew_encode(name, len, MIME_EW_MAX, out, err);
    if (name_is_plain(name, len))
        return mo_buf_append(out, name, len, err);
    if (mo_buf_append(out, "\"", 1, err) != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if ((name[i] == '"' || name[i] == '\\') && mo_buf_append(out, "\\", 1, err) != 0)
            return -1;
        if (mo_buf_append(out, name + i, 1, err) != 0)
            return -1;
    }
    return mo_buf_append(out, "\"", 1, err);
}

int
mime_address_format(const struct mime_address *a, struct mo_buf *out, struct mo_error *err)
{
    const char *domain = address_domain(a, !a->has_utf8_local);
    size_t start = out->len;
    int rc = -1;

    if (a->local == NULL || a->local[0] == '\0' || domain == NULL || domain[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, NULL, "the address has no local part or no domain");
        goto out;
    }
    /* a hand-built address must not smuggle a line break into a header */
    if (mime_find_ctl(a->local, strlen(a->local), false) < strlen(a->local) ||
        mime_find_ctl(domain, strlen(domain), false) < strlen(domain)) {
        mo_error_set(err, MO_ERR_CONFIG, NULL, "the address contains a control character");
        goto out;
    }
    if (a->display_name != NULL && a->display_name[0] != '\0') {
        if (name_append(a->display_name, out, err) != 0 ||
            mo_buf_appendf(out, err, " <%s@%s>", a->local, domain) != 0)
            goto out;
    } else if (mo_buf_appendf(out, err, "%s@%s", a->local, domain) != 0) {
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

int
mime_address_check(const struct mime_address *a, const char *field, struct mo_error *err)
{
    struct mime_address parsed = {0};
    struct mo_buf spec;
    const char *domain = address_domain(a, true);
    int rc = -1;

    mo_buf_init(&spec, 4 * MIME_ADDRESS_MAX);
    if (a->display_name != NULL) {
        size_t len = strlen(a->display_name);
        size_t ctl = mime_find_ctl(a->display_name, len, false);
        char desc[MIME_DESCRIBE_MAX];

        mime_describe(a->display_name, len, desc, sizeof(desc));
        if (ctl < len) {
            mo_error_set(err, MO_ERR_CONFIG, field, "the name \"%s\" contains %s", desc,
                         mime_ctl_name((unsigned char)a->display_name[ctl]));
            goto out;
        }
        if (!mime_utf8_valid(a->display_name, len)) {
            mo_error_set(err, MO_ERR_CONFIG, field, "the name \"%s\" is not valid UTF-8", desc);
            goto out;
        }
    }
    if (a->local == NULL || domain == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, field, "the %s address has no local part or no domain",
                     field);
        goto out;
    }
    if (mo_buf_appendf(&spec, err, "%s@%s", a->local, domain) != 0 ||
        address_parse_slice(spec.data, spec.len, field, &parsed, err) != 0)
        goto out;
    rc = 0;
out:
    mime_address_clear(&parsed);
    mo_buf_free(&spec);
    return rc;
}
