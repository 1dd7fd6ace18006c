/*
 * panel_log.c - the panel's mail log and queue: the dashboard's figures, the
 * log of messages (searchable, filtered by state, paged), a message's page
 * and what can be done to it (retry, resend a copy, drop), and the log of
 * test letters sent from the panel.
 *
 * Routes (under /panel/api/, behind the session and the CSRF token):
 *   GET    dashboard              sent today, queued, deferred, failed, ...,
 *                                 and the paused accounts with the reason
 *   GET    messages?state=&q=&before=&before_t=&limit=
 *                                 newest first; next page: the "next" cursor
 *   GET    messages/ID            headers, body preview, attachments,
 *                                 recipients, each attempt with its reply and
 *                                 transcript, the actions it allows
 *   POST   messages/ID/retry      deferred, failed or uncertain -> due now
 *   POST   messages/ID/resend     queues a copy under a new Message-ID
 *   DELETE messages/ID            drops it (not while it is being sent)
 *   GET    tests/ID               a test letter: steps, diagnosis, transcript
 * Test letters go straight to the server (account_check), not through the
 * queue, so they are kept here, in panel_test_letters (home/mailout.db), and
 * merged into the log by time: a page of the queue spans a time range, and
 * the test letters of that range join it (the cursor carries the range's
 * lower end as before_t).
 * Costs with 100,000 messages: a page is one indexed walk of the queue
 * (queue_list) plus one indexed range read here; the dashboard reads the
 * counts table the queue's triggers keep and caches the paused accounts for
 * PAUSE_CACHE_MS. Each request borrows one of the panel's queue handles
 * (panel_queue_take), so slow searches of several requests run side by side.
 * bench/panel.sh measures it (bench/panel/results.md).
 * Leaves out: exporting and pruning the log, editing a queued message.
 */
#include "admin/panel_internal.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mime/mime.h"
#include "worker/worker.h"

#define LOG_PAGE_DEFAULT 50
#define LOG_PAGE_MAX 200
#define TESTS_PER_PAGE_MAX 200
#define PAUSE_CACHE_MS 2000
#define SEARCH_MAX 200
#define TESTLOG_BUSY_TIMEOUT_MS 5000

static const char *const testlog_schema =
    "CREATE TABLE IF NOT EXISTS panel_test_letters ("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  account TEXT NOT NULL,"
    "  ok INTEGER NOT NULL,"
    "  env_from TEXT,"
    "  env_to TEXT,"
    "  subject TEXT,"
    "  message_id TEXT,"
    "  outcome TEXT,"
    "  transcript TEXT);"
    "CREATE INDEX IF NOT EXISTS panel_test_letters_at ON panel_test_letters (at);";

struct panel_testlog {
    pthread_mutex_t lock;
    sqlite3 *db;
};

/* ---- the test-letter log ------------------------------------------------------------------ */

int
panel_testlog_open(const char *home, struct panel_testlog **out, struct mo_error *err)
{
    struct panel_testlog *t = calloc(1, sizeof(*t));
    char path[4096];
    char *msg = NULL;
    int rc = -1;

    *out = NULL;
    if (t == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path)) {
        mo_error_set(err, MO_ERR_CONFIG, "home", "the data folder's path is too long");
        goto out;
    }
    if (sqlite3_open_v2(path, &t->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot open the database %s: %s", path,
                     t->db != NULL ? sqlite3_errmsg(t->db) : "?");
        goto out;
    }
    sqlite3_busy_timeout(t->db, TESTLOG_BUSY_TIMEOUT_MS);
    if (sqlite3_exec(t->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     &msg) != SQLITE_OK ||
        sqlite3_exec(t->db, testlog_schema, NULL, NULL, &msg) != SQLITE_OK) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot prepare the database %s: %s", path,
                     msg != NULL ? msg : "?");
        goto out;
    }
    rc = 0;
out:
    sqlite3_free(msg);
    if (rc == 0)
        *out = t;
    else
        panel_testlog_close(t);
    return rc;
}

