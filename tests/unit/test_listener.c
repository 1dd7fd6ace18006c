/*
 * test_listener.c - unit tests of the submission listener's pure parsers
 * (src/listener/parse.c): command lines with their paths and parameters,
 * UTF-8 checks, base64 AUTH payloads, the PLAIN message, and the listening
 * address. Table-driven: each row is a line as a client sends it and what
 * must come out of it (the parsed fields, or the reply code the session
 * answers with).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "listener/listener_internal.h"

/* ---- command lines ------------------------------------------------------------------- */

struct cmd_case {
    const char *name;
    const char *line;
    int rc;
    enum listener_verb verb;
    int code;             /* on error */
    const char *enhanced; /* on error */
    const char *address;  /* MAIL/RCPT; NULL: not checked */
    const char *arg;      /* NULL: not checked */
    bool has_size;
    uint64_t size;
    enum listener_body body;
    bool smtputf8;
    bool utf8;
    bool null_path;
};

/* One case per line reads better than the formatter's columns; fields left out are 0. */
/* clang-format off */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct cmd_case cmd_cases[] = {
    /* greetings */
    {"EHLO", "EHLO client.example", 0, LISTENER_VERB_EHLO, 0, NULL, NULL, "client.example"},
    {"ehlo lower case", "ehlo client.example", 0, LISTENER_VERB_EHLO, 0, NULL, NULL, "client.example"},
    {"HELO address literal", "HELO [192.0.2.1]", 0, LISTENER_VERB_HELO, 0, NULL, NULL, "[192.0.2.1]"},
    {"EHLO trailing blanks", "EHLO host  \t", 0, LISTENER_VERB_EHLO, 0, NULL, NULL, "host"},
    {"EHLO without a name", "EHLO", -1, LISTENER_VERB_EHLO, 501, "5.5.4"},
    {"HELO only blanks", "HELO   ", -1, LISTENER_VERB_HELO, 501, "5.5.4"},
    /* MAIL */
    {"MAIL", "MAIL FROM:<shop@example.test>", 0, LISTENER_VERB_MAIL, 0, NULL, "shop@example.test"},
    {"MAIL lower case", "mail from:<shop@example.test>", 0, LISTENER_VERB_MAIL, 0, NULL, "shop@example.test"},
    {"MAIL blank after colon", "MAIL FROM: <shop@example.test>", 0, LISTENER_VERB_MAIL, 0, NULL, "shop@example.test"},
    {"MAIL without brackets", "MAIL FROM:shop@example.test", 0, LISTENER_VERB_MAIL, 0, NULL, "shop@example.test"},
    {"MAIL null sender", "MAIL FROM:<>", 0, LISTENER_VERB_MAIL, 0, NULL, "", .null_path = true},
    {"MAIL source route dropped", "MAIL FROM:<@relay.example,@b.example:shop@example.test>", 0,
     LISTENER_VERB_MAIL, 0, NULL, "shop@example.test"},
    {"MAIL quoted local part", "MAIL FROM:<\"john doe\"@example.test>", 0, LISTENER_VERB_MAIL, 0, NULL,
     "\"john doe\"@example.test"},
    {"MAIL quoted local part with > and @", "MAIL FROM:<\"a>b@c\"@example.test>", 0, LISTENER_VERB_MAIL,
     0, NULL, "\"a>b@c\"@example.test"},
    {"MAIL IPv4 literal", "MAIL FROM:<root@[192.0.2.7]>", 0, LISTENER_VERB_MAIL, 0, NULL, "root@[192.0.2.7]"},
    {"MAIL IPv6 literal", "MAIL FROM:<root@[IPv6:2001:db8::1]>", 0, LISTENER_VERB_MAIL, 0, NULL,
     "root@[IPv6:2001:db8::1]"},
    {"MAIL SIZE BODY", "MAIL FROM:<a@example.test> SIZE=2048 BODY=8BITMIME", 0, LISTENER_VERB_MAIL, 0,
     NULL, "a@example.test", .has_size = true, .size = 2048, .body = LISTENER_BODY_8BITMIME},
    {"MAIL body=7bit lower", "MAIL FROM:<a@example.test> body=7bit", 0, LISTENER_VERB_MAIL, 0, NULL,
     "a@example.test", .body = LISTENER_BODY_7BIT},
    {"MAIL SMTPUTF8 with UTF-8 address", "MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8", 0,
     LISTENER_VERB_MAIL, 0, NULL, "j\xc3\xb6rg@b\xc3\xbc" "cher.example", .smtputf8 = true, .utf8 = true},
    {"MAIL AUTH= accepted", "MAIL FROM:<a@example.test> AUTH=<>", 0, LISTENER_VERB_MAIL, 0, NULL,
     "a@example.test"},
    {"MAIL SIZE overflow saturates", "MAIL FROM:<a@example.test> SIZE=99999999999999999999", 0,
     LISTENER_VERB_MAIL, 0, NULL, "a@example.test", .has_size = true, .size = UINT64_MAX},
    {"MAIL many blanks between params", "MAIL FROM:<a@example.test>   SIZE=10   SMTPUTF8 ", 0,
     LISTENER_VERB_MAIL, 0, NULL, "a@example.test", .has_size = true, .size = 10, .smtputf8 = true},
    {"MAIL without FROM", "MAIL <a@example.test>", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL FROM: nothing", "MAIL FROM:", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL unclosed bracket", "MAIL FROM:<a@example.test", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL no domain", "MAIL FROM:<shop>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL double dot", "MAIL FROM:<a..b@example.test>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL leading dot", "MAIL FROM:<.a@example.test>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL domain with blank label", "MAIL FROM:<a@example..test>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL domain hyphen at end", "MAIL FROM:<a@example-.test>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL domain trailing dot", "MAIL FROM:<a@example.test.>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL bad IPv4 literal", "MAIL FROM:<a@[300.1.1.1]>", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL invalid UTF-8", "MAIL FROM:<a\xc3@example.test> SMTPUTF8", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL overlong UTF-8", "MAIL FROM:<a\xc0\xafx@example.test> SMTPUTF8", -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL local part of 65", "MAIL FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.test>",
     -1, LISTENER_VERB_MAIL, 501, "5.1.7"},
    {"MAIL unknown parameter", "MAIL FROM:<a@example.test> RET=HDRS", -1, LISTENER_VERB_MAIL, 555, "5.5.4"},
    {"MAIL BINARYMIME", "MAIL FROM:<a@example.test> BODY=BINARYMIME", -1, LISTENER_VERB_MAIL, 555, "5.5.4"},
    {"MAIL SIZE not a number", "MAIL FROM:<a@example.test> SIZE=10k", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL SIZE twice", "MAIL FROM:<a@example.test> SIZE=1 SIZE=2", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL SIZE without value", "MAIL FROM:<a@example.test> SIZE", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL SMTPUTF8 with value", "MAIL FROM:<a@example.test> SMTPUTF8=yes", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL empty value", "MAIL FROM:<a@example.test> SIZE=", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    {"MAIL junk after path", "MAIL FROM:<a@example.test>x", -1, LISTENER_VERB_MAIL, 501, "5.5.4"},
    /* RCPT */
    {"RCPT", "RCPT TO:<bob@example.org>", 0, LISTENER_VERB_RCPT, 0, NULL, "bob@example.org"},
    {"RCPT plus tag", "RCPT TO:<bob+shop@example.org>", 0, LISTENER_VERB_RCPT, 0, NULL, "bob+shop@example.org"},
    {"RCPT UTF-8 (SMTPUTF8 is checked by the session)", "RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8>",
     0, LISTENER_VERB_RCPT, 0, NULL, NULL, .utf8 = true},
    {"RCPT null path", "RCPT TO:<>", -1, LISTENER_VERB_RCPT, 501, "5.1.3"},
    {"RCPT postmaster without domain", "RCPT TO:<postmaster>", -1, LISTENER_VERB_RCPT, 501, "5.1.3"},
    {"RCPT parameter", "RCPT TO:<bob@example.org> NOTIFY=NEVER", -1, LISTENER_VERB_RCPT, 555, "5.5.4"},
    {"RCPT FROM: instead of TO:", "RCPT FROM:<bob@example.org>", -1, LISTENER_VERB_RCPT, 501, "5.5.4"},
    {"RCPT two @ unquoted", "RCPT TO:<a@b@example.org>", -1, LISTENER_VERB_RCPT, 501, "5.1.3"},
    {"RCPT space in address", "RCPT TO:<bob @example.org>", -1, LISTENER_VERB_RCPT, 501, "5.1.3"},
    /* the rest */
    {"DATA", "DATA", 0, LISTENER_VERB_DATA},
    {"DATA with argument", "DATA now", -1, LISTENER_VERB_DATA, 501, "5.5.4"},
    {"RSET", "rset", 0, LISTENER_VERB_RSET},
    {"QUIT", "QUIT", 0, LISTENER_VERB_QUIT},
    {"NOOP with argument", "NOOP hello", 0, LISTENER_VERB_NOOP, 0, NULL, NULL, "hello"},
    {"VRFY", "VRFY bob", 0, LISTENER_VERB_VRFY, 0, NULL, NULL, "bob"},
    {"STARTTLS", "STARTTLS", 0, LISTENER_VERB_STARTTLS},
    {"STARTTLS with argument", "STARTTLS now", -1, LISTENER_VERB_STARTTLS, 501, "5.5.4"},
    {"AUTH PLAIN", "AUTH PLAIN", 0, LISTENER_VERB_AUTH, 0, NULL, NULL, "PLAIN"},
    {"auth login lower", "auth login", 0, LISTENER_VERB_AUTH, 0, NULL, NULL, "LOGIN"},
    {"AUTH without mechanism", "AUTH", -1, LISTENER_VERB_AUTH, 501, "5.5.4"},
    {"AUTH two responses", "AUTH PLAIN abc def", -1, LISTENER_VERB_AUTH, 501, "5.5.4"},
    {"unknown verb", "XYZZY", -1, LISTENER_VERB_UNKNOWN, 500, "5.5.1"},
    {"empty line", "", -1, LISTENER_VERB_UNKNOWN, 500, "5.5.1"},
    {"HTTP request", "GET / HTTP/1.1", -1, LISTENER_VERB_UNKNOWN, 500, "5.5.1"},
    {"NUL byte", "NOOP a\0b", -1, LISTENER_VERB_NOOP, 500, "5.5.2"},
    {"bare CR inside", "NOOP a\rb", -1, LISTENER_VERB_NOOP, 500, "5.5.2"},
    {"verb prefix only", "MAI", -1, LISTENER_VERB_UNKNOWN, 500, "5.5.1"},
    {"verb glued", "MAILFROM:<a@b.c>", -1, LISTENER_VERB_UNKNOWN, 500, "5.5.1"},
};
#pragma GCC diagnostic pop
/* clang-format on */

static size_t
case_len(const struct cmd_case *c)
{
    /* the NUL byte case carries its length in the name's line: count to the second NUL */
    if (strcmp(c->name, "NUL byte") == 0)
        return strlen(c->line) + 1 + strlen(c->line + strlen(c->line) + 1);
    return strlen(c->line);
}

static void
test_cmd_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        const struct cmd_case *c = &cmd_cases[i];
        struct listener_cmd *cmd = calloc(1, sizeof(*cmd));
        int rc;

        assert_non_null(cmd);
        rc = listener_cmd_parse(c->line, case_len(c), cmd);
        if (rc != c->rc || cmd->verb != c->verb)
            fail_msg("%s: rc %d verb %s (want %d %s), reply %d %s %s", c->name, rc,
                     listener_verb_name(cmd->verb), c->rc, listener_verb_name(c->verb), cmd->code,
                     cmd->enhanced ? cmd->enhanced : "", cmd->text ? cmd->text : "");
        if (rc != 0) {
            if (cmd->code != c->code || strcmp(cmd->enhanced, c->enhanced) != 0 ||
                cmd->text == NULL || cmd->text[0] == '\0')
                fail_msg("%s: reply %d %s (want %d %s)", c->name, cmd->code, cmd->enhanced, c->code,
                         c->enhanced);
        } else {
            if (cmd->code != 0)
                fail_msg("%s: code %d on success", c->name, cmd->code);
            if (c->address != NULL && strcmp(cmd->address, c->address) != 0)
                fail_msg("%s: address \"%s\" (want \"%s\")", c->name, cmd->address, c->address);
            if (c->arg != NULL && strcmp(cmd->arg, c->arg) != 0)
                fail_msg("%s: arg \"%s\" (want \"%s\")", c->name, cmd->arg, c->arg);
            if (cmd->has_size != c->has_size || cmd->size != c->size || cmd->body != c->body ||
                cmd->smtputf8 != c->smtputf8 || cmd->address_is_utf8 != c->utf8 ||
                cmd->is_null_path != c->null_path)
                fail_msg("%s: parameters differ (size %d/%llu body %d utf8 %d/%d null %d)", c->name,
                         cmd->has_size, (unsigned long long)cmd->size, cmd->body, cmd->smtputf8,
                         cmd->address_is_utf8, cmd->is_null_path);
        }
        free(cmd);
    }
}

