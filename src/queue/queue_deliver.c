/*
 * queue_deliver.c - the worker's side of the queue protocol (queue.h):
 * claims under a lease, outcomes, releases, crash recovery, and the
 * questions the worker's scheduler asks (which accounts are due, when is the
 * next message due).
 *
 * Every step that changes a message is one BEGIN IMMEDIATE transaction, so
 * two workers (threads or processes, each with its own connection) never
 * claim the same message: the second waits for the first's commit and then
 * no longer sees the rows as due.
 *
 * Due means: queued; deferred with next_attempt_at <= now; uncertain with
 * updated_at <= now - grace. Claims take the message due longest first
 * (queued: since it was added; deferred: since its next attempt time;
 * uncertain: since its grace ended), ties by id.
 * Leaves out: what a reply means (the worker decides; we record).
 */
#include "queue/queue_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_RECOVER_TEXT "the service stopped while this message was being sent; it may have arrived"
#define Q_DEFAULT_LEASE_S 300

void
queue_job_free(struct queue_job *job)
{
    if (job == NULL)
        return;
    free(job->account);
    free(job->from);
    for (size_t i = 0; i < job->n_rcpts; i++)
        free(job->rcpts[i]);
    free(job->rcpts);
    free(job->data);
    free(job->message_id);
    memset(job, 0, sizeof(*job));
}

/* ---- claim ---------------------------------------------------------------- */

/*
 * Each branch walks its own index range in due order and stops after max, so
 * a claim costs O(max log n) however long the log of sent mail is.
 */
#define Q_DUE_BRANCHES(ACCOUNT)                                                                    \
    "SELECT id, due, st FROM (SELECT id, next_attempt_at AS due, 0 AS st FROM messages"            \
    " WHERE " ACCOUNT " state = 'queued' AND " Q_WAITING " ORDER BY next_attempt_at, id"           \
    " LIMIT ?3)"                                                                                   \
    " UNION ALL SELECT id, due, st FROM (SELECT id, next_attempt_at AS due, 1 AS st FROM messages" \
    " WHERE " ACCOUNT " state = 'deferred' AND " Q_WAITING " AND next_attempt_at <= ?1"            \
    " ORDER BY next_attempt_at, id LIMIT ?3)"                                                      \
    " UNION ALL SELECT id, due, st FROM (SELECT id, updated_at + ?4 AS due, 2 AS st FROM messages" \
    " WHERE " ACCOUNT " state = 'uncertain' AND " Q_WAITING " AND updated_at <= ?2"                \
    " ORDER BY updated_at, id LIMIT ?3)"                                                           \
    " ORDER BY 2, 1 LIMIT ?3"

/* The state each branch of Q_DUE_BRANCHES claims from, by its st column. */
static const char *const q_due_states[] = {Q_QUEUED, Q_DEFERRED, Q_UNCERTAIN};

static int
q_select_due(struct queue *q, const char *account, bool any_account, int64_t now, size_t max,
             int64_t **ids_out, const char ***from_out, size_t *n_out, struct mo_error *err)
{
    sqlite3_stmt *stmt;
    int64_t *ids = NULL;
    const char **from = NULL;
    size_t n = 0;
    int step;

    *ids_out = NULL;
    *from_out = NULL;
    *n_out = 0;
    if (any_account)
        stmt = q_stmt(q, Q_DUE_ANY, Q_DUE_BRANCHES(""), err);
    else
        stmt = q_stmt(q, Q_DUE_ACCOUNT, Q_DUE_BRANCHES("account IS ?5 AND"), err);
    if (stmt == NULL)
        return -1;
    ids = calloc(max, sizeof(*ids));
    from = calloc(max, sizeof(*from));
    if (ids == NULL || from == NULL) {
        free(ids);
        free(from);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    sqlite3_bind_int64(stmt, 1, now);
    sqlite3_bind_int64(stmt, 2, now - q->grace_s);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)max);
    sqlite3_bind_int64(stmt, 4, q->grace_s);
    if (!any_account)
        q_bind_text(stmt, 5, account);
    while (n < max && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        int st = sqlite3_column_int(stmt, 2);

        ids[n] = sqlite3_column_int64(stmt, 0);
        from[n++] = q_due_states[st >= 0 && st <= 2 ? st : 0];
    }
    if (n < max && step != SQLITE_DONE) {
        q_db_error(q, err, step, "nothing was claimed");
        q_done(stmt);
        free(ids);
        free(from);
        return -1;
    }
    q_done(stmt);
    *ids_out = ids;
    *from_out = from;
    *n_out = n;
    return 0;
}

