/*
 * conn.c - the transport under the SMTP session: DNS (A and AAAA), a
 * non-blocking connect with a timeout, TLS 1.2+ with OpenSSL 3 (SNI, chain and
 * host name verified), a line reader and a buffered writer.
 *
 * Every wait goes through poll() with the caller's timeout, so a stalled
 * server is an error, never a hang. Writes are buffered and the socket has
 * TCP_NODELAY: a pipelined group leaves in one segment instead of waiting out
 * Nagle's algorithm. Leaves out: DANE, client certificates, proxies.
 * RFCs: 5321 (line limits), 8314 and 3207 (TLS), 6125 (name checks, via
 * OpenSSL's X509_check_host).
 */
#include "smtp/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <idn2.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtp/smtp.h"

#define CONN_WBUF_MAX (64u * 1024 * 1024)

void
smtp_conn_init(struct smtp_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    mo_buf_init(&c->wbuf, CONN_WBUF_MAX);
}

static void
conn_error(struct mo_error *err, enum mo_category cat, const char *stage, const char *field,
           const char *text)
{
    mo_error_set(err, cat, field, "%s", text);
    if (err != NULL) {
        err->stage = stage;
        err->temporary = (cat == MO_ERR_DNS || cat == MO_ERR_CONNECT || cat == MO_ERR_PROTOCOL);
    }
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timeout, -1 error. */
static int
conn_wait(int fd, short events, int64_t deadline_ms)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int64_t left = deadline_ms - mo_now_ms();
        int rc;

        if (left < 0)
            left = 0;
        rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static bool
addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static void
addr_to_text(const struct sockaddr *sa, char *out, size_t out_size, bool literal)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
    if (!literal)
        snprintf(out, out_size, "%s", ip);
    else if (sa->sa_family == AF_INET6)
        snprintf(out, out_size, "[IPv6:%s]", ip);
    else
        snprintf(out, out_size, "[%s]", ip);
}

/* One address: 0 connected, -1 failed with errno_out set (ETIMEDOUT for a timeout). */
static int
conn_try_address(struct smtp_conn *c, const struct addrinfo *ai, int timeout_ms, int *errno_out)
{
    int fd;
    int one = 1;
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *errno_out = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int w;

        if (errno != EINPROGRESS) {
            *errno_out = errno;
            close(fd);
            return -1;
        }
        w = conn_wait(fd, POLLOUT, mo_now_ms() + timeout_ms);
        if (w <= 0) {
            *errno_out = w == 0 ? ETIMEDOUT : errno;
            close(fd);
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
            *errno_out = so_error != 0 ? so_error : errno;
            close(fd);
            return -1;
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->is_loopback = addr_is_loopback(ai->ai_addr);
    addr_to_text(ai->ai_addr, c->peer, sizeof(c->peer), false);
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0)
        addr_to_text((struct sockaddr *)&local, c->local_literal, sizeof(c->local_literal), true);
    return 0;
}

/* The host in ASCII (IDNA) form; IP literals and ASCII names pass unchanged. */
static int
conn_host_ascii(const char *host, char **out, struct mo_error *err)
{
    int rc;

    rc = idn2_to_ascii_8z(host, out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK)
        rc = idn2_to_ascii_8z(host, out, IDN2_TRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
        mo_error_set(err, MO_ERR_CONFIG, "host",
                     "the server name \"%s\" is not a valid host name (%s)", host,
                     idn2_strerror(rc));
        if (err != NULL)
            err->stage = "dns";
        return -1;
    }
    return 0;
}