/* Length limits: 512 octets with CRLF for commands, 12288 for AUTH (RFC 4954 4). */
static void
test_cmd_lengths(void **state)
{
    struct listener_cmd *cmd = calloc(1, sizeof(*cmd));
    char *line = malloc(LISTENER_AUTH_LINE_MAX + 16);
    size_t n;

    (void)state;
    assert_non_null(cmd);
    assert_non_null(line);
    /* NOOP + 505 x = 510 octets: fits with CRLF */
    n = (size_t)snprintf(line, 16, "NOOP ");
    memset(line + n, 'x', 510 - n);
    assert_int_equal(listener_cmd_parse(line, 510, cmd), 0);
    line[510] = 'x';
    assert_int_equal(listener_cmd_parse(line, 511, cmd), -1);
    assert_int_equal(cmd->code, 500);
    assert_string_equal(cmd->enhanced, "5.5.2");
    /* AUTH PLAIN with a long initial response */
    n = (size_t)snprintf(line, 16, "AUTH PLAIN ");
    memset(line + n, 'A', 4000);
    assert_int_equal(listener_cmd_parse(line, n + 4000, cmd), 0);
    assert_true(cmd->has_initial);
    assert_int_equal(strlen(cmd->auth_initial), 4000);
    memset(line + n, 'A', LISTENER_AUTH_LINE_MAX);
    assert_int_equal(listener_cmd_parse(line, n + LISTENER_AUTH_LINE_MAX, cmd), -1);
    assert_int_equal(cmd->code, 500);
    /* a path of 256 octets with its brackets passes, 257 does not (RFC 5321 4.5.3.1.3) */
    n = (size_t)snprintf(line, 32, "RCPT TO:<a@");
    for (size_t i = 0; i < 3; i++) {
        memset(line + n, 'b', 63);
        n += 63;
        line[n++] = '.';
    }
    memset(line + n, 'c', 60);
    n += 60;
    line[n++] = '>';
    assert_int_equal(listener_cmd_parse(line, n, cmd), 0);
    assert_int_equal(strlen(cmd->address), 254);
    memmove(line + 10, line + 9, n - 9);
    line[9] = 'x'; /* "xa@..." */
    assert_int_equal(listener_cmd_parse(line, n + 1, cmd), -1);
    assert_int_equal(cmd->code, 501);
    free(line);
    free(cmd);
}

