/*
 * queue.c - the queue's database: opening home/mailout.db (WAL, synchronous
 * FULL, foreign keys), the schema, the statement cache, the mapping of
 * SQLite failures to plain STORAGE errors, state names and the retry delay.
 *
 * Why: every queue file shares one connection per struct queue, used by one
 * caller at a time (q_lock; the worker's threads share one). SQLite's WAL
 * lets readers run beside the one writer; writers of one process take turns
 * at the write gate (mo_db_write_enter, no busy sleeps), other processes
 * wait in BEGIN IMMEDIATE's busy timeout.
 *
 * The tables live beside the account store's `accounts` in the same file:
 *   messages          one row per message, without its body (lists stay fast)
 *   message_data      the body, by message id
 *   recipients        one row per envelope recipient, pending/delivered/failed
 *   attempts          the attempt log with transcripts
 *   message_search    by message id: from, header From, subject, Message-ID
 *                     and recipients as one text, for substring search
 *   queue_state_counts  messages per state (queue_count): triggers count inserts
 *                     and deletes, q_commit the changes of state
 *   queue_meta        the schema version
 * Times are Unix seconds (UTC). Leaves out: pruning old sent messages.
 */
#include "queue/queue_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define Q_SCHEMA_VERSION 2
/* The CHECKs on state, with = and OR: an IN list of constants costs a temporary table. */
#define Q_MESSAGE_STATES                                                                           \
    "state = 'queued' OR state = 'sending' OR state = 'sent' OR state = 'deferred'"                \
    " OR state = 'failed' OR state = 'uncertain'"
#define Q_RCPT_STATES "state = 'pending' OR state = 'delivered' OR state = 'failed'"
#define Q_INDEXES_2                                                                                \
    "CREATE INDEX IF NOT EXISTS messages_waiting ON messages(state, next_attempt_at)"              \
    " WHERE " Q_WAITING ";"                                                                        \
    "CREATE INDEX IF NOT EXISTS messages_waiting_account"                                          \
    " ON messages(account, state, next_attempt_at) WHERE " Q_WAITING ";"                           \
    "CREATE INDEX IF NOT EXISTS messages_busy ON messages(state) WHERE " Q_BUSY ";"                \
    "CREATE INDEX IF NOT EXISTS messages_sent_at ON messages(updated_at) WHERE state = 'sent';"
#define Q_BUSY_TIMEOUT_MS 10000
#define Q_DEFAULT_MAX_AGE_S (5 * 86400)
#define Q_DEFAULT_GRACE_S (30 * 60)
#define Q_DEFAULT_MAX_MESSAGE_BYTES (50 * 1024 * 1024)

/*
 * Indexes, and who needs them. Partial indexes hold only the rows a query
 * looks for, so a message costs index work while it waits and once more when
 * it settles, not at every change (schema 2; see q_migrate_1_to_2):
 *   messages_waiting (state, next_attempt_at)   claims across accounts,
 *     WHERE Q_WAITING                           queue_next_due, retry-all
 *   messages_waiting_account (account, state,   claims for one account,
 *     next_attempt_at) WHERE Q_WAITING          queue_due_accounts
 *   messages_busy (state) WHERE Q_BUSY          recovery of 'sending', the
 *                                               list of 'failed'
 *   messages_sent_at (updated_at)               sent today
 *     WHERE state = 'sent'
 * A query uses a partial index only when its WHERE holds the index's term
 * word for word, hence the macros (queue_internal.h). The list of sent mail,
 * newest first, walks the primary key backwards.
 */
