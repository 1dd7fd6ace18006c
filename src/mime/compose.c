/*
 * compose.c - the MIME composer: turns a struct mime_message into the bytes
 * of an RFC 5322 message, and makes Message-IDs.
 *
 * Why: this is the one place that writes headers, so it is where user text
 * (subject, names, extra headers, file names) is checked for line breaks and
 * encoded so that no header can be injected and no line passes 998 octets.
 * Layout: Date, From, To, Cc, Reply-To, Subject, Message-ID, MIME-Version,
 * the extra headers, then the content: one text part, text+html as
 * multipart/alternative, and attachments wrapping that in multipart/mixed.
 * Text bodies get CRLF line ends and 7bit, quoted-printable or base64,
 * whichever fits; attachments are always base64.
 * Leaves out: inline images (multipart/related), charsets other than UTF-8,
 * DKIM, S/MIME, and a Bcc header (Bcc belongs to the envelope only).
 * Note: a 7bit body that does not end in a line break gains one at the very
 * end of a single-part message (SMTP would add it anyway).
 * RFCs: 5322 (3.3 dates, 3.6 fields), 2045-2047, 2231, 2183
 * (Content-Disposition), 2046 5.1 (multipart), 6532 (UTF-8 addresses).
 */
#include "mime/mime.h"
#include "mime/mime_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BOUNDARY_PREFIX "=_mo_" /* "=_" never occurs in base64 or quoted-printable */
#define BOUNDARY_SIZE 48
#define BOUNDARY_TRIES 8
#define RANDOM_BYTES 16
#define MESSAGE_ID_MAX 300 /* 32 hex digits, '@', a domain of up to 255 */
#define DATE_MAX 64
#define FILENAME_MAX_BYTES 255
#define FILENAME_SIMPLE_MAX 60 /* longer names use RFC 2231 segments */
#define YEAR_MAX 9999

/* Headers the composer writes itself; an extra header may not repeat them. */
static const char *const reserved_headers[] = {
    "From",
    "To",
    "Cc",
    "Bcc",
    "Date",
    "Subject",
    "Message-ID",
    "MIME-Version",
    "Reply-To",
    "Content-Type",
    "Content-Transfer-Encoding",
};

static const struct {
    const char *ext;
    const char *type;
} ext_types[] = {
    {"pdf", "application/pdf"}, {"png", "image/png"},         {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},     {"gif", "image/gif"},         {"webp", "image/webp"},
    {"svg", "image/svg+xml"},   {"txt", "text/plain"},        {"html", "text/html"},
    {"htm", "text/html"},       {"csv", "text/csv"},          {"ics", "text/calendar"},
    {"zip", "application/zip"}, {"json", "application/json"}, {"xml", "application/xml"},
};

/* A text body, CRLF-normalized, with its transfer encoding. */
struct body {
    const char *subtype; /* "plain" or "html" */
    bool is_present;
    struct mo_buf data;
    enum mime_cte cte;
};

/* ---- checks ------------------------------------------------------------ */

/* what: "the subject", "the value of header X-Foo", ... */
static int
check_text(const char *s, bool allow_tab, const char *field, const char *what, struct mo_error *err)
{
    size_t len = strlen(s);
    size_t ctl = mime_find_ctl(s, len, allow_tab);

    if (ctl < len) {
        mo_error_set(err, MO_ERR_CONFIG, field, "%s contains %s", what,
                     mime_ctl_name((unsigned char)s[ctl]));
        return -1;
    }
    if (!mime_utf8_valid(s, len)) {
        mo_error_set(err, MO_ERR_CONFIG, field, "%s is not valid UTF-8", what);
        return -1;
    }
    return 0;
}

