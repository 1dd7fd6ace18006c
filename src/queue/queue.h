/*
 * queue.h - the durable queue: messages accepted by any entry point wait
 * here, in the data folder's SQLite database (WAL), until the worker has
 * delivered them or given up.
 *
 * The protocol, which every caller relies on:
 *  1. "Queued" means committed. queue_add() returns only after the message,
 *     its envelope and its recipients are in one committed transaction with
 *     synchronous=FULL; a full disk or a read-only folder is an error
 *     (STORAGE) and nothing half-written remains. queue_add_batch() commits
 *     many in one transaction (group commit) with the same promise for all.
 *  2. A worker claims due messages under a lease (queue_claim): state
 *     becomes "sending", lease_until = now + lease. One commit per batch.
 *  3. The worker reports each message's outcome (queue_finish): sent,
 *     deferred (next attempt time), failed, or uncertain; per recipient.
 *     Outcomes are committed in batches too.
 *  4. A claim whose lease expired (the worker died: kill -9, power loss) was
 *     in flight: the provider may have it. queue_recover() marks such
 *     messages "uncertain"; they are resent only after a grace period, or at
 *     once when an admin says so (queue_retry). Nothing else is ever sent
 *     twice, and nothing accepted is ever lost.
 *  5. Retries back off exponentially with jitter (about 1 minute, growing to
 *     about an hour) until the message is max_age old; then it fails with the
 *     last reply kept. See queue_next_delay_s().
 *
 * Leaves out: delivery itself (worker.h), accounts (account.h).
 */
#ifndef MAILOUT_QUEUE_H
#define MAILOUT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

enum queue_state {
    QUEUE_QUEUED = 0, /* due now: new, or put back by hand (queue_retry) */
    QUEUE_SENDING,    /* claimed by a worker under a lease */
    QUEUE_SENT,       /* every recipient accepted or failed for good, at least one accepted */
    QUEUE_DEFERRED,   /* waiting for its next attempt (next_attempt_at) */
    QUEUE_FAILED,     /* given up: 5xx for every recipient, or too old */
    QUEUE_UNCERTAIN,  /* the line broke after the data went out; may have arrived */
    QUEUE_STATE_COUNT
};

/* "queued", "sending", "sent", "deferred", "failed", "uncertain". */
const char *queue_state_name(enum queue_state state);
int queue_state_parse(const char *name, enum queue_state *out);

struct queue;

struct queue_options {
    int64_t max_age_s;     /* give up after this; 0: 5 days */
    int64_t grace_s;       /* resend an uncertain message after this; 0: 30 minutes */
    int64_t max_message_bytes; /* 0: 50 MB */
};

/*
 * Opens (creating when needed) home/mailout.db. opt may be NULL (defaults).
 * Each process and each thread opens its own queue (its own SQLite
 * connection; writers take turns through BEGIN IMMEDIATE and a 10 s busy
 * timeout). Calls on one struct queue are serialized by a mutex, so sharing
 * one between threads is safe, only slower. Never use one across fork().
 * Errors: STORAGE (field "home"), e.g. a read-only folder.
 */
int queue_open(const char *home, const struct queue_options *opt, struct queue **out,
               struct mo_error *err);
void queue_close(struct queue *q);

/* A message handed in by an entry point. Everything is borrowed. */
struct queue_new_message {
    const char *account;      /* account name; NULL, "" or "default": the default account */
    const char *from;         /* envelope sender (addr-spec, "" for the null sender) */
    const char *const *rcpts; /* envelope recipients (addr-specs) */
    size_t n_rcpts;
    const char *data;         /* the RFC 5322 message, CRLF line ends */
    size_t len;
    const char *message_id;   /* the header's Message-ID without brackets, or NULL */
    const char *subject;      /* decoded subject for the log, or NULL */
    const char *header_from;  /* the From header as text for the log, or NULL */
    const char *source;       /* "sendmail", "api", "cli", "smtp" */
    bool needs_smtputf8;
};

