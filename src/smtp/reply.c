/*
 * reply.c - the SMTP reply parser: lines in, struct smtp_reply out.
 *
 * Why: every byte the server sends goes through here before the state
 * machine looks at it, so this is where a broken or hostile server is first
 * noticed. It is pure (no I/O, no allocation) so it can be unit-tested and
 * fuzzed on its own.
 *
 * Follows RFC 5321 4.2 (reply syntax: "NNN" SP/"-" text, multi-line replies
 * repeat the code), 4.5.3.1.5 (512 octets per reply line with CRLF),
 * RFC 3463 and RFC 2034 (enhanced status codes "class.subject.detail" at the
 * start of each line's text).
 * Leaves out: splitting the byte stream into lines (the connection does
 * that) and the meaning of codes (the session decides).
 */
#include "smtp/smtp.h"

#include <stdio.h>
#include <string.h>

/* How much of an offending line an error message shows. */
#define REPLY_SHOW_MAX 80

void
smtp_reply_parser_init(struct smtp_reply_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/*
 * Writes line into dst for an error message: printable ASCII as is, '"' and
 * '\' and every other byte as escapes, at most REPLY_SHOW_MAX source bytes.
 * The line comes from the network, so nothing in it may reach a terminal or
 * a log raw.
 */
static void
reply_show(const char *line, size_t len, char *dst, size_t dst_size)
{
    size_t used = 0;
    size_t n = len < REPLY_SHOW_MAX ? len : REPLY_SHOW_MAX;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        char piece[8];
        int w;

        if (c == '"' || c == '\\')
            w = snprintf(piece, sizeof(piece), "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            w = snprintf(piece, sizeof(piece), "%c", c);
        else
            w = snprintf(piece, sizeof(piece), "\\x%02x", c);
        if (w < 0 || (size_t)w >= dst_size - used)
            break;
        memcpy(dst + used, piece, (size_t)w);
        used += (size_t)w;
    }
    if (len > n && dst_size - used > 3) {
        memcpy(dst + used, "...", 3);
        used += 3;
    }
    dst[used] = '\0';
}

/* Fills err for a bad line and readies the parser for the next reply. */
static void
reply_fail(struct smtp_reply_parser *p, const char *line, size_t len, const char *why,
           struct mo_error *err)
{
    char shown[REPLY_SHOW_MAX * 4 + 8];

    reply_show(line, len, shown, sizeof(shown));
    mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server sent a malformed reply line: \"%s\" (%s)",
                 shown, why);
    smtp_reply_parser_init(p);
}

static bool
reply_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Length of the enhanced status code (RFC 3463) at the start of text, or 0.
 * It counts only when its class matches the reply code's first digit, so a
 * "250 5.1.1 ..." keeps its text intact, and only when a space or the end of
 * the line follows, so "2.0.0.1" is not taken for one.
 */
static size_t
reply_enhanced_len(const char *text, size_t len, char code_class)
{
    size_t i = 0;
    size_t digits;

    if (len < 5 || text[0] != code_class || text[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        digits = 0;
        while (i < len && digits < 4 && reply_is_digit(text[i])) {
            i++;
            digits++;
        }
        if (digits < 1 || digits > 3)
            return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ')
        return 0;
    return i;
}

int
smtp_reply_parse_line(struct smtp_reply_parser *p, const char *line, size_t len,
                      struct smtp_reply *out, struct mo_error *err)
{
    struct smtp_reply *cur = &p->cur;
    const char *text;
    size_t text_len;
    size_t enh_len;
    size_t have;
    int code;
    bool is_last;

    if (line == NULL)
        len = 0;
    if (len > SMTP_REPLY_LINE_MAX - 2) {
        reply_fail(p, line, len, "longer than 512 bytes", err);
        return -1;
    }
    if (len < 3 || !reply_is_digit(line[0]) || !reply_is_digit(line[1]) ||
        !reply_is_digit(line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        reply_fail(p, line, len, "not a three-digit code followed by a space or '-'", err);
        return -1;
    }
    /* 1xx is unused in SMTP and 6xx-9xx do not exist (RFC 5321 4.2.1). */
    if (line[0] < '2' || line[0] > '5') {
        reply_fail(p, line, len, "the code must be 200 to 599", err);
        return -1;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    is_last = (len == 3 || line[3] == ' ');

    if (p->in_reply && code != cur->code) {
        reply_fail(p, line, len, "the code changed inside a multi-line reply", err);
        return -1;
    }
    if (!p->in_reply) {
        memset(cur, 0, sizeof(*cur));
        cur->code = code;
    }
    if (cur->n_lines >= SMTP_REPLY_LINES_MAX) {
        reply_fail(p, line, len, "the reply has more than 128 lines", err);
        return -1;
    }

    text = len > 4 ? line + 4 : "";
    text_len = len > 4 ? len - 4 : 0;
    enh_len = reply_enhanced_len(text, text_len, line[0]);
    if (enh_len > 0) {
        if (cur->n_lines == 0) {
            memcpy(cur->enhanced, text, enh_len); /* at most 11 bytes: fits */
            cur->enhanced[enh_len] = '\0';
        }
        /* Gmail puts two spaces after it on continuation lines; drop them all. */
        while (enh_len < text_len && text[enh_len] == ' ')
            enh_len++;
        text += enh_len;
        text_len -= enh_len;
    }

    have = strlen(cur->text);
    if (have + (cur->n_lines > 0 ? 1 : 0) + text_len >= sizeof(cur->text)) {
        reply_fail(p, line, len, "the reply is longer than 4096 bytes", err);
        return -1;
    }
    if (cur->n_lines > 0)
        cur->text[have++] = '\n';
    for (size_t i = 0; i < text_len; i++) {
        unsigned char c = (unsigned char)text[i];
        /*
         * Control bytes (a NUL, a stray CR or LF) would cut the text short
         * or fake a line break; RFC 5321 text is printable anyway. UTF-8
         * (RFC 6531 servers) passes unchanged.
         */
        cur->text[have++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    cur->text[have] = '\0';
    cur->n_lines++;

    if (!is_last) {
        p->in_reply = true;
        return 0;
    }
    if (out != NULL)
        *out = *cur;
    smtp_reply_parser_init(p);
    return 1;
}
