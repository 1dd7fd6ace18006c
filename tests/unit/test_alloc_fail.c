/*
 * test_alloc_fail.c - makes the 1st, 2nd, 3rd ... allocation fail, one at a
 * time, in each pure entry point (address parsing, composing, validation,
 * SASL mechanisms, the header parser), and checks after every run that the
 * function reported the failure cleanly and that every byte it allocated was
 * freed again: the error paths leak nothing (STYLE.md, "Tests").
 *
 * It replaces malloc/calloc/realloc/free for this program (glibc supports
 * that, and routes its own strdup & co. through them), counting live blocks.
 * Not built under AddressSanitizer, which owns those symbols itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/err.h>
#include <string.h>

#include "account/account.h"
#include "mime/mime.h"
#include "smtp/smtp.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static long fail_at;    /* the allocation number that fails; 0: none */
static long n_allocs;   /* allocations since the counter was reset */
static long live;       /* blocks allocated and not freed */
static int failed_once; /* the injected failure happened in this run */

static int
should_fail(void)
{
    n_allocs++;
    if (fail_at != 0 && n_allocs == fail_at) {
        failed_once = 1;
        return 1;
    }
    return 0;
}

void *
malloc(size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = __libc_malloc(size);
    if (p != NULL)
        live++;
    return p;
}

void *
calloc(size_t n, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = __libc_calloc(n, size);
    if (p != NULL)
        live++;
    return p;
}

void *
realloc(void *old, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = __libc_realloc(old, size);
    if (p != NULL && old == NULL)
        live++;
    if (p != NULL && size == 0 && old != NULL)
        live--;
    return p;
}

void
free(void *p)
{
    if (p != NULL)
        live--;
    __libc_free(p);
}

/* One operation under test: returns 0 on success, -1 on a (reported) failure. */
typedef int (*operation_fn)(void);

static int
op_address_list(void)
{
    struct mime_address *list = NULL;
    size_t n = 0;
    struct mo_error err;
    int rc = mime_address_list_parse(
        "\"Doe, Jöhn\" <john.doe@münchen.de>, Friends: a@b.example, \"x y\"@c.example;, "
        "=?UTF-8?Q?x?= <q@example.com>",
        "to", &list, &n, &err);

    mime_address_list_free(list, n);
    return rc;
}

static int
op_compose(void)
{
    static const unsigned char blob[] = {0, 1, 2, 255, 254, 10, 13, 46, 46};
    struct mime_address from, to;
    struct mime_attachment att = {"счёт.pdf", NULL, blob, sizeof(blob)};
    struct mime_header extra = {"X-Shop", "Bestellung №42"};
    struct mime_message msg;
    struct mo_buf out;
    struct mo_error err;
    char id[256];
    int rc = -1;

    memset(&from, 0, sizeof(from));
    memset(&to, 0, sizeof(to));
    mo_buf_init(&out, 1 << 20);
    if (mime_address_parse("Jöhn Dœ <shop@example.test>", "from", &from, &err) != 0 ||
        mime_address_parse("customer@example.com", "to", &to, &err) != 0)
        goto out;
    memset(&msg, 0, sizeof(msg));
    msg.from = &from;
    msg.to = &to;
    msg.n_to = 1;
    msg.subject = "Заказ №42 подтверждён — спасибо! ✓ and a long tail of ASCII words to fold";
    msg.text = "Hello,\n.\nline with a dot\n";
    msg.html = "<p>Hello</p>";
    msg.attachments = &att;
    msg.n_attachments = 1;
    msg.headers = &extra;
    msg.n_headers = 1;
    rc = mime_compose(&msg, &out, id, sizeof(id), &err);
out:
    mime_address_clear(&from);
    mime_address_clear(&to);
    mo_buf_free(&out);
    return rc;
}

