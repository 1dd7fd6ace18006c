/*
 * panel.c - the admin panel's front door: its pages and assets, creating the
 * admin password on first start, logging in and out, and the gate every JSON
 * route passes (session cookie, CSRF token, same origin) before panel_api.c
 * or panel_log.c answers it.
 *
 * Routes (http.c sends everything outside /api/v1/ here):
 *   GET  /                 -> /panel/ (an API client, one that sends
 *                             Authorization, gets the API's 404 instead)
 *   GET  /setup            first start only: the page that creates the admin password
 *   GET  /login            the login page
 *   GET  /panel/           the panel (one page; its views are #/log, #/config, ...)
 *   GET  /assets/NAME      the built-in styles, scripts and icon (public: no data)
 *   POST /panel/setup      {"password"} -> session; loopback peers and Host only
 *   POST /panel/login      {"password"} -> session; rate-limited per address
 *   POST /panel/logout     ends the session
 *   *    /panel/api/...    JSON, behind the session (panel_api.c, panel_log.c);
 *                          GET /panel/api/session gives the page its CSRF token
 * Pages without a session redirect (303) to /login (or /setup before the
 * admin password exists); JSON routes answer 401.
 * Every request that changes something (POST, PUT, DELETE) must carry the
 * session's token in X-CSRF-Token (login and setup, which have no session
 * yet, excepted), a JSON body (Content-Type: application/json, which a
 * cross-site form cannot send without a CORS preflight we never grant), and
 * when the browser says where it comes from (Origin, Sec-Fetch-Site), this
 * very origin. The cookie is HttpOnly, SameSite=Strict, and Secure when the
 * request came over TLS through a proxy on this machine
 * (X-Forwarded-Proto: https from a loopback peer).
 * First start: the admin password can be created from a loopback peer whose
 * Host header names this machine (so a web page elsewhere cannot use DNS
 * rebinding to claim it), or with `mailout admin password`.
 * Leaves out: TLS (use a proxy), several admins.
 * RFCs: 9110 (303, 401, 403, 429, Retry-After), 6265 (cookies), 6454
 * (Origin).
 */
#include "admin/panel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PANEL_API_PREFIX "/panel/api/"
#define COOKIE_TEXT_MAX 512

