/*
 * session.c - one SMTP session of the submission listener: the server's
 * state machine from the greeting to QUIT, STARTTLS, AUTH against the API
 * keys, the envelope checks, DATA with dot-unstuffing and the size limit,
 * and the hand-over to the committer before the 250.
 *
 * Shape (STYLE.md): the states form enum session_state with a name table;
 * session_enter() does what a state needs (greets, answers DATA with 354
 * and reads the message, commits it, runs the TLS handshake or the SASL
 * exchange) and session_on_command() classifies each command line and picks
 * the next state. Every transition is logged by name; every line received
 * and sent passes through session_note_client() and session_send(), which
 * write the transcript to the debug log with AUTH payloads redacted.
 *
 * Pipelining (RFC 2920): commands are read and answered strictly in order;
 * replies collect in the write buffer and go out when the input buffer is
 * empty (before the session would wait for more), so a pipelined group gets
 * its replies in one segment. Bytes that follow STARTTLS in the same packet
 * are thrown away (RFC 3207 5; the "STARTTLS command injection" attacks).
 *
 * Durability: 250 after the data is only sent once listener_commit() says the
 * message is committed; a full disk gets 452 4.3.1, other storage trouble 451
 * 4.3.0. The message is stored as received, with a Received field on top;
 * mime_message_prepare() adds Date and Message-ID when missing, adds the
 * account's From when there is none, turns bare LFs into CRLF, and removes
 * Bcc (a submission agent must not pass it on: the worker sends the message
 * as it is).
 *
 * Data: end of data is CRLF "." CRLF only; a leading dot of a line (after
 * CRLF) is removed. Lines may be of any length (liberal), the message is
 * bounded by max_message_bytes: a larger one is read to its end, thrown away
 * and answered 552 5.3.4.
 * Timeouts (RFC 5321 4.5.3.2.7): command_timeout_ms waiting for a command,
 * data_timeout_ms waiting for more data; then 421 4.4.2 and close.
 * RFCs: 5321, 1870, 2920, 6152, 6531, 3207, 4954, 4616, 2034/3463, 3848.
 * Leaves out: BDAT, DSN, SASL mechanisms other than PLAIN and LOGIN, reverse
 * DNS of the client (the Received field gives its address).
 */
#include "listener/listener_internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "sandbox/sandbox.h"

#define SESSION_RBUF 65536
#define SESSION_LINE_MAX (LISTENER_AUTH_LINE_MAX + 2)
#define SESSION_WBUF_MAX (1u * 1024 * 1024)
#define SESSION_ERRORS_MAX 20 /* bad commands before 421 */
#define SESSION_TLS_TIMEOUT_MS 60000
#define SESSION_KEEP_BUF_BYTES (1u * 1024 * 1024) /* message buffer kept between messages */
#define SESSION_RECEIVED_MAX 2048

enum session_state {
    SESSION_GREETING, /* 220 sent on entering */
    SESSION_HELLO,    /* waiting for EHLO/HELO (at first, and after STARTTLS) */
    SESSION_READY,    /* greeted, no transaction */
    SESSION_STARTTLS, /* 220 sent, TLS handshake */
    SESSION_AUTH,     /* SASL exchange (334 challenges) */
    SESSION_MAIL,     /* MAIL accepted, no recipient yet */
    SESSION_RCPT,     /* at least one recipient accepted */
    SESSION_DATA,     /* 354 sent, reading the message */
    SESSION_QUEUE,    /* committing the message, then 250 or 4xx */
    SESSION_QUIT,     /* 221 or 421 sent, closing */
    SESSION_CLOSED,
    SESSION_STATE_COUNT
};

static const char *const state_names[SESSION_STATE_COUNT] = {
    [SESSION_GREETING] = "greeting", [SESSION_HELLO] = "hello",   [SESSION_READY] = "ready",
    [SESSION_STARTTLS] = "starttls", [SESSION_AUTH] = "auth",     [SESSION_MAIL] = "mail",
    [SESSION_RCPT] = "rcpt",         [SESSION_DATA] = "data",     [SESSION_QUEUE] = "queue",
    [SESSION_QUIT] = "quit",         [SESSION_CLOSED] = "closed",
};

enum io_result { IO_OK, IO_EOF, IO_ERROR, IO_TIMEOUT, IO_STOP, IO_TOO_LONG };

/* dot-unstuffing: where in a line the DATA reader is */
enum data_pos { DATA_LINE_START, DATA_MID, DATA_CR, DATA_DOT, DATA_DOT_CR };

struct session {
    struct listener_server *srv;
    uint64_t id;
    int fd;
    SSL *ssl;
    char peer_ip[INET6_ADDRSTRLEN];
    unsigned peer_port;
    enum session_state state;

    char rbuf[SESSION_RBUF];
    size_t rpos;   /* first unread byte */
    size_t rlen;   /* bytes held */
    bool skipping; /* throwing away the rest of an overlong line */
    struct mo_buf wbuf;

    /* what the client told us (forgotten after STARTTLS) */
    char helo[256];
    bool esmtp;
    bool is_tls;
    char tls_version[16];
    char tls_cipher[64];
    bool is_authed;
    int64_t key_id;
    unsigned n_errors;
    const struct listener_cmd *cmd; /* the command being handled */

    /* the transaction */
    char from[LISTENER_PATH_MAX];
    bool smtputf8;
    bool utf8_envelope;
    char **rcpts;
    size_t n_rcpts;
    size_t cap_rcpts;
    char account[128];
    struct mime_address account_from;
    struct mo_buf data;
    bool data_too_big;
    enum data_pos data_pos;
    int64_t n_queued;
    enum sandbox_fault_kind fault; /* sandbox mode: drawn at the greeting */
};

static void session_enter(struct session *s, enum session_state next);

/* ---- transcript and replies ------------------------------------------------------- */

