/*
 * panel_auth.c - who may use the admin panel: the admin password, login
 * sessions, CSRF tokens and the login rate limit.
 *
 * The password: one admin, one password, hashed with argon2id
 * (libsodium's crypto_pwhash_str, interactive limits: 64 MiB, about 0.1 s)
 * in the table admin_password of home/mailout.db. Any characters are fine
 * (digits only too); only the length is checked. Setting it ends every
 * session, in the same transaction; changing it from the panel ends every
 * session but the one that changed it. Hashing runs one at a time, so a
 * burst of logins cannot take 64 MiB each.
 * Sessions: a random 256-bit id (base64url), given to the browser as an
 * HttpOnly SameSite=Strict cookie and stored only as its SHA-256 (a random
 * 256-bit value needs no slow hash), with its CSRF token (another random
 * 256-bit value the page sends back in X-CSRF-Token). A session ends after
 * PANEL_SESSION_IDLE_S without use or PANEL_SESSION_MAX_S after login;
 * last_seen is written at most once a minute, so a page load costs one
 * indexed read and no write.
 * The rate limit: failed logins per client address in memory; after
 * PANEL_LOGIN_FAILURES_MAX within PANEL_LOGIN_WINDOW_S the address waits
 * (429 with Retry-After). Comparisons of secrets are constant-time
 * (sodium_memcmp).
 * Leaves out: several admins, roles, two-factor login, password reset by
 * mail (the terminal's `mailout admin password` is the reset).
 * RFCs: 6265 (cookies), 4648 (base64url), 9106 (argon2).
 */
#include "admin/panel_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define AUTH_BUSY_TIMEOUT_MS 5000
#define SESSION_TOUCH_S 60
#define SESSION_HASH_BYTES 32
#define RATELIMIT_MAX_FAILURES 16

static const char *const auth_schema = "CREATE TABLE IF NOT EXISTS admin_password ("
                                       "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                                       "  hash TEXT NOT NULL,"
                                       "  updated_at INTEGER NOT NULL);"
                                       "CREATE TABLE IF NOT EXISTS admin_sessions ("
                                       "  id_hash BLOB PRIMARY KEY,"
                                       "  csrf TEXT NOT NULL,"
                                       "  created_at INTEGER NOT NULL,"
                                       "  last_seen INTEGER NOT NULL) WITHOUT ROWID;";

struct panel_auth {
    pthread_mutex_t db_lock;   /* one statement at a time on db */
    pthread_mutex_t hash_lock; /* one argon2id at a time */
    sqlite3 *db;
};

static void
auth_db_error(sqlite3 *db, struct mo_error *err, const char *what)
{
    mo_error_set(err, MO_ERR_STORAGE, NULL, "%s: %s", what,
                 db != NULL ? sqlite3_errmsg(db) : "no database");
}

int
panel_auth_open(const char *home, struct panel_auth **out, struct mo_error *err)
{
    struct panel_auth *a = NULL;
    char path[4096];
    int rc = -1;

    *out = NULL;
    if (home == NULL || home[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "home", "no data folder was given");
        return -1;
    }
    if (sodium_init() < 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "libsodium could not start");
        return -1;
    }
    if (mkdir(home, 0700) != 0 && errno != EEXIST) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot create the data folder %s: %s", home,
                     strerror(errno));
        return -1;
    }
    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path)) {
        mo_error_set(err, MO_ERR_CONFIG, "home", "the data folder's path is too long");
        return -1;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&a->db_lock, NULL) != 0) {
        free(a);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (pthread_mutex_init(&a->hash_lock, NULL) != 0) {
        pthread_mutex_destroy(&a->db_lock);
        free(a);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (mo_db_open(path, auth_schema, AUTH_BUSY_TIMEOUT_MS, true, &a->db, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc == 0)
        *out = a;
    else
        panel_auth_close(a);
    return rc;
}

void
panel_auth_close(struct panel_auth *a)
{
    if (a == NULL)
        return;
    sqlite3_close(a->db);
    pthread_mutex_destroy(&a->db_lock);
    pthread_mutex_destroy(&a->hash_lock);
    free(a);
}

/* ---- the password ---------------------------------------------------------------- */

int
panel_auth_has_password(struct panel_auth *a, bool *out, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    *out = false;
    pthread_mutex_lock(&a->db_lock);
    if (sqlite3_prepare_v2(a->db, "SELECT 1 FROM admin_password WHERE id = 1", -1, &stmt, NULL) !=
        SQLITE_OK) {
        auth_db_error(a->db, err, "cannot read the admin password");
        goto out;
    }
    step = sqlite3_step(stmt);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        auth_db_error(a->db, err, "cannot read the admin password");
        goto out;
    }
    *out = step == SQLITE_ROW;
    rc = 0;
out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&a->db_lock);
    return rc;
}

