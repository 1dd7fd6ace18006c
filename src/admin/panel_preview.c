/*
 * panel_preview.c - a stored message as its page in the panel shows it: the
 * header fields decoded for reading, a preview of the body, and the list of
 * attachments.
 *
 * Why here: the queue keeps the message's bytes, and the shop owner wants to
 * see what went out without a mail program. The mime module composes and
 * reads header blocks (mime_headers_parse, mime_decode_words); walking the
 * parts of a multipart body for display is only the panel's need, so it
 * lives beside the panel.
 * What it does: follows multipart bodies (RFC 2046 5.1: boundaries at line
 * starts, the preamble and epilogue ignored) up to MAX_DEPTH levels; takes
 * the first text/plain part that is not an attachment as the preview (else
 * the first text/html, shown as its source: the page displays it as text,
 * never as HTML); decodes base64 (OpenSSL's EVP decoder) and
 * quoted-printable (RFC 2045 6.7); converts the part's charset to UTF-8 with
 * iconv, replacing what does not convert; lists as attachments the parts
 * with a file name or "Content-Disposition: attachment", and the non-text
 * leaves, with the file name decoded (RFC 2047 words, RFC 2231 "filename*")
 * and the decoded size. The preview stops at PANEL_PREVIEW_MAX_BYTES.
 * Never fails on bad input: what does not parse shows as it is.
 * Leaves out: rendering HTML, S/MIME, TNEF, RFC 2231 continuations
 * (filename*0=...), uuencode.
 */
#include "admin/panel_internal.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime/mime.h"

#define MAX_DEPTH 8
#define MAX_PARTS 500
#define PARAM_MAX 512
#define TYPE_MAX 128

struct preview {
    json_t *attachments;
    struct mo_buf plain; /* decoded UTF-8 */
    struct mo_buf html;
    bool has_plain;
    bool has_html;
    bool plain_truncated;
    bool html_truncated;
    size_t parts;
    size_t text_max; /* bytes kept of a text part (PANEL_PREVIEW_MAX_BYTES) */
    /* panel_preview_extract: the attachment wanted (-1: none) and where it goes */
    long want_attachment;
    long n_attachments;
    struct mo_buf *attachment;
    bool attachment_found;
    char *attachment_type;
    size_t attachment_type_size;
    char *attachment_name;
    size_t attachment_name_size;
};

/* ---- small text helpers ------------------------------------------------------------------ */

/* Appends s[0..len) as UTF-8, invalid sequences as U+FFFD, NUL and most controls dropped,
 * CR LF as LF. Stops at max bytes (*truncated). */
static void
append_utf8(struct mo_buf *b, const unsigned char *s, size_t len, size_t max, bool *truncated)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n = 1;
        bool ok = true;

        if (b->len >= max) {
            *truncated = true;
            return;
        }
        if (c < 0x80) {
            if (c == '\r' || c == 0 || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
                i++;
                continue;
            }
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
        } else {
            ok = false;
        }
        if (ok && n > 1) {
            if (i + n > len)
                ok = false;
            for (size_t k = 1; ok && k < n; k++)
                ok = (s[i + k] & 0xc0) == 0x80;
            /* overlong and surrogate forms */
            if (ok && n == 3 && c == 0xe0 && s[i + 1] < 0xa0)
                ok = false;
            if (ok && n == 3 && c == 0xed && s[i + 1] >= 0xa0)
                ok = false;
            if (ok && n == 4 && c == 0xf0 && s[i + 1] < 0x90)
                ok = false;
            if (ok && n == 4 && c == 0xf4 && s[i + 1] >= 0x90)
                ok = false;
        }
        if (!ok) {
            mo_buf_append(b, "\xEF\xBF\xBD", 3, NULL);
            i++;
            continue;
        }
        mo_buf_append(b, s + i, n, NULL);
        i += n;
    }
}

