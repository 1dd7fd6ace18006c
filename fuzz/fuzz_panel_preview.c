/*
 * fuzz_panel_preview.c - libFuzzer target for the admin panel's reading of a stored
 * message (panel_preview_json: header fields, multipart walk, base64 and
 * quoted-printable, charsets, RFC 2047/2231 file names) and for panel_json_text, which
 * turns any bytes (a server's reply) into a JSON string.
 *
 * Beyond crashes and leaks (ASan, UBSan), it traps when:
 *  - the preview is NULL (it must never fail on input) or does not serialize;
 *  - the preview's text is longer than PANEL_PREVIEW_MAX_BYTES, or there are more
 *    attachments or header fields than the limits;
 *  - panel_json_text gives NULL for any input (every byte string must become text).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/panel_internal.h"

static void
check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    json_t *o;
    json_t *pv;
    json_t *t;
    char *dumped;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    o = panel_preview_json(text, size);
    check(o != NULL);
    pv = json_object_get(o, "preview");
    check(json_is_null(pv) ||
          json_string_length(json_object_get(pv, "text")) <= PANEL_PREVIEW_MAX_BYTES + 4);
    check(json_array_size(json_object_get(o, "attachments")) <= PANEL_PREVIEW_MAX_ATTACHMENTS);
    check(json_array_size(json_object_get(o, "headers")) <= PANEL_PREVIEW_MAX_HEADERS);
    dumped = json_dumps(o, JSON_COMPACT);
    check(dumped != NULL);
    free(dumped);
    json_decref(o);

    t = panel_json_text(text); /* up to the first NUL, as C strings end */
    check(t != NULL && json_is_string(t));
    json_decref(t);
    free(text);
    return 0;
}
