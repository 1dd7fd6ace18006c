/*
 * fuzz_validate.c - libFuzzer target for account validation (account
 * module, validate.c and settings.c).
 *
 * The input is split on '\n' into the form's fields, in this order: email,
 * username, password, sender, sender_name, host, port, security, provider
 * id; a missing field stays unset ("not typed"). The port goes through
 * mo_parse_long, the security through smtp_security_parse, as a front end
 * would. account_validate then runs twice (the second time on its own
 * output). Beyond crashes and leaks (ASan, UBSan), it traps when:
 *   - the error count disagrees with the issues;
 *   - a message is empty, unterminated or holds a line break;
 *   - a second validation finds errors the first did not, or changes the
 *     normalised values (validation must be idempotent);
 *   - a password that was not an app password in groups was changed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"

#define FIELDS 9

static void
check_issues(const struct account_issues *is, size_t errors)
{
    size_t n_err = 0;

    if (is->n > ACCOUNT_ISSUES_MAX || errors != is->n_errors)
        abort();
    for (size_t i = 0; i < is->n; i++) {
        const struct account_issue *it = &is->items[i];
        if (it->field == NULL || memchr(it->message, '\0', sizeof(it->message)) == NULL ||
            it->message[0] == '\0' || strpbrk(it->message, "\r\n") != NULL)
            abort();
        n_err += it->is_error;
    }
    /* When the list overflowed, errors are kept first: none may be missing then. */
    if (n_err > is->n_errors || (is->n < ACCOUNT_ISSUES_MAX && n_err != is->n_errors))
        abort();
}

static bool
same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char *field[FIELDS] = {NULL};
    struct account_settings s, again;
    struct account_issues is, is2;
    const struct account_provider *p = NULL;
    char *original_password = NULL;
    size_t errors;
    long port;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    {
        char *c = text;
        for (size_t i = 0; i < FIELDS && c != NULL; i++) {
            char *nl = strchr(c, '\n');
            field[i] = c;
            if (nl != NULL)
                *nl = '\0';
            c = nl != NULL ? nl + 1 : NULL;
        }
    }
    memset(&s, 0, sizeof(s));
    s.email = field[0] ? strdup(field[0]) : NULL;
    s.username = field[1] ? strdup(field[1]) : NULL;
    s.password = field[2] ? strdup(field[2]) : NULL;
    s.sender = field[3] ? strdup(field[3]) : NULL;
    s.sender_name = field[4] ? strdup(field[4]) : NULL;
    s.host = field[5] ? strdup(field[5]) : NULL;
    if (field[6] != NULL && mo_parse_long(field[6], 0, 99999, &port) == 0)
        s.port = (unsigned)port;
    if (field[7] != NULL && smtp_security_parse(field[7], &s.security) == 0)
        s.has_security = true;
    if (field[8] != NULL) {
        p = account_provider_find(field[8]);
        s.provider_id = p == NULL ? strdup(field[8]) : NULL; /* unknown ids: validate says so */
    }
    original_password = field[2] ? strdup(field[2]) : NULL;

    errors = account_validate(&s, p, &is);
    check_issues(&is, errors);
    /* A password changes only by losing the spaces of an app password shown in groups. */
    if (original_password != NULL && s.password != NULL &&
        strcmp(original_password, s.password) != 0) {
        if (strlen(s.password) != 16 || strlen(original_password) <= 16)
            abort();
    }
    if (account_settings_copy(&again, &s, NULL) != 0)
        abort();
    check_issues(&is2, account_validate(&again, p, &is2));
    if (is2.n_errors > is.n_errors || !same(again.email, s.email) ||
        !same(again.username, s.username) || !same(again.password, s.password) ||
        !same(again.sender, s.sender) || !same(again.host, s.host) || again.port != s.port ||
        again.security != s.security)
        abort();
    account_settings_clear(&again);
    account_settings_clear(&s);
    free(original_password);
    free(text);
    return 0;
}
