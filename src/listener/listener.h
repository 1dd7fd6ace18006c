/*
 * listener.h - the local submission listener, `mailout serve --smtp
 * ADDR:PORT`: applications that know only SMTP (a shop configured with
 * "SMTP server 127.0.0.1 port 2525") hand their mail to mailout, which puts
 * each message into the durable queue before it answers 250.
 *
 * What it speaks: RFC 5321 (SMTP), 1870 (SIZE), 2920 (PIPELINING), 6152
 * (8BITMIME), 6531 (SMTPUTF8), 3207 (STARTTLS, with a configured
 * certificate), 4954 (AUTH PLAIN and LOGIN, the password being an API key
 * from `mailout apikey create`; the user name is not checked), 2034 and 3463
 * (enhanced status codes), 3848 (the "with" of the Received field).
 *
 * Promises:
 *  - 250 after the data means committed (queue.h's protocol): the message
 *    and its envelope are in one committed transaction. A queue that cannot
 *    take it gets 452 4.3.1 (full disk) or 451 4.3.0, never 250.
 *  - No open relay, by construction: on a listening address that is not
 *    loopback, every transaction needs AUTH, and AUTH needs STARTTLS; no
 *    option turns that off, and listener_start refuses such an address
 *    without a certificate. On loopback, AUTH is optional unless
 *    require_auth, and allowed without TLS (the bytes never leave the host).
 *  - Recipients are checked for syntax only; each accepted message goes to
 *    the account whose sender or email is the envelope sender, else to the
 *    account "default" (as sendmail mode and the spool choose).
 *
 * Leaves out: CHUNKING/BDAT, DSN, implicit TLS (port 465 style), VRFY and
 * EXPN (252 and 502), SASL mechanisms other than PLAIN and LOGIN, client
 * certificates, the PROXY protocol.
 */
#ifndef MAILOUT_LISTENER_H
#define MAILOUT_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

#define LISTENER_DEFAULT_LISTEN "127.0.0.1:2525"
#define LISTENER_DEFAULT_MAX_BYTES (25u * 1024 * 1024)
#define LISTENER_DEFAULT_MAX_RECIPIENTS 1000
#define LISTENER_DEFAULT_MAX_CONNECTIONS 100

struct listener_options {
    const char *home;         /* the data folder: its queue, accounts and API keys */
    const char *listen;       /* "127.0.0.1:2525", "[::1]:2525", "0.0.0.0:587"; NULL or "":
                                 LISTENER_DEFAULT_LISTEN; port 0: any free port (tests) */
    const char *cert_file;    /* PEM certificate (chain) for STARTTLS; NULL: no STARTTLS */
    const char *key_file;     /* PEM private key of cert_file */
    bool require_auth;        /* AUTH before MAIL on loopback too (always so elsewhere) */
    size_t max_message_bytes; /* SIZE; larger messages get 552; 0: the default */
    unsigned max_recipients;  /* RCPTs per message; more get 452 4.5.3; 0: the default */
    unsigned max_connections; /* open sessions at once; more get 421; 0: the default */
    unsigned rate_per_minute; /* messages per minute per client address; 0: no limit */
    const char *hostname;     /* our name in the greeting and Received; NULL: the host's */
    int command_timeout_ms;   /* waiting for a command; 0: 5 minutes (RFC 5321 4.5.3.2.7) */
    int data_timeout_ms;      /* waiting for more data in DATA; 0: 10 minutes */
    bool is_sandbox;          /* the local test inbox (sandbox.h): STARTTLS with the sandbox's
                                 certificate and AUTH with its password required; letters
                                 are kept in home/sandbox/inbox, not queued; the fault
                                 switch is drawn once per session. cert_file and key_file
                                 are ignored (the sandbox's own are used). */
};

struct listener_server;

/*
 * Starts listening and serving in the background: an accept thread, one
 * thread per session (at most max_connections), a committer thread with its
 * own queue connection, the API keyring and the accounts (read from home).
 * Errors: CONFIG with field "smtp" (a bad address, a port in use or not
 * permitted, a non-loopback address without a certificate), "smtp-cert" or
 * "smtp-key" (unreadable, not PEM, not a pair), "home"; STORAGE; INTERNAL.
 */
int listener_start(const struct listener_options *opt, struct listener_server **out,
                   struct mo_error *err);

/*
 * Stops accepting, tells idle sessions 421 4.3.2 and closes them, lets a
 * message being committed finish (its client gets its 250 or 4xx), then
 * frees everything. NULL is a no-op.
 */
void listener_stop(struct listener_server *s);

/* The port listened on (the one the system chose when the address said port 0). */
unsigned listener_port(const struct listener_server *s);

#endif