const struct admin_asset *
admin_asset_find(const char *name)
{
    for (const struct admin_asset *a = admin_assets; a->name != NULL; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

int
panel_open(const char *home, struct panel **out, struct mo_error *err)
{
    struct panel *p = calloc(1, sizeof(*p));
    int rc = -1;

    *out = NULL;
    if (p == NULL || (p->home = strdup(home)) == NULL) {
        free(p);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&p->store_lock, NULL) != 0) {
        free(p->home);
        free(p);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (pthread_mutex_init(&p->pause_lock, NULL) != 0) {
        pthread_mutex_destroy(&p->store_lock);
        free(p->home);
        free(p);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (pthread_mutex_init(&p->q_lock, NULL) != 0) {
        pthread_mutex_destroy(&p->store_lock);
        pthread_mutex_destroy(&p->pause_lock);
        free(p->home);
        free(p);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    if (pthread_cond_init(&p->q_free, NULL) != 0) {
        pthread_mutex_destroy(&p->store_lock);
        pthread_mutex_destroy(&p->pause_lock);
        pthread_mutex_destroy(&p->q_lock);
        free(p->home);
        free(p);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    p->lock_ready = true;
    p->logins = panel_ratelimit_new(PANEL_LOGIN_FAILURES_MAX, PANEL_LOGIN_WINDOW_S);
    if (p->logins == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (panel_auth_open(home, &p->auth, err) != 0 ||
        account_store_open(home, &p->store, err) != 0 ||
        panel_testlog_open(home, &p->tests, err) != 0)
        goto out;
    for (size_t i = 0; i < PANEL_QUEUE_HANDLES; i++)
        if (queue_open(home, NULL, &p->qs[i], err) != 0)
            goto out;
    rc = 0;
out:
    if (rc == 0)
        *out = p;
    else
        panel_close(p);
    return rc;
}

void
panel_close(struct panel *p)
{
    if (p == NULL)
        return;
    panel_checks_close(p);
    panel_auth_close(p->auth);
    panel_ratelimit_free(p->logins);
    account_store_close(p->store);
    for (size_t i = 0; i < PANEL_QUEUE_HANDLES; i++)
        queue_close(p->qs[i]);
    panel_testlog_close(p->tests);
    json_decref(p->pause_cache);
    if (p->lock_ready) {
        pthread_mutex_destroy(&p->store_lock);
        pthread_mutex_destroy(&p->pause_lock);
        pthread_mutex_destroy(&p->q_lock);
        pthread_cond_destroy(&p->q_free);
    }
    free(p->home);
    free(p);
}

struct queue *
panel_queue_take(struct panel *p)
{
    struct queue *q = NULL;

    pthread_mutex_lock(&p->q_lock);
    while (q == NULL) {
        for (size_t i = 0; i < PANEL_QUEUE_HANDLES && q == NULL; i++) {
            if (!p->q_busy[i]) {
                p->q_busy[i] = true;
                q = p->qs[i];
            }
        }
        if (q == NULL)
            pthread_cond_wait(&p->q_free, &p->q_lock);
    }
    pthread_mutex_unlock(&p->q_lock);
    return q;
}

void
panel_queue_give(struct panel *p, struct queue *q)
{
    pthread_mutex_lock(&p->q_lock);
    for (size_t i = 0; i < PANEL_QUEUE_HANDLES; i++)
        if (p->qs[i] == q)
            p->q_busy[i] = false;
    pthread_cond_signal(&p->q_free);
    pthread_mutex_unlock(&p->q_lock);
}

bool
panel_method_has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "DELETE") == 0 || strcmp(method, "PATCH") == 0;
}

static bool
is_get(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* ---- shared helpers of the routes ---------------------------------------------------- */

/* Overwrites every string in v (the panel's bodies carry passwords) before it is freed. */
static void
wipe_strings(json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_string(v)) {
        mo_wipe((char *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, item)
            wipe_strings(item);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
            wipe_strings(item);
    }
}

static void
wipe_decref_cb(void *p)
{
    wipe_strings(p);
    json_decref(p);
}

enum MHD_Result
panel_too_many(struct panel_req *r, const char *field, int64_t wait, const char *then)
{
    char seconds[24];
    const char *headers[] = {MHD_HTTP_HEADER_RETRY_AFTER, seconds, NULL};

    snprintf(seconds, sizeof(seconds), "%lld", (long long)wait);
    return admin_http_error(r->c, MHD_HTTP_TOO_MANY_REQUESTS, field, headers,
                            "too many wrong passwords from your address: wait %lld seconds, "
                            "then %s",
                            (long long)wait, then);
}

json_t *
panel_body_object(struct panel_req *r, enum MHD_Result *ret)
{
    json_error_t jerr;
    json_t *o;

    if (r->body == NULL || r->body_len == 0) {
        *ret = admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, NULL, NULL,
                                "the request needs a JSON object as its body");
        return NULL;
    }
    o = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        *ret = admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, NULL, NULL,
                                "the body is not a JSON object%s%.200s", o == NULL ? ": " : "",
                                o == NULL ? jerr.text : "");
        return NULL;
    }
    if (admin_arena_defer(r->arena, wipe_decref_cb, o) != 0) {
        *ret = admin_http_json(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL);
        return NULL;
    }
    return o;
}

const char *
panel_json_str(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

enum MHD_Result
panel_fail(struct panel_req *r, const struct mo_error *err, bool not_found)
{
    static const char *const retry[] = {MHD_HTTP_HEADER_RETRY_AFTER, "5", NULL};

    switch (err->category) {
    case MO_ERR_CONFIG:
        return admin_http_error(r->c, not_found ? MHD_HTTP_NOT_FOUND : MHD_HTTP_BAD_REQUEST,
                                err->field, NULL, "%s", err->text);
    case MO_ERR_STORAGE:
        mo_log(MO_LOG_ERROR, "panel: %s", err->text);
        return admin_http_error(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, retry,
                                "%s (the data folder is not available: try again later)",
                                err->text);
    default:
        mo_log(MO_LOG_ERROR, "panel: %s: %s", mo_category_name(err->category), err->text);
        return admin_http_error(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "%s", err->text);
    }
}

/* ---- request facts ------------------------------------------------------------------- */

static const char *
header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const struct sockaddr *
peer_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    return ci != NULL ? ci->client_addr : NULL;
}

/* True when the request came over TLS through a proxy on this machine. */
static bool
is_tls(struct MHD_Connection *c)
{
    const char *proto = header(c, "X-Forwarded-Proto");

    return proto != NULL && strcasecmp(proto, "https") == 0 && panel_is_loopback(peer_of(c));
}

/*
 * False when the browser says the request comes from another site: a
 * Sec-Fetch-Site other than same-origin (or none: typed by the user), or an
 * Origin that is not this Host. Programs that send neither (curl) pass: the
 * CSRF token still guards them.
 */
static bool
same_origin(struct MHD_Connection *c)
{
    const char *site = header(c, "Sec-Fetch-Site");
    const char *origin = header(c, "Origin");
    const char *host = header(c, MHD_HTTP_HEADER_HOST);
    const char *rest;

    if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return false;
    if (origin == NULL)
        return true;
    if (host == NULL)
        return false;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else
        return false; /* "null" and the like */
    return strcasecmp(rest, host) == 0;
}

/* A body, when there is one, must be JSON. */
static bool
is_json_body(struct MHD_Connection *c, size_t body_len)
{
    const char *ct = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);

    if (body_len == 0)
        return true;
    return ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* ---- sessions and cookies ------------------------------------------------------------ */

/* Finds the request's session; 0 with *found false when there is none. */
static int
request_session(struct panel *p, struct MHD_Connection *c, struct panel_session *s, bool *found,
                struct mo_error *err)
{
    char id[COOKIE_TEXT_MAX];
    int rc;

    *found = false;
    if (panel_cookie_value(header(c, MHD_HTTP_HEADER_COOKIE), PANEL_COOKIE, id, sizeof(id)) != 0)
        return 0;
    rc = panel_session_find(p->auth, id, (int64_t)time(NULL), s, found, err);
    mo_wipe(id, sizeof(id));
    return rc;
}

static void
session_cookie(struct MHD_Connection *c, const char *id, char *out, size_t size)
{
    snprintf(out, size, PANEL_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             id != NULL ? id : "", id != NULL ? PANEL_SESSION_MAX_S : 0,
             is_tls(c) ? "; Secure" : "");
}

/* Starts a session and answers 200 {"ok", "csrf"} with its cookie. */
static enum MHD_Result
start_session(struct panel *p, struct MHD_Connection *c)
{
    char id[PANEL_TOKEN_LEN + 1];
    char cookie[COOKIE_TEXT_MAX];
    const char *headers[] = {MHD_HTTP_HEADER_SET_COOKIE, cookie, NULL};
    struct panel_session s;
    struct mo_error err;
    enum MHD_Result ret;

    if (panel_session_create(p->auth, (int64_t)time(NULL), id, &s, &err) != 0) {
        mo_log(MO_LOG_ERROR, "panel: %s", err.text);
        return admin_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "%s", err.text);
    }
    session_cookie(c, id, cookie, sizeof(cookie));
    ret = admin_http_json(c, MHD_HTTP_OK,
                          json_pack("{s:b, s:s, s:I}", "ok", 1, "csrf", s.csrf, "expires_at",
                                    (json_int_t)s.expires_at),
                          headers);
    mo_wipe(id, sizeof(id));
    mo_wipe(cookie, sizeof(cookie));
    mo_wipe(&s, sizeof(s));
    return ret;
}

/* ---- pages -------------------------------------------------------------------------- */

static enum MHD_Result
serve_asset(struct MHD_Connection *c, const char *name, bool cacheable)
{
    const struct admin_asset *a = admin_asset_find(name);
    const char *inm = header(c, MHD_HTTP_HEADER_IF_NONE_MATCH);
    const char *headers[] = {MHD_HTTP_HEADER_ETAG, NULL, NULL};

    if (a == NULL)
        return admin_http_error(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "there is no file %.100s", name);
    headers[1] = a->etag;
    if (cacheable && inm != NULL && strcmp(inm, a->etag) == 0)
        return admin_http_static(c, MHD_HTTP_NOT_MODIFIED, a->content_type, "", 0, true, headers);
    return admin_http_static(c, MHD_HTTP_OK, a->content_type, a->data, a->len, cacheable,
                             cacheable ? headers : NULL);
}

/* Where a visitor without a session goes: /login, or /setup before the password exists. */
static enum MHD_Result
to_login(struct panel *p, struct MHD_Connection *c)
{
    struct mo_error err;
    bool has = true;

    if (panel_auth_has_password(p->auth, &has, &err) != 0)
        return admin_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "%s", err.text);
    return admin_http_redirect(c, has ? "/login" : "/setup", NULL);
}

