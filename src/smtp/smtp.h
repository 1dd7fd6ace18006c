/*
 * smtp.h - mailout's SMTP submission client.
 *
 * Follows RFC 5321 (SMTP), 6409 (submission), 3207 (STARTTLS), 8314
 * (implicit TLS), 4954 (AUTH), 4616 (PLAIN), 2195 (CRAM-MD5), 5802/7677
 * (SCRAM-SHA-256), 2920 (PIPELINING), 3463 (enhanced status codes),
 * 6531 (SMTPUTF8), 1870 (SIZE), 6152 (8BITMIME).
 *
 * Three layers, each usable alone:
 *   - pure parsers: reply lines -> struct smtp_reply, EHLO -> struct smtp_caps;
 *   - SASL client mechanisms (struct smtp_auth), pure as well;
 *   - the session: one connection, its state machine, and the transcript.
 * Leaves out: MX delivery (mailout always submits to a provider), CHUNKING
 * and DSN (parsed, not used), the server side.
 */
#ifndef MAILOUT_SMTP_H
#define MAILOUT_SMTP_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- replies (pure) ---------------------------------------------------- */

#define SMTP_REPLY_LINE_MAX 512  /* octets with CRLF, RFC 5321 4.5.3.1.5 */
#define SMTP_REPLY_TEXT_MAX 4096 /* all lines of one reply */
#define SMTP_REPLY_LINES_MAX 128

/*
 * One complete reply. text holds each line's text after the code, the
 * separator and (when present) the enhanced status code, lines joined by
 * '\n'. enhanced is the first line's enhanced code ("5.7.8") or "".
 */
struct smtp_reply {
    int code;
    char enhanced[MO_ENHANCED_MAX];
    char text[SMTP_REPLY_TEXT_MAX];
    size_t n_lines;
};

struct smtp_reply_parser {
    struct smtp_reply cur;
    bool in_reply; /* a "NNN-" line was seen and the last line is still due */
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);

/*
 * Feeds one line without its CRLF. Returns 1 when the line completed a reply
 * (copied into *out, parser ready for the next), 0 when more lines are due,
 * -1 when the line is malformed (not "NNN" + ' ' or '-', a code outside
 * 200-599, a code that changes inside a multi-line reply, a line over
 * SMTP_REPLY_LINE_MAX, too many lines or too much text): PROTOCOL error.
 * After -1 the parser is already reset (init again is harmless). Control
 * bytes other than HTAB in a line's text are stored as '?'.
 */
int smtp_reply_parse_line(struct smtp_reply_parser *p, const char *line, size_t len,
                          struct smtp_reply *out, struct mo_error *err);

/* ---- capabilities (pure) ----------------------------------------------- */

enum smtp_cap {
    SMTP_CAP_SIZE = 1u << 0,
    SMTP_CAP_PIPELINING = 1u << 1,
    SMTP_CAP_8BITMIME = 1u << 2,
    SMTP_CAP_SMTPUTF8 = 1u << 3,
    SMTP_CAP_ENHANCEDSTATUSCODES = 1u << 4,
    SMTP_CAP_AUTH = 1u << 5,
    SMTP_CAP_STARTTLS = 1u << 6,
    SMTP_CAP_CHUNKING = 1u << 7,
    SMTP_CAP_DSN = 1u << 8,
};

enum smtp_auth_mech {
    SMTP_AUTH_AUTO = 0, /* pick the strongest the server offers */
    SMTP_AUTH_PLAIN,
    SMTP_AUTH_LOGIN,
    SMTP_AUTH_CRAM_MD5,
    SMTP_AUTH_SCRAM_SHA_256,
    SMTP_AUTH_XOAUTH2,
    SMTP_AUTH_COUNT
};

struct smtp_caps {
    unsigned flags;      /* enum smtp_cap bits */
    uint64_t size_max;   /* SIZE's argument; 0 when absent or unlimited */
    unsigned auth_mechs; /* bit (1u << enum smtp_auth_mech) per offered mechanism */
};

/*
 * Parses an EHLO reply (code 250; line 1 is the greeting, the others are
 * keywords, case-insensitive, "AUTH=" old form accepted). Unknown keywords
 * are ignored. Returns 0, or -1 (PROTOCOL) when the reply is not a 250
 * (err->smtp_code, enhanced and temporary then come from the reply).
 */
int smtp_caps_parse(const struct smtp_reply *ehlo, struct smtp_caps *out, struct mo_error *err);

/* ---- SASL client mechanisms (pure) ------------------------------------- */

/* "PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "XOAUTH2", "auto". */
const char *smtp_auth_mech_name(enum smtp_auth_mech mech);
/* Case-insensitive; "auto" gives SMTP_AUTH_AUTO. 0 ok, -1 unknown. */
int smtp_auth_mech_parse(const char *name, enum smtp_auth_mech *out);

