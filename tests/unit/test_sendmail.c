/*
 * test_sendmail.c - unit tests of sendmail mode's pure parts: the header
 * block parser and "prepare for submission" (mime/headers.c), recipients
 * taken with -t, RFC 2047 decoding of a Subject, the sendmail command line,
 * the "." line that ends the input, and the sysexits mapping.
 *
 * The command line parser lives in src/cli/sendmail.c, which is part of the
 * executable, not of the library: it is included here with
 * SENDMAIL_PURE_ONLY, which leaves out everything that needs the rest of
 * the command line.
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

#define SENDMAIL_PURE_ONLY
#include "cli/sendmail.c"

/* ---- helpers ------------------------------------------------------------------ */

/* Whether every line end in s[0..len) is CRLF. */
static bool
all_crlf(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return false;
        if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
            return false;
    }
    return true;
}

/* The value of the first field called name in the header block of msg, or NULL (caller frees). */
static char *
field_of(const char *msg, size_t len, const char *name)
{
    struct mime_headers h;
    const struct mime_header_field *f;
    char *v = NULL;

    if (mime_headers_parse(msg, len, &h, NULL) != 0)
        return NULL;
    f = mime_headers_find(&h, name);
    if (f != NULL)
        v = strdup(f->value);
    mime_headers_clear(&h);
    return v;
}

/* field_of with encoded words decoded (caller frees). */
static char *
decoded_field(const char *msg, size_t len, const char *name)
{
    char *raw = field_of(msg, len, name);
    struct mo_buf b;
    char *v = NULL;

    if (raw == NULL)
        return NULL;
    mo_buf_init(&b, 4096);
    if (mime_decode_words(raw, &b, NULL) == 0)
        v = strdup(mo_buf_cstr(&b));
    mo_buf_free(&b);
    free(raw);
    return v;
}

static bool
mime_utf8_valid_ascii(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return s != NULL;
}

static size_t
count_fields(const char *msg, size_t len, const char *name)
{
    struct mime_headers h;
    size_t n = 0;

    if (mime_headers_parse(msg, len, &h, NULL) != 0)
        return 0;
    for (size_t i = 0; i < h.n; i++)
        if (strcasecmp(h.fields[i].name, name) == 0)
            n++;
    mime_headers_clear(&h);
    return n;
}

/* ---- the header block ------------------------------------------------------------ */

static const struct {
    const char *what;
    const char *in;
    size_t n_fields;
    const char *name0, *value0; /* the first field */
    const char *name1, *value1; /* the second field, or NULL */
    const char *body;           /* what starts at body_offset */
    bool has_blank_line;
    bool has_mbox_from;
} parse_cases[] = {
    {"CRLF", "Subject: hi\r\nTo: a@b.co\r\n\r\nbody\r\n", 2, "Subject", "hi", "To", "a@b.co",
     "body\r\n", true, false},
    {"LF only (PHP)", "Subject: hi\nTo: a@b.co\n\nbody\n", 2, "Subject", "hi", "To", "a@b.co",
     "body\n", true, false},
    {"folded with CRLF", "Subject: a long\r\n\tsubject\r\n  here\r\nX: y\r\n\r\n", 2, "Subject",
     "a long\tsubject  here", "X", "y", "", true, false},
    {"folded with LF", "To: a@b.co,\n c@d.co\n\nb", 1, "To", "a@b.co, c@d.co", NULL, NULL, "b",
     true, false},
    {"CR CR LF counts as one line end", "Subject: hi\r\r\nTo: a@b.co\r\r\n\r\r\nbody", 2, "Subject",
     "hi", "To", "a@b.co", "body", true, false},
    {"white space before the colon (obsolete)", "Subject : hi\n\n", 1, "Subject", "hi", NULL, NULL,
     "", true, false},
    {"no blank line: the first non-field line starts the body",
     "Subject: hi\nThis is the body.\nMore\n", 1, "Subject", "hi", NULL, NULL,
     "This is the body.\nMore\n", false, false},
    {"headers only, no line end at the end", "Subject: hi", 1, "Subject", "hi", NULL, NULL, "",
     false, false},
    {"mbox From line skipped", "From someone Mon Jan 1 00:00:00 2024\nSubject: hi\n\nb", 1,
     "Subject", "hi", NULL, NULL, "b", true, true},
    {"8-bit bytes kept",
     "Subject: Gr\xc3\xbc\xc3\x9f"
     "e\n\n",
     1, "Subject",
     "Gr\xc3\xbc\xc3\x9f"
     "e",
     NULL, NULL, "", true, false},
    {"empty value", "X-Empty:\nY: 1\n\n", 2, "X-Empty", "", "Y", "1", "", true, false},
    {"empty message", "", 0, NULL, NULL, NULL, NULL, "", false, false},
    {"body only (starts with a blank line)", "\nbody", 0, NULL, NULL, NULL, NULL, "body", true,
     false},
    {"a leading continuation is not a field", " x\nSubject: no\n\n", 0, NULL, NULL, NULL, NULL,
     " x\nSubject: no\n\n", false, false},
};

