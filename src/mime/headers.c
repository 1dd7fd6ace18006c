/*
 * headers.c - reading the header block of a message that arrives whole
 * (sendmail mode: PHP's mail(), cron, scripts) and preparing it for
 * submission: Bcc removed, Date / Message-ID / From added when missing, every
 * line end CRLF.
 *
 * Why: such messages come as the program wrote them, often with LF-only line
 * ends (PHP on Unix), sometimes without the blank line after the headers, or
 * with a From that is only a local user ("root (Cron Daemon)"). An MTA
 * accepts all of that; so do we, and hand the SMTP engine a message it can
 * send as it is (RFC 5321 2.3.8: no bare CR or LF).
 * Leaves out: MIME structure (bodies are copied byte for byte, line ends
 * aside), Resent-* blocks (kept as written; only Resent-Bcc is dropped),
 * lines over 998 octets (kept; the server decides), header charsets other than
 * UTF-8 when encoding (raw Latin-1 stays raw).
 * RFCs: 5322 2.2 (fields), 2.2.3 (unfolding), 3.3 (date), 3.6 (fields and
 * how many of each), 3.6.3 (Bcc), 4.5 (obsolete white space before ':');
 * 2047 (encoded words, decoding in section 6); 5321 2.3.8 (line ends).
 */
#include "mime/mime_internal.h"

#include <errno.h>
#include <iconv.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DATE_MAX 64
#define MESSAGE_ID_MAX 256

/* ---- lines --------------------------------------------------------------- */

/*
 * The line starting at pos: its content ends at *end; returns where the next
 * line starts (len at the end). A line ends at LF, at CR LF, at CR CR LF
 * (double conversion by some PHP setups: one line end, not two) or at a CR
 * followed by anything else.
 */
static size_t
line_next(const char *s, size_t len, size_t pos, size_t *end)
{
    size_t i = pos;

    while (i < len && s[i] != '\r' && s[i] != '\n')
        i++;
    *end = i;
    if (i >= len)
        return len;
    if (s[i] == '\n')
        return i + 1;
    {
        size_t j = i;

        while (j < len && s[j] == '\r')
            j++;
        if (j < len && s[j] == '\n')
            return j + 1;
    }
    return i + 1;
}

