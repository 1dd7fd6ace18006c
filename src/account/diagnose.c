/*
 * diagnose.c - turns a failed check or send into "this field, this reason,
 * this fix" for the shop owner: the catalogue of real provider replies.
 *
 * Why: the admin panel must not just turn a field red. Each failure names the
 * one setting of the mail form at fault (Email, User name, Password, Sender's
 * email, Host, Port, Security, or none) and says in plain words what to do.
 *
 * The catalogue below is our own copy of the research notes on real server
 * replies (sections 1-10 of the reference "SMTP setup failures"); the
 * comment above each entry names the section and row it comes from. Entries
 * without a row number cover texts our own engine writes (src/smtp/conn.c,
 * session.c) and the generic fallbacks.
 *
 * Matching rules (one linear scan; the FIRST entry that matches wins, so the
 * table runs from the most specific to the most generic):
 *   - stage: err->stage must be one of the entry's stages (0: any; a NULL
 *     stage counts as DIAG_S_NONE);
 *   - category: err->category must be in the entry's mask (0: any);
 *   - code: "535" exact, "5xx"/"4xx" a class, "-" no server reply at all
 *     (network and TLS trouble), NULL any;
 *   - enhanced: a prefix of err->enhanced by whole parts ("5.7.1" matches
 *     "5.7.1" but not "5.7.139"). It is optional, as many servers never send
 *     one: when err->enhanced is empty the entry's enhanced code is ignored;
 *   - phrases: every listed phrase must occur in err->text, case-insensitive
 *     substring; "a|b" means either. Only short key phrases, never the whole
 *     reply: providers append session ids and reword the rest over time;
 *   - providers: space-separated provider ids ("zoho*" is a prefix); the
 *     provider given, or when none is given, one guessed from the host name
 *     (smtp.gmail.com is Google). NULL: any provider, or none;
 *   - when: conditions on the settings (port, security, host), each group
 *     (ports, security) OR'ed inside and AND'ed with the others.
 * The field then comes from the entry, refined by its field rules (e.g. User
 * name instead of Password when the login lacks the "@" a provider needs).
 * The texts are templates: {port}, {host}, {email}, {sender}, {provider},
 * {provider_host}, {ports} (the provider's ports), {app_password} ("at <url>"), {names} (the
 * certificate's names from the error) and {link} (a URL from the reply).
 *
 * Secrets: s->password is never read, and the server's reply is never copied
 * whole into a text (only a certificate name list or a URL is taken from it);
 * the panel shows err->text beside the diagnosis anyway.
 *
 * Leaves out: the silent From rewrite of Gmail (no error to diagnose; the
 * validation warns before saving), translations (the entry id is stable and
 * can key them), and looking at the transcript (err carries what we need).
 * Follows RFC 5321 4.2 (reply codes) and RFC 3463 (enhanced status codes).
 */
#include "account/account.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the catalogue's vocabulary ------------------------------------------ */

/* Stages, one bit each (err->stage names them). */
enum diag_stage {
    DIAG_S_NONE = 1u << 0, /* err->stage is NULL (a setting refused before connecting) */
    DIAG_S_DNS = 1u << 1,
    DIAG_S_CONNECT = 1u << 2,
    DIAG_S_TLS = 1u << 3,
    DIAG_S_GREETING = 1u << 4,
    DIAG_S_EHLO = 1u << 5,
    DIAG_S_STARTTLS = 1u << 6,
    DIAG_S_AUTH = 1u << 7,
    DIAG_S_MAIL = 1u << 8,
    DIAG_S_RCPT = 1u << 9,
    DIAG_S_DATA = 1u << 10,
    DIAG_S_QUIT = 1u << 11,
};

#define DIAG_S_ENVELOPE (DIAG_S_MAIL | DIAG_S_RCPT | DIAG_S_DATA)
#define DIAG_S_HANDSHAKE (DIAG_S_CONNECT | DIAG_S_TLS | DIAG_S_GREETING)

static const struct {
    const char *name;
    unsigned bit;
} diag_stage_names[] = {
    {"dns", DIAG_S_DNS},           {"connect", DIAG_S_CONNECT}, {"tls", DIAG_S_TLS},
    {"greeting", DIAG_S_GREETING}, {"ehlo", DIAG_S_EHLO},       {"starttls", DIAG_S_STARTTLS},
    {"auth", DIAG_S_AUTH},         {"mail", DIAG_S_MAIL},       {"rcpt", DIAG_S_RCPT},
    {"data", DIAG_S_DATA},         {"quit", DIAG_S_QUIT},
};

#define DIAG_C(cat) (1u << (cat))

/* Conditions on the settings. */
enum diag_when {
    DIAG_W_PORT_25 = 1u << 0,
    DIAG_W_PORT_465 = 1u << 1,
    DIAG_W_PORT_587 = 1u << 2,
    DIAG_W_PORT_UNUSUAL = 1u << 3, /* set, and none of 25, 465, 587, 2525 */
    DIAG_W_SEC_STARTTLS = 1u << 4,
    DIAG_W_SEC_TLS = 1u << 5,
    DIAG_W_SEC_NONE = 1u << 6,
    DIAG_W_PROVIDER_HOST = 1u << 7,     /* Host is the provider's own server */
    DIAG_W_NOT_PROVIDER_HOST = 1u << 8, /* a known provider, and Host is another server */
    DIAG_W_LOOPBACK = 1u << 9,          /* Host is this machine */
    DIAG_W_APP_PASSWORD = 1u << 10,     /* the provider wants an app password (maybe with 2FA) */
    DIAG_W_OAUTH_ONLY = 1u << 11,       /* the provider refuses passwords */
};

#define DIAG_W_PORTS (DIAG_W_PORT_25 | DIAG_W_PORT_465 | DIAG_W_PORT_587 | DIAG_W_PORT_UNUSUAL)
#define DIAG_W_SECURITY (DIAG_W_SEC_STARTTLS | DIAG_W_SEC_TLS | DIAG_W_SEC_NONE)

/* How the field is refined once an entry matched. */
enum diag_field_rule {
    DIAG_F_USERNAME_IF_MISSING = 1u << 0, /* "username" when no User name is set */
    DIAG_F_USERNAME_IF_NO_AT = 1u << 1,   /* "username" when the login is not an address */
    DIAG_F_EMAIL_IF_OWN_RCPT = 1u << 2,   /* "email" when the refused recipient is Email */
    DIAG_F_ENGINE = 1u << 3,              /* the engine's own guess (err->field) */
};

enum diag_temp {
    DIAG_T_NO = 0,
    DIAG_T_YES,
    DIAG_T_ERR, /* as the engine said (err->temporary) */
};

struct diag_entry {
    const char *id; /* stable name, for logs, the API and translations */
    unsigned stages;
    unsigned categories;
    const char *code;
    const char *enhanced;
    const char *phrases[3];
    const char *providers;
    unsigned when;
    const char *field;           /* a form field, or NULL: nothing in the form */
    unsigned field_rules;        /* enum diag_field_rule bits */
    const char *expect_username; /* "username" when the login is anything else */
    enum diag_temp temporary;
    const char *help_url; /* NULL: the provider's own help page; "": none */
    const char *title;
    const char *explanation;
    const char *fix;
};

#define GOOGLE_APP_PASSWORD_HELP "https://support.google.com/accounts/answer/185833"
#define MICROSOFT_SMTP_AUTH_HELP                                                                   \
    "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/"            \
    "authenticated-client-smtp-submission"
#define YAHOO_PROVIDERS "yahoo aol verizon att yahoo-jp"
#define MICROSOFT_PROVIDERS "outlook-com microsoft-365"
#define TIMEOUT_PHRASES "no answer from|timed out|did not answer in time|sent no greeting"

/* ---- the catalogue -------------------------------------------------------- */

/* Most specific first: provider and phrase entries, then the engine's own
 * texts, then fallbacks by stage and code. The last entry matches anything. */
