/*
 * fuzz_api_body.c - libFuzzer target for what clients send to the HTTP API
 * (admin module), without the queue.
 *
 * The input is parsed twice: as the JSON body of POST /api/v1/messages
 * (admin_message_parse, then admin_message_build with the composer) and as a
 * raw message for POST /api/v1/messages/raw (admin_raw_prepare). Beyond
 * crashes and leaks (ASan, UBSan), it traps when:
 *  - a body that passed validation is refused by the composer for anything
 *    but its size (validation must name every problem itself);
 *  - an accepted message would carry a CR or LF in a header value, an
 *    envelope address, or a Bcc header, or has a bare LF (header injection,
 *    hidden recipients shown, broken SMTP);
 *  - a refused input comes back without a single error, or with an error
 *    whose field or message is empty where the table promises them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_internal.h"

#define MAX_MESSAGE_BYTES (1u << 20)

static void
check(bool ok)
{
    if (!ok)
        abort();
}

static bool
has_line_break(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

/* Every LF is preceded by CR; no header line of the header block is a Bcc. */
static void
check_message(const char *data, size_t len)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    size_t header_len = end != NULL ? (size_t)(end - data) + 2 : len;

    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n')
            check(i > 0 && data[i - 1] == '\r');
    for (size_t i = 0; i < header_len; i++) {
        if (i == 0 || data[i - 1] == '\n')
            check(strncasecmp(data + i, "Bcc:", 4) != 0);
    }
}

static void
check_envelope(const struct queue_new_message *qm)
{
    check(qm->from != NULL && !has_line_break(qm->from));
    check(qm->n_rcpts > 0 && qm->n_rcpts <= ADMIN_MAX_RECIPIENTS);
    for (size_t i = 0; i < qm->n_rcpts; i++)
        check(qm->rcpts[i] != NULL && qm->rcpts[i][0] != '\0' && !has_line_break(qm->rcpts[i]));
    check(!has_line_break(qm->message_id));
    check(qm->data != NULL && qm->len > 0);
    check_message(qm->data, qm->len);
}

static void
check_errors(const struct admin_errors *errs)
{
    check(errs->n > 0);
    for (size_t i = 0; i < errs->n; i++)
        check(errs->items[i].message[0] != '\0');
}

static void
fuzz_json(const uint8_t *data, size_t size, const struct mime_address *fallback)
{
    struct admin_arena *a = admin_arena_new();
    struct admin_errors *errs = malloc(sizeof(*errs));
    struct admin_message m;
    struct queue_new_message qm;
    struct mo_error err;

    if (a == NULL || errs == NULL)
        goto out;
    memset(errs, 0, sizeof(*errs));
    if (admin_message_parse((const char *)data, size, a, &m, errs) != 0) {
        check_errors(errs);
        goto out;
    }
    check(errs->n == 0 && m.subject != NULL && !has_line_break(m.subject));
    check(m.n_to + m.n_cc + m.n_bcc > 0);
    for (size_t i = 0; i < m.n_headers; i++)
        check(!has_line_break(m.headers[i].name) && !has_line_break(m.headers[i].value));
    for (size_t i = 0; i < m.n_attachments; i++)
        check(m.attachments[i].filename != NULL && !has_line_break(m.attachments[i].filename));
    mo_error_clear(&err);
    if (admin_message_build(&m, m.has_from ? &m.from : fallback, MAX_MESSAGE_BYTES, a, &qm, errs,
                            &err) != 0) {
        /* only the size may stop a validated body; an empty errs is an internal failure */
        if (errs->n == 0)
            check(err.category == MO_ERR_INTERNAL);
        else
            check(errs->n == 1 && errs->items[0].field[0] == '\0' &&
                  strstr(errs->items[0].message, "larger than") != NULL);
        goto out;
    }
    check_envelope(&qm);
out:
    admin_arena_free(a);
    free(errs);
}

static void
fuzz_raw(const uint8_t *data, size_t size, const struct mime_address *fallback)
{
    struct admin_arena *a = admin_arena_new();
    struct admin_errors *errs = malloc(sizeof(*errs));
    struct admin_raw_request req;
    struct queue_new_message qm;
    struct mo_error err;

    if (a == NULL || errs == NULL)
        goto out;
    memset(errs, 0, sizeof(*errs));
    memset(&req, 0, sizeof(req));
    mo_error_clear(&err);
    if (admin_raw_prepare((const char *)data, size, &req, fallback, MAX_MESSAGE_BYTES, a, &qm, errs,
                          &err) != 0) {
        if (errs->n == 0)
            check(err.category == MO_ERR_INTERNAL);
        else
            check_errors(errs);
        goto out;
    }
    check_envelope(&qm);
out:
    admin_arena_free(a);
    free(errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mime_address fallback;
    static bool ready;
    struct mo_error err;

    if (!ready) {
        if (mime_address_parse("Shop <shop@example.test>", "from", &fallback, &err) != 0)
            abort();
        ready = true;
    }
    fuzz_json(data, size, &fallback);
    fuzz_raw(data, size, &fallback);
    return 0;
}
