/*
 * commit.c - the listener's way into the queue: the hand-over to the
 * committer and the account routing of each message.
 *
 * Committer: each session that has a whole message hands it to the queue's
 * group committer (queue_committer_add, src/queue/committer.c, shared with
 * the HTTP API) and waits; only once it is committed does the session answer
 * 250 (or 4xx/5xx with the error). See queue.h for the durability contract.
 *
 * Accounts: the account whose sender or email is the envelope sender
 * ("default" first), else "default" - the rule of sendmail mode and the
 * spool importer. The accounts' names and senders are cached for
 * ACCOUNT_TTL_MS, so a message costs no database read; a new account counts
 * within that time, and at once when no account fitted (a miss reads again). Linear scan: fine for
 * the few accounts a shop has. Leaves out: per-key accounts (an API key is not tied to an account
 * yet).
 */
#include "listener/listener_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "account/account.h"

#define ACCOUNT_TTL_MS 2000
#define ACCOUNT_RETRY_MS 100 /* a miss reads again, at most this often */

/* Kept for session.c; the committer itself is the queue's (src/queue/committer.c). */
int
listener_commit(struct queue_committer *c, const struct queue_new_message *m, int64_t *id_out,
                struct mo_error *err)
{
    return queue_committer_add(c, m, id_out, err);
}

/* ---- the accounts ------------------------------------------------------------------- */

struct account_entry {
    char *name;
    char *email;
    char *sender;      /* NULL: email */
    char *sender_name; /* NULL: none */
};

struct listener_accounts {
    pthread_mutex_t lock;
    struct account_store *store;
    struct account_entry *entries;
    size_t n;
    int64_t loaded_ms; /* 0: never */
};

static void
entries_free(struct account_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].email);
        free(e[i].sender);
        free(e[i].sender_name);
    }
    free(e);
}

int
listener_accounts_open(const char *home, struct listener_accounts **out, struct mo_error *err)
{
    struct listener_accounts *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (a == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (account_store_open(home, &a->store, err) != 0) {
        pthread_mutex_destroy(&a->lock);
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void
listener_accounts_close(struct listener_accounts *a)
{
    if (a == NULL)
        return;
    entries_free(a->entries, a->n);
    account_store_close(a->store);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* Reads every account's name and senders. Caller holds the lock. */
static int
accounts_reload(struct listener_accounts *a, struct mo_error *err)
{
    struct account_entry *entries = NULL;
    char **names = NULL;
    size_t n = 0;
    size_t got = 0;
    int rc = -1;

    if (account_store_list(a->store, &names, &n, err) != 0)
        return -1;
    if (n > 0 && (entries = calloc(n, sizeof(*entries))) == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct account_settings s;
        struct account_entry *e = &entries[got];

        memset(&s, 0, sizeof(s));
        if (account_store_get(a->store, names[i], false, &s, err) != 0) {
            if (err != NULL && err->category == MO_ERR_CONFIG)
                continue; /* removed meanwhile */
            goto out;
        }
        e->name = mo_strdup(s.name != NULL ? s.name : names[i]);
        e->email = mo_strdup(s.email);
        e->sender = mo_strdup(s.sender);
        e->sender_name = mo_strdup(s.sender_name);
        got++;
        if (e->name == NULL || (s.email != NULL && e->email == NULL) ||
            (s.sender != NULL && e->sender == NULL) ||
            (s.sender_name != NULL && e->sender_name == NULL)) {
            account_settings_clear(&s);
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        account_settings_clear(&s);
    }
    entries_free(a->entries, a->n);
    a->entries = entries;
    a->n = got;
    entries = NULL;
    a->loaded_ms = mo_now_ms();
    rc = 0;
out:
    if (entries != NULL)
        entries_free(entries, got);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static bool
entry_matches(const struct account_entry *e, const char *addr)
{
    return addr[0] != '\0' && ((e->email != NULL && strcasecmp(e->email, addr) == 0) ||
                               (e->sender != NULL && strcasecmp(e->sender, addr) == 0));
}

/* "default" when it matches, else the first that matches, else "default", else NULL. */
static const struct account_entry *
accounts_pick(const struct listener_accounts *a, const char *sender)
{
    const struct account_entry *dflt = NULL;

    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->entries[i].name, "default") == 0)
            dflt = &a->entries[i];
    if (dflt != NULL && entry_matches(dflt, sender))
        return dflt;
    for (size_t i = 0; i < a->n; i++)
        if (entry_matches(&a->entries[i], sender))
            return &a->entries[i];
    return dflt;
}

int
listener_accounts_route(struct listener_accounts *a, const char *sender, char *name,
                        size_t name_size, struct mime_address *from, struct mo_error *err)
{
    const struct account_entry *pick = NULL;
    const char *addr;
    struct mo_error e2;
    int rc = -1;

    memset(from, 0, sizeof(*from));
    pthread_mutex_lock(&a->lock);
    if ((a->loaded_ms == 0 || mo_now_ms() - a->loaded_ms >= ACCOUNT_TTL_MS) &&
        accounts_reload(a, err) != 0) {
        if (a->loaded_ms == 0)
            goto out;
        mo_log(MO_LOG_WARN, "smtp-in: cannot read the accounts: %s (keeping those read before)",
               err != NULL ? err->text : "?");
        a->loaded_ms = mo_now_ms();
    }
    pick = accounts_pick(a, sender);
    /* an account set up a moment ago must work at once: a miss looks again */
    if (pick == NULL && mo_now_ms() - a->loaded_ms >= ACCOUNT_RETRY_MS &&
        accounts_reload(a, &e2) == 0)
        pick = accounts_pick(a, sender);
    if (pick == NULL) {
        rc = 0;
        goto out;
    }
    if (snprintf(name, name_size, "%s", pick->name) >= (int)name_size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "an account name is too long");
        goto out;
    }
    addr = pick->sender != NULL ? pick->sender : pick->email;
    if (addr != NULL && mime_address_parse(addr, "sender", from, &e2) != 0) {
        mime_address_clear(from); /* a message without From then gets none */
        mo_log(MO_LOG_WARN, "smtp-in: account \"%s\": its sender is not usable: %s", pick->name,
               e2.text);
    } else if (addr != NULL && pick->sender_name != NULL && pick->sender_name[0] != '\0') {
        free(from->display_name);
        from->display_name = strdup(pick->sender_name);
        if (from->display_name == NULL) {
            mime_address_clear(from);
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    rc = 1;
out:
    pthread_mutex_unlock(&a->lock);
    return rc;
}
