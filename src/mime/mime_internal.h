/*
 * mime_internal.h - helpers shared by address.c, compose.c and encode.c.
 *
 * Why: the address formatter and the composer both need encoded words and
 * header folding; keeping them in one place keeps the limits in one place.
 * Not part of the module's interface: only the mime module and its unit
 * tests include this file.
 * RFCs: 5322 2.1.1 and 2.2.3 (line limits, folding), 2045 6.7-6.8
 * (quoted-printable, base64), 2047 (encoded words), 2231 (parameter values).
 */
#ifndef MAILOUT_MIME_INTERNAL_H
#define MAILOUT_MIME_INTERNAL_H

#include "common/common.h"
#include "mime/mime.h"

#include <stdbool.h>
#include <stddef.h>

#define MIME_LINE_SOFT 78    /* RFC 5322 2.1.1: SHOULD, without the CRLF */
#define MIME_LINE_HARD 998   /* RFC 5322 2.1.1: MUST, without the CRLF */
#define MIME_EW_MAX 75       /* RFC 2047 2: longest encoded word */
#define MIME_EW_MIN 24       /* the shortest word that holds any UTF-8 character in Q */
#define MIME_DESCRIBE_MAX 96 /* bytes of user input quoted in an error text */

/* ---- characters -------------------------------------------------------- */

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool mime_utf8_valid(const char *s, size_t len);
/* Length of the UTF-8 character at s (1 for a stray byte); s must hold n > 0 bytes. */
size_t mime_utf8_char_len(const char *s, size_t n);
bool mime_is_ascii(const char *s, size_t len);
/* Index of the first control character (C0 or DEL; HTAB only if !allow_tab), or len. */
size_t mime_find_ctl(const char *s, size_t len, bool allow_tab);
/* "a line break (CR or LF)", "a NUL byte" or "a control character". Static. */
const char *mime_ctl_name(unsigned char c);
/* RFC 5322 3.2.3 atext, ASCII only. */
bool mime_is_atext(unsigned char c);
/*
 * Copies s into out for quoting in an error text: control characters become
 * \r, \n, \t or \xNN, '"' and '\' are escaped, and a long input is cut at a
 * character boundary with "...". out_size should be >= MIME_DESCRIBE_MAX.
 */
void mime_describe(const char *s, size_t len, char *out, size_t out_size);

/* ---- addresses --------------------------------------------------------- */

/*
 * Checks an address handed to the composer (it may have been built by hand):
 * the display name must be UTF-8 without control characters, and
 * "local@domain_ascii" must parse as an address. Errors: CONFIG with field.
 */
int mime_address_check(const struct mime_address *a, const char *field, struct mo_error *err);

/* ---- encodings --------------------------------------------------------- */

enum mime_cte { MIME_CTE_7BIT, MIME_CTE_QP, MIME_CTE_BASE64 };

/* "7bit", "quoted-printable" or "base64". */
const char *mime_cte_name(enum mime_cte cte);

/*
 * Picks the transfer encoding of a text body whose line ends are already
 * CRLF: 7bit for ASCII with lines <= 998, else quoted-printable or base64,
 * whichever is shorter.
 */
enum mime_cte mime_cte_choose(const unsigned char *data, size_t len);

/* Appends data with every bare CR, bare LF and CRLF turned into CRLF. */
int mime_crlf_normalize(const char *data, size_t len, struct mo_buf *out, struct mo_error *err);

/*
 * Appends data as quoted-printable (RFC 2045 6.7): CRLF pairs are hard line
 * breaks, lines are at most 76 characters, trailing white space, '=', a '.'
 * or "From " at a line start are encoded. Non-empty output ends with CRLF
 * (a soft break when data does not end in CRLF), so decoding is exact.
 */
int mime_qp_encode(const unsigned char *data, size_t len, struct mo_buf *out, struct mo_error *err);

/* Appends data as base64 (OpenSSL) in lines of 76 characters, each ending in CRLF. */
int mime_base64_encode(const unsigned char *data, size_t len, struct mo_buf *out,
                       struct mo_error *err);

/*
 * Appends s (valid UTF-8) as RFC 2047 encoded words "=?UTF-8?B?...?=" or
 * "=?UTF-8?Q?...?=" (whichever is shorter for s), separated by single
 * spaces. The first word is at most first_max characters (raised to
 * MIME_EW_MIN), the others at most MIME_EW_MAX; a UTF-8 character is never
 * split across words, and a word preferably ends just after a space of s
 * (the space stays inside the word: white space between two encoded words
 * is dropped by RFC 2047 decoders). The Q form only leaves letters, digits and "!*+-/"
 * plain, so the words are valid in a phrase as well as in unstructured text.
 * An empty s appends nothing.
 */
int mime_ew_encode(const char *s, size_t len, size_t first_max, struct mo_buf *out,
                   struct mo_error *err);

/* ---- header folding ---------------------------------------------------- */

/*
 * A header line being written: pieces are separated by one space, which
 * becomes CRLF SP when the next piece would pass MIME_LINE_SOFT. A fold
 * right after "Name:" happens only when may_fold_at_start is set (structured
 * headers, where FWS may open the field body); no line holds only white
 * space; a line that would pass MIME_LINE_HARD is an error (CONFIG, field).
 */
struct mime_fold {
    struct mo_buf *out;
    const char *name;  /* header name, for error texts */
    const char *field; /* error field */
    size_t col;        /* octets on the current line */
    bool line_has_text;
    bool is_first_line;
    bool may_fold_at_start; /* set by the caller after mime_fold_begin */
};

/* Writes "Name:". field is the error field for over-long lines. */
int mime_fold_begin(struct mime_fold *f, struct mo_buf *out, const char *name, const char *field,
                    struct mo_error *err);
/* Appends " piece" (or CRLF SP piece). */
int mime_fold_piece(struct mime_fold *f, const char *piece, size_t len, struct mo_error *err);
/*
 * Appends " text", kept on one line when it fits the current or a fresh
 * line, else split at its spaces (not inside <...> when angle_aware).
 * Splitting inside a quoted-string is fine: RFC 5322 allows FWS there and
 * unfolding gives back the same space.
 */
int mime_fold_text(struct mime_fold *f, const char *text, size_t len, bool angle_aware,
                   struct mo_error *err);
/* Ends the header with CRLF. */
int mime_fold_end(struct mime_fold *f, struct mo_error *err);

/*
 * Appends the parameter attr with value (UTF-8) in RFC 2231 form as fold
 * pieces: attr*=utf-8''%XX.. or, when long, attr*0*=utf-8''..; attr*1*=...
 * Segments hold at most about 60 characters and never split a character.
 * Each piece but the last ends in ';'; the last ends in ';' when more_follow.
 */
int mime_fold_param_2231(struct mime_fold *f, const char *attr, const char *value, size_t len,
                         bool more_follow, struct mo_error *err);

#endif
