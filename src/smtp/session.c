/*
 * session.c - one SMTP submission session: the state machine from connect
 * to QUIT, pipelining, dot-stuffing, and the transcript.
 *
 * Every command goes out through session_command() and every reply comes in
 * through session_reply(): that is where the transcript is written, AUTH
 * payloads are redacted, and each state transition is logged by name.
 * Pipelining (RFC 2920) keeps a bounded window of commands whose replies are
 * still due; without PIPELINING the window is one.
 * RFCs: 5321, 6409, 3207, 8314, 4954, 2920, 1870, 6152, 6531, 3463.
 * Leaves out: CHUNKING/BDAT, DSN parameters, per-recipient NOTIFY.
 */
#include "smtp/smtp.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtp/conn.h"

#define SESSION_WINDOW 100          /* pipelined commands in flight at most */
#define SESSION_TRANSCRIPT_MAX 4000 /* lines kept; the rest is summarised */

enum smtp_state {
    SMTP_STATE_IDLE,
    SMTP_STATE_CONNECT,
    SMTP_STATE_TLS,
    SMTP_STATE_GREETING,
    SMTP_STATE_EHLO,
    SMTP_STATE_HELO,
    SMTP_STATE_STARTTLS,
    SMTP_STATE_AUTH,
    SMTP_STATE_READY,
    SMTP_STATE_RSET,
    SMTP_STATE_MAIL,
    SMTP_STATE_RCPT,
    SMTP_STATE_DATA,
    SMTP_STATE_BODY,
    SMTP_STATE_QUIT,
    SMTP_STATE_CLOSED,
    SMTP_STATE_COUNT
};

static const char *const state_names[SMTP_STATE_COUNT] = {
    [SMTP_STATE_IDLE] = "idle",         [SMTP_STATE_CONNECT] = "connect",
    [SMTP_STATE_TLS] = "tls",           [SMTP_STATE_GREETING] = "greeting",
    [SMTP_STATE_EHLO] = "ehlo",         [SMTP_STATE_HELO] = "helo",
    [SMTP_STATE_STARTTLS] = "starttls", [SMTP_STATE_AUTH] = "auth",
    [SMTP_STATE_READY] = "ready",       [SMTP_STATE_RSET] = "rset",
    [SMTP_STATE_MAIL] = "mail",         [SMTP_STATE_RCPT] = "rcpt",
    [SMTP_STATE_DATA] = "data",         [SMTP_STATE_BODY] = "data",
    [SMTP_STATE_QUIT] = "quit",         [SMTP_STATE_CLOSED] = "closed",
};

/* The stage an error in this state is reported under (struct mo_error.stage). */
static const char *const state_stages[SMTP_STATE_COUNT] = {
    [SMTP_STATE_IDLE] = "connect",      [SMTP_STATE_CONNECT] = "connect",
    [SMTP_STATE_TLS] = "tls",           [SMTP_STATE_GREETING] = "greeting",
    [SMTP_STATE_EHLO] = "ehlo",         [SMTP_STATE_HELO] = "ehlo",
    [SMTP_STATE_STARTTLS] = "starttls", [SMTP_STATE_AUTH] = "auth",
    [SMTP_STATE_READY] = "mail",        [SMTP_STATE_RSET] = "mail",
    [SMTP_STATE_MAIL] = "mail",         [SMTP_STATE_RCPT] = "rcpt",
    [SMTP_STATE_DATA] = "data",         [SMTP_STATE_BODY] = "data",
    [SMTP_STATE_QUIT] = "quit",         [SMTP_STATE_CLOSED] = "connect",
};

struct smtp_session {
    char *host;
    char *username;
    char *secret;
    char *ca_file;
    char *helo_name;
    unsigned port;
    enum smtp_security security;
    enum smtp_auth_mech auth;
    struct smtp_timeouts timeouts;

    struct smtp_conn conn;
    struct smtp_caps caps;
    struct smtp_reply_parser parser;
    enum smtp_state state;
    bool need_rset; /* the last transaction did not end cleanly */
    bool was_tls;   /* TLS was established on this connection (kept after QUIT) */

    struct smtp_step steps[SMTP_STEPS_MAX];
    size_t n_steps;
    int64_t step_t0;
    void (*on_step)(void *ctx, const struct smtp_step *step); /* NULL: nobody watches */
    void *on_step_ctx;

    bool transcript_on;
    char **lines;
    size_t n_lines;
    size_t cap_lines;
    size_t dropped_lines;
};

/* ---- transcript ---------------------------------------------------------- */

