/*
 * test_common.c - unit tests of the common module: error filling and
 * prefixing, bounded buffers, number parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/common.h"

static void
test_error_set_and_prefix(void **state)
{
    struct mo_error err;
    (void)state;

    mo_error_set(&err, MO_ERR_AUTH, "password", "refused %d", 535);
    assert_int_equal(err.category, MO_ERR_AUTH);
    assert_string_equal(err.field, "password");
    assert_false(err.temporary);
    assert_string_equal(err.text, "refused 535");
    mo_error_prefix(&err, "account \"%s\"", "shop");
    assert_string_equal(err.text, "account \"shop\": refused 535");
    assert_string_equal(err.field, "password");
    assert_int_equal(err.category, MO_ERR_AUTH);

    mo_error_set(&err, MO_ERR_CONNECT, "host", "x");
    assert_true(err.temporary);
    mo_error_set(NULL, MO_ERR_CONNECT, "host", "x"); /* NULL is allowed */
    assert_string_equal(mo_category_name(MO_ERR_STORAGE), "storage");
    assert_string_equal(mo_category_name((enum mo_category)99), "internal");
}

static void
test_buf_limits(void **state)
{
    struct mo_buf b;
    struct mo_error err;
    (void)state;

    mo_buf_init(&b, 8);
    assert_string_equal(mo_buf_cstr(&b), "");
    assert_int_equal(mo_buf_append_str(&b, "abcd", &err), 0);
    assert_int_equal(mo_buf_appendf(&b, &err, "%d", 1234), 0);
    assert_string_equal(mo_buf_cstr(&b), "abcd1234");
    assert_int_equal(mo_buf_append(&b, "x", 1, &err), -1);
    assert_int_equal(err.category, MO_ERR_INTERNAL);
    assert_int_equal(b.len, 8);
    mo_buf_consume(&b, 3);
    assert_string_equal(mo_buf_cstr(&b), "d1234");
    mo_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    mo_buf_wipe_free(&b);
    assert_null(b.data);
}

static void
test_parse_long(void **state)
{
    static const struct {
        const char *in;
        int rc;
        long value;
    } cases[] = {
        {"587", 0, 587}, {"0", 0, 0},     {"65535", 0, 65535}, {"65536", -1, 0},
        {"", -1, 0},     {"12a", -1, 0},  {"-1", -1, 0},       {" 5", -1, 0},
        {NULL, -1, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long v = -7;
        assert_int_equal(mo_parse_long(cases[i].in, 0, 65535, &v), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(v, cases[i].value);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_and_prefix),
        cmocka_unit_test(test_buf_limits),
        cmocka_unit_test(test_parse_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
