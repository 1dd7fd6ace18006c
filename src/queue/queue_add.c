/*
 * queue_add.c - accepting messages: queue_add() and queue_add_batch().
 *
 * "Queued" means committed (queue.h, STYLE.md "Durability"): the message
 * row, its body, its recipients and its search text go in one BEGIN
 * IMMEDIATE transaction, and with synchronous=FULL in WAL mode the COMMIT
 * returns only after the WAL is fsync'd. Any failure rolls the whole
 * transaction back, so a full disk leaves nothing half-written.
 * Group commit is the caller's choice: queue_add_batch() pays one fsync for
 * many messages. Leaves out: address syntax (the mime module checks it).
 */
#include "queue/queue_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_NOT_QUEUED "the message was NOT queued"
#define Q_BATCH_NOT_QUEUED "none of the messages was queued"
/* Cap on one message's search text (from, subject, ids, recipients). */
#define Q_SEARCH_MAX_BYTES (4u * 1024 * 1024)
/* Cap on one field in it: a subject longer than this is searchable by its start. */
#define Q_SEARCH_FIELD_MAX 2000u

/* True when s holds a control character: no CR or LF may reach an SMTP command. */
static bool
q_has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int
q_validate(const struct queue *q, const struct queue_new_message *m, struct mo_error *err)
{
    if (m == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, NULL, "no message was given");
        return -1;
    }
    if (m->from == NULL || q_has_control(m->from)) {
        mo_error_set(err, MO_ERR_CONFIG, "sender",
                     m->from == NULL ? "the message has no envelope sender"
                                     : "the envelope sender contains a line break or a control "
                                       "character");
        return -1;
    }
    if (m->n_rcpts == 0 || m->rcpts == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "recipient", "the message has no recipient");
        return -1;
    }
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (m->rcpts[i] == NULL || m->rcpts[i][0] == '\0') {
            mo_error_set(err, MO_ERR_CONFIG, "recipient", "recipient %zu is empty", i + 1);
            return -1;
        }
        if (q_has_control(m->rcpts[i])) {
            mo_error_set(err, MO_ERR_CONFIG, "recipient",
                         "recipient %zu contains a line break or a control character", i + 1);
            return -1;
        }
    }
    if (m->data == NULL || m->len == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "size", "the message is empty");
        return -1;
    }
    if ((uint64_t)m->len > (uint64_t)q->max_message_bytes) {
        mo_error_set(err, MO_ERR_CONFIG, "size",
                     "the message is %zu bytes; the limit is %lld bytes (%.1f MB)", m->len,
                     (long long)q->max_message_bytes,
                     (double)q->max_message_bytes / (1024.0 * 1024.0));
        return -1;
    }
    return 0;
}

/* Appends at most max bytes of s, cut at a UTF-8 character boundary. */
static int
q_append_clamped(struct mo_buf *b, const char *s, size_t max, struct mo_error *err)
{
    size_t n = strlen(s);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    if (mo_buf_append(b, s, n, err) != 0 || mo_buf_append(b, "\n", 1, err) != 0)
        return -1;
    return 0;
}

/* The text the search index sees: one field a line. */
static int
q_search_text(const struct queue_new_message *m, struct mo_buf *b, struct mo_error *err)
{
    const char *fields[] = {m->from, m->header_from, m->subject, m->message_id};

    mo_buf_reset(b);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (q_append_clamped(b, fields[i] != NULL ? fields[i] : "", Q_SEARCH_FIELD_MAX, err) != 0)
            return -1;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (b->len + Q_SEARCH_FIELD_MAX + 2 > b->max_bytes)
            break; /* a huge recipient list is searchable by its first part only */
        if (q_append_clamped(b, m->rcpts[i], Q_SEARCH_FIELD_MAX, err) != 0)
            return -1;
    }
    return 0;
}