static void
session_note(struct smtp_session *s, char who, const char *text, size_t len)
{
    char *line;
    char **grown;

    if (!s->transcript_on && who != '*')
        return;
    if (s->n_lines >= SESSION_TRANSCRIPT_MAX) {
        s->dropped_lines++;
        return;
    }
    if (s->n_lines == s->cap_lines) {
        size_t cap = s->cap_lines ? s->cap_lines * 2 : 32;
        grown = realloc(s->lines, cap * sizeof(*grown));
        if (grown == NULL)
            return; /* the transcript is best effort; the session goes on */
        s->lines = grown;
        s->cap_lines = cap;
    }
    line = malloc(len + 4);
    if (line == NULL)
        return;
    line[0] = who;
    line[1] = ':';
    line[2] = ' ';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        /* Control bytes from a hostile server must not reach a terminal. */
        line[3 + i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    line[3 + len] = '\0';
    s->lines[s->n_lines++] = line;
}

static void session_notef(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
session_notef(struct smtp_session *s, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    session_note(s, '*', text, strlen(text));
}

static void
session_enter(struct smtp_session *s, enum smtp_state next)
{
    assert(next < SMTP_STATE_COUNT);
    if (s->state != next)
        mo_log(MO_LOG_DEBUG, "smtp %s:%u: %s -> %s", s->host, s->port, state_names[s->state],
               state_names[next]);
    s->state = next;
}

/* Records a step and tells the watcher, if any. */
static void
session_step_add(struct smtp_session *s, const char *name, bool ok, int64_t ms)
{
    if (s->n_steps >= SMTP_STEPS_MAX)
        return;
    s->steps[s->n_steps] = (struct smtp_step){name, ok, ms};
    s->n_steps++;
    if (s->on_step != NULL)
        s->on_step(s->on_step_ctx, &s->steps[s->n_steps - 1]);
}

/* Ends the current step: records how long it took since the last one ended. */
static void
session_step(struct smtp_session *s, const char *name, bool ok)
{
    int64_t now = mo_now_ms();

    session_step_add(s, name, ok, now - s->step_t0);
    s->step_t0 = now;
}

/* ---- errors ---------------------------------------------------------------- */

static void
session_fail_stage(struct smtp_session *s, enum smtp_state state, struct mo_error *err)
{
    if (err != NULL && err->stage == NULL)
        err->stage = state_stages[state];
    (void)s;
}

/* The connection is unusable after this. */
static void
session_broken(struct smtp_session *s, enum smtp_state state, struct mo_error *err)
{
    session_fail_stage(s, state, err);
    if (err != NULL)
        session_notef(s, "%s", err->text);
    smtp_conn_close(&s->conn);
    session_enter(s, SMTP_STATE_CLOSED);
}

static void
reply_error(struct mo_error *err, enum smtp_state state, const struct smtp_reply *r,
            enum mo_category cat, const char *field, const char *what)
{
    char oneline[SMTP_REPLY_TEXT_MAX];
    size_t n = strlen(r->text);

    memcpy(oneline, r->text, n + 1);
    for (size_t i = 0; i < n; i++)
        if (oneline[i] == '\n')
            oneline[i] = ' ';
    mo_error_set(err, cat, field, "%s: %d%s%s %s", what, r->code, r->enhanced[0] ? " " : "",
                 r->enhanced, oneline);
    if (err == NULL)
        return;
    err->stage = state_stages[state];
    err->smtp_code = r->code;
    memcpy(err->enhanced, r->enhanced, sizeof(err->enhanced));
    err->temporary = (r->code >= 400 && r->code < 500);
}

/* ---- I/O ------------------------------------------------------------------- */

static int
session_timeout(const struct smtp_session *s, enum smtp_state state)
{
    switch (state) {
    case SMTP_STATE_CONNECT:
    case SMTP_STATE_TLS:
        return s->timeouts.connect_ms;
    case SMTP_STATE_GREETING:
        return s->timeouts.greeting_ms;
    case SMTP_STATE_MAIL:
        return s->timeouts.mail_ms;
    case SMTP_STATE_RCPT:
        return s->timeouts.rcpt_ms;
    case SMTP_STATE_DATA:
        return s->timeouts.data_init_ms;
    case SMTP_STATE_BODY:
        return s->timeouts.data_term_ms;
    default:
        return s->timeouts.command_ms;
    }
}

/*
 * Queues one command line (CRLF added). shown is what the transcript gets:
 * the line itself, or a redacted form for AUTH payloads.
 */
static int
session_command(struct smtp_session *s, const char *line, const char *shown, struct mo_error *err)
{
    size_t len = strlen(line);

    session_note(s, 'C', shown != NULL ? shown : line, strlen(shown != NULL ? shown : line));
    if (smtp_conn_write(&s->conn, line, len, s->timeouts.command_ms, err) != 0 ||
        smtp_conn_write(&s->conn, "\r\n", 2, s->timeouts.command_ms, err) != 0)
        return -1;
    return 0;
}

static int
session_flush(struct smtp_session *s, struct mo_error *err)
{
    return smtp_conn_flush(&s->conn, s->timeouts.command_ms, err);
}

/* Reads one complete reply for a command made in state. */
static int
session_reply(struct smtp_session *s, enum smtp_state state, struct smtp_reply *r,
              struct mo_error *err)
{
    for (;;) {
        const char *line = NULL;
        size_t len = 0;
        int rc;

        if (smtp_conn_read_line(&s->conn, &line, &len, session_timeout(s, state), err) != 0)
            return -1;
        session_note(s, 'S', line, len);
        rc = smtp_reply_parse_line(&s->parser, line, len, r, err);
        if (rc < 0) {
            smtp_reply_parser_init(&s->parser);
            return -1;
        }
        if (rc == 1)
            return 0;
    }
}

/* ---- public: lifecycle ------------------------------------------------------ */

struct smtp_session *
smtp_session_new(const struct smtp_options *opt, struct mo_error *err)
{
    struct smtp_session *s = NULL;

    if (opt->host == NULL || opt->host[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "host", "no server host name was given");
        return NULL;
    }
    if (opt->port == 0 || opt->port > 65535) {
        mo_error_set(err, MO_ERR_CONFIG, "port", "the port must be between 1 and 65535");
        return NULL;
    }
    if (opt->username != NULL && opt->secret == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "password", "a user name was given without a password");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto oom;
    s->host = strdup(opt->host);
    s->username = mo_strdup(opt->username);
    s->secret = mo_strdup(opt->secret);
    s->ca_file = mo_strdup(opt->ca_file);
    s->helo_name = mo_strdup(opt->helo_name);
    if (s->host == NULL || (opt->username != NULL && s->username == NULL) ||
        (opt->secret != NULL && s->secret == NULL) ||
        (opt->ca_file != NULL && s->ca_file == NULL) ||
        (opt->helo_name != NULL && s->helo_name == NULL))
        goto oom;
    s->port = opt->port;
    s->security = opt->security;
    s->auth = opt->auth;
    s->timeouts = opt->timeouts;
    s->on_step = opt->on_step;
    s->on_step_ctx = opt->on_step_ctx;
    if (s->timeouts.connect_ms <= 0)
        smtp_timeouts_default(&s->timeouts);
    s->transcript_on = true;
    smtp_conn_init(&s->conn);
    smtp_reply_parser_init(&s->parser);
    s->state = SMTP_STATE_IDLE;
    return s;
oom:
    smtp_session_free(s);
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
    return NULL;
}

void
smtp_session_free(struct smtp_session *s)
{
    if (s == NULL)
        return;
    smtp_conn_close(&s->conn);
    free(s->host);
    free(s->username);
    mo_free_secret(s->secret);
    free(s->ca_file);
    free(s->helo_name);
    for (size_t i = 0; i < s->n_lines; i++)
        free(s->lines[i]);
    free(s->lines);
    free(s);
}

const struct smtp_caps *
smtp_session_caps(const struct smtp_session *s)
{
    return &s->caps;
}

bool
smtp_session_is_tls(const struct smtp_session *s)
{
    return s->was_tls;
}

size_t
smtp_session_transcript_count(const struct smtp_session *s)
{
    return s->n_lines;
}

const char *
smtp_session_transcript_line(const struct smtp_session *s, size_t i)
{
    return i < s->n_lines ? s->lines[i] : NULL;
}

size_t
smtp_session_step_count(const struct smtp_session *s)
{
    return s->n_steps;
}

const struct smtp_step *
smtp_session_step(const struct smtp_session *s, size_t i)
{
    return i < s->n_steps ? &s->steps[i] : NULL;
}

void
smtp_session_transcript_clear(struct smtp_session *s)
{
    for (size_t i = 0; i < s->n_lines; i++)
        free(s->lines[i]);
    s->n_lines = 0;
    s->dropped_lines = 0;
}

void
smtp_session_set_transcript(struct smtp_session *s, bool on)
{
    s->transcript_on = on;
}

/* ---- open: connect, greeting, EHLO, STARTTLS, AUTH ---------------------------- */

static const char *
session_helo_name(struct smtp_session *s, char *buf, size_t size)
{
    if (s->helo_name != NULL)
        return s->helo_name;
    /* RFC 5321 4.1.4: a FQDN, or else an address literal of our end. */
    if (gethostname(buf, size) == 0 && buf[0] != '\0' && strchr(buf, '.') != NULL &&
        buf[strlen(buf) - 1] != '.')
        return buf;
    return s->conn.local_literal[0] ? s->conn.local_literal : "[127.0.0.1]";
}

static int
session_ehlo(struct smtp_session *s, struct mo_error *err)
{
    char host[256];
    char line[300];
    struct smtp_reply r;
    const char *name = session_helo_name(s, host, sizeof(host));

    memset(&s->caps, 0, sizeof(s->caps));
    session_enter(s, SMTP_STATE_EHLO);
    snprintf(line, sizeof(line), "EHLO %s", name);
    if (session_command(s, line, NULL, err) != 0 || session_flush(s, err) != 0 ||
        session_reply(s, SMTP_STATE_EHLO, &r, err) != 0) {
        session_broken(s, SMTP_STATE_EHLO, err);
        return -1;
    }
    if (r.code == 250)
        return smtp_caps_parse(&r, &s->caps, err) == 0
                   ? 0
                   : (session_broken(s, SMTP_STATE_EHLO, err), -1);
    if (r.code >= 400 && r.code < 500) {
        reply_error(err, SMTP_STATE_EHLO, &r, MO_ERR_REJECTED, NULL, "the server refused EHLO");
        session_broken(s, SMTP_STATE_EHLO, err);
        return -1;
    }
    /* An old server that does not know EHLO: HELO, and no extensions. */
    session_enter(s, SMTP_STATE_HELO);
    snprintf(line, sizeof(line), "HELO %s", name);
    if (session_command(s, line, NULL, err) != 0 || session_flush(s, err) != 0 ||
        session_reply(s, SMTP_STATE_HELO, &r, err) != 0) {
        session_broken(s, SMTP_STATE_HELO, err);
        return -1;
    }
    if (r.code != 250) {
        reply_error(err, SMTP_STATE_HELO, &r, MO_ERR_REJECTED, NULL,
                    "the server refused both EHLO and HELO");
        session_broken(s, SMTP_STATE_HELO, err);
        return -1;
    }
    return 0;
}

static int
session_greeting(struct smtp_session *s, struct mo_error *err)
{
    struct smtp_reply r;

    session_enter(s, SMTP_STATE_GREETING);
    if (session_reply(s, SMTP_STATE_GREETING, &r, err) != 0) {
        if (err != NULL && s->conn.ssl == NULL && s->port == 465 &&
            err->category == MO_ERR_PROTOCOL) {
            mo_error_set(err, MO_ERR_PROTOCOL, "security",
                         "the server on port 465 sent no greeting: this port expects SSL/TLS "
                         "from the first byte; choose security SSL/TLS, or use port 587 with "
                         "STARTTLS");
            err->temporary = false;
        }
        session_broken(s, SMTP_STATE_GREETING, err);
        return -1;
    }
    if (r.code != 220) {
        reply_error(err, SMTP_STATE_GREETING, &r, MO_ERR_REJECTED, NULL,
                    "the server does not accept mail now");
        session_broken(s, SMTP_STATE_GREETING, err);
        return -1;
    }
    return 0;
}

static int
session_starttls(struct smtp_session *s, struct mo_error *err)
{
    struct smtp_reply r;

    session_enter(s, SMTP_STATE_STARTTLS);
    if (!(s->caps.flags & SMTP_CAP_STARTTLS)) {
        mo_error_set(err, MO_ERR_TLS, "security",
                     "the server on port %u does not offer STARTTLS, so the connection cannot "
                     "be encrypted and nothing was sent; use port 465 with SSL/TLS, or a port "
                     "that offers STARTTLS (587)",
                     s->port);
        session_broken(s, SMTP_STATE_STARTTLS, err);
        return -1;
    }
    if (session_command(s, "STARTTLS", NULL, err) != 0 || session_flush(s, err) != 0 ||
        session_reply(s, SMTP_STATE_STARTTLS, &r, err) != 0) {
        session_broken(s, SMTP_STATE_STARTTLS, err);
        return -1;
    }
    if (r.code != 220) {
        reply_error(err, SMTP_STATE_STARTTLS, &r, MO_ERR_TLS, "security",
                    "the server refused STARTTLS");
        session_broken(s, SMTP_STATE_STARTTLS, err);
        return -1;
    }
    /* RFC 3207 4.2: anything the server sent ahead of the handshake is an attack. */
    if (smtp_conn_has_pending(&s->conn)) {
        mo_error_set(err, MO_ERR_TLS, "security",
                     "the server sent data before the TLS handshake (possible injection "
                     "attack); the connection was dropped");
        session_broken(s, SMTP_STATE_STARTTLS, err);
        return -1;
    }
    session_enter(s, SMTP_STATE_TLS);
    if (smtp_conn_start_tls(&s->conn, s->host, s->port, s->ca_file, s->timeouts.connect_ms, err) !=
        0) {
        session_broken(s, SMTP_STATE_TLS, err);
        return -1;
    }
    session_notef(s, "TLS established (%s, %s)", s->conn.tls_version, s->conn.tls_cipher);
    s->was_tls = true;
    /* RFC 3207 4.2: forget what was learnt in clear and ask again. */
    return session_ehlo(s, err);
}

static const char *
auth_field_for(const struct smtp_reply *r)
{
    /* 530 5.7.0 "Must issue a STARTTLS command first" and 538 5.7.11: encryption. */
    if (r->code == 538 || (r->code == 530 && strstr(r->enhanced, "5.7.0") != NULL &&
                           strstr(r->text, "STARTTLS") != NULL))
        return "security";
    if (r->code == 504)
        return "auth";
    return "password";
}

static int
session_auth(struct smtp_session *s, struct mo_error *err)
{
    struct smtp_auth *a = NULL;
    struct mo_buf out;
    struct mo_buf line;
    struct smtp_reply r;
    enum smtp_auth_mech mech = s->auth;
    bool has_initial = false;
    int rc = -1;

    mo_buf_init(&out, 32768);
    mo_buf_init(&line, 32768);
    session_enter(s, SMTP_STATE_AUTH);
    if (s->conn.ssl == NULL && !(s->security == SMTP_SECURITY_NONE && s->conn.is_loopback)) {
        mo_error_set(err, MO_ERR_CONFIG, "security",
                     "refusing to send the password over an unencrypted connection to %s; "
                     "choose STARTTLS or SSL/TLS",
                     s->host);
        goto broken;
    }
    if (!(s->caps.flags & SMTP_CAP_AUTH) || s->caps.auth_mechs == 0) {
        mo_error_set(err, MO_ERR_AUTH, s->conn.ssl == NULL ? "security" : "username",
                     "the server on port %u does not offer login (AUTH)%s", s->port,
                     s->conn.ssl == NULL
                         ? "; many servers offer it only over an encrypted connection: choose "
                           "STARTTLS or SSL/TLS"
                         : "; it may be a relay that needs no user name, or the wrong server");
        goto broken;
    }
    if (mech == SMTP_AUTH_AUTO)
        mech = smtp_auth_choose(s->caps.auth_mechs, false);
    if (mech == SMTP_AUTH_AUTO || !(s->caps.auth_mechs & (1u << mech))) {
        mo_error_set(err, MO_ERR_AUTH, "auth", "the server does not offer the login method %s",
                     smtp_auth_mech_name(mech == SMTP_AUTH_AUTO ? s->auth : mech));
        goto broken;
    }
    a = smtp_auth_new(mech, s->username, s->secret, err);
    if (a == NULL || smtp_auth_initial(a, &out, &has_initial, err) != 0)
        goto broken;
    if (mo_buf_appendf(&line, err, "AUTH %s%s%s", smtp_auth_mech_name(mech), has_initial ? " " : "",
                       has_initial ? mo_buf_cstr(&out) : "") != 0)
        goto broken;
    {
        char shown[64];
        snprintf(shown, sizeof(shown), "AUTH %s%s", smtp_auth_mech_name(mech),
                 has_initial ? " <redacted>" : "");
        if (session_command(s, mo_buf_cstr(&line), shown, err) != 0 || session_flush(s, err) != 0)
            goto broken;
    }
    for (int round = 0;; round++) {
        if (session_reply(s, SMTP_STATE_AUTH, &r, err) != 0)
            goto broken;
        if (r.code == 235)
            break;
        if (r.code != 334 || round > 8) {
            if (r.code == 334)
                mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the login did not finish");
            else
                reply_error(err, SMTP_STATE_AUTH, &r, MO_ERR_AUTH, auth_field_for(&r),
                            "the server refused the login");
            if (err != NULL)
                err->stage = "auth";
            mo_wipe(line.data, line.cap);
            goto out_keep;
        }
        mo_buf_reset(&out);
        if (smtp_auth_step(a, r.text, &out, err) != 0) {
            if (err == NULL || err->category != MO_ERR_AUTH)
                goto broken;
            /* The server refused in a challenge: end the exchange (RFC 4954 4: "*",
             * RFC 7628 3.2.3: an empty line for XOAUTH2) and take its final code. */
            if (session_command(s, mech == SMTP_AUTH_XOAUTH2 ? "" : "*", NULL, NULL) == 0 &&
                session_flush(s, NULL) == 0 && session_reply(s, SMTP_STATE_AUTH, &r, NULL) == 0 &&
                r.code >= 400) {
                err->smtp_code = r.code;
                memcpy(err->enhanced, r.enhanced, sizeof(err->enhanced));
                err->temporary = r.code < 500;
            }
            err->stage = "auth";
            goto out_keep;
        }
        if (session_command(s, mo_buf_cstr(&out), "<redacted>", err) != 0 ||
            session_flush(s, err) != 0)
            goto broken;
    }
    if (smtp_auth_finish(a, err) != 0)
        goto broken;
    rc = 0;
    goto out;
broken:
    session_broken(s, SMTP_STATE_AUTH, err);
    goto out;
out_keep:
    /* The server refused: keep it polite and close after QUIT. */
    session_fail_stage(s, SMTP_STATE_AUTH, err);
    (void)session_command(s, "QUIT", NULL, NULL);
    (void)session_flush(s, NULL);
    smtp_conn_close(&s->conn);
    session_enter(s, SMTP_STATE_CLOSED);
out:
    if (line.data != NULL)
        mo_wipe(line.data, line.cap);
    mo_buf_wipe_free(&line);
    mo_buf_wipe_free(&out);
    smtp_auth_free(a);
    return rc;
}

int
smtp_session_open(struct smtp_session *s, struct mo_error *err)
{
    mo_error_clear(err);
    if (s->state != SMTP_STATE_IDLE && s->state != SMTP_STATE_CLOSED) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the session is already open");
        return -1;
    }
    smtp_conn_close(&s->conn);
    smtp_conn_init(&s->conn);
    smtp_reply_parser_init(&s->parser);
    s->need_rset = false;
    s->was_tls = false;
    s->n_steps = 0;
    s->step_t0 = mo_now_ms();
    session_enter(s, SMTP_STATE_CONNECT);
    if (smtp_conn_open(&s->conn, s->host, s->port, s->timeouts.connect_ms, err) != 0) {
        bool dns_failed = err != NULL && err->stage != NULL && strcmp(err->stage, "dns") == 0;
        session_step(s, "dns", !dns_failed);
        if (!dns_failed)
            session_step(s, "connect", false);
        session_broken(s, SMTP_STATE_CONNECT, err);
        return -1;
    }
    /* The lookup and the connect are one call below; split their durations. */
    s->step_t0 += s->conn.dns_ms;
    session_step_add(s, "dns", true, s->conn.dns_ms);
    session_step(s, "connect", true);
    session_notef(s, "connected to %s port %u", s->conn.peer, s->port);
    if (s->security == SMTP_SECURITY_TLS) {
        session_enter(s, SMTP_STATE_TLS);
        if (smtp_conn_start_tls(&s->conn, s->host, s->port, s->ca_file, s->timeouts.connect_ms,
                                err) != 0) {
            session_step(s, "tls", false);
            session_broken(s, SMTP_STATE_TLS, err);
            return -1;
        }
        session_step(s, "tls", true);
        session_notef(s, "TLS established (%s, %s)", s->conn.tls_version, s->conn.tls_cipher);
        s->was_tls = true;
    }
    if (session_greeting(s, err) != 0 || session_ehlo(s, err) != 0) {
        session_step(s, "greeting", false);
        return -1;
    }
    session_step(s, "greeting", true);
    if (s->security == SMTP_SECURITY_STARTTLS) {
        if (session_starttls(s, err) != 0) {
            session_step(s, "tls", false);
            return -1;
        }
        session_step(s, "tls", true);
    }
    if (s->username != NULL) {
        if (session_auth(s, err) != 0) {
            session_step(s, "login", false);
            return -1;
        }
        session_step(s, "login", true);
    }
    session_enter(s, SMTP_STATE_READY);
    return 0;
}

/* ---- transactions ------------------------------------------------------------ */

static bool
message_has_8bit(const char *msg, size_t len)
{
    const uint64_t high = 0x8080808080808080ull;
    size_t i = 0;

    /* Eight bytes at a time: this scan runs over every byte of every message. */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, msg + i, 8);
        if (w & high)
            return true;
    }
    for (; i < len; i++)
        if ((unsigned char)msg[i] & 0x80)
            return true;
    return false;
}

