/*
 * api.c - the pure half of the JSON API: request bodies in, checked messages
 * and error tables out, and the state of a queued message as JSON.
 *
 * Why pure: everything a client can send passes through here first, so this
 * is what the unit tests table and the fuzz target (fuzz_api_body) hammer;
 * http.c adds the I/O (keys, accounts, the queue) around it.
 * - admin_message_parse: the JSON body of POST /api/v1/messages, every
 *   problem reported at once with the field at fault ("to[2]",
 *   "headers.X-Foo", "attachments[0].content_base64").
 * - admin_message_build: that message composed (mime_compose) with its
 *   envelope (from, to+cc+bcc, deduplicated; SMTPUTF8 when a local part is
 *   UTF-8).
 * - admin_raw_prepare: a ready-made message for POST /api/v1/messages/raw,
 *   read and prepared by the mime module (mime_message_prepare: CRLF line
 *   ends, Bcc removed, Date and Message-ID added when missing, RFC 6409
 *   8.2-8.3), with the envelope from the query or the headers and lines over
 *   998 bytes refused.
 * Leaves out: MIME structure checks of raw bodies.
 * RFCs: 8259 (JSON), 5322 (messages), 2045 6.8 (base64), 6409 8 (what a
 * submission agent may add), 6531 (SMTPUTF8).
 */
#include "admin/admin_internal.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEADER_NAME_MAX 76 /* a header name and ": " fit a 78-character line */
#define FILENAME_MAX_BYTES 255
#define CONTENT_TYPE_MAX 78
#define ACCOUNT_NAME_MAX 128
#define LINE_MAX_BYTES 998 /* RFC 5322 2.1.1, without the CRLF */
#define MESSAGE_ID_SIZE 320
#define DESCRIBE_MAX 80

/* Headers the composer writes; a body's "headers" may not name them. */
static const char *const reserved_headers[] = {
    "From",
    "To",
    "Cc",
    "Bcc",
    "Date",
    "Subject",
    "Reply-To",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
};

static const char *const body_fields[] = {
    "from", "to",   "cc",      "bcc",         "reply_to", "subject",
    "text", "html", "headers", "attachments", "account",
};

/* ---- the errors table ------------------------------------------------------ */

void
admin_errors_add(struct admin_errors *e, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (e->n >= ADMIN_ERRORS_MAX) {
        e->truncated = true;
        return;
    }
    snprintf(e->items[e->n].field, sizeof(e->items[e->n].field), "%s", field != NULL ? field : "");
    va_start(ap, fmt);
    vsnprintf(e->items[e->n].message, sizeof(e->items[e->n].message), fmt, ap);
    va_end(ap);
    e->n++;
}

json_t *
admin_errors_json(const struct admin_errors *e)
{
    json_t *list = json_array();
    json_t *root = json_object();

    if (list == NULL || root == NULL)
        goto fail;
    for (size_t i = 0; i < e->n; i++) {
        json_t *item = json_object();

        if (item == NULL || json_array_append_new(list, item) != 0)
            goto fail;
        if (json_object_set_new(item, "field",
                                e->items[i].field[0] != '\0' ? json_string(e->items[i].field)
                                                             : json_null()) != 0 ||
            json_object_set_new(item, "message", json_string(e->items[i].message)) != 0)
            goto fail;
    }
    if (e->truncated) {
        json_t *item =
            json_pack("{s:n, s:s}", "field", "message", "there are more problems; fix these first");

        if (item == NULL || json_array_append_new(list, item) != 0)
            goto fail;
    }
    if (json_object_set_new(root, "errors", list) != 0) {
        list = NULL;
        goto fail;
    }
    return root;
fail:
    json_decref(list);
    json_decref(root);
    return NULL;
}

int
admin_errors_find(const struct admin_errors *e, const char *field)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].field, field != NULL ? field : "") == 0)
            return (int)i;
    return -1;
}

/* ---- small helpers ----------------------------------------------------------- */

/* A copy of s for quoting in a message: control characters as \xNN, cut at max bytes. */
static void
describe(const char *s, size_t len, char *out, size_t out_size)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 8 < out_size; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= DESCRIBE_MAX) {
            o += (size_t)snprintf(out + o, out_size - o, "...");
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* The first control character of s (C0 or DEL; tab allowed when allow_tab), or NULL. */
static const char *
find_ctl(const char *s, size_t len, bool allow_tab)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f)
            return s + i;
    }
    return NULL;
}

static const char *
ctl_name(char c)
{
    return c == '\r' || c == '\n' ? "a line break (CR or LF)"
           : c == '\0'            ? "a NUL character"
                                  : "a control character";
}

static void
decref_cb(void *p)
{
    json_decref(p);
}

static void
address_clear_cb(void *p)
{
    mime_address_clear(p);
}

struct address_array {
    struct mime_address *v;
    size_t n;
};

