/*
 * breaker.c - the circuit breaker's memory: which accounts are paused, until
 * when and why, and how much each account sent in the last 24 hours.
 *
 * Why in the database: a pause must outlive the process (a cron job runs
 * `mailout queue run` every minute; each run must see that Gmail refused the
 * password ten minutes ago and not try again), and the panel and the CLI read
 * it to tell the owner why mail waits. Two tables in home/mailout.db, made on
 * first use:
 *   account_state(name, paused_until, pause_reason, updated_at)
 *   account_usage(name, hour, sent)  -- messages per account and hour
 * A pause ends by itself: paused_until in the past means not paused.
 * Leaves out: per-minute rates (providers publish daily limits), sharing the
 * counters between machines.
 */
#include "worker/worker_internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "account/account.h"

#define BREAKER_DAY_HOURS 24
#define BREAKER_KEEP_HOURS 48

struct breaker {
    sqlite3 *db;
};

static const char *const breaker_schema = "CREATE TABLE IF NOT EXISTS account_state ("
                                          "  name TEXT PRIMARY KEY,"
                                          "  paused_until INTEGER NOT NULL DEFAULT 0,"
                                          "  pause_reason TEXT,"
                                          "  updated_at INTEGER NOT NULL);"
                                          "CREATE TABLE IF NOT EXISTS account_usage ("
                                          "  name TEXT NOT NULL,"
                                          "  hour INTEGER NOT NULL,"
                                          "  sent INTEGER NOT NULL,"
                                          "  PRIMARY KEY (name, hour));";

static void
breaker_db_error(struct breaker *b, struct mo_error *err, const char *what)
{
    mo_error_set(err, MO_ERR_STORAGE, NULL, "%s: %s", what,
                 b != NULL && b->db != NULL ? sqlite3_errmsg(b->db) : "no database");
}

const char *
breaker_account_name(const char *account)
{
    return account != NULL && account[0] != '\0' ? account : "default";
}