static const char *const q_schema =
    "CREATE TABLE IF NOT EXISTS queue_meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS messages ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT," /* NULL: the default account */
    "  env_from TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  message_id TEXT,"
    "  subject TEXT,"
    "  header_from TEXT,"
    "  source TEXT,"
    "  needs_smtputf8 INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL CHECK (" Q_MESSAGE_STATES "),"
    "  prev_state TEXT," /* the due state a claim came from (queue_release) */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  next_attempt_at INTEGER,"
    "  lease_owner TEXT,"
    "  lease_until INTEGER,"
    "  last_code INTEGER,"
    "  last_enhanced TEXT,"
    "  last_reply TEXT);"
    "CREATE TABLE IF NOT EXISTS message_data ("
    "  id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
    "  data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS recipients ("
    "  id INTEGER PRIMARY KEY,"
    "  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    "  address TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (" Q_RCPT_STATES "),"
    "  code INTEGER,"
    "  reply TEXT);"
    "CREATE TABLE IF NOT EXISTS attempts ("
    "  id INTEGER PRIMARY KEY,"
    "  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    "  at INTEGER NOT NULL,"
    "  result TEXT NOT NULL,"
    "  code INTEGER,"
    "  enhanced TEXT,"
    "  reply TEXT,"
    "  transcript TEXT);" Q_INDEXES_2
    "CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);"
    "CREATE INDEX IF NOT EXISTS attempts_message ON attempts(message_id);"
    /*
     * Substring search cannot use a B-tree index. An FTS5 trigram index made
     * searches ~0.3 ms but doubled the cost of queue_add_batch (3.4 -> 7.6 ms
     * per 100 messages), so search scans this compact table newest first and
     * stops at the page's limit (queue_admin.c).
     */
    "CREATE TABLE IF NOT EXISTS message_search ("
    "  id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
    "  text TEXT NOT NULL);"
    /* Counting 100,000 rows per state takes ~5 ms and grows; the triggers (inserts, deletes) and
     * q_moves_apply (changes of state, summed per transaction) keep it O(1). */
    "CREATE TABLE IF NOT EXISTS queue_state_counts ("
    "  state TEXT PRIMARY KEY,"
    "  n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO queue_state_counts (state, n)"
    "  SELECT s, (SELECT count(*) FROM messages WHERE state = s) FROM (SELECT 'queued' AS s"
    "  UNION ALL SELECT 'sending' UNION ALL SELECT 'sent' UNION ALL SELECT 'deferred'"
    "  UNION ALL SELECT 'failed' UNION ALL SELECT 'uncertain');"
    "CREATE TRIGGER IF NOT EXISTS messages_count_insert AFTER INSERT ON messages BEGIN"
    "  UPDATE queue_state_counts SET n = n + 1 WHERE state = NEW.state;"
    "END;"
    "CREATE TRIGGER IF NOT EXISTS messages_count_delete AFTER DELETE ON messages BEGIN"
    "  UPDATE queue_state_counts SET n = n - 1 WHERE state = OLD.state;"
    "END;"
    "INSERT OR IGNORE INTO queue_meta (key, value) VALUES ('schema_version', '2');";

/*
 * Schema 1 indexed every message in full at every change of state, and its
 * CHECKs on state were IN lists (a temporary table per row written). The
 * CHECKs are rewritten in the stored schema, the way SQLite documents for
 * changing a CHECK (ALTER TABLE, "other kinds of table schema changes"): the
 * rows on disk do not change (q_rewrite_checks).
 */
static const char *const q_migrate_1_to_2 =
    "DROP INDEX IF EXISTS messages_due;"
    "DROP INDEX IF EXISTS messages_account;"
    "DROP INDEX IF EXISTS messages_state_time;" Q_INDEXES_2
    "DROP TRIGGER IF EXISTS messages_count_update;"
    "UPDATE queue_meta SET value = '2' WHERE key = 'schema_version';";

static const char *const q_state_names[QUEUE_STATE_COUNT] = {
    [QUEUE_QUEUED] = Q_QUEUED,     [QUEUE_SENDING] = Q_SENDING, [QUEUE_SENT] = Q_SENT,
    [QUEUE_DEFERRED] = Q_DEFERRED, [QUEUE_FAILED] = Q_FAILED,   [QUEUE_UNCERTAIN] = Q_UNCERTAIN,
};

const char *
queue_state_name(enum queue_state state)
{
    if ((int)state < 0 || state >= QUEUE_STATE_COUNT)
        return "unknown";
    return q_state_names[state];
}

int
queue_state_parse(const char *name, enum queue_state *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < QUEUE_STATE_COUNT; i++) {
        if (strcmp(name, q_state_names[i]) == 0) {
            if (out != NULL)
                *out = (enum queue_state)i;
            return 0;
        }
    }
    return -1;
}

