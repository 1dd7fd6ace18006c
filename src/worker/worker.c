/*
 * worker.c - delivery: the loop that takes due messages from the queue and
 * hands them to each account's provider, one reused SMTP session per thread.
 *
 * Shape (follow a message from queue to 250 here):
 *   worker_run          main thread: recover expired leases once, then ask the
 *                       queue which accounts have due mail; for each one that is
 *                       not paused (breaker.c) and not over its daily limit,
 *                       start delivery threads up to max_connections. A second
 *                       thread for an account starts only once one login worked,
 *                       so a wrong password costs one AUTH, not one per thread.
 *   delivery_main       one thread, one account: the worker's queue connection
 *                       (shared: one page cache; the queue's lock and the write
 *                       gate take turns), its own account store and breaker
 *                       connections. Claim a batch under a lease, open
 *                       the session when needed, send message after message on it
 *                       (the engine RSETs after a failed transaction), judge each
 *                       recipient (classify.c), record the outcomes with
 *                       queue_finish (at the batch's end, and every 200 ms for a
 *                       slow provider), claim again; QUIT when nothing is due.
 * The breaker: a login refused (AUTH), bad settings (CONFIG) or a provider's
 * limit (550 5.4.5, 454 4.7.0 too many logins, 421 4.7.0) pause the account for
 * breaker_cooldown_s; what was claimed is deferred to the pause's end, and no
 * session is opened for the account until then (or until `account check`
 * passes and calls worker_account_resume).
 * Pacing: the provider's daily limit (account_provider.daily_limit) caps the
 * messages claimed in any 24 hours; over it, mail simply waits, queued.
 * Shutdown: *stop ends each thread after the message in flight: outcomes are
 * recorded, claimed-but-unsent messages released, the session QUIT.
 * RFCs: 5321 (replies, RSET, QUIT), 3463 (enhanced codes).
 * Leaves out: MX delivery, DSN bounces, spool import (the callers do it).
 */
#include "worker/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account/account.h"
#include "queue/queue.h"
#include "smtp/smtp.h"
#include "worker/worker_internal.h"

#define WORKER_DEFAULT_BATCH 50
#define WORKER_DEFAULT_LEASE_S 300
#define WORKER_DEFAULT_CONNECTIONS 2
#define WORKER_DEFAULT_COOLDOWN_S 900
#define WORKER_OPEN_TRIES 2               /* failed opens per batch before deferring the rest */
#define WORKER_TRANSCRIPT_MAX (64 * 1024) /* bytes of transcript kept per attempt */
#define WORKER_FINISH_TRIES 5
#define WORKER_RECOVER_EVERY_MS 10000
#define WORKER_USAGE_FLUSH_MS 1000
#define WORKER_RECORD_EVERY_MS 200 /* outcomes wait at most this long for their commit */
#define WORKER_IDLE_RUNS_MAX 3 /* once: give up on an account whose threads claim nothing */

/* ---- shared state ------------------------------------------------------------ */

/* One account as the main loop and its delivery threads see it (under worker.mu). */
struct worker_account {
    char *name;                /* "default" for the default account */
    int active;                /* running delivery threads */
    bool opened_ok;            /* a session opened with the current settings */
    int64_t paused_until;      /* set by a thread that tripped the breaker */
    bool pause_in_db;          /* paused_until is recorded in account_state too */
    int64_t in_flight;         /* claimed, not finished: counted against the daily limit */
    int64_t unflushed;         /* accepted, not yet in account_usage (delivery_flush_usage) */
    int64_t flushed_ms;        /* when account_usage was last written */
    bool flushing;             /* a thread is writing unflushed */
    unsigned daily_limit;      /* from the provider table; 0: none */
    unsigned limit_generation; /* the generation daily_limit was read in (+1; 0: never) */
    int idle_runs;             /* consecutive threads that claimed nothing */
    bool said_paused;          /* the pause was logged (once per pause) */
    bool said_limited;         /* the daily limit was logged (once per episode) */
};

struct delivery;

struct worker {
    const struct worker_options *opt;
    const char *home;
    char owner[64];
    int batch;
    int lease_s;
    struct queue_options qopt; /* for the worker's queue connection */
    struct queue *q;           /* one connection for the main loop and every thread */
    int max_connections;
    int64_t cooldown_s;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a thread ended or a login worked */
    struct worker_account **accounts;
    size_t n_accounts;
    struct delivery *threads; /* running or finished, not joined */
    size_t n_active;
    unsigned generation; /* bumped on reload */
    struct worker_stats stats;
};

/* One delivery thread. */
struct delivery {
    struct worker *w;
    struct worker_account *acct;
    pthread_t tid;
    bool finished;
    struct delivery *next;

    struct queue *q; /* the worker's (w->q): one page cache, writes in turn */

    /* Owned by the thread. */
    struct account_store *st;
    struct breaker *b;
    struct account_settings settings;
    bool has_settings;
    unsigned generation;
    struct smtp_options sopt;
    struct smtp_session *session;
    bool is_open;
    bool was_open;        /* a session was open before in this thread: the next open reconnects */
    size_t session_sends; /* messages sent on the open session */
    size_t claimed;       /* messages claimed over the thread's life */
};

/* One attempt at one claimed message, until queue_finish has it. */
struct attempt {
    bool has_outcome; /* to queue_finish */
    bool recorded;    /* queue_finish has it already (delivery_batch records as it goes) */
    bool needs_log;   /* deferred without an attempt: log it at the end */
    struct queue_outcome o;
    struct queue_rcpt_outcome *rcpts; /* owned; o.rcpts */
    struct smtp_send_result res;      /* rcpt texts live here */
    struct mo_error err;              /* the send's or the open's error */
    char *transcript;                 /* owned; o.transcript */
};

/* The flags are set by a signal handler (or another thread): read them atomically. */
static bool
worker_stopping(const struct worker *w)
{
    return w->opt->stop != NULL && __atomic_load_n(w->opt->stop, __ATOMIC_RELAXED) != 0;
}

static void
stat_add(struct worker *w, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&w->mu);
    *field += n;
    pthread_mutex_unlock(&w->mu);
}

static bool
is_default_account(const struct worker_account *a)
{
    return strcmp(a->name, "default") == 0;
}

static int64_t
unix_now(void)
{
    return (int64_t)time(NULL);
}

/* "2026-11-26 05:10:00 UTC" for the log. */
static void
format_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "%lld", (long long)t);
}

