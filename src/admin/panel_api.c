/*
 * panel_api.c - the panel's JSON routes for "Configuration -> System ->
 * General -> Mail (SMTP)": the provider table, detection from an address,
 * the accounts (list, show, save, remove), the connection check and the
 * test letter, and API keys.
 *
 * Routes (under /panel/api/, behind the session and the CSRF token):
 *   GET    providers                the built-in provider table
 *   POST   detect                   {"email"} -> provider, host, port, security
 *   GET    accounts                 every account, the default first
 *   GET    accounts/NAME            one account (the password only as password_set)
 *   PUT    accounts/NAME            save the form: 200 {account, notes} or 400
 *                                   {errors:[{field, message}], notes}: every
 *                                   problem at once, each naming the form's field
 *   DELETE accounts/NAME
 *   POST   accounts/NAME/check      the form's values (saved or not): starts the
 *   POST   accounts/NAME/test       check (test sends the letter) -> 202 {check_id}
 *   GET    checks/ID                {done, steps so far, result when done: steps,
 *                                   diagnosis, transcript}; the starting session only
 *   GET    keys, POST keys {"name"} (the key is shown once), DELETE keys/NAME
 *   POST   password {"current", "new"}: changes the admin password. A wrong
 *                                   current one counts against the login rate
 *                                   limit (403, then 429 like the login); on
 *                                   success every other session ends and this
 *                                   one stays: 200 {"ok": true}
 * The form: provider ("" or "custom": own server), email, username, password
 * (write-only: absent or "" keeps the stored one), sender, sender_name, host,
 * port, security ("starttls", "tls", "none"); what the form does not show
 * (CA file, login method, timeout) comes from the stored account. Field
 * names in errors and in the diagnosis are the form's input names, so the
 * page can outline the right field. A check or test whose settings are the
 * saved ones is remembered on the account, and when it passes it ends a
 * pause the delivery breaker put on the account (worker_account_resume);
 * unsaved values prove nothing about what the worker will use, so they
 * change neither. A check runs in a detached thread of its own, up to the
 * account's timeout (60 s), and reports each step as it ends, so the page
 * shows them as they pass. panel_close waits for running checks
 * (panel_checks_close), since their thread uses the panel's store, then frees
 * their table.
 * Leaves out: OAuth2 sign-in, renaming an account, choosing which account is
 * the default (it is the one named "default").
 */
#include "admin/panel_internal.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "worker/worker.h"

#define ACCOUNT_NAME_MAX 64
#define DETECT_TIMEOUT_MS 2500

static const char *const app_password_names[] = {"no", "yes", "when_2fa"};
static const char *const username_format_names[] = {"email", "local_part", "other"};

/* ---- providers and detection ------------------------------------------------------- */

static json_t *
strings_json(const char *const *list)
{
    json_t *a = json_array();

    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        json_array_append_new(a, json_string(list[i]));
    return a;
}

static json_t *
provider_json(const struct account_provider *p)
{
    return json_pack(
        "{s:s, s:s, s:s?, s:i, s:i, s:s, s:s?, s:s?, s:s?, s:s, s:s?, s:b, s:b, s:o}", "id", p->id,
        "name", p->name, "host", p->host, "port_starttls", (int)p->port_starttls, "port_tls",
        (int)p->port_tls, "app_password", app_password_names[p->app_password], "app_password_url",
        p->app_password_url, "help_url", p->help_url, "notes", p->notes, "username_format",
        username_format_names[p->username_format], "fixed_username", p->fixed_username,
        "oauth_only", (p->flags & ACCOUNT_PROVIDER_OAUTH_ONLY) != 0, "dots_ignored",
        (p->flags & ACCOUNT_PROVIDER_DOTS_IGNORED) != 0, "domains", strings_json(p->domains));
}

static enum MHD_Result
get_providers(struct panel_req *r)
{
    json_t *list = json_array();

    for (size_t i = 0; i < account_provider_count(); i++)
        json_array_append_new(list, provider_json(account_provider_at(i)));
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:o}", "providers", list), NULL);
}

static enum MHD_Result
post_detect(struct panel_req *r)
{
    static const char *const sources[] = {"none", "domain", "mx", "probe"};
    struct account_detect_options opt;
    struct account_detection d;
    struct mo_error err;
    enum MHD_Result ret;
    const char *email;
    json_t *o;

    if ((o = panel_body_object(r, &ret)) == NULL)
        return ret;
    email = panel_json_str(o, "email");
    if (email == NULL || email[0] == '\0')
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "email", NULL,
                                "enter the email address first; the mail service is found from "
                                "it");
    memset(&opt, 0, sizeof(opt));
    opt.timeout_ms = DETECT_TIMEOUT_MS;
    if (account_detect(email, &opt, &d, &err) != 0)
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "email", NULL, "%s", err.text);
    return admin_http_json(r->c, MHD_HTTP_OK,
                           json_pack("{s:s, s:s?, s:s?, s:i, s:s, s:s}", "source",
                                     sources[d.source], "provider",
                                     d.provider != NULL ? d.provider->id : NULL, "host",
                                     d.host[0] ? d.host : NULL, (int)d.port, "security",
                                     smtp_security_name(d.security), "explanation", d.explanation),
                           NULL);
}

/* ---- accounts: reading --------------------------------------------------------------- */

/* An account name from the URL or the form: letters, digits, ".", "_", "-". */
static bool
name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > ACCOUNT_NAME_MAX)
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return false;
    return true;
}