/* Counts a message's recipients by state. */
static int
q_tally(struct queue *q, int64_t id, int64_t *pending, int64_t *delivered, int64_t *failed,
        const char *consequence, struct mo_error *err)
{
    static const char *const sql =
        "SELECT total(state = 'pending'), total(state = 'delivered'), total(state = 'failed')"
        " FROM recipients WHERE message_id = ?1";
    sqlite3_stmt *stmt = q_stmt(q, Q_RCPT_TALLY, sql, err);
    int step;

    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        q_db_error(q, err, step, consequence);
        q_done(stmt);
        return -1;
    }
    *pending = sqlite3_column_int64(stmt, 0);
    *delivered = sqlite3_column_int64(stmt, 1);
    *failed = sqlite3_column_int64(stmt, 2);
    q_done(stmt);
    return 0;
}

/* Writes a message's new state (it must be in state from) and clears its lease. */
static int
q_set_state(struct queue *q, int64_t id, const char *from, const char *state, int attempts,
            int64_t now, int64_t next_attempt_at, int code, const char *enhanced, const char *reply,
            const char *consequence, struct mo_error *err)
{
    static const char *const sql =
        "UPDATE messages SET state = ?2, attempts = ?3, updated_at = ?4, next_attempt_at = ?5,"
        " lease_owner = NULL, lease_until = NULL, prev_state = NULL, last_code = ?6,"
        " last_enhanced = ?7, last_reply = ?8 WHERE id = ?1 AND state = ?9";
    sqlite3_stmt *stmt = q_stmt(q, Q_MSG_FINISH, sql, err);
    int step;

    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    q_bind_text(stmt, 2, state);
    sqlite3_bind_int(stmt, 3, attempts);
    sqlite3_bind_int64(stmt, 4, now);
    if (next_attempt_at > 0)
        sqlite3_bind_int64(stmt, 5, next_attempt_at);
    if (code > 0)
        sqlite3_bind_int(stmt, 6, code);
    q_bind_text(stmt, 7, enhanced != NULL && enhanced[0] != '\0' ? enhanced : NULL);
    q_bind_text(stmt, 8, reply);
    q_bind_text(stmt, 9, from);
    step = sqlite3_step(stmt);
    q_done(stmt);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, consequence);
        return -1;
    }
    if (sqlite3_changes(q->db) != 1) {
        /* Only a bug gets here (callers read the state in this transaction). */
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "message %lld is not %s: %s", (long long)id, from,
                     consequence);
        return -1;
    }
    q_note_move(q, from, state, 1);
    return 0;
}

static int
q_log_attempt(struct queue *q, int64_t id, int64_t at, const char *result, int code,
              const char *enhanced, const char *reply, const char *transcript,
              const char *consequence, struct mo_error *err)
{
    static const char *const sql =
        "INSERT INTO attempts (message_id, at, result, code, enhanced, reply, transcript)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    sqlite3_stmt *stmt = q_stmt(q, Q_INSERT_ATTEMPT, sql, err);
    int step;

    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_int64(stmt, 2, at);
    q_bind_text(stmt, 3, result);
    if (code > 0)
        sqlite3_bind_int(stmt, 4, code);
    q_bind_text(stmt, 5, enhanced != NULL && enhanced[0] != '\0' ? enhanced : NULL);
    q_bind_text(stmt, 6, reply);
    q_bind_text(stmt, 7, transcript);
    step = sqlite3_step(stmt);
    q_done(stmt);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, consequence);
        return -1;
    }
    return 0;
}

