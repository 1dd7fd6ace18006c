/*
 * send.c - `mailout send`: compose one message from the command line and
 * either queue it for a stored account (the default) or submit it now,
 * printing what happened (or one JSON object with --json).
 *
 * Three ways, chosen by the options:
 *  - with --host: submitted now with the settings given on the command line
 *    (the engine's test path): options -> validation (every problem at once,
 *    each with its field) -> mime_compose -> smtp_session_open ->
 *    smtp_session_send -> QUIT. `--raw` hands over to send_raw.c.
 *  - without --host: composed for the stored account --account (default
 *    "default"; its sender unless --from) and queued: queue_add when this
 *    user may write the data folder's database, else the spool (as sendmail
 *    mode does; the service imports it). Prints the queue id.
 *  - without --host, with --now: submitted now with the stored account's
 *    settings and password (as `mailout account check` does).
 * A password given here comes from standard input or a file, never from the
 * command line (where `ps` would show it), and is never printed.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/send.h"
#include "cli/sendmail.h"
#include "mime/mime.h"
#include "queue/queue.h"
#include "smtp/smtp.h"

#define SEND_MAX_ERRORS 32

struct send_problems {
    struct {
        const char *field;
        char message[MO_ERROR_TEXT_MAX];
    } items[SEND_MAX_ERRORS];
    size_t n;
};

static void
problem_add(struct send_problems *p, const char *field, const char *message)
{
    if (p->n >= SEND_MAX_ERRORS)
        return;
    p->items[p->n].field = field;
    snprintf(p->items[p->n].message, sizeof(p->items[p->n].message), "%s", message);
    p->n++;
}

static void
send_usage(FILE *out)
{
    fputs("usage: mailout send [--account NAME] [--now] [--from ADDR] --to ADDR [...]\n"
          "       mailout send --host HOST --port PORT --security starttls|tls|none\n"
          "         [--username USER (--password-stdin | --password-file FILE)]\n"
          "         --from ADDR --to ADDR [--to ADDR ...] [--cc ADDR ...] [--bcc ADDR ...]\n"
          "         [--subject TEXT] [--text-file FILE] [--html-file FILE] [--attach FILE ...]\n"
          "         [--ca-file FILE] [--auth plain|login|cram-md5|scram-sha-256|xoauth2]\n"
          "         [--timeout SECONDS] [--json]\n"
          "       mailout send ... --raw FILE|FOLDER [--connections N]\n"
          "\n"
          "Without --host the message is queued for the stored account NAME (default:\n"
          "\"default\"; From is its sender unless --from) and the service delivers it;\n"
          "--now sends it at once with that account's settings instead.\n"
          "With --host it is sent now with the settings given here. Without --username no\n"
          "login is tried (for relays that need none). With xoauth2 the \"password\" is the\n"
          "OAuth2 bearer token.\n"
          "Exit status: 0 queued, or sent to every recipient; 1 failed, 2 bad usage or input,\n"
          "75 temporary failure (try again later).\n",
          out);
}

int
send_exit_code(const struct mo_error *err)
{
    if (err->category == MO_ERR_CONFIG)
        return CLI_EXIT_USAGE;
    if (err->temporary)
        return CLI_EXIT_TEMPFAIL;
    return CLI_EXIT_FAILED;
}

/* ---- output ------------------------------------------------------------------ */

static json_t *
transcript_json(const struct smtp_session *s)
{
    json_t *a = json_array();

    for (size_t i = 0; s != NULL && i < smtp_session_transcript_count(s); i++)
        json_array_append_new(a, json_string(smtp_session_transcript_line(s, i)));
    return a;
}

/* One line a step: "  ok    tls        3 ms". */
static void
print_steps(FILE *out, const struct smtp_session *s)
{
    for (size_t i = 0; s != NULL && i < smtp_session_step_count(s); i++) {
        const struct smtp_step *st = smtp_session_step(s, i);
        fprintf(out, "  %-6s %-9s %5lld ms\n", st->ok ? "ok" : "FAILED", st->name,
                (long long)st->ms);
    }
}

