/*
 * http.c - the HTTP server behind `mailout serve --http`: libmicrohttpd,
 * routing, API keys, request bodies, the security headers of every
 * response, and the write path that makes "202" mean "committed".
 *
 * Routing: /api/v1/... is the JSON API for developers (API keys; api.c
 * parses the bodies). Everything else belongs to the admin panel: http.c
 * reads its body (at most PANEL_MAX_BODY_BYTES) and hands the request to
 * panel_handle() (panel.c), which serves the pages and assets and guards its
 * JSON routes with the login session and the CSRF token.
 *
 * Threads: libmicrohttpd runs one thread per connection
 * (MHD_USE_THREAD_PER_CONNECTION, at most opt->max_connections), so a
 * handler may block (the panel's connection check does, up to its timeout).
 * A POST handler of the API validates and composes its message in
 * its own thread (api.c), hands it to the committer and waits on its own
 * condition variable: the queue's group committer (queue_committer_add,
 * src/queue/committer.c) commits everything that arrived while its previous
 * commit ran in one transaction, one fsync. With 8 clients the batches hold
 * up to 8 messages; the more clients wait, the cheaper each message.
 * GET reads through a second queue handle (one reader at a time). API keys
 * are checked against the in-memory keyring (apikey.c); accounts' senders
 * are cached for ACCOUNT_TTL_MS.
 *
 * Request bodies arrive through the upload callback into a buffer capped at
 * max_body_bytes: a Content-Length above it is refused (413) before the body
 * is read; a chunked body that passes it is drained and then refused. Each
 * request owns an arena (admin_arena) freed in one call when it completes.
 * Every response: X-Content-Type-Options: nosniff, a strict
 * Content-Security-Policy, X-Frame-Options: DENY, Referrer-Policy:
 * no-referrer; JSON and pages Cache-Control: no-store. The API never sets a
 * cookie.
 * Leaves out: TLS (listen on loopback or behind a proxy), HTTP/2, API rate
 * limits (the panel's login has one).
 * RFCs: 9110 (HTTP semantics), 6750 (bearer tokens), 8259 (JSON).
 */
#include "admin/panel_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "account/account.h"

#define DEFAULT_MAX_BODY_BYTES (25u * 1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS 256
#define CONNECTION_TIMEOUT_S 60
#define LISTEN_BACKLOG 512
#define ACCOUNT_TTL_MS 2000
#define ACCOUNT_CACHE_MAX 32
#define DISK_FULL_BYTES (1024 * 1024)
#define KEY_TEXT_MAX 128
#define ARENA_CHUNK_BYTES 16384

#define JSON_TYPE "application/json; charset=utf-8"
#define API_PREFIX "/api/v1/messages"

/* ---- the per-request arena ------------------------------------------------------ */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[]; /* aligned for any type */
};

struct arena_cleanup {
    struct arena_cleanup *next;
    void (*fn)(void *);
    void *p;
};

struct admin_arena {
    struct arena_chunk *chunks; /* the first one is being filled */
    struct arena_cleanup *cleanups;
    size_t used;
};

struct admin_arena *
admin_arena_new(void)
{
    return calloc(1, sizeof(struct admin_arena));
}

void
admin_arena_free(struct admin_arena *a)
{
    if (a == NULL)
        return;
    /* cleanups live in the chunks: run them all before freeing any chunk */
    for (struct arena_cleanup *c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->p);
    while (a->chunks != NULL) {
        struct arena_chunk *next = a->chunks->next;

        free(a->chunks);
        a->chunks = next;
    }
    free(a);
}

void *
admin_arena_alloc(struct admin_arena *a, size_t size)
{
    const size_t align = alignof(max_align_t);
    struct arena_chunk *c = a->chunks;
    size_t rounded;
    void *p;

    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - align - sizeof(struct arena_chunk))
        return NULL;
    rounded = (size + align - 1) / align * align;
    if (c == NULL || c->size - c->used < rounded) {
        size_t chunk_size = rounded > ARENA_CHUNK_BYTES / 4 ? rounded : ARENA_CHUNK_BYTES;
        struct arena_chunk *fresh = malloc(sizeof(*fresh) + chunk_size);

        if (fresh == NULL)
            return NULL;
        fresh->size = chunk_size;
        fresh->used = 0;
        /* a big block gets its own chunk behind the current one, which keeps its room */
        if (c != NULL && chunk_size != ARENA_CHUNK_BYTES) {
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            a->chunks = fresh;
        }
        c = fresh;
    }
    p = (char *)c->data + c->used;
    c->used += rounded;
    a->used += rounded;
    memset(p, 0, size);
    return p;
}

