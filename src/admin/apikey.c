/*
 * apikey.c - API keys: made at random, shown once, kept only as hashes.
 *
 * A key is "mo_" + base64url (RFC 4648 5, unpadded) of 32 random bytes from
 * libsodium. The table api_keys in home/mailout.db keeps its name, its first
 * ADMIN_APIKEY_PREFIX_LEN characters (to recognise it in a list) and the
 * SHA-256 of the whole key. A key carries 256 random bits, so a fast hash is
 * right: there is nothing to brute-force that a slow hash would protect.
 * Hashes are compared in constant time (sodium_memcmp).
 *
 * The keyring keeps the non-revoked keys in memory so a request costs no
 * database read: it reloads them every ADMIN_KEYRING_TTL_MS, and on every miss
 * (so a key made a moment ago works at once; a wrong key costs one small read
 * of the keys table). A revoked key stops
 * working within ADMIN_KEYRING_TTL_MS. last_used_at is written back in those
 * reloads, to the minute, so a request costs no database write either.
 * Leaves out: scopes, expiry, per-key rate limits.
 * RFCs: 6750 (bearer tokens), 4648 (base64url).
 */
#include "admin/admin_internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define APIKEY_NAME_MAX 127
#define LAST_USED_GRANULARITY_S 60
#define BUSY_TIMEOUT_MS 5000

static const char *const apikey_schema = "CREATE TABLE IF NOT EXISTS api_keys ("
                                         "  id INTEGER PRIMARY KEY,"
                                         "  name TEXT NOT NULL UNIQUE,"
                                         "  prefix TEXT NOT NULL,"
                                         "  hash BLOB NOT NULL,"
                                         "  created_at INTEGER NOT NULL,"
                                         "  last_used_at INTEGER,"
                                         "  revoked INTEGER NOT NULL DEFAULT 0);";

/* ---- the key itself ------------------------------------------------------ */

int
admin_apikey_generate(char *out, size_t out_size, struct mo_error *err)
{
    unsigned char rnd[ADMIN_APIKEY_RANDOM_BYTES];

    if (out_size < ADMIN_APIKEY_LEN + 1) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the key buffer is too small");
        return -1;
    }
    if (sodium_init() < 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "libsodium could not start");
        return -1;
    }
    randombytes_buf(rnd, sizeof(rnd));
    memcpy(out, ADMIN_APIKEY_TAG, 3);
    sodium_bin2base64(out + 3, out_size - 3, rnd, sizeof(rnd),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(rnd, sizeof(rnd));
    return 0;
}