int64_t
queue_next_delay_s(int attempts)
{
    int64_t base = 60;
    uint32_t spread;

    if (attempts < 0)
        attempts = 0;
    /* 60 s * 2^attempts, capped at an hour; 2^6 * 60 already passes it. */
    base = attempts >= 6 ? 3600 : base << attempts;
    if (base > 3600)
        base = 3600;
    /* +-20 % so that messages deferred together do not come back together. */
    spread = (uint32_t)(base / 5);
    if (sodium_init() < 0)
        return base;
    return base - (int64_t)spread + (int64_t)randombytes_uniform(2 * spread + 1);
}

/* ---- shared helpers ------------------------------------------------------- */

int64_t
q_now(const struct queue *q)
{
    return q->test_now != 0 ? q->test_now : (int64_t)time(NULL);
}

void
q_lock(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
}

void
q_unlock(struct queue *q)
{
    pthread_mutex_unlock(&q->lock);
}

sqlite3_stmt *
q_stmt(struct queue *q, enum q_stmt id, const char *sql, struct mo_error *err)
{
    int rc;

    if (q->stmts[id] != NULL)
        return q->stmts[id];
    rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->stmts[id], NULL);
    if (rc != SQLITE_OK) {
        /* A statement that does not prepare is a bug or a damaged database. */
        q_db_error(q, err, rc, "the queue cannot read its tables");
        mo_log(MO_LOG_ERROR, "queue: cannot prepare statement %d: %s", (int)id,
               sqlite3_errmsg(q->db));
        sqlite3_finalize(q->stmts[id]);
        q->stmts[id] = NULL;
        return NULL;
    }
    return q->stmts[id];
}