void *
admin_arena_calloc(struct admin_arena *a, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    return admin_arena_alloc(a, n * size);
}

char *
admin_arena_strndup(struct admin_arena *a, const char *s, size_t len)
{
    char *p = len < SIZE_MAX ? admin_arena_alloc(a, len + 1) : NULL;

    if (p != NULL && len > 0)
        memcpy(p, s, len);
    return p;
}

char *
admin_arena_printf(struct admin_arena *a, const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (p = admin_arena_alloc(a, (size_t)n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int
admin_arena_defer(struct admin_arena *a, void (*fn)(void *), void *p)
{
    struct arena_cleanup *c = admin_arena_alloc(a, sizeof(*c));

    if (c == NULL) {
        fn(p);
        return -1;
    }
    c->fn = fn;
    c->p = p;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

size_t
admin_arena_used(const struct admin_arena *a)
{
    return a->used;
}

/* ---- the listening address ------------------------------------------------------- */

int
admin_listen_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len,
                   struct mo_error *err)
{
    return mo_listen_parse(text, ADMIN_DEFAULT_LISTEN, "http", out, out_len, NULL, err);
}

/* ---- accounts: the default sender -------------------------------------------------------- */

struct account_entry {
    char *name;
    bool exists;
    char *sender;      /* the account's sender, else its email */
    char *sender_name; /* or NULL */
    int64_t loaded_ms;
};

struct accounts {
    pthread_mutex_t lock;
    struct account_store *store;
    struct account_entry entries[ACCOUNT_CACHE_MAX];
    size_t n;
};

static void
account_entry_clear(struct account_entry *e)
{
    free(e->name);
    free(e->sender);
    free(e->sender_name);
    memset(e, 0, sizeof(*e));
}

static void
accounts_close(struct accounts *ac)
{
    for (size_t i = 0; i < ac->n; i++)
        account_entry_clear(&ac->entries[i]);
    ac->n = 0;
    account_store_close(ac->store);
    ac->store = NULL;
}

/* Loads name into e (under the lock). Errors: STORAGE, INTERNAL. */
static int
accounts_load(struct accounts *ac, const char *name, struct account_entry *e, struct mo_error *err)
{
    struct account_settings s;
    struct mo_error e2;
    int rc = -1;

    memset(&s, 0, sizeof(s));
    account_entry_clear(e);
    e->name = strdup(name);
    if (e->name == NULL)
        goto oom;
    if (account_store_get(ac->store, name, false, &s, &e2) != 0) {
        if (e2.category != MO_ERR_CONFIG) {
            *err = e2;
            goto out;
        }
        e->exists = false;
    } else {
        e->exists = true;
        e->sender = mo_strdup(s.sender != NULL ? s.sender : s.email);
        e->sender_name = mo_strdup(s.sender_name);
        if ((e->sender == NULL && (s.sender != NULL || s.email != NULL)) ||
            (e->sender_name == NULL && s.sender_name != NULL))
            goto oom;
    }
    e->loaded_ms = mo_now_ms();
    rc = 0;
    goto out;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    account_settings_clear(&s);
    if (rc != 0)
        account_entry_clear(e);
    return rc;
}

static void
address_clear_cb(void *p)
{
    mime_address_clear(p);
}

static void
buf_free_cb(void *p)
{
    mo_buf_free(p);
}

/* The panel's bodies carry passwords (the login, the account form): overwritten, then freed. */
static void
buf_wipe_free_cb(void *p)
{
    mo_buf_wipe_free(p);
}

/*
 * Looks account name up: *exists says whether there is one; when it has a
 * sender, *from (in the arena, cleared with it) is that address with the
 * sender name. Errors: STORAGE, INTERNAL; CONFIG (field "account") for a
 * stored sender that does not parse.
 */
static int
accounts_sender(struct accounts *ac, const char *name, struct admin_arena *a, bool *exists,
                struct mime_address **from, struct mo_error *err)
{
    struct account_entry *e = NULL;
    struct mime_address *addr = NULL;
    struct mo_error e2;
    char *sender = NULL;
    char *sender_name = NULL;
    bool had_sender;
    bool had_name;

    *exists = false;
    *from = NULL;
    pthread_mutex_lock(&ac->lock);
    for (size_t i = 0; i < ac->n && e == NULL; i++)
        if (strcmp(ac->entries[i].name, name) == 0)
            e = &ac->entries[i];
    if (e == NULL) {
        /* a small cache: when full, the oldest entry makes room */
        if (ac->n < ACCOUNT_CACHE_MAX) {
            e = &ac->entries[ac->n++];
        } else {
            e = &ac->entries[0];
            for (size_t i = 1; i < ac->n; i++)
                if (ac->entries[i].loaded_ms < e->loaded_ms)
                    e = &ac->entries[i];
        }
        account_entry_clear(e);
    }
    if (e->name == NULL || mo_now_ms() - e->loaded_ms >= ACCOUNT_TTL_MS) {
        if (accounts_load(ac, name, e, err) != 0) {
            /* keep the array dense: the last entry moves into the emptied slot */
            *e = ac->entries[ac->n - 1];
            memset(&ac->entries[ac->n - 1], 0, sizeof(*e));
            ac->n--;
            pthread_mutex_unlock(&ac->lock);
            return -1;
        }
    }
    *exists = e->exists;
    had_sender = e->sender != NULL;
    had_name = e->sender_name != NULL;
    if (had_sender)
        sender = admin_arena_strndup(a, e->sender, strlen(e->sender));
    if (had_name)
        sender_name = admin_arena_strndup(a, e->sender_name, strlen(e->sender_name));
    pthread_mutex_unlock(&ac->lock);
    if ((had_sender && sender == NULL) || (had_name && sender_name == NULL))
        goto oom;
    if (sender == NULL)
        return 0;
    addr = admin_arena_alloc(a, sizeof(*addr));
    if (addr == NULL || admin_arena_defer(a, address_clear_cb, addr) != 0)
        goto oom;
    if (mime_address_parse(sender, "sender", addr, &e2) != 0) {
        if (e2.category == MO_ERR_INTERNAL) {
            *err = e2;
            return -1;
        }
        mo_error_set(err, MO_ERR_CONFIG, "account",
                     "the account's sender is not a valid address (%s); fix it with mailout "
                     "account set --sender",
                     e2.text);
        return -1;
    }
    if (sender_name != NULL && sender_name[0] != '\0') {
        char *dn = strdup(sender_name);

        if (dn == NULL)
            goto oom;
        free(addr->display_name);
        addr->display_name = dn;
    }
    *from = addr;
    return 0;
oom:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
    return -1;
}

/* ---- the server ------------------------------------------------------------------------ */

struct admin_server {
    struct MHD_Daemon *mhd;
    unsigned port;
    size_t max_body_bytes;
    char *home;
    struct admin_keyring *keys;
    struct queue_committer *committer;
    pthread_mutex_t read_lock; /* one reader at a time on read_q */
    struct queue *read_q;
    struct accounts accounts;
    struct panel *panel;
    bool locks_ready;
};

enum route {
    ROUTE_NONE = 0,
    ROUTE_SEND, /* POST /api/v1/messages */
    ROUTE_RAW,  /* POST /api/v1/messages/raw */
    ROUTE_GET,  /* GET /api/v1/messages/{id} */
};

struct request {
    struct admin_arena *arena;
    bool is_panel;   /* outside /api/v1/: panel.c answers once the body is read */
    const char *url; /* the panel's: copies in the arena */
    const char *method;
    enum route route;
    int64_t id;
    struct mo_buf *body; /* POST: set once the request may send its body */
    bool is_authorized;  /* GET: the key passed; answered on the next call */
    bool too_big;
    uint64_t discarded;
};

/* ---- responses ---------------------------------------------------------------------------- */

static const char oom_body[] =
    "{\"errors\":[{\"field\":null,\"message\":\"the server ran out of memory\"}]}";

/* No inline script or style, nothing from elsewhere, no framing (panel_internal.h). Frames:
 * only the panel's own (the sandbox inbox's letter HTML, admin_http_sandboxed_html). */
#define CONTENT_SECURITY_POLICY                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "           \
    "base-uri 'none'"

/* A letter's HTML: a sandbox (no script, no forms, an opaque origin), no request anywhere
 * (inline styles and data: images only), framed by the panel alone. */
#define SANDBOXED_HTML_POLICY                                                                      \
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "                      \
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

/* Adds the headers every response carries, then the caller's, and queues it. */
static enum MHD_Result
queue_with_headers(struct MHD_Connection *c, unsigned status, struct MHD_Response *resp,
                   const char *content_type, const char *cache_control, const char *const *headers)
{
    enum MHD_Result ret;

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
    MHD_add_response_header(resp, "Content-Security-Policy", CONTENT_SECURITY_POLICY);
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result
admin_http_json(struct MHD_Connection *c, unsigned status, json_t *body, const char *const *headers)
{
    struct MHD_Response *resp;
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    if (text == NULL) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
        headers = NULL;
    } else {
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            free(text);
    }
    if (resp == NULL)
        return MHD_NO;
    return queue_with_headers(c, status, resp, JSON_TYPE, "no-store", headers);
}

enum MHD_Result
admin_http_error(struct MHD_Connection *c, unsigned status, const char *field,
                 const char *const *headers, const char *fmt, ...)
{
    char message[MO_ERROR_TEXT_MAX];
    json_t *body;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    body = json_pack("{s:[{s:s?, s:s}]}", "errors", "field", field, "message", message);
    return admin_http_json(c, status, body, headers);
}

enum MHD_Result
admin_http_errors(struct MHD_Connection *c, unsigned status, const struct admin_errors *errs)
{
    return admin_http_json(c, status, admin_errors_json(errs), NULL);
}

enum MHD_Result
admin_http_static(struct MHD_Connection *c, unsigned status, const char *content_type,
                  const void *data, size_t len, bool cacheable, const char *const *headers)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);

    if (resp == NULL)
        return MHD_NO;
    return queue_with_headers(c, status, resp, content_type, cacheable ? "no-cache" : "no-store",
                              headers);
}

enum MHD_Result
admin_http_sandboxed_html(struct MHD_Connection *c, const char *html, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)html, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    /* not queue_with_headers: this one response may be framed, by the panel only */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "Content-Security-Policy", SANDBOXED_HTML_POLICY);
    MHD_add_response_header(resp, "X-Frame-Options", "SAMEORIGIN");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result
