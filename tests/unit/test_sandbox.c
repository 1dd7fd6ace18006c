/*
 * test_sandbox.c - unit tests of the sandbox's files (src/sandbox/sandbox.c): fault names,
 * the fault switch and its count-down, letters kept, listed (header values, newest first),
 * read back and deleted, ids that could name another file, and the certificate made on
 * first use (self-signed, P-256, SAN 127.0.0.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

static char home[256];

static int
setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mailout-test-sandbox-XXXXXX");
    assert_non_null(mkdtemp(home));
    assert_int_equal(sandbox_prepare(home, NULL), 0);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void
test_fault_names(void **state)
{
    enum sandbox_fault_kind k;

    (void)state;
    for (int i = 0; i < SANDBOX_FAULT_COUNT; i++) {
        assert_int_equal(sandbox_fault_parse(sandbox_fault_name((enum sandbox_fault_kind)i), &k),
                         0);
        assert_int_equal(k, i);
    }
    assert_int_equal(sandbox_fault_parse("off", &k), 0);
    assert_int_equal(k, SANDBOX_FAULT_NONE);
    assert_int_equal(sandbox_fault_parse("auth-536", &k), -1);
    assert_int_equal(sandbox_fault_parse(NULL, &k), -1);
}

static void
test_fault_next_counts_down(void **state)
{
    struct sandbox_fault f = {.kind = SANDBOX_FAULT_AUTH_534, .is_share = false, .value = 2};
    struct sandbox_fault got;

    (void)state;
    assert_int_equal(sandbox_fault_set(home, &f, NULL), 0);
    sandbox_fault_get(home, &got);
    assert_int_equal(got.kind, SANDBOX_FAULT_AUTH_534);
    assert_int_equal(got.value, 2);
    assert_int_equal(sandbox_fault_draw(home), SANDBOX_FAULT_AUTH_534);
    assert_int_equal(sandbox_fault_draw(home), SANDBOX_FAULT_AUTH_534);
    assert_int_equal(sandbox_fault_draw(home), SANDBOX_FAULT_NONE);
    sandbox_fault_get(home, &got);
    assert_int_equal(got.kind, SANDBOX_FAULT_NONE);
}

static void
test_fault_share(void **state)
{
    struct sandbox_fault f = {.kind = SANDBOX_FAULT_STALL, .is_share = true, .value = 100};
    struct sandbox_fault off = {.kind = SANDBOX_FAULT_NONE};

    (void)state;
    assert_int_equal(sandbox_fault_set(home, &f, NULL), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(sandbox_fault_draw(home), SANDBOX_FAULT_STALL);
    assert_int_equal(sandbox_fault_set(home, &off, NULL), 0);
    assert_int_equal(sandbox_fault_draw(home), SANDBOX_FAULT_NONE);
}

static void
test_letters(void **state)
{
    static const char a[] = "From: A <a@example.test>\r\nTo: b@example.test\r\nSubject: first\r\n"
                            "\r\nSubject: not a header\r\n";
    static const char b[] = "Subject: folded\r\n line\r\nFrom: c@example.test\r\n\r\nbody\r\n";
    char id_a[SANDBOX_ID_MAX];
    char id_b[SANDBOX_ID_MAX];
    struct sandbox_letter *v = NULL;
    size_t n = 0;
    char *data = NULL;
    size_t len = 0;
    struct mo_error err;

    (void)state;
    assert_int_equal(sandbox_store(home, a, sizeof(a) - 1, id_a, NULL), 0);
    usleep(2000);
    assert_int_equal(sandbox_store(home, b, sizeof(b) - 1, id_b, NULL), 0);
    assert_int_equal(sandbox_list(home, &v, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, id_b); /* newest first */
    assert_string_equal(v[0].subject, "folded line");
    assert_string_equal(v[1].subject, "first");
    assert_string_equal(v[1].from, "A <a@example.test>");
    assert_string_equal(v[1].to, "b@example.test");
    assert_int_equal(v[1].size, sizeof(a) - 1);
    free(v);
    assert_int_equal(sandbox_read(home, id_a, &data, &len, NULL), 0);
    assert_int_equal(len, sizeof(a) - 1);
    assert_memory_equal(data, a, len);
    free(data);
    assert_int_equal(sandbox_read(home, "../../etc/passwd", &data, &len, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "id");
    assert_int_equal(sandbox_read(home, "Nope", &data, &len, NULL), -1);
    assert_int_equal(sandbox_clear(home, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sandbox_list(home, &v, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(v);
}

static void
test_certificate_and_password(void **state)
{
    char path[512];
    char pw[64];
    char pw2[64];
    FILE *f;
    X509 *cert;
    struct stat st;

    (void)state;
    assert_int_equal(sandbox_path(home, "cert.pem", path, sizeof(path)), 0);
    f = fopen(path, "r");
    assert_non_null(f);
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(cert, "example.com", 0, 0, NULL), 0);
    assert_int_equal(X509_verify(cert, X509_get0_pubkey(cert)), 1); /* self-signed */
    X509_free(cert);
    assert_int_equal(sandbox_path(home, "key.pem", path, sizeof(path)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);
    assert_int_equal(sandbox_password(home, pw, sizeof(pw), NULL), 0);
    assert_true(strlen(pw) >= 16);
    /* prepared again: the same password and certificate */
    assert_int_equal(sandbox_prepare(home, NULL), 0);
    assert_int_equal(sandbox_password(home, pw2, sizeof(pw2), NULL), 0);
    assert_string_equal(pw, pw2);
    assert_int_equal(sandbox_port_read(home), SANDBOX_DEFAULT_PORT);
    assert_int_equal(sandbox_port_write(home, 40123, NULL), 0);
    assert_int_equal(sandbox_port_read(home), 40123);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_names),
        cmocka_unit_test_setup_teardown(test_fault_next_counts_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_and_password, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
