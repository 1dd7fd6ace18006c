/*
 * admin.h - mailout's HTTP side, served by `mailout serve --http ADDR:PORT`
 * with libmicrohttpd: the JSON API for developers (API keys) today, the admin
 * panel for shop owners next.
 *
 * API (RFC 8259 JSON, RFC 6750 bearer keys):
 *   POST /api/v1/messages      compose from JSON and queue -> 202 {"id":...}
 *   POST /api/v1/messages/raw  queue an RFC 5322 message   -> 202 {"id":...}
 *   GET  /api/v1/messages/{id} its state, attempts and last reply
 * A message is answered 202 only once it is committed to the queue.
 * Leaves out: TLS on the listener (put it on loopback or behind a proxy).
 */
#ifndef MAILOUT_ADMIN_H
#define MAILOUT_ADMIN_H

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

#endif