/* Reads the claimed message into job. 1: loaded; 0: nothing left to send (closed here). */
static int
q_load_job(struct queue *q, int64_t id, int64_t now, struct queue_job *job, struct mo_error *err)
{
    static const char *const load =
        "SELECT m.account, m.env_from, m.attempts, m.created_at, m.needs_smtputf8, m.message_id,"
        " d.data FROM messages m LEFT JOIN message_data d ON d.id = m.id WHERE m.id = ?1";
    static const char *const rcpts =
        "SELECT address FROM recipients WHERE message_id = ?1 AND state = 'pending' ORDER BY id";
    const char *consequence = "nothing was claimed";
    sqlite3_stmt *stmt = NULL;
    bool oom = false;
    size_t cap = 0;
    int step;
    int rc = -1;

    job->id = id;
    if ((stmt = q_stmt(q, Q_JOB_LOAD, load, err)) == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        q_db_error(q, err, step == SQLITE_DONE ? SQLITE_CORRUPT : step, consequence);
        goto out;
    }
    job->account = q_column_dup(stmt, 0, &oom);
    job->from = q_column_dup(stmt, 1, &oom);
    job->attempts = sqlite3_column_int(stmt, 2);
    job->created_at = sqlite3_column_int64(stmt, 3);
    job->needs_smtputf8 = sqlite3_column_int(stmt, 4) != 0;
    job->message_id = q_column_dup(stmt, 5, &oom);
    if (sqlite3_column_type(stmt, 6) != SQLITE_NULL) {
        const void *blob = sqlite3_column_blob(stmt, 6);
        job->len = (size_t)sqlite3_column_bytes(stmt, 6);
        job->data = malloc(job->len + 1);
        if (job->data == NULL) {
            oom = true;
        } else {
            if (job->len > 0)
                memcpy(job->data, blob, job->len);
            job->data[job->len] = '\0';
        }
    }
    q_done(stmt);
    if (oom) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }

    if ((stmt = q_stmt(q, Q_JOB_RCPTS, rcpts, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, id);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (job->n_rcpts == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            char **grown = realloc(job->rcpts, ncap * sizeof(*grown));
            if (grown == NULL) {
                oom = true;
                break;
            }
            job->rcpts = grown;
            cap = ncap;
        }
        job->rcpts[job->n_rcpts] = q_column_dup(stmt, 0, &oom);
        if (oom)
            break;
        job->n_rcpts++;
    }
    q_done(stmt);
    stmt = NULL;
    if (oom) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        q_db_error(q, err, step, consequence);
        goto out;
    }

    if (job->n_rcpts == 0 || job->data == NULL) {
        /* Only a hand-edited database gets here: close the message instead of sending it. */
        int64_t pending, delivered, failed;
        const char *state;

        if (q_tally(q, id, &pending, &delivered, &failed, consequence, err) != 0)
            goto out;
        state = job->data != NULL && delivered > 0 ? Q_SENT : Q_FAILED;
        mo_log(MO_LOG_WARN, "queue: message %lld has %s; marking it %s", (long long)id,
               job->data == NULL ? "no content" : "no recipient left", state);
        if (q_set_state(q, id, Q_SENDING, state, job->attempts, now, 0, 0, NULL,
                        job->data == NULL ? "the message's content is missing from the database"
                                          : NULL,
                        consequence, err) != 0)
            goto out;
        queue_job_free(job);
        return 0;
    }
    rc = 1;
out:
    q_done(stmt);
    if (rc < 0)
        queue_job_free(job);
    return rc;
}

int
queue_claim(struct queue *q, const char *account, const char *owner, int lease_s, size_t max,
            struct queue_job **jobs_out, size_t *n_out, struct mo_error *err)
{
    static const char *const claim =
        "UPDATE messages SET prev_state = state, state = 'sending', lease_owner = ?2,"
        " lease_until = ?3 WHERE id = ?1 AND state = ?4";
    const char *consequence = "nothing was claimed";
    struct queue_job *jobs = NULL;
    int64_t *ids = NULL;
    const char **from = NULL;
    size_t n_ids = 0;
    size_t n = 0;
    int64_t now;
    int rc = -1;