/* The client's line for the debug log: control bytes shown as '?', AUTH data redacted. */
static void
session_note_client(struct session *s, const char *line, size_t len, bool secret)
{
    char shown[LISTENER_COMMAND_MAX + 16];
    size_t n = len < LISTENER_COMMAND_MAX ? len : LISTENER_COMMAND_MAX;

    if (secret) {
        mo_log(MO_LOG_DEBUG, "smtp-in #%llu C: <AUTH data, %zu bytes>", (unsigned long long)s->id,
               len);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];

        shown[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    shown[n] = '\0';
    /* "AUTH PLAIN <initial response>": keep the verb and mechanism only */
    if (n >= 5 && strncasecmp(shown, "AUTH ", 5) == 0) {
        char *sp = strchr(shown + 5, ' ');

        if (sp != NULL)
            snprintf(sp, sizeof(shown) - (size_t)(sp - shown), " ***");
    }
    mo_log(MO_LOG_DEBUG, "smtp-in #%llu C: %s%s", (unsigned long long)s->id, shown,
           n < len ? "..." : "");
}

/* Queues one reply line (CRLF added). Every line we send passes here. */
static void
session_send(struct session *s, const char *line, size_t len)
{
    mo_log(MO_LOG_DEBUG, "smtp-in #%llu S: %.*s", (unsigned long long)s->id, (int)len, line);
    /* a reply that does not fit the buffer is a bug in a reply text, not the client's fault */
    if (mo_buf_append(&s->wbuf, line, len, NULL) != 0 ||
        mo_buf_append(&s->wbuf, "\r\n", 2, NULL) != 0)
        mo_log(MO_LOG_ERROR, "smtp-in #%llu: a reply did not fit", (unsigned long long)s->id);
}

static void session_reply(struct session *s, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "CODE ENHANCED text": one reply line. */
static void
session_reply(struct session *s, int code, const char *enhanced, const char *fmt, ...)
{
    char line[LISTENER_COMMAND_MAX];
    va_list ap;
    int n;
    int m;

    /* greetings, 354 and HELO's 250 carry no enhanced code (RFC 2034 3) */
    n = enhanced[0] != '\0' ? snprintf(line, sizeof(line), "%d %s ", code, enhanced)
                            : snprintf(line, sizeof(line), "%d ", code);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    if ((size_t)m >= sizeof(line) - (size_t)n)
        m = (int)(sizeof(line) - (size_t)n - 1); /* cut, never overflow */
    session_send(s, line, (size_t)(n + m));
    if (code >= 500)
        s->n_errors++;
}

/* ---- I/O ---------------------------------------------------------------------------- */

/* Waits for events on the socket or the stop pipe: 1 ready, 0 timeout, -1 error, -2 stop. */
static int
session_wait(struct session *s, short events, int timeout_ms, bool watch_stop)
{
    int64_t deadline = mo_now_ms() + timeout_ms;

    for (;;) {
        struct pollfd p[2] = {{.fd = s->fd, .events = events},
                              {.fd = s->srv->stop_pipe[0], .events = POLLIN}};
        int64_t left = deadline - mo_now_ms();
        int rc;

        if (left < 0)
            left = 0;
        rc = poll(p, watch_stop ? 2 : 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return 0;
        if (watch_stop && p[1].revents != 0)
            return -2;
        return 1;
    }
}

/* Waits for one SSL call that wants I/O. */
static int
session_ssl_wait(struct session *s, int ssl_rc, int timeout_ms, bool watch_stop)
{
    int e = SSL_get_error(s->ssl, ssl_rc);

    if (e == SSL_ERROR_WANT_READ)
        return session_wait(s, POLLIN, timeout_ms, watch_stop);
    if (e == SSL_ERROR_WANT_WRITE)
        return session_wait(s, POLLOUT, timeout_ms, watch_stop);
    return -1;
}

/* Sends what the write buffer holds. */
static enum io_result
session_flush(struct session *s)
{
    const char *p = s->wbuf.data;
    size_t len = s->wbuf.len;
    enum io_result res = IO_OK;

    while (len > 0) {
        int w;

        if (s->ssl != NULL) {
            size_t written = 0;
            int r = SSL_write_ex(s->ssl, p, len, &written);

            if (r == 1) {
                p += written;
                len -= written;
                continue;
            }
            w = session_ssl_wait(s, r, s->srv->command_timeout_ms, false);
        } else {
            ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);

            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            w = (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    ? session_wait(s, POLLOUT, s->srv->command_timeout_ms, false)
                    : -1;
        }
        if (w == 1)
            continue;
        res = w == 0 ? IO_TIMEOUT : IO_ERROR;
        break;
    }
    ERR_clear_error();
    mo_buf_reset(&s->wbuf);
    return res;
}

/*
 * Reads more bytes into rbuf. When nothing is waiting, the replies gathered so far go out
 * first (pipelining: answer when the input buffer is empty), then it waits up to
 * timeout_ms.
 */
static enum io_result
session_fill(struct session *s, int timeout_ms)
{
    bool flushed = false;

    if (s->rpos > 0) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
        s->rlen -= s->rpos;
        s->rpos = 0;
    }
    for (;;) {
        size_t room = sizeof(s->rbuf) - s->rlen;
        int w;

        if (s->ssl != NULL) {
            size_t got = 0;
            int r = SSL_read_ex(s->ssl, s->rbuf + s->rlen, room, &got);
            int e;

            if (r == 1) {
                s->rlen += got;
                return IO_OK;
            }
            e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                ERR_clear_error();
                return IO_EOF;
            }
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                ERR_clear_error();
                return IO_ERROR;
            }
            if (!flushed && s->wbuf.len > 0) {
                flushed = true;
                if (session_flush(s) != IO_OK)
                    return IO_ERROR;
                continue;
            }
            w = session_ssl_wait(s, r, timeout_ms, true);
        } else {
            ssize_t n = recv(s->fd, s->rbuf + s->rlen, room, 0);

            if (n > 0) {
                s->rlen += (size_t)n;
                return IO_OK;
            }
            if (n == 0)
                return IO_EOF;
            if (errno == EINTR)
                continue;
            if (errno == ECONNRESET)
                return IO_EOF;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return IO_ERROR;
            if (!flushed && s->wbuf.len > 0) {
                flushed = true;
                if (session_flush(s) != IO_OK)
                    return IO_ERROR;
                continue;
            }
            w = session_wait(s, POLLIN, timeout_ms, true);
        }
        if (w == 1) {
            flushed = true; /* nothing new to send while we waited */
            continue;
        }
        return w == 0 ? IO_TIMEOUT : (w == -2 ? IO_STOP : IO_ERROR);
    }
}

/*
 * One line without its line end (LF or CRLF); *line points into rbuf until the next read.
 * A line longer than SESSION_LINE_MAX is read to its end and reported as IO_TOO_LONG.
 */