void
panel_testlog_close(struct panel_testlog *t)
{
    if (t == NULL)
        return;
    sqlite3_close(t->db);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int
panel_test_log_add(struct panel *p, const struct panel_test_record *t, int64_t *id_out,
                   struct mo_error *err)
{
    static const char *const sql =
        "INSERT INTO panel_test_letters (at, account, ok, env_from, env_to, subject, message_id,"
        " outcome, transcript) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
    struct panel_testlog *tl = p->tests;
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    pthread_mutex_lock(&tl->lock);
    if (sqlite3_prepare_v2(tl->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)time(NULL));
    sqlite3_bind_text(stmt, 2, t->account, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 3, t->ok ? 1 : 0);
    sqlite3_bind_text(stmt, 4, t->from, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, t->to, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, t->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 7, t->message_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 8, t->outcome_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 9, t->transcript, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        goto fail;
    if (id_out != NULL)
        *id_out = (int64_t)sqlite3_last_insert_rowid(tl->db);
    rc = 0;
    goto out;
fail:
    mo_error_set(err, MO_ERR_STORAGE, NULL, "cannot log the test letter: %s",
                 sqlite3_errmsg(tl->db));
out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&tl->lock);
    return rc;
}

static json_t *
column_json(sqlite3_stmt *stmt, int i)
{
    return panel_json_text((const char *)sqlite3_column_text(stmt, i));
}

/* A test letter as a row of the log. */
static json_t *
test_row_json(sqlite3_stmt *stmt)
{
    json_t *to = json_array();
    json_t *o;

    json_array_append_new(to, column_json(stmt, 5));
    o = json_pack("{s:s, s:I, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:s}", "kind", "test", "id",
                  (json_int_t)sqlite3_column_int64(stmt, 0), "state",
                  sqlite3_column_int(stmt, 3) ? "sent" : "failed", "created_at",
                  (json_int_t)sqlite3_column_int64(stmt, 1), "account", column_json(stmt, 2),
                  "from", column_json(stmt, 4), "to", to, "subject", column_json(stmt, 6),
                  "message_id", column_json(stmt, 7), "source", "panel test");
    return o;
}

/*
 * Test letters with lower <= at < upper matching the filter, newest first,
 * appended to out. ok_filter: -1 any, 0 failed, 1 sent. like: a LIKE
 * pattern or NULL.
 */
static int
tests_in_range(struct panel *p, int64_t lower, int64_t upper, int ok_filter, const char *like,
               json_t *out, struct mo_error *err)
{
    struct panel_testlog *tl = p->tests;
    char sql[512];
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    snprintf(sql, sizeof(sql),
             "SELECT id, at, account, ok, env_from, env_to, subject, message_id"
             " FROM panel_test_letters WHERE at >= ?1 AND at < ?2%s%s"
             " ORDER BY at DESC, id DESC LIMIT %d",
             ok_filter >= 0 ? " AND ok = ?3" : "",
             like != NULL ? " AND (coalesce(env_from, '') || ' ' || coalesce(env_to, '') || ' ' ||"
                            " coalesce(subject, '') || ' ' || coalesce(message_id, '') || ' ' ||"
                            " account) LIKE ?4 ESCAPE '\\'"
                          : "",
             TESTS_PER_PAGE_MAX);
    pthread_mutex_lock(&tl->lock);
    if (sqlite3_prepare_v2(tl->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(stmt, 1, lower);
    sqlite3_bind_int64(stmt, 2, upper);
    if (ok_filter >= 0)
        sqlite3_bind_int(stmt, 3, ok_filter);
    if (like != NULL)
        sqlite3_bind_text(stmt, 4, like, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW)
        json_array_append_new(out, test_row_json(stmt));
    if (step != SQLITE_DONE)
        goto fail;
    rc = 0;
    goto out;
fail:
    mo_error_set(err, MO_ERR_STORAGE, NULL, "cannot read the test letters: %s",
                 sqlite3_errmsg(tl->db));
out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&tl->lock);
    return rc;
}

static enum MHD_Result
get_test(struct panel_req *r, int64_t id)
{
    struct panel_testlog *tl = r->p->tests;
    sqlite3_stmt *stmt = NULL;
    json_t *o = NULL;
    int step;

    pthread_mutex_lock(&tl->lock);
    if (sqlite3_prepare_v2(tl->db,
                           "SELECT id, at, account, ok, env_from, env_to, subject, message_id,"
                           " outcome, transcript FROM panel_test_letters WHERE id = ?1",
                           -1, &stmt, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&tl->lock);
        return admin_http_error(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL,
                                "cannot read the test letters");
    }
    sqlite3_bind_int64(stmt, 1, id);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        const unsigned char *outcome = sqlite3_column_text(stmt, 8);
        const unsigned char *transcript = sqlite3_column_text(stmt, 9);
        json_t *lines = json_array();

        o = test_row_json(stmt);
        if (transcript != NULL) {
            const char *t = (const char *)transcript;

            while (*t != '\0') {
                size_t n = strcspn(t, "\n");

                char *line = strndup(t, n);

                json_array_append_new(lines, panel_json_text(line));
                free(line);
                t += n;
                if (*t == '\n')
                    t++;
            }
        }
        json_object_set_new(o, "transcript", lines);
        json_t *parsed = outcome != NULL ? json_loads((const char *)outcome, 0, NULL) : NULL;

        json_object_set_new(o, "outcome", parsed != NULL ? parsed : json_null());
    }
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&tl->lock);
    if (step == SQLITE_DONE)
        return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL,
                                "there is no test letter %lld", (long long)id);
    if (o == NULL)
        return admin_http_error(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL,
                                "cannot read the test letters");
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:o}", "test", o), NULL);
}