static void
print_problems(const struct send_opts *o, const struct send_problems *p)
{
    if (o->json) {
        json_t *list = json_array();
        for (size_t i = 0; i < p->n; i++)
            json_array_append_new(list, json_pack("{s:s?, s:s}", "field", p->items[i].field,
                                                  "message", p->items[i].message));
        cli_json_print(
            json_pack("{s:b, s:o, s:o}", "ok", 0, "errors", list, "error",
                      json_pack("{s:n, s:s, s:s?, s:b}", "stage", "text", p->items[0].message,
                                "field", p->items[0].field, "temporary", 0)));
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        fprintf(stderr, "mailout send: %s%s%s\n", p->items[i].field ? p->items[i].field : "",
                p->items[i].field ? ": " : "", p->items[i].message);
}

static void
print_failure_text(const struct mo_error *err)
{
    fprintf(stderr, "mailout send: failed at %s: %s\n", err->stage ? err->stage : "start",
            err->text);
    if (err->field != NULL)
        fprintf(stderr, "  setting at fault: %s\n", err->field);
    fprintf(stderr, "  %s\n",
            err->temporary ? "this looks temporary: try again later"
                           : "this will not pass by itself: fix it and retry");
}

/* ---- options ------------------------------------------------------------------ */

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SECURITY,
    OPT_USERNAME,
    OPT_PASSWORD_STDIN,
    OPT_PASSWORD_FILE,
    OPT_FROM,
    OPT_TO,
    OPT_CC,
    OPT_BCC,
    OPT_SUBJECT,
    OPT_TEXT_FILE,
    OPT_HTML_FILE,
    OPT_ATTACH,
    OPT_CA_FILE,
    OPT_AUTH,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_RAW,
    OPT_CONNECTIONS,
    OPT_ACCOUNT,
    OPT_NOW,
    OPT_HELP,
};

/* Which way the message goes (see the top of the file). */
struct send_mode {
    bool host_given;         /* --host: the settings are all on the command line */
    const char *account;     /* --account NAME; NULL: "default" */
    bool now;                /* --now */
    const char *conn_option; /* the first connection option given, e.g. "--port" */
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"security", required_argument, NULL, OPT_SECURITY},
    {"username", required_argument, NULL, OPT_USERNAME},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"cc", required_argument, NULL, OPT_CC},
    {"bcc", required_argument, NULL, OPT_BCC},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"text-file", required_argument, NULL, OPT_TEXT_FILE},
    {"html-file", required_argument, NULL, OPT_HTML_FILE},
    {"attach", required_argument, NULL, OPT_ATTACH},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"auth", required_argument, NULL, OPT_AUTH},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"raw", required_argument, NULL, OPT_RAW},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"now", no_argument, NULL, OPT_NOW},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void
list_add(const char **list, size_t *n, const char *value, const char *field,
         struct send_problems *p)
{
    if (*n >= SEND_MAX_LIST) {
        problem_add(p, field, "too many addresses");
        return;
    }
    list[(*n)++] = value;
}

/*
 * Parses argv into o. Returns 0, or -1 after printing usage (help_only is set
 * for --help). Problems with values are collected in p, not fatal here.
 */
static int
parse_options(int argc, char **argv, struct send_opts *o, struct send_problems *p,
              const char **password_file, bool *password_stdin, bool *help_only,
              struct send_mode *mode)
{
    long v;
    int c;

