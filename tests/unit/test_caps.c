/*
 * test_caps.c - unit tests of the EHLO capability parser (src/smtp/caps.c).
 * Each case is an EHLO reply as servers send it on the wire, run through the
 * reply parser first, so the two layers are checked together.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtp/smtp.h"

#define MAX_CASE_LINES 14
#define MECH(m) (1u << (m))

struct caps_case {
    const char *name;
    const char *lines[MAX_CASE_LINES]; /* NULL-terminated, one complete reply */
    int rc;
    unsigned flags;
    uint64_t size_max;
    unsigned auth_mechs;
};

/* One case per line reads better than the formatter's columns. */
/* clang-format off */
static const struct caps_case caps_cases[] = {
    {"Postfix before STARTTLS",
     {"250-mail.example.com", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY", "250-ETRN",
      "250-STARTTLS", "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8",
      "250 CHUNKING", NULL},
     0,
     SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_STARTTLS | SMTP_CAP_ENHANCEDSTATUSCODES |
         SMTP_CAP_8BITMIME | SMTP_CAP_DSN | SMTP_CAP_SMTPUTF8 | SMTP_CAP_CHUNKING,
     10240000, 0},
    {"Postfix after STARTTLS, both AUTH forms",
     {"250-mail.example.com", "250-PIPELINING", "250-SIZE 10240000", "250-AUTH PLAIN LOGIN",
      "250-AUTH=PLAIN LOGIN", "250-ENHANCEDSTATUSCODES", "250 8BITMIME", NULL},
     0,
     SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_AUTH | SMTP_CAP_ENHANCEDSTATUSCODES |
         SMTP_CAP_8BITMIME,
     10240000, MECH(SMTP_AUTH_PLAIN) | MECH(SMTP_AUTH_LOGIN)},
    {"Gmail",
     {"250-smtp.gmail.com at your service, [203.0.113.7]", "250-SIZE 35882577", "250-8BITMIME",
      "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
      "250-ENHANCEDSTATUSCODES", "250-PIPELINING", "250-CHUNKING", "250 SMTPUTF8", NULL},
     0,
     SMTP_CAP_SIZE | SMTP_CAP_8BITMIME | SMTP_CAP_AUTH | SMTP_CAP_ENHANCEDSTATUSCODES |
         SMTP_CAP_PIPELINING | SMTP_CAP_CHUNKING | SMTP_CAP_SMTPUTF8,
     35882577, MECH(SMTP_AUTH_LOGIN) | MECH(SMTP_AUTH_PLAIN) | MECH(SMTP_AUTH_XOAUTH2)},
    {"old AUTH= form only",
     {"250-host", "250-AUTH=LOGIN PLAIN", "250 HELP", NULL},
     0, SMTP_CAP_AUTH, 0, MECH(SMTP_AUTH_LOGIN) | MECH(SMTP_AUTH_PLAIN)},
    {"Dovecot-style SCRAM and CRAM",
     {"250-host", "250-AUTH SCRAM-SHA-256 CRAM-MD5 SCRAM-SHA-1 DIGEST-MD5", "250 8BITMIME", NULL},
     0, SMTP_CAP_AUTH | SMTP_CAP_8BITMIME, 0,
     MECH(SMTP_AUTH_SCRAM_SHA_256) | MECH(SMTP_AUTH_CRAM_MD5)},
    {"lower case keywords",
     {"250-host", "250-size 1000", "250-auth cram-md5 scram-sha-256 login", "250-starttls",
      "250-Pipelining", "250 smtputf8", NULL},
     0, SMTP_CAP_SIZE | SMTP_CAP_AUTH | SMTP_CAP_STARTTLS | SMTP_CAP_PIPELINING | SMTP_CAP_SMTPUTF8,
     1000, MECH(SMTP_AUTH_CRAM_MD5) | MECH(SMTP_AUTH_SCRAM_SHA_256) | MECH(SMTP_AUTH_LOGIN)},
    {"no AUTH", {"250-host", "250-8BITMIME", "250 STARTTLS", NULL}, 0,
     SMTP_CAP_8BITMIME | SMTP_CAP_STARTTLS, 0, 0},
    {"AUTH without mechanisms", {"250-host", "250 AUTH", NULL}, 0, SMTP_CAP_AUTH, 0, 0},
    {"extra blanks", {"250-host", "250-AUTH  PLAIN \t LOGIN ", "250 SIZE  42", NULL}, 0,
     SMTP_CAP_AUTH | SMTP_CAP_SIZE, 42, MECH(SMTP_AUTH_PLAIN) | MECH(SMTP_AUTH_LOGIN)},
    {"single line: greeting only", {"250 STARTTLS", NULL}, 0, 0, 0, 0},
    {"SIZE without a number", {"250-host", "250 SIZE", NULL}, 0, SMTP_CAP_SIZE, 0, 0},
    {"SIZE 0", {"250-host", "250 SIZE 0", NULL}, 0, SMTP_CAP_SIZE, 0, 0},
    {"SIZE garbage", {"250-host", "250 SIZE 10M", NULL}, 0, SMTP_CAP_SIZE, 0, 0},
    {"SIZE negative", {"250-host", "250 SIZE -1", NULL}, 0, SMTP_CAP_SIZE, 0, 0},
    {"SIZE at the 64-bit limit", {"250-host", "250 SIZE 18446744073709551615", NULL}, 0,
     SMTP_CAP_SIZE, UINT64_MAX, 0},
    {"SIZE past the 64-bit limit", {"250-host", "250 SIZE 18446744073709551616", NULL}, 0,
     SMTP_CAP_SIZE, 0, 0},
    {"look-alike keywords ignored",
     {"250-host", "250-SIZEX 5", "250-AUTHX PLAIN", "250-AUTH=", "250-X-AUTH PLAIN",
      "250 PIPELINING2", NULL},
     0, 0, 0, 0},
    {"unknown mechanisms ignored", {"250-host", "250 AUTH GSSAPI NTLM OAUTHBEARER", NULL}, 0,
     SMTP_CAP_AUTH, 0, 0},
    {"not 250", {"502 5.5.1 EHLO not implemented", NULL}, -1, 0, 0, 0},
    {"4xx", {"421-4.7.0 busy", "421 try later", NULL}, -1, 0, 0, 0},
};
/* clang-format on */