/* ---- the dashboard --------------------------------------------------------------------------- */

/* The paused accounts (new reference); cached for PAUSE_CACHE_MS. */
static json_t *
paused_accounts(struct panel *p)
{
    char **names = NULL;
    size_t n = 0;
    struct mo_error err;
    json_t *list;
    int64_t now = mo_now_ms();

    pthread_mutex_lock(&p->pause_lock);
    if (p->pause_cache != NULL && p->pause_cache_ms != 0 &&
        now - p->pause_cache_ms < PAUSE_CACHE_MS) {
        list = json_incref(p->pause_cache);
        pthread_mutex_unlock(&p->pause_lock);
        return list;
    }
    pthread_mutex_unlock(&p->pause_lock);

    list = json_array();
    pthread_mutex_lock(&p->store_lock);
    if (account_store_list(p->store, &names, &n, &err) != 0)
        mo_log(MO_LOG_WARN, "panel: %s", err.text);
    pthread_mutex_unlock(&p->store_lock);
    for (size_t i = 0; i < n; i++) {
        struct worker_pause pause;

        if (worker_account_pause(p->home, names[i], &pause, &err) == 0 && pause.paused)
            json_array_append_new(
                list, json_pack("{s:o, s:I, s:o}", "account", panel_json_text(names[i]), "until",
                                (json_int_t)pause.until, "reason", panel_json_text(pause.reason)));
        free(names[i]);
    }
    free(names);
    pthread_mutex_lock(&p->pause_lock);
    json_decref(p->pause_cache);
    p->pause_cache = json_incref(list);
    p->pause_cache_ms = now;
    pthread_mutex_unlock(&p->pause_lock);
    return list;
}

