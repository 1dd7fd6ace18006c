/*
 * store.c - the account store: one SQLite database (WAL) in the data folder
 * and, apart from it, the key that encrypts every password.
 *
 * Passwords are sealed with libsodium's XChaCha20-Poly1305 (AEAD) under a
 * 256-bit key kept in home/secret.key (mode 0600, made on first use); the
 * account's name is the associated data, so a sealed password copied onto
 * another account does not open. The database alone reveals no secret.
 * Leaves out: key rotation, sharing the database between machines.
 */
#include "account/account.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_SCHEMA_VERSION 1

struct account_store {
    sqlite3 *db;
    unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
};

static const char *const store_schema = "CREATE TABLE IF NOT EXISTS accounts ("
                                        "  name TEXT PRIMARY KEY,"
                                        "  provider TEXT,"
                                        "  email TEXT NOT NULL,"
                                        "  username TEXT,"
                                        "  password_nonce BLOB,"
                                        "  password_box BLOB,"
                                        "  sender TEXT,"
                                        "  sender_name TEXT,"
                                        "  host TEXT,"
                                        "  port INTEGER,"
                                        "  security TEXT,"
                                        "  auth TEXT,"
                                        "  ca_file TEXT,"
                                        "  timeout_s INTEGER,"
                                        "  last_check_at INTEGER,"
                                        "  last_check TEXT,"
                                        "  last_message_id TEXT,"
                                        "  created_at INTEGER NOT NULL,"
                                        "  updated_at INTEGER NOT NULL);";

static void
store_db_error(struct account_store *st, struct mo_error *err, const char *what)
{
    mo_error_set(err, MO_ERR_STORAGE, NULL, "%s: %s", what,
                 st->db != NULL ? sqlite3_errmsg(st->db) : "no database");
}

/* Reads the key, or makes it when the file does not exist yet. */
static int
store_load_key(struct account_store *st, const char *home, struct mo_error *err)
{
    char path[4096];
    ssize_t got;
    int fd;

    if (snprintf(path, sizeof(path), "%s/secret.key", home) >= (int)sizeof(path)) {
        mo_error_set(err, MO_ERR_CONFIG, "home", "the data folder's path is too long");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(st->key, sizeof(st->key));
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            mo_error_set(err, MO_ERR_STORAGE, "home", "cannot create the key file %s: %s", path,
                         strerror(errno));
            return -1;
        }
        if (write(fd, st->key, sizeof(st->key)) != (ssize_t)sizeof(st->key) || fsync(fd) != 0) {
            mo_error_set(err, MO_ERR_STORAGE, "home", "cannot write the key file %s: %s", path,
                         strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        close(fd);
        return 0;
    }
    if (fd < 0) {
        mo_error_set(err, MO_ERR_STORAGE, "home",
                     "cannot read the key file %s: %s (run mailout as the user that owns the "
                     "data folder)",
                     path, strerror(errno));
        return -1;
    }
    got = read(fd, st->key, sizeof(st->key));
    close(fd);
    if (got != (ssize_t)sizeof(st->key)) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the key file %s is damaged", path);
        return -1;
    }
    return 0;
}

int
account_store_open(const char *home, struct account_store **out, struct mo_error *err)
{
    struct account_store *st = NULL;
    char path[4096];
    int rc = -1;

    *out = NULL;
    if (sodium_init() < 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "libsodium could not start");
        return -1;
    }
    if (mkdir(home, 0700) != 0 && errno != EEXIST) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot create the data folder %s: %s", home,
                     strerror(errno));
        return -1;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (store_load_key(st, home, err) != 0)
        goto out;
    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path)) {
        mo_error_set(err, MO_ERR_CONFIG, "home", "the data folder's path is too long");
        goto out;
    }
    if (mo_db_open(path, store_schema, 5000, false, &st->db, err) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        account_store_close(st);
    else
        *out = st;
    return rc;
}

void
account_store_close(struct account_store *st)
{
    if (st == NULL)
        return;
    sqlite3_close(st->db);
    sodium_memzero(st->key, sizeof(st->key));
    free(st);
}

/* Binds a possibly-NULL string. */
static int
bind_text(sqlite3_stmt *stmt, int i, const char *v)
{
    return v != NULL ? sqlite3_bind_text(stmt, i, v, -1, SQLITE_TRANSIENT)
                     : sqlite3_bind_null(stmt, i);
}

static char *
column_dup(sqlite3_stmt *stmt, int i)
{
    const unsigned char *v = sqlite3_column_text(stmt, i);
    return v != NULL ? strdup((const char *)v) : NULL;
}

