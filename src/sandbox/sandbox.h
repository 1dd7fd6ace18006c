/*
 * sandbox.h - the local test inbox ("Sandbox (local test inbox)" provider).
 *
 * An account with provider "sandbox" delivers to mailout's own SMTP listener
 * on loopback, started by `mailout serve` in sandbox mode: a real SMTP
 * conversation with STARTTLS (a self-signed certificate made here on first
 * use, which the account trusts through its ca_file: verification stays on)
 * and AUTH (a random password kept here). Accepted letters are kept as .eml
 * files instead of being queued. Faults of real providers can be switched on.
 *
 * Files, all under HOME/sandbox/: cert.pem and key.pem (EC P-256, SAN
 * localhost and 127.0.0.1, 10 years), password (0600), port (the listener's
 * port, written by serve), fault (one line "KIND next N" or "KIND share P"),
 * inbox/<ms>-<random>.eml.
 *
 * Leaves out: several faults at once, per-recipient faults, inbox size limits.
 */
#ifndef MAILOUT_SANDBOX_H
#define MAILOUT_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define SANDBOX_PROVIDER_ID "sandbox"
#define SANDBOX_DEFAULT_LISTEN "127.0.0.1:0"
#define SANDBOX_DEFAULT_PORT 2526 /* put in a new account until serve records the real one */
#define SANDBOX_ID_MAX 64
#define SANDBOX_STALL_MS (120 * 1000)

enum sandbox_fault_kind {
    SANDBOX_FAULT_NONE = 0,
    SANDBOX_FAULT_AUTH_535,      /* 535-5.7.8 Username and Password not accepted (Gmail) */
    SANDBOX_FAULT_AUTH_534,      /* 534-5.7.9 Application-specific password required */
    SANDBOX_FAULT_GREETING_421,  /* 421 4.7.0 Try again later, closing connection */
    SANDBOX_FAULT_DATA_550_545,  /* 550 5.4.5 Daily user sending limit exceeded */
    SANDBOX_FAULT_DROP_MID_DATA, /* the connection closes right after the 354 */
    SANDBOX_FAULT_STALL,         /* no answer after the data (until the client gives up) */
    SANDBOX_FAULT_COUNT
};

/* "none", "auth-535", ...; never NULL. */
const char *sandbox_fault_name(enum sandbox_fault_kind kind);
/* By name ("off" is NONE); 0 ok, -1 unknown. */
int sandbox_fault_parse(const char *name, enum sandbox_fault_kind *out);

struct sandbox_fault {
    enum sandbox_fault_kind kind; /* NONE: off */
    bool is_share;                /* value is a percentage of sessions, else a count left */
    unsigned value;               /* next N (1..1000000) or share (1..100) */
};

/*
 * Makes HOME/sandbox and its inbox, the certificate and key and the password
 * when missing. Errors: STORAGE, INTERNAL.
 */
int sandbox_prepare(const char *home, struct mo_error *err);
/* HOME/sandbox/NAME into out; 0 ok, -1 too long. */
int sandbox_path(const char *home, const char *name, char *out, size_t size);
/* The password (prepared before); out holds at least 64 bytes. Errors: STORAGE. */
int sandbox_password(const char *home, char *out, size_t size, struct mo_error *err);
/* The port serve recorded, else SANDBOX_DEFAULT_PORT. */
unsigned sandbox_port_read(const char *home);
int sandbox_port_write(const char *home, unsigned port, struct mo_error *err);

/* The fault switch. Setting NONE switches it off. Errors: STORAGE. */
int sandbox_fault_set(const char *home, const struct sandbox_fault *f, struct mo_error *err);
/* The switch as it is (kind NONE when off or unreadable). */
void sandbox_fault_get(const char *home, struct sandbox_fault *out);
/*
 * Draws the fault for one session: with "next N" it takes one (switching off
 * after the last), with "share P" it fires with probability P%. Under a lock,
 * so parallel sessions count right.
 */
enum sandbox_fault_kind sandbox_fault_draw(const char *home);

/* Keeps one letter (the bytes as received, CRLF). *id_out gets its id. Errors: STORAGE. */
int sandbox_store(const char *home, const char *data, size_t len, char id_out[SANDBOX_ID_MAX],
                  struct mo_error *err);

struct sandbox_letter {
    char id[SANDBOX_ID_MAX];
    int64_t received_ms; /* Unix time in ms */
    size_t size;
    char from[256]; /* header values, encoded words decoded, cut to fit */
    char to[256];
    char subject[256];
};

/* The letters, newest first; *out is malloc'd (caller frees). Errors: STORAGE. */
int sandbox_list(const char *home, struct sandbox_letter **out, size_t *n_out,
                 struct mo_error *err);
/* One letter's bytes; *data malloc'd and NUL-terminated (caller frees). CONFIG "id" when
 * there is none of that id (ids are checked: letters, digits and '-'). */
int sandbox_read(const char *home, const char *id, char **data, size_t *len, struct mo_error *err);
/* Deletes every letter; *n_removed may be NULL. Errors: STORAGE. */
int sandbox_clear(const char *home, size_t *n_removed, struct mo_error *err);

/* ---- sandbox accounts (sandbox_account.c) ---------------------------------------------- */

#define SANDBOX_ACCOUNT_EMAIL "shop@example.com"

/*
 * Fills s (cleared first; the caller clears it after) with a sandbox
 * account named name: provider "sandbox", host 127.0.0.1, the recorded port,
 * STARTTLS with ca_file the sandbox's certificate, the sandbox's password.
 * Prepares the sandbox first. Errors: STORAGE, INTERNAL.
 */
struct account_settings;
int sandbox_account_settings(const char *home, const char *name, const char *email,
                             struct account_settings *s, struct mo_error *err);
/*
 * When the data folder has no account at all, saves the sandbox account
 * "default" (*created true); otherwise changes nothing. Errors: STORAGE,
 * CONFIG (a sandbox account that does not validate: a bug).
 */
int sandbox_account_ensure(const char *home, bool *created, struct mo_error *err);
/* Puts port (and the sandbox's certificate and password) into every sandbox account. */
int sandbox_accounts_update(const char *home, unsigned port, struct mo_error *err);

#endif