void
q_done(sqlite3_stmt *stmt)
{
    if (stmt == NULL)
        return;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

void
q_db_error(struct queue *q, struct mo_error *err, int rc, const char *consequence)
{
    const char *detail = q != NULL && q->db != NULL ? sqlite3_errmsg(q->db) : "no database";

    switch (rc & 0xff) {
    case SQLITE_FULL:
        mo_error_set(err, MO_ERR_STORAGE, NULL, "the disk is full: %s", consequence);
        if (err != NULL)
            err->temporary = true; /* free some space and it works again */
        break;
    case SQLITE_IOERR:
        mo_error_set(err, MO_ERR_STORAGE, NULL,
                     "the disk reported a read or write error: %s (sqlite: %s)", consequence,
                     detail);
        break;
    case SQLITE_READONLY:
        mo_error_set(err, MO_ERR_STORAGE, NULL,
                     "the database is read-only (run mailout as the user that owns the data "
                     "folder): %s",
                     consequence);
        break;
    case SQLITE_CANTOPEN:
        mo_error_set(err, MO_ERR_STORAGE, NULL,
                     "cannot open the database file (is the data folder there and writable?): %s",
                     consequence);
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        mo_error_set(err, MO_ERR_STORAGE, NULL,
                     "the database stayed busy for %d seconds (another mailout process holds "
                     "it): %s",
                     Q_BUSY_TIMEOUT_MS / 1000, consequence);
        if (err != NULL)
            err->temporary = true;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        mo_error_set(err, MO_ERR_STORAGE, NULL, "the database file is damaged: %s (sqlite: %s)",
                     consequence, detail);
        break;
    case SQLITE_NOMEM:
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory: %s", consequence);
        break;
    default:
        mo_error_set(err, MO_ERR_STORAGE, NULL, "database error: %s (sqlite: %s)", consequence,
                     detail);
        break;
    }
}

static int
q_run(struct queue *q, enum q_stmt id, const char *sql, const char *consequence,
      struct mo_error *err)
{
    sqlite3_stmt *stmt = q_stmt(q, id, sql, err);
    int rc;

    if (stmt == NULL)
        return -1;
    rc = sqlite3_step(stmt);
    q_done(stmt);
    if (rc != SQLITE_DONE) {
        q_db_error(q, err, rc, consequence);
        return -1;
    }
    return 0;
}

int
q_begin_write(struct queue *q, const char *consequence, struct mo_error *err)
{
    mo_db_write_enter();
    if (q_run(q, Q_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE", consequence, err) != 0) {
        mo_db_write_leave();
        return -1;
    }
    q->holds_gate = true;
    return 0;
}

int
q_begin_read(struct queue *q, struct mo_error *err)
{
    return q_run(q, Q_BEGIN_READ, "BEGIN", "the queue could not be read", err);
}

/* Lets the next writer in once this connection's write transaction is over. */
static void
q_leave_gate(struct queue *q)
{
    if (q->holds_gate && sqlite3_get_autocommit(q->db)) {
        q->holds_gate = false;
        mo_db_write_leave();
    }
}

static int q_apply_moves(struct queue *q, const char *consequence, struct mo_error *err);

int
q_commit(struct queue *q, const char *consequence, struct mo_error *err)
{
    int rc;

    if (q_apply_moves(q, consequence, err) != 0)
        return -1; /* the caller rolls back */
    rc = q_run(q, Q_COMMIT, "COMMIT", consequence, err);

    /* A failed COMMIT may leave the transaction open: q_rollback ends it and the gate. */
    q_leave_gate(q);
    return rc;
}

void
q_rollback(struct queue *q)
{
    memset(&q->moves, 0, sizeof(q->moves));
    /* Some errors (a full disk) roll back by themselves; then there is nothing to do. */
    if (!sqlite3_get_autocommit(q->db) && q_run(q, Q_ROLLBACK, "ROLLBACK", "rollback", NULL) != 0)
        mo_log(MO_LOG_ERROR, "queue: rollback failed: %s", sqlite3_errmsg(q->db));
    q_leave_gate(q);
}

void
q_note_move(struct queue *q, const char *from, const char *to, int64_t n)
{
    enum queue_state a, b;

    if (from == NULL || to == NULL || queue_state_parse(from, &a) != 0 ||
        queue_state_parse(to, &b) != 0 || a == b)
        return;
    q->moves.n[a] -= n;
    q->moves.n[b] += n;
}

/* Writes the summed changes of state into queue_state_counts (inside the transaction). */
static int
q_apply_moves(struct queue *q, const char *consequence, struct mo_error *err)
{
    static const char *const sql = "UPDATE queue_state_counts SET n = n + ?2 WHERE state = ?1";

    for (int s = 0; s < QUEUE_STATE_COUNT; s++) {
        sqlite3_stmt *stmt;
        int step;

        if (q->moves.n[s] == 0)
            continue;
        if ((stmt = q_stmt(q, Q_COUNT_ADD, sql, err)) == NULL)
            return -1;
        q_bind_text(stmt, 1, queue_state_name((enum queue_state)s));
        sqlite3_bind_int64(stmt, 2, q->moves.n[s]);
        step = sqlite3_step(stmt);
        q_done(stmt);
        if (step != SQLITE_DONE) {
            q_db_error(q, err, step, consequence);
            return -1;
        }
        q->moves.n[s] = 0;
    }
    return 0;
}

int
q_bind_text(sqlite3_stmt *stmt, int i, const char *v)
{
    return v != NULL ? sqlite3_bind_text(stmt, i, v, -1, SQLITE_STATIC)
                     : sqlite3_bind_null(stmt, i);
}

char *
q_column_dup(sqlite3_stmt *stmt, int i, bool *oom)
{
    const unsigned char *v = sqlite3_column_text(stmt, i);
    char *copy;

    if (v == NULL)
        return NULL;
    copy = strdup((const char *)v);
    if (copy == NULL)
        *oom = true;
    return copy;
}

char *
q_reply_text(int code, const char *enhanced, const char *text)
{
    char codebuf[16] = "";
    const char *e = enhanced != NULL ? enhanced : "";
    const char *t = text != NULL ? text : "";
    size_t len;
    char *out;

    if (code > 0)
        snprintf(codebuf, sizeof(codebuf), "%d", code);
    /* Servers and callers often repeat the codes in the text; say them once. */
    if (codebuf[0] != '\0' && strncmp(t, codebuf, strlen(codebuf)) == 0) {
        codebuf[0] = '\0';
        e = "";
    }
    if (e[0] != '\0' && strncmp(t, e, strlen(e)) == 0)
        e = "";
    len = strlen(codebuf) + strlen(e) + strlen(t) + 3;
    out = malloc(len);
    if (out == NULL)
        return NULL;
    snprintf(out, len, "%s%s%s%s%s", codebuf,
             codebuf[0] != '\0' && (e[0] != '\0' || t[0] != '\0') ? " " : "", e,
             e[0] != '\0' && t[0] != '\0' ? " " : "", t);
    return out;
}

/* ---- open and close ------------------------------------------------------- */

static int
q_exec(struct queue *q, const char *sql, const char *what, struct mo_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        q_db_error(q, err, rc, what);
        if (err != NULL)
            err->field = "home";
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Replaces schema 1's CHECK texts in the stored CREATE TABLEs; a new schema_version makes
 * every connection re-read them. Inside the caller's write transaction. */
static int
q_rewrite_checks(struct queue *q, struct mo_error *err)
{
    static const char *const edits[][3] = {
        {"messages",
         "CHECK (state IN ('queued', 'sending', 'sent', 'deferred', 'failed',    'uncertain'))",
         "CHECK (" Q_MESSAGE_STATES ")"},
        {"recipients", "CHECK (state IN ('pending', 'delivered',    'failed'))",
         "CHECK (" Q_RCPT_STATES ")"},
    };
    const char *consequence = "the queue's schema could not be updated";
    sqlite3_stmt *stmt = NULL;
    char sql[96];
    long version = -1;
    int rc = -1;

    if (q_exec(q, "PRAGMA writable_schema=ON", consequence, err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        if (sqlite3_prepare_v2(q->db,
                               "UPDATE sqlite_schema SET sql = replace(sql, ?2, ?3)"
                               " WHERE type = 'table' AND name = ?1",
                               -1, &stmt, NULL) != SQLITE_OK)
            goto out;
        for (int k = 0; k < 3; k++)
            sqlite3_bind_text(stmt, k + 1, edits[i][k], -1, SQLITE_STATIC);
        if (sqlite3_step(stmt) != SQLITE_DONE)
            goto out;
        sqlite3_finalize(stmt);
        stmt = NULL;
    }
    if (sqlite3_prepare_v2(q->db, "PRAGMA schema_version", -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW)
        goto out;
    version = (long)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    stmt = NULL;
    snprintf(sql, sizeof(sql), "PRAGMA schema_version=%ld", version + 1);
    if (q_exec(q, sql, consequence, err) != 0)
        goto done;
    rc = 0;
    goto done;
out:
    q_db_error(q, err, sqlite3_errcode(q->db), consequence);
done:
    sqlite3_finalize(stmt);
    (void)sqlite3_exec(q->db, "PRAGMA writable_schema=OFF", NULL, NULL, NULL);
    return rc;
}

static int
q_prepare_schema(struct queue *q, const char *path, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    const unsigned char *mode;
    long version = 0;
    int rc = -1;

    /* journal_mode is a property of the file; asking again is a no-op once it is WAL. While
     * another connection makes the file (a first start with several processes), the switch
     * can answer "busy" without waiting: ask again for a while. */
    for (int tries = 0;; tries++) {
        int step;

        if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) != SQLITE_OK) {
            q_db_error(q, err, sqlite3_errcode(q->db), "the queue could not be opened");
            goto out;
        }
        step = sqlite3_step(stmt);
        if (step == SQLITE_ROW)
            break;
        sqlite3_finalize(stmt);
        stmt = NULL;
        if ((step != SQLITE_BUSY && step != SQLITE_LOCKED) || tries >= 500) {
            q_db_error(q, err, sqlite3_errcode(q->db), "the queue could not be opened");
            goto out;
        }
        sqlite3_sleep(10);
    }
    mode = sqlite3_column_text(stmt, 0);
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
        mo_log(MO_LOG_WARN, "queue: %s is not in WAL mode (%s); readers will wait for writers",
               path, mode != NULL ? (const char *)mode : "?");
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (q_exec(q,
               "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
               " PRAGMA journal_size_limit=67108864;",
               "the queue could not be opened", err) != 0)
        goto out;
    /* Most opens find the tables made: a read says so without taking the write lock or
     * running the script (whose counts would scan the whole queue on every open). */
    if (sqlite3_prepare_v2(q->db, "SELECT value FROM queue_meta WHERE key = 'schema_version'", -1,
                           &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW &&
        mo_parse_long((const char *)sqlite3_column_text(stmt, 0), 1, 1000000, &version) == 0 &&
        version == Q_SCHEMA_VERSION) {
        rc = 0;
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (q_begin_write(q, "the queue's tables could not be made", err) != 0)
        goto out;
    if (q_exec(q, q_schema, "the queue's tables could not be made", err) != 0)
        goto out;
    if (sqlite3_prepare_v2(q->db, "SELECT value FROM queue_meta WHERE key = 'schema_version'", -1,
                           &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW ||
        mo_parse_long((const char *)sqlite3_column_text(stmt, 0), 1, 1000000, &version) != 0) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the queue's tables in %s are damaged", path);
        goto out;
    }
    sqlite3_finalize(stmt); /* no statement may run while DROP INDEX does */
    stmt = NULL;
    if (version == 1) {
        if (q_exec(q, q_migrate_1_to_2, "the queue's indexes could not be updated", err) != 0 ||
            q_rewrite_checks(q, err) != 0)
            goto out;
        mo_log(MO_LOG_INFO, "queue: %s: indexes updated to schema 2", path);
        version = 2;
    }
    if (version > Q_SCHEMA_VERSION) {
        mo_error_set(err, MO_ERR_STORAGE, "home",
                     "the queue in %s was made by a newer mailout (schema %ld); upgrade mailout",
                     path, version);
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (q_commit(q, "the queue's tables could not be made", err) != 0) {
        if (err != NULL)
            err->field = "home";
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    if (rc != 0)
        q_rollback(q);
    return rc;
}

int
queue_open(const char *home, const struct queue_options *opt, struct queue **out,
           struct mo_error *err)
{
    struct queue *q = NULL;
    char path[4096];
    int rc = -1;
    int orc;

    *out = NULL;
    if (home == NULL || home[0] == '\0') {
        mo_error_set(err, MO_ERR_STORAGE, "home", "no data folder was given");
        return -1;
    }
    if (sodium_init() < 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "libsodium could not start");
        return -1;
    }
    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path)) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
        return -1;
    }
    if (mkdir(home, 0700) != 0 && errno != EEXIST) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot create the data folder %s: %s", home,
                     strerror(errno));
        return -1;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    pthread_mutex_init(&q->lock, NULL);
    q->max_age_s = opt != NULL && opt->max_age_s > 0 ? opt->max_age_s : Q_DEFAULT_MAX_AGE_S;
    q->grace_s = opt != NULL && opt->grace_s > 0 ? opt->grace_s : Q_DEFAULT_GRACE_S;
    q->max_message_bytes = opt != NULL && opt->max_message_bytes > 0 ? opt->max_message_bytes
                                                                     : Q_DEFAULT_MAX_MESSAGE_BYTES;
    /* NOMUTEX: q->lock already lets one caller at a time use the connection. */
    orc = sqlite3_open_v2(path, &q->db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (orc != SQLITE_OK) {
        q_db_error(q, err, orc, "the queue could not be opened");
        mo_error_prefix(err, "%s", path);
        if (err != NULL)
            err->field = "home";
        goto out;
    }
    sqlite3_busy_timeout(q->db, Q_BUSY_TIMEOUT_MS);
    /* Short-lived processes (sendmail, the CLI) must not pay a checkpoint on exit; the
     * service's commits checkpoint as the WAL grows. */
    sqlite3_db_config(q->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if (sqlite3_db_readonly(q->db, "main") == 1) {
        mo_error_set(err, MO_ERR_STORAGE, "home",
                     "the database %s is read-only (run mailout as the user that owns the data "
                     "folder)",
                     path);
        goto out;
    }
    if (q_prepare_schema(q, path, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        queue_close(q);
    else
        *out = q;
    return rc;
}

void
queue_close(struct queue *q)
{
    if (q == NULL)
        return;
    for (int i = 0; i < Q_STMT_COUNT; i++)
        sqlite3_finalize(q->stmts[i]);
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/* ---- test hooks ----------------------------------------------------------- */

void
queue_test_set_clock(struct queue *q, int64_t now)
{
    q->test_now = now;
}

int
queue_test_exec(struct queue *q, const char *sql)
{
    return sqlite3_exec(q->db, sql, NULL, NULL, NULL);
}