static void
test_caps_table(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(caps_cases) / sizeof(caps_cases[0]); i++) {
        const struct caps_case *c = &caps_cases[i];
        struct smtp_reply_parser p;
        struct smtp_reply reply;
        struct smtp_caps caps;
        struct mo_error err;
        int rc = 0;

        print_message("case: %s\n", c->name);
        smtp_reply_parser_init(&p);
        for (size_t j = 0; c->lines[j] != NULL; j++) {
            rc = smtp_reply_parse_line(&p, c->lines[j], strlen(c->lines[j]), &reply, NULL);
            assert_int_equal(rc, c->lines[j + 1] != NULL ? 0 : 1);
        }
        memset(&caps, 0x55, sizeof(caps));
        mo_error_clear(&err);
        assert_int_equal(smtp_caps_parse(&reply, &caps, &err), c->rc);
        assert_int_equal(caps.flags, c->flags);
        assert_true(caps.size_max == c->size_max);
        assert_int_equal(caps.auth_mechs, c->auth_mechs);
        if (c->rc == 0) {
            assert_int_equal(err.category, MO_ERR_NONE);
        } else {
            assert_int_equal(err.category, MO_ERR_PROTOCOL);
            assert_int_equal(err.smtp_code, reply.code);
            assert_string_equal(err.enhanced, reply.enhanced);
            assert_int_equal(err.temporary, reply.code >= 400 && reply.code < 500);
            assert_non_null(strstr(err.text, "instead of 250"));
        }
    }
}

/* A reply built by hand, as a session might after a bare "250". */
static void
test_caps_hand_built(void **state)
{
    struct smtp_reply reply;
    struct smtp_caps caps;
    (void)state;

    memset(&reply, 0, sizeof(reply));
    reply.code = 250;
    reply.n_lines = 1;
    assert_int_equal(smtp_caps_parse(&reply, &caps, NULL), 0);
    assert_int_equal(caps.flags, 0);

    /* Without a NUL within the array: the parser must stay inside it. */
    memset(reply.text, 'A', sizeof(reply.text));
    reply.text[10] = '\n';
    assert_int_equal(smtp_caps_parse(&reply, &caps, NULL), 0);
    assert_int_equal(caps.flags, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_table),
        cmocka_unit_test(test_caps_hand_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