static enum io_result
session_read_line(struct session *s, const char **line, size_t *len, int timeout_ms)
{
    size_t scanned = 0;

    for (;;) {
        char *start = s->rbuf + s->rpos;
        size_t avail = s->rlen - s->rpos;
        char *nl = memchr(start + scanned, '\n', avail - scanned);
        enum io_result r;

        if (nl != NULL) {
            size_t n = (size_t)(nl - start);

            s->rpos += n + 1;
            if (s->skipping) {
                s->skipping = false;
                return IO_TOO_LONG;
            }
            if (n > 0 && start[n - 1] == '\r')
                n--;
            *line = start;
            *len = n;
            return IO_OK;
        }
        if (s->skipping || avail >= SESSION_LINE_MAX) {
            s->skipping = true;
            s->rpos = s->rlen; /* throw the part away, keep looking for its end */
            scanned = 0;
        } else {
            scanned = avail;
        }
        r = session_fill(s, timeout_ms);
        if (r != IO_OK)
            return r;
    }
}

/* ---- the transaction ------------------------------------------------------------------ */

static void
txn_reset(struct session *s)
{
    for (size_t i = 0; i < s->n_rcpts; i++)
        free(s->rcpts[i]);
    s->n_rcpts = 0;
    s->from[0] = '\0';
    s->smtputf8 = false;
    s->utf8_envelope = false;
    s->account[0] = '\0';
    mime_address_clear(&s->account_from);
    s->data_too_big = false;
    if (s->data.cap > SESSION_KEEP_BUF_BYTES)
        mo_buf_free(&s->data); /* a big message's buffer is not kept for the next one */
    else
        mo_buf_reset(&s->data);
}

static int
txn_add_rcpt(struct session *s, const char *addr)
{
    char *copy;

    if (s->n_rcpts == s->cap_rcpts) {
        size_t cap = s->cap_rcpts ? s->cap_rcpts * 2 : 8;
        char **grown = realloc(s->rcpts, cap * sizeof(*grown));

        if (grown == NULL)
            return -1;
        s->rcpts = grown;
        s->cap_rcpts = cap;
    }
    copy = strdup(addr);
    if (copy == NULL)
        return -1;
    s->rcpts[s->n_rcpts++] = copy;
    return 0;
}

/* ---- the message ------------------------------------------------------------------------ */

/* RFC 5322 3.3 date-time in local time, without the locale's names. */
static void
format_date(char *out, size_t size)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    char zone[8] = "+0000";

    if (localtime_r(&now, &tm) == NULL) {
        snprintf(out, size, "Thu, 1 Jan 1970 00:00:00 +0000");
        return;
    }
    strftime(zone, sizeof(zone), "%z", &tm);
    snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d %s", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
}

/*
 * The Received field (RFC 5321 4.4, "with" from RFC 3848/6531): the client's name and
 * address, our name, the protocol, TLS and AUTH facts (never a secret), the recipient when
 * there is one, the date.
 */
static int
build_received(const struct session *s, struct mo_buf *out, struct mo_error *err)
{
    char date[64];
    char with[16];
    char tls[128] = "";
    char auth[64] = "";

    /* RFC 3848 and 6531 4.3: ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP(S)(A); HELO: SMTP */
    snprintf(with, sizeof(with), "%s%s%s", s->smtputf8 ? "UTF8SMTP" : (s->esmtp ? "ESMTP" : "SMTP"),
             s->is_tls && s->esmtp ? "S" : "", s->is_authed && s->esmtp ? "A" : "");
    if (s->is_tls)
        snprintf(tls, sizeof(tls), "using %s with cipher %s", s->tls_version, s->tls_cipher);
    if (s->is_authed && s->srv->is_sandbox)
        snprintf(auth, sizeof(auth), "authenticated with the sandbox password");
    else if (s->is_authed)
        snprintf(auth, sizeof(auth), "authenticated with API key #%lld", (long long)s->key_id);
    format_date(date, sizeof(date));
    if (mo_buf_appendf(out, err, "Received: from %s ([%s%s])\r\n\tby %s (mailout) with %s", s->helo,
                       strchr(s->peer_ip, ':') != NULL ? "IPv6:" : "", s->peer_ip, s->srv->hostname,
                       with) != 0)
        return -1;
    if ((tls[0] != '\0' || auth[0] != '\0') &&
        mo_buf_appendf(out, err, "\r\n\t(%s%s%s)", tls,
                       tls[0] != '\0' && auth[0] != '\0' ? "; " : "", auth) != 0)
        return -1;
    if (s->n_rcpts == 1 && mo_buf_appendf(out, err, "\r\n\tfor <%s>", s->rcpts[0]) != 0)
        return -1;
    return mo_buf_appendf(out, err, ";\r\n\t%s\r\n", date);
}