admin_http_download(struct MHD_Connection *c, const void *data, size_t len, const char *filename)
{
    char disposition[300];
    size_t o = 0;
    const char *headers[] = {"Content-Disposition", disposition, NULL};
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);

    if (resp == NULL)
        return MHD_NO;
    /* a plain ASCII name: anything that could break the header becomes "_" */
    o = (size_t)snprintf(disposition, sizeof(disposition), "attachment; filename=\"");
    for (const char *p = filename; *p != '\0' && o + 3 < sizeof(disposition); p++) {
        unsigned char ch = (unsigned char)*p;

        disposition[o++] =
            ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' && ch != '/' && ch != ';' ? (char)ch
                                                                                         : '_';
    }
    if (o == sizeof("attachment; filename=\"") - 1)
        disposition[o++] = '_';
    disposition[o++] = '"';
    disposition[o] = '\0';
    return queue_with_headers(c, MHD_HTTP_OK, resp, "application/octet-stream", "no-store",
                              headers);
}

enum MHD_Result
admin_http_redirect(struct MHD_Connection *c, const char *location, const char *const *headers)
{
    static const char text[] = "See Other\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof(text) - 1, (void *)text, MHD_RESPMEM_PERSISTENT);

    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    return queue_with_headers(c, MHD_HTTP_SEE_OTHER, resp, "text/plain; charset=utf-8", "no-store",
                              headers);
}

