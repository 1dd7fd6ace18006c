/*
 * listener_internal.h - what the files of src/listener share, and what the
 * unit tests and the fuzz target reach: the pure parsers (command lines,
 * base64 AUTH payloads, the listening address) and the server's parts that
 * a session uses (limits, TLS context, keyring, committer, accounts, rate).
 *
 * Not part of the module's interface: only src/listener,
 * tests/unit/test_listener.c and fuzz/fuzz_listener_cmd.c include it.
 */
#ifndef MAILOUT_LISTENER_INTERNAL_H
#define MAILOUT_LISTENER_INTERNAL_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/common.h"
#include "listener/listener.h"
#include "mime/mime.h"
#include "queue/queue.h"

/* ---- the command parser (parse.c; pure, fuzzed) ------------------------------ */

#define LISTENER_COMMAND_MAX 512 /* octets of a command line with its CRLF, RFC 5321 4.5.3.1.4 */
#define LISTENER_AUTH_LINE_MAX 12288 /* octets of an AUTH line without CRLF, RFC 4954 4 */
#define LISTENER_PATH_MAX 256        /* octets of a path with its <>, RFC 5321 4.5.3.1.3 */
#define LISTENER_LOCAL_MAX 64        /* RFC 5321 4.5.3.1.1 */
#define LISTENER_DOMAIN_MAX 255      /* RFC 5321 4.5.3.1.2 */

enum listener_verb {
    LISTENER_VERB_UNKNOWN = 0,
    LISTENER_VERB_HELO,
    LISTENER_VERB_EHLO,
    LISTENER_VERB_MAIL,
    LISTENER_VERB_RCPT,
    LISTENER_VERB_DATA,
    LISTENER_VERB_RSET,
    LISTENER_VERB_NOOP,
    LISTENER_VERB_QUIT,
    LISTENER_VERB_VRFY,
    LISTENER_VERB_EXPN,
    LISTENER_VERB_HELP,
    LISTENER_VERB_STARTTLS,
    LISTENER_VERB_AUTH,
    LISTENER_VERB_BDAT,
    LISTENER_VERB_COUNT
};

/* "HELO", ..., "unknown"; never NULL. */
const char *listener_verb_name(enum listener_verb verb);

enum listener_body {
    LISTENER_BODY_NONE = 0, /* no BODY= parameter */
    LISTENER_BODY_7BIT,
    LISTENER_BODY_8BITMIME,
};

/*
 * One command line, parsed. Strings are NUL-terminated copies.
 *   arg:     HELO/EHLO: the client's name; AUTH: the mechanism, upper case;
 *            VRFY/EXPN/HELP/NOOP: what followed the verb; else "".
 *   auth_initial: AUTH's initial response as sent (base64 or "="), has_initial.
 *   address: MAIL/RCPT: the mailbox without <> and source route ("" for <>).
 * On a syntax error, code/enhanced/text say what to answer (static strings).
 */
struct listener_cmd {
    enum listener_verb verb;
    char arg[LISTENER_COMMAND_MAX];
    char auth_initial[LISTENER_AUTH_LINE_MAX + 1];
    bool has_initial;
    char address[LISTENER_PATH_MAX];
    bool is_null_path;    /* MAIL FROM:<> */
    bool address_is_utf8; /* the mailbox holds non-ASCII (needs SMTPUTF8) */
    bool has_size;
    uint64_t size; /* SIZE=; UINT64_MAX when it overflowed */
    enum listener_body body;
    bool smtputf8; /* the SMTPUTF8 parameter */
    int code;      /* 0 when the line parsed */
    const char *enhanced;
    const char *text;
};

/*
 * Parses one command line (without its CRLF; may hold any bytes). Pure.
 * 0 ok; -1 when the line is not an acceptable command, with out->code,
 * enhanced and text set: 500 5.5.2 (too long, control characters), 500
 * 5.5.1 (unknown verb), 501 5.5.4 (arguments), 501 5.1.7 / 5.1.3 (sender /
 * recipient syntax), 555 5.5.4 (MAIL/RCPT parameters not recognised).
 * Unknown verbs still fill out->verb = LISTENER_VERB_UNKNOWN.
 */
