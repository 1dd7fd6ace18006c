/*
 * test_providers.c - unit tests of the built-in provider table (account
 * module, providers.c): every row is findable by its id, by each of its
 * address domains and by each of its MX suffixes; the longest MX suffix
 * wins at a label boundary; the flags the validation relies on are where
 * the research notes put them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"

#define KNOWN_FLAGS                                                                                \
    (ACCOUNT_PROVIDER_DOTS_IGNORED | ACCOUNT_PROVIDER_PLUS_TAGS |                                  \
     ACCOUNT_PROVIDER_SENDER_MUST_MATCH | ACCOUNT_PROVIDER_REWRITES_FROM |                         \
     ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES | ACCOUNT_PROVIDER_OAUTH_ONLY |                        \
     ACCOUNT_PROVIDER_LOCAL)

static const char *
id_of(const struct account_provider *p)
{
    return p != NULL ? p->id : "(none)";
}

static void
upper(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)toupper((unsigned char)*s);
}

/* ---- every row ----------------------------------------------------------- */

static void
test_rows_are_well_formed(void **state)
{
    size_t n = account_provider_count();

    (void)state;
    assert_true(n >= 60);
    assert_null(account_provider_at(n));
    for (size_t i = 0; i < n; i++) {
        const struct account_provider *p = account_provider_at(i);
        assert_non_null(p);
        assert_non_null(p->id);
        assert_true(p->id[0] != '\0');
        assert_non_null(p->name);
        assert_non_null(p->host);
        assert_true(p->host[0] != '\0');
        assert_non_null(p->domains);
        assert_non_null(p->mx_suffixes);
        assert_true(p->port_starttls != 0 || p->port_tls != 0);
        assert_true(p->port_starttls <= 65535 && p->port_tls <= 65535);
        assert_int_equal(p->flags & ~(unsigned)KNOWN_FLAGS, 0);
        /* only the sandbox is local, and "custom" is a NULL provider */
        assert_int_equal((p->flags & ACCOUNT_PROVIDER_LOCAL) != 0, strcmp(p->id, "sandbox") == 0);
        assert_string_not_equal(p->id, "custom");
        /* ids are unique */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(p->id, account_provider_at(j)->id);
    }
}

static void
test_every_row_by_id_domain_and_mx(void **state)
{
    (void)state;
    for (size_t i = 0; i < account_provider_count(); i++) {
        const struct account_provider *p = account_provider_at(i);
        char buf[300];

        assert_ptr_equal(account_provider_find(p->id), p);
        snprintf(buf, sizeof(buf), "%s", p->id);
        upper(buf);
        assert_ptr_equal(account_provider_find(buf), p);
        for (const char *const *d = p->domains; *d != NULL; d++) {
            if (account_provider_for_domain(*d) != p)
                fail_msg("domain %s: got %s, want %s", *d, id_of(account_provider_for_domain(*d)),
                         p->id);
            snprintf(buf, sizeof(buf), "%s.", *d); /* fully qualified */
            upper(buf);
            assert_ptr_equal(account_provider_for_domain(buf), p);
        }
        for (const char *const *s = p->mx_suffixes; *s != NULL; s++) {
            const struct account_provider *got;
            assert_ptr_equal(account_provider_for_mx(*s), p);
            snprintf(buf, sizeof(buf), "mx1.%s.", *s);
            upper(buf);
            got = account_provider_for_mx(buf);
            if (got != p)
                fail_msg("MX %s: got %s, want %s", buf, id_of(got), p->id);
        }
    }
}

/* ---- look-up cases ---------------------------------------------------------- */

static const struct {
    const char *mx;
    const char *want; /* NULL: no provider */
} mx_cases[] = {
    {"aspmx.l.google.com", "google-workspace"},
    {"ALT1.ASPMX.L.GOOGLE.COM.", "google-workspace"},
    {"aspmx2.googlemail.com", "google-workspace"},
    {"smtp.google.com", "google-workspace"},
    /* longest suffix: AOL lives under Yahoo's yahoodns.net */
    {"mx-aol.mail.gm0.yahoodns.net", "aol"},
    {"gm0.yahoodns.net", "aol"},
    {"mta5.am0.yahoodns.net", "yahoo"},
    {"mx-att.mail.am0.yahoodns.net", "yahoo"},
    {"yahoodns.net", "yahoo"},
    /* Outlook.com's olc. before Microsoft 365's mail.protection.outlook.com */
    {"hotmail-com.olc.protection.outlook.com", "outlook-com"},
    {"outlook-com.olc.protection.outlook.com.", "outlook-com"},
    {"shop-two-test.mail.protection.outlook.com", "microsoft-365"},
    {"contoso-com.mail.protection.outlook.com", "microsoft-365"},
    {"contoso-com.a-v1.mx.microsoft", "microsoft-365"},
    /* protection.outlook.com alone is no suffix of the table */
    {"contoso-com.protection.outlook.com", NULL},
    {"mx.yandex.net", "yandex"},
    {"mx.yandex.ru", "yandex"},
    {"emx.mail.ru", "mail-ru"},
    {"mx.zoho.com", "zoho"},
    {"mx.zoho.eu", "zoho-eu"},
    {"mx.zoho.com.au", "zoho-au"},
    {"mx2.zohocloud.ca", "zoho-ca"},
    {"in1-smtp.messagingengine.com", "fastmail"},
    {"mx01.kundenserver.de", "ionos"},
    {"smtpin.rzone.de", "strato"},
    {"mx1.mail.ovh.net", "ovh-mxplan"},
    {"mx1.emailsrvr.com", "rackspace"},
    {"mx01.mail.icloud.com", "icloud"},
    {"mx.gmx.net", "gmx-de"},
    {"mx00.gmx.com", "gmx-com"},
    /* suffixes match whole labels only */
    {"notgoogle.com", NULL},
    {"evilyahoodns.net", NULL},
    {"xolc.protection.outlook.com", NULL},
    {"google.com.example.test", NULL},
    {"mail.example.com", NULL},
    {"com", NULL},
    {".", NULL},
    {"", NULL},
};

