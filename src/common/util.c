/*
 * util.c - the logger and small helpers shared by every module (libc only:
 * the sendmail client links this file alone; secrets are wiped in wipe.c).
 * The logger is set once at start (STYLE.md "Global state").
 */
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum mo_log_level log_min_level = MO_LOG_WARN;
static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void
mo_log_init(enum mo_log_level min_level)
{
    log_min_level = min_level;
}

void
mo_log(enum mo_log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int head, n;

    if (level < log_min_level)
        return;
    /* One write per line: stderr is unbuffered, and lines from threads must not mix. */
    head = snprintf(line, sizeof(line), "mailout: %s: ", log_level_names[level]);
    va_start(ap, fmt);
    n = vsnprintf(line + head, sizeof(line) - (size_t)head - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)head + (size_t)n > sizeof(line) - 2)
        n = (int)(sizeof(line) - 2 - (size_t)head); /* cut: the line goes out shortened */
    line[head + n] = '\n';
    fwrite(line, 1, (size_t)head + (size_t)n + 1, stderr);
}

char *
mo_strdup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int64_t
mo_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mo_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
mo_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    /* strtol skips leading white space and takes a '+': a port or a count doesn't. */
    if (s == NULL || !((*s >= '0' && *s <= '9') || (*s == '-' && min < 0)))
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

bool
mo_ascii_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}