static int
check_header(const struct mime_header *h, struct mo_error *err)
{
    char what[MIME_DESCRIBE_MAX + 32];
    char desc[MIME_DESCRIBE_MAX];

    if (h->name == NULL || h->name[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "header", "an extra header has no name");
        return -1;
    }
    mime_describe(h->name, strlen(h->name), desc, sizeof(desc));
    for (const char *p = h->name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 33 || c > 126 || c == ':') {
            mo_error_set(err, MO_ERR_CONFIG, "header",
                         "the header name \"%s\" is not valid: it may hold only printable "
                         "ASCII characters other than ':' and space",
                         desc);
            return -1;
        }
    }
    if (strlen(h->name) > MIME_LINE_SOFT - 2) {
        mo_error_set(err, MO_ERR_CONFIG, "header", "the header name \"%s\" is too long", desc);
        return -1;
    }
    for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(reserved_headers[0]); i++) {
        if (strcasecmp(h->name, reserved_headers[i]) != 0)
            continue;
        if (strcasecmp(h->name, "Bcc") == 0)
            mo_error_set(err, MO_ERR_CONFIG, "header",
                         "a Bcc header would show the hidden recipients; put them in the "
                         "envelope only");
        else
            mo_error_set(err, MO_ERR_CONFIG, "header",
                         "the %s header is written by the composer and cannot be given as an "
                         "extra header",
                         reserved_headers[i]);
        return -1;
    }
    if (h->value == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "header", "the header %s has no value", desc);
        return -1;
    }
    snprintf(what, sizeof(what), "the value of the header %s", desc);
    return check_text(h->value, true, "header", what, err);
}

static int
check_attachment(const struct mime_attachment *att, struct mo_error *err)
{
    char what[MIME_DESCRIBE_MAX + 32];
    char desc[MIME_DESCRIBE_MAX];

    if (att->filename == NULL || att->filename[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "attachment", "an attachment has no file name");
        return -1;
    }
    mime_describe(att->filename, strlen(att->filename), desc, sizeof(desc));
    snprintf(what, sizeof(what), "the attachment name \"%s\"", desc);
    if (check_text(att->filename, false, "attachment", what, err) != 0)
        return -1;
    if (strlen(att->filename) > FILENAME_MAX_BYTES) {
        mo_error_set(err, MO_ERR_CONFIG, "attachment", "%s is longer than %d bytes", what,
                     FILENAME_MAX_BYTES);
        return -1;
    }
    if (att->data == NULL && att->len > 0) {
        mo_error_set(err, MO_ERR_CONFIG, "attachment", "%s has a length but no data", what);
        return -1;
    }
    if (att->content_type != NULL) {
        const char *ct = att->content_type;
        size_t len = strlen(ct);

        if (len == 0 || strchr(ct, '/') == NULL || mime_find_ctl(ct, len, false) < len ||
            !mime_is_ascii(ct, len) || len > MIME_LINE_SOFT) {
            mime_describe(ct, len, desc, sizeof(desc));
            mo_error_set(err, MO_ERR_CONFIG, "attachment",
                         "the content type \"%s\" is not valid (expected type/subtype, such "
                         "as application/pdf)",
                         desc);
            return -1;
        }
    }
    return 0;
}

static int
check_message_id(const char *id, struct mo_error *err)
{
    size_t len = strlen(id);
    bool ok = len > 2 && len < MESSAGE_ID_MAX && strchr(id, '@') != NULL;
    char desc[MIME_DESCRIBE_MAX];

    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        ok = c >= 33 && c <= 126 && c != '<' && c != '>' && c != '"' && c != '\\';
    }
    if (!ok) {
        mime_describe(id, len, desc, sizeof(desc));
        mo_error_set(err, MO_ERR_CONFIG, "message_id",
                     "\"%s\" is not a valid Message-ID: write it as left@right, without "
                     "angle brackets, spaces or control characters",
                     desc);
        return -1;
    }
    return 0;
}

static int
check_addresses(const struct mime_address *list, size_t n, const char *field, struct mo_error *err)
{
    if (n > 0 && list == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, field, "the %s list is missing", field);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (mime_address_check(&list[i], field, err) != 0)
            return -1;
    }
    return 0;
}

