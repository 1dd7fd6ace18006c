/*
 * test_mime.c - unit tests of the MIME composer and its encoders: encoded
 * words (75-character limit, no split characters), quoted-printable, base64,
 * the choice between them, header folding limits, header injection errors,
 * multipart structure, attachments and Message-IDs.
 * The encoders are reached through the module's private header on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mime/mime.h"
#include "mime/mime_internal.h"

#define MAX_MSG (4u << 20)

static const char subject_ru[] = "Заказ №42 подтверждён — спасибо! ✓";

/* ---- helpers ----------------------------------------------------------- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t
b64_decode(const char *in, size_t len, unsigned char *out)
{
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);

    assert_true(n >= 0);
    while (len > 0 && in[len - 1] == '=') {
        len--;
        n--;
    }
    return (size_t)n;
}

/* Decodes one encoded word into out (appending); fails the test on a malformed word. */
static void
ew_decode_word(const char *w, size_t len, struct mo_buf *out)
{
    unsigned char bin[128];
    const char *text = w + 10;
    size_t text_len = len - 12;
    struct mo_error err;

    assert_true(len > 12);
    assert_memory_equal(w, "=?UTF-8?", 8);
    assert_memory_equal(w + len - 2, "?=", 2);
    if (w[8] == 'B') {
        size_t n = b64_decode(text, text_len, bin);
        assert_int_equal(mo_buf_append(out, bin, n, &err), 0);
        return;
    }
    assert_int_equal(w[8], 'Q');
    for (size_t i = 0; i < text_len; i++) {
        char c = text[i];

        if (c == '=') {
            assert_true(i + 2 < text_len);
            c = (char)(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 2;
        } else if (c == '_') {
            c = ' ';
        }
        assert_int_equal(mo_buf_append(out, &c, 1, &err), 0);
    }
}

/*
 * Decodes space-separated encoded words; checks each is at most max_first
 * (first) or MIME_EW_MAX (others) long and holds whole UTF-8 characters.
 */
static void
ew_decode_all(const char *s, size_t first_max, struct mo_buf *out)
{
    size_t start = 0;
    size_t len = strlen(s);
    bool is_first = true;

    for (size_t i = 0; i <= len; i++) {
        struct mo_buf word;
        struct mo_error err;

        if (i < len && s[i] != ' ')
            continue;
        mo_buf_init(&word, 1024);
        assert_true(i - start <= (is_first ? first_max : MIME_EW_MAX));
        ew_decode_word(s + start, i - start, &word);
        assert_true(mime_utf8_valid(mo_buf_cstr(&word), word.len));
        assert_int_equal(mo_buf_append(out, word.data, word.len, &err), 0);
        mo_buf_free(&word);
        is_first = false;
        start = i + 1;
    }
}

static void
qp_decode(const char *s, size_t len, struct mo_buf *out)
{
    struct mo_error err;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '=' && i + 2 < len && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
            continue;
        }
        if (c == '=') {
            assert_true(i + 2 < len);
            assert_true(hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0);
            c = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        }
        assert_int_equal(mo_buf_append(out, &c, 1, &err), 0);
    }
}

/*
 * Every line ends in CRLF (no bare CR or LF), no line passes 998, no line
 * is only white space in the headers, and header lines stay within
 * header_max.
 */
static void
check_lines(const char *m, size_t len, size_t header_max)
{
    bool in_headers = true;
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\n')
            fail_msg("bare LF at %zu", i);
        if (m[i] != '\r')
            continue;
        if (i + 1 >= len || m[i + 1] != '\n')
            fail_msg("bare CR at %zu", i);
        if (i - start > MIME_LINE_HARD)
            fail_msg("line of %zu at %zu", i - start, start);
        if (in_headers && i == start)
            in_headers = false;
        if (in_headers && i - start > header_max)
            fail_msg("header line of %zu: %.*s", i - start, (int)(i - start), m + start);
        if (in_headers && strspn(m + start, " \t") == i - start)
            fail_msg("blank folded line at %zu", start);
        start = i + 2;
        i++;
    }
    assert_int_equal(start, len); /* the message ends in CRLF */
}

/* Copies the unfolded value of the first top-level header name into out. */
static bool
header_value(const char *m, const char *name, struct mo_buf *out)
{
    const char *end = strstr(m, "\r\n\r\n");
    size_t name_len = strlen(name);
    const char *p = m;
    struct mo_error err;

    if (end == NULL)
        end = m + strlen(m); /* a lone header block */
    mo_buf_reset(out);
    while (p != NULL && p < end) {
        if (strncmp(p, name, name_len) == 0 && p[name_len] == ':') {
            const char *v = p + name_len + 1;

            for (;;) {
                const char *eol = strstr(v, "\r\n");
                assert_int_equal(mo_buf_append(out, v, (size_t)(eol - v), &err), 0);
                if (eol[2] != ' ' && eol[2] != '\t')
                    break;
                v = eol + 2;
            }
            if (out->len > 0 && out->data[0] == ' ')
                mo_buf_consume(out, 1);
            return true;
        }
        p = strstr(p, "\r\n");
        if (p != NULL)
            p += 2;
    }
    return false;
}

