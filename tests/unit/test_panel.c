/*
 * test_panel.c - unit tests of the admin panel's pure and storage parts (admin module):
 * the Cookie header, loopback peers and Host headers, CSRF token comparison, the login
 * rate limit, the admin password (argon2id, its shape, changing it while keeping the
 * changer's session) and sessions (ending all but one) in a temporary data folder, a
 * stored message's preview (headers, body, attachments) and the built-in assets.
 * The HTTP side runs in a real browser: tests/browser/panel.test.mjs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/panel_internal.h"

/* ---- the Cookie header ------------------------------------------------------------------ */

static const struct {
    const char *header;
    const char *name;
    const char *want; /* NULL: not found */
} cookie_cases[] = {
    {"mo_session=abc", "mo_session", "abc"},
    {"a=1; mo_session=abc; b=2", "mo_session", "abc"},
    {"a=1;mo_session=abc", "mo_session", "abc"},
    {"mo_session=\"abc\"", "mo_session", "abc"},
    {"xmo_session=abc", "mo_session", NULL},
    {"mo_session_old=abc; mo_session=new", "mo_session", "new"},
    {"mo_session=", "mo_session", ""},
    {"", "mo_session", NULL},
    {"a=1; b", "mo_session", NULL},
    {"mo_session=abc   ", "mo_session", "abc"},
};

static void
test_cookie_value(void **state)
{
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cookie_cases) / sizeof(cookie_cases[0]); i++) {
        int rc = panel_cookie_value(cookie_cases[i].header, cookie_cases[i].name, out, sizeof(out));

        if (cookie_cases[i].want == NULL) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(out, cookie_cases[i].want);
        }
    }
    assert_int_equal(panel_cookie_value(NULL, "mo_session", out, sizeof(out)), -1);
    /* a value that does not fit is refused, not cut */
    assert_int_equal(panel_cookie_value("mo_session=0123456789", "mo_session", out, 5), -1);
}

/* ---- addresses ------------------------------------------------------------------------ */

static const struct {
    const char *addr;
    bool loopback;
} peer_cases[] = {
    {"127.0.0.1", true},        {"127.1.2.3", true},        {"10.0.0.1", false}, {"::1", true},
    {"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", false}, {"fe80::1", false},  {"0.0.0.0", false},
};

static void
test_is_loopback(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(peer_cases) / sizeof(peer_cases[0]); i++) {
        struct sockaddr_storage ss;

        memset(&ss, 0, sizeof(ss));
        if (strchr(peer_cases[i].addr, ':') != NULL) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

            s6->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, peer_cases[i].addr, &s6->sin6_addr), 1);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

            s4->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, peer_cases[i].addr, &s4->sin_addr), 1);
        }
        if (panel_is_loopback((struct sockaddr *)&ss) != peer_cases[i].loopback)
            fail_msg("%s", peer_cases[i].addr);
    }
    assert_false(panel_is_loopback(NULL));
}

static const struct {
    const char *host;
    bool loopback;
} host_cases[] = {
    {"localhost", true},
    {"LOCALHOST:8025", true},
    {"127.0.0.1:8025", true},
    {"127.9.9.9", true},
    {"[::1]:8025", true},
    {"[::1]", true},
    {"evil.example", false},
    {"evil.example:8025", false},
    {"192.168.1.2:8025", false},
    {"localhost.evil.example", false},
    {"[::2]:8025", false},
    {"", false},
    {"127.0.0.1.nip.io:8025", false},
    {"[::1]x", false},
};

static void
test_host_is_loopback(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_cases) / sizeof(host_cases[0]); i++)
        if (panel_host_is_loopback(host_cases[i].host) != host_cases[i].loopback)
            fail_msg("%s", host_cases[i].host);
    assert_false(panel_host_is_loopback(NULL));
}

