/*
 * encode.c - the byte-level encodings of the mime module: UTF-8 checks,
 * quoted-printable, base64, RFC 2047 encoded words, RFC 2231 parameter
 * values, and the header folding writer.
 *
 * Why: a header line must stay under 998 octets (78 where possible) and a
 * body line too, whatever the user typed; these functions are where those
 * limits are kept. Base64 itself is OpenSSL's (STYLE.md "Don't hand-roll").
 * Leaves out: decoding (we only write mail), charsets other than UTF-8,
 * RFC 2231 language tags.
 * RFCs: 5322 2.1.1 and 2.2.3, 2045 6.7 and 6.8, 2047 (sections 2, 4, 5),
 * 2231 (sections 3 and 4), 3629 (UTF-8).
 */
#include "mime/mime_internal.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EW_OVERHEAD 12   /* "=?UTF-8?B?" and "?=" */
#define B64_LINE_IN 57   /* bytes per 76-character base64 line */
#define QP_LINE_MAX 75   /* characters before the soft-break '=' */
#define PARAM_SEG_MAX 60 /* encoded characters per RFC 2231 segment */

static const char hex_upper[] = "0123456789ABCDEF";

/* ---- characters -------------------------------------------------------- */

bool
mime_utf8_valid(const char *s, size_t len)
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
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

size_t
mime_utf8_char_len(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t want;

    if (p[0] < 0xc0)
        return 1;
    want = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (want > n)
        return 1;
    for (size_t k = 1; k < want; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 1;
    }
    return want;
}

bool
mime_is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return false;
    }
    return true;
}

size_t
mime_find_ctl(const char *s, size_t len, bool allow_tab)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c < 0x20 && !(c == '\t' && allow_tab)) || c == 0x7f)
            return i;
    }
    return len;
}

const char *
mime_ctl_name(unsigned char c)
{
    if (c == '\r' || c == '\n')
        return "a line break (CR or LF)";
    if (c == '\0')
        return "a NUL byte";
    if (c == '\t')
        return "a tab";
    return "a control character";
}

bool
mime_is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

void
mime_describe(const char *s, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    size_t i = 0;

    assert(out_size >= 8);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t n;
        size_t used = 1;

        if (c == '\r' || c == '\n' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            n = 4;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else {
            n = mime_utf8_char_len(s + i, len - i);
            memcpy(esc, s + i, n);
            used = n;
        }
        /* keep room for "..." and the NUL */
        if (o + n + 4 > out_size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
        i += used;
    }
    out[o] = '\0';
}

/* ---- body encodings ---------------------------------------------------- */

const char *
mime_cte_name(enum mime_cte cte)
{
    switch (cte) {
    case MIME_CTE_7BIT:
        return "7bit";
    case MIME_CTE_QP:
        return "quoted-printable";
    case MIME_CTE_BASE64:
        return "base64";
    }
    assert(!"unknown transfer encoding");
    return "base64";
}

static bool
qp_is_plain(unsigned char c)
{
    return (c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t';
}

enum mime_cte
mime_cte_choose(const unsigned char *data, size_t len)
{
    bool is_ascii = true;
    bool has_bare_break = false;
    size_t line = 0;
    size_t max_line = 0;
    size_t qp_len = 0;
    size_t b64_len;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = data[i];

        if (c == '\r' && i + 1 < len && data[i + 1] == '\n') {
            line = 0;
            qp_len += 2;
            i++;
            continue;
        }
        if (c == '\r' || c == '\n' || c == '\0')
            has_bare_break = true;
        if (c >= 0x80)
            is_ascii = false;
        line++;
        if (line > max_line)
            max_line = line;
        qp_len += qp_is_plain(c) ? 1 : 3;
    }
    if (is_ascii && !has_bare_break && max_line <= MIME_LINE_HARD)
        return MIME_CTE_7BIT;
    qp_len += qp_len / QP_LINE_MAX * 3; /* soft breaks */
    b64_len = (len + 2) / 3 * 4;
    b64_len += b64_len / 76 * 2;
    return qp_len <= b64_len ? MIME_CTE_QP : MIME_CTE_BASE64;
}

int
mime_crlf_normalize(const char *data, size_t len, struct mo_buf *out, struct mo_error *err)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\r' && data[i] != '\n')
            continue;
        if (mo_buf_append(out, data + start, i - start, err) != 0 ||
            mo_buf_append(out, "\r\n", 2, err) != 0)
            return -1;
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    return mo_buf_append(out, data + start, len - start, err);
}

/* A '.' or "From " starting a line is encoded: some relays still mangle them. */
static bool
qp_line_start_needs_escape(const unsigned char *d, size_t left)
{
    return d[0] == '.' || (left >= 5 && memcmp(d, "From ", 5) == 0);
}