/* True when the file system of home has (almost) no room left. */
static bool
disk_is_full(const char *home, const struct mo_error *err)
{
    struct statvfs st;

    if (strstr(err->text, "disk is full") != NULL || strstr(err->text, "No space left") != NULL)
        return true;
    return statvfs(home, &st) == 0 && (uint64_t)st.f_bavail * st.f_frsize < DISK_FULL_BYTES;
}

/* Maps a failed queueing or reading to its response (STYLE: the API maps errors once). */
static enum MHD_Result
respond_failure(struct admin_server *s, struct MHD_Connection *c, const struct mo_error *err)
{
    static const char *const retry[] = {MHD_HTTP_HEADER_RETRY_AFTER, "5", NULL};
    const char *field = err->field;

    /* the queue's names for what the API calls from and to */
    if (field != NULL && strcmp(field, "sender") == 0)
        field = "from";
    else if (field != NULL && strcmp(field, "recipient") == 0)
        field = "to";
    else if (field != NULL && strcmp(field, "size") == 0)
        field = NULL;
    switch (err->category) {
    case MO_ERR_CONFIG:
        return admin_http_error(c, MHD_HTTP_BAD_REQUEST, field, NULL, "%s", err->text);
    case MO_ERR_STORAGE:
        if (disk_is_full(s->home, err))
            return admin_http_error(c, MHD_HTTP_INSUFFICIENT_STORAGE, NULL, NULL,
                                    "the disk is full: the message was not queued");
        mo_log(MO_LOG_ERROR, "http: the queue failed: %s", err->text);
        return admin_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, retry,
                                "%s (the queue is not available: try again later)", err->text);
    default:
        mo_log(MO_LOG_ERROR, "http: %s: %s", mo_category_name(err->category), err->text);
        return admin_http_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "%s", err->text);
    }
}