/*
 * Queues one message durably; *id_out (may be NULL) gets its id.
 * Errors: CONFIG with field "recipient" (none, empty, or holding a line
 * break or control character), "sender" (NULL, or a control character) or
 * "size" (empty, or over max_message_bytes); STORAGE (disk full, read-only,
 * I/O error, busy for 10 s) with a plain text such as "the disk is full: the
 * message was NOT queued"; temporary is set for a full disk and a busy
 * database.
 */
int queue_add(struct queue *q, const struct queue_new_message *m, int64_t *id_out,
              struct mo_error *err);

/*
 * Queues n messages in one transaction: all or none. ids receives n ids.
 * Errors as queue_add (a CONFIG text starts "message 3 of 100: "); on error
 * nothing of the batch is queued and ids are zeroed.
 */
int queue_add_batch(struct queue *q, const struct queue_new_message *const *ms, size_t n,
                    int64_t *ids, struct mo_error *err);

/* ---- group commit: many concurrent entry-point threads, one writer ---------
 * Durability contract: queue_committer_add() returns 0 only after m is in a
 * committed transaction (synchronous=FULL), exactly as queue_add() promises;
 * a caller may answer "queued" (202, 250) then and not before. Messages that
 * arrive while a commit runs are committed together in the next one (at most
 * 1024 messages or 64 MB, one queue_add_batch(): one fsync for the group).
 * If the batch fails for a STORAGE reason, every message in it fails with
 * that error and none is queued; for any other reason (one message's CONFIG
 * error) the messages are retried one by one, so each gets its own outcome.
 * queue_committer_stop() commits whatever is waiting before it returns.
 */
struct queue_committer;

/*
 * Opens its own queue on home (opt as queue_open, may be NULL) and starts
 * the committer thread. log_name (e.g. "http", "smtp-in"; NULL: "queue")
 * prefixes the statistics line logged at stop. *out is owned by the caller
 * (queue_committer_stop). Errors: as queue_open; INTERNAL (thread, locks).
 */
int queue_committer_start(const char *home, const struct queue_options *opt, const char *log_name,
                          struct queue_committer **out, struct mo_error *err);

/*
 * Hands m (borrowed until it returns) to the next group commit and blocks
 * until it is committed: 0 with *id_out (may be NULL) set; or -1 with err
 * (may be NULL) as queue_add would set it for m (CONFIG, STORAGE), STORAGE
 * "the service is stopping" (temporary) once stop began, or INTERNAL.
 * Thread-safe; must not be called after queue_committer_stop returned.
 */
int queue_committer_add(struct queue_committer *c, const struct queue_new_message *m,
                        int64_t *id_out, struct mo_error *err);

/*
 * Commits what waits, refuses new messages, joins the thread, logs
 * "<log_name>: N messages queued in M commits (...)", closes the queue and
 * frees c. NULL is a no-op.
 */
void queue_committer_stop(struct queue_committer *c);

/* A claimed message, owned by the caller (queue_job_free). */
struct queue_job {
    int64_t id;
    char *account;     /* NULL: the default account */
    char *from;
    char **rcpts;      /* the recipients still to deliver */
    size_t n_rcpts;
    char *data;        /* NUL-terminated after len */
    size_t len;
    int attempts;      /* attempts made before this one */
    int64_t created_at;
    bool needs_smtputf8;
    char *message_id;
};

void queue_job_free(struct queue_job *job);

/*
 * Claims up to max due messages of account for owner (a worker's name) under
 * a lease of lease_s seconds (<= 0: 300), oldest first. *jobs is a malloc'd
 * array of *n jobs (free each, then the array; NULL when *n is 0). One
 * transaction.
 * account: NULL claims for any account; "" claims for the default account
 * only (the NULL entries of queue_due_accounts and of job->account); a name
 * claims for that account.
 * Due: queued; deferred with next_attempt_at <= now; uncertain whose grace
 * period (grace_s after it became uncertain) is over. "Oldest first" is the
 * message due longest (queued: since added; deferred: since its next attempt
 * time; uncertain: since its grace ended), ties by id.
 * Errors: STORAGE.
 */
