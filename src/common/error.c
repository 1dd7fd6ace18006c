/*
 * error.c - the one error type (see common.h and STYLE.md "One error type").
 */
#include "common/common.h"

#include <stdio.h>
#include <string.h>

static const char *const category_names[MO_ERR_COUNT] = {
    [MO_ERR_NONE] = "none",         [MO_ERR_CONFIG] = "config",     [MO_ERR_DNS] = "dns",
    [MO_ERR_CONNECT] = "connect",   [MO_ERR_TLS] = "tls",           [MO_ERR_AUTH] = "auth",
    [MO_ERR_PROTOCOL] = "protocol", [MO_ERR_REJECTED] = "rejected", [MO_ERR_STORAGE] = "storage",
    [MO_ERR_INTERNAL] = "internal",
};

void
mo_error_clear(struct mo_error *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
}

void
mo_error_set(struct mo_error *err, enum mo_category category, const char *field, const char *fmt,
             ...)
{
    va_list ap;

    if (err == NULL)
        return;
    mo_error_clear(err);
    err->category = category;
    err->field = field;
    err->temporary = (category == MO_ERR_DNS || category == MO_ERR_CONNECT);
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

void
mo_error_prefix(struct mo_error *err, const char *fmt, ...)
{
    char prefix[MO_ERROR_TEXT_MAX];
    char joined[2 * MO_ERROR_TEXT_MAX + 2];
    size_t n;
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof(joined), "%s: %s", prefix, err->text);
    n = strlen(joined);
    if (n >= sizeof(err->text))
        n = sizeof(err->text) - 1; /* the tail of an over-long text is dropped */
    memcpy(err->text, joined, n);
    err->text[n] = '\0';
}

const char *
mo_category_name(enum mo_category category)
{
    if ((int)category < 0 || category >= MO_ERR_COUNT)
        return "internal";
    return category_names[category];
}
