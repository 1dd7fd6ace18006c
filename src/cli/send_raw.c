/*
 * send_raw.c - `mailout send --raw PATH [--connections N]`: submits
 * ready-made RFC 5322 files as they are, with the envelope from --from/--to,
 * reusing each connection for message after message (N in parallel).
 *
 * It exists for bulk hand-over and for the benchmark: the engine's
 * throughput is measured here. Messages are read one at a time into a
 * per-connection buffer, so memory stays flat however many files there are.
 * Leaves out: header parsing (the envelope is given, not taken from To/Cc).
 */
#include <dirent.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/send.h"
#include "mime/mime.h"

/* Small on purpose: one per file, and there may be many files. */
struct raw_outcome {
    bool ok;
    char *error; /* the failure's text, owned; NULL when sent */
};

struct raw_job {
    const struct send_opts *o;
    char **files;
    size_t n_files;
    atomic_size_t next;
    struct raw_outcome *outcomes;
    struct smtp_envelope env;
    struct mo_error open_err; /* the first connection failure, if any */
    atomic_bool open_failed;
    pthread_mutex_t lock;
};

static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists PATH (a file, or the regular files of a folder, sorted). */
static int
list_files(const char *path, char ***out, size_t *n_out, struct mo_error *err)
{
    struct stat st;
    DIR *d = NULL;
    struct dirent *e;
    char **files = NULL;
    size_t n = 0;
    size_t cap = 0;
    int rc = -1;

    if (stat(path, &st) != 0) {
        mo_error_set(err, MO_ERR_CONFIG, "raw", "cannot read \"%s\"", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        files = calloc(1, sizeof(*files));
        if (files == NULL || (files[0] = strdup(path)) == NULL) {
            free(files);
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
        *out = files;
        *n_out = 1;
        return 0;
    }
    d = opendir(path);
    if (d == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "raw", "cannot open the folder \"%s\"", path);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char full[4096];
        int len;

        if (e->d_name[0] == '.')
            continue;
        len = snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
        if (len < 0 || (size_t)len >= sizeof(full))
            continue;
        /* The entry's type spares a stat() per file where the file system gives it. */
        if (e->d_type != DT_REG &&
            (e->d_type != DT_UNKNOWN || stat(full, &st) != 0 || !S_ISREG(st.st_mode)))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **grown = realloc(files, ncap * sizeof(*grown));
            if (grown == NULL)
                goto oom;
            files = grown;
            cap = ncap;
        }
        files[n] = strdup(full);
        if (files[n] == NULL)
            goto oom;
        n++;
    }
    if (n == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "raw", "the folder \"%s\" holds no files", path);
        goto out;
    }
    qsort(files, n, sizeof(*files), compare_names);
    *out = files;
    *n_out = n;
    files = NULL;
    n = 0;
    rc = 0;
    goto out;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    closedir(d);
    return rc;
}

/* A large file is mapped, not read: its pages stream to the socket without a copy. */
struct raw_map {
    const char *data;
    size_t len;
};

#define RAW_MAP_MIN_BYTES (1024 * 1024)

/* 0 when path was mapped; -1 when it should be read instead (small, or not mappable). */
static int
raw_map_file(const char *path, struct raw_map *map)
{
    struct stat st;
    void *p;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    map->data = NULL;
    map->len = 0;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < RAW_MAP_MIN_BYTES ||
        (size_t)st.st_size > SEND_MAX_MESSAGE) {
        close(fd);
        return -1;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    map->data = p;
    map->len = (size_t)st.st_size;
    return 0;
}

static void
raw_unmap(struct raw_map *map)
{
    if (map->data != NULL)
        munmap((void *)map->data, map->len);
    map->data = NULL;
    map->len = 0;
}

static void
outcome_fail(struct raw_outcome *oc, const struct mo_error *err)
{
    oc->ok = false;
    free(oc->error);
    oc->error = strdup(err->text);
}

