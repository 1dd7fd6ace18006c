/*
 * test_validate.c - unit tests of account validation and settings (account
 * module, validate.c and settings.c).
 *
 * One table: settings in, the issues out (field and error or not, order
 * aside), the normalised values, and a phrase the owner must read. It holds
 * the help article's story: Gmail dots and +tags are never errors, a user
 * name typed as the part before @ is completed, "123456" is a fine password,
 * an app password pasted in groups loses its spaces. Every case is then
 * validated a second time: the result must be stable (no new issues, same
 * values).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"

#define NAME_200 /* 200 characters, 278 bytes */                                                   \
    "Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp "   \
    "Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp "   \
    "Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp Ünïcödé Shöp "   \
    "Ünïcö"

struct in {
    const char *provider; /* passed to account_validate; NULL: custom */
    const char *provider_id;
    const char *name;
    const char *email;
    const char *username;
    const char *password; /* NULL: keep the stored one */
    const char *sender;
    const char *sender_name;
    const char *host;
    unsigned port;
    const char *security; /* "starttls", "tls", "none"; NULL: unset */
    int auth;             /* 0: auto */
    const char *ca_file;
    int timeout_s;
};

struct out {
    const char *username; /* NULL: not checked */
    const char *password;
    const char *sender;
    const char *email;
    const char *host;
    unsigned port;        /* 0: not checked */
    const char *security; /* NULL: not checked */
    const char *sender_name;
};