/* Appends s[0..len) with every line end (as line_next sees them) written as CRLF. */
static int
append_crlf(struct mo_buf *out, const char *s, size_t len, struct mo_error *err)
{
    size_t pos = 0;

    while (pos < len) {
        size_t end;
        size_t next = line_next(s, len, pos, &end);

        if (mo_buf_append(out, s + pos, end - pos, err) != 0)
            return -1;
        if (end < next && mo_buf_append(out, "\r\n", 2, err) != 0)
            return -1;
        pos = next;
    }
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 5322 2.2 ftext: printable US-ASCII except ':'. */
static bool
is_ftext(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

/* Length of the field name at s (a line's content), or 0 when the line is not a field. */
static size_t
field_name_len(const char *s, size_t len, size_t *colon)
{
    size_t n = 0;
    size_t i;

    while (n < len && is_ftext((unsigned char)s[n]))
        n++;
    if (n == 0)
        return 0;
    i = n;
    while (i < len && is_wsp(s[i])) /* obs-optional, RFC 5322 4.5 */
        i++;
    if (i >= len || s[i] != ':')
        return 0;
    *colon = i;
    return n;
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

/* The unfolded value of raw[0..len) (the part after the colon). */
static char *
unfold(const char *raw, size_t len)
{
    char *v = malloc(len + 1);
    size_t n = 0;
    size_t start = 0;

    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (raw[i] != '\r' && raw[i] != '\n')
            v[n++] = raw[i];
    while (start < n && is_wsp(v[start]))
        start++;
    while (n > start && is_wsp(v[n - 1]))
        n--;
    memmove(v, v + start, n - start);
    v[n - start] = '\0';
    return v;
}

static bool
ascii_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0; /* the C locale: ASCII only */
}

static int
fields_push(struct mime_headers *h, size_t *cap, size_t offset, size_t name_len, size_t colon,
            const char *msg, struct mo_error *err)
{
    struct mime_header_field *f;

    if (h->n >= MIME_HEADERS_MAX_FIELDS) {
        mo_error_set(err, MO_ERR_CONFIG, "message", "the message has more than %d header fields",
                     MIME_HEADERS_MAX_FIELDS);
        return -1;
    }
    if (h->n == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 16;
        struct mime_header_field *p = realloc(h->fields, new_cap * sizeof(*p));

        if (p == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
        h->fields = p;
        *cap = new_cap;
    }
    f = &h->fields[h->n];
    memset(f, 0, sizeof(*f));
    f->offset = offset;
    f->raw_len = colon + 1; /* grows with the line end and continuations */
    f->name = dup_slice(msg + offset, name_len);
    if (f->name == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    h->n++;
    return 0;
}

int
mime_headers_parse(const char *msg, size_t len, struct mime_headers *out, struct mo_error *err)
{
    struct mime_headers h;
    size_t cap = 0;
    size_t pos = 0;
    size_t block_end;
    int rc = -1;

    memset(&h, 0, sizeof(h));
    memset(out, 0, sizeof(*out));
    /* An mbox separator ("From sender date") some tools still write first; not a
     * "From :" field (obsolete white space before the colon). */
    if (len >= 5 && memcmp(msg, "From ", 5) == 0) {
        size_t end;
        size_t colon;
        size_t next = line_next(msg, len, 0, &end);

        if (field_name_len(msg, end, &colon) == 0) {
            pos = next;
            h.has_mbox_from = true;
        }
    }
    h.header_offset = pos;
    h.body_offset = len;
    while (pos < len) {
        size_t end;
        size_t next = line_next(msg, len, pos, &end);
        size_t colon = 0;
        size_t name_len;

        if (end == pos) { /* the blank line */
            h.has_blank_line = true;
            h.body_offset = next;
            break;
        }
        if (is_wsp(msg[pos]) && h.n > 0) { /* a continuation of the field before */
            struct mime_header_field *f = &h.fields[h.n - 1];

            f->raw_len = next - f->offset;
            pos = next;
            continue;
        }
        name_len = field_name_len(msg + pos, end - pos, &colon);
        if (name_len == 0) { /* not a field: the body starts here, without a blank line */
            h.body_offset = pos;
            break;
        }
        if (fields_push(&h, &cap, pos, name_len, colon, msg, err) != 0)
            goto out;
        h.fields[h.n - 1].raw_len = next - pos;
        pos = next;
    }
    block_end = h.body_offset;
    if (memchr(msg + h.header_offset, '\0', block_end - h.header_offset) != NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "message", "the message's header holds a NUL byte");
        goto out;
    }
    for (size_t i = 0; i < h.n; i++) {
        struct mime_header_field *f = &h.fields[i];
        const char *raw = msg + f->offset;
        const char *colon = memchr(raw, ':', f->raw_len);

        /* field_name_len found the colon on the field's first line */
        f->value = unfold(colon + 1, f->raw_len - (size_t)(colon + 1 - raw));
        if (f->value == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    *out = h;
    memset(&h, 0, sizeof(h));
    rc = 0;
out:
    mime_headers_clear(&h);
    return rc;
}

void
mime_headers_clear(struct mime_headers *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->fields[i].name);
        free(h->fields[i].value);
    }
    free(h->fields);
    memset(h, 0, sizeof(*h));
}

const struct mime_header_field *
mime_headers_find(const struct mime_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (ascii_ieq(h->fields[i].name, name))
            return &h->fields[i];
    return NULL;
}

/* ---- addresses ----------------------------------------------------------- */

/* "root", "www-data": a local user name as cron and scripts write it (no @, no <>). */
static bool
is_local_name(const char *s, size_t len)
{
    if (len == 0 || len > MIME_LOCAL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '+'))
            return false;
    }
    return true;
}

static int
strings_push(char ***list, size_t *n, const char *s, size_t len, struct mo_error *err)
{
    char **p = realloc(*list, (*n + 1) * sizeof(*p));

    if (p == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    *list = p;
    p[*n] = dup_slice(s, len);
    if (p[*n] == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    (*n)++;
    return 0;
}

static int
addresses_append(struct mime_address **all, size_t *n_all, struct mime_address *more, size_t n_more,
                 struct mo_error *err)
{
    struct mime_address *p;

    if (n_more == 0) {
        free(more);
        return 0;
    }
    p = realloc(*all, (*n_all + n_more) * sizeof(*p));
    if (p == NULL) {
        mime_address_list_free(more, n_more);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    memcpy(p + *n_all, more, n_more * sizeof(*p));
    free(more);
    *all = p;
    *n_all += n_more;
    return 0;
}

/*
 * A value that does not parse as a list may still be "root" or "root, a@b":
 * split at commas outside quotes, comments and brackets, and take bare local
 * names aside. Groups are not split here; the whole-list parser handles them.
 */
static int
addresses_with_locals(const char *value, const char *field, struct mime_address **all,
                      size_t *n_all, char ***locals, size_t *n_locals, struct mo_error *err)
{
    size_t len = strlen(value);
    size_t seg = 0;
    int depth = 0;
    bool quoted = false;
    bool angle = false;

    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? value[i] : ',';

        if (quoted) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '"')
                quoted = false;
            continue;
        }
        if (c == '"') {
            quoted = true;
        } else if (c == '(') {
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (c == '<') {
            angle = true;
        } else if (c == '>') {
            angle = false;
        } else if (c == ',' && depth == 0 && !angle) {
            size_t a = seg;
            size_t b = i;
            char *piece;
            struct mime_address *list = NULL;
            size_t n = 0;
            int rc;

            seg = i + 1;
            while (a < b && is_wsp(value[a]))
                a++;
            while (b > a && is_wsp(value[b - 1]))
                b--;
            if (a == b)
                continue;
            if (is_local_name(value + a, b - a)) {
                if (strings_push(locals, n_locals, value + a, b - a, err) != 0)
                    return -1;
                continue;
            }
            piece = dup_slice(value + a, b - a);
            if (piece == NULL) {
                mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
                return -1;
            }
            rc = mime_address_list_parse(piece, field, &list, &n, err);
            free(piece);
            if (rc != 0 || addresses_append(all, n_all, list, n, err) != 0)
                return -1;
        }
    }
    return 0;
}

int
mime_headers_addresses(const struct mime_headers *h, const char *const *names, size_t n_names,
                       const char *field, struct mime_address **out, size_t *n_out,
                       char ***local_out, size_t *n_local_out, struct mo_error *err)
{
    struct mime_address *all = NULL;
    size_t n_all = 0;
    char **locals = NULL;
    size_t n_locals = 0;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (local_out != NULL) {
        *local_out = NULL;
        *n_local_out = 0;
    }
    for (size_t i = 0; i < h->n; i++) {
        const struct mime_header_field *f = &h->fields[i];
        struct mime_address *list = NULL;
        size_t n = 0;
        bool wanted = false;

        for (size_t k = 0; k < n_names && !wanted; k++)
            wanted = ascii_ieq(f->name, names[k]);
        if (!wanted)
            continue;
        if (mime_address_list_parse(f->value, field, &list, &n, err) == 0) {
            if (addresses_append(&all, &n_all, list, n, err) != 0)
                goto out;
            continue;
        }
        if (local_out == NULL ||
            addresses_with_locals(f->value, field, &all, &n_all, &locals, &n_locals, err) != 0) {
            mo_error_prefix(err, "the %s header", f->name);
            goto out;
        }
    }
    *out = all;
    *n_out = n_all;
    all = NULL;
    n_all = 0;
    if (local_out != NULL) {
        *local_out = locals;
        *n_local_out = n_locals;
        locals = NULL;
        n_locals = 0;
    }
    rc = 0;
out:
    mime_address_list_free(all, n_all);
    for (size_t i = 0; i < n_locals; i++)
        free(locals[i]);
    free(locals);
    return rc;
}

/* ---- RFC 2047 decoding ----------------------------------------------------- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends s as UTF-8 for a log line: invalid bytes become U+FFFD, controls spaces. */
static int
append_clean_utf8(struct mo_buf *out, const char *s, size_t len, struct mo_error *err)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t cl;

        if (c < 0x20 || c == 0x7f) {
            if (mo_buf_append(out, " ", 1, err) != 0)
                return -1;
            i++;
            continue;
        }
        if (c < 0x80) {
            if (mo_buf_append(out, s + i, 1, err) != 0)
                return -1;
            i++;
            continue;
        }
        cl = mime_utf8_char_len(s + i, len - i);
        if (cl > 1 && cl <= len - i && mime_utf8_valid(s + i, cl)) {
            if (mo_buf_append(out, s + i, cl, err) != 0)
                return -1;
            i += cl;
        } else {
            if (mo_buf_append(out, "\xef\xbf\xbd", 3, err) != 0)
                return -1;
            i++;
        }
    }
    return 0;
}

