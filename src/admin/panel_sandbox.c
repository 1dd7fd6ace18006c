/*
 * panel_sandbox.c - the panel's "Sandbox inbox" (sandbox.h): the letters
 * kept by `mailout serve`'s sandbox receiver, one letter read for display
 * (panel_preview.c), deleting them all, and the fault switch.
 *
 * Routes (after /panel/api/): GET sandbox (letters, fault, fault kinds),
 * DELETE sandbox (delete every letter), PUT sandbox/fault ({"kind", "mode":
 * "next"|"share", "value"}; kind "none" switches it off), GET sandbox/ID
 * (the letter for display, and has_html), GET sandbox/ID/html (its first
 * HTML part, for an <iframe sandbox>, with its own strict CSP: no script, no
 * request anywhere), GET sandbox/ID/attachments/N (a download, always
 * application/octet-stream).
 * Leaves out: cid: images in the HTML (not shown: no request leaves the
 * frame), paging (the inbox is for tests).
 */
#include "admin/panel_internal.h"

#include <stdlib.h>
#include <string.h>

#define SANDBOX_PART_MAX_BYTES (30u * 1024 * 1024)

#include "mime/mime.h"
#include "sandbox/sandbox.h"

static bool
method_is(const struct panel_req *r, const char *m)
{
    return strcmp(r->method, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(r->method, "HEAD") == 0);
}

static enum MHD_Result
not_allowed(struct panel_req *r, const char *allow)
{
    const char *headers[] = {MHD_HTTP_HEADER_ALLOW, allow, NULL};

    return admin_http_error(r->c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, headers,
                            "%.16s is not allowed here; use %s", r->method, allow);
}

static json_t *
fault_json(const char *home)
{
    struct sandbox_fault f;

    sandbox_fault_get(home, &f);
    if (f.kind == SANDBOX_FAULT_NONE)
        return json_pack("{s:s, s:n, s:n}", "kind", "none", "mode", "value");
    return json_pack("{s:s, s:s, s:i}", "kind", sandbox_fault_name(f.kind), "mode",
                     f.is_share ? "share" : "next", "value", (int)f.value);
}

/* A header value as sent, RFC 2047 words decoded (as it is when they do not decode). */
static json_t *
decoded(const char *value)
{
    struct mo_buf b;
    json_t *out;

    mo_buf_init(&b, 4096);
    if (mime_decode_words(value, &b, NULL) == 0 && mo_buf_cstr(&b) != NULL)
        out = panel_json_text(mo_buf_cstr(&b));
    else
        out = panel_json_text(value);
    mo_buf_free(&b);
    return out;
}

static enum MHD_Result
get_sandbox(struct panel_req *r)
{
    struct sandbox_letter *v = NULL;
    struct mo_error err;
    size_t n = 0;
    json_t *letters;
    json_t *kinds;

    if (sandbox_list(r->p->home, &v, &n, &err) != 0)
        return panel_fail(r, &err, false);
    letters = json_array();
    kinds = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(letters,
                              json_pack("{s:s, s:I, s:I, s:o, s:o, s:o}", "id", v[i].id,
                                        "received_ms", (json_int_t)v[i].received_ms, "size",
                                        (json_int_t)v[i].size, "from", decoded(v[i].from), "to",
                                        decoded(v[i].to), "subject", decoded(v[i].subject)));
    for (int k = SANDBOX_FAULT_NONE + 1; k < SANDBOX_FAULT_COUNT; k++)
        json_array_append_new(kinds, json_string(sandbox_fault_name((enum sandbox_fault_kind)k)));
    free(v);
    return admin_http_json(r->c, MHD_HTTP_OK,
                           json_pack("{s:o, s:o, s:o, s:i}", "letters", letters, "fault",
                                     fault_json(r->p->home), "kinds", kinds, "port",
                                     (int)sandbox_port_read(r->p->home)),
                           NULL);
}

static enum MHD_Result
delete_sandbox(struct panel_req *r)
{
    struct mo_error err;
    size_t n = 0;

    if (sandbox_clear(r->p->home, &n, &err) != 0)
        return panel_fail(r, &err, false);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:I}", "deleted", (json_int_t)n), NULL);
}

static enum MHD_Result
put_fault(struct panel_req *r)
{
    enum MHD_Result ret = MHD_NO;
    json_t *o = panel_body_object(r, &ret);
    const char *kind;
    const char *mode;
    json_t *value;
    struct sandbox_fault f;
    struct mo_error err;

    if (o == NULL)
        return ret;
    memset(&f, 0, sizeof(f));
    kind = panel_json_str(o, "kind");
    mode = panel_json_str(o, "mode");
    value = json_object_get(o, "value");
    if (kind == NULL || sandbox_fault_parse(kind, &f.kind) != 0)
        return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "kind", NULL, "unknown fault kind");
    if (f.kind != SANDBOX_FAULT_NONE) {
        f.is_share = mode != NULL && strcmp(mode, "share") == 0;
        if (mode != NULL && !f.is_share && strcmp(mode, "next") != 0)
            return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "mode", NULL,
                                    "mode is \"next\" or \"share\"");
        f.value = 1;
        if (value != NULL && !json_is_null(value)) {
            json_int_t v = json_is_integer(value) ? json_integer_value(value) : 0;

            if (v < 1 || v > (f.is_share ? 100 : 1000000))
                return admin_http_error(r->c, MHD_HTTP_BAD_REQUEST, "value", NULL,
                                        f.is_share ? "a share is 1 to 100 (percent)"
                                                   : "a count is 1 to 1000000");
            f.value = (unsigned)v;
        }
    }
    if (sandbox_prepare(r->p->home, &err) != 0 || sandbox_fault_set(r->p->home, &f, &err) != 0)
        return panel_fail(r, &err, false);
    return admin_http_json(r->c, MHD_HTTP_OK, json_pack("{s:o}", "fault", fault_json(r->p->home)),
                           NULL);
}

