/*
 * fuzz_caps.c - libFuzzer target for the EHLO capability parser
 * (RFC 5321 4.1.1.1 and the extensions in caps.c).
 *
 * Builds a struct smtp_reply straight from the input, so the parser sees
 * replies the reply parser would never produce: the first byte picks the
 * code (mostly 250) and whether the text is NUL-terminated inside its array;
 * the rest, split on LF, becomes the lines.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply reply;
    struct smtp_caps caps;
    struct mo_error err;
    size_t n;
    int rc;

    if (size < 1)
        return 0;
    memset(&reply, 0, sizeof(reply));
    reply.code = (data[0] & 0x0f) != 0 ? 250 : 200 + data[0] % 400;
    data++;
    size--;
    /* Bit 4: fill the whole array without a terminating NUL. */
    n = size < sizeof(reply.text) ? size : sizeof(reply.text);
    if (!(data[-1] & 0x10) && n == sizeof(reply.text))
        n--;
    memcpy(reply.text, data, n);
    reply.n_lines = 1;
    for (size_t i = 0; i < n; i++)
        reply.n_lines += reply.text[i] == '\n';

    rc = smtp_caps_parse(&reply, &caps, &err);
    if (rc != (reply.code == 250 ? 0 : -1))
        abort();
    if (rc == 0) {
        if (caps.auth_mechs != 0 && !(caps.flags & SMTP_CAP_AUTH))
            abort();
        if (caps.auth_mechs & ~(((1u << SMTP_AUTH_COUNT) - 1) & ~1u))
            abort();
        if (caps.size_max != 0 && !(caps.flags & SMTP_CAP_SIZE))
            abort();
    } else if (err.category != MO_ERR_PROTOCOL || err.smtp_code != reply.code) {
        abort();
    }
    return 0;
}
