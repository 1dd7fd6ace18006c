/*
 * fuzz_message_headers.c - libFuzzer target for reading whole messages
 * (mime/headers.c): the header block parser, recipients from To/Cc/Bcc,
 * RFC 2047 decoding and "prepare for submission".
 *
 * Beyond crashes and leaks (ASan, UBSan), it traps when:
 *  - a prepared message holds a bare CR or LF (RFC 5321 2.3.8) or a Bcc field;
 *  - preparing a prepared message again changes it (prepare is idempotent);
 *  - a decoded Subject is not one line of valid UTF-8;
 *  - a From name with a line break (sendmail -F) is not refused.
 * The first input byte picks options; the rest is the message. A From name
 * comes from the message's bytes before its first NUL, if it has one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"
#include "mime/mime_internal.h" /* mime_utf8_valid, mime_find_ctl */

static struct mime_address sender;
static bool sender_ready;

static void
check_crlf_only(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            abort();
        if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
            abort();
    }
}

static void
check_utf8_line(const char *s)
{
    size_t len = strlen(s);

    if (mime_find_ctl(s, len, false) < len || !mime_utf8_valid(s, len))
        abort();
}

static void
exercise_headers(const char *msg, size_t len)
{
    static const char *const names[] = {"To", "Cc", "Bcc"};
    struct mime_headers h;
    struct mime_address *list = NULL;
    size_t n = 0;
    char **locals = NULL;
    size_t n_locals = 0;
    struct mo_error err;

    if (mime_headers_parse(msg, len, &h, &err) != 0)
        return;
    if (h.body_offset > len || h.header_offset > h.body_offset)
        abort();
    for (size_t i = 0; i < h.n; i++) {
        struct mo_buf b;

        if (h.fields[i].offset + h.fields[i].raw_len > len)
            abort();
        if (strpbrk(h.fields[i].value, "\r\n") != NULL)
            abort(); /* unfolded */
        mo_buf_init(&b, 1 << 20);
        if (mime_decode_words(h.fields[i].value, &b, &err) == 0)
            check_utf8_line(mo_buf_cstr(&b));
        mo_buf_free(&b);
    }
    if (mime_headers_addresses(&h, names, 3, "recipient", &list, &n, &locals, &n_locals, &err) ==
        0) {
        mime_address_list_free(list, n);
        for (size_t i = 0; i < n_locals; i++) {
            if (strchr(locals[i], '@') != NULL || strpbrk(locals[i], "\r\n") != NULL)
                abort();
            free(locals[i]);
        }
        free(locals);
    }
    mime_headers_clear(&h);
}

static void
exercise_prepare(const char *msg, size_t len, unsigned flags, const char *from_name)
{
    struct mime_prepare_options opt;
    struct mime_prepared info;
    struct mo_buf out;
    struct mo_buf again;
    struct mo_error err;
    struct mime_headers h;

    memset(&opt, 0, sizeof(opt));
    opt.from = (flags & 1) ? &sender : NULL;
    opt.local_user = (flags & 2) ? "www-data" : NULL;
    opt.from_name = from_name;
    opt.add_date = (flags & 4) != 0;
    opt.date = 1700000000;
    opt.add_message_id = (flags & 8) != 0;
    opt.message_id = (flags & 16) ? "fixed@example.test" : NULL;
    opt.remove_bcc = (flags & 32) != 0;
    opt.encode_8bit = (flags & 64) != 0;
    mo_buf_init(&out, 2 * len + 65536);
    mo_buf_init(&again, 2 * len + 65536);
    if (mime_message_prepare(msg, len, &opt, &out, &info, &err) != 0) {
        if (from_name != NULL && strpbrk(from_name, "\r\n") != NULL &&
            (err.category != MO_ERR_CONFIG || strcmp(err.field, "from_name") != 0))
            abort();
        goto out;
    }
    if (from_name != NULL && strpbrk(from_name, "\r\n") != NULL)
        abort(); /* injection through the name was not refused */
    check_crlf_only(out.data, out.len);
    if (info.subject != NULL)
        check_utf8_line(info.subject);
    if (opt.remove_bcc && mime_headers_parse(out.data, out.len, &h, &err) == 0) {
        if (mime_headers_find(&h, "Bcc") != NULL)
            abort();
        mime_headers_clear(&h);
    }
    /* the same again changes nothing */
    mime_prepared_clear(&info);
    if (mime_message_prepare(out.data, out.len, &opt, &again, &info, &err) != 0)
        abort();
    if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
        abort();
out:
    mime_prepared_clear(&info);
    mo_buf_free(&out);
    mo_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg;
    size_t len;
    const char *nul;
    char *name = NULL;
    unsigned flags;

    if (!sender_ready) {
        if (mime_address_parse("Shop <shop@example.test>", "sender", &sender, NULL) != 0)
            abort();
        sender_ready = true;
    }
    if (size < 1)
        return 0;
    flags = data[0];
    msg = (const char *)data + 1;
    len = size - 1;
    exercise_headers(msg, len);
    exercise_prepare(msg, len, flags, NULL);
    nul = memchr(msg, '\0', len);
    if (nul != NULL && nul - msg < 200) {
        name = strndup(msg, (size_t)(nul - msg));
        if (name != NULL)
            exercise_prepare(nul + 1, len - (size_t)(nul - msg) - 1, flags | 1, name);
        free(name);
    }
    return 0;
}