/* True when the header block of msg holds a byte above 127 (RFC 6532 headers). */
static bool
header_has_8bit(const char *msg, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)msg[i] >= 0x80)
            return true;
        if (msg[i] == '\n' && (i + 1 == len || msg[i + 1] == '\n' ||
                               (msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n')))
            return false;
    }
    return false;
}

/* Whether home's disk is the trouble (then 452 4.3.1 rather than 451 4.3.0). */
static bool
is_disk_full(const struct session *s, const struct mo_error *err)
{
    return strstr(err->text, "disk is full") != NULL ||
           strstr(err->text, "No space left") != NULL || listener_disk_short(s->srv, 0);
}

/* Prepares the message read in DATA, commits it, and answers. */
static void
session_queue_message(struct session *s)
{
    struct mime_prepare_options opt;
    struct mime_prepared info;
    struct queue_new_message m;
    struct mo_buf msg;
    struct mo_error err;
    int64_t id = 0;

    memset(&opt, 0, sizeof(opt));
    memset(&info, 0, sizeof(info));
    memset(&m, 0, sizeof(m));
    mo_buf_init(&msg, s->srv->max_message_bytes + SESSION_RECEIVED_MAX + 64 * 1024);
    opt.from = s->account_from.local != NULL ? &s->account_from : NULL;
    opt.add_date = true;
    opt.add_message_id = true;
    opt.remove_bcc = true;
    opt.encode_8bit = false; /* kept as sent: SMTPUTF8 says so, or the client's own choice */
    if (build_received(s, &msg, &err) != 0 ||
        mime_message_prepare(s->data.data != NULL ? s->data.data : "", s->data.len, &opt, &msg,
                             &info, &err) != 0) {
        if (err.category == MO_ERR_CONFIG)
            session_reply(s, 554, "5.6.0", "Message not accepted: %s", err.text);
        else if (strstr(err.text, "exceeds the limit") != NULL)
            session_reply(s, 552, "5.3.4", "Message too big once its line ends are CRLF");
        else
            session_reply(s, 451, "4.3.0", "Local error in processing; try again later");
        mo_log(MO_LOG_WARN, "smtp-in #%llu: message from <%s> refused: %s",
               (unsigned long long)s->id, s->from, err.text);
        goto out;
    }
    m.account = s->account;
    m.from = s->from;
    m.rcpts = (const char *const *)s->rcpts;
    m.n_rcpts = s->n_rcpts;
    m.data = msg.data;
    m.len = msg.len;
    m.message_id = info.message_id[0] != '\0' ? info.message_id : NULL;
    m.subject = info.subject;
    m.header_from = info.header_from;
    m.source = "smtp";
    m.needs_smtputf8 =
        s->utf8_envelope || (s->smtputf8 && header_has_8bit(s->data.data, s->data.len));
    if (listener_commit(s->srv->committer, &m, &id, &err) != 0) {
        if (err.category == MO_ERR_STORAGE && is_disk_full(s, &err)) {
            session_reply(s, 452, "4.3.1",
                          "Insufficient system storage: the message was not queued");
        } else if (err.category == MO_ERR_CONFIG && err.field != NULL &&
                   strcmp(err.field, "size") == 0) {
            session_reply(s, 552, "5.3.4", "Message too big for the queue: %s", err.text);
        } else if (err.category == MO_ERR_CONFIG) {
            session_reply(s, 554, "5.6.0", "Message not accepted: %s", err.text);
        } else {
            session_reply(s, 451, "4.3.0",
                          "Local error in processing: the message was not queued; try again "
                          "later");
        }
        mo_log(MO_LOG_WARN, "smtp-in #%llu: message from <%s> not queued: %s",
               (unsigned long long)s->id, s->from, err.text);
        goto out;
    }
    s->n_queued++;
    session_reply(s, 250, "2.0.0", "Ok: queued as %lld", (long long)id);
    mo_log(MO_LOG_INFO,
           "smtp-in #%llu: message %lld queued: from <%s>, %zu recipient%s, %zu bytes, account "
           "\"%s\", client %s%s%s",
           (unsigned long long)s->id, (long long)id, s->from, s->n_rcpts,
           s->n_rcpts == 1 ? "" : "s", msg.len, s->account, s->peer_ip, s->is_tls ? ", TLS" : "",
           s->is_authed ? ", AUTH" : "");
out:
    mime_prepared_clear(&info);
    mo_buf_free(&msg);
}

/* ---- DATA ----------------------------------------------------------------------------- */

static void
data_append(struct session *s, const char *p, size_t n)
{
    if (s->data_too_big || n == 0)
        return;
    if (mo_buf_append(&s->data, p, n, NULL) != 0)
        s->data_too_big = true; /* over max_message_bytes: read on, keep nothing more */
}

/*
 * Moves message bytes from rbuf into s->data, unstuffing leading dots, until the end of
 * data (true) or the end of what rbuf holds (false).
 */
static bool
data_consume(struct session *s)
{
    const char *buf = s->rbuf;
    size_t i = s->rpos;
    size_t end = s->rlen;

    while (i < end) {
        switch (s->data_pos) {
        case DATA_MID: {
            const char *cr = memchr(buf + i, '\r', end - i);
            size_t stop = cr != NULL ? (size_t)(cr - buf) + 1 : end;

            data_append(s, buf + i, stop - i);
            i = stop;
            if (cr != NULL)
                s->data_pos = DATA_CR;
            break;
        }
        case DATA_CR: {
            char c = buf[i++];

            data_append(s, &c, 1);
            s->data_pos = c == '\n' ? DATA_LINE_START : (c == '\r' ? DATA_CR : DATA_MID);
            break;
        }
        case DATA_LINE_START:
            if (buf[i] == '.') {
                i++;
                s->data_pos = DATA_DOT;
            } else {
                s->data_pos = DATA_MID;
            }
            break;
        case DATA_DOT:
            /* the dot is dropped either way: "." CRLF ends, ".." is "." */
            if (buf[i] == '\r') {
                i++;
                s->data_pos = DATA_DOT_CR;
            } else {
                s->data_pos = DATA_MID;
            }
            break;
        case DATA_DOT_CR:
            if (buf[i] == '\n') {
                s->rpos = i + 1;
                return true;
            }
            data_append(s, "\r", 1);
            s->data_pos = DATA_CR;
            break;
        default:
            assert(!"unknown data position");
        }
    }
    s->rpos = i;
    return false;
}

/* ---- the states ------------------------------------------------------------------------ */

/* Ends the session after a problem on the line; says goodbye when it makes sense. */
static void
session_io_failed(struct session *s, enum io_result r)
{
    switch (r) {
    case IO_TIMEOUT:
        session_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->srv->hostname);
        (void)session_flush(s);
        mo_log(MO_LOG_INFO, "smtp-in #%llu: %s timed out in state %s", (unsigned long long)s->id,
               s->peer_ip, state_names[s->state]);
        break;
    case IO_STOP:
        session_reply(s, 421, "4.3.2", "%s Service shutting down, closing connection",
                      s->srv->hostname);
        (void)session_flush(s);
        break;
    case IO_EOF:
    case IO_ERROR:
        if (s->state == SESSION_DATA || s->state == SESSION_AUTH)
            mo_log(MO_LOG_INFO, "smtp-in #%llu: %s went away in state %s",
                   (unsigned long long)s->id, s->peer_ip, state_names[s->state]);
        break;
    case IO_OK:
    case IO_TOO_LONG:
        break;
    }
    session_enter(s, SESSION_CLOSED);
}

static bool
auth_offered(const struct session *s)
{
    return !s->srv->require_tls || s->is_tls;
}