static int
compose_check(const struct mime_message *msg, struct mo_error *err)
{
    if (msg->from == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "from", "a sender (From) is required");
        return -1;
    }
    if (mime_address_check(msg->from, "from", err) != 0 ||
        check_addresses(msg->to, msg->n_to, "to", err) != 0 ||
        check_addresses(msg->cc, msg->n_cc, "cc", err) != 0 ||
        (msg->reply_to != NULL && mime_address_check(msg->reply_to, "reply_to", err) != 0))
        return -1;
    if (msg->subject != NULL && check_text(msg->subject, true, "subject", "the subject", err) != 0)
        return -1;
    if (msg->n_headers > 0 && msg->headers == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "header", "the extra headers are missing");
        return -1;
    }
    for (size_t i = 0; i < msg->n_headers; i++) {
        if (check_header(&msg->headers[i], err) != 0)
            return -1;
    }
    if (msg->n_attachments > 0 && msg->attachments == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "attachment", "the attachments are missing");
        return -1;
    }
    for (size_t i = 0; i < msg->n_attachments; i++) {
        if (check_attachment(&msg->attachments[i], err) != 0)
            return -1;
    }
    if (msg->message_id != NULL && check_message_id(msg->message_id, err) != 0)
        return -1;
    if (msg->date < 0) {
        mo_error_set(err, MO_ERR_CONFIG, "date", "the date is before 1970");
        return -1;
    }
    return 0;
}

/* ---- small writers ----------------------------------------------------- */

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

    if (localtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > YEAR_MAX) {
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

static void
hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

/* id-right of RFC 5322 3.6.4: a dot-atom of LDH characters or a [literal]. */
static bool
is_id_domain(const char *d)
{
    size_t len = strlen(d);

    if (len == 0 || len > MIME_DOMAIN_MAX)
        return false;
    if (d[0] == '[')
        return len > 2 && d[len - 1] == ']' && strcspn(d + 1, "[]\\ \t\r\n") == len - 2;
    if (d[0] == '.' || d[len - 1] == '.' || strstr(d, "..") != NULL)
        return false;
    return strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == len;
}

int
mime_message_id_new(const char *domain, char *out, size_t out_size, struct mo_error *err)
{
    unsigned char rnd[RANDOM_BYTES];
    char hex[2 * RANDOM_BYTES + 1];
    int n;

    if (domain == NULL || !is_id_domain(domain)) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL,
                     "cannot make a Message-ID: the sender's domain is not a valid ASCII domain");
        return -1;
    }
    randombytes_buf(rnd, sizeof(rnd));
    hex_encode(rnd, sizeof(rnd), hex);
    n = snprintf(out, out_size, "%s@%s", hex, domain);
    if (n < 0 || (size_t)n >= out_size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the Message-ID does not fit in %zu bytes",
                     out_size);
        return -1;
    }
    return 0;
}

static bool
body_contains(const struct body *b, const char *needle)
{
    return b->is_present && b->cte == MIME_CTE_7BIT &&
           memmem(mo_buf_cstr(&b->data), b->data.len, needle, strlen(needle)) != NULL;
}

/*
 * A random boundary. Base64 and quoted-printable output never hold "=_", so
 * only 7bit bodies can collide; those are searched, and a hit draws again.
 */
static int
boundary_new(char *out, const struct body *text, const struct body *html, const char *other,
             struct mo_error *err)
{
    unsigned char rnd[RANDOM_BYTES];
    char hex[2 * RANDOM_BYTES + 1];

    for (int i = 0; i < BOUNDARY_TRIES; i++) {
        randombytes_buf(rnd, sizeof(rnd));
        hex_encode(rnd, sizeof(rnd), hex);
        snprintf(out, BOUNDARY_SIZE, "%s%s", BOUNDARY_PREFIX, hex);
        if (!body_contains(text, out) && !body_contains(html, out) &&
            (other == NULL || strcmp(out, other) != 0))
            return 0;
    }
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "no MIME boundary could be found");
    return -1;
}

/* ---- headers ----------------------------------------------------------- */