/*
 * The strongest mechanism in offered (a smtp_caps.auth_mechs mask):
 * SCRAM-SHA-256, CRAM-MD5, PLAIN, LOGIN. XOAUTH2 only when is_token is true
 * (then it is the only choice). SMTP_AUTH_AUTO when none fits.
 */
enum smtp_auth_mech smtp_auth_choose(unsigned offered, bool is_token);

struct smtp_auth;

/*
 * Starts the client side of one exchange. user and secret (the password, or
 * the bearer token for XOAUTH2) are copied and sent byte for byte: no
 * trimming, no character rules. Free with smtp_auth_free (wipes them).
 * Errors: CONFIG (field "auth") for SMTP_AUTH_AUTO; CONFIG (field
 * "username" or "password") when one is NULL or longer than 8192 bytes;
 * INTERNAL.
 */
struct smtp_auth *smtp_auth_new(enum smtp_auth_mech mech, const char *user, const char *secret,
                                struct mo_error *err);
void smtp_auth_free(struct smtp_auth *a);

/* Test hook: a fixed SCRAM client nonce (printable, no ','). 0 ok, -1. */
int smtp_auth_set_nonce(struct smtp_auth *a, const char *nonce);

/*
 * The initial response, base64-encoded, to send as "AUTH MECH <it>".
 * *has_initial is false for mechanisms that wait for a challenge (LOGIN,
 * CRAM-MD5); out is then left empty.
 */
int smtp_auth_initial(struct smtp_auth *a, struct mo_buf *out, bool *has_initial,
                      struct mo_error *err);

/*
 * Answers one 334 challenge (its base64 text, may be empty) with the next
 * base64 response in out (which may be empty: send an empty line). out is
 * emptied first, and wiped and left empty on failure; it holds encoded
 * secrets, so free it with mo_buf_wipe_free. Called before any initial
 * response with an empty challenge, it gives the initial response (RFC 4954
 * 4). LOGIN ignores the prompt texts.
 * Errors: AUTH (field "password") when SCRAM's server signature is wrong or
 * the server sent "e=" ("username" for e=unknown-user); AUTH (field
 * "password") for XOAUTH2's JSON error challenge, whose text is shown in
 * err->text (the server still expects an empty line before its 535;
 * RFC 7628 3.2.3); PROTOCOL for an undecodable or unexpected challenge;
 * INTERNAL when out's maximum is too small.
 */
int smtp_auth_step(struct smtp_auth *a, const char *challenge_b64, struct mo_buf *out,
                   struct mo_error *err);

/*
 * Called after the server's 235. For SCRAM, checks that the server proved
 * itself (a server-final message was verified). 0 ok, -1 AUTH error.
 */
int smtp_auth_finish(struct smtp_auth *a, struct mo_error *err);

/* ---- the session ------------------------------------------------------- */

enum smtp_security {
    SMTP_SECURITY_STARTTLS = 0, /* plain connect, then STARTTLS (port 587) */
    SMTP_SECURITY_TLS,          /* TLS from the first byte (port 465) */
    SMTP_SECURITY_NONE,         /* no TLS; AUTH only to a loopback address */
    SMTP_SECURITY_COUNT
};

/* "starttls", "tls", "none". */
const char *smtp_security_name(enum smtp_security security);
/* Accepts "starttls", "tls", "ssl", "none" (any case). 0 ok, -1 unknown. */
int smtp_security_parse(const char *name, enum smtp_security *out);

/* Per-command timeouts in milliseconds (RFC 5321 4.5.3.2 defaults). */
struct smtp_timeouts {
    int connect_ms;
    int greeting_ms;
    int command_ms; /* EHLO, STARTTLS, AUTH, RSET, QUIT */
    int mail_ms;
    int rcpt_ms;
    int data_init_ms; /* the 354 */
    int data_block_ms;
    int data_term_ms; /* the reply after "." */
};

void smtp_timeouts_default(struct smtp_timeouts *t);
/* Lowers every timeout above max_ms to max_ms. */
void smtp_timeouts_cap(struct smtp_timeouts *t, int max_ms);

struct smtp_step;

struct smtp_options {
    const char *host; /* DNS name or IP literal; required */
    unsigned port;    /* required */
    enum smtp_security security;
    const char *username;     /* NULL: no AUTH */
    const char *secret;       /* password or XOAUTH2 token; NULL only without username */
    enum smtp_auth_mech auth; /* SMTP_AUTH_AUTO: strongest offered */
    const char *ca_file;      /* NULL: the system's trust store */
    const char *helo_name;    /* NULL: this machine's name */
    struct smtp_timeouts timeouts;
    /* NULL, or called as each step ends (after it is recorded), from the
     * session's thread, with on_step_ctx; step is borrowed for the call. */
    void (*on_step)(void *ctx, const struct smtp_step *step);
    void *on_step_ctx;
};