static const struct diag_entry diag_catalogue[] = {
    /* ---- 1. Google ---- */

    /* 1.1: 535 5.7.8 BadCredentials (also what a correct normal password gets). */
    {
        .id = "google.bad-credentials",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.8",
        .phrases = {"Username and Password not accepted|BadCredentials"},
        .field = "password",
        .help_url = GOOGLE_APP_PASSWORD_HELP,
        .title = "Google wants an App Password, not your normal password",
        .explanation = "Google refused the login. Google no longer lets mail programs such as "
                       "this shop sign in with the normal account password, so it says this "
                       "even when that password is right. A typo in the address or the "
                       "password gives the same answer.",
        .fix = "Turn on 2-Step Verification in your Google account first. Then create an App "
               "Password at https://myaccount.google.com/apppasswords and paste it into "
               "Password (the spaces do not matter). Check that User name is your full Gmail "
               "or Google Workspace address.",
    },
    /* 1.2: 534 5.7.9 Application-specific password required. */
    {
        .id = "google.app-password-required",
        .stages = DIAG_S_AUTH,
        .code = "534",
        .enhanced = "5.7.9",
        .phrases = {"Application-specific password required|InvalidSecondFactor"},
        .field = "password",
        .help_url = GOOGLE_APP_PASSWORD_HELP,
        .title = "Google wants an App Password",
        .explanation = "Your Google account uses 2-Step Verification, and the normal account "
                       "password was sent. Google accepts only an App Password from mail "
                       "programs then.",
        .fix = "Create an App Password at https://myaccount.google.com/apppasswords and paste "
               "it into Password instead of your Google password.",
    },
    /* 1.3: 534 5.7.14 Please log in via your web browser. */
    {
        .id = "google.web-login-required",
        .stages = DIAG_S_AUTH,
        .code = "534",
        .enhanced = "5.7.14",
        .phrases = {"web browser|answer/78754|signin/continue"},
        .field = "password",
        .help_url = "https://support.google.com/mail/answer/78754",
        .title = "Google blocked the sign-in from your shop's server",
        .explanation = "Google found the sign-in suspicious, usually because it came from a "
                       "server in a new place, and blocked it.",
        .fix = "Sign in to Gmail in a web browser and confirm that it was you if Google asks. "
               "Then press Test again, with an App Password in Password "
               "(https://myaccount.google.com/apppasswords).",
    },
    /* 1.4: 454 4.7.0 Too many login attempts, please try again later. */
    {
        .id = "auth.too-many-attempts",
        .stages = DIAG_S_AUTH | DIAG_S_MAIL,
        .code = "454",
        .phrases = {"Too many login attempts"},
        .temporary = DIAG_T_YES,
        .title = "Too many sign-in attempts: wait a while",
        .explanation = "{provider} has locked sign-ins for a while because there were too many "
                       "of them, often after several wrong passwords.",
        .fix = "Wait 15 to 30 minutes before you test again, and do not press Test repeatedly. "
               "Meanwhile make sure Password holds the right password (for Google, an App "
               "Password) so the next attempt succeeds.",
    },
    /* 1.5: 421 4.7.0 Try again later, closing connection. (EHLO) / (MAIL) */
    {
        .id = "google.try-again-later",
        .code = "421",
        .phrases = {"Try again later, closing connection"},
        .temporary = DIAG_T_YES,
        .title = "Google is refusing connections from your server for now",
        .explanation = "Google is temporarily refusing or slowing down mail from your shop's "
                       "server. Nothing in the form is wrong.",
        .fix = "Wait and try again later. If it keeps happening, ask your hosting provider to "
               "check the server's reputation and its reverse DNS name.",
    },
    /* 1.6 (Google), 7.3 (Zoho, no enhanced code), 10.5 (SES as well):
     * 530 5.7.0 Must issue a STARTTLS command first. */
    {
        .id = "tls.starttls-required",
        .code = "530",
        .phrases = {"Must issue a STARTTLS"},
        .field = "security",
        .title = "The server wants an encrypted connection",
        .explanation = "The server refuses to go on before the connection is encrypted, and "
                       "Security is set to None.",
        .fix = "Set Security to STARTTLS for port 587, or to SSL/TLS for port 465.",
    },
    /* 1.7: 550 5.4.5 Daily user sending limit exceeded / Daily sending quota exceeded. */
    {
        .id = "google.daily-limit",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .enhanced = "5.4.5",
        .phrases = {"Daily user sending limit|Daily sending quota|sending limit exceeded"},
        .temporary = DIAG_T_YES,
        .help_url = "https://support.google.com/a/answer/166852",
        .title = "The daily sending limit is reached",
        .explanation = "The mailbox reached Google's daily sending limit (about 500 messages a "
                       "day for Gmail, 2,000 for Google Workspace). Nothing in the form is "
                       "wrong.",
        .fix = "Wait: sending resumes within 24 hours. For the mail volume of a shop, use a "
               "transactional mail service (Amazon SES, SendGrid, Mailgun, Postmark, Brevo...).",
    },
    /* 1.8: 552 5.3.4 Your message exceeded Google's message size limits. */
    {
        .id = "google.message-too-big",
        .stages = DIAG_S_ENVELOPE,
        .code = "552",
        .enhanced = "5.3.4",
        .phrases = {"size limit"},
        .title = "The message is too large",
        .explanation = "The message, attachments included, is larger than {provider} accepts. "
                       "Nothing in the form is wrong.",
        .fix = "Make the message smaller: reduce or remove attachments, or send a link "
               "instead.",
    },
    /* The engine's own SIZE check, before anything was sent. */
    {
        .id = "message.too-big",
        .stages = DIAG_S_MAIL,
        .code = "-",
        .phrases = {"the server accepts at most"},
        .title = "The message is too large for this server",
        .explanation = "The message, attachments included, is larger than the server says it "
                       "accepts, so it was not sent. Nothing in the form is wrong.",
        .fix = "Make the message smaller: reduce or remove attachments, or send a link "
               "instead.",
    },
    /* The engine: an address needs SMTPUTF8, which the server does not offer. */
    {
        .id = "message.no-smtputf8",
        .stages = DIAG_S_MAIL,
        .code = "-",
        .phrases = {"international addresses"},
        .title = "This server cannot send to or from accented addresses",
        .explanation = "An address has letters outside A-Z before the @, and this server does "
                       "not support such addresses.",
        .fix = "Use addresses with plain letters before the @ in Sender's email and for the "
               "recipient, or a provider that supports international addresses.",
    },
    /* 1.9 (Gmail rewrites a foreign From without an error) has nothing to diagnose. */

    /* ---- 2. Microsoft ---- */

    /* 2.1: 535 5.7.139 basic authentication is disabled. */
    {
        .id = "microsoft.basic-auth-disabled",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.139",
        .phrases = {"basic authentication is disabled"},
        .field = "password",
        .help_url = MICROSOFT_SMTP_AUTH_HELP,
        .title = "Microsoft no longer accepts passwords here",
        .explanation = "Microsoft has switched off password sign-in (and app passwords) for "
                       "sending from this account. Only a Microsoft sign-in (OAuth) works.",
        .fix = "Connect the account with \"Sign in with Microsoft\" (OAuth) instead of a "
               "password, or send the shop's mail through another service.",
    },
    /* 2.2: 535 5.7.139 SmtpClientAuthentication is disabled for the Tenant. */
    {
        .id = "microsoft.smtp-auth-off-tenant",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.139",
        .phrases = {"disabled for the Tenant"},
        .help_url = "https://aka.ms/smtp_auth_disabled",
        .title = "Your Microsoft 365 organisation does not allow sending from programs",
        .explanation = "SMTP sign-in (\"Authenticated SMTP\") is switched off for your whole "
                       "Microsoft 365 organisation. That is Microsoft's default; the password "
                       "may well be right.",
        .fix = "Ask your Microsoft 365 administrator to enable Authenticated SMTP for the "
               "organisation and for this mailbox, or connect with Microsoft OAuth.",
    },
    /* 2.3: 535 5.7.139 SmtpClientAuthentication is disabled for the Mailbox. */
    {
        .id = "microsoft.smtp-auth-off-mailbox",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.139",
        .phrases = {"disabled for the Mailbox"},
        .help_url = "https://aka.ms/smtp_auth_disabled",
        .title = "Sending from programs is off for this mailbox",
        .explanation = "SMTP sign-in (\"Authenticated SMTP\") is switched off for this "
                       "mailbox. The password may well be right.",
        .fix = "Ask your administrator to turn on Authenticated SMTP for this mailbox "
               "(Microsoft 365 admin center > the user > Mail > Manage email apps).",
    },
    /* 2.4: 535 5.7.139 the request did not meet the criteria to be authenticated. */
    {
        .id = "microsoft.policy-blocks-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.139",
        .phrases = {"did not meet the criteria"},
        .help_url = MICROSOFT_SMTP_AUTH_HELP,
        .title = "A security policy blocks password sign-in",
        .explanation = "Your organisation's security rules (Security Defaults, Conditional "
                       "Access or multi-factor sign-in) block password sign-in for mail "
                       "programs, even with the right password.",
        .fix = "Ask your administrator to exclude this mailbox from the block on legacy "
               "sign-in, or connect with Microsoft OAuth.",
    },
    /* 2.5: 535 5.7.3 Authentication unsuccessful. */
    {
        .id = "microsoft.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.3",
        .phrases = {"Authentication unsuccessful"},
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_NO_AT,
        .help_url = MICROSOFT_SMTP_AUTH_HELP,
        .title = "Microsoft rejected the sign-in",
        .explanation = "Microsoft did not accept the user name and password. Older servers "
                       "also say this when sending from programs is switched off for the "
                       "mailbox.",
        .fix = "User name must be the full mailbox address; check Password. If both are "
               "right, ask the administrator to enable Authenticated SMTP for the mailbox.",
    },
    /* 2.6: 530 5.7.57 Client not authenticated to send mail (at MAIL FROM). */
    {
        .id = "microsoft.not-authenticated",
        .stages = DIAG_S_MAIL | DIAG_S_RCPT | DIAG_S_DATA,
        .code = "530",
        .enhanced = "5.7.57",
        .phrases = {"not authenticated"},
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_MISSING,
        .help_url = MICROSOFT_SMTP_AUTH_HELP,
        .title = "Microsoft wants you to sign in before sending",
        .explanation = "The server only sends for a signed-in mailbox, and the sign-in did not "
                       "happen or did not succeed.",
        .fix = "Fill in User name (the full mailbox address) and Password. If they are set, "
               "the sign-in itself failed: check Password and test again to see why.",
    },
    /* 2.7: 550 5.7.30 Basic authentication is not supported for Client Submission. */
    {
        .id = "microsoft.basic-auth-retired",
        .stages = DIAG_S_AUTH | DIAG_S_MAIL,
        .code = "550",
        .enhanced = "5.7.30",
        .phrases = {"Basic authentication is not supported"},
        .field = "password",
        .help_url = MICROSOFT_SMTP_AUTH_HELP,
        .title = "Microsoft no longer accepts passwords here",
        .explanation = "Microsoft has retired password sign-in for sending from programs. "
                       "Only a Microsoft sign-in (OAuth) works.",
        .fix = "Connect the account with \"Sign in with Microsoft\" (OAuth) instead of a "
               "password, or send the shop's mail through another service.",
    },
    /* 2.8: 554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException. */
    {
        .id = "microsoft.send-as-denied",
        .stages = DIAG_S_ENVELOPE,
        .code = "554",
        .enhanced = "5.2.0",
        .phrases = {"SendAsDenied"},
        .field = "sender",
        .title = "Microsoft refused to send as this sender",
        .explanation = "Sender's email ({sender}) is not the signed-in mailbox, and the mailbox "
                       "has no \"Send As\" right for it.",
        .fix = "Set Sender's email to your mailbox address, or ask the administrator to grant "
               "\"Send As\" for {sender}.",
    },
    /* 2.9: 550 5.7.60 SMTP; Client does not have permissions to send as this sender. */
    {
        .id = "microsoft.send-as-5.7.60",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .enhanced = "5.7.60",
        .phrases = {"permissions to send as"},
        .field = "sender",
        .title = "Microsoft refused to send as this sender",
        .explanation = "Sender's email ({sender}) is not the signed-in mailbox, and the mailbox "
                       "has no \"Send As\" right for it.",
        .fix = "Set Sender's email to your mailbox address, or ask the administrator to grant "
               "\"Send As\" for {sender}.",
    },
    /* 2.10: 550 5.7.1 Client does not have permissions to send as this sender (older). */
    {
        .id = "microsoft.send-as-5.7.1",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .enhanced = "5.7.1",
        .phrases = {"permissions to send as"},
        .field = "sender",
        .title = "The server refused to send as this sender",
        .explanation = "Sender's email ({sender}) is not the signed-in mailbox, and the mailbox "
                       "has no \"Send As\" right for it.",
        .fix = "Set Sender's email to your mailbox address, or ask the administrator to grant "
               "\"Send As\" for {sender}.",
    },
    /* 2.11: Microsoft has no port 465: the connection times out. */
    {
        .id = "microsoft.no-port-465",
        .stages = DIAG_S_HANDSHAKE,
        .code = "-",
        .phrases = {TIMEOUT_PHRASES},
        .providers = MICROSOFT_PROVIDERS,
        .when = DIAG_W_PORT_465,
        .field = "port",
        .title = "Microsoft does not use port 465",
        .explanation = "Microsoft has no SSL/TLS port 465 for sending, so nothing answers "
                       "there.",
        .fix = "Set Port to 587 and Security to STARTTLS.",
    },

    /* ---- 3. Yahoo and AOL ---- */

    /* 3.1: 535 5.7.0 (#AUTH005) Too many bad auth attempts. */
    {
        .id = "yahoo.app-password",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.0",
        .phrases = {"#AUTH005|Too many bad auth attempts"},
        .field = "password",
        .title = "Yahoo/AOL wants an app password",
        .explanation = "The login was refused, normally because the account's own password "
                       "was sent: Yahoo and AOL accept only an app password from mail "
                       "programs. Many failed tries give the same answer.",
        .fix = "In your Yahoo or AOL account open Account Security, choose \"Generate app "
               "password\" and paste it into Password. If you tried many times, wait about 15 "
               "minutes before testing again.",
    },
    /* 3.2: 535 5.7.0 (#MBR1212) Incorrect username or password. */
    {
        .id = "yahoo.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"#MBR1212"},
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_NO_AT,
        .title = "Yahoo rejected the user name or password",
        .explanation = "Yahoo did not accept the user name and password.",
        .fix = "User name must be your full Yahoo address. In Password use an app password "
               "(Account Security > Generate app password), not your account password.",
    },
    /* 3.3: 550 Request failed; Mailbox unavailable (no enhanced code), MAIL or DATA. */
    {
        .id = "yahoo.sender-refused",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .phrases = {"Request failed; Mailbox unavailable"},
        .field = "sender",
        .title = "Yahoo refused the sender or the message",
        .explanation = "Yahoo sends only from the address you sign in with. If Sender's email "
                       "({sender}) already is that address, Yahoo refused the content of the "
                       "message instead.",
        .fix = "Set Sender's email to the same address as User name. If they already match, "
               "try a plain test letter without links or attachments.",
    },
    /* 3.4: 450 Requested mail action not taken: mailbox unavailable (MAIL, port 587). */
    {
        .id = "yahoo.mailbox-unavailable-450",
        .stages = DIAG_S_MAIL,
        .code = "450",
        .phrases = {"mailbox unavailable"},
        .providers = YAHOO_PROVIDERS,
        .field = "password",
        .title = "Yahoo/AOL wants an app password",
        .explanation = "Yahoo and AOL give this answer on port 587 when the account's own "
                       "password was used; an app password makes it go away.",
        .fix = "In your Yahoo or AOL account open Account Security, choose \"Generate app "
               "password\" and paste it into Password.",
    },

    /* ---- 4. Yandex ---- */

    /* 4.1: 535 5.7.8 Error: authentication failed: This user does not have access rights. */
    {
        .id = "yandex.no-access-rights",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .enhanced = "5.7.8",
        .phrases = {"does not have access rights"},
        .field = "password",
        .help_url = "https://yandex.com/support/mail/mail-clients/others.html",
        .title = "Yandex wants mail-program access and an app password",
        .explanation = "Access for mail programs is off for this Yandex account, or the "
                       "normal password was sent where Yandex wants an app password.",
        .fix = "In Yandex Mail open Settings > All settings > Email clients and allow access "
               "via IMAP. Then in Settings > Security > App passwords create one for \"IMAP, "
               "POP3, SMTP Mail\" and paste it into Password.",
    },
    /* 4.2: 5.7.8 Error: authentication failed: Your message looks like spam ... not a robot. */
    {
        .id = "yandex.robot-check",
        .stages = DIAG_S_AUTH | DIAG_S_ENVELOPE,
        .phrases = {"not a robot|looks like spam"},
        .title = "Yandex wants you to prove you are not a robot",
        .explanation = "Yandex locked sending from this account until you confirm in a browser "
                       "that you are a person. The form is fine.",
        .fix = "Open {link} in a web browser, complete the check, then test again.",
    },
    /* 4.3 and 10.5: 530 5.7.7 Email sending without SSL/TLS encryption is not allowed. */
    {
        .id = "yandex.encryption-required",
        .code = "530",
        .enhanced = "5.7.7",
        .phrases = {"without SSL/TLS encryption"},
        .field = "security",
        .title = "The server wants an encrypted connection",
        .explanation = "The server refuses a login over an unencrypted connection, and "
                       "Security is set to None.",
        .fix = "Set Security to SSL/TLS with port 465, or STARTTLS with port 587.",
    },
    /* 4.4: 553 5.7.1 Sender address rejected: not owned by auth user. */
    {
        .id = "yandex.sender-not-owned",
        .stages = DIAG_S_ENVELOPE,
        .code = "553",
        .enhanced = "5.7.1",
        .phrases = {"not owned by auth user"},
        .field = "sender",
        .title = "Yandex sends only from your own address",
        .explanation = "Sender's email ({sender}) is not the address you sign in with, or it "
                       "is empty.",
        .fix = "Set Sender's email to the same address as User name.",
    },
    /* 4.5: 501 5.1.7 Bad address mailbox syntax. */
    {
        .id = "sender.bad-syntax",
        .stages = DIAG_S_MAIL,
        .code = "501",
        .phrases = {"Bad address mailbox syntax|Bad sender address syntax"},
        .field = "sender",
        .title = "The sender address is not valid",
        .explanation = "The server could not read Sender's email ({sender}) as an e-mail "
                       "address.",
        .fix = "Enter the full address in Sender's email (name@domain), without spaces or a "
               "display name.",
    },

    /* ---- 5. Mail.ru ---- */

    /* 5.1: 535 5.7.0 NEOBHODIM parol prilozheniya / Application password is REQUIRED. */
    {
        .id = "mailru.app-password",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Application password is REQUIRED|parol prilozheniya"},
        .field = "password",
        .help_url = "https://help.mail.ru/mail/security/protection/external",
        .title = "Mail.ru wants an app password",
        .explanation = "The normal password was sent; Mail.ru accepts only a \"password for "
                       "external applications\" from mail programs.",
        .fix = "In Mail.ru open Password and security > External services and allow access "
               "via IMAP, POP and SMTP. Then under \"Passwords for external applications\" "
               "create an app password and paste it into Password.",
    },
    /* 5.2: 535 Incorrect authentication data: authentication failed (Mail.ru). */
    {
        .id = "mailru.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Incorrect authentication data"},
        .providers = "mail-ru",
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_NO_AT,
        .title = "Mail.ru rejected the user name or password",
        .explanation = "Mail.ru did not accept the user name and password.",
        .fix = "User name must be your full Mail.ru address, and Password an app password "
               "(Password and security > Passwords for external applications).",
    },
    /* 5.3: 550 not local sender over smtp. */
    {
        .id = "mailru.not-local-sender",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .phrases = {"not local sender"},
        .field = "sender",
        .title = "Mail.ru sends only from your own address",
        .explanation = "Sender's email ({sender}) is not the mailbox you sign in with.",
        .fix = "Set Sender's email to the same address as User name.",
    },

    /* ---- 6. Apple iCloud ---- */

    /* 6.2: wrong version number on 587 with SSL/TLS (iCloud has STARTTLS only). */
    {
        .id = "icloud.starttls-only",
        .stages = DIAG_S_TLS,
        .code = "-",
        .phrases = {"wrong version number|does not start with TLS"},
        .providers = "icloud",
        .field = "security",
        .title = "iCloud uses STARTTLS on port 587",
        .explanation = "Security is SSL/TLS, but iCloud's port 587 starts without encryption "
                       "and switches with STARTTLS.",
        .fix = "For iCloud set Port to 587 and Security to STARTTLS.",
    },
    /* 6.3: 554 5.7.1 [CS01] Message rejected due to local policy (test letter to iCloud). */
    {
        .id = "icloud.recipient-policy",
        .stages = DIAG_S_ENVELOPE,
        .code = "554",
        .phrases = {"[CS01]|HT204137"},
        .help_url = "https://support.apple.com/en-us/HT204137",
        .title = "iCloud refused the test letter",
        .explanation = "Your provider accepted the letter, but iCloud, where it was going, "
                       "refused it because of the sending domain's reputation or missing "
                       "authentication. The form is fine.",
        .fix = "Check the SPF, DKIM and DMARC records of your sending domain, or send the test "
               "to another address.",
    },

    /* ---- 7. Zoho ---- */

    /* 7.1: 553 Relaying disallowed as <address>. */
    {
        .id = "zoho.relaying-disallowed",
        .stages = DIAG_S_ENVELOPE,
        .code = "553",
        .phrases = {"Relaying disallowed"},
        .field = "sender",
        .title = "Zoho sends only from your Zoho address or its aliases",
        .explanation = "Sender's email ({sender}) is not your Zoho address or one of its "
                       "aliases. Zoho also says this when Host is the wrong Zoho server for "
                       "the account.",
        .fix = "Set Sender's email to your Zoho address or an alias. Paid organisation "
               "accounts with their own domain must use smtppro.zoho.<region> as Host.",
    },

    /* ---- 8. Transactional services ---- */

    /* 8.1: 535 Authentication failed: Bad username / password (SendGrid). */
    {
        .id = "sendgrid.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Bad username / password"},
        .providers = "sendgrid",
        .field = "password",
        .expect_username = "apikey",
        .title = "SendGrid rejected the API key",
        .explanation = "SendGrid signs in with the word apikey and an API key, not with your "
                       "account's e-mail and password.",
        .fix = "Set User name to exactly apikey. In Password paste your API key (it starts "
               "with SG.) with the Mail Send permission, without spaces.",
    },
    /* 8.2: 550 The from address does not match a verified Sender Identity. */
    {
        .id = "sendgrid.sender-identity",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .phrases = {"verified Sender Identity"},
        .field = "sender",
        .title = "SendGrid has not verified this sender",
        .explanation = "Sender's email ({sender}) is not a verified sender or domain in your "
                       "SendGrid account.",
        .fix = "Verify the address or its domain in SendGrid (Settings > Sender "
               "Authentication), or set Sender's email to an address already verified there.",
    },
    /* 8.3: 554 Message rejected: Email address is not verified (Amazon SES). */
    {
        .id = "ses.not-verified",
        .stages = DIAG_S_ENVELOPE,
        .code = "554",
        .phrases = {"address is not verified"},
        .field = "sender",
        .title = "Amazon SES has not verified this sender",
        .explanation = "Sender's email ({sender}) or its domain is not verified in Amazon SES "
                       "in the region of this server. While the SES account is in the "
                       "sandbox, recipients must be verified too.",
        .fix = "Verify the sender's address or domain in Amazon SES in the same region as "
               "Host, and request production access if you are still in the sandbox.",
    },
    /* 8.4: 535 Authentication Credentials Invalid (Amazon SES). */
    {
        .id = "ses.bad-credentials",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Authentication Credentials Invalid"},
        .providers = "amazon-ses",
        .field = "password",
        .title = "These are not Amazon SES SMTP credentials",
        .explanation = "Amazon SES accepts only the SMTP credentials made for it, for this "
                       "region; an AWS console login or a raw access key is refused.",
        .fix = "Create SMTP credentials in the SES console (SMTP settings) for the region of "
               "Host, and enter their user name in User name and their password in Password.",
    },
    /* 8.5: 454 Throttling failure: Maximum sending rate / Daily message quota exceeded. */
    {
        .id = "ses.throttling",
        .stages = DIAG_S_ENVELOPE,
        .code = "454",
        .phrases = {"Throttling failure"},
        .temporary = DIAG_T_YES,
        .title = "The Amazon SES sending quota is reached",
        .explanation = "The SES account sent as fast or as much as its quota allows. Nothing "
                       "in the form is wrong.",
        .fix = "Wait and send again later, or request a higher sending quota in the Amazon "
               "SES console.",
    },
    /* 8.6: 535 5.7.0 Invalid login or password (Brevo). */
    {
        .id = "brevo.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Invalid login or password"},
        .providers = "brevo",
        .field = "password",
        .title = "Brevo wants its SMTP login and SMTP key",
        .explanation = "Brevo accepts only the SMTP login and an SMTP key, not your account "
                       "password or an API key.",
        .fix = "In Brevo open SMTP & API > SMTP. Enter the SMTP login shown there in User "
               "name, create an SMTP key and paste it into Password.",
    },
    /* 8.7: 550 5.7.1 Unconfigured Sending Domain <domain> (SparkPost). */
    {
        .id = "sparkpost.unconfigured-domain",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .phrases = {"Unconfigured Sending Domain"},
        .field = "sender",
        .title = "SparkPost does not know the sender's domain",
        .explanation = "The domain of Sender's email ({sender}) is not added and verified in "
                       "SparkPost.",
        .fix = "Add and verify the domain of Sender's email in SparkPost (Sending Domains), "
               "or use an address of a verified domain.",
    },
    /* 8.8: Postmark's port 465 hangs. */
    {
        .id = "postmark.no-port-465",
        .stages = DIAG_S_HANDSHAKE,
        .code = "-",
        .phrases = {TIMEOUT_PHRASES},
        .providers = "postmark",
        .when = DIAG_W_PORT_465,
        .field = "port",
        .title = "Postmark does not use port 465",
        .explanation = "Postmark has no SSL/TLS port 465, so the connection hangs.",
        .fix = "Set Port to 587 (or 2525) and Security to STARTTLS.",
    },

    /* ---- 9. Other providers and hosting ---- */

    /* 9.1: 535 Login Fail. Please enter your authorization code to login (QQ). */
    {
        .id = "qq.authorization-code",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"authorization code"},
        .field = "password",
        .title = "QQ Mail wants an authorization code",
        .explanation = "The QQ password was sent; QQ Mail accepts only an authorization code "
                       "from mail programs.",
        .fix = "Enable IMAP/SMTP in the QQ Mail settings, generate the authorization code "
               "there and paste it into Password.",
    },
    /* 9.2: 550 User has no permission (163 / 126 / yeah.net). */
    {
        .id = "netease.no-permission",
        .stages = DIAG_S_AUTH | DIAG_S_MAIL,
        .code = "550",
        .phrases = {"User has no permission"},
        .field = "password",
        .title = "Sending from programs is not enabled for this mailbox",
        .explanation = "The POP3/SMTP service or the client authorization code is not enabled "
                       "for this mailbox, or the account was blocked from sending.",
        .fix = "Enable POP3/SMTP/IMAP in the mailbox settings, create a client authorization "
               "code and paste it into Password. If that is done already, the provider blocked "
               "sending: contact its support.",
    },
    /* 9.2: 535 Error: authentication failed (163 / 126 / yeah.net). */
    {
        .id = "netease.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"authentication failed"},
        .providers = "netease*",
        .field = "password",
        .title = "The client authorization code was refused",
        .explanation = "The mailbox did not accept the password: NetEase mail (163, 126, "
                       "yeah.net) accepts only a client authorization code from mail "
                       "programs.",
        .fix = "Enable POP3/SMTP/IMAP in the mailbox settings, create a client authorization "
               "code and paste it into Password.",
    },
    /* 9.4: 550 Requested action not taken: mailbox unavailable / Failure sending mail (GMX). */
    {
        .id = "gmx.recipient-refused",
        .stages = DIAG_S_RCPT | DIAG_S_DATA,
        .code = "550",
        .phrases = {"Failure sending mail"},
        .temporary = DIAG_T_YES,
        .help_url = "", /* the recipient's side: the sender's provider page does not help */
        .title = "The receiving server refused this letter",
        .explanation = "GMX, where the letter was going, refused it as possible spam. This is "
                       "not a sign-in problem, and the form is fine.",
        .fix = "Try again later, or send the test to another address.",
    },
    /* 9.5: 550 5.5.0 Emetteur invalide. Invalid Sender. LPN104_415 (La Poste). */
    {
        .id = "laposte.invalid-sender",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .phrases = {"Invalid Sender|Emetteur invalide"},
        .field = "sender",
        .title = "La Poste refused the sender",
        .explanation = "Sender's email ({sender}) is not accepted for this account.",
        .fix = "Set Sender's email to your laposte.net address.",
    },
    /* 9.6: 550 invalid DNS MX or A/AAAA resource record (IONOS). */
    {
        .id = "ionos.sender-domain",
        .stages = DIAG_S_ENVELOPE,
        .code = "550",
        .phrases = {"invalid DNS MX or A/AAAA"},
        .field = "sender",
        .title = "The sender's domain does not receive mail",
        .explanation = "The server checks the domain of Sender's email ({sender}), and that "
                       "domain has no mail server in DNS (for example the shop server's own "
                       "local name).",
        .fix = "Set Sender's email to your real mailbox address at your domain.",
    },
    /* 9.7: 535 Incorrect authentication data (cPanel / Exim hosting). */
    {
        .id = "hosting.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Incorrect authentication data"},
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_NO_AT,
        .title = "The mail server rejected the user name or password",
        .explanation = "The hosting's mail server did not accept the user name and password.",
        .fix = "User name is usually the full mailbox address. Check it and the password in "
               "your hosting panel (reset the mailbox password there if unsure) and enter "
               "them again.",
    },
    /* 9.8: 553 5.7.1 <a>: Sender address rejected: not owned by user <b> (Postfix). */
    {
        .id = "postfix.sender-not-owned",
        .stages = DIAG_S_ENVELOPE,
        .code = "553",
        .phrases = {"not owned by user"},
        .field = "sender",
        .title = "This login may not send as this sender",
        .explanation = "The server allows each login only its own addresses, and Sender's "
                       "email ({sender}) is not one of them.",
        .fix = "Set Sender's email to the mailbox's own address, or ask your host to allow "
               "{sender} for this login.",
    },
    /* 9.9: 554 5.7.1 <addr>: Relay access denied (RCPT TO). */
    {
        .id = "postfix.relay-denied",
        .stages = DIAG_S_RCPT | DIAG_S_MAIL,
        .code = "554",
        .phrases = {"Relay access denied"},
        .field = "port",
        .field_rules = DIAG_F_USERNAME_IF_MISSING,
        .title = "The server did not let you sign in before sending",
        .explanation = "The server takes mail for other domains only from signed-in users, "
                       "and no sign-in happened on port {port}.",
        .fix = "Fill in User name and Password, and use port 587 with STARTTLS or port 465 "
               "with SSL/TLS (not 25).",
    },

    /* ---- provider fallbacks (their exact texts are unknown or vary) ---- */

    /* 6.1: iCloud's auth failure text was not found; any refusal at AUTH. */
    {
        .id = "icloud.login",
        .stages = DIAG_S_AUTH,
        .code = "5xx",
        .providers = "icloud",
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_NO_AT,
        .help_url = "https://support.apple.com/en-us/102654",
        .title = "iCloud wants an app-specific password",
        .explanation = "iCloud refused the sign-in. Usually the Apple Account password was "
                       "sent instead of an app-specific password, or User name is not the "
                       "full @icloud.com address.",
        .fix = "Create an app-specific password at account.apple.com (Sign-In and Security) "
               "and paste it into Password. User name must be your full @icloud.com address, "
               "even if you send from your own domain.",
    },
    /* 7.2: 535 Authentication Failed. (Zoho / ZeptoMail) */
    {
        .id = "zoho.bad-login",
        .stages = DIAG_S_AUTH,
        .code = "535",
        .phrases = {"Authentication Failed"},
        .providers = "zoho*",
        .field = "password",
        .title = "Zoho rejected the password",
        .explanation = "Zoho did not accept the password. With two-factor sign-in on, Zoho "
                       "wants an application-specific password; a server of another Zoho "
                       "region refuses the login too.",
        .fix = "Create an Application-Specific Password in Zoho Accounts > Security and paste "
               "it into Password. Use the Host of your region (smtp.zoho.com, .eu, .in, "
               ".com.au or .jp).",
    },
    /* 9.3: GMX / WEB.DE: access for mail programs is off (exact SMTP text unknown). */
    {
        .id = "gmx.access-off",
        .stages = DIAG_S_AUTH,
        .code = "5xx",
        .providers = "gmx* web-de",
        .title = "Access for mail programs may be switched off",
        .explanation = "{provider} switches off POP3/IMAP/SMTP access by default, and again "
                       "after long non-use; the login is then refused even with the right "
                       "password.",
        .fix = "In the {provider} web mail settings enable \"POP3/IMAP access\" (it enables "
               "sending too), check Password, then test again.",
    },

    /* ---- 10. Network and TLS, no SMTP reply (texts from src/smtp) ---- */

    /* dns: a temporary resolver failure is not the host's fault. */
    {
        .id = "dns.temporary",
        .stages = DIAG_S_DNS,
        .categories = DIAG_C(MO_ERR_DNS),
        .phrases = {"Temporary failure|try again"},
        .temporary = DIAG_T_YES,
        .title = "The server name could not be looked up just now",
        .explanation = "Your shop's server could not reach its DNS service to look up "
                       "{host}.",
        .fix = "Try again in a few minutes. If it keeps happening, check the spelling of Host "
               "and ask your hosting provider whether DNS works on the server.",
    },
    /* dns: not a valid host name (checked before any lookup). */
    {
        .id = "dns.invalid-name",
        .stages = DIAG_S_DNS,
        .categories = DIAG_C(MO_ERR_CONFIG),
        .field = "host",
        .title = "The server name is not valid",
        .explanation = "\"{host}\" cannot be a server name: it has characters or dots in places "
                       "where names cannot have them.",
        .fix = "Enter the provider's sending server in Host (for example smtp.gmail.com), "
               "without \"https://\", spaces, \"@\" or a trailing slash.",
    },
    /* dns: the name does not exist. */
    {
        .id = "dns.not-found",
        .stages = DIAG_S_DNS,
        .categories = DIAG_C(MO_ERR_DNS),
        .field = "host",
        .temporary = DIAG_T_ERR,
        .title = "The server name does not exist",
        .explanation = "No server called \"{host}\" was found.",
        .fix = "Check the spelling of Host: it is the provider's sending server (for example "
               "smtp.gmail.com), not a web address and not your e-mail address.",
    },
    /* 10.1: port 25 times out (the hosting blocks it). */
    {
        .id = "net.port-25-blocked",
        .stages = DIAG_S_CONNECT,
        .code = "-",
        .phrases = {"no answer from"},
        .when = DIAG_W_PORT_25,
        .field = "port",
        .title = "Port 25 is blocked",
        .explanation = "Most hosting and cloud networks block outgoing connections on port "
                       "25, so the server never answered.",
        .fix = "Set Port to 587 with Security STARTTLS, or 465 with SSL/TLS. Services such as "
               "Mailgun, SparkPost, Mailjet and Postmark also accept port 2525.",
    },
    /* 10.2: timeout to the provider's own server: an outgoing firewall. */
    {
        .id = "net.timeout-firewall",
        .stages = DIAG_S_CONNECT,
        .code = "-",
        .phrases = {"no answer from"},
        .when = DIAG_W_PROVIDER_HOST,
        .temporary = DIAG_T_YES,
        .title = "Your shop's server cannot reach the mail server",
        .explanation = "{host} is the right server for {provider}, but it did not answer on "
                       "port {port}. A firewall on your shop's server or hosting most likely "
                       "blocks outgoing mail connections.",
        .fix = "Try the other port: 587 with STARTTLS or 465 with SSL/TLS. If neither works, "
               "ask your hosting provider to allow outgoing connections on ports 587 and 465.",
    },
    /* 10.2: timeout elsewhere. */
    {
        .id = "net.timeout",
        .stages = DIAG_S_CONNECT,
        .code = "-",
        .phrases = {"no answer from"},
        .field = "port",
        .temporary = DIAG_T_YES,
        .title = "The mail server does not answer",
        .explanation = "Nothing answered at {host} on port {port}: a wrong host or port, or a "
                       "firewall that blocks outgoing mail connections.",
        .fix = "Check Host and Port; try 587 with STARTTLS or 465 with SSL/TLS. If they are "
               "right, ask your hosting provider to allow outgoing connections on 587 and 465.",
    },
    /* 10.2: refused on an unusual port. */
    {
        .id = "net.refused-port",
        .stages = DIAG_S_CONNECT,
        .code = "-",
        .phrases = {"refused the connection"},
        .when = DIAG_W_PORT_UNUSUAL,
        .field = "port",
        .temporary = DIAG_T_YES,
        .title = "Nothing accepts mail on this port",
        .explanation = "{host} refused the connection on port {port}: no mail service listens "
                       "there.",
        .fix = "Set Port to 587 with STARTTLS or 465 with SSL/TLS. If it is right, ask your "
               "hosting provider to allow outgoing connections on it.",
    },
    /* 10.2: refused on a usual port: probably not a mail server. */
    {
        .id = "net.refused",
        .stages = DIAG_S_CONNECT,
        .code = "-",
        .phrases = {"refused the connection"},
        .field = "host",
        .temporary = DIAG_T_YES,
        .title = "This server does not accept mail on port {port}",
        .explanation = "{host} refused the connection on port {port}. It is probably not the "
                       "sending server, or it uses another port.",
        .fix = "Check Host (your provider's sending server, e.g. smtp.<provider>) and try "
               "port 587 with STARTTLS or 465 with SSL/TLS. If both are right, ask your "
               "hosting provider to allow outgoing connections.",
    },
    /* connect: no route, network down... */
    {
        .id = "net.connect-failed",
        .stages = DIAG_S_CONNECT,
        .code = "-",
        .categories = DIAG_C(MO_ERR_CONNECT),
        .field = "host",
        .temporary = DIAG_T_ERR,
        .title = "The mail server could not be reached",
        .explanation = "Your shop's server could not connect to {host} on port {port}.",
        .fix = "Check Host and Port (587 with STARTTLS or 465 with SSL/TLS). If they are "
               "right, ask your hosting provider to allow outgoing connections to it.",
    },
    /* 10.3: SSL/TLS on a STARTTLS port: "wrong version number". */
    {
        .id = "tls.wrong-version",
        .stages = DIAG_S_TLS,
        .code = "-",
        .phrases = {"wrong version number|does not start with TLS|packet length too long|"
                    "unknown protocol"},
        .field = "security",
        .title = "Port {port} does not start with SSL/TLS",
        .explanation = "Security is SSL/TLS, but the server on port {port} starts without "
                       "encryption and switches with STARTTLS.",
        .fix = "Port {port} uses STARTTLS, not SSL/TLS: change Security to STARTTLS, or keep "
               "SSL/TLS and change Port to 465.",
    },
    /* 10.4: STARTTLS or None on 465: no greeting ever arrives. */
    {
        .id = "tls.no-greeting-465",
        .stages = DIAG_S_GREETING,
        .code = "-",
        .phrases = {"sent no greeting"},
        .field = "security",
        .title = "Port 465 needs SSL/TLS",
        .explanation = "Port 465 expects encryption from the first byte, so the server waited "
                       "for it and never said hello.",
        .fix = "Change Security to SSL/TLS for port 465, or use port 587 with STARTTLS.",
    },
    /* greeting timeout on another port without SSL/TLS: maybe an implicit-TLS port. */
    {
        .id = "tls.no-greeting",
        .stages = DIAG_S_GREETING,
        .code = "-",
        .phrases = {"did not answer in time"},
        .when = DIAG_W_SEC_STARTTLS | DIAG_W_SEC_NONE,
        .field = "security",
        .temporary = DIAG_T_YES,
        .title = "The server never said hello",
        .explanation = "The connection to port {port} opened, but the server sent nothing. "
                       "Ports that expect SSL/TLS from the first byte behave like this.",
        .fix = "If port {port} is an SSL/TLS port (like 465), set Security to SSL/TLS; "
               "otherwise use port 587 with STARTTLS, or try again later.",
    },
    /* 10.6: the certificate is issued for another name. */
    {
        .id = "tls.name-mismatch",
        .stages = DIAG_S_TLS,
        .phrases = {"is issued for|doesn't match|does not match"},
        .field = "host",
        .title = "The server's certificate is for another name",
        .explanation = "The server at \"{host}\" presented a certificate issued for {names}. "
                       "On shared hosting, mail.<your domain> often points at a server that "
                       "uses the hosting company's own name; an IP address as Host fails the "
                       "same way.",
        .fix = "Enter the name the certificate is issued for ({names}) as Host: your hosting "
               "panel lists it. Do not switch certificate checks off.",
    },
    /* 10.7: private CA on this machine, such as Proton Mail Bridge. */
    {
        .id = "tls.local-ca",
        .stages = DIAG_S_TLS,
        .phrases = {"not trusted|self-signed|local issuer"},
        .providers = "proton-bridge",
        .field = "security",
        .help_url = "https://proton.me/support/bridge",
        .title = "Proton Mail Bridge's certificate is not trusted yet",
        .explanation = "Proton Mail Bridge encrypts with its own certificate, which this "
                       "machine does not know.",
        .fix = "Export the Bridge certificate (Bridge settings > export TLS certificate) and "
               "ask the administrator to give it to mailout as the CA file.",
    },
    {
        .id = "tls.local-server-ca",
        .stages = DIAG_S_TLS,
        .phrases = {"not trusted|self-signed|local issuer"},
        .when = DIAG_W_LOOPBACK,
        .field = "security",
        .title = "The local server's certificate is not trusted",
        .explanation = "The server on this machine ({host}) uses its own certificate, which is "
                       "not signed by a known authority.",
        .fix = "Export its certificate (for Proton Mail Bridge: Bridge settings > export TLS "
               "certificate) and ask the administrator to give it to mailout as the CA file.",
    },
    /* 10.7: unknown CA, self-signed, or an out-of-date trust store. */
    {
        .id = "tls.untrusted",
        .stages = DIAG_S_TLS,
        .phrases = {"not trusted|self-signed|local issuer"},
        .field = "security",
        .title = "The server's certificate is not trusted",
        .explanation = "The certificate of {host} is self-signed or signed by an authority "
                       "this machine does not know, or this machine's list of root "
                       "certificates is out of date.",
        .fix = "If the server uses a private certificate authority, ask the administrator to "
               "give its certificate to mailout as the CA file. Otherwise ask your hosting "
               "provider to update the server's root certificates (ca-certificates).",
    },
    {
        .id = "tls.expired",
        .stages = DIAG_S_TLS,
        .phrases = {"has expired"},
        .field = "host",
        .title = "The server's certificate has expired",
        .explanation = "The certificate of {host} is out of date, so the connection cannot be "
                       "trusted.",
        .fix = "Ask the mail server's owner to renew the certificate. If Host is a name of "
               "your own domain, try the provider's main server name instead.",
    },
    {
        .id = "tls.handshake-timeout",
        .stages = DIAG_S_TLS,
        .phrases = {"timed out"},
        .field = "security",
        .temporary = DIAG_T_YES,
        .title = "The encrypted connection could not be set up in time",
        .explanation = "The server on port {port} did not finish setting up encryption.",
        .fix = "Try again later. If it keeps happening, check that Security matches Port: "
               "587 with STARTTLS, 465 with SSL/TLS.",
    },
    {
        .id = "tls.no-starttls",
        .stages = DIAG_S_STARTTLS,
        .phrases = {"does not offer STARTTLS"},
        .field = "security",
        .title = "The server on port {port} cannot encrypt with STARTTLS",
        .explanation = "The server does not offer STARTTLS, so the connection cannot be "
                       "encrypted; nothing was sent.",
        .fix = "Set Security to SSL/TLS with port 465, or use a port that offers STARTTLS "
               "(587).",
    },
    {
        .id = "tls.injection",
        .stages = DIAG_S_STARTTLS,
        .phrases = {"before the TLS handshake"},
        .title = "The connection was tampered with",
        .explanation = "Something between your shop and the mail server added data to the "
                       "connection before encryption started. mailout dropped it for safety.",
        .fix = "Try again later, or use port 465 with SSL/TLS, which encrypts from the start. "
               "If it keeps happening, tell your hosting provider.",
    },
    {
        .id = "tls.starttls-refused",
        .stages = DIAG_S_STARTTLS,
        .categories = DIAG_C(MO_ERR_TLS),
        .field = "security",
        .temporary = DIAG_T_ERR,
        .title = "The server refused to encrypt the connection",
        .explanation = "The server answered STARTTLS with a refusal.",
        .fix = "Set Security to SSL/TLS with port 465. If the server offers neither, ask your "
               "provider for its encrypted sending port.",
    },
    {
        .id = "tls.failed",
        .stages = DIAG_S_TLS,
        .categories = DIAG_C(MO_ERR_TLS),
        .field = "security",
        .temporary = DIAG_T_ERR,
        .title = "The encrypted connection failed",
        .explanation = "Encryption could not be set up with {host} on port {port}.",
        .fix = "Check that Security matches Port: 587 with STARTTLS, 465 with SSL/TLS.",
    },

    /* ---- the engine's login checks (no server reply) ---- */

    {
        .id = "auth.cleartext-refused",
        .phrases = {"over an unencrypted connection"},
        .field = "security",
        .title = "The password would travel unencrypted",
        .explanation = "Security is None, so the password would cross the network in clear "
                       "text. mailout did not send it.",
        .fix = "Set Security to STARTTLS with port 587, or SSL/TLS with port 465.",
    },
    {
        .id = "auth.not-offered-cleartext",
        .stages = DIAG_S_AUTH,
        .phrases = {"does not offer login", "encrypted connection"},
        .field = "security",
        .title = "The server offers login only over encryption",
        .explanation = "On port {port} without encryption, the server does not offer to sign "
                       "in.",
        .fix = "Set Security to STARTTLS with port 587, or SSL/TLS with port 465.",
    },
    {
        .id = "auth.not-offered-wrong-host",
        .stages = DIAG_S_AUTH,
        .phrases = {"does not offer login"},
        .when = DIAG_W_NOT_PROVIDER_HOST,
        .field = "host",
        .title = "This server does not offer to sign in",
        .explanation = "{host} does not offer a login, so it is probably not the sending "
                       "server of {provider}.",
        .fix = "Set Host to {provider_host}, {provider}'s sending server (the form fills it in "
               "when Host is empty).",
    },
    {
        .id = "auth.not-offered",
        .stages = DIAG_S_AUTH,
        .phrases = {"does not offer login"},
        .field = "username",
        .title = "This server does not offer to sign in",
        .explanation = "{host} does not offer a login on port {port}. It may be a relay that "
                       "needs no user name, or not the sending server.",
        .fix = "If your host told you this server needs no login, leave User name and "
               "Password empty. Otherwise check Host: it must be your provider's sending "
               "server.",
    },
    {
        .id = "auth.method-not-offered",
        .stages = DIAG_S_AUTH,
        .phrases = {"does not offer the login method"},
        .title = "The chosen login method is not offered",
        .explanation = "mailout was told to sign in with a method that this server does not "
                       "offer.",
        .fix = "Ask the administrator to set the login method to automatic.",
    },

    /* ---- fallbacks by stage and code ---- */

    {
        .id = "greeting.refused",
        .stages = DIAG_S_GREETING | DIAG_S_EHLO,
        .code = "5xx",
        .title = "The server does not accept mail from your shop's server",
        .explanation = "The mail server refused the connection before any sign-in, usually "
                       "because of the address or the name of your shop's server.",
        .fix = "Ask your hosting provider to check the server's reputation and reverse DNS "
               "name, or use your provider's sending server on port 587 or 465.",
    },
    {
        .id = "server.busy",
        .code = "421",
        .temporary = DIAG_T_YES,
        .title = "The server is busy or unavailable for now",
        .explanation = "The server closed the connection, saying it cannot serve now. Nothing "
                       "in the form is wrong.",
        .fix = "Wait a few minutes and try again.",
    },
    {
        .id = "auth.encryption-required",
        .stages = DIAG_S_AUTH,
        .code = "538",
        .field = "security",
        .title = "The server wants an encrypted connection",
        .explanation = "The server signs in only over an encrypted connection.",
        .fix = "Set Security to STARTTLS with port 587, or SSL/TLS with port 465.",
    },
    {
        .id = "auth.oauth-only",
        .stages = DIAG_S_AUTH,
        .code = "5xx",
        .when = DIAG_W_OAUTH_ONLY,
        .field = "password",
        .title = "{provider} no longer accepts passwords here",
        .explanation = "{provider} refused the password: it lets mail programs sign in only "
                       "with its own sign-in (OAuth).",
        .fix = "Connect the account with the provider's sign-in (OAuth) instead of a "
               "password, or send through another service.",
    },
    {
        .id = "auth.app-password",
        .stages = DIAG_S_AUTH,
        .code = "5xx",
        .when = DIAG_W_APP_PASSWORD,
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_MISSING,
        .title = "{provider} refused the password",
        .explanation = "The login was refused. {provider} wants an app password from mail "
                       "programs (at least when two-step sign-in is on), not the account's "
                       "own password.",
        .fix = "Create an app password {app_password} and paste it into Password. Check that "
               "User name is your full address.",
    },
    {
        .id = "auth.refused",
        .stages = DIAG_S_AUTH,
        .code = "5xx",
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_MISSING,
        .title = "The server rejected the user name or password",
        .explanation = "The server did not accept the login.",
        .fix = "Check Password, and User name (usually your full e-mail address). If your "
               "provider uses app passwords, create one and use it as Password.",
    },
    {
        .id = "auth.temporary",
        .stages = DIAG_S_AUTH,
        .code = "4xx",
        .temporary = DIAG_T_YES,
        .title = "The server cannot check the login right now",
        .explanation = "The server could not check the login for the moment. Nothing in the "
                       "form is known to be wrong.",
        .fix = "Wait a few minutes and test again. If it keeps happening, check Password.",
    },
    {
        .id = "auth.failed",
        .stages = DIAG_S_AUTH,
        .categories = DIAG_C(MO_ERR_AUTH),
        .field = "password",
        .field_rules = DIAG_F_ENGINE,
        .title = "The login failed",
        .explanation = "The server did not complete the login.",
        .fix = "Check User name and Password. If your provider uses app passwords, create one "
               "and use it as Password.",
    },
    {
        .id = "mail.login-required",
        .stages = DIAG_S_MAIL | DIAG_S_RCPT,
        .code = "530",
        .field = "password",
        .field_rules = DIAG_F_USERNAME_IF_MISSING,
        .title = "The server wants you to sign in before sending",
        .explanation = "The server sends only for signed-in users, and no sign-in succeeded.",
        .fix = "Fill in User name and Password, with port 587 and STARTTLS or port 465 and "
               "SSL/TLS.",
    },
    {
        .id = "mail.sender-refused",
        .stages = DIAG_S_MAIL,
        .code = "5xx",
        .field = "sender",
        .title = "The server refused the sender",
        .explanation = "The server does not accept {sender} as the sender for this account.",
        .fix = "Set Sender's email to the address you sign in with (or an alias your "
               "provider confirmed), then test again.",
    },
    {
        .id = "rcpt.refused",
        .stages = DIAG_S_RCPT,
        .code = "5xx",
        .help_url = "",
        .field_rules = DIAG_F_EMAIL_IF_OWN_RCPT,
        .title = "The recipient was refused",
        .explanation = "Your provider accepted the sender but refused the address the letter "
                       "was going to.",
        .fix = "Check the recipient's address for typos. If the test letter goes to your own "
               "Email, check Email.",
    },
    {
        .id = "data.refused",
        .stages = DIAG_S_DATA,
        .code = "5xx",
        .title = "The server refused the message",
        .explanation = "The sign-in and the addresses were accepted, but the server refused "
                       "the message itself (its content, size or the sender policy).",
        .fix = "Send a plain test letter without attachments. If that is refused too, ask "
               "your provider why, quoting the server's answer.",
    },
    {
        .id = "server.temporary",
        .code = "4xx",
        .temporary = DIAG_T_YES,
        .title = "The server asks to try again later",
        .explanation = "The server refused for the moment. Nothing in the form is known to be "
                       "wrong.",
        .fix = "Wait a few minutes and try again.",
    },
    {
        .id = "net.dropped",
        .categories = DIAG_C(MO_ERR_PROTOCOL),
        .code = "-",
        .temporary = DIAG_T_YES,
        .title = "The connection broke",
        .explanation = "The server stopped answering or closed the connection.",
        .fix = "Try again in a few minutes. If it keeps happening, check that Security "
               "matches Port: 587 with STARTTLS, 465 with SSL/TLS.",
    },
    /* The engine's own checks of the settings before connecting. */
    {
        .id = "config.ca-file",
        .categories = DIAG_C(MO_ERR_CONFIG),
        .phrases = {"CA file"},
        .title = "The trusted certificate file cannot be read",
        .explanation = "mailout was told to trust the certificates in a file that is missing, "
                       "unreadable or not in PEM format. This is not a field of the form.",
        .fix = "Ask the administrator to check mailout's CA file setting.",
    },
    {
        .id = "config.setting",
        .categories = DIAG_C(MO_ERR_CONFIG),
        .field_rules = DIAG_F_ENGINE,
        .title = "A setting needs a change",
        .explanation = "mailout did not send because a setting cannot be used as it is.",
        .fix = "Correct the highlighted setting; the message shown with it says what is "
               "wrong. If nothing is highlighted, ask the administrator.",
    },
    /* The last entry matches anything. */
    {
        .id = "unknown",
        .field_rules = DIAG_F_ENGINE,
        .temporary = DIAG_T_ERR,
        .title = "Sending failed",
        .explanation = "mailout cannot tell which setting is at fault. The technical message "
                       "is shown with this one.",
        .fix = "Check the highlighted setting if there is one. Otherwise try again later, or "
               "ask your provider, quoting the server's answer.",
    },
};