static int
write_address_header(struct mo_buf *out, const char *name, const char *field,
                     const struct mime_address *list, size_t n, struct mo_error *err)
{
    struct mime_fold f;
    struct mo_buf one;
    int rc = -1;

    mo_buf_init(&one, out->max_bytes);
    if (mime_fold_begin(&f, out, name, field, err) != 0)
        goto out;
    f.may_fold_at_start = true; /* an address list may open with FWS (RFC 5322 3.4) */
    for (size_t i = 0; i < n; i++) {
        mo_buf_reset(&one);
        /* the comma stays with its address, so folds fall between addresses */
        if (mime_address_format(&list[i], &one, err) != 0 ||
            (i + 1 < n && mo_buf_append(&one, ",", 1, err) != 0) ||
            mime_fold_text(&f, one.data, one.len, true, err) != 0)
            goto out;
    }
    rc = mime_fold_end(&f, err);
out:
    mo_buf_free(&one);
    return rc;
}

/*
 * An ASCII subject is written as it is when folding and unfolding give it
 * back unchanged: printable, single spaces, no "=?" and no word too long
 * to fold. Anything else becomes encoded words.
 */
static bool
subject_is_plain(const char *s, size_t len)
{
    size_t word = 0;

    if (len == 0)
        return true;
    if (s[0] == ' ' || s[len - 1] == ' ' || strstr(s, "=?") != NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e || (c == ' ' && s[i + 1] == ' '))
            return false;
        word = c == ' ' ? 0 : word + 1;
        if (word > MIME_LINE_SOFT - 1 - sizeof("Subject:"))
            return false;
    }
    return true;
}

/* Writes an unstructured value: as it is when ASCII, else as encoded words. */
static int
write_text_header(struct mo_buf *out, const char *name, const char *field, const char *value,
                  bool is_plain, struct mo_error *err)
{
    struct mime_fold f;
    struct mo_buf words;
    size_t len = strlen(value);
    int rc = -1;

    mo_buf_init(&words, out->max_bytes);
    if (mime_fold_begin(&f, out, name, field, err) != 0)
        goto out;
    if (is_plain) {
        if (len > 0 && mime_fold_text(&f, value, len, false, err) != 0)
            goto out;
    } else {
        if (mime_ew_encode(value, len, MIME_LINE_SOFT - f.col - 1, &words, err) != 0 ||
            mime_fold_text(&f, words.data, words.len, false, err) != 0)
            goto out;
    }
    rc = mime_fold_end(&f, err);
out:
    mo_buf_free(&words);
    return rc;
}

static int
write_headers(const struct mime_message *msg, const char *id, struct mo_buf *out,
              struct mo_error *err)
{
    const char *subject = msg->subject != NULL ? msg->subject : "";
    char date[DATE_MAX];

    if (format_date(msg->date, date, sizeof(date), err) != 0 ||
        mo_buf_appendf(out, err, "Date: %s\r\n", date) != 0 ||
        write_address_header(out, "From", "from", msg->from, 1, err) != 0)
        return -1;
    if (msg->n_to > 0) {
        if (write_address_header(out, "To", "to", msg->to, msg->n_to, err) != 0)
            return -1;
    } else if (msg->n_cc == 0 &&
               mo_buf_append_str(out, "To: undisclosed-recipients:;\r\n", err) != 0) {
        return -1;
    }
    if ((msg->n_cc > 0 && write_address_header(out, "Cc", "cc", msg->cc, msg->n_cc, err) != 0) ||
        (msg->reply_to != NULL &&
         write_address_header(out, "Reply-To", "reply_to", msg->reply_to, 1, err) != 0) ||
        write_text_header(out, "Subject", "subject", subject,
                          subject_is_plain(subject, strlen(subject)), err) != 0 ||
        mo_buf_appendf(out, err, "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n", id) != 0)
        return -1;
    for (size_t i = 0; i < msg->n_headers; i++) {
        const struct mime_header *h = &msg->headers[i];

        if (write_text_header(out, h->name, "header", h->value,
                              mime_is_ascii(h->value, strlen(h->value)), err) != 0)
            return -1;
    }
    return 0;
}

/* ---- content ----------------------------------------------------------- */