int
smtp_conn_open(struct smtp_conn *c, const char *host, unsigned port, int timeout_ms,
               struct mo_error *err)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    const struct addrinfo *ai;
    char service[16];
    char *ascii = NULL;
    int last_errno = 0;
    int rc = -1;
    int gai;

    /* A dropped connection must be an error we report, not a SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (conn_host_ascii(host, &ascii, err) != 0)
        goto out;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%u", port);
    c->dns_ms = mo_now_ms();
    gai = getaddrinfo(ascii, service, &hints, &res);
    c->dns_ms = mo_now_ms() - c->dns_ms;
    if (gai != 0) {
        bool temporary = (gai == EAI_AGAIN);
        mo_error_set(err, MO_ERR_DNS, "host",
                     "the server name \"%s\" was not found in DNS (%s); check the spelling of "
                     "the host",
                     host, gai_strerror(gai));
        if (err != NULL) {
            err->stage = "dns";
            err->temporary = temporary;
        }
        goto out;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (conn_try_address(c, ai, timeout_ms, &last_errno) == 0) {
            rc = 0;
            goto out;
        }
    }
    if (last_errno == ECONNREFUSED) {
        mo_error_set(err, MO_ERR_CONNECT, "port",
                     "%s refused the connection on port %u: nothing accepts mail there; check "
                     "the port (587 for STARTTLS, 465 for SSL/TLS) and the host",
                     host, port);
    } else if (last_errno == ETIMEDOUT) {
        mo_error_set(err, MO_ERR_CONNECT, "port",
                     "no answer from %s on port %u within %d s: a firewall may block this port; "
                     "try 587 (STARTTLS) or 465 (SSL/TLS), or ask your hosting provider to allow "
                     "outgoing connections",
                     host, port, timeout_ms / 1000);
    } else {
        mo_error_set(err, MO_ERR_CONNECT, "host", "could not connect to %s port %u: %s", host, port,
                     strerror(last_errno));
    }
    if (err != NULL)
        err->stage = "connect";
out:
    if (res != NULL)
        freeaddrinfo(res);
    free(ascii);
    return rc;
}

/* Drives one SSL call to completion within the deadline. */
static int
conn_ssl_wait(struct smtp_conn *c, int ssl_rc, int64_t deadline_ms)
{
    int e = SSL_get_error(c->ssl, ssl_rc);
    int w;

    if (e == SSL_ERROR_WANT_READ)
        w = conn_wait(c->fd, POLLIN, deadline_ms);
    else if (e == SSL_ERROR_WANT_WRITE)
        w = conn_wait(c->fd, POLLOUT, deadline_ms);
    else
        return -1;
    return w > 0 ? 1 : (w == 0 ? 0 : -1);
}

/*
 * Keeps the server's own certificate (depth 0) while OpenSSL verifies the
 * chain: after a failed verification OpenSSL 3 no longer hands it out, and
 * the names in it are what the owner needs to see.
 */
static int
conn_verify_cb(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct smtp_conn *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(store);

    if (c != NULL && cert != NULL && X509_STORE_CTX_get_error_depth(store) == 0 &&
        c->peer_cert == NULL && X509_up_ref(cert) == 1)
        c->peer_cert = cert;
    return ok;
}

