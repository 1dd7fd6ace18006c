/*
 * queue_admin.c - reading the queue and the admin's actions on it, for the
 * CLI (`mailout queue list/show/retry/drop`), the HTTP API and the panel.
 *
 * Lists are newest first and paged by id (before_id), so a page costs the
 * same on the first and the thousandth page. Search is a substring of the
 * envelope sender, the From header, the subject, the Message-ID and the
 * recipients, case-insensitive for ASCII letters, matched with LIKE (%, _
 * and \ in the term are escaped, so they match themselves). It walks the
 * messages newest first and stops when the page is full: a common term costs
 * well under a millisecond; a term found nowhere reads every message's search
 * text (~20 ms per 100,000 messages). Counts per state come from a table the
 * triggers keep; "sent today" counts since local midnight (the machine's
 * time zone).
 * Leaves out: exporting and pruning the log.
 */
#include "queue/queue_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define Q_LIST_DEFAULT 50
#define Q_LIST_MAX 10000

void
queue_message_info_clear(struct queue_message_info *m)
{
    if (m == NULL)
        return;
    free(m->account);
    free(m->from);
    free(m->header_from);
    free(m->subject);
    free(m->message_id);
    free(m->source);
    free(m->last_reply);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        free(m->rcpts[i].address);
        free(m->rcpts[i].state);
        free(m->rcpts[i].reply);
    }
    free(m->rcpts);
    for (size_t i = 0; i < m->n_attempt_log; i++) {
        free(m->attempt_log[i].result);
        free(m->attempt_log[i].reply);
        free(m->attempt_log[i].transcript);
    }
    free(m->attempt_log);
    memset(m, 0, sizeof(*m));
}

/* The columns q_read_info() expects, in order. */
#define Q_INFO_COLUMNS                                                                             \
    "m.id, m.state, m.account, m.env_from, m.header_from, m.subject, m.message_id, m.source,"      \
    " m.created_at, m.updated_at, m.next_attempt_at, m.attempts, m.last_code, m.last_reply,"       \
    " m.size"

static int
q_read_info(sqlite3_stmt *stmt, struct queue_message_info *m, struct mo_error *err)
{
    enum queue_state state = QUEUE_QUEUED;
    bool oom = false;

    memset(m, 0, sizeof(*m));
    m->id = sqlite3_column_int64(stmt, 0);
    if (queue_state_parse((const char *)sqlite3_column_text(stmt, 1), &state) != 0)
        mo_log(MO_LOG_WARN, "queue: message %lld has an unknown state", (long long)m->id);
    m->state = state;
    m->account = q_column_dup(stmt, 2, &oom);
    m->from = q_column_dup(stmt, 3, &oom);
    m->header_from = q_column_dup(stmt, 4, &oom);
    m->subject = q_column_dup(stmt, 5, &oom);
    m->message_id = q_column_dup(stmt, 6, &oom);
    m->source = q_column_dup(stmt, 7, &oom);
    m->created_at = sqlite3_column_int64(stmt, 8);
    m->updated_at = sqlite3_column_int64(stmt, 9);
    m->next_attempt_at = sqlite3_column_int64(stmt, 10);
    m->attempts = sqlite3_column_int(stmt, 11);
    m->last_code = sqlite3_column_int(stmt, 12);
    m->last_reply = q_column_dup(stmt, 13, &oom);
    m->size = (size_t)sqlite3_column_int64(stmt, 14);
    if (oom) {
        queue_message_info_clear(m);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

static int
q_read_rcpts(struct queue *q, struct queue_message_info *m, struct mo_error *err)
{
    static const char *const sql =
        "SELECT address, state, code, reply FROM recipients WHERE message_id = ?1 ORDER BY id";
    sqlite3_stmt *stmt = q_stmt(q, Q_GET_RCPTS, sql, err);
    size_t cap = 0;
    bool oom = false;
    int step;

    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, m->id);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct queue_rcpt_info *r;

        if (m->n_rcpts == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            struct queue_rcpt_info *grown = realloc(m->rcpts, ncap * sizeof(*grown));
            if (grown == NULL) {
                oom = true;
                break;
            }
            m->rcpts = grown;
            cap = ncap;
        }
        r = &m->rcpts[m->n_rcpts++];
        memset(r, 0, sizeof(*r));
        r->address = q_column_dup(stmt, 0, &oom);
        r->state = q_column_dup(stmt, 1, &oom);
        r->code = sqlite3_column_int(stmt, 2);
        r->reply = q_column_dup(stmt, 3, &oom);
        if (oom)
            break;
    }
    q_done(stmt);
    if (oom) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, "the queue could not be read");
        return -1;
    }
    return 0;
}