static void
lowercase(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* The media type of a Content-Type value, lowercased ("text/plain"); "" when none. */
static void
media_type(const char *value, char *out, size_t size)
{
    size_t n = value != NULL ? strcspn(value, "; \t") : 0;

    if (n >= size)
        n = size - 1;
    memcpy(out, value != NULL ? value : "", n);
    out[n] = '\0';
    lowercase(out);
}

/*
 * The parameter name of a header value ("multipart/mixed; boundary=\"x\"")
 * into out, unquoted. 0 found; -1 not there. Names compare without case.
 */
static int
param_get(const char *value, const char *name, char *out, size_t size)
{
    const char *p = value != NULL ? strchr(value, ';') : NULL;
    size_t name_len = strlen(name);

    while (p != NULL && *p == ';') {
        const char *key;
        size_t key_len;
        size_t o = 0;

        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        key = p;
        while (*p != '\0' && *p != '=' && *p != ';')
            p++;
        key_len = (size_t)(p - key);
        while (key_len > 0 && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t'))
            key_len--;
        if (*p != '=') {
            continue;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '"') {
            p++;
            while (*p != '\0' && *p != '"') {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                if (o + 1 < size)
                    out[o++] = *p;
                p++;
            }
            if (*p == '"')
                p++;
            while (*p != '\0' && *p != ';')
                p++;
        } else {
            while (*p != '\0' && *p != ';') {
                if (o + 1 < size)
                    out[o++] = *p;
                p++;
            }
            while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
                o--;
        }
        out[o] = '\0';
        if (key_len == name_len && strncasecmp(key, name, name_len) == 0)
            return 0;
    }
    return -1;
}

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Converts in[0..len) from charset to UTF-8 (what iconv cannot convert stays as it is and is
 * then cleaned by append_utf8). */
static void
append_charset(struct mo_buf *b, const char *charset, const unsigned char *in, size_t len,
               size_t max, bool *truncated)
{
    iconv_t cd;
    struct mo_buf conv;

    if (charset == NULL || charset[0] == '\0' || strcasecmp(charset, "utf-8") == 0 ||
        strcasecmp(charset, "utf8") == 0 || strcasecmp(charset, "us-ascii") == 0) {
        append_utf8(b, in, len, max, truncated);
        return;
    }
    cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        append_utf8(b, in, len, max, truncated);
        return;
    }
    mo_buf_init(&conv, 4 * len + 16);
    if (mo_buf_reserve(&conv, 4 * len + 4, NULL) == 0) {
        char *src = (char *)in;
        size_t src_left = len;
        char *dst = conv.data;
        size_t dst_left = conv.cap - 1;

        while (src_left > 0) {
            size_t r = iconv(cd, &src, &src_left, &dst, &dst_left);

            if (r != (size_t)-1)
                break;
            if (errno == EILSEQ && dst_left >= 3) {
                /* one byte that does not convert: U+FFFD, then go on */
                memcpy(dst, "\xEF\xBF\xBD", 3);
                dst += 3;
                dst_left -= 3;
                src++;
                src_left--;
                continue;
            }
            break;
        }
        conv.len = (size_t)(dst - conv.data);
        append_utf8(b, (const unsigned char *)conv.data, conv.len, max, truncated);
    } else {
        append_utf8(b, in, len, max, truncated);
    }
    mo_buf_free(&conv);
    iconv_close(cd);
}

/* Decodes body[0..len) by its transfer encoding into out (raw bytes, at most max). */
static void
decode_body(const char *cte, const char *body, size_t len, size_t max, struct mo_buf *out)
{
    if (strcasecmp(cte, "base64") == 0) {
        EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
        size_t in_max = max / 3 * 4 + 128; /* enough input for max bytes of output */
        size_t in_len = len < in_max ? len : in_max;
        int n = 0;
        int m = 0;

        if (ctx == NULL || mo_buf_reserve(out, in_len / 4 * 3 + 64, NULL) != 0) {
            EVP_ENCODE_CTX_free(ctx);
            return;
        }
        EVP_DecodeInit(ctx);
        /* a cut in the middle of a group or a bad character ends the preview there */
        if (EVP_DecodeUpdate(ctx, (unsigned char *)out->data + out->len, &n,
                             (const unsigned char *)body, (int)in_len) >= 0) {
            out->len += (size_t)n;
            if (EVP_DecodeFinal(ctx, (unsigned char *)out->data + out->len, &m) == 1)
                out->len += (size_t)m;
        } else if (n > 0) {
            out->len += (size_t)n;
        }
        out->data[out->len] = '\0';
        EVP_ENCODE_CTX_free(ctx);
        return;
    }
    if (strcasecmp(cte, "quoted-printable") == 0) {
        for (size_t i = 0; i < len && out->len < max; i++) {
            char c = body[i];

            if (c == '=') {
                int hi = i + 1 < len ? hex_value(body[i + 1]) : -1;
                int lo = i + 2 < len ? hex_value(body[i + 2]) : -1;

                if (hi >= 0 && lo >= 0) {
                    char byte = (char)(hi * 16 + lo);

                    mo_buf_append(out, &byte, 1, NULL);
                    i += 2;
                    continue;
                }
                /* a soft line break: "=" and white space to the line's end */
                {
                    size_t k = i + 1;

                    while (k < len && (body[k] == ' ' || body[k] == '\t'))
                        k++;
                    if (k < len && body[k] == '\r')
                        k++;
                    if (k < len && body[k] == '\n') {
                        i = k;
                        continue;
                    }
                    if (k >= len) {
                        i = k;
                        continue;
                    }
                }
            }
            mo_buf_append(out, &c, 1, NULL);
        }
        return;
    }
    mo_buf_append(out, body, len < max ? len : max, NULL);
}

/* The decoded size of a body of len bytes in this transfer encoding (base64: exact but for
 * padding errors; quoted-printable: the encoded size, close enough for a listing). */
static size_t
decoded_size(const char *cte, const char *body, size_t len)
{
    size_t chars = 0;
    size_t pad = 0;

    if (strcasecmp(cte, "base64") != 0)
        return len;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];

        if (c == '=')
            pad++;
        else if (isalnum((unsigned char)c) || c == '+' || c == '/')
            chars++;
    }
    chars += pad;
    return chars / 4 * 3 - (pad > 2 ? 2 : pad);
}

