/*
 * worker.h - delivery: takes due messages from the queue and hands them to
 * each account's provider with the SMTP engine.
 *
 * Per account: a bounded number of parallel connections, each reused for
 * message after message (RSET between, pipelining when offered); a sending
 * rate (from the provider's known daily limit unless set); and a circuit
 * breaker: an authentication failure or a quota reply pauses the account
 * (its mail stays queued, the reason is recorded) until it passes a check
 * or a cool-down passes, so a provider is never hammered with logins that
 * will fail. Replies decide each recipient: 2xx delivered, 4xx deferred,
 * 5xx failed, except the 5xx that mean "later" (550 5.4.5 daily limit).
 * Leaves out: MX delivery, DSN bounces to the sender (the log keeps the
 * last reply instead).
 */
#ifndef MAILOUT_WORKER_H
#define MAILOUT_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

/* What one worker_run did; filled at return when worker_options.stats is set. */
struct worker_stats {
    uint64_t attempts;      /* messages handed to a server (or given up before one) */
    uint64_t sent;          /* attempts that left nothing to retry, one recipient delivered */
    uint64_t deferred;      /* attempts that left a recipient to try later */
    uint64_t failed;        /* attempts where every remaining recipient was refused for good */
    uint64_t uncertain;     /* the line broke after the final "." */
    uint64_t released;      /* claimed, not tried, handed back (stop, lease running out) */
    uint64_t connections;   /* sessions opened successfully */
    uint64_t open_failures; /* sessions that could not be opened */
    uint64_t reconnects;    /* opens after an earlier session of the same thread ended (a drop,
                               a 421, a reload), failed ones included */
    uint64_t pauses;        /* times the breaker paused an account */
};

struct worker_options {
    const char *home;              /* the data folder */
    const char *name;              /* this worker's name in leases; NULL: "worker-<pid>" */
    int batch;                     /* messages claimed at a time; 0: 50 */
    int lease_s;                   /* lease of a claim; 0: 300 */
    int64_t uncertain_grace_s;     /* resend an uncertain message after this; 0: the queue's
                                      default (30 minutes) */
    int max_connections;           /* per account unless the account says; 0: 2 */
    int timeout_s;                 /* caps every SMTP wait; 0: RFC defaults */
    int64_t breaker_cooldown_s;    /* how long an auth/quota failure pauses an account; 0: 900 */
    bool once;                     /* deliver what is due now, then return (mailout queue run) */
    volatile sig_atomic_t *stop;   /* set to 1 to finish in-flight messages and return */
    volatile sig_atomic_t *reload; /* set to 1 to reload accounts (cleared by the worker) */
    struct worker_stats *stats;    /* may be NULL; overwritten when worker_run returns */
};

/*
 * Runs delivery until *opt->stop (or, with once, until nothing is due now for
 * an account that is neither paused nor over its daily limit). Recovers
 * expired leases first (queue_recover). Every SMTP wait is capped at
 * timeout_s, the account's own timeout, and a third of the lease. On *stop,
 * each thread finishes its message in flight, records the outcomes, hands
 * back what it claimed but did not try, and QUITs. Returns 0; -1 only when
 * home/mailout.db cannot be opened (STORAGE). Per-message trouble goes into
 * the queue, not into err. The spool is not read here (queue_spool_import).
 */
int worker_run(const struct worker_options *opt, struct mo_error *err);

/* An account's pause, as recorded by the breaker. */
struct worker_pause {
    bool paused;
    int64_t until;    /* Unix time the cool-down ends */
    char reason[400]; /* e.g. "535 5.7.8 Username and Password not accepted" */
};

/* Reads whether account (NULL: default) is paused. Errors: STORAGE. */
int worker_account_pause(const char *home, const char *account, struct worker_pause *out,
                         struct mo_error *err);
/* Clears an account's pause (after it passed a check). Errors: STORAGE. */
int worker_account_resume(const char *home, const char *account, struct mo_error *err);

/* An account's sending in the last 24 hours, against its provider's daily limit. */
struct worker_usage {
    int64_t sent_24h;     /* messages the provider accepted (or may have) in the last 24 h */
    unsigned daily_limit; /* from the provider table; 0: no known limit */
    bool is_limited;      /* daily_limit > 0 and sent_24h >= daily_limit: mail waits */
};

/*
 * Reads account's (NULL or "": default) usage. daily_limit is 0 when the
 * account does not exist or its provider has no known limit.
 * Errors: STORAGE.
 */
int worker_account_usage(const char *home, const char *account, struct worker_usage *out,
                         struct mo_error *err);

/*
 * How the worker judges one failed reply: true when a 5xx really means
 * "later" (daily limits, quota), so the message is deferred, not failed.
 */
bool worker_reply_is_temporary(int code, const char *enhanced, const char *text);

#endif