    *jobs_out = NULL;
    *n_out = 0;
    if (max == 0)
        return 0;
    if (lease_s <= 0)
        lease_s = Q_DEFAULT_LEASE_S;
    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    now = q_now(q);
    /* account NULL: any; "": the default account (NULL column); else that account. */
    if (q_select_due(q, account != NULL && account[0] != '\0' ? account : NULL, account == NULL,
                     now, max, &ids, &from, &n_ids, err) != 0)
        goto out;
    jobs = calloc(n_ids > 0 ? n_ids : 1, sizeof(*jobs));
    if (jobs == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_ids; i++) {
        sqlite3_stmt *stmt = q_stmt(q, Q_CLAIM_ONE, claim, err);
        int step;
        int loaded;

        if (stmt == NULL)
            goto out;
        sqlite3_bind_int64(stmt, 1, ids[i]);
        q_bind_text(stmt, 2, owner != NULL ? owner : "worker");
        sqlite3_bind_int64(stmt, 3, now + lease_s);
        q_bind_text(stmt, 4, from[i]);
        step = sqlite3_step(stmt);
        q_done(stmt);
        if (step != SQLITE_DONE) {
            q_db_error(q, err, step, consequence);
            goto out;
        }
        if (sqlite3_changes(q->db) != 1)
            continue; /* no longer due */
        q_note_move(q, from[i], Q_SENDING, 1);
        loaded = q_load_job(q, ids[i], now, &jobs[n], err);
        if (loaded < 0)
            goto out;
        if (loaded > 0)
            n++;
    }
    if (q_commit(q, consequence, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        q_rollback(q);
        for (size_t i = 0; jobs != NULL && i < n; i++)
            queue_job_free(&jobs[i]);
        free(jobs);
        jobs = NULL;
        n = 0;
    }
    q_unlock(q);
    free(ids);
    free(from);
    if (rc == 0 && n == 0) {
        free(jobs);
        jobs = NULL;
    }
    *jobs_out = jobs;
    *n_out = n;
    return rc;
}

/* ---- which accounts, and when ------------------------------------------- */

static int
q_account_is_due(struct queue *q, const char *account, int64_t now, bool *due, struct mo_error *err)
{
    static const char *const sql =
        "SELECT EXISTS (SELECT 1 FROM messages WHERE account IS ?1 AND state = 'queued'"
        "   AND " Q_WAITING ")"
        " OR EXISTS (SELECT 1 FROM messages WHERE account IS ?1 AND state = 'deferred'"
        "   AND " Q_WAITING " AND next_attempt_at <= ?2)"
        " OR EXISTS (SELECT 1 FROM messages WHERE account IS ?1 AND state = 'uncertain'"
        "   AND " Q_WAITING " AND updated_at <= ?3)";
    sqlite3_stmt *stmt = q_stmt(q, Q_ACCOUNT_IS_DUE, sql, err);
    int step;

    if (stmt == NULL)
        return -1;
    q_bind_text(stmt, 1, account);
    sqlite3_bind_int64(stmt, 2, now);
    sqlite3_bind_int64(stmt, 3, now - q->grace_s);
    step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        q_db_error(q, err, step, "the queue could not be read");
        q_done(stmt);
        return -1;
    }
    *due = sqlite3_column_int(stmt, 0) != 0;
    q_done(stmt);
    return 0;
}

/*
 * Walks the distinct accounts through the account index (one seek each), so
 * the cost grows with the number of accounts, not with the log.
 */