int
panel_auth_password_shape(const char *password, struct mo_error *err)
{
    size_t len = password != NULL ? strlen(password) : 0;

    if (len < PANEL_PASSWORD_MIN) {
        mo_error_set(err, MO_ERR_CONFIG, "password",
                     "the admin password needs at least %d characters (any characters: "
                     "letters, digits, spaces, anything); a longer one is safer",
                     PANEL_PASSWORD_MIN);
        return -1;
    }
    if (len > PANEL_PASSWORD_MAX) {
        mo_error_set(err, MO_ERR_CONFIG, "password",
                     "the admin password is longer than %d bytes; choose a shorter one",
                     PANEL_PASSWORD_MAX);
        return -1;
    }
    return 0;
}

static int keep_hash_of(const char *keep_id, unsigned char out[SESSION_HASH_BYTES], bool *has,
                        struct mo_error *err);
static int sessions_delete_except(struct panel_auth *a, const unsigned char *keep_hash,
                                  struct mo_error *err);

/*
 * Stores password's hash and, in the same transaction, ends every session but
 * keep_id's (NULL: every session). One transaction, so no session opened with
 * the old password outlives the change when the deletion fails.
 */
static int
password_store(struct panel_auth *a, const char *password, bool only_if_none, const char *keep_id,
               struct mo_error *err)
{
    static const char *const upsert =
        "INSERT INTO admin_password (id, hash, updated_at) VALUES (1, ?1, ?2)"
        " ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at";
    static const char *const insert =
        "INSERT INTO admin_password (id, hash, updated_at) VALUES (1, ?1, ?2)"
        " ON CONFLICT(id) DO NOTHING";
    char hash[crypto_pwhash_STRBYTES];
    unsigned char keep[SESSION_HASH_BYTES];
    bool has_keep = false;
    sqlite3_stmt *stmt = NULL;
    bool in_txn = false;
    int rc = -1;

    if (panel_auth_password_shape(password, err) != 0 ||
        keep_hash_of(keep_id, keep, &has_keep, err) != 0)
        return -1;
    pthread_mutex_lock(&a->hash_lock);
    rc = crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE);
    pthread_mutex_unlock(&a->hash_lock);
    if (rc != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL,
                     "argon2id could not hash the password (out of "
                     "memory?)");
        return -1;
    }
    rc = -1;
    pthread_mutex_lock(&a->db_lock);
    if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot store the admin password");
        goto out;
    }
    in_txn = true;
    if (sqlite3_prepare_v2(a->db, only_if_none ? insert : upsert, -1, &stmt, NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot store the admin password");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        auth_db_error(a->db, err, "cannot store the admin password");
        goto out;
    }
    if (only_if_none && sqlite3_changes(a->db) == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "password",
                     "the admin password exists already: log in with it, or set a new one "
                     "on the server with `mailout admin password`");
        goto out;
    }
    /* a new password ends the sessions (all but the changer's, who just gave the old
     * one): whoever else knew the old one is out */
    if (sessions_delete_except(a, has_keep ? keep : NULL, err) != 0)
        goto out;
    if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot store the admin password");
        goto out;
    }
    in_txn = false;
    rc = 0;