/* Names in the peer certificate, for "the certificate is issued for ...". */
static void
conn_cert_names(const struct smtp_conn *c, char *out, size_t out_size)
{
    GENERAL_NAMES *names = NULL;
    size_t used = 0;

    out[0] = '\0';
    if (c->peer_cert == NULL)
        return;
    names = X509_get_ext_d2i(c->peer_cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN] = "";
        int n = 0;

        if (gn->type == GEN_DNS) {
            n = snprintf(out + used, out_size - used, "%s%.*s", used ? ", " : "",
                         ASN1_STRING_length(gn->d.dNSName),
                         (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            int len = ASN1_STRING_length(gn->d.iPAddress);
            const unsigned char *b = ASN1_STRING_get0_data(gn->d.iPAddress);
            if (len == 4)
                inet_ntop(AF_INET, b, ip, sizeof(ip));
            else if (len == 16)
                inet_ntop(AF_INET6, b, ip, sizeof(ip));
            if (ip[0] != '\0')
                n = snprintf(out + used, out_size - used, "%s%s", used ? ", " : "", ip);
        }
        if (n < 0 || (size_t)n >= out_size - used)
            break;
        used += (size_t)n;
    }
    if (used == 0)
        X509_NAME_get_text_by_NID(X509_get_subject_name(c->peer_cert), NID_commonName, out,
                                  (int)out_size);
    GENERAL_NAMES_free(names);
}

static void
conn_tls_failed(struct smtp_conn *c, const char *host, unsigned port, struct mo_error *err)
{
    long verify = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    char detail[256] = "";
    char names[256];

    if (e != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    if (e != 0 && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            conn_cert_names(c, names, sizeof(names));
            mo_error_set(err, MO_ERR_TLS, "host",
                         "the server's certificate is issued for %s, not for \"%s\": enter the "
                         "server name the certificate names as host",
                         names[0] ? names : "another name", host);
        } else if (verify == X509_V_ERR_CERT_HAS_EXPIRED) {
            mo_error_set(err, MO_ERR_TLS, "host",
                         "the server's certificate has expired; the mail server's owner must "
                         "renew it");
        } else {
            mo_error_set(err, MO_ERR_TLS, "security",
                         "the server's certificate is not trusted (%s): it is self-signed or "
                         "signed by a private authority; give that authority's certificate as "
                         "the CA file, or check that this machine's root certificates are "
                         "up to date",
                         X509_verify_cert_error_string(verify));
        }
    } else if (e != 0 && (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ||
                          ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG)) {
        mo_error_set(err, MO_ERR_TLS, "security",
                     "port %u does not start with TLS (%s): it expects STARTTLS; choose "
                     "security STARTTLS for this port, or use port 465 with SSL/TLS",
                     port, detail);
    } else if (e != 0) {
        mo_error_set(err, MO_ERR_TLS, "security", "the TLS handshake with %s failed: %s", host,
                     detail);
    } else {
        mo_error_set(err, MO_ERR_TLS, "security",
                     "the server closed the connection during the TLS handshake");
    }
    if (err != NULL) {
        err->stage = "tls";
        err->temporary = false;
    }
    ERR_clear_error();
}

int
smtp_conn_start_tls(struct smtp_conn *c, const char *host, unsigned port, const char *ca_file,
                    int timeout_ms, struct mo_error *err)
{
    int64_t deadline = mo_now_ms() + timeout_ms;
    struct in6_addr ip6;
    struct in_addr ip4;
    char *ascii = NULL;
    bool is_ip;
    int rc = -1;

    ERR_clear_error();
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        conn_error(err, MO_ERR_INTERNAL, "tls", NULL, "cannot create a TLS context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, conn_verify_cb);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
            mo_error_set(err, MO_ERR_CONFIG, "ca_file",
                         "cannot read the CA file \"%s\" (missing, unreadable or not PEM)",
                         ca_file);
            if (err != NULL)
                err->stage = "tls";
            goto out;
        }
    } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        conn_error(err, MO_ERR_TLS, "tls", NULL, "cannot load the system's root certificates");
        goto out;
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_set_app_data(c->ssl, c) != 1) {
        conn_error(err, MO_ERR_INTERNAL, "tls", NULL, "cannot start TLS");
        goto out;
    }
    if (conn_host_ascii(host, &ascii, err) != 0)
        goto out;
    is_ip = inet_pton(AF_INET, ascii, &ip4) == 1 || inet_pton(AF_INET6, ascii, &ip6) == 1;
    if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), ascii);
    } else {
        SSL_set_tlsext_host_name(c->ssl, ascii);
        SSL_set1_host(c->ssl, ascii);
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        int w;

        if (r == 1)
            break;
        w = conn_ssl_wait(c, r, deadline);
        if (w == 1)
            continue;
        if (w == 0) {
            mo_error_set(err, MO_ERR_TLS, "security",
                         "the TLS handshake with %s timed out after %d s", host, timeout_ms / 1000);
            if (err != NULL) {
                err->stage = "tls";
                err->temporary = true;
            }
            goto out;
        }
        conn_tls_failed(c, host, port, err);
        goto out;
    }
    snprintf(c->tls_version, sizeof(c->tls_version), "%s", SSL_get_version(c->ssl));
    snprintf(c->tls_cipher, sizeof(c->tls_cipher), "%s", SSL_get_cipher_name(c->ssl));
    rc = 0;
out:
    free(ascii);
    return rc;
}

