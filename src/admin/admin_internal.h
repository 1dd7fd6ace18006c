/*
 * admin_internal.h - what http.c, api.c and apikey.c share, and what the
 * unit tests and the fuzz target reach: the per-request arena, the errors
 * table every 4xx carries, the pure parts of the API (JSON body validation,
 * raw message preparation, listen address parsing, message state JSON) and
 * the API key primitives.
 *
 * Not part of the module's interface: only src/admin, tests/unit/test_api.c
 * and fuzz/fuzz_api_body.c include it.
 */
#ifndef MAILOUT_ADMIN_INTERNAL_H
#define MAILOUT_ADMIN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "admin/admin.h"
#include "common/common.h"
#include "mime/mime.h"
#include "queue/queue.h"

/* ---- per-request arena ---------------------------------------------------
 * A bump allocator over a list of chunks, plus a list of cleanups (json_decref,
 * mime_address_clear, mo_buf_free) run in reverse order. Everything a request
 * allocates goes away with one admin_arena_free().
 */
struct admin_arena;

/* NULL when out of memory. */
struct admin_arena *admin_arena_new(void);
/* Runs the cleanups (last registered first), frees every chunk. NULL is a no-op. */
void admin_arena_free(struct admin_arena *a);
/* size bytes, zeroed, aligned for any type; NULL when out of memory. */
void *admin_arena_alloc(struct admin_arena *a, size_t size);
/* n elements of size bytes (overflow-checked), zeroed. */
void *admin_arena_calloc(struct admin_arena *a, size_t n, size_t size);
/* A NUL-terminated copy of s[0..len). */
char *admin_arena_strndup(struct admin_arena *a, const char *s, size_t len);
char *admin_arena_printf(struct admin_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Runs fn(p) at admin_arena_free. 0 ok; -1 out of memory, and then fn(p) has
 * already run, so the caller never leaks what it wanted freed.
 */
int admin_arena_defer(struct admin_arena *a, void (*fn)(void *), void *p);
/* Bytes handed out so far (for tests). */
size_t admin_arena_used(const struct admin_arena *a);

/* ---- the errors table: {"errors":[{"field","message"}]} ------------------ */

#define ADMIN_ERRORS_MAX 32
#define ADMIN_FIELD_MAX 128

struct admin_errors {
    size_t n;
    bool truncated; /* more problems than ADMIN_ERRORS_MAX */
    struct {
        char field[ADMIN_FIELD_MAX]; /* "" for a problem with no field (JSON null) */
        char message[MO_ERROR_TEXT_MAX];
    } items[ADMIN_ERRORS_MAX];
};

/* field may be NULL (no field). Keeps the first ADMIN_ERRORS_MAX problems. */
void admin_errors_add(struct admin_errors *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"errors":[...]} as a new reference (NULL when out of memory). */
json_t *admin_errors_json(const struct admin_errors *e);
/* The index of the first item whose field is field, or -1 (tests). */
int admin_errors_find(const struct admin_errors *e, const char *field);

/* ---- POST /api/v1/messages: the body, validated ---------------------------- */

#define ADMIN_MAX_RECIPIENTS 1000
#define ADMIN_MAX_HEADERS 100
#define ADMIN_MAX_ATTACHMENTS 100

/*
 * A message as the JSON body described it, every field checked. Everything
 * lives in the arena given to admin_message_parse. Fields left out are NULL
 * (or 0); has_from/has_reply_to say whether those were given.
 */
struct admin_message {
    const char *account; /* NULL: "default" */
    bool has_from;
    struct mime_address from;
    struct mime_address *to;
    size_t n_to;
    struct mime_address *cc;
    size_t n_cc;
    struct mime_address *bcc;
    size_t n_bcc;
    bool has_reply_to;
    struct mime_address reply_to;
    const char *subject; /* never NULL after a successful parse ("" allowed) */
    const char *text;    /* NULL: none; "" when neither text, html nor attachments */
    const char *html;
    struct mime_header *headers;
    size_t n_headers;
    struct mime_attachment *attachments;
    size_t n_attachments;
};

/*
 * Parses and checks a JSON body. Pure: no I/O, no clock. Every problem found
 * is added to errs (field names like "to[2]", "headers.X-Foo",
 * "attachments[0].content_base64"); returns 0 when there are none, -1
 * otherwise. Everything out points to lives in a, and a's cleanups clear the
 * addresses inside *out: free a before out goes away.
 */
int admin_message_parse(const char *body, size_t len, struct admin_arena *a,
                        struct admin_message *out, struct admin_errors *errs);

/*
 * Turns a parsed message (whose from is set, from the body or the account)
 * into the RFC 5322 bytes and the envelope. max_bytes bounds the message.
 * out's strings and arrays live in a (out->data too). Problems go to errs
 * (400); -1 with errs empty means an internal failure (err).
 */
int admin_message_build(const struct admin_message *m, const struct mime_address *from,
                        size_t max_bytes, struct admin_arena *a, struct queue_new_message *out,
                        struct admin_errors *errs, struct mo_error *err);

/* ---- POST /api/v1/messages/raw ------------------------------------------- */

struct admin_raw_request {
    const char *from;      /* ?from=, or NULL */
    const char *const *to; /* ?to= values */
    size_t n_to;
    const char *account; /* ?account=, or NULL */
};

/*
 * Prepares a ready-made RFC 5322 message: line ends become CRLF, the header
 * section is checked (lines "Name: value" or folded continuations, no NUL,
 * no bare CR), Bcc headers are removed, a missing Date or Message-ID is
 * added. The envelope sender is req->from, else the From header's first
 * mailbox (Sender's when From lists several), else default_from (the
 * account's sender, which is also written as From when the message has
 * none); recipients are req->to, else To + Cc + Bcc. Clock and random
 * numbers aside, pure. default_from may be NULL. Problems go to errs (field
 * "from", "to[1]", "headers.To", "message"); 0 ok; -1 with errs unchanged
 * means an internal failure (err: INTERNAL).
 */
int admin_raw_prepare(const char *body, size_t len, const struct admin_raw_request *req,
                      const struct mime_address *default_from, size_t max_bytes,
                      struct admin_arena *a, struct queue_new_message *out,
                      struct admin_errors *errs, struct mo_error *err);

/* ---- GET /api/v1/messages/{id} -------------------------------------------- */

/* The state JSON of a message (new reference, NULL when out of memory). */
json_t *admin_message_info_json(const struct queue_message_info *m);

/* Parses the {id} of a path: a decimal from 1 to INT64_MAX, nothing else. */
int admin_parse_id(const char *s, int64_t *out);

/* ---- listening address --------------------------------------------------- */

#define ADMIN_DEFAULT_LISTEN "127.0.0.1:8025"

/*
 * "IP:PORT" (IPv4 dotted quad) or "[IPv6]:PORT", port 0-65535 (0: any free
 * port, for tests). NULL or "" means ADMIN_DEFAULT_LISTEN. No name lookup.
 * Errors: CONFIG, field "http".
 */
int admin_listen_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len,
                       struct mo_error *err);

