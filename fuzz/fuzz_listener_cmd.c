/*
 * fuzz_listener_cmd.c - libFuzzer target for the submission listener's
 * command parser (src/listener/parse.c): every line a client may send, and
 * the AUTH payload decoders behind it.
 *
 * The input is a byte stream as a client might send it: split on LF (a CR
 * before the LF dropped, as the session does), each line parsed. Checked
 * after each line: a success has no reply code, a known verb, and, for
 * MAIL/RCPT, a mailbox within RFC 5321's lengths, without blanks or control
 * bytes, valid UTF-8, flagged non-ASCII exactly when it is; a failure has
 * one of the codes the session may send (500, 501, 504, 555) with an
 * enhanced code of the same class and a text. Each line also goes through
 * the base64 decoder, the PLAIN splitter and the listening-address parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "listener/listener_internal.h"

static struct listener_cmd cmd; /* large: kept out of the stack */

static void
check_cmd(int rc)
{
    size_t alen;

    if (rc != 0) {
        if ((cmd.code != 500 && cmd.code != 501 && cmd.code != 504 && cmd.code != 555) ||
            cmd.enhanced == NULL || cmd.enhanced[0] != '5' || cmd.text == NULL ||
            cmd.text[0] == '\0')
            abort();
        return;
    }
    if (cmd.code != 0 || cmd.verb <= LISTENER_VERB_UNKNOWN || cmd.verb >= LISTENER_VERB_COUNT)
        abort();
    if (strnlen(cmd.arg, sizeof(cmd.arg)) >= sizeof(cmd.arg) ||
        strnlen(cmd.auth_initial, sizeof(cmd.auth_initial)) >= sizeof(cmd.auth_initial))
        abort();
    alen = strnlen(cmd.address, sizeof(cmd.address));
    if (alen + 2 > LISTENER_PATH_MAX)
        abort();
    if (cmd.verb != LISTENER_VERB_MAIL && cmd.verb != LISTENER_VERB_RCPT) {
        if (alen != 0 || cmd.has_size || cmd.smtputf8 || cmd.body != LISTENER_BODY_NONE)
            abort();
        return;
    }
    if (cmd.verb == LISTENER_VERB_RCPT && (alen == 0 || cmd.has_size || cmd.smtputf8))
        abort();
    if ((alen == 0) != cmd.is_null_path || (alen > 0 && strchr(cmd.address, '@') == NULL))
        abort();
    if (!listener_utf8_valid(cmd.address, alen))
        abort();
    {
        bool high = false;

        for (size_t i = 0; i < alen; i++) {
            unsigned char c = (unsigned char)cmd.address[i];

            if (c < 0x20 || c == 0x7f)
                abort();
            if (c == ' ' && cmd.address[0] != '"')
                abort();
            high = high || c >= 0x80;
        }
        if (high != cmd.address_is_utf8)
            abort();
    }
}

static void
check_auth(const uint8_t *p, size_t len)
{
    unsigned char out[LISTENER_AUTH_LINE_MAX];
    size_t out_len = 0;
    const char *user = NULL;
    const char *pass = NULL;

    if (listener_b64_decode((const char *)p, len, out, sizeof(out) - 1, &out_len) != 0)
        return;
    if (out_len > sizeof(out) - 1 || out_len > len)
        abort();
    out[out_len] = '\0';
    if (listener_plain_split(out, out_len, &user, &pass) == 0) {
        if (user[0] == '\0' || pass[0] == '\0' || (const unsigned char *)pass > out + out_len)
            abort();
    }
}

static void
check_listen(const uint8_t *p, size_t len)
{
    char text[128];
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    bool loopback = false;
    struct mo_error err;

    if (len >= sizeof(text) || memchr(p, '\0', len) != NULL)
        return;
    memcpy(text, p, len);
    text[len] = '\0';
    if (listener_listen_parse(text, &ss, &sl, &loopback, &err) == 0) {
        if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) || sl == 0)
            abort();
    } else if (err.category != MO_ERR_CONFIG) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t start = 0;

    while (start <= size) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t end = nl != NULL ? (size_t)(nl - data) : size;
        size_t len = end - start;

        if (len > 0 && data[end - 1] == '\r')
            len--;
        check_cmd(listener_cmd_parse((const char *)data + start, len, &cmd));
        check_auth(data + start, len);
        check_listen(data + start, len);
        if (nl == NULL)
            break;
        start = end + 1;
    }
    return 0;
}