/* The last check's summary, or JSON null. Caller holds store_lock. */
static json_t *
last_check_json(struct panel *p, const char *name)
{
    char *outcome = NULL;
    char *message_id = NULL;
    int64_t when = 0;
    struct mo_error err;
    json_t *parsed;
    json_t *out;

    if (account_store_last_check(p->store, name, &outcome, &message_id, &when, &err) != 0 ||
        outcome == NULL) {
        free(outcome);
        free(message_id);
        return json_null();
    }
    parsed = json_loads(outcome, 0, NULL);
    out = json_pack("{s:I, s:b, s:s?}", "at", (json_int_t)when, "ok",
                    json_is_true(json_object_get(parsed, "ok")), "message_id", message_id);
    if (out != NULL) {
        json_t *d = json_object_get(parsed, "diagnosis");

        if (json_is_object(d)) {
            json_object_set(out, "title", json_object_get(d, "title"));
            json_object_set(out, "field", json_object_get(d, "field"));
        }
    }
    json_decref(parsed);
    free(outcome);
    free(message_id);
    return out != NULL ? out : json_null();
}

static json_t *
pause_json(struct panel *p, const char *name)
{
    struct worker_pause pause;
    struct mo_error err;

    if (worker_account_pause(p->home, name, &pause, &err) != 0 || !pause.paused)
        return json_null();
    return json_pack("{s:I, s:o}", "until", (json_int_t)pause.until, "reason",
                     panel_json_text(pause.reason));
}

/* An account as the page shows it. Caller holds store_lock. */
static json_t *
account_json(struct panel *p, const struct account_settings *s)
{
    const struct account_provider *pr =
        s->provider_id != NULL ? account_provider_find(s->provider_id) : NULL;
    json_t *o = json_pack(
        "{s:s, s:b, s:s, s:s?, s:s, s:s?, s:b, s:s?, s:s?, s:s?, s:i, s:s, s:s, s:s?, s:i}", "name",
        s->name, "is_default", strcmp(s->name, "default") == 0, "provider",
        pr != NULL ? pr->id : "custom", "provider_name", pr != NULL ? pr->name : NULL, "email",
        s->email != NULL ? s->email : "", "username", s->username, "password_set",
        account_store_has_password(p->store, s->name), "sender", s->sender, "sender_name",
        s->sender_name, "host", s->host, "port", (int)s->port, "security",
        smtp_security_name(s->security), "auth", smtp_auth_mech_name(s->auth), "ca_file",
        s->ca_file, "timeout", s->timeout_s);

    if (o != NULL) {
        json_object_set_new(o, "last_check", last_check_json(p, s->name));
        json_object_set_new(o, "paused", pause_json(p, s->name));
    }
    return o;
}

static enum MHD_Result
get_accounts(struct panel_req *r)
{
    struct panel *p = r->p;
    char **names = NULL;
    size_t n = 0;
    struct mo_error err;
    json_t *list = json_array();
    int rc;

    pthread_mutex_lock(&p->store_lock);
    rc = account_store_list(p->store, &names, &n, &err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct account_settings s;

        memset(&s, 0, sizeof(s));
        if (account_store_get(p->store, names[i], false, &s, &err) == 0) {
            json_t *a = account_json(p, &s);

            /* the default account first, the others in name order */
            if (strcmp(names[i], "default") == 0)
                json_array_insert_new(list, 0, a);
            else
                json_array_append_new(list, a);
        }
        account_settings_clear(&s);
    }
    pthread_mutex_unlock(&p->store_lock);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0) {
        json_decref(list);
        return panel_fail(r, &err, false);
    }
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:o}", "accounts", list), NULL);
}

static enum MHD_Result
get_account(struct panel_req *r, const char *name)
{
    struct panel *p = r->p;
    struct account_settings s;
    struct mo_error err;
    json_t *o = NULL;
    int rc;

    memset(&s, 0, sizeof(s));
    pthread_mutex_lock(&p->store_lock);
    rc = account_store_get(p->store, name, false, &s, &err);
    if (rc == 0)
        o = account_json(p, &s);
    pthread_mutex_unlock(&p->store_lock);
    account_settings_clear(&s);
    if (rc != 0)
        return panel_fail(r, &err, err.category == MO_ERR_CONFIG);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:o}", "account", o), NULL);
}

/* ---- accounts: the form ---------------------------------------------------------------- */

/* A copy of v with surrounding white space removed; NULL for "" (unset). */
static int
trimmed(const char *v, char **out)
{
    const char *end;

    *out = NULL;
    while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    if (end == v)
        return 0;
    *out = strndup(v, (size_t)(end - v));
    return *out != NULL ? 0 : -1;
}

static void issue(struct account_issues *is, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
issue(struct account_issues *is, const char *field, const char *fmt, ...)
{
    struct account_issue *it;
    va_list ap;

    if (is->n >= ACCOUNT_ISSUES_MAX)
        return;
    it = &is->items[is->n++];
    it->field = field;
    it->is_error = true;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof(it->message), fmt, ap);
    va_end(ap);
    is->n_errors++;
}

/*
 * Lays the form's values over s (the stored account, or a new one).
 * *password_given: the form carried a new password. Problems of shape (not
 * text, a port that is not a number) go to issues; the rest is
 * account_validate's. Returns -1 only when out of memory.
 */