static void
reply_ehlo(struct session *s)
{
    char lines[8][300];
    size_t n = 0;

    snprintf(lines[n++], sizeof(lines[0]), "%s", s->srv->hostname);
    snprintf(lines[n++], sizeof(lines[0]), "PIPELINING");
    snprintf(lines[n++], sizeof(lines[0]), "SIZE %zu", s->srv->max_message_bytes);
    if (s->srv->tls != NULL && !s->is_tls)
        snprintf(lines[n++], sizeof(lines[0]), "STARTTLS");
    if (auth_offered(s))
        snprintf(lines[n++], sizeof(lines[0]), "AUTH PLAIN LOGIN");
    snprintf(lines[n++], sizeof(lines[0]), "ENHANCEDSTATUSCODES");
    snprintf(lines[n++], sizeof(lines[0]), "8BITMIME");
    snprintf(lines[n++], sizeof(lines[0]), "SMTPUTF8");
    for (size_t i = 0; i < n; i++) {
        char line[320];
        int len = snprintf(line, sizeof(line), "250%c%s", i + 1 < n ? '-' : ' ', lines[i]);

        session_send(s, line, (size_t)len);
    }
}

/* The client's name for Received: its first word, printable ASCII only. */
static void
set_helo(struct session *s, const char *arg)
{
    size_t j = 0;

    for (size_t i = 0; arg[i] != '\0' && arg[i] != ' ' && j + 1 < sizeof(s->helo); i++) {
        unsigned char c = (unsigned char)arg[i];

        s->helo[j++] = (c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != ';') ? (char)c : '_';
    }
    s->helo[j] = '\0';
}

/* Reads one AUTH response line and decodes it; "*" cancels. 0 ok, 1 answered, -1 closed. */
static int
auth_read(struct session *s, unsigned char *out, size_t out_size, size_t *out_len)
{
    const char *line = NULL;
    size_t len = 0;
    enum io_result r = session_read_line(s, &line, &len, s->srv->command_timeout_ms);

    if (r == IO_TOO_LONG) {
        session_reply(s, 500, "5.5.2", "Line too long");
        return 1;
    }
    if (r != IO_OK) {
        session_io_failed(s, r);
        return -1;
    }
    session_note_client(s, line, len, true);
    if (len == 1 && line[0] == '*') {
        session_reply(s, 501, "5.0.0", "Authentication cancelled");
        return 1;
    }
    if (listener_b64_decode(line, len, out, out_size, out_len) != 0) {
        session_reply(s, 501, "5.5.2", "Cannot decode the response (not base64)");
        return 1;
    }
    return 0;
}

/* ---- sandbox mode (sandbox.h): Gmail's own replies for the faults ---------------------- */

/* The first lines of Gmail's multi-line replies (the last line follows with its code). */
#define SANDBOX_535_FIRST                                                                          \
    "535-5.7.8 Username and Password not accepted. For more information, go to"
#define SANDBOX_534_FIRST                                                                          \
    "534-5.7.9 Application-specific password required. For more information, go to"
#define SANDBOX_550_FIRST                                                                          \
    "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail"

/* AUTH in the sandbox: the switched-on fault, else the sandbox's password. */
static void
sandbox_auth(struct session *s, const char *passwd, bool whole)
{
    size_t n = strlen(s->srv->sandbox_password);

    if (s->fault == SANDBOX_FAULT_AUTH_535) {
        session_send(s, SANDBOX_535_FIRST, sizeof(SANDBOX_535_FIRST) - 1);
        session_reply(s, 535, "5.7.8",
                      " https://support.google.com/mail/?p=BadCredentials "
                      "(sandbox fault)");
    } else if (s->fault == SANDBOX_FAULT_AUTH_534) {
        session_send(s, SANDBOX_534_FIRST, sizeof(SANDBOX_534_FIRST) - 1);
        session_reply(s, 534, "5.7.9",
                      " https://support.google.com/mail/?p=InvalidSecondFactor "
                      "(sandbox fault)");
    } else if (whole && strlen(passwd) == n && n > 0 &&
               CRYPTO_memcmp(passwd, s->srv->sandbox_password, n) == 0) {
        s->is_authed = true;
        session_reply(s, 235, "2.7.0", "Accepted");
        return;
    } else {
        session_reply(s, 535, "5.7.8",
                      "Username and Password not accepted (not the sandbox's "
                      "password)");
    }
    mo_log(MO_LOG_INFO, "sandbox #%llu: AUTH refused (%s)", (unsigned long long)s->id,
           sandbox_fault_name(s->fault));
}

/* Keeps the letter in the sandbox inbox, or plays the switched-on fault. */
static void
sandbox_take_message(struct session *s)
{
    struct mo_buf msg;
    struct mo_error err;
    char id[SANDBOX_ID_MAX];

    if (s->fault == SANDBOX_FAULT_DATA_550_545) {
        session_send(s, SANDBOX_550_FIRST, sizeof(SANDBOX_550_FIRST) - 1);
        session_reply(s, 550, "5.4.5",
                      " https://support.google.com/mail/?p=ReachedLimit "
                      "(sandbox fault)");
        return;
    }
    if (s->fault == SANDBOX_FAULT_STALL) {
        /* no answer: until the client gives up, the server stops, or the stall ends */
        mo_log(MO_LOG_INFO, "sandbox #%llu: stalling after the data (fault)",
               (unsigned long long)s->id);
        (void)session_flush(s);
        (void)session_wait(s, POLLIN, SANDBOX_STALL_MS, true);
        session_enter(s, SESSION_CLOSED);
        return;
    }
    mo_buf_init(&msg, s->srv->max_message_bytes + SESSION_RECEIVED_MAX + 64 * 1024);
    if (build_received(s, &msg, &err) != 0 ||
        mo_buf_append(&msg, s->data.data != NULL ? s->data.data : "", s->data.len, &err) != 0 ||
        sandbox_store(s->srv->home, msg.data, msg.len, id, &err) != 0) {
        session_reply(s, 451, "4.3.0", "Local error: the letter was not kept");
        mo_log(MO_LOG_WARN, "sandbox #%llu: %s", (unsigned long long)s->id, err.text);
    } else {
        s->n_queued++;
        session_reply(s, 250, "2.0.0", "OK: kept in the sandbox inbox as %s", id);
        mo_log(MO_LOG_INFO, "sandbox #%llu: letter %s from <%s> kept (%zu bytes)",
               (unsigned long long)s->id, id, s->from, msg.len);
    }
    mo_buf_free(&msg);
}