struct fixture {
    struct mime_address from;
    struct mime_address *to;
    size_t n_to;
    struct mime_message msg;
    struct mo_buf out;
    char id[320];
};

static void
fixture_init(struct fixture *fx, const char *from, const char *to)
{
    struct mo_error err;

    memset(fx, 0, sizeof(*fx));
    assert_int_equal(mime_address_parse(from, "from", &fx->from, &err), 0);
    assert_int_equal(mime_address_list_parse(to, "to", &fx->to, &fx->n_to, &err), 0);
    fx->msg.from = &fx->from;
    fx->msg.to = fx->to;
    fx->msg.n_to = fx->n_to;
    fx->msg.date = 1234567890;
    mo_buf_init(&fx->out, MAX_MSG);
}

static void
fixture_free(struct fixture *fx)
{
    mime_address_clear(&fx->from);
    mime_address_list_free(fx->to, fx->n_to);
    mo_buf_free(&fx->out);
}

static const char *
compose_ok(struct fixture *fx)
{
    struct mo_error err;

    mo_buf_reset(&fx->out);
    if (mime_compose(&fx->msg, &fx->out, fx->id, sizeof(fx->id), &err) != 0)
        fail_msg("compose: %s (field %s)", err.text, err.field ? err.field : "-");
    check_lines(fx->out.data, fx->out.len, MIME_LINE_SOFT);
    assert_null(strstr(fx->out.data, "Bcc:"));
    return fx->out.data;
}

/* ---- encoded words ----------------------------------------------------- */

static void
test_ew_limits(void **state)
{
    static const char *const inputs[] = {
        "Hello",
        "Jöhn Dœ",
        subject_ru,
        "Ваш заказ №12345 подтверждён и будет отправлен в ближайшее время — спасибо за покупку "
        "в нашем магазине! Ваш заказ №12345 подтверждён и будет отправлен в ближайшее время",
        "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
        "東京都千代田区千代田一丁目一番一号の皇居の近くにある会社からのお知らせです",
        "plain ascii with = and ? and _ and a long tail to force a few words of Q encoding "
        "=?UTF-8?Q?not-a-word?= more text here",
        "é",
        "aé😀b東",
    };
    static const size_t first_max[] = {10, 24, 40, 69, 75, 200};
    (void)state;

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        for (size_t k = 0; k < sizeof(first_max) / sizeof(first_max[0]); k++) {
            struct mo_buf enc;
            struct mo_buf dec;
            struct mo_error err;
            size_t limit = first_max[k] < MIME_EW_MIN   ? MIME_EW_MIN
                           : first_max[k] > MIME_EW_MAX ? MIME_EW_MAX
                                                        : first_max[k];

            mo_buf_init(&enc, 1 << 16);
            mo_buf_init(&dec, 1 << 16);
            assert_int_equal(mime_ew_encode(inputs[i], strlen(inputs[i]), first_max[k], &enc, &err),
                             0);
            ew_decode_all(mo_buf_cstr(&enc), limit, &dec);
            assert_int_equal(dec.len, strlen(inputs[i]));
            assert_memory_equal(dec.data, inputs[i], dec.len);
            mo_buf_free(&enc);
            mo_buf_free(&dec);
        }
    }
}

static void
test_ew_choice(void **state)
{
    static const struct {
        const char *in;
        const char *expect;
    } cases[] = {
        {"Zoë", "=?UTF-8?Q?Zo=C3=AB?="},           /* mostly ASCII: Q is shorter */
        {"Заказ", "=?UTF-8?B?0JfQsNC60LDQtw==?="}, /* mostly non-ASCII: B */
        {"", ""},
        /* a long word ends right after a space when that keeps it half full */
        {"Ünïcödé Ünïcödé Ünïcödé Ünïcödé Ünïcödé",
         "=?UTF-8?B?w5xuw69jw7Zkw6kgw5xuw69jw7Zkw6kgw5xuw69jw7Zkw6kg?= "
         "=?UTF-8?B?w5xuw69jw7Zkw6kgw5xuw69jw7Zkw6k=?="},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mo_buf enc;
        struct mo_error err;

        mo_buf_init(&enc, 4096);
        assert_int_equal(mime_ew_encode(cases[i].in, strlen(cases[i].in), 75, &enc, &err), 0);
        assert_string_equal(mo_buf_cstr(&enc), cases[i].expect);
        mo_buf_free(&enc);
    }
}

/* ---- body encodings ---------------------------------------------------- */

