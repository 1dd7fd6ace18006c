/*
 * fuzz_address.c - libFuzzer target for the address parser (mime module).
 *
 * Feeds arbitrary bytes (as a NUL-terminated copy) to mime_address_parse
 * and mime_address_list_parse; whatever parses is written back with
 * mime_address_format and mime_address_envelope. Beyond crashes and leaks
 * (ASan, UBSan), it traps when a parsed address or its header form holds
 * a CR or LF: that would be header injection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"

static void
check_no_line_break(const char *s)
{
    if (s != NULL && strpbrk(s, "\r\n") != NULL)
        abort();
}

static void
exercise(const struct mime_address *a)
{
    char envelope[MIME_ADDRESS_MAX + 1];
    struct mo_buf out;
    struct mo_error err;

    check_no_line_break(a->display_name);
    check_no_line_break(a->local);
    check_no_line_break(a->domain);
    check_no_line_break(a->domain_ascii);
    mo_buf_init(&out, 1 << 16);
    if (mime_address_format(a, &out, &err) == 0)
        check_no_line_break(mo_buf_cstr(&out));
    mo_buf_free(&out);
    /* the parser bounds local@domain_ascii to MIME_ADDRESS_MAX */
    if (mime_address_envelope(a, envelope, sizeof(envelope), &err) != 0)
        abort();
    check_no_line_break(envelope);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mime_address one = {0};
    struct mime_address *list = NULL;
    size_t n = 0;
    struct mo_error err;
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (mime_address_parse(text, "to", &one, &err) == 0) {
        exercise(&one);
        mime_address_clear(&one);
    }
    if (mime_address_list_parse(text, "to", &list, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            exercise(&list[i]);
        mime_address_list_free(list, n);
    }
    free(text);
    return 0;
}
