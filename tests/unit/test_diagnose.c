/*
 * test_diagnose.c - unit tests of the failure diagnosis (src/account/diagnose.c).
 *
 * One case per row of the research notes "SMTP setup failures" (sections
 * 1-10; the comment above each case names section.row), each with the stage,
 * code, enhanced code and the real reply text those notes quote, wrapped the
 * way our engine words its errors; then the texts our engine writes itself,
 * the generic fallbacks, and the rules every diagnosis keeps: no secret, no
 * unexpanded placeholder, no silent truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "account/account.h"

/* ---- providers as the table in providers.c describes them -------------------- */

/* clang-format off */
static const struct account_provider test_providers[] = {
    {.id = "gmail", .name = "Gmail", .host = "smtp.gmail.com", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_YES,
     .app_password_url = "https://myaccount.google.com/apppasswords",
     .help_url = "https://support.google.com/mail/answer/7126229"},
    {.id = "outlook-com", .name = "Outlook.com", .host = "smtp-mail.outlook.com",
     .port_starttls = 587, .flags = ACCOUNT_PROVIDER_OAUTH_ONLY,
     .help_url = "https://support.microsoft.com/outlook-smtp"},
    {.id = "microsoft-365", .name = "Microsoft 365", .host = "smtp.office365.com",
     .port_starttls = 587, .app_password = ACCOUNT_APP_PASSWORD_WHEN_2FA,
     .help_url = "https://learn.microsoft.com/smtp"},
    {.id = "yahoo", .name = "Yahoo", .host = "smtp.mail.yahoo.com", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_YES,
     .app_password_url = "https://login.yahoo.com/account/security"},
    {.id = "yandex", .name = "Yandex", .host = "smtp.yandex.com", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_YES},
    {.id = "mail-ru", .name = "Mail.ru", .host = "smtp.mail.ru", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_YES},
    {.id = "icloud", .name = "iCloud", .host = "smtp.mail.me.com", .port_starttls = 587,
     .app_password = ACCOUNT_APP_PASSWORD_YES},
    {.id = "zoho", .name = "Zoho Mail", .host = "smtp.zoho.com", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_WHEN_2FA},
    {.id = "zoho-eu", .name = "Zoho Mail (EU)", .host = "smtp.zoho.eu", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_WHEN_2FA},
    {.id = "sendgrid", .name = "SendGrid", .host = "smtp.sendgrid.net", .port_starttls = 587,
     .port_tls = 465, .username_format = ACCOUNT_USERNAME_OTHER},
    {.id = "amazon-ses", .name = "Amazon SES", .host = "email-smtp.{region}.amazonaws.com",
     .port_starttls = 587, .port_tls = 465},
    {.id = "brevo", .name = "Brevo", .host = "smtp-relay.brevo.com", .port_starttls = 587,
     .port_tls = 465},
    {.id = "sparkpost", .name = "SparkPost", .host = "smtp.sparkpostmail.com",
     .port_starttls = 587},
    {.id = "postmark", .name = "Postmark", .host = "smtp.postmarkapp.com", .port_starttls = 587},
    {.id = "qq", .name = "QQ Mail", .host = "smtp.qq.com", .port_starttls = 587, .port_tls = 465,
     .app_password = ACCOUNT_APP_PASSWORD_YES},
    {.id = "netease-163", .name = "163 Mail", .host = "smtp.163.com", .port_tls = 465,
     .app_password = ACCOUNT_APP_PASSWORD_YES},
    {.id = "gmx-de", .name = "GMX", .host = "mail.gmx.net", .port_starttls = 587,
     .port_tls = 465, .app_password = ACCOUNT_APP_PASSWORD_WHEN_2FA},
    {.id = "laposte", .name = "La Poste", .host = "smtp.laposte.net", .port_tls = 465},
    {.id = "ionos", .name = "IONOS", .host = "smtp.ionos.de", .port_starttls = 587,
     .port_tls = 465},
    {.id = "proton-bridge", .name = "Proton Mail Bridge", .host = "127.0.0.1",
     .port_starttls = 1025, .app_password = ACCOUNT_APP_PASSWORD_YES},
};
/* clang-format on */

static const struct account_provider *
test_provider(const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(test_providers) / sizeof(test_providers[0]); i++)
        if (strcmp(test_providers[i].id, id) == 0)
            return &test_providers[i];
    fail_msg("no test provider \"%s\"", id);
    return NULL;
}

/* ---- the table ------------------------------------------------------------------ */

struct diag_case {
    const char *row; /* section.row of the notes, or what the case covers */
    const char *stage;
    enum mo_category category;
    int code;
    const char *enhanced;
    const char *text;     /* err->text as the engine writes it */
    const char *provider; /* a test_providers id, or NULL */
    unsigned port;        /* 0: 587 */
    enum smtp_security security;
    const char *host;       /* NULL: the provider's, else smtp.example.com */
    const char *username;   /* NULL: shop@example.com; "": none */
    const char *sender;     /* NULL: none (the Email is used) */
    const char *field;      /* expected; NULL: nothing in the form */
    const char *fix_has[3]; /* key words the fix must hold (case-insensitive) */
    bool temporary;
    const char *id;           /* the catalogue entry expected */
    const char *engine_field; /* err->field ("": none); NULL: the engine's usual guess */
};

/* How the engine prefixes a server reply (src/smtp/session.c). */
#define AUTH_ "the server refused the login: "
#define MAIL_ "the server refused the sender: "
#define DATA_ "the server refused the message: "
#define RCPT_(addr) "the server refused every recipient (first: <" addr ">: "
#define EHLO_ "the server refused EHLO: "
#define GREETING_ "the server does not accept mail now: "

#define S_AUTH "auth", MO_ERR_AUTH
#define S_MAIL "mail", MO_ERR_REJECTED
#define S_RCPT "rcpt", MO_ERR_REJECTED
#define S_DATA "data", MO_ERR_REJECTED