int
account_store_put(struct account_store *st, const struct account_settings *s, struct mo_error *err)
{
    static const char *const sql =
        "INSERT INTO accounts (name, provider, email, username, password_nonce, password_box,"
        " sender, sender_name, host, port, security, auth, ca_file, timeout_s, created_at,"
        " updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
        " ?15) ON CONFLICT(name) DO UPDATE SET provider = ?2, email = ?3, username = ?4,"
        " password_nonce = COALESCE(?5, password_nonce), password_box = COALESCE(?6,"
        " password_box), sender = ?7, sender_name = ?8, host = ?9, port = ?10, security = ?11,"
        " auth = ?12, ca_file = ?13, timeout_s = ?14, updated_at = ?15";
    unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    unsigned char *box = NULL;
    unsigned long long box_len = 0;
    sqlite3_stmt *stmt = NULL;
    const char *name = s->name != NULL ? s->name : "default";
    int rc = -1;

    if (s->email == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "email", "an account needs an email address");
        return -1;
    }
    if (s->password != NULL) {
        size_t len = strlen(s->password);

        box = malloc(len + crypto_aead_xchacha20poly1305_ietf_ABYTES);
        if (box == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
        randombytes_buf(nonce, sizeof(nonce));
        crypto_aead_xchacha20poly1305_ietf_encrypt(
            box, &box_len, (const unsigned char *)s->password, len, (const unsigned char *)name,
            strlen(name), NULL, nonce, st->key);
    }
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        store_db_error(st, err, "cannot save the account");
        goto out;
    }
    bind_text(stmt, 1, name);
    bind_text(stmt, 2, s->provider_id);
    bind_text(stmt, 3, s->email);
    bind_text(stmt, 4, s->username);
    if (box != NULL) {
        sqlite3_bind_blob(stmt, 5, nonce, sizeof(nonce), SQLITE_TRANSIENT);
        sqlite3_bind_blob(stmt, 6, box, (int)box_len, SQLITE_TRANSIENT);
    }
    bind_text(stmt, 7, s->sender);
    bind_text(stmt, 8, s->sender_name);
    bind_text(stmt, 9, s->host);
    sqlite3_bind_int(stmt, 10, (int)s->port);
    bind_text(stmt, 11, smtp_security_name(s->security));
    bind_text(stmt, 12, s->no_login ? "none" : smtp_auth_mech_name(s->auth));
    bind_text(stmt, 13, s->ca_file);
    sqlite3_bind_int(stmt, 14, s->timeout_s);
    sqlite3_bind_int64(stmt, 15, (sqlite3_int64)time(NULL));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        store_db_error(st, err, "cannot save the account");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    free(box);
    return rc;
}

/* Opens the sealed password of name. */
static char *
store_open_password(struct account_store *st, const char *name, const void *nonce, int nonce_len,
                    const void *box, int box_len, struct mo_error *err)
{
    unsigned long long len = 0;
    char *plain;

    if (nonce_len != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES ||
        box_len < (int)crypto_aead_xchacha20poly1305_ietf_ABYTES) {
        mo_error_set(err, MO_ERR_STORAGE, "password", "the stored password is damaged");
        return NULL;
    }
    plain = malloc((size_t)box_len + 1);
    if (plain == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return NULL;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            (unsigned char *)plain, &len, NULL, box, (unsigned long long)box_len,
            (const unsigned char *)name, strlen(name), nonce, st->key) != 0) {
        free(plain);
        mo_error_set(err, MO_ERR_STORAGE, "password",
                     "the stored password cannot be opened with this data folder's key (was "
                     "secret.key replaced?); set the password again");
        return NULL;
    }
    plain[len] = '\0';
    return plain;
}

int
account_store_get(struct account_store *st, const char *name, bool with_secret,
                  struct account_settings *out, struct mo_error *err)
{
    static const char *const sql =
        "SELECT provider, email, username, password_nonce, password_box, sender, sender_name,"
        " host, port, security, auth, ca_file, timeout_s FROM accounts WHERE name = ?1";
    sqlite3_stmt *stmt = NULL;
    const char *v;
    int rc = -1;
    int step;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        store_db_error(st, err, "cannot read the account");
        return -1;
    }
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        mo_error_set(err, MO_ERR_CONFIG, "name",
                     "there is no account named \"%s\" (see mailout account list, or create it "
                     "with mailout account set)",
                     name);
        goto out;
    }
    if (step != SQLITE_ROW) {
        store_db_error(st, err, "cannot read the account");
        goto out;
    }
    out->name = strdup(name);
    out->provider_id = column_dup(stmt, 0);
    out->email = column_dup(stmt, 1);
    out->username = column_dup(stmt, 2);
    out->sender = column_dup(stmt, 5);
    out->sender_name = column_dup(stmt, 6);
    out->host = column_dup(stmt, 7);
    out->port = (unsigned)sqlite3_column_int(stmt, 8);
    v = (const char *)sqlite3_column_text(stmt, 9);
    out->has_security = v != NULL && smtp_security_parse(v, &out->security) == 0;
    v = (const char *)sqlite3_column_text(stmt, 10);
    out->no_login = v != NULL && strcmp(v, "none") == 0;
    if (v == NULL || smtp_auth_mech_parse(v, &out->auth) != 0)
        out->auth = SMTP_AUTH_AUTO;
    out->ca_file = column_dup(stmt, 11);
    out->timeout_s = sqlite3_column_int(stmt, 12);
    if (with_secret && sqlite3_column_type(stmt, 4) != SQLITE_NULL) {
        out->password = store_open_password(
            st, name, sqlite3_column_blob(stmt, 3), sqlite3_column_bytes(stmt, 3),
            sqlite3_column_blob(stmt, 4), sqlite3_column_bytes(stmt, 4), err);
        if (out->password == NULL)
            goto out;
    }
    if (out->name == NULL || out->email == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    if (rc != 0)
        account_settings_clear(out);
    return rc;
}