/*
 * Writes the message with CRLF line ends and dot-stuffing (RFC 5321 4.5.2),
 * then the terminating ".". Bare LF line ends are sent as CRLF. Runs of lines
 * that need neither go out as they are, without a copy when they are large.
 */
static int
session_write_body(struct smtp_session *s, const char *msg, size_t len, struct mo_error *err)
{
    int t = s->timeouts.data_block_ms;
    const char *end = msg + len;
    const char *run = msg; /* bytes from here on can be sent unchanged */
    const char *p = msg;   /* the start of the current line */

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        if (*p == '.') {
            if (smtp_conn_write(&s->conn, run, (size_t)(p - run), t, err) != 0 ||
                smtp_conn_write(&s->conn, ".", 1, t, err) != 0)
                return -1;
            run = p;
        }
        if (nl == NULL) { /* the last line has no line end: give it one */
            if (smtp_conn_write(&s->conn, run, (size_t)(end - run), t, err) != 0 ||
                smtp_conn_write(&s->conn, "\r\n", 2, t, err) != 0)
                return -1;
            run = end;
            break;
        }
        if (nl == p || nl[-1] != '\r') { /* a bare LF */
            if (smtp_conn_write(&s->conn, run, (size_t)(nl - run), t, err) != 0 ||
                smtp_conn_write(&s->conn, "\r\n", 2, t, err) != 0)
                return -1;
            run = nl + 1;
        }
        p = nl + 1;
    }
    if (smtp_conn_write(&s->conn, run, (size_t)(end - run), t, err) != 0 ||
        smtp_conn_write(&s->conn, ".\r\n", 3, t, err) != 0)
        return -1;
    return smtp_conn_flush(&s->conn, t, err);
}