static int
form_apply(const json_t *form, struct account_settings *s, const struct account_provider **prov,
           bool *password_given, struct account_issues *issues)
{
    static const struct {
        const char *name;
        size_t offset;
    } texts[] = {
        {"email", offsetof(struct account_settings, email)},
        {"username", offsetof(struct account_settings, username)},
        {"sender", offsetof(struct account_settings, sender)},
        {"sender_name", offsetof(struct account_settings, sender_name)},
        {"host", offsetof(struct account_settings, host)},
    };
    const json_t *v;

    *password_given = false;
    *prov = s->provider_id != NULL ? account_provider_find(s->provider_id) : NULL;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char **slot = (char **)((char *)s + texts[i].offset);
        char *copy = NULL;

        v = json_object_get(form, texts[i].name);
        if (v == NULL)
            continue;
        if (!json_is_string(v) && !json_is_null(v)) {
            issue(issues, texts[i].name, "this must be text");
            continue;
        }
        if (json_is_string(v) && trimmed(json_string_value(v), &copy) != 0)
            return -1;
        free(*slot);
        *slot = copy;
    }
    v = json_object_get(form, "provider");
    if (json_is_string(v)) {
        const char *id = json_string_value(v);

        free(s->provider_id);
        s->provider_id = NULL;
        *prov = NULL;
        if (id[0] != '\0' && strcasecmp(id, "custom") != 0) {
            *prov = account_provider_find(id);
            if (*prov == NULL)
                issue(issues, "provider",
                      "unknown mail service \"%.60s\": choose one from the list, or \"Other "
                      "(own server)\"",
                      id);
            else if ((s->provider_id = strdup((*prov)->id)) == NULL)
                return -1;
        }
    }
    v = json_object_get(form, "password");
    if (json_is_string(v) && json_string_length(v) > 0) {
        char *copy = strndup(json_string_value(v), json_string_length(v));

        if (copy == NULL)
            return -1;
        if (strlen(copy) != json_string_length(v)) {
            issue(issues, "password", "the password contains a NUL character");
            mo_free_secret(copy);
        } else {
            mo_free_secret(s->password);
            s->password = copy; /* exactly as typed: any characters are fine */
            *password_given = true;
        }
    }
    v = json_object_get(form, "port");
    if (v != NULL && !json_is_null(v)) {
        long port = -1;

        if (json_is_integer(v))
            port = json_integer_value(v) >= 1 && json_integer_value(v) <= 65535
                       ? (long)json_integer_value(v)
                       : -1;
        else if (json_is_string(v) && json_string_value(v)[0] == '\0')
            port = 0; /* empty: the provider's usual port */
        else if (json_is_string(v) && mo_parse_long(json_string_value(v), 1, 65535, &port) != 0)
            port = -1;
        if (port < 0)
            issue(issues, "port",
                  "the port must be a number from 1 to 65535: usually 587 with STARTTLS or 465 "
                  "with SSL/TLS");
        else
            s->port = (unsigned)port;
    }
    v = json_object_get(form, "security");
    if (json_is_string(v)) {
        if (json_string_value(v)[0] == '\0')
            s->has_security = false;
        else if (smtp_security_parse(json_string_value(v), &s->security) == 0)
            s->has_security = true;
        else
            issue(issues, "security",
                  "choose STARTTLS (port 587), SSL/TLS (port 465) or None (only for a server "
                  "on this machine)");
    }
    return 0;
}

static json_t *
issues_json(const struct account_issues *is, bool errors)
{
    json_t *a = json_array();

    for (size_t i = 0; i < is->n; i++)
        if (is->items[i].is_error == errors)
            json_array_append_new(a, json_pack("{s:s, s:s}", "field", is->items[i].field, "message",
                                               is->items[i].message));
    return a;
}

/*
 * Loads NAME (with its password when with_secret), lays the form over it and
 * validates everything. *exists: the account was stored. 0 ok; -1 with *ret
 * answered (errors table, 404, 500).
 */
static int
form_settings(struct panel_req *r, const char *name, const json_t *form, bool with_secret,
              struct account_settings *s, struct account_issues *issues, bool *exists,
              bool *password_given, enum MHD_Result *ret)
{
    const struct account_provider *prov = NULL;
    struct account_issues more;
    struct mo_error err;
    bool has_password;
    int rc;

    memset(issues, 0, sizeof(*issues));
    pthread_mutex_lock(&r->p->store_lock);
    rc = account_store_get(r->p->store, name, with_secret, s, &err);
    has_password = rc == 0 && account_store_has_password(r->p->store, name);
    pthread_mutex_unlock(&r->p->store_lock);
    *exists = rc == 0;
    if (rc != 0 && err.category != MO_ERR_CONFIG) {
        *ret = panel_fail(r, &err, false);
        return -1;
    }
    if (rc != 0) {
        memset(s, 0, sizeof(*s));
        if ((s->name = strdup(name)) == NULL)
            goto oom;
    }
    if (form_apply(form, s, &prov, password_given, issues) != 0)
        goto oom;
    if (!*password_given && !has_password)
        issue(issues, "password",
              "enter the password of this mail account (for Gmail and the like: an app "
              "password; see the steps above)");
    memset(&more, 0, sizeof(more));
    account_validate(s, prov, &more);
    for (size_t i = 0; i < more.n && issues->n < ACCOUNT_ISSUES_MAX; i++) {
        /* one message per field is enough for the form; keep the first, it says the most */
        bool dup = false;

        for (size_t k = 0; k < issues->n && more.items[i].is_error; k++)
            dup = dup || (issues->items[k].is_error &&
                          strcmp(issues->items[k].field, more.items[i].field) == 0);
        if (dup)
            continue;
        issues->items[issues->n++] = more.items[i];
        if (more.items[i].is_error)
            issues->n_errors++;
    }
    if (issues->n_errors > 0) {
        *ret = admin_http_json(r->c, MHD_HTTP_BAD_REQUEST,
                               json_pack("{s:o, s:o}", "errors", issues_json(issues, true), "notes",
                                         issues_json(issues, false)),
                               NULL);
        return -1;
    }
    return 0;
oom:
    *ret = admin_http_json(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL);
    return -1;
}

