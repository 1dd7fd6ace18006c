/*
 * fuzz_reply.c - libFuzzer target for the SMTP reply parser (RFC 5321 4.2)
 * and, behind it, the EHLO capability parser.
 *
 * The input is a byte stream as a server might send it: it is split on LF
 * (a CR before the LF is dropped, as the connection does) and fed line by
 * line. Every complete 250 reply also goes through smtp_caps_parse. The
 * invariants of struct smtp_reply are checked after each reply.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

static void
check_reply(const struct smtp_reply *r)
{
    size_t len = strnlen(r->text, sizeof(r->text));
    size_t breaks = 0;

    if (len >= sizeof(r->text) || r->code < 200 || r->code > 599 || r->n_lines == 0 ||
        r->n_lines > SMTP_REPLY_LINES_MAX || strnlen(r->enhanced, sizeof(r->enhanced)) >= 12)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (r->text[i] == '\n')
            breaks++;
        else if ((unsigned char)r->text[i] < 0x20 && r->text[i] != '\t')
            abort();
    }
    if (breaks != r->n_lines - 1)
        abort();
    if (r->enhanced[0] != '\0' && r->enhanced[0] != '0' + r->code / 100)
        abort();
}

static void
check_caps(const struct smtp_caps *c)
{
    if (c->auth_mechs != 0 && !(c->flags & SMTP_CAP_AUTH))
        abort();
    if (c->auth_mechs & ~(((1u << SMTP_AUTH_COUNT) - 1) & ~1u))
        abort();
    if (c->size_max != 0 && !(c->flags & SMTP_CAP_SIZE))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply_parser p;
    struct smtp_reply reply;
    struct smtp_caps caps;
    struct mo_error err;
    size_t start = 0;

    smtp_reply_parser_init(&p);
    while (start <= size) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t end = nl != NULL ? (size_t)(nl - data) : size;
        size_t len = end - start;
        int rc;

        if (len > 0 && data[end - 1] == '\r')
            len--;
        rc = smtp_reply_parse_line(&p, (const char *)data + start, len, &reply, &err);
        if (rc == 1) {
            check_reply(&reply);
            if (reply.code == 250) {
                if (smtp_caps_parse(&reply, &caps, &err) != 0)
                    abort();
                check_caps(&caps);
            } else if (smtp_caps_parse(&reply, &caps, &err) != -1) {
                abort();
            }
        } else if (rc == -1) {
            if (err.category != MO_ERR_PROTOCOL ||
                strnlen(err.text, sizeof(err.text)) >= sizeof(err.text))
                abort();
            smtp_reply_parser_init(&p);
        } else if (rc != 0) {
            abort();
        }
        if (nl == NULL)
            break;
        start = end + 1;
    }
    return 0;
}