out:
    sqlite3_finalize(stmt);
    if (in_txn)
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&a->db_lock);
    sodium_memzero(hash, sizeof(hash));
    sodium_memzero(keep, sizeof(keep));
    return rc;
}

int
panel_auth_set_password(struct panel_auth *a, const char *password, bool only_if_none,
                        struct mo_error *err)
{
    return password_store(a, password, only_if_none, NULL, err);
}

int
panel_auth_change_password(struct panel_auth *a, const char *password, const char *keep_id,
                           struct mo_error *err)
{
    return password_store(a, password, false, keep_id, err);
}

int
panel_auth_verify_password(struct panel_auth *a, const char *password, bool *ok,
                           struct mo_error *err)
{
    char hash[crypto_pwhash_STRBYTES];
    sqlite3_stmt *stmt = NULL;
    bool have = false;
    int step;

    *ok = false;
    pthread_mutex_lock(&a->db_lock);
    if (sqlite3_prepare_v2(a->db, "SELECT hash FROM admin_password WHERE id = 1", -1, &stmt,
                           NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot read the admin password");
        pthread_mutex_unlock(&a->db_lock);
        return -1;
    }
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(stmt, 0);

        have = h != NULL && snprintf(hash, sizeof(hash), "%s", (const char *)h) < (int)sizeof(hash);
    }
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&a->db_lock);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        auth_db_error(a->db, err, "cannot read the admin password");
        return -1;
    }
    if (!have || password == NULL || strlen(password) > PANEL_PASSWORD_MAX)
        return 0;
    pthread_mutex_lock(&a->hash_lock);
    *ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
    pthread_mutex_unlock(&a->hash_lock);
    sodium_memzero(hash, sizeof(hash));
    return 0;
}

/* ---- admin.h: the password from the command line -------------------------------- */

int
admin_password_set(const char *home, const char *password, struct mo_error *err)
{
    struct panel_auth *a = NULL;
    int rc;

    if (panel_auth_password_shape(password, err) != 0)
        return -1;
    if (panel_auth_open(home, &a, err) != 0)
        return -1;
    rc = panel_auth_set_password(a, password, false, err);
    panel_auth_close(a);
    return rc;
}

int
admin_password_exists(const char *home, bool *out, struct mo_error *err)
{
    struct panel_auth *a = NULL;
    int rc;

    *out = false;
    if (panel_auth_open(home, &a, err) != 0)
        return -1;
    rc = panel_auth_has_password(a, out, err);
    panel_auth_close(a);
    return rc;
}

/* ---- sessions --------------------------------------------------------------------- */