static enum MHD_Result
handle_page(struct panel *p, struct MHD_Connection *c, const char *url)
{
    struct panel_session s;
    struct mo_error err;
    bool found = false;
    bool has = true;

    if (strcmp(url, "/") == 0 || strcmp(url, "/panel") == 0)
        return admin_http_redirect(c, "/panel/", NULL);
    if (strcmp(url, "/panel/") == 0) {
        if (request_session(p, c, &s, &found, &err) != 0)
            return admin_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "%s", err.text);
        if (!found)
            return to_login(p, c);
        return serve_asset(c, "index.html", false);
    }
    if (panel_auth_has_password(p->auth, &has, &err) != 0)
        return admin_http_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, "%s", err.text);
    if (strcmp(url, "/login") == 0) {
        if (!has)
            return admin_http_redirect(c, "/setup", NULL);
        if (request_session(p, c, &s, &found, &err) == 0 && found)
            return admin_http_redirect(c, "/panel/", NULL);
        return serve_asset(c, "login.html", false);
    }
    /* /setup */
    if (has)
        return admin_http_redirect(c, "/login", NULL);
    return serve_asset(c, "setup.html", false);
}

/* ---- setup, login, logout ---------------------------------------------------------------- */

static enum MHD_Result
handle_setup(struct panel_req *r)
{
    const char *host = header(r->c, MHD_HTTP_HEADER_HOST);
    struct mo_error err;
    const char *password;
    enum MHD_Result ret;
    bool has = true;
    json_t *o;

    if (!panel_is_loopback(peer_of(r->c)) || !panel_host_is_loopback(host))
        return admin_http_error(r->c, MHD_HTTP_FORBIDDEN, NULL, NULL,
                                "the admin password can only be created from the machine mailout "
                                "runs on: open http://127.0.0.1:PORT/setup there, or run "
                                "`mailout admin password` in its terminal");
    if ((o = panel_body_object(r, &ret)) == NULL)
        return ret;
    if (panel_auth_has_password(r->p->auth, &has, &err) != 0)
        return panel_fail(r, &err, false);
    if (has)
        return admin_http_error(r->c, MHD_HTTP_CONFLICT, NULL, NULL,
                                "the admin password exists already: log in at /login");
    password = panel_json_str(o, "password");
    if (password == NULL)
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "password", NULL,
                                "enter the password you want for the admin panel");
    /* only_if_none: of two first-start pages racing, one wins (the other gets CONFIG) */
    if (panel_auth_set_password(r->p->auth, password, true, &err) != 0)
        return panel_fail(r, &err, false);
    mo_log(MO_LOG_INFO, "panel: the admin password was created from the setup page");
    return start_session(r->p, r->c);
}