static enum MHD_Result
get_dashboard(struct panel_req *r)
{
    struct queue_counts counts;
    struct mo_error err;
    struct queue *q = panel_queue_take(r->p);
    json_t *by_state;
    int rc = queue_count(q, &counts, &err);

    panel_queue_give(r->p, q);
    if (rc != 0)
        return panel_fail(r, &err, false);
    by_state = json_object();
    for (int i = 0; i < QUEUE_STATE_COUNT; i++)
        json_object_set_new(by_state, queue_state_name((enum queue_state)i),
                            json_integer((json_int_t)counts.by_state[i]));
    return admin_http_json(r->c, MHD_HTTP_OK,
                           json_pack("{s:I, s:o, s:o}", "sent_today", (json_int_t)counts.sent_today,
                                     "counts", by_state, "paused", paused_accounts(r->p)),
                           NULL);
}

/* ---- the log ------------------------------------------------------------------------------------
 */

/* Text from the queue (a server's reply may hold any bytes) as JSON. */
static json_t *
str_or_null(const char *s)
{
    return panel_json_text(s);
}

/* A queued message as a row of the log. */
static json_t *
message_row_json(const struct queue_message_info *m)
{
    json_t *to = json_array();
    json_t *o;

    for (size_t i = 0; i < m->n_rcpts; i++)
        json_array_append_new(to, str_or_null(m->rcpts[i].address));
    o = json_pack("{s:s, s:I, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:o}", "kind",
                  "message", "id", (json_int_t)m->id, "state", queue_state_name(m->state),
                  "created_at", (json_int_t)m->created_at, "updated_at", (json_int_t)m->updated_at,
                  "account", str_or_null(m->account), "from",
                  str_or_null(m->header_from != NULL ? m->header_from : m->from), "to", to,
                  "subject", str_or_null(m->subject), "message_id", str_or_null(m->message_id),
                  "attempts", m->attempts, "last_code",
                  m->last_code != 0 ? json_integer(m->last_code) : json_null(), "last_reply",
                  str_or_null(m->last_reply), "source", str_or_null(m->source));
    return o;
}

static const char *
arg(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The search term as a LIKE pattern %term% with %, _ and \ escaped (NULL: none). */
static char *
like_pattern(struct admin_arena *a, const char *term)
{
    size_t n = strlen(term);
    char *out = admin_arena_alloc(a, 2 * n + 3);
    char *o = out;

    if (out == NULL)
        return NULL;
    *o++ = '%';
    for (const char *t = term; *t != '\0'; t++) {
        if (*t == '%' || *t == '_' || *t == '\\')
            *o++ = '\\';
        *o++ = *t;
    }
    *o++ = '%';
    *o = '\0';
    return out;
}

static enum MHD_Result
get_messages(struct panel_req *r)
{
    const char *state = arg(r->c, "state");
    const char *q = arg(r->c, "q");
    const char *before = arg(r->c, "before");
    const char *before_t = arg(r->c, "before_t");
    const char *limit_text = arg(r->c, "limit");
    struct queue_filter f;
    struct queue_message_info *list = NULL;
    struct mo_error err;
    enum queue_state st = QUEUE_QUEUED;
    size_t n = 0;
    long limit = LOG_PAGE_DEFAULT;
    long v;
    int64_t upper = INT64_MAX;
    int64_t lower = INT64_MIN;
    int ok_filter = -1;
    bool with_tests = true;
    json_t *tests;
    json_t *rows;
    json_t *next = json_null();
    size_t ti = 0;

    memset(&f, 0, sizeof(f));
    f.state = -1;
    if (state != NULL) {
        if (queue_state_parse(state, &st) != 0)
            return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "state", NULL,
                                    "unknown state \"%.40s\": queued, sending, sent, deferred, "
                                    "failed or uncertain",
                                    state);
        f.state = (int)st;
        with_tests = st == QUEUE_SENT || st == QUEUE_FAILED;
        ok_filter = st == QUEUE_SENT ? 1 : 0;
    }
    if (q != NULL && strlen(q) > SEARCH_MAX)
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "q", NULL,
                                "the search text is longer than %d characters", SEARCH_MAX);
    f.search = q;
    if (before != NULL) {
        int64_t id;

        if (admin_parse_id(before, &id) != 0)
            return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "before", NULL,
                                    "before must be a message id");
        f.before_id = id;
    }
    if (before_t != NULL) {
        if (mo_parse_long(before_t, 0, LONG_MAX, &v) != 0)
            return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "before_t", NULL,
                                    "before_t must be a Unix time");
        upper = v;
    }
    if (limit_text != NULL && mo_parse_long(limit_text, 1, LOG_PAGE_MAX, &limit) != 0)
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "limit", NULL,
                                "limit must be a number from 1 to %d", LOG_PAGE_MAX);
    f.limit = (size_t)limit;
    /* a cursor that ran out of queue pages (before_t without before) reads only tests */
    if (before_t == NULL || before != NULL) {
        struct queue *qh = panel_queue_take(r->p);
        int rc = queue_list(qh, &f, &list, &n, &err);

        panel_queue_give(r->p, qh);
        if (rc != 0)
            return panel_fail(r, &err, false);
    }
    if (n == (size_t)limit)
        lower = list[n - 1].created_at;
    tests = json_array();
    if (with_tests &&
        tests_in_range(r->p, lower, upper, ok_filter, q != NULL ? like_pattern(r->arena, q) : NULL,
                       tests, &err) != 0)
        mo_log(MO_LOG_WARN, "panel: %s", err.text);
    rows = json_array();
    /* merge, newest first: both lists are sorted already */
    for (size_t i = 0; i < n; i++) {
        while (ti < json_array_size(tests) &&
               json_integer_value(json_object_get(json_array_get(tests, ti), "created_at")) >
                   list[i].created_at)
            json_array_append(rows, json_array_get(tests, ti++));
        json_array_append_new(rows, message_row_json(&list[i]));
    }
    while (ti < json_array_size(tests))
        json_array_append(rows, json_array_get(tests, ti++));
    if (n == (size_t)limit)
        next = json_pack("{s:I, s:I}", "before", (json_int_t)list[n - 1].id, "before_t",
                         (json_int_t)lower);
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&list[i]);
    free(list);
    json_decref(tests);
    return admin_http_json(r->c, MHD_HTTP_OK,
                           json_pack("{s:o, s:o}", "messages", rows, "next", next), NULL);
}