int queue_claim(struct queue *q, const char *account, const char *owner, int lease_s, size_t max,
                struct queue_job **jobs, size_t *n, struct mo_error *err);

/*
 * The accounts that have due messages now: *accounts is a malloc'd array
 * (NULL when *n is 0) of malloc'd names, the default account first as a
 * NULL entry, then by name; free each, then the array. Errors: STORAGE.
 */
int queue_due_accounts(struct queue *q, char ***accounts, size_t *n, struct mo_error *err);

enum queue_rcpt_result {
    QUEUE_RCPT_DELIVERED = 0,
    QUEUE_RCPT_DEFER,  /* try again later */
    QUEUE_RCPT_FAIL,   /* refused for good */
};

struct queue_rcpt_outcome {
    const char *address;
    enum queue_rcpt_result result;
    int code;
    const char *enhanced; /* may be NULL */
    const char *text;     /* the server's reply, may be NULL */
};

/* What one attempt at one message came to. Everything is borrowed. */
struct queue_outcome {
    int64_t id;
    bool uncertain;       /* the line broke after the final "." */
    const struct queue_rcpt_outcome *rcpts; /* per recipient of the job; may be NULL when
                                               the whole attempt failed before RCPT */
    size_t n_rcpts;
    enum queue_rcpt_result all; /* for every recipient when rcpts is NULL */
    int code;             /* the deciding reply (e.g. the final 250 or the 421) */
    const char *enhanced;
    const char *text;     /* plain text of the outcome or the error */
    const char *transcript; /* redacted, lines joined by '\n'; may be NULL */
    int64_t defer_until;  /* when > 0, do not retry before this Unix time (breaker, pacing) */
};

/*
 * Records outcomes of claimed messages in one transaction and moves each to
 * its next state: sent when no recipient is left to try and one was
 * delivered; failed when every recipient failed, or when the next try (a
 * deferral or an uncertain resend) would pass max_age (last reply "gave up
 * after 5 days: <reply>"); uncertain when
 * o->uncertain; deferred otherwise with the next attempt after
 * queue_next_delay_s() (or defer_until, if later). attempts grows by one and
 * the lease is cleared. Each attempt is logged with its transcript.
 * After a broken line (uncertain) only refused recipients become failed; the
 * others stay pending. An outcome for a message that is gone, sent or failed
 * is skipped (and logged). Errors: STORAGE (then nothing of the batch is
 * recorded).
 */
int queue_finish(struct queue *q, const struct queue_outcome *outcomes, size_t n,
                 struct mo_error *err);

/*
 * Hands claimed messages back untouched (shutdown before sending): each
 * returns to the due state it was claimed from, without counting an attempt.
 * Ids not in "sending" are skipped. Errors: STORAGE.
 */
int queue_release(struct queue *q, const int64_t *ids, size_t n, struct mo_error *err);

/*
 * After a crash: claims whose lease expired become "uncertain" (they were in
 * flight), counted as an attempt and logged as "the service stopped while
 * this message was being sent; it may have arrived"; they are due again after
 * grace_s. Returns how many through *n (may be NULL). Errors: STORAGE.
 */
int queue_recover(struct queue *q, size_t *n, struct mo_error *err);

/*
 * Seconds to wait after a failed attempt, given the attempts made before it:
 * 60 s * 2^attempts, capped at 3600 s, then +-20 % jitter (so 48..72 s after
 * the first failure, 2880..4320 s from the seventh on).
 */
int64_t queue_next_delay_s(int attempts);

/* ---- reading and admin actions (CLI, API, panel) -------------------------- */

struct queue_rcpt_info {
    char *address;
    char *state;     /* "pending", "delivered", "failed" */
    int code;
    char *reply;
};

struct queue_attempt_info {
    int64_t at;
    char *result;    /* "sent", "deferred", "failed", "uncertain" */
    int code;
    char *reply;
    char *transcript;
};