/* Builds "MAIL FROM:<...> params" into line. */
static int
mail_command(const struct smtp_session *s, const struct smtp_envelope *env, size_t msg_len,
             bool has_8bit, char *line, size_t size)
{
    int n = snprintf(line, size, "MAIL FROM:<%s>", env->from);
    size_t used;

    if (n < 0 || (size_t)n >= size)
        return -1;
    used = (size_t)n;
    if (s->caps.flags & SMTP_CAP_SIZE) {
        n = snprintf(line + used, size - used, " SIZE=%zu", msg_len);
        used += n > 0 ? (size_t)n : 0;
    }
    if ((has_8bit || env->needs_smtputf8) && (s->caps.flags & SMTP_CAP_8BITMIME)) {
        n = snprintf(line + used, size - used, " BODY=8BITMIME");
        used += n > 0 ? (size_t)n : 0;
    }
    if (env->needs_smtputf8) {
        n = snprintf(line + used, size - used, " SMTPUTF8");
        used += n > 0 ? (size_t)n : 0;
    }
    return used < size ? 0 : -1;
}

/* Copies a reply's text into a smaller field, lines joined by spaces, cut if need be. */
static void
text_copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] == '\n' ? ' ' : src[i];
    dst[n] = '\0';
}

static void
copy_reply_to_rcpt(struct smtp_rcpt_result *rr, const struct smtp_reply *r)
{
    rr->code = r->code;
    rr->ok = r->code >= 200 && r->code < 300;
    memcpy(rr->enhanced, r->enhanced, sizeof(rr->enhanced));
    text_copy(rr->text, sizeof(rr->text), r->text);
}