static int
body_prepare(struct body *b, const char *src, const char *field, struct mo_error *err)
{
    size_t len;

    if (src == NULL)
        return 0;
    len = strlen(src);
    if (!mime_utf8_valid(src, len)) {
        mo_error_set(err, MO_ERR_CONFIG, field, "the %s body is not valid UTF-8", field);
        return -1;
    }
    if (mime_crlf_normalize(src, len, &b->data, err) != 0)
        return -1;
    b->is_present = true;
    b->cte = mime_cte_choose((const unsigned char *)mo_buf_cstr(&b->data), b->data.len);
    return 0;
}

static int
write_encoded(enum mime_cte cte, const unsigned char *data, size_t len, struct mo_buf *out,
              struct mo_error *err)
{
    switch (cte) {
    case MIME_CTE_7BIT:
        return mo_buf_append(out, data, len, err);
    case MIME_CTE_QP:
        return mime_qp_encode(data, len, out, err);
    case MIME_CTE_BASE64:
        return mime_base64_encode(data, len, out, err);
    }
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "unknown transfer encoding");
    return -1;
}

static int
write_text_part(const struct body *b, struct mo_buf *out, struct mo_error *err)
{
    if (mo_buf_appendf(out, err,
                       "Content-Type: text/%s; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: %s\r\n\r\n",
                       b->subtype, mime_cte_name(b->cte)) != 0)
        return -1;
    return write_encoded(b->cte, (const unsigned char *)mo_buf_cstr(&b->data), b->data.len, out,
                         err);
}

static int
write_multipart_header(const char *subtype, const char *boundary, struct mo_buf *out,
                       struct mo_error *err)
{
    return mo_buf_appendf(out, err,
                          "Content-Type: multipart/%s;\r\n boundary=\"%s\"\r\n\r\n--%s\r\n",
                          subtype, boundary, boundary);
}

/* The text part, the html part, or both as multipart/alternative (text first). */
static int
write_body(const struct body *text, const struct body *html, const char *outer, struct mo_buf *out,
           struct mo_error *err)
{
    char alt[BOUNDARY_SIZE];

    if (!text->is_present)
        return write_text_part(html, out, err);
    if (!html->is_present)
        return write_text_part(text, out, err);
    if (boundary_new(alt, text, html, outer, err) != 0 ||
        write_multipart_header("alternative", alt, out, err) != 0 ||
        write_text_part(text, out, err) != 0 ||
        mo_buf_appendf(out, err, "\r\n--%s\r\n", alt) != 0 || write_text_part(html, out, err) != 0)
        return -1;
    return mo_buf_appendf(out, err, "\r\n--%s--", alt);
}

static const char *
guess_content_type(const char *filename)
{
    const char *dot = strrchr(filename, '.');

    if (dot != NULL) {
        for (size_t i = 0; i < sizeof(ext_types) / sizeof(ext_types[0]); i++) {
            if (strcasecmp(dot + 1, ext_types[i].ext) == 0)
                return ext_types[i].type;
        }
    }
    return "application/octet-stream";
}