#define DIAG_CATALOGUE_N (sizeof(diag_catalogue) / sizeof(diag_catalogue[0]))

/* ---- providers by host name when none was given ----------------------------- */

/* Only the providers the catalogue names; suffixes of the host name. */
static const struct {
    const char *suffix;
    const char *id;
    const char *name;
} diag_host_guesses[] = {
    {"gmail.com", "gmail", "Google"},
    {"googlemail.com", "gmail", "Google"},
    {"office365.com", "microsoft-365", "Microsoft 365"},
    {"outlook.com", "outlook-com", "Outlook.com"},
    {"mail.yahoo.com", "yahoo", "Yahoo"},
    {"mail.yahoo.co.jp", "yahoo-jp", "Yahoo! Japan"},
    {"aol.com", "aol", "AOL"},
    {"mail.att.net", "att", "AT&T"},
    {"mail.me.com", "icloud", "iCloud"},
    {"zoho.com", "zoho", "Zoho"},
    {"zoho.eu", "zoho-eu", "Zoho"},
    {"zoho.in", "zoho-in", "Zoho"},
    {"zoho.com.au", "zoho-au", "Zoho"},
    {"zoho.jp", "zoho-jp", "Zoho"},
    {"zohocloud.ca", "zoho-ca", "Zoho"},
    {"yandex.ru", "yandex", "Yandex"},
    {"yandex.com", "yandex", "Yandex"},
    {"mail.ru", "mail-ru", "Mail.ru"},
    {"qq.com", "qq", "QQ Mail"},
    {"163.com", "netease-163", "163 Mail"},
    {"126.com", "netease-126", "126 Mail"},
    {"yeah.net", "netease-yeah", "yeah.net"},
    {"gmx.com", "gmx-com", "GMX"},
    {"gmx.net", "gmx-de", "GMX"},
    {"web.de", "web-de", "WEB.DE"},
    {"laposte.net", "laposte", "La Poste"},
    {"amazonaws.com", "amazon-ses", "Amazon SES"},
    {"sendgrid.net", "sendgrid", "SendGrid"},
    {"brevo.com", "brevo", "Brevo"},
    {"sendinblue.com", "brevo", "Brevo"},
    {"sparkpostmail.com", "sparkpost", "SparkPost"},
    {"postmarkapp.com", "postmark", "Postmark"},
};

