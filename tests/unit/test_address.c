/*
 * test_address.c - unit tests of mailbox parsing and writing (mime module):
 * valid and invalid single addresses with their error texts, address lists
 * and groups, the header form (quoting, encoded words) and the envelope form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"

#define LOCAL_64 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"
#define LABEL_63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"

/* ---- valid addresses --------------------------------------------------- */

static const struct {
    const char *in;
    const char *name; /* NULL: no display name */
    const char *local;
    const char *domain;
    const char *domain_ascii;
    bool has_utf8_local;
} valid_cases[] = {
    {"john@example.com", NULL, "john", "example.com", "example.com", false},
    /* the domain is lowercased, the local part is kept as written */
    {"John.Smith@Example.COM", NULL, "John.Smith", "example.com", "example.com", false},
    /* Gmail-style dots and plus tags are ordinary atext */
    {"test.mail.ot.commerce@gmail.com", NULL, "test.mail.ot.commerce", "gmail.com", "gmail.com",
     false},
    {"user+tag@gmail.com", NULL, "user+tag", "gmail.com", "gmail.com", false},
    {"<john@example.com>", NULL, "john", "example.com", "example.com", false},
    {"John Doe <john@example.com>", "John Doe", "john", "example.com", "example.com", false},
    {"\"Doe, John\" <j@x.com>", "Doe, John", "j", "x.com", "x.com", false},
    {"\"John \\\"JJ\\\" Doe\" <j@x.com>", "John \"JJ\" Doe", "j", "x.com", "x.com", false},
    {"\"back\\\\slash\" <j@x.com>", "back\\slash", "j", "x.com", "x.com", false},
    {"Jöhn Dœ <j@x.com>", "Jöhn Dœ", "j", "x.com", "x.com", false},
    {"John Q. Public <jqp@example.com>", "John Q. Public", "jqp", "example.com", "example.com",
     false},
    /* a quoted local part keeps its quotes when it needs them, loses them otherwise */
    {"\"john doe\"@example.com", NULL, "\"john doe\"", "example.com", "example.com", false},
    {"\"john\"@example.com", NULL, "john", "example.com", "example.com", false},
    {"\"a\\\"b\"@example.com", NULL, "\"a\\\"b\"", "example.com", "example.com", false},
    {"\"john..doe\"@example.com", NULL, "\"john..doe\"", "example.com", "example.com", false},
    /* IDN: A-labels by libidn2, the U-label form case-folded */
    {"user@münchen.de", NULL, "user", "münchen.de", "xn--mnchen-3ya.de", false},
    {"user@MÜNCHEN.DE", NULL, "user", "münchen.de", "xn--mnchen-3ya.de", false},
    {"user@xn--mnchen-3ya.de", NULL, "user", "xn--mnchen-3ya.de", "xn--mnchen-3ya.de", false},
    {"δοκιμή@παράδειγμα.δοκιμή", NULL, "δοκιμή", "παράδειγμα.δοκιμή",
     "xn--hxajbheg2az3al.xn--jxalpdlp", true},
    {"用户@例子.广告", NULL, "用户", "例子.广告", "xn--fsqu00a.xn--4rr70v", true},
    /* address literals are kept as written */
    {"user@[127.0.0.1]", NULL, "user", "[127.0.0.1]", "[127.0.0.1]", false},
    {"user@[IPv6:2001:db8::1]", NULL, "user", "[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", false},
    /* white space around and comments are skipped */
    {"  john@example.com \t", NULL, "john", "example.com", "example.com", false},
    {"john@example.com (John Doe)", NULL, "john", "example.com", "example.com", false},
    {"(c) John   Doe (x) < john@example.com > (y)", "John Doe", "john", "example.com",
     "example.com", false},
    {"a!#$%&'*+-/=?^_`{|}~@example.com", NULL, "a!#$%&'*+-/=?^_`{|}~", "example.com", "example.com",
     false},
    {"x@a-b.example.co.uk", NULL, "x", "a-b.example.co.uk", "a-b.example.co.uk", false},
    {LOCAL_64 "@example.com", NULL, LOCAL_64, "example.com", "example.com", false},
    {"x@" LABEL_63 ".com", NULL, "x", LABEL_63 ".com", LABEL_63 ".com", false},
    {"\"\" <a@b.co>", NULL, "a", "b.co", "b.co", false},
    {"Zoë <zoe@example.com>", "Zoë", "zoe", "example.com", "example.com", false},
};