    smtp_timeouts_default(&o->smtp.timeouts);
    o->smtp.security = SMTP_SECURITY_STARTTLS;
    o->connections = 1;
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_PORT:
        case OPT_SECURITY:
        case OPT_USERNAME:
        case OPT_PASSWORD_STDIN:
        case OPT_PASSWORD_FILE:
        case OPT_CA_FILE:
        case OPT_AUTH:
        case OPT_RAW:
        case OPT_CONNECTIONS:
            for (size_t k = 0; mode->conn_option == NULL && long_options[k].name != NULL; k++)
                if (long_options[k].val == c)
                    mode->conn_option = long_options[k].name;
            break;
        default:
            break;
        }
        switch (c) {
        case OPT_HOST:
            o->smtp.host = optarg;
            mode->host_given = true;
            break;
        case OPT_ACCOUNT:
            mode->account = optarg;
            break;
        case OPT_NOW:
            mode->now = true;
            break;
        case OPT_PORT:
            if (mo_parse_long(optarg, 1, 65535, &v) != 0)
                problem_add(p, "port", "the port must be a number from 1 to 65535");
            else
                o->smtp.port = (unsigned)v;
            break;
        case OPT_SECURITY:
            if (smtp_security_parse(optarg, &o->smtp.security) != 0)
                problem_add(p, "security", "security must be starttls, tls or none");
            break;
        case OPT_USERNAME:
            o->smtp.username = optarg;
            break;
        case OPT_PASSWORD_STDIN:
            *password_stdin = true;
            break;
        case OPT_PASSWORD_FILE:
            *password_file = optarg;
            break;
        case OPT_FROM:
            o->from = optarg;
            break;
        case OPT_TO:
            list_add(o->to, &o->n_to, optarg, "recipient", p);
            break;
        case OPT_CC:
            list_add(o->cc, &o->n_cc, optarg, "recipient", p);
            break;
        case OPT_BCC:
            list_add(o->bcc, &o->n_bcc, optarg, "recipient", p);
            break;
        case OPT_SUBJECT:
            o->subject = optarg;
            break;
        case OPT_TEXT_FILE:
            o->text_file = optarg;
            break;
        case OPT_HTML_FILE:
            o->html_file = optarg;
            break;
        case OPT_ATTACH:
            if (o->n_attach >= sizeof(o->attach) / sizeof(o->attach[0]))
                problem_add(p, "attach", "too many attachments (64 at most)");
            else
                o->attach[o->n_attach++] = optarg;
            break;
        case OPT_CA_FILE:
            o->smtp.ca_file = optarg;
            break;
        case OPT_AUTH:
            if (smtp_auth_mech_parse(optarg, &o->smtp.auth) != 0)
                problem_add(p, "auth",
                            "unknown login method (plain, login, cram-md5, scram-sha-256, "
                            "xoauth2)");
            break;
        case OPT_TIMEOUT:
            if (mo_parse_long(optarg, 1, 3600, &v) != 0)
                problem_add(p, "timeout", "the timeout must be 1 to 3600 seconds");
            else
                smtp_timeouts_cap(&o->smtp.timeouts, (int)v * 1000);
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_RAW:
            o->raw_path = optarg;
            break;
        case OPT_CONNECTIONS:
            if (mo_parse_long(optarg, 1, 64, &v) != 0)
                problem_add(p, "connections", "connections must be 1 to 64");
            else
                o->connections = v;
            break;
        case OPT_HELP:
            *help_only = true;
            send_usage(stdout);
            return -1;
        default:
            send_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mailout send: unexpected argument \"%s\"\n", argv[optind]);
        send_usage(stderr);
        return -1;
    }
    return 0;
}

/* The checks of the stored-account ways (no --host). */
static void
validate_stored(const struct send_opts *o, const struct send_mode *mode, struct send_problems *p)
{
    char msg[MO_ERROR_TEXT_MAX];

    if (mode->conn_option != NULL) {
        snprintf(msg, sizeof(msg),
                 "--%s is a connection setting: give --host and the rest too to send with "
                 "settings given here, or keep it in the account (mailout account set)",
                 mode->conn_option);
        problem_add(p, "host", msg);
    }
    if (mode->account != NULL && mode->account[0] == '\0')
        problem_add(p, "account", "--account needs an account's name");
    if (o->n_to + o->n_cc + o->n_bcc == 0)
        problem_add(p, "recipient", "at least one --to, --cc or --bcc is required");
    if (o->subject != NULL && strpbrk(o->subject, "\r\n") != NULL)
        problem_add(p, "subject", "the subject must be one line (it contains a line break)");
}