/*
 * Sends RSET (when due), MAIL, RCPT... and DATA, pipelined within the window
 * when the server allows it, and reads each reply in order.
 * Returns 0 when DATA got its 354 with at least one accepted recipient.
 */
static int
session_envelope(struct smtp_session *s, const struct smtp_envelope *env, const char *mail_line,
                 struct smtp_send_result *res, struct mo_error *err)
{
    size_t window = (s->caps.flags & SMTP_CAP_PIPELINING) ? SESSION_WINDOW : 1;
    size_t first = s->need_rset ? 0 : 1; /* command 0 is RSET */
    size_t total = env->n_rcpts + 3;     /* RSET, MAIL, RCPT..., DATA */
    size_t sent = first;
    size_t got = first;
    bool mail_ok = false;
    bool data_ok = false;
    bool stop_sending = false;
    struct smtp_reply mail_reply;
    struct smtp_reply r;
    char line[1100];

    memset(&mail_reply, 0, sizeof(mail_reply));
    while (got < total) {
        /* Queue what the window allows; DATA only once its group can be judged. */
        while (!stop_sending && sent < total && sent - got < window) {
            if (sent == 0) {
                session_enter(s, SMTP_STATE_RSET);
                if (session_command(s, "RSET", NULL, err) != 0)
                    return -1;
            } else if (sent == 1) {
                if (session_command(s, mail_line, NULL, err) != 0)
                    return -1;
            } else if (sent < total - 1) {
                snprintf(line, sizeof(line), "RCPT TO:<%s>", env->rcpts[sent - 2]);
                if (session_command(s, line, NULL, err) != 0)
                    return -1;
            } else {
                if (session_command(s, "DATA", NULL, err) != 0)
                    return -1;
            }
            sent++;
        }
        if (session_flush(s, err) != 0)
            return -1;
        if (got == sent) /* nothing more was sent: the transaction was abandoned */
            break;
        {
            enum smtp_state st = got == 0          ? SMTP_STATE_RSET
                                 : got == 1        ? SMTP_STATE_MAIL
                                 : got < total - 1 ? SMTP_STATE_RCPT
                                                   : SMTP_STATE_DATA;
            session_enter(s, st);
            if (session_reply(s, st, &r, err) != 0)
                return -1;
            if (st == SMTP_STATE_RSET) {
                s->need_rset = false;
                if (r.code < 200 || r.code >= 300) {
                    reply_error(err, st, &r, MO_ERR_PROTOCOL, NULL, "the server refused RSET");
                    return -1;
                }
            } else if (st == SMTP_STATE_MAIL) {
                s->need_rset = true;
                mail_reply = r;
                mail_ok = r.code >= 200 && r.code < 300;
                if (!mail_ok && window == 1)
                    stop_sending = true;
            } else if (st == SMTP_STATE_RCPT) {
                struct smtp_rcpt_result *rr = &res->rcpts[got - 2];
                copy_reply_to_rcpt(rr, &r);
                if (rr->ok && mail_ok)
                    res->n_accepted++;
                /* Without pipelining, DATA is only worth sending with a recipient. */
                if (window == 1 && got == total - 2 && res->n_accepted == 0)
                    stop_sending = true;
            } else {
                data_ok = r.code == 354;
                if (data_ok && (!mail_ok || res->n_accepted == 0)) {
                    /* A pipelining server said 354 with nobody to deliver to: end it empty. */
                    session_enter(s, SMTP_STATE_BODY);
                    if (session_command(s, ".", NULL, err) != 0 || session_flush(s, err) != 0 ||
                        session_reply(s, SMTP_STATE_BODY, &r, err) != 0)
                        return -1;
                    data_ok = false;
                } else if (!data_ok && mail_ok && res->n_accepted > 0) {
                    reply_error(err, SMTP_STATE_DATA, &r, MO_ERR_REJECTED, NULL,
                                "the server refused DATA");
                    return -1;
                }
            }
            got++;
        }
    }
    if (!mail_ok) {
        reply_error(err, SMTP_STATE_MAIL, &mail_reply, MO_ERR_REJECTED, "sender",
                    "the server refused the sender");
        return -1;
    }
    if (res->n_accepted == 0) {
        const struct smtp_rcpt_result *first_bad = &res->rcpts[0];
        mo_error_set(err, MO_ERR_REJECTED, "recipient",
                     "the server refused every recipient (first: <%s>: %d %s %s)",
                     first_bad->address, first_bad->code, first_bad->enhanced, first_bad->text);
        if (err != NULL) {
            err->stage = "rcpt";
            err->smtp_code = first_bad->code;
            memcpy(err->enhanced, first_bad->enhanced, sizeof(err->enhanced));
            err->temporary = true;
            for (size_t i = 0; i < res->n_rcpts; i++)
                if (res->rcpts[i].code >= 500)
                    err->temporary = false;
        }
        return -1;
    }
    return data_ok ? 0 : -1;
}