int
queue_due_accounts(struct queue *q, char ***accounts_out, size_t *n_out, struct mo_error *err)
{
    static const char *const first =
        "SELECT account FROM messages INDEXED BY messages_waiting_account"
        " WHERE account IS NOT NULL AND " Q_WAITING " ORDER BY account LIMIT 1";
    static const char *const next =
        "SELECT account FROM messages INDEXED BY messages_waiting_account"
        " WHERE account > ?1 AND " Q_WAITING " ORDER BY account LIMIT 1";
    char **list = NULL;
    size_t n = 0;
    size_t cap = 0;
    char *current = NULL;
    bool in_txn = false;
    int64_t now;
    bool due = false;
    int rc = -1;

    *accounts_out = NULL;
    *n_out = 0;
    q_lock(q);
    if (q_begin_read(q, err) != 0)
        goto out;
    in_txn = true;
    now = q_now(q);
    /* The default account first; it is the NULL entry. */
    if (q_account_is_due(q, NULL, now, &due, err) != 0)
        goto out;
    if (due) {
        list = calloc(4, sizeof(*list));
        if (list == NULL)
            goto oom;
        cap = 4;
        list[n++] = NULL;
    }
    for (;;) {
        sqlite3_stmt *stmt = current == NULL ? q_stmt(q, Q_FIRST_ACCOUNT, first, err)
                                             : q_stmt(q, Q_NEXT_ACCOUNT, next, err);
        bool oom = false;
        char *name;
        int step;

        if (stmt == NULL)
            goto out;
        if (current != NULL)
            q_bind_text(stmt, 1, current);
        step = sqlite3_step(stmt);
        if (step == SQLITE_DONE) {
            q_done(stmt);
            break;
        }
        if (step != SQLITE_ROW) {
            q_db_error(q, err, step, "the queue could not be read");
            q_done(stmt);
            goto out;
        }
        name = q_column_dup(stmt, 0, &oom);
        q_done(stmt);
        if (oom || name == NULL)
            goto oom;
        free(current);
        current = name;
        if (q_account_is_due(q, current, now, &due, err) != 0)
            goto out;
        if (!due)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            char **grown = realloc(list, ncap * sizeof(*grown));
            if (grown == NULL)
                goto oom;
            list = grown;
            cap = ncap;
        }
        list[n] = strdup(current);
        if (list[n] == NULL)
            goto oom;
        n++;
    }
    rc = 0;
    goto out;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    if (in_txn) {
        if (rc == 0)
            rc = q_commit(q, "the queue could not be read", err);
        else
            q_rollback(q);
    }
    q_unlock(q);
    free(current);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(list[i]);
        free(list);
        return -1;
    }
    *accounts_out = list;
    *n_out = n;
    return 0;
}