/* ---- attempts ---------------------------------------------------------------- */

static void
attempt_clear(struct attempt *a)
{
    smtp_send_result_clear(&a->res);
    free(a->rcpts);
    free(a->transcript);
    memset(a, 0, sizeof(*a));
}

/* The session's transcript lines since the last attempt took its share. Caller frees. */
static char *
delivery_take_transcript(struct delivery *d)
{
    size_t n = d->session != NULL ? smtp_session_transcript_count(d->session) : 0;
    struct mo_buf b;

    mo_buf_init(&b, WORKER_TRANSCRIPT_MAX);
    for (size_t i = 0; i < n; i++) {
        const char *line = smtp_session_transcript_line(d->session, i);
        size_t len = strlen(line);
        if (b.len + len + 64 > WORKER_TRANSCRIPT_MAX) {
            (void)mo_buf_appendf(&b, NULL, "%s*: (%zu more lines not kept)", b.len > 0 ? "\n" : "",
                                 n - i);
            break;
        }
        if ((b.len > 0 && mo_buf_append(&b, "\n", 1, NULL) != 0) ||
            mo_buf_append(&b, line, len, NULL) != 0)
            break;
    }
    /* Handed out: the session keeps nothing, however many messages it carries. */
    if (d->session != NULL)
        smtp_session_transcript_clear(d->session);
    return b.data; /* NULL when nothing was added; the buffer's storage is handed over */
}

/*
 * The server's own words in an engine error: err->text reads "the server
 * refused the login: 535 5.7.8 Username and ...", and the queue stores code,
 * enhanced code and text side by side, so the text given to it starts after
 * them. Errors without a reply (connect, TLS, a drop) keep their whole text.
 */
static const char *
reply_words(const struct mo_error *err)
{
    char code[16];
    const char *p;

    if (err->smtp_code <= 0)
        return err->text;
    snprintf(code, sizeof(code), "%d", err->smtp_code);
    for (p = strstr(err->text, code); p != NULL; p = strstr(p + 1, code)) {
        const char *q = p + strlen(code);
        if ((p != err->text && p[-1] != ' ') || (*q != ' ' && *q != '-'))
            continue;
        q++;
        if (err->enhanced[0] && strncmp(q, err->enhanced, strlen(err->enhanced)) == 0 &&
            q[strlen(err->enhanced)] == ' ')
            q += strlen(err->enhanced) + 1;
        return *q != '\0' ? q : err->text;
    }
    return err->text;
}

/* The whole message waits: every recipient deferred with err's reply, no earlier than until. */
static void
attempt_defer(struct attempt *a, const struct queue_job *job, const struct mo_error *err,
              int64_t until, const char *transcript)
{
    a->has_outcome = true;
    a->needs_log = true;
    a->err = *err;
    a->o.id = job->id;
    a->o.rcpts = NULL;
    a->o.n_rcpts = 0;
    a->o.all = QUEUE_RCPT_DEFER;
    a->o.code = a->err.smtp_code;
    a->o.enhanced = a->err.enhanced[0] ? a->err.enhanced : NULL;
    a->o.text = reply_words(&a->err);
    a->o.defer_until = until;
    free(a->transcript);
    a->transcript = transcript != NULL ? strdup(transcript) : NULL;
    a->o.transcript = a->transcript;
}

static enum queue_rcpt_result
to_queue(enum worker_verdict v)
{
    return v == WORKER_DELIVERED ? QUEUE_RCPT_DELIVERED
           : v == WORKER_FAIL    ? QUEUE_RCPT_FAIL
                                 : QUEUE_RCPT_DEFER;
}

static void
rcpt_from_reply(struct queue_rcpt_outcome *r, int code, const char *enhanced, const char *text)
{
    r->result = to_queue(worker_reply_verdict(code, enhanced, text));
    r->code = code;
    r->enhanced = enhanced != NULL && enhanced[0] ? enhanced : NULL;
    r->text = text != NULL && text[0] ? text : NULL;
}

/*
 * Turns one smtp_session_send (rc, a->res, a->err) into per-recipient
 * results. The rules: 2xx delivered, 4xx later, 5xx refused unless it means
 * "later" (classify.c); a MAIL refusal decides for everyone; a refusal of
 * DATA or of the message decides for the recipients that were accepted; a
 * broken line defers (or is uncertain once the final "." went out).
 */
static void
attempt_judge(struct attempt *a, const struct queue_job *job, int rc)
{
    const struct mo_error *e = &a->err;
    const struct smtp_send_result *res = &a->res;
    size_t n = job->n_rcpts;

    a->has_outcome = true;
    a->o.id = job->id;
    a->o.uncertain = rc != 0 && res->maybe_delivered;
    if (rc == 0) {
        a->o.code = res->code;
        a->o.enhanced = res->enhanced[0] ? res->enhanced : NULL;
        a->o.text = res->text;
    } else {
        a->o.code = e->smtp_code;
        a->o.enhanced = e->enhanced[0] ? e->enhanced : NULL;
        a->o.text = reply_words(e);
    }
    a->rcpts = n > 0 ? calloc(n, sizeof(*a->rcpts)) : NULL;
    if (a->rcpts == NULL) {
        /* No memory for the details (or nobody left): one verdict for the whole message. */
        a->o.all = rc == 0 || e->category != MO_ERR_CONFIG ? QUEUE_RCPT_DEFER : QUEUE_RCPT_FAIL;
        if (n == 0)
            a->o.all = QUEUE_RCPT_FAIL;
        return;
    }
    a->o.rcpts = a->rcpts;
    a->o.n_rcpts = n;
    for (size_t i = 0; i < n; i++) {
        struct queue_rcpt_outcome *r = &a->rcpts[i];
        const struct smtp_rcpt_result *rr = i < res->n_rcpts ? &res->rcpts[i] : NULL;
        bool accepted = rr != NULL && rr->ok;

        r->address = job->rcpts[i];
        if (rc == 0) {
            if (accepted)
                rcpt_from_reply(r, res->code, res->enhanced, res->text);
            else
                rcpt_from_reply(r, rr != NULL ? rr->code : 0, rr != NULL ? rr->enhanced : NULL,
                                rr != NULL ? rr->text : NULL);
            continue;
        }
        switch (e->category) {
        case MO_ERR_CONFIG:
            /* This message cannot go through this account (SMTPUTF8 not offered, ...). */
            r->result = QUEUE_RCPT_FAIL;
            r->code = 0;
            r->text = e->text;
            break;
        case MO_ERR_REJECTED:
            if (e->stage != NULL && strcmp(e->stage, "mail") == 0) {
                if (e->smtp_code == 0) { /* refused before sending: over the SIZE limit */
                    r->result = QUEUE_RCPT_FAIL;
                    r->text = e->text;
                } else {
                    rcpt_from_reply(r, e->smtp_code, e->enhanced, reply_words(e));
                }
            } else if (accepted) {
                /* DATA or the message itself was refused: it decides for the accepted. */
                rcpt_from_reply(r, e->smtp_code, e->enhanced, reply_words(e));
            } else {
                rcpt_from_reply(r, rr != NULL ? rr->code : 0, rr != NULL ? rr->enhanced : NULL,
                                rr != NULL ? rr->text : e->text);
            }
            break;
        default:
            /* The line broke (PROTOCOL) or something local failed: nothing was accepted
             * for good, but a recipient refused for good stays refused. */
            if (rr != NULL && rr->code >= 500 &&
                worker_reply_verdict(rr->code, rr->enhanced, rr->text) == WORKER_FAIL) {
                rcpt_from_reply(r, rr->code, rr->enhanced, rr->text);
            } else {
                r->result = QUEUE_RCPT_DEFER;
                r->code = e->smtp_code;
                r->enhanced = e->enhanced[0] ? e->enhanced : NULL;
                r->text = reply_words(e);
            }
            break;
        }
    }
}