static void
address_array_clear_cb(void *p)
{
    struct address_array *arr = p;

    for (size_t i = 0; i < arr->n; i++)
        mime_address_clear(&arr->v[i]);
}

static void
address_list_free_cb(void *p)
{
    struct address_array *arr = p;

    mime_address_list_free(arr->v, arr->n);
    arr->v = NULL;
    arr->n = 0;
}

static void
buf_free_cb(void *p)
{
    mo_buf_free(p);
}

/* A mo_buf that the arena frees. NULL when out of memory. */
static struct mo_buf *
arena_buf(struct admin_arena *a, size_t max_bytes)
{
    struct mo_buf *b = admin_arena_alloc(a, sizeof(*b));

    if (b == NULL)
        return NULL;
    mo_buf_init(b, max_bytes);
    if (admin_arena_defer(a, buf_free_cb, b) != 0)
        return NULL;
    return b;
}

/* ---- JSON body: fields --------------------------------------------------------- */

struct parse {
    struct admin_arena *a;
    struct admin_errors *errs;
    bool oom;
};

static void
parse_oom(struct parse *p)
{
    if (!p->oom)
        admin_errors_add(p->errs, NULL, "the server ran out of memory");
    p->oom = true;
}

/* One address into *out (cleared by the arena). field: "from" or "to[2]". */
static int
parse_address(struct parse *p, const char *text, const char *base_field, const char *field,
              struct mime_address *out)
{
    struct mo_error err;

    if (mime_address_parse(text, base_field, out, &err) != 0) {
        mime_address_clear(out);
        if (err.category == MO_ERR_INTERNAL)
            parse_oom(p);
        else
            admin_errors_add(p->errs, field, "%s", err.text);
        return -1;
    }
    return 0;
}

/* An optional string field: 0 with *out NULL when absent or null. */
static int
get_string(struct parse *p, const json_t *root, const char *name, const char **out)
{
    const json_t *v = json_object_get(root, name);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        admin_errors_add(p->errs, name, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static void
parse_single_address(struct parse *p, const json_t *root, const char *name, bool *has,
                     struct mime_address *out)
{
    const char *text;

    *has = false;
    if (get_string(p, root, name, &text) != 0 || text == NULL)
        return;
    if (admin_arena_defer(p->a, address_clear_cb, out) != 0) {
        parse_oom(p);
        return;
    }
    if (parse_address(p, text, name, name, out) == 0)
        *has = true;
}

/* to, cc or bcc: an array of address strings (absent or null: none). */
static void
parse_address_array(struct parse *p, const json_t *root, const char *name,
                    struct mime_address **out, size_t *n_out)
{
    const json_t *v = json_object_get(root, name);
    struct address_array *arr;
    size_t n;

    *out = NULL;
    *n_out = 0;
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_array(v)) {
        admin_errors_add(p->errs, name,
                         "%s must be an array of addresses, such as "
                         "[\"Ann <ann@example.com>\"]",
                         name);
        return;
    }
    n = json_array_size(v);
    if (n > ADMIN_MAX_RECIPIENTS) {
        admin_errors_add(p->errs, name, "%s holds %zu addresses; at most %d are allowed", name, n,
                         ADMIN_MAX_RECIPIENTS);
        return;
    }
    arr = admin_arena_alloc(p->a, sizeof(*arr));
    if (arr == NULL || (n > 0 && (arr->v = admin_arena_calloc(p->a, n, sizeof(*arr->v))) == NULL) ||
        admin_arena_defer(p->a, address_array_clear_cb, arr) != 0) {
        parse_oom(p);
        return;
    }
    arr->n = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(v, i);
        char field[ADMIN_FIELD_MAX];

        snprintf(field, sizeof(field), "%s[%zu]", name, i);
        if (!json_is_string(item)) {
            admin_errors_add(p->errs, field, "each address must be a string");
            continue;
        }
        parse_address(p, json_string_value(item), name, field, &arr->v[i]);
    }
    *out = arr->v;
    *n_out = n;
}

/* A text that goes into a header: no control character but tab. */
static int
check_header_text(struct parse *p, const char *field, const char *what, const char *s)
{
    const char *bad = find_ctl(s, strlen(s), true);

    if (bad != NULL) {
        admin_errors_add(p->errs, field, "%s contains %s; a header value must be one line", what,
                         ctl_name(*bad));
        return -1;
    }
    return 0;
}

static bool
is_reserved_header(const char *name)
{
    for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(reserved_headers[0]); i++)
        if (strcasecmp(name, reserved_headers[i]) == 0)
            return true;
    return false;
}

static bool
is_header_name(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > HEADER_NAME_MAX)
        return false;
    for (const char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c < 33 || (unsigned char)*c > 126 || *c == ':')
            return false;
    return true;
}