static enum MHD_Result
respond_queued(struct MHD_Connection *c, int64_t id, const char *message_id)
{
    char location[64];
    const char *headers[] = {MHD_HTTP_HEADER_LOCATION, location, NULL};

    snprintf(location, sizeof(location), API_PREFIX "/%lld", (long long)id);
    return admin_http_json(c, MHD_HTTP_ACCEPTED,
                           json_pack("{s:I, s:s?}", "id", (json_int_t)id, "message_id", message_id),
                           headers);
}

/* ---- the handlers ---------------------------------------------------------------------- */

/*
 * The largest message a body may turn into: base64 and quoted-printable make
 * the composed message bigger than the JSON that carried it, and LF becomes
 * CRLF in raw messages. The queue has its own limit (max_message_bytes).
 */
static size_t
message_limit(const struct admin_server *s)
{
    return s->max_body_bytes <= (SIZE_MAX - 65536) / 2 ? s->max_body_bytes * 2 + 65536 : SIZE_MAX;
}

/* The account's sender; 0 ok; otherwise the response was queued into *ret. */
static int
resolve_account(struct admin_server *s, struct MHD_Connection *c, struct request *r,
                const char *account, struct mime_address **from, enum MHD_Result *ret)
{
    const char *name = account != NULL ? account : "default";
    struct mo_error err;
    bool exists;

    if (accounts_sender(&s->accounts, name, r->arena, &exists, from, &err) != 0) {
        *ret = respond_failure(s, c, &err);
        return -1;
    }
    if (!exists) {
        *ret = admin_http_error(c, MHD_HTTP_BAD_REQUEST, "account", NULL,
                                "there is no account named \"%.128s\"; set one up with `mailout "
                                "setup` or `mailout account set%s`",
                                name, account != NULL ? " --name NAME" : "");
        return -1;
    }
    return 0;
}

static enum MHD_Result
commit_and_respond(struct admin_server *s, struct MHD_Connection *c,
                   const struct queue_new_message *qm)
{
    struct mo_error err;
    int64_t id = 0;

    if (queue_committer_add(s->committer, qm, &id, &err) != 0)
        return respond_failure(s, c, &err);
    return respond_queued(c, id, qm->message_id);
}

static enum MHD_Result
handle_send(struct admin_server *s, struct MHD_Connection *c, struct request *r)
{
    struct admin_errors *errs = admin_arena_alloc(r->arena, sizeof(*errs));
    struct admin_message *m = admin_arena_alloc(r->arena, sizeof(*m));
    struct queue_new_message qm;
    struct mime_address *account_from = NULL;
    struct mo_error err;
    enum MHD_Result ret;
    size_t max_bytes = message_limit(s);

    if (errs == NULL || m == NULL)
        return admin_http_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL);
    if (admin_message_parse(r->body->data != NULL ? r->body->data : "", r->body->len, r->arena, m,
                            errs) != 0)
        return admin_http_errors(c, MHD_HTTP_BAD_REQUEST, errs);
    if (resolve_account(s, c, r, m->account, &account_from, &ret) != 0)
        return ret;
    if (!m->has_from && account_from == NULL)
        return admin_http_error(c, MHD_HTTP_BAD_REQUEST, "from", NULL,
                                "from is missing and the account has no sender to use instead");
    mo_error_clear(&err);
    if (admin_message_build(m, m->has_from ? &m->from : account_from, max_bytes, r->arena, &qm,
                            errs, &err) != 0) {
        if (errs->n > 0)
            return admin_http_errors(c, MHD_HTTP_BAD_REQUEST, errs);
        return respond_failure(s, c, &err);
    }
    return commit_and_respond(s, c, &qm);
}

struct raw_query {
    struct admin_arena *arena;
    struct admin_raw_request req;
    const char **to;
    size_t cap;
    struct admin_errors *errs;
};

static enum MHD_Result
raw_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct raw_query *q = cls;

    (void)kind;
    if (strcmp(key, "to") == 0) {
        if (q->req.n_to == q->cap) {
            size_t ncap = q->cap ? q->cap * 2 : 8;
            const char **grown = admin_arena_calloc(q->arena, ncap, sizeof(*grown));

            if (grown == NULL || q->cap > ADMIN_MAX_RECIPIENTS) {
                admin_errors_add(q->errs, "to", "too many recipients; at most %d are allowed",
                                 ADMIN_MAX_RECIPIENTS);
                return MHD_NO;
            }
            if (q->req.n_to > 0)
                memcpy(grown, q->to, q->req.n_to * sizeof(*grown));
            q->to = grown;
            q->cap = ncap;
        }
        q->to[q->req.n_to++] = value != NULL ? value : "";
        q->req.to = q->to;
    } else if (strcmp(key, "from") == 0 && q->req.from == NULL) {
        q->req.from = value != NULL ? value : "";
    } else if (strcmp(key, "account") == 0 && q->req.account == NULL) {
        q->req.account = value != NULL && value[0] != '\0' ? value : NULL;
    } else {
        char field[ADMIN_FIELD_MAX];

        snprintf(field, sizeof(field), "%s", key);
        admin_errors_add(q->errs, field,
                         "unknown or repeated parameter; the parameters are from, to (repeated) "
                         "and account");
    }
    return MHD_YES;
}

