/*
 * mime.h - mailbox addresses and the MIME composer.
 *
 * Addresses: RFC 5322 3.4 mailboxes ("Name <local@domain>" or a bare
 * addr-spec), quoted local parts, IDN domains converted with libidn2
 * (RFC 5891), UTF-8 local parts (RFC 6531/6532) flagged so the SMTP layer can
 * ask for SMTPUTF8 or refuse clearly.
 * Composer: RFC 5322 headers, RFC 2045-2047 (MIME, encoded words),
 * RFC 2231 (attachment file names), multipart/alternative and /mixed.
 * Reading: the header block of an existing message (sendmail mode, the raw
 * API) and preparing it for submission (see the section at the end).
 * Leaves out: S/MIME, DKIM, parsing MIME bodies.
 */
#ifndef MAILOUT_MIME_H
#define MAILOUT_MIME_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_LOCAL_MAX 64    /* octets, RFC 5321 4.5.3.1.1 */
#define MIME_DOMAIN_MAX 255  /* octets of the ASCII form, RFC 5321 4.5.3.1.2 */
#define MIME_ADDRESS_MAX 254 /* octets of local@domain on the wire */

/*
 * One mailbox. All strings are owned by the struct (mime_address_clear).
 *   display_name: UTF-8, unquoted and unescaped; NULL when there is none.
 *   local:        the local part in its wire form: a dot-atom, or a
 *                 quoted-string with its quotes when it needs them.
 *   domain:       the domain as written (UTF-8 U-labels allowed), lowercased.
 *   domain_ascii: the domain in ASCII (IDNA A-labels), lowercased.
 *   has_utf8_local: the local part holds non-ASCII bytes (needs SMTPUTF8).
 */
struct mime_address {
    char *display_name;
    char *local;
    char *domain;
    char *domain_ascii;
    bool has_utf8_local;
};

/*
 * Parses one mailbox: "local@domain", "<local@domain>" or
 * "Display Name <local@domain>" (display name may be quoted and may be UTF-8).
 * Surrounding white space is ignored. field names the setting for errors
 * ("from", "to", "email", ...; static string). On success fills *out (which
 * the caller clears with mime_address_clear). Errors: CONFIG with err->field
 * = field and text saying what is wrong ("missing @", "domain is not valid: ...").
 */
int mime_address_parse(const char *text, const char *field, struct mime_address *out,
                       struct mo_error *err);

/*
 * Parses a comma-separated address list as found in a To/Cc header or a
 * command-line argument (groups "name: a@b, c@d;" are flattened). On success
 * *out is a malloc'd array of *n_out addresses (free with
 * mime_address_list_free); an empty list gives *out = NULL, *n_out = 0.
 * Errors: CONFIG with err->field = field.
 */
int mime_address_list_parse(const char *text, const char *field, struct mime_address **out,
                            size_t *n_out, struct mo_error *err);

/* Frees the strings of a and zeroes it. NULL is a no-op. */
void mime_address_clear(struct mime_address *a);
/* Clears each address and frees the array. NULL is a no-op. */
void mime_address_list_free(struct mime_address *list, size_t n);

/*
 * Writes the envelope form "local@domain_ascii" (no angle brackets) into
 * out. Errors: INTERNAL when out is too small.
 */
int mime_address_envelope(const struct mime_address *a, char *out, size_t out_size,
                          struct mo_error *err);

/*
 * Appends the header form of a to out: "local@domain" or
 * "Name <local@domain>", with the name quoted or RFC 2047-encoded as needed.
 * The domain is written in ASCII unless the local part is UTF-8 (then the
 * message needs SMTPUTF8 anyway and RFC 6532 headers are used).
 */
int mime_address_format(const struct mime_address *a, struct mo_buf *out, struct mo_error *err);

/* ---- composer ---------------------------------------------------------- */

struct mime_attachment {
    const char *filename;     /* UTF-8 base name shown to the recipient; required */
    const char *content_type; /* NULL: guessed from the file name's extension */
    const unsigned char *data;
    size_t len;
};

struct mime_header {
    const char *name;  /* a valid header field name (RFC 5322 ftext) */
    const char *value; /* UTF-8; no CR or LF */
};

/*
 * A message to compose. Everything is borrowed. Bcc is not here: it belongs to
 * the envelope only and never reaches the headers.
 */