static void
test_headers_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        struct mime_headers h;
        struct mo_error err;
        const char *in = parse_cases[i].in;
        size_t len = strlen(in);

        if (mime_headers_parse(in, len, &h, &err) != 0)
            fail_msg("%s: %s", parse_cases[i].what, err.text);
        if (h.n != parse_cases[i].n_fields)
            fail_msg("%s: %zu fields, expected %zu", parse_cases[i].what, h.n,
                     parse_cases[i].n_fields);
        if (parse_cases[i].name0 != NULL) {
            assert_string_equal(h.fields[0].name, parse_cases[i].name0);
            assert_string_equal(h.fields[0].value, parse_cases[i].value0);
        }
        if (parse_cases[i].name1 != NULL) {
            assert_string_equal(h.fields[1].name, parse_cases[i].name1);
            assert_string_equal(h.fields[1].value, parse_cases[i].value1);
        }
        if (strcmp(in + h.body_offset, parse_cases[i].body) != 0)
            fail_msg("%s: body \"%s\"", parse_cases[i].what, in + h.body_offset);
        assert_int_equal(h.has_blank_line, parse_cases[i].has_blank_line);
        assert_int_equal(h.has_mbox_from, parse_cases[i].has_mbox_from);
        mime_headers_clear(&h);
    }
}