static int
session_send(struct smtp_session *s, const struct smtp_envelope *env, const char *msg,
             size_t msg_len, struct smtp_send_result *res, struct mo_error *err)
{
    char mail_line[1100];
    struct smtp_reply r;
    bool has_8bit;

    mo_error_clear(err);
    memset(res, 0, sizeof(*res));
    if (s->state != SMTP_STATE_READY) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the connection is not open");
        if (err != NULL) {
            err->stage = "mail";
            err->temporary = true;
        }
        return -1;
    }
    if (env->n_rcpts == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "recipient", "the message has no recipient");
        return -1;
    }
    res->rcpts = calloc(env->n_rcpts, sizeof(*res->rcpts));
    if (res->rcpts == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    res->n_rcpts = env->n_rcpts;
    for (size_t i = 0; i < env->n_rcpts; i++)
        res->rcpts[i].address = env->rcpts[i];
    if (env->needs_smtputf8 && !(s->caps.flags & SMTP_CAP_SMTPUTF8)) {
        mo_error_set(err, MO_ERR_CONFIG, NULL,
                     "an address has non-ASCII characters before the @, and this server does "
                     "not support international addresses (SMTPUTF8)");
        if (err != NULL)
            err->stage = "mail";
        return -1;
    }
    if ((s->caps.flags & SMTP_CAP_SIZE) && s->caps.size_max > 0 && msg_len > s->caps.size_max) {
        mo_error_set(err, MO_ERR_REJECTED, NULL,
                     "the message is %zu bytes and the server accepts at most %llu bytes", msg_len,
                     (unsigned long long)s->caps.size_max);
        if (err != NULL)
            err->stage = "mail";
        return -1;
    }
    has_8bit = message_has_8bit(msg, msg_len);
    if (mail_command(s, env, msg_len, has_8bit, mail_line, sizeof(mail_line)) != 0) {
        mo_error_set(err, MO_ERR_CONFIG, "sender", "the sender address is too long");
        return -1;
    }
    if (session_envelope(s, env, mail_line, res, err) != 0) {
        if (s->conn.fd < 0 || (err != NULL && err->category == MO_ERR_PROTOCOL))
            session_broken(s, s->state, err);
        else
            session_enter(s, SMTP_STATE_READY);
        return -1;
    }
    session_enter(s, SMTP_STATE_BODY);
    session_notef(s, "message: %zu bytes", msg_len);
    if (session_write_body(s, msg, msg_len, err) != 0) {
        session_broken(s, SMTP_STATE_BODY, err);
        return -1;
    }
    if (session_reply(s, SMTP_STATE_BODY, &r, err) != 0) {
        /* The "." left; whether the server kept the message is unknown. */
        res->maybe_delivered = true;
        mo_error_prefix(err, "the connection broke after the message was sent, before the "
                             "server confirmed it");
        session_broken(s, SMTP_STATE_BODY, err);
        if (err != NULL)
            err->temporary = true;
        return -1;
    }
    res->code = r.code;
    memcpy(res->enhanced, r.enhanced, sizeof(res->enhanced));
    text_copy(res->text, sizeof(res->text), r.text);
    if (r.code < 200 || r.code >= 300) {
        reply_error(err, SMTP_STATE_BODY, &r, MO_ERR_REJECTED, NULL,
                    "the server refused the message");
        res->n_accepted = 0;
        session_enter(s, SMTP_STATE_READY);
        return -1;
    }
    s->need_rset = false;
    session_enter(s, SMTP_STATE_READY);
    return 0;
}

