/*
 * test_api.c - unit tests of the HTTP API's pure parts (admin module): the
 * JSON body of POST /api/v1/messages against its errors table (which field,
 * which problem), base64 attachments, the composed message and its envelope,
 * raw messages (envelope from query or headers, Bcc removed), listen
 * addresses, ids, the per-request arena, and API keys (format, hashing, the
 * bearer header, the store and the keyring with revocation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdalign.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_internal.h"

#define MAX_FIELDS 8

/* ---- body validation: the errors table ------------------------------------ */

static const struct {
    const char *body;
    const char *fields[MAX_FIELDS]; /* expected error fields in order; {NULL}: valid.
                                       "-" stands for a problem without a field */
} body_cases[] = {
    /* valid */
    {"{\"to\":[\"bob@example.org\"],\"subject\":\"Hi\",\"text\":\"x\"}", {NULL}},
    {"{\"to\":[],\"cc\":[\"c@example.org\"],\"subject\":\"\"}", {NULL}},
    {"{\"bcc\":[\"b@example.org\"],\"subject\":\"\",\"html\":\"<p>x</p>\"}", {NULL}},
    {"{\"from\":\"Ann <ann@example.test>\",\"to\":[\"Bob B <bob@example.org>\"],"
     "\"reply_to\":\"r@example.test\",\"subject\":\"Grüße\",\"text\":\"a\\nb\","
     "\"html\":\"<b>a</b>\",\"headers\":{\"X-Order\":\"12\\t34\"},\"account\":\"shop\","
     "\"attachments\":[{\"filename\":\"a.txt\",\"content_type\":\"text/plain; charset=utf-8\","
     "\"content_base64\":\"aGVsbG8=\"}]}",
     {NULL}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"from\":null,\"cc\":null,\"text\":null,"
     "\"headers\":null,\"attachments\":null,\"account\":null}",
     {NULL}},
    /* not JSON, not an object */
    {"", {"-"}},
    {"{\"to\":[\"b@example.org\"],", {"-"}},
    {"[1,2]", {"-"}},
    {"\"text\"", {"-"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"subject\":\"y\"}", {"-"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"a\\u0000b\"}", {"-"}},
    /* missing fields */
    {"{}", {"to", "subject"}},
    {"{\"subject\":\"x\"}", {"to"}},
    {"{\"to\":[\"b@example.org\"]}", {"subject"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":null}", {"subject"}},
    {"{\"to\":[],\"subject\":\"x\"}", {"to"}},
    {"{\"to\":[],\"cc\":[],\"bcc\":[],\"subject\":\"x\"}", {"to"}},
    /* wrong types */
    {"{\"to\":\"b@example.org\",\"subject\":\"x\"}", {"to"}},
    {"{\"to\":[\"b@example.org\", 5],\"subject\":\"x\"}", {"to[1]"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":7}", {"subject"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"text\":[]}", {"text"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":[]}", {"headers"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":{}}", {"attachments"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"account\":\"\"}", {"account"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"account\":\"a\\nb\"}", {"account"}},
    /* addresses, each named with its index */
    {"{\"to\":[\"b@example.org\",\"a@@b\"],\"subject\":\"x\"}", {"to[1]"}},
    {"{\"to\":[\"b@example.org\"],\"cc\":[\"ok@example.org\",\"\",\"nope\"],\"subject\":\"x\"}",
     {"cc[1]", "cc[2]"}},
    {"{\"to\":[\"b@example.org\"],\"bcc\":[\"x@\"],\"subject\":\"x\"}", {"bcc[0]"}},
    {"{\"from\":\"not an address\",\"to\":[\"b@example.org\"],\"subject\":\"x\"}", {"from"}},
    {"{\"reply_to\":\"r@@x\",\"to\":[\"b@example.org\"],\"subject\":\"x\"}", {"reply_to"}},
    {"{\"to\":[\"Bob\\r\\nBcc: evil@x.org <b@example.org>\"],\"subject\":\"x\"}", {"to[0]"}},
    /* header injection */
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\\r\\nBcc: evil@example.org\"}", {"subject"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\\ny\"}", {"subject"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\\u0007\"}", {"subject"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"X-Foo\":\"a\\r\\nBcc: "
     "e@x.org\"}}",
     {"headers.X-Foo"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"X-Foo\":\"a\\nb\"}}",
     {"headers.X-Foo"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"X Foo\":\"a\"}}",
     {"headers.X Foo"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"X:Foo\":\"a\"}}",
     {"headers.X:Foo"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"\":\"a\"}}", {"headers."}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"X-Foo\":1}}", {"headers.X-Foo"}},
    /* headers the composer writes */
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"headers\":{\"bcc\":\"e@x.org\","
     "\"From\":\"a@b.c\",\"Content-Type\":\"text/html\",\"X-Ok\":\"1\"}}",
     {"headers.bcc", "headers.From", "headers.Content-Type"}},
    /* attachments */
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"!!\"}]}",
     {"attachments[0].content_base64"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"aGV-bG8=\"}]}",
     {"attachments[0].content_base64"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"aGVsbG8=x\"}]}",
     {"attachments[0].content_base64"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"a\"}]}",
     {"attachments[0].content_base64"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"aGVsbG8===\"}]}",
     {"attachments[0].content_base64"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"aGVs\"},{\"content_base64\":\"aGVs\"}]}",
     {"attachments[1].filename"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\"}]}",
     {"attachments[0].content_base64"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\\nb\","
     "\"content_base64\":\"\"}]}",
     {"attachments[0].filename"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_type\":\"pdf\",\"content_base64\":\"\"}]}",
     {"attachments[0].content_type"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_type\":\"text/plain\\r\\nX: y\",\"content_base64\":\"\"}]}",
     {"attachments[0].content_type"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[{\"filename\":\"a\","
     "\"content_base64\":\"\",\"size\":3}]}",
     {"attachments[0].size"}},
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"attachments\":[\"a.pdf\"]}",
     {"attachments[0]"}},
    /* unknown fields */
    {"{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"atachments\":[]}", {"atachments"}},
    /* several problems at once, in field order */
    {"{\"to\":[\"a@@b\"],\"subject\":\"x\\n\",\"headers\":{\"X-A\":\"\\r\"}}",
     {"to[0]", "subject", "headers.X-A"}},
};

static void
test_body_errors(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
        struct admin_arena *a = admin_arena_new();
        struct admin_errors errs;
        struct admin_message m;
        size_t expected = 0;
        int rc;

        assert_non_null(a);
        memset(&errs, 0, sizeof(errs));
        rc = admin_message_parse(body_cases[i].body, strlen(body_cases[i].body), a, &m, &errs);
        while (expected < MAX_FIELDS && body_cases[i].fields[expected] != NULL)
            expected++;
        if (errs.n != expected) {
            fprintf(stderr, "case %zu (%s): %zu errors, expected %zu\n", i, body_cases[i].body,
                    errs.n, expected);
            for (size_t k = 0; k < errs.n; k++)
                fprintf(stderr, "  %s: %s\n", errs.items[k].field, errs.items[k].message);
        }
        assert_int_equal(errs.n, expected);
        assert_int_equal(rc, expected == 0 ? 0 : -1);
        for (size_t k = 0; k < expected; k++) {
            const char *want =
                strcmp(body_cases[i].fields[k], "-") == 0 ? "" : body_cases[i].fields[k];

            if (strcmp(errs.items[k].field, want) != 0)
                fprintf(stderr, "case %zu: error %zu is on \"%s\", expected \"%s\"\n", i, k,
                        errs.items[k].field, want);
            assert_string_equal(errs.items[k].field, want);
            assert_true(strlen(errs.items[k].message) > 10);
        }
        if (rc == 0)
            assert_non_null(m.subject);
        admin_arena_free(a);
    }
}

static void
test_body_values(void **state)
{
    static const char body[] =
        "{\"from\":\"Ann <ann@example.test>\",\"to\":[\"Bob <bob@example.org>\"],"
        "\"cc\":[\"c@example.org\"],\"bcc\":[\"hidden@example.org\",\"bob@example.org\"],"
        "\"subject\":\"Grüße\",\"html\":\"<p>x</p>\",\"headers\":{\"X-Order\":\"12\"},"
        "\"attachments\":[{\"filename\":\"h.txt\",\"content_base64\":\"aGVs\\nbG8\"},"
        "{\"filename\":\"e.bin\",\"content_type\":\"application/octet-stream\","
        "\"content_base64\":\"\"}]}";
    struct admin_arena *a = admin_arena_new();
    struct admin_errors errs;
    struct admin_message m;
    struct queue_new_message qm;
    struct mo_error err;
    (void)state;

    memset(&errs, 0, sizeof(errs));
    assert_int_equal(admin_message_parse(body, strlen(body), a, &m, &errs), 0);
    assert_true(m.has_from);
    assert_string_equal(m.from.local, "ann");
    assert_int_equal(m.n_to, 1);
    assert_string_equal(m.to[0].display_name, "Bob");
    assert_int_equal(m.n_cc, 1);
    assert_int_equal(m.n_bcc, 2);
    assert_null(m.text);
    assert_string_equal(m.html, "<p>x</p>");
    assert_int_equal(m.n_headers, 1);
    assert_string_equal(m.headers[0].name, "X-Order");
    assert_int_equal(m.n_attachments, 2);
    /* unpadded, with a line break */
    assert_int_equal(m.attachments[0].len, 5);
    assert_memory_equal(m.attachments[0].data, "hello", 5);
    assert_int_equal(m.attachments[1].len, 0);
    assert_null(m.account);

    assert_int_equal(admin_message_build(&m, &m.from, 1 << 20, a, &qm, &errs, &err), 0);
    assert_string_equal(qm.from, "ann@example.test");
    /* to + cc + bcc, the repeated bob once */
    assert_int_equal(qm.n_rcpts, 3);
    assert_string_equal(qm.rcpts[0], "bob@example.org");
    assert_string_equal(qm.rcpts[1], "c@example.org");
    assert_string_equal(qm.rcpts[2], "hidden@example.org");
    assert_false(qm.needs_smtputf8);
    assert_string_equal(qm.source, "api");
    assert_non_null(qm.message_id);
    assert_non_null(strstr(qm.data, qm.message_id));
    assert_null(strstr(qm.data, "hidden@example.org"));
    assert_null(strstr(qm.data, "Bcc"));
    assert_non_null(strstr(qm.data, "X-Order: 12\r\n"));
    assert_non_null(strstr(qm.data, "h.txt"));
    assert_non_null(strstr(qm.data, "aGVsbG8="));
    admin_arena_free(a);
}

static void
test_body_defaults(void **state)
{
    static const char body[] = "{\"to\":[\"用户@例子.广告\"],\"subject\":\"\"}";
    struct admin_arena *a = admin_arena_new();
    struct admin_errors errs;
    struct admin_message m;
    struct mime_address from;
    struct queue_new_message qm;
    struct mo_error err;
    (void)state;

    memset(&errs, 0, sizeof(errs));
    assert_int_equal(admin_message_parse(body, strlen(body), a, &m, &errs), 0);
    assert_false(m.has_from);
    /* neither text, html nor attachments: an empty text */
    assert_string_equal(m.text, "");
    assert_string_equal(m.subject, "");
    assert_int_equal(mime_address_parse("Shop <shop@example.test>", "from", &from, &err), 0);
    assert_int_equal(admin_message_build(&m, &from, 1 << 20, a, &qm, &errs, &err), 0);
    assert_true(qm.needs_smtputf8);
    assert_string_equal(qm.from, "shop@example.test");
    assert_non_null(strstr(qm.header_from, "shop@example.test"));
    mime_address_clear(&from);
    admin_arena_free(a);
}

static void
test_body_too_large_to_compose(void **state)
{
    static const char body[] = "{\"to\":[\"b@example.org\"],\"subject\":\"x\",\"text\":"
                               "\"0123456789012345678901234567890123456789\"}";
    struct admin_arena *a = admin_arena_new();
    struct admin_errors errs;
    struct admin_message m;
    struct queue_new_message qm;
    struct mo_error err;
    (void)state;

    memset(&errs, 0, sizeof(errs));
    assert_int_equal(admin_message_parse(body, strlen(body), a, &m, &errs), 0);
    mo_error_clear(&err);
    assert_int_equal(admin_message_build(&m, &m.to[0], 100, a, &qm, &errs, &err), -1);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0].field, "");
    assert_non_null(strstr(errs.items[0].message, "larger than 100 bytes"));
    admin_arena_free(a);
}

static void
test_errors_json(void **state)
{
    struct admin_errors errs;
    json_t *j;
    char *text;
    (void)state;

    memset(&errs, 0, sizeof(errs));
    admin_errors_add(&errs, "to[2]", "bad %d", 2);
    admin_errors_add(&errs, NULL, "no field");
    j = admin_errors_json(&errs);
    assert_non_null(j);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"errors\":[{\"field\":\"to[2]\",\"message\":\"bad 2\"},"
                              "{\"field\":null,\"message\":\"no field\"}]}");
    free(text);
    json_decref(j);
    for (int i = 0; i < ADMIN_ERRORS_MAX + 5; i++)
        admin_errors_add(&errs, "x", "more");
    assert_int_equal(errs.n, ADMIN_ERRORS_MAX);
    assert_true(errs.truncated);
    j = admin_errors_json(&errs);
    assert_int_equal(json_array_size(json_object_get(j, "errors")), ADMIN_ERRORS_MAX + 1);
    json_decref(j);
}

/* ---- raw messages ----------------------------------------------------------- */

#define LIT(s) s, sizeof(s) - 1

static const struct {
    const char *message;
    size_t len;
    const char *from;     /* ?from= or NULL */
    const char *to[3];    /* ?to= values */
    bool has_default;     /* the account's sender is shop@example.test */
    const char *error;    /* expected first error field, or NULL: accepted */
    const char *env_from; /* expected envelope sender */
    const char *rcpts;    /* expected recipients, comma-joined */
} raw_cases[] = {
    {LIT("From: Ann <ann@example.test>\nTo: bob@example.org, \"C\" <c@example.org>\n"
         "Bcc: hidden@example.org\nSubject: s\n\nbody\n"),
     NULL,
     {NULL},
     true,
     NULL,
     "ann@example.test",
     "bob@example.org,c@example.org,hidden@example.org"},
    /* query parameters win */
    {LIT("From: Ann <ann@example.test>\r\nTo: bob@example.org\r\nSubject: s\r\n\r\nbody\r\n"),
     "bounce@example.test",
     {"x@example.org", "y+tag@example.org", "x@example.org"},
     true,
     NULL,
     "bounce@example.test",
     "x@example.org,y+tag@example.org"},
    /* no From: the account's sender */
    {LIT("To: bob@example.org\nSubject: s\n\nbody\n"),
     NULL,
     {NULL},
     true,
     NULL,
     "shop@example.test",
     "bob@example.org"},
    {LIT("To: bob@example.org\nSubject: s\n\nbody\n"), NULL, {NULL}, false, "from", NULL, NULL},
    /* several authors need a Sender */
    {LIT("From: a@example.test, b@example.test\nTo: bob@example.org\n\nx\n"),
     NULL,
     {NULL},
     true,
     "headers.Sender",
     NULL,
     NULL},
    {LIT("From: a@example.test, b@example.test\nSender: s@example.test\nTo: "
         "bob@example.org\n\nx\n"),
     NULL,
     {NULL},
     true,
     NULL,
     "s@example.test",
     "bob@example.org"},
    /* recipients */
    {LIT("From: a@example.test\nSubject: s\n\nx\n"), NULL, {NULL}, true, "to", NULL, NULL},
    {LIT("From: a@example.test\nTo: undisclosed-recipients:;\nBcc: b@example.org\n\nx\n"),
     NULL,
     {NULL},
     true,
     NULL,
     "a@example.test",
     "b@example.org"},
    {LIT("From: a@example.test\nTo: bob@@example.org\n\nx\n"),
     NULL,
     {NULL},
     true,
     "headers.To",
     NULL,
     NULL},
    {LIT("From: a@example.test\n\nx\n"),
     NULL,
     {"ok@example.org", "a@@b"},
     true,
     "to[1]",
     NULL,
     NULL},
    {LIT("From: a@example.test\nTo: b@example.org\n\nx\n"),
     "not valid",
     {NULL},
     true,
     "from",
     NULL,
     NULL},
    /* broken messages */
    {LIT(""), NULL, {NULL}, true, "message", NULL, NULL},
    {LIT("\nbody only\n"), NULL, {"b@example.org"}, true, "message", NULL, NULL},
    {LIT("From: a@example.test\nTo: b@example.org\nSubject: a\0b\n\nx\n"),
     NULL,
     {NULL},
     true,
     "message",
     NULL,
     NULL},
};

static void
test_raw(void **state)
{
    struct mime_address shop;
    struct mo_error err;
    (void)state;

    assert_int_equal(mime_address_parse("Shop <shop@example.test>", "from", &shop, &err), 0);
    for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++) {
        struct admin_arena *a = admin_arena_new();
        struct admin_raw_request req = {0};
        struct admin_errors errs;
        struct queue_new_message qm;
        size_t n_to = 0;
        int rc;

        while (n_to < 3 && raw_cases[i].to[n_to] != NULL)
            n_to++;
        req.from = raw_cases[i].from;
        req.to = raw_cases[i].to;
        req.n_to = n_to;
        memset(&errs, 0, sizeof(errs));
        mo_error_clear(&err);
        rc = admin_raw_prepare(raw_cases[i].message, raw_cases[i].len, &req,
                               raw_cases[i].has_default ? &shop : NULL, 1 << 20, a, &qm, &errs,
                               &err);
        if (raw_cases[i].error != NULL) {
            if (rc == 0 || errs.n == 0)
                fprintf(stderr, "raw case %zu: accepted, expected an error on %s\n", i,
                        raw_cases[i].error);
            assert_int_equal(rc, -1);
            assert_true(errs.n > 0);
            if (strcmp(errs.items[0].field, raw_cases[i].error) != 0)
                fprintf(stderr, "raw case %zu: %s: %s\n", i, errs.items[0].field,
                        errs.items[0].message);
            assert_string_equal(errs.items[0].field, raw_cases[i].error);
        } else {
            char joined[512] = "";

            if (rc != 0)
                fprintf(stderr, "raw case %zu: %s: %s / %s\n", i,
                        errs.n ? errs.items[0].field : "-", errs.n ? errs.items[0].message : "-",
                        err.text);
            assert_int_equal(rc, 0);
            assert_string_equal(qm.from, raw_cases[i].env_from);
            for (size_t k = 0; k < qm.n_rcpts; k++) {
                strcat(joined, k > 0 ? "," : "");
                strcat(joined, qm.rcpts[k]);
            }
            assert_string_equal(joined, raw_cases[i].rcpts);
            /* CRLF only, no Bcc, a Date and a Message-ID */
            for (size_t k = 0; k < qm.len; k++)
                if (qm.data[k] == '\n')
                    assert_true(k > 0 && qm.data[k - 1] == '\r');
            assert_null(strstr(qm.data, "Bcc:"));
            assert_null(strstr(qm.data, "hidden@"));
            assert_non_null(strstr(qm.data, "Date: "));
            assert_non_null(qm.message_id);
            assert_non_null(strstr(qm.data, qm.message_id));
            assert_non_null(strstr(qm.data, "From: "));
        }
        admin_arena_free(a);
    }
    mime_address_clear(&shop);
}

static void
test_raw_long_line(void **state)
{
    char *msg = malloc(2000);
    struct admin_arena *a = admin_arena_new();
    struct admin_raw_request req = {0};
    struct admin_errors errs;
    struct queue_new_message qm;
    struct mo_error err;
    int n;
    (void)state;

    n = snprintf(msg, 2000, "From: a@example.test\nTo: b@example.org\n\n");
    memset(msg + n, 'x', 1000);
    msg[n + 1000] = '\n';
    memset(&errs, 0, sizeof(errs));
    assert_int_equal(
        admin_raw_prepare(msg, (size_t)n + 1001, &req, NULL, 1 << 20, a, &qm, &errs, &err), -1);
    assert_string_equal(errs.items[0].field, "message");
    assert_non_null(strstr(errs.items[0].message, "longer than 998"));
    admin_arena_free(a);
    free(msg);
}

/* ---- listen addresses, ids ------------------------------------------------------ */

static const struct {
    const char *text;
    bool ok;
    int family;
    unsigned port;
    const char *addr;
} listen_cases[] = {
    {"127.0.0.1:8025", true, AF_INET, 8025, "127.0.0.1"},
    {NULL, true, AF_INET, 8025, "127.0.0.1"},
    {"", true, AF_INET, 8025, "127.0.0.1"},
    {"0.0.0.0:80", true, AF_INET, 80, "0.0.0.0"},
    {"localhost:9000", true, AF_INET, 9000, "127.0.0.1"},
    {"127.0.0.1:0", true, AF_INET, 0, "127.0.0.1"},
    {"[::1]:8025", true, AF_INET6, 8025, "::1"},
    {"[::]:65535", true, AF_INET6, 65535, "::"},
    {"[2001:db8::5]:1", true, AF_INET6, 1, "2001:db8::5"},
    {"::1:8025", false, 0, 0, NULL},
    {"[::1]8025", false, 0, 0, NULL},
    {"[::1]:", false, 0, 0, NULL},
    {"[]:80", false, 0, 0, NULL},
    {"127.0.0.1", false, 0, 0, NULL},
    {"127.0.0.1:", false, 0, 0, NULL},
    {"127.0.0.1:65536", false, 0, 0, NULL},
    {"127.0.0.1:-1", false, 0, 0, NULL},
    {"127.0.0.1:+80", false, 0, 0, NULL},
    {"127.0.0.1:80x", false, 0, 0, NULL},
    {"127.0.0.1: 80", false, 0, 0, NULL},
    {"example.com:80", false, 0, 0, NULL},
    {"300.0.0.1:80", false, 0, 0, NULL},
    {":8025", false, 0, 0, NULL},
    {"[127.0.0.1]:80", false, 0, 0, NULL},
};

static void
test_listen_parse(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(listen_cases) / sizeof(listen_cases[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        struct mo_error err;
        char text[INET6_ADDRSTRLEN];
        int rc = admin_listen_parse(listen_cases[i].text, &ss, &len, &err);

        if ((rc == 0) != listen_cases[i].ok)
            fprintf(stderr, "listen case %zu (%s): rc %d\n", i,
                    listen_cases[i].text ? listen_cases[i].text : "NULL", rc);
        assert_int_equal(rc == 0, listen_cases[i].ok);
        if (!listen_cases[i].ok) {
            assert_int_equal(err.category, MO_ERR_CONFIG);
            assert_string_equal(err.field, "http");
            continue;
        }
        assert_int_equal(ss.ss_family, listen_cases[i].family);
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

            assert_int_equal(len, sizeof(*sa));
            assert_int_equal(ntohs(sa->sin_port), listen_cases[i].port);
            inet_ntop(AF_INET, &sa->sin_addr, text, sizeof(text));
        } else {
            struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

            assert_int_equal(len, sizeof(*sa));
            assert_int_equal(ntohs(sa->sin6_port), listen_cases[i].port);
            inet_ntop(AF_INET6, &sa->sin6_addr, text, sizeof(text));
        }
        assert_string_equal(text, listen_cases[i].addr);
    }
}

static void
test_parse_id(void **state)
{
    static const struct {
        const char *s;
        int64_t v; /* 0: invalid */
    } cases[] = {
        {"1", 1},
        {"42", 42},
        {"9223372036854775807", INT64_MAX},
        {"0", 0},
        {"01", 0},
        {"-1", 0},
        {"+1", 0},
        {"", 0},
        {"1a", 0},
        {"9223372036854775808", 0},
        {"99999999999999999999", 0},
        {" 1", 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = 0;
        int rc = admin_parse_id(cases[i].s, &v);

        assert_int_equal(rc == 0, cases[i].v != 0);
        if (rc == 0)
            assert_true(v == cases[i].v);
    }
}

/* ---- the arena -------------------------------------------------------------------- */

static int cleanup_order[8];
static int cleanup_count;

static void
record_cleanup(void *p)
{
    cleanup_order[cleanup_count++] = *(int *)p;
}

static void
test_arena(void **state)
{
    struct admin_arena *a = admin_arena_new();
    static int ids[3] = {1, 2, 3};
    char *big;
    (void)state;

    for (int i = 0; i < 10000; i++) {
        char *p = admin_arena_alloc(a, (size_t)(i % 50) + 1);

        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        assert_int_equal(p[0], 0);
        memset(p, 0xab, (size_t)(i % 50) + 1);
    }
    big = admin_arena_alloc(a, 1 << 20);
    assert_non_null(big);
    memset(big, 1, 1 << 20);
    assert_string_equal(admin_arena_printf(a, "%s-%d", "x", 42), "x-42");
    assert_string_equal(admin_arena_strndup(a, "hello", 3), "hel");
    assert_null(admin_arena_calloc(a, SIZE_MAX / 2, 4));
    assert_true(admin_arena_used(a) > (1 << 20));
    cleanup_count = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(admin_arena_defer(a, record_cleanup, &ids[i]), 0);
    admin_arena_free(a);
    assert_int_equal(cleanup_count, 3);
    /* the last registered runs first */
    assert_int_equal(cleanup_order[0], 3);
    assert_int_equal(cleanup_order[2], 1);
    admin_arena_free(NULL);
}

/* ---- API keys ------------------------------------------------------------------------ */

static void
test_key_format(void **state)
{
    char key[ADMIN_APIKEY_LEN + 1];
    char other[ADMIN_APIKEY_LEN + 1];
    char small[10];
    unsigned char h1[ADMIN_APIKEY_HASH_BYTES];
    unsigned char h2[ADMIN_APIKEY_HASH_BYTES];
    struct mo_error err;
    (void)state;

    assert_int_equal(admin_apikey_generate(key, sizeof(key), &err), 0);
    assert_int_equal(admin_apikey_generate(other, sizeof(other), &err), 0);
    assert_int_equal(admin_apikey_generate(small, sizeof(small), &err), -1);
    assert_int_equal(strlen(key), ADMIN_APIKEY_LEN);
    assert_memory_equal(key, "mo_", 3);
    assert_string_not_equal(key, other);
    assert_int_equal(strspn(key + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_"),
                     ADMIN_APIKEY_B64_LEN);
    assert_true(admin_apikey_well_formed(key));
    assert_int_equal(admin_apikey_hash(key, h1), 0);
    assert_int_equal(admin_apikey_hash(key, h2), 0);
    assert_memory_equal(h1, h2, sizeof(h1));
    assert_int_equal(admin_apikey_hash(other, h2), 0);
    assert_memory_not_equal(h1, h2, sizeof(h1));
    /* SHA-256 of "abc" (FIPS 180-2 B.1) */
    assert_int_equal(admin_apikey_hash("abc", h1), 0);
    assert_int_equal(h1[0], 0xba);
    assert_int_equal(h1[31], 0xad);

    assert_false(admin_apikey_well_formed(NULL));
    assert_false(admin_apikey_well_formed(""));
    assert_false(admin_apikey_well_formed("mo_"));
    key[3] = '+'; /* standard base64, not base64url */
    assert_false(admin_apikey_well_formed(key));
    key[3] = 'A';
    key[0] = 'M';
    assert_false(admin_apikey_well_formed(key));
    key[0] = 'm';
    assert_false(admin_apikey_well_formed("mo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    assert_false(admin_apikey_well_formed("mo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
}

static void
test_bearer(void **state)
{
    static const struct {
        const char *value;
        const char *token; /* NULL: refused */
    } cases[] = {
        {"Bearer abc", "abc"},
        {"bearer abc", "abc"},
        {"BEARER   abc  ", "abc"},
        {"  Bearer\tabc", "abc"},
        {"Bearer", NULL},
        {"Bearer ", NULL},
        {"Bearerabc", NULL},
        {"Basic YWxhZGRpbjpvcGVuc2VzYW1l", NULL},
        {"Bearer a b", NULL},
        {"", NULL},
        {"Bearer 0123456789012345678901234567890123456789", NULL}, /* longer than the buffer */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        int rc = admin_bearer_token(cases[i].value, out, sizeof(out));

        assert_int_equal(rc == 0, cases[i].token != NULL);
        if (rc == 0)
            assert_string_equal(out, cases[i].token);
    }
    assert_int_equal(admin_bearer_token(NULL, (char[8]){0}, 8), -1);
}

static char home[256];

static int
make_home(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mailout-test-api-XXXXXX");
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

static void
test_key_store(void **state)
{
    char k1[ADMIN_APIKEY_LEN + 1];
    char k2[ADMIN_APIKEY_LEN + 1];
    char wrong[ADMIN_APIKEY_LEN + 1];
    struct admin_apikey_info *list = NULL;
    struct admin_keyring *ring = NULL;
    struct mo_error err;
    int64_t id = 0;
    size_t n = 0;
    (void)state;

    assert_int_equal(admin_apikey_create(home, "shop", k1, sizeof(k1), &err), 0);
    assert_true(admin_apikey_well_formed(k1));
    /* names are unique, also once revoked */
    assert_int_equal(admin_apikey_create(home, "shop", k2, sizeof(k2), &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "name");
    assert_int_equal(admin_apikey_create(home, "", k2, sizeof(k2), &err), -1);
    assert_int_equal(admin_apikey_create(home, "a\nb", k2, sizeof(k2), &err), -1);
    assert_int_equal(admin_apikey_create(home, "ok", k2, 8, &err), -1);

    assert_int_equal(admin_keyring_open(home, &ring, &err), 0);
    assert_true(admin_keyring_verify(ring, k1, &id));
    assert_int_equal(id, 1);
    /* made after the keyring was loaded: found on the next miss */
    usleep(60 * 1000);
    assert_int_equal(admin_apikey_create(home, "cron", k2, sizeof(k2), &err), 0);
    assert_true(admin_keyring_verify(ring, k2, &id));
    assert_int_equal(id, 2);
    /* a well-formed key that was never made; a key with one character changed */
    assert_int_equal(admin_apikey_generate(wrong, sizeof(wrong), &err), 0);
    assert_false(admin_keyring_verify(ring, wrong, NULL));
    memcpy(wrong, k1, sizeof(wrong));
    wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
    assert_false(admin_keyring_verify(ring, wrong, NULL));
    assert_false(admin_keyring_verify(ring, "", NULL));
    assert_false(admin_keyring_verify(ring, "mo_short", NULL));

    /* the database holds neither key */
    {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "grep -c -a -e '%s' -e '%s' '%s'/mailout.db* >/dev/null", k1, k2,
                 home);
        assert_int_not_equal(system(cmd), 0);
    }

    assert_int_equal(admin_apikey_revoke(home, "shop", &err), 0);
    assert_int_equal(admin_apikey_revoke(home, "nobody", &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    /* a revoked key stops within the keyring's refresh time */
    usleep((ADMIN_KEYRING_TTL_MS + 100) * 1000);
    assert_false(admin_keyring_verify(ring, k1, NULL));
    assert_true(admin_keyring_verify(ring, k2, NULL));
    admin_keyring_close(ring);

    assert_int_equal(admin_apikey_list(home, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    /* newest first; the prefix is the key's start */
    assert_string_equal(list[0].name, "cron");
    assert_false(list[0].revoked);
    assert_true(list[0].last_used_at > 0); /* written back when the keyring closed */
    assert_int_equal(strlen(list[0].prefix), ADMIN_APIKEY_PREFIX_LEN);
    assert_memory_equal(list[0].prefix, k2, ADMIN_APIKEY_PREFIX_LEN);
    assert_string_equal(list[1].name, "shop");
    assert_true(list[1].revoked);
    assert_true(list[1].created_at > 0);
    free(list);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_body_values),
        cmocka_unit_test(test_body_defaults),
        cmocka_unit_test(test_body_too_large_to_compose),
        cmocka_unit_test(test_errors_json),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_raw_long_line),
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_key_format),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test_setup_teardown(test_key_store, make_home, remove_home),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