static void
test_headers_find_and_limits(void **state)
{
    struct mime_headers h;
    struct mo_error err;
    const char *msg = "subject: first\nSUBJECT: second\n\n";
    char nul_msg[] = "Subject: a\0b\n\nbody";
    char *big;
    size_t pos = 0;

    (void)state;
    assert_int_equal(mime_headers_parse(msg, strlen(msg), &h, &err), 0);
    assert_string_equal(mime_headers_find(&h, "Subject")->value, "first");
    assert_null(mime_headers_find(&h, "To"));
    mime_headers_clear(&h);
    mime_headers_clear(NULL);

    /* a NUL in the header block is refused; in the body it is the caller's business */
    assert_int_equal(mime_headers_parse(nul_msg, sizeof(nul_msg) - 1, &h, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "message");
    assert_non_null(strstr(err.text, "NUL"));

    /* more fields than the limit */
    big = malloc((MIME_HEADERS_MAX_FIELDS + 1) * 8 + 2);
    assert_non_null(big);
    for (int i = 0; i <= MIME_HEADERS_MAX_FIELDS; i++)
        pos += (size_t)snprintf(big + pos, 9, "X: %03d\n", i % 1000);
    assert_int_equal(mime_headers_parse(big, pos, &h, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_non_null(strstr(err.text, "more than"));
    free(big);
}

/* ---- recipients with -t ------------------------------------------------------------- */

static const struct {
    const char *what;
    const char *msg;
    const char *want; /* envelope forms joined by ' ', then " | " and local names */
} rcpt_cases[] = {
    {"To, Cc and Bcc", "To: a@x.org\nCc: b@x.org\nBcc: c@x.org\nX-To: no@x.org\n\n",
     "a@x.org b@x.org c@x.org | "},
    {"display names and quoted names", "To: \"Doe, John\" <j@x.org>, Zoë <z@x.org>\n\n",
     "j@x.org z@x.org | "},
    {"groups are flattened, empty groups give nothing",
     "To: friends: a@x.org, b@x.org;, undisclosed-recipients:;\n\n", "a@x.org b@x.org | "},
    {"several To fields and folding", "To: a@x.org,\n b@x.org\nTo: c@x.org\n\n",
     "a@x.org b@x.org c@x.org | "},
    {"a comment and an IDN domain", "To: a@münchen.de (Munich)\n\n", "a@xn--mnchen-3ya.de | "},
    {"cron's bare local name", "To: root\n\n", " | root"},
    {"a local name beside an address", "To: root, admin@x.org\n\n", "admin@x.org | root"},
    {"no recipient fields", "Subject: x\n\n", " | "},
};

static void
test_recipients_from_headers(void **state)
{
    static const char *const names[] = {"To", "Cc", "Bcc"};

    (void)state;
    for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
        struct mime_headers h;
        struct mime_address *list = NULL;
        size_t n = 0;
        char **locals = NULL;
        size_t n_locals = 0;
        struct mo_error err;
        char got[1024] = "";
        size_t pos = 0;

        assert_int_equal(mime_headers_parse(rcpt_cases[i].msg, strlen(rcpt_cases[i].msg), &h, &err),
                         0);
        if (mime_headers_addresses(&h, names, 3, "recipient", &list, &n, &locals, &n_locals,
                                   &err) != 0)
            fail_msg("%s: %s", rcpt_cases[i].what, err.text);
        for (size_t k = 0; k < n; k++) {
            char env[MIME_ADDRESS_MAX + 1];

            assert_int_equal(mime_address_envelope(&list[k], env, sizeof(env), &err), 0);
            pos += (size_t)snprintf(got + pos, sizeof(got) - pos, "%s%s", k ? " " : "", env);
        }
        pos += (size_t)snprintf(got + pos, sizeof(got) - pos, " | ");
        for (size_t k = 0; k < n_locals; k++)
            pos += (size_t)snprintf(got + pos, sizeof(got) - pos, "%s%s", k ? " " : "", locals[k]);
        if (strcmp(got, rcpt_cases[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", rcpt_cases[i].what, got, rcpt_cases[i].want);
        mime_address_list_free(list, n);
        for (size_t k = 0; k < n_locals; k++)
            free(locals[k]);
        free(locals);
        mime_headers_clear(&h);
    }
}

static void
test_recipients_errors(void **state)
{
    static const char *const names[] = {"To", "Cc", "Bcc"};
    const char *msg = "To: a@@x.org\n\n";
    const char *local = "To: root\n\n";
    struct mime_headers h;
    struct mime_address *list = NULL;
    size_t n = 0;
    char **locals = NULL;
    size_t n_locals = 0;
    struct mo_error err;

    (void)state;
    assert_int_equal(mime_headers_parse(msg, strlen(msg), &h, &err), 0);
    assert_int_equal(
        mime_headers_addresses(&h, names, 3, "recipient", &list, &n, &locals, &n_locals, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "recipient");
    assert_non_null(strstr(err.text, "the To header"));
    mime_headers_clear(&h);
    /* without local_out, a local name is an error too */
    assert_int_equal(mime_headers_parse(local, strlen(local), &h, &err), 0);
    assert_int_equal(mime_headers_addresses(&h, names, 3, "recipient", &list, &n, NULL, NULL, &err),
                     -1);
    mime_headers_clear(&h);
}

/* ---- RFC 2047 ----------------------------------------------------------------------- */

static const struct {
    const char *in;
    const char *want;
} decode_cases[] = {
    {"plain ASCII", "plain ASCII"},
    {"=?UTF-8?B?R3LDvMOfZQ==?=", "Grüße"},
    {"=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"},
    {"=?ISO-8859-1?Q?Gr=FC=DFe?=", "Grüße"},
    {"=?iso-8859-15?B?pA==?=", "€"},
    /* white space between adjacent words goes, around plain text it stays */
    {"=?UTF-8?B?R3LDvA==?= =?UTF-8?B?w59l?=", "Grüße"},
    {"=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=", "ab"},
    {"Order =?UTF-8?Q?N=C2=BA?= 42", "Order Nº 42"},
    /* a character split across two words (broken encoders) is joined */
    {"=?UTF-8?B?w6k=?==?UTF-8?B?w6k=?=", "éé"},
    /* a word that is not base64 stays as written; a cut character becomes U+FFFD */
    {"=?UTF-8?B?w6?= =?UTF-8?B?k=?=", "\xef\xbf\xbd =?UTF-8?B?k=?="},
    /* PHP's mb_encode_mimeheader output */
    {"=?UTF-8?B?QmVzdGVsbHVuZyBOci4gMTIzIOKAkyBHcsO2w59l?=", "Bestellung Nr. 123 – Größe"},
    /* missing base64 padding, lower-case encoding letter, a language tag */
    {"=?utf-8?b?w6k?=", "é"},
    {"=?UTF-8*de?Q?Stra=C3=9Fe?=", "Straße"},
    /* not words: kept */
    {"=?UTF-8?X?abc?=", "=?UTF-8?X?abc?="},
    {"=?UTF-8?Q?bad=ZZ?=", "=?UTF-8?Q?bad=ZZ?="},
    {"a =? b ?= c", "a =? b ?= c"},
    /* an unknown charset shows its bytes (cleaned) */
    {"=?x-unknown?Q?abc?=", "abc"},
    /* raw UTF-8 stays, invalid bytes become U+FFFD, controls spaces */
    {"Grüße", "Grüße"},
    {"a\xff"
     "b",
     "a\xef\xbf\xbd"
     "b"},
    {"=?UTF-8?Q?a=0Ab?=", "a b"},
    {"", ""},
};

static void
test_decode_words(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
        struct mo_buf b;
        struct mo_error err;

        mo_buf_init(&b, 4096);
        if (mime_decode_words(decode_cases[i].in, &b, &err) != 0)
            fail_msg("case %zu: %s", i, err.text);
        if (strcmp(mo_buf_cstr(&b), decode_cases[i].want) != 0)
            fail_msg("case %zu \"%s\": got \"%s\", want \"%s\"", i, decode_cases[i].in,
                     mo_buf_cstr(&b), decode_cases[i].want);
        mo_buf_free(&b);
    }
}

/* ---- prepare ----------------------------------------------------------------------- */

static void
sender_of(struct mime_address *a, const char *text)
{
    struct mo_error err;

    assert_int_equal(mime_address_parse(text, "sender", a, &err), 0);
}

struct prepared {
    struct mo_buf out;
    struct mime_prepared info;
};

static int
prepare(const char *in, const struct mime_prepare_options *opt, struct prepared *p,
        struct mo_error *err)
{
    mo_buf_init(&p->out, 1 << 20);
    return mime_message_prepare(in, strlen(in), opt, &p->out, &p->info, err);
}

static void
prepared_free(struct prepared *p)
{
    mo_buf_free(&p->out);
    mime_prepared_clear(&p->info);
}

static void
full_options(struct mime_prepare_options *opt, const struct mime_address *from)
{
    memset(opt, 0, sizeof(*opt));
    opt->from = from;
    opt->add_date = true;
    opt->add_message_id = true;
    opt->remove_bcc = true;
    opt->encode_8bit = true;
}

static void
test_prepare_adds_and_removes(void **state)
{
    struct mime_address from = {0};
    struct mime_prepare_options opt;
    struct prepared p;
    struct mo_error err;
    char *v;
    const char *in = "To: bob@x.org\nBcc: secret@x.org\nSubject: hi\n\nline 1\nline 2\n";

    (void)state;
    sender_of(&from, "Shop <shop@example.test>");
    full_options(&opt, &from);
    assert_int_equal(prepare(in, &opt, &p, &err), 0);
    assert_true(all_crlf(p.out.data, p.out.len));
    assert_null(strstr(p.out.data, "secret@x.org"));
    assert_int_equal(p.info.removed_bcc, 1);
    assert_true(p.info.added_from && p.info.added_date && p.info.added_message_id);
    v = field_of(p.out.data, p.out.len, "From");
    assert_string_equal(v, "Shop <shop@example.test>");
    free(v);
    v = field_of(p.out.data, p.out.len, "Date");
    assert_non_null(v);
    free(v);
    v = field_of(p.out.data, p.out.len, "Message-ID");
    assert_non_null(strstr(v, "@example.test>"));
    assert_non_null(strstr(v, p.info.message_id));
    free(v);
    assert_string_equal(p.info.subject, "hi");
    assert_string_equal(p.info.header_from, "Shop <shop@example.test>");
    assert_non_null(strstr(p.out.data, "\r\n\r\nline 1\r\nline 2\r\n"));

    /* prepared again: nothing changes */
    {
        struct prepared again;
        char *copy = strdup(p.out.data);

        assert_int_equal(prepare(copy, &opt, &again, &err), 0);
        assert_string_equal(again.out.data, copy);
        assert_false(again.info.added_from || again.info.added_date || again.info.added_message_id);
        assert_string_equal(again.info.message_id, p.info.message_id);
        prepared_free(&again);
        free(copy);
    }
    prepared_free(&p);
    mime_address_clear(&from);
}

static const struct {
    const char *what;
    const char *in;
    const char *from_name;
    const char *want_from; /* the From value after prepare, encoded words decoded */
    bool replaced;
} from_cases[] = {
    {"a From is kept", "From: Other <o@x.org>\nTo: b@x.org\n\n", "Ignored", "Other <o@x.org>",
     false},
    {"-F names an added From", "To: b@x.org\n\n", "Cron Daemon", "Cron Daemon <shop@example.test>",
     false},
    {"-F with UTF-8 is encoded", "To: b@x.org\n\n", "Bäckerei", "Bäckerei <shop@example.test>",
     false},
    {"cron's From is completed, its comment kept as the name", "From: root (Cron Daemon)\n\n",
     "CronDaemon", "Cron Daemon <shop@example.test>", true},
    {"a local From with a name", "From: \"Web Shop\" <www-data>\n\n", NULL,
     "Web Shop <shop@example.test>", true},
    {"a bare local From gets -F's name", "From: www-data\n\n", "Shop Name",
     "Shop Name <shop@example.test>", true},
    {"a local From with an encoded name", "From: =?UTF-8?B?QsOkY2tlcmVp?= <www-data>\n\n", NULL,
     "Bäckerei <shop@example.test>", true},
};

static void
test_prepare_from(void **state)
{
    struct mime_address from = {0};

    (void)state;
    sender_of(&from, "shop@example.test");
    for (size_t i = 0; i < sizeof(from_cases) / sizeof(from_cases[0]); i++) {
        struct mime_prepare_options opt;
        struct prepared p;
        struct mo_error err;
        char *v;

        full_options(&opt, &from);
        opt.from_name = from_cases[i].from_name;
        if (prepare(from_cases[i].in, &opt, &p, &err) != 0)
            fail_msg("%s: %s", from_cases[i].what, err.text);
        v = decoded_field(p.out.data, p.out.len, "From");
        if (v == NULL || strcmp(v, from_cases[i].want_from) != 0)
            fail_msg("%s: From \"%s\", want \"%s\"", from_cases[i].what, v ? v : "(none)",
                     from_cases[i].want_from);
        /* a non-ASCII name went out as encoded words */
        free(v);
        v = field_of(p.out.data, p.out.len, "From");
        assert_true(mime_utf8_valid_ascii(v));
        assert_int_equal(count_fields(p.out.data, p.out.len, "From"), 1);
        assert_int_equal(p.info.replaced_from, from_cases[i].replaced);
        free(v);
        prepared_free(&p);
    }
    mime_address_clear(&from);
}

static void
test_prepare_local_user_then_complete(void **state)
{
    struct mime_address from = {0};
    struct mime_prepare_options opt;
    struct prepared first;
    struct prepared second;
    struct mo_error err;
    char *v;

    (void)state;
    /* the spool writer: no account known, From names the local user */
    memset(&opt, 0, sizeof(opt));
    opt.local_user = "www-data";
    opt.from_name = "Web \"Shop\"";
    opt.add_date = true;
    opt.remove_bcc = true;
    assert_int_equal(prepare("To: b@x.org\nBcc: c@x.org\n\nhi\n", &opt, &first, &err), 0);
    v = field_of(first.out.data, first.out.len, "From");
    assert_string_equal(v, "\"Web \\\"Shop\\\"\" <www-data>");
    free(v);
    assert_null(field_of(first.out.data, first.out.len, "Message-ID"));
    assert_null(strstr(first.out.data, "c@x.org"));
    /* the importer: the account's sender completes it */
    sender_of(&from, "shop@example.test");
    full_options(&opt, &from);
    opt.message_id = "0123abcd@example.test";
    assert_int_equal(prepare(first.out.data, &opt, &second, &err), 0);
    v = field_of(second.out.data, second.out.len, "From");
    assert_string_equal(v, "\"Web \\\"Shop\\\"\" <shop@example.test>");
    free(v);
    v = field_of(second.out.data, second.out.len, "Message-ID");
    assert_string_equal(v, "<0123abcd@example.test>");
    free(v);
    assert_int_equal(count_fields(second.out.data, second.out.len, "Date"), 1);
    prepared_free(&first);
    prepared_free(&second);
    mime_address_clear(&from);
}

static void
test_prepare_encodes_8bit(void **state)
{
    struct mime_address from = {0};
    struct mime_prepare_options opt;
    struct prepared p;
    struct mo_error err;
    char *v;
    const char *in = "From: Bäckerei <shop@example.test>\nTo: Zoë <z@x.org>\n"
                     "Subject: Bestellung – Größe\nX-Raw: Grüße\n\nBody ü\n";

    (void)state;
    sender_of(&from, "shop@example.test");
    full_options(&opt, &from);
    assert_int_equal(prepare(in, &opt, &p, &err), 0);
    v = field_of(p.out.data, p.out.len, "Subject");
    assert_non_null(strstr(v, "=?UTF-8?"));
    free(v);
    assert_string_equal(p.info.subject, "Bestellung – Größe");
    v = field_of(p.out.data, p.out.len, "From");
    assert_true(mime_utf8_valid_ascii(v));
    free(v);
    v = decoded_field(p.out.data, p.out.len, "From");
    assert_string_equal(v, "Bäckerei <shop@example.test>");
    free(v);
    v = decoded_field(p.out.data, p.out.len, "To");
    assert_string_equal(v, "Zoë <z@x.org>");
    free(v);
    /* other fields and the body are copied as they are */
    assert_non_null(strstr(p.out.data, "X-Raw: Grüße\r\n"));
    assert_non_null(strstr(p.out.data, "\r\n\r\nBody ü\r\n"));
    prepared_free(&p);
    /* raw Latin-1 is not UTF-8: left alone */
    assert_int_equal(prepare("Subject: Gr\xfc\xdf"
                             "e\n\n",
                             &opt, &p, &err),
                     0);
    assert_non_null(strstr(p.out.data, "Subject: Gr\xfc\xdf"
                                       "e\r\n"));
    prepared_free(&p);
    mime_address_clear(&from);
}

static void
test_prepare_line_ends_and_body(void **state)
{
    struct mime_address from = {0};
    struct mime_prepare_options opt;
    struct prepared p;
    struct mo_error err;

    (void)state;
    sender_of(&from, "shop@example.test");
    full_options(&opt, &from);
    /* no blank line: one is inserted before the body; CR CR LF and bare CR become CRLF */
    assert_int_equal(prepare("Subject: x\r\r\nno blank line\rnext\n", &opt, &p, &err), 0);
    assert_true(all_crlf(p.out.data, p.out.len));
    assert_non_null(strstr(p.out.data, "\r\n\r\nno blank line\r\nnext\r\n"));
    prepared_free(&p);
    /* a message of headers only still gets its blank line */
    assert_int_equal(prepare("Subject: x", &opt, &p, &err), 0);
    assert_true(all_crlf(p.out.data, p.out.len));
    assert_int_equal(memcmp(p.out.data + p.out.len - 4, "\r\n\r\n", 4), 0);
    prepared_free(&p);
    /* an mbox From line is dropped; a body "From " line is kept */
    assert_int_equal(prepare("From x@y Mon\nSubject: x\n\nFrom here\n", &opt, &p, &err), 0);
    assert_null(strstr(p.out.data, "From x@y"));
    assert_non_null(strstr(p.out.data, "\r\n\r\nFrom here\r\n"));
    prepared_free(&p);
    mime_address_clear(&from);
}

static void
test_prepare_refuses(void **state)
{
    struct mime_address from = {0};
    struct mime_prepare_options opt;
    struct prepared p;
    struct mo_error err;
    static const char *const injected[] = {"Evil\r\nBcc: x@y.z", "Evil\nBcc: x@y.z",
                                           "Evil\rBcc: x@y.z"};
    char nul_body[] = "Subject: x\n\nab\0cd";
    struct mo_buf out;

    (void)state;
    sender_of(&from, "shop@example.test");
    for (size_t i = 0; i < 3; i++) {
        full_options(&opt, &from);
        opt.from_name = injected[i];
        assert_int_equal(prepare("To: b@x.org\n\n", &opt, &p, &err), -1);
        assert_int_equal(err.category, MO_ERR_CONFIG);
        assert_string_equal(err.field, "from_name");
        assert_int_equal(p.out.len, 0);
        prepared_free(&p);
    }
    full_options(&opt, &from);
    mo_buf_init(&out, 1 << 16);
    assert_int_equal(mime_message_prepare(nul_body, sizeof(nul_body) - 1, &opt, &out, NULL, &err),
                     -1);
    assert_string_equal(err.field, "message");
    mo_buf_free(&out);
    /* a bad given Message-ID, and no domain to make one from */
    opt.message_id = "no-at-sign";
    assert_int_equal(prepare("To: b@x.org\n\n", &opt, &p, &err), -1);
    assert_string_equal(err.field, "message_id");
    prepared_free(&p);
    memset(&opt, 0, sizeof(opt));
    opt.add_message_id = true;
    assert_int_equal(prepare("To: b@x.org\n\n", &opt, &p, &err), -1);
    assert_string_equal(err.field, "from");
    prepared_free(&p);
    /* a local user that is not a plain name */
    memset(&opt, 0, sizeof(opt));
    opt.local_user = "a>b";
    assert_int_equal(prepare("To: b@x.org\n\n", &opt, &p, &err), -1);
    prepared_free(&p);
    /* the output's limit */
    full_options(&opt, &from);
    mo_buf_init(&out, 16);
    assert_int_equal(mime_message_prepare("To: b@x.org\n\nbody\n", 18, &opt, &out, NULL, &err), -1);
    assert_int_equal(out.len, 0);
    mo_buf_free(&out);
    mime_address_clear(&from);
}

/* ---- the command line ---------------------------------------------------------------- */

#define MAX_ARGS 20

static const struct {
    const char *what;
    const char *argv[MAX_ARGS]; /* NULL-terminated, argv[0] included */
    int status;
    bool t, i, v;
    const char *from;
    const char *name;
    const char *rcpts; /* joined by ' ' */
    const char *why;   /* a part of the reason, for a failure */
} argv_cases[] = {
    {"PHP's mail()", {"sendmail", "-t", "-i", NULL}, 0, true, true, false, NULL, NULL, "", NULL},
    {"PHP with -f in additional_params",
     {"sendmail", "-t", "-i", "-fbounce@x.org", NULL},
     0,
     true,
     true,
     false,
     "bounce@x.org",
     NULL,
     "",
     NULL},
    {"cron",
     {"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root", NULL},
     0,
     false,
     true,
     false,
     NULL,
     "CronDaemon",
     "root",
     NULL},
    {"-f and --",
     {"sendmail", "-f", "bounce@x", "--", "rcpt@y", NULL},
     0,
     false,
     false,
     false,
     "bounce@x",
     NULL,
     "rcpt@y",
     NULL},
    {"-- keeps a dash recipient",
     {"sendmail", "--", "-odd@y.org", NULL},
     0,
     false,
     false,
     false,
     NULL,
     NULL,
     "-odd@y.org",
     NULL},
    {"-oi",
     {"mailout-sendmail", "-oi", "a@b.co", NULL},
     0,
     false,
     true,
     false,
     NULL,
     NULL,
     "a@b.co",
     NULL},
    {"clustered -ti and -v", {"sendmail", "-tiv", NULL}, 0, true, true, true, NULL, NULL, "", NULL},
    {"-r is -f",
     {"sendmail", "-r", "me@x.org", "a@b.co", NULL},
     0,
     false,
     false,
     false,
     "me@x.org",
     NULL,
     "a@b.co",
     NULL},
    {"-F NAME apart",
     {"sendmail", "-F", "Web Shop", "a@b.co", NULL},
     0,
     false,
     false,
     false,
     NULL,
     "Web Shop",
     "a@b.co",
     NULL},
    {"options after recipients",
     {"sendmail", "a@b.co", "-i", "c@d.co", NULL},
     0,
     false,
     true,
     false,
     NULL,
     NULL,
     "a@b.co c@d.co",
     NULL},
    {"ignored options with values",
     {"sendmail", "-N", "never", "-R", "hdrs", "-V", "envid", "-X", "/tmp/log", "-B", "7BIT", "-h",
      "5", "-L", "tag", "a@b.co", NULL},
     0,
     false,
     false,
     false,
     NULL,
     NULL,
     "a@b.co",
     NULL},
    {"ignored -o options",
     {"sendmail", "-odb", "-odi", "-oQ/var/spool", "-oee", "-om", "-Am", "-bm", "-U", "-m", "-n",
      "-G", "a@b.co", NULL},
     0,
     false,
     false,
     false,
     NULL,
     NULL,
     "a@b.co",
     NULL},
    {"-O MaxMessageSize",
     {"sendmail", "-O", "MaxMessageSize=1000", "a@b.co", NULL},
     0,
     false,
     false,
     false,
     NULL,
     NULL,
     "a@b.co",
     NULL},
    {"no recipients is not a parse error",
     {"sendmail", NULL},
     0,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     NULL},
    {"unknown option",
     {"sendmail", "-k", "a@b.co", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "unknown option -k"},
    {"unknown long option",
     {"sendmail", "--verbose", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "unknown option --verbose"},
    {"-f without its value",
     {"sendmail", "-t", "-f", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "needs a value"},
    {"-bs refused",
     {"sendmail", "-bs", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "SMTP on standard input"},
    {"-bd refused",
     {"sendmail", "-bd", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "mailout serve"},
    {"-bp refused",
     {"sendmail", "-bp", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "mailout queue list"},
    {"-bi refused",
     {"sendmail", "-bi", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "aliases"},
    {"-bv refused",
     {"sendmail", "-bv", "a@b.co", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "only -bm"},
    {"-q refused",
     {"sendmail", "-q", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "mailout queue run"},
    {"-q30m refused",
     {"sendmail", "-q30m", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "queue runs"},
    {"-O with a bad size",
     {"sendmail", "-OMaxMessageSize=lots", NULL},
     EX_USAGE,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "MaxMessageSize"},
    {"injection through -F",
     {"sendmail", "-F", "Evil\r\nBcc: x@y.z", "a@b.co", NULL},
     EX_DATAERR,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "line break"},
    {"injection through -F, LF only",
     {"sendmail", "-FEvil\nBcc: x@y.z", NULL},
     EX_DATAERR,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "line break"},
    {"injection through -f",
     {"sendmail", "-f", "a@b.co\nBcc: x@y.z", NULL},
     EX_DATAERR,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "line break"},
    {"injection through -r",
     {"sendmail", "-ra@b.co\r", NULL},
     EX_DATAERR,
     false,
     false,
     false,
     NULL,
     NULL,
     "",
     "line break"},
};

static void
test_args(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(argv_cases) / sizeof(argv_cases[0]); i++) {
        struct sendmail_args a;
        char why[256];
        char rcpts[512] = "";
        size_t pos = 0;
        int argc = 0;
        int st;

        while (argv_cases[i].argv[argc] != NULL)
            argc++;
        st = sendmail_args_parse(argc, (char *const *)argv_cases[i].argv, &a, why, sizeof(why));
        if (st != argv_cases[i].status)
            fail_msg("%s: status %d (%s), want %d", argv_cases[i].what, st, why,
                     argv_cases[i].status);
        if (st != 0) {
            if (strstr(why, argv_cases[i].why) == NULL)
                fail_msg("%s: reason \"%s\" lacks \"%s\"", argv_cases[i].what, why,
                         argv_cases[i].why);
            assert_null(strpbrk(why, "\r\n"));
            sendmail_args_clear(&a);
            continue;
        }
        assert_int_equal(a.extract_recipients, argv_cases[i].t);
        assert_int_equal(a.ignore_dots, argv_cases[i].i);
        assert_int_equal(a.verbose, argv_cases[i].v);
        if (argv_cases[i].from == NULL)
            assert_null(a.from);
        else
            assert_string_equal(a.from, argv_cases[i].from);
        if (argv_cases[i].name == NULL)
            assert_null(a.full_name);
        else
            assert_string_equal(a.full_name, argv_cases[i].name);
        for (size_t k = 0; k < a.n_rcpts; k++)
            pos += (size_t)snprintf(rcpts + pos, sizeof(rcpts) - pos, "%s%s", k ? " " : "",
                                    a.rcpts[k]);
        if (strcmp(rcpts, argv_cases[i].rcpts) != 0)
            fail_msg("%s: recipients \"%s\", want \"%s\"", argv_cases[i].what, rcpts,
                     argv_cases[i].rcpts);
        sendmail_args_clear(&a);
    }
}

static void
test_args_max_size_and_help(void **state)
{
    const char *max[] = {"sendmail", "-OMaxMessageSize=12345", NULL};
    const char *help[] = {"sendmail", "--help", NULL};
    struct sendmail_args a;
    char why[256];

    (void)state;
    assert_int_equal(sendmail_args_parse(2, (char *const *)max, &a, why, sizeof(why)), 0);
    assert_int_equal(a.max_bytes, 12345);
    sendmail_args_clear(&a);
    assert_int_equal(sendmail_args_parse(2, (char *const *)help, &a, why, sizeof(why)), 0);
    assert_true(a.help);
    sendmail_args_clear(&a);
    sendmail_args_clear(NULL);
}

/* ---- the end of the input ------------------------------------------------------------ */

static const struct {
    const char *in;
    bool ends;
    size_t end; /* where the message ends, when it does */
} dot_cases[] = {
    {"Subject: x\n\nbody\n.\nafter\n", true, 17},
    {"Subject: x\r\n\r\nbody\r\n.\r\nafter", true, 20},
    {".\n", true, 0},
    {"a\n..\nb\n", false, 0}, /* ".." is not the end (and is kept: no unstuffing) */
    {"a\n.x\n", false, 0},
    {"a\n. \n", false, 0},
    {"a\nb.\n", false, 0},
    {"a\n.", false, 0}, /* not a complete line yet */
};

static void
test_input_end(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
        const char *in = dot_cases[i].in;
        size_t scan = 0;
        size_t end = 0;
        bool ends = sendmail_input_end(in, strlen(in), &scan, &end);

        if (ends != dot_cases[i].ends)
            fail_msg("case %zu: ends %d", i, ends);
        if (ends)
            assert_int_equal(end, dot_cases[i].end);
    }
    /* fed in pieces: the scan position carries over, a line split across reads is found */
    {
        const char *in = "line one\nline two\n.\n";
        size_t scan = 0;
        size_t end = 0;

        assert_false(sendmail_input_end(in, 12, &scan, &end));
        assert_int_equal(scan, 9);
        assert_false(sendmail_input_end(in, 19, &scan, &end));
        assert_true(sendmail_input_end(in, strlen(in), &scan, &end));
        assert_int_equal(end, 18);
    }
}

/* ---- exit status ------------------------------------------------------------------------ */

static void
test_exit_status(void **state)
{
    static const struct {
        enum mo_category category;
        bool temporary;
        const char *text;
        int want;
    } cases[] = {
        {MO_ERR_CONFIG, false, "too large", EX_DATAERR},
        {MO_ERR_STORAGE, true, "the disk is full", EX_TEMPFAIL},
        {MO_ERR_STORAGE, true, "the database stayed busy", EX_TEMPFAIL},
        {MO_ERR_STORAGE, false, "no permission", EX_CANTCREAT},
        {MO_ERR_STORAGE, false, "the disk reported an I/O error (write x)", EX_IOERR},
        {MO_ERR_STORAGE, false, "the disk reported a read or write error", EX_IOERR},
        {MO_ERR_INTERNAL, false, "out of memory", EX_SOFTWARE},
        {MO_ERR_CONNECT, true, "later", EX_TEMPFAIL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mo_error err;

        mo_error_set(&err, cases[i].category, NULL, "%s", cases[i].text);
        err.temporary = cases[i].temporary;
        assert_int_equal(sendmail_exit_status(&err), cases[i].want);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_parse),
        cmocka_unit_test(test_headers_find_and_limits),
        cmocka_unit_test(test_recipients_from_headers),
        cmocka_unit_test(test_recipients_errors),
        cmocka_unit_test(test_decode_words),
        cmocka_unit_test(test_prepare_adds_and_removes),
        cmocka_unit_test(test_prepare_from),
        cmocka_unit_test(test_prepare_local_user_then_complete),
        cmocka_unit_test(test_prepare_encodes_8bit),
        cmocka_unit_test(test_prepare_line_ends_and_body),
        cmocka_unit_test(test_prepare_refuses),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_args_max_size_and_help),
        cmocka_unit_test(test_input_end),
        cmocka_unit_test(test_exit_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