bool
admin_apikey_well_formed(const char *key)
{
    unsigned char bin[ADMIN_APIKEY_RANDOM_BYTES];
    size_t bin_len = 0;
    bool ok;

    if (key == NULL || strlen(key) != ADMIN_APIKEY_LEN || strncmp(key, ADMIN_APIKEY_TAG, 3) != 0)
        return false;
    ok = sodium_base642bin(bin, sizeof(bin), key + 3, ADMIN_APIKEY_B64_LEN, NULL, &bin_len, NULL,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
         bin_len == sizeof(bin);
    sodium_memzero(bin, sizeof(bin));
    return ok;
}

int
admin_apikey_hash(const char *key, unsigned char out[ADMIN_APIKEY_HASH_BYTES])
{
    unsigned int len = 0;

    if (EVP_Digest(key, strlen(key), out, &len, EVP_sha256(), NULL) != 1 ||
        len != ADMIN_APIKEY_HASH_BYTES)
        return -1;
    return 0;
}

int
admin_bearer_token(const char *value, char *out, size_t out_size)
{
    const char *p = value;
    size_t len;

    if (value == NULL || out_size == 0)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return -1;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    len = strcspn(p, " \t");
    if (len == 0 || len >= out_size || p[len + strspn(p + len, " \t")] != '\0')
        return -1;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

/* ---- the table ------------------------------------------------------------ */

static void
db_error(sqlite3 *db, struct mo_error *err, const char *what)
{
    mo_error_set(err, MO_ERR_STORAGE, NULL, "%s: %s", what,
                 db != NULL ? sqlite3_errmsg(db) : "no database");
}

/* Opens home/mailout.db (creating home and the table when needed). */
static int
apikey_db_open(const char *home, sqlite3 **out, struct mo_error *err)
{
    char path[4096];

    *out = NULL;
    if (home == NULL || home[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "home", "no data folder was given");
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
    return mo_db_open(path, apikey_schema, BUSY_TIMEOUT_MS, true, out, err);
}

static int
check_name(const char *name, struct mo_error *err)
{
    size_t len = name != NULL ? strlen(name) : 0;

    if (len == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "name", "the key needs a name (e.g. \"shop\")");
        return -1;
    }
    if (len > APIKEY_NAME_MAX) {
        mo_error_set(err, MO_ERR_CONFIG, "name", "the key's name is longer than %d bytes",
                     APIKEY_NAME_MAX);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            mo_error_set(err, MO_ERR_CONFIG, "name", "the key's name contains a control character");
            return -1;
        }
    }
    return 0;
}

int
admin_apikey_create(const char *home, const char *name, char *key_out, size_t key_size,
                    struct mo_error *err)
{
    static const char *const sql = "INSERT INTO api_keys (name, prefix, hash, created_at)"
                                   " VALUES (?1, ?2, ?3, ?4)";
    char key[ADMIN_APIKEY_LEN + 1];
    unsigned char hash[ADMIN_APIKEY_HASH_BYTES];
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    if (check_name(name, err) != 0)
        return -1;
    if (key_out == NULL || key_size < sizeof(key)) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the key buffer is too small");
        return -1;
    }
    if (admin_apikey_generate(key, sizeof(key), err) != 0)
        goto out;
    if (admin_apikey_hash(key, hash) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed");
        goto out;
    }
    if (apikey_db_open(home, &db, err) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        db_error(db, err, "cannot store the key");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, key, ADMIN_APIKEY_PREFIX_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 3, hash, sizeof(hash), SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)time(NULL));
    step = sqlite3_step(stmt);
    if (step == SQLITE_CONSTRAINT) {
        mo_error_set(err, MO_ERR_CONFIG, "name",
                     "a key named \"%s\" exists already (revoked keys keep their names); "
                     "choose another name",
                     name);
        goto out;
    }
    if (step != SQLITE_DONE) {
        db_error(db, err, "cannot store the key");
        goto out;
    }
    memcpy(key_out, key, sizeof(key));
    rc = 0;
out:
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    sodium_memzero(key, sizeof(key));
    return rc;
}

int
admin_apikey_list(const char *home, struct admin_apikey_info **out, size_t *n, struct mo_error *err)
{
    static const char *const sql = "SELECT id, name, prefix, created_at,"
                                   " COALESCE(last_used_at, 0), revoked FROM api_keys"
                                   " ORDER BY id DESC";
    struct admin_apikey_info *list = NULL;
    size_t count = 0;
    size_t cap = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    *out = NULL;
    *n = 0;
    if (apikey_db_open(home, &db, err) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        db_error(db, err, "cannot list the keys");
        goto out;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct admin_apikey_info *k;
        const unsigned char *name = sqlite3_column_text(stmt, 1);
        const unsigned char *prefix = sqlite3_column_text(stmt, 2);

        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct admin_apikey_info *grown = realloc(list, ncap * sizeof(*grown));

            if (grown == NULL) {
                mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
                goto out;
            }
            list = grown;
            cap = ncap;
        }
        k = &list[count++];
        memset(k, 0, sizeof(*k));
        k->id = sqlite3_column_int64(stmt, 0);
        snprintf(k->name, sizeof(k->name), "%s", name != NULL ? (const char *)name : "");
        snprintf(k->prefix, sizeof(k->prefix), "%s", prefix != NULL ? (const char *)prefix : "");
        k->created_at = sqlite3_column_int64(stmt, 3);
        k->last_used_at = sqlite3_column_int64(stmt, 4);
        k->revoked = sqlite3_column_int(stmt, 5) != 0;
    }
    if (step != SQLITE_DONE) {
        db_error(db, err, "cannot list the keys");
        goto out;
    }
    *out = list;
    *n = count;
    list = NULL;
    rc = 0;
