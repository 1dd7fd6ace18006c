/*
 * json.c - the JSON shapes that several commands print, made in one place so
 * `send --json`, `account check --json` and `test --json` agree.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

json_t *
cli_json_int_or_null(long long v)
{
    return v != 0 ? json_integer(v) : json_null();
}

json_t *
cli_error_json(const struct mo_error *err)
{
    return json_pack("{s:s?, s:o, s:s?, s:s, s:s?, s:b}", "stage", err->stage, "code",
                     cli_json_int_or_null(err->smtp_code), "enhanced",
                     err->enhanced[0] ? err->enhanced : NULL, "text", err->text, "field",
                     err->field, "temporary", err->temporary);
}

json_t *
cli_steps_json(const struct smtp_step *steps, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:b, s:I}", "name", steps[i].name, "ok",
                                           steps[i].ok, "ms", (json_int_t)steps[i].ms));
    return a;
}

void
cli_json_print(json_t *o)
{
    char *text = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;

    /* A failed json_pack is a bug here, but the caller still gets one object. */
    puts(text != NULL ? text : "{\"ok\": false, \"error\": {\"text\": \"internal JSON error\"}}");
    free(text);
    json_decref(o);
}