static void
test_csrf_equal(void **state)
{
    const char *t = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"; /* 43 */

    (void)state;
    assert_int_equal(strlen(t), PANEL_TOKEN_LEN);
    assert_true(panel_csrf_equal(t, t));
    assert_false(panel_csrf_equal(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPR"));
    assert_false(panel_csrf_equal(t, "abc"));
    assert_false(panel_csrf_equal(t, ""));
    assert_false(panel_csrf_equal(t, NULL));
    assert_false(panel_csrf_equal("", ""));
    assert_false(panel_csrf_equal(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP+"));
}

/* ---- the login rate limit -------------------------------------------------------------- */

static struct sockaddr_in
v4(const char *a)
{
    struct sockaddr_in s;

    memset(&s, 0, sizeof(s));
    s.sin_family = AF_INET;
    inet_pton(AF_INET, a, &s.sin_addr);
    return s;
}

static void
test_ratelimit(void **state)
{
    struct panel_ratelimit *rl = panel_ratelimit_new(5, 60);
    struct sockaddr_in a = v4("192.0.2.1");
    struct sockaddr_in b = v4("192.0.2.2");
    const struct sockaddr *pa = (const struct sockaddr *)&a;
    const struct sockaddr *pb = (const struct sockaddr *)&b;

    (void)state;
    assert_non_null(rl);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(panel_ratelimit_wait_s(rl, pa, 1000 + i), 0);
        panel_ratelimit_fail(rl, pa, 1000 + i);
    }
    /* the sixth waits until the first failure leaves the window (1000 + 60) */
    assert_int_equal(panel_ratelimit_wait_s(rl, pa, 1005), 55);
    assert_int_equal(panel_ratelimit_wait_s(rl, pa, 1059), 1);
    assert_int_equal(panel_ratelimit_wait_s(rl, pa, 1060), 0);
    /* another address is not affected */
    assert_int_equal(panel_ratelimit_wait_s(rl, pb, 1005), 0);
    /* a success forgets the failures */
    panel_ratelimit_reset(rl, pa);
    assert_int_equal(panel_ratelimit_wait_s(rl, pa, 1005), 0);
    /* a full table reuses the stalest slot and keeps counting the newest */
    for (int i = 0; i < PANEL_RATELIMIT_SLOTS + 10; i++) {
        char text[32];
        struct sockaddr_in x;

        snprintf(text, sizeof(text), "10.%d.%d.1", i / 256, i % 256);
        x = v4(text);
        panel_ratelimit_fail(rl, (const struct sockaddr *)&x, 2000 + i);
    }
    for (int i = 0; i < 5; i++)
        panel_ratelimit_fail(rl, pb, 3000);
    assert_true(panel_ratelimit_wait_s(rl, pb, 3000) > 0);
    panel_ratelimit_free(rl);
}

/* ---- password and sessions ---------------------------------------------------------------- */

static char home[64];

static int
make_home(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mo-test-panel-XXXXXX");
    return mkdtemp(home) != NULL ? 0 : -1;
}

static int
remove_home(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_password(void **state)
{
    struct panel_auth *a = NULL;
    struct mo_error err;
    bool has = true;
    bool ok = true;

    (void)state;
    assert_int_equal(panel_auth_open(home, &a, &err), 0);
    assert_int_equal(panel_auth_has_password(a, &has, &err), 0);
    assert_false(has);
    assert_int_equal(panel_auth_verify_password(a, "anything1", &ok, &err), 0);
    assert_false(ok);
    /* too short: refused with the field */
    assert_int_equal(panel_auth_set_password(a, "1234567", true, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "password");
    /* digits only are fine */
    assert_int_equal(panel_auth_set_password(a, "12345678", true, &err), 0);
    assert_int_equal(panel_auth_has_password(a, &has, &err), 0);
    assert_true(has);
    assert_int_equal(panel_auth_verify_password(a, "12345678", &ok, &err), 0);
    assert_true(ok);
    assert_int_equal(panel_auth_verify_password(a, "12345679", &ok, &err), 0);
    assert_false(ok);
    /* the first-start page cannot overwrite it */
    assert_int_equal(panel_auth_set_password(a, "another password", true, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_int_equal(panel_auth_verify_password(a, "12345678", &ok, &err), 0);
    assert_true(ok);
    panel_auth_close(a);
    /* the command line can (admin.h) */
    assert_int_equal(admin_password_set(home, "pässwörd with spaces", &err), 0);
    assert_int_equal(admin_password_exists(home, &has, &err), 0);
    assert_true(has);
    assert_int_equal(panel_auth_open(home, &a, &err), 0);
    assert_int_equal(panel_auth_verify_password(a, "pässwörd with spaces", &ok, &err), 0);
    assert_true(ok);
    panel_auth_close(a);
}

static void
test_sessions(void **state)
{
    struct panel_auth *a = NULL;
    struct panel_session s1, s2, found;
    char id1[PANEL_TOKEN_LEN + 1];
    char id2[PANEL_TOKEN_LEN + 1];
    struct mo_error err;
    bool ok = false;
    const int64_t t0 = 1700000000;

    (void)state;
    assert_int_equal(panel_auth_open(home, &a, &err), 0);
    assert_int_equal(panel_session_create(a, t0, id1, &s1, &err), 0);
    assert_int_equal(strlen(id1), PANEL_TOKEN_LEN);
    assert_int_equal(strlen(s1.csrf), PANEL_TOKEN_LEN);
    assert_string_not_equal(id1, s1.csrf);
    assert_int_equal(s1.expires_at, t0 + PANEL_SESSION_IDLE_S);
    assert_int_equal(panel_session_find(a, id1, t0 + 10, &found, &ok, &err), 0);
    assert_true(ok);
    assert_string_equal(found.csrf, s1.csrf);
    /* malformed and unknown ids are not found, without an error */
    assert_int_equal(panel_session_find(a, "short", t0, &found, &ok, &err), 0);
    assert_false(ok);
    assert_int_equal(
        panel_session_find(a, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", t0, &found, &ok, &err),
        0);
    assert_false(ok);
    /* use keeps it alive past the idle limit... */
    assert_int_equal(panel_session_find(a, id1, t0 + PANEL_SESSION_IDLE_S - 1, &found, &ok, &err),
                     0);
    assert_true(ok);
    assert_int_equal(
        panel_session_find(a, id1, t0 + 2 * PANEL_SESSION_IDLE_S - 2, &found, &ok, &err), 0);
    assert_true(ok);
    /* ...but not past the maximum */
    assert_int_equal(panel_session_find(a, id1, t0 + PANEL_SESSION_MAX_S, &found, &ok, &err), 0);
    assert_false(ok);
    /* idle too long: gone */
    assert_int_equal(panel_session_create(a, t0, id2, &s2, &err), 0);
    assert_int_equal(panel_session_find(a, id2, t0 + PANEL_SESSION_IDLE_S, &found, &ok, &err), 0);
    assert_false(ok);
    /* logout */
    assert_int_equal(panel_session_create(a, t0, id2, &s2, &err), 0);
    assert_int_equal(panel_session_delete(a, id2, &err), 0);
    assert_int_equal(panel_session_find(a, id2, t0 + 1, &found, &ok, &err), 0);
    assert_false(ok);
    /* a new password ends every session */
    assert_int_equal(panel_session_create(a, t0, id2, &s2, &err), 0);
    assert_int_equal(panel_auth_set_password(a, "new password 1", false, &err), 0);
    assert_int_equal(panel_session_find(a, id2, t0 + 1, &found, &ok, &err), 0);
    assert_false(ok);
    panel_auth_close(a);
}

/* Ending every session but one: which of three sessions survive, by what keep_id names. */
static const struct {
    const char *what;
    int keep;             /* the index of the session to keep, or -1: pass other_id */
    const char *other_id; /* keep_id when keep is -1 */
} keep_cases[] = {
    {"the first (the caller's) stays", 0, NULL},
    {"the last stays", 2, NULL},
    {"NULL keeps none", -1, NULL},
    {"a malformed id keeps none", -1, "not a token"},
    {"an unknown id keeps none", -1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
};

static const struct {
    size_t len; /* a password of this many 'x' */
    int rc;
} shape_cases[] = {
    {0, -1},
    {PANEL_PASSWORD_MIN - 1, -1},
    {PANEL_PASSWORD_MIN, 0},
    {PANEL_PASSWORD_MAX, 0},
    {PANEL_PASSWORD_MAX + 1, -1},
};

static void
test_password_shape(void **state)
{
    char pw[PANEL_PASSWORD_MAX + 2];
    struct mo_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(shape_cases) / sizeof(shape_cases[0]); i++) {
        memset(pw, 'x', shape_cases[i].len);
        pw[shape_cases[i].len] = '\0';
        if (panel_auth_password_shape(pw, &err) != shape_cases[i].rc)
            fail_msg("a password of %zu characters", shape_cases[i].len);
        if (shape_cases[i].rc != 0) {
            assert_int_equal(err.category, MO_ERR_CONFIG);
            assert_string_equal(err.field, "password");
        }
    }
    assert_int_equal(panel_auth_password_shape(NULL, &err), -1);
}

/* The sessions that survive a change of password, by what keep_id names (keep_cases). */
static void
test_change_password_keeps(void **state)
{
    struct panel_auth *a = NULL;
    struct panel_session s;
    struct mo_error err;
    char ids[3][PANEL_TOKEN_LEN + 1];
    const int64_t t0 = 1700000000;

    (void)state;
    assert_int_equal(panel_auth_open(home, &a, &err), 0);
    for (size_t c = 0; c < sizeof(keep_cases) / sizeof(keep_cases[0]); c++) {
        char pw[32];

        for (int i = 0; i < 3; i++)
            assert_int_equal(panel_session_create(a, t0, ids[i], &s, &err), 0);
        snprintf(pw, sizeof(pw), "password number %zu", c);
        assert_int_equal(panel_auth_change_password(
                             a, pw,
                             keep_cases[c].keep >= 0 ? ids[keep_cases[c].keep]
                                                     : keep_cases[c].other_id,
                             &err),
                         0);
        for (int i = 0; i < 3; i++) {
            bool found = false;

            assert_int_equal(panel_session_find(a, ids[i], t0 + 1, &s, &found, &err), 0);
            if (found != (i == keep_cases[c].keep))
                fail_msg("%s: session %d %s", keep_cases[c].what, i,
                         found ? "survived" : "ended");
        }
    }
    panel_auth_close(a);
}

static void
test_change_password(void **state)
{
    struct panel_auth *a = NULL;
    struct panel_session s;
    char mine[PANEL_TOKEN_LEN + 1];
    char other[PANEL_TOKEN_LEN + 1];
    struct mo_error err;
    bool found = false;
    bool ok = false;
    const int64_t t0 = 1700000000;

    (void)state;
    assert_int_equal(panel_auth_open(home, &a, &err), 0);
    assert_int_equal(panel_auth_set_password(a, "the old password", true, &err), 0);
    assert_int_equal(panel_session_create(a, t0, mine, &s, &err), 0);
    assert_int_equal(panel_session_create(a, t0, other, &s, &err), 0);
    /* too short: refused, and nothing changes (the password, the sessions) */
    assert_int_equal(panel_auth_change_password(a, "short", mine, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "password");
    assert_int_equal(panel_auth_verify_password(a, "the old password", &ok, &err), 0);
    assert_true(ok);
    assert_int_equal(panel_session_find(a, other, t0 + 1, &s, &found, &err), 0);
    assert_true(found);
    /* changed: the new one opens, the old one not; the changer's session stays, the other ends */
    assert_int_equal(panel_auth_change_password(a, "the new password", mine, &err), 0);
    assert_int_equal(panel_auth_verify_password(a, "the new password", &ok, &err), 0);
    assert_true(ok);
    assert_int_equal(panel_auth_verify_password(a, "the old password", &ok, &err), 0);
    assert_false(ok);
    assert_int_equal(panel_session_find(a, mine, t0 + 1, &s, &found, &err), 0);
    assert_true(found);
    assert_int_equal(panel_session_find(a, other, t0 + 1, &s, &found, &err), 0);
    assert_false(found);
    /* without a session to keep (NULL), it ends them all, as panel_auth_set_password does */
    assert_int_equal(panel_auth_change_password(a, "a third password", NULL, &err), 0);
    assert_int_equal(panel_session_find(a, mine, t0 + 1, &s, &found, &err), 0);
    assert_false(found);
    panel_auth_close(a);
}

/* ---- the message preview ----------------------------------------------------------------- */

#define MAX_ATTACH 4

static const struct {
    const char *what;
    const char *msg;
    const char *type;               /* preview type, NULL: no preview */
    const char *text;               /* the preview's text, exactly */
    const char *attach[MAX_ATTACH]; /* file names, then NULL */
    long long sizes[MAX_ATTACH];
    const char *subject; /* the decoded Subject header */
} preview_cases[] = {
    {"plain",
     "From: a@example.test\r\nSubject: Hello\r\n\r\nLine one\r\nLine two\r\n",
     "text/plain",
     "Line one\nLine two\n",
     {NULL},
     {0},
     "Hello"},
    {"encoded subject, quoted-printable body",
     "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe, a long line that is=\r\n"
     " soft-broken =3D ok\r\n",
     "text/plain",
     "Grüße, a long line that is soft-broken = ok\n",
     {NULL},
     {0},
     "Grüße"},
    {"alternative: plain wins over html",
     "Subject: x\r\nContent-Type: multipart/alternative; "
     "boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
     "Content-Type: text/html\r\n\r\n<p>html</p>\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
     "plain\r\n--b1--\r\nepilogue\r\n",
     "text/plain",
     "plain",
     {NULL},
     {0},
     "x"},
    {"html only, shown as source",
     "Subject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<script>alert(1)</script>",
     "text/html",
     "<script>alert(1)</script>",
     {NULL},
     {0},
     "x"},
    {"mixed with base64 attachments (RFC 2231 and RFC 2047 names)",
     "Subject: x\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
     "Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n"
     "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     "SGVsbG8gd29ybGQ=\r\n--inner--\r\n--outer\r\n"
     "Content-Type: application/pdf\r\nContent-Disposition: attachment; "
     "filename*=utf-8''%E2%82%AC%20invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     "aGVsbG8=\r\n--outer\r\nContent-Type: image/png; name=\"=?UTF-8?Q?b=C3=A4r.png?=\"\r\n"
     "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--outer--\r\n",
     "text/plain",
     "Hello world",
     {"€ invoice.pdf", "bär.png", NULL},
     {5, 4},
     "x"},
    {"latin-1 body",
     "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
     "Content-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se\r\n",
     "text/plain",
     "Käse\n",
     {NULL},
     {0},
     "x"},
    {"invalid UTF-8 and a control character are cleaned",
     "Subject: x\r\n\r\nA\xff"
     "B\x01"
     "C\r\n",
     "text/plain",
     "A\xEF\xBF\xBD"
     "BC\n",
     {NULL},
     {0},
     "x"},
    {"no closing boundary: the last part still counts",
     "Subject: x\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
     "Content-Type: text/plain\r\n\r\nunfinished",
     "text/plain",
     "unfinished",
     {NULL},
     {0},
     "x"},
    {"a text attachment is listed, not previewed",
     "Subject: x\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
     "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n"
     "secret notes\r\n--z--\r\n",
     NULL,
     NULL,
     {"notes.txt", NULL},
     {12},
     "x"},
};

static void
test_preview(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(preview_cases) / sizeof(preview_cases[0]); i++) {
        const char *msg = preview_cases[i].msg;
        json_t *o = panel_preview_json(msg, strlen(msg));
        json_t *pv = json_object_get(o, "preview");
        json_t *att = json_object_get(o, "attachments");
        json_t *headers = json_object_get(o, "headers");
        const char *subject = NULL;
        size_t n_att = 0;

        assert_non_null(o);
        if (preview_cases[i].type == NULL) {
            if (!json_is_null(pv))
                fail_msg("%s: a preview", preview_cases[i].what);
        } else {
            if (!json_is_object(pv))
                fail_msg("%s: no preview", preview_cases[i].what);
            assert_string_equal(json_string_value(json_object_get(pv, "type")),
                                preview_cases[i].type);
            if (strcmp(json_string_value(json_object_get(pv, "text")), preview_cases[i].text) != 0)
                fail_msg("%s: preview \"%s\"", preview_cases[i].what,
                         json_string_value(json_object_get(pv, "text")));
        }
        while (n_att < MAX_ATTACH && preview_cases[i].attach[n_att] != NULL) {
            json_t *a = json_array_get(att, n_att);

            if (a == NULL)
                fail_msg("%s: attachment %zu missing", preview_cases[i].what, n_att);
            assert_string_equal(json_string_value(json_object_get(a, "filename")),
                                preview_cases[i].attach[n_att]);
            assert_int_equal(json_integer_value(json_object_get(a, "size")),
                             preview_cases[i].sizes[n_att]);
            n_att++;
        }
        if (json_array_size(att) != n_att)
            fail_msg("%s: %zu attachments", preview_cases[i].what, json_array_size(att));
        for (size_t k = 0; k < json_array_size(headers); k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(headers, k), "name")),
                       "Subject") == 0)
                subject = json_string_value(json_object_get(json_array_get(headers, k), "value"));
        assert_non_null(subject);
        assert_string_equal(subject, preview_cases[i].subject);
        json_decref(o);
    }
}

static void
test_preview_bounded(void **state)
{
    size_t n = 3 * PANEL_PREVIEW_MAX_BYTES;
    char *msg = malloc(n + 32);
    json_t *o;
    json_t *pv;

    (void)state;
    assert_non_null(msg);
    memcpy(msg, "Subject: big\r\n\r\n", 16);
    memset(msg + 16, 'x', n);
    o = panel_preview_json(msg, n + 16);
    pv = json_object_get(o, "preview");
    assert_true(json_is_true(json_object_get(pv, "truncated")));
    assert_true(json_string_length(json_object_get(pv, "text")) <= PANEL_PREVIEW_MAX_BYTES);
    json_decref(o);
    free(msg);
}

/* ---- the built-in files ------------------------------------------------------------------- */

static void
test_assets(void **state)
{
    static const char *const names[] = {"index.html", "login.html", "setup.html", "app.css",
                                        "app.js",     "login.js",   "favicon.svg"};

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct admin_asset *a = admin_asset_find(names[i]);

        if (a == NULL)
            fail_msg("%s is not built in", names[i]);
        assert_true(a->len > 100);
        assert_int_equal(strlen(a->etag), 18); /* "\"" + 16 hex + "\"" */
        if (strstr(a->name, ".html") != NULL) {
            assert_string_equal(a->content_type, "text/html; charset=utf-8");
            /* scripts come from files only: the CSP forbids inline ones */
            assert_null(memmem(a->data, a->len, "<script>", 8));
            assert_null(memmem(a->data, a->len, "http://", 7));
            assert_null(memmem(a->data, a->len, "https://", 8));
        }
    }
    assert_null(admin_asset_find("../mailout.db"));
    assert_null(admin_asset_find(""));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_value),
        cmocka_unit_test(test_is_loopback),
        cmocka_unit_test(test_host_is_loopback),
        cmocka_unit_test(test_csrf_equal),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test_setup_teardown(test_password, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_sessions, make_home, remove_home),
        cmocka_unit_test(test_password_shape),
        cmocka_unit_test_setup_teardown(test_change_password, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_change_password_keeps, make_home, remove_home),
        cmocka_unit_test(test_preview),
        cmocka_unit_test(test_preview_bounded),
        cmocka_unit_test(test_assets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
