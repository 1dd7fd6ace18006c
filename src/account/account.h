/*
 * account.h - sender accounts: what mailout knows about mail providers, how
 * it checks what a shop owner typed, where it keeps accounts, and how it
 * turns a failure into "this field, this reason, this fix".
 *
 * Parts (one file each): providers.c (the built-in provider table),
 * detect.c (provider from the address: domain, then MX, then probing),
 * validate.c (every field at once), diagnose.c (the catalogue of real
 * provider replies), store.c (SQLite + libsodium), check.c (connection check
 * and test letter).
 * Leaves out: OAuth2 flows (a token is taken as given), IMAP.
 */
#ifndef MAILOUT_ACCOUNT_H
#define MAILOUT_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "smtp/smtp.h"

/* ---- providers ---------------------------------------------------------- */

enum account_app_password {
    ACCOUNT_APP_PASSWORD_NO = 0,
    ACCOUNT_APP_PASSWORD_YES,      /* the normal password is refused */
    ACCOUNT_APP_PASSWORD_WHEN_2FA, /* needed once two-factor login is on */
};

enum account_username_format {
    ACCOUNT_USERNAME_FULL_EMAIL = 0, /* log in with local@domain */
    ACCOUNT_USERNAME_LOCAL_PART,     /* log in with the part before @ */
    ACCOUNT_USERNAME_OTHER,          /* a fixed or separate login (e.g. "apikey") */
};

/* Behaviour flags of a provider (bits of struct account_provider.flags). */
enum account_provider_flag {
    ACCOUNT_PROVIDER_DOTS_IGNORED = 1u << 0,    /* gmail.com: j.smith == jsmith */
    ACCOUNT_PROVIDER_PLUS_TAGS = 1u << 1,       /* name+tag reaches name */
    ACCOUNT_PROVIDER_SENDER_MUST_MATCH = 1u << 2, /* refuses a sender other than the login */
    ACCOUNT_PROVIDER_REWRITES_FROM = 1u << 3,   /* silently replaces a foreign From */
    ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES = 1u << 4, /* app password shown in groups */
    ACCOUNT_PROVIDER_OAUTH_ONLY = 1u << 5,      /* passwords are refused (Outlook.com) */
    ACCOUNT_PROVIDER_LOCAL = 1u << 6,           /* a server on this machine (sandbox) */
};

/* One row of the built-in provider table. Static data; never freed. */
struct account_provider {
    const char *id;           /* "gmail" */
    const char *name;         /* "Gmail" */
    const char *const *domains;     /* NULL-terminated; address domains it serves */
    const char *host;         /* "smtp.gmail.com" */
    unsigned port_starttls;   /* 587, or 0 when there is none */
    unsigned port_tls;        /* 465, or 0 when there is none */
    enum account_username_format username_format;
    enum account_app_password app_password;
    bool oauth2_supported;
    unsigned daily_limit;     /* messages a day, 0 when unknown */
    const char *limits_text;  /* "500/day", or NULL */
    const char *app_password_url; /* where the owner creates one, or NULL */
    const char *help_url;     /* the provider's own SMTP settings page, or NULL */
    const char *const *mx_suffixes; /* NULL-terminated; MX host suffixes */
    unsigned flags;           /* enum account_provider_flag bits */
    const char *notes;        /* one plain-language paragraph for the owner, or NULL */
    const char *fixed_username; /* the literal login every account uses ("apikey" for
                                   SendGrid), or NULL */
};

size_t account_provider_count(void);
/* The i-th provider in table order (i < account_provider_count()). */
const struct account_provider *account_provider_at(size_t i);
/* By id (case-insensitive), or NULL. */
const struct account_provider *account_provider_find(const char *id);
/* By an address domain in ASCII (case-insensitive; "googlemail.com" -> gmail), or NULL. */
const struct account_provider *account_provider_for_domain(const char *domain);
/* By an MX host name: the provider with the longest matching suffix, or NULL. */
const struct account_provider *account_provider_for_mx(const char *mx_host);

/* ---- detection ---------------------------------------------------------- */

struct account_detect_options {
    int timeout_ms;           /* per DNS query and per probe connection; 0: 3000 */
    const char *dns_server;   /* "127.0.0.1:5353" for tests; NULL: the system's. IPv4 only;
                                 probes then also resolve through it and connect to the
                                 address found (the certificate is checked for that address) */
    bool no_probe;            /* skip probing smtp./mail. hosts */
    const char *ca_file;      /* for probes' TLS checks; NULL: system store */
};