/* A file name from filename*= (RFC 2231: charset'lang'percent-encoded) into out as UTF-8. */
static void
rfc2231_name(const char *value, struct mo_buf *out)
{
    const char *q1 = strchr(value, '\'');
    const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
    char charset[64];
    struct mo_buf raw;
    bool truncated = false;

    charset[0] = '\0';
    if (q1 == NULL || q2 == NULL) {
        q2 = value - 1;
    } else if ((size_t)(q1 - value) < sizeof(charset)) {
        memcpy(charset, value, (size_t)(q1 - value));
        charset[q1 - value] = '\0';
    }
    mo_buf_init(&raw, PARAM_MAX);
    for (const char *p = q2 + 1; *p != '\0'; p++) {
        char c = *p;

        if (c == '%' && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
            c = (char)(hex_value(p[1]) * 16 + hex_value(p[2]));
            p += 2;
        }
        if (mo_buf_append(&raw, &c, 1, NULL) != 0)
            break;
    }
    append_charset(out, charset, (const unsigned char *)mo_buf_cstr(&raw), raw.len, PARAM_MAX,
                   &truncated);
    mo_buf_free(&raw);
}

/* The part's file name (decoded), or "" when it has none. */
static void
file_name(const char *disposition, const char *content_type, struct mo_buf *out)
{
    char v[PARAM_MAX];

    if (param_get(disposition, "filename*", v, sizeof(v)) == 0 ||
        param_get(content_type, "name*", v, sizeof(v)) == 0) {
        rfc2231_name(v, out);
        return;
    }
    if (param_get(disposition, "filename", v, sizeof(v)) == 0 ||
        param_get(content_type, "name", v, sizeof(v)) == 0) {
        struct mo_buf decoded;
        bool truncated = false;

        mo_buf_init(&decoded, 4 * PARAM_MAX);
        if (mime_decode_words(v, &decoded, NULL) == 0)
            append_utf8(out, (const unsigned char *)mo_buf_cstr(&decoded), decoded.len, PARAM_MAX,
                        &truncated);
        mo_buf_free(&decoded);
    }
}

/* ---- the walk ------------------------------------------------------------------------------ */

static void walk(struct preview *pv, const char *part, size_t len, int depth,
                 const char *default_type);

/* Each part between the boundaries of a multipart body. */
static void
walk_multipart(struct preview *pv, const char *body, size_t len, const char *boundary, int depth,
               const char *child_default)
{
    size_t blen = strlen(boundary);
    const char *end = body + len;
    const char *p = body;
    const char *part = NULL;

    while (p < end && pv->parts < MAX_PARTS) {
        const char *line_end = memchr(p, '\n', (size_t)(end - p));
        const char *next = line_end != NULL ? line_end + 1 : end;
        size_t line_len = (size_t)(next - p);

        if (line_len >= 2 + blen && p[0] == '-' && p[1] == '-' &&
            memcmp(p + 2, boundary, blen) == 0) {
            bool is_close = line_len >= 4 + blen && p[2 + blen] == '-' && p[3 + blen] == '-';

            if (part != NULL) {
                const char *stop = p;

                /* the line break before a boundary belongs to the boundary */
                if (stop > part && stop[-1] == '\n')
                    stop--;
                if (stop > part && stop[-1] == '\r')
                    stop--;
                walk(pv, part, (size_t)(stop - part), depth + 1, child_default);
            }
            if (is_close)
                return;
            part = next;
        }
        p = next;
    }
    if (part != NULL && part < end) /* no closing boundary: take what is there */
        walk(pv, part, (size_t)(end - part), depth + 1, child_default);
}