static const struct vcase {
    const char *what;
    struct in in;
    const char *issues; /* "field:E field:N ..." (E error, N warning or note); "": none */
    struct out out;
    const char *phrase; /* in some issue's message, or NULL */
} cases[] = {
    /* ---- the help article's story ---- */
    {"Gmail dots: sender without the dots of the login is the same mailbox",
     {.provider = "gmail",
      .email = "test.mail.ot.commerce@gmail.com",
      .sender = "testmailotcommerce@gmail.com",
      .password = "abcdefghijklmnop"},
     "",
     {.username = "test.mail.ot.commerce@gmail.com",
      .sender = "testmailotcommerce@gmail.com",
      .host = "smtp.gmail.com",
      .port = 587,
      .security = "starttls"},
     NULL},
    {"Gmail dots the other way round, and case",
     {.provider = "gmail",
      .email = "testmailotcommerce@gmail.com",
      .username = "Test.Mail.OT.Commerce@GMAIL.com",
      .sender = "t.e.s.t.mailotcommerce@gmail.com"},
     "",
     {.username = "Test.Mail.OT.Commerce@gmail.com"},
     NULL},
    {"googlemail.com is gmail.com",
     {.provider = "gmail", .email = "shop.owner@googlemail.com", .sender = "shopowner@gmail.com"},
     "",
     {.sender = "shopowner@gmail.com"},
     NULL},
    {"a +tag sender is the same Gmail mailbox",
     {.provider = "gmail", .email = "shop@gmail.com", .sender = "shop+orders@gmail.com"},
     "",
     {0},
     NULL},
    {"the user name as the part before @ is completed",
     {.provider = "gmail", .email = "testdukan4you@gmail.com", .username = "testdukan4you"},
     "username:N",
     {.username = "testdukan4you@gmail.com", .sender = "testdukan4you@gmail.com"},
     "full address"},
    {"the old form as the article told to fill it: part before @, sender without dots",
     {.provider = "gmail",
      .email = "test.mail.ot.commerce@gmail.com",
      .username = "test.mail.ot.commerce",
      .password = "abcd efgh ijkl mnop",
      .sender = "testmailotcommerce@gmail.com"},
     "username:N password:N",
     {.username = "test.mail.ot.commerce@gmail.com",
      .password = "abcdefghijklmnop",
      .sender = "testmailotcommerce@gmail.com"},
     NULL},
    {"a user name without the dots of the email: completed, and no sender warning",
     {.provider = "gmail",
      .email = "test.mail.ot.commerce@gmail.com",
      .username = "testmailotcommerce"},
     "username:N",
     {.username = "testmailotcommerce@gmail.com", .sender = "test.mail.ot.commerce@gmail.com"},
     NULL},
    {"a completed user name with dots is still the same Gmail mailbox as the email",
     {.provider = "gmail", .email = "testdukan@gmail.com", .username = "test.dukan"},
     "username:N",
     {.username = "test.dukan@gmail.com"},
     NULL},
    {"a Google app password pasted in groups loses its spaces",
     {.provider = "gmail", .email = "shop@gmail.com", .password = "abcd efgh ijkl mnop"},
     "password:N",
     {.password = "abcdefghijklmnop"},
     "removed them"},
    {"... with no-break spaces",
     {.provider = "gmail",
      .email = "shop@gmail.com",
      .password = "abcd\xc2\xa0"
                  "efgh\xc2\xa0ijkl\xc2\xa0mnop"},
     "password:N",
     {.password = "abcdefghijklmnop"},
     NULL},
    {"... with tabs and a trailing line break",
     {.provider = "google-workspace",
      .email = "info@myshop.example",
      .password = "abcd\tefgh\tijkl\tmnop\n"},
     "password:N",
     {.password = "abcdefghijklmnop"},
     NULL},
    {"... in upper case (the case is kept)",
     {.provider = "gmail", .email = "shop@gmail.com", .password = "ABCD EFGH IJKL MNOP"},
     "password:N",
     {.password = "ABCDEFGHIJKLMNOP"},
     NULL},
    {"a Gmail password with spaces that is no app password is kept as typed",
     {.provider = "gmail", .email = "shop@gmail.com", .password = "my pass word"},
     "password:N",
     {.password = "my pass word"},
     "myaccount.google.com/apppasswords"},
    {"Google: digits are not in its app passwords, so nothing is stripped",
     {.provider = "gmail", .email = "shop@gmail.com", .password = "abcd efgh ijkl 1234"},
     "password:N",
     {.password = "abcd efgh ijkl 1234"},
     "app password"},
    {"Fastmail app password with digits loses its spaces",
     {.provider = "fastmail", .email = "shop@fastmail.com", .password = "abcd 1234 efgh 5678"},
     "password:N",
     {.password = "abcd1234efgh5678"},
     NULL},
    {"Yahoo: spaces are never removed (format not verified), only pointed out",
     {.provider = "yahoo", .email = "shop@yahoo.com", .password = "abcd efgh ijkl mnop"},
     "password:N",
     {.password = "abcd efgh ijkl mnop"},
     "try it without the spaces"},
    {"Yahoo: an app password without spaces, no reminder",
     {.provider = "yahoo", .email = "shop@yahoo.com", .password = "abcdefghijklmnop"},
     "",
     {.password = "abcdefghijklmnop"},
     NULL},
    {"a custom server: app-password-like groups are kept, without comment",
     {.email = "shop@example.com",
      .password = "abcd efgh ijkl mnop",
      .host = "smtp.example.com",
      .port = 587},
     "",
     {.password = "abcd efgh ijkl mnop"},
     NULL},
    {"password 123456 on the owner's own server: no issue",
     {.email = "shop@example.com", .password = "123456", .host = "smtp.example.com", .port = 587},
     "",
     {.password = "123456", .username = "shop@example.com", .security = "starttls"},
     NULL},
    {"password a123456a: no issue",
     {.email = "shop@example.com", .password = "a123456a", .host = "smtp.example.com", .port = 465},
     "",
     {.password = "a123456a", .security = "tls"},
     NULL},
    {"password 123456 at Gmail: only the app-password reminder, no error",
     {.provider = "gmail", .email = "shop@gmail.com", .password = "123456"},
     "password:N",
     {.password = "123456"},
     "normal password"},
    {"inner spaces are kept",
     {.email = "shop@example.com",
      .password = "a b c",
      .host = "smtp.example.com",
      .security = "tls"},
     "",
     {.password = "a b c", .port = 465},
     NULL},
    {"quotes and backslashes are kept",
     {.email = "shop@example.com",
      .password = "a\"b\\c'd",
      .host = "smtp.example.com",
      .port = 587,
      .security = "starttls"},
     "",
     {.password = "a\"b\\c'd"},
     NULL},
    {"UTF-8 is kept",
     {.email = "shop@example.com",
      .password = "pässwörd-ünïcode",
      .host = "smtp.example.com",
      .port = 587},
     "",
     {.password = "pässwörd-ünïcode"},
     NULL},
    {"leading and trailing spaces are kept, with a note",
     {.email = "shop@example.com", .password = " 12345 ", .host = "smtp.example.com", .port = 587},
     "password:N",
     {.password = " 12345 "},
     "exactly as typed"},
    {"an empty password is an error",
     {.provider = "gmail", .email = "shop@gmail.com", .password = ""},
     "password:E",
     {0},
     "Password is empty"},
    {"no password (an update that keeps the stored one) is fine",
     {.provider = "yandex", .email = "shop@yandex.ru"},
     "",
     {.host = "smtp.yandex.com", .port = 587},
     NULL},
    {"an XOAUTH2 token at Gmail: no app-password reminder",
     {.provider = "gmail",
      .email = "shop@gmail.com",
      .password = "ya29.a0AfH6SM-token",
      .auth = SMTP_AUTH_XOAUTH2},
     "",
     {.password = "ya29.a0AfH6SM-token"},
     NULL},

    /* ---- senders ---- */
    {"Yandex refuses a sender other than the login: a warning naming its reply",
     {.provider = "yandex", .email = "shop@yandex.ru", .sender = "orders@myshop.example"},
     "sender:N",
     {.sender = "orders@myshop.example"},
     "553 5.7.1 Sender address rejected: not owned by auth user"},
    {"Yandex: case does not matter",
     {.provider = "yandex", .email = "Shop@Yandex.RU", .sender = "shop@yandex.ru"},
     "",
     {.email = "Shop@yandex.ru"},
     NULL},
    {"Yandex: dots do matter",
     {.provider = "yandex", .email = "s.hop@yandex.ru", .sender = "shop@yandex.ru"},
     "sender:N",
     {0},
     "Set Sender's email to s.hop@yandex.ru"},
    {"Mail.ru names its reply",
     {.provider = "mail-ru", .email = "shop@mail.ru", .sender = "shop@bk.ru"},
     "sender:N",
     {0},
     "550 not local sender over smtp"},
    {"Zoho allows aliases",
     {.provider = "zoho-eu", .email = "shop@zoho.eu", .sender = "sales@myshop.example"},
     "sender:N",
     {0},
     "aliases"},
    {"Workspace domains keep their dots: a different sender is a warning",
     {.provider = "google-workspace",
      .email = "shop.owner@myshop.example",
      .sender = "shopowner@myshop.example"},
     "sender:N",
     {.host = "smtp.gmail.com"},
     "Send mail as"},
    {"Workspace, same sender",
     {.provider = "google-workspace",
      .email = "shop.owner@myshop.example",
      .sender = "Shop.Owner@MyShop.example"},
     "",
     {.sender = "Shop.Owner@myshop.example"},
     NULL},
    {"Gmail rewrites a foreign sender",
     {.provider = "gmail", .email = "shop@gmail.com", .sender = "info@myshop.example"},
     "sender:N",
     {0},
     "Send mail as"},
    {"an invalid sender is an error",
     {.provider = "gmail", .email = "shop@gmail.com", .sender = "shop at gmail"},
     "sender:E",
     {0},
     NULL},
    {"a sender with a display name keeps the address and gives the name",
     {.email = "shop@example.com",
      .sender = "My Shop <orders@example.com>",
      .host = "smtp.example.com",
      .port = 587},
     "sender:N",
     {.sender = "orders@example.com", .sender_name = "My Shop"},
     NULL},

    /* ---- Microsoft ---- */
    {"Outlook.com refuses passwords: warning with 5.7.139",
     {.provider = "outlook-com", .email = "shop@outlook.com", .password = "secret1"},
     "password:N",
     {.host = "smtp-mail.outlook.com", .port = 587, .security = "starttls"},
     "535 5.7.139"},
    {"Outlook.com with an XOAUTH2 token: fine",
     {.provider = "outlook-com",
      .email = "shop@outlook.com",
      .password = "EwBwA8l6-token",
      .auth = SMTP_AUTH_XOAUTH2},
     "",
     {0},
     NULL},
    {"Outlook.com has no SSL/TLS port",
     {.provider = "outlook-com",
      .email = "shop@hotmail.com",
      .auth = SMTP_AUTH_XOAUTH2,
      .security = "tls"},
     "security:N",
     {.port = 465},
     "no SSL/TLS port"},

    /* ---- server, port and security ---- */
    {"587 with SSL/TLS is an error on security",
     {.email = "shop@example.com", .host = "smtp.example.com", .port = 587, .security = "tls"},
     "security:E",
     {0},
     "Port 587 is for STARTTLS, but Security is SSL/TLS"},
    {"465 with STARTTLS is an error on security",
     {.email = "shop@example.com", .host = "smtp.example.com", .port = 465, .security = "starttls"},
     "security:E",
     {0},
     "Port 465 expects SSL/TLS from the first byte"},
    {"a port in the server name is an error on host",
     {.email = "shop@gmail.com", .host = "smtp.gmail.com:587", .port = 587},
     "host:E",
     {0},
     "Put the port in Port"},
    {"a URL scheme in the server name",
     {.email = "shop@example.com", .host = "smtp://smtp.example.com", .port = 587},
     "host:E",
     {0},
     "without \"smtp://\""},
    {"spaces in the server name",
     {.email = "shop@example.com", .host = "smtp .example.com", .port = 587},
     "host:E",
     {0},
     NULL},
    {"an address as server name",
     {.email = "shop@example.com", .host = "shop@example.com", .port = 587},
     "host:E",
     {0},
     NULL},
    {"a broken IPv4 address",
     {.email = "shop@example.com", .host = "192.168.1", .port = 587},
     "host:E",
     {0},
     NULL},
    {"no server for a custom Gmail address: the error names smtp.gmail.com",
     {.email = "shop@gmail.com"},
     "host:E port:E",
     {0},
     "smtp.gmail.com"},
    {"Amazon SES needs the region's server",
     {.provider = "amazon-ses", .email = "shop@myshop.example", .username = "AKIAEXAMPLE"},
     "host:E",
     {0},
     "region"},
    {"an IDN server name is fine; ASCII names are lowercased",
     {.email = "shop@example.com", .host = "SMTP.Example.COM", .port = 587},
     "",
     {.host = "smtp.example.com"},
     NULL},
    {"IDN host",
     {.email = "user@münchen.de", .host = "smtp.münchen.de", .port = 465},
     "",
     {.email = "user@münchen.de", .host = "smtp.münchen.de", .security = "tls"},
     NULL},
    {"no encryption to a remote server is an error",
     {.email = "shop@example.com", .host = "smtp.example.com", .port = 25, .security = "none"},
     "security:E port:N",
     {0},
     "unencrypted"},
    {"no encryption to localhost is fine",
     {.email = "shop@example.com", .host = "localhost", .security = "none"},
     "",
     {.port = 25},
     NULL},
    {"no encryption to 127.0.0.2 and [::1] forms",
     {.email = "shop@example.com", .host = "[::1]", .port = 2525, .security = "none"},
     "",
     {.host = "::1"},
     NULL},
    {"port 25 warns that networks block it",
     {.email = "shop@example.com", .host = "smtp.example.com", .port = 25},
     "port:N",
     {.security = "starttls"},
     "block port 25"},
    {"SSL/TLS without a port gets 465",
     {.email = "shop@example.com", .host = "mail.example.com", .security = "tls"},
     "",
     {.port = 465},
     NULL},
    {"a provider's TLS-only port picks SSL/TLS",
     {.provider = "aol", .email = "shop@aol.com"},
     "",
     {.host = "smtp.aol.com", .port = 465, .security = "tls"},
     NULL},
    {"a server the provider does not use is a warning",
     {.provider = "gmail", .email = "shop@gmail.com", .host = "smtp.example.com"},
     "host:N",
     {0},
     "smtp.gmail.com"},

    /* ---- user names ---- */
    {"a +tag login: warn to log in with the plain address",
     {.provider = "gmail", .email = "shop@gmail.com", .username = "shop+x@gmail.com"},
     "username:N",
     {0},
     "shop@gmail.com"},
    {"SendGrid's user name is filled in",
     {.provider = "sendgrid", .email = "shop@myshop.example", .password = "SG.abc.def"},
     "",
     {.username = "apikey", .sender = "shop@myshop.example"},
     NULL},
    {"Mailgun needs its own SMTP login",
     {.provider = "mailgun", .email = "shop@myshop.example"},
     "username:E",
     {0},
     "SMTP user name"},
    {"WEB.DE logs in with the part before @",
     {.provider = "web-de", .email = "shop@web.de"},
     "",
     {.username = "shop"},
     NULL},
    {"a custom server keeps a login that is not an address",
     {.email = "shop@example.com", .username = "shopuser", .host = "smtp.example.com", .port = 587},
     "",
     {.username = "shopuser"},
     NULL},
    {"a line break in the user name",
     {.email = "shop@example.com", .username = "a\nb", .host = "smtp.example.com", .port = 587},
     "username:E",
     {0},
     NULL},
    {"the provider is recognised by its server: Gmail rules without choosing Gmail",
     {.email = "testdukan4you@gmail.com",
      .username = "testdukan4you",
      .host = "smtp.gmail.com",
      .port = 587},
     "username:N",
     {.username = "testdukan4you@gmail.com"},
     NULL},

    /* ---- email, provider, the rest ---- */
    {"email is required",
     {.email = NULL, .host = "smtp.example.com", .port = 587},
     "email:E",
     {0},
     NULL},
    {"email without @ (as the old form asked for the user name)",
     {.email = "testdukan4you", .host = "smtp.example.com", .port = 587},
     "email:E",
     {0},
     "has no @"},
    {"the email's domain is lowercased, the local part kept",
     {.email = "Shop.Owner@Example.COM", .host = "smtp.example.com", .port = 587},
     "",
     {.email = "Shop.Owner@example.com",
      .username = "Shop.Owner@example.com",
      .sender = "Shop.Owner@example.com"},
     NULL},
    {"an email with a display name",
     {.provider = "gmail", .email = "My Shop <shop@gmail.com>"},
     "email:N",
     {.email = "shop@gmail.com", .sender_name = "My Shop"},
     NULL},
    {"the wrong provider for the address is a warning",
     {.provider = "yahoo", .email = "shop@gmail.com"},
     "provider:N",
     {.host = "smtp.mail.yahoo.com"},
     "Choose Gmail"},
    {"an unknown provider id is an error",
     {.provider_id = "nonesuch",
      .email = "shop@example.com",
      .host = "smtp.example.com",
      .port = 587},
     "provider:E",
     {0},
     NULL},
    {"provider id from the settings",
     {.provider_id = "gmail", .email = "shop@gmail.com"},
     "",
     {.host = "smtp.gmail.com", .port = 587},
     NULL},
    {"a line break in the sender's name",
     {.email = "shop@example.com",
      .sender_name = "Shop\r\nBcc: x@y.z",
      .host = "smtp.example.com",
      .port = 587},
     "sender_name:E",
     {0},
     NULL},
    {"200 characters of sender's name are fine",
     {.email = "shop@example.com",
      .sender_name = NAME_200,
      .host = "smtp.example.com",
      .port = 587},
     "",
     {0},
     NULL},
    {"201 are too many",
     {.email = "shop@example.com",
      .sender_name = NAME_200 "!",
      .host = "smtp.example.com",
      .port = 587},
     "sender_name:E",
     {0},
     NULL},
    {"an account name with a space",
     {.name = "my shop", .email = "shop@example.com", .host = "smtp.example.com", .port = 587},
     "name:E",
     {0},
     NULL},
    {"a CA file that does not exist",
     {.email = "shop@example.com",
      .host = "smtp.example.com",
      .port = 587,
      .ca_file = "/nonexistent/ca.pem"},
     "ca_file:E",
     {0},
     NULL},
    {"a negative timeout",
     {.email = "shop@example.com", .host = "smtp.example.com", .port = 587, .timeout_s = -1},
     "timeout:E",
     {0},
     NULL},
    {"everything wrong at once: each field gets its own error",
     {.name = "a/b",
      .email = "x",
      .host = "h:25",
      .port = 587,
      .security = "tls",
      .password = "",
      .sender = "y",
      .sender_name = "a\nb"},
     "name:E email:E host:E security:E password:E sender:E sender_name:E",
     {0},
     NULL},
};