int
mime_qp_encode(const unsigned char *data, size_t len, struct mo_buf *out, struct mo_error *err)
{
    char line[QP_LINE_MAX + 8];
    size_t n = 0;
    size_t i = 0;

    while (i < len) {
        unsigned char c = data[i];
        bool at_eol;
        bool plain;
        size_t tok;

        if (c == '\r' && i + 1 < len && data[i + 1] == '\n') {
            if (mo_buf_append(out, line, n, err) != 0 || mo_buf_append(out, "\r\n", 2, err) != 0)
                return -1;
            n = 0;
            i += 2;
            continue;
        }
        at_eol = i + 1 == len || (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n');
        plain = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
        tok = plain ? 1 : 3;
        if (n + tok > QP_LINE_MAX) {
            if (mo_buf_append(out, line, n, err) != 0 || mo_buf_append(out, "=\r\n", 3, err) != 0)
                return -1;
            n = 0;
        }
        if (n == 0 && plain && qp_line_start_needs_escape(data + i, len - i))
            plain = false;
        if (plain) {
            line[n++] = (char)c;
        } else {
            line[n++] = '=';
            line[n++] = hex_upper[c >> 4];
            line[n++] = hex_upper[c & 0x0f];
        }
        i++;
    }
    /* a last line without CRLF ends in a soft break: the decoder gives back exactly data */
    if (n > 0 &&
        (mo_buf_append(out, line, n, err) != 0 || mo_buf_append(out, "=\r\n", 3, err) != 0))
        return -1;
    return 0;
}

int
mime_base64_encode(const unsigned char *data, size_t len, struct mo_buf *out, struct mo_error *err)
{
    unsigned char line[80];

    for (size_t i = 0; i < len; i += B64_LINE_IN) {
        size_t chunk = len - i < B64_LINE_IN ? len - i : B64_LINE_IN;
        int n = EVP_EncodeBlock(line, data + i, (int)chunk);

        if (n < 0) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "base64 encoding failed");
            return -1;
        }
        if (mo_buf_append(out, line, (size_t)n, err) != 0 ||
            mo_buf_append(out, "\r\n", 2, err) != 0)
            return -1;
    }
    return 0;
}

/* ---- encoded words (RFC 2047) ------------------------------------------ */

/* RFC 2047 5(3): the characters a Q word may carry as they are, even in a phrase. */
static bool
ew_q_is_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t
ew_q_cost(const char *s, size_t n)
{
    size_t cost = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        cost += (ew_q_is_plain(c) || c == ' ') ? 1 : 3;
    }
    return cost;
}

static int
ew_append_word(const char *s, size_t n, bool use_q, struct mo_buf *out, struct mo_error *err)
{
    char enc[MIME_EW_MAX + 8];
    size_t e = 0;

    if (use_q) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];

            if (ew_q_is_plain(c)) {
                enc[e++] = (char)c;
            } else if (c == ' ') {
                enc[e++] = '_';
            } else {
                enc[e++] = '=';
                enc[e++] = hex_upper[c >> 4];
                enc[e++] = hex_upper[c & 0x0f];
            }
        }
    } else {
        e = (size_t)EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)s, (int)n);
    }
    return mo_buf_appendf(out, err, "=?UTF-8?%c?%.*s?=", use_q ? 'Q' : 'B', (int)e, enc);
}

int
mime_ew_encode(const char *s, size_t len, size_t first_max, struct mo_buf *out,
               struct mo_error *err)
{
    bool use_q = ew_q_cost(s, len) <= (len + 2) / 3 * 4;
    size_t max = first_max < MIME_EW_MIN ? MIME_EW_MIN : first_max;
    size_t pos = 0;

    if (max > MIME_EW_MAX)
        max = MIME_EW_MAX;
    while (pos < len) {
        size_t budget = max - EW_OVERHEAD;
        size_t end = pos;
        size_t q_used = 0;

        size_t after_space = pos;

        while (end < len) {
            size_t cl = mime_utf8_char_len(s + end, len - end);
            size_t cost = use_q ? q_used + ew_q_cost(s + end, cl) : (end + cl - pos + 2) / 3 * 4;

            if (cost > budget)
                break;
            q_used = cost;
            end += cl;
            if (s[end - 1] == ' ')
                after_space = end;
        }
        assert(end > pos); /* MIME_EW_MIN leaves room for any one character */
        /* cut after a space when that keeps the word at least half full */
        if (end < len && after_space > pos && after_space - pos >= (end - pos) / 2)
            end = after_space;
        if (pos > 0 && mo_buf_append(out, " ", 1, err) != 0)
            return -1;
        if (ew_append_word(s + pos, end - pos, use_q, out, err) != 0)
            return -1;
        pos = end;
        max = MIME_EW_MAX;
    }
    return 0;
}

