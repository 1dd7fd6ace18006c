/*
 * sandbox_account.c - accounts that deliver into the sandbox: the one the
 * first command makes, and keeping their port in step with `mailout serve`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"
#include "sandbox/sandbox.h"

int
sandbox_account_settings(const char *home, const char *name, const char *email,
                         struct account_settings *s, struct mo_error *err)
{
    char password[64];
    char cert[4096];
    int rc = -1;

    memset(s, 0, sizeof(*s));
    if (sandbox_prepare(home, err) != 0 ||
        sandbox_password(home, password, sizeof(password), err) != 0)
        goto out;
    if (sandbox_path(home, "cert.pem", cert, sizeof(cert)) != 0) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
        goto out;
    }
    s->name = strdup(name);
    s->provider_id = strdup(SANDBOX_PROVIDER_ID);
    s->email = strdup(email != NULL ? email : SANDBOX_ACCOUNT_EMAIL);
    s->username = strdup("sandbox");
    s->password = strdup(password);
    s->host = strdup("127.0.0.1");
    s->ca_file = strdup(cert);
    s->sender_name = strdup("Test shop");
    s->port = sandbox_port_read(home);
    s->security = SMTP_SECURITY_STARTTLS;
    s->has_security = true;
    if (s->name == NULL || s->provider_id == NULL || s->email == NULL || s->username == NULL ||
        s->password == NULL || s->host == NULL || s->ca_file == NULL || s->sender_name == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = 0;
out:
    mo_wipe(password, sizeof(password));
    if (rc != 0)
        account_settings_clear(s);
    return rc;
}

/* Validates s against the sandbox row and saves it. */
static int
save(struct account_store *st, struct account_settings *s, struct mo_error *err)
{
    struct account_issues issues;

    if (account_validate(s, account_provider_find(SANDBOX_PROVIDER_ID), &issues) > 0) {
        for (size_t i = 0; i < issues.n; i++)
            if (issues.items[i].is_error) {
                mo_error_set(err, MO_ERR_CONFIG, issues.items[i].field, "sandbox account: %s",
                             issues.items[i].message);
                return -1;
            }
    }
    return account_store_put(st, s, err);
}

int
sandbox_account_ensure(const char *home, bool *created, struct mo_error *err)
{
    struct account_store *st = NULL;
    struct account_settings s;
    char **names = NULL;
    size_t n = 0;
    int rc = -1;

    memset(&s, 0, sizeof(s));
    *created = false;
    if (account_store_open(home, &st, err) != 0 || account_store_list(st, &names, &n, err) != 0)
        goto out;
    if (n > 0) {
        rc = 0;
        goto out;
    }
    if (sandbox_account_settings(home, "default", NULL, &s, err) != 0 || save(st, &s, err) != 0)
        goto out;
    *created = true;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    account_settings_clear(&s);
    account_store_close(st);
    return rc;
}

int
sandbox_accounts_update(const char *home, unsigned port, struct mo_error *err)
{
    struct account_store *st = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc = -1;

    if (account_store_open(home, &st, err) != 0 || account_store_list(st, &names, &n, err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct account_settings old;
        struct account_settings s;
        int r;

        memset(&old, 0, sizeof(old));
        if (account_store_get(st, names[i], false, &old, NULL) != 0)
            continue;
        if (old.provider_id == NULL || strcmp(old.provider_id, SANDBOX_PROVIDER_ID) != 0 ||
            (old.port == port && old.ca_file != NULL)) {
            account_settings_clear(&old);
            continue;
        }
        r = sandbox_account_settings(home, names[i], old.email, &s, err);
        account_settings_clear(&old);
        if (r != 0)
            goto out;
        s.port = port;
        r = save(st, &s, err);
        account_settings_clear(&s);
        if (r != 0)
            goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    account_store_close(st);
    return rc;
}