/* A provider's limit in any reply of this attempt: reason gets the reply. */
static bool
attempt_hit_quota(const struct attempt *a, int rc, char *reason, size_t size)
{
    const struct smtp_send_result *res = &a->res;

    if (rc != 0 && worker_reply_is_quota(a->err.smtp_code, a->err.enhanced, a->err.text)) {
        snprintf(reason, size, "%s", a->err.text);
        return true;
    }
    if (res->code != 0 && worker_reply_is_quota(res->code, res->enhanced, res->text)) {
        snprintf(reason, size, "%d %s %s", res->code, res->enhanced, res->text);
        return true;
    }
    for (size_t i = 0; i < res->n_rcpts; i++) {
        const struct smtp_rcpt_result *r = &res->rcpts[i];
        if (!r->ok && worker_reply_is_quota(r->code, r->enhanced, r->text)) {
            snprintf(reason, size, "recipient refused: %d %s %s", r->code, r->enhanced, r->text);
            return true;
        }
    }
    return false;
}

/* 421: the server is closing the connection (RFC 5321 3.8); don't send on it again. */
static bool
attempt_server_closing(const struct attempt *a, int rc)
{
    if (rc != 0 && a->err.smtp_code == 421)
        return true;
    if (a->res.code == 421)
        return true;
    for (size_t i = 0; i < a->res.n_rcpts; i++)
        if (a->res.rcpts[i].code == 421)
            return true;
    return false;
}

/* "sent", "deferred", "failed", "uncertain": what the queue will make of the outcome. */
static const char *
attempt_result_name(const struct attempt *a, size_t *n_delivered)
{
    size_t delivered = 0;
    size_t deferred = 0;

    *n_delivered = 0;
    if (a->o.uncertain)
        return "uncertain";
    if (a->o.rcpts == NULL)
        return a->o.all == QUEUE_RCPT_DELIVERED ? "sent"
               : a->o.all == QUEUE_RCPT_FAIL    ? "failed"
                                                : "deferred";
    for (size_t i = 0; i < a->o.n_rcpts; i++) {
        if (a->o.rcpts[i].result == QUEUE_RCPT_DELIVERED)
            delivered++;
        else if (a->o.rcpts[i].result == QUEUE_RCPT_DEFER)
            deferred++;
    }
    *n_delivered = delivered;
    if (deferred > 0)
        return "deferred";
    return delivered > 0 ? "sent" : "failed";
}

/* One INFO line per attempt: id, account, result, code. Never a secret. */
static void
attempt_log(struct delivery *d, const struct attempt *a)
{
    size_t delivered = 0;
    const char *result = attempt_result_name(a, &delivered);
    struct worker *w = d->w;

    pthread_mutex_lock(&w->mu);
    w->stats.attempts++;
    if (strcmp(result, "sent") == 0)
        w->stats.sent++;
    else if (strcmp(result, "deferred") == 0)
        w->stats.deferred++;
    else if (strcmp(result, "failed") == 0)
        w->stats.failed++;
    else
        w->stats.uncertain++;
    pthread_mutex_unlock(&w->mu);
    /* One call per line: with several threads the line stays whole. */
    flockfile(stderr);
    mo_log(MO_LOG_INFO,
           "message %lld account \"%s\": %s (%zu of %zu recipients delivered), %d%s%s: %s",
           (long long)a->o.id, d->acct->name, result, delivered, a->o.n_rcpts, a->o.code,
           a->o.enhanced != NULL ? " " : "", a->o.enhanced != NULL ? a->o.enhanced : "",
           a->o.text != NULL ? a->o.text : "");
    funlockfile(stderr);
}

/* ---- the breaker, from a delivery thread ----------------------------------- */

static bool
account_is_paused(struct worker *w, struct worker_account *a, int64_t *until)
{
    bool paused;

    pthread_mutex_lock(&w->mu);
    paused = a->paused_until > unix_now();
    if (until != NULL)
        *until = a->paused_until;
    pthread_mutex_unlock(&w->mu);
    return paused;
}

/* Pauses the account for the cool-down; returns when the pause ends. */
static int64_t
delivery_trip(struct delivery *d, const char *reason)
{
    struct worker *w = d->w;
    int64_t until = unix_now() + w->cooldown_s;
    struct mo_error err;
    char when[64];

    bool recorded = breaker_pause(d->b, d->acct->name, until, reason, &err) == 0;

    if (!recorded)
        mo_log(MO_LOG_ERROR, "account \"%s\": cannot record the pause: %s", d->acct->name,
               err.text);
    pthread_mutex_lock(&w->mu);
    if (d->acct->paused_until < until) {
        d->acct->paused_until = until;
        d->acct->pause_in_db = recorded;
    }
    d->acct->said_paused = true;
    w->stats.pauses++;
    pthread_mutex_unlock(&w->mu);
    format_time(until, when, sizeof(when));
    mo_log(MO_LOG_WARN, "account \"%s\" paused until %s (no login before then): %s", d->acct->name,
           when, reason);
    return until;
}