/* ---- folding ----------------------------------------------------------- */

int
mime_fold_begin(struct mime_fold *f, struct mo_buf *out, const char *name, const char *field,
                struct mo_error *err)
{
    f->out = out;
    f->name = name;
    f->field = field;
    f->col = strlen(name) + 1;
    f->line_has_text = false;
    f->is_first_line = true;
    f->may_fold_at_start = false;
    return mo_buf_appendf(out, err, "%s:", name);
}

/* A fold now would not leave a line of white space only (or a bare "Name:" unless allowed). */
static bool
fold_is_useful(const struct mime_fold *f)
{
    return f->line_has_text || (f->is_first_line && f->may_fold_at_start);
}

int
mime_fold_piece(struct mime_fold *f, const char *piece, size_t len, struct mo_error *err)
{
    /* an empty piece never folds: it would leave a blank line */
    if (fold_is_useful(f) && len > 0 && f->col + 1 + len > MIME_LINE_SOFT) {
        if (mo_buf_append(f->out, "\r\n", 2, err) != 0)
            return -1;
        f->col = 0;
        f->line_has_text = false;
        f->is_first_line = false;
    }
    if (f->col + 1 + len > MIME_LINE_HARD) {
        mo_error_set(err, MO_ERR_CONFIG, f->field,
                     "the %s header holds a word of %zu characters; a line can take at most %d",
                     f->name, len, MIME_LINE_HARD);
        return -1;
    }
    if (mo_buf_append(f->out, " ", 1, err) != 0 || mo_buf_append(f->out, piece, len, err) != 0)
        return -1;
    f->col += 1 + len;
    if (len > 0)
        f->line_has_text = true;
    return 0;
}

int
mime_fold_text(struct mime_fold *f, const char *text, size_t len, bool angle_aware,
               struct mo_error *err)
{
    bool in_angles = false;
    size_t start = 0;

    if (f->col + 1 + len <= MIME_LINE_SOFT || (fold_is_useful(f) && 1 + len <= MIME_LINE_SOFT))
        return mime_fold_piece(f, text, len, err);
    for (size_t i = 0; i < len; i++) {
        if (angle_aware && (text[i] == '<' || text[i] == '>')) {
            in_angles = text[i] == '<';
        } else if (text[i] == ' ' && !in_angles) {
            if (mime_fold_piece(f, text + start, i - start, err) != 0)
                return -1;
            start = i + 1;
        }
    }
    return mime_fold_piece(f, text + start, len - start, err);
}

int
mime_fold_end(struct mime_fold *f, struct mo_error *err)
{
    return mo_buf_append(f->out, "\r\n", 2, err);
}

/* RFC 2231 attribute-char: a token character that needs no %-encoding. */
static bool
param_is_attr_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL;
}

static size_t
param_cost(const char *s, size_t n)
{
    size_t cost = 0;

    for (size_t i = 0; i < n; i++)
        cost += param_is_attr_char((unsigned char)s[i]) ? 1 : 3;
    return cost;
}

int
mime_fold_param_2231(struct mime_fold *f, const char *attr, const char *value, size_t len,
                     bool more_follow, struct mo_error *err)
{
    bool single = param_cost(value, len) <= PARAM_SEG_MAX;
    size_t pos = 0;
    size_t seg = 0;
    char piece[160];

    assert(strlen(attr) < 32);
    do {
        size_t end = pos;
        size_t used = 0;
        int n;

        while (end < len) {
            size_t cl = mime_utf8_char_len(value + end, len - end);
            size_t cost = param_cost(value + end, cl);

            if (used + cost > PARAM_SEG_MAX)
                break;
            used += cost;
            end += cl;
        }
        if (single)
            n = snprintf(piece, sizeof(piece), "%s*=utf-8''", attr);
        else
            n = snprintf(piece, sizeof(piece), "%s*%zu*=%s", attr, seg, seg == 0 ? "utf-8''" : "");
        assert(n > 0 && (size_t)n < sizeof(piece) - PARAM_SEG_MAX - 2);
        for (size_t i = pos; i < end; i++) {
            unsigned char c = (unsigned char)value[i];

            if (param_is_attr_char(c)) {
                piece[n++] = (char)c;
            } else {
                piece[n++] = '%';
                piece[n++] = hex_upper[c >> 4];
                piece[n++] = hex_upper[c & 0x0f];
            }
        }
        if (end < len || more_follow)
            piece[n++] = ';';
        if (mime_fold_piece(f, piece, (size_t)n, err) != 0)
            return -1;
        pos = end;
        seg++;
    } while (pos < len);
    return 0;
}