static int
q_read_attempts(struct queue *q, struct queue_message_info *m, struct mo_error *err)
{
    static const char *const sql = "SELECT at, result, code, reply, transcript FROM attempts"
                                   " WHERE message_id = ?1 ORDER BY id";
    sqlite3_stmt *stmt = q_stmt(q, Q_GET_ATTEMPTS, sql, err);
    size_t cap = 0;
    bool oom = false;
    int step;

    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, m->id);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct queue_attempt_info *a;

        if (m->n_attempt_log == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            struct queue_attempt_info *grown = realloc(m->attempt_log, ncap * sizeof(*grown));
            if (grown == NULL) {
                oom = true;
                break;
            }
            m->attempt_log = grown;
            cap = ncap;
        }
        a = &m->attempt_log[m->n_attempt_log++];
        memset(a, 0, sizeof(*a));
        a->at = sqlite3_column_int64(stmt, 0);
        a->result = q_column_dup(stmt, 1, &oom);
        a->code = sqlite3_column_int(stmt, 2);
        a->reply = q_column_dup(stmt, 3, &oom);
        a->transcript = q_column_dup(stmt, 4, &oom);
        if (oom)
            break;
    }
    q_done(stmt);
    if (oom) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, "the queue could not be read");
        return -1;
    }
    return 0;
}

static void
q_unknown(struct mo_error *err, int64_t id)
{
    mo_error_set(err, MO_ERR_CONFIG, "id", "there is no message %lld in the queue", (long long)id);
}