static int
session_try_sender(struct smtp_session *s, const char *from, struct mo_error *err)
{
    char line[1100];
    struct smtp_reply r;
    int rc = -1;

    mo_error_clear(err);
    if (s->state != SMTP_STATE_READY) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the connection is not open");
        return -1;
    }
    snprintf(line, sizeof(line), "MAIL FROM:<%s>", from);
    session_enter(s, SMTP_STATE_MAIL);
    if (session_command(s, line, NULL, err) != 0 || session_flush(s, err) != 0 ||
        session_reply(s, SMTP_STATE_MAIL, &r, err) != 0) {
        session_broken(s, SMTP_STATE_MAIL, err);
        return -1;
    }
    if (r.code >= 200 && r.code < 300)
        rc = 0;
    else
        reply_error(err, SMTP_STATE_MAIL, &r, MO_ERR_REJECTED, "sender",
                    "the server refused the sender");
    s->need_rset = true;
    session_enter(s, SMTP_STATE_RSET);
    if (session_command(s, "RSET", NULL, NULL) == 0 && session_flush(s, NULL) == 0 &&
        session_reply(s, SMTP_STATE_RSET, &r, NULL) == 0)
        s->need_rset = false;
    session_enter(s, SMTP_STATE_READY);
    return rc;
}