static void
random_token(char out[PANEL_TOKEN_LEN + 1])
{
    unsigned char rnd[32];

    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2base64(out, PANEL_TOKEN_LEN + 1, rnd, sizeof(rnd),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(rnd, sizeof(rnd));
}

/* A token's shape: 43 base64url characters. */
static bool
token_well_formed(const char *t)
{
    size_t n = 0;

    if (t == NULL)
        return false;
    for (; t[n] != '\0'; n++) {
        char ch = t[n];

        if (n >= PANEL_TOKEN_LEN || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return n == PANEL_TOKEN_LEN;
}

static int
token_hash(const char *token, unsigned char out[SESSION_HASH_BYTES])
{
    unsigned int len = 0;

    if (EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL) != 1 ||
        len != SESSION_HASH_BYTES)
        return -1;
    return 0;
}

static int64_t
session_expiry(int64_t created_at, int64_t last_seen)
{
    int64_t idle = last_seen + PANEL_SESSION_IDLE_S;
    int64_t max = created_at + PANEL_SESSION_MAX_S;

    return idle < max ? idle : max;
}

int
panel_session_create(struct panel_auth *a, int64_t now, char id_out[PANEL_TOKEN_LEN + 1],
                     struct panel_session *out, struct mo_error *err)
{
    static const char *const sql = "INSERT INTO admin_sessions (id_hash, csrf, created_at,"
                                   " last_seen) VALUES (?1, ?2, ?3, ?3)";
    unsigned char hash[SESSION_HASH_BYTES];
    sqlite3_stmt *stmt = NULL;
    sqlite3_stmt *purge = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    random_token(id_out);
    random_token(out->csrf);
    if (token_hash(id_out, hash) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed");
        goto wipe;
    }
    pthread_mutex_lock(&a->db_lock);
    /* expired sessions go when a new one comes: the table stays small without a timer */
    if (sqlite3_prepare_v2(a->db,
                           "DELETE FROM admin_sessions WHERE last_seen < ?1 OR created_at < ?2", -1,
                           &purge, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(purge, 1, now - PANEL_SESSION_IDLE_S);
        sqlite3_bind_int64(purge, 2, now - PANEL_SESSION_MAX_S);
        (void)sqlite3_step(purge);
    }
    if (sqlite3_prepare_v2(a->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot start the session");
        goto out;
    }
    sqlite3_bind_blob(stmt, 1, hash, sizeof(hash), SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, out->csrf, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, now);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        auth_db_error(a->db, err, "cannot start the session");
        goto out;
    }
    out->created_at = now;
    out->last_seen = now;
    out->expires_at = session_expiry(now, now);
    rc = 0;
out:
    sqlite3_finalize(purge);
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&a->db_lock);
wipe:
    if (rc != 0) {
        sodium_memzero(id_out, PANEL_TOKEN_LEN + 1);
        sodium_memzero(out, sizeof(*out));
    }
    return rc;
}

/* Deletes the session with this hash. Caller holds db_lock. */
static int
session_delete_hash(struct panel_auth *a, const unsigned char *hash, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(a->db, "DELETE FROM admin_sessions WHERE id_hash = ?1", -1, &stmt,
                           NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot end the session");
        return -1;
    }
    sqlite3_bind_blob(stmt, 1, hash, SESSION_HASH_BYTES, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        auth_db_error(a->db, err, "cannot end the session");
    else
        rc = 0;
    sqlite3_finalize(stmt);
    return rc;
}

/* The hash of the session to keep. *has false when keep_id is NULL or malformed: it names no
 * session, so every one ends, which errs on the safe side. */
static int
keep_hash_of(const char *keep_id, unsigned char out[SESSION_HASH_BYTES], bool *has,
             struct mo_error *err)
{
    *has = false;
    if (!token_well_formed(keep_id))
        return 0;
    if (token_hash(keep_id, out) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed");
        return -1;
    }
    *has = true;
    return 0;
}

/* Deletes every session but the one with keep_hash (NULL: all). Caller holds db_lock. */
static int
sessions_delete_except(struct panel_auth *a, const unsigned char *keep_hash, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(a->db, "DELETE FROM admin_sessions WHERE ?1 IS NULL OR id_hash <> ?1",
                           -1, &stmt, NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot end the other sessions");
        return -1;
    }
    if (keep_hash != NULL)
        sqlite3_bind_blob(stmt, 1, keep_hash, SESSION_HASH_BYTES, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        auth_db_error(a->db, err, "cannot end the other sessions");
    else
        rc = 0;
    sqlite3_finalize(stmt);
    return rc;
}

int
panel_session_find(struct panel_auth *a, const char *id, int64_t now, struct panel_session *out,
                   bool *found, struct mo_error *err)
{
    unsigned char hash[SESSION_HASH_BYTES];
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    *found = false;
    memset(out, 0, sizeof(*out));
    if (!token_well_formed(id))
        return 0;
    if (token_hash(id, hash) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed");
        return -1;
    }
    pthread_mutex_lock(&a->db_lock);
    if (sqlite3_prepare_v2(a->db,
                           "SELECT csrf, created_at, last_seen FROM admin_sessions"
                           " WHERE id_hash = ?1",
                           -1, &stmt, NULL) != SQLITE_OK) {
        auth_db_error(a->db, err, "cannot read the session");
        goto out;
    }
    sqlite3_bind_blob(stmt, 1, hash, sizeof(hash), SQLITE_STATIC);
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        rc = 0;
        goto out;
    }
    if (step != SQLITE_ROW) {
        auth_db_error(a->db, err, "cannot read the session");
        goto out;
    }
    {
        const unsigned char *csrf = sqlite3_column_text(stmt, 0);

        snprintf(out->csrf, sizeof(out->csrf), "%s", csrf != NULL ? (const char *)csrf : "");
    }
    out->created_at = sqlite3_column_int64(stmt, 1);
    out->last_seen = sqlite3_column_int64(stmt, 2);
    out->expires_at = session_expiry(out->created_at, out->last_seen);
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (now >= out->expires_at) {
        memset(out, 0, sizeof(*out));
        rc = session_delete_hash(a, hash, err);
        goto out;
    }
    if (now - out->last_seen >= SESSION_TOUCH_S) {
        if (sqlite3_prepare_v2(a->db, "UPDATE admin_sessions SET last_seen = ?2 WHERE id_hash = ?1",
                               -1, &stmt, NULL) == SQLITE_OK) {
            sqlite3_bind_blob(stmt, 1, hash, sizeof(hash), SQLITE_STATIC);
            sqlite3_bind_int64(stmt, 2, now);
            if (sqlite3_step(stmt) == SQLITE_DONE) {
                out->last_seen = now;
                out->expires_at = session_expiry(out->created_at, now);
            }
        }
    }
    *found = true;
    rc = 0;
out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&a->db_lock);
    return rc;
}

int
panel_session_delete(struct panel_auth *a, const char *id, struct mo_error *err)
{
    unsigned char hash[SESSION_HASH_BYTES];
    int rc;

    if (!token_well_formed(id))
        return 0;
    if (token_hash(id, hash) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed");
        return -1;
    }
    pthread_mutex_lock(&a->db_lock);
    rc = session_delete_hash(a, hash, err);
    pthread_mutex_unlock(&a->db_lock);
    return rc;
}

bool
panel_csrf_equal(const char *expected, const char *given)
{
    if (!token_well_formed(expected) || !token_well_formed(given))
        return false;
    return sodium_memcmp(expected, given, PANEL_TOKEN_LEN) == 0;
}

int
panel_cookie_value(const char *cookie_header, const char *name, char *out, size_t out_size)
{
    const char *p = cookie_header;
    size_t name_len = strlen(name);

    if (p == NULL || out_size == 0)
        return -1;
    while (*p != '\0') {
        const char *end;
        const char *eq;
        size_t len;

        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        end = p + strcspn(p, ";");
        eq = memchr(p, '=', (size_t)(end - p));
        if (eq != NULL && (size_t)(eq - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq + 1;
            const char *v_end = end;

            while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
                v_end--;
            if (v_end - v >= 2 && v[0] == '"' && v_end[-1] == '"') {
                v++;
                v_end--;
            }
            len = (size_t)(v_end - v);
            if (len >= out_size)
                return -1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}

/* ---- addresses ------------------------------------------------------------------------ */

bool
panel_is_loopback(const struct sockaddr *sa)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *b = in6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return memcmp(b, mapped, sizeof(mapped)) == 0 && b[12] == 127;
    }
    return false;
}

bool
panel_host_is_loopback(const char *host)
{
    char name[64];
    size_t len;

    if (host == NULL)
        return false;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        struct in6_addr a6;

        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return false;
        len = (size_t)(close - host - 1);
        if (len == 0 || len >= sizeof(name))
            return false;
        memcpy(name, host + 1, len);
        name[len] = '\0';
        return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    len = strcspn(host, ":");
    if (len == 0 || len >= sizeof(name) || (host[len] == ':' && strchr(host + len + 1, ':')))
        return false;
    memcpy(name, host, len);
    name[len] = '\0';
    if (strcasecmp(name, "localhost") == 0)
        return true;
    {
        struct in_addr a4;

        return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
    }
}

/* ---- the login rate limit ---------------------------------------------------------------- */

struct ratelimit_slot {
    bool used;
    unsigned char addr[16];                   /* IPv6, or IPv4 mapped into it */
    int64_t failures[RATELIMIT_MAX_FAILURES]; /* times, oldest first */
    unsigned n;
    int64_t last; /* the latest failure, for reuse of the stalest slot */
};

struct panel_ratelimit {
    pthread_mutex_t lock;
    unsigned max_failures;
    int window_s;
    struct ratelimit_slot slots[PANEL_RATELIMIT_SLOTS];
};

struct panel_ratelimit *
panel_ratelimit_new(unsigned max_failures, int window_s)
{
    struct panel_ratelimit *rl = calloc(1, sizeof(*rl));

    if (rl == NULL)
        return NULL;
    if (pthread_mutex_init(&rl->lock, NULL) != 0) {
        free(rl);
        return NULL;
    }
    rl->max_failures = max_failures == 0                       ? 1
                       : max_failures > RATELIMIT_MAX_FAILURES ? RATELIMIT_MAX_FAILURES
                                                               : max_failures;
    rl->window_s = window_s > 0 ? window_s : 60;
    return rl;
}

void
panel_ratelimit_free(struct panel_ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

/* The address as 16 bytes; false for other families. */
static bool
ratelimit_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Drops failures that left the window. */
static void
slot_expire(struct panel_ratelimit *rl, struct ratelimit_slot *s, int64_t now)
{
    unsigned keep = 0;

    for (unsigned i = 0; i < s->n; i++)
        if (s->failures[i] > now - rl->window_s)
            s->failures[keep++] = s->failures[i];
    s->n = keep;
}

static struct ratelimit_slot *
slot_find(struct panel_ratelimit *rl, const unsigned char key[16])
{
    for (size_t i = 0; i < PANEL_RATELIMIT_SLOTS; i++)
        if (rl->slots[i].used && memcmp(rl->slots[i].addr, key, 16) == 0)
            return &rl->slots[i];
    return NULL;
}

int64_t
panel_ratelimit_wait_s(struct panel_ratelimit *rl, const struct sockaddr *peer, int64_t now)
{
    unsigned char key[16];
    struct ratelimit_slot *s;
    int64_t wait = 0;

    ratelimit_key(peer, key);
    pthread_mutex_lock(&rl->lock);
    s = slot_find(rl, key);
    if (s != NULL) {
        slot_expire(rl, s, now);
        if (s->n >= rl->max_failures)
            wait = s->failures[s->n - rl->max_failures] + rl->window_s - now;
    }
    pthread_mutex_unlock(&rl->lock);
    return wait > 0 ? wait : 0;
}

void
panel_ratelimit_fail(struct panel_ratelimit *rl, const struct sockaddr *peer, int64_t now)
{
    unsigned char key[16];
    struct ratelimit_slot *s;

    ratelimit_key(peer, key);
    pthread_mutex_lock(&rl->lock);
    s = slot_find(rl, key);
    if (s == NULL) {
        /* a free slot, else the one whose latest failure is oldest */
        s = &rl->slots[0];
        for (size_t i = 0; i < PANEL_RATELIMIT_SLOTS && s->used; i++)
            if (!rl->slots[i].used || rl->slots[i].last < s->last)
                s = &rl->slots[i];
        memset(s, 0, sizeof(*s));
        s->used = true;
        memcpy(s->addr, key, 16);
    }
    slot_expire(rl, s, now);
    if (s->n == RATELIMIT_MAX_FAILURES) {
        memmove(s->failures, s->failures + 1, (s->n - 1) * sizeof(s->failures[0]));
        s->n--;
    }
    s->failures[s->n++] = now;
    s->last = now;
    pthread_mutex_unlock(&rl->lock);
}

void
panel_ratelimit_reset(struct panel_ratelimit *rl, const struct sockaddr *peer)
{
    unsigned char key[16];
    struct ratelimit_slot *s;

    ratelimit_key(peer, key);
    pthread_mutex_lock(&rl->lock);
    s = slot_find(rl, key);
    if (s != NULL)
        memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&rl->lock);
}