/* message/rfc822, text/plain or nothing (parameters ignored). */
static bool
raw_content_type_ok(const char *ct)
{
    size_t len;

    if (ct == NULL)
        return true;
    len = strcspn(ct, "; \t");
    return (len == 14 && strncasecmp(ct, "message/rfc822", len) == 0) ||
           (len == 10 && strncasecmp(ct, "text/plain", len) == 0);
}

static enum MHD_Result
handle_raw(struct admin_server *s, struct MHD_Connection *c, struct request *r)
{
    struct raw_query q;
    struct queue_new_message qm;
    struct mime_address *account_from = NULL;
    struct mo_error err;
    enum MHD_Result ret;
    size_t max_bytes = message_limit(s);

    memset(&q, 0, sizeof(q));
    q.arena = r->arena;
    q.errs = admin_arena_alloc(r->arena, sizeof(*q.errs));
    if (q.errs == NULL)
        return admin_http_json(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, raw_query_arg, &q);
    if (q.errs->n > 0)
        return admin_http_errors(c, MHD_HTTP_BAD_REQUEST, q.errs);
    if (resolve_account(s, c, r, q.req.account, &account_from, &ret) != 0)
        return ret;
    mo_error_clear(&err);
    if (admin_raw_prepare(r->body->data != NULL ? r->body->data : "", r->body->len, &q.req,
                          account_from, max_bytes, r->arena, &qm, q.errs, &err) != 0) {
        if (q.errs->n > 0)
            return admin_http_errors(c, MHD_HTTP_BAD_REQUEST, q.errs);
        return respond_failure(s, c, &err);
    }
    return commit_and_respond(s, c, &qm);
}

static enum MHD_Result
handle_get(struct admin_server *s, struct MHD_Connection *c, struct request *r)
{
    struct queue_message_info info;
    struct mo_error err;
    json_t *body;
    int rc;

    memset(&info, 0, sizeof(info));
    pthread_mutex_lock(&s->read_lock);
    rc = queue_get(s->read_q, r->id, false, &info, &err);
    pthread_mutex_unlock(&s->read_lock);
    if (rc != 0) {
        queue_message_info_clear(&info);
        if (err.category == MO_ERR_CONFIG)
            return admin_http_error(c, MHD_HTTP_NOT_FOUND, "id", NULL, "there is no message %lld",
                                    (long long)r->id);
        return respond_failure(s, c, &err);
    }
    body = admin_message_info_json(&info);
    queue_message_info_clear(&info);
    return admin_http_json(c, MHD_HTTP_OK, body, NULL);
}

/* ---- routing, keys, bodies ------------------------------------------------------------- */

/* Finds the route of url; 404 when there is none. */
static enum route
route_of(const char *url, int64_t *id)
{
    const char *rest;

    if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0)
        return ROUTE_NONE;
    rest = url + strlen(API_PREFIX);
    if (rest[0] == '\0')
        return ROUTE_SEND;
    if (rest[0] != '/')
        return ROUTE_NONE;
    rest++;
    if (strcmp(rest, "raw") == 0)
        return ROUTE_RAW;
    if (admin_parse_id(rest, id) == 0)
        return ROUTE_GET;
    return ROUTE_NONE;
}

static enum MHD_Result
check_key(struct admin_server *s, struct MHD_Connection *c, bool *ok)
{
    static const char *const challenge[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                            "Bearer realm=\"mailout\"", NULL};
    static const char *const invalid[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                          "Bearer realm=\"mailout\", error=\"invalid_token\"",
                                          NULL};
    const char *value =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    char key[KEY_TEXT_MAX];
    bool valid;

    *ok = false;
    if (value == NULL)
        return admin_http_error(c, MHD_HTTP_UNAUTHORIZED, NULL, challenge,
                                "an API key is needed: send \"Authorization: Bearer KEY\" (make a "
                                "key with `mailout apikey create NAME`)");
    valid = admin_bearer_token(value, key, sizeof(key)) == 0 &&
            admin_keyring_verify(s->keys, key, NULL);
    mo_wipe(key, sizeof(key));
    if (!valid)
        return admin_http_error(c, MHD_HTTP_UNAUTHORIZED, NULL, invalid,
                                "the API key is not valid or was revoked");
    *ok = true;
    return MHD_YES;
}