enum account_detect_source {
    ACCOUNT_DETECT_NONE = 0,
    ACCOUNT_DETECT_DOMAIN, /* the address's domain is in the table */
    ACCOUNT_DETECT_MX,     /* the domain's MX records point at a known provider */
    ACCOUNT_DETECT_PROBE,  /* a host answered on a usual port with TLS and AUTH */
};

struct account_detection {
    enum account_detect_source source;
    const struct account_provider *provider; /* NULL after a probe or nothing */
    char host[256];
    unsigned port;
    enum smtp_security security;
    char mx_host[256];                       /* the MX that matched, for the message */
    char explanation[256];                   /* "gmail.com is Gmail" / "MX aspmx.l.google.com ..." */
};

/*
 * Finds the provider and server for an email address: the domain in the
 * table first, then the domain's MX records (longest suffix wins, short
 * timeout), then probing smtp.DOMAIN and mail.DOMAIN on 465 (TLS), 587
 * (STARTTLS) and 25 (STARTTLS), keeping the first that completes TLS and
 * offers AUTH. Returns 0 with out->source NONE when nothing was found (not an
 * error; out->explanation says what was tried). Errors: CONFIG (field
 * "email") when the address is not valid; CONFIG (field "dns_server") when
 * opt->dns_server is not "IPv4:PORT".
 */
int account_detect(const char *email, const struct account_detect_options *opt,
                   struct account_detection *out, struct mo_error *err);

/* ---- settings and validation ------------------------------------------- */

/*
 * An account's settings. All strings are owned (account_settings_clear frees
 * them, wiping the password). NULL or 0 means "not set".
 */
struct account_settings {
    char *name;        /* "default" unless named */
    char *provider_id; /* a table id, or NULL for a custom server */
    char *email;       /* the account's own address */
    char *username;    /* the login */
    char *password;    /* the password, app password or XOAUTH2 token */
    char *sender;      /* the From address the shop uses; NULL: email */
    char *sender_name; /* the From display name, or NULL */
    char *host;
    unsigned port;
    enum smtp_security security;
    bool has_security; /* security was given (otherwise from the provider) */
    enum smtp_auth_mech auth;
    bool no_login;     /* send without AUTH: a relay that accepts this machine as it is;
                          username and password are then ignored (stored as auth "none") */
    char *ca_file;
    int timeout_s;     /* 0: defaults */
};

void account_settings_clear(struct account_settings *s);
/* Deep copy; 0 ok, -1 INTERNAL. */
int account_settings_copy(struct account_settings *dst, const struct account_settings *src,
                          struct mo_error *err);

#define ACCOUNT_ISSUES_MAX 32

struct account_issue {
    const char *field; /* "email", "username", "password", "sender", "sender_name",
                          "host", "port", "security", "auth", "ca_file", "provider",
                          "name", "timeout"; "internal" (out of memory). Never NULL. */
    bool is_error;     /* false: a warning or a note; saving goes on */
    char message[400]; /* plain language: what is wrong and what to do */
};

struct account_issues {
    struct account_issue items[ACCOUNT_ISSUES_MAX];
    size_t n;
    size_t n_errors;
};

/*
 * Checks every field at once and normalises in place what the provider
 * needs: lowercases domains, fills username/sender/host/port/security from
 * the provider when unset, turns a Gmail login given as the part before @
 * into the full address, strips the spaces of an app password shown in
 * groups (with a note). A password is never refused for its characters.
 * Gmail dots, +tags and googlemail.com are never errors: the sender is
 * compared with the login as the provider does. Returns the number of
 * errors (0: can be saved); warnings and notes are in issues too.
 * provider may be NULL (custom server): then s->provider_id is looked up
 * (an unknown id is an error on "provider"; "custom" means none), and a host
 * that is a provider's own server (smtp.gmail.com) brings that provider's
 * rules. A chosen provider's id is written to s->provider_id. A NULL
 * password means "keep the stored one" and is not an error; "" is.
 * issues is emptied first. Running it again on its output adds nothing.
 */
size_t account_validate(struct account_settings *s, const struct account_provider *provider,
                        struct account_issues *issues);

/* ---- diagnosis ---------------------------------------------------------- */