/* Checks what needs no network: all problems at once. */
static void
validate(const struct send_opts *o, const char *password_file, bool password_stdin,
         const struct send_mode *mode, struct send_problems *p)
{
    if (!mode->host_given) {
        validate_stored(o, mode, p);
        return;
    }
    if (mode->account != NULL)
        problem_add(p, "account",
                    "--account sends with a stored account's settings: drop --host and the "
                    "other connection options, or drop --account");
    if (o->smtp.host == NULL)
        problem_add(p, "host", "--host is required (the mail server, e.g. smtp.gmail.com)");
    if (o->smtp.port == 0)
        problem_add(p, "port", "--port is required (587 for STARTTLS, 465 for SSL/TLS)");
    if (o->from == NULL)
        problem_add(p, "sender", "--from is required (the sender's address)");
    if (o->n_to + o->n_cc + o->n_bcc == 0)
        problem_add(p, "recipient", "at least one --to, --cc or --bcc is required");
    if (o->smtp.username != NULL && password_file == NULL && !password_stdin)
        problem_add(p, "password", "with --username give --password-stdin or --password-file");
    if (o->smtp.username == NULL && (password_file != NULL || password_stdin))
        problem_add(p, "username", "a password was given without --username");
    if (password_file != NULL && password_stdin)
        problem_add(p, "password", "use --password-stdin or --password-file, not both");
    if (o->subject != NULL && strpbrk(o->subject, "\r\n") != NULL)
        problem_add(p, "subject", "the subject must be one line (it contains a line break)");
    if (o->raw_path != NULL &&
        (o->subject != NULL || o->text_file != NULL || o->html_file != NULL || o->n_attach))
        problem_add(p, "raw",
                    "--raw sends files as they are: drop --subject, --text-file, "
                    "--html-file and --attach");
}

static int
parse_address_list(const char *const *in, size_t n, const char *field, struct mime_address *out,
                   struct send_problems *p)
{
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        struct mo_error err;

        if (mime_address_parse(in[i], field, &out[i], &err) != 0) {
            problem_add(p, field, err.text);
            rc = -1;
        }
    }
    return rc;
}

/* ---- the compose path ---------------------------------------------------------- */

struct compose_state {
    struct mime_address from;
    struct mime_address *to;
    struct mime_address *cc;
    struct mime_address *bcc;
    struct mo_buf text;
    struct mo_buf html;
    struct mo_buf files[64];
    struct mime_attachment attachments[64];
    struct mo_buf message;
    char message_id[256];
    char from_env[MIME_ADDRESS_MAX + 1];
    const char **rcpts;
    char *rcpt_storage;
};

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static int
compose(const struct send_opts *o, const char *from_name, struct compose_state *cs,
        struct send_problems *p, struct mo_error *err)
{
    struct mime_message msg;
    size_t n_rcpts = o->n_to + o->n_cc + o->n_bcc;
    int bad = 0;