/*
 * Whether an open failure must stop the account: the provider refused the
 * login (AUTH), the settings cannot work (CONFIG), or it said "enough for now".
 * Everything else (DNS, connect, TLS, a 421 greeting) is passing trouble.
 */
static bool
open_error_trips(const struct mo_error *e)
{
    if (e->category == MO_ERR_AUTH || e->category == MO_ERR_CONFIG)
        return true;
    return e->smtp_code != 0 && worker_reply_is_quota(e->smtp_code, e->enhanced, e->text);
}

/* ---- sessions ---------------------------------------------------------------- */

/* Loads the account with its password and builds the session options. */
static int
delivery_load(struct delivery *d, struct mo_error *err)
{
    struct worker *w = d->w;
    struct account_settings *s = &d->settings;
    int cap_ms;

    account_settings_clear(s);
    d->has_settings = false;
    pthread_mutex_lock(&w->mu);
    d->generation = w->generation;
    pthread_mutex_unlock(&w->mu);
    if (account_store_get(d->st, d->acct->name, true, s, err) != 0) {
        mo_error_prefix(err, "account \"%s\"", d->acct->name);
        return -1;
    }
    memset(&d->sopt, 0, sizeof(d->sopt));
    d->sopt.host = s->host;
    d->sopt.port = s->port;
    d->sopt.security = s->security;
    d->sopt.username = s->username != NULL && s->username[0] ? s->username : NULL;
    d->sopt.secret = d->sopt.username != NULL ? s->password : NULL;
    d->sopt.auth = s->auth;
    d->sopt.ca_file = s->ca_file;
    if (d->sopt.username != NULL && d->sopt.secret == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "password",
                     "account \"%s\": no password is saved; set it with mailout account set",
                     d->acct->name);
        return -1;
    }
    smtp_timeouts_default(&d->sopt.timeouts);
    if (s->timeout_s > 0)
        smtp_timeouts_cap(&d->sopt.timeouts, s->timeout_s * 1000);
    if (w->opt->timeout_s > 0)
        smtp_timeouts_cap(&d->sopt.timeouts, w->opt->timeout_s * 1000);
    /* One wait must not eat the lease (RFC 5321's 10 minutes for the final reply would). */
    cap_ms = w->lease_s * 1000 / 3;
    smtp_timeouts_cap(&d->sopt.timeouts, cap_ms > 1000 ? cap_ms : 1000);
    d->has_settings = true;
    return 0;
}

/* QUITs (politely when the line is still up) and forgets the session. */
static void
delivery_close(struct delivery *d)
{
    if (d->session != NULL)
        (void)smtp_session_quit(d->session, NULL);
    smtp_session_free(d->session);
    d->session = NULL;
    d->is_open = false;
}

