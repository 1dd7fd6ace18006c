/*
 * committer.c - group commit for entry points with many concurrent senders
 * (the HTTP API, the SMTP listener): queue_committer_start/add/stop.
 *
 * Each caller that has a whole message hands it over and waits on its own
 * condition variable. One thread takes everything that arrived while its
 * previous commit ran (up to COMMIT_BATCH_MAX messages or COMMIT_BATCH_BYTES)
 * and commits it with one queue_add_batch(): one transaction, one fsync, for
 * the whole group (queue.h: "queued" means committed). Then it wakes each
 * caller with its id or the error; only then may the caller answer. The more
 * callers wait, the larger the batch and the cheaper each message.
 * A batch refused for one message's sake (CONFIG, e.g. over the size limit)
 * is retried message by message so the others still go in; a STORAGE error
 * fails the whole batch, and every caller in it gets that error.
 *
 * Leaves out: mapping errors to replies (each front end does that once),
 * timeouts (a caller waits as long as SQLite's busy timeout lets the commit
 * take).
 */
#include "queue/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMIT_BATCH_MAX 1024
#define COMMIT_BATCH_BYTES (64u * 1024 * 1024)
#define LOG_NAME_MAX 32

/* One waiting caller; lives on the caller's stack for the duration of queue_committer_add. */
struct commit_item {
    const struct queue_new_message *m;
    int64_t id;
    int rc;
    struct mo_error err;
    bool done;
    pthread_cond_t cond;
    struct commit_item *next;
};

struct queue_committer {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct commit_item *head;
    struct commit_item *tail;
    bool stop;
    pthread_t thread;
    struct queue *q;
    char log_name[LOG_NAME_MAX];
    /* statistics, under lock */
    uint64_t n_commits;
    uint64_t n_messages; /* committed */
    size_t largest_batch;
    int64_t commit_us; /* time spent in commits */
};

/* Commits items[0..n) as one batch; falls back to one by one when one message spoils it. */
static void
committer_commit(struct queue_committer *c, struct commit_item **items, size_t n)
{
    const struct queue_new_message *ms[COMMIT_BATCH_MAX];
    int64_t ids[COMMIT_BATCH_MAX];
    struct mo_error err;

    for (size_t i = 0; i < n; i++)
        ms[i] = items[i]->m;
    if (queue_add_batch(c->q, ms, n, ids, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            items[i]->rc = 0;
            items[i]->id = ids[i];
        }
        return;
    }
    if (n == 1 || err.category == MO_ERR_STORAGE) {
        for (size_t i = 0; i < n; i++) {
            items[i]->rc = -1;
            items[i]->err = err;
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        items[i]->rc = queue_add(c->q, items[i]->m, &items[i]->id, &items[i]->err);
}

static void *
committer_main(void *arg)
{
    struct queue_committer *c = arg;
    struct commit_item *batch[COMMIT_BATCH_MAX];

    pthread_mutex_lock(&c->lock);
    for (;;) {
        size_t n = 0;
        size_t bytes = 0;
        int64_t t0;

        while (c->head == NULL && !c->stop)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->head == NULL)
            break;
        /* everything that arrived while the previous commit ran, within bounds */
        while (c->head != NULL && n < COMMIT_BATCH_MAX &&
               (n == 0 || bytes + c->head->m->len <= COMMIT_BATCH_BYTES)) {
            batch[n++] = c->head;
            bytes += c->head->m->len;
            c->head = c->head->next;
        }
        if (c->head == NULL)
            c->tail = NULL;
        pthread_mutex_unlock(&c->lock);

        t0 = mo_now_us();
        committer_commit(c, batch, n);
        t0 = mo_now_us() - t0;

        pthread_mutex_lock(&c->lock);
        c->commit_us += t0;
        c->n_commits++;
        for (size_t i = 0; i < n; i++)
            c->n_messages += batch[i]->rc == 0 ? 1 : 0;
        if (n > c->largest_batch)
            c->largest_batch = n;
        for (size_t i = 0; i < n; i++) {
            batch[i]->done = true;
            pthread_cond_signal(&batch[i]->cond);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int
queue_committer_start(const char *home, const struct queue_options *opt, const char *log_name,
                      struct queue_committer **out, struct mo_error *err)
{
    struct queue_committer *c = NULL;
    bool locks = false;
    int rc = -1;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    snprintf(c->log_name, sizeof(c->log_name), "%s", log_name != NULL ? log_name : "queue");
    if (queue_open(home, opt, &c->q, err) != 0)
        goto out;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make the committer's locks");
        goto out;
    }
    if (pthread_cond_init(&c->wake, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make the committer's locks");
        goto out;
    }
    locks = true;
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot start the committer thread");
        goto out;
    }
    rc = 0;
out:
    if (rc == 0) {
        *out = c;
    } else {
        if (locks) {
            pthread_cond_destroy(&c->wake);
            pthread_mutex_destroy(&c->lock);
        }
        queue_close(c->q);
        free(c);
    }
    return rc;
}

int
queue_committer_add(struct queue_committer *c, const struct queue_new_message *m, int64_t *id_out,
                    struct mo_error *err)
{
    struct commit_item item;

    memset(&item, 0, sizeof(item));
    item.m = m;
    if (pthread_cond_init(&item.cond, NULL) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a condition variable");
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    if (c->stop) {
        pthread_mutex_unlock(&c->lock);
        pthread_cond_destroy(&item.cond);
        mo_error_set(err, MO_ERR_STORAGE, NULL, "the service is stopping");
        if (err != NULL)
            err->temporary = true;
        return -1;
    }
    if (c->tail != NULL)
        c->tail->next = &item;
    else
        c->head = &item;
    c->tail = &item;
    pthread_cond_signal(&c->wake);
    while (!item.done)
        pthread_cond_wait(&item.cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
    pthread_cond_destroy(&item.cond);
    if (item.rc != 0) {
        if (err != NULL)
            *err = item.err;
        return -1;
    }
    if (id_out != NULL)
        *id_out = item.id;
    return 0;
}

void
queue_committer_stop(struct queue_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    mo_log(MO_LOG_INFO,
           "%s: %llu messages queued in %llu commits (largest batch %zu, %.2f ms a commit)",
           c->log_name, (unsigned long long)c->n_messages, (unsigned long long)c->n_commits,
           c->largest_batch,
           c->n_commits > 0 ? (double)c->commit_us / 1000.0 / (double)c->n_commits : 0.0);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    queue_close(c->q);
    free(c);
}
