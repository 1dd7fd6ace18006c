/*
 * mime.h - mailbox addresses and the MIME composer.
 *
 * Addresses: RFC 5322 3.4 mailboxes ("Name <local@domain>" or a bare
 * addr-spec), quoted local parts, IDN domains converted with libidn2
 * (RFC 5891), UTF-8 local parts (RFC 6531/6532) flagged so the SMTP layer can
 * ask for SMTPUTF8 or refuse clearly.
 * Composer: RFC 5322 headers, RFC 2045-2047 (MIME, encoded words),
 * RFC 2231 (attachment file names), multipart/alternative and /mixed.
 * Leaves out: parsing whole incoming messages (sendmail mode, later),
 * S/MIME, DKIM.
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

#endif