/* Refuses a declared body above max_bytes (413); 0 when the request may go on. */
static int
check_length(struct MHD_Connection *c, size_t max_bytes, enum MHD_Result *ret)
{
    const char *length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long n;

    if (length == NULL)
        return 0;
    errno = 0;
    n = strtoull(length, &end, 10);
    if (errno == 0 && end != length && *end == '\0' && n > max_bytes) {
        *ret = admin_http_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL,
                                "the request body (%llu bytes) is larger than the limit of %zu "
                                "bytes",
                                n, max_bytes);
        return -1;
    }
    return 0;
}

/* Gives r a body buffer of at most max_bytes. */
static enum MHD_Result
body_begin(struct request *r, size_t max_bytes)
{
    r->body = admin_arena_alloc(r->arena, sizeof(*r->body));
    if (r->body == NULL)
        return MHD_NO;
    mo_buf_init(r->body, max_bytes);
    if (admin_arena_defer(r->arena, r->is_panel ? buf_wipe_free_cb : buf_free_cb, r->body) != 0)
        return MHD_NO;
    return MHD_YES;
}

/* The first call for a panel request: keep the URL and method, make room for a body. */
static enum MHD_Result
panel_begin(struct admin_server *s, struct request *r, struct MHD_Connection *c, const char *url,
            const char *method)
{
    enum MHD_Result ret;

    (void)s;
    r->is_panel = true;
    r->url = admin_arena_strndup(r->arena, url, strlen(url));
    r->method = admin_arena_strndup(r->arena, method, strlen(method));
    if (r->url == NULL || r->method == NULL)
        return MHD_NO;
    if (!panel_method_has_body(method))
        return MHD_YES; /* answered on the next call, so the connection stays open */
    if (check_length(c, PANEL_MAX_BODY_BYTES, &ret) != 0)
        return ret;
    return body_begin(r, PANEL_MAX_BODY_BYTES);
}

/* The first call for a request: route, method, key, declared size. */
static enum MHD_Result
request_begin(struct admin_server *s, struct request *r, struct MHD_Connection *c, const char *url,
              const char *method)
{
    static const char *const allow_post[] = {MHD_HTTP_HEADER_ALLOW, "POST", NULL};
    static const char *const allow_get[] = {MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL};
    bool is_get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    enum MHD_Result ret;
    bool ok;

    if (strncmp(url, "/api/", 5) != 0)
        return panel_begin(s, r, c, url, method);
    r->route = route_of(url, &r->id);
    if (r->route == ROUTE_NONE)
        return admin_http_error(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "there is nothing at %.200s",
                                url);
    if (r->route == ROUTE_GET && !is_get)
        return admin_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, allow_get,
                                "%.16s is not allowed here; use GET", method);
    if (r->route != ROUTE_GET && !is_post)
        return admin_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, allow_post,
                                "%.16s is not allowed here; use POST", method);
    ret = check_key(s, c, &ok);
    if (!ok)
        return ret;
    if (r->route == ROUTE_GET) {
        /* answered on the next call: an answer now would close the connection */
        r->is_authorized = true;
        return MHD_YES;
    }
    if (r->route == ROUTE_RAW && !raw_content_type_ok(MHD_lookup_connection_value(
                                     c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return admin_http_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, NULL,
                                "send the message with Content-Type: message/rfc822");
    if (check_length(c, s->max_body_bytes, &ret) != 0)
        return ret;
    return body_begin(r, s->max_body_bytes);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct admin_server *s = cls;
    struct request *r = *con_cls;

    (void)version;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        r->arena = admin_arena_new();
        if (r->arena == NULL) {
            free(r);
            return MHD_NO;
        }
        *con_cls = r;
        return request_begin(s, r, c, url, method);
    }
    if (*upload_data_size > 0) {
        if (r->body == NULL) /* a GET with a body: ignored */
            r->too_big = true;
        if (!r->too_big && mo_buf_append(r->body, upload_data, *upload_data_size, NULL) != 0) {
            r->too_big = true;
            mo_buf_free(r->body);
        }
        if (r->too_big) {
            /* libmicrohttpd answers only once the body is read: drain it, within reason */
            r->discarded += *upload_data_size;
            if (r->is_panel || r->discarded > 4 * (uint64_t)s->max_body_bytes + 16 * 1024 * 1024)
                return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->is_panel && r->body == NULL)
        return panel_handle(s->panel, c, r->arena, r->url, r->method, NULL, 0);
    if (r->route == ROUTE_GET && r->is_authorized)
        return handle_get(s, c, r);
    if (r->body == NULL)
        return MHD_NO; /* answered already; not called again in practice */
    if (r->too_big)
        return admin_http_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL,
                                "the request body is larger than the limit of %zu bytes",
                                r->is_panel ? (size_t)PANEL_MAX_BODY_BYTES : s->max_body_bytes);
    if (r->is_panel)
        return panel_handle(s->panel, c, r->arena, r->url, r->method,
                            r->body->data != NULL ? r->body->data : "", r->body->len);
    return r->route == ROUTE_RAW ? handle_raw(s, c, r) : handle_send(s, c, r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct request *r = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (r == NULL)
        return;
    admin_arena_free(r->arena);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512];
    size_t len;

    (void)cls;
    vsnprintf(text, sizeof(text), fmt, ap);
    len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    mo_log(MO_LOG_WARN, "http: %s", text);
}

