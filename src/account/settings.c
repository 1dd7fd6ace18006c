/*
 * settings.c - owning an account's settings: clearing (the password wiped)
 * and deep copies.
 *
 * Why a file of its own: every part of the account module and every front end
 * holds settings, and the password in them must leave memory the same way
 * everywhere (mo_free_secret). Leaves out: checking the values (validate.c).
 */
#include <stdlib.h>
#include <string.h>

#include "account/account.h"

void
account_settings_clear(struct account_settings *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->provider_id);
    free(s->email);
    free(s->username);
    mo_free_secret(s->password);
    free(s->sender);
    free(s->sender_name);
    free(s->host);
    free(s->ca_file);
    memset(s, 0, sizeof(*s));
}

/* Copies src into *dst (NULL stays NULL). 0 ok, -1 out of memory. */
static int
copy_string(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst != NULL ? 0 : -1;
}

int
account_settings_copy(struct account_settings *dst, const struct account_settings *src,
                      struct mo_error *err)
{
    struct account_settings tmp;
    int rc = -1;

    memset(&tmp, 0, sizeof(tmp));
    tmp.port = src->port;
    tmp.security = src->security;
    tmp.has_security = src->has_security;
    tmp.auth = src->auth;
    tmp.no_login = src->no_login;
    tmp.timeout_s = src->timeout_s;
    if (copy_string(&tmp.name, src->name) != 0 ||
        copy_string(&tmp.provider_id, src->provider_id) != 0 ||
        copy_string(&tmp.email, src->email) != 0 ||
        copy_string(&tmp.username, src->username) != 0 ||
        copy_string(&tmp.password, src->password) != 0 ||
        copy_string(&tmp.sender, src->sender) != 0 ||
        copy_string(&tmp.sender_name, src->sender_name) != 0 ||
        copy_string(&tmp.host, src->host) != 0 || copy_string(&tmp.ca_file, src->ca_file) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory copying the account settings");
        goto out;
    }
    *dst = tmp;
    memset(&tmp, 0, sizeof(tmp));
    rc = 0;
out:
    account_settings_clear(&tmp);
    return rc;
}