/* One case per line group reads better than the formatter's columns. */
/* clang-format off */
static const struct diag_case diag_cases[] = {
    /* ---- 1. Google ---- */

    /* 1.1 Gmail 535-5.7.8 BadCredentials, older "Learn more at" wording */
    {"1.1", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Username and Password not accepted. Learn more at "
     "https://support.google.com/mail/?p=BadCredentials a1sm123 - gsmtp",
     "gmail", .field = "password",
     .fix_has = {"App Password", "https://myaccount.google.com/apppasswords",
                 "2-Step Verification"},
     .id = "google.bad-credentials"},
    /* 1.1 same, newer "For more information, go to" wording, no provider given */
    {"1.1b", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Username and Password not accepted. For more information, go to "
     "https://support.google.com/mail/?p=BadCredentials xyz - gsmtp",
     NULL, .host = "smtp.gmail.com", .field = "password",
     .fix_has = {"App Password", "https://myaccount.google.com/apppasswords",
                 "2-Step Verification"},
     .id = "google.bad-credentials"},
    /* 1.2 Gmail 534-5.7.9 Application-specific password required */
    {"1.2", S_AUTH, 534, "5.7.9",
     AUTH_ "534 5.7.9 Application-specific password required. Learn more at "
     "https://support.google.com/mail/?p=InvalidSecondFactor a1sm - gsmtp",
     "gmail", .field = "password", .fix_has = {"App Password", "apppasswords"},
     .id = "google.app-password-required"},
    /* 1.3 Gmail 534-5.7.14 Please log in via your web browser */
    {"1.3", S_AUTH, 534, "5.7.14",
     AUTH_ "534 5.7.14 <https://accounts.google.com/signin/continue?sarp=1&scc=1&plt=AKgnsbs> "
     "Please log in via your web browser and then try again. "
     "https://support.google.com/mail/answer/78754 a1sm - gsmtp",
     "gmail", .field = "password", .fix_has = {"browser", "App Password"},
     .id = "google.web-login-required"},
    /* 1.4 Gmail 454 4.7.0 Too many login attempts */
    {"1.4", S_AUTH, 454, "4.7.0",
     AUTH_ "454 4.7.0 Too many login attempts, please try again later. a1sm - gsmtp",
     "gmail", .field = NULL, .fix_has = {"wait", "Password"}, .temporary = true,
     .id = "auth.too-many-attempts"},
    /* 1.5 Gmail 421-4.7.0 Try again later, closing connection. (EHLO) */
    {"1.5", "ehlo", MO_ERR_REJECTED, 421, "4.7.0",
     EHLO_ "421 4.7.0 Try again later, closing connection. (EHLO) For more information, go to "
     "About SMTP error messages - Google Workspace Admin Help a1sm - gsmtp",
     "gmail", .field = NULL, .fix_has = {"try again later", "reverse DNS"}, .temporary = true,
     .id = "google.try-again-later"},
    /* 1.5 same with (MAIL): the engine guessed "sender", the diagnosis must not */
    {"1.5b", S_MAIL, 421, "4.7.0",
     MAIL_ "421 4.7.0 Try again later, closing connection. (MAIL) a1sm - gsmtp",
     "gmail", .field = NULL, .fix_has = {"try again later"}, .temporary = true,
     .id = "google.try-again-later"},
    /* 1.6 Gmail 530 5.7.0 Must issue a STARTTLS command first (Security None) */
    {"1.6", S_MAIL, 530, "5.7.0",
     MAIL_ "530 5.7.0 Must issue a STARTTLS command first. a1sm - gsmtp",
     "gmail", .security = SMTP_SECURITY_NONE, .field = "security",
     .fix_has = {"STARTTLS", "465"}, .id = "tls.starttls-required"},
    /* 1.7 Gmail 550 5.4.5 Daily user sending limit exceeded */
    {"1.7", S_MAIL, 550, "5.4.5",
     MAIL_ "550 5.4.5 Daily user sending limit exceeded. a1sm - gsmtp",
     "gmail", .field = NULL, .fix_has = {"wait", "24 hours"}, .temporary = true,
     .id = "google.daily-limit"},
    /* 1.7 older form at DATA: Daily sending quota exceeded */
    {"1.7b", S_DATA, 550, "5.4.5",
     DATA_ "550 5.4.5 Daily sending quota exceeded. a1sm - gsmtp",
     "gmail", .field = NULL, .fix_has = {"wait", "transactional"}, .temporary = true,
     .id = "google.daily-limit"},
    /* 1.8 Gmail 552-5.3.4 Your message exceeded Google's message size limits */
    {"1.8", S_DATA, 552, "5.3.4",
     DATA_ "552 5.3.4 Your message exceeded Google's message size limits. For more "
     "information, go to https://support.google.com/mail/?p=MaxSizeError a1sm - gsmtp",
     "gmail", .field = NULL, .fix_has = {"attachments"}, .id = "google.message-too-big"},
    /* 1.9 (silent From rewrite) has no error to diagnose: see the report. */

    /* ---- 2. Microsoft ---- */

    /* 2.1 535 5.7.139 basic authentication is disabled */
    {"2.1", S_AUTH, 535, "5.7.139",
     AUTH_ "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
     "[AM0PR01CA0123.eurprd01.prod.exchangelabs.com 2024-05-01T10:00:00.000Z 08DC...]",
     "outlook-com", .field = "password", .fix_has = {"OAuth"},
     .id = "microsoft.basic-auth-disabled"},
    /* 2.2 535 5.7.139 SmtpClientAuthentication is disabled for the Tenant */
    {"2.2", S_AUTH, 535, "5.7.139",
     AUTH_ "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
     "the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [DB8P191CA0001]",
     "microsoft-365", .field = NULL, .fix_has = {"administrator", "Authenticated SMTP"},
     .id = "microsoft.smtp-auth-off-tenant"},
    /* 2.3 535 5.7.139 SmtpClientAuthentication is disabled for the Mailbox */
    {"2.3", S_AUTH, 535, "5.7.139",
     AUTH_ "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
     "the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [DB8P191CA0001]",
     "microsoft-365", .field = NULL, .fix_has = {"administrator", "Authenticated SMTP"},
     .id = "microsoft.smtp-auth-off-mailbox"},
    /* 2.4 535 5.7.139 the request did not meet the criteria */
    {"2.4", S_AUTH, 535, "5.7.139",
     AUTH_ "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to "
     "be authenticated successfully. Contact your administrator. [MN2PR01CA0001]",
     "microsoft-365", .field = NULL, .fix_has = {"administrator", "OAuth"},
     .id = "microsoft.policy-blocks-login"},
    /* 2.5 535 5.7.3 Authentication unsuccessful */
    {"2.5", S_AUTH, 535, "5.7.3",
     AUTH_ "535 5.7.3 Authentication unsuccessful [SN4PR0201CA0001.namprd02.prod.outlook.com]",
     "microsoft-365", .field = "password", .fix_has = {"full mailbox address", "Password"},
     .id = "microsoft.bad-login"},
    /* 2.5 same, with a login that is not an address: User name is at fault */
    {"2.5b", S_AUTH, 535, "5.7.3",
     AUTH_ "535 5.7.3 Authentication unsuccessful [SN4PR0201CA0001.namprd02.prod.outlook.com]",
     "microsoft-365", .username = "shop", .field = "username",
     .fix_has = {"full mailbox address"}, .id = "microsoft.bad-login"},
    /* 2.6 530 5.7.57 Client not authenticated to send mail (at MAIL FROM, no login set) */
    {"2.6", S_MAIL, 530, "5.7.57",
     MAIL_ "530 5.7.57 Client not authenticated to send mail. [BN0PR04CA0001]",
     "microsoft-365", .username = "", .field = "username", .fix_has = {"User name", "Password"},
     .id = "microsoft.not-authenticated"},
    /* 2.7 550 5.7.30 Basic authentication is not supported for Client Submission */
    {"2.7", S_AUTH, 550, "5.7.30",
     AUTH_ "550 5.7.30 Basic authentication is not supported for Client Submission.",
     "microsoft-365", .field = "password", .fix_has = {"OAuth"},
     .id = "microsoft.basic-auth-retired"},
    /* 2.8 554 5.2.0 SendAsDeniedException at the end of DATA */
    {"2.8", S_DATA, 554, "5.2.0",
     DATA_ "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
     "Failed to process message due to a permanent exception with message Cannot submit message. "
     "16.55847:...",
     "microsoft-365", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Send As", "orders@shop.example"}, .id = "microsoft.send-as-denied"},
    /* 2.9 550 5.7.60 Client does not have permissions to send as this sender */
    {"2.9", S_MAIL, 550, "5.7.60",
     MAIL_ "550 5.7.60 SMTP; Client does not have permissions to send as this sender "
     "[AM6PR01MB0001.eurprd01.prod.outlook.com]",
     "microsoft-365", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Send As", "Sender's email"}, .id = "microsoft.send-as-5.7.60"},
    /* 2.10 550 5.7.1 Client does not have permissions to send as this sender (older) */
    {"2.10", S_DATA, 550, "5.7.1",
     DATA_ "550 5.7.1 Client does not have permissions to send as this sender",
     NULL, .host = "exchange.shop.example", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Send As"}, .id = "microsoft.send-as-5.7.1"},
    /* 2.11 Microsoft: port 465 times out */
    {"2.11", "connect", MO_ERR_CONNECT, 0, "",
     "no answer from smtp.office365.com on port 465 within 10 s: a firewall may block this port; "
     "try 587 (STARTTLS) or 465 (SSL/TLS), or ask your hosting provider to allow outgoing "
     "connections",
     "microsoft-365", .port = 465, .security = SMTP_SECURITY_TLS, .field = "port",
     .fix_has = {"587", "STARTTLS"}, .id = "microsoft.no-port-465"},

    /* ---- 3. Yahoo and AOL ---- */

    /* 3.1 535 5.7.0 (#AUTH005) Too many bad auth attempts */
    {"3.1", S_AUTH, 535, "5.7.0",
     AUTH_ "535 5.7.0 (#AUTH005) Too many bad auth attempts.",
     "yahoo", .field = "password", .fix_has = {"app password", "15 minutes"},
     .id = "yahoo.app-password"},
    /* 3.2 535 5.7.0 (#MBR1212) Incorrect username or password */
    {"3.2", S_AUTH, 535, "5.7.0",
     AUTH_ "535 5.7.0 (#MBR1212) Incorrect username or password.",
     "yahoo", .field = "password", .fix_has = {"full Yahoo address", "app password"},
     .id = "yahoo.bad-login"},
    /* 3.2 same with the part before @ as login */
    {"3.2b", S_AUTH, 535, "5.7.0",
     AUTH_ "535 5.7.0 (#MBR1212) Incorrect username or password.",
     "yahoo", .username = "shopowner", .field = "username", .fix_has = {"full Yahoo address"},
     .id = "yahoo.bad-login"},
    /* 3.3 550 Request failed; Mailbox unavailable (no enhanced code) at MAIL FROM */
    {"3.3", S_MAIL, 550, "",
     MAIL_ "550 Request failed; Mailbox unavailable",
     "yahoo", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Sender's email", "User name"}, .id = "yahoo.sender-refused"},
    /* 3.4 450 Requested mail action not taken: mailbox unavailable (MAIL FROM, port 587) */
    {"3.4", S_MAIL, 450, "",
     MAIL_ "450 Requested mail action not taken: mailbox unavailable",
     "yahoo", .field = "password", .fix_has = {"app password"},
     .id = "yahoo.mailbox-unavailable-450"},

    /* ---- 4. Yandex ---- */

    /* 4.1 535 5.7.8 This user does not have access rights to this service */
    {"4.1", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Error: authentication failed: This user does not have access rights to "
     "this service",
     "yandex", .field = "password", .fix_has = {"Email clients", "App passwords"},
     .id = "yandex.no-access-rights"},
    /* 4.2 5.7.8 Your message looks like spam ... prove you are not a robot */
    {"4.2", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Error: authentication failed: Your message looks like spam. You need to "
     "use web for sending or prove you are not a robot using the following link "
     "http://ya.cc/abc123",
     "yandex", .field = NULL, .fix_has = {"http://ya.cc/abc123", "browser"},
     .id = "yandex.robot-check"},
    /* 4.3 530 5.7.7 Email sending without SSL/TLS encryption is not allowed */
    {"4.3", S_AUTH, 530, "5.7.7",
     AUTH_ "530 5.7.7 Email sending without SSL/TLS encryption is not allowed. Please see: "
     "http://help.yandex.ru/mail/mail-clients/ssl.xml",
     "yandex", .security = SMTP_SECURITY_NONE, .field = "security",
     .fix_has = {"SSL/TLS", "465"}, .id = "yandex.encryption-required"},
    /* 4.4 553 5.7.1 Sender address rejected: not owned by auth user */
    {"4.4", S_MAIL, 553, "5.7.1",
     MAIL_ "553 5.7.1 Sender address rejected: not owned by auth user.",
     "yandex", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Sender's email", "User name"}, .id = "yandex.sender-not-owned"},
    /* 4.5 501 5.1.7 Bad address mailbox syntax */
    {"4.5", S_MAIL, 501, "5.1.7",
     MAIL_ "501 5.1.7 Bad address mailbox syntax.",
     "yandex", .field = "sender", .fix_has = {"name@domain"}, .id = "sender.bad-syntax"},

    /* ---- 5. Mail.ru ---- */

    /* 5.1 535 5.7.0 NEOBHODIM parol prilozheniya / Application password is REQUIRED */
    {"5.1", S_AUTH, 535, "5.7.0",
     AUTH_ "535 5.7.0 NEOBHODIM parol prilozheniya "
     "https://help.mail.ru/mail/security/protection/external Application password is REQUIRED",
     "mail-ru", .field = "password", .fix_has = {"app password", "External services"},
     .id = "mailru.app-password"},
    /* 5.2 535 Incorrect authentication data: authentication failed (Mail.ru, 2015) */
    {"5.2", S_AUTH, 535, "",
     AUTH_ "535 Incorrect authentication data: authentication failed",
     "mail-ru", .field = "password", .fix_has = {"full Mail.ru address", "app password"},
     .id = "mailru.bad-login"},
    /* 5.3 550 not local sender over smtp */
    {"5.3", S_MAIL, 550, "",
     MAIL_ "550 not local sender over smtp",
     "mail-ru", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Sender's email", "User name"}, .id = "mailru.not-local-sender"},

    /* ---- 6. Apple iCloud ---- */

    /* 6.1 iCloud AUTH failure (exact text unknown: any refusal at AUTH for iCloud) */
    {"6.1", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Authentication failed",
     "icloud", .field = "password", .fix_has = {"app-specific password", "@icloud.com"},
     .id = "icloud.login"},
    /* 6.2 wrong version number on 587 with SSL/TLS */
    {"6.2", "tls", MO_ERR_TLS, 0, "",
     "port 587 does not start with TLS (error:0A00010B:SSL routines::wrong version number): "
     "it expects STARTTLS; choose security STARTTLS for this port, or use port 465 with SSL/TLS",
     "icloud", .security = SMTP_SECURITY_TLS, .field = "security",
     .fix_has = {"587", "STARTTLS"}, .id = "icloud.starttls-only"},
    /* 6.3 554 5.7.1 [CS01] Message rejected due to local policy (test letter to iCloud) */
    {"6.3", S_DATA, 554, "5.7.1",
     DATA_ "554 5.7.1 [CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     "gmail", .field = NULL, .fix_has = {"SPF", "another address"},
     .id = "icloud.recipient-policy"},

    /* ---- 7. Zoho ---- */

    /* 7.1 553 Relaying disallowed as <address> */
    {"7.1", S_MAIL, 553, "",
     MAIL_ "553 Relaying disallowed as orders@shop.example",
     "zoho", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Sender's email", "smtppro"}, .id = "zoho.relaying-disallowed"},
    /* 7.2 535 Authentication Failed. */
    {"7.2", S_AUTH, 535, "",
     AUTH_ "535 Authentication Failed.",
     "zoho-eu", .field = "password", .fix_has = {"Application-Specific Password", "region"},
     .id = "zoho.bad-login"},
    /* 7.3 530 Must issue a STARTTLS command first. (no enhanced code) */
    {"7.3", S_AUTH, 530, "",
     AUTH_ "530 Must issue a STARTTLS command first.",
     "zoho", .security = SMTP_SECURITY_NONE, .field = "security",
     .fix_has = {"STARTTLS", "SSL/TLS"}, .id = "tls.starttls-required"},

    /* ---- 8. Transactional services ---- */

    /* 8.1 SendGrid 535 Authentication failed: Bad username / password */
    {"8.1", S_AUTH, 535, "",
     AUTH_ "535 Authentication failed: Bad username / password",
     "sendgrid", .field = "username", .fix_has = {"apikey", "SG."}, .id = "sendgrid.bad-login"},
    /* 8.1 same with User name apikey: the key is at fault */
    {"8.1b", S_AUTH, 535, "",
     AUTH_ "535 Authentication failed: Bad username / password",
     "sendgrid", .username = "apikey", .field = "password", .fix_has = {"API key"},
     .id = "sendgrid.bad-login"},
    /* 8.2 SendGrid 550 The from address does not match a verified Sender Identity */
    {"8.2", S_MAIL, 550, "",
     MAIL_ "550 The from address does not match a verified Sender Identity. Mail cannot be sent "
     "until this error is resolved. Visit "
     "https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the Sender "
     "Identity requirements",
     "sendgrid", .username = "apikey", .field = "sender", .fix_has = {"Sender Authentication"},
     .id = "sendgrid.sender-identity"},
    /* 8.3 Amazon SES 554 Message rejected: Email address is not verified */
    {"8.3", S_DATA, 554, "",
     DATA_ "554 Message rejected: Email address is not verified. The following identities "
     "failed the check in region EU-WEST-1: orders@shop.example",
     "amazon-ses", .host = "email-smtp.eu-west-1.amazonaws.com", .field = "sender",
     .fix_has = {"Verify", "sandbox"}, .id = "ses.not-verified"},
    /* 8.4 Amazon SES 535 Authentication Credentials Invalid (provider guessed from Host) */
    {"8.4", S_AUTH, 535, "",
     AUTH_ "535 Authentication Credentials Invalid",
     NULL, .host = "email-smtp.eu-west-1.amazonaws.com", .username = "AKIAEXAMPLE",
     .field = "password", .fix_has = {"SMTP credentials", "region"}, .id = "ses.bad-credentials"},
    /* 8.5 Amazon SES 454 Throttling failure: Maximum sending rate exceeded */
    {"8.5", S_MAIL, 454, "",
     MAIL_ "454 Throttling failure: Maximum sending rate exceeded.",
     "amazon-ses", .field = NULL, .fix_has = {"wait", "quota"}, .temporary = true,
     .id = "ses.throttling"},
    /* 8.5 Amazon SES 454 Throttling failure: Daily message quota exceeded */
    {"8.5b", S_DATA, 454, "",
     DATA_ "454 Throttling failure: Daily message quota exceeded.",
     "amazon-ses", .field = NULL, .fix_has = {"wait", "quota"}, .temporary = true,
     .id = "ses.throttling"},
    /* 8.6 Brevo 535 5.7.0 Invalid login or password */
    {"8.6", S_AUTH, 535, "5.7.0",
     AUTH_ "535 5.7.0 Invalid login or password",
     "brevo", .field = "password", .fix_has = {"SMTP key", "SMTP login"}, .id = "brevo.bad-login"},
    /* 8.7 SparkPost 550 5.7.1 Unconfigured Sending Domain */
    {"8.7", S_MAIL, 550, "5.7.1",
     MAIL_ "550 5.7.1 Unconfigured Sending Domain <localhost>",
     "sparkpost", .field = "sender", .fix_has = {"verify", "domain"},
     .id = "sparkpost.unconfigured-domain"},
    /* 8.8 Postmark: port 465 hangs */
    {"8.8", "connect", MO_ERR_CONNECT, 0, "",
     "no answer from smtp.postmarkapp.com on port 465 within 10 s: a firewall may block this "
     "port; try 587 (STARTTLS) or 465 (SSL/TLS), or ask your hosting provider to allow outgoing "
     "connections",
     "postmark", .port = 465, .security = SMTP_SECURITY_TLS, .field = "port",
     .fix_has = {"587", "2525", "STARTTLS"}, .id = "postmark.no-port-465"},

    /* ---- 9. Other providers and hosting ---- */

    /* 9.1 QQ 535 Login Fail. Please enter your authorization code to login */
    {"9.1", S_AUTH, 535, "",
     AUTH_ "535 Login Fail. Please enter your authorization code to login. More information in "
     "http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=28&&no=1001256",
     "qq", .field = "password", .fix_has = {"authorization code", "IMAP/SMTP"},
     .id = "qq.authorization-code"},
    /* 9.2 163: 550 User has no permission */
    {"9.2", S_MAIL, 550, "",
     MAIL_ "550 User has no permission",
     "netease-163", .field = "password", .fix_has = {"authorization code", "POP3/SMTP"},
     .id = "netease.no-permission"},
    /* 9.2 163: 535 Error: authentication failed */
    {"9.2b", S_AUTH, 535, "",
     AUTH_ "535 Error: authentication failed",
     "netease-163", .field = "password", .fix_has = {"authorization code"},
     .id = "netease.bad-login"},
    /* 9.3 GMX / WEB.DE: access for mail programs off (exact SMTP text unknown) */
    {"9.3", S_AUTH, 535, "",
     AUTH_ "535 Authentication failed",
     "gmx-de", .field = NULL, .fix_has = {"POP3/IMAP access", "GMX"}, .id = "gmx.access-off"},
    /* 9.4 GMX (recipient side) 550 Failure sending mail. Try again later */
    {"9.4", S_RCPT, 550, "",
     RCPT_("friend@gmx.de") "550  Requested action not taken: mailbox unavailable "
     "Failure sending mail. Try again later)",
     "gmail", .field = NULL, .fix_has = {"try again later", "another address"},
     .temporary = true, .id = "gmx.recipient-refused"},
    /* 9.5 La Poste 550 5.5.0 Emetteur invalide. Invalid Sender. LPN104_415 */
    {"9.5", S_MAIL, 550, "5.5.0",
     MAIL_ "550 5.5.0 Emetteur invalide. Invalid Sender. LPN104_415",
     "laposte", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"laposte.net"}, .id = "laposte.invalid-sender"},
    /* 9.6 IONOS 550 invalid DNS MX or A/AAAA resource record */
    {"9.6", S_MAIL, 550, "",
     MAIL_ "550 Requested action not taken: mailbox unavailable invalid DNS MX or A/AAAA "
     "resource record",
     "ionos", .sender = "www-data@web01.localdomain", .field = "sender",
     .fix_has = {"Sender's email"}, .id = "ionos.sender-domain"},
    /* 9.7 cPanel / Exim 535 Incorrect authentication data */
    {"9.7", S_AUTH, 535, "",
     AUTH_ "535 Incorrect authentication data",
     NULL, .host = "mail.shop.example", .field = "password",
     .fix_has = {"hosting panel", "full mailbox address"}, .id = "hosting.bad-login"},
    /* 9.7 same with a login that is not an address */
    {"9.7b", S_AUTH, 535, "",
     AUTH_ "535 Incorrect authentication data",
     NULL, .host = "mail.shop.example", .username = "shop", .field = "username",
     .fix_has = {"full mailbox address"}, .id = "hosting.bad-login"},
    /* 9.8 Postfix 553 5.7.1 Sender address rejected: not owned by user */
    {"9.8", S_MAIL, 553, "5.7.1",
     MAIL_ "553 5.7.1 <user2@example.com>: Sender address rejected: not owned by user "
     "user2@example.com",
     NULL, .host = "mail.shop.example", .sender = "user2@example.com", .field = "sender",
     .fix_has = {"Sender's email", "user2@example.com"}, .id = "postfix.sender-not-owned"},
    /* 9.9 Postfix 554 5.7.1 Relay access denied (RCPT TO), no login set */
    {"9.9", S_RCPT, 554, "5.7.1",
     RCPT_("friend@example.org") "554 5.7.1 <friend@example.org>: Relay access denied)",
     NULL, .host = "mail.shop.example", .port = 25, .username = "", .field = "username",
     .fix_has = {"User name", "587"}, .id = "postfix.relay-denied"},
    /* 9.9 same with a login set: the port (25, no submission) is at fault */
    {"9.9b", S_RCPT, 554, "5.7.1",
     RCPT_("friend@example.org") "554 5.7.1 <friend@example.org>: Relay access denied)",
     NULL, .host = "mail.shop.example", .port = 25, .field = "port",
     .fix_has = {"587", "465"}, .id = "postfix.relay-denied"},

    /* ---- 10. Network and TLS, no SMTP reply (the engine's texts, src/smtp) ---- */

    /* 10.1 port 25 times out */
    {"10.1", "connect", MO_ERR_CONNECT, 0, "",
     "no answer from mail.shop.example on port 25 within 10 s: a firewall may block this port; "
     "try 587 (STARTTLS) or 465 (SSL/TLS), or ask your hosting provider to allow outgoing "
     "connections",
     NULL, .host = "mail.shop.example", .port = 25, .field = "port",
     .fix_has = {"587", "465", "2525"}, .id = "net.port-25-blocked"},
    /* 10.2 587 times out to the provider's own server: an outgoing firewall */
    {"10.2", "connect", MO_ERR_CONNECT, 0, "",
     "no answer from smtp.gmail.com on port 587 within 10 s: a firewall may block this port; "
     "try 587 (STARTTLS) or 465 (SSL/TLS), or ask your hosting provider to allow outgoing "
     "connections",
     "gmail", .field = NULL, .fix_has = {"465", "allow outgoing"}, .temporary = true,
     .id = "net.timeout-firewall"},
    /* 10.2 times out to another server */
    {"10.2b", "connect", MO_ERR_CONNECT, 0, "",
     "no answer from mail.shop.example on port 465 within 10 s: a firewall may block this port; "
     "try 587 (STARTTLS) or 465 (SSL/TLS), or ask your hosting provider to allow outgoing "
     "connections",
     NULL, .host = "mail.shop.example", .port = 465, .security = SMTP_SECURITY_TLS,
     .field = "port", .fix_has = {"587", "465", "allow outgoing"}, .temporary = true,
     .id = "net.timeout"},
    /* 10.2 refused on 587: probably not the mail server */
    {"10.2c", "connect", MO_ERR_CONNECT, 0, "",
     "www.shop.example refused the connection on port 587: nothing accepts mail there; check the "
     "port (587 for STARTTLS, 465 for SSL/TLS) and the host",
     NULL, .host = "www.shop.example", .field = "host",
     .fix_has = {"Host", "465", "allow outgoing"}, .temporary = true, .id = "net.refused"},
    /* 10.2 refused on an unusual port */
    {"10.2d", "connect", MO_ERR_CONNECT, 0, "",
     "mail.shop.example refused the connection on port 5870: nothing accepts mail there; check "
     "the port (587 for STARTTLS, 465 for SSL/TLS) and the host",
     NULL, .host = "mail.shop.example", .port = 5870, .field = "port",
     .fix_has = {"587", "465"}, .temporary = true, .id = "net.refused-port"},
    /* 10.3 SSL/TLS on a STARTTLS port: wrong version number */
    {"10.3", "tls", MO_ERR_TLS, 0, "",
     "port 587 does not start with TLS (error:0A00010B:SSL routines::wrong version number): "
     "it expects STARTTLS; choose security STARTTLS for this port, or use port 465 with SSL/TLS",
     NULL, .host = "mail.shop.example", .security = SMTP_SECURITY_TLS, .field = "security",
     .fix_has = {"Port 587 uses STARTTLS", "465"}, .id = "tls.wrong-version"},
    /* 10.4 STARTTLS on 465: greeting never received */
    {"10.4", "greeting", MO_ERR_PROTOCOL, 0, "",
     "the server on port 465 sent no greeting: this port expects SSL/TLS from the first byte; "
     "choose security SSL/TLS, or use port 587 with STARTTLS",
     "gmail", .port = 465, .field = "security", .fix_has = {"SSL/TLS", "587"},
     .id = "tls.no-greeting-465"},
    /* 10.5 530 Must issue a STARTTLS command first (SES wording, Security None) */
    {"10.5", S_MAIL, 530, "",
     MAIL_ "530 Must issue a STARTTLS command first",
     "amazon-ses", .host = "email-smtp.us-east-1.amazonaws.com", .port = 25,
     .security = SMTP_SECURITY_NONE, .field = "security", .fix_has = {"STARTTLS"},
     .id = "tls.starttls-required"},
    /* 10.6 certificate name mismatch on shared hosting */
    {"10.6", "tls", MO_ERR_TLS, 0, "",
     "the server's certificate is issued for *.webhostbox.net, webhostbox.net, not for "
     "\"mail.shop.example\": enter the server name the certificate names as host",
     NULL, .host = "mail.shop.example", .port = 465, .security = SMTP_SECURITY_TLS,
     .field = "host", .fix_has = {"*.webhostbox.net, webhostbox.net", "Host"},
     .id = "tls.name-mismatch"},
    /* 10.7 unable to get local issuer certificate */
    {"10.7", "tls", MO_ERR_TLS, 0, "",
     "the server's certificate is not trusted (unable to get local issuer certificate): it is "
     "self-signed or signed by a private authority; give that authority's certificate as the "
     "CA file, or check that this machine's root certificates are up to date",
     NULL, .host = "mail.shop.example", .field = "security",
     .fix_has = {"CA file", "root certificates"}, .id = "tls.untrusted"},
    /* 10.7 Proton Mail Bridge's self-signed certificate */
    {"10.7b", "tls", MO_ERR_TLS, 0, "",
     "the server's certificate is not trusted (self-signed certificate): it is self-signed or "
     "signed by a private authority; give that authority's certificate as the CA file, or check "
     "that this machine's root certificates are up to date",
     "proton-bridge", .port = 1025, .username = "shop@proton.me", .field = "security",
     .fix_has = {"Bridge", "CA file"}, .id = "tls.local-ca"},
    /* 10.7 a self-signed certificate in the chain, on this machine, no provider */
    {"10.7c", "tls", MO_ERR_TLS, 0, "",
     "the server's certificate is not trusted (self-signed certificate in certificate chain): "
     "it is self-signed or signed by a private authority; give that authority's certificate as "
     "the CA file, or check that this machine's root certificates are up to date",
     NULL, .host = "127.0.0.1", .port = 1025, .field = "security",
     .fix_has = {"CA file"}, .id = "tls.local-server-ca"},

    /* ---- the engine's other texts ---- */

    /* DNS: the name does not exist */
    {"dns", "dns", MO_ERR_DNS, 0, "",
     "the server name \"smtp.gmial.com\" was not found in DNS (Name or service not known); "
     "check the spelling of the host",
     NULL, .host = "smtp.gmial.com", .field = "host", .fix_has = {"spelling", "Host"},
     .id = "dns.not-found"},
    /* DNS: a temporary resolver failure */
    {"dns-again", "dns", MO_ERR_DNS, 0, "",
     "the server name \"smtp.gmail.com\" was not found in DNS (Temporary failure in name "
     "resolution); check the spelling of the host",
     "gmail", .field = NULL, .fix_has = {"try again"}, .temporary = true,
     .id = "dns.temporary"},
    /* DNS: not a valid host name (CONFIG, stage dns) */
    {"dns-invalid", "dns", MO_ERR_CONFIG, 0, "",
     "the server name \"smtp..example\" is not a valid host name (string contains a disallowed "
     "character)",
     NULL, .host = "smtp..example", .field = "host", .fix_has = {"Host"},
     .id = "dns.invalid-name"},
    /* connect: another errno */
    {"connect-other", "connect", MO_ERR_CONNECT, 0, "",
     "could not connect to mail.shop.example port 587: Network is unreachable",
     NULL, .host = "mail.shop.example", .field = "host", .fix_has = {"Host", "Port"},
     .temporary = true, .id = "net.connect-failed"},
    /* greeting: a custom port without SSL/TLS stays silent */
    {"greeting-timeout", "greeting", MO_ERR_PROTOCOL, 0, "",
     "the server did not answer in time",
     NULL, .host = "mail.shop.example", .port = 2465, .field = "security",
     .fix_has = {"2465", "SSL/TLS"}, .temporary = true, .id = "tls.no-greeting"},
    /* STARTTLS not offered */
    {"no-starttls", "starttls", MO_ERR_TLS, 0, "",
     "the server on port 25 does not offer STARTTLS, so the connection cannot be encrypted and "
     "nothing was sent; use port 465 with SSL/TLS, or a port that offers STARTTLS (587)",
     NULL, .host = "mail.shop.example", .port = 25, .field = "security",
     .fix_has = {"SSL/TLS", "465"}, .id = "tls.no-starttls"},
    /* STARTTLS refused with a reply */
    {"starttls-refused", "starttls", MO_ERR_TLS, 454, "4.7.0",
     "the server refused STARTTLS: 454 4.7.0 TLS not available due to local problem",
     NULL, .host = "mail.shop.example", .field = "security", .fix_has = {"SSL/TLS"},
     .temporary = true, .id = "tls.starttls-refused"},
    /* AUTH not offered over a clear connection */
    {"no-auth-clear", "auth", MO_ERR_AUTH, 0, "",
     "the server on port 25 does not offer login (AUTH); many servers offer it only over an "
     "encrypted connection: choose STARTTLS or SSL/TLS",
     NULL, .host = "mail.shop.example", .port = 25, .security = SMTP_SECURITY_NONE,
     .field = "security", .fix_has = {"STARTTLS", "SSL/TLS"},
     .id = "auth.not-offered-cleartext"},
    /* AUTH not offered over TLS, at a host that is not the provider's */
    {"no-auth-wrong-host", "auth", MO_ERR_AUTH, 0, "",
     "the server on port 587 does not offer login (AUTH); it may be a relay that needs no user "
     "name, or the wrong server",
     "gmail", .host = "mail.shop.example", .field = "host",
     .fix_has = {"Host", "smtp.gmail.com", "Gmail"},
     .id = "auth.not-offered-wrong-host"},
    /* AUTH not offered over TLS, custom server */
    {"no-auth-tls", "auth", MO_ERR_AUTH, 0, "",
     "the server on port 587 does not offer login (AUTH); it may be a relay that needs no user "
     "name, or the wrong server",
     NULL, .host = "relay.shop.example", .field = "username",
     .fix_has = {"User name", "Host"}, .id = "auth.not-offered"},
    /* the engine refuses to send the password in clear */
    {"cleartext", "auth", MO_ERR_CONFIG, 0, "",
     "refusing to send the password over an unencrypted connection to mail.shop.example; "
     "choose STARTTLS or SSL/TLS",
     NULL, .host = "mail.shop.example", .security = SMTP_SECURITY_NONE, .field = "security",
     .fix_has = {"STARTTLS", "SSL/TLS"}, .id = "auth.cleartext-refused"},
    /* expired certificate */
    {"cert-expired", "tls", MO_ERR_TLS, 0, "",
     "the server's certificate has expired; the mail server's owner must renew it",
     NULL, .host = "mail.shop.example", .field = "host", .fix_has = {"renew"},
     .id = "tls.expired"},
    /* the SIZE check before sending */
    {"size", "mail", MO_ERR_REJECTED, 0, "",
     "the message is 40000000 bytes and the server accepts at most 35882577 bytes",
     "gmail", .field = NULL, .fix_has = {"attachments"}, .id = "message.too-big"},
    /* SCRAM: the server says the user is unknown (engine field username) */
    {"scram-unknown-user", "auth", MO_ERR_AUTH, 0, "",
     "the server does not know this user name (SCRAM e=unknown-user)",
     NULL, .host = "mail.shop.example", .field = "username", .fix_has = {"User name"},
     .engine_field = "username", .id = "auth.failed"},

    /* an address needs SMTPUTF8, which the server does not offer */
    {"smtputf8", "mail", MO_ERR_CONFIG, 0, "",
     "an address has non-ASCII characters before the @, and this server does not support "
     "international addresses (SMTPUTF8)",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"Sender's email"},
     .engine_field = "", .id = "message.no-smtputf8"},
    /* the configured login method is not offered */
    {"auth-method", "auth", MO_ERR_AUTH, 0, "",
     "the server does not offer the login method CRAM-MD5",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"automatic"},
     .engine_field = "auth", .id = "auth.method-not-offered"},
    /* data injected before the TLS handshake (RFC 3207 4.2) */
    {"starttls-injection", "starttls", MO_ERR_TLS, 0, "",
     "the server sent data before the TLS handshake (possible injection attack); the connection "
     "was dropped",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"465"},
     .id = "tls.injection"},
    /* the TLS handshake timed out */
    {"tls-timeout", "tls", MO_ERR_TLS, 0, "",
     "the TLS handshake with mail.shop.example timed out after 10 s",
     NULL, .host = "mail.shop.example", .port = 465, .security = SMTP_SECURITY_TLS,
     .field = "security", .fix_has = {"try again", "465 with SSL/TLS"}, .temporary = true,
     .engine_field = "security", .id = "tls.handshake-timeout"},
    /* any other TLS failure */
    {"tls-other", "tls", MO_ERR_TLS, 0, "",
     "the TLS handshake with mail.shop.example failed: error:0A000410:SSL routines::sslv3 alert "
     "handshake failure",
     NULL, .host = "mail.shop.example", .port = 465, .security = SMTP_SECURITY_TLS,
     .field = "security", .fix_has = {"587 with STARTTLS"}, .id = "tls.failed"},
    /* 538 5.7.11 Encryption required for requested authentication mechanism */
    {"auth-538", S_AUTH, 538, "5.7.11",
     AUTH_ "538 5.7.11 Encryption required for requested authentication mechanism",
     NULL, .host = "127.0.0.1", .security = SMTP_SECURITY_NONE, .field = "security",
     .fix_has = {"STARTTLS"}, .id = "auth.encryption-required"},

    /* ---- fallbacks ---- */

    /* unknown 5xx at MAIL FROM: the sender */
    {"mail-5xx", S_MAIL, 550, "5.7.1",
     MAIL_ "550 5.7.1 Sender rejected by local policy",
     NULL, .host = "mail.shop.example", .sender = "orders@shop.example", .field = "sender",
     .fix_has = {"Sender's email"}, .id = "mail.sender-refused"},
    /* unknown refusal at AUTH (Dovecot wording): the password */
    {"auth-5xx", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Error: authentication failed: authentication failure",
     NULL, .host = "mail.shop.example", .field = "password", .fix_has = {"Password"},
     .id = "auth.refused"},
    /* unknown refusal at AUTH for a provider with app passwords: its own URL */
    {"auth-5xx-app", S_AUTH, 535, "5.7.8",
     AUTH_ "535 5.7.8 Something new went wrong",
     "yahoo", .field = "password",
     .fix_has = {"app password", "https://login.yahoo.com/account/security"},
     .id = "auth.app-password"},
    /* unknown refusal at AUTH for a provider that takes only OAuth */
    {"auth-5xx-oauth", S_AUTH, 535, "5.7.0",
     AUTH_ "535 5.7.0 Something new went wrong",
     "outlook-com", .field = "password", .fix_has = {"OAuth"}, .id = "auth.oauth-only"},
    /* unknown 4xx at AUTH */
    {"auth-4xx", S_AUTH, 454, "4.7.0",
     AUTH_ "454 4.7.0 Temporary authentication failure",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"wait"}, .temporary = true,
     .id = "auth.temporary"},
    /* unknown 4xx at MAIL (the engine guessed sender) */
    {"mail-4xx", S_MAIL, 451, "4.3.0",
     MAIL_ "451 4.3.0 Temporary lookup failure",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"try again"},
     .temporary = true, .id = "server.temporary"},
    /* 530 at MAIL with no login set */
    {"mail-530", S_MAIL, 530, "5.7.0",
     MAIL_ "530 5.7.0 Authentication required",
     NULL, .host = "mail.shop.example", .username = "", .field = "username",
     .fix_has = {"User name", "Password"}, .id = "mail.login-required"},
    /* the test letter to the owner's own Email was refused: Email */
    {"rcpt-own", S_RCPT, 550, "5.1.1",
     RCPT_("shop@example.com") "550 5.1.1 The email account that you tried to reach does not "
     "exist)",
     "gmail", .field = "email", .fix_has = {"Email"}, .id = "rcpt.refused"},
    /* another recipient refused: nothing in the form */
    {"rcpt-other", S_RCPT, 550, "5.1.1",
     RCPT_("frend@example.org") "550 5.1.1 The email account that you tried to reach does not "
     "exist)",
     "gmail", .field = NULL, .fix_has = {"recipient"}, .id = "rcpt.refused"},
    /* unknown 5xx after DATA */
    {"data-5xx", S_DATA, 554, "5.7.1",
     DATA_ "554 5.7.1 Message rejected as spam",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"plain test letter"},
     .id = "data.refused"},
    /* a greeting refusal: the shop server's address is blocked */
    {"greeting-554", "greeting", MO_ERR_REJECTED, 554, "",
     GREETING_ "554 mail.shop.example ESMTP not accepting messages from your IP",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"hosting provider"},
     .id = "greeting.refused"},
    /* a 421 anywhere */
    {"421", "greeting", MO_ERR_REJECTED, 421, "4.3.2",
     GREETING_ "421 4.3.2 Service shutting down",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"try again"},
     .temporary = true, .id = "server.busy"},
    /* the connection dropped */
    {"dropped", "mail", MO_ERR_PROTOCOL, 0, "",
     "the server closed the connection",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"try again"},
     .temporary = true, .id = "net.dropped"},
    /* a setting refused before connecting (the engine's own field) */
    {"config", NULL, MO_ERR_CONFIG, 0, "",
     "the sender address is too long",
     NULL, .host = "mail.shop.example", .field = "sender", .fix_has = {"highlighted"},
     .engine_field = "sender", .id = "config.setting"},
    /* the CA file cannot be read: not a field of the form */
    {"ca-file", "tls", MO_ERR_CONFIG, 0, "",
     "cannot read the CA file \"/etc/x.pem\" (missing, unreadable or not PEM)",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"administrator"},
     .engine_field = "ca_file", .id = "config.ca-file"},
    /* a bug or out of memory: nothing known */
    {"internal", "mail", MO_ERR_INTERNAL, 0, "",
     "out of memory",
     NULL, .host = "mail.shop.example", .field = NULL, .fix_has = {"try again"},
     .engine_field = "", .id = "unknown"},
};
/* clang-format on */