/* Inserts one message inside the open transaction. */
static int
q_insert_one(struct queue *q, const struct queue_new_message *m, int64_t now, struct mo_buf *search,
             int64_t *id_out, const char *consequence, struct mo_error *err)
{
    static const char *const insert_message =
        "INSERT INTO messages (account, env_from, size, message_id, subject, header_from, source,"
        " needs_smtputf8, state, attempts, created_at, updated_at, next_attempt_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, ?9, ?9, ?9)";
    static const char *const insert_data = "INSERT INTO message_data (id, data) VALUES (?1, ?2)";
    static const char *const insert_rcpt =
        "INSERT INTO recipients (message_id, address, state) VALUES (?1, ?2, 'pending')";
    static const char *const insert_search =
        "INSERT INTO message_search (id, text) VALUES (?1, ?2)";
    /* "default" is the default account's name in the store: one spelling in the queue. */
    const char *account = m->account != NULL && m->account[0] != '\0' &&
                                  strcmp(m->account, "default") != 0
                              ? m->account
                              : NULL;
    sqlite3_stmt *stmt;
    int64_t id;
    int rc;

    if ((stmt = q_stmt(q, Q_INSERT_MESSAGE, insert_message, err)) == NULL)
        return -1;
    q_bind_text(stmt, 1, account);
    q_bind_text(stmt, 2, m->from);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)m->len);
    q_bind_text(stmt, 4, m->message_id);
    q_bind_text(stmt, 5, m->subject);
    q_bind_text(stmt, 6, m->header_from);
    q_bind_text(stmt, 7, m->source);
    sqlite3_bind_int(stmt, 8, m->needs_smtputf8 ? 1 : 0);
    sqlite3_bind_int64(stmt, 9, now);
    rc = sqlite3_step(stmt);
    q_done(stmt);
    if (rc != SQLITE_DONE)
        goto fail;
    id = sqlite3_last_insert_rowid(q->db);

    if ((stmt = q_stmt(q, Q_INSERT_DATA, insert_data, err)) == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_blob64(stmt, 2, m->data, (sqlite3_uint64)m->len, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    q_done(stmt);
    if (rc != SQLITE_DONE)
        goto fail;

    if ((stmt = q_stmt(q, Q_INSERT_RCPT, insert_rcpt, err)) == NULL)
        return -1;
    for (size_t i = 0; i < m->n_rcpts; i++) {
        sqlite3_bind_int64(stmt, 1, id);
        q_bind_text(stmt, 2, m->rcpts[i]);
        rc = sqlite3_step(stmt);
        q_done(stmt);
        if (rc != SQLITE_DONE)
            goto fail;
    }

    if (q_search_text(m, search, err) != 0)
        return -1;
    if ((stmt = q_stmt(q, Q_INSERT_SEARCH, insert_search, err)) == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, id);
    sqlite3_bind_text(stmt, 2, mo_buf_cstr(search), (int)search->len, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    q_done(stmt);
    if (rc != SQLITE_DONE)
        goto fail;
    *id_out = id;
    return 0;
fail:
    q_db_error(q, err, rc, consequence);
    return -1;
}

int
queue_add_batch(struct queue *q, const struct queue_new_message *const *ms, size_t n, int64_t *ids,
                struct mo_error *err)
{
    const char *consequence = n > 1 ? Q_BATCH_NOT_QUEUED : Q_NOT_QUEUED;
    struct mo_buf search;
    int64_t now;
    size_t i = 0;
    int rc = -1;

    mo_buf_init(&search, Q_SEARCH_MAX_BYTES);
    if (ids != NULL)
        memset(ids, 0, n * sizeof(*ids));
    for (i = 0; i < n; i++) {
        if (q_validate(q, ms[i], err) != 0) {
            if (n > 1)
                mo_error_prefix(err, "message %zu of %zu", i + 1, n);
            mo_buf_free(&search);
            return -1;
        }
    }
    if (n == 0) {
        mo_buf_free(&search);
        return 0;
    }
    q_lock(q);
    if (q_begin_write(q, consequence, err) != 0)
        goto out;
    now = q_now(q);
    for (i = 0; i < n; i++) {
        int64_t id = 0;

        if (q_insert_one(q, ms[i], now, &search, &id, consequence, err) != 0)
            goto out;
        if (ids != NULL)
            ids[i] = id;
    }
    /* Durable when this returns: WAL + synchronous=FULL fsyncs the log on commit. */
    if (q_commit(q, consequence, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        q_rollback(q);
        if (ids != NULL)
            memset(ids, 0, n * sizeof(*ids));
    }
    q_unlock(q);
    mo_buf_free(&search);
    return rc;
}

int
queue_add(struct queue *q, const struct queue_new_message *m, int64_t *id_out, struct mo_error *err)
{
    const struct queue_new_message *one[1] = {m};
    int64_t id = 0;

    if (queue_add_batch(q, one, 1, &id, err) != 0)
        return -1;
    if (id_out != NULL)
        *id_out = id;
    return 0;
}