static bool
charset_is_utf8(const char *cs)
{
    return ascii_ieq(cs, "utf-8") || ascii_ieq(cs, "utf8") || ascii_ieq(cs, "us-ascii");
}

/* Converts bytes in charset to UTF-8 with iconv and appends them (cleaned). */
static int
append_converted(struct mo_buf *out, const char *charset, const char *s, size_t len,
                 struct mo_error *err)
{
    iconv_t cd;
    struct mo_buf tmp;
    char chunk[1024];
    char *in = (char *)s; /* iconv's prototype; it does not write through it */
    size_t in_left = len;
    int rc = -1;

    if (charset_is_utf8(charset) || len == 0)
        return append_clean_utf8(out, s, len, err);
    cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) /* an unknown charset: show the bytes as they are */
        return append_clean_utf8(out, s, len, err);
    mo_buf_init(&tmp, out->max_bytes);
    while (in_left > 0) {
        char *o = chunk;
        size_t o_left = sizeof(chunk);
        size_t r = iconv(cd, &in, &in_left, &o, &o_left);

        if (mo_buf_append(&tmp, chunk, sizeof(chunk) - o_left, err) != 0)
            goto out;
        if (r == (size_t)-1 && errno != E2BIG) {
            /* an invalid or cut sequence: one replacement character, then go on */
            if (mo_buf_append(&tmp, "\xef\xbf\xbd", 3, err) != 0)
                goto out;
            in++;
            in_left--;
        }
    }
    rc = append_clean_utf8(out, tmp.data != NULL ? tmp.data : "", tmp.len, err);