/* Opens the session if it is not open. 0, or -1 with err (the session stays closed). */
static int
delivery_open(struct delivery *d, struct mo_error *err)
{
    struct worker *w = d->w;

    if (d->is_open)
        return 0;
    if (d->session == NULL) {
        d->session = smtp_session_new(&d->sopt, err);
        if (d->session == NULL)
            return -1;
        smtp_session_set_transcript(d->session, true);
    }
    if (d->was_open)
        stat_add(w, &w->stats.reconnects, 1);
    if (smtp_session_open(d->session, err) != 0) {
        stat_add(w, &w->stats.open_failures, 1);
        return -1;
    }
    d->is_open = true;
    d->was_open = true;
    d->session_sends = 0;
    pthread_mutex_lock(&w->mu);
    w->stats.connections++;
    if (d->generation == w->generation)
        d->acct->opened_ok = true;
    pthread_cond_broadcast(&w->cv); /* the main loop may start the account's other threads */
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* ---- one batch ---------------------------------------------------------------- */

/* Defers jobs [from, n) with err, no earlier than until. */
static void
defer_rest(struct attempt *at, const struct queue_job *jobs, size_t from, size_t n,
           const struct mo_error *err, int64_t until, const char *transcript)
{
    for (size_t k = from; k < n; k++)
        if (!at[k].has_outcome)
            attempt_defer(&at[k], &jobs[k], err, until, transcript);
}

/* Sends one job on the open session into a->res and a->err. Returns the send's rc. */
static int
delivery_send(struct delivery *d, const struct queue_job *job, struct attempt *a)
{
    struct smtp_envelope env;
    int rc;

    env.from = job->from != NULL ? job->from : "";
    env.rcpts = (const char *const *)job->rcpts;
    env.n_rcpts = job->n_rcpts;
    env.needs_smtputf8 = job->needs_smtputf8;
    smtp_send_result_clear(&a->res);
    mo_error_clear(&a->err);
    rc = smtp_session_send(d->session, &env, job->data, job->len, &a->res, &a->err);
    return rc;
}

/*
 * Writes the account's accepted messages to account_usage (the daily limit's
 * count) at most once per WORKER_USAGE_FLUSH_MS, and always when force (the
 * thread ends). Until then they count from memory (acct->unflushed). A write
 * per batch cost a transaction, an fsync and every connection's page cache;
 * a kill -9 now forgets at most a second's count, which only paces.
 */
static void
delivery_flush_usage(struct delivery *d, bool force)
{
    struct worker_account *a = d->acct;
    struct mo_error err;
    int64_t now_ms = mo_now_ms();
    int64_t n;
    int rc;

    if (d->b == NULL)
        return;
    pthread_mutex_lock(&d->w->mu);
    n = a->unflushed;
    if (a->flushing || n <= 0 || (!force && now_ms - a->flushed_ms < WORKER_USAGE_FLUSH_MS)) {
        pthread_mutex_unlock(&d->w->mu);
        return;
    }
    a->flushing = true;
    pthread_mutex_unlock(&d->w->mu);
    rc = breaker_usage_add(d->b, a->name, unix_now(), n, &err);
    if (rc != 0)
        mo_log(MO_LOG_WARN, "account \"%s\": %s", a->name, err.text);
    pthread_mutex_lock(&d->w->mu);
    if (rc == 0)
        a->unflushed -= n; /* others may have added meanwhile */
    a->flushed_ms = now_ms;
    a->flushing = false;
    pthread_mutex_unlock(&d->w->mu);
}

/* Records the outcomes of a batch in one transaction, retrying a busy database. */
static void
delivery_finish(struct delivery *d, struct attempt *at, size_t n)
{
    struct queue_outcome *os = calloc(n, sizeof(*os));
    size_t *which = calloc(n, sizeof(*which));
    struct mo_error err;
    size_t k = 0;
    int64_t accepted = 0;

    if (os == NULL || which == NULL) {
        mo_log(MO_LOG_ERROR, "account \"%s\": out of memory recording a batch", d->acct->name);
        free(os);
        free(which);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t delivered = 0;
        if (!at[i].has_outcome || at[i].recorded)
            continue;
        which[k] = i;
        os[k++] = at[i].o;
        (void)attempt_result_name(&at[i], &delivered);
        if (delivered > 0 || at[i].o.uncertain)
            accepted++;
    }
    for (int tries = 0; k > 0; tries++) {
        if (queue_finish(d->q, os, k, &err) == 0) {
            for (size_t j = 0; j < k; j++)
                at[which[j]].recorded = true;
            break;
        }
        if (tries + 1 >= WORKER_FINISH_TRIES) {
            /* The leases will expire and recovery marks these uncertain: nothing is lost. */
            mo_log(MO_LOG_ERROR, "account \"%s\": cannot record %zu outcomes: %s", d->acct->name, k,
                   err.text);
            break;
        }
        usleep(200 * 1000 * (unsigned)(tries + 1));
    }
    pthread_mutex_lock(&d->w->mu);
    d->acct->unflushed += accepted;
    pthread_mutex_unlock(&d->w->mu);
    delivery_flush_usage(d, false);
    free(os);
    free(which);
}

/* Hands the claimed jobs that got no outcome (stop, lease half gone) back to the queue. */
static void
delivery_release(struct delivery *d, const struct queue_job *jobs, const struct attempt *at,
                 size_t n)
{
    int64_t *ids = calloc(n > 0 ? n : 1, sizeof(*ids));
    size_t k = 0;
    struct mo_error err;

    if (ids == NULL)
        return; /* the leases expire; recovery takes them */
    for (size_t i = 0; i < n; i++)
        if (!at[i].has_outcome)
            ids[k++] = jobs[i].id;
    if (k > 0) {
        if (queue_release(d->q, ids, k, &err) != 0)
            mo_log(MO_LOG_ERROR, "account \"%s\": cannot release %zu messages: %s", d->acct->name,
                   k, err.text);
        stat_add(d->w, &d->w->stats.released, k);
    }
    free(ids);
}

/* Hands the whole batch back untried when there is no room to track it. */
static void
release_all(struct delivery *d, const struct queue_job *jobs, size_t n)
{
    int64_t *ids = calloc(n, sizeof(*ids));

    if (ids == NULL)
        return; /* the leases expire; recovery takes them */
    for (size_t i = 0; i < n; i++)
        ids[i] = jobs[i].id;
    (void)queue_release(d->q, ids, n, NULL);
    free(ids);
}

/*
 * Opens the session for the next message, up to WORKER_OPEN_TRIES failures
 * per batch. On giving up, defers jobs [i, n) (to the pause's end when the
 * breaker tripped) and returns -1.
 */
static int
delivery_ensure_open(struct delivery *d, struct attempt *at, const struct queue_job *jobs, size_t i,
                     size_t n, int *open_failures)
{
    struct mo_error err;
    char reason[1024];

    while (!d->is_open) {
        char *tr;
        if (delivery_open(d, &err) == 0)
            return 0;
        tr = delivery_take_transcript(d);
        (*open_failures)++;
        if (open_error_trips(&err)) {
            /* Never a second login before the cool-down: the provider counts them. */
            snprintf(reason, sizeof(reason), "%s", err.text);
            defer_rest(at, jobs, i, n, &err, delivery_trip(d, reason), tr);
            free(tr);
            delivery_close(d);
            return -1;
        }
        mo_log(MO_LOG_WARN, "account \"%s\": cannot connect (%s, try %d of %d): %s", d->acct->name,
               mo_category_name(err.category), *open_failures, WORKER_OPEN_TRIES, err.text);
        if (*open_failures >= WORKER_OPEN_TRIES || worker_stopping(d->w)) {
            defer_rest(at, jobs, i, n, &err, 0, tr);
            free(tr);
            delivery_close(d);
            return -1;
        }
        free(tr);
        sleep(1);
    }
    return 0;
}

/*
 * Whether a failed send found the reused connection already dead (the
 * server's idle timeout): nothing of the message reached the server, so it
 * may go once more on a new connection.
 */
static bool
attempt_found_stale_line(const struct attempt *a, int rc, size_t session_sends)
{
    return rc != 0 && session_sends > 0 && a->err.category == MO_ERR_PROTOCOL &&
           !a->res.maybe_delivered && a->err.stage != NULL && strcmp(a->err.stage, "mail") == 0 &&
           a->res.n_accepted == 0 && (a->res.n_rcpts == 0 || a->res.rcpts[0].code == 0);
}

/*
 * Sends a claimed batch on the thread's session. Returns false when the
 * thread should stop (account paused, the server cannot be reached, *stop).
 */
static bool
delivery_batch(struct delivery *d, struct queue_job *jobs, size_t n)
{
    struct worker *w = d->w;
    struct attempt *at = calloc(n, sizeof(*at));
    int64_t t0 = mo_now_ms();
    int64_t recorded_ms = t0;
    int open_failures = 0;
    bool go_on = true;
    struct mo_error err;
    char reason[1024];

    if (at == NULL) {
        release_all(d, jobs, n);
        return false;
    }
    if (!d->has_settings && delivery_load(d, &err) != 0) {
        if (err.category == MO_ERR_CONFIG) {
            /* Bad or missing settings: the owner must fix the account. */
            snprintf(reason, sizeof(reason), "%s", err.text);
            defer_rest(at, jobs, 0, n, &err, delivery_trip(d, reason), NULL);
        } else {
            /* The store could not be read (busy, disk): the jobs go back untouched. */
            mo_log(MO_LOG_ERROR, "account \"%s\": %s", d->acct->name, err.text);
        }
        go_on = false;
        goto finish;
    }
    for (size_t i = 0; i < n && go_on; i++) {
        const struct queue_job *job = &jobs[i];
        int64_t until = 0;
        bool retried = false;
        int rc;

        if (worker_stopping(w))
            break; /* released below */
        if (account_is_paused(w, d->acct, &until)) {
            /* Another thread tripped the breaker: the rest waits for the pause's end. */
            format_time(until, reason, sizeof(reason));
            mo_error_set(&err, MO_ERR_REJECTED, NULL, "account \"%s\" is paused until %s",
                         d->acct->name, reason);
            defer_rest(at, jobs, i, n, &err, until, NULL);
            go_on = false;
            break;
        }
        /* Past half the lease, the rest goes back rather than risk the lease expiring
         * while a message is in flight (recovery would call it uncertain). */
        if (mo_now_ms() - t0 > (int64_t)w->lease_s * 500)
            break;
        for (;;) {
            if (delivery_ensure_open(d, at, jobs, i, n, &open_failures) != 0) {
                go_on = false;
                break;
            }
            rc = delivery_send(d, job, &at[i]);
            if (!retried && attempt_found_stale_line(&at[i], rc, d->session_sends)) {
                mo_log(MO_LOG_INFO,
                       "account \"%s\": the connection was lost before message %lld (%s); "
                       "reconnecting",
                       d->acct->name, (long long)job->id, at[i].err.text);
                d->is_open = false;
                retried = true;
                continue;
            }
            break;
        }
        if (!go_on)
            break;
        d->session_sends++;
        attempt_judge(&at[i], job, rc);
        at[i].transcript = delivery_take_transcript(d);
        at[i].o.transcript = at[i].transcript;
        if (attempt_hit_quota(&at[i], rc, reason, sizeof(reason))) {
            int64_t pause_end = delivery_trip(d, reason);
            at[i].o.defer_until = pause_end;
            attempt_log(d, &at[i]);
            mo_error_set(&err, MO_ERR_REJECTED, NULL, "account \"%s\" paused: %s", d->acct->name,
                         reason);
            defer_rest(at, jobs, i + 1, n, &err, pause_end, NULL);
            delivery_close(d);
            go_on = false;
            break;
        }
        attempt_log(d, &at[i]);
        if (rc != 0 &&
            (at[i].err.category == MO_ERR_PROTOCOL || at[i].err.category == MO_ERR_INTERNAL ||
             attempt_server_closing(&at[i], rc))) {
            /* The line is gone (or going): the next message gets a new session. */
            (void)smtp_session_quit(d->session, NULL);
            d->is_open = false;
        }
        /* A slow provider: what it accepted is recorded every so often, not only at the
         * batch's end, so a crash resends (as uncertain) at most that much. */
        if (mo_now_ms() - recorded_ms >= WORKER_RECORD_EVERY_MS) {
            delivery_finish(d, at, i + 1);
            recorded_ms = mo_now_ms();
        }
    }
finish:
    for (size_t i = 0; i < n; i++)
        if (at[i].needs_log)
            attempt_log(d, &at[i]);
    delivery_finish(d, at, n);
    delivery_release(d, jobs, at, n);
    for (size_t i = 0; i < n; i++)
        attempt_clear(&at[i]);
    free(at);
    return go_on && !worker_stopping(w);
}

/* ---- one delivery thread --------------------------------------------------------- */

/* How many messages the daily limit leaves for a claim now; -1 on trouble (no claim). */
static long
delivery_allowance(struct delivery *d)
{
    struct worker *w = d->w;
    struct mo_error err;
    int64_t used = 0;
    long allowed = w->batch;
    unsigned limit;

    pthread_mutex_lock(&w->mu);
    limit = d->acct->daily_limit;
    pthread_mutex_unlock(&w->mu);
    if (limit == 0)
        return allowed;
    if (breaker_usage_count(d->b, d->acct->name, unix_now(), &used, &err) != 0) {
        mo_log(MO_LOG_WARN, "account \"%s\": %s", d->acct->name, err.text);
        return -1;
    }
    pthread_mutex_lock(&w->mu);
    used += d->acct->in_flight + d->acct->unflushed;
    if (used >= (int64_t)limit) {
        if (!d->acct->said_limited)
            mo_log(MO_LOG_WARN,
                   "account \"%s\" reached its provider's daily limit (%u messages in 24 hours); "
                   "its mail waits in the queue",
                   d->acct->name, limit);
        d->acct->said_limited = true;
        allowed = 0;
    } else if ((int64_t)limit - used < allowed) {
        allowed = (long)((int64_t)limit - used);
    }
    pthread_mutex_unlock(&w->mu);
    return allowed;
}

/*
 * Claims up to max of the account's due messages. The default account's
 * messages are stored without a name (queue_claim's ""), but a message given
 * the name "default" explicitly is the same account's, so both are asked.
 */
static int
delivery_claim(struct delivery *d, size_t max, struct queue_job **jobs, size_t *n,
               struct mo_error *err)
{
    struct worker *w = d->w;
    struct queue_job *more = NULL;
    struct queue_job *grown;
    size_t n_more = 0;

    if (queue_claim(d->q, is_default_account(d->acct) ? "" : d->acct->name, w->owner, w->lease_s,
                    max, jobs, n, err) != 0)
        return -1;
    if (!is_default_account(d->acct) || *n >= max)
        return 0;
    if (queue_claim(d->q, "default", w->owner, w->lease_s, max - *n, &more, &n_more, err) != 0 ||
        n_more == 0) {
        free(more);
        return 0; /* what the first claim got is good; the rest comes next time */
    }
    grown = realloc(*jobs, (*n + n_more) * sizeof(*grown));
    if (grown == NULL) {
        int64_t ids[64];
        size_t k = 0;
        /* Hand the second claim back untouched rather than lose track of it. */
        for (size_t i = 0; i < n_more; i++) {
            if (k < sizeof(ids) / sizeof(ids[0]))
                ids[k++] = more[i].id;
            queue_job_free(&more[i]);
        }
        (void)queue_release(d->q, ids, k, NULL);
        free(more);
        return 0;
    }
    memcpy(grown + *n, more, n_more * sizeof(*more));
    *jobs = grown;
    *n += n_more;
    free(more);
    return 0;
}

static void
delivery_run(struct delivery *d)
{
    struct worker *w = d->w;
    struct mo_error err;

    d->q = w->q;
    if (account_store_open(w->home, &d->st, &err) != 0 || breaker_open(w->home, &d->b, &err) != 0) {
        mo_log(MO_LOG_ERROR, "account \"%s\": %s", d->acct->name, err.text);
        return;
    }
    while (!worker_stopping(w) && !account_is_paused(w, d->acct, NULL)) {
        struct queue_job *jobs = NULL;
        size_t n = 0;
        long allowed;
        bool go_on;
        unsigned generation;

        pthread_mutex_lock(&w->mu);
        generation = w->generation;
        pthread_mutex_unlock(&w->mu);
        if (d->has_settings && generation != d->generation) {
            /* Reloaded: the next session uses the new settings. */
            delivery_close(d);
            d->has_settings = false;
        }
        allowed = delivery_allowance(d);
        if (allowed <= 0)
            break;
        pthread_mutex_lock(&w->mu);
        d->acct->in_flight += allowed; /* reserved against the limit while claiming */
        pthread_mutex_unlock(&w->mu);
        if (delivery_claim(d, (size_t)allowed, &jobs, &n, &err) != 0) {
            mo_log(MO_LOG_ERROR, "account \"%s\": cannot claim messages: %s", d->acct->name,
                   err.text);
            n = 0;
            jobs = NULL;
        }
        pthread_mutex_lock(&w->mu);
        d->acct->in_flight -= allowed - (long)n;
        pthread_mutex_unlock(&w->mu);
        if (n == 0) {
            free(jobs);
            break;
        }
        d->claimed += n;
        go_on = delivery_batch(d, jobs, n);
        pthread_mutex_lock(&w->mu);
        d->acct->in_flight -= (int64_t)n;
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < n; i++)
            queue_job_free(&jobs[i]);
        free(jobs);
        if (!go_on)
            break;
    }
    delivery_flush_usage(d, true);
    delivery_close(d);
}

