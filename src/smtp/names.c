/*
 * names.c - the small tables of the smtp module: security modes, default
 * timeouts (RFC 5321 4.5.3.2) and result cleanup.
 */
#include "smtp/smtp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const security_names[SMTP_SECURITY_COUNT] = {
    [SMTP_SECURITY_STARTTLS] = "starttls",
    [SMTP_SECURITY_TLS] = "tls",
    [SMTP_SECURITY_NONE] = "none",
};

const char *
smtp_security_name(enum smtp_security security)
{
    if ((int)security < 0 || security >= SMTP_SECURITY_COUNT)
        return "?";
    return security_names[security];
}

int
smtp_security_parse(const char *name, enum smtp_security *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < SMTP_SECURITY_COUNT; i++) {
        if (strcasecmp(name, security_names[i]) == 0) {
            *out = (enum smtp_security)i;
            return 0;
        }
    }
    /* What other tools and the providers' help pages call implicit TLS. */
    if (strcasecmp(name, "ssl") == 0 || strcasecmp(name, "ssl/tls") == 0 ||
        strcasecmp(name, "implicit") == 0) {
        *out = SMTP_SECURITY_TLS;
        return 0;
    }
    return -1;
}

void
smtp_timeouts_default(struct smtp_timeouts *t)
{
    t->connect_ms = 30 * 1000;
    t->greeting_ms = 5 * 60 * 1000;
    t->command_ms = 5 * 60 * 1000;
    t->mail_ms = 5 * 60 * 1000;
    t->rcpt_ms = 5 * 60 * 1000;
    t->data_init_ms = 2 * 60 * 1000;
    t->data_block_ms = 3 * 60 * 1000;
    t->data_term_ms = 10 * 60 * 1000;
}

static void
cap_one(int *v, int max_ms)
{
    if (*v > max_ms)
        *v = max_ms;
}

void
smtp_timeouts_cap(struct smtp_timeouts *t, int max_ms)
{
    cap_one(&t->connect_ms, max_ms);
    cap_one(&t->greeting_ms, max_ms);
    cap_one(&t->command_ms, max_ms);
    cap_one(&t->mail_ms, max_ms);
    cap_one(&t->rcpt_ms, max_ms);
    cap_one(&t->data_init_ms, max_ms);
    cap_one(&t->data_block_ms, max_ms);
    cap_one(&t->data_term_ms, max_ms);
}

void
smtp_send_result_clear(struct smtp_send_result *res)
{
    if (res == NULL)
        return;
    free(res->rcpts);
    memset(res, 0, sizeof(*res));
}
