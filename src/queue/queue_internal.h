/*
 * queue_internal.h - what the queue's own files share: the connection with
 * its cached statements, the transaction helpers and the error mapping.
 * Private to src/queue/ (and the unit tests, for the clock hook).
 *
 * Why: queue_add.c, queue_deliver.c and queue_admin.c all speak to the same
 * connection; statements are prepared once per connection, on first use.
 * Leaves out: spool files (spool.c uses the public header only).
 */
#ifndef MAILOUT_QUEUE_INTERNAL_H
#define MAILOUT_QUEUE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "queue/queue.h"

/* Statements kept prepared for the connection's lifetime. */
enum q_stmt {
    Q_BEGIN_IMMEDIATE,
    Q_BEGIN_READ,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_INSERT_MESSAGE,
    Q_INSERT_DATA,
    Q_INSERT_RCPT,
    Q_INSERT_SEARCH,
    Q_DUE_ANY,
    Q_DUE_ACCOUNT,
    Q_CLAIM_ONE,
    Q_JOB_LOAD,
    Q_JOB_RCPTS,
    Q_MSG_STATE,
    Q_RCPT_SET_ONE,
    Q_RCPT_SET_ALL,
    Q_RCPT_TALLY,
    Q_RCPT_FAIL_PENDING,
    Q_MSG_FINISH,
    Q_INSERT_ATTEMPT,
    Q_RELEASE_ONE,
    Q_EXPIRED,
    Q_FIRST_ACCOUNT,
    Q_NEXT_ACCOUNT,
    Q_ACCOUNT_IS_DUE,
    Q_MIN_QUEUED,
    Q_MIN_DEFERRED,
    Q_MIN_UNCERTAIN,
    Q_GET_MESSAGE,
    Q_GET_RCPTS,
    Q_GET_ATTEMPTS,
    Q_GET_DATA,
    Q_STATE_COUNTS,
    Q_SENT_SINCE,
    Q_RETRY_ONE,
    Q_ADMIN_STATE,
    Q_RCPT_UNFAIL,
    Q_RETRY_DEFERRED,
    Q_DROP_ONE,
    Q_COUNT_ADD,
    Q_STMT_COUNT
};

/* Sums of changes of state in the open write transaction (q_note_move). */
struct q_moves {
    int64_t n[QUEUE_STATE_COUNT];
};

struct queue {
    sqlite3 *db;
    pthread_mutex_t lock; /* one caller at a time on this connection */
    sqlite3_stmt *stmts[Q_STMT_COUNT];
    int64_t max_age_s;
    int64_t grace_s;
    int64_t max_message_bytes;
    int64_t test_now;     /* 0: the real clock */
    bool holds_gate;      /* inside a write transaction: holds mo_db_write_enter() */
    struct q_moves moves; /* for queue_state_counts, written by q_commit */
};

/*
 * The terms of the partial indexes (queue.c). A query that should use one
 * says " AND " Q_WAITING (or Q_BUSY) besides its own condition on state:
 * SQLite picks a partial index only when the query holds its terms verbatim.
 * Written with <>, not IN (...): SQLite tests an IN list of three through a
 * temporary table, and every change of a row tests each partial index's
 * term (that cost 5 temporary tables per UPDATE).
 */
#define Q_WAITING "state <> 'sending' AND state <> 'sent' AND state <> 'failed'"
#define Q_BUSY                                                                                     \
    "state <> 'queued' AND state <> 'deferred' AND state <> 'uncertain' AND state <> 'sent'"

/*
 * Changes of state waiting for queue_state_counts: what a trigger did per
 * row (two UPDATEs each) is summed per transaction and written by q_commit.
 * Every UPDATE of messages.state calls q_note_move; inserts and deletes keep
 * their triggers (queue.c).
 */
/* n messages went from state from to state to (stored names; unknown ones are ignored). */
void q_note_move(struct queue *q, const char *from, const char *to, int64_t n);

/* Stored state names: the same strings as queue_state_name(). */
#define Q_QUEUED "queued"
#define Q_SENDING "sending"
#define Q_SENT "sent"
#define Q_DEFERRED "deferred"
#define Q_FAILED "failed"
#define Q_UNCERTAIN "uncertain"

/* Unix seconds (UTC); the test clock when set. */
int64_t q_now(const struct queue *q);

/*
 * The cached statement id (prepared from sql on first use; each id is used
 * at one place only, so the SQL stays beside the code that reads it), with no
 * bindings, ready to bind. NULL when it could not be prepared (err filled,
 * STORAGE). Borrowed: never finalize; q_done() after use.
 */
sqlite3_stmt *q_stmt(struct queue *q, enum q_stmt id, const char *sql, struct mo_error *err);
/* Resets and unbinds a statement (so borrowed SQLITE_STATIC data may go). */
void q_done(sqlite3_stmt *stmt);

/*
 * Maps a SQLite result code to a plain STORAGE error (INTERNAL for memory).
 * consequence says what it means for the caller: "the message was NOT queued".
 */
void q_db_error(struct queue *q, struct mo_error *err, int rc, const char *consequence);

/* BEGIN IMMEDIATE (waits busy_timeout for other writers), COMMIT, ROLLBACK. */
int q_begin_write(struct queue *q, const char *consequence, struct mo_error *err);
int q_begin_read(struct queue *q, struct mo_error *err);
int q_commit(struct queue *q, const char *consequence, struct mo_error *err);
/* Rolls back when a transaction is open; harmless otherwise. */
void q_rollback(struct queue *q);

/* Binds text or NULL. */
int q_bind_text(sqlite3_stmt *stmt, int i, const char *v);
/* strdup of a column, NULL for SQL NULL. *oom set when the copy failed. */
char *q_column_dup(sqlite3_stmt *stmt, int i, bool *oom);

/* "550 5.1.1 text" from the parts; any may be missing. Caller frees. */
char *q_reply_text(int code, const char *enhanced, const char *text);

void q_lock(struct queue *q);
void q_unlock(struct queue *q);

/* ---- test hooks (unit tests only) --------------------------------------- */

/* Pins the queue's clock to now (Unix seconds); 0 returns to the real clock. */
void queue_test_set_clock(struct queue *q, int64_t now);
/* Runs SQL on the queue's connection (e.g. PRAGMA max_page_count). SQLite code. */
int queue_test_exec(struct queue *q, const char *sql);

#endif
