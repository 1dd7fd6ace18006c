/*
 * db.c - opening the data folder's database, home/mailout.db, the same way
 * everywhere: WAL (readers never wait for the writer), synchronous=FULL (a
 * commit is on disk when it returns), a busy timeout (several processes share
 * the file), no checkpoint on close (a short-lived sendmail must not pay one),
 * then the caller's schema script. Each module keeps its own tables.
 */
#include "common/common.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>

static pthread_mutex_t write_gate = PTHREAD_MUTEX_INITIALIZER;

void
mo_db_write_enter(void)
{
    pthread_mutex_lock(&write_gate);
}

void
mo_db_write_leave(void)
{
    pthread_mutex_unlock(&write_gate);
}

void
mo_db_init(void)
{
    /* Without the memory statistics SQLite takes no global mutex on every allocation. */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int
mo_db_open(const char *path, const char *schema, int busy_timeout_ms, bool no_mutex,
           struct sqlite3 **out, struct mo_error *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | (no_mutex ? SQLITE_OPEN_NOMUTEX : 0);
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = -1;

    *out = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot open the database %s: %s", path,
                     db != NULL ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, busy_timeout_ms);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    /* While another connection makes the file, switching to WAL can answer "busy" without
     * waiting: ask again for a while. */
    for (int tries = 0; sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK;
         tries++) {
        int code = sqlite3_errcode(db);

        if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || tries >= 500)
            break; /* the exec below reports it */
        sqlite3_sleep(10);
    }
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) !=
            SQLITE_OK ||
        (schema != NULL && sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK)) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot prepare the database %s: %s", path,
                     msg != NULL ? msg : "?");
        goto out;
    }
    rc = 0;
out:
    sqlite3_free(msg);
    if (rc == 0)
        *out = db;
    else
        sqlite3_close(db);
    return rc;
}
