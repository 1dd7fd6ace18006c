/*
 * admin.h - mailout's HTTP side, served by `mailout serve --http ADDR:PORT`
 * with libmicrohttpd: the JSON API for developers (API keys) and the admin
 * panel for shop owners (a password, a login session).
 *
 * API (RFC 8259 JSON, RFC 6750 bearer keys):
 *   POST /api/v1/messages      compose from JSON and queue -> 202 {"id":...}
 *   POST /api/v1/messages/raw  queue an RFC 5322 message   -> 202 {"id":...}
 *   GET  /api/v1/messages/{id} its state, attempts and last reply
 * A message is answered 202 only once it is committed to the queue.
 * Panel: / leads to /setup (first start: create the admin password, from
 * this machine only), /login, then /panel/ (the pages, built into the
 * binary) and its JSON routes under /panel/api/ (session cookie + CSRF
 * token): mail accounts with the connection check and the test letter, the
 * mail log and queue, the dashboard, API keys. See panel.c.
 * Leaves out: TLS on the listener (put it on loopback or behind a proxy).
 */
#ifndef MAILOUT_ADMIN_H
#define MAILOUT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct admin_options {
    const char *home;          /* the data folder */
    const char *listen;        /* "127.0.0.1:8025", "[::1]:8025" */
    size_t max_body_bytes;     /* request bodies above this get 413/400; 0: 25 MB */
    unsigned max_connections;  /* open connections at once (one thread each); 0: 256 */
};

struct admin_server;

/* Starts serving in the background: its own threads (one per connection and a
 * committer), its own connections to home/mailout.db. opt->listen NULL or "":
 * 127.0.0.1:8025. Errors: CONFIG (field "http": bad address, port in use, no
 * permission; field "home"), STORAGE, INTERNAL. */
int admin_start(const struct admin_options *opt, struct admin_server **out, struct mo_error *err);
/* Stops accepting, finishes requests in progress, frees. NULL is a no-op. */
void admin_stop(struct admin_server *s);
/* The port listened on (the one the system chose when opt->listen said port 0). */
unsigned admin_port(const struct admin_server *s);

/* ---- the panel's admin password (argon2id) ------------------------------ */

/*
 * Sets the admin password (`mailout admin password`), replacing any earlier
 * one and ending every panel session. Any characters; 8 to 1024 bytes.
 * Errors: CONFIG (field "password": too short or too long; field "home"),
 * STORAGE, INTERNAL.
 */
int admin_password_set(const char *home, const char *password, struct mo_error *err);
/* Whether an admin password is set. Errors: STORAGE, CONFIG (field "home"). */
int admin_password_exists(const char *home, bool *out, struct mo_error *err);

/* ---- API keys: random 256-bit keys shown once, stored as SHA-256 hashes ---- */

/* Makes a key named name; key_out (at least 47 bytes) receives it ("mo_..."), shown
 * once. Errors: CONFIG (name empty or taken), STORAGE. */
int admin_apikey_create(const char *home, const char *name, char *key_out, size_t key_size,
                        struct mo_error *err);

struct admin_apikey_info {
    int64_t id;
    char name[128];
    char prefix[16];     /* the first characters, to recognise a key */
    int64_t created_at;
    int64_t last_used_at; /* 0: never */
    bool revoked;
};

/* All keys, newest first; *out malloc'd. Errors: STORAGE. */
int admin_apikey_list(const char *home, struct admin_apikey_info **out, size_t *n,
                      struct mo_error *err);
/* Revokes a key by name. Errors: CONFIG (unknown), STORAGE. */
int admin_apikey_revoke(const char *home, const char *name, struct mo_error *err);

/*
 * The keyring: the API keys held in memory for checking, refreshed from the
 * database (a new or revoked key counts within a second), so a check costs
 * no database read. Used by the HTTP API and the SMTP listener. Thread-safe.
 */
struct admin_keyring;

/* Errors: STORAGE. */
int admin_keyring_open(const char *home, struct admin_keyring **out, struct mo_error *err);
void admin_keyring_close(struct admin_keyring *k);
/* True when key is a known, non-revoked key; *id_out (may be NULL) gets its id. */
bool admin_keyring_verify(struct admin_keyring *k, const char *key, int64_t *id_out);

#endif
