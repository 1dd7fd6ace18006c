/*
 * test_auth.c - unit tests of the SASL client mechanisms (src/smtp/auth.c)
 * against the published vectors: RFC 4616 (PLAIN), RFC 2195 (CRAM-MD5),
 * RFC 7677 (SCRAM-SHA-256), Google's XOAUTH2 page, and byte-for-byte
 * credentials. In SMTP every SASL message travels base64-encoded
 * (RFC 4954), so the tests encode and decode with OpenSSL at the edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

#define MECH(m) (1u << (m))

/* base64 of len bytes into a static buffer (one at a time is enough here). */
static const char *
b64(const void *data, size_t len)
{
    static char enc[4096];

    assert_true(4 * ((len + 2) / 3) < sizeof(enc));
    EVP_EncodeBlock((unsigned char *)enc, data, (int)len);
    return enc;
}

static const char *
b64s(const char *s)
{
    return b64(s, strlen(s));
}

/* Decodes b64 into dec, returning the length without padding. */
static size_t
unb64(const char *in, unsigned char *dec, size_t dec_size)
{
    size_t len = strlen(in);
    size_t pad = 0;
    int n;

    assert_true(len / 4 * 3 <= dec_size);
    if (len >= 2)
        pad = (in[len - 1] == '=') + (in[len - 2] == '=');
    n = EVP_DecodeBlock(dec, (const unsigned char *)in, (int)len);
    assert_true(n >= 0);
    return (size_t)n - pad;
}

static struct smtp_auth *
new_auth(enum smtp_auth_mech mech, const char *user, const char *secret)
{
    struct mo_error err;
    struct smtp_auth *a = smtp_auth_new(mech, user, secret, &err);

    assert_non_null(a);
    return a;
}

/* ---- names and choice --------------------------------------------------- */