out:
    mo_buf_free(&tmp);
    iconv_close(cd);
    return rc;
}

/* Base64 of an encoded word with OpenSSL; missing padding is tolerated.
 * 0 ok, -1 not base64, -2 INTERNAL. */
static int
decode_b(const char *text, size_t len, struct mo_buf *out, struct mo_error *err)
{
    size_t core = len;
    size_t padded;
    size_t pad;
    unsigned char *in = NULL;
    unsigned char *bytes = NULL;
    int n;
    int rc = -1;

    while (core > 0 && text[core - 1] == '=')
        core--;
    if (len - core > 2 || core % 4 == 1)
        return -1; /* one character cannot end a quantum */
    if (core == 0)
        return 0;
    pad = (4 - core % 4) % 4;
    padded = core + pad;
    in = malloc(padded + 1);
    bytes = malloc(padded / 4 * 3 + 1);
    if (in == NULL || bytes == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        rc = -2;
        goto out;
    }
    memcpy(in, text, core);
    memset(in + core, '=', pad);
    in[padded] = '\0';
    n = EVP_DecodeBlock(bytes, in, (int)padded);
    if (n < 0 || (size_t)n < pad)
        goto out; /* not base64: the caller keeps the word as written */
    if (mo_buf_append(out, bytes, (size_t)n - pad, err) != 0) {
        rc = -2;
        goto out;
    }
    rc = 0;
out:
    free(in);
    free(bytes);
    return rc;
}

static int
decode_q(const char *text, size_t len, struct mo_buf *out, struct mo_error *err)
{
    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (c == '_') {
            c = ' ';
        } else if (c == '=') {
            int hi;
            int lo;

            if (i + 2 >= len)
                return -1;
            hi = hex_value(text[i + 1]);
            lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (mo_buf_append(out, &c, 1, err) != 0)
            return -2;
    }
    return 0;
}

/*
 * Recognises "=?charset?X?text?=" at s. On success fills the parts and
 * returns the word's length; 0 when s does not start an encoded word.
 */