    cs->to = calloc(o->n_to + 1, sizeof(*cs->to));
    cs->cc = calloc(o->n_cc + 1, sizeof(*cs->cc));
    cs->bcc = calloc(o->n_bcc + 1, sizeof(*cs->bcc));
    cs->rcpts = calloc(n_rcpts + 1, sizeof(*cs->rcpts));
    cs->rcpt_storage = calloc(n_rcpts + 1, MIME_ADDRESS_MAX + 1);
    if (!cs->to || !cs->cc || !cs->bcc || !cs->rcpts || !cs->rcpt_storage) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    if (mime_address_parse(o->from, "sender", &cs->from, err) != 0) {
        problem_add(p, "sender", err->text);
        bad = -1;
    } else if (from_name != NULL && from_name[0] != '\0') {
        /* the stored account's sender name (its sender address came as o->from) */
        free(cs->from.display_name);
        cs->from.display_name = strdup(from_name);
        if (cs->from.display_name == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
    }
    bad |= parse_address_list(o->to, o->n_to, "recipient", cs->to, p);
    bad |= parse_address_list(o->cc, o->n_cc, "recipient", cs->cc, p);
    bad |= parse_address_list(o->bcc, o->n_bcc, "recipient", cs->bcc, p);
    if (o->text_file != NULL &&
        io_read_file(o->text_file, SEND_MAX_MESSAGE, "text_file", &cs->text, err) != 0) {
        problem_add(p, "text_file", err->text);
        bad = -1;
    }
    if (o->html_file != NULL &&
        io_read_file(o->html_file, SEND_MAX_MESSAGE, "html_file", &cs->html, err) != 0) {
        problem_add(p, "html_file", err->text);
        bad = -1;
    }
    for (size_t i = 0; i < o->n_attach; i++) {
        if (io_read_file(o->attach[i], SEND_MAX_MESSAGE, "attach", &cs->files[i], err) != 0) {
            problem_add(p, "attach", err->text);
            bad = -1;
            continue;
        }
        cs->attachments[i].filename = base_name(o->attach[i]);
        cs->attachments[i].data = (const unsigned char *)cs->files[i].data;
        cs->attachments[i].len = cs->files[i].len;
    }
    if (bad != 0)
        return -1;

    memset(&msg, 0, sizeof(msg));
    msg.from = &cs->from;
    msg.to = cs->to;
    msg.n_to = o->n_to;
    msg.cc = cs->cc;
    msg.n_cc = o->n_cc;
    msg.subject = o->subject;
    msg.text = o->text_file != NULL ? mo_buf_cstr(&cs->text) : NULL;
    msg.html = o->html_file != NULL ? mo_buf_cstr(&cs->html) : NULL;
    msg.attachments = cs->attachments;
    msg.n_attachments = o->n_attach;
    if (mime_compose(&msg, &cs->message, cs->message_id, sizeof(cs->message_id), err) != 0) {
        if (err->category == MO_ERR_CONFIG) {
            problem_add(p, err->field, err->text);
            return -1;
        }
        return -1;
    }
    /* The envelope: every To, Cc and Bcc; Bcc never reached the headers. */
    {
        const struct mime_address *groups[3] = {cs->to, cs->cc, cs->bcc};
        const size_t counts[3] = {o->n_to, o->n_cc, o->n_bcc};
        size_t k = 0;

        for (int g = 0; g < 3; g++) {
            for (size_t i = 0; i < counts[g]; i++, k++) {
                char *slot = cs->rcpt_storage + k * (MIME_ADDRESS_MAX + 1);
                if (mime_address_envelope(&groups[g][i], slot, MIME_ADDRESS_MAX + 1, err) != 0)
                    return -1;
                cs->rcpts[k] = slot;
            }
        }
    }
    return 0;
}

static void
compose_state_free(struct compose_state *cs, const struct send_opts *o)
{
    mime_address_clear(&cs->from);
    if (cs->to != NULL)
        for (size_t i = 0; i < o->n_to; i++)
            mime_address_clear(&cs->to[i]);
    if (cs->cc != NULL)
        for (size_t i = 0; i < o->n_cc; i++)
            mime_address_clear(&cs->cc[i]);
    if (cs->bcc != NULL)
        for (size_t i = 0; i < o->n_bcc; i++)
            mime_address_clear(&cs->bcc[i]);
    free(cs->to);
    free(cs->cc);
    free(cs->bcc);
    free(cs->rcpts);
    free(cs->rcpt_storage);
    mo_buf_free(&cs->text);
    mo_buf_free(&cs->html);
    for (size_t i = 0; i < 64; i++)
        mo_buf_free(&cs->files[i]);
    mo_buf_free(&cs->message);
}

static bool
needs_smtputf8(const struct compose_state *cs, const struct send_opts *o)
{
    if (cs->from.has_utf8_local)
        return true;
    for (size_t i = 0; i < o->n_to; i++)
        if (cs->to[i].has_utf8_local)
            return true;
    for (size_t i = 0; i < o->n_cc; i++)
        if (cs->cc[i].has_utf8_local)
            return true;
    for (size_t i = 0; i < o->n_bcc; i++)
        if (cs->bcc[i].has_utf8_local)
            return true;
    return false;
}

static int
report(const struct send_opts *o, const struct compose_state *cs, struct smtp_session *s,
       const struct smtp_send_result *res, const struct mo_error *err, bool sent)
{
    size_t refused = res->n_rcpts - res->n_accepted;
    int code;

    if (!sent)
        code = send_exit_code(err);
    else
        code = refused > 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    if (o->json) {
        json_t *list = json_array();

        for (size_t i = 0; i < res->n_rcpts; i++) {
            const struct smtp_rcpt_result *r = &res->rcpts[i];
            json_array_append_new(list, json_pack("{s:s, s:b, s:o, s:s?, s:s?}", "address",
                                                  r->address, "ok", r->ok && sent, "code",
                                                  cli_json_int_or_null(r->code), "enhanced",
                                                  r->enhanced[0] ? r->enhanced : NULL, "text",
                                                  r->code ? r->text : NULL));
        }
        /* Nothing reached the recipients' stage: each one is simply not sent. */
        for (size_t i = 0; res->n_rcpts == 0 && cs->rcpts != NULL && cs->rcpts[i] != NULL; i++)
            json_array_append_new(list,
                                  json_pack("{s:s, s:b, s:n, s:n, s:n}", "address", cs->rcpts[i],
                                            "ok", 0, "code", "enhanced", "text"));
        cli_json_print(json_pack(
            "{s:b, s:o, s:o, s:o, s:s?, s:o}", "ok", sent && refused == 0, "steps",
            cli_steps_json(s != NULL ? smtp_session_step(s, 0) : NULL,
                           s != NULL ? smtp_session_step_count(s) : 0),
            "error", sent ? json_null() : cli_error_json(err), "recipients", list, "message_id",
            cs->message_id[0] ? cs->message_id : NULL, "transcript", transcript_json(s)));
        return code;
    }
    if (!sent) {
        print_steps(stderr, s);
        print_failure_text(err);
        return code;
    }
    printf("mailout send: %s:%u, %s%s%s\n", o->smtp.host, o->smtp.port,
           smtp_session_is_tls(s) ? "encrypted (TLS)" : "not encrypted",
           o->smtp.username ? ", logged in as " : "", o->smtp.username ? o->smtp.username : "");
    print_steps(stdout, s);
    printf("sent <%s>: %d %s %s\n", cs->message_id, res->code, res->enhanced, res->text);
    for (size_t i = 0; i < res->n_rcpts; i++)
        if (!res->rcpts[i].ok)
            printf("  refused <%s>: %d %s %s\n", res->rcpts[i].address, res->rcpts[i].code,
                   res->rcpts[i].enhanced, res->rcpts[i].text);
    if (refused > 0)
        printf("%zu of %zu recipients refused\n", refused, res->n_rcpts);
    return code;
}

/* ---- the stored account: queue, or --now ----------------------------------------------- */

/* What the stored-account ways keep while the message is made. */
struct stored {
    struct account_settings acct; /* without the password unless --now */
    bool loaded;                  /* acct was read (this user may use the database) */
    const char *from_name;        /* the account's sender name when From is its sender */
};

/* Prints one problem the send_problems way and returns code. */
static int
stored_problem(const struct send_opts *o, const char *field, const char *text, int code)
{
    struct send_problems one;

    memset(&one, 0, sizeof(one));
    problem_add(&one, field, text);
    print_problems(o, &one);
    return code;
}

static int
stored_failure(const struct send_opts *o, const struct mo_error *err)
{
    if (o->json) {
        cli_json_print(
            json_pack("{s:b, s:b, s:o}", "ok", 0, "queued", 0, "error", cli_error_json(err)));
    } else {
        fprintf(stderr, "mailout send: %s\n", err->text);
        if (err->field != NULL)
            fprintf(stderr, "  setting at fault: %s\n", err->field);
    }
    return send_exit_code(err);
}

/*
 * Reads the account (with its password for --now) when this user may use
 * the database, and points o's sender and, for --now, o->smtp at it.
 * Returns -1 to go on, else the exit status (problems printed).
 */
static int
stored_load(struct send_opts *o, const struct send_mode *mode, struct stored *sa)
{
    const char *home = cli_home();
    const char *name = mode->account != NULL ? mode->account : "default";
    struct account_store *st = NULL;
    struct mo_error err;
    char msg[2 * MO_ERROR_TEXT_MAX];
    int code = -1;

    if (sendmail_nothing_set_up(home)) {
        snprintf(msg, sizeof(msg),
                 "there is no account in %.300s yet: set one up with `mailout account set` (or "
                 "give --host and the rest to send without one)",
                 home);
        return stored_problem(o, "account", msg, CLI_EXIT_USAGE);
    }
    if (!sendmail_can_use_database(home)) {
        if (mode->now)
            return stored_problem(o, "account",
                                  "--now needs the account's settings and password, which only "
                                  "the data folder's owner may read: run it as that user, or "
                                  "leave out --now to queue the message",
                                  CLI_EXIT_FAILED);
        if (o->from == NULL)
            return stored_problem(o, "sender",
                                  "--from is required here: this user may not read the account, "
                                  "so the message goes through the spool and needs its sender",
                                  CLI_EXIT_USAGE);
        return -1; /* the spool */
    }
    if (account_store_open(home, &st, &err) != 0) {
        if (!mode->now && o->from != NULL)
            return -1; /* e.g. the key is not readable for this user: the spool will do */
        return stored_failure(o, &err);
    }
    if (account_store_get(st, name, mode->now, &sa->acct, &err) != 0) {
        if (err.category == MO_ERR_CONFIG) {
            snprintf(msg, sizeof(msg),
                     "there is no account \"%.200s\" in %.200s: set it up with `mailout account "
                     "set` (or give --host and the rest to send without one)",
                     name, home);
            code = stored_problem(o, "account", msg, CLI_EXIT_USAGE);
        } else {
            code = stored_failure(o, &err);
        }
        goto out;
    }
    sa->loaded = true;
    if (o->from == NULL) {
        o->from = sa->acct.sender != NULL ? sa->acct.sender : sa->acct.email;
        sa->from_name = sa->acct.sender_name;
    }
    if (mode->now) {
        struct account_settings *s = &sa->acct;

        if (s->host == NULL || s->port == 0) {
            code = stored_problem(o, "host", "the account has no server: set it again", 2);
            goto out;
        }
        o->smtp.host = s->host;
        o->smtp.port = s->port;
        o->smtp.security = s->security;
        o->smtp.username = s->username != NULL && s->username[0] ? s->username : NULL;
        o->smtp.secret = o->smtp.username != NULL ? s->password : NULL;
        o->smtp.auth = s->auth;
        o->smtp.ca_file = s->ca_file;
        if (s->timeout_s > 0)
            smtp_timeouts_cap(&o->smtp.timeouts, s->timeout_s * 1000);
        if (o->smtp.username != NULL && o->smtp.secret == NULL) {
            code = stored_problem(o, "password", "no password is saved for this account",
                                  CLI_EXIT_USAGE);
            goto out;
        }
    }
out:
    account_store_close(st);
    return code;
}

/* Queues the composed message: queue_add, or the spool. Returns the exit status. */
static int
stored_queue(const struct send_opts *o, const struct send_mode *mode, const struct stored *sa,
             struct compose_state *cs)
{
    const char *home = cli_home();
    struct queue *q = NULL;
    struct queue_new_message m;
    struct mo_buf header_from;
    struct mo_error err;
    char spool_name[128] = "";
    int64_t id = 0;
    int code;