int
queue_get(struct queue *q, int64_t id, bool with_details, struct queue_message_info *out,
          struct mo_error *err)
{
    static const char *const sql = "SELECT " Q_INFO_COLUMNS " FROM messages m WHERE m.id = ?1";
    sqlite3_stmt *stmt;
    bool in_txn = false;
    int step;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    q_lock(q);
    if (q_begin_read(q, err) != 0)
        goto out;
    in_txn = true;
    if ((stmt = q_stmt(q, Q_GET_MESSAGE, sql, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step != SQLITE_ROW) {
        if (step == SQLITE_DONE)
            q_unknown(err, id);
        else
            q_db_error(q, err, step, "the queue could not be read");
        q_done(stmt);
        goto out;
    }
    rc = q_read_info(stmt, out, err);
    q_done(stmt);
    if (rc != 0)
        goto out;
    rc = -1;
    if (q_read_rcpts(q, out, err) != 0)
        goto out;
    if (with_details && q_read_attempts(q, out, err) != 0)
        goto out;
    rc = q_commit(q, "the queue could not be read", err);
out:
    if (rc != 0) {
        if (in_txn)
            q_rollback(q);
        queue_message_info_clear(out);
    }
    q_unlock(q);
    return rc;
}

int
queue_get_data(struct queue *q, int64_t id, char **data, size_t *len, struct mo_error *err)
{
    static const char *const sql = "SELECT data FROM message_data WHERE id = ?1";
    sqlite3_stmt *stmt;
    int step;
    int rc = -1;

    *data = NULL;
    *len = 0;
    q_lock(q);
    if ((stmt = q_stmt(q, Q_GET_DATA, sql, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(stmt, 0);
        const void *blob = sqlite3_column_blob(stmt, 0);
        char *copy = malloc(n + 1);

        if (copy == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        } else {
            if (n > 0)
                memcpy(copy, blob, n);
            copy[n] = '\0';
            *data = copy;
            *len = n;
            rc = 0;
        }
    } else if (step == SQLITE_DONE) {
        q_unknown(err, id);
    } else {
        q_db_error(q, err, step, "the queue could not be read");
    }
    q_done(stmt);
out:
    q_unlock(q);
    return rc;
}

/* The search term as a LIKE pattern: %term%, with %, _ and \ escaped by \. */
static int
q_like_pattern(const char *term, struct mo_buf *b, struct mo_error *err)
{
    if (mo_buf_append(b, "%", 1, err) != 0)
        return -1;
    for (const char *p = term; *p != '\0'; p++)
        if (((*p == '%' || *p == '_' || *p == '\\') && mo_buf_append(b, "\\", 1, err) != 0) ||
            mo_buf_append(b, p, 1, err) != 0)
            return -1;
    return mo_buf_append(b, "%", 1, err);
}

/*
 * The partial index's term that holds a state's messages (queue.c), so a list
 * of one state walks only those; NULL for sent (the primary key is walked).
 */
static const char *
q_state_index_term(int state)
{
    switch (state) {
    case QUEUE_QUEUED:
    case QUEUE_DEFERRED:
    case QUEUE_UNCERTAIN:
        return Q_WAITING;
    case QUEUE_SENDING:
    case QUEUE_FAILED:
        return Q_BUSY;
    default:
        return NULL;
    }
}

int
queue_list(struct queue *q, const struct queue_filter *f, struct queue_message_info **out,
           size_t *n_out, struct mo_error *err)
{
    struct queue_filter none = {.state = -1};
    struct queue_message_info *list = NULL;
    struct mo_buf sql, pattern;
    sqlite3_stmt *stmt = NULL;
    bool in_txn = false;
    bool has_search;
    bool by_search;
    size_t limit;
    size_t n = 0;
    int step;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (f == NULL)
        f = &none;
    mo_buf_init(&sql, 4096);
    mo_buf_init(&pattern, 16384);
    limit = f->limit == 0 ? Q_LIST_DEFAULT : (f->limit > Q_LIST_MAX ? Q_LIST_MAX : f->limit);
    has_search = f->search != NULL && f->search[0] != '\0';
    if (f->state >= QUEUE_STATE_COUNT) {
        mo_error_set(err, MO_ERR_CONFIG, "state", "unknown message state %d", f->state);
        goto free_bufs;
    }
    /* The walk's order must be the outer table's key, or SQLite sorts every match. */
    by_search = has_search && f->state < 0;
    if (has_search && q_like_pattern(f->search, &pattern, err) != 0) {
        mo_error_set(err, MO_ERR_CONFIG, "search", "the search text is too long");
        goto free_bufs;
    }
    /*
     * Only fixed fragments go into the SQL; every value is bound. CROSS JOIN
     * fixes the loop order so that the walk is newest first and LIMIT stops
     * it: by the state index when a state is asked for (a rare state has few
     * rows to test), else by the search table's primary key.
     */
    if (mo_buf_append_str(&sql, "SELECT " Q_INFO_COLUMNS, err) != 0 ||
        (!has_search && mo_buf_append_str(&sql, " FROM messages m WHERE 1", err) != 0) ||
        (has_search && f->state >= 0 &&
         mo_buf_append_str(&sql,
                           " FROM messages m CROSS JOIN message_search s ON s.id = m.id"
                           " WHERE s.text LIKE ?3 ESCAPE '\\'",
                           err) != 0) ||
        (has_search && f->state < 0 &&
         mo_buf_append_str(&sql,
                           " FROM message_search s CROSS JOIN messages m ON m.id = s.id"
                           " WHERE s.text LIKE ?3 ESCAPE '\\'",
                           err) != 0) ||
        (f->state >= 0 && mo_buf_append_str(&sql, " AND m.state = ?1", err) != 0) ||
        (f->state >= 0 && q_state_index_term(f->state) != NULL &&
         (mo_buf_append_str(&sql, " AND ", err) != 0 ||
          mo_buf_append_str(&sql, q_state_index_term(f->state), err) != 0)) ||
        (f->before_id > 0 &&
         mo_buf_append_str(&sql, by_search ? " AND s.id < ?2" : " AND m.id < ?2", err) != 0) ||
        mo_buf_append_str(
            &sql, by_search ? " ORDER BY s.id DESC LIMIT ?4" : " ORDER BY m.id DESC LIMIT ?4",
            err) != 0)
        goto free_bufs;

    list = calloc(limit, sizeof(*list));
    if (list == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto free_bufs;
    }
    q_lock(q);
    if (q_begin_read(q, err) != 0)
        goto out;
    in_txn = true;
    step = sqlite3_prepare_v2(q->db, mo_buf_cstr(&sql), -1, &stmt, NULL);
    if (step != SQLITE_OK) {
        q_db_error(q, err, step, "the queue could not be read");
        goto out;
    }
    if (f->state >= 0)
        q_bind_text(stmt, 1, queue_state_name((enum queue_state)f->state));
    if (f->before_id > 0)
        sqlite3_bind_int64(stmt, 2, f->before_id);
    if (has_search)
        sqlite3_bind_text(stmt, 3, mo_buf_cstr(&pattern), (int)pattern.len, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)limit);
    while (n < limit && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (q_read_info(stmt, &list[n], err) != 0)
            goto out;
        n++;
    }
    if (n < limit && step != SQLITE_DONE) {
        q_db_error(q, err, step, "the queue could not be read");
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    for (size_t i = 0; i < n; i++)
        if (q_read_rcpts(q, &list[i], err) != 0)
            goto out;
    rc = q_commit(q, "the queue could not be read", err);
out:
    sqlite3_finalize(stmt);
    if (rc != 0 && in_txn)
        q_rollback(q);
    q_unlock(q);
free_bufs:
    mo_buf_free(&sql);
    mo_buf_free(&pattern);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            queue_message_info_clear(&list[i]);
        free(list);
        return -1;
    }
    if (n == 0) {
        free(list);
        list = NULL;
    }
    *out = list;
    *n_out = n;
    return 0;
}

/* Unix time of the last local midnight at or before now. */
static int64_t
q_local_midnight(int64_t now)
{
    time_t t = (time_t)now;
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL)
        return now - now % 86400;
    tm.tm_hour = 0;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm);
}

int
queue_count(struct queue *q, struct queue_counts *out, struct mo_error *err)
{
    static const char *const by_state = "SELECT state, n FROM queue_state_counts";
    static const char *const sent_since =
        "SELECT count(*) FROM messages WHERE state = 'sent' AND updated_at >= ?1";
    sqlite3_stmt *stmt;
    bool in_txn = false;
    int step;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    q_lock(q);
    if (q_begin_read(q, err) != 0)
        goto out;
    in_txn = true;
    if ((stmt = q_stmt(q, Q_STATE_COUNTS, by_state, err)) == NULL)
        goto out;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        enum queue_state s;
        sqlite3_int64 v = sqlite3_column_int64(stmt, 1);

        if (queue_state_parse((const char *)sqlite3_column_text(stmt, 0), &s) == 0)
            out->by_state[s] = v > 0 ? (size_t)v : 0;
    }
    q_done(stmt);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, "the queue could not be counted");
        goto out;
    }
    if ((stmt = q_stmt(q, Q_SENT_SINCE, sent_since, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, q_local_midnight(q_now(q)));
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW)
        out->sent_today = (size_t)sqlite3_column_int64(stmt, 0);
    q_done(stmt);
    if (step != SQLITE_ROW) {
        q_db_error(q, err, step, "the queue could not be counted");
        goto out;
    }
    rc = q_commit(q, "the queue could not be counted", err);
out:
    if (rc != 0) {
        if (in_txn)
            q_rollback(q);
        memset(out, 0, sizeof(*out));
    }
    q_unlock(q);
    return rc;
}