static enum MHD_Result
handle_login(struct panel_req *r)
{
    const struct sockaddr *peer = peer_of(r->c);
    int64_t now = (int64_t)time(NULL);
    int64_t wait = panel_ratelimit_wait_s(r->p->logins, peer, now);
    struct mo_error err;
    const char *password;
    enum MHD_Result ret;
    bool has = false;
    bool ok = false;
    json_t *o;

    if (wait > 0)
        return panel_too_many(r, "password", wait, "try again");
    if ((o = panel_body_object(r, &ret)) == NULL)
        return ret;
    if (panel_auth_has_password(r->p->auth, &has, &err) != 0)
        return panel_fail(r, &err, false);
    if (!has)
        return admin_http_error(r->c, MHD_HTTP_CONFLICT, NULL, NULL,
                                "there is no admin password yet: create it at /setup on the "
                                "machine mailout runs on, or with `mailout admin password`");
    password = panel_json_str(o, "password");
    if (panel_auth_verify_password(r->p->auth, password != NULL ? password : "", &ok, &err) != 0)
        return panel_fail(r, &err, false);
    if (!ok) {
        panel_ratelimit_fail(r->p->logins, peer, now);
        return admin_http_error(r->c, MHD_HTTP_UNAUTHORIZED, "password", NULL,
                                "that is not the admin password; check Caps Lock and try again "
                                "(forgotten? set a new one on the server with `mailout admin "
                                "password`)");
    }
    panel_ratelimit_reset(r->p->logins, peer);
    return start_session(r->p, r->c);
}

static enum MHD_Result
handle_logout(struct panel_req *r)
{
    char id[COOKIE_TEXT_MAX];
    char cookie[COOKIE_TEXT_MAX];
    const char *headers[] = {MHD_HTTP_HEADER_SET_COOKIE, cookie, NULL};
    struct mo_error err;

    if (panel_cookie_value(header(r->c, MHD_HTTP_HEADER_COOKIE), PANEL_COOKIE, id, sizeof(id)) ==
            0 &&
        panel_session_delete(r->p->auth, id, &err) != 0)
        mo_log(MO_LOG_WARN, "panel: %s", err.text);
    mo_wipe(id, sizeof(id));
    session_cookie(r->c, NULL, cookie, sizeof(cookie));
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1), headers);
}

/* ---- the JSON routes' gate ----------------------------------------------------------------- */