/* One recipient's outcome. address is borrowed from the envelope. */
struct smtp_rcpt_result {
    const char *address;
    bool ok;
    int code;
    char enhanced[MO_ENHANCED_MAX];
    char text[256];
};

struct smtp_envelope {
    const char *from;         /* addr-spec, no brackets; "" for the null sender */
    const char *const *rcpts; /* addr-specs */
    size_t n_rcpts;
    bool needs_smtputf8; /* an address or header holds UTF-8 (RFC 6531) */
};

struct smtp_send_result {
    struct smtp_rcpt_result *rcpts; /* n_rcpts entries, owned; smtp_send_result_clear */
    size_t n_rcpts;
    size_t n_accepted;
    int code; /* the reply to the final "." */
    char enhanced[MO_ENHANCED_MAX];
    char text[512];       /* e.g. "OK queued as 4Bx..." */
    bool maybe_delivered; /* the line broke after "." and before its reply */
};

void smtp_send_result_clear(struct smtp_send_result *res);

struct smtp_session;

/*
 * A session for opt (copied, the secret included; wiped on free).
 * Nothing touches the network until smtp_session_open. Errors: CONFIG, INTERNAL.
 */
struct smtp_session *smtp_session_new(const struct smtp_options *opt, struct mo_error *err);
/* Closes the connection without QUIT if still open, wipes secrets. NULL ok. */
void smtp_session_free(struct smtp_session *s);

/*
 * Resolves, connects, (TLS), greeting, EHLO, (STARTTLS, EHLO again), AUTH.
 * Errors: DNS, CONNECT, TLS, PROTOCOL, AUTH, REJECTED; err->stage names the
 * stage, err->field the setting at fault when it is known.
 */
int smtp_session_open(struct smtp_session *s, struct mo_error *err);

/* The capabilities of the last EHLO (after STARTTLS, the second one). */
const struct smtp_caps *smtp_session_caps(const struct smtp_session *s);
/* True when TLS was established on the last connection (also after QUIT). */
bool smtp_session_is_tls(const struct smtp_session *s);

/*
 * One transaction on an open session: MAIL FROM (SIZE=, BODY=8BITMIME,
 * SMTPUTF8 as needed), RCPT TO for each recipient, DATA with dot-stuffing,
 * pipelined when the server offers PIPELINING. msg must use CRLF line ends.
 * A previous failed transaction is reset first (RSET).
 * Returns 0 when the server accepted the message for at least one recipient
 * (res says which), -1 otherwise: REJECTED (MAIL, all RCPTs, or DATA refused;
 * err->temporary for 4xx), PROTOCOL (drop, timeout, garbage: temporary),
 * CONFIG (UTF-8 needed but SMTPUTF8 not offered; message over SIZE).
 * res is filled in both cases.
 */
int smtp_session_send(struct smtp_session *s, const struct smtp_envelope *env, const char *msg,
                      size_t msg_len, struct smtp_send_result *res, struct mo_error *err);

/*
 * MAIL FROM:<from> then RSET: does the server accept this sender? Nothing is
 * sent. Errors as smtp_session_send, field "sender" on refusal.
 */
int smtp_session_try_sender(struct smtp_session *s, const char *from, struct mo_error *err);

/* Sends QUIT, reads its reply, closes. Errors: PROTOCOL (stage "quit"). */
int smtp_session_quit(struct smtp_session *s, struct mo_error *err);

/*
 * The transcript so far: lines "C: ..." (sent), "S: ..." (received) and
 * "*: ..." (events such as "TLS 1.3 established"). AUTH payloads appear as
 * "C: <redacted>". Borrowed, valid until the next call on s.
 */
size_t smtp_session_transcript_count(const struct smtp_session *s);
const char *smtp_session_transcript_line(const struct smtp_session *s, size_t i);

/*
 * The steps of the last open and send, in order, each with its duration:
 * "dns", "connect", "tls", "greeting", "login", "sender" (try_sender),
 * "send". A failed step is the last one, with ok false. Borrowed.
 */
struct smtp_step {
    const char *name;
    bool ok;
    int64_t ms;
};

#define SMTP_STEPS_MAX 12

size_t smtp_session_step_count(const struct smtp_session *s);
const struct smtp_step *smtp_session_step(const struct smtp_session *s, size_t i);

/* Forgets the transcript so far (a long-lived session hands it out piece by piece). */
void smtp_session_transcript_clear(struct smtp_session *s);

/* Stops recording the transcript (for bulk sending); events still count. */
void smtp_session_set_transcript(struct smtp_session *s, bool on);

#endif