static void
test_auth_names(void **state)
{
    static const struct {
        const char *name;
        int rc;
        enum smtp_auth_mech mech;
    } cases[] = {
        {"PLAIN", 0, SMTP_AUTH_PLAIN},
        {"login", 0, SMTP_AUTH_LOGIN},
        {"Cram-Md5", 0, SMTP_AUTH_CRAM_MD5},
        {"scram-sha-256", 0, SMTP_AUTH_SCRAM_SHA_256},
        {"XOAUTH2", 0, SMTP_AUTH_XOAUTH2},
        {"AUTO", 0, SMTP_AUTH_AUTO},
        {"SCRAM-SHA-1", -1, 0},
        {"PLAIN ", -1, 0},
        {"", -1, 0},
        {NULL, -1, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum smtp_auth_mech m = SMTP_AUTH_COUNT;
        assert_int_equal(smtp_auth_mech_parse(cases[i].name, &m), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(m, cases[i].mech);
    }
    assert_string_equal(smtp_auth_mech_name(SMTP_AUTH_SCRAM_SHA_256), "SCRAM-SHA-256");
    assert_string_equal(smtp_auth_mech_name(SMTP_AUTH_CRAM_MD5), "CRAM-MD5");
    assert_string_equal(smtp_auth_mech_name(SMTP_AUTH_AUTO), "auto");
    assert_string_equal(smtp_auth_mech_name(SMTP_AUTH_COUNT), "?");
}

static void
test_auth_choose(void **state)
{
    static const unsigned all = MECH(SMTP_AUTH_PLAIN) | MECH(SMTP_AUTH_LOGIN) |
                                MECH(SMTP_AUTH_CRAM_MD5) | MECH(SMTP_AUTH_SCRAM_SHA_256) |
                                MECH(SMTP_AUTH_XOAUTH2);
    static const struct {
        unsigned offered;
        bool is_token;
        enum smtp_auth_mech want;
    } cases[] = {
        {all, false, SMTP_AUTH_SCRAM_SHA_256},
        {all & ~MECH(SMTP_AUTH_SCRAM_SHA_256), false, SMTP_AUTH_CRAM_MD5},
        {MECH(SMTP_AUTH_PLAIN) | MECH(SMTP_AUTH_LOGIN), false, SMTP_AUTH_PLAIN},
        {MECH(SMTP_AUTH_LOGIN) | MECH(SMTP_AUTH_XOAUTH2), false, SMTP_AUTH_LOGIN},
        {MECH(SMTP_AUTH_XOAUTH2), false, SMTP_AUTH_AUTO},
        {0, false, SMTP_AUTH_AUTO},
        {all, true, SMTP_AUTH_XOAUTH2},
        {all & ~MECH(SMTP_AUTH_XOAUTH2), true, SMTP_AUTH_AUTO},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(smtp_auth_choose(cases[i].offered, cases[i].is_token), cases[i].want);
}

static void
test_auth_new_errors(void **state)
{
    struct mo_error err;
    char *long_secret;
    (void)state;

    assert_null(smtp_auth_new(SMTP_AUTH_AUTO, "u", "p", &err));
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "auth");
    assert_null(smtp_auth_new(SMTP_AUTH_COUNT, "u", "p", &err));
    assert_string_equal(err.field, "auth");
    assert_null(smtp_auth_new(SMTP_AUTH_PLAIN, NULL, "p", &err));
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "username");
    assert_null(smtp_auth_new(SMTP_AUTH_PLAIN, "u", NULL, &err));
    assert_string_equal(err.field, "password");

    long_secret = malloc(9000);
    assert_non_null(long_secret);
    memset(long_secret, 'p', 8999);
    long_secret[8999] = '\0';
    assert_null(smtp_auth_new(SMTP_AUTH_PLAIN, "u", long_secret, &err));
    assert_string_equal(err.field, "password");
    assert_null(strstr(err.text, "ppp")); /* never the secret in the text */
    free(long_secret);

    smtp_auth_free(NULL);
}

/* ---- PLAIN -------------------------------------------------------------- */

static void
test_auth_plain_rfc4616(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_PLAIN, "tim", "tanstaaftanstaaf");
    struct mo_buf out;
    struct mo_error err;
    bool has = false;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
    assert_true(has);
    assert_string_equal(mo_buf_cstr(&out), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    /* A challenge after the response is not PLAIN. */
    assert_int_equal(smtp_auth_step(a, "", &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    assert_int_equal(out.len, 0);
    assert_int_equal(smtp_auth_finish(a, &err), 0);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

static void
test_auth_plain_bytes(void **state)
{
    static const struct {
        const char *user;
        const char *pass;
    } cases[] = {
        {"user", "123456"},
        {"user", "0"},
        {"user@example.com", " pass word "},
        {"user", "\"quoted\" 'single'"},
        {"user", "back\\slash\\"},
        {"user", "p\xc3\xa4ssw\xc3\xb6rd\xe2\x82\xac"},
        {"j\xc3\xbcrgen@example.de", "\xf0\x9f\x94\x91key"},
        {"user", ""},
        {"", "pass"},
        {"user", "=,+/\t~%$"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtp_auth *a = new_auth(SMTP_AUTH_PLAIN, cases[i].user, cases[i].pass);
        unsigned char want[256];
        unsigned char got[256];
        size_t ulen = strlen(cases[i].user);
        size_t plen = strlen(cases[i].pass);
        size_t got_len;
        struct mo_buf out;
        struct mo_error err;
        bool has = false;

        want[0] = '\0';
        memcpy(want + 1, cases[i].user, ulen);
        want[1 + ulen] = '\0';
        memcpy(want + 2 + ulen, cases[i].pass, plen);

        mo_buf_init(&out, 4096);
        assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
        assert_true(has);
        got_len = unb64(mo_buf_cstr(&out), got, sizeof(got));
        assert_int_equal(got_len, 2 + ulen + plen);
        assert_memory_equal(got, want, got_len);
        smtp_auth_free(a);
        mo_buf_wipe_free(&out);
    }
}

/* A server that answers "AUTH PLAIN" with an empty 334 gets the message then. */
static void
test_auth_plain_without_initial(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_PLAIN, "tim", "tanstaaftanstaaf");
    struct mo_buf out;
    struct mo_error err;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_step(a, "", &out, &err), 0);
    assert_string_equal(mo_buf_cstr(&out), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    assert_int_equal(smtp_auth_step(a, "", &out, &err), -1);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

/* ---- LOGIN -------------------------------------------------------------- */

static void
test_auth_login(void **state)
{
    /* The prompts vary; some servers send them in clear or not at all. */
    static const char *const prompts[][2] = {
        {"VXNlcm5hbWU6", "UGFzc3dvcmQ6"}, /* "Username:", "Password:" */
        {"dXNlcm5hbWU6", "cGFzc3dvcmQ6"}, /* lower case */
        {"Username:", "Password:"},
        {"", ""},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(prompts) / sizeof(prompts[0]); i++) {
        struct smtp_auth *a = new_auth(SMTP_AUTH_LOGIN, "me@example.com", "123 \"x\"\\");
        struct mo_buf out;
        struct mo_error err;
        bool has = true;

        mo_buf_init(&out, 4096);
        assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
        assert_false(has);
        assert_int_equal(out.len, 0);
        assert_int_equal(smtp_auth_step(a, prompts[i][0], &out, &err), 0);
        assert_string_equal(mo_buf_cstr(&out), b64s("me@example.com"));
        assert_int_equal(smtp_auth_step(a, prompts[i][1], &out, &err), 0);
        assert_string_equal(mo_buf_cstr(&out), b64s("123 \"x\"\\"));
        assert_int_equal(smtp_auth_step(a, "", &out, &err), -1);
        assert_int_equal(err.category, MO_ERR_PROTOCOL);
        assert_int_equal(out.len, 0);
        assert_int_equal(smtp_auth_finish(a, &err), 0);
        smtp_auth_free(a);
        mo_buf_wipe_free(&out);
    }
}

/* ---- CRAM-MD5 ----------------------------------------------------------- */

static void
test_auth_cram_md5_rfc2195(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_CRAM_MD5, "tim", "tanstaaftanstaaf");
    struct mo_buf out;
    struct mo_error err;
    bool has = true;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
    assert_false(has);
    assert_int_equal(
        smtp_auth_step(a, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", &out, &err),
        0);
    assert_string_equal(mo_buf_cstr(&out), "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    /* i.e. "tim b913a602c7eda7a495b4e6e7334d3890" */
    assert_int_equal(smtp_auth_step(a, "PDE4OT4=", &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

static void
test_auth_cram_md5_bad_challenges(void **state)
{
    static const char *const bad[] = {
        "",          /* empty */
        "PDE4OT4",   /* not a multiple of 4 */
        "PDE4O=T4",  /* padding inside */
        "PDE4OT4*",  /* not in the alphabet */
        "PDE=====",  /* too much padding */
        "Zm9v YmFy", /* a blank inside */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smtp_auth *a = new_auth(SMTP_AUTH_CRAM_MD5, "tim", "tanstaaftanstaaf");
        struct mo_buf out;
        struct mo_error err;

        mo_buf_init(&out, 4096);
        assert_int_equal(smtp_auth_step(a, bad[i], &out, &err), -1);
        assert_int_equal(err.category, MO_ERR_PROTOCOL);
        assert_int_equal(out.len, 0);
        smtp_auth_free(a);
        mo_buf_wipe_free(&out);
    }
}

/* ---- SCRAM-SHA-256 ------------------------------------------------------ */

#define RFC7677_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SERVER_FIRST                                                                       \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC7677_CLIENT_FINAL                                                                       \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"               \
    "Ute9ytag9zjfMHg"                                                                              \
    "sqmmiz7AndVQ="
/*
 * RFC 7677 3 as published. (A copy with "...mMhK1UVkdEfkNpXR2+qPDd4=" has
 * circulated; it is not the HMAC of this exchange and must fail, below.)
 */
#define RFC7677_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* What a server holding "pencil2" would sign for the same exchange (Python hashlib/hmac). */
#define SIG_PENCIL2 "C/2HRMQ0ruT7215VcBBnRElB6Lw19fGr/f7Vypn/VEE="

/* Runs the RFC 7677 exchange up to the server-final message. */
static struct smtp_auth *
scram_until_final(struct mo_buf *out)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_SCRAM_SHA_256, "user", "pencil");
    struct mo_error err;
    bool has = false;

    assert_int_equal(smtp_auth_set_nonce(a, RFC7677_CNONCE), 0);
    assert_int_equal(smtp_auth_initial(a, out, &has, &err), 0);
    assert_true(has);
    assert_string_equal(mo_buf_cstr(out), b64s("n,,n=user,r=" RFC7677_CNONCE));
    assert_string_equal(mo_buf_cstr(out), "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=");
    assert_int_equal(smtp_auth_step(a, b64s(RFC7677_SERVER_FIRST), out, &err), 0);
    assert_string_equal(mo_buf_cstr(out), b64s(RFC7677_CLIENT_FINAL));
    return a;
}

static void
test_auth_scram_rfc7677(void **state)
{
    struct mo_buf out;
    struct mo_error err;
    struct smtp_auth *a;
    (void)state;

    mo_buf_init(&out, 4096);
    a = scram_until_final(&out);
    assert_int_equal(smtp_auth_finish(a, &err), -1); /* not verified yet */
    assert_int_equal(smtp_auth_step(a, b64s(RFC7677_SERVER_FINAL), &out, &err), 0);
    assert_int_equal(out.len, 0); /* answered with an empty line */
    assert_int_equal(smtp_auth_finish(a, &err), 0);
    assert_int_equal(smtp_auth_step(a, "", &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

static void
test_auth_scram_bad_final(void **state)
{
    static const struct {
        const char *final; /* raw server-final message, or NULL for "not base64" */
        enum mo_category category;
        const char *field;
        const char *text_has;
    } cases[] = {
        /* One bit off in the first byte of the signature. */
        {"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", MO_ERR_AUTH, "password",
         "could not prove"},
        {"v=6rriTRBi23WpRR/wtup+mMhK1UVkdEfkNpXR2+qPDd4=", MO_ERR_AUTH, "password",
         "could not prove"},
        /* The signature of another password ("pencil2") for the same exchange. */
        {"v=" SIG_PENCIL2, MO_ERR_AUTH, "password", "could not prove"},
        {"v=", MO_ERR_AUTH, "password", "could not prove"},
        {"v=6rriTRBi23WpRR/wtup+mMhK1UVkdEfkNpXR2+qP", MO_ERR_AUTH, "password", "could not prove"},
        {"e=invalid-proof", MO_ERR_AUTH, "password", "invalid-proof"},
        {"e=unknown-user", MO_ERR_AUTH, "username", "unknown-user"},
        {"x=what", MO_ERR_PROTOCOL, NULL, "neither a signature nor an error"},
        {NULL, MO_ERR_PROTOCOL, NULL, "not base64"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mo_buf out;
        struct mo_error err;
        struct smtp_auth *a;

        mo_buf_init(&out, 4096);
        a = scram_until_final(&out);
        assert_int_equal(
            smtp_auth_step(a, cases[i].final ? b64s(cases[i].final) : "v=x", &out, &err), -1);
        assert_int_equal(err.category, cases[i].category);
        if (cases[i].field == NULL)
            assert_null(err.field);
        else
            assert_string_equal(err.field, cases[i].field);
        assert_non_null(strstr(err.text, cases[i].text_has));
        assert_int_equal(out.len, 0);
        assert_int_equal(smtp_auth_finish(a, &err), -1);
        assert_int_equal(err.category, MO_ERR_AUTH);
        smtp_auth_free(a);
        mo_buf_wipe_free(&out);
    }
}

static void
test_auth_scram_bad_server_first(void **state)
{
    static const struct {
        const char *first;
        const char *text_has;
    } cases[] = {
        {"r=XXXXNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not start"},
        {"r=rOprNGfwEbeRWgbNEk,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not start"},
        {"r=rOprNGfwEbeRWgbNEkqO%hv\x01,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "not printable"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "iteration count"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "iteration count"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k", "iteration count"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=", "iteration count"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001", "at most 1000000"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
         "iteration count"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=,i=4096", "salt"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=!!!!,i=4096", "salt"},
        {"r=rOprNGfwEbeRWgbNEkqO%hvYD,i=4096", "lacks"},
        {"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqO%hvYD,i=4096", "lacks"},
        {"m=ext,r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension"},
        {"", "lacks"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtp_auth *a = new_auth(SMTP_AUTH_SCRAM_SHA_256, "user", "pencil");
        struct mo_buf out;
        struct mo_error err;
        bool has = false;

        print_message("server-first: %s\n", cases[i].first);
        mo_buf_init(&out, 4096);
        assert_int_equal(smtp_auth_set_nonce(a, RFC7677_CNONCE), 0);
        assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
        assert_int_equal(smtp_auth_step(a, b64s(cases[i].first), &out, &err), -1);
        assert_int_equal(err.category, MO_ERR_PROTOCOL);
        assert_non_null(strstr(err.text, cases[i].text_has));
        assert_int_equal(out.len, 0);
        smtp_auth_free(a);
        mo_buf_wipe_free(&out);
    }
}

/* Extensions after the iteration count are allowed (RFC 5802 7) and go into the AuthMessage. */
static void
test_auth_scram_extension_and_random_nonce(void **state)
{
    struct smtp_auth *a1 = new_auth(SMTP_AUTH_SCRAM_SHA_256, "a,b=c", "pencil");
    struct smtp_auth *a2 = new_auth(SMTP_AUTH_SCRAM_SHA_256, "a,b=c", "pencil");
    unsigned char dec[256];
    char first1[256];
    char first2[256];
    char server_first[256];
    size_t n;
    struct mo_buf out;
    struct mo_error err;
    bool has = false;
    int w;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_initial(a1, &out, &has, &err), 0);
    n = unb64(mo_buf_cstr(&out), dec, sizeof(dec));
    memcpy(first1, dec, n);
    first1[n] = '\0';
    assert_int_equal(smtp_auth_initial(a2, &out, &has, &err), 0);
    n = unb64(mo_buf_cstr(&out), dec, sizeof(dec));
    memcpy(first2, dec, n);
    first2[n] = '\0';

    /* Username escaped, a 24-character random nonce, different every time. */
    assert_memory_equal(first1, "n,,n=a=2Cb=3Dc,r=", 17);
    assert_int_equal(strlen(first1), 17 + 24);
    assert_null(strchr(first1 + 17, ','));
    assert_string_not_equal(first1, first2);

    /* Once the exchange started, the nonce is fixed. */
    assert_int_equal(smtp_auth_set_nonce(a1, "abc"), -1);

    w = snprintf(server_first, sizeof(server_first), "r=%sSERVER,s=QSXCR+Q6sek8bf92,i=4096,x=ext",
                 first1 + 17);
    assert_true(w > 0 && (size_t)w < sizeof(server_first));
    assert_int_equal(smtp_auth_step(a1, b64s(server_first), &out, &err), 0);
    n = unb64(mo_buf_cstr(&out), dec, sizeof(dec));
    assert_true(n > 9);
    assert_memory_equal(dec, "c=biws,r=", 9);
    smtp_auth_free(a1);
    smtp_auth_free(a2);
    mo_buf_wipe_free(&out);
}

/*
 * A server that waits for "AUTH SCRAM-SHA-256" alone gets client-first after
 * its empty 334; one that ends with "e=" instead of server-first is an AUTH
 * refusal, not a protocol error.
 */
static void
test_auth_scram_no_initial_and_early_error(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_SCRAM_SHA_256, "user", "pencil");
    struct mo_buf out;
    struct mo_error err;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_set_nonce(a, RFC7677_CNONCE), 0);
    assert_int_equal(smtp_auth_step(a, "", &out, &err), 0);
    assert_string_equal(mo_buf_cstr(&out), b64s("n,,n=user,r=" RFC7677_CNONCE));
    assert_int_equal(smtp_auth_step(a, b64s("e=unknown-user"), &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_AUTH);
    assert_string_equal(err.field, "username");
    assert_string_equal(err.text, "the server refused the SCRAM-SHA-256 login: unknown-user");
    assert_int_equal(out.len, 0);
    smtp_auth_free(a);

    /* A non-empty challenge before client-first makes no sense. */
    a = new_auth(SMTP_AUTH_SCRAM_SHA_256, "user", "pencil");
    assert_int_equal(smtp_auth_step(a, "Zm9v", &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    assert_non_null(strstr(err.text, "unexpected SCRAM-SHA-256 challenge"));
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

static void
test_auth_set_nonce(void **state)
{
    struct smtp_auth *scram = new_auth(SMTP_AUTH_SCRAM_SHA_256, "u", "p");
    struct smtp_auth *plain = new_auth(SMTP_AUTH_PLAIN, "u", "p");
    (void)state;

    assert_int_equal(smtp_auth_set_nonce(scram, "a,b"), -1);
    assert_int_equal(smtp_auth_set_nonce(scram, "a b"), -1);
    assert_int_equal(smtp_auth_set_nonce(scram, ""), -1);
    assert_int_equal(smtp_auth_set_nonce(scram, NULL), -1);
    assert_int_equal(smtp_auth_set_nonce(scram, "a\xc3\xa9"), -1);
    assert_int_equal(smtp_auth_set_nonce(scram, "ok~!nonce"), 0);
    assert_int_equal(smtp_auth_set_nonce(plain, "ok"), -1);
    smtp_auth_free(scram);
    smtp_auth_free(plain);
}

/* ---- XOAUTH2 ------------------------------------------------------------ */

static void
test_auth_xoauth2(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_XOAUTH2, "someuser@example.com",
                                   "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
    struct mo_buf out;
    struct mo_error err;
    bool has = false;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
    assert_true(has);
    /* The example on Google's "OAuth 2.0 Mechanism" page. */
    assert_string_equal(mo_buf_cstr(&out),
                        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbV"
                        "RjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
    assert_int_equal(smtp_auth_finish(a, &err), 0);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

static void
test_auth_xoauth2_error_challenge(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_XOAUTH2, "someuser@example.com", "expired-token");
    struct mo_buf out;
    struct mo_error err;
    bool has = false;
    (void)state;

    mo_buf_init(&out, 4096);
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
    /* {"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}\n */
    assert_int_equal(smtp_auth_step(a,
                                    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3Bl"
                                    "IjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K",
                                    &out, &err),
                     -1);
    assert_int_equal(err.category, MO_ERR_AUTH);
    assert_string_equal(err.field, "password");
    assert_non_null(strstr(err.text, "\"status\":\"401\""));
    assert_non_null(strstr(err.text, "\"scope\":\"https://mail.google.com/\""));
    assert_null(strstr(err.text, "expired-token"));
    assert_null(strchr(err.text, '\n'));
    assert_int_equal(out.len, 0); /* the empty response the server waits for */
    smtp_auth_free(a);

    /* An empty challenge still means refusal. */
    a = new_auth(SMTP_AUTH_XOAUTH2, "u", "t");
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
    assert_int_equal(smtp_auth_step(a, "", &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_AUTH);
    assert_non_null(strstr(err.text, "(no details given)"));
    smtp_auth_free(a);

    /* Undecodable error challenge: a protocol problem. */
    a = new_auth(SMTP_AUTH_XOAUTH2, "u", "t");
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), 0);
    assert_int_equal(smtp_auth_step(a, "{not base64}", &out, &err), -1);
    assert_int_equal(err.category, MO_ERR_PROTOCOL);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

/* The out buffer's limit is the caller's: a response that does not fit is an error. */
static void
test_auth_out_limit(void **state)
{
    struct smtp_auth *a = new_auth(SMTP_AUTH_PLAIN, "user", "a-rather-long-password");
    struct mo_buf out;
    struct mo_error err;
    bool has = true;
    (void)state;

    mo_buf_init(&out, 8);
    assert_int_equal(smtp_auth_initial(a, &out, &has, &err), -1);
    assert_false(has);
    assert_int_equal(out.len, 0);
    smtp_auth_free(a);
    mo_buf_wipe_free(&out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_names),
        cmocka_unit_test(test_auth_choose),
        cmocka_unit_test(test_auth_new_errors),
        cmocka_unit_test(test_auth_plain_rfc4616),
        cmocka_unit_test(test_auth_plain_bytes),
        cmocka_unit_test(test_auth_plain_without_initial),
        cmocka_unit_test(test_auth_login),
        cmocka_unit_test(test_auth_cram_md5_rfc2195),
        cmocka_unit_test(test_auth_cram_md5_bad_challenges),
        cmocka_unit_test(test_auth_scram_rfc7677),
        cmocka_unit_test(test_auth_scram_bad_final),
        cmocka_unit_test(test_auth_scram_bad_server_first),
        cmocka_unit_test(test_auth_scram_extension_and_random_nonce),
        cmocka_unit_test(test_auth_scram_no_initial_and_early_error),
        cmocka_unit_test(test_auth_set_nonce),
        cmocka_unit_test(test_auth_xoauth2),
        cmocka_unit_test(test_auth_xoauth2_error_challenge),
        cmocka_unit_test(test_auth_out_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