static void
parse_headers(struct parse *p, const json_t *root, struct admin_message *out)
{
    const json_t *v = json_object_get(root, "headers");
    const char *name;
    json_t *value;
    size_t i = 0;

    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        admin_errors_add(p->errs, "headers",
                         "headers must be an object of names and values, such as "
                         "{\"X-Order\": \"1234\"}");
        return;
    }
    if (json_object_size(v) > ADMIN_MAX_HEADERS) {
        admin_errors_add(p->errs, "headers", "there are %zu headers; at most %d are allowed",
                         json_object_size(v), ADMIN_MAX_HEADERS);
        return;
    }
    out->headers = admin_arena_calloc(p->a, json_object_size(v) + 1, sizeof(*out->headers));
    if (out->headers == NULL) {
        parse_oom(p);
        return;
    }
    json_object_foreach((json_t *)v, name, value)
    {
        char field[ADMIN_FIELD_MAX];
        char desc[2 * DESCRIBE_MAX];

        snprintf(field, sizeof(field), "headers.%s", name);
        describe(name, strlen(name), desc, sizeof(desc));
        if (!is_header_name(name)) {
            admin_errors_add(p->errs, field,
                             "\"%s\" is not a valid header name: use 1 to %d printable ASCII "
                             "characters other than ':' and space",
                             desc, HEADER_NAME_MAX);
            continue;
        }
        if (is_reserved_header(name)) {
            admin_errors_add(p->errs, field,
                             strcasecmp(name, "Bcc") == 0
                                 ? "a Bcc header would show the hidden recipients; use the bcc "
                                   "field"
                                 : "the %s header is set from the message's fields and cannot be "
                                   "given in headers",
                             desc);
            continue;
        }
        if (!json_is_string(value)) {
            admin_errors_add(p->errs, field, "the value of %s must be a string", desc);
            continue;
        }
        if (check_header_text(p, field, "the value", json_string_value(value)) != 0)
            continue;
        out->headers[i].name = name;
        out->headers[i].value = json_string_value(value);
        i++;
    }
    out->n_headers = i;
}

/*
 * Base64 (RFC 2045 6.8; line breaks and spaces allowed, padding optional)
 * with OpenSSL's decoder. The alphabet is checked first: EVP_DecodeUpdate
 * would stop quietly at a '-' (its PEM end marker) and lose the rest.
 */
static int
decode_base64(struct parse *p, const char *s, size_t len, unsigned char **out, size_t *out_len)
{
    EVP_ENCODE_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    size_t significant = 0;
    size_t pad = 0;
    int n1 = 0;
    int n2 = 0;
    int n3 = 0;
    int rc = -1;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
        } else if (((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/') &&
                   pad == 0) {
            significant++;
        } else {
            return -1;
        }
    }
    if (len > INT_MAX / 2 || significant % 4 == 1 || pad > 2 ||
        (pad > 0 && (significant + pad) % 4 != 0))
        return -1;
    buf = admin_arena_alloc(p->a, (significant / 4 + 1) * 3 + 3);
    ctx = EVP_ENCODE_CTX_new();
    if (buf == NULL || ctx == NULL) {
        parse_oom(p);
        goto out;
    }
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, buf, &n1, (const unsigned char *)s, (int)len) < 0)
        goto out;
    /* unpadded input: add what the encoder left out */
    if (pad == 0 && significant % 4 != 0 &&
        EVP_DecodeUpdate(ctx, buf + n1, &n2,
                         (const unsigned char *)"==", (int)(4 - significant % 4)) < 0)
        goto out;
    if (EVP_DecodeFinal(ctx, buf + n1 + n2, &n3) < 0)
        goto out;
    *out = buf;
    *out_len = (size_t)n1 + (size_t)n2 + (size_t)n3;
    rc = 0;
out:
    EVP_ENCODE_CTX_free(ctx);
    return rc;
}