/* ---- one message ---------------------------------------------------------------------------- */

static enum MHD_Result
get_message(struct panel_req *r, int64_t id)
{
    struct queue_message_info m;
    struct mo_error err;
    char *data = NULL;
    size_t len = 0;
    json_t *o;
    json_t *rcpts;
    json_t *attempts;
    json_t *preview;

    struct queue *q = panel_queue_take(r->p);
    int rc = queue_get(q, id, true, &m, &err);

    if (rc != 0) {
        panel_queue_give(r->p, q);
        return panel_fail(r, &err, err.category == MO_ERR_CONFIG);
    }
    o = message_row_json(&m);
    rcpts = json_array();
    for (size_t i = 0; i < m.n_rcpts; i++)
        json_array_append_new(
            rcpts, json_pack("{s:o, s:o, s:o, s:o}", "address", str_or_null(m.rcpts[i].address),
                             "state", str_or_null(m.rcpts[i].state), "code",
                             m.rcpts[i].code ? json_integer(m.rcpts[i].code) : json_null(), "reply",
                             str_or_null(m.rcpts[i].reply)));
    attempts = json_array();
    for (size_t i = 0; i < m.n_attempt_log; i++) {
        const struct queue_attempt_info *a = &m.attempt_log[i];

        json_array_append_new(
            attempts,
            json_pack("{s:I, s:o, s:o, s:o, s:o}", "at", (json_int_t)a->at, "result",
                      str_or_null(a->result), "code", a->code ? json_integer(a->code) : json_null(),
                      "reply", str_or_null(a->reply), "transcript", str_or_null(a->transcript)));
    }
    json_object_set_new(o, "envelope_from", str_or_null(m.from));
    json_object_set_new(o, "size", json_integer((json_int_t)m.size));
    json_object_set_new(o, "next_attempt_at",
                        m.next_attempt_at ? json_integer(m.next_attempt_at) : json_null());
    json_object_set_new(o, "recipients", rcpts);
    json_object_set_new(o, "attempt_log", attempts);
    json_object_set_new(o, "can_retry",
                        json_boolean(m.state == QUEUE_DEFERRED || m.state == QUEUE_FAILED ||
                                     m.state == QUEUE_UNCERTAIN));
    json_object_set_new(o, "can_drop", json_boolean(m.state != QUEUE_SENDING));
    json_object_set_new(o, "can_resend", json_boolean(m.state != QUEUE_SENDING));
    queue_message_info_clear(&m);
    rc = queue_get_data(q, id, &data, &len, &err);
    panel_queue_give(r->p, q);
    if (rc == 0) {
        preview = panel_preview_json(data, len);
        free(data);
    } else {
        preview = json_null();
    }
    return admin_http_json(r->c, MHD_HTTP_OK,
                           json_pack("{s:o, s:o}", "message", o, "content", preview), NULL);
}