int listener_cmd_parse(const char *line, size_t len, struct listener_cmd *out);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool listener_utf8_valid(const char *s, size_t len);

/*
 * Decodes strict base64 (RFC 4648 4, padded; "=" alone means empty, RFC
 * 4954 4) into out (at most out_size bytes; a NUL is added when room
 * remains). 0 ok with *out_len; -1 not base64 or too long.
 */
int listener_b64_decode(const char *in, size_t len, unsigned char *out, size_t out_size,
                        size_t *out_len);

/*
 * Splits a decoded PLAIN message "authzid NUL authcid NUL passwd" (RFC
 * 4616). The pointers point into msg (which must have a NUL after len).
 * 0 ok; -1 malformed (not exactly two NULs, empty authcid or passwd).
 */
int listener_plain_split(const unsigned char *msg, size_t len, const char **authcid,
                         const char **passwd);

/*
 * Parses "IP:PORT" or "[IPv6]:PORT" ("localhost" means 127.0.0.1), port 0
 * to 65535. *is_loopback: 127.0.0.0/8, ::1 or ::ffff:127.x. NULL or "":
 * LISTENER_DEFAULT_LISTEN. Errors: CONFIG with field "smtp".
 */
int listener_listen_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len,
                          bool *is_loopback, struct mo_error *err);

/* ---- the server's shared parts (server.c, commit.c) --------------------------- */

struct listener_accounts;
struct admin_keyring;

struct listener_server {
    /* fixed after start */
    char *home;
    char hostname[256];
    bool listen_loopback; /* the listening address is loopback */
    bool require_auth;    /* AUTH before MAIL */
    bool require_tls;     /* STARTTLS before AUTH and MAIL (not loopback) */
    bool is_sandbox;      /* listener_options.is_sandbox */
    char sandbox_password[64];
    size_t max_message_bytes;
    unsigned max_recipients;
    unsigned max_connections;
    unsigned rate_per_minute;
    int command_timeout_ms;
    int data_timeout_ms;
    SSL_CTX *tls; /* NULL: no STARTTLS */
    struct admin_keyring *keyring;
    struct queue_committer *committer;
    struct listener_accounts *accounts;

    int fd;
    unsigned port;
    int stop_pipe[2]; /* readable once listener_stop began */
    atomic_bool stopping;
    pthread_t accept_thread;
    bool accept_started;

    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t idle;  /* signalled when n_sessions drops */
    unsigned n_sessions;
    uint64_t next_session_id;
    struct listener_rate_entry *rate;
    size_t n_rate;
};

/* Runs one session on the accepted socket fd until it ends; closes fd. session.c */
void listener_session_run(struct listener_server *s, int fd, const struct sockaddr_storage *peer,
                          uint64_t id);

/* Takes one message from ip's budget of rate_per_minute: true allowed. server.c */
bool listener_rate_take(struct listener_server *s, const char *ip);

/* True when home's file system has less than need bytes (plus a margin) free. server.c */
bool listener_disk_short(const struct listener_server *s, uint64_t need);

/*
 * Waits until m is committed (0, *id_out) or refused (-1, err): the same as
 * queue_committer_add (commit.c), kept for session.c.
 */
int listener_commit(struct queue_committer *c, const struct queue_new_message *m, int64_t *id_out,
                    struct mo_error *err);

/* The accounts (commit.c), cached for a moment. */
int listener_accounts_open(const char *home, struct listener_accounts **out, struct mo_error *err);
void listener_accounts_close(struct listener_accounts *a);
/*
 * The account for the envelope sender: the one whose sender or email is
 * sender ("default" first), else "default". 1 found: name (account name)
 * and *from (its sender with its display name, cleared by the caller with
 * mime_address_clear; domain-less when the account has none: from->local
 * NULL) are set; 0 no account to send with; -1 error (STORAGE, INTERNAL).
 */
int listener_accounts_route(struct listener_accounts *a, const char *sender, char *name,
                            size_t name_size, struct mime_address *from, struct mo_error *err);

#endif