/* ---- small string helpers ------------------------------------------------- */

static bool
diag_has_text(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Case-insensitive (ASCII) search for the n bytes of needle in hay. */
static bool
diag_contains(const char *hay, const char *needle, size_t n)
{
    if (n == 0)
        return true;
    for (; *hay != '\0'; hay++) {
        size_t i = 0;

        while (i < n && hay[i] != '\0' &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* Where needle (NUL-terminated) starts in hay, case-insensitive, or NULL. */
static const char *
diag_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++) {
        size_t i = 0;

        while (i < n && hay[i] != '\0' &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return hay;
    }
    return NULL;
}

static bool
diag_equal_ci(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
    return *a == *b;
}

/* True when host is name or ends with "." name. */
static bool
diag_host_suffix(const char *host, const char *name)
{
    size_t h = strlen(host);
    size_t n = strlen(name);

    if (h > 0 && host[h - 1] == '.') /* a fully qualified "smtp.gmail.com." */
        h--;
    if (h < n || strncasecmp(host + h - n, name, n) != 0)
        return false;
    return h == n || host[h - n - 1] == '.';
}

/* ---- matching --------------------------------------------------------------- */

/* Everything one diagnosis looks at, worked out once. */
struct diag_ctx {
    const struct mo_error *err;
    const struct account_provider *provider; /* may be NULL */
    const struct account_settings *s;        /* may be NULL */
    const char *provider_id;                 /* given or guessed, or NULL */
    const char *provider_name;               /* never NULL */
    unsigned stage_bit;
    unsigned when; /* enum diag_when bits true for these settings */
};

static unsigned
diag_stage_bit(const char *stage)
{
    if (stage == NULL)
        return DIAG_S_NONE;
    for (size_t i = 0; i < sizeof(diag_stage_names) / sizeof(diag_stage_names[0]); i++)
        if (strcmp(stage, diag_stage_names[i].name) == 0)
            return diag_stage_names[i].bit;
    return DIAG_S_NONE;
}

static bool
diag_is_loopback(const char *host)
{
    return diag_equal_ci(host, "localhost") || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

static void
diag_ctx_init(struct diag_ctx *c, const struct mo_error *err,
              const struct account_provider *provider, const struct account_settings *s)
{
    const char *host = s != NULL && diag_has_text(s->host) ? s->host : NULL;
    bool guessed = false;

    memset(c, 0, sizeof(*c));
    c->err = err;
    c->provider = provider;
    c->s = s;
    c->stage_bit = diag_stage_bit(err->stage);
    if (provider != NULL) {
        c->provider_id = provider->id;
        c->provider_name = provider->name;
    } else if (host != NULL) {
        for (size_t i = 0; i < sizeof(diag_host_guesses) / sizeof(diag_host_guesses[0]); i++) {
            if (diag_host_suffix(host, diag_host_guesses[i].suffix)) {
                c->provider_id = diag_host_guesses[i].id;
                c->provider_name = diag_host_guesses[i].name;
                guessed = true;
                break;
            }
        }
    }
    if (!diag_has_text(c->provider_name))
        c->provider_name = "your mail provider";

    if (s != NULL) {
        switch (s->port) {
        case 0:
            break;
        case 25:
            c->when |= DIAG_W_PORT_25;
            break;
        case 465:
            c->when |= DIAG_W_PORT_465;
            break;
        case 587:
            c->when |= DIAG_W_PORT_587;
            break;
        case 2525:
            break;
        default:
            c->when |= DIAG_W_PORT_UNUSUAL;
            break;
        }
        if (s->security == SMTP_SECURITY_STARTTLS)
            c->when |= DIAG_W_SEC_STARTTLS;
        else if (s->security == SMTP_SECURITY_TLS)
            c->when |= DIAG_W_SEC_TLS;
        else if (s->security == SMTP_SECURITY_NONE)
            c->when |= DIAG_W_SEC_NONE;
    }
    if (host != NULL) {
        if (diag_is_loopback(host))
            c->when |= DIAG_W_LOOPBACK;
        if (guessed) {
            c->when |= DIAG_W_PROVIDER_HOST;
        } else if (provider != NULL && diag_has_text(provider->host) &&
                   strchr(provider->host, '{') == NULL) { /* "email-smtp.{region}...": unknown */
            c->when |= diag_equal_ci(host, provider->host) ? DIAG_W_PROVIDER_HOST
                                                           : DIAG_W_NOT_PROVIDER_HOST;
        }
    }
    if (provider != NULL && provider->app_password != ACCOUNT_APP_PASSWORD_NO)
        c->when |= DIAG_W_APP_PASSWORD;
    if (provider != NULL && (provider->flags & ACCOUNT_PROVIDER_OAUTH_ONLY))
        c->when |= DIAG_W_OAUTH_ONLY;
}

/* "535" exact, "5xx" a class, "-" no reply, NULL any. */
static bool
diag_code_matches(const char *pattern, int code)
{
    if (pattern == NULL)
        return true;
    if (strcmp(pattern, "-") == 0)
        return code == 0;
    assert(strlen(pattern) == 3 && isdigit((unsigned char)pattern[0]));
    if (code < 200 || code > 599)
        return false;
    if (pattern[1] == 'x')
        return code / 100 == pattern[0] - '0';
    return code == (pattern[0] - '0') * 100 + (pattern[1] - '0') * 10 + (pattern[2] - '0');
}

/* "5.7.1" matches "5.7.1" and "5.7.1.x", not "5.7.139"; optional when have is empty. */
static bool
diag_enhanced_matches(const char *pattern, const char *have)
{
    size_t n;

    if (pattern == NULL || have[0] == '\0')
        return true;
    n = strlen(pattern);
    return strncmp(have, pattern, n) == 0 && (have[n] == '\0' || have[n] == '.');
}

/* "a|b": either occurs in text. */
static bool
diag_phrase_matches(const char *alternatives, const char *text)
{
    const char *p = alternatives;

    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

        if (diag_contains(text, p, n))
            return true;
        if (bar == NULL)
            return false;
        p = bar + 1;
    }
}

/* "gmail google-workspace", "zoho*": is id one of them? */
static bool
diag_provider_matches(const char *list, const char *id)
{
    const char *p = list;

    if (list == NULL)
        return true;
    if (id == NULL)
        return false;
    while (*p != '\0') {
        size_t n = strcspn(p, " ");

        if (n > 0 && p[n - 1] == '*') {
            if (strncasecmp(id, p, n - 1) == 0)
                return true;
        } else if (n > 0 && strlen(id) == n && strncasecmp(id, p, n) == 0) {
            return true;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return false;
}

static bool
diag_when_matches(unsigned want, unsigned have)
{
    unsigned rest = want & ~(DIAG_W_PORTS | DIAG_W_SECURITY);

    if ((want & DIAG_W_PORTS) != 0 && (want & have & DIAG_W_PORTS) == 0)
        return false;
    if ((want & DIAG_W_SECURITY) != 0 && (want & have & DIAG_W_SECURITY) == 0)
        return false;
    return (rest & have) == rest;
}

static bool
diag_entry_matches(const struct diag_entry *e, const struct diag_ctx *c)
{
    const struct mo_error *err = c->err;

    if (e->stages != 0 && (e->stages & c->stage_bit) == 0)
        return false;
    if (e->categories != 0 && (e->categories & DIAG_C(err->category)) == 0)
        return false;
    if (!diag_code_matches(e->code, err->smtp_code))
        return false;
    if (!diag_enhanced_matches(e->enhanced, err->enhanced))
        return false;
    for (size_t i = 0; i < sizeof(e->phrases) / sizeof(e->phrases[0]); i++)
        if (e->phrases[i] != NULL && !diag_phrase_matches(e->phrases[i], err->text))
            return false;
    if (!diag_provider_matches(e->providers, c->provider_id))
        return false;
    return diag_when_matches(e->when, c->when);
}

/* ---- the field ---------------------------------------------------------------- */

/* The form's fields; anything else the engine names (auth, ca_file, recipient) is
 * not something the shop owner can change there. */
static const char *
diag_form_field(const char *field)
{
    static const char *const form[] = {"email",       "username", "password", "sender",
                                       "sender_name", "host",     "port",     "security"};

    if (field == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(form) / sizeof(form[0]); i++)
        if (strcmp(field, form[i]) == 0)
            return form[i];
    return NULL;
}

/* The refused recipient "<addr>" in the engine's text is the owner's own Email. */
static bool
diag_rcpt_is_email(const struct diag_ctx *c)
{
    const char *p;
    size_t n;

    if (c->s == NULL || !diag_has_text(c->s->email))
        return false;
    n = strlen(c->s->email);
    for (p = strchr(c->err->text, '<'); p != NULL; p = strchr(p + 1, '<'))
        if (strncasecmp(p + 1, c->s->email, n) == 0 && p[1 + n] == '>')
            return true;
    return false;
}

static const char *
diag_field(const struct diag_entry *e, const struct diag_ctx *c)
{
    const struct account_settings *s = c->s;
    const char *field = e->field;
    bool has_username = s != NULL && diag_has_text(s->username);

    if (e->field_rules & DIAG_F_ENGINE) {
        field = diag_form_field(c->err->field);
        if (field == NULL && c->err->field == NULL)
            field = e->field;
    }
    if (e->expect_username != NULL && s != NULL &&
        (!has_username || strcmp(s->username, e->expect_username) != 0))
        field = "username";
    if ((e->field_rules & DIAG_F_USERNAME_IF_NO_AT) && has_username &&
        strchr(s->username, '@') == NULL)
        field = "username";
    if ((e->field_rules & DIAG_F_USERNAME_IF_MISSING) && s != NULL && !has_username)
        field = "username";
    if ((e->field_rules & DIAG_F_EMAIL_IF_OWN_RCPT) && diag_rcpt_is_email(c))
        field = "email";
    return field;
}

/* ---- the texts ---------------------------------------------------------------- */

/* Appends into a fixed buffer; on overflow, cuts at a UTF-8 boundary and ends with "...". */
struct diag_out {
    char *buf;
    size_t size;
    size_t len;
    bool truncated;
};

static void
diag_put(struct diag_out *o, const char *s, size_t n)
{
    size_t room = o->size - 1 - o->len;

    if (o->truncated)
        return;
    if (n <= room) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = '\0';
        return;
    }
    /* Only a very long host or certificate name list gets here: the end of the
     * sentence is lost, not its start; cut on a character boundary and mark it. */
    memcpy(o->buf + o->len, s, room);
    o->truncated = true;
    o->len = o->size - 4; /* all our buffers are far longer than "..." */
    while (o->len > 0 && ((unsigned char)o->buf[o->len] & 0xC0) == 0x80)
        o->len--;
    memcpy(o->buf + o->len, "...", 4);
    o->len += 3;
}

static void
diag_puts(struct diag_out *o, const char *s)
{
    diag_put(o, s, strlen(s));
}

/* The certificate's names from "... is issued for NAMES, not for ..." */
static void
diag_put_cert_names(struct diag_out *o, const char *text)
{
    const char *p = diag_find(text, "issued for ");
    const char *end;

    if (p == NULL) {
        diag_puts(o, "another name");
        return;
    }
    p += strlen("issued for ");
    end = diag_find(p, ", not for");
    if (end == NULL)
        end = p + strcspn(p, ":;");
    if (end == p || end - p > 200) {
        diag_puts(o, "another name");
        return;
    }
    diag_put(o, p, (size_t)(end - p));
}

/* The first http(s) URL of the server's reply, without trailing punctuation. */
static void
diag_put_link(struct diag_out *o, const char *text)
{
    const char *p = diag_find(text, "https://");
    const char *q = diag_find(text, "http://");
    size_t n;

    if (p == NULL || (q != NULL && q < p))
        p = q;
    if (p == NULL) {
        diag_puts(o, "the link in the server's message");
        return;
    }
    n = strcspn(p, " \t\"'<>()[]");
    while (n > 0 && strchr(".,;:", p[n - 1]) != NULL)
        n--;
    if (n > 300)
        n = 300;
    diag_put(o, p, n);
}

static void
diag_put_ports(struct diag_out *o, const struct account_provider *p)
{
    char buf[96];
    unsigned starttls = p != NULL ? p->port_starttls : 587;
    unsigned tls = p != NULL ? p->port_tls : 465;

    if (starttls != 0 && tls != 0)
        snprintf(buf, sizeof(buf), "port %u with STARTTLS or port %u with SSL/TLS", starttls, tls);
    else if (starttls != 0)
        snprintf(buf, sizeof(buf), "port %u with STARTTLS", starttls);
    else if (tls != 0)
        snprintf(buf, sizeof(buf), "port %u with SSL/TLS", tls);
    else
        snprintf(buf, sizeof(buf), "port 587 with STARTTLS or port 465 with SSL/TLS");
    diag_puts(o, buf);
}

/* Without settings: the port the engine named ("... on port 465 ..."), or 0. */
static unsigned
diag_port_in_text(const char *text)
{
    const char *p = diag_find(text, "port ");
    char *end = NULL;
    long v;

    if (p == NULL || !isdigit((unsigned char)p[5]))
        return 0;
    v = strtol(p + 5, &end, 10);
    return v > 0 && v <= 65535 ? (unsigned)v : 0;
}

/* Fills out[size] from a template (see the file comment for the placeholders). */
static void
diag_render(char *out, size_t size, const char *tmpl, const struct diag_ctx *c)
{
    const struct account_settings *s = c->s;
    struct diag_out o = {out, size, 0, false};
    const char *p = tmpl;

    out[0] = '\0';
    while (*p != '\0') {
        const char *open = strchr(p, '{');
        const char *close;
        size_t n;
        char num[16];

        if (open == NULL) {
            diag_puts(&o, p);
            break;
        }
        diag_put(&o, p, (size_t)(open - p));
        close = strchr(open, '}');
        assert(close != NULL); /* a template typo */
        n = (size_t)(close - open - 1);
        if (n == 4 && strncmp(open + 1, "port", n) == 0) {
            unsigned port = s != NULL && s->port != 0 ? s->port : diag_port_in_text(c->err->text);

            if (port != 0) {
                snprintf(num, sizeof(num), "%u", port);
                diag_puts(&o, num);
            } else {
                diag_puts(&o, "this port");
            }
        } else if (n == 4 && strncmp(open + 1, "host", n) == 0) {
            diag_puts(&o, s != NULL && diag_has_text(s->host) ? s->host : "the server");
        } else if (n == 5 && strncmp(open + 1, "email", n) == 0) {
            diag_puts(&o, s != NULL && diag_has_text(s->email) ? s->email : "your address");
        } else if (n == 6 && strncmp(open + 1, "sender", n) == 0) {
            diag_puts(&o, s != NULL && diag_has_text(s->sender)  ? s->sender
                          : s != NULL && diag_has_text(s->email) ? s->email
                                                                 : "the sender address");
        } else if (n == 8 && strncmp(open + 1, "provider", n) == 0) {
            /* "Gmail (consumer)" reads as "Gmail" in a sentence. */
            const char *paren = strstr(c->provider_name, " (");

            diag_put(&o, c->provider_name,
                     paren != NULL && paren > c->provider_name ? (size_t)(paren - c->provider_name)
                                                               : strlen(c->provider_name));
        } else if (n == 13 && strncmp(open + 1, "provider_host", n) == 0) {
            diag_puts(&o, c->provider != NULL && diag_has_text(c->provider->host)
                              ? c->provider->host
                              : "your provider's sending server");
        } else if (n == 5 && strncmp(open + 1, "ports", n) == 0) {
            diag_put_ports(&o, c->provider);
        } else if (n == 12 && strncmp(open + 1, "app_password", n) == 0) {
            if (c->provider != NULL && diag_has_text(c->provider->app_password_url)) {
                diag_puts(&o, "at ");
                diag_puts(&o, c->provider->app_password_url);
            } else {
                diag_puts(&o, "in your account's security settings");
            }
        } else if (n == 5 && strncmp(open + 1, "names", n) == 0) {
            diag_put_cert_names(&o, c->err->text);
        } else if (n == 4 && strncmp(open + 1, "link", n) == 0) {
            diag_put_link(&o, c->err->text);
        } else {
            assert(!"unknown placeholder in the diagnosis catalogue");
        }
        p = close + 1;
    }
}

/* ---- the entry point ---------------------------------------------------------- */

void
account_diagnose(const struct mo_error *err, const struct account_provider *provider,
                 const struct account_settings *s, struct account_diagnosis *out)
{
    static const struct mo_error no_error;
    const struct diag_entry *e = &diag_catalogue[DIAG_CATALOGUE_N - 1];
    struct diag_ctx c;

    assert(out != NULL);
    memset(out, 0, sizeof(*out));
    if (err == NULL)
        err = &no_error;
    diag_ctx_init(&c, err, provider, s);
    for (size_t i = 0; i < DIAG_CATALOGUE_N; i++) {
        if (diag_entry_matches(&diag_catalogue[i], &c)) {
            e = &diag_catalogue[i];
            break;
        }
    }
    out->id = e->id;
    out->field = diag_field(e, &c);
    out->temporary = e->temporary == DIAG_T_YES || (e->temporary == DIAG_T_ERR && err->temporary);
    if (e->help_url != NULL)
        out->help_url = e->help_url[0] != '\0' ? e->help_url : NULL;
    else
        out->help_url = provider != NULL ? provider->help_url : NULL;
    diag_render(out->title, sizeof(out->title), e->title, &c);
    diag_render(out->explanation, sizeof(out->explanation), e->explanation, &c);
    diag_render(out->fix, sizeof(out->fix), e->fix, &c);
}