/* The SASL exchange for AUTH PLAIN or LOGIN (RFC 4954, 4616); the password is an API key. */
static void
session_auth(struct session *s)
{
    unsigned char buf[LISTENER_AUTH_LINE_MAX / 4 * 3 + 4];
    unsigned char user[512];
    size_t len = 0;
    const char *authcid = NULL;
    const char *passwd = NULL;
    const struct listener_cmd *c = s->cmd;
    bool plain = strcmp(c->arg, "PLAIN") == 0;
    int r;

    if (plain) {
        if (c->has_initial) {
            if (listener_b64_decode(c->auth_initial, strlen(c->auth_initial), buf, sizeof(buf) - 1,
                                    &len) != 0) {
                session_reply(s, 501, "5.5.2", "Cannot decode the response (not base64)");
                goto out;
            }
        } else {
            session_send(s, "334 ", 4);
            if ((r = auth_read(s, buf, sizeof(buf) - 1, &len)) != 0)
                goto out;
        }
        buf[len] = '\0';
        if (listener_plain_split(buf, len, &authcid, &passwd) != 0) {
            session_reply(s, 501, "5.5.2", "Malformed PLAIN response");
            goto out;
        }
    } else {
        size_t ulen = 0;

        if (c->has_initial) {
            if (listener_b64_decode(c->auth_initial, strlen(c->auth_initial), user,
                                    sizeof(user) - 1, &ulen) != 0) {
                session_reply(s, 501, "5.5.2", "Cannot decode the response (not base64)");
                goto out;
            }
        } else {
            session_send(s, "334 VXNlcm5hbWU6", 16); /* "Username:" */
            if ((r = auth_read(s, user, sizeof(user) - 1, &ulen)) != 0)
                goto out;
        }
        user[ulen] = '\0';
        session_send(s, "334 UGFzc3dvcmQ6", 16); /* "Password:" */
        if ((r = auth_read(s, buf, sizeof(buf) - 1, &len)) != 0)
            goto out;
        buf[len] = '\0';
        passwd = (const char *)buf;
    }
    /* the user name may be anything (the key's name, the shop's address): the key decides */
    if (s->srv->is_sandbox) {
        sandbox_auth(s, passwd,
                     strlen(passwd) == len - (size_t)((const unsigned char *)passwd - buf));
    } else if (strlen(passwd) == len - (size_t)((const unsigned char *)passwd - buf) &&
               admin_keyring_verify(s->srv->keyring, passwd, &s->key_id)) {
        s->is_authed = true;
        session_reply(s, 235, "2.7.0", "Authentication successful");
        mo_log(MO_LOG_INFO, "smtp-in #%llu: %s authenticated with API key #%lld",
               (unsigned long long)s->id, s->peer_ip, (long long)s->key_id);
    } else {
        session_reply(s, 535, "5.7.8", "Authentication credentials invalid");
        mo_log(MO_LOG_WARN, "smtp-in #%llu: %s: AUTH %s failed (not a valid API key)",
               (unsigned long long)s->id, s->peer_ip, c->arg);
    }
out:
    mo_wipe(buf, sizeof(buf));
    mo_wipe(user, sizeof(user));
}

static void
session_starttls(struct session *s)
{
    int64_t deadline;

    session_reply(s, 220, "2.0.0", "Ready to start TLS");
    if (session_flush(s) != IO_OK) {
        session_enter(s, SESSION_CLOSED);
        return;
    }
    if (s->rlen > s->rpos) {
        /* plaintext sent after STARTTLS must not count as sent over TLS (RFC 3207 5) */
        mo_log(MO_LOG_WARN, "smtp-in #%llu: %s sent %zu bytes after STARTTLS: thrown away",
               (unsigned long long)s->id, s->peer_ip, s->rlen - s->rpos);
        s->rpos = s->rlen = 0;
    }
    s->ssl = SSL_new(s->srv->tls);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        mo_log(MO_LOG_ERROR, "smtp-in #%llu: cannot start TLS", (unsigned long long)s->id);
        session_enter(s, SESSION_CLOSED);
        return;
    }
    deadline = mo_now_ms() + SESSION_TLS_TIMEOUT_MS;
    for (;;) {
        int r = SSL_accept(s->ssl);
        int w;
        int64_t left = deadline - mo_now_ms();

        if (r == 1)
            break;
        w = left > 0 ? session_ssl_wait(s, r, (int)left, true) : 0;
        if (w == 1)
            continue;
        {
            unsigned long e = ERR_peek_last_error();
            char detail[256] = "";

            if (e != 0)
                ERR_error_string_n(e, detail, sizeof(detail));
            mo_log(MO_LOG_INFO, "smtp-in #%llu: %s: TLS handshake failed%s%s",
                   (unsigned long long)s->id, s->peer_ip, detail[0] ? ": " : "",
                   w == 0 ? "timeout" : detail);
        }
        ERR_clear_error();
        SSL_free(s->ssl);
        s->ssl = NULL; /* the line is no use now: no cleartext after a broken handshake */
        session_enter(s, SESSION_CLOSED);
        return;
    }
    s->is_tls = true;
    snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(s->ssl));
    snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", SSL_get_cipher_name(s->ssl));
    /* RFC 3207 4.2: forget what the client said before */
    s->helo[0] = '\0';
    s->esmtp = false;
    s->is_authed = false;
    txn_reset(s);
    session_enter(s, SESSION_HELLO);
}

/* DATA: reads the message (after the 354) and decides between 552 and queueing. */
static void
session_data(struct session *s)
{
    enum io_result r;

    session_reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
    if (s->fault == SANDBOX_FAULT_DROP_MID_DATA) {
        (void)session_flush(s);
        mo_log(MO_LOG_INFO, "sandbox #%llu: dropping the connection in DATA (fault)",
               (unsigned long long)s->id);
        shutdown(s->fd, SHUT_RDWR);
        session_enter(s, SESSION_CLOSED);
        return;
    }
    s->data_pos = DATA_LINE_START;
    s->data_too_big = false;
    for (;;) {
        if (data_consume(s))
            break;
        r = session_fill(s, s->srv->data_timeout_ms);
        if (r != IO_OK) {
            session_io_failed(s, r);
            return;
        }
    }
    if (s->data_too_big) {
        session_reply(s, 552, "5.3.4",
                      "Message size exceeds fixed maximum message size (%zu bytes)",
                      s->srv->max_message_bytes);
        txn_reset(s);
        session_enter(s, SESSION_READY);
        return;
    }
    session_enter(s, SESSION_QUEUE);
}

