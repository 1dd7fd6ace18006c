/*
 * util.c - the logger and small helpers shared by every module.
 * The logger is set once at start (STYLE.md "Global state").
 */
#include "common/common.h"

#include <errno.h>
#include <openssl/crypto.h>
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
    va_list ap;

    if (level < log_min_level)
        return;
    fprintf(stderr, "mailout: %s: ", log_level_names[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

char *
mo_strdup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

void
mo_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void
mo_free_secret(char *s)
{
    if (s == NULL)
        return;
    mo_wipe(s, strlen(s));
    free(s);
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
