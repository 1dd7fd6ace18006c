/*
 * common.h - what every mailout module shares: the one error type, growable
 * buffers with a hard maximum, the logger and small string helpers.
 *
 * Why: STYLE.md asks for one error value that each front end maps once, and
 * for buffers whose limit turns an oversized input into an error, not an OOM.
 * Leaves out: configuration snapshots (they arrive with the daemon).
 */
#ifndef MAILOUT_COMMON_H
#define MAILOUT_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- errors ------------------------------------------------------------ */

enum mo_category {
    MO_ERR_NONE = 0,
    MO_ERR_CONFIG,   /* a setting or an input is wrong; fix it and retry */
    MO_ERR_DNS,      /* the host name did not resolve */
    MO_ERR_CONNECT,  /* TCP connect failed, was refused or timed out */
    MO_ERR_TLS,      /* handshake, certificate or TLS-required trouble */
    MO_ERR_AUTH,     /* the server refused the credentials or the mechanism */
    MO_ERR_PROTOCOL, /* the server broke the protocol, dropped, or stalled */
    MO_ERR_REJECTED, /* the server refused the sender, recipients or message */
    MO_ERR_STORAGE,  /* disk or database trouble */
    MO_ERR_INTERNAL, /* out of memory, a bug */
    MO_ERR_COUNT
};

#define MO_ERROR_TEXT_MAX 512
#define MO_ENHANCED_MAX 16

/*
 * struct mo_error - filled where a failure is first understood.
 * stage and field point to static strings (or are NULL); text never holds
 * a secret. Callers may prefix text with context but never change the
 * category, codes, stage or field.
 */
struct mo_error {
    enum mo_category category;
    const char *stage; /* "dns", "connect", "tls", "greeting", "ehlo", "starttls", "auth",
                          "mail", "rcpt", "data", "quit", or NULL */
    int smtp_code;     /* 0 when the server gave none */
    char enhanced[MO_ENHANCED_MAX]; /* "5.7.8" or "" */
    char text[MO_ERROR_TEXT_MAX];
    const char *field; /* "host", "port", "security", "username", "password", "email",
                          "sender", "recipient", ... or NULL */
    bool temporary;
};

/* Resets err to "no error". err may be NULL. */
void mo_error_clear(struct mo_error *err);

/*
 * Fills err (which may be NULL) with category, field (static or NULL) and
 * formatted text. Stage and codes are cleared; set them afterwards.
 * temporary defaults to true for DNS and CONNECT, false otherwise.
 */
void mo_error_set(struct mo_error *err, enum mo_category category, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Prepends "context: " to err->text, keeping everything else. */
void mo_error_prefix(struct mo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "config", "dns", ... ; never NULL. */
const char *mo_category_name(enum mo_category category);

/* ---- buffers ----------------------------------------------------------- */

/*
 * struct mo_buf - a byte buffer that grows up to max_bytes. data is always
 * NUL-terminated (the NUL is not counted in len) once anything was added.
 */
struct mo_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max_bytes;
};

/* Starts an empty buffer that refuses to grow past max_bytes. */
void mo_buf_init(struct mo_buf *b, size_t max_bytes);
/* Frees the storage (wiping it first when wipe is true) and empties b. */
void mo_buf_free(struct mo_buf *b);
void mo_buf_wipe_free(struct mo_buf *b);
/* Forgets the content but keeps the storage. */
void mo_buf_reset(struct mo_buf *b);
/* 0 ok; -1 if the result would pass max_bytes or memory ran out (INTERNAL). */
int mo_buf_append(struct mo_buf *b, const void *data, size_t len, struct mo_error *err);
int mo_buf_append_str(struct mo_buf *b, const char *s, struct mo_error *err);
int mo_buf_appendf(struct mo_buf *b, struct mo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Makes room for extra more bytes (and the NUL) without changing len. 0 ok, -1. */
int mo_buf_reserve(struct mo_buf *b, size_t extra, struct mo_error *err);
/* Removes the first n bytes. */
void mo_buf_consume(struct mo_buf *b, size_t n);
/* Returns data, or "" for a buffer that never held anything. Borrowed. */
const char *mo_buf_cstr(const struct mo_buf *b);

/* ---- logging ----------------------------------------------------------- */

enum mo_log_level { MO_LOG_DEBUG, MO_LOG_INFO, MO_LOG_WARN, MO_LOG_ERROR };

/* Set once at start; messages below min_level are dropped. Default: WARN to stderr. */
void mo_log_init(enum mo_log_level min_level);
void mo_log(enum mo_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the database ------------------------------------------------------ */

struct sqlite3;

/* Process-wide SQLite settings; call first thing in main, before any database is opened. */
void mo_db_init(void);

/*
 * Opens (creating it when needed) the SQLite file at path in WAL mode with
 * synchronous=FULL, the given busy timeout and no checkpoint on close, then
 * runs schema (may be NULL). no_mutex: the caller serialises its own use.
 * On success *out is the connection (sqlite3_close it). Errors: STORAGE
 * (field "home").
 */
int mo_db_open(const char *path, const char *schema, int busy_timeout_ms, bool no_mutex,
               struct sqlite3 **out, struct mo_error *err);

/*
 * The process's write gate: one write transaction at a time across all of
 * this process's connections to mailout.db. SQLite makes a second writer
 * sleep in its busy handler (1 ms and up) even when the first commits within
 * microseconds; threads of one process wait on this mutex instead and wake at
 * once. Taken just before BEGIN IMMEDIATE and released after COMMIT or
 * ROLLBACK; never held while waiting on the network or another lock.
 * Other processes still meet SQLite's own lock and busy timeout.
 */
void mo_db_write_enter(void);
void mo_db_write_leave(void);

/* ---- small helpers ----------------------------------------------------- */

/* strdup that returns NULL for NULL. Caller frees. */
char *mo_strdup(const char *s);
/* Overwrites len bytes in a way the compiler keeps (OPENSSL_cleanse). */
void mo_wipe(void *p, size_t len);
/* Frees a NUL-terminated secret after wiping it. NULL is a no-op. */
void mo_free_secret(char *s);
/* Monotonic clock in milliseconds and in microseconds. */
int64_t mo_now_ms(void);
int64_t mo_now_us(void);
/* Parses a whole decimal string into [min, max]; 0 ok, -1 otherwise. */
int mo_parse_long(const char *s, long min, long max, long *out);
/* Case-insensitive ASCII comparison of the first n bytes. */
bool mo_ascii_prefix(const char *s, const char *prefix);

/* ---- listening addresses (net.c) -------------------------------------- */

/*
 * Parses "IP:PORT" (IPv4 dotted quad, or "localhost" for 127.0.0.1) or
 * "[IPv6]:PORT", port 0 to 65535 (0: any free port). No name lookup. NULL
 * or "" means default_text (e.g. "127.0.0.1:8025", whose port the error
 * texts use as their example). *is_loopback (may be NULL): 127.0.0.0/8,
 * ::1 or ::ffff:127.x. Errors: CONFIG with field (a static string, e.g.
 * "http", "smtp").
 */
int mo_listen_parse(const char *text, const char *default_text, const char *field,
                    struct sockaddr_storage *out, socklen_t *out_len, bool *is_loopback,
                    struct mo_error *err);

#endif