static void
session_enter(struct session *s, enum session_state next)
{
    assert(next < SESSION_STATE_COUNT);
    if (s->state != next)
        mo_log(MO_LOG_DEBUG, "smtp-in #%llu: %s -> %s", (unsigned long long)s->id,
               state_names[s->state], state_names[next]);
    s->state = next;
    switch (next) {
    case SESSION_GREETING:
        if (s->srv->is_sandbox)
            s->fault = sandbox_fault_draw(s->srv->home);
        if (s->fault == SANDBOX_FAULT_GREETING_421) {
            session_reply(s, 421, "4.7.0", "Try again later, closing connection. (sandbox fault)");
            (void)session_flush(s);
            session_enter(s, SESSION_CLOSED);
            break;
        }
        session_reply(s, 220, "", "%s ESMTP mailout%s", s->srv->hostname,
                      s->srv->is_sandbox ? " sandbox" : "");
        session_enter(s, SESSION_HELLO);
        break;
    case SESSION_STARTTLS:
        session_starttls(s);
        break;
    case SESSION_AUTH:
        session_auth(s);
        if (s->state == SESSION_AUTH)
            session_enter(s, SESSION_READY);
        break;
    case SESSION_DATA:
        session_data(s);
        break;
    case SESSION_QUEUE:
        if (s->srv->is_sandbox)
            sandbox_take_message(s);
        else
            session_queue_message(s);
        txn_reset(s);
        if (s->state == SESSION_QUEUE)
            session_enter(s, SESSION_READY);
        break;
    case SESSION_QUIT:
        session_reply(s, 221, "2.0.0", "Bye");
        (void)session_flush(s);
        session_enter(s, SESSION_CLOSED);
        break;
    case SESSION_HELLO:
    case SESSION_READY:
    case SESSION_MAIL:
    case SESSION_RCPT:
    case SESSION_CLOSED:
        break; /* waiting for the client */
    default:
        assert(!"unknown session state");
    }
}

/* ---- commands ------------------------------------------------------------------------- */

static bool
in_transaction(const struct session *s)
{
    return s->state == SESSION_MAIL || s->state == SESSION_RCPT;
}

static void
on_mail(struct session *s, const struct listener_cmd *c)
{
    struct mo_error err;
    int found;

    if (s->state == SESSION_HELLO) {
        session_reply(s, 503, "5.5.1", "Send HELO/EHLO first");
        return;
    }
    if (in_transaction(s)) {
        session_reply(s, 503, "5.5.1", "Nested MAIL command");
        return;
    }
    if (s->srv->require_tls && !s->is_tls) {
        session_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return;
    }
    if (s->srv->require_auth && !s->is_authed) {
        session_reply(s, 530, "5.7.0", "Authentication required (AUTH with an API key)");
        return;
    }
    if (c->address_is_utf8 && !c->smtputf8) {
        session_reply(s, 553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter");
        return;
    }
    if (c->has_size && c->size > s->srv->max_message_bytes) {
        session_reply(s, 552, "5.3.4",
                      "Message size exceeds fixed maximum message size (%zu bytes)",
                      s->srv->max_message_bytes);
        return;
    }
    if (listener_disk_short(s->srv, c->has_size ? c->size : 0)) {
        session_reply(s, 452, "4.3.1", "Insufficient system storage");
        mo_log(MO_LOG_WARN, "smtp-in #%llu: the disk of %s is (almost) full: MAIL refused",
               (unsigned long long)s->id, s->srv->home);
        return;
    }
    if (s->srv->is_sandbox) {
        txn_reset(s); /* every letter is kept: no account routing, no rate */
        snprintf(s->from, sizeof(s->from), "%s", c->address);
        s->smtputf8 = c->smtputf8;
        s->utf8_envelope = c->address_is_utf8;
        session_reply(s, 250, "2.1.0", "OK");
        session_enter(s, SESSION_MAIL);
        return;
    }
    if (!listener_rate_take(s->srv, s->peer_ip)) {
        session_reply(s, 450, "4.7.1",
                      "Too much mail from %s: at most %u messages a minute; try again later",
                      s->peer_ip, s->srv->rate_per_minute);
        return;
    }
    txn_reset(s);
    found = listener_accounts_route(s->srv->accounts, c->address, s->account, sizeof(s->account),
                                    &s->account_from, &err);
    if (found <= 0) {
        if (found == 0)
            session_reply(s, 451, "4.3.5",
                          "No account to send with: set one up with `mailout setup`");
        else
            session_reply(s, 451, "4.3.0", "Local error: cannot read the accounts");
        mo_log(MO_LOG_WARN, "smtp-in #%llu: MAIL from <%s>: %s", (unsigned long long)s->id,
               c->address, found == 0 ? "no account to send with" : err.text);
        return;
    }
    snprintf(s->from, sizeof(s->from), "%s", c->address);
    s->smtputf8 = c->smtputf8;
    s->utf8_envelope = c->address_is_utf8;
    session_reply(s, 250, "2.1.0", "Ok");
    session_enter(s, SESSION_MAIL);
}

static void
on_rcpt(struct session *s, const struct listener_cmd *c)
{
    if (!in_transaction(s)) {
        session_reply(s, 503, "5.5.1", "Need MAIL command");
        return;
    }
    if (c->address_is_utf8 && !s->smtputf8) {
        session_reply(s, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8 on MAIL FROM");
        return;
    }
    if (strchr(c->address, '@') == NULL) {
        session_reply(s, 501, "5.1.3", "Bad recipient address syntax");
        return;
    }
    if (s->n_rcpts >= s->srv->max_recipients) {
        session_reply(s, 452, "4.5.3", "Too many recipients (at most %u a message)",
                      s->srv->max_recipients);
        return;
    }
    if (txn_add_rcpt(s, c->address) != 0) {
        session_reply(s, 451, "4.3.0", "Local error: out of memory");
        return;
    }
    s->utf8_envelope = s->utf8_envelope || c->address_is_utf8;
    session_reply(s, 250, "2.1.5", "Ok");
    session_enter(s, SESSION_RCPT);
}

/* Classifies one command line and picks the next state. */
static void
session_on_command(struct session *s, const char *line, size_t len)
{
    struct listener_cmd cmd;
    bool ok = listener_cmd_parse(line, len, &cmd) == 0;

    session_note_client(s, line, len, false);
    if (!ok) {
        session_reply(s, cmd.code, cmd.enhanced, "%s", cmd.text);
        return;
    }
    s->cmd = &cmd;
    switch (cmd.verb) {
    case LISTENER_VERB_EHLO:
    case LISTENER_VERB_HELO:
        txn_reset(s);
        set_helo(s, cmd.arg);
        s->esmtp = cmd.verb == LISTENER_VERB_EHLO;
        if (s->esmtp)
            reply_ehlo(s);
        else
            session_reply(s, 250, "", "%s", s->srv->hostname);
        session_enter(s, SESSION_READY);
        break;
    case LISTENER_VERB_MAIL:
        on_mail(s, &cmd);
        break;
    case LISTENER_VERB_RCPT:
        on_rcpt(s, &cmd);
        break;
    case LISTENER_VERB_DATA:
        if (!in_transaction(s))
            session_reply(s, 503, "5.5.1", "Need MAIL command");
        else if (s->state == SESSION_MAIL)
            session_reply(s, 554, "5.5.1", "No valid recipients");
        else
            session_enter(s, SESSION_DATA);
        break;
    case LISTENER_VERB_RSET:
        txn_reset(s);
        session_reply(s, 250, "2.0.0", "Ok");
        if (s->state != SESSION_HELLO)
            session_enter(s, SESSION_READY);
        break;
    case LISTENER_VERB_NOOP:
        session_reply(s, 250, "2.0.0", "Ok");
        break;
    case LISTENER_VERB_QUIT:
        session_enter(s, SESSION_QUIT);
        break;
    case LISTENER_VERB_VRFY:
        session_reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept the message");
        break;
    case LISTENER_VERB_EXPN:
        session_reply(s, 502, "5.5.1", "EXPN not supported");
        break;
    case LISTENER_VERB_HELP:
        session_reply(s, 214, "2.0.0", "mailout: see RFC 5321");
        break;
    case LISTENER_VERB_BDAT:
        session_reply(s, 502, "5.5.1", "CHUNKING not offered");
        break;
    case LISTENER_VERB_STARTTLS:
        if (s->srv->tls == NULL)
            session_reply(s, 502, "5.5.1", "STARTTLS not offered (no certificate configured)");
        else if (s->is_tls)
            session_reply(s, 503, "5.5.1", "TLS already active");
        else if (s->state == SESSION_HELLO)
            session_reply(s, 503, "5.5.1", "Send EHLO first");
        else if (in_transaction(s))
            session_reply(s, 503, "5.5.1", "STARTTLS not permitted during a mail transaction");
        else
            session_enter(s, SESSION_STARTTLS);
        break;
    case LISTENER_VERB_AUTH:
        if (s->state == SESSION_HELLO || !s->esmtp)
            session_reply(s, 503, "5.5.1", "Send EHLO first");
        else if (s->is_authed)
            session_reply(s, 503, "5.5.1", "Already authenticated");
        else if (in_transaction(s))
            session_reply(s, 503, "5.5.1", "AUTH not permitted during a mail transaction");
        else if (!auth_offered(s))
            session_reply(s, 538, "5.7.11",
                          "Encryption required for requested authentication mechanism");
        else if (strcmp(cmd.arg, "PLAIN") != 0 && strcmp(cmd.arg, "LOGIN") != 0)
            session_reply(s, 504, "5.5.4", "Unrecognized authentication type");
        else
            session_enter(s, SESSION_AUTH);
        break;
    case LISTENER_VERB_UNKNOWN:
    case LISTENER_VERB_COUNT:
        session_reply(s, 500, "5.5.1", "Command unrecognized");
        break;
    }
    s->cmd = NULL;
}

/* ---- the session ------------------------------------------------------------------------- */

static void
peer_text(struct session *s, const struct sockaddr_storage *peer)
{
    snprintf(s->peer_ip, sizeof(s->peer_ip), "?");
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;

        inet_ntop(AF_INET, &in->sin_addr, s->peer_ip, sizeof(s->peer_ip));
        s->peer_port = ntohs(in->sin_port);
    } else if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;

        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], s->peer_ip, sizeof(s->peer_ip));
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, s->peer_ip, sizeof(s->peer_ip));
        s->peer_port = ntohs(in6->sin6_port);
    }
}