static enum MHD_Result
put_account(struct panel_req *r, const char *name)
{
    struct panel *p = r->p;
    struct account_settings s;
    struct account_issues issues;
    struct mo_error err;
    enum MHD_Result ret;
    bool exists;
    bool password_given;
    json_t *form;
    json_t *o = NULL;
    int rc;

    memset(&s, 0, sizeof(s));
    if ((form = panel_body_object(r, &ret)) == NULL)
        return ret;
    if (!name_ok(name))
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "name", NULL,
                                "the account's name may hold letters, digits, \".\", \"_\" and "
                                "\"-\" (at most %d); \"default\" is the one messages use unless "
                                "they name another",
                                ACCOUNT_NAME_MAX);
    if (form_settings(r, name, form, false, &s, &issues, &exists, &password_given, &ret) != 0) {
        account_settings_clear(&s);
        return ret;
    }
    pthread_mutex_lock(&p->store_lock);
    rc = account_store_put(p->store, &s, &err);
    if (rc == 0)
        o = account_json(p, &s);
    pthread_mutex_unlock(&p->store_lock);
    account_settings_clear(&s);
    if (rc != 0)
        return panel_fail(r, &err, false);
    mo_log(MO_LOG_INFO, "panel: account \"%s\" %s", name, exists ? "saved" : "added");
    return admin_http_json(
        r->c, exists ? MHD_HTTP_OK : MHD_HTTP_CREATED,
        json_pack("{s:b, s:o, s:o}", "ok", 1, "account", o, "notes", issues_json(&issues, false)),
        NULL);
}

static enum MHD_Result
delete_account(struct panel_req *r, const char *name)
{
    struct mo_error err;
    int rc;

    pthread_mutex_lock(&r->p->store_lock);
    rc = account_store_remove(r->p->store, name, &err);
    pthread_mutex_unlock(&r->p->store_lock);
    if (rc != 0)
        return panel_fail(r, &err, err.category == MO_ERR_CONFIG);
    mo_log(MO_LOG_INFO, "panel: account \"%s\" removed", name);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1), NULL);
}

/* ---- the check and the test letter ------------------------------------------------------ */

static bool
same_text(const char *a, const char *b)
{
    return (a == NULL || a[0] == '\0') ? (b == NULL || b[0] == '\0')
                                       : (b != NULL && strcmp(a, b) == 0);
}

/* Whether what was checked is what the worker will use (both validated). */
static bool
same_settings(const struct account_settings *a, const struct account_settings *b)
{
    return same_text(a->provider_id, b->provider_id) && same_text(a->email, b->email) &&
           same_text(a->username, b->username) && same_text(a->sender, b->sender) &&
           same_text(a->sender_name, b->sender_name) && same_text(a->host, b->host) &&
           a->port == b->port && a->security == b->security && a->auth == b->auth &&
           same_text(a->ca_file, b->ca_file) && same_text(a->password, b->password);
}

/* The stored account, validated as the worker sees it; -1 when there is none. */
static int
stored_settings(struct panel *p, const char *name, struct account_settings *out)
{
    struct account_issues is;
    struct mo_error err;
    int rc;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&p->store_lock);
    rc = account_store_get(p->store, name, true, out, &err);
    pthread_mutex_unlock(&p->store_lock);
    if (rc != 0)
        return -1;
    account_validate(out, out->provider_id ? account_provider_find(out->provider_id) : NULL, &is);
    return 0;
}

static json_t *
error_json(const struct mo_error *e)
{
    /* the text may quote the server's reply: any bytes */
    return json_pack("{s:s?, s:o, s:o, s:o, s:s?, s:b}", "stage", e->stage, "code",
                     e->smtp_code != 0 ? json_integer(e->smtp_code) : json_null(), "enhanced",
                     panel_json_text(e->enhanced[0] ? e->enhanced : NULL), "text",
                     panel_json_text(e->text), "field", e->field, "temporary", e->temporary);
}

/* steps, error, diagnosis (no transcript): what is remembered and shown. */
static json_t *
outcome_json(const struct account_check_result *res)
{
    json_t *steps = json_array();
    json_t *o;

    for (size_t i = 0; i < res->n_steps; i++)
        json_array_append_new(steps,
                              json_pack("{s:s, s:b, s:I}", "name", res->steps[i].name, "ok",
                                        res->steps[i].ok, "ms", (json_int_t)res->steps[i].ms));
    o = json_pack("{s:b, s:o}", "ok", res->ok, "steps", steps);
    if (o == NULL)
        return NULL;
    if (res->ok) {
        json_object_set_new(o, "error", json_null());
        json_object_set_new(o, "diagnosis", json_null());
    } else {
        const struct account_diagnosis *d = &res->diagnosis;

        json_object_set_new(o, "error", error_json(&res->err));
        json_object_set_new(o, "diagnosis",
                            json_pack("{s:s?, s:o, s:o, s:o, s:s?, s:b, s:s}", "field", d->field,
                                      "title", panel_json_text(d->title), "explanation",
                                      panel_json_text(d->explanation), "fix",
                                      panel_json_text(d->fix), "help_url", d->help_url, "temporary",
                                      d->temporary, "id", d->id));
    }
    if (res->message_id[0] != '\0') {
        json_object_set_new(o, "message_id", json_string(res->message_id));
        json_object_set_new(o, "to", json_string(res->to));
    }
    return o;
}