static void
parse_attachment(struct parse *p, const json_t *v, size_t i, struct mime_attachment *att, bool *ok)
{
    char field[ADMIN_FIELD_MAX];
    char base[40];
    const json_t *filename;
    const json_t *content_type;
    const json_t *data;
    const char *key;
    json_t *value;
    size_t n_before = p->errs->n;

    *ok = false;
    snprintf(base, sizeof(base), "attachments[%zu]", i);
    if (!json_is_object(v)) {
        admin_errors_add(p->errs, base,
                         "an attachment must be an object with filename, content_type and "
                         "content_base64");
        return;
    }
    json_object_foreach((json_t *)v, key, value)
    {
        if (strcmp(key, "filename") != 0 && strcmp(key, "content_type") != 0 &&
            strcmp(key, "content_base64") != 0) {
            snprintf(field, sizeof(field), "%s.%.80s", base, key);
            admin_errors_add(p->errs, field,
                             "unknown field; an attachment has filename, content_type and "
                             "content_base64");
        }
    }
    filename = json_object_get(v, "filename");
    snprintf(field, sizeof(field), "%s.filename", base);
    if (filename == NULL || json_is_null(filename) ||
        (json_is_string(filename) && json_string_length(filename) == 0)) {
        admin_errors_add(p->errs, field,
                         "the attachment needs a file name, such as "
                         "\"invoice.pdf\"");
    } else if (!json_is_string(filename)) {
        admin_errors_add(p->errs, field, "filename must be a string");
    } else if (json_string_length(filename) > FILENAME_MAX_BYTES) {
        admin_errors_add(p->errs, field, "the file name is longer than %d bytes",
                         FILENAME_MAX_BYTES);
    } else {
        const char *bad =
            find_ctl(json_string_value(filename), json_string_length(filename), false);

        if (bad != NULL)
            admin_errors_add(p->errs, field, "the file name contains %s", ctl_name(*bad));
        else
            att->filename = json_string_value(filename);
    }
    content_type = json_object_get(v, "content_type");
    snprintf(field, sizeof(field), "%s.content_type", base);
    if (content_type != NULL && !json_is_null(content_type)) {
        const char *ct = json_string_value(content_type);
        size_t len = ct != NULL ? strlen(ct) : 0;
        bool valid = ct != NULL && len > 2 && len <= CONTENT_TYPE_MAX && ct[0] != '/' &&
                     strchr(ct, '/') != NULL && ct[len - 1] != '/';

        /* printable ASCII; spaces only among parameters ("text/plain; charset=utf-8") */
        for (size_t k = 0; valid && k < len; k++)
            valid = ((unsigned char)ct[k] > 0x20 && (unsigned char)ct[k] < 0x7f) ||
                    (ct[k] == ' ' && memchr(ct, ';', k) != NULL);
        if (!json_is_string(content_type))
            admin_errors_add(p->errs, field, "content_type must be a string");
        else if (!valid)
            admin_errors_add(p->errs, field,
                             "\"%.80s\" is not a content type: write type/subtype in ASCII, "
                             "such as application/pdf",
                             ct);
        else
            att->content_type = ct;
    }
    data = json_object_get(v, "content_base64");
    snprintf(field, sizeof(field), "%s.content_base64", base);
    if (data == NULL || json_is_null(data)) {
        admin_errors_add(p->errs, field, "the attachment's content is missing (base64)");
    } else if (!json_is_string(data)) {
        admin_errors_add(p->errs, field, "content_base64 must be a string");
    } else {
        unsigned char *bytes = NULL;
        size_t len = 0;

        if (decode_base64(p, json_string_value(data), json_string_length(data), &bytes, &len) ==
            0) {
            att->data = bytes;
            att->len = len;
        } else if (!p->oom) {
            admin_errors_add(p->errs, field,
                             "this is not valid base64 (RFC 4648 section 4: A-Z a-z 0-9 + / "
                             "with = padding)");
        }
    }
    *ok = p->errs->n == n_before && !p->errs->truncated;
}

static void
parse_attachments(struct parse *p, const json_t *root, struct admin_message *out)
{
    const json_t *v = json_object_get(root, "attachments");
    size_t n;
    size_t k = 0;

    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_array(v)) {
        admin_errors_add(p->errs, "attachments", "attachments must be an array of objects");
        return;
    }
    n = json_array_size(v);
    if (n > ADMIN_MAX_ATTACHMENTS) {
        admin_errors_add(p->errs, "attachments",
                         "there are %zu attachments; at most %d are "
                         "allowed",
                         n, ADMIN_MAX_ATTACHMENTS);
        return;
    }
    out->attachments = admin_arena_calloc(p->a, n + 1, sizeof(*out->attachments));
    if (out->attachments == NULL) {
        parse_oom(p);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool ok;

        parse_attachment(p, json_array_get(v, i), i, &out->attachments[k], &ok);
        if (ok)
            k++;
    }
    out->n_attachments = k;
}

static bool
is_body_field(const char *name)
{
    for (size_t i = 0; i < sizeof(body_fields) / sizeof(body_fields[0]); i++)
        if (strcmp(name, body_fields[i]) == 0)
            return true;
    return false;
}

int
admin_message_parse(const char *body, size_t len, struct admin_arena *a, struct admin_message *out,
                    struct admin_errors *errs)
{
    struct parse p = {.a = a, .errs = errs, .oom = false};
    json_error_t jerr;
    json_t *root;
    const char *key;
    json_t *value;
    const char *s;
    size_t n_before = errs->n;

    memset(out, 0, sizeof(*out));
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        admin_errors_add(errs, NULL, "the body is not valid JSON: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (admin_arena_defer(a, decref_cb, root) != 0) {
        parse_oom(&p);
        return -1;
    }
    if (!json_is_object(root)) {
        admin_errors_add(errs, NULL,
                         "the body must be a JSON object, such as "
                         "{\"to\": [\"ann@example.com\"], \"subject\": \"Hello\", "
                         "\"text\": \"...\"}");
        return -1;
    }
    json_object_foreach(root, key, value)
    {
        if (!is_body_field(key)) {
            char field[ADMIN_FIELD_MAX];

            snprintf(field, sizeof(field), "%s", key);
            admin_errors_add(errs, field,
                             "unknown field; the fields are from, to, cc, bcc, reply_to, "
                             "subject, text, html, headers, attachments and account");
        }
    }