/* Reads a message's state inside the open transaction: 1 found, 0 unknown, -1 error. */
static int
q_state_of(struct queue *q, int64_t id, enum queue_state *state, const char *consequence,
           struct mo_error *err)
{
    static const char *const sql = "SELECT state, attempts, created_at FROM messages WHERE id = ?1";
    sqlite3_stmt *stmt = q_stmt(q, Q_ADMIN_STATE, sql, err);
    int step;
    int rc;

    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        rc = queue_state_parse((const char *)sqlite3_column_text(stmt, 0), state) == 0 ? 1 : -1;
        if (rc < 0)
            mo_error_set(err, MO_ERR_STORAGE, NULL, "message %lld has an unknown state",
                         (long long)id);
    } else if (step == SQLITE_DONE) {
        rc = 0;
    } else {
        q_db_error(q, err, step, consequence);
        rc = -1;
    }
    q_done(stmt);
    return rc;
}

int
queue_retry(struct queue *q, int64_t id, struct mo_error *err)
{
    static const char *const unfail =
        "UPDATE recipients SET state = 'pending', code = NULL, reply = NULL"
        " WHERE message_id = ?1 AND state = 'failed'";
    static const char *const requeue = "UPDATE messages SET state = 'queued', next_attempt_at = ?2,"
                                       " updated_at = ?2 WHERE id = ?1";
    const char *consequence = "the message was NOT retried";
    enum queue_state state = QUEUE_QUEUED;
    sqlite3_stmt *stmt;
    int64_t now;
    int found;
    int step;
    int rc = -1;

    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    now = q_now(q);
    found = q_state_of(q, id, &state, consequence, err);
    if (found < 0)
        goto out;
    if (found == 0) {
        q_unknown(err, id);
        goto out;
    }
    switch (state) {
    case QUEUE_SENT:
        mo_error_set(err, MO_ERR_CONFIG, NULL,
                     "message %lld was already sent; there is nothing to retry", (long long)id);
        goto out;
    case QUEUE_SENDING:
        mo_error_set(err, MO_ERR_CONFIG, NULL, "message %lld is being sent right now",
                     (long long)id);
        goto out;
    case QUEUE_QUEUED:
        break; /* already due: nothing to change */
    case QUEUE_FAILED:
        if ((stmt = q_stmt(q, Q_RCPT_UNFAIL, unfail, err)) == NULL)
            goto out;
        sqlite3_bind_int64(stmt, 1, id);
        step = sqlite3_step(stmt);
        q_done(stmt);
        if (step != SQLITE_DONE) {
            q_db_error(q, err, step, consequence);
            goto out;
        }
        /* fall through */
    case QUEUE_DEFERRED:
    case QUEUE_UNCERTAIN:
        if ((stmt = q_stmt(q, Q_RETRY_ONE, requeue, err)) == NULL)
            goto out;
        sqlite3_bind_int64(stmt, 1, id);
        sqlite3_bind_int64(stmt, 2, now);
        step = sqlite3_step(stmt);
        q_done(stmt);
        if (step != SQLITE_DONE) {
            q_db_error(q, err, step, consequence);
            goto out;
        }
        q_note_move(q, queue_state_name(state), Q_QUEUED, sqlite3_changes(q->db));
        break;
    case QUEUE_STATE_COUNT:
        goto out;
    }
    if (q_commit(q, consequence, err) != 0)
        goto out;
    mo_log(MO_LOG_INFO, "queue: message %lld: %s -> queued by hand", (long long)id,
           queue_state_name(state));
    rc = 0;
out:
    if (rc != 0)
        q_rollback(q);
    q_unlock(q);
    return rc;
}