static void *
raw_worker(void *arg)
{
    struct raw_job *job = arg;
    struct smtp_session *s = NULL;
    struct raw_map map = {NULL, 0};
    struct mo_buf msg;
    struct mo_error err;

    mo_buf_init(&msg, SEND_MAX_MESSAGE);
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        struct raw_outcome *oc;
        struct smtp_send_result res;

        if (i >= job->n_files)
            break;
        oc = &job->outcomes[i];
        if (s == NULL) {
            s = smtp_session_new(&job->o->smtp, &err);
            if (s != NULL)
                smtp_session_set_transcript(s, false);
            if (s == NULL || smtp_session_open(s, &err) != 0) {
                outcome_fail(oc, &err);
                smtp_session_free(s);
                s = NULL;
                pthread_mutex_lock(&job->lock);
                if (!atomic_exchange(&job->open_failed, true))
                    job->open_err = err;
                pthread_mutex_unlock(&job->lock);
                continue;
            }
        }
        mo_buf_reset(&msg);
        if (raw_map_file(job->files[i], &map) != 0 &&
            io_read_file(job->files[i], SEND_MAX_MESSAGE, "raw", &msg, &err) != 0) {
            outcome_fail(oc, &err);
            continue;
        }
        memset(&res, 0, sizeof(res));
        if (smtp_session_send(s, &job->env, map.data != NULL ? map.data : msg.data,
                              map.data != NULL ? map.len : msg.len, &res, &err) == 0 &&
            res.n_accepted == res.n_rcpts) {
            oc->ok = true;
        } else {
            if (res.n_accepted != res.n_rcpts && err.text[0] == '\0')
                mo_error_set(&err, MO_ERR_REJECTED, "recipient", "%zu of %zu recipients refused",
                             res.n_rcpts - res.n_accepted, res.n_rcpts);
            outcome_fail(oc, &err);
        }
        smtp_send_result_clear(&res);
        raw_unmap(&map);
        if (!oc->ok && err.category == MO_ERR_PROTOCOL) {
            /* The connection broke: the next message gets a new one. */
            smtp_session_free(s);
            s = NULL;
        }
    }
    if (s != NULL)
        (void)smtp_session_quit(s, NULL);
    smtp_session_free(s);
    mo_buf_free(&msg);
    return NULL;
}

static int
raw_envelope(const struct send_opts *o, struct raw_job *job, char *storage, const char **rcpts,
             struct mo_error *err)
{
    const char *const *groups[3] = {o->to, o->cc, o->bcc};
    const size_t counts[3] = {o->n_to, o->n_cc, o->n_bcc};
    struct mime_address a;
    size_t k = 1;
    int rc = -1;

    memset(&a, 0, sizeof(a));
    if (mime_address_parse(o->from, "sender", &a, err) != 0 ||
        mime_address_envelope(&a, storage, MIME_ADDRESS_MAX + 1, err) != 0)
        goto out;
    job->env.needs_smtputf8 = a.has_utf8_local;
    mime_address_clear(&a);
    for (int g = 0; g < 3; g++) {
        for (size_t i = 0; i < counts[g]; i++, k++) {
            char *slot = storage + k * (MIME_ADDRESS_MAX + 1);
            if (mime_address_parse(groups[g][i], "recipient", &a, err) != 0 ||
                mime_address_envelope(&a, slot, MIME_ADDRESS_MAX + 1, err) != 0)
                goto out;
            job->env.needs_smtputf8 |= a.has_utf8_local;
            mime_address_clear(&a);
            rcpts[k - 1] = slot;
        }
    }
    job->env.from = storage;
    job->env.rcpts = rcpts;
    job->env.n_rcpts = k - 1;
    rc = 0;
out:
    mime_address_clear(&a);
    return rc;
}