static void
test_parse_valid(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        struct mime_address a = {0};
        struct mo_error err;

        mo_error_clear(&err);
        if (mime_address_parse(valid_cases[i].in, "to", &a, &err) != 0)
            fail_msg("case %zu \"%s\": %s", i, valid_cases[i].in, err.text);
        if (valid_cases[i].name == NULL)
            assert_null(a.display_name);
        else
            assert_string_equal(a.display_name, valid_cases[i].name);
        assert_string_equal(a.local, valid_cases[i].local);
        assert_string_equal(a.domain, valid_cases[i].domain);
        assert_string_equal(a.domain_ascii, valid_cases[i].domain_ascii);
        assert_int_equal(a.has_utf8_local, valid_cases[i].has_utf8_local);
        mime_address_clear(&a);
        assert_null(a.local);
    }
}

/* ---- invalid addresses ------------------------------------------------- */

static const struct {
    const char *in;
    const char *reason; /* must appear in err.text */
} invalid_cases[] = {
    {"john..smith@gmail.com", "two dots in a row before the @"},
    {".john@x.com", "starts with a dot"},
    {"john.@x.com", "dot right before the @"},
    {"johnexample.com", "has no @"},
    {"John Doe", "has no @"},
    {"@example.com", "nothing before the @"},
    {"john@", "nothing after the @"},
    {"a@b@c.com", "more than one @"},
    {"john smith@example.com", "contains a space"},
    {"john@example .com", "contains a space"},
    {"a@b.co, c@d.co", "only one is allowed"},
    /* header injection: any CR, LF or control character is refused */
    {"a@b.c\r\nBcc: x@y.z", "line break"},
    {"a@b.co\nBcc: x@y.z", "line break"},
    {"a@b.co\rX", "line break"},
    {"Evil\r\n <a@b.co>", "line break"},
    {"\"Evil\r\nBcc: x@y.z\" <a@b.co>", "line break"},
    {"a@b.co\x01", "control character"},
    {"a\x7f@b.co", "control character"},
    {"", "empty"},
    {"   ", "empty"},
    {LOCAL_64 "x@example.com", "at most 64"},
    {"a@example..com", "two dots in a row after the @"},
    {"a@.example.com", "domain starts with a dot"},
    {"a@example.com.", "domain ends with a dot"},
    {"a@localhost", "has no dot"},
    {"a@-example.com", "hyphen"},
    {"a@example-.com", "hyphen"},
    {"a@exa_mple.com", "character '_'"},
    {"a@1.2.3.4", "looks like an IP address"},
    {"a@[1.2.3]", "not an IPv4"},
    {"a@[IPv6:zz::1]", "not an IPv4"},
    {"a@[127.0.0.1", "missing its ]"},
    {"John <a@b.co", "no matching >"},
    {"John <a@b.co> trailing", "text after the >"},
    {"Doe, John <j@x.com>", "comma"},
    {"J@hn <j@x.com>", "character '@'"},
    {"\"unclosed <a@b.co>", "not closed"},
    {"a@b.co>", "> without a <"},
    {"(unclosed a@b.co", "parenthesis"},
    {"a\"b\"@x.com", "character '\"'"},
    {"a\"b@x.com", "double quote is not closed"},
    {"\"a\"b@x.com", "between the quote and the @"},
    {"\"a\tb\"@x.com", "tab"},
    {"x@" LABEL_63 "x.com", "longer than 63"},
    {"x@" LABEL_63 "." LABEL_63 "." LABEL_63 "." LABEL_63 ".com", "longer than 253"},
    {"<>", "no address between"},
    {"\xff@x.com", "not valid UTF-8"},
    {"a@b.c\xc3", "not valid UTF-8"},
    {"user@münchen..de", "two dots in a row after the @"},
    {"John <a@b.co> <c@d.co>", "text after the >"},
    {"<a@<b.co>", "< inside"},
};

static void
test_parse_invalid(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        struct mime_address a = {0};
        struct mo_error err;

        mo_error_clear(&err);
        if (mime_address_parse(invalid_cases[i].in, "to", &a, &err) == 0)
            fail_msg("case %zu \"%s\" was accepted", i, invalid_cases[i].in);
        assert_null(a.local); /* *out is untouched on failure */
        assert_int_equal(err.category, MO_ERR_CONFIG);
        assert_string_equal(err.field, "to");
        if (strstr(err.text, invalid_cases[i].reason) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.text, invalid_cases[i].reason);
        /* the input is quoted in the text, with line breaks escaped */
        assert_null(strchr(err.text, '\r'));
        assert_null(strchr(err.text, '\n'));
    }
}