/* ---- UTF-8 --------------------------------------------------------------------------- */

static void
test_utf8(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"plain", true},
        {"gr\xc3\xbc\xc3\x9f"
         "e",
         true},
        {"\xe2\x82\xac", true},      /* euro sign */
        {"\xf0\x9f\x98\x80", true},  /* emoji */
        {"\xc3", false},             /* cut */
        {"\xc0\xaf", false},         /* overlong */
        {"\xe0\x80\xaf", false},     /* overlong */
        {"\xed\xa0\x80", false},     /* surrogate */
        {"\xf4\x90\x80\x80", false}, /* above U+10FFFF */
        {"\xff", false},
        {"\x80", false}, /* lone continuation */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (listener_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu: want %d", i, cases[i].ok);
}

/* ---- AUTH payloads --------------------------------------------------------------------- */

static void
test_b64(void **state)
{
    static const struct {
        const char *in;
        int rc;
        const char *out;
        size_t out_len;
    } cases[] = {
        {"", 0, "", 0},         {"=", 0, "", 0},         {"YQ==", 0, "a", 1},
        {"YWI=", 0, "ab", 2},   {"YWJj", 0, "abc", 3},   {"AHUAcA==", 0, "\0u\0p", 4},
        {"YQ=", -1, NULL, 0},   /* not a multiple of 4 */
        {"Y===", -1, NULL, 0},  /* too much padding */
        {"YQ=a", -1, NULL, 0},  /* padding inside */
        {"Y Q==", -1, NULL, 0}, /* blank */
        {"*", -1, NULL, 0},     {"YW\nI=", -1, NULL, 0},
    };
    unsigned char out[64];
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = listener_b64_decode(cases[i].in, strlen(cases[i].in), out, sizeof(out), &len);

        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d", cases[i].in, rc);
        if (rc == 0 && (len != cases[i].out_len || memcmp(out, cases[i].out, len) != 0))
            fail_msg("\"%s\": wrong bytes (%zu)", cases[i].in, len);
    }
    /* too small an output buffer is an error, not an overflow */
    assert_int_equal(listener_b64_decode("YWJj", 4, out, 2, &len), -1);
}