struct queue_message_info {
    int64_t id;
    enum queue_state state;
    char *account;
    char *from;
    char *header_from;
    char *subject;
    char *message_id;
    char *source;
    int64_t created_at;
    int64_t updated_at;
    int64_t next_attempt_at;
    int attempts;
    int last_code;
    char *last_reply;
    size_t size;
    struct queue_rcpt_info *rcpts;
    size_t n_rcpts;
    struct queue_attempt_info *attempt_log; /* only from queue_get with details */
    size_t n_attempt_log;
};

void queue_message_info_clear(struct queue_message_info *m);

/*
 * One message with its recipients; with_details adds the attempt log. Clear
 * *out with queue_message_info_clear. Errors: CONFIG (field "id") when
 * unknown, STORAGE.
 */
int queue_get(struct queue *q, int64_t id, bool with_details, struct queue_message_info *out,
              struct mo_error *err);
/* The raw message (caller frees *data; NUL-terminated after len). Errors: CONFIG when unknown. */
int queue_get_data(struct queue *q, int64_t id, char **data, size_t *len, struct mo_error *err);

struct queue_filter {
    int state;           /* enum queue_state, or -1 for any */
    const char *search;  /* substring of from, header From, recipients, subject or
                            Message-ID; case-insensitive for ASCII letters; % and _
                            match themselves; NULL or "": any */
    int64_t before_id;   /* page: ids below this; 0: from the newest */
    size_t limit;        /* 0: 50 */
};

/*
 * Newest first, each with its recipients (no attempt log). *out is malloc'd
 * (clear each, free the array; NULL when *n is 0). Errors: CONFIG (field
 * "state") for a state out of range, STORAGE.
 */
int queue_list(struct queue *q, const struct queue_filter *f, struct queue_message_info **out,
               size_t *n, struct mo_error *err);

struct queue_counts {
    size_t by_state[QUEUE_STATE_COUNT];
    size_t sent_today; /* became sent since local midnight (the machine's time zone) */
};
int queue_count(struct queue *q, struct queue_counts *out, struct mo_error *err);

/*
 * Makes a deferred, failed or uncertain message queued and due now (a failed
 * message's failed recipients become pending again; a queued one stays as it
 * is). Errors: CONFIG with field "id" when unknown; CONFIG with field NULL
 * when it is sent or being sent; STORAGE.
 */
int queue_retry(struct queue *q, int64_t id, struct mo_error *err);
/* Makes every deferred message queued and due now; *n (may be NULL) how many. */
int queue_retry_all_deferred(struct queue *q, size_t *n, struct mo_error *err);
/*
 * Removes a message that is not being sent, with its recipients, body and
 * attempt log. Errors: CONFIG with field "id" when unknown; CONFIG with field
 * NULL while it is being sent; STORAGE.
 */
int queue_drop(struct queue *q, int64_t id, struct mo_error *err);

/*
 * The earliest time a waiting message is due (0 when none), for the worker's
 * sleep: may be in the past (due now). On a database error it returns now
 * (and logs), so the worker looks and its claim reports the trouble.
 */
int64_t queue_next_due(struct queue *q);

/* ---- the spool: queueing without access to the database --------------------
 * A program that may not open mailout.db (PHP's mail() running as the web
 * server's user) writes the message into home/spool instead: a file made in
 * home/spool/tmp, fsync'd, renamed into home/spool/new and the folder
 * fsync'd, so it is durable when queue_spool_write returns. The service (or
 * `mailout queue run`) moves spool files into the queue, deleting each only
 * after its queue commit. The spool folders let others create files but not
 * list or read them.
 */

/*
 * Writes m into the spool durably. name_out (may be NULL) receives the
 * file's name. Errors: STORAGE (cannot write: full disk, no permission).
 */
int queue_spool_write(const char *home, const struct queue_new_message *m, char *name_out,
                      size_t name_size, struct mo_error *err);

/* Moves every complete spool file into q; *n (may be NULL) how many. Errors: STORAGE. */
int queue_spool_import(struct queue *q, const char *home, size_t *n, struct mo_error *err);

#endif