int
queue_retry_all_deferred(struct queue *q, size_t *n, struct mo_error *err)
{
    static const char *const sql = "UPDATE messages SET state = 'queued', next_attempt_at = ?1,"
                                   " updated_at = ?1 WHERE state = 'deferred' AND " Q_WAITING;
    const char *consequence = "the messages were NOT retried";
    sqlite3_stmt *stmt;
    size_t changed = 0;
    int step;
    int rc = -1;

    if (n != NULL)
        *n = 0;
    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    if ((stmt = q_stmt(q, Q_RETRY_DEFERRED, sql, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, q_now(q));
    step = sqlite3_step(stmt);
    q_done(stmt);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, consequence);
        goto out;
    }
    changed = (size_t)sqlite3_changes(q->db);
    q_note_move(q, Q_DEFERRED, Q_QUEUED, (int64_t)changed);
    if (q_commit(q, consequence, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        q_rollback(q);
    else if (n != NULL)
        *n = changed;
    q_unlock(q);
    return rc;
}

int
queue_drop(struct queue *q, int64_t id, struct mo_error *err)
{
    static const char *const sql = "DELETE FROM messages WHERE id = ?1";
    const char *consequence = "the message was NOT removed";
    enum queue_state state = QUEUE_QUEUED;
    sqlite3_stmt *stmt;
    int found;
    int step;
    int rc = -1;

    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    found = q_state_of(q, id, &state, consequence, err);
    if (found < 0)
        goto out;
    if (found == 0) {
        q_unknown(err, id);
        goto out;
    }
    if (state == QUEUE_SENDING) {
        mo_error_set(err, MO_ERR_CONFIG, NULL,
                     "message %lld is being sent right now; drop it when the attempt is over",
                     (long long)id);
        goto out;
    }
    /* Recipients, attempts and the body go by ON DELETE CASCADE, the search row by trigger. */
    if ((stmt = q_stmt(q, Q_DROP_ONE, sql, err)) == NULL)
        goto out;
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    q_done(stmt);
    if (step != SQLITE_DONE) {
        q_db_error(q, err, step, consequence);
        goto out;
    }
    if (q_commit(q, consequence, err) != 0)
        goto out;
    mo_log(MO_LOG_INFO, "queue: message %lld (%s) dropped by hand", (long long)id,
           queue_state_name(state));
    rc = 0;
out:
    if (rc != 0)
        q_rollback(q);
    q_unlock(q);
    return rc;
}