/* A file name that can go in a quoted-string as it is, on a line of 78. */
static bool
filename_is_simple(const char *name, size_t len)
{
    if (len > FILENAME_SIMPLE_MAX || strstr(name, "=?") != NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/*
 * Content-Type with name= (RFC 2047 words inside the quotes when needed, for
 * old clients) and Content-Disposition with filename= or RFC 2231 filename*.
 */
static int
write_attachment(const struct mime_attachment *att, struct mo_buf *out, struct mo_error *err)
{
    const char *ct =
        att->content_type != NULL ? att->content_type : guess_content_type(att->filename);
    size_t len = strlen(att->filename);
    bool is_simple = filename_is_simple(att->filename, len);
    struct mime_fold f;
    struct mo_buf tmp;
    int rc = -1;

    mo_buf_init(&tmp, out->max_bytes);
    if (mime_fold_begin(&f, out, "Content-Type", "attachment", err) != 0 ||
        mo_buf_appendf(&tmp, err, "%s;", ct) != 0 ||
        mime_fold_piece(&f, tmp.data, tmp.len, err) != 0)
        goto out;
    mo_buf_reset(&tmp);
    if (mo_buf_append_str(&tmp, "name=\"", err) != 0)
        goto out;
    if (is_simple ? mo_buf_append(&tmp, att->filename, len, err) != 0
                  : mime_ew_encode(att->filename, len, MIME_EW_MAX, &tmp, err) != 0)
        goto out;
    if (mo_buf_append(&tmp, "\"", 1, err) != 0 ||
        mime_fold_text(&f, tmp.data, tmp.len, false, err) != 0 || mime_fold_end(&f, err) != 0)
        goto out;

    if (mime_fold_begin(&f, out, "Content-Disposition", "attachment", err) != 0 ||
        mime_fold_piece(&f, "attachment;", strlen("attachment;"), err) != 0)
        goto out;
    mo_buf_reset(&tmp);
    if (is_simple) {
        if (mo_buf_appendf(&tmp, err, "filename=\"%s\"", att->filename) != 0 ||
            mime_fold_piece(&f, tmp.data, tmp.len, err) != 0)
            goto out;
    } else if (mime_fold_param_2231(&f, "filename", att->filename, len, false, err) != 0) {
        goto out;
    }
    if (mime_fold_end(&f, err) != 0 ||
        mo_buf_append_str(out, "Content-Transfer-Encoding: base64\r\n\r\n", err) != 0 ||
        mime_base64_encode(att->data, att->len, out, err) != 0)
        goto out;
    rc = 0;
out:
    mo_buf_free(&tmp);
    return rc;
}

static int
write_content(const struct mime_message *msg, const struct body *text, const struct body *html,
              struct mo_buf *out, struct mo_error *err)
{
    char mixed[BOUNDARY_SIZE];

    if (msg->n_attachments == 0) {
        if (write_body(text, html, NULL, out, err) != 0)
            return -1;
    } else {
        if (boundary_new(mixed, text, html, NULL, err) != 0 ||
            write_multipart_header("mixed", mixed, out, err) != 0 ||
            write_body(text, html, mixed, out, err) != 0)
            return -1;
        for (size_t i = 0; i < msg->n_attachments; i++) {
            if (mo_buf_appendf(out, err, "\r\n--%s\r\n", mixed) != 0 ||
                write_attachment(&msg->attachments[i], out, err) != 0)
                return -1;
        }
        if (mo_buf_appendf(out, err, "\r\n--%s--", mixed) != 0)
            return -1;
    }
    if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
        return mo_buf_append(out, "\r\n", 2, err);
    return 0;
}

int
mime_compose(const struct mime_message *msg, struct mo_buf *out, char *message_id_out,
             size_t message_id_size, struct mo_error *err)
{
    struct body text = {.subtype = "plain"};
    struct body html = {.subtype = "html"};
    char id[MESSAGE_ID_MAX];
    size_t start = out->len;
    int rc = -1;

    mo_buf_init(&text.data, out->max_bytes);
    mo_buf_init(&html.data, out->max_bytes);
    if (msg == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "from", "there is no message to compose");
        goto out;
    }
    if (compose_check(msg, err) != 0)
        goto out;
    if (msg->message_id != NULL) {
        snprintf(id, sizeof(id), "%s", msg->message_id); /* length checked above */
    } else {
        const char *domain =
            msg->from->domain_ascii != NULL ? msg->from->domain_ascii : msg->from->domain;
        if (mime_message_id_new(domain, id, sizeof(id), err) != 0)
            goto out;
    }
    if (message_id_out != NULL && strlen(id) >= message_id_size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the Message-ID does not fit in %zu bytes",
                     message_id_size);
        goto out;
    }
    if (body_prepare(&text, msg->text, "text", err) != 0 ||
        body_prepare(&html, msg->html, "html", err) != 0)
        goto out;
    if (!text.is_present && !html.is_present)
        text.is_present = true; /* no body at all: an empty text/plain part */
    if (write_headers(msg, id, out, err) != 0 || write_content(msg, &text, &html, out, err) != 0)
        goto out;
    if (message_id_out != NULL)
        memcpy(message_id_out, id, strlen(id) + 1);
    rc = 0;
out:
    mo_buf_free(&text.data);
    mo_buf_free(&html.data);
    if (rc != 0 && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}