int
breaker_open(const char *home, struct breaker **out, struct mo_error *err)
{
    struct breaker *b = NULL;
    char path[4096];
    int rc = -1;

    *out = NULL;
    if (home == NULL || home[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "home", "no data folder was given");
        return -1;
    }
    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path)) {
        mo_error_set(err, MO_ERR_CONFIG, "home", "the data folder's path is too long");
        return -1;
    }
    if (mkdir(home, 0700) != 0 && errno != EEXIST) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot create the data folder %s: %s", home,
                     strerror(errno));
        return -1;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (mo_db_open(path, breaker_schema, 10000, false, &b->db, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        breaker_close(b);
    else
        *out = b;
    return rc;
}

void
breaker_close(struct breaker *b)
{
    if (b == NULL)
        return;
    sqlite3_close(b->db);
    free(b);
}

int
breaker_get(struct breaker *b, const char *account, int64_t now, struct worker_pause *out,
            struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(b->db,
                           "SELECT paused_until, pause_reason FROM account_state WHERE name = ?1",
                           -1, &stmt, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot read the account's pause");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, breaker_account_name(account), -1, SQLITE_TRANSIENT);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        const unsigned char *reason = sqlite3_column_text(stmt, 1);
        out->until = sqlite3_column_int64(stmt, 0);
        out->paused = out->until > now;
        if (out->paused && reason != NULL)
            snprintf(out->reason, sizeof(out->reason), "%s", (const char *)reason);
        if (!out->paused)
            out->until = 0;
    } else if (step != SQLITE_DONE) {
        breaker_db_error(b, err, "cannot read the account's pause");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

int
breaker_pause(struct breaker *b, const char *account, int64_t until, const char *reason,
              struct mo_error *err)
{
    static const char sql[] =
        "INSERT INTO account_state (name, paused_until, pause_reason, updated_at)"
        " VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT(name) DO UPDATE SET paused_until = excluded.paused_until,"
        "  pause_reason = excluded.pause_reason, updated_at = excluded.updated_at";
    sqlite3_stmt *stmt = NULL;
    char cut[sizeof(((struct worker_pause *)0)->reason)];
    int rc = -1;

    /* The reader's buffer is the limit; cut here so what is stored is what is shown. */
    snprintf(cut, sizeof(cut), "%s", reason != NULL ? reason : "");
    if (sqlite3_prepare_v2(b->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot record the account's pause");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, breaker_account_name(account), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)until);
    sqlite3_bind_text(stmt, 3, cut, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)time(NULL));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        breaker_db_error(b, err, "cannot record the account's pause");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

int
breaker_resume(struct breaker *b, const char *account, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(b->db,
                           "UPDATE account_state SET paused_until = 0, pause_reason = NULL,"
                           " updated_at = ?2 WHERE name = ?1",
                           -1, &stmt, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot clear the account's pause");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, breaker_account_name(account), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        breaker_db_error(b, err, "cannot clear the account's pause");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

int
breaker_usage_add(struct breaker *b, const char *account, int64_t now, int64_t n,
                  struct mo_error *err)
{
    static const char add_sql[] =
        "INSERT INTO account_usage (name, hour, sent) VALUES (?1, ?2, ?3)"
        " ON CONFLICT(name, hour) DO UPDATE SET sent = sent + excluded.sent";
    sqlite3_stmt *stmt = NULL;
    int64_t hour = now / 3600;
    int rc = -1;

    if (n <= 0)
        return 0;
    /* One transaction (one fsync) for the count and the clean-up, behind the process's
     * write gate so the delivery threads never meet in SQLite's busy handler. */
    mo_db_write_enter();
    if (sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot count the account's messages");
        mo_db_write_leave();
        return -1;
    }
    if (sqlite3_prepare_v2(b->db, add_sql, -1, &stmt, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot count the account's messages");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, breaker_account_name(account), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)hour);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)n);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        breaker_db_error(b, err, "cannot count the account's messages");
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    /* Old hours are of no use; this keeps the table at two days per account. */
    if (sqlite3_prepare_v2(b->db, "DELETE FROM account_usage WHERE name = ?1 AND hour < ?2", -1,
                           &stmt, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot count the account's messages");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, breaker_account_name(account), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)(hour - BREAKER_KEEP_HOURS));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        breaker_db_error(b, err, "cannot count the account's messages");
        goto out;
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot count the account's messages");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    if (!sqlite3_get_autocommit(b->db))
        (void)sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
    mo_db_write_leave();
    return rc;
}

int
breaker_usage_count(struct breaker *b, const char *account, int64_t now, int64_t *out,
                    struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int64_t hour = now / 3600;
    int rc = -1;

    *out = 0;
    if (sqlite3_prepare_v2(b->db,
                           "SELECT COALESCE(SUM(sent), 0) FROM account_usage"
                           " WHERE name = ?1 AND hour > ?2 AND hour <= ?3",
                           -1, &stmt, NULL) != SQLITE_OK) {
        breaker_db_error(b, err, "cannot read the account's message count");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, breaker_account_name(account), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)(hour - BREAKER_DAY_HOURS));
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)hour);
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        breaker_db_error(b, err, "cannot read the account's message count");
        goto out;
    }
    *out = sqlite3_column_int64(stmt, 0);
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

/* ---- public ---------------------------------------------------------------- */

int
worker_account_pause(const char *home, const char *account, struct worker_pause *out,
                     struct mo_error *err)
{
    struct breaker *b = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (breaker_open(home, &b, err) != 0)
        return -1;
    rc = breaker_get(b, account, (int64_t)time(NULL), out, err);
    breaker_close(b);
    return rc;
}

int
worker_account_resume(const char *home, const char *account, struct mo_error *err)
{
    struct breaker *b = NULL;
    int rc;

    if (breaker_open(home, &b, err) != 0)
        return -1;
    rc = breaker_resume(b, account, err);
    if (rc == 0)
        mo_log(MO_LOG_INFO, "account \"%s\": pause cleared", breaker_account_name(account));
    breaker_close(b);
    return rc;
}

int
worker_account_usage(const char *home, const char *account, struct worker_usage *out,
                     struct mo_error *err)
{
    struct breaker *b = NULL;
    struct account_store *st = NULL;
    struct account_settings s;
    struct mo_error ignored;
    const struct account_provider *p;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    memset(&s, 0, sizeof(s));
    if (breaker_open(home, &b, err) != 0)
        return -1;
    if (breaker_usage_count(b, account, (int64_t)time(NULL), &out->sent_24h, err) != 0)
        goto out;
    /* No account, or no store yet: no known limit, which is not an error here. */
    if (account_store_open(home, &st, &ignored) == 0 &&
        account_store_get(st, breaker_account_name(account), false, &s, &ignored) == 0) {
        p = s.provider_id != NULL ? account_provider_find(s.provider_id) : NULL;
        out->daily_limit = p != NULL ? p->daily_limit : 0;
    }
    out->is_limited = out->daily_limit > 0 && out->sent_24h >= (int64_t)out->daily_limit;
    rc = 0;
out:
    account_settings_clear(&s);
    account_store_close(st);
    breaker_close(b);
    return rc;
}
