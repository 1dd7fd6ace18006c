/*
 * buf.c - byte buffers with a hard maximum: an oversized reply or message is
 * an error the caller reports, never an out-of-memory crash.
 */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
mo_buf_init(struct mo_buf *b, size_t max_bytes)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_bytes = max_bytes;
}

void
mo_buf_free(struct mo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
mo_buf_reset(struct mo_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

int
mo_buf_reserve(struct mo_buf *b, size_t extra, struct mo_error *err)
{
    size_t need;
    size_t cap;
    char *p;

    if (extra > b->max_bytes || b->len > b->max_bytes - extra) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "data exceeds the limit of %zu bytes",
                     b->max_bytes);
        return -1;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
mo_buf_append(struct mo_buf *b, const void *data, size_t len, struct mo_error *err)
{
    if (mo_buf_reserve(b, len, err) != 0)
        return -1;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int
mo_buf_append_str(struct mo_buf *b, const char *s, struct mo_error *err)
{
    return mo_buf_append(b, s, strlen(s), err);
}

int
mo_buf_appendf(struct mo_buf *b, struct mo_error *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "format failed");
        return -1;
    }
    if (mo_buf_reserve(b, (size_t)n, err) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
mo_buf_consume(struct mo_buf *b, size_t n)
{
    if (n >= b->len) {
        mo_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

const char *
mo_buf_cstr(const struct mo_buf *b)
{
    return b->data != NULL ? b->data : "";
}