/* ---- API keys ------------------------------------------------------------ */

#define ADMIN_APIKEY_TAG "mo_"
#define ADMIN_APIKEY_RANDOM_BYTES 32
#define ADMIN_APIKEY_B64_LEN 43 /* unpadded base64url of 32 bytes */
#define ADMIN_APIKEY_LEN (3 + ADMIN_APIKEY_B64_LEN)
#define ADMIN_APIKEY_PREFIX_LEN 11 /* "mo_" and 8 characters: shown in lists, looked up */
#define ADMIN_APIKEY_HASH_BYTES 32

/* A new random key "mo_..." into out (>= ADMIN_APIKEY_LEN + 1 bytes). Errors: INTERNAL. */
int admin_apikey_generate(char *out, size_t out_size, struct mo_error *err);
/* True when key has the shape of a key: "mo_" + 43 base64url characters that decode. */
bool admin_apikey_well_formed(const char *key);
/* SHA-256 of the key's text. */
int admin_apikey_hash(const char *key, unsigned char out[ADMIN_APIKEY_HASH_BYTES]);
/*
 * Copies the key of an Authorization header value "Bearer KEY" (scheme
 * case-insensitive, RFC 6750 2.1) into out. 0 ok; -1 when value is NULL,
 * another scheme, has no token, or the token does not fit.
 */
int admin_bearer_token(const char *value, char *out, size_t out_size);

/*
 * The keyring: the non-revoked keys' prefixes and hashes, loaded from the
 * database at open and again at most every ADMIN_KEYRING_TTL_MS (so a new or
 * revoked key counts within that time), so a request costs no database read.
 * last_used_at is written back in the same refresh. Thread-safe.
 */
#define ADMIN_KEYRING_TTL_MS 1000

/* The keyring's functions are public: admin.h (the SMTP listener checks keys too). */

/* Opens libmicrohttpd (mhd.c) on first use: only the service loads it. Errors: INTERNAL. */
int admin_mhd_load(struct mo_error *err);

#endif
