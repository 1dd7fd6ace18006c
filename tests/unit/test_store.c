/*
 * test_store.c - the account store: passwords survive a round trip byte for
 * byte, never reach the database file in clear, are bound to their account,
 * and the key file is private.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/account.h"

static char home[256];

static int
make_home(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mailout-test-store-XXXXXX");
    return mkdtemp(home) != NULL ? 0 : -1;
}

static int
remove_home(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

/* True when needle occurs anywhere in the file (the database and its WAL). */
static bool
file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    size_t n = strlen(needle);
    char *data;
    long size;
    bool found = false;

    if (f == NULL)
        return false;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)size + 1);
    if (data != NULL && fread(data, 1, (size_t)size, f) == (size_t)size)
        for (long i = 0; i + (long)n <= size && !found; i++)
            found = memcmp(data + i, needle, n) == 0;
    free(data);
    fclose(f);
    return found;
}

static void
test_passwords_round_trip(void **state)
{
    static const char *const passwords[] = {
        "123456",                 /* digits only: the seed's panel refused this */
        "9abc1",                  /* digits at both ends */
        "pass word with spaces",  /* spaces inside */
        " leading and trailing ", /* kept exactly */
        "quote\"back\\slash'",    /* quoting characters */
        "pässwörd-ünïcode-密码",  /* UTF-8 */
    };
    struct account_store *st = NULL;
    struct mo_error err;
    char path[300];
    (void)state;

    assert_int_equal(account_store_open(home, &st, &err), 0);
    for (size_t i = 0; i < sizeof(passwords) / sizeof(passwords[0]); i++) {
        struct account_settings s = {0};
        struct account_settings got = {0};
        char name[32];

        snprintf(name, sizeof(name), "acct%zu", i);
        s.name = name;
        s.email = "shop@example.test";
        s.host = "smtp.example.test";
        s.port = 587;
        s.password = (char *)passwords[i];
        assert_int_equal(account_store_put(st, &s, &err), 0);
        assert_int_equal(account_store_get(st, name, true, &got, &err), 0);
        assert_string_equal(got.password, passwords[i]);
        assert_string_equal(got.email, "shop@example.test");
        assert_int_equal(got.port, 587);
        assert_true(account_store_has_password(st, name));
        account_settings_clear(&got);

        /* Without the secret, nothing of it is loaded. */
        assert_int_equal(account_store_get(st, name, false, &got, &err), 0);
        assert_null(got.password);
        account_settings_clear(&got);
    }
    account_store_close(st);

    for (size_t i = 0; i < sizeof(passwords) / sizeof(passwords[0]); i++) {
        snprintf(path, sizeof(path), "%s/mailout.db", home);
        assert_false(file_contains(path, passwords[i]));
        snprintf(path, sizeof(path), "%s/mailout.db-wal", home);
        assert_false(file_contains(path, passwords[i]));
    }
}

static void
test_update_keeps_password(void **state)
{
    struct account_store *st = NULL;
    struct account_settings s = {0};
    struct account_settings got = {0};
    struct mo_error err;
    (void)state;

    assert_int_equal(account_store_open(home, &st, &err), 0);
    s.name = "keep";
    s.email = "a@example.test";
    s.password = "first-secret";
    assert_int_equal(account_store_put(st, &s, &err), 0);
    s.password = NULL; /* an update without a password keeps the stored one */
    s.sender = "b@example.test";
    assert_int_equal(account_store_put(st, &s, &err), 0);
    assert_int_equal(account_store_get(st, "keep", true, &got, &err), 0);
    assert_string_equal(got.password, "first-secret");
    assert_string_equal(got.sender, "b@example.test");
    account_settings_clear(&got);
    account_store_close(st);
}

static void
test_key_file_private_and_binding(void **state)
{
    struct account_store *st = NULL;
    struct account_settings s = {0};
    struct account_settings got = {0};
    struct mo_error err;
    struct stat sb;
    char path[300];
    sqlite3 *db = NULL;
    (void)state;

    assert_int_equal(account_store_open(home, &st, &err), 0);
    s.email = "a@example.test";
    s.name = "one";
    s.password = "secret-one";
    assert_int_equal(account_store_put(st, &s, &err), 0);
    s.name = "two";
    s.password = "secret-two";
    assert_int_equal(account_store_put(st, &s, &err), 0);
    account_store_close(st);

    snprintf(path, sizeof(path), "%s/secret.key", home);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* Copy account one's sealed password onto account two: it must not open. */
    snprintf(path, sizeof(path), "%s/mailout.db", home);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE accounts SET password_nonce = (SELECT password_nonce "
                                  "FROM accounts WHERE name = 'one'), password_box = (SELECT "
                                  "password_box FROM accounts WHERE name = 'one') WHERE name = "
                                  "'two'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(account_store_open(home, &st, &err), 0);
    assert_int_equal(account_store_get(st, "two", true, &got, &err), -1);
    assert_int_equal(err.category, MO_ERR_STORAGE);
    assert_string_equal(err.field, "password");
    assert_null(strstr(err.text, "secret-one"));
    assert_null(strstr(err.text, "secret-two"));
    account_store_close(st);
}

static void
test_list_remove_and_missing(void **state)
{
    struct account_store *st = NULL;
    struct account_settings s = {0};
    struct account_settings got = {0};
    struct mo_error err;
    char **names = NULL;
    size_t n = 0;
    bool found = false;
    (void)state;

    assert_int_equal(account_store_open(home, &st, &err), 0);
    s.name = "zz-last";
    s.email = "z@example.test";
    assert_int_equal(account_store_put(st, &s, &err), 0);
    assert_int_equal(account_store_list(st, &names, &n, &err), 0);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(strcmp(names[i - 1], names[i]) < 0);
        found |= strcmp(names[i], "zz-last") == 0;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    assert_true(found);
    assert_int_equal(account_store_record_check(st, "zz-last", "{\"ok\":true}", "id@x", &err), 0);
    {
        char *outcome = NULL, *mid = NULL;
        int64_t when = 0;
        assert_int_equal(account_store_last_check(st, "zz-last", &outcome, &mid, &when, &err), 0);
        assert_string_equal(outcome, "{\"ok\":true}");
        assert_string_equal(mid, "id@x");
        assert_true(when > 0);
        free(outcome);
        free(mid);
    }
    assert_int_equal(account_store_remove(st, "zz-last", &err), 0);
    assert_int_equal(account_store_remove(st, "zz-last", &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_int_equal(account_store_get(st, "zz-last", false, &got, &err), -1);
    assert_string_equal(err.field, "name");
    account_store_close(st);
}

static void
test_unwritable_home(void **state)
{
    struct account_store *st = NULL;
    struct mo_error err;
    (void)state;

    assert_int_equal(account_store_open("/proc/mailout-cannot-exist", &st, &err), -1);
    assert_null(st);
    assert_int_equal(err.category, MO_ERR_STORAGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passwords_round_trip),
        cmocka_unit_test(test_update_keeps_password),
        cmocka_unit_test(test_key_file_private_and_binding),
        cmocka_unit_test(test_list_remove_and_missing),
        cmocka_unit_test(test_unwritable_home),
    };
    return cmocka_run_group_tests(tests, make_home, remove_home);
}