struct mime_message {
    const struct mime_address *from; /* required */
    const struct mime_address *to;
    size_t n_to;
    const struct mime_address *cc;
    size_t n_cc;
    const struct mime_address *reply_to; /* NULL: none */
    const char *subject;                 /* UTF-8; NULL: empty subject */
    const char *text;                    /* UTF-8 plain text body; NULL: none */
    const char *html;                    /* UTF-8 HTML body; NULL: none */
    const struct mime_attachment *attachments;
    size_t n_attachments;
    const struct mime_header *headers; /* extra headers, e.g. X-Mailer */
    size_t n_headers;
    const char *message_id; /* without angle brackets; NULL: generated */
    int64_t date;           /* Unix seconds; 0: now */
};

/*
 * Composes msg as an RFC 5322 message with CRLF line ends into out (which the
 * caller initialised; its max_bytes bounds the message). Non-ASCII subjects
 * and display names become RFC 2047 encoded words; header lines are folded
 * under 78 characters; bodies are 7bit, quoted-printable or base64, chosen by
 * content, so no line passes 998 bytes; text+html become
 * multipart/alternative, attachments multipart/mixed.
 * message_id_out (may be NULL) receives the Message-ID without brackets.
 * Errors: CONFIG with field "subject", "header", "from", "to", "cc",
 * "reply_to" or "attachment" (a CR or LF in a header value, a bad header
 * name), "text" or "html" (a body that is not UTF-8), "message_id" (a
 * given id that is not left@right) or "date" (out of range); INTERNAL when
 * out's limit is reached. On error out keeps its previous content.
 */
int mime_compose(const struct mime_message *msg, struct mo_buf *out, char *message_id_out,
                 size_t message_id_size, struct mo_error *err);

/*
 * Makes a new unique Message-ID "<random>@domain" without brackets into out.
 * domain is the ASCII domain of the sender. Errors: INTERNAL.
 */
int mime_message_id_new(const char *domain, char *out, size_t out_size, struct mo_error *err);

/* ---- existing messages: the header block and submission (sendmail mode) --
 * A message handed over whole (PHP's mail(), cron, `mailout sendmail`) is read
 * the way MTAs read it, RFC 5322 2.2 and 3.6 with the usual tolerance:
 * CRLF, LF-only (PHP) or stray CR line ends (CR CR LF counts as one);
 * folded fields (unfolding removes the line breaks, RFC 5322 2.2.3); white
 * space before the colon (obs-optional, 4.5); 8-bit bytes in values, kept as
 * they are; a leading mbox "From " line, dropped; and a header block without
 * its blank line: the first line that is neither a field nor a continuation
 * starts the body. Implemented in headers.c.
 */

#define MIME_HEADERS_MAX_FIELDS 1000 /* more is refused (CONFIG, field "message") */

/* One field of a parsed header block. */
struct mime_header_field {
    char *name;    /* as written (case kept), NUL-terminated; owned */
    char *value;   /* unfolded: line breaks removed, surrounding white space trimmed;
                      may hold 8-bit bytes; NUL-terminated; owned */
    size_t offset; /* where the field starts in the parsed text */
    size_t raw_len; /* bytes of the field as written: folds and its line end included */
};

/* A parsed header block. Clear with mime_headers_clear. */
struct mime_headers {
    struct mime_header_field *fields; /* n fields in message order; owned */
    size_t n;
    size_t header_offset;  /* where the first field starts (after an mbox "From " line) */
    size_t body_offset;    /* where the body starts (after the blank line, if any) */
    bool has_blank_line;   /* the block ended with an empty line */
    bool has_mbox_from;    /* a leading "From " line was skipped */
};

/*
 * Parses the header block of msg[0..len) (no NUL needed at the end; a NUL
 * byte inside the header block is refused). Never fails on odd syntax: what
 * is not a field starts the body. On success *out owns its fields.
 * Errors: CONFIG (field "message") for a NUL byte in the header block or
 * more than MIME_HEADERS_MAX_FIELDS fields; INTERNAL (out of memory).
 */
int mime_headers_parse(const char *msg, size_t len, struct mime_headers *out,
                       struct mo_error *err);
/* Frees the fields and zeroes h. NULL is a no-op. */
void mime_headers_clear(struct mime_headers *h);