static void
test_for_mx(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(mx_cases) / sizeof(mx_cases[0]); i++) {
        const struct account_provider *got = account_provider_for_mx(mx_cases[i].mx);
        const char *want = mx_cases[i].want;
        if (want == NULL ? got != NULL : (got == NULL || strcmp(got->id, want) != 0))
            fail_msg("MX \"%s\": got %s, want %s", mx_cases[i].mx, id_of(got),
                     want ? want : "(none)");
    }
    assert_null(account_provider_for_mx(NULL));
}

static const struct {
    const char *domain;
    const char *want;
} domain_cases[] = {
    {"gmail.com", "gmail"},
    {"googlemail.com", "gmail"},
    {"GMail.Com", "gmail"},
    {"gmail.com.", "gmail"},
    {"yandex.ru", "yandex"},
    {"ya.ru", "yandex"},
    {"outlook.com", "outlook-com"},
    {"hotmail.co.uk", "outlook-com"},
    {"onmicrosoft.com", "microsoft-365"},
    {"yahoo.com", "yahoo"},
    {"aol.com", "aol"},
    {"verizon.net", "verizon"},
    {"icloud.com", "icloud"},
    {"mail.ru", "mail-ru"},
    {"web.de", "web-de"},
    {"fastmail.com", "fastmail"},
    {"qq.com", "qq"},
    /* exact domains only: no subdomains, no look-alikes */
    {"mail.gmail.com", NULL},
    {"gmail.com.au", NULL},
    {"xgmail.com", NULL},
    {"gmail", NULL},
    {"example.com", NULL},
    {"", NULL},
    {".", NULL},
};

static void
test_for_domain(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]); i++) {
        const struct account_provider *got = account_provider_for_domain(domain_cases[i].domain);
        const char *want = domain_cases[i].want;
        if (want == NULL ? got != NULL : (got == NULL || strcmp(got->id, want) != 0))
            fail_msg("domain \"%s\": got %s, want %s", domain_cases[i].domain, id_of(got),
                     want ? want : "(none)");
    }
    assert_null(account_provider_for_domain(NULL));
}

static void
test_find(void **state)
{
    (void)state;
    assert_string_equal(account_provider_find("gmail")->id, "gmail");
    assert_string_equal(account_provider_find("Google-Workspace")->id, "google-workspace");
    assert_null(account_provider_find("custom"));
    /* the local test inbox (issue 6): a built-in row, on this machine */
    assert_non_null(account_provider_find("sandbox"));
    assert_true(account_provider_find("sandbox")->flags & ACCOUNT_PROVIDER_LOCAL);
    assert_null(account_provider_find("gmai"));
    assert_null(account_provider_find(""));
    assert_null(account_provider_find(NULL));
}

/* ---- what validation and detection rely on --------------------------------- */

static const struct {
    const char *id;
    unsigned flags_set;
    unsigned flags_clear;
} flag_cases[] = {
    {"gmail",
     ACCOUNT_PROVIDER_DOTS_IGNORED | ACCOUNT_PROVIDER_PLUS_TAGS | ACCOUNT_PROVIDER_REWRITES_FROM |
         ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES,
     ACCOUNT_PROVIDER_SENDER_MUST_MATCH | ACCOUNT_PROVIDER_OAUTH_ONLY},
    /* dots matter on Workspace domains */
    {"google-workspace", ACCOUNT_PROVIDER_REWRITES_FROM | ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES,
     ACCOUNT_PROVIDER_DOTS_IGNORED},
    {"outlook-com", ACCOUNT_PROVIDER_OAUTH_ONLY | ACCOUNT_PROVIDER_SENDER_MUST_MATCH, 0},
    {"microsoft-365", ACCOUNT_PROVIDER_SENDER_MUST_MATCH, ACCOUNT_PROVIDER_OAUTH_ONLY},
    {"yandex", ACCOUNT_PROVIDER_SENDER_MUST_MATCH, ACCOUNT_PROVIDER_DOTS_IGNORED},
    {"mail-ru", ACCOUNT_PROVIDER_SENDER_MUST_MATCH, 0},
    {"yahoo", ACCOUNT_PROVIDER_SENDER_MUST_MATCH,
     ACCOUNT_PROVIDER_PLUS_TAGS | ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES},
    {"zoho-eu", ACCOUNT_PROVIDER_SENDER_MUST_MATCH, 0},
    {"fastmail", ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES | ACCOUNT_PROVIDER_PLUS_TAGS, 0},
    {"aol", ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES, 0},
    {"icloud", 0, ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES},
    {"sendgrid", 0, ACCOUNT_PROVIDER_SENDER_MUST_MATCH},
};