static void
test_qp_exact(void **state)
{
    static const struct {
        const char *in;
        const char *expect;
    } cases[] = {
        {"", ""},
        {"a=b", "a=3Db=\r\n"}, /* no final CRLF: a soft break keeps decoding exact */
        {"trailing \r\n", "trailing=20\r\n"},
        {"tab\t\r\n", "tab=09\r\n"},
        {"in the middle\r\n", "in the middle\r\n"},
        {".\r\n", "=2E\r\n"},
        {"From me\r\nFrom\r\n", "=46rom me\r\nFrom\r\n"},
        {"Café\r\n", "Caf=C3=A9\r\n"},
        {"a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
        {"x\ny", "x=0Ay=\r\n"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mo_buf enc;
        struct mo_error err;

        mo_buf_init(&enc, 4096);
        assert_int_equal(
            mime_qp_encode((const unsigned char *)cases[i].in, strlen(cases[i].in), &enc, &err), 0);
        assert_string_equal(mo_buf_cstr(&enc), cases[i].expect);
        mo_buf_free(&enc);
    }
}

static void
test_qp_long_lines(void **state)
{
    struct mo_buf in;
    struct mo_buf enc;
    struct mo_buf dec;
    struct mo_error err;
    size_t start = 0;
    (void)state;

    mo_buf_init(&in, 1 << 20);
    mo_buf_init(&enc, 1 << 20);
    mo_buf_init(&dec, 1 << 20);
    for (int i = 0; i < 300; i++)
        assert_int_equal(mo_buf_append_str(&in,
                                           i % 7 == 0   ? "é"
                                           : i % 5 == 0 ? "= "
                                                        : "a",
                                           &err),
                         0);
    assert_int_equal(mo_buf_append_str(&in, " \r\n.\r\n", &err), 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(mo_buf_append(&in, "x", 1, &err), 0);
    assert_int_equal(mime_qp_encode((const unsigned char *)in.data, in.len, &enc, &err), 0);
    for (size_t i = 0; i + 1 < enc.len; i++) {
        if (enc.data[i] != '\r')
            continue;
        assert_true(i - start <= 76); /* RFC 2045 6.7 (5) */
        assert_true(i == start || (enc.data[i - 1] != ' ' && enc.data[i - 1] != '\t'));
        start = i + 2;
    }
    qp_decode(enc.data, enc.len, &dec);
    assert_int_equal(dec.len, in.len);
    assert_memory_equal(dec.data, in.data, in.len);
    mo_buf_free(&in);
    mo_buf_free(&enc);
    mo_buf_free(&dec);
}

static void
test_base64(void **state)
{
    unsigned char data[58];
    struct mo_buf enc;
    struct mo_error err;
    (void)state;

    memset(data, 'z', sizeof(data));
    mo_buf_init(&enc, 4096);
    assert_int_equal(mime_base64_encode((const unsigned char *)"hello", 5, &enc, &err), 0);
    assert_string_equal(mo_buf_cstr(&enc), "aGVsbG8=\r\n");
    mo_buf_reset(&enc);
    assert_int_equal(mime_base64_encode(data, 57, &enc, &err), 0);
    assert_int_equal(enc.len, 76 + 2); /* exactly one full line */
    mo_buf_reset(&enc);
    assert_int_equal(mime_base64_encode(data, 58, &enc, &err), 0);
    assert_int_equal(enc.len, 76 + 2 + 4 + 2);
    mo_buf_reset(&enc);
    assert_int_equal(mime_base64_encode(data, 0, &enc, &err), 0);
    assert_int_equal(enc.len, 0);
    mo_buf_free(&enc);
}

static void
test_cte_choose(void **state)
{
    static char long_line[1200];
    static const struct {
        const char *in;
        enum mime_cte expect;
    } cases[] = {
        {"", MIME_CTE_7BIT},
        {"hello\r\nworld\r\n", MIME_CTE_7BIT},
        {"Café au lait, s'il vous plaît\r\n", MIME_CTE_QP},
        {"Привет, как дела? Всё хорошо.\r\n", MIME_CTE_BASE64},
        {"bare\rcr", MIME_CTE_QP},
        {long_line, MIME_CTE_QP}, /* ASCII but a line over 998 */
    };
    (void)state;

    memset(long_line, 'a', sizeof(long_line) - 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(mime_cte_choose((const unsigned char *)cases[i].in, strlen(cases[i].in)),
                         cases[i].expect);
    long_line[998] = '\0';
    assert_int_equal(mime_cte_choose((const unsigned char *)long_line, 998), MIME_CTE_7BIT);
}

static void
test_crlf_normalize(void **state)
{
    static const struct {
        const char *in;
        const char *expect;
    } cases[] = {
        {"a\nb", "a\r\nb"},     {"a\rb", "a\r\nb"}, {"a\r\nb", "a\r\nb"}, {"a\n\rb", "a\r\n\r\nb"},
        {"\r\r\n", "\r\n\r\n"}, {"", ""},           {"end\n", "end\r\n"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mo_buf out;
        struct mo_error err;

        mo_buf_init(&out, 64);
        assert_int_equal(mime_crlf_normalize(cases[i].in, strlen(cases[i].in), &out, &err), 0);
        assert_string_equal(mo_buf_cstr(&out), cases[i].expect);
        mo_buf_free(&out);
    }
}

/* ---- folding ----------------------------------------------------------- */

static void
test_fold_limits(void **state)
{
    struct mo_buf out;
    struct mo_buf text;
    struct mo_buf unfolded;
    struct mime_fold f;
    struct mo_error err;
    char word[1000];
    (void)state;

    mo_buf_init(&out, 1 << 16);
    mo_buf_init(&text, 1 << 16);
    mo_buf_init(&unfolded, 1 << 16);
    for (int i = 0; i < 60; i++)
        assert_int_equal(
            mo_buf_appendf(&text, &err, "%sword%d%s", i ? " " : "", i, i % 9 == 0 ? "  " : ""), 0);
    assert_int_equal(mime_fold_begin(&f, &out, "X-Test", "header", &err), 0);
    assert_int_equal(mime_fold_text(&f, text.data, text.len, false, &err), 0);
    assert_int_equal(mime_fold_end(&f, &err), 0);
    check_lines(out.data, out.len, MIME_LINE_SOFT);
    assert_true(strstr(out.data, "\r\n ") != NULL); /* it did fold */
    assert_true(header_value(out.data, "X-Test", &unfolded));
    /* unfolding (dropping CRLF) gives the text back exactly */
    assert_string_equal(mo_buf_cstr(&unfolded), text.data);

    /* a word that cannot fit on a line of 998 is an error naming the field */
    memset(word, 'w', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    mo_buf_reset(&out);
    assert_int_equal(mime_fold_begin(&f, &out, "X-Test", "header", &err), 0);
    assert_int_equal(mime_fold_text(&f, word, strlen(word), false, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "header");
    mo_buf_free(&out);
    mo_buf_free(&text);
    mo_buf_free(&unfolded);
}

/* ---- composing --------------------------------------------------------- */

static void
test_compose_headers(void **state)
{
    static const char *const order[] = {
        "Date: ",
        "\r\nFrom: ",
        "\r\nTo: ",
        "\r\nReply-To: ",
        "\r\nSubject: ",
        "\r\nMessage-ID: <",
        "\r\nMIME-Version: 1.0\r\n",
        "\r\nX-Mailer: ",
        "\r\nContent-Type: text/plain; charset=utf-8",
        "\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHello\r\n",
    };
    struct mime_header extra[] = {{"X-Mailer", "mailout"}, {"X-Note", "Grüße"}};
    struct mime_address reply = {0};
    struct fixture fx;
    struct mo_error err;
    const char *m;
    const char *prev;
    (void)state;

    setenv("TZ", "UTC", 1);
    tzset();
    fixture_init(&fx, "Shop <shop@example.com>", "a@b.co, \"Doe, John\" <j@x.co>");
    assert_int_equal(mime_address_parse("help@example.com", "reply_to", &reply, &err), 0);
    fx.msg.reply_to = &reply;
    fx.msg.subject = "Hi";
    fx.msg.text = "Hello";
    fx.msg.headers = extra;
    fx.msg.n_headers = 2;
    m = compose_ok(&fx);
    prev = m;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *p = strstr(m, order[i]);

        if (p == NULL || p < prev)
            fail_msg("\"%s\" missing or out of order in:\n%s", order[i], m);
        prev = p;
    }
    assert_non_null(strstr(m, "Date: Fri, 13 Feb 2009 23:31:30 +0000\r\n"));
    assert_non_null(strstr(m, "From: Shop <shop@example.com>\r\n"));
    assert_non_null(strstr(m, "To: a@b.co, \"Doe, John\" <j@x.co>\r\n"));
    assert_null(strstr(m, "Cc:"));
    /* a non-ASCII extra header value goes out as an encoded word */
    assert_non_null(strstr(m, "\r\nX-Note: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"));
    mime_address_clear(&reply);
    fixture_free(&fx);
}

static void
test_compose_undisclosed(void **state)
{
    struct fixture fx;
    struct mime_address cc = {0};
    struct mo_error err;
    const char *m;
    (void)state;

    fixture_init(&fx, "shop@example.com", "");
    m = compose_ok(&fx);
    assert_non_null(strstr(m, "\r\nTo: undisclosed-recipients:;\r\n"));
    assert_non_null(strstr(m, "\r\nSubject:\r\n")); /* NULL subject: empty */
    /* Cc only: no To header at all */
    assert_int_equal(mime_address_parse("c@d.co", "cc", &cc, &err), 0);
    fx.msg.cc = &cc;
    fx.msg.n_cc = 1;
    m = compose_ok(&fx);
    assert_null(strstr(m, "\r\nTo:"));
    assert_non_null(strstr(m, "\r\nCc: c@d.co\r\n"));
    mime_address_clear(&cc);
    fixture_free(&fx);
}

/* Non-ASCII and long subjects become encoded words of <= 75 that decode back. */
static void
test_compose_subjects(void **state)
{
    static const char *const subjects[] = {
        "Hello world",
        subject_ru,
        "Ваш заказ №12345 подтверждён и будет отправлен в ближайшее время — спасибо за покупку "
        "в нашем магазине! Ваш заказ №12345 подтверждён и будет отправлен в ближайшее время — "
        "спасибо!",
        "A plain ASCII subject that is long enough to need folding at least once or twice, "
        "because it goes on and on and on well past the seventy-eight character line",
        "  leading and  double spaces ",
        "looks like =?UTF-8?B?ZW5jb2RlZA==?= but is not",
        "tab\tinside",
        "https://example.com/a/very/long/url/without/any/space/that/cannot/be/folded/at/all/x",
        "",
    };
    struct fixture fx;
    struct mo_buf value;
    struct mo_buf dec;
    (void)state;

    fixture_init(&fx, "shop@example.com", "a@b.co");
    mo_buf_init(&value, 1 << 16);
    mo_buf_init(&dec, 1 << 16);
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
        const char *m;

        fx.msg.subject = subjects[i];
        m = compose_ok(&fx);
        assert_true(header_value(m, "Subject", &value));
        mo_buf_reset(&dec);
        if (strncmp(mo_buf_cstr(&value), "=?UTF-8?", 8) == 0)
            ew_decode_all(value.data, MIME_EW_MAX, &dec);
        else
            assert_int_equal(mo_buf_append_str(&dec, mo_buf_cstr(&value), NULL), 0);
        if (strcmp(mo_buf_cstr(&dec), subjects[i]) != 0)
            fail_msg("subject %zu came back as \"%s\"", i, mo_buf_cstr(&dec));
    }
    mo_buf_free(&value);
    mo_buf_free(&dec);
    fixture_free(&fx);
}

/* Long lists and names fold between addresses, under 78. */
static void
test_compose_address_folding(void **state)
{
    struct fixture fx;
    struct mo_buf list;
    struct mo_error err;
    const char *m;
    (void)state;

    mo_buf_init(&list, 1 << 16);
    for (int i = 0; i < 30; i++)
        assert_int_equal(mo_buf_appendf(&list, &err, "%sUser Number %d <user%d@example.com>",
                                        i ? ", " : "", i, i),
                         0);
    assert_int_equal(mo_buf_append_str(&list,
                                       ", Александр Сергеевич Пушкин Александр Сергеевич "
                                       "<pushkin@example.com>, \"Doe, John Very Long Quoted "
                                       "Display Name That Goes On And On Forever\" <j@x.co>",
                                       &err),
                     0);
    fixture_init(&fx, "Jöhn Dœ <j@example.com>", list.data);
    m = compose_ok(&fx); /* check_lines holds the header lines to 78 */
    assert_non_null(strstr(m, "From: =?UTF-8?B?SsO2aG4gRMWT?= <j@example.com>\r\n"));
    assert_non_null(strstr(m, ",\r\n User Number")); /* folds fall after a comma */
    mo_buf_free(&list);
    fixture_free(&fx);
}

static void
test_compose_injection(void **state)
{
    static const struct {
        int what; /* which part of the message carries the bad value */
        const char *value;
        const char *field;
    } cases[] = {
        {0, "Hi\r\nBcc: x@y.z", "subject"},
        {0, "Hi\nthere", "subject"},
        {0, "Hi\rthere", "subject"},
        {0, "bad \xff utf-8", "subject"},
        {1, "v\r\nBcc: x@y.z", "header"}, /* header value */
        {2, "X Bad", "header"},           /* header name with a space */
        {2, "X-Bad:", "header"},          /* header name with a colon */
        {2, "", "header"},
        {2, "Bcc", "header"},
        {2, "bcc", "header"},
        {2, "Subject", "header"},
        {2, "content-type", "header"},
        {2, "Message-ID", "header"},
        {2, "X-Ünï", "header"},
        {3, "a\r\nb.pdf", "attachment"}, /* file name */
        {3, "", "attachment"},
        {4, "Evil\r\nBcc: x@y.z", "to"}, /* display name */
        {5, "a\r\nb", "from"},           /* local part */
        {6, "Evil\nX", "reply_to"},
        {7, "Evil\rX", "cc"},
        {8, "<id@example.com>", "message_id"},
        {8, "id with space@x", "message_id"},
        {9, "text \xc3", "text"},
        {10, "html \xc3", "html"},
        {11, "text/plain\r\nX: y", "attachment"}, /* content type */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fixture fx;
        struct mime_header h = {"X-Ok", "fine"};
        struct mime_attachment att = {"a.txt", NULL, (const unsigned char *)"x", 1};
        struct mime_address bad = {.local = "a", .domain = "x.co", .domain_ascii = "x.co"};
        struct mo_error err;
        int rc;

        fixture_init(&fx, "shop@example.com", "a@b.co");
        assert_int_equal(mo_buf_append_str(&fx.out, "kept", &err), 0);
        switch (cases[i].what) {
        case 0:
            fx.msg.subject = cases[i].value;
            break;
        case 1:
            h.value = cases[i].value;
            break;
        case 2:
            h.name = cases[i].value;
            break;
        case 3:
            att.filename = cases[i].value;
            break;
        case 4:
            bad.display_name = (char *)cases[i].value;
            fx.msg.to = &bad;
            break;
        case 5:
            bad.local = (char *)cases[i].value;
            fx.msg.from = &bad;
            break;
        case 6:
            bad.display_name = (char *)cases[i].value;
            fx.msg.reply_to = &bad;
            break;
        case 7:
            bad.display_name = (char *)cases[i].value;
            fx.msg.cc = &bad;
            fx.msg.n_cc = 1;
            break;
        case 8:
            fx.msg.message_id = cases[i].value;
            break;
        case 9:
            fx.msg.text = cases[i].value;
            break;
        case 10:
            fx.msg.html = cases[i].value;
            break;
        case 11:
            att.content_type = cases[i].value;
            break;
        default:
            fail();
        }
        fx.msg.headers = &h;
        fx.msg.n_headers = 1;
        fx.msg.attachments = &att;
        fx.msg.n_attachments = 1;
        mo_error_clear(&err);
        rc = mime_compose(&fx.msg, &fx.out, NULL, 0, &err);
        if (rc != -1)
            fail_msg("case %zu was accepted", i);
        assert_int_equal(err.category, MO_ERR_CONFIG);
        if (err.field == NULL || strcmp(err.field, cases[i].field) != 0)
            fail_msg("case %zu: field %s, want %s (%s)", i, err.field ? err.field : "NULL",
                     cases[i].field, err.text);
        assert_null(strchr(err.text, '\r'));
        assert_null(strchr(err.text, '\n'));
        assert_string_equal(mo_buf_cstr(&fx.out), "kept"); /* out is left as it was */
        fixture_free(&fx);
    }
}

/* Returns the boundary of the multipart Content-Type found at or after p. */
static void
boundary_after(const char *p, const char *subtype, char *out, size_t out_size)
{
    char want[64];
    const char *b;
    const char *end;

    snprintf(want, sizeof(want), "Content-Type: multipart/%s;", subtype);
    p = strstr(p, want);
    assert_non_null(p);
    b = strstr(p, "boundary=\"");
    assert_non_null(b);
    b += strlen("boundary=\"");
    end = strchr(b, '"');
    assert_true((size_t)(end - b) < out_size);
    memcpy(out, b, (size_t)(end - b));
    out[end - b] = '\0';
    assert_memory_equal(out, "=_mo_", 5);
}

static const char *
find_after(const char *hay, const char *prev, const char *needle)
{
    const char *p = strstr(prev != NULL ? prev : hay, needle);

    if (p == NULL)
        fail_msg("\"%s\" not found in order", needle);
    return p + 1;
}

static void
test_compose_structure(void **state)
{
    static const unsigned char pdf[] = "%PDF-1.4 binary \x00\x01\x02\xff";
    struct mime_attachment atts[] = {
        {"счёт.pdf", NULL, pdf, sizeof(pdf)},
        {"photo.JPG", NULL, pdf, 3},
        {"data.bin", "application/x-custom", pdf, 3},
        {"noext", NULL, pdf, 0},
    };
    struct fixture fx;
    char mixed[64];
    char alt[64];
    char delim[80];
    const char *m;
    const char *p;
    (void)state;

    fixture_init(&fx, "shop@example.com", "a@b.co");
    /* text only, html only, nothing */
    fx.msg.text = "only text";
    m = compose_ok(&fx);
    assert_non_null(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_null(strstr(m, "multipart"));
    fx.msg.text = NULL;
    fx.msg.html = "<p>only html</p>";
    m = compose_ok(&fx);
    assert_non_null(strstr(m, "Content-Type: text/html; charset=utf-8\r\n"));
    assert_null(strstr(m, "text/plain"));
    fx.msg.html = NULL;
    m = compose_ok(&fx);
    assert_non_null(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Transfer-Encoding: 7bit\r\n\r\n"));
    assert_true(fx.out.len >= 4 && memcmp(m + fx.out.len - 4, "\r\n\r\n", 4) == 0);

    /* text + html: alternative, text first */
    fx.msg.text = "plain";
    fx.msg.html = "<b>rich</b>";
    m = compose_ok(&fx);
    boundary_after(m, "alternative", alt, sizeof(alt));
    snprintf(delim, sizeof(delim), "--%s\r\n", alt);
    p = find_after(m, NULL, delim);
    p = find_after(m, p, "Content-Type: text/plain");
    p = find_after(m, p, delim);
    p = find_after(m, p, "Content-Type: text/html");
    snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", alt);
    find_after(m, p, delim);

    /* attachments: mixed wraps alternative, then each attachment */
    fx.msg.attachments = atts;
    fx.msg.n_attachments = sizeof(atts) / sizeof(atts[0]);
    m = compose_ok(&fx);
    boundary_after(m, "mixed", mixed, sizeof(mixed));
    boundary_after(m, "alternative", alt, sizeof(alt));
    assert_string_not_equal(mixed, alt);
    snprintf(delim, sizeof(delim), "--%s\r\n", mixed);
    p = find_after(m, NULL, delim);
    p = find_after(m, p, "Content-Type: multipart/alternative");
    p = find_after(m, p, delim);
    p = find_after(m, p, "Content-Type: application/pdf;");
    p = find_after(m, p, "name=\"=?UTF-8?B?0YHRh9GR0YIucGRm?=\"");
    p = find_after(m, p, "Content-Disposition: attachment;");
    p = find_after(m, p, "filename*=utf-8''%D1%81%D1%87%D1%91%D1%82.pdf\r\n");
    p = find_after(m, p,
                   "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgYmluYXJ5IAABAv8A\r\n");
    p = find_after(m, p, "Content-Type: image/jpeg; name=\"photo.JPG\"\r\n");
    p = find_after(m, p, "Content-Disposition: attachment; filename=\"photo.JPG\"\r\n");
    p = find_after(m, p, "Content-Type: application/x-custom; name=\"data.bin\"\r\n");
    p = find_after(m, p, "Content-Type: application/octet-stream; name=\"noext\"\r\n");
    snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", mixed);
    find_after(m, p, delim);
    fixture_free(&fx);
}

static void
test_compose_content_types(void **state)
{
    static const struct {
        const char *name;
        const char *type;
    } cases[] = {
        {"a.pdf", "application/pdf"},
        {"a.png", "image/png"},
        {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},
        {"a.TXT", "text/plain"},
        {"a.html", "text/html"},
        {"a.csv", "text/csv"},
        {"a.zip", "application/zip"},
        {"a.json", "application/json"},
        {"a.tar.gz", "application/octet-stream"},
        {"a.", "application/octet-stream"},
    };
    struct fixture fx;
    (void)state;

    fixture_init(&fx, "shop@example.com", "a@b.co");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mime_attachment att = {cases[i].name, NULL, (const unsigned char *)"x", 1};
        char want[128];

        fx.msg.attachments = &att;
        fx.msg.n_attachments = 1;
        snprintf(want, sizeof(want), "Content-Type: %s; name=\"%s\"\r\n", cases[i].type,
                 cases[i].name);
        if (strstr(compose_ok(&fx), want) == NULL)
            fail_msg("%s: no \"%s\"", cases[i].name, want);
    }
    fixture_free(&fx);
}

/* Transfer encodings by content; the encoded body decodes to the CRLF text. */
static void
test_compose_body_encodings(void **state)
{
    static char long_line[2100];
    static const struct {
        const char *text;
        const char *cte;
        const char *normalized;
    } cases[] = {
        {"Hello\nworld\n", "7bit", "Hello\r\nworld\r\n"},
        {"line1\r\n.\nline3\rline4\r\n", "7bit", "line1\r\n.\r\nline3\r\nline4\r\n"},
        {"Café au lait\n", "quoted-printable", "Café au lait\r\n"},
        {"Привет, мир! Как дела?\n", "base64", "Привет, мир! Как дела?\r\n"},
        {long_line, "quoted-printable", long_line},
    };
    struct fixture fx;
    struct mo_buf dec;
    struct mo_error err;
    (void)state;

    memset(long_line, 'L', sizeof(long_line) - 1);
    fixture_init(&fx, "shop@example.com", "a@b.co");
    mo_buf_init(&dec, 1 << 16);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[64];
        const char *m;
        const char *body;
        size_t body_len;

        /* in multipart/alternative the body ends at the delimiter's CRLF */
        fx.msg.text = cases[i].text;
        fx.msg.html = "<p>x</p>";
        m = compose_ok(&fx);
        snprintf(want, sizeof(want), "Content-Transfer-Encoding: %s\r\n\r\n", cases[i].cte);
        body = strstr(m, want);
        if (body == NULL)
            fail_msg("case %zu: not %s", i, cases[i].cte);
        body += strlen(want);
        body_len = (size_t)(strstr(body, "\r\n--=_mo_") - body);
        mo_buf_reset(&dec);
        if (strcmp(cases[i].cte, "quoted-printable") == 0) {
            qp_decode(body, body_len, &dec);
        } else if (strcmp(cases[i].cte, "base64") == 0) {
            unsigned char bin[4096];
            char joined[4096];
            size_t n = 0;

            for (size_t k = 0; k < body_len; k++) {
                if (body[k] != '\r' && body[k] != '\n')
                    joined[n++] = body[k];
            }
            n = b64_decode(joined, n, bin);
            assert_int_equal(mo_buf_append(&dec, bin, n, &err), 0);
        } else {
            assert_int_equal(mo_buf_append(&dec, body, body_len, &err), 0);
        }
        assert_string_equal(mo_buf_cstr(&dec), cases[i].normalized);
    }
    mo_buf_free(&dec);
    fixture_free(&fx);
}

static void
test_message_id(void **state)
{
    char ids[100][80];
    struct fixture fx;
    struct mo_buf value;
    struct mo_error err;
    char small[8];
    char want[sizeof(fx.id) + 2];
    (void)state;

    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(mime_message_id_new("example.com", ids[i], sizeof(ids[i]), &err), 0);
        assert_int_equal(strlen(ids[i]), 32 + strlen("@example.com"));
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
        assert_string_equal(ids[i] + 32, "@example.com");
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(ids[i], ids[k]);
    }
    assert_int_equal(mime_message_id_new("[192.0.2.1]", ids[0], sizeof(ids[0]), &err), 0);
    assert_int_equal(mime_message_id_new("example.com", small, sizeof(small), &err), -1);
    assert_int_equal(err.category, MO_ERR_INTERNAL);
    assert_int_equal(mime_message_id_new("bad domain\r\n", ids[0], sizeof(ids[0]), &err), -1);
    assert_int_equal(err.category, MO_ERR_INTERNAL);
    assert_int_equal(mime_message_id_new(NULL, ids[0], sizeof(ids[0]), &err), -1);

    /* compose: generated from the sender's ASCII domain, returned without brackets */
    fixture_init(&fx, "shop@münchen.de", "a@b.co");
    mo_buf_init(&value, 1024);
    compose_ok(&fx);
    assert_true(header_value(fx.out.data, "Message-ID", &value));
    snprintf(want, sizeof(want), "<%s>", fx.id);
    assert_string_equal(mo_buf_cstr(&value), want);
    assert_non_null(strstr(fx.id, "@xn--mnchen-3ya.de"));
    /* a given id is used as it is */
    fx.msg.message_id = "order-42@shop.example.com";
    compose_ok(&fx);
    assert_string_equal(fx.id, "order-42@shop.example.com");
    assert_non_null(strstr(fx.out.data, "\r\nMessage-ID: <order-42@shop.example.com>\r\n"));
    /* a buffer too small for the id: INTERNAL, nothing written */
    mo_buf_reset(&fx.out);
    assert_int_equal(mime_compose(&fx.msg, &fx.out, small, sizeof(small), &err), -1);
    assert_int_equal(err.category, MO_ERR_INTERNAL);
    assert_int_equal(fx.out.len, 0);
    mo_buf_free(&value);
    fixture_free(&fx);
}

static void
test_compose_limit(void **state)
{
    static char word[1000];
    struct mime_header h = {"X-Long", word};
    struct fixture fx;
    struct mo_buf small;
    struct mo_error err;
    (void)state;

    fixture_init(&fx, "shop@example.com", "a@b.co");
    fx.msg.text = "some text that will not fit";
    mo_buf_init(&small, 100);
    assert_int_equal(mime_compose(&fx.msg, &small, NULL, 0, &err), -1);
    assert_int_equal(err.category, MO_ERR_INTERNAL);
    assert_int_equal(small.len, 0);
    mo_buf_free(&small);
    fx.msg.date = -5;
    assert_int_equal(mime_compose(&fx.msg, &fx.out, NULL, 0, &err), -1);
    assert_string_equal(err.field, "date");
    fx.msg.date = 0; /* now */
    compose_ok(&fx);

    /* an extra header with a word no line of 998 can hold */
    memset(word, 'w', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    fx.msg.headers = &h;
    fx.msg.n_headers = 1;
    mo_buf_reset(&fx.out);
    assert_int_equal(mime_compose(&fx.msg, &fx.out, NULL, 0, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "header");
    assert_int_equal(fx.out.len, 0);
    fixture_free(&fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ew_limits),
        cmocka_unit_test(test_ew_choice),
        cmocka_unit_test(test_qp_exact),
        cmocka_unit_test(test_qp_long_lines),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_cte_choose),
        cmocka_unit_test(test_crlf_normalize),
        cmocka_unit_test(test_fold_limits),
        cmocka_unit_test(test_compose_headers),
        cmocka_unit_test(test_compose_undisclosed),
        cmocka_unit_test(test_compose_subjects),
        cmocka_unit_test(test_compose_address_folding),
        cmocka_unit_test(test_compose_injection),
        cmocka_unit_test(test_compose_structure),
        cmocka_unit_test(test_compose_content_types),
        cmocka_unit_test(test_compose_body_encodings),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_compose_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