static enum MHD_Result
handle_api(struct panel_req *r)
{
    struct panel_session s;
    struct mo_error err;
    enum MHD_Result ret;
    bool found = false;
    bool handled = false;

    if (request_session(r->p, r->c, &s, &found, &err) != 0)
        return panel_fail(r, &err, false);
    if (!found)
        return admin_http_error(r->c, MHD_HTTP_UNAUTHORIZED, NULL, NULL,
                                "you are not logged in (or the session expired): log in at "
                                "/login");
    if (!is_get(r->method)) {
        const char *token = header(r->c, "X-CSRF-Token");

        if (token == NULL || !panel_csrf_equal(s.csrf, token))
            return admin_http_error(r->c, MHD_HTTP_FORBIDDEN, NULL, NULL,
                                    "the request lacks the page's CSRF token (X-CSRF-Token): "
                                    "reload the page and try again");
    }
    if (strcmp(r->path, "session") == 0) {
        if (!is_get(r->method))
            return admin_http_error(r->c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, NULL, "use GET");
        return admin_http_json(
            r->c, MHD_HTTP_OK,
            json_pack("{s:s, s:I}", "csrf", s.csrf, "expires_at", (json_int_t)s.expires_at), NULL);
    }
    mo_wipe(&s, sizeof(s));
    ret = panel_api_route(r, &handled);
    if (handled)
        return ret;
    ret = panel_log_route(r, &handled);
    if (handled)
        return ret;
    ret = panel_sandbox_route(r, &handled);
    if (handled)
        return ret;
    return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, NULL, NULL, "there is nothing at %s %.200s",
                            r->method, r->path);
}

enum MHD_Result
panel_handle(struct panel *p, struct MHD_Connection *c, struct admin_arena *a, const char *url,
             const char *method, const char *body, size_t body_len)
{
    struct panel_req r;

    memset(&r, 0, sizeof(r));
    r.p = p;
    r.c = c;
    r.arena = a;
    r.method = method;
    r.path = url;
    r.body = body;
    r.body_len = body_len;

    if (strcmp(url, "/") == 0 && header(c, MHD_HTTP_HEADER_AUTHORIZATION) != NULL)
        return admin_http_error(c, MHD_HTTP_NOT_FOUND, NULL, NULL,
                                "there is nothing at /; the API is under /api/v1/messages");
    if (strncmp(url, "/assets/", 8) == 0 || strcmp(url, "/favicon.ico") == 0) {
        if (!is_get(method))
            return admin_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, NULL, "use GET");
        return serve_asset(c, url[1] == 'f' ? "favicon.svg" : url + 8, true);
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/panel") == 0 || strcmp(url, "/panel/") == 0 ||
        strcmp(url, "/login") == 0 || strcmp(url, "/setup") == 0) {
        if (!is_get(method))
            return admin_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, NULL,
                                    "%.16s is not allowed on a page; use GET", method);
        return handle_page(p, c, url);
    }
    if (strcmp(url, "/panel/login") == 0 || strcmp(url, "/panel/setup") == 0 ||
        strcmp(url, "/panel/logout") == 0 || strncmp(url, PANEL_API_PREFIX, 11) == 0) {
        if (!is_get(method)) {
            if (!same_origin(c))
                return admin_http_error(c, MHD_HTTP_FORBIDDEN, NULL, NULL,
                                        "the request came from another site");
            if (!is_json_body(c, body_len))
                return admin_http_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, NULL,
                                        "send the body as Content-Type: application/json");
        }
        if (strncmp(url, PANEL_API_PREFIX, 11) == 0) {
            r.path = url + strlen(PANEL_API_PREFIX);
            return handle_api(&r);
        }
        if (strcmp(method, "POST") != 0)
            return admin_http_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, NULL, "use POST");
        if (strcmp(url, "/panel/login") == 0)
            return handle_login(&r);
        if (strcmp(url, "/panel/setup") == 0)
            return handle_setup(&r);
        /* logout changes the session: it needs the token like every other change */
        {
            struct panel_session s;
            struct mo_error err;
            bool found = false;
            const char *token = header(c, "X-CSRF-Token");

            if (request_session(p, c, &s, &found, &err) != 0)
                return panel_fail(&r, &err, false);
            if (found && (token == NULL || !panel_csrf_equal(s.csrf, token)))
                return admin_http_error(c, MHD_HTTP_FORBIDDEN, NULL, NULL,
                                        "the request lacks the page's CSRF token");
            return handle_logout(&r);
        }
    }
    return admin_http_error(c, MHD_HTTP_NOT_FOUND, NULL, NULL, "there is nothing at %.200s", url);
}