static void *
delivery_main(void *arg)
{
    struct delivery *d = arg;
    struct worker *w = d->w;

    delivery_run(d);
    account_settings_clear(&d->settings);
    breaker_close(d->b);
    account_store_close(d->st);
    d->b = NULL;
    d->st = NULL;
    d->q = NULL;
    pthread_mutex_lock(&w->mu);
    d->finished = true;
    d->acct->active--;
    if (d->claimed == 0)
        d->acct->idle_runs++;
    else
        d->acct->idle_runs = 0;
    w->n_active--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the main loop ------------------------------------------------------------- */

/* The account's entry, made on first sight. Called with w->mu held. */
static struct worker_account *
worker_account_find(struct worker *w, const char *name)
{
    struct worker_account **grown;
    struct worker_account *a;

    for (size_t i = 0; i < w->n_accounts; i++)
        if (strcmp(w->accounts[i]->name, name) == 0)
            return w->accounts[i];
    a = calloc(1, sizeof(*a));
    grown = realloc(w->accounts, (w->n_accounts + 1) * sizeof(*grown));
    if (a == NULL || grown == NULL) {
        free(a);
        if (grown != NULL)
            w->accounts = grown;
        return NULL;
    }
    w->accounts = grown;
    a->name = strdup(name);
    if (a->name == NULL) {
        free(a);
        return NULL;
    }
    w->accounts[w->n_accounts++] = a;
    return a;
}

/* Joins the threads that ended. Called with w->mu held; drops it while joining. */
static void
worker_reap(struct worker *w)
{
    struct delivery **pp = &w->threads;

    while (*pp != NULL) {
        struct delivery *d = *pp;
        if (!d->finished) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        pthread_mutex_unlock(&w->mu);
        pthread_join(d->tid, NULL);
        free(d);
        pthread_mutex_lock(&w->mu);
        pp = &w->threads; /* the list may have changed while unlocked */
    }
}

/* The provider's daily limit for the account, read once per generation. */
static void
worker_load_limit(struct worker *w, struct account_store *st, struct worker_account *a)
{
    struct account_settings s;
    struct mo_error err;
    const struct account_provider *p;
    unsigned limit = 0;
    unsigned generation;

    pthread_mutex_lock(&w->mu);
    generation = w->generation + 1;
    if (a->limit_generation == generation) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    pthread_mutex_unlock(&w->mu);
    memset(&s, 0, sizeof(s));
    if (st != NULL && account_store_get(st, a->name, false, &s, &err) == 0) {
        p = s.provider_id != NULL ? account_provider_find(s.provider_id) : NULL;
        limit = p != NULL ? p->daily_limit : 0;
    }
    account_settings_clear(&s);
    pthread_mutex_lock(&w->mu);
    a->daily_limit = limit;
    a->limit_generation = generation;
    pthread_mutex_unlock(&w->mu);
}

/* Whether the account may get a (another) delivery thread now. */
static bool
worker_may_start(struct worker *w, struct breaker *b, struct worker_account *a)
{
    struct worker_pause pause;
    struct mo_error err;
    int64_t now = unix_now();
    int64_t used = 0;
    unsigned limit;
    bool ok = true;
    char when[64];

    if (breaker_get(b, a->name, now, &pause, &err) != 0) {
        mo_log(MO_LOG_WARN, "account \"%s\": %s", a->name, err.text);
        return false;
    }
    pthread_mutex_lock(&w->mu);
    if (pause.paused && pause.until > a->paused_until) {
        a->paused_until = pause.until;
        a->pause_in_db = true;
    }
    if (!pause.paused && a->paused_until > now && a->pause_in_db) {
        /* Resumed from outside (a check passed): believe the database. A pause the
         * database never got stays in memory for this run. */
        a->paused_until = 0;
    }
    if (a->paused_until > now) {
        if (!a->said_paused) {
            format_time(a->paused_until, when, sizeof(when));
            mo_log(MO_LOG_WARN, "account \"%s\" is paused until %s: %s; its mail waits", a->name,
                   when, pause.reason);
        }
        a->said_paused = true;
        ok = false;
    } else {
        a->said_paused = false;
    }
    if (ok && (a->active >= w->max_connections || (a->active > 0 && !a->opened_ok)))
        ok = false; /* a second login only once the first one worked */
    if (ok && w->opt->once && a->idle_runs >= WORKER_IDLE_RUNS_MAX)
        ok = false;
    limit = a->daily_limit;
    pthread_mutex_unlock(&w->mu);
    if (ok && limit > 0) {
        if (breaker_usage_count(b, a->name, now, &used, &err) != 0) {
            mo_log(MO_LOG_WARN, "account \"%s\": %s", a->name, err.text);
            return false;
        }
        pthread_mutex_lock(&w->mu);
        if (used + a->in_flight + a->unflushed >= (int64_t)a->daily_limit) {
            if (!a->said_limited)
                mo_log(MO_LOG_WARN,
                       "account \"%s\" reached its provider's daily limit (%u messages in 24 "
                       "hours); its mail waits in the queue",
                       a->name, a->daily_limit);
            a->said_limited = true;
            ok = false;
        } else {
            a->said_limited = false;
        }
        pthread_mutex_unlock(&w->mu);
    }
    return ok;
}

/* Starts a delivery thread for a. Called with w->mu held. */
static int
worker_start(struct worker *w, struct worker_account *a)
{
    struct delivery *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return -1;
    d->w = w;
    d->acct = a;
    a->active++;
    w->n_active++;
    if (pthread_create(&d->tid, NULL, delivery_main, d) != 0) {
        a->active--;
        w->n_active--;
        free(d);
        return -1;
    }
    d->next = w->threads;
    w->threads = d;
    return 0;
}

/* Waits up to ms for a thread to end, a login to work, or the time to pass. */
static void
worker_wait(struct worker *w, int ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    (void)pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    pthread_mutex_unlock(&w->mu);
}

/* One pass: start threads for due accounts. Returns how many started. */
static size_t
worker_pass(struct worker *w, struct queue *q, struct breaker *b, struct account_store *st)
{
    char **due = NULL;
    size_t n_due = 0;
    size_t started = 0;
    struct mo_error err;

    if (queue_due_accounts(q, &due, &n_due, &err) != 0) {
        mo_log(MO_LOG_ERROR, "cannot read the queue: %s", err.text);
        return 0;
    }
    for (size_t i = 0; i < n_due && !worker_stopping(w); i++) {
        struct worker_account *a;
        pthread_mutex_lock(&w->mu);
        a = worker_account_find(w, breaker_account_name(due[i]));
        pthread_mutex_unlock(&w->mu);
        if (a == NULL)
            continue;
        worker_load_limit(w, st, a);
        if (!worker_may_start(w, b, a))
            continue;
        pthread_mutex_lock(&w->mu);
        if (worker_start(w, a) == 0)
            started++;
        else
            mo_log(MO_LOG_ERROR, "account \"%s\": cannot start a delivery thread", a->name);
        pthread_mutex_unlock(&w->mu);
    }
    for (size_t i = 0; i < n_due; i++)
        free(due[i]);
    free(due);
    return started;
}


/* Marks claims whose lease expired (their worker died) as uncertain, and says so. */
static void
worker_recover(struct queue *q)
{
    struct mo_error e;
    size_t recovered = 0;

    if (queue_recover(q, &recovered, &e) != 0)
        mo_log(MO_LOG_ERROR, "cannot recover expired claims: %s", e.text);
    else if (recovered > 0)
        mo_log(MO_LOG_WARN,
               "%zu messages were in flight when a worker stopped; they are marked uncertain",
               recovered);
}

int
worker_run(const struct worker_options *opt, struct mo_error *err)
{
    struct worker w;
    struct queue *q = NULL;
    struct breaker *b = NULL;
    struct account_store *st = NULL;
    struct mo_error e;
    int64_t last_recover_ms;
    int rc = -1;

    memset(&w, 0, sizeof(w));
    w.opt = opt;
    w.home = opt->home;
    w.batch = opt->batch > 0 ? opt->batch : WORKER_DEFAULT_BATCH;
    w.lease_s = opt->lease_s > 0 ? opt->lease_s : WORKER_DEFAULT_LEASE_S;
    w.max_connections =
        opt->max_connections > 0 ? opt->max_connections : WORKER_DEFAULT_CONNECTIONS;
    w.cooldown_s =
        opt->breaker_cooldown_s > 0 ? opt->breaker_cooldown_s : WORKER_DEFAULT_COOLDOWN_S;
    if (opt->name != NULL && opt->name[0] != '\0')
        snprintf(w.owner, sizeof(w.owner), "%s", opt->name);
    else
        snprintf(w.owner, sizeof(w.owner), "worker-%ld", (long)getpid());
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);

    w.qopt.grace_s = opt->uncertain_grace_s;
    if (queue_open(opt->home, &w.qopt, &q, err) != 0)
        goto out;
    w.q = q;
    if (breaker_open(opt->home, &b, err) != 0)
        goto out;
    if (account_store_open(opt->home, &st, &e) != 0) {
        /* Threads report it per message; limits are unknown meanwhile. */
        mo_log(MO_LOG_WARN, "%s", e.text);
        st = NULL;
    }
    worker_recover(q);
    last_recover_ms = mo_now_ms();
    rc = 0;
    while (!worker_stopping(&w)) {
        size_t started;
        size_t active;

        /* Claims of a worker that died after this one started expire while it runs. */
        if (mo_now_ms() - last_recover_ms >= WORKER_RECOVER_EVERY_MS) {
            worker_recover(q);
            last_recover_ms = mo_now_ms();
        }

        if (opt->reload != NULL && __atomic_exchange_n(opt->reload, 0, __ATOMIC_RELAXED) != 0) {
            pthread_mutex_lock(&w.mu);
            w.generation++;
            for (size_t i = 0; i < w.n_accounts; i++)
                w.accounts[i]->opened_ok = false;
            pthread_mutex_unlock(&w.mu);
            mo_log(MO_LOG_INFO, "reloading accounts");
        }
        pthread_mutex_lock(&w.mu);
        worker_reap(&w);
        pthread_mutex_unlock(&w.mu);
        started = worker_pass(&w, q, b, st);
        pthread_mutex_lock(&w.mu);
        active = w.n_active;
        pthread_mutex_unlock(&w.mu);
        if (opt->once && started == 0 && active == 0)
            break;
        worker_wait(&w, started > 0 ? 50 : 1000);
    }
    /* *stop (or once): every thread finishes its message in flight, then ends. */
    pthread_mutex_lock(&w.mu);
    while (w.threads != NULL) {
        worker_reap(&w);
        if (w.threads != NULL)
            pthread_cond_wait(&w.cv, &w.mu);
    }
    pthread_mutex_unlock(&w.mu);
out:
    if (opt->stats != NULL)
        *opt->stats = w.stats;
    for (size_t i = 0; i < w.n_accounts; i++) {
        free(w.accounts[i]->name);
        free(w.accounts[i]);
    }
    free(w.accounts);
    account_store_close(st);
    breaker_close(b);
    queue_close(q);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
