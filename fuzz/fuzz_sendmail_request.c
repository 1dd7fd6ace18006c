/*
 * fuzz_sendmail_request.c - libFuzzer target for the request that
 * mailout-sendmail writes to the service's socket (src/cli/sendmail_client.c,
 * sendmail_request_read).
 *
 * The input goes through a pipe (at most 60,000 bytes, under the pipe's
 * buffer) to sendmail_request_read. Beyond crashes and leaks (ASan, UBSan),
 * it traps when:
 *  - the status is neither 0 nor EX_PROTOCOL, or a refusal has no reason;
 *  - an accepted request's arguments are not, in order, the NUL-terminated
 *    strings after the 41-byte header, their count and bytes as it says;
 *  - what follows the arguments (the message) was read too (the service
 *    reads it next, from the same descriptor).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/sendmail_client.c"

#define MAX_INPUT 60000

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];
    int argc = 0;
    char **argv = NULL;
    char why[256] = "";
    int st;

    if (size > MAX_INPUT || pipe(fds) != 0)
        return 0;
    if (write(fds[1], data, size) != (ssize_t)size)
        __builtin_trap();
    close(fds[1]);
    st = sendmail_request_read(fds[0], &argc, &argv, why, sizeof(why));
    if (st != 0) {
        if (st != EX_PROTOCOL || why[0] == '\0' || argv != NULL || argc != 0)
            __builtin_trap();
    } else {
        size_t pos = HEADER_LEN;
        char rest;

        if (argc < 1 || argv == NULL || argv[argc] != NULL)
            __builtin_trap();
        for (int i = 0; i < argc; i++) {
            size_t len = strlen(argv[i]);
            if (pos + len + 1 > size || memcmp(data + pos, argv[i], len + 1) != 0)
                __builtin_trap();
            pos += len + 1;
        }
        /* the message starts right after the arguments and is still unread */
        if ((pos < size) != (read(fds[0], &rest, 1) == 1) ||
            (pos < size && rest != (char)data[pos]))
            __builtin_trap();
        for (int i = 0; i < argc; i++)
            free(argv[i]);
        free(argv);
    }
    close(fds[0]);
    return 0;
}
