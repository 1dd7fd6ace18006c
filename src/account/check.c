/*
 * check.c - the connection check and the confirmation letter: the seed's
 * green Test button, done with the real engine.
 *
 * A check connects, secures, logs in, offers the sender (MAIL FROM) and
 * resets, so nothing is sent; the test letter goes the whole way. Either way
 * the steps, their durations, the redacted transcript and, on failure, the
 * diagnosis (diagnose.c) are handed back. Leaves out: reading the letter back
 * from the mailbox (that needs IMAP).
 */
#include "account/account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/mime.h"

void
account_check_result_clear(struct account_check_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_transcript; i++)
        free(r->transcript[i]);
    free(r->transcript);
    memset(r, 0, sizeof(*r));
}

static void
check_take_session(struct account_check_result *r, const struct smtp_session *s)
{
    size_t n = smtp_session_transcript_count(s);

    r->n_steps = smtp_session_step_count(s);
    for (size_t i = 0; i < r->n_steps; i++)
        r->steps[i] = *smtp_session_step(s, i);
    r->transcript = calloc(n + 1, sizeof(*r->transcript));
    if (r->transcript == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        r->transcript[r->n_transcript] = strdup(smtp_session_transcript_line(s, i));
        if (r->transcript[r->n_transcript] != NULL)
            r->n_transcript++;
    }
}

/* Appends text to b with &, <, >, " escaped. */
static int
html_escape(struct mo_buf *b, const char *text, struct mo_error *err)
{
    for (const char *p = text; *p; p++) {
        const char *rep = *p == '&'   ? "&amp;"
                          : *p == '<' ? "&lt;"
                          : *p == '>' ? "&gt;"
                          : *p == '"' ? "&quot;"
                                      : NULL;
        if ((rep != NULL ? mo_buf_append_str(b, rep, err) : mo_buf_append(b, p, 1, err)) != 0)
            return -1;
    }
    return 0;
}

/* The settings the letter lists (never the password). */
static int
letter_rows(const struct account_settings *s, const char *rows[][2], char *server, size_t size)
{
    const struct account_provider *p =
        s->provider_id ? account_provider_find(s->provider_id) : NULL;
    int n = 0;

    snprintf(server, size, "%s, port %u, %s", s->host, s->port,
             s->security == SMTP_SECURITY_STARTTLS ? "STARTTLS"
             : s->security == SMTP_SECURITY_TLS    ? "SSL/TLS"
                                                   : "no encryption");
    rows[n][0] = "Mail service";
    rows[n++][1] = p != NULL ? p->name : "Other (own server)";
    rows[n][0] = "Server";
    rows[n++][1] = server;
    rows[n][0] = "User name";
    rows[n++][1] = s->username != NULL ? s->username : "(no login)";
    rows[n][0] = "Email";
    rows[n++][1] = s->email;
    rows[n][0] = "Sender's email";
    rows[n++][1] = s->sender != NULL ? s->sender : s->email;
    rows[n][0] = "Sender name";
    rows[n++][1] = s->sender_name != NULL ? s->sender_name : "(none)";
    return n;
}

static int
compose_letter(const struct account_settings *s, const struct mime_address *from,
               const struct mime_address *to, struct mo_buf *out, char *message_id,
               size_t message_id_size, struct mo_error *err)
{
    const char *rows[8][2];
    char server[400];
    struct mo_buf text;
    struct mo_buf html;
    struct mime_message msg;
    struct mime_header extra = {"X-Mailer", "mailout"};
    int n = letter_rows(s, rows, server, sizeof(server));
    int rc = -1;

    mo_buf_init(&text, 64 * 1024);
    mo_buf_init(&html, 64 * 1024);
    if (mo_buf_append_str(&text,
                          "This is the confirmation letter from mailout.\n\n"
                          "If you are reading it, your shop's mail settings work: mailout "
                          "connected to your mail service, signed in and sent this message.\n\n"
                          "Settings used (the password is never shown):\n",
                          err) != 0 ||
        mo_buf_append_str(&html,
                          "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">"
                          "<h2 style=\"color:#1a7f37\">&#10003; Your mail settings work</h2>"
                          "<p>This is the confirmation letter from mailout. If you are reading "
                          "it, mailout connected to your mail service, signed in and sent this "
                          "message.</p><p>Settings used (the password is never shown):</p>"
                          "<table cellpadding=\"4\">",
                          err) != 0)
        goto out;
    for (int i = 0; i < n; i++) {
        if (mo_buf_appendf(&text, err, "  %-15s %s\n", rows[i][0], rows[i][1]) != 0 ||
            mo_buf_append_str(&html, "<tr><th align=\"left\">", err) != 0 ||
            html_escape(&html, rows[i][0], err) != 0 ||
            mo_buf_append_str(&html, "</th><td>", err) != 0 ||
            html_escape(&html, rows[i][1], err) != 0 ||
            mo_buf_append_str(&html, "</td></tr>", err) != 0)
            goto out;
    }
    if (mo_buf_append_str(&text, "\nNo action is needed.\n", err) != 0 ||
        mo_buf_append_str(&html, "</table><p>No action is needed.</p></body></html>\n", err) != 0)
        goto out;
    memset(&msg, 0, sizeof(msg));
    msg.from = from;
    msg.to = to;
    msg.n_to = 1;
    msg.subject = "mailout: your mail settings work \xE2\x9C\x93";
    msg.text = mo_buf_cstr(&text);
    msg.html = mo_buf_cstr(&html);
    msg.headers = &extra;
    msg.n_headers = 1;
    rc = mime_compose(&msg, out, message_id, message_id_size, err);
out:
    mo_buf_free(&text);
    mo_buf_free(&html);
    return rc;
}