static void
test_parse_error_text(void **state)
{
    struct mime_address a = {0};
    struct mo_error err;
    (void)state;

    assert_int_equal(mime_address_parse("john..smith@gmail.com", "email", &a, &err), -1);
    assert_string_equal(err.text,
                        "\"john..smith@gmail.com\" is not a valid address: two dots in a row "
                        "before the @");
    assert_string_equal(err.field, "email");
    assert_int_equal(mime_address_parse("a@b.c\r\nBcc: x@y.z", "from", &a, &err), -1);
    assert_string_equal(err.text, "\"a@b.c\\r\\nBcc: x@y.z\" is not a valid address: it "
                                  "contains a line break (CR or LF)");
    assert_int_equal(mime_address_parse(NULL, "from", &a, &err), -1);
    assert_string_equal(err.field, "from");
}

/* ---- lists ------------------------------------------------------------- */

static const struct {
    const char *in;
    int rc;
    const char *expect; /* envelopes joined by ' ', or a reason when rc is -1 */
} list_cases[] = {
    {"a@b.co, c@d.co", 0, "a@b.co c@d.co"},
    {"\"Doe, John\" <j@x.co>, k@x.co", 0, "j@x.co k@x.co"},
    {"Friends: a@b.co, d@e.co;", 0, "a@b.co d@e.co"},
    {"Friends: a@b.co, d@e.co;, z@z.co", 0, "a@b.co d@e.co z@z.co"},
    {"x@y.co, Team: \"A, B\" <a@b.co>;", 0, "x@y.co a@b.co"},
    {"a@b.co, , d@e.co", 0, "a@b.co d@e.co"},
    {"a@b.co,,", 0, "a@b.co"},
    {"undisclosed-recipients:;", 0, ""},
    {"", 0, ""},
    {"  ,  ", 0, ""},
    {"a@b.co (x, y), c@d.co", 0, "a@b.co c@d.co"},
    {"<a@b.co>, John <c@d.co>", 0, "a@b.co c@d.co"},
    {"user@münchen.de, u@[IPv6:::1]", 0, "user@xn--mnchen-3ya.de u@[IPv6:::1]"},
    {"a@b.co; c@d.co", -1, "';' without a group"},
    {"G1: a@b.co, G2: c@d.co;;", -1, "group is opened inside a group"},
    {"a@b.co, bad", -1, "\"bad\" is not a valid address: it has no @"},
    {"a@b.co,\r\nBcc: x@y.z", -1, "line break"},
    {"a@b.co, \"unclosed, c@d.co", -1, "not closed"},
};

static void
test_list_parse(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
        struct mime_address *list = (struct mime_address *)1;
        size_t n = 99;
        struct mo_error err;
        char joined[512] = "";
        char one[MIME_ADDRESS_MAX + 1];
        int rc;

        mo_error_clear(&err);
        rc = mime_address_list_parse(list_cases[i].in, "cc", &list, &n, &err);
        if (rc != list_cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d (%s)", i, list_cases[i].in, rc, err.text);
        if (rc != 0) {
            assert_int_equal(err.category, MO_ERR_CONFIG);
            assert_string_equal(err.field, "cc");
            if (strstr(err.text, list_cases[i].expect) == NULL)
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.text, list_cases[i].expect);
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(mime_address_envelope(&list[k], one, sizeof(one), &err), 0);
            if (k > 0)
                strncat(joined, " ", sizeof(joined) - strlen(joined) - 1);
            strncat(joined, one, sizeof(joined) - strlen(joined) - 1);
        }
        assert_string_equal(joined, list_cases[i].expect);
        if (n == 0)
            assert_null(list);
        mime_address_list_free(list, n);
    }
    mime_address_list_free(NULL, 3); /* a no-op */
}

/* ---- writing ----------------------------------------------------------- */

static const struct {
    const char *name;
    const char *local;
    const char *domain;
    const char *domain_ascii;
    bool has_utf8_local;
    const char *expect;
} format_cases[] = {
    {NULL, "a", "example.com", "example.com", false, "a@example.com"},
    {"", "a", "example.com", "example.com", false, "a@example.com"},
    {"John Doe", "a", "example.com", "example.com", false, "John Doe <a@example.com>"},
    /* specials, dots and extra spaces need a quoted-string */
    {"Doe, John", "a", "example.com", "example.com", false, "\"Doe, John\" <a@example.com>"},
    {"J. Doe", "a", "example.com", "example.com", false, "\"J. Doe\" <a@example.com>"},
    {"John \"JJ\" Doe", "a", "x.co", "x.co", false, "\"John \\\"JJ\\\" Doe\" <a@x.co>"},
    {"back\\slash", "a", "x.co", "x.co", false, "\"back\\\\slash\" <a@x.co>"},
    {" padded", "a", "x.co", "x.co", false, "\" padded\" <a@x.co>"},
    /* non-ASCII, control characters and "=?" become encoded words */
    {"Jöhn Dœ", "j", "x.com", "x.com", false, "=?UTF-8?B?SsO2aG4gRMWT?= <j@x.com>"},
    {"Zoë Smith", "z", "x.com", "x.com", false, "=?UTF-8?Q?Zo=C3=AB_Smith?= <z@x.com>"},
    {"a\tb", "a", "x.co", "x.co", false, "=?UTF-8?B?YQli?= <a@x.co>"},
    {"=?x?=", "a", "x.co", "x.co", false, "=?UTF-8?B?PT94Pz0=?= <a@x.co>"},
    /* the domain goes out in ASCII unless the local part needs SMTPUTF8 anyway */
    {NULL, "user", "münchen.de", "xn--mnchen-3ya.de", false, "user@xn--mnchen-3ya.de"},
    {NULL, "δοκιμή", "παράδειγμα.δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp", true,
     "δοκιμή@παράδειγμα.δοκιμή"},
    {NULL, "\"john doe\"", "x.co", "x.co", false, "\"john doe\"@x.co"},
};