static void
test_plain_split(void **state)
{
    const char *user = NULL;
    const char *pass = NULL;

    (void)state;
    assert_int_equal(
        listener_plain_split((const unsigned char *)"\0shop\0mo_key", 12, &user, &pass), 0);
    assert_string_equal(user, "shop");
    assert_string_equal(pass, "mo_key");
    assert_int_equal(
        listener_plain_split((const unsigned char *)"admin\0shop\0k", 12, &user, &pass), 0);
    assert_string_equal(user, "shop");
    assert_string_equal(pass, "k");
    /* malformed: one NUL, three NULs, empty user, empty password */
    assert_int_equal(listener_plain_split((const unsigned char *)"shop\0key", 8, &user, &pass), -1);
    assert_int_equal(listener_plain_split((const unsigned char *)"\0a\0b\0c", 6, &user, &pass), -1);
    assert_int_equal(listener_plain_split((const unsigned char *)"\0\0key", 5, &user, &pass), -1);
    assert_int_equal(listener_plain_split((const unsigned char *)"\0shop\0", 6, &user, &pass), -1);
    assert_int_equal(listener_plain_split((const unsigned char *)"", 0, &user, &pass), -1);
}

/* ---- the listening address ------------------------------------------------------------ */

static void
test_listen_parse(void **state)
{
    static const struct {
        const char *text;
        int rc;
        int family;
        unsigned port;
        bool loopback;
    } cases[] = {
        {NULL, 0, AF_INET, 2525, true},
        {"", 0, AF_INET, 2525, true},
        {"127.0.0.1:2525", 0, AF_INET, 2525, true},
        {"127.1.2.3:25", 0, AF_INET, 25, true},
        {"localhost:0", 0, AF_INET, 0, true},
        {"0.0.0.0:587", 0, AF_INET, 587, false},
        {"192.0.2.10:587", 0, AF_INET, 587, false},
        {"[::1]:2525", 0, AF_INET6, 2525, true},
        {"[::]:2525", 0, AF_INET6, 2525, false},
        {"[::ffff:127.0.0.1]:2525", 0, AF_INET6, 2525, true},
        {"[2001:db8::1]:25", 0, AF_INET6, 25, false},
        {"::1:2525", -1, 0, 0, false},
        {"127.0.0.1", -1, 0, 0, false},
        {"127.0.0.1:65536", -1, 0, 0, false},
        {"127.0.0.1:-1", -1, 0, 0, false},
        {"127.0.0.1:25x", -1, 0, 0, false},
        {"mail.example:25", -1, 0, 0, false},
        {"[::1]2525", -1, 0, 0, false},
        {":2525", -1, 0, 0, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        bool loop = false;
        struct mo_error err;
        int rc = listener_listen_parse(cases[i].text, &ss, &len, &loop, &err);

        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d", cases[i].text ? cases[i].text : "(null)", rc);
        if (rc != 0) {
            if (err.category != MO_ERR_CONFIG || err.field == NULL ||
                strcmp(err.field, "smtp") != 0)
                fail_msg("\"%s\": wrong error", cases[i].text);
            continue;
        }
        if (ss.ss_family != cases[i].family || loop != cases[i].loopback)
            fail_msg("\"%s\": family %d loopback %d", cases[i].text ? cases[i].text : "(null)",
                     ss.ss_family, loop);
        if ((ss.ss_family == AF_INET
                 ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                 : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)) != cases[i].port)
            fail_msg("\"%s\": wrong port", cases[i].text);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_table),   cmocka_unit_test(test_cmd_lengths),
        cmocka_unit_test(test_utf8),        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_plain_split), cmocka_unit_test(test_listen_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