static int
q_min_of(struct queue *q, enum q_stmt id, const char *sql, int64_t *out, struct mo_error *err)
{
    sqlite3_stmt *stmt = q_stmt(q, id, sql, err);
    int step;

    *out = 0;
    if (stmt == NULL)
        return -1;
    step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        q_db_error(q, err, step, "the queue could not be read");
        q_done(stmt);
        return -1;
    }
    if (sqlite3_column_type(stmt, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(stmt, 0);
    q_done(stmt);
    return 0;
}

int64_t
queue_next_due(struct queue *q)
{
    int64_t queued = 0, deferred = 0, uncertain = 0, best = 0;
    struct mo_error err;
    int rc = -1;

    q_lock(q);
    if (q_begin_read(q, &err) != 0)
        goto out;
    if (q_min_of(q, Q_MIN_QUEUED,
                 "SELECT min(next_attempt_at) FROM messages WHERE state = 'queued' AND " Q_WAITING,
                 &queued, &err) != 0 ||
        q_min_of(
            q, Q_MIN_DEFERRED,
            "SELECT min(next_attempt_at) FROM messages WHERE state = 'deferred' AND " Q_WAITING,
            &deferred, &err) != 0 ||
        q_min_of(q, Q_MIN_UNCERTAIN,
                 "SELECT min(updated_at) FROM messages WHERE state = 'uncertain' AND " Q_WAITING,
                 &uncertain, &err) != 0)
        goto out;
    if (uncertain > 0)
        uncertain += q->grace_s;
    best = queued;
    if (deferred > 0 && (best == 0 || deferred < best))
        best = deferred;
    if (uncertain > 0 && (best == 0 || uncertain < best))
        best = uncertain;
    rc = q_commit(q, "the queue could not be read", &err);
out:
    if (rc != 0) {
        q_rollback(q);
        /* Now, so the worker looks, and its claim reports the trouble. */
        mo_log(MO_LOG_WARN, "queue: %s", err.text);
        best = q_now(q);
    }
    q_unlock(q);
    return best;
}

/* ---- outcomes ------------------------------------------------------------- */

static const char *
q_rcpt_state(enum queue_rcpt_result r)
{
    switch (r) {
    case QUEUE_RCPT_DELIVERED:
        return "delivered";
    case QUEUE_RCPT_FAIL:
        return "failed";
    case QUEUE_RCPT_DEFER:
        return "pending";
    }
    return "pending";
}

/* Records one recipient's (or, with address NULL, every pending one's) result. */
static int
q_set_rcpt(struct queue *q, int64_t id, const char *address, enum queue_rcpt_result result,
           int code, const char *enhanced, const char *text, const char *consequence,
           struct mo_error *err)
{
    static const char *const one = "UPDATE recipients SET state = ?3, code = ?4, reply = ?5"
                                   " WHERE message_id = ?1 AND address = ?2 AND state = 'pending'";
    static const char *const all = "UPDATE recipients SET state = ?3, code = ?4, reply = ?5"
                                   " WHERE message_id = ?1 AND state = 'pending'";
    sqlite3_stmt *stmt =
        address != NULL ? q_stmt(q, Q_RCPT_SET_ONE, one, err) : q_stmt(q, Q_RCPT_SET_ALL, all, err);
    char *reply = NULL;
    int step;

    if (stmt == NULL)
        return -1;
    reply = q_reply_text(0, enhanced, text);
    if (reply == NULL) {
        q_done(stmt);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    sqlite3_bind_int64(stmt, 1, id);
    if (address != NULL)
        q_bind_text(stmt, 2, address);
    q_bind_text(stmt, 3, q_rcpt_state(result));
    if (code > 0)
        sqlite3_bind_int(stmt, 4, code);
    q_bind_text(stmt, 5, reply[0] != '\0' ? reply : NULL);
    step = sqlite3_step(stmt);
    q_done(stmt);
    free(reply);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, consequence);
        return -1;
    }
    return 0;
}

/* "5 days", "36 hours", "90 minutes", "45 seconds". */
static void
q_format_age(int64_t s, char *out, size_t size)
{
    if (s % 86400 == 0)
        snprintf(out, size, "%lld day%s", (long long)(s / 86400), s == 86400 ? "" : "s");
    else if (s % 3600 == 0)
        snprintf(out, size, "%lld hour%s", (long long)(s / 3600), s == 3600 ? "" : "s");
    else if (s % 60 == 0)
        snprintf(out, size, "%lld minute%s", (long long)(s / 60), s == 60 ? "" : "s");
    else
        snprintf(out, size, "%lld second%s", (long long)s, s == 1 ? "" : "s");
}