void
listener_session_run(struct listener_server *srv, int fd, const struct sockaddr_storage *peer,
                     uint64_t id)
{
    struct session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        close(fd);
        return;
    }
    s->srv = srv;
    s->id = id;
    s->fd = fd;
    s->state = SESSION_CLOSED; /* so the first transition logs "closed -> greeting" */
    mo_buf_init(&s->wbuf, SESSION_WBUF_MAX);
    mo_buf_init(&s->data, srv->max_message_bytes);
    peer_text(s, peer);
    mo_log(MO_LOG_DEBUG, "smtp-in #%llu: connection from %s port %u", (unsigned long long)id,
           s->peer_ip, s->peer_port);
    session_enter(s, SESSION_GREETING);
    while (s->state != SESSION_CLOSED) {
        const char *line = NULL;
        size_t len = 0;
        enum io_result r = session_read_line(s, &line, &len, srv->command_timeout_ms);

        if (r == IO_TOO_LONG) {
            session_reply(s, 500, "5.5.2", "Line too long");
        } else if (r != IO_OK) {
            session_io_failed(s, r);
            break;
        } else {
            session_on_command(s, line, len);
        }
        if (s->n_errors > SESSION_ERRORS_MAX && s->state != SESSION_CLOSED) {
            session_reply(s, 421, "4.7.0", "%s Too many errors, closing connection", srv->hostname);
            (void)session_flush(s);
            mo_log(MO_LOG_INFO, "smtp-in #%llu: %s made too many errors", (unsigned long long)id,
                   s->peer_ip);
            session_enter(s, SESSION_CLOSED);
        }
    }
    mo_log(MO_LOG_DEBUG, "smtp-in #%llu: %s disconnected after %lld message%s",
           (unsigned long long)id, s->peer_ip, (long long)s->n_queued, s->n_queued == 1 ? "" : "s");
    if (s->ssl != NULL) {
        SSL_shutdown(s->ssl); /* best effort close_notify; never waits */
        SSL_free(s->ssl);
    }
    ERR_clear_error();
    close(fd);
    txn_reset(s);
    free(s->rcpts);
    mo_buf_free(&s->data);
    mo_buf_free(&s->wbuf);
    free(s);
}