static bool
is_ascii(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* Queues a copy of message id with a new Message-ID; *new_id gets the copy's id. */
static int
resend(struct queue *q, int64_t id, int64_t *new_id, struct mo_error *err)
{
    struct queue_message_info m;
    struct mime_headers h;
    struct queue_new_message qm;
    struct mo_buf copy;
    const struct mime_header_field *mid;
    const char **rcpts = NULL;
    const char *at;
    char message_id[256];
    char *data = NULL;
    size_t len = 0;
    size_t cut_at;
    size_t cut_len;
    bool utf8;
    int rc = -1;

    memset(&m, 0, sizeof(m));
    memset(&h, 0, sizeof(h));
    mo_buf_init(&copy, (size_t)1 << 31);
    if (queue_get(q, id, false, &m, err) != 0 || queue_get_data(q, id, &data, &len, err) != 0)
        goto out;
    if (m.n_rcpts == 0) {
        mo_error_set(err, MO_ERR_CONFIG, NULL, "the message has no recipients to send it to");
        goto out;
    }
    if (mime_headers_parse(data, len, &h, err) != 0)
        goto out;
    at = m.from != NULL ? strrchr(m.from, '@') : NULL;
    if (mime_message_id_new(at != NULL && at[1] != '\0' ? at + 1 : "localhost", message_id,
                            sizeof(message_id), err) != 0)
        goto out;
    mid = mime_headers_find(&h, "Message-ID");
    cut_at = mid != NULL ? mid->offset : h.header_offset;
    cut_len = mid != NULL ? mid->raw_len : 0;
    if (mo_buf_append(&copy, data, cut_at, err) != 0 ||
        mo_buf_appendf(&copy, err, "Message-ID: <%s>\r\n", message_id) != 0 ||
        mo_buf_append(&copy, data + cut_at + cut_len, len - cut_at - cut_len, err) != 0)
        goto out;
    rcpts = calloc(m.n_rcpts, sizeof(*rcpts));
    if (rcpts == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    utf8 = !is_ascii(m.from);
    for (size_t i = 0; i < m.n_rcpts; i++) {
        rcpts[i] = m.rcpts[i].address;
        utf8 = utf8 || !is_ascii(rcpts[i]);
    }
    memset(&qm, 0, sizeof(qm));
    qm.account = m.account;
    qm.from = m.from != NULL ? m.from : "";
    qm.rcpts = rcpts;
    qm.n_rcpts = m.n_rcpts;
    qm.data = copy.data;
    qm.len = copy.len;
    qm.message_id = message_id;
    qm.subject = m.subject;
    qm.header_from = m.header_from;
    qm.source = "panel";
    qm.needs_smtputf8 = utf8;
    rc = queue_add(q, &qm, new_id, err);
out:
    free(rcpts);
    free(data);
    mime_headers_clear(&h);
    mo_buf_free(&copy);
    queue_message_info_clear(&m);
    return rc;
}

static enum MHD_Result
post_action(struct panel_req *r, int64_t id, const char *action)
{
    struct mo_error err;
    struct queue *q = panel_queue_take(r->p);
    int64_t new_id = 0;
    int rc;

    if (strcmp(action, "retry") == 0) {
        rc = queue_retry(q, id, &err);
        panel_queue_give(r->p, q);
        if (rc != 0)
            return panel_fail(r, &err, err.field != NULL && strcmp(err.field, "id") == 0);
        mo_log(MO_LOG_INFO, "panel: message %lld put back in the queue", (long long)id);
        return admin_http_json(r->c, MHD_HTTP_OK,
                               json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)id), NULL);
    }
    rc = resend(q, id, &new_id, &err);
    panel_queue_give(r->p, q);
    if (rc != 0)
        return panel_fail(r, &err, err.field != NULL && strcmp(err.field, "id") == 0);
    mo_log(MO_LOG_INFO, "panel: message %lld resent as %lld", (long long)id, (long long)new_id);
    return admin_http_json(r->c, MHD_HTTP_CREATED,
                           json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)new_id), NULL);
}