static int
op_validate(void)
{
    struct account_settings s;
    struct account_issues issues;
    const struct account_provider *gmail = account_provider_find("gmail");

    memset(&s, 0, sizeof(s));
    s.email = strdup("test.mail.ot.commerce@gmail.com");
    s.username = strdup("testmailotcommerce");
    s.password = strdup("abcd efgh ijkl mnop");
    s.sender = strdup("testmailotcommerce@googlemail.com");
    s.provider_id = strdup("gmail");
    if (s.email == NULL || s.username == NULL || s.password == NULL || s.sender == NULL ||
        s.provider_id == NULL) {
        account_settings_clear(&s);
        return -1;
    }
    /* Validation reports out-of-memory as an issue (field "internal"), not a crash. */
    account_validate(&s, gmail, &issues);
    account_settings_clear(&s);
    for (size_t i = 0; i < issues.n; i++)
        if (strcmp(issues.items[i].field, "internal") == 0)
            return -1;
    return issues.n_errors == 0 ? 0 : -1;
}

static int
op_scram(void)
{
    struct smtp_auth *a;
    struct mo_buf out;
    struct mo_error err;
    bool has_initial = false;
    int rc = -1;

    mo_buf_init(&out, 4096);
    a = smtp_auth_new(SMTP_AUTH_SCRAM_SHA_256, "user", "pencil", &err);
    if (a == NULL)
        goto out;
    if (smtp_auth_set_nonce(a, "rOprNGfwEbeRWgbNEkqO") != 0 ||
        smtp_auth_initial(a, &out, &has_initial, &err) != 0)
        goto out;
    /* The server-first message of RFC 7677, base64-encoded. */
    if (smtp_auth_step(a,
                       "cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxz"
                       "PVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=",
                       &out, &err) != 0)
        goto out;
    rc = 0;
out:
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
    /* OpenSSL keeps the records of its errors (with their texts) until they are cleared. */
    ERR_clear_error();
    return rc;
}

static int
op_headers(void)
{
    static const char message[] = "From: root (Cron Daemon)\n"
                                  "To: a@example.com, \"B\" <b@example.com>\n"
                                  "Bcc: hidden@example.com\n"
                                  "Subject: =?UTF-8?B?0JfQsNC60LDQtw==?= folded\n"
                                  " continued\n"
                                  "\n"
                                  "body\n";
    struct mime_headers h;
    struct mo_error err;
    int rc;

    memset(&h, 0, sizeof(h));
    rc = mime_headers_parse(message, sizeof(message) - 1, &h, &err);
    mime_headers_clear(&h);
    return rc;
}

/*
 * Runs op with the 1st, 2nd, ... allocation failing until a run no longer
 * reaches the failure point. Every run must leave no live block behind.
 */
static void
fail_each_allocation(operation_fn op, const char *name)
{
    long baseline;
    long runs = 0;

    /* Warm up: libraries allocate their one-time tables on first use, OpenSSL its
     * per-thread error queue on the first error it records. */
    fail_at = 0;
    ERR_raise(ERR_LIB_EVP, ERR_R_MALLOC_FAILURE);
    ERR_clear_error();
    assert_int_equal(op(), 0);
    assert_int_equal(op(), 0);
    for (fail_at = 1;; fail_at++) {
        int rc;

        baseline = live;
        n_allocs = 0;
        failed_once = 0;
        rc = op();
        if (live != baseline)
            fail_msg("%s: failing allocation %ld leaked %ld block(s)", name, fail_at,
                     live - baseline);
        if (!failed_once) {
            assert_int_equal(rc, 0); /* no failure injected: it must have worked */
            break;
        }
        runs++;
        if (fail_at > 100000)
            fail_msg("%s: no end of allocations", name);
    }
    fail_at = 0;
    assert_true(runs > 0); /* the operation allocates, so failures were injected */
}

static void
test_address_list(void **state)
{
    (void)state;
    fail_each_allocation(op_address_list, "mime_address_list_parse");
}

static void
test_compose(void **state)
{
    (void)state;
    fail_each_allocation(op_compose, "mime_compose");
}

static void
test_validate(void **state)
{
    (void)state;
    fail_each_allocation(op_validate, "account_validate");
}

static void
test_scram(void **state)
{
    (void)state;
    fail_each_allocation(op_scram, "smtp_auth SCRAM-SHA-256");
}

static void
test_headers(void **state)
{
    (void)state;
    fail_each_allocation(op_headers, "mime_headers_parse");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_list), cmocka_unit_test(test_compose),
        cmocka_unit_test(test_validate),     cmocka_unit_test(test_scram),
        cmocka_unit_test(test_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