static void
check_options(const struct account_settings *s, struct smtp_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = s->host;
    o->port = s->port;
    o->security = s->security;
    o->username = s->username != NULL && s->username[0] ? s->username : NULL;
    o->secret = o->username != NULL ? s->password : NULL;
    o->auth = s->auth;
    o->ca_file = s->ca_file;
    smtp_timeouts_default(&o->timeouts);
    /* A person is waiting at the Test button: a minute at most unless told. */
    smtp_timeouts_cap(&o->timeouts, (s->timeout_s > 0 ? s->timeout_s : 60) * 1000);
}

int
account_check(const struct account_settings *s, bool send_test, const char *to,
              struct account_check_result *r)
{
    return account_check_ex(s, send_test, to, NULL, NULL, r);
}

int
account_check_ex(const struct account_settings *s, bool send_test, const char *to,
                 void (*on_step)(void *ctx, const struct smtp_step *step), void *ctx,
                 struct account_check_result *r)
{
    const struct account_provider *provider =
        s->provider_id != NULL ? account_provider_find(s->provider_id) : NULL;
    struct smtp_session *session = NULL;
    struct smtp_options opt;
    struct mime_address from;
    struct mime_address rcpt;
    struct smtp_send_result res;
    struct smtp_envelope env;
    struct mo_buf letter;
    char from_env[MIME_ADDRESS_MAX + 1];
    char to_env[MIME_ADDRESS_MAX + 1];
    const char *rcpts[1];
    const char *sender = s->sender != NULL ? s->sender : s->email;
    int rc = -1;

    memset(r, 0, sizeof(*r));
    memset(&from, 0, sizeof(from));
    memset(&rcpt, 0, sizeof(rcpt));
    memset(&res, 0, sizeof(res));
    mo_buf_init(&letter, 1024 * 1024);
    check_options(s, &opt);
    opt.on_step = on_step;
    opt.on_step_ctx = ctx;
    if (opt.username != NULL && opt.secret == NULL) {
        mo_error_set(&r->err, MO_ERR_CONFIG, "password", "no password is saved for this account");
        goto diagnose;
    }
    if (mime_address_parse(sender, "sender", &from, &r->err) != 0 ||
        mime_address_envelope(&from, from_env, sizeof(from_env), &r->err) != 0)
        goto diagnose;
    if (s->sender_name != NULL && s->sender_name[0] != '\0') {
        free(from.display_name);
        from.display_name = strdup(s->sender_name);
        if (from.display_name == NULL) {
            mo_error_set(&r->err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto diagnose;
        }
    }
    if (send_test) {
        if (mime_address_parse(to != NULL ? to : s->email, "to", &rcpt, &r->err) != 0 ||
            mime_address_envelope(&rcpt, to_env, sizeof(to_env), &r->err) != 0 ||
            compose_letter(s, &from, &rcpt, &letter, r->message_id, sizeof(r->message_id),
                           &r->err) != 0)
            goto diagnose;
        snprintf(r->to, sizeof(r->to), "%s", to_env);
    }
    session = smtp_session_new(&opt, &r->err);
    if (session == NULL)
        goto diagnose;
    if (smtp_session_open(session, &r->err) != 0)
        goto done;
    if (!send_test) {
        if (smtp_session_try_sender(session, from_env, &r->err) != 0)
            goto done;
    } else {
        rcpts[0] = to_env;
        env.from = from_env;
        env.rcpts = rcpts;
        env.n_rcpts = 1;
        env.needs_smtputf8 = from.has_utf8_local || rcpt.has_utf8_local;
        if (smtp_session_send(session, &env, letter.data, letter.len, &res, &r->err) != 0)
            goto done;
    }
    (void)smtp_session_quit(session, NULL);
    rc = 0;
done:
    check_take_session(r, session);
diagnose:
    if (rc != 0) {
        r->message_id[0] = '\0';
        account_diagnose(&r->err, provider, s, &r->diagnosis);
    }
    r->ok = rc == 0;
    smtp_send_result_clear(&res);
    smtp_session_free(session);
    mime_address_clear(&from);
    mime_address_clear(&rcpt);
    mo_buf_free(&letter);
    return rc;
}