    if (get_string(&p, root, "account", &s) == 0 && s != NULL) {
        const char *bad = find_ctl(s, strlen(s), false);

        if (s[0] == '\0' || strlen(s) > ACCOUNT_NAME_MAX || bad != NULL)
            admin_errors_add(errs, "account",
                             "account must be the name of an account (1 to %d "
                             "characters, no control characters)",
                             ACCOUNT_NAME_MAX);
        else
            out->account = s;
    }
    parse_single_address(&p, root, "from", &out->has_from, &out->from);
    parse_address_array(&p, root, "to", &out->to, &out->n_to);
    parse_address_array(&p, root, "cc", &out->cc, &out->n_cc);
    parse_address_array(&p, root, "bcc", &out->bcc, &out->n_bcc);
    if (json_object_get(root, "to") != NULL || json_object_get(root, "cc") != NULL ||
        json_object_get(root, "bcc") != NULL) {
        size_t total = out->n_to + out->n_cc + out->n_bcc;

        if (total == 0 && admin_errors_find(errs, "to") < 0 && admin_errors_find(errs, "cc") < 0 &&
            admin_errors_find(errs, "bcc") < 0)
            admin_errors_add(errs, "to", "at least one recipient is needed in to, cc or bcc");
        else if (total > ADMIN_MAX_RECIPIENTS)
            admin_errors_add(errs, "to", "there are %zu recipients; at most %d are allowed", total,
                             ADMIN_MAX_RECIPIENTS);
    } else {
        admin_errors_add(errs, "to",
                         "to is required: an array of recipient addresses, such as "
                         "[\"ann@example.com\"]");
    }
    parse_single_address(&p, root, "reply_to", &out->has_reply_to, &out->reply_to);

    if (json_object_get(root, "subject") == NULL || json_is_null(json_object_get(root, "subject")))
        admin_errors_add(errs, "subject", "subject is required (it may be \"\")");
    else if (get_string(&p, root, "subject", &s) == 0 &&
             check_header_text(&p, "subject", "the subject", s) == 0)
        out->subject = s;

    get_string(&p, root, "text", &out->text);
    get_string(&p, root, "html", &out->html);
    parse_headers(&p, root, out);
    parse_attachments(&p, root, out);
    if (out->text == NULL && out->html == NULL && out->n_attachments == 0)
        out->text = "";
    return errs->n == n_before && !errs->truncated && !p.oom ? 0 : -1;
}

/* ---- building the message and its envelope ---------------------------------------- */

/* The API's name for a composer field. */
static const char *
api_field(const char *compose_field)
{
    if (compose_field == NULL)
        return NULL;
    if (strcmp(compose_field, "header") == 0)
        return "headers";
    if (strcmp(compose_field, "attachment") == 0)
        return "attachments";
    return compose_field;
}

/* Appends the envelope form of addr to rcpts unless it is there already. */
static int
add_rcpt(struct admin_arena *a, const struct mime_address *addr, const char **rcpts, size_t *n,
         struct mo_error *err)
{
    char env[MIME_ADDRESS_MAX + 1];

    if (mime_address_envelope(addr, env, sizeof(env), err) != 0)
        return -1;
    /* linear scan; fine below ADMIN_MAX_RECIPIENTS */
    for (size_t i = 0; i < *n; i++)
        if (strcmp(rcpts[i], env) == 0)
            return 0;
    rcpts[*n] = admin_arena_strndup(a, env, strlen(env));
    if (rcpts[*n] == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    (*n)++;
    return 0;
}

/* "limit" errors of mo_buf say so in their text; everything else INTERNAL is a real failure. */
static bool
is_size_error(const struct mo_error *e)
{
    return e->category == MO_ERR_INTERNAL && strstr(e->text, "exceeds the limit") != NULL;
}

int
admin_message_build(const struct admin_message *m, const struct mime_address *from,
                    size_t max_bytes, struct admin_arena *a, struct queue_new_message *out,
                    struct admin_errors *errs, struct mo_error *err)
{
    struct mime_message msg;
    struct mo_buf *data = arena_buf(a, max_bytes);
    struct mo_buf *header_from = arena_buf(a, 1024);
    char message_id[MESSAGE_ID_SIZE];
    char env_from[MIME_ADDRESS_MAX + 1];
    const char **rcpts;
    size_t n_rcpts = 0;
    struct mo_error e;
    bool utf8 = from->has_utf8_local;