static void
test_format(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
        struct mime_address a = {
            .display_name = (char *)format_cases[i].name,
            .local = (char *)format_cases[i].local,
            .domain = (char *)format_cases[i].domain,
            .domain_ascii = (char *)format_cases[i].domain_ascii,
            .has_utf8_local = format_cases[i].has_utf8_local,
        };
        struct mo_buf out;
        struct mo_error err;

        mo_buf_init(&out, 4096);
        if (mime_address_format(&a, &out, &err) != 0)
            fail_msg("case %zu: %s", i, err.text);
        assert_string_equal(mo_buf_cstr(&out), format_cases[i].expect);
        mo_buf_free(&out);
    }
}

/* Parsing what format wrote gives the same mailbox back. */
static void
test_format_parse_round_trip(void **state)
{
    static const char *const inputs[] = {
        "\"Doe, John\" <j@x.com>",  "\"John \\\"JJ\\\" Doe\" <j@x.com>",
        "\"john doe\"@example.com", "Support Team <support@example.com>",
        "\"a\\\\b (c)\" <a@b.co>",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct mime_address a = {0};
        struct mime_address b = {0};
        struct mo_buf out;
        struct mo_error err;

        mo_buf_init(&out, 4096);
        assert_int_equal(mime_address_parse(inputs[i], "to", &a, &err), 0);
        assert_int_equal(mime_address_format(&a, &out, &err), 0);
        assert_int_equal(mime_address_parse(mo_buf_cstr(&out), "to", &b, &err), 0);
        if (a.display_name != NULL)
            assert_string_equal(a.display_name, b.display_name);
        assert_string_equal(a.local, b.local);
        assert_string_equal(a.domain_ascii, b.domain_ascii);
        mime_address_clear(&a);
        mime_address_clear(&b);
        mo_buf_free(&out);
    }
}

/* A hand-built address cannot put a line break into a header through format. */
static void
test_format_refuses_injection(void **state)
{
    struct mime_address a = {.local = "a\r\nBcc: x", .domain = "x.co", .domain_ascii = "x.co"};
    struct mime_address b = {.display_name = "Evil\r\nBcc: x@y.z",
                             .local = "a",
                             .domain = "x.co",
                             .domain_ascii = "x.co"};
    struct mo_buf out;
    struct mo_error err;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(mime_address_format(&a, &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_int_equal(out.len, 0);
    /* a name with CR/LF is encoded, never written raw */
    assert_int_equal(mime_address_format(&b, &out, &err), 0);
    assert_null(strchr(mo_buf_cstr(&out), '\r'));
    assert_null(strchr(mo_buf_cstr(&out), '\n'));
    mo_buf_free(&out);
}

static void
test_envelope(void **state)
{
    struct mime_address a = {0};
    struct mo_error err;
    char out[MIME_ADDRESS_MAX + 1];
    char tiny[8];
    (void)state;

    assert_int_equal(mime_address_parse("Jöhn <user@MÜNCHEN.de>", "to", &a, &err), 0);
    assert_int_equal(mime_address_envelope(&a, out, sizeof(out), &err), 0);
    assert_string_equal(out, "user@xn--mnchen-3ya.de");
    assert_int_equal(mime_address_envelope(&a, tiny, sizeof(tiny), &err), -1);
    assert_int_equal(err.category, MO_ERR_INTERNAL);
    mime_address_clear(&a);

    assert_int_equal(mime_address_parse("\"john doe\"@example.com", "to", &a, &err), 0);
    assert_int_equal(mime_address_envelope(&a, out, sizeof(out), &err), 0);
    assert_string_equal(out, "\"john doe\"@example.com");
    mime_address_clear(&a);
    mime_address_clear(NULL); /* a no-op */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_error_text),
        cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_format_refuses_injection),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