static int
q_finish_one(struct queue *q, const struct queue_outcome *o, int64_t now, struct mo_error *err)
{
    static const char *const read_state =
        "SELECT state, attempts, created_at FROM messages WHERE id = ?1";
    static const char *const fail_pending =
        "UPDATE recipients SET state = 'failed' WHERE message_id = ?1 AND state = 'pending'";
    const char *consequence = "the outcomes were NOT recorded";
    sqlite3_stmt *stmt;
    const char *state_text;
    char from[16];
    const char *new_state;
    const char *enhanced = o->enhanced;
    const char *text = o->text;
    int code = o->code;
    char *reply = NULL;
    char *gave_up = NULL;
    int64_t pending, delivered, failed;
    int64_t next = 0;
    int64_t created_at;
    int attempts;
    int step;
    int rc = -1;

    if ((stmt = q_stmt(q, Q_MSG_STATE, read_state, err)) == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, o->id);
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        q_done(stmt);
        mo_log(MO_LOG_WARN, "queue: outcome for message %lld, which is gone; ignored",
               (long long)o->id);
        return 0;
    }
    if (step != SQLITE_ROW) {
        q_db_error(q, err, step, consequence);
        q_done(stmt);
        return -1;
    }
    state_text = (const char *)sqlite3_column_text(stmt, 0);
    if (state_text != NULL &&
        (strcmp(state_text, Q_SENT) == 0 || strcmp(state_text, Q_FAILED) == 0)) {
        mo_log(MO_LOG_WARN, "queue: outcome for message %lld, which is already %s; ignored",
               (long long)o->id, state_text);
        q_done(stmt);
        return 0;
    }
    snprintf(from, sizeof(from), "%s", state_text != NULL ? state_text : "");
    attempts = sqlite3_column_int(stmt, 1);
    created_at = sqlite3_column_int64(stmt, 2);
    q_done(stmt);

    /*
     * Recipients. After a broken line (uncertain) only a refusal is certain:
     * an accepted or deferred recipient may have the message, so it stays
     * pending for the resend after the grace period.
     */
    if (o->rcpts != NULL) {
        for (size_t i = 0; i < o->n_rcpts; i++) {
            const struct queue_rcpt_outcome *r = &o->rcpts[i];

            if (r->address == NULL || (o->uncertain && r->result != QUEUE_RCPT_FAIL))
                continue;
            if (q_set_rcpt(q, o->id, r->address, r->result, r->code, r->enhanced, r->text,
                           consequence, err) != 0)
                return -1;
        }
        /* Without a deciding reply of its own, the first refused or deferred one speaks. */
        if (code == 0 && text == NULL) {
            for (size_t i = 0; i < o->n_rcpts; i++) {
                if (o->rcpts[i].result != QUEUE_RCPT_DELIVERED || i + 1 == o->n_rcpts) {
                    code = o->rcpts[i].code;
                    enhanced = o->rcpts[i].enhanced;
                    text = o->rcpts[i].text;
                    break;
                }
            }
        }
    } else if (!o->uncertain || o->all == QUEUE_RCPT_FAIL) {
        if (q_set_rcpt(q, o->id, NULL, o->all, o->code, o->enhanced, o->text, consequence, err) !=
            0)
            return -1;
    }
    if (q_tally(q, o->id, &pending, &delivered, &failed, consequence, err) != 0)
        return -1;

    attempts++;
    reply = q_reply_text(code, enhanced, text);
    if (reply == NULL)
        goto oom;
    if (pending == 0) {
        new_state = delivered > 0 ? Q_SENT : Q_FAILED;
    } else if (o->uncertain) {
        new_state = Q_UNCERTAIN;
        next = now + q->grace_s;
    } else {
        new_state = Q_DEFERRED;
        /* The backoff counts the attempts before this one: the first retry comes after ~1 min. */
        next = now + queue_next_delay_s(attempts - 1);
        if (o->defer_until > next)
            next = o->defer_until;
    }
    /* Another try would pass max_age (an uncertain resend too): give up, keeping the reply. */
    if (next > 0 && created_at + q->max_age_s < next) {
        char age[48];
        size_t len;

        q_format_age(q->max_age_s, age, sizeof(age));
        len = strlen(age) + strlen(reply) + 32;
        gave_up = malloc(len);
        if (gave_up == NULL)
            goto oom;
        snprintf(gave_up, len, "gave up after %s: %s", age, reply[0] != '\0' ? reply : "no reply");
        if ((stmt = q_stmt(q, Q_RCPT_FAIL_PENDING, fail_pending, err)) == NULL)
            goto out;
        sqlite3_bind_int64(stmt, 1, o->id);
        step = sqlite3_step(stmt);
        q_done(stmt);
        if (step != SQLITE_DONE) {
            q_db_error(q, err, step, consequence);
            goto out;
        }
        new_state = Q_FAILED;
        next = 0;
    }
    if (q_set_state(q, o->id, from, new_state, attempts, now, next, code, enhanced,
                    gave_up != NULL ? gave_up : (reply[0] != '\0' ? reply : NULL), consequence,
                    err) != 0)
        goto out;
    if (q_log_attempt(q, o->id, now, new_state, code, enhanced,
                      gave_up != NULL ? gave_up : (reply[0] != '\0' ? reply : NULL), o->transcript,
                      consequence, err) != 0)
        goto out;
    mo_log(MO_LOG_INFO, "queue: message %lld: attempt %d: %s%s%s", (long long)o->id, attempts,
           new_state, reply[0] != '\0' ? ": " : "", reply);
    rc = 0;
    goto out;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    free(reply);
    free(gave_up);
    return rc;
}