/* Sends len bytes now. */
static int
conn_send_all(struct smtp_conn *c, const char *p, size_t len, int64_t deadline,
              struct mo_error *err)
{
    while (len > 0) {
        ssize_t n;
        int w;

        if (c->ssl != NULL) {
            size_t written = 0;
            int r = SSL_write_ex(c->ssl, p, len, &written);

            if (r == 1) {
                p += written;
                len -= written;
                continue;
            }
            w = conn_ssl_wait(c, r, deadline);
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                w = conn_wait(c->fd, POLLOUT, deadline);
            else
                w = -1;
        }
        if (w == 1)
            continue;
        if (w == 0)
            conn_error(err, MO_ERR_PROTOCOL, NULL, NULL,
                       "the server stopped accepting data (timeout while sending)");
        else
            conn_error(err, MO_ERR_PROTOCOL, NULL, NULL,
                       "the server closed the connection while we were sending");
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int
smtp_conn_flush(struct smtp_conn *c, int timeout_ms, struct mo_error *err)
{
    int rc;

    if (c->wbuf.len == 0)
        return 0;
    rc = conn_send_all(c, c->wbuf.data, c->wbuf.len, mo_now_ms() + timeout_ms, err);
    mo_buf_reset(&c->wbuf);
    return rc;
}

int
smtp_conn_write(struct smtp_conn *c, const void *data, size_t len, int timeout_ms,
                struct mo_error *err)
{
    if (c->wbuf.len + len < SMTP_CONN_WBUF_FLUSH)
        return mo_buf_append(&c->wbuf, data, len, err);
    /* Large writes go straight out, without a copy through the buffer. */
    if (smtp_conn_flush(c, timeout_ms, err) != 0)
        return -1;
    return conn_send_all(c, data, len, mo_now_ms() + timeout_ms, err);
}

/* Reads more bytes into rbuf: 1 got some, 0 closed, -1 error/timeout (err set). */
static int
conn_fill(struct smtp_conn *c, int64_t deadline, struct mo_error *err)
{
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    for (;;) {
        size_t room = sizeof(c->rbuf) - c->rlen;
        int w;

        if (c->ssl != NULL) {
            size_t got = 0;
            int r = SSL_read_ex(c->ssl, c->rbuf + c->rlen, room, &got);

            if (r == 1) {
                c->rlen += got;
                return 1;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) ||
                (e == SSL_ERROR_SSL &&
                 ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
                ERR_clear_error();
                return 0;
            }
            w = conn_ssl_wait(c, r, deadline);
        } else {
            ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);

            if (n > 0) {
                c->rlen += (size_t)n;
                return 1;
            }
            if (n == 0)
                return 0;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                w = conn_wait(c->fd, POLLIN, deadline);
            else if (errno == ECONNRESET)
                return 0;
            else
                w = -1;
        }
        if (w == 1)
            continue;
        ERR_clear_error();
        if (w == 0)
            conn_error(err, MO_ERR_PROTOCOL, NULL, NULL, "the server did not answer in time");
        else
            conn_error(err, MO_ERR_PROTOCOL, NULL, NULL, "reading from the server failed");
        return -1;
    }
}

int
smtp_conn_read_line(struct smtp_conn *c, const char **line, size_t *len, int timeout_ms,
                    struct mo_error *err)
{
    int64_t deadline = mo_now_ms() + timeout_ms;
    size_t scanned = 0;

    for (;;) {
        char *start = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        char *nl = memchr(start + scanned, '\n', avail - scanned);
        int r;

        if (nl != NULL) {
            size_t n = (size_t)(nl - start);

            c->rpos += n + 1;
            if (n > 0 && start[n - 1] == '\r')
                n--;
            if (n + 2 > SMTP_REPLY_LINE_MAX) {
                conn_error(err, MO_ERR_PROTOCOL, NULL, NULL,
                           "the server sent a reply line longer than SMTP allows (512 bytes)");
                return -1;
            }
            *line = start;
            *len = n;
            return 0;
        }
        scanned = avail;
        if (avail + 2 > SMTP_REPLY_LINE_MAX + 1) {
            conn_error(err, MO_ERR_PROTOCOL, NULL, NULL,
                       "the server sent a reply line longer than SMTP allows (512 bytes)");
            return -1;
        }
        r = conn_fill(c, deadline, err);
        if (r < 0)
            return -1;
        if (r == 0) {
            conn_error(err, MO_ERR_PROTOCOL, NULL, NULL, "the server closed the connection");
            return -1;
        }
    }
}

bool
smtp_conn_has_pending(const struct smtp_conn *c)
{
    return c->rlen > c->rpos || (c->ssl != NULL && SSL_pending(c->ssl) > 0);
}

void
smtp_conn_close(struct smtp_conn *c)
{
    X509_free(c->peer_cert);
    c->peer_cert = NULL;
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->ctx != NULL) {
        SSL_CTX_free(c->ctx);
        c->ctx = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    mo_buf_free(&c->wbuf);
    c->rpos = c->rlen = 0;
}