static void
walk(struct preview *pv, const char *part, size_t len, int depth, const char *default_type)
{
    struct mime_headers h;
    const struct mime_header_field *f;
    const char *ctype;
    const char *cte;
    const char *disp;
    char type[TYPE_MAX];
    char boundary[PARAM_MAX];
    char charset[64];
    struct mo_buf name;
    const char *body;
    size_t body_len;
    bool is_attachment;

    pv->parts++;
    memset(&h, 0, sizeof(h));
    if (mime_headers_parse(part, len, &h, NULL) != 0) {
        mime_headers_clear(&h);
        return;
    }
    f = mime_headers_find(&h, "Content-Type");
    ctype = f != NULL ? f->value : NULL;
    f = mime_headers_find(&h, "Content-Transfer-Encoding");
    cte = f != NULL ? f->value : "7bit";
    f = mime_headers_find(&h, "Content-Disposition");
    disp = f != NULL ? f->value : NULL;
    media_type(ctype != NULL ? ctype : default_type, type, sizeof(type));
    if (strchr(type, '/') == NULL)
        snprintf(type, sizeof(type), "%s", default_type);
    body = part + (h.body_offset <= len ? h.body_offset : len);
    body_len = len - (size_t)(body - part);

    if (strncmp(type, "multipart/", 10) == 0 && depth < MAX_DEPTH &&
        param_get(ctype, "boundary", boundary, sizeof(boundary)) == 0 && boundary[0] != '\0') {
        walk_multipart(pv, body, body_len, boundary, depth,
                       strcmp(type, "multipart/digest") == 0 ? "message/rfc822" : "text/plain");
        mime_headers_clear(&h);
        return;
    }
    mo_buf_init(&name, 4 * PARAM_MAX);
    file_name(disp, ctype, &name);
    is_attachment = name.len > 0 || (disp != NULL && strncasecmp(disp, "attachment", 10) == 0) ||
                    (strncmp(type, "text/", 5) != 0 && strncmp(type, "multipart/", 10) != 0);
    if (is_attachment) {
        if (pv->attachment != NULL && pv->n_attachments == pv->want_attachment) {
            decode_body(cte, body, body_len, pv->text_max, pv->attachment);
            snprintf(pv->attachment_type, pv->attachment_type_size, "%s", type);
            snprintf(pv->attachment_name, pv->attachment_name_size, "%s", mo_buf_cstr(&name));
            pv->attachment_found = true;
        }
        pv->n_attachments++;
        if (pv->attachments != NULL &&
            json_array_size(pv->attachments) < PANEL_PREVIEW_MAX_ATTACHMENTS)
            json_array_append_new(pv->attachments,
                                  json_pack("{s:s, s:o, s:I}", "filename", mo_buf_cstr(&name),
                                            "content_type", panel_json_text(type), "size",
                                            (json_int_t)decoded_size(cte, body, body_len)));
    } else if ((strcmp(type, "text/plain") == 0 && !pv->has_plain) ||
               (strcmp(type, "text/html") == 0 && !pv->has_html)) {
        bool is_plain = strcmp(type, "text/plain") == 0;
        struct mo_buf raw;

        mo_buf_init(&raw, 4 * pv->text_max + 64);
        decode_body(cte, body, body_len, 4 * pv->text_max, &raw);
        if (param_get(ctype, "charset", charset, sizeof(charset)) != 0)
            charset[0] = '\0';
        append_charset(is_plain ? &pv->plain : &pv->html, charset,
                       (const unsigned char *)mo_buf_cstr(&raw), raw.len, pv->text_max,
                       is_plain ? &pv->plain_truncated : &pv->html_truncated);
        if (raw.len >= 4 * pv->text_max)
            *(is_plain ? &pv->plain_truncated : &pv->html_truncated) = true;
        if (is_plain)
            pv->has_plain = true;
        else
            pv->has_html = true;
        mo_buf_free(&raw);
    }
    mo_buf_free(&name);
    mime_headers_clear(&h);
}