#define N_CASES (sizeof(diag_cases) / sizeof(diag_cases[0]))

/* ---- helpers ------------------------------------------------------------------------ */

/* A password the diagnosis must never read: any access faults. */
static char *
guarded_password(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    assert_true(p != MAP_FAILED);
    return p;
}

/* What the engine puts in err->field at each stage (session.c, conn.c). */
static const char *
engine_field(const struct diag_case *c)
{
    static const struct {
        const char *stage;
        const char *field;
    } guesses[] = {
        {"dns", "host"},       {"connect", "port"},      {"tls", "security"},  {"greeting", NULL},
        {"ehlo", NULL},        {"starttls", "security"}, {"auth", "password"}, {"mail", "sender"},
        {"rcpt", "recipient"}, {"data", NULL},
    };

    if (c->engine_field != NULL) /* "": the engine named no field */
        return c->engine_field[0] != '\0' ? c->engine_field : NULL;
    for (size_t i = 0; c->stage != NULL && i < sizeof(guesses) / sizeof(guesses[0]); i++)
        if (strcmp(c->stage, guesses[i].stage) == 0)
            return guesses[i].field;
    return NULL;
}

static void
build_case(const struct diag_case *c, struct mo_error *err, struct account_settings *s,
           char *password)
{
    const struct account_provider *p = test_provider(c->provider);

    mo_error_clear(err);
    err->category = c->category;
    err->stage = c->stage;
    err->smtp_code = c->code;
    err->field = engine_field(c);
    snprintf(err->enhanced, sizeof(err->enhanced), "%s", c->enhanced != NULL ? c->enhanced : "");
    assert_true(strlen(c->text) < sizeof(err->text));
    snprintf(err->text, sizeof(err->text), "%s", c->text);
    /* As the engine sets it (conn.c, session.c). */
    err->temporary = (c->code >= 400 && c->code < 500) || c->category == MO_ERR_CONNECT ||
                     (c->category == MO_ERR_PROTOCOL && c->code == 0) ||
                     (c->category == MO_ERR_DNS && strstr(c->text, "Temporary") != NULL);

    memset(s, 0, sizeof(*s));
    s->name = "default";
    s->provider_id = p != NULL ? (char *)p->id : NULL;
    s->email = "shop@example.com";
    s->username = c->username == NULL      ? "shop@example.com"
                  : c->username[0] == '\0' ? NULL
                                           : (char *)c->username;
    s->password = password;
    s->sender = (char *)c->sender;
    s->host = c->host != NULL ? (char *)c->host : p != NULL ? (char *)p->host : "smtp.example.com";
    s->port = c->port != 0 ? c->port : 587;
    s->security = c->security;
    s->has_security = true;
}