int
account_store_list(struct account_store *st, char ***out, size_t *n_out, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    int step;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT name FROM accounts ORDER BY name", -1, &stmt, NULL) !=
        SQLITE_OK) {
        store_db_error(st, err, "cannot list the accounts");
        return -1;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **grown = realloc(names, ncap * sizeof(*grown));
            if (grown == NULL)
                goto oom;
            names = grown;
            cap = ncap;
        }
        names[n] = column_dup(stmt, 0);
        if (names[n] == NULL)
            goto oom;
        n++;
    }
    if (step != SQLITE_DONE) {
        store_db_error(st, err, "cannot list the accounts");
        goto out;
    }
    *out = names;
    *n_out = n;
    names = NULL;
    n = 0;
    rc = 0;
    goto out;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    sqlite3_finalize(stmt);
    return rc;
}

int
account_store_remove(struct account_store *st, const char *name, struct mo_error *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(st->db, "DELETE FROM accounts WHERE name = ?1", -1, &stmt, NULL) !=
        SQLITE_OK) {
        store_db_error(st, err, "cannot remove the account");
        return -1;
    }
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        store_db_error(st, err, "cannot remove the account");
        goto out;
    }
    if (sqlite3_changes(st->db) == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "name", "there is no account named \"%s\"", name);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

int
account_store_record_check(struct account_store *st, const char *name, const char *outcome_json,
                           const char *message_id, struct mo_error *err)
{
    static const char *const sql =
        "UPDATE accounts SET last_check_at = ?2, last_check = ?3,"
        " last_message_id = COALESCE(?4, last_message_id) WHERE name = ?1";
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        store_db_error(st, err, "cannot record the check");
        return -1;
    }
    bind_text(stmt, 1, name);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
    bind_text(stmt, 3, outcome_json);
    bind_text(stmt, 4, message_id != NULL && message_id[0] ? message_id : NULL);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        store_db_error(st, err, "cannot record the check");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

int
account_store_last_check(struct account_store *st, const char *name, char **outcome_json,
                         char **message_id, int64_t *when, struct mo_error *err)
{
    static const char *const sql =
        "SELECT last_check, last_message_id, last_check_at FROM accounts WHERE name = ?1";
    sqlite3_stmt *stmt = NULL;
    int rc = -1;

    *outcome_json = NULL;
    *message_id = NULL;
    *when = 0;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        store_db_error(st, err, "cannot read the account");
        return -1;
    }
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        *outcome_json = column_dup(stmt, 0);
        *message_id = column_dup(stmt, 1);
        *when = sqlite3_column_int64(stmt, 2);
    }
    rc = 0;
    sqlite3_finalize(stmt);
    return rc;
}

bool
account_store_has_password(struct account_store *st, const char *name)
{
    sqlite3_stmt *stmt = NULL;
    bool has = false;

    if (sqlite3_prepare_v2(st->db, "SELECT password_box IS NOT NULL FROM accounts WHERE name = ?1",
                           -1, &stmt, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        has = sqlite3_column_int(stmt, 0) != 0;
    sqlite3_finalize(stmt);
    return has;
}

bool
account_sends_as(const struct account_settings *s, const char *addr)
{
    return addr != NULL && addr[0] != '\0' &&
           ((s->email != NULL && strcasecmp(s->email, addr) == 0) ||
            (s->sender != NULL && strcasecmp(s->sender, addr) == 0));
}

int
account_store_find_sender(struct account_store *st, const char *addr, struct account_settings *out,
                          bool *matches, struct mo_error *err)
{
    char **names = NULL;
    size_t n = 0;
    int found = 0;

    *matches = false;
    memset(out, 0, sizeof(*out));
    if (account_store_get(st, "default", false, out, NULL) == 0) {
        if (account_sends_as(out, addr)) {
            *matches = true;
            return 1;
        }
        found = 1; /* the fallback, unless another account matches */
    }
    if (addr == NULL || addr[0] == '\0')
        return found;
    if (account_store_list(st, &names, &n, err) != 0) {
        account_settings_clear(out);
        return -1;
    }
    for (size_t i = 0; i < n && !*matches; i++) {
        struct account_settings s;

        memset(&s, 0, sizeof(s));
        if (account_store_get(st, names[i], false, &s, NULL) == 0 && account_sends_as(&s, addr)) {
            account_settings_clear(out);
            *out = s;
            *matches = true;
            found = 1;
        } else {
            account_settings_clear(&s);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return found;
}