static void
test_flags(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(flag_cases) / sizeof(flag_cases[0]); i++) {
        const struct account_provider *p = account_provider_find(flag_cases[i].id);
        assert_non_null(p);
        if ((p->flags & flag_cases[i].flags_set) != flag_cases[i].flags_set ||
            (p->flags & flag_cases[i].flags_clear) != 0)
            fail_msg("%s: flags 0x%x", p->id, p->flags);
    }
    /* only consumer Gmail ignores dots */
    for (size_t i = 0; i < account_provider_count(); i++) {
        const struct account_provider *p = account_provider_at(i);
        if (p->flags & ACCOUNT_PROVIDER_DOTS_IGNORED)
            assert_string_equal(p->id, "gmail");
    }
}

static const struct {
    const char *id;
    const char *host;
    unsigned port_starttls;
    unsigned port_tls;
    enum account_username_format username_format;
    enum account_app_password app_password;
    unsigned daily_limit;
    const char *fixed_username;
} row_cases[] = {
    {"gmail", "smtp.gmail.com", 587, 465, ACCOUNT_USERNAME_FULL_EMAIL, ACCOUNT_APP_PASSWORD_YES,
     500, NULL},
    {"google-workspace", "smtp.gmail.com", 587, 465, ACCOUNT_USERNAME_FULL_EMAIL,
     ACCOUNT_APP_PASSWORD_YES, 2000, NULL},
    {"outlook-com", "smtp-mail.outlook.com", 587, 0, ACCOUNT_USERNAME_FULL_EMAIL,
     ACCOUNT_APP_PASSWORD_NO, 0, NULL},
    /* "10000 recipients/day" counts recipients, not messages */
    {"microsoft-365", "smtp.office365.com", 587, 0, ACCOUNT_USERNAME_FULL_EMAIL,
     ACCOUNT_APP_PASSWORD_WHEN_2FA, 0, NULL},
    {"aol", "smtp.aol.com", 0, 465, ACCOUNT_USERNAME_FULL_EMAIL, ACCOUNT_APP_PASSWORD_YES, 0, NULL},
    {"web-de", "smtp.web.de", 587, 465, ACCOUNT_USERNAME_LOCAL_PART, ACCOUNT_APP_PASSWORD_WHEN_2FA,
     0, NULL},
    {"sendgrid", "smtp.sendgrid.net", 587, 465, ACCOUNT_USERNAME_OTHER, ACCOUNT_APP_PASSWORD_NO, 0,
     "apikey"},
    {"sparkpost", "smtp.sparkpostmail.com", 587, 0, ACCOUNT_USERNAME_OTHER, ACCOUNT_APP_PASSWORD_NO,
     0, "SMTP_Injection"},
    {"brevo", "smtp-relay.brevo.com", 587, 465, ACCOUNT_USERNAME_OTHER, ACCOUNT_APP_PASSWORD_NO,
     300, NULL},
    {"proton-bridge", "127.0.0.1", 1025, 0, ACCOUNT_USERNAME_FULL_EMAIL, ACCOUNT_APP_PASSWORD_YES,
     0, NULL},
    {"amazon-ses", "email-smtp.{region}.amazonaws.com", 587, 465, ACCOUNT_USERNAME_OTHER,
     ACCOUNT_APP_PASSWORD_NO, 0, NULL},
};

static void
test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(row_cases) / sizeof(row_cases[0]); i++) {
        const struct account_provider *p = account_provider_find(row_cases[i].id);
        assert_non_null(p);
        assert_string_equal(p->host, row_cases[i].host);
        assert_int_equal(p->port_starttls, row_cases[i].port_starttls);
        assert_int_equal(p->port_tls, row_cases[i].port_tls);
        assert_int_equal(p->username_format, row_cases[i].username_format);
        assert_int_equal(p->app_password, row_cases[i].app_password);
        assert_int_equal(p->daily_limit, row_cases[i].daily_limit);
        if (row_cases[i].fixed_username == NULL)
            assert_null(p->fixed_username);
        else
            assert_string_equal(p->fixed_username, row_cases[i].fixed_username);
    }
    assert_string_equal(account_provider_find("gmail")->app_password_url,
                        "https://myaccount.google.com/apppasswords");
    assert_null(account_provider_find("outlook-com")->app_password_url);
    assert_true(account_provider_find("outlook-com")->oauth2_supported);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_well_formed),
        cmocka_unit_test(test_every_row_by_id_domain_and_mx),
        cmocka_unit_test(test_for_mx),
        cmocka_unit_test(test_for_domain),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