static char *
transcript_text(const struct account_check_result *res)
{
    struct mo_buf b;

    mo_buf_init(&b, 4 * 1024 * 1024);
    for (size_t i = 0; i < res->n_transcript; i++)
        if (mo_buf_append_str(&b, res->transcript[i], NULL) != 0 ||
            mo_buf_append(&b, "\n", 1, NULL) != 0)
            break;
    if (b.data == NULL)
        return strdup("");
    return b.data; /* handed over: the caller frees it */
}

/*
 * A check runs in a thread of its own, so the page can watch its steps pass:
 * POST .../check and .../test answer 202 {"check_id"} at once, and GET
 * checks/ID answers {"done", "steps"} and, once done, "result": what the
 * routes answered when they waited. A check belongs to the session that
 * started it (another gets 404). At most PANEL_CHECKS_MAX are kept; a
 * finished one is forgotten PANEL_CHECK_KEEP_MS after it ended, or sooner
 * when room is needed. Linear scans; the table is tiny.
 */
struct panel_check {
    struct panel *p;
    char id[PANEL_CHECK_ID_LEN + 1];
    unsigned char owner[crypto_generichash_BYTES]; /* hash of the session cookie */
    char name[ACCOUNT_NAME_MAX + 1];
    bool send_test;
    char *to; /* NULL: the account's email */
    struct account_settings s;
    struct account_issues issues;
    bool is_saved;
    /* under checks->lock */
    bool done;
    int64_t done_ms;
    json_t *steps;
    json_t *result; /* when done; NULL when out of memory */
};

struct panel_checks {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* signalled when a check thread ends */
    int running;         /* check threads not ended yet */
    struct panel_check *slots[PANEL_CHECKS_MAX];
};

static void
check_free(struct panel_check *c)
{
    if (c == NULL)
        return;
    free(c->to);
    account_settings_clear(&c->s);
    json_decref(c->steps);
    json_decref(c->result);
    free(c);
}

/* The registry, made on first use (struct panel comes zeroed from panel_open). */
static struct panel_checks *
checks_get(struct panel *p)
{
    struct panel_checks *cs;

    pthread_mutex_lock(&p->store_lock);
    if (p->checks == NULL) {
        cs = calloc(1, sizeof(*cs));
        if (cs != NULL && pthread_mutex_init(&cs->lock, NULL) != 0) {
            free(cs);
            cs = NULL;
        } else if (cs != NULL && pthread_cond_init(&cs->idle, NULL) != 0) {
            pthread_mutex_destroy(&cs->lock);
            free(cs);
            cs = NULL;
        }
        p->checks = cs;
    }
    cs = p->checks;
    pthread_mutex_unlock(&p->store_lock);
    return cs;
}

/* Hashes the request's session cookie (the gate has checked it already). */
static void
check_owner(struct MHD_Connection *c, unsigned char out[crypto_generichash_BYTES])
{
    char id[512];

    if (panel_cookie_value(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE),
                           PANEL_COOKIE, id, sizeof(id)) != 0)
        id[0] = '\0';
    crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)id, strlen(id), NULL,
                       0);
    sodium_memzero(id, sizeof(id));
}

static void
check_on_step(void *ctx, const struct smtp_step *step)
{
    struct panel_check *c = ctx;
    struct panel_checks *cs = c->p->checks;

    pthread_mutex_lock(&cs->lock);
    json_array_append_new(c->steps, json_pack("{s:s, s:b, s:I}", "name", step->name, "ok", step->ok,
                                              "ms", (json_int_t)step->ms));
    pthread_mutex_unlock(&cs->lock);
}

/* Runs the check and does what follows it; returns the result JSON (NULL: out of memory). */
static json_t *
check_run(struct panel_check *c)
{
    struct panel *p = c->p;
    const char *name = c->name;
    const char *to = c->to;
    bool send_test = c->send_test;
    struct account_settings *s = &c->s;
    struct account_check_result res;
    struct mo_error err;
    bool resumed = false;
    int64_t test_id = 0;
    char *outcome_text = NULL;
    char *transcript = NULL;
    json_t *outcome;
    json_t *lines;

    memset(&res, 0, sizeof(res));
    account_check_ex(s, send_test, to, check_on_step, c, &res);

    outcome = outcome_json(&res);
    outcome_text = outcome != NULL ? json_dumps(outcome, JSON_COMPACT) : NULL;
    if (c->is_saved && outcome_text != NULL) {
        pthread_mutex_lock(&p->store_lock);
        if (account_store_record_check(p->store, name, outcome_text,
                                       res.message_id[0] ? res.message_id : NULL, &err) != 0)
            mo_log(MO_LOG_WARN, "panel: %s", err.text);
        pthread_mutex_unlock(&p->store_lock);
        if (res.ok) {
            struct worker_pause pause;

            if (worker_account_pause(p->home, name, &pause, &err) == 0 && pause.paused &&
                worker_account_resume(p->home, name, &err) == 0)
                resumed = true;
        }
    }
    if (send_test) {
        struct panel_test_record t;

        transcript = transcript_text(&res);
        memset(&t, 0, sizeof(t));
        t.account = name;
        t.ok = res.ok;
        t.from = s->sender != NULL ? s->sender : s->email;
        t.to = res.to[0] ? res.to : (to != NULL ? to : s->email);
        t.subject = "mailout: your mail settings work \xE2\x9C\x93";
        t.message_id = res.message_id[0] ? res.message_id : NULL;
        t.outcome_json = outcome_text != NULL ? outcome_text : "{}";
        t.transcript = transcript;
        if (panel_test_log_add(p, &t, &test_id, &err) != 0)
            mo_log(MO_LOG_WARN, "panel: the test letter was not logged: %s", err.text);
    }
    mo_log(MO_LOG_INFO, "panel: %s of account \"%s\": %s", send_test ? "test letter" : "check",
           name, res.ok ? "passed" : res.diagnosis.title);
    lines = json_array();
    for (size_t i = 0; i < res.n_transcript; i++)
        json_array_append_new(lines, panel_json_text(res.transcript[i]));
    if (outcome != NULL) {
        json_object_set_new(outcome, "transcript", lines);
        json_object_set_new(outcome, "saved_settings", json_boolean(c->is_saved));
        json_object_set_new(outcome, "resumed", json_boolean(resumed));
        json_object_set_new(outcome, "notes", issues_json(&c->issues, false));
        if (test_id > 0)
            json_object_set_new(outcome, "test_id", json_integer(test_id));
    } else {
        json_decref(lines);
    }
    free(outcome_text);
    free(transcript);
    account_check_result_clear(&res);
    if (resumed) {
        /* the dashboard must not keep showing the pause */
        pthread_mutex_lock(&p->pause_lock);
        p->pause_cache_ms = 0;
        pthread_mutex_unlock(&p->pause_lock);
    }
    return outcome;
}