out:
    free(list);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}

int
admin_apikey_revoke(const char *home, const char *name, struct mo_error *err)
{
    static const char *const sql = "UPDATE api_keys SET revoked = 1 WHERE name = ?1";
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (check_name(name, err) != 0)
        return -1;
    if (apikey_db_open(home, &db, err) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        db_error(db, err, "cannot revoke the key");
        goto out;
    }
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        db_error(db, err, "cannot revoke the key");
        goto out;
    }
    if (sqlite3_changes(db) == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "name",
                     "there is no key named \"%s\" (mailout apikey list shows them)", name);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}

/* ---- the keyring ------------------------------------------------------------ */

struct keyring_entry {
    int64_t id;
    char prefix[ADMIN_APIKEY_PREFIX_LEN + 1];
    unsigned char hash[ADMIN_APIKEY_HASH_BYTES];
    int64_t last_used;       /* Unix seconds, in memory */
    int64_t last_used_saved; /* what the database holds */
};

struct admin_keyring {
    pthread_mutex_t lock;
    sqlite3 *db;
    struct keyring_entry *keys;
    size_t n;
    int64_t loaded_ms; /* monotonic time of the last reload attempt */
};

/* Writes back last_used_at where it moved by a minute or more. Best effort. */
static void
keyring_save_last_used(struct admin_keyring *k)
{
    static const char *const sql = "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2";
    sqlite3_stmt *stmt = NULL;
    bool any = false;

    for (size_t i = 0; i < k->n && !any; i++)
        any = k->keys[i].last_used >= k->keys[i].last_used_saved + LAST_USED_GRANULARITY_S;
    if (!any)
        return;
    if (sqlite3_prepare_v2(k->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return;
    for (size_t i = 0; i < k->n; i++) {
        struct keyring_entry *e = &k->keys[i];

        if (e->last_used < e->last_used_saved + LAST_USED_GRANULARITY_S)
            continue;
        sqlite3_bind_int64(stmt, 1, e->last_used);
        sqlite3_bind_int64(stmt, 2, e->id);
        if (sqlite3_step(stmt) == SQLITE_DONE)
            e->last_used_saved = e->last_used;
        sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
}

/* Reloads the non-revoked keys; on failure keeps the old list. Caller holds the lock. */
static int
keyring_reload(struct admin_keyring *k, struct mo_error *err)
{
    static const char *const sql = "SELECT id, prefix, hash, COALESCE(last_used_at, 0)"
                                   " FROM api_keys WHERE revoked = 0";
    struct keyring_entry *keys = NULL;
    size_t n = 0;
    size_t cap = 0;
    sqlite3_stmt *stmt = NULL;
    int step;
    int rc = -1;

    k->loaded_ms = mo_now_ms();
    keyring_save_last_used(k);
    if (sqlite3_prepare_v2(k->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        db_error(k->db, err, "cannot read the API keys");
        goto out;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct keyring_entry *e;
        const unsigned char *prefix = sqlite3_column_text(stmt, 1);
        const void *hash = sqlite3_column_blob(stmt, 2);

        if (hash == NULL || sqlite3_column_bytes(stmt, 2) != ADMIN_APIKEY_HASH_BYTES)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct keyring_entry *grown = realloc(keys, ncap * sizeof(*grown));

            if (grown == NULL) {
                mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
                goto out;
            }
            keys = grown;
            cap = ncap;
        }
        e = &keys[n++];
        memset(e, 0, sizeof(*e));
        e->id = sqlite3_column_int64(stmt, 0);
        snprintf(e->prefix, sizeof(e->prefix), "%s", prefix != NULL ? (const char *)prefix : "");
        memcpy(e->hash, hash, ADMIN_APIKEY_HASH_BYTES);
        e->last_used_saved = sqlite3_column_int64(stmt, 3);
        e->last_used = e->last_used_saved;
        /* keep a use seen since the last save (linear scan; fine for a few hundred keys) */
        for (size_t i = 0; i < k->n; i++)
            if (k->keys[i].id == e->id && k->keys[i].last_used > e->last_used)
                e->last_used = k->keys[i].last_used;
    }
    if (step != SQLITE_DONE) {
        db_error(k->db, err, "cannot read the API keys");
        goto out;
    }
    if (k->keys != NULL)
        sodium_memzero(k->keys, k->n * sizeof(*k->keys));
    free(k->keys);
    k->keys = keys;
    k->n = n;
    keys = NULL;
    rc = 0;
out:
    sqlite3_finalize(stmt);
    free(keys);
    return rc;
}

int
admin_keyring_open(const char *home, struct admin_keyring **out, struct mo_error *err)
{
    struct admin_keyring *k = NULL;
    int rc = -1;

    *out = NULL;
    if (sodium_init() < 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "libsodium could not start");
        return -1;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        free(k);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (apikey_db_open(home, &k->db, err) != 0 || keyring_reload(k, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc == 0)
        *out = k;
    else
        admin_keyring_close(k);
    return rc;
}

void
admin_keyring_close(struct admin_keyring *k)
{
    if (k == NULL)
        return;
    if (k->db != NULL)
        keyring_save_last_used(k);
    sqlite3_close(k->db);
    if (k->keys != NULL)
        sodium_memzero(k->keys, k->n * sizeof(*k->keys));
    free(k->keys);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* The entry matching key (prefix, then constant-time hash comparison), or NULL. */
static struct keyring_entry *
keyring_find(struct admin_keyring *k, const char *key, const unsigned char *hash)
{
    struct keyring_entry *found = NULL;

    for (size_t i = 0; i < k->n; i++) {
        struct keyring_entry *e = &k->keys[i];

        if (strncmp(e->prefix, key, ADMIN_APIKEY_PREFIX_LEN) == 0 &&
            sodium_memcmp(e->hash, hash, ADMIN_APIKEY_HASH_BYTES) == 0)
            found = e;
    }
    return found;
}

bool
admin_keyring_verify(struct admin_keyring *k, const char *key, int64_t *id_out)
{
    unsigned char hash[ADMIN_APIKEY_HASH_BYTES];
    struct keyring_entry *e;
    struct mo_error err;
    int64_t now_ms;
    bool ok = false;

    if (k == NULL || !admin_apikey_well_formed(key) || admin_apikey_hash(key, hash) != 0)
        return false;
    pthread_mutex_lock(&k->lock);
    now_ms = mo_now_ms();
    if (now_ms - k->loaded_ms >= ADMIN_KEYRING_TTL_MS && keyring_reload(k, &err) != 0)
        mo_log(MO_LOG_WARN, "API keys: %s (keeping the keys loaded before)", err.text);
    e = keyring_find(k, key, hash);
    /* A key made a moment ago must work at once: a miss always looks again (one small
     * read of the keys table; wrong keys cost no more than that). */
    if (e == NULL) {
        if (keyring_reload(k, &err) != 0)
            mo_log(MO_LOG_WARN, "API keys: %s (keeping the keys loaded before)", err.text);
        e = keyring_find(k, key, hash);
    }
    if (e != NULL) {
        e->last_used = (int64_t)time(NULL);
        if (id_out != NULL)
            *id_out = e->id;
        ok = true;
    }
    pthread_mutex_unlock(&k->lock);
    return ok;
}