static void
assert_well_formed(const struct account_diagnosis *d)
{
    const char *texts[] = {d->title, d->explanation, d->fix};
    const size_t sizes[] = {sizeof(d->title), sizeof(d->explanation), sizeof(d->fix)};

    assert_non_null(d->id);
    for (size_t i = 0; i < 3; i++) {
        assert_true(texts[i][0] != '\0');
        assert_true(strlen(texts[i]) < sizes[i]);
        /* Every placeholder was expanded. */
        assert_null(strchr(texts[i], '{'));
        assert_null(strchr(texts[i], '}'));
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void
test_diagnose_table(void **state)
{
    char *password = guarded_password();
    (void)state;

    for (size_t i = 0; i < N_CASES; i++) {
        const struct diag_case *c = &diag_cases[i];
        struct mo_error err;
        struct account_settings s;
        struct account_diagnosis d;

        print_message("case %s: %s\n", c->row, c->id);
        build_case(c, &err, &s, password);
        memset(&d, 0x55, sizeof(d));
        account_diagnose(&err, test_provider(c->provider), &s, &d);

        assert_well_formed(&d);
        assert_string_equal(d.id, c->id);
        if (c->field == NULL)
            assert_null(d.field);
        else
            assert_string_equal(d.field, c->field);
        assert_int_equal(d.temporary, c->temporary);
        for (size_t k = 0; k < 3 && c->fix_has[k] != NULL; k++) {
            if (strcasestr(d.fix, c->fix_has[k]) == NULL)
                fail_msg("case %s: fix \"%s\" lacks \"%s\"", c->row, d.fix, c->fix_has[k]);
        }
        /* Nothing was cut short in the table's cases. */
        assert_true(strlen(d.fix) < sizeof(d.fix) - 1);
        assert_true(strlen(d.explanation) < sizeof(d.explanation) - 1);
    }
    munmap(password, (size_t)sysconf(_SC_PAGESIZE));
}

/* Every row of sections 1-10 has a case (1.9 excepted: no error exists). */
static void
test_diagnose_rows_covered(void **state)
{
    static const int rows_per_section[] = {0, 9, 11, 4, 5, 3, 3, 3, 8, 9, 7};
    (void)state;

    for (int sec = 1; sec <= 10; sec++) {
        for (int row = 1; row <= rows_per_section[sec]; row++) {
            char name[16];
            bool found = false;

            if (sec == 1 && row == 9)
                continue;
            snprintf(name, sizeof(name), "%d.%d", sec, row);
            for (size_t i = 0; i < N_CASES && !found; i++)
                found = strcmp(diag_cases[i].row, name) == 0;
            if (!found)
                fail_msg("row %s has no test case", name);
        }
    }
}

/* Gmail's reply names the provider's page; other entries fall back to the provider's. */
static void
test_diagnose_help_url(void **state)
{
    struct mo_error err;
    struct account_settings s;
    struct account_diagnosis d;
    (void)state;

    build_case(&diag_cases[0], &err, &s, NULL);
    account_diagnose(&err, test_provider("gmail"), &s, &d);
    assert_string_equal(d.help_url, "https://support.google.com/accounts/answer/185833");

    mo_error_clear(&err);
    err.category = MO_ERR_REJECTED;
    err.stage = "mail";
    err.smtp_code = 550;
    snprintf(err.text, sizeof(err.text), "the server refused the sender: 550 5.7.1 Denied");
    account_diagnose(&err, test_provider("microsoft-365"), &s, &d);
    assert_string_equal(d.id, "mail.sender-refused");
    assert_string_equal(d.help_url, "https://learn.microsoft.com/smtp");

    account_diagnose(&err, NULL, &s, &d);
    assert_null(d.help_url);

    /* A refusal on the recipient's side does not point at the sender's provider. */
    err.stage = "rcpt";
    snprintf(err.text, sizeof(err.text),
             "the server refused every recipient (first: <a@example.org>: 550 5.1.1 no)");
    account_diagnose(&err, test_provider("microsoft-365"), &s, &d);
    assert_string_equal(d.id, "rcpt.refused");
    assert_null(d.help_url);
}

/* NULL error, NULL settings, NULL provider: still a complete diagnosis. */
static void
test_diagnose_nulls(void **state)
{
    struct account_diagnosis d;
    struct mo_error err;
    (void)state;

    memset(&d, 0x55, sizeof(d));
    account_diagnose(NULL, NULL, NULL, &d);
    assert_well_formed(&d);
    assert_string_equal(d.id, "unknown");
    assert_null(d.field);
    assert_false(d.temporary);

    /* Without settings the port-dependent advice still reads. */
    mo_error_clear(&err);
    err.category = MO_ERR_TLS;
    err.stage = "tls";
    snprintf(err.text, sizeof(err.text), "port 587 does not start with TLS (wrong version number)");
    account_diagnose(&err, NULL, NULL, &d);
    assert_well_formed(&d);
    assert_string_equal(d.id, "tls.wrong-version");
    assert_string_equal(d.field, "security");
    /* The port comes from the engine's text then. */
    assert_non_null(strstr(d.fix, "Port 587 uses STARTTLS"));

    /* An unknown stage name is treated as none. */
    mo_error_clear(&err);
    err.category = MO_ERR_INTERNAL;
    err.stage = "bogus";
    snprintf(err.text, sizeof(err.text), "out of memory");
    account_diagnose(&err, NULL, NULL, &d);
    assert_string_equal(d.id, "unknown");
}

/* The provider is guessed from the host name when none was given. */
static void
test_diagnose_host_guess(void **state)
{
    static const struct {
        const char *host;
        const char *text;
        const char *id;
    } guesses[] = {
        {"smtp.zoho.eu", "the server refused the login: 535 Authentication Failed.",
         "zoho.bad-login"},
        {"SMTP.GMAIL.COM.", "the server refused the login: 535 Authentication Failed.",
         "auth.refused"},
        {"smtp.163.com", "the server refused the login: 535 Error: authentication failed",
         "netease.bad-login"},
        {"smtp-relay.brevo.com",
         "the server refused the login: 535 5.7.0 Invalid login or password", "brevo.bad-login"},
        {"smtp.mail.me.com", "the server refused the login: 535 5.7.8 nope", "icloud.login"},
        /* a look-alike host is not the provider */
        {"smtp.notzoho.eu", "the server refused the login: 535 Authentication Failed.",
         "auth.refused"},
        {"mail.gmail.com.evil.example",
         "the server refused the login: 535 Error: authentication "
         "failed",
         "auth.refused"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(guesses) / sizeof(guesses[0]); i++) {
        struct mo_error err;
        struct account_settings s;
        struct account_diagnosis d;

        mo_error_clear(&err);
        err.category = MO_ERR_AUTH;
        err.stage = "auth";
        err.smtp_code = 535;
        snprintf(err.text, sizeof(err.text), "%s", guesses[i].text);
        memset(&s, 0, sizeof(s));
        s.host = (char *)guesses[i].host;
        s.port = 587;
        s.username = "shop@example.com";
        account_diagnose(&err, NULL, &s, &d);
        print_message("host %s -> %s\n", guesses[i].host, d.id);
        assert_string_equal(d.id, guesses[i].id);
        assert_string_equal(d.field, "password");
    }
}

/* The enhanced code matches by whole parts, and is optional. */
static void
test_diagnose_enhanced_parts(void **state)
{
    struct mo_error err;
    struct account_settings s;
    struct account_diagnosis d;
    (void)state;

    memset(&s, 0, sizeof(s));
    s.host = "smtp.office365.com";
    s.port = 587;
    s.username = "shop@example.com";
    mo_error_clear(&err);
    err.category = MO_ERR_REJECTED;
    err.stage = "mail";
    err.smtp_code = 550;
    /* 5.7.139 is not 5.7.1: the older Exchange entry must not claim it. */
    snprintf(err.enhanced, sizeof(err.enhanced), "5.7.139");
    snprintf(err.text, sizeof(err.text),
             "the server refused the sender: 550 5.7.139 Client does not have permissions to "
             "send as this sender");
    account_diagnose(&err, NULL, &s, &d);
    assert_string_equal(d.id, "mail.sender-refused");

    /* Without an enhanced code the phrase decides. */
    err.enhanced[0] = '\0';
    account_diagnose(&err, NULL, &s, &d);
    assert_string_equal(d.id, "microsoft.send-as-5.7.60");
    assert_string_equal(d.field, "sender");
}

/* A very long host: the texts are cut on a character boundary and marked. */
static void
test_diagnose_truncation(void **state)
{
    char host[800];
    struct mo_error err;
    struct account_settings s;
    struct account_diagnosis d;
    size_t n = 0;
    (void)state;

    /* "é" (2 bytes) repeated, so a cut in the middle of one is likely. */
    while (n + 2 < sizeof(host) - 1) {
        host[n++] = (char)0xC3;
        host[n++] = (char)0xA9;
    }
    host[n] = '\0';
    memset(&s, 0, sizeof(s));
    s.host = host;
    s.port = 587;
    mo_error_clear(&err);
    err.category = MO_ERR_CONNECT;
    err.stage = "connect";
    snprintf(err.text, sizeof(err.text), "x refused the connection on port 587");
    account_diagnose(&err, NULL, &s, &d);
    assert_string_equal(d.id, "net.refused");
    /* The host alone is longer than the explanation's 600 bytes. */
    assert_true(strlen(d.explanation) <= sizeof(d.explanation) - 1);
    assert_true(strlen(d.explanation) >= sizeof(d.explanation) - 5);
    assert_string_equal(d.explanation + strlen(d.explanation) - 3, "...");
    /* No half character before the "...". */
    {
        size_t len = strlen(d.explanation) - 3;
        size_t i = 0;

        while (i < len) {
            unsigned char ch = (unsigned char)d.explanation[i];
            size_t w = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : 0;

            assert_true(w != 0);
            assert_true(i + w <= len);
            i += w;
        }
    }
    /* The title stays whole. */
    assert_string_equal(d.title, "This server does not accept mail on port 587");
}

/* No secret reaches the texts: the password is never read (a guarded page),
 * and a reply that happened to hold it is not copied. */
static void
test_diagnose_no_secret(void **state)
{
    struct mo_error err;
    struct account_settings s;
    struct account_diagnosis d;
    char *password = guarded_password();
    (void)state;

    memset(&s, 0, sizeof(s));
    s.host = "mail.shop.example";
    s.port = 587;
    s.username = "shop@example.com";
    s.password = password;
    mo_error_clear(&err);
    err.category = MO_ERR_AUTH;
    err.stage = "auth";
    err.smtp_code = 535;
    snprintf(err.text, sizeof(err.text),
             "the server refused the login: 535 5.7.8 bad password Hunter2Secret for user");
    account_diagnose(&err, NULL, &s, &d);
    assert_null(strstr(d.title, "Hunter2Secret"));
    assert_null(strstr(d.explanation, "Hunter2Secret"));
    assert_null(strstr(d.fix, "Hunter2Secret"));
    munmap(password, (size_t)sysconf(_SC_PAGESIZE));
}

/* The catalogue's provider ids are those of the real table (providers.c), and the
 * table's fields (name, app password page) read well in the texts. */
static void
test_diagnose_real_providers(void **state)
{
    static const struct {
        const char *provider;
        const char *stage;
        int code;
        const char *text;
        unsigned port;
        const char *id;
        const char *fix_has;
    } real[] = {
        {"gmail", "auth", 535,
         "the server refused the login: 535 5.7.8 Username and Password not accepted.", 587,
         "google.bad-credentials", "https://myaccount.google.com/apppasswords"},
        {"google-workspace", "auth", 534,
         "the server refused the login: 534 5.7.9 Application-specific password required.", 587,
         "google.app-password-required", "App Password"},
        {"outlook-com", "auth", 535, "the server refused the login: 535 5.7.0 nope", 587,
         "auth.oauth-only", "OAuth"},
        {"microsoft-365", "connect", 0, "no answer from smtp.office365.com on port 465 within 10 s",
         465, "microsoft.no-port-465", "587"},
        {"aol", "mail", 450,
         "the server refused the sender: 450 Requested mail action not taken: mailbox unavailable",
         465, "yahoo.mailbox-unavailable-450", "app password"},
        {"verizon", "auth", 535, "the server refused the login: 535 5.7.0 nope", 465,
         "auth.app-password", "https://login.aol.com/account/security"},
        {"mail-ru", "auth", 535,
         "the server refused the login: 535 Incorrect authentication data: authentication failed",
         465, "mailru.bad-login", "app password"},
        {"icloud", "auth", 535, "the server refused the login: 535 5.7.8 nope", 587, "icloud.login",
         "app-specific password"},
        {"zoho-ca", "auth", 535, "the server refused the login: 535 Authentication Failed.", 465,
         "zoho.bad-login", "Application-Specific Password"},
        {"gmx-com", "auth", 535, "the server refused the login: 535 Authentication failed", 587,
         "gmx.access-off", "GMX web mail"},
        {"web-de", "auth", 535, "the server refused the login: 535 Authentication failed", 587,
         "gmx.access-off", "WEB.DE web mail"},
        {"netease-126", "auth", 535,
         "the server refused the login: 535 Error: authentication failed", 465, "netease.bad-login",
         "authorization code"},
        {"sendgrid", "auth", 535,
         "the server refused the login: 535 Authentication failed: Bad username / password", 587,
         "sendgrid.bad-login", "apikey"},
        {"amazon-ses", "auth", 535,
         "the server refused the login: 535 Authentication Credentials Invalid", 587,
         "ses.bad-credentials", "SMTP credentials"},
        {"brevo", "auth", 535, "the server refused the login: 535 5.7.0 Invalid login or password",
         587, "brevo.bad-login", "SMTP key"},
        {"postmark", "connect", 0, "no answer from smtp.postmarkapp.com on port 465 within 10 s",
         465, "postmark.no-port-465", "2525"},
        {"proton-bridge", "tls", 0,
         "the server's certificate is not trusted (self-signed certificate): give ...", 1025,
         "tls.local-ca", "Bridge"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
        const struct account_provider *p = account_provider_find(real[i].provider);
        struct mo_error err;
        struct account_settings s;
        struct account_diagnosis d;

        print_message("real provider %s -> %s\n", real[i].provider, real[i].id);
        assert_non_null(p);
        mo_error_clear(&err);
        err.stage = real[i].stage;
        err.smtp_code = real[i].code;
        err.category = real[i].code != 0 ? MO_ERR_AUTH : MO_ERR_CONNECT;
        snprintf(err.text, sizeof(err.text), "%s", real[i].text);
        memset(&s, 0, sizeof(s));
        s.host = (char *)p->host;
        s.port = real[i].port;
        s.security = real[i].port == 465 ? SMTP_SECURITY_TLS : SMTP_SECURITY_STARTTLS;
        s.username = "shop@example.com";
        s.email = "shop@example.com";
        account_diagnose(&err, p, &s, &d);
        assert_well_formed(&d);
        assert_string_equal(d.id, real[i].id);
        if (strcasestr(d.fix, real[i].fix_has) == NULL)
            fail_msg("%s: fix \"%s\" lacks \"%s\"", real[i].provider, d.fix, real[i].fix_has);
        /* The table's long names lose their parenthesis in sentences. */
        assert_null(strstr(d.title, " ("));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diagnose_table),      cmocka_unit_test(test_diagnose_rows_covered),
        cmocka_unit_test(test_diagnose_help_url),   cmocka_unit_test(test_diagnose_nulls),
        cmocka_unit_test(test_diagnose_host_guess), cmocka_unit_test(test_diagnose_enhanced_parts),
        cmocka_unit_test(test_diagnose_truncation), cmocka_unit_test(test_diagnose_real_providers),
        cmocka_unit_test(test_diagnose_no_secret),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