/* ---- running a case ----------------------------------------------------------- */

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void
settings_from(struct account_settings *s, const struct in *in)
{
    memset(s, 0, sizeof(*s));
    s->name = dup_or_null(in->name);
    s->provider_id = dup_or_null(in->provider_id);
    s->email = dup_or_null(in->email);
    s->username = dup_or_null(in->username);
    s->password = dup_or_null(in->password);
    s->sender = dup_or_null(in->sender);
    s->sender_name = dup_or_null(in->sender_name);
    s->host = dup_or_null(in->host);
    s->port = in->port;
    s->has_security = in->security != NULL;
    if (in->security != NULL)
        assert_int_equal(smtp_security_parse(in->security, &s->security), 0);
    s->auth = (enum smtp_auth_mech)in->auth;
    s->ca_file = dup_or_null(in->ca_file);
    s->timeout_s = in->timeout_s;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "field:E field:N" of issues, sorted, into out. */
static void
issues_text(const struct account_issues *is, char *out, size_t size)
{
    char items[ACCOUNT_ISSUES_MAX][48];
    const char *ptrs[ACCOUNT_ISSUES_MAX];
    size_t len = 0;

    for (size_t i = 0; i < is->n; i++) {
        snprintf(items[i], sizeof(items[i]), "%s:%c", is->items[i].field,
                 is->items[i].is_error ? 'E' : 'N');
        ptrs[i] = items[i];
    }
    qsort(ptrs, is->n, sizeof(ptrs[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < is->n; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? " " : "", ptrs[i]);
}

/* The expected text sorted the same way. */
static void
sorted_expectation(const char *want, char *out, size_t size)
{
    char copy[512];
    const char *ptrs[ACCOUNT_ISSUES_MAX];
    size_t n = 0;
    size_t len = 0;

    snprintf(copy, sizeof(copy), "%s", want);
    for (char *t = copy; *t != '\0' && n < ACCOUNT_ISSUES_MAX;) {
        char *end = t + strcspn(t, " ");
        bool last = *end == '\0';
        *end = '\0';
        if (*t != '\0')
            ptrs[n++] = t;
        if (last)
            break;
        t = end + 1;
    }
    qsort(ptrs, n, sizeof(ptrs[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? " " : "", ptrs[i]);
}

static void
dump_issues(const struct account_issues *is)
{
    for (size_t i = 0; i < is->n; i++)
        print_message("    %s %s: %s\n", is->items[i].is_error ? "error" : "note ",
                      is->items[i].field, is->items[i].message);
}

static void
check_string(const char *what, const char *field, const char *got, const char *want)
{
    if (want == NULL)
        return;
    if (got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: %s is \"%s\", want \"%s\"", what, field, got ? got : "(null)", want);
}

static void
test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct vcase *c = &cases[i];
        const struct account_provider *p = NULL;
        struct account_settings s, again;
        struct account_issues is, is2;
        char got[512], want[512];
        size_t errors;

        if (c->in.provider != NULL) {
            p = account_provider_find(c->in.provider);
            assert_non_null(p);
        }
        settings_from(&s, &c->in);
        errors = account_validate(&s, p, &is);
        if (getenv("TEST_VALIDATE_SHOW") != NULL) { /* to read the messages */
            print_message("case %zu: %s\n", i, c->what);
            dump_issues(&is);
        }
        issues_text(&is, got, sizeof(got));
        sorted_expectation(c->issues, want, sizeof(want));
        if (strcmp(got, want) != 0) {
            dump_issues(&is);
            fail_msg("case %zu \"%s\": issues \"%s\", want \"%s\"", i, c->what, got, want);
        }
        assert_int_equal(errors, is.n_errors);
        {
            size_t n_err = 0;
            for (size_t k = 0; k < is.n; k++) {
                n_err += is.items[k].is_error;
                assert_true(is.items[k].message[0] != '\0');
                assert_null(strpbrk(is.items[k].message, "\r\n"));
            }
            assert_int_equal(n_err, is.n_errors);
        }
        if (c->phrase != NULL) {
            bool found = false;
            for (size_t k = 0; k < is.n; k++)
                found = found || strstr(is.items[k].message, c->phrase) != NULL;
            if (!found) {
                dump_issues(&is);
                fail_msg("case %zu \"%s\": no message says \"%s\"", i, c->what, c->phrase);
            }
        }
        check_string(c->what, "username", s.username, c->out.username);
        check_string(c->what, "password", s.password, c->out.password);
        check_string(c->what, "sender", s.sender, c->out.sender);
        check_string(c->what, "email", s.email, c->out.email);
        check_string(c->what, "host", s.host, c->out.host);
        check_string(c->what, "sender_name", s.sender_name, c->out.sender_name);
        if (c->out.port != 0 && s.port != c->out.port)
            fail_msg("%s: port %u, want %u", c->what, s.port, c->out.port);
        check_string(c->what, "security", smtp_security_name(s.security), c->out.security);

        /* Validating the result again changes nothing and adds nothing. */
        assert_int_equal(account_settings_copy(&again, &s, NULL), 0);
        account_validate(&again, p, &is2);
        assert_int_equal(is2.n_errors, is.n_errors);
        for (size_t k = 0; k < is2.n; k++) {
            bool seen = false;
            for (size_t m = 0; m < is.n; m++)
                seen = seen || (strcmp(is.items[m].field, is2.items[k].field) == 0 &&
                                is.items[m].is_error == is2.items[k].is_error);
            if (!seen) {
                dump_issues(&is2);
                fail_msg("case %zu \"%s\": a second validation adds %s", i, c->what,
                         is2.items[k].field);
            }
        }
        check_string(c->what, "username (again)", again.username, s.username);
        check_string(c->what, "password (again)", again.password, s.password);
        check_string(c->what, "sender (again)", again.sender, s.sender);
        check_string(c->what, "host (again)", again.host, s.host);
        assert_int_equal(again.port, s.port);
        assert_int_equal(again.security, s.security);
        account_settings_clear(&again);
        account_settings_clear(&s);
    }
}

/* ---- defaults and security inference ---------------------------------------- */

static void
test_defaults(void **state)
{
    struct account_settings s;
    struct account_issues is;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.email = strdup("shop@gmail.com");
    assert_int_equal(account_validate(&s, account_provider_find("gmail"), &is), 0);
    assert_string_equal(s.name, "default");
    assert_string_equal(s.provider_id, "gmail");
    assert_string_equal(s.username, "shop@gmail.com");
    assert_string_equal(s.sender, "shop@gmail.com");
    assert_string_equal(s.host, "smtp.gmail.com");
    assert_int_equal(s.port, 587);
    assert_int_equal(s.security, SMTP_SECURITY_STARTTLS);
    assert_true(s.has_security);
    assert_null(s.password);
    account_settings_clear(&s);

    /* "custom" is no provider */
    memset(&s, 0, sizeof(s));
    s.email = strdup("shop@example.com");
    s.provider_id = strdup("custom");
    s.host = strdup("smtp.example.com");
    s.port = 465;
    assert_int_equal(account_validate(&s, NULL, &is), 0);
    assert_null(s.provider_id);
    assert_int_equal(s.security, SMTP_SECURITY_TLS);
    account_settings_clear(&s);
}

/* ---- settings ------------------------------------------------------------------ */

static void
test_settings_copy_and_clear(void **state)
{
    struct account_settings a, b;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.name = strdup("shop");
    a.email = strdup("shop@gmail.com");
    a.password = strdup("s3cr3t \"x\"");
    a.host = strdup("smtp.gmail.com");
    a.port = 465;
    a.security = SMTP_SECURITY_TLS;
    a.has_security = true;
    a.auth = SMTP_AUTH_PLAIN;
    a.timeout_s = 30;
    assert_int_equal(account_settings_copy(&b, &a, NULL), 0);
    assert_string_equal(b.name, "shop");
    assert_string_equal(b.email, "shop@gmail.com");
    assert_string_equal(b.password, "s3cr3t \"x\"");
    assert_ptr_not_equal(b.password, a.password);
    assert_string_equal(b.host, "smtp.gmail.com");
    assert_null(b.username);
    assert_null(b.sender);
    assert_int_equal(b.port, 465);
    assert_int_equal(b.security, SMTP_SECURITY_TLS);
    assert_true(b.has_security);
    assert_int_equal(b.auth, SMTP_AUTH_PLAIN);
    assert_int_equal(b.timeout_s, 30);
    account_settings_clear(&a);
    assert_null(a.password);
    assert_null(a.email);
    assert_int_equal(a.port, 0);
    account_settings_clear(&b);
    account_settings_clear(&b); /* twice is harmless */
    account_settings_clear(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_settings_copy_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