static void *
check_thread(void *arg)
{
    struct panel_check *c = arg;
    struct panel_checks *cs = c->p->checks;
    json_t *result = check_run(c);

    pthread_mutex_lock(&cs->lock);
    c->result = result;
    c->done = true;
    c->done_ms = mo_now_ms();
    account_settings_clear(&c->s); /* the password goes as soon as it is not needed */
    cs->running--;
    pthread_cond_broadcast(&cs->idle);
    pthread_mutex_unlock(&cs->lock);
    /* from here on the registry owns c and may free it, and panel_checks_close may free cs */
    return NULL;
}

/* A free slot, forgetting expired checks and, when full, the oldest finished one; -1 when
 * every slot runs. Caller holds cs->lock. */
static int
checks_slot(struct panel_checks *cs, int64_t now)
{
    int free_slot = -1;
    int oldest = -1;

    for (int i = 0; i < PANEL_CHECKS_MAX; i++) {
        struct panel_check *c = cs->slots[i];

        if (c != NULL && c->done && now - c->done_ms > PANEL_CHECK_KEEP_MS) {
            check_free(c);
            cs->slots[i] = c = NULL;
        }
        if (c == NULL) {
            if (free_slot < 0)
                free_slot = i;
        } else if (c->done && (oldest < 0 || c->done_ms < cs->slots[oldest]->done_ms)) {
            oldest = i;
        }
    }
    if (free_slot < 0 && oldest >= 0) {
        check_free(cs->slots[oldest]);
        cs->slots[oldest] = NULL;
        free_slot = oldest;
    }
    return free_slot;
}

void
panel_checks_close(struct panel *p)
{
    struct panel_checks *cs = p->checks;

    if (cs == NULL)
        return;
    /* A running check uses the panel's store and queue: wait for it (its SMTP waits are
     * capped by the account's timeout). */
    pthread_mutex_lock(&cs->lock);
    while (cs->running > 0)
        pthread_cond_wait(&cs->idle, &cs->lock);
    for (size_t i = 0; i < PANEL_CHECKS_MAX; i++)
        check_free(cs->slots[i]);
    pthread_mutex_unlock(&cs->lock);
    pthread_cond_destroy(&cs->idle);
    pthread_mutex_destroy(&cs->lock);
    free(cs);
    p->checks = NULL;
}

static enum MHD_Result
post_check(struct panel_req *r, const char *name, bool send_test)
{
    struct panel *p = r->p;
    struct panel_checks *cs = checks_get(p);
    struct panel_check *c = NULL;
    struct account_settings stored;
    enum MHD_Result ret;
    unsigned char rnd[PANEL_CHECK_ID_LEN / 2];
    pthread_attr_t attr;
    pthread_t tid;
    bool exists;
    bool password_given;
    const char *to;
    json_t *form;
    int slot;

    memset(&stored, 0, sizeof(stored));
    if ((form = panel_body_object(r, &ret)) == NULL)
        return ret;
    if (!name_ok(name))
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "name", NULL,
                                "the account's name may hold letters, digits, \".\", \"_\" and "
                                "\"-\"");
    if (cs == NULL || (c = calloc(1, sizeof(*c))) == NULL || (c->steps = json_array()) == NULL) {
        check_free(c);
        return admin_http_error(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
    }
    to = panel_json_str(form, "to");
    if (to != NULL && to[0] != '\0' && (c->to = strdup(to)) == NULL) {
        check_free(c);
        return admin_http_error(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
    }
    if (form_settings(r, name, form, true, &c->s, &c->issues, &exists, &password_given, &ret) !=
        0) {
        check_free(c);
        return ret;
    }
    if (exists && stored_settings(p, name, &stored) == 0)
        c->is_saved = same_settings(&c->s, &stored);
    account_settings_clear(&stored);
    c->p = p;
    c->send_test = send_test;
    snprintf(c->name, sizeof(c->name), "%s", name);
    check_owner(r->c, c->owner);
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(c->id, sizeof(c->id), rnd, sizeof(rnd));

    pthread_mutex_lock(&cs->lock);
    slot = checks_slot(cs, mo_now_ms());
    if (slot >= 0) {
        cs->slots[slot] = c;
        cs->running++; /* counted before the thread exists, so close never misses it */
    }
    pthread_mutex_unlock(&cs->lock);
    if (slot < 0) {
        check_free(c);
        return admin_http_error(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL,
                                "%d checks are running already: wait for one to end",
                                PANEL_CHECKS_MAX);
    }
    if (pthread_attr_init(&attr) != 0 ||
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
        pthread_create(&tid, &attr, check_thread, c) != 0) {
        pthread_mutex_lock(&cs->lock);
        cs->slots[slot] = NULL;
        cs->running--;
        pthread_mutex_unlock(&cs->lock);
        check_free(c);
        return admin_http_error(r->c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL,
                                "the check could not start: try again");
    }
    pthread_attr_destroy(&attr);
    return admin_http_json(r->c, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "check_id", c->id), NULL);
}