    memset(out, 0, sizeof(*out));
    rcpts = admin_arena_calloc(a, m->n_to + m->n_cc + m->n_bcc + 1, sizeof(*rcpts));
    if (data == NULL || header_from == NULL || rcpts == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    memset(&msg, 0, sizeof(msg));
    msg.from = from;
    msg.to = m->to;
    msg.n_to = m->n_to;
    msg.cc = m->cc;
    msg.n_cc = m->n_cc;
    msg.reply_to = m->has_reply_to ? &m->reply_to : NULL;
    msg.subject = m->subject;
    msg.text = m->text;
    msg.html = m->html;
    msg.attachments = m->attachments;
    msg.n_attachments = m->n_attachments;
    msg.headers = m->headers;
    msg.n_headers = m->n_headers;
    if (mime_compose(&msg, data, message_id, sizeof(message_id), &e) != 0) {
        if (e.category == MO_ERR_CONFIG)
            admin_errors_add(errs, api_field(e.field), "%s", e.text);
        else if (is_size_error(&e))
            admin_errors_add(errs, NULL, "the message would be larger than %zu bytes", max_bytes);
        else
            *err = e;
        return -1;
    }
    if (mime_address_envelope(from, env_from, sizeof(env_from), err) != 0 ||
        mime_address_format(from, header_from, err) != 0)
        return -1;
    for (size_t i = 0; i < m->n_to; i++)
        if (add_rcpt(a, &m->to[i], rcpts, &n_rcpts, err) != 0)
            return -1;
    for (size_t i = 0; i < m->n_cc; i++)
        if (add_rcpt(a, &m->cc[i], rcpts, &n_rcpts, err) != 0)
            return -1;
    for (size_t i = 0; i < m->n_bcc; i++)
        if (add_rcpt(a, &m->bcc[i], rcpts, &n_rcpts, err) != 0)
            return -1;
    for (size_t i = 0; i < m->n_to; i++)
        utf8 = utf8 || m->to[i].has_utf8_local;
    for (size_t i = 0; i < m->n_cc; i++)
        utf8 = utf8 || m->cc[i].has_utf8_local;
    for (size_t i = 0; i < m->n_bcc; i++)
        utf8 = utf8 || m->bcc[i].has_utf8_local;
    out->account = m->account;
    out->from = admin_arena_strndup(a, env_from, strlen(env_from));
    out->rcpts = rcpts;
    out->n_rcpts = n_rcpts;
    out->data = data->data;
    out->len = data->len;
    out->message_id = admin_arena_strndup(a, message_id, strlen(message_id));
    out->subject = m->subject;
    out->header_from = mo_buf_cstr(header_from);
    out->source = "api";
    out->needs_smtputf8 = utf8;
    if (out->from == NULL || out->message_id == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- raw messages ------------------------------------------------------------------- */

static void
headers_clear_cb(void *p)
{
    mime_headers_clear(p);
}

static void
prepared_clear_cb(void *p)
{
    mime_prepared_clear(p);
}

/* An error of the mime module as a problem (CONFIG) or an internal failure. */
static int
raw_problem(struct admin_errors *errs, const char *field, const struct mo_error *e,
            struct mo_error *err)
{
    if (e->category == MO_ERR_CONFIG) {
        admin_errors_add(errs, field != NULL ? field : e->field, "%s", e->text);
        return 0;
    }
    *err = *e;
    return -1;
}

/* The addresses of the header fields names[0..n) (arena-freed); -1 on an internal failure. */
static int
raw_header_addresses(struct admin_arena *a, const struct mime_headers *h, const char *const *names,
                     size_t n, const char *field, struct address_array **out,
                     struct admin_errors *errs, struct mo_error *err)
{
    struct address_array *arr = admin_arena_alloc(a, sizeof(*arr));
    struct mo_error e;

    *out = NULL;
    if (arr == NULL || admin_arena_defer(a, address_list_free_cb, arr) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (mime_headers_addresses(h, names, n, field, &arr->v, &arr->n, NULL, NULL, &e) != 0)
        return raw_problem(errs, field, &e, err);
    *out = arr;
    return 0;
}

/* The envelope sender of a raw message: ?from=, else From (Sender when From has several). */
static int
raw_sender(struct admin_arena *a, const struct mime_headers *h, const struct admin_raw_request *req,
           const struct mime_address *default_from, const struct mime_address **out,
           struct admin_errors *errs, struct mo_error *err)
{
    static const char *const from_name[] = {"From"};
    static const char *const sender_name[] = {"Sender"};
    struct address_array *list = NULL;
    struct mo_error e;

    *out = NULL;
    if (req->from != NULL) {
        struct mime_address *addr = admin_arena_alloc(a, sizeof(*addr));

        if (addr == NULL || admin_arena_defer(a, address_clear_cb, addr) != 0) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
        if (mime_address_parse(req->from, "from", addr, &e) != 0)
            return raw_problem(errs, "from", &e, err);
        *out = addr;
        return 0;
    }
    if (mime_headers_find(h, "From") == NULL) {
        if (default_from == NULL)
            admin_errors_add(errs, "from",
                             "the message has no From header, no ?from= was "
                             "given and the account has no sender");
        *out = default_from;
        return 0;
    }
    if (raw_header_addresses(a, h, from_name, 1, "headers.From", &list, errs, err) != 0)
        return -1;
    if (list == NULL)
        return 0;
    if (list->n == 0) {
        admin_errors_add(errs, "headers.From",
                         "the From header holds no address; give one, "
                         "or ?from=");
        return 0;
    }
    if (list->n == 1) {
        *out = &list->v[0];
        return 0;
    }
    /* several authors: RFC 5322 3.6.2 asks for a Sender */
    if (mime_headers_find(h, "Sender") == NULL) {
        admin_errors_add(errs, "headers.Sender",
                         "the From header lists several authors; add a "
                         "Sender header (RFC 5322 3.6.2) or give ?from=");
        return 0;
    }
    if (raw_header_addresses(a, h, sender_name, 1, "headers.Sender", &list, errs, err) != 0)
        return -1;
    if (list != NULL && list->n != 1)
        admin_errors_add(errs, "headers.Sender", "the Sender header must hold one address");
    else if (list != NULL)
        *out = &list->v[0];
    return 0;
}

/* The envelope recipients: ?to= values, else To + Cc + Bcc. Deduplicated into *rcpts. */
static int
raw_recipients(struct admin_arena *a, const struct mime_headers *h,
               const struct admin_raw_request *req, const char ***rcpts, size_t *n_rcpts,
               bool *utf8, struct admin_errors *errs, struct mo_error *err)
{
    static const char *const names[] = {"To", "Cc", "Bcc"};
    struct address_array *list = NULL;
    size_t n = req->n_to;

    *rcpts = NULL;
    *n_rcpts = 0;
    if (req->n_to == 0) {
        if (raw_header_addresses(a, h, names, 3, "headers.To", &list, errs, err) != 0)
            return -1;
        if (list == NULL)
            return 0;
        n = list->n;
    }
    if (n > ADMIN_MAX_RECIPIENTS) {
        admin_errors_add(errs, "to", "there are %zu recipients; at most %d are allowed", n,
                         ADMIN_MAX_RECIPIENTS);
        return 0;
    }
    if (n == 0) {
        admin_errors_add(errs, "to", "no recipients: give ?to= or To, Cc or Bcc headers");
        return 0;
    }
    *rcpts = admin_arena_calloc(a, n + 1, sizeof(**rcpts));
    if (*rcpts == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct mime_address *addr = list != NULL ? &list->v[i] : NULL;

        if (addr == NULL) {
            struct mime_address *parsed = admin_arena_alloc(a, sizeof(*parsed));
            char field[ADMIN_FIELD_MAX];
            struct mo_error e;

            if (parsed == NULL || admin_arena_defer(a, address_clear_cb, parsed) != 0) {
                mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
                return -1;
            }
            snprintf(field, sizeof(field), "to[%zu]", i);
            if (mime_address_parse(req->to[i], "to", parsed, &e) != 0) {
                if (raw_problem(errs, field, &e, err) != 0)
                    return -1;
                continue;
            }
            addr = parsed;
        }
        *utf8 = *utf8 || addr->has_utf8_local;
        if (add_rcpt(a, addr, *rcpts, n_rcpts, err) != 0)
            return -1;
    }
    return 0;
}

/* The first line of t[0..len) longer than LINE_MAX_BYTES (1-based), or 0. */
static size_t
long_line(const char *t, size_t len)
{
    size_t line = 1;
    size_t run = 0;

    for (size_t i = 0; i < len; i++) {
        if (t[i] == '\n') {
            line++;
            run = 0;
        } else if (t[i] != '\r' && ++run > LINE_MAX_BYTES) {
            return line;
        }
    }
    return 0;
}

int
admin_raw_prepare(const char *body, size_t len, const struct admin_raw_request *req,
                  const struct mime_address *default_from, size_t max_bytes, struct admin_arena *a,
                  struct queue_new_message *out, struct admin_errors *errs, struct mo_error *err)
{
    struct mime_headers *h = admin_arena_alloc(a, sizeof(*h));
    struct mime_prepared *info = admin_arena_alloc(a, sizeof(*info));
    struct mo_buf *data = arena_buf(a, max_bytes);
    struct mime_prepare_options opt;
    const struct mime_address *env_from = NULL;
    const char **rcpts = NULL;
    size_t n_rcpts = 0;
    size_t n_before = errs->n;
    size_t bad_line;
    char env[MIME_ADDRESS_MAX + 1];
    struct mo_error e;
    bool utf8 = false;

    memset(out, 0, sizeof(*out));
    if (h == NULL || info == NULL || data == NULL ||
        admin_arena_defer(a, headers_clear_cb, h) != 0 ||
        admin_arena_defer(a, prepared_clear_cb, info) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (len == 0) {
        admin_errors_add(errs, "message", "the body is empty; send the RFC 5322 message");
        return -1;
    }
    if (mime_headers_parse(body, len, h, &e) != 0) {
        raw_problem(errs, "message", &e, err);
        return -1;
    }
    if (h->n == 0) {
        admin_errors_add(errs, "message",
                         "the message has no header fields; it must start "
                         "with headers such as \"Subject: ...\", then a blank line and the body");
        return -1;
    }
    if ((bad_line = long_line(body, len)) != 0) {
        admin_errors_add(errs, "message",
                         "line %zu is longer than %d bytes (RFC 5322 2.1.1); encode long lines "
                         "with quoted-printable or base64",
                         bad_line, LINE_MAX_BYTES);
        return -1;
    }
    if (raw_sender(a, h, req, default_from, &env_from, errs, err) != 0 ||
        raw_recipients(a, h, req, &rcpts, &n_rcpts, &utf8, errs, err) != 0)
        return -1;
    if (errs->n > n_before || env_from == NULL)
        return -1;
    utf8 = utf8 || env_from->has_utf8_local;
    if (mime_address_envelope(env_from, env, sizeof(env), err) != 0)
        return -1;

    memset(&opt, 0, sizeof(opt));
    opt.from = env_from; /* written as From only when the message has none */
    opt.add_date = true;
    opt.add_message_id = true;
    opt.remove_bcc = true;
    opt.encode_8bit = !utf8; /* with SMTPUTF8, UTF-8 headers may stay (RFC 6532) */
    if (mime_message_prepare(body, len, &opt, data, info, &e) != 0) {
        if (is_size_error(&e)) {
            admin_errors_add(errs, NULL, "the message would be larger than %zu bytes", max_bytes);
            return -1;
        }
        raw_problem(errs, e.field != NULL && strcmp(e.field, "message") != 0 ? "from" : "message",
                    &e, err);
        return -1;
    }
    out->account = req->account;
    out->from = admin_arena_strndup(a, env, strlen(env));
    out->rcpts = rcpts;
    out->n_rcpts = n_rcpts;
    out->data = data->data;
    out->len = data->len;
    out->message_id = info->message_id[0] != '\0' ? info->message_id : NULL;
    out->subject = info->subject;
    out->header_from = info->header_from;
    out->source = "api";
    out->needs_smtputf8 = utf8;
    if (out->from == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- GET ------------------------------------------------------------------------------ */

static json_t *
string_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
int_or_null(int64_t v)
{
    return v != 0 ? json_integer((json_int_t)v) : json_null();
}

json_t *
admin_message_info_json(const struct queue_message_info *m)
{
    json_t *o = json_object();
    json_t *rcpts = json_array();
    int bad = 0;

    if (o == NULL || rcpts == NULL) {
        json_decref(o);
        json_decref(rcpts);
        return NULL;
    }
    for (size_t i = 0; i < m->n_rcpts; i++) {
        const struct queue_rcpt_info *r = &m->rcpts[i];
        json_t *item = json_object();

        bad |= item == NULL || json_array_append_new(rcpts, item) != 0;
        if (item == NULL)
            continue;
        bad |= json_object_set_new(item, "address", string_or_null(r->address));
        bad |= json_object_set_new(item, "state", string_or_null(r->state));
        bad |= json_object_set_new(item, "code", int_or_null(r->code));
        bad |= json_object_set_new(item, "reply", string_or_null(r->reply));
    }
    bad |= json_object_set_new(o, "id", json_integer((json_int_t)m->id));
    bad |= json_object_set_new(o, "state", json_string(queue_state_name(m->state)));
    bad |= json_object_set_new(o, "attempts", json_integer(m->attempts));
    bad |= json_object_set_new(o, "last_reply", string_or_null(m->last_reply));
    bad |= json_object_set_new(o, "last_code", int_or_null(m->last_code));
    bad |= json_object_set_new(o, "created_at", int_or_null(m->created_at));
    bad |= json_object_set_new(o, "updated_at", int_or_null(m->updated_at));
    bad |= json_object_set_new(o, "next_attempt_at", int_or_null(m->next_attempt_at));
    bad |= json_object_set_new(o, "message_id", string_or_null(m->message_id));
    bad |= json_object_set_new(o, "subject", string_or_null(m->subject));
    bad |= json_object_set_new(o, "from",
                               string_or_null(m->header_from != NULL ? m->header_from : m->from));
    bad |= json_object_set_new(o, "envelope_from", string_or_null(m->from));
    bad |= json_object_set_new(o, "account", string_or_null(m->account));
    bad |= json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    bad |= json_object_set_new(o, "recipients", rcpts);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int
admin_parse_id(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (s == NULL || *s < '1' || *s > '9' || strlen(s) > 19)
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}
