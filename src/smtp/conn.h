/*
 * conn.h - private to src/smtp: one TCP connection, optionally TLS, with a
 * line reader and a buffered writer, every wait bounded by a timeout.
 *
 * Why its own file: the session's state machine should read as SMTP, not as
 * poll() and OpenSSL error handling. Leaves out: anything SMTP-specific.
 */
#ifndef MAILOUT_SMTP_CONN_H
#define MAILOUT_SMTP_CONN_H

#include "common/common.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#define SMTP_CONN_RBUF 16384
#define SMTP_CONN_WBUF_FLUSH 16384 /* flush the write buffer past this size */

struct smtp_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char rbuf[SMTP_CONN_RBUF];
    size_t rpos; /* first unread byte */
    size_t rlen; /* bytes held */
    struct mo_buf wbuf;
    char peer[INET6_ADDRSTRLEN + 8];          /* "ip" of the server, for messages */
    char local_literal[INET6_ADDRSTRLEN + 8]; /* "[ip]" / "[IPv6:ip]" of our end */
    bool is_loopback;
    int64_t dns_ms; /* how long the name lookup took */
    X509 *peer_cert; /* the server's certificate, kept even when verification fails */
    char tls_version[16];
    char tls_cipher[64];
};

void smtp_conn_init(struct smtp_conn *c);
/* Resolves host (stage "dns"), connects to each address in turn (stage
 * "connect") within timeout_ms each. Errors: DNS (field "host"), CONNECT. */
int smtp_conn_open(struct smtp_conn *c, const char *host, unsigned port, int timeout_ms,
                   struct mo_error *err);
/* TLS handshake over the open socket, verifying the chain against ca_file
 * (or the system store) and the name against host. Errors: TLS, PROTOCOL. */
int smtp_conn_start_tls(struct smtp_conn *c, const char *host, unsigned port, const char *ca_file,
                        int timeout_ms, struct mo_error *err);
/* Queues bytes; flushes when the buffer passes SMTP_CONN_WBUF_FLUSH. */
int smtp_conn_write(struct smtp_conn *c, const void *data, size_t len, int timeout_ms,
                    struct mo_error *err);
/* Sends everything queued. Errors: PROTOCOL (dropped, timed out). */
int smtp_conn_flush(struct smtp_conn *c, int timeout_ms, struct mo_error *err);
/* Reads one line; *line points into the read buffer (valid until the next
 * read), without CRLF. Errors: PROTOCOL (closed, timeout, line too long). */
int smtp_conn_read_line(struct smtp_conn *c, const char **line, size_t *len, int timeout_ms,
                        struct mo_error *err);
/* True when bytes are already buffered (the server sent ahead). */
bool smtp_conn_has_pending(const struct smtp_conn *c);
void smtp_conn_close(struct smtp_conn *c);

#endif