int
smtp_session_send(struct smtp_session *s, const struct smtp_envelope *env, const char *msg,
                  size_t msg_len, struct smtp_send_result *res, struct mo_error *err)
{
    int rc;

    s->step_t0 = mo_now_ms();
    rc = session_send(s, env, msg, msg_len, res, err);
    session_step(s, "send", rc == 0);
    return rc;
}

int
smtp_session_try_sender(struct smtp_session *s, const char *from, struct mo_error *err)
{
    int rc;

    s->step_t0 = mo_now_ms();
    rc = session_try_sender(s, from, err);
    session_step(s, "sender", rc == 0);
    return rc;
}

int
smtp_session_quit(struct smtp_session *s, struct mo_error *err)
{
    struct smtp_reply r;
    int rc = 0;

    mo_error_clear(err);
    if (s->state == SMTP_STATE_CLOSED || s->state == SMTP_STATE_IDLE)
        return 0;
    session_enter(s, SMTP_STATE_QUIT);
    if (session_command(s, "QUIT", NULL, err) != 0 || session_flush(s, err) != 0 ||
        session_reply(s, SMTP_STATE_QUIT, &r, err) != 0) {
        session_fail_stage(s, SMTP_STATE_QUIT, err);
        rc = -1;
    }
    smtp_conn_close(&s->conn);
    session_enter(s, SMTP_STATE_CLOSED);
    return rc;
}