/* GET checks/ID: {"done", "steps"} and, when done, "result". */
static enum MHD_Result
get_check(struct panel_req *r, const char *id)
{
    struct panel_checks *cs = checks_get(r->p);
    unsigned char owner[crypto_generichash_BYTES];
    json_t *o = NULL;
    bool found = false;

    if (cs == NULL)
        return admin_http_error(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
    check_owner(r->c, owner);
    pthread_mutex_lock(&cs->lock);
    (void)checks_slot(cs, mo_now_ms()); /* forgets the expired ones */
    for (int i = 0; i < PANEL_CHECKS_MAX; i++) {
        struct panel_check *c = cs->slots[i];

        if (c == NULL || strcmp(c->id, id) != 0 ||
            sodium_memcmp(c->owner, owner, sizeof(owner)) != 0)
            continue;
        found = true;
        o = json_pack("{s:b, s:o}", "done", c->done, "steps", json_deep_copy(c->steps));
        if (o != NULL && c->done)
            json_object_set_new(o, "result",
                                c->result != NULL ? json_deep_copy(c->result) : json_null());
        break;
    }
    pthread_mutex_unlock(&cs->lock);
    if (!found)
        return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL,
                                "there is no such check (they are kept for 5 minutes)");
    return admin_http_json(r->c, MHD_HTTP_OK, o, NULL);
}

/* ---- API keys -------------------------------------------------------------------------------- */

static enum MHD_Result
get_keys(struct panel_req *r)
{
    struct admin_apikey_info *keys = NULL;
    struct mo_error err;
    json_t *list;
    size_t n = 0;

    if (admin_apikey_list(r->p->home, &keys, &n, &err) != 0)
        return panel_fail(r, &err, false);
    list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            list,
            json_pack("{s:I, s:o, s:s, s:I, s:o, s:b}", "id", (json_int_t)keys[i].id, "name",
                      panel_json_text(keys[i].name), "prefix", keys[i].prefix, "created_at",
                      (json_int_t)keys[i].created_at, "last_used_at",
                      keys[i].last_used_at != 0 ? json_integer(keys[i].last_used_at) : json_null(),
                      "revoked", keys[i].revoked));
    free(keys);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:o}", "keys", list), NULL);
}

static enum MHD_Result
post_key(struct panel_req *r)
{
    char key[ADMIN_APIKEY_LEN + 1];
    struct mo_error err;
    enum MHD_Result ret;
    const char *name;
    json_t *o;

    if ((o = panel_body_object(r, &ret)) == NULL)
        return ret;
    name = panel_json_str(o, "name");
    if (admin_apikey_create(r->p->home, name != NULL ? name : "", key, sizeof(key), &err) != 0)
        return panel_fail(r, &err, false);
    mo_log(MO_LOG_INFO, "panel: API key \"%s\" created", name);
    ret = admin_http_json(r->c, MHD_HTTP_CREATED, json_pack("{s:s, s:s}", "name", name, "key", key),
                          NULL);
    mo_wipe(key, sizeof(key));
    return ret;
}

static enum MHD_Result
delete_key(struct panel_req *r, const char *name)
{
    struct mo_error err;

    if (admin_apikey_revoke(r->p->home, name, &err) != 0)
        return panel_fail(r, &err, err.category == MO_ERR_CONFIG);
    mo_log(MO_LOG_INFO, "panel: API key \"%s\" revoked", name);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1), NULL);
}

/* ---- the admin password ------------------------------------------------------------------ */

static const struct sockaddr *
client_address(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    return ci != NULL ? ci->client_addr : NULL;
}

/* Member name as a C string; "" when absent or not text. *has_nul: the JSON held "\u0000",
 * which a C string would silently cut short (a shorter password than the one typed). */
static const char *
password_member(const json_t *o, const char *name, bool *has_nul)
{
    const json_t *v = json_object_get(o, name);

    *has_nul = false;
    if (!json_is_string(v))
        return "";
    *has_nul = strlen(json_string_value(v)) != json_string_length(v);
    return json_string_value(v);
}