/* The first field called name (ASCII case-insensitive), or NULL. Borrowed from h. */
const struct mime_header_field *mime_headers_find(const struct mime_headers *h, const char *name);

/*
 * Collects the addresses of every field named in names (every occurrence,
 * e.g. {"To", "Cc", "Bcc"}) with mime_address_list_parse: groups are
 * flattened, empty groups ("undisclosed-recipients:;") give nothing.
 * With local_out, an element that is a bare local name ("root", as cron
 * writes it) is returned there (malloc'd strings; free each and the array)
 * instead of being an error; local_out NULL makes it an error.
 * *out: malloc'd, free with mime_address_list_free. Errors: CONFIG with
 * field (e.g. "to") naming the header and the address at fault; INTERNAL.
 */
int mime_headers_addresses(const struct mime_headers *h, const char *const *names,
                           size_t n_names, const char *field, struct mime_address **out,
                           size_t *n_out, char ***local_out, size_t *n_local_out,
                           struct mo_error *err);

/*
 * Decodes an unstructured header value (a Subject) for display and logs:
 * RFC 2047 encoded words in B (OpenSSL's base64) or Q, any charset iconv
 * knows, white space between adjacent encoded words dropped, and appends
 * it to out as UTF-8. Never fails on bad input: a word that does not decode
 * stays as written, invalid UTF-8 becomes U+FFFD, control characters
 * become spaces (so the result is one line). Errors: INTERNAL (out's limit,
 * out of memory).
 */
int mime_decode_words(const char *value, struct mo_buf *out, struct mo_error *err);

/* What mime_message_prepare adds or changes. Everything is borrowed. */
struct mime_prepare_options {
    /* The sender written as From when the message has none, or when its From
     * has no usable address (no @domain: "root (Cron Daemon)"; its display
     * name is kept). NULL: such a message keeps its From as it is, or none. */
    const struct mime_address *from;
    /* The display name for an added From (sendmail -F); NULL: from's own.
     * UTF-8; a CR or LF is refused (CONFIG, field "from_name"). */
    const char *from_name;
    /* With from NULL: a missing From becomes "from_name <local_user>" (a local
     * user such as "www-data"), which a later prepare with from completes
     * (sendmail mode's spool). NULL: no From is added. [A-Za-z0-9._+-] only. */
    const char *local_user;
    bool add_date;          /* add Date when missing (date, or now when 0) */
    int64_t date;
    bool add_message_id;    /* add Message-ID when missing */
    const char *message_id; /* the id to add, without brackets; NULL: a new random one
                               in the domain of the From (or of from) */
    bool remove_bcc;        /* drop Bcc and Resent-Bcc fields (RFC 5322 3.6.3) */
    bool encode_8bit;       /* a Subject, or From/To/Cc/Reply-To/Sender, with raw UTF-8
                               is rewritten with RFC 2047 encoded words */
};

/* What came out of mime_message_prepare. Clear with mime_prepared_clear. */
struct mime_prepared {
    char message_id[256]; /* the message's Message-ID without brackets, or "" */
    char *subject;        /* the Subject decoded (mime_decode_words), or NULL; owned */
    char *header_from;    /* the From field's value as written, or NULL; owned */
    bool added_from;
    bool replaced_from;   /* a From without a usable address was completed */
    bool added_date;
    bool added_message_id;
    size_t removed_bcc;   /* Bcc fields dropped */
};

void mime_prepared_clear(struct mime_prepared *p);

/*
 * Prepares an existing message for submission: parses msg[0..len) as
 * mime_headers_parse does, applies opt (Bcc removed; Date, Message-ID and
 * From added when missing; 8-bit headers encoded), writes the fields in
 * their order (added ones at the end of the block), the blank line and the
 * body, with every line end CRLF, to out (which the caller initialised; its
 * max_bytes bounds the result). A prepared message prepared again with the
 * same options comes out unchanged. info (may be NULL) says what was done.
 * Errors: CONFIG with field "message" (a NUL byte, too many fields),
 * "from_name" (a line break in it), "from" (an unusable sender), "message_id"
 * (a given id that is not left@right); INTERNAL (out's limit, memory).
 * On error out keeps its previous content.
 */
int mime_message_prepare(const char *msg, size_t len, const struct mime_prepare_options *opt,
                         struct mo_buf *out, struct mime_prepared *info, struct mo_error *err);

#endif