int
send_raw_run(const struct send_opts *o)
{
    size_t n_rcpts = o->n_to + o->n_cc + o->n_bcc;
    struct raw_job job;
    pthread_t threads[64];
    size_t n_threads = (size_t)o->connections;
    char *storage = NULL;
    const char **rcpts = NULL;
    struct mo_error err;
    size_t sent = 0;
    int64_t t0;
    double seconds;
    int code = CLI_EXIT_FAILED;

    memset(&job, 0, sizeof(job));
    mo_error_clear(&err);
    job.o = o;
    pthread_mutex_init(&job.lock, NULL);
    storage = calloc(n_rcpts + 1, MIME_ADDRESS_MAX + 1);
    rcpts = calloc(n_rcpts + 1, sizeof(*rcpts));
    if (storage == NULL || rcpts == NULL) {
        mo_error_set(&err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    if (raw_envelope(o, &job, storage, rcpts, &err) != 0 ||
        list_files(o->raw_path, &job.files, &job.n_files, &err) != 0)
        goto fail;
    job.outcomes = calloc(job.n_files, sizeof(*job.outcomes));
    if (job.outcomes == NULL) {
        mo_error_set(&err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    if (n_threads > job.n_files)
        n_threads = job.n_files;
    /* One malloc arena serves every connection thread: each needs a few buffers, not an
     * arena of its own (they would multiply the resident memory). */
    mallopt(M_ARENA_MAX, 1);
    t0 = mo_now_us();
    for (size_t i = 0; i < n_threads; i++)
        pthread_create(&threads[i], NULL, raw_worker, &job);
    for (size_t i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    seconds = (double)(mo_now_us() - t0) / 1e6;
    for (size_t i = 0; i < job.n_files; i++)
        sent += job.outcomes[i].ok;
    if (o->json) {
        /* Written item by item: the list may hold many thousands of files. */
        printf("{\n  \"ok\": %s,\n  \"sent\": %zu,\n  \"failed\": %zu,\n  \"seconds\": %.6f,\n"
               "  \"messages_per_second\": %.3f,\n  \"messages\": [",
               sent == job.n_files ? "true" : "false", sent, job.n_files - sent, seconds,
               seconds > 0 ? (double)sent / seconds : 0.0);
        for (size_t i = 0; i < job.n_files; i++) {
            json_t *item = json_pack("{s:s, s:b, s:s?}", "file", job.files[i], "ok",
                                     job.outcomes[i].ok, "error", job.outcomes[i].error);
            char *text = json_dumps(item, JSON_COMPACT | JSON_ENSURE_ASCII);
            printf("%s\n    %s", i ? "," : "", text != NULL ? text : "{}");
            free(text);
            json_decref(item);
        }
        printf("\n  ]\n}\n");
    } else {
        printf("sent %zu, failed %zu, in %.3f s (%.0f messages/s) over %zu connection%s\n", sent,
               job.n_files - sent, seconds, seconds > 0 ? (double)sent / seconds : 0.0, n_threads,
               n_threads == 1 ? "" : "s");
        for (size_t i = 0; i < job.n_files; i++)
            if (!job.outcomes[i].ok)
                fprintf(stderr, "mailout send: %s: %s\n", job.files[i],
                        job.outcomes[i].error ? job.outcomes[i].error : "failed");
    }
    if (sent == job.n_files)
        code = CLI_EXIT_OK;
    else if (atomic_load(&job.open_failed) && sent == 0)
        code = send_exit_code(&job.open_err);
    goto out;
fail:
    if (o->json) {
        char *text = json_dumps(json_pack("{s:b, s:{s:s, s:s?}}", "ok", 0, "error", "text",
                                          err.text, "field", err.field),
                                JSON_INDENT(2));
        if (text != NULL)
            puts(text);
        free(text);
    } else {
        fprintf(stderr, "mailout send: %s\n", err.text);
    }
    code = send_exit_code(&err);
out:
    for (size_t i = 0; i < job.n_files; i++) {
        free(job.files[i]);
        if (job.outcomes != NULL)
            free(job.outcomes[i].error);
    }
    free(job.files);
    free(job.outcomes);
    free(storage);
    free(rcpts);
    pthread_mutex_destroy(&job.lock);
    return code;
}