int
queue_finish(struct queue *q, const struct queue_outcome *outcomes, size_t n, struct mo_error *err)
{
    const char *consequence = "the outcomes were NOT recorded";
    int64_t now;
    int rc = -1;

    if (n == 0)
        return 0;
    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    now = q_now(q);
    for (size_t i = 0; i < n; i++)
        if (q_finish_one(q, &outcomes[i], now, err) != 0)
            goto out;
    if (q_commit(q, consequence, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        q_rollback(q);
    q_unlock(q);
    return rc;
}

int
queue_release(struct queue *q, const int64_t *ids, size_t n, struct mo_error *err)
{
    static const char *const sql =
        "UPDATE messages SET state = COALESCE(prev_state, 'queued'), prev_state = NULL,"
        " lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND state = 'sending'"
        " RETURNING state";
    const char *consequence = "the messages were NOT handed back";
    int rc = -1;

    if (n == 0)
        return 0;
    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *stmt = q_stmt(q, Q_RELEASE_ONE, sql, err);
        char back[16] = "";
        int step;

        if (stmt == NULL)
            goto out;
        sqlite3_bind_int64(stmt, 1, ids[i]);
        step = sqlite3_step(stmt);
        if (step == SQLITE_ROW) {
            const unsigned char *p = sqlite3_column_text(stmt, 0);
            snprintf(back, sizeof(back), "%s", p != NULL ? (const char *)p : "");
            step = sqlite3_step(stmt);
        }
        q_done(stmt);
        q_note_move(q, Q_SENDING, back, 1); /* nothing when it was not sending any more */
        if (step != SQLITE_DONE) {
            q_db_error(q, err, step, consequence);
            goto out;
        }
    }
    if (q_commit(q, consequence, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        q_rollback(q);
    q_unlock(q);
    return rc;
}

int
queue_recover(struct queue *q, size_t *n_out, struct mo_error *err)
{
    static const char *const expired =
        "SELECT id, attempts FROM messages WHERE state = 'sending' AND " Q_BUSY
        " AND lease_until < ?1";
    const char *consequence = "the interrupted messages were NOT recovered";
    int64_t *ids = NULL;
    int *attempts = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *stmt;
    int64_t now;
    int step;
    int rc = -1;

    if (n_out != NULL)
        *n_out = 0;
    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    now = q_now(q);
    if ((stmt = q_stmt(q, Q_EXPIRED, expired, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, now);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            int64_t *gi = realloc(ids, ncap * sizeof(*gi));
            int *ga;

            if (gi == NULL) {
                step = SQLITE_NOMEM;
                break;
            }
            ids = gi;
            ga = realloc(attempts, ncap * sizeof(*ga));
            if (ga == NULL) {
                step = SQLITE_NOMEM;
                break;
            }
            attempts = ga;
            cap = ncap;
        }
        ids[n] = sqlite3_column_int64(stmt, 0);
        attempts[n] = sqlite3_column_int(stmt, 1);
        n++;
    }
    q_done(stmt);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, consequence);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* It counts as an attempt: the data may have gone out. */
        if (q_set_state(q, ids[i], Q_SENDING, Q_UNCERTAIN, attempts[i] + 1, now, now + q->grace_s,
                        0, NULL, Q_RECOVER_TEXT, consequence, err) != 0 ||
            q_log_attempt(q, ids[i], now, Q_UNCERTAIN, 0, NULL, Q_RECOVER_TEXT, NULL, consequence,
                          err) != 0)
            goto out;
        mo_log(MO_LOG_WARN, "queue: message %lld: %s", (long long)ids[i], Q_RECOVER_TEXT);
    }
    if (q_commit(q, consequence, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        q_rollback(q);
        n = 0;
    }
    q_unlock(q);
    free(ids);
    free(attempts);
    if (n_out != NULL)
        *n_out = n;
    return rc;
}