    mo_buf_init(&header_from, 4096);
    memset(&m, 0, sizeof(m));
    m.account = sa->loaded ? sa->acct.name : (mode->account != NULL ? mode->account : "default");
    m.from = cs->from_env;
    m.rcpts = cs->rcpts;
    m.n_rcpts = o->n_to + o->n_cc + o->n_bcc;
    m.data = cs->message.data;
    m.len = cs->message.len;
    m.message_id = cs->message_id;
    m.subject = o->subject;
    m.header_from =
        mime_address_format(&cs->from, &header_from, NULL) == 0 ? mo_buf_cstr(&header_from) : NULL;
    m.source = "cli";
    m.needs_smtputf8 = needs_smtputf8(cs, o);
    if (sa->loaded) {
        if (queue_open(home, NULL, &q, &err) != 0 || queue_add(q, &m, &id, &err) != 0) {
            code = stored_failure(o, &err);
            goto out;
        }
    } else if (queue_spool_write(home, &m, spool_name, sizeof(spool_name), &err) != 0) {
        code = stored_failure(o, &err);
        goto out;
    }
    if (o->json)
        cli_json_print(json_pack("{s:b, s:b, s:o, s:s?, s:s, s:s}", "ok", 1, "queued", 1, "id",
                                 id > 0 ? json_integer(id) : json_null(), "spool",
                                 spool_name[0] ? spool_name : NULL, "account", m.account,
                                 "message_id", cs->message_id));
    else if (id > 0)
        printf("queued as #%lld <%s> (account \"%s\")\n", (long long)id, cs->message_id, m.account);
    else
        printf("queued in the spool as %s <%s> (the service moves it into the queue)\n", spool_name,
               cs->message_id);
    code = CLI_EXIT_OK;
out:
    queue_close(q);
    mo_buf_free(&header_from);
    return code;
}

int
cli_send_main(int argc, char **argv)
{
    struct send_opts *o = NULL;
    struct send_problems *p = NULL;
    struct compose_state *cs = NULL;
    struct smtp_session *s = NULL;
    struct smtp_send_result res;
    struct smtp_envelope env;
    struct send_mode mode;
    struct stored sa;
    struct mo_error err;
    const char *password_file = NULL;
    bool password_stdin = false;
    bool help_only = false;
    char *secret = NULL;
    int code = CLI_EXIT_USAGE;

    memset(&res, 0, sizeof(res));
    memset(&mode, 0, sizeof(mode));
    memset(&sa, 0, sizeof(sa));
    mo_error_clear(&err);
    o = calloc(1, sizeof(*o));
    p = calloc(1, sizeof(*p));
    cs = calloc(1, sizeof(*cs));
    if (o == NULL || p == NULL || cs == NULL) {
        fputs("mailout send: out of memory\n", stderr);
        code = CLI_EXIT_FAILED;
        goto out;
    }
    mo_buf_init(&cs->text, SEND_MAX_MESSAGE);
    mo_buf_init(&cs->html, SEND_MAX_MESSAGE);
    for (size_t i = 0; i < 64; i++)
        mo_buf_init(&cs->files[i], SEND_MAX_MESSAGE);
    mo_buf_init(&cs->message, SEND_MAX_MESSAGE * 2);

    if (parse_options(argc, argv, o, p, &password_file, &password_stdin, &help_only, &mode) != 0) {
        code = help_only ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        goto out;
    }
    validate(o, password_file, password_stdin, &mode, p);
    if (p->n == 0 && o->smtp.username != NULL) {
        if (password_stdin) {
            secret = io_read_secret_fd(STDIN_FILENO, &err);
        } else {
            int fd = open(password_file, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                mo_error_set(&err, MO_ERR_CONFIG, "password", "cannot open the password file");
            else {
                secret = io_read_secret_fd(fd, &err);
                close(fd);
            }
        }
        if (secret == NULL)
            problem_add(p, "password", err.text);
        o->smtp.secret = secret;
    }
    if (p->n > 0) {
        print_problems(o, p);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (o->raw_path != NULL) {
        code = send_raw_run(o);
        goto out;
    }
    if (!mode.host_given && (code = stored_load(o, &mode, &sa)) >= 0)
        goto out;
    if (compose(o, sa.from_name, cs, p, &err) != 0) {
        if (p->n > 0) {
            print_problems(o, p);
            code = CLI_EXIT_USAGE;
        } else {
            code = report(o, cs, NULL, &res, &err, false);
        }
        goto out;
    }
    if (mime_address_envelope(&cs->from, cs->from_env, sizeof(cs->from_env), &err) != 0) {
        code = report(o, cs, NULL, &res, &err, false);
        goto out;
    }
    if (!mode.host_given && !mode.now) {
        code = stored_queue(o, &mode, &sa, cs);
        goto out;
    }
    env.from = cs->from_env;
    env.rcpts = cs->rcpts;
    env.n_rcpts = o->n_to + o->n_cc + o->n_bcc;
    env.needs_smtputf8 = needs_smtputf8(cs, o);

    s = smtp_session_new(&o->smtp, &err);
    if (s == NULL) {
        code = report(o, cs, NULL, &res, &err, false);
        goto out;
    }
    if (smtp_session_open(s, &err) != 0) {
        code = report(o, cs, s, &res, &err, false);
        goto out;
    }
    if (smtp_session_send(s, &env, cs->message.data, cs->message.len, &res, &err) != 0) {
        (void)smtp_session_quit(s, NULL);
        code = report(o, cs, s, &res, &err, false);
        goto out;
    }
    (void)smtp_session_quit(s, NULL);
    code = report(o, cs, s, &res, &err, true);
out:
    smtp_send_result_clear(&res);
    smtp_session_free(s);
    if (cs != NULL && o != NULL)
        compose_state_free(cs, o);
    account_settings_clear(&sa.acct); /* wipes the password of --now */
    mo_free_secret(secret);
    free(cs);
    free(p);
    free(o);
    return code;
}