json_t *
panel_json_text(const char *s)
{
    struct mo_buf b;
    bool truncated = false;
    json_t *out;
    size_t len;

    if (s == NULL)
        return json_null();
    len = strlen(s);
    out = json_stringn(s, len); /* the common case: valid already */
    if (out != NULL)
        return out;
    mo_buf_init(&b, 3 * len + 16);
    append_utf8(&b, (const unsigned char *)s, len, 3 * len + 8, &truncated);
    out = json_string(mo_buf_cstr(&b));
    mo_buf_free(&b);
    return out;
}

/* ---- the page's JSON ------------------------------------------------------------------------ */

static json_t *
headers_json(const char *msg, size_t len)
{
    struct mime_headers h;
    json_t *list = json_array();

    memset(&h, 0, sizeof(h));
    if (mime_headers_parse(msg, len, &h, NULL) != 0) {
        mime_headers_clear(&h);
        return list;
    }
    for (size_t i = 0; i < h.n && i < PANEL_PREVIEW_MAX_HEADERS; i++) {
        struct mo_buf decoded;
        struct mo_buf clean;
        bool truncated = false;

        mo_buf_init(&decoded, 64 * 1024);
        mo_buf_init(&clean, 64 * 1024);
        if (mime_decode_words(h.fields[i].value, &decoded, NULL) != 0) {
            mo_buf_reset(&decoded);
            mo_buf_append_str(&decoded, h.fields[i].value, NULL);
        }
        append_utf8(&clean, (const unsigned char *)mo_buf_cstr(&decoded), decoded.len, 16 * 1024,
                    &truncated);
        {
            struct mo_buf name;

            mo_buf_init(&name, 1024);
            append_utf8(&name, (const unsigned char *)h.fields[i].name, strlen(h.fields[i].name),
                        512, &truncated);
            json_array_append_new(list, json_pack("{s:s, s:s}", "name", mo_buf_cstr(&name), "value",
                                                  mo_buf_cstr(&clean)));
            mo_buf_free(&name);
        }
        mo_buf_free(&decoded);
        mo_buf_free(&clean);
    }
    mime_headers_clear(&h);
    return list;
}

json_t *
panel_preview_json(const char *msg, size_t len)
{
    struct preview pv;
    json_t *out = NULL;
    json_t *preview;

    memset(&pv, 0, sizeof(pv));
    pv.text_max = PANEL_PREVIEW_MAX_BYTES;
    pv.want_attachment = -1;
    pv.attachments = json_array();
    mo_buf_init(&pv.plain, PANEL_PREVIEW_MAX_BYTES + 8);
    mo_buf_init(&pv.html, PANEL_PREVIEW_MAX_BYTES + 8);
    if (pv.attachments == NULL)
        goto out;
    walk(&pv, msg, len, 0, "text/plain");
    if (pv.has_plain)
        preview = json_pack("{s:s, s:s, s:b}", "type", "text/plain", "text", mo_buf_cstr(&pv.plain),
                            "truncated", pv.plain_truncated);
    else if (pv.has_html)
        preview = json_pack("{s:s, s:s, s:b}", "type", "text/html", "text", mo_buf_cstr(&pv.html),
                            "truncated", pv.html_truncated);
    else
        preview = json_null();
    out = json_pack("{s:o, s:o, s:O}", "headers", headers_json(msg, len), "preview", preview,
                    "attachments", pv.attachments);
out:
    json_decref(pv.attachments);
    mo_buf_free(&pv.plain);
    mo_buf_free(&pv.html);
    return out;
}

int
panel_preview_extract(const char *msg, size_t len, long attachment, size_t max_bytes,
                      struct mo_buf *out, char *type, size_t type_size, char *name,
                      size_t name_size)
{
    struct preview pv;
    int rc = -1;

    memset(&pv, 0, sizeof(pv));
    pv.text_max = max_bytes;
    pv.want_attachment = attachment;
    mo_buf_init(&pv.plain, max_bytes + 8);
    mo_buf_init(&pv.html, max_bytes + 8);
    type[0] = '\0';
    name[0] = '\0';
    if (attachment >= 0) {
        pv.attachment = out;
        pv.attachment_type = type;
        pv.attachment_type_size = type_size;
        pv.attachment_name = name;
        pv.attachment_name_size = name_size;
    }
    walk(&pv, msg, len, 0, "text/plain");
    if (attachment >= 0 && pv.attachment_found) {
        rc = 0;
    } else if (attachment < 0 && pv.has_html &&
               mo_buf_append(out, pv.html.data != NULL ? pv.html.data : "", pv.html.len, NULL) ==
                   0) {
        snprintf(type, type_size, "text/html");
        rc = 0;
    }
    mo_buf_free(&pv.plain);
    mo_buf_free(&pv.html);
    return rc;
}