static enum MHD_Result
delete_message(struct panel_req *r, int64_t id)
{
    struct mo_error err;
    struct queue *q = panel_queue_take(r->p);
    int rc = queue_drop(q, id, &err);

    panel_queue_give(r->p, q);
    if (rc != 0)
        return panel_fail(r, &err, err.field != NULL && strcmp(err.field, "id") == 0);
    mo_log(MO_LOG_INFO, "panel: message %lld dropped", (long long)id);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1), NULL);
}

/* ---- routing ------------------------------------------------------------------------------------
 */

static bool
method_is(const struct panel_req *r, const char *m)
{
    return strcmp(r->method, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(r->method, "HEAD") == 0);
}

static enum MHD_Result
not_allowed(struct panel_req *r, const char *allow)
{
    const char *headers[] = {MHD_HTTP_HEADER_ALLOW, allow, NULL};

    return admin_http_error(r->c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, headers,
                            "%.16s is not allowed here; use %s", r->method, allow);
}

/* messages/ID[/retry|/resend] */
static enum MHD_Result
route_message(struct panel_req *r, const char *rest)
{
    char id_text[32];
    const char *slash = strchr(rest, '/');
    size_t len = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    int64_t id;

    if (len == 0 || len >= sizeof(id_text))
        return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL, "there is no such message");
    memcpy(id_text, rest, len);
    id_text[len] = '\0';
    if (admin_parse_id(id_text, &id) != 0)
        return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL, "there is no such message");
    if (slash != NULL) {
        if (strcmp(slash, "/retry") != 0 && strcmp(slash, "/resend") != 0)
            return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, NULL, NULL,
                                    "there is nothing at messages/%s%.40s", id_text, slash);
        return method_is(r, "POST") ? post_action(r, id, slash + 1) : not_allowed(r, "POST");
    }
    if (method_is(r, "GET"))
        return get_message(r, id);
    if (method_is(r, "DELETE"))
        return delete_message(r, id);
    return not_allowed(r, "GET, DELETE");
}

enum MHD_Result
panel_log_route(struct panel_req *r, bool *handled)
{
    const char *path = r->path;
    int64_t id;

    *handled = true;
    if (strcmp(path, "dashboard") == 0)
        return method_is(r, "GET") ? get_dashboard(r) : not_allowed(r, "GET");
    if (strcmp(path, "messages") == 0)
        return method_is(r, "GET") ? get_messages(r) : not_allowed(r, "GET");
    if (strncmp(path, "messages/", 9) == 0)
        return route_message(r, path + 9);
    if (strncmp(path, "tests/", 6) == 0) {
        if (admin_parse_id(path + 6, &id) != 0)
            return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL,
                                    "there is no such test letter");
        return method_is(r, "GET") ? get_test(r, id) : not_allowed(r, "GET");
    }
    *handled = false;
    return MHD_NO;
}
