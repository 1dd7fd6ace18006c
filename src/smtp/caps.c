/*
 * caps.c - turns an EHLO reply into capability bits.
 *
 * Why: the session decides STARTTLS, AUTH, PIPELINING, SIZE, 8BITMIME and
 * SMTPUTF8 from these bits alone, and keeping the parsing pure lets us test
 * and fuzz it without a server.
 *
 * Follows RFC 5321 4.1.1.1 (EHLO reply: greeting line, then one keyword with
 * optional parameters per line), RFC 1870 (SIZE), RFC 2920 (PIPELINING),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 2034 (ENHANCEDSTATUSCODES),
 * RFC 4954 (AUTH), RFC 3207 (STARTTLS), RFC 3030 (CHUNKING), RFC 3461 (DSN).
 * Also accepts "AUTH=mech ...", the pre-standard form some servers still
 * send for old Outlook clients.
 * Leaves out: keywords mailout never uses; unknown keywords and unknown SASL
 * mechanisms are ignored, as RFC 5321 asks.
 */
#include "smtp/smtp.h"

#include <string.h>
#include <strings.h>

struct caps_token {
    const char *s;
    size_t len;
};

static const struct {
    const char *keyword;
    unsigned flag;
} caps_keywords[] = {
    {"SIZE", SMTP_CAP_SIZE},
    {"PIPELINING", SMTP_CAP_PIPELINING},
    {"8BITMIME", SMTP_CAP_8BITMIME},
    {"SMTPUTF8", SMTP_CAP_SMTPUTF8},
    {"ENHANCEDSTATUSCODES", SMTP_CAP_ENHANCEDSTATUSCODES},
    {"AUTH", SMTP_CAP_AUTH},
    {"STARTTLS", SMTP_CAP_STARTTLS},
    {"CHUNKING", SMTP_CAP_CHUNKING},
    {"DSN", SMTP_CAP_DSN},
};

static bool
caps_token_is(struct caps_token t, const char *word)
{
    return strlen(word) == t.len && strncasecmp(t.s, word, t.len) == 0;
}

/* The next run of bytes up to a space or tab, starting at *pos; false at the end. */
static bool
caps_next_token(const char *line, size_t len, size_t *pos, struct caps_token *t)
{
    size_t i = *pos;
    size_t start;

    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= len)
        return false;
    start = i;
    while (i < len && line[i] != ' ' && line[i] != '\t')
        i++;
    t->s = line + start;
    t->len = i - start;
    *pos = i;
    return true;
}

/* Adds the bit of one SASL mechanism name; unknown names are ignored. */
static void
caps_add_mech(struct smtp_caps *out, struct caps_token t)
{
    for (int m = SMTP_AUTH_AUTO + 1; m < SMTP_AUTH_COUNT; m++) {
        if (caps_token_is(t, smtp_auth_mech_name((enum smtp_auth_mech)m)))
            out->auth_mechs |= 1u << m;
    }
}

/*
 * SIZE's argument (RFC 1870: decimal octets, 0 or absent for no fixed
 * limit). Anything else leaves size_max at 0: the server still said SIZE,
 * and a message it finds too big is refused with a clear 552 later.
 */
static uint64_t
caps_parse_size(struct caps_token t)
{
    uint64_t v = 0;

    if (t.len == 0 || t.len > 20)
        return 0;
    for (size_t i = 0; i < t.len; i++) {
        unsigned d;

        if (t.s[i] < '0' || t.s[i] > '9')
            return 0;
        d = (unsigned)(t.s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static void
caps_parse_line(const char *line, size_t len, struct smtp_caps *out)
{
    struct caps_token kw;
    struct caps_token arg;
    size_t pos = 0;

    if (!caps_next_token(line, len, &pos, &kw))
        return;

    /* "AUTH=LOGIN PLAIN": the first mechanism is glued to the keyword. */
    if (kw.len > 5 && strncasecmp(kw.s, "AUTH=", 5) == 0) {
        out->flags |= SMTP_CAP_AUTH;
        caps_add_mech(out, (struct caps_token){kw.s + 5, kw.len - 5});
        while (caps_next_token(line, len, &pos, &arg))
            caps_add_mech(out, arg);
        return;
    }

    for (size_t i = 0; i < sizeof(caps_keywords) / sizeof(caps_keywords[0]); i++) {
        if (!caps_token_is(kw, caps_keywords[i].keyword))
            continue;
        out->flags |= caps_keywords[i].flag;
        if (caps_keywords[i].flag == SMTP_CAP_SIZE && caps_next_token(line, len, &pos, &arg))
            out->size_max = caps_parse_size(arg);
        else if (caps_keywords[i].flag == SMTP_CAP_AUTH) {
            while (caps_next_token(line, len, &pos, &arg))
                caps_add_mech(out, arg);
        }
        return;
    }
}

int
smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *out, struct mo_error *err)
{
    const char *p;
    const char *end;

    memset(out, 0, sizeof(*out));
    if (ehlo->code != 250) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server answered EHLO with %d instead of 250",
                     ehlo->code);
        if (err != NULL) {
            err->smtp_code = ehlo->code;
            memcpy(err->enhanced, ehlo->enhanced, sizeof(err->enhanced));
            err->enhanced[sizeof(err->enhanced) - 1] = '\0';
            err->temporary = ehlo->code >= 400 && ehlo->code < 500;
        }
        return -1;
    }

    /* Line 1 is the greeting ("mail.example.com Hello"), not a keyword. */
    p = memchr(ehlo->text, '\n', strnlen(ehlo->text, sizeof(ehlo->text)));
    end = ehlo->text + strnlen(ehlo->text, sizeof(ehlo->text));
    while (p != NULL && p < end) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *line_end = nl != NULL ? nl : end;

        caps_parse_line(line, (size_t)(line_end - line), out);
        p = nl;
    }
    return 0;
}