static size_t
encoded_word(const char *s, size_t len, const char **cs, size_t *cs_len, char *enc,
             const char **text, size_t *text_len)
{
    size_t i = 2;
    size_t q1;

    if (len < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    while (i < len && s[i] != '?' && !is_wsp(s[i]))
        i++;
    if (i >= len || s[i] != '?' || i == 2)
        return 0;
    q1 = i;
    if (i + 2 >= len || s[i + 2] != '?')
        return 0;
    *enc = s[i + 1];
    if (*enc != 'B' && *enc != 'b' && *enc != 'Q' && *enc != 'q')
        return 0;
    i += 3;
    *text = s + i;
    while (i + 1 < len && !(s[i] == '?' && s[i + 1] == '=')) {
        if (is_wsp(s[i]))
            return 0;
        i++;
    }
    if (i + 1 >= len)
        return 0;
    *text_len = (size_t)(s + i - *text);
    *cs = s + 2;
    *cs_len = q1 - 2;
    return i + 2;
}

int
mime_decode_words(const char *value, struct mo_buf *out, struct mo_error *err)
{
    struct mo_buf bytes;
    char charset[64] = "";
    size_t len = strlen(value);
    size_t pos = 0;
    size_t plain = 0; /* start of text not yet written */
    bool last_was_word = false;
    int rc = -1;

    mo_buf_init(&bytes, len + 16);
    while (pos < len) {
        const char *cs;
        const char *text;
        size_t cs_len;
        size_t text_len;
        char enc;
        size_t wlen = encoded_word(value + pos, len - pos, &cs, &cs_len, &enc, &text, &text_len);
        char this_cs[64];
        const char *star;
        size_t keep_bytes;
        bool only_wsp;
        int d;

        if (wlen == 0) {
            pos++;
            continue;
        }
        star = memchr(cs, '*', cs_len); /* RFC 2231 language: =?utf-8*de?Q?...?= */
        if (star != NULL)
            cs_len = (size_t)(star - cs);
        if (cs_len >= sizeof(this_cs)) {
            pos += wlen;
            continue;
        }
        memcpy(this_cs, cs, cs_len);
        this_cs[cs_len] = '\0';
        /* White space between two encoded words is dropped (RFC 2047 6.2); other text
         * ends the pending bytes of the words before it. */
        only_wsp = last_was_word;
        for (size_t i = plain; i < pos && only_wsp; i++) /* folded or not */
            only_wsp = is_wsp(value[i]) || value[i] == '\r' || value[i] == '\n';
        if (!only_wsp || !ascii_ieq(this_cs, charset)) {
            if (append_converted(out, charset, bytes.data, bytes.len, err) != 0)
                goto out;
            mo_buf_reset(&bytes);
            if (!only_wsp && append_clean_utf8(out, value + plain, pos - plain, err) != 0)
                goto out;
        }
        keep_bytes = bytes.len;
        d = enc == 'B' || enc == 'b' ? decode_b(text, text_len, &bytes, err)
                                     : decode_q(text, text_len, &bytes, err);
        if (d == -2)
            goto out;
        if (d != 0) { /* undecodable: shown as written, with the space before it */
            bytes.len = keep_bytes;
            if (append_converted(out, charset, bytes.data, bytes.len, err) != 0 ||
                (only_wsp && append_clean_utf8(out, value + plain, pos - plain, err) != 0) ||
                append_clean_utf8(out, value + pos, wlen, err) != 0)
                goto out;
            mo_buf_reset(&bytes);
            charset[0] = '\0';
            pos += wlen;
            plain = pos;
            last_was_word = false;
            continue;
        }
        memcpy(charset, this_cs, cs_len + 1);
        pos += wlen;
        plain = pos;
        last_was_word = true;
    }
    if (append_converted(out, charset, bytes.data, bytes.len, err) != 0 ||
        append_clean_utf8(out, value + plain, len - plain, err) != 0)
        goto out;
    if (out->data == NULL && mo_buf_append(out, "", 0, err) != 0)
        goto out;
    rc = 0;
out:
    mo_buf_free(&bytes);
    return rc;
}

/* ---- preparing for submission ---------------------------------------------- */

/* RFC 5322 3.3, in English whatever the locale. */
static int
format_date(int64_t date, char *out, size_t out_size, struct mo_error *err)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = date != 0 ? (time_t)date : time(NULL);
    struct tm tm;
    long off_min;
    char sign = '+';
    int n;

    if (localtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1900) {
        mo_error_set(err, MO_ERR_CONFIG, "date", "the date %lld is out of range", (long long)date);
        return -1;
    }
    off_min = tm.tm_gmtoff / 60;
    if (off_min < 0) {
        sign = '-';
        off_min = -off_min;
    }
    n = snprintf(out, out_size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 sign, off_min / 60, off_min % 60);
    if (n < 0 || (size_t)n >= out_size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the date does not fit");
        return -1;
    }
    return 0;
}

/* The id inside "<...>" of a Message-ID value, copied into out; "" when there is none. */
static void
message_id_of(const char *value, char *out, size_t out_size)
{
    const char *lt = strchr(value, '<');
    const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
    size_t n;

    out[0] = '\0';
    if (lt == NULL || gt == NULL || gt == lt + 1)
        return;
    n = (size_t)(gt - lt - 1);
    if (n >= out_size || memchr(lt + 1, ' ', n) != NULL)
        return;
    memcpy(out, lt + 1, n);
    out[n] = '\0';
}

