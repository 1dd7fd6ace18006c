/*
 * worker_internal.h - private to src/worker (and its unit tests): the
 * breaker's table access on one database connection, and the reply
 * classification the delivery threads use.
 *
 * Why a header: worker.c (delivery), breaker.c (pause and usage records) and
 * classify.c (what a reply means) share these, and the unit tests check them
 * table by table. Nothing outside src/worker and tests/unit includes it.
 */
#ifndef MAILOUT_WORKER_INTERNAL_H
#define MAILOUT_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"
#include "worker/worker.h"

/* ---- breaker: account_state and account_usage in home/mailout.db ------------ */

/* One SQLite connection (WAL, busy timeout) to home/mailout.db; one thread at a time. */
struct breaker;

/*
 * Opens home/mailout.db (creating the folder, the file and the two tables
 * when missing). Errors: STORAGE (field "home"), CONFIG (path too long).
 */
int breaker_open(const char *home, struct breaker **out, struct mo_error *err);
void breaker_close(struct breaker *b);

/* The account name the tables use: "default" for NULL or "". Never NULL; borrowed. */
const char *breaker_account_name(const char *account);

/* Whether account is paused at Unix time now (a pause in the past is no pause). */
int breaker_get(struct breaker *b, const char *account, int64_t now, struct worker_pause *out,
                struct mo_error *err);
/* Pauses account until the Unix time until, remembering reason (cut to fit). */
int breaker_pause(struct breaker *b, const char *account, int64_t until, const char *reason,
                  struct mo_error *err);
/* Clears the pause. Not paused already is fine. */
int breaker_resume(struct breaker *b, const char *account, struct mo_error *err);

/*
 * Usage counts messages per account and hour (Unix time / 3600). add adds n
 * to the hour of now (and forgets hours older than two days); count sums the
 * 24 hours ending with now's, so the window is a sliding one to the hour.
 */
int breaker_usage_add(struct breaker *b, const char *account, int64_t now, int64_t n,
                      struct mo_error *err);
int breaker_usage_count(struct breaker *b, const char *account, int64_t now, int64_t *out,
                        struct mo_error *err);

/* ---- classification (classify.c) ----------------------------------------- */

/*
 * True when a reply says the account hit a sending limit or login throttle
 * and the provider wants it to stop for a while: 550/554 5.4.5 (Gmail's daily
 * limit), "Too many login attempts" (454/451 4.7.0), 421 4.7.0 "try again
 * later" (Google's rate limiting), SES "Throttling failure", "daily ... quota".
 * The breaker pauses the account on these. code 0 is never a quota reply.
 */
bool worker_reply_is_quota(int code, const char *enhanced, const char *text);

/* What one recipient's reply comes to (enum queue_rcpt_result values). */
enum worker_verdict {
    WORKER_DELIVERED = 0,
    WORKER_DEFER,
    WORKER_FAIL,
};

/*
 * 2xx delivered; 4xx, 0 (no reply) and the 5xx that mean "later" deferred;
 * other 5xx failed.
 */
enum worker_verdict worker_reply_verdict(int code, const char *enhanced, const char *text);

#endif
