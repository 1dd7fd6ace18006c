/*
 * test_reply.c - unit tests of the SMTP reply parser (src/smtp/reply.c):
 * RFC 5321 4.2 reply lines, multi-line replies, RFC 3463 enhanced status
 * codes, and the limits (line length, line count, text size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtp/smtp.h"

#define MAX_CASE_LINES 6

struct reply_case {
    const char *name;
    const char *lines[MAX_CASE_LINES]; /* NULL-terminated; all but the last must return 0 */
    int rc;                            /* what the last line returns */
    int code;
    const char *enhanced;
    const char *text;
    size_t n_lines;
    const char *err_has; /* for rc == -1: a piece of the error text */
};

/* One case per line reads better than the formatter's columns. */
/* clang-format off */
static const struct reply_case reply_cases[] = {
    {"single line", {"250 OK", NULL}, 1, 250, "", "OK", 1, NULL},
    {"greeting", {"220 smtp.gmail.com ESMTP a1sm123 - gsmtp", NULL}, 1, 220, "",
     "smtp.gmail.com ESMTP a1sm123 - gsmtp", 1, NULL},
    {"multi-line EHLO",
     {"250-mail.example.com Hello", "250-PIPELINING", "250 8BITMIME", NULL},
     1, 250, "", "mail.example.com Hello\nPIPELINING\n8BITMIME", 3, NULL},
    {"enhanced present", {"250 2.1.0 Ok", NULL}, 1, 250, "2.1.0", "Ok", 1, NULL},
    {"enhanced 4xx", {"450 4.7.1 Try again later", NULL}, 1, 450, "4.7.1", "Try again later", 1,
     NULL},
    {"enhanced three-digit parts", {"550 5.123.456 x", NULL}, 1, 550, "5.123.456", "x", 1, NULL},
    {"enhanced only", {"250 2.0.0", NULL}, 1, 250, "2.0.0", "", 1, NULL},
    {"enhanced absent", {"550 Mailbox unavailable", NULL}, 1, 550, "", "Mailbox unavailable", 1,
     NULL},
    {"enhanced class mismatch kept as text", {"250 5.1.1 odd but fine", NULL}, 1, 250, "",
     "5.1.1 odd but fine", 1, NULL},
    {"enhanced with four parts is text", {"250 2.0.0.1 host", NULL}, 1, 250, "", "2.0.0.1 host", 1,
     NULL},
    {"enhanced subject too long is text", {"250 2.1234.0 x", NULL}, 1, 250, "", "2.1234.0 x", 1,
     NULL},
    {"enhanced glued to text is text", {"250 2.1.0Ok", NULL}, 1, 250, "", "2.1.0Ok", 1, NULL},
    {"Gmail 535",
     {"535-5.7.8 Username and Password not accepted. Learn more at",
      "535 5.7.8  https://support.google.com/mail/?p=BadCredentials a1sm123 - gsmtp", NULL},
     1, 535, "5.7.8",
     "Username and Password not accepted. Learn more at\n"
     "https://support.google.com/mail/?p=BadCredentials a1sm123 - gsmtp",
     2, NULL},
    {"first line's enhanced code wins",
     {"550-5.1.1 first", "550 5.1.2 second", NULL}, 1, 550, "5.1.1", "first\nsecond", 2, NULL},
    {"bare code", {"250", NULL}, 1, 250, "", "", 1, NULL},
    {"bare code ends a multi-line reply", {"250-a", "250", NULL}, 1, 250, "", "a\n", 2, NULL},
    {"empty continuation text", {"250-", "250 OK", NULL}, 1, 250, "", "\nOK", 2, NULL},
    {"tab kept", {"250 a\tb", NULL}, 1, 250, "", "a\tb", 1, NULL},
    {"UTF-8 kept", {"250 caf\xc3\xa9", NULL}, 1, 250, "", "caf\xc3\xa9", 1, NULL},
    {"carriage return replaced", {"250 a\rb", NULL}, 1, 250, "", "a?b", 1, NULL},
    {"continuation pending", {"250-a", NULL}, 0, 0, NULL, NULL, 0, NULL},
    {"code 600", {"600 x", NULL}, -1, 0, NULL, NULL, 0, "the code must be 200 to 599"},
    {"code 199", {"199 x", NULL}, -1, 0, NULL, NULL, 0, "the code must be 200 to 599"},
    {"two digits", {"25 x", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"too short", {"25", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"empty line", {"", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"non-digit", {"2a0 x", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"words", {"hello world", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"bad separator", {"250x", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"tab separator", {"250\tOK", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
    {"code changes mid-reply", {"250-a", "251 b", NULL}, -1, 0, NULL, NULL, 0,
     "the code changed inside a multi-line reply"},
    {"garbage mid-reply", {"250-a", "xyz", NULL}, -1, 0, NULL, NULL, 0, "not a three-digit code"},
};
/* clang-format on */

static void
test_reply_table(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
        const struct reply_case *c = &reply_cases[i];
        struct smtp_reply_parser p;
        struct smtp_reply out;
        struct mo_error err;
        int rc = 99;

        print_message("case: %s\n", c->name);
        smtp_reply_parser_init(&p);
        memset(&out, 0x55, sizeof(out));
        mo_error_clear(&err);
        for (size_t j = 0; c->lines[j] != NULL; j++) {
            rc = smtp_reply_parse_line(&p, c->lines[j], strlen(c->lines[j]), &out, &err);
            if (c->lines[j + 1] != NULL)
                assert_int_equal(rc, 0);
        }
        assert_int_equal(rc, c->rc);
        if (c->rc == 1) {
            assert_int_equal(out.code, c->code);
            assert_string_equal(out.enhanced, c->enhanced);
            assert_string_equal(out.text, c->text);
            assert_int_equal(out.n_lines, c->n_lines);
            assert_int_equal(err.category, MO_ERR_NONE);
            assert_false(p.in_reply);
        } else if (c->rc == 0) {
            assert_true(p.in_reply);
        } else {
            assert_int_equal(err.category, MO_ERR_PROTOCOL);
            assert_null(err.field);
            assert_non_null(strstr(err.text, "the server sent a malformed reply line: \""));
            assert_non_null(strstr(err.text, c->err_has));
        }
    }
}

/* Two replies back to back through one parser, as after PIPELINING. */
static void
test_reply_sequence(void **state)
{
    struct smtp_reply_parser p;
    struct smtp_reply out;
    (void)state;

    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, "250-2.1.0 a", 11, &out, NULL), 0);
    assert_int_equal(smtp_reply_parse_line(&p, "250 2.1.0 b", 11, &out, NULL), 1);
    assert_string_equal(out.text, "a\nb");
    assert_int_equal(smtp_reply_parse_line(&p, "354 Go ahead", 12, &out, NULL), 1);
    assert_int_equal(out.code, 354);
    assert_string_equal(out.enhanced, "");
    assert_string_equal(out.text, "Go ahead");
    assert_int_equal(out.n_lines, 1);
    /* out may be NULL when the caller only wants to skip a reply. */
    assert_int_equal(smtp_reply_parse_line(&p, "221 Bye", 7, NULL, NULL), 1);
}

static void
test_reply_line_length(void **state)
{
    char line[SMTP_REPLY_LINE_MAX + 8];
    struct smtp_reply_parser p;
    struct smtp_reply out;
    struct mo_error err;
    (void)state;

    /* 510 octets + CRLF = 512: the longest legal line. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "250 ", 4);
    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, line, 510, &out, &err), 1);
    assert_int_equal(strlen(out.text), 506);

    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, line, 511, &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    assert_non_null(strstr(err.text, "longer than 512 bytes"));
    /* The line is shown, but cut short. */
    assert_non_null(strstr(err.text, "\"250 xxxx"));
    assert_non_null(strstr(err.text, "...\""));
    assert_true(strlen(err.text) < 200);
}

static void
test_reply_too_many_lines(void **state)
{
    struct smtp_reply_parser p;
    struct smtp_reply out;
    struct mo_error err;
    (void)state;

    smtp_reply_parser_init(&p);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
        assert_int_equal(smtp_reply_parse_line(&p, "250-x", 5, &out, &err), 0);
    assert_int_equal(smtp_reply_parse_line(&p, "250 x", 5, &out, &err), 1);
    assert_int_equal(out.n_lines, SMTP_REPLY_LINES_MAX);

    smtp_reply_parser_init(&p);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
        assert_int_equal(smtp_reply_parse_line(&p, "250-x", 5, &out, &err), 0);
    assert_int_equal(smtp_reply_parse_line(&p, "250 x", 5, &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    assert_non_null(strstr(err.text, "more than 128 lines"));
}

static void
test_reply_text_overflow(void **state)
{
    char line[SMTP_REPLY_LINE_MAX];
    struct smtp_reply_parser p;
    struct smtp_reply out;
    struct mo_error err;
    int rc = 0;
    int n = 0;
    (void)state;

    /* 500-byte lines: the ninth passes SMTP_REPLY_TEXT_MAX. */
    memset(line, 'y', sizeof(line));
    memcpy(line, "250-", 4);
    smtp_reply_parser_init(&p);
    while (rc == 0 && n < 20) {
        rc = smtp_reply_parse_line(&p, line, 500, &out, &err);
        n++;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(n, 9);
    assert_non_null(strstr(err.text, "longer than 4096 bytes"));
}

static void
test_reply_reuse_after_error(void **state)
{
    struct smtp_reply_parser p;
    struct smtp_reply out;
    struct mo_error err;
    (void)state;

    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, "250-a", 5, &out, &err), 0);
    assert_int_equal(smtp_reply_parse_line(&p, "421 b", 5, &out, &err), -1);
    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, "421 4.4.2 bye", 13, &out, &err), 1);
    assert_int_equal(out.code, 421);
    assert_string_equal(out.enhanced, "4.4.2");
    assert_string_equal(out.text, "bye");
    assert_int_equal(out.n_lines, 1);
}

static void
test_reply_hostile_bytes(void **state)
{
    static const char nul_line[] = "250 a\0b";
    static const char bad[] = "600 \x01\"q\\\xff";
    struct smtp_reply_parser p;
    struct smtp_reply out;
    struct mo_error err;
    (void)state;

    /* A NUL inside the text must not cut the reply short or hide bytes after it. */
    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, nul_line, sizeof(nul_line) - 1, &out, &err), 1);
    assert_string_equal(out.text, "a?b");

    /* The error shows the line escaped: no control bytes reach a log. */
    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, bad, sizeof(bad) - 1, &out, &err), -1);
    assert_string_equal(err.text, "the server sent a malformed reply line: "
                                  "\"600 \\x01\\\"q\\\\\\xff\" (the code must be 200 to 599)");
    for (const char *c = err.text; *c != '\0'; c++)
        assert_true(*c >= 0x20 && *c < 0x7f);

    /* NULL line with no length is an empty line. */
    smtp_reply_parser_init(&p);
    assert_int_equal(smtp_reply_parse_line(&p, NULL, 0, &out, &err), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_table),         cmocka_unit_test(test_reply_sequence),
        cmocka_unit_test(test_reply_line_length),   cmocka_unit_test(test_reply_too_many_lines),
        cmocka_unit_test(test_reply_text_overflow), cmocka_unit_test(test_reply_reuse_after_error),
        cmocka_unit_test(test_reply_hostile_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