struct account_diagnosis {
    const char *field;       /* the setting at fault, or NULL (nothing in the form) */
    char title[160];         /* "Google wants an app password" */
    char explanation[600];   /* what happened, in plain words */
    char fix[600];           /* what to do */
    const char *help_url;    /* the provider's page, or NULL */
    bool temporary;          /* waiting may be the fix */
    const char *id;          /* the catalogue entry, stable ("google.bad-credentials"): for
                                logs, the API and translations; static, never NULL */
};

/*
 * Explains a failed check or send. err is the engine's error (stage, code,
 * enhanced code, text with the server's reply); provider may be NULL; s gives
 * the port and security for advice such as "port 465 needs SSL/TLS". Always
 * fills out (a generic diagnosis when nothing in the catalogue matches).
 */
void account_diagnose(const struct mo_error *err, const struct account_provider *provider,
                      const struct account_settings *s, struct account_diagnosis *out);

/* ---- the store ---------------------------------------------------------- */

struct account_store;

/*
 * Opens (creating when needed) the data folder home: home/mailout.db (SQLite,
 * WAL) and home/secret.key (mode 0600, made on first use). Passwords are
 * encrypted with libsodium (crypto_secretbox) before they reach the
 * database. Errors: STORAGE, CONFIG (field "home").
 */
int account_store_open(const char *home, struct account_store **out, struct mo_error *err);
void account_store_close(struct account_store *st);

/* Inserts or replaces s (by s->name). A NULL password keeps the stored one. */
int account_store_put(struct account_store *st, const struct account_settings *s,
                      struct mo_error *err);
/* Loads an account; with_secret false leaves out->password NULL.
 * Errors: CONFIG (field "name") when there is none of that name. */
int account_store_get(struct account_store *st, const char *name, bool with_secret,
                      struct account_settings *out, struct mo_error *err);
/* Names in alphabetical order; *out is malloc'd strings (caller frees each and the array). */
int account_store_list(struct account_store *st, char ***out, size_t *n_out,
                       struct mo_error *err);

/*
 * The account that sends as addr (an envelope address; "" or NULL: none):
 * "default" when its email or sender is addr, else the first other account
 * whose email or sender is addr (case-insensitive), else "default".
 * Without the password. 1 found (*matches: it sends as addr), 0 no account
 * to send with, -1 STORAGE. sendmail and the spool's importer choose so.
 */
/* Whether s sends as addr: its email or sender, case-insensitive ("" and NULL: no). */
bool account_sends_as(const struct account_settings *s, const char *addr);
int account_store_find_sender(struct account_store *st, const char *addr,
                              struct account_settings *out, bool *matches, struct mo_error *err);
int account_store_remove(struct account_store *st, const char *name, struct mo_error *err);
/* Remembers the outcome of a check or test (JSON text) and the test letter's Message-ID. */
int account_store_record_check(struct account_store *st, const char *name, const char *outcome_json,
                               const char *message_id, struct mo_error *err);
/* The last outcome (JSON text) and Message-ID; caller frees both; NULL when none. */
int account_store_last_check(struct account_store *st, const char *name, char **outcome_json,
                             char **message_id, int64_t *when, struct mo_error *err);
/* Whether a password is stored for name. */
bool account_store_has_password(struct account_store *st, const char *name);

/* ---- check and test letter ----------------------------------------------- */

struct account_check_result {
    bool ok;
    struct smtp_step steps[SMTP_STEPS_MAX];
    size_t n_steps;
    struct mo_error err;               /* when !ok */
    struct account_diagnosis diagnosis; /* when !ok */
    char **transcript;                 /* n_transcript lines, secrets redacted; owned */
    size_t n_transcript;
    char message_id[256];              /* the test letter's, when sent */
    char to[256];                      /* where the test letter went */
};

void account_check_result_clear(struct account_check_result *r);

/*
 * Connects with s's settings (validated beforehand), logs in, offers the
 * sender with MAIL FROM and resets: nothing is sent. With send_test, sends
 * the confirmation letter to `to` (NULL: s->email) instead. Fills r in every
 * case; returns 0 when everything passed. A failure fills r->err and
 * r->diagnosis.
 */
int account_check(const struct account_settings *s, bool send_test, const char *to,
                  struct account_check_result *r);

/*
 * account_check, and on_step (may be NULL) is called with ctx as each step
 * ends, from the calling thread, before account_check_ex returns: for a page
 * that shows the steps as they pass. step is borrowed for the call.
 */
int account_check_ex(const struct account_settings *s, bool send_test, const char *to,
                     void (*on_step)(void *ctx, const struct smtp_step *step), void *ctx,
                     struct account_check_result *r);

#endif