static enum MHD_Result
get_letter(struct panel_req *r, const char *id)
{
    struct sandbox_letter *v = NULL;
    struct mo_error err;
    char *data = NULL;
    size_t len = 0;
    size_t n = 0;
    json_t *content;
    json_t *letter = NULL;
    enum MHD_Result ret;
    bool has_html;
    struct mo_buf html;
    char type[128];
    char name[16];

    if (sandbox_read(r->p->home, id, &data, &len, &err) != 0)
        return panel_fail(r, &err, true);
    content = panel_preview_json(data, len);
    mo_buf_init(&html, 64);
    has_html = panel_preview_extract(data, len, -1, 32, &html, type, sizeof(type), name,
                                     sizeof(name)) == 0;
    mo_buf_free(&html);
    free(data);
    if (sandbox_list(r->p->home, &v, &n, NULL) == 0)
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].id, id) == 0)
                letter = json_pack("{s:s, s:I, s:I}", "id", v[i].id, "received_ms",
                                   (json_int_t)v[i].received_ms, "size", (json_int_t)v[i].size);
    free(v);
    if (letter == NULL)
        letter = json_pack("{s:s}", "id", id);
    ret = admin_http_json(r->c, MHD_HTTP_OK,
                          json_pack("{s:o, s:o, s:b}", "letter", letter, "content",
                                    content != NULL ? content : json_null(), "has_html", has_html),
                          NULL);
    return ret;
}

/* sandbox/ID/html (attachment < 0) or sandbox/ID/attachments/N */
static enum MHD_Result
get_part(struct panel_req *r, const char *id, long attachment)
{
    struct mo_error err;
    struct mo_buf out;
    char *data = NULL;
    size_t len = 0;
    char type[128];
    char name[512];
    enum MHD_Result ret;

    if (sandbox_read(r->p->home, id, &data, &len, &err) != 0)
        return panel_fail(r, &err, true);
    mo_buf_init(&out, SANDBOX_PART_MAX_BYTES + 16);
    if (panel_preview_extract(data, len, attachment, SANDBOX_PART_MAX_BYTES, &out, type,
                              sizeof(type), name, sizeof(name)) != 0)
        ret = admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL,
                               attachment < 0 ? "the letter has no HTML part"
                                              : "the letter has no such attachment");
    else if (attachment < 0)
        ret = admin_http_sandboxed_html(r->c, mo_buf_cstr(&out), out.len);
    else
        ret = admin_http_download(r->c, mo_buf_cstr(&out), out.len,
                                  name[0] != '\0' ? name : "attachment");
    mo_buf_free(&out);
    free(data);
    return ret;
}

/* sandbox/ID[/html|/attachments/N] */
static enum MHD_Result
route_letter(struct panel_req *r, const char *rest)
{
    char id[SANDBOX_ID_MAX];
    const char *slash = strchr(rest, '/');
    size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    long index;

    if (n == 0 || n >= sizeof(id))
        return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, "id", NULL,
                                "no letter with that id in the sandbox");
    memcpy(id, rest, n);
    id[n] = '\0';
    if (!method_is(r, "GET"))
        return not_allowed(r, "GET");
    if (slash == NULL)
        return get_letter(r, id);
    if (strcmp(slash, "/html") == 0)
        return get_part(r, id, -1);
    if (strncmp(slash, "/attachments/", 13) == 0 &&
        mo_parse_long(slash + 13, 0, 100000, &index) == 0)
        return get_part(r, id, index);
    return admin_http_error(r->c, MHD_HTTP_NOT_FOUND, NULL, NULL, "there is nothing at %.200s",
                            r->path);
}

enum MHD_Result
panel_sandbox_route(struct panel_req *r, bool *handled)
{
    const char *path = r->path;

    *handled = true;
    if (strcmp(path, "sandbox") == 0) {
        if (method_is(r, "GET"))
            return get_sandbox(r);
        return method_is(r, "DELETE") ? delete_sandbox(r) : not_allowed(r, "GET, DELETE");
    }
    if (strcmp(path, "sandbox/fault") == 0)
        return method_is(r, "PUT") ? put_fault(r) : not_allowed(r, "PUT");
    if (strncmp(path, "sandbox/", 8) == 0)
        return route_letter(r, path + 8);
    *handled = false;
    return MHD_NO;
}
