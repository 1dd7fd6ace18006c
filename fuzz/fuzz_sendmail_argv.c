/*
 * fuzz_sendmail_argv.c - libFuzzer target for sendmail mode's command line
 * and the end of its input (src/cli/sendmail.c, its pure part).
 *
 * The input is split on NUL and newline bytes into arguments (at most 64),
 * after an argv[0] of "sendmail", and parsed with sendmail_args_parse. Beyond
 * crashes and leaks (ASan, UBSan), it traps when:
 *  - the status is not 0, EX_USAGE or EX_DATAERR, or a failure has no reason,
 *    or the reason is not one line;
 *  - an accepted -f or -F holds a CR or LF (header injection);
 *  - a recipient is not one of the arguments;
 * and, on the raw bytes, when sendmail_input_end finds a different end fed in
 * two pieces than fed whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SENDMAIL_PURE_ONLY
#include "cli/sendmail.c"

#define MAX_ARGS 64

static void
exercise_args(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char *argv[MAX_ARGS + 2];
    int argc = 1;
    struct sendmail_args a;
    char why[256];
    size_t start = 0;
    int st;

    if (copy == NULL)
        return;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[0] = (char *)"sendmail";
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
        if (i == size || copy[i] == '\0' || copy[i] == '\n') {
            copy[i] = '\0';
            argv[argc++] = copy + start;
            start = i + 1;
        }
    }
    argv[argc] = NULL;
    st = sendmail_args_parse(argc, argv, &a, why, sizeof(why));
    if (st != 0) {
        if ((st != EX_USAGE && st != EX_DATAERR) || why[0] == '\0' || strpbrk(why, "\r\n") != NULL)
            abort();
    } else {
        if ((a.from != NULL && strpbrk(a.from, "\r\n") != NULL) ||
            (a.full_name != NULL && strpbrk(a.full_name, "\r\n") != NULL))
            abort();
        for (size_t k = 0; k < a.n_rcpts; k++) {
            bool found = false;

            for (int j = 1; j < argc && !found; j++)
                found = a.rcpts[k] == argv[j];
            if (!found)
                abort();
        }
    }
    sendmail_args_clear(&a);
    free(copy);
}

static void
exercise_input_end(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t scan = 0;
    size_t end_whole = 0;
    size_t end_split = 0;
    bool whole = sendmail_input_end(s, size, &scan, &end_whole);
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    bool split;

    scan = 0;
    split = sendmail_input_end(s, cut, &scan, &end_split);
    if (!split)
        split = sendmail_input_end(s, size, &scan, &end_split);
    if (whole != split || (whole && end_whole != end_split) || (whole && end_whole >= size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    exercise_args(data, size);
    exercise_input_end(data, size);
    return 0;
}