/* A given Message-ID: left@right, printable, no brackets or white space. */
static bool
message_id_is_valid(const char *id)
{
    const char *at = strrchr(id, '@');
    size_t len = strlen(id);

    if (at == NULL || at == id || at[1] == '\0' || len >= MESSAGE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];

        if (c <= 32 || c >= 127 || c == '<' || c == '>' || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/*
 * The display name of a From without a usable address: "Name <root>" gives
 * Name, "root (Cron Daemon)" gives Cron Daemon; encoded words are decoded.
 * Returns a malloc'd string or NULL (none, or out of memory: the name is a
 * nicety, not worth failing for).
 */
static char *
unusable_from_name(const char *value)
{
    const char *lt = strchr(value, '<');
    const char *start = NULL;
    size_t len = 0;
    struct mo_buf raw;
    struct mo_buf dec;
    char *name = NULL;

    if (lt != NULL) {
        start = value;
        len = (size_t)(lt - value);
    } else {
        const char *open = strchr(value, '(');
        const char *close = open != NULL ? strrchr(open, ')') : NULL;

        if (close != NULL) {
            start = open + 1;
            len = (size_t)(close - open - 1);
        }
    }
    if (start == NULL)
        return NULL;
    while (len > 0 && is_wsp(*start)) {
        start++;
        len--;
    }
    while (len > 0 && is_wsp(start[len - 1]))
        len--;
    mo_buf_init(&raw, len + 1);
    mo_buf_init(&dec, 4 * len + 16);
    if (len >= 2 && start[0] == '"' && start[len - 1] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            if (start[i] == '\\' && i + 2 < len)
                i++;
            if (mo_buf_append(&raw, start + i, 1, NULL) != 0)
                goto out;
        }
    } else if (mo_buf_append(&raw, start, len, NULL) != 0) {
        goto out;
    }
    if (raw.len == 0 || mime_decode_words(mo_buf_cstr(&raw), &dec, NULL) != 0 || dec.len == 0)
        goto out;
    name = mo_strdup(dec.data);
out:
    mo_buf_free(&raw);
    mo_buf_free(&dec);
    return name;
}

/* Whether value parses as an address list with at least one address. */
static bool
from_is_usable(const char *value)
{
    struct mime_address *list = NULL;
    size_t n = 0;

    if (mime_address_list_parse(value, "from", &list, &n, NULL) != 0)
        return false;
    mime_address_list_free(list, n);
    return n > 0;
}

/* Writes "From: name <sender>". */
static int
write_from(struct mo_buf *out, const struct mime_address *from, const char *name,
           struct mo_error *err)
{
    struct mime_address a = *from; /* shallow: only the display name differs */
    struct mime_fold f;
    struct mo_buf one;
    int rc = -1;

    if (name != NULL)
        a.display_name = name[0] != '\0' ? (char *)name : NULL;
    mo_buf_init(&one, out->max_bytes);
    if (mime_address_format(&a, &one, err) != 0 ||
        mime_fold_begin(&f, out, "From", "from", err) != 0)
        goto out;
    f.may_fold_at_start = true;
    if (mime_fold_text(&f, one.data, one.len, true, err) != 0 || mime_fold_end(&f, err) != 0)
        goto out;
    rc = 0;
out:
    mo_buf_free(&one);
    return rc;
}

/*
 * Writes "From: name <user>" for a local user: the name as a quoted-string
 * when ASCII, else as encoded words; an importer completes the address.
 */
static int
write_local_from(struct mo_buf *out, const char *user, const char *name, struct mo_error *err)
{
    size_t name_len = name != NULL ? strlen(name) : 0;
    struct mo_buf words;
    struct mime_fold f;
    int rc = -1;

    mo_buf_init(&words, out->max_bytes);
    if (mime_fold_begin(&f, out, "From", "from_name", err) != 0)
        goto out;
    f.may_fold_at_start = true;
    if (name_len > 0 && mime_find_ctl(name, name_len, false) == name_len) {
        if (mime_is_ascii(name, name_len)) {
            if (mo_buf_append(&words, "\"", 1, err) != 0)
                goto out;
            for (size_t i = 0; i < name_len; i++)
                if (((name[i] == '"' || name[i] == '\\') &&
                     mo_buf_append(&words, "\\", 1, err) != 0) ||
                    mo_buf_append(&words, name + i, 1, err) != 0)
                    goto out;
            if (mo_buf_append(&words, "\"", 1, err) != 0)
                goto out;
        } else if (mime_utf8_valid(name, name_len) &&
                   mime_ew_encode(name, name_len, MIME_EW_MAX, &words, err) != 0) {
            goto out;
        }
        if (words.len > 0 && mime_fold_text(&f, words.data, words.len, false, err) != 0)
            goto out;
    }
    mo_buf_reset(&words);
    if (mo_buf_appendf(&words, err, "<%s>", user) != 0 ||
        mime_fold_piece(&f, words.data, words.len, err) != 0 || mime_fold_end(&f, err) != 0)
        goto out;
    rc = 0;
out:
    mo_buf_free(&words);
    return rc;
}

static bool
is_address_field(const char *name)
{
    static const char *const names[] = {"From", "To", "Cc", "Reply-To", "Sender"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (ascii_ieq(name, names[i]))
            return true;
    return false;
}

/*
 * Rewrites a field whose value holds raw UTF-8 with encoded words: a Subject
 * as unstructured text, an address field by formatting each mailbox again.
 * Returns 1 when written, 0 when the field should be copied as it is (ASCII,
 * not UTF-8, a group, a UTF-8 local part, or anything that does not parse),
 * -1 on INTERNAL trouble.
 */
static int
encode_8bit_field(const struct mime_header_field *f, struct mo_buf *out, struct mo_error *err)
{
    size_t len = strlen(f->value);
    struct mo_buf tmp;
    struct mo_buf words;
    struct mime_fold fold;
    struct mime_address *list = NULL;
    size_t n = 0;
    struct mo_error local;
    int rc = 0;

    if (mime_is_ascii(f->value, len) || !mime_utf8_valid(f->value, len) ||
        mime_find_ctl(f->value, len, true) < len)
        return 0;
    mo_buf_init(&tmp, out->max_bytes);
    mo_buf_init(&words, out->max_bytes);
    if (ascii_ieq(f->name, "Subject")) {
        if (mime_fold_begin(&fold, &tmp, f->name, "subject", &local) != 0 ||
            mime_ew_encode(f->value, len, MIME_LINE_SOFT - fold.col - 1, &words, &local) != 0 ||
            mime_fold_text(&fold, words.data, words.len, false, &local) != 0 ||
            mime_fold_end(&fold, &local) != 0)
            goto out;
    } else if (is_address_field(f->name) && strpbrk(f->value, ":;") == NULL) {
        bool utf8_local = false;

        if (mime_address_list_parse(f->value, "header", &list, &n, &local) != 0 || n == 0)
            goto out;
        for (size_t i = 0; i < n; i++)
            utf8_local = utf8_local || list[i].has_utf8_local;
        if (utf8_local || mime_fold_begin(&fold, &tmp, f->name, "header", &local) != 0)
            goto out;
        fold.may_fold_at_start = true;
        for (size_t i = 0; i < n; i++) {
            mo_buf_reset(&words);
            if (mime_address_format(&list[i], &words, &local) != 0 ||
                (i + 1 < n && mo_buf_append(&words, ",", 1, &local) != 0) ||
                mime_fold_text(&fold, words.data, words.len, true, &local) != 0)
                goto out;
        }
        if (mime_fold_end(&fold, &local) != 0)
            goto out;
    } else {
        goto out;
    }
    rc = mo_buf_append(out, tmp.data, tmp.len, err) == 0 ? 1 : -1;
out:
    mime_address_list_free(list, n);
    mo_buf_free(&tmp);
    mo_buf_free(&words);
    return rc;
}

void
mime_prepared_clear(struct mime_prepared *p)
{
    if (p == NULL)
        return;
    free(p->subject);
    free(p->header_from);
    memset(p, 0, sizeof(*p));
}

/* The ASCII domain for a new Message-ID: the From's first address, else the sender's. */
static int
id_domain(const struct mime_headers *h, const struct mime_prepare_options *opt, char *out,
          size_t out_size)
{
    const struct mime_header_field *from = mime_headers_find(h, "From");
    struct mime_address *list = NULL;
    size_t n = 0;
    const char *d = NULL;

    if (from != NULL && mime_address_list_parse(from->value, "from", &list, &n, NULL) == 0 &&
        n > 0 && list[0].domain_ascii[0] != '[')
        d = list[0].domain_ascii;
    else if (opt->from != NULL && opt->from->domain_ascii != NULL)
        d = opt->from->domain_ascii;
    if (d != NULL)
        snprintf(out, out_size, "%s", d);
    mime_address_list_free(list, n);
    return d != NULL ? 0 : -1;
}

static int
prepare_into(const char *msg, size_t len, const struct mime_prepare_options *opt,
             const struct mime_headers *h, struct mo_buf *out, struct mime_prepared *info,
             struct mo_error *err)
{
    const struct mime_header_field *from = mime_headers_find(h, "From");
    bool from_usable = from != NULL && from_is_usable(from->value);
    char *kept_name = NULL;
    int rc = -1;

    for (size_t i = 0; i < h->n; i++) {
        const struct mime_header_field *f = &h->fields[i];

        if (opt->remove_bcc && (ascii_ieq(f->name, "Bcc") || ascii_ieq(f->name, "Resent-Bcc"))) {
            info->removed_bcc++;
            continue;
        }
        if (f == from && !from_usable && opt->from != NULL) {
            /* "root (Cron Daemon)": the sender's address, the name kept */
            kept_name = unusable_from_name(f->value);
            if (write_from(out, opt->from, kept_name != NULL ? kept_name : opt->from_name, err) !=
                0)
                goto out;
            info->replaced_from = true;
            continue;
        }
        if (opt->encode_8bit) {
            int e = encode_8bit_field(f, out, err);

            if (e < 0)
                goto out;
            if (e > 0)
                continue;
        }
        if (append_crlf(out, msg + f->offset, f->raw_len, err) != 0)
            goto out;
        /* the last field may end the text without a line end */
        if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0) {
            if (mo_buf_append(out, "\r\n", 2, err) != 0)
                goto out;
        }
    }
    if (from == NULL && opt->from != NULL) {
        if (write_from(out, opt->from, opt->from_name, err) != 0)
            goto out;
        info->added_from = true;
    } else if (from == NULL && opt->local_user != NULL) {
        if (write_local_from(out, opt->local_user, opt->from_name, err) != 0)
            goto out;
        info->added_from = true;
    }
    if (opt->add_date && mime_headers_find(h, "Date") == NULL) {
        char date[DATE_MAX];

        if (format_date(opt->date, date, sizeof(date), err) != 0 ||
            mo_buf_appendf(out, err, "Date: %s\r\n", date) != 0)
            goto out;
        info->added_date = true;
    }
    {
        const struct mime_header_field *mid = mime_headers_find(h, "Message-ID");

        if (mid != NULL) {
            message_id_of(mid->value, info->message_id, sizeof(info->message_id));
        } else if (opt->add_message_id) {
            char domain[MIME_DOMAIN_MAX + 1];

            if (opt->message_id != NULL) {
                snprintf(info->message_id, sizeof(info->message_id), "%s", opt->message_id);
            } else if (id_domain(h, opt, domain, sizeof(domain)) != 0) {
                mo_error_set(err, MO_ERR_CONFIG, "from",
                             "cannot make a Message-ID: the message has no From with a domain "
                             "and no sender was given");
                goto out;
            } else if (mime_message_id_new(domain, info->message_id, sizeof(info->message_id),
                                           err) != 0) {
                goto out;
            }
            if (mo_buf_appendf(out, err, "Message-ID: <%s>\r\n", info->message_id) != 0)
                goto out;
            info->added_message_id = true;
        }
    }
    if (mo_buf_append(out, "\r\n", 2, err) != 0 ||
        append_crlf(out, msg + h->body_offset, len - h->body_offset, err) != 0)
        goto out;
    rc = 0;
out:
    free(kept_name);
    return rc;
}

/* Fills the log fields of info from the fields of the prepared message. */
static int
describe_prepared(const char *msg, size_t len, struct mime_prepared *info, struct mo_error *err)
{
    struct mime_headers h;
    const struct mime_header_field *f;
    struct mo_buf b;
    int rc = -1;

    /* a decoded subject is at most a few times the size of its encoded form */
    mo_buf_init(&b, 4 * len + 1024);
    if (mime_headers_parse(msg, len, &h, err) != 0)
        goto out;
    if ((f = mime_headers_find(&h, "Subject")) != NULL) {
        if (mime_decode_words(f->value, &b, err) != 0)
            goto out;
        info->subject = mo_strdup(mo_buf_cstr(&b));
        if (info->subject == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    if ((f = mime_headers_find(&h, "From")) != NULL) {
        info->header_from = mo_strdup(f->value);
        if (info->header_from == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    mime_headers_clear(&h);
    mo_buf_free(&b);
    return rc;
}

int
mime_message_prepare(const char *msg, size_t len, const struct mime_prepare_options *opt,
                     struct mo_buf *out, struct mime_prepared *info, struct mo_error *err)
{
    struct mime_headers h;
    struct mime_prepared local;
    struct mime_prepared *inf = info != NULL ? info : &local;
    size_t start = out->len;
    int rc = -1;

    memset(&h, 0, sizeof(h));
    memset(inf, 0, sizeof(*inf));
    if (opt->from_name != NULL && strpbrk(opt->from_name, "\r\n") != NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "from_name",
                     "the sender's name holds a line break (header injection?)");
        goto out;
    }
    if (opt->from != NULL && mime_address_check(opt->from, "from", err) != 0)
        goto out;
    if (opt->local_user != NULL &&
        (opt->local_user[0] == '\0' || strlen(opt->local_user) > MIME_LOCAL_MAX ||
         strspn(opt->local_user, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789._+-") != strlen(opt->local_user))) {
        mo_error_set(err, MO_ERR_CONFIG, "from", "the local user name is not valid");
        goto out;
    }
    if (opt->message_id != NULL && !message_id_is_valid(opt->message_id)) {
        mo_error_set(err, MO_ERR_CONFIG, "message_id", "the Message-ID is not left@right");
        goto out;
    }
    if (memchr(msg, '\0', len) != NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "message", "the message holds a NUL byte");
        goto out;
    }
    if (mime_headers_parse(msg, len, &h, err) != 0)
        goto out;
    if (prepare_into(msg, len, opt, &h, out, inf, err) != 0)
        goto out;
    if (describe_prepared(out->data + start, out->len - start, inf, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
        mime_prepared_clear(inf);
    } else if (info == NULL) {
        mime_prepared_clear(&local);
    }
    mime_headers_clear(&h);
    return rc;
}