static void add_problem(json_t *errors, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One {"field", "message"} of the panel's {"errors": [...]}. */
static void
add_problem(json_t *errors, const char *field, const char *fmt, ...)
{
    char message[MO_ERROR_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

/*
 * POST password {"current", "new"}. The page compares "new password again" itself. What
 * the body alone shows (an empty field, a new password of the wrong length) answers 400
 * with every problem at once, before any password is tried, so a typo costs no attempt
 * of the rate limit. Neither password is logged or echoed.
 */
static enum MHD_Result
post_password(struct panel_req *r)
{
    const struct sockaddr *peer = client_address(r->c);
    const char *cookies =
        MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    int64_t now = (int64_t)time(NULL);
    int64_t wait = panel_ratelimit_wait_s(r->p->logins, peer, now);
    char id[PANEL_TOKEN_LEN + 1];
    struct mo_error err;
    enum MHD_Result ret;
    const char *current;
    const char *new_pw;
    bool current_nul;
    bool new_nul;
    bool ok = false;
    json_t *errors = NULL;
    json_t *o = NULL;
    int rc;

    if (wait > 0)
        return panel_too_many(r, "current", wait, "enter the current password again");
    if ((o = panel_body_object(r, &ret)) == NULL)
        return ret;
    current = password_member(o, "current", &current_nul);
    new_pw = password_member(o, "new", &new_nul);
    if ((errors = json_array()) == NULL)
        return admin_http_error(r->c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, "out of memory");
    if (current[0] == '\0')
        add_problem(errors, "current",
                    "enter the current admin password, the one you logged in with: it proves "
                    "that it is you who changes it");
    if (new_pw[0] == '\0') {
        add_problem(errors, "new",
                    "enter the new password: at least %d characters, any characters (a longer "
                    "one is safer)",
                    PANEL_PASSWORD_MIN);
    } else if (new_nul) {
        add_problem(errors, "new",
                    "the new password contains a NUL character, which cannot be typed at the "
                    "login: choose one without it");
    } else if (panel_auth_password_shape(new_pw, &err) != 0) {
        add_problem(errors, "new", "%s", err.text);
    } else if (!current_nul && strcmp(new_pw, current) == 0) {
        add_problem(errors, "new",
                    "the new password is the same as the current one: choose a different one");
    }
    if (json_array_size(errors) > 0)
        return admin_http_json(r->c, MHD_HTTP_BAD_REQUEST, json_pack("{s:o}", "errors", errors),
                               NULL);
    json_decref(errors);
    /* a NUL cuts the C string short: never let a prefix of what was sent pass as the password */
    if (!current_nul && panel_auth_verify_password(r->p->auth, current, &ok, &err) != 0)
        return panel_fail(r, &err, false);
    if (!ok) {
        panel_ratelimit_fail(r->p->logins, peer, now);
        return admin_http_error(r->c, MHD_HTTP_FORBIDDEN, "current", NULL,
                                "that is not the current admin password: type the one you logged "
                                "in with (check Caps Lock); nothing was changed");
    }
    panel_ratelimit_reset(r->p->logins, peer);
    /* the gate found the session by this cookie, so it is there and well formed */
    if (panel_cookie_value(cookies, PANEL_COOKIE, id, sizeof(id)) != 0)
        id[0] = '\0';
    rc = panel_auth_change_password(r->p->auth, new_pw, id, &err);
    mo_wipe(id, sizeof(id));
    if (rc != 0) {
        if (err.category == MO_ERR_CONFIG)
            return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "new", NULL, "%s", err.text);
        return panel_fail(r, &err, false);
    }
    mo_log(MO_LOG_INFO, "panel: the admin password was changed from the panel; every other "
                        "session was ended");
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1), NULL);
}

/* ---- routing ------------------------------------------------------------------------------ */

static enum MHD_Result
not_allowed(struct panel_req *r, const char *allow)
{
    const char *headers[] = {MHD_HTTP_HEADER_ALLOW, allow, NULL};

    return admin_http_error(r->c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, headers,
                            "%.16s is not allowed here; use %s", r->method, allow);
}

static bool
method_is(const struct panel_req *r, const char *m)
{
    return strcmp(r->method, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(r->method, "HEAD") == 0);
}

/* accounts/NAME[/check|/test] */
static enum MHD_Result
route_account(struct panel_req *r, const char *rest)
{
    const char *slash = strrchr(rest, '/');
    char name[ACCOUNT_NAME_MAX + 1];
    size_t len = slash != NULL ? (size_t)(slash - rest) : strlen(rest);

    if (len == 0 || len > ACCOUNT_NAME_MAX)
        return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "name", NULL, "there is no such account");
    memcpy(name, rest, len);
    name[len] = '\0';
    if (slash != NULL) {
        bool is_test = strcmp(slash, "/test") == 0;

        if (!is_test && strcmp(slash, "/check") != 0)
            return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, NULL, NULL,
                                    "there is nothing at accounts/%s%.40s", name, slash);
        if (!method_is(r, "POST"))
            return not_allowed(r, "POST");
        return post_check(r, name, is_test);
    }
    if (method_is(r, "GET"))
        return get_account(r, name);
    if (method_is(r, "PUT"))
        return put_account(r, name);
    if (method_is(r, "DELETE"))
        return delete_account(r, name);
    return not_allowed(r, "GET, PUT, DELETE");
}

enum MHD_Result
panel_api_route(struct panel_req *r, bool *handled)
{
    const char *path = r->path;

    *handled = true;
    if (strcmp(path, "providers") == 0)
        return method_is(r, "GET") ? get_providers(r) : not_allowed(r, "GET");
    if (strcmp(path, "detect") == 0)
        return method_is(r, "POST") ? post_detect(r) : not_allowed(r, "POST");
    if (strcmp(path, "accounts") == 0)
        return method_is(r, "GET") ? get_accounts(r) : not_allowed(r, "GET");
    if (strncmp(path, "accounts/", 9) == 0)
        return route_account(r, path + 9);
    if (strncmp(path, "checks/", 7) == 0 && path[7] != '\0')
        return method_is(r, "GET") ? get_check(r, path + 7) : not_allowed(r, "GET");
    if (strcmp(path, "keys") == 0) {
        if (method_is(r, "GET"))
            return get_keys(r);
        return method_is(r, "POST") ? post_key(r) : not_allowed(r, "GET, POST");
    }
    if (strncmp(path, "keys/", 5) == 0 && path[5] != '\0')
        return method_is(r, "DELETE") ? delete_key(r, path + 5) : not_allowed(r, "DELETE");
    if (strcmp(path, "password") == 0)
        return method_is(r, "POST") ? post_password(r) : not_allowed(r, "POST");
    *handled = false;
    return MHD_NO;
}