/* ---- start and stop ------------------------------------------------------------------------ */

static int
open_listener(const char *listen_text, int *fd_out, unsigned *port_out, struct mo_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    const char *shown =
        listen_text != NULL && listen_text[0] != '\0' ? listen_text : ADMIN_DEFAULT_LISTEN;
    int one = 1;
    int fd;

    if (admin_listen_parse(listen_text, &ss, &len, err) != 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mo_error_set(err, MO_ERR_CONFIG, "http", "cannot listen on %.100s: %s", shown,
                     strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;

        close(fd);
        mo_error_set(err, MO_ERR_CONFIG, "http", "cannot listen on %.100s: %s", shown,
                     e == EADDRINUSE      ? "the port is in use (is another mailout serve "
                                            "running?)"
                     : e == EACCES        ? "permission denied (ports below 1024 need root)"
                     : e == EADDRNOTAVAIL ? "this machine has no such address"
                                          : strerror(e));
        return -1;
    }
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

int
admin_start(const struct admin_options *opt, struct admin_server **out, struct mo_error *err)
{
    struct admin_server *s = NULL;
    unsigned max_conn;
    int fd = -1;
    int rc = -1;

    *out = NULL;
    if (opt == NULL || opt->home == NULL || opt->home[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "home", "no data folder was given");
        return -1;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->home = strdup(opt->home)) == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    s->max_body_bytes = opt->max_body_bytes != 0 ? opt->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    max_conn = opt->max_connections != 0 ? opt->max_connections : DEFAULT_MAX_CONNECTIONS;
    if (pthread_mutex_init(&s->read_lock, NULL) != 0 ||
        pthread_mutex_init(&s->accounts.lock, NULL) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make locks");
        goto out;
    }
    s->locks_ready = true;
    if (open_listener(opt->listen, &fd, &s->port, err) != 0)
        goto out;
    if (admin_keyring_open(s->home, &s->keys, err) != 0 ||
        account_store_open(s->home, &s->accounts.store, err) != 0 ||
        queue_open(s->home, NULL, &s->read_q, err) != 0 ||
        queue_committer_start(s->home, NULL, "http", &s->committer, err) != 0 ||
        panel_open(s->home, &s->panel, err) != 0)
        goto out;
    if (admin_mhd_load(err) != 0)
        goto out;
    s->mhd =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                             MHD_USE_POLL | MHD_USE_ERROR_LOG,
                         (uint16_t)s->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                         on_mhd_log, s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                         max_conn, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (s->mhd == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, "http", "libmicrohttpd could not start on %.100s",
                     opt->listen != NULL ? opt->listen : ADMIN_DEFAULT_LISTEN);
        goto out;
    }
    fd = -1; /* libmicrohttpd closes it when it stops */
    mo_log(MO_LOG_INFO, "http: listening on %s (port %u), bodies up to %zu bytes",
           opt->listen != NULL && opt->listen[0] != '\0' ? opt->listen : ADMIN_DEFAULT_LISTEN,
           s->port, s->max_body_bytes);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        *out = s;
    else
        admin_stop(s);
    return rc;
}

void
admin_stop(struct admin_server *s)
{
    if (s == NULL)
        return;
    /* joins every connection thread; the committer still answers the ones waiting on it */
    if (s->mhd != NULL)
        MHD_stop_daemon(s->mhd);
    queue_committer_stop(s->committer);
    panel_close(s->panel);
    if (s->read_q != NULL)
        queue_close(s->read_q);
    admin_keyring_close(s->keys);
    accounts_close(&s->accounts);
    if (s->locks_ready) {
        pthread_mutex_destroy(&s->read_lock);
        pthread_mutex_destroy(&s->accounts.lock);
    }
    free(s->home);
    free(s);
}

unsigned
admin_port(const struct admin_server *s)
{
    return s != NULL ? s->port : 0;
}
