/*
 * sendmail.c - `mailout sendmail` and mailout invoked as `sendmail`: the way
 * into the queue for programs that think they talk to sendmail (PHP's
 * mail(), cron, scripts).
 *
 * Flow: argv (sendmail_args_parse, pure) -> standard input up to the limit
 * (a "." line ends it unless -i) -> while `mailout serve` runs, the message
 * and the command line go to it through home/sendmail.sock
 * (sendmail_client.c) and its answer is ours; the service runs the rest of
 * this flow itself (sendmail_serve_one, with its group committer). Else ->
 * the header block (mime_headers_parse) -> recipients from the operands and,
 * with -t, from To/Cc/Bcc -> then one of:
 *  - the database is ours to write (the data folder's owner, or root): the
 *    account is chosen (the one whose sender or email is -f or the From
 *    address, else "default"), the message prepared (Bcc removed; Date,
 *    Message-ID and From added when missing) and queued with queue_add;
 *  - otherwise (PHP as www-data): the message, with Bcc removed and Date
 *    added, goes into the spool (queue_spool_write); the importer completes
 *    it with the account's sender. This user never reads the database, the
 *    key or a password.
 * Exit status: 0 once committed (queue or spool), else a sysexits code with
 * one line on stderr: EX_USAGE (options, no recipients), EX_DATAERR (input:
 * too large, NUL byte, injection through -f/-F, unreadable headers),
 * EX_NOUSER (a recipient argument that is not an address), EX_CONFIG (no
 * account to send with), EX_TEMPFAIL (disk full, database busy),
 * EX_CANTCREAT (no permission, read-only), EX_IOERR (reading stdin, disk I/O
 * error), EX_SOFTWARE (a bug, out of memory).
 * Bare local recipients ("root", as cron writes them) go to the account's
 * own address: mailout relays through a provider and has no local mailboxes.
 * With -t, recipients given as arguments are added (as Postfix does).
 * Leaves out: -bs (SMTP on stdin), the daemon and queue modes (-bd, -bp, -q;
 * use `mailout serve` and `mailout queue`), aliases, DSN options (ignored).
 *
 * The pure parts come first; SENDMAIL_PURE_ONLY (unit tests, fuzzers, and
 * mailout-sendmail, which links libc alone) stops there so they link without
 * the rest of the command line.
 */
#include "cli/sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the command line (pure) ------------------------------------------------- */

static int args_fail(char *why, size_t why_size, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
args_fail(char *why, size_t why_size, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
    return status;
}

/* Options whose value is ignored: -B 8BITMIME, -N never, -R hdrs, ... */
static bool
takes_ignored_value(char c)
{
    return strchr("BCdhLNRVX", c) != NULL;
}

/* Parses -O MaxMessageSize=N (case-insensitive name); other -O options are ignored. */
static int
parse_long_option(const char *v, struct sendmail_args *out, char *why, size_t why_size)
{
    static const char name[] = "MaxMessageSize=";
    long n;

    if (strncasecmp(v, name, sizeof(name) - 1) != 0)
        return 0;
    if (mo_parse_long(v + sizeof(name) - 1, 1, 2L * 1024 * 1024 * 1024, &n) != 0)
        return args_fail(why, why_size, EX_USAGE,
                         "-O MaxMessageSize needs a number of bytes, not \"%s\"", v);
    out->max_bytes = n;
    return 0;
}

static int
parse_b_mode(const char *mode, char *why, size_t why_size)
{
    if (strcmp(mode, "m") == 0)
        return 0;
    if (strcmp(mode, "s") == 0)
        return args_fail(why, why_size, EX_USAGE,
                         "-b%s (SMTP on standard input) is not supported: pipe the message "
                         "instead, or use the HTTP API",
                         mode);
    if (strcmp(mode, "d") == 0 || strcmp(mode, "D") == 0)
        return args_fail(why, why_size, EX_USAGE,
                         "-b%s (daemon mode) is not supported: run `mailout serve`", mode);
    if (strcmp(mode, "p") == 0)
        return args_fail(why, why_size, EX_USAGE,
                         "-b%s (print the queue) is not supported: run `mailout queue list`", mode);
    if (strcmp(mode, "i") == 0)
        return args_fail(why, why_size, EX_USAGE,
                         "-b%s (aliases) is not supported: mailout has no alias database", mode);
    return args_fail(why, why_size, EX_USAGE, "-b%s is not supported (only -bm)", mode);
}

static int
rcpt_push(struct sendmail_args *out, const char *a, char *why, size_t why_size)
{
    const char **p = realloc(out->rcpts, (out->n_rcpts + 1) * sizeof(*p));

    if (p == NULL)
        return args_fail(why, why_size, EX_OSERR, "%s", "out of memory");
    out->rcpts = p;
    p[out->n_rcpts++] = a;
    return 0;
}

/* One option cluster argv[*i] (without its '-'); may consume argv[*i + 1]. */
static int
parse_cluster(int argc, char *const *argv, int *i, struct sendmail_args *out, char *why,
              size_t why_size)
{
    const char *s = argv[*i] + 1;

    while (*s != '\0') {
        char c = *s++;
        const char *value = NULL;

        switch (c) {
        case 't':
            out->extract_recipients = true;
            continue;
        case 'i':
            out->ignore_dots = true;
            continue;
        case 'v':
            out->verbose = true;
            continue;
        case 'm': /* also send to me: meaningless here */
        case 'n': /* no aliasing */
        case 'U': /* initial user submission */
        case 'G': /* gateway submission */
            continue;
        default:
            break;
        }
        /* the rest take a value: attached, or the next argument */
        if (*s != '\0') {
            value = s;
        } else if (c == 'b' || c == 'q' || c == 'A') {
            value = ""; /* -b, -q and -A want it attached */
        } else if (*i + 1 < argc) {
            value = argv[++*i];
        } else {
            snprintf(why, why_size, "option -%c needs a value", c);
            return EX_USAGE;
        }
        switch (c) {
        case 'f':
        case 'r':
            if (strpbrk(value, "\r\n") != NULL)
                return args_fail(why, why_size, EX_DATAERR, "%s",
                                 "the sender (-f) holds a line break");
            out->from = value;
            return 0;
        case 'F':
            if (strpbrk(value, "\r\n") != NULL)
                return args_fail(why, why_size, EX_DATAERR, "%s",
                                 "the sender's name (-F) holds a line break");
            out->full_name = value;
            return 0;
        case 'o':
            if (strcmp(value, "i") == 0)
                out->ignore_dots = true;
            return 0; /* -oem, -oee, -odb, -odi, -oQ/dir, ...: nothing to do */
        case 'O':
            return parse_long_option(value, out, why, why_size);
        case 'b':
            return parse_b_mode(value, why, why_size);
        case 'q':
            return args_fail(why, why_size, EX_USAGE,
                             "-q%s (queue runs) is not supported: run `mailout queue run`", value);
        case 'A': /* -Am / -Ac: which sendmail.cf */
            return 0;
        default:
            if (takes_ignored_value(c))
                return 0;
            snprintf(why, why_size, "unknown option -%c", c);
            return EX_USAGE;
        }
    }
    return 0;
}

/* Arguments are quoted in reasons: keep the reason one printable line. */
static int
one_line(int status, char *why)
{
    for (char *p = why; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return status;
}

static int
parse_all(int argc, char *const *argv, struct sendmail_args *out, char *why, size_t why_size)
{
    bool options_done = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int st;

        if (options_done || a[0] != '-' || a[1] == '\0') {
            if ((st = rcpt_push(out, a, why, why_size)) != 0)
                return st;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) { /* not -h: that is sendmail's hop count */
            out->help = true;
            continue;
        }
        if (a[1] == '-') {
            snprintf(why, why_size, "unknown option %.100s", a);
            return EX_USAGE;
        }
        if ((st = parse_cluster(argc, argv, &i, out, why, why_size)) != 0)
            return st;
    }
    return 0;
}

int
sendmail_args_parse(int argc, char *const *argv, struct sendmail_args *out, char *why,
                    size_t why_size)
{
    memset(out, 0, sizeof(*out));
    if (why_size == 0)
        return EX_SOFTWARE;
    why[0] = '\0';
    return one_line(parse_all(argc, argv, out, why, why_size), why);
}

void
sendmail_args_clear(struct sendmail_args *a)
{
    if (a == NULL)
        return;
    free(a->rcpts);
    memset(a, 0, sizeof(*a));
}

bool
sendmail_input_end(const char *data, size_t len, size_t *scan, size_t *end)
{
    size_t pos = *scan;

    for (;;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t line_len;

        if (nl == NULL) {
            *scan = pos; /* an incomplete line: look at it again with more data */
            return false;
        }
        line_len = (size_t)(nl - (data + pos));
        if ((line_len == 1 && data[pos] == '.') ||
            (line_len == 2 && data[pos] == '.' && data[pos + 1] == '\r')) {
            *end = pos;
            *scan = pos;
            return true;
        }
        pos = (size_t)(nl - data) + 1;
    }
}

bool
sendmail_can_use_database(const char *home)
{
    char path[4096];

    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path))
        return false;
    return faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == 0 &&
           faccessat(AT_FDCWD, home, W_OK | X_OK, AT_EACCESS) == 0;
}

bool
sendmail_nothing_set_up(const char *home)
{
    char path[4096];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/mailout.db", home) >= (int)sizeof(path) ||
        stat(path, &st) == 0 || errno != ENOENT)
        return false;
    if (stat(home, &st) != 0)
        return errno == ENOENT;
    return st.st_uid == geteuid();
}

int
sendmail_exit_status(const struct mo_error *err)
{
    switch (err->category) {
    case MO_ERR_CONFIG:
        return EX_DATAERR;
    case MO_ERR_STORAGE:
        if (err->temporary)
            return EX_TEMPFAIL;
        if (strstr(err->text, "I/O error") != NULL ||
            strstr(err->text, "read or write error") != NULL)
            return EX_IOERR;
        return EX_CANTCREAT;
    case MO_ERR_INTERNAL:
        return EX_SOFTWARE;
    default:
        return err->temporary ? EX_TEMPFAIL : EX_UNAVAILABLE;
    }
}

size_t
sendmail_limit_bytes(const struct sendmail_args *a)
{
    const char *env = getenv("MAILOUT_MAX_MESSAGE_BYTES");
    long v;

    if (a->max_bytes > 0)
        return (size_t)a->max_bytes;
    if (env != NULL && env[0] != '\0' && mo_parse_long(env, 1, 2L * 1024 * 1024 * 1024, &v) == 0)
        return (size_t)v;
    return (size_t)SENDMAIL_MAX_BYTES_DEFAULT;
}

int
sendmail_read_input(int fd, bool ignore_dots, size_t max_bytes, struct mo_buf *out, char *why,
                    size_t why_size)
{
    char chunk[65536];
    size_t scan = 0;
    size_t end = 0;
    struct mo_error err;

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return args_fail(why, why_size, EX_IOERR, "cannot read the message: %s",
                             strerror(errno));
        }
        if (mo_buf_append(out, chunk, (size_t)n, &err) != 0)
            return args_fail(why, why_size, EX_OSERR, "%s", err.text);
        if (!ignore_dots && sendmail_input_end(out->data, out->len, &scan, &end)) {
            out->len = end;
            out->data[end] = '\0';
            return 0;
        }
        if (out->len > max_bytes)
            return args_fail(why, why_size, EX_DATAERR,
                             "the message is larger than the limit of %zu bytes", max_bytes);
    }
}

#ifndef SENDMAIL_PURE_ONLY

/* ---- the rest: reading, choosing, queueing --------------------------------------- */

#include <pwd.h>

#include "account/account.h"
#include "cli/cli.h"
#include "mime/mime.h"
#include "queue/queue.h"

#define PROG "mailout sendmail"

static void
sendmail_usage(FILE *out)
{
    fputs("usage: mailout sendmail [-t] [-i] [-f FROM] [-F NAME] [-v] [--] [RCPT ...]\n"
          "       (also as `sendmail`, e.g. PHP: sendmail_path = \"mailout --home DIR "
          "sendmail -t -i\")\n"
          "\n"
          "Reads one RFC 5322 message from standard input and queues it.\n"
          "  -t        recipients from To, Cc and Bcc (Bcc is removed), plus any RCPT given\n"
          "  -i, -oi   a line with a single \".\" does not end the message\n"
          "  -f FROM   envelope sender; picks the account that sends as FROM\n"
          "  -F NAME   the sender's name, when the message has no From\n"
          "  -v        say where the message went\n"
          "  -O MaxMessageSize=N  limit (default: $MAILOUT_MAX_MESSAGE_BYTES or 50 MB)\n"
          "Other sendmail options (-oem, -odb, -B8BITMIME, -N, -R, -V, -X, ...) are ignored.\n"
          "Exit status: 0 queued; 64 usage; 65 bad message; 67 bad recipient; 73 cannot\n"
          "write the queue; 74 I/O error; 75 try again later (disk full, busy); 78 no account.\n",
          out);
}

/* Where the one-line reasons go: stderr, or the reply to a client (sendmail_serve_one). */
static _Thread_local FILE *diag_out;

static FILE *
diag(void)
{
    return diag_out != NULL ? diag_out : stderr;
}

/* One line on stderr (or to the client), then the status. */
static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(int status, const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", diag());
    va_start(ap, fmt);
    vfprintf(diag(), fmt, ap);
    va_end(ap);
    fputs(": the message was not queued\n", diag());
    return status;
}

/* ---- recipients ------------------------------------------------------------------ */

struct rcpt_list {
    char **items; /* envelope forms, or bare local names; owned */
    size_t n;
    bool needs_smtputf8;
};

static void
rcpt_list_clear(struct rcpt_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int
rcpt_list_add(struct rcpt_list *l, const char *s)
{
    char **p;

    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->items[i], s) == 0)
            return 0;
    p = realloc(l->items, (l->n + 1) * sizeof(*p));
    if (p == NULL)
        return -1;
    l->items = p;
    if ((p[l->n] = mo_strdup(s)) == NULL)
        return -1;
    l->n++;
    return 0;
}

static int
rcpt_list_add_addresses(struct rcpt_list *l, const struct mime_address *a, size_t n,
                        struct mo_error *err)
{
    char env[MIME_ADDRESS_MAX + 1];

    for (size_t i = 0; i < n; i++) {
        if (mime_address_envelope(&a[i], env, sizeof(env), err) != 0)
            return -1;
        if (rcpt_list_add(l, env) != 0) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            return -1;
        }
        l->needs_smtputf8 = l->needs_smtputf8 || a[i].has_utf8_local;
    }
    return 0;
}

/* "root", "www-data": a local user, as cron writes the recipient. */
static bool
is_local_name(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= MIME_LOCAL_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+") == n;
}

/* Operands, each an address or a comma-separated list. Returns 0 or an exit status. */
static int
recipients_from_args(const struct sendmail_args *a, struct rcpt_list *l)
{
    for (size_t i = 0; i < a->n_rcpts; i++) {
        struct mime_address *list = NULL;
        size_t n = 0;
        struct mo_error err;
        int rc;

        if (is_local_name(a->rcpts[i])) {
            if (rcpt_list_add(l, a->rcpts[i]) != 0)
                return fail(EX_OSERR, "out of memory");
            continue;
        }
        if (mime_address_list_parse(a->rcpts[i], "recipient", &list, &n, &err) != 0)
            return fail(EX_NOUSER, "the recipient %s", err.text);
        rc = rcpt_list_add_addresses(l, list, n, &err);
        mime_address_list_free(list, n);
        if (rc != 0)
            return fail(sendmail_exit_status(&err), "%s", err.text);
    }
    return 0;
}

static int
recipients_from_headers(const struct mime_headers *h, struct rcpt_list *l)
{
    static const char *const names[] = {"To", "Cc", "Bcc"};
    struct mime_address *list = NULL;
    size_t n = 0;
    char **locals = NULL;
    size_t n_locals = 0;
    struct mo_error err;
    int status = 0;

    if (mime_headers_addresses(h, names, 3, "recipient", &list, &n, &locals, &n_locals, &err) != 0)
        return fail(err.category == MO_ERR_CONFIG ? EX_DATAERR : EX_SOFTWARE, "%s", err.text);
    if (rcpt_list_add_addresses(l, list, n, &err) != 0)
        status = fail(sendmail_exit_status(&err), "%s", err.text);
    for (size_t i = 0; i < n_locals && status == 0; i++)
        if (rcpt_list_add(l, locals[i]) != 0)
            status = fail(EX_OSERR, "out of memory");
    for (size_t i = 0; i < n_locals; i++)
        free(locals[i]);
    free(locals);
    mime_address_list_free(list, n);
    return status;
}

/*
 * The envelope sender asked for: -f when given (an address; a bare local
 * name or "<>" asks for nothing), else the From field's first address.
 * Returns 0 or an exit status; *hint is "" when there is none.
 */
static int
sender_hint(const struct sendmail_args *a, const struct mime_headers *h, char *hint, size_t size,
            bool *utf8)
{
    struct mime_address addr;
    struct mo_error err;

    hint[0] = '\0';
    memset(&addr, 0, sizeof(addr));
    if (a->from != NULL) {
        if (a->from[0] == '\0' || strcmp(a->from, "<>") == 0 || strchr(a->from, '@') == NULL)
            return 0;
        if (mime_address_parse(a->from, "sender", &addr, &err) != 0)
            return fail(EX_DATAERR, "the sender (-f) %s", err.text);
    } else {
        const struct mime_header_field *f = mime_headers_find(h, "From");
        struct mime_address *list = NULL;
        size_t n = 0;

        if (f == NULL || mime_address_list_parse(f->value, "from", &list, &n, NULL) != 0)
            return 0;
        if (n == 0) {
            mime_address_list_free(list, n);
            return 0;
        }
        addr = list[0];
        memset(&list[0], 0, sizeof(list[0]));
        mime_address_list_free(list, n);
    }
    if (mime_address_envelope(&addr, hint, size, &err) != 0)
        hint[0] = '\0';
    *utf8 = *utf8 || addr.has_utf8_local;
    mime_address_clear(&addr);
    return 0;
}

/* ---- the two routes ---------------------------------------------------------------- */

struct submission {
    const struct sendmail_args *args;
    const char *home;
    const char *raw;
    size_t raw_len;
    struct rcpt_list *rcpts;
    const char *hint;
    bool needs_smtputf8;
    struct queue_committer *committer; /* the service's (sendmail_serve_one); else NULL */
};

/* Maps a storage error to a status; a full disk gets the plain sentence. */
static int
fail_error(const struct mo_error *err)
{
    return fail(sendmail_exit_status(err), "%s", err->text);
}

/* The owner's route: account, prepare, queue_add. Returns an exit status, or -1 to try
 * the spool instead (the store or the queue could not be opened). */
static int
submit_direct(const struct submission *s)
{
    struct account_store *st = NULL;
    struct queue *q = NULL;
    struct account_settings acct;
    struct mime_address sender;
    struct mime_prepare_options opt;
    struct mime_prepared info;
    struct queue_new_message m;
    struct mo_buf out;
    struct mo_error err;
    char sender_env[MIME_ADDRESS_MAX + 1];
    const char **rcpts = NULL;
    size_t n_rcpts = 0;
    bool hint_matches = false;
    int64_t id = 0;
    int found;
    int status = -1;

    memset(&acct, 0, sizeof(acct));
    memset(&sender, 0, sizeof(sender));
    memset(&info, 0, sizeof(info));
    mo_buf_init(&out, 2 * s->raw_len + 64 * 1024);
    if (account_store_open(s->home, &st, &err) != 0)
        goto out; /* e.g. the key is not readable for this user: the spool will do */
    found = account_store_find_sender(st, s->hint, &acct, &hint_matches, &err);
    if (found < 0) {
        status = fail_error(&err);
        goto out;
    }
    if (found == 0) {
        status = fail(EX_CONFIG,
                      "no account to send with: set up the account \"default\" (mailout "
                      "--home %s account set ...)",
                      s->home);
        goto out;
    }
    if (mime_address_parse(acct.sender != NULL ? acct.sender : acct.email, "sender", &sender,
                           &err) != 0 ||
        mime_address_envelope(&sender, sender_env, sizeof(sender_env), &err) != 0) {
        status =
            fail(EX_CONFIG, "the account \"%s\" has no usable sender: %s", acct.name, err.text);
        goto out;
    }
    if (acct.sender_name != NULL && acct.sender_name[0] != '\0') {
        free(sender.display_name);
        sender.display_name = mo_strdup(acct.sender_name);
    }
    memset(&opt, 0, sizeof(opt));
    opt.from = &sender;
    opt.from_name = s->args->full_name;
    opt.add_date = true;
    opt.add_message_id = true;
    opt.remove_bcc = true;
    opt.encode_8bit = true;
    if (mime_message_prepare(s->raw, s->raw_len, &opt, &out, &info, &err) != 0) {
        status = fail_error(&err);
        goto out;
    }
    rcpts = calloc(s->rcpts->n, sizeof(*rcpts));
    if (rcpts == NULL) {
        status = fail(EX_OSERR, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < s->rcpts->n; i++) {
        /* bare local names ("root") reach the account's own address */
        const char *r = strchr(s->rcpts->items[i], '@') != NULL ? s->rcpts->items[i] : acct.email;
        bool dup = false;

        for (size_t k = 0; k < n_rcpts && !dup; k++)
            dup = strcasecmp(rcpts[k], r) == 0;
        if (!dup && r != NULL)
            rcpts[n_rcpts++] = r;
    }
    if (s->committer == NULL && queue_open(s->home, NULL, &q, &err) != 0) {
        if (err.category == MO_ERR_STORAGE && !err.temporary)
            goto out; /* the spool may still be open to us */
        status = fail_error(&err);
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.account = acct.name;
    m.from = hint_matches ? s->hint : sender_env;
    m.rcpts = rcpts;
    m.n_rcpts = n_rcpts;
    m.data = out.data;
    m.len = out.len;
    m.message_id = info.message_id[0] ? info.message_id : NULL;
    m.subject = info.subject;
    m.header_from = info.header_from;
    m.source = "sendmail";
    m.needs_smtputf8 = s->needs_smtputf8 || sender.has_utf8_local;
    if ((s->committer != NULL ? queue_committer_add(s->committer, &m, &id, &err)
                              : queue_add(q, &m, &id, &err)) != 0) {
        status = fail_error(&err);
        goto out;
    }
    if (s->args->verbose)
        fprintf(diag(), PROG ": queued as #%lld for account \"%s\" <%s>\n", (long long)id,
                acct.name, m.message_id != NULL ? m.message_id : "");
    status = 0;
out:
    queue_close(q);
    account_store_close(st);
    free(rcpts);
    mo_buf_free(&out);
    mime_prepared_clear(&info);
    mime_address_clear(&sender);
    account_settings_clear(&acct);
    return status;
}

/* The login name of this process's user, for a From the importer completes. */
static void
login_name(char *out, size_t size)
{
    struct passwd *pw = getpwuid(geteuid());
    const char *name = pw != NULL ? pw->pw_name : NULL;

    if (name == NULL || !is_local_name(name))
        name = "sendmail";
    snprintf(out, size, "%s", name);
}

/* Everyone else's route: the spool. Returns an exit status. */
static int
submit_spool(const struct submission *s)
{
    struct mime_prepare_options opt;
    struct mime_prepared info;
    struct queue_new_message m;
    struct mo_buf out;
    struct mo_error err;
    char user[64];
    char name[128];
    int status;

    memset(&info, 0, sizeof(info));
    mo_buf_init(&out, 2 * s->raw_len + 64 * 1024);
    login_name(user, sizeof(user));
    memset(&opt, 0, sizeof(opt));
    opt.from_name = s->args->full_name;
    opt.local_user = user;
    opt.add_date = true;
    opt.remove_bcc = true;
    opt.encode_8bit = true;
    if (mime_message_prepare(s->raw, s->raw_len, &opt, &out, &info, &err) != 0) {
        status = fail_error(&err);
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.account = NULL; /* chosen by the sender when imported */
    m.from = s->hint;
    m.rcpts = (const char *const *)s->rcpts->items;
    m.n_rcpts = s->rcpts->n;
    m.data = out.data;
    m.len = out.len;
    m.message_id = info.message_id[0] ? info.message_id : NULL;
    m.subject = info.subject;
    m.header_from = info.header_from;
    m.source = "sendmail";
    m.needs_smtputf8 = s->needs_smtputf8;
    if (queue_spool_write(s->home, &m, name, sizeof(name), &err) != 0) {
        status = fail_error(&err);
        goto out;
    }
    if (s->args->verbose)
        fprintf(diag(), PROG ": queued in the spool as %s (the service imports it)\n", name);
    status = 0;
out:
    mo_buf_free(&out);
    mime_prepared_clear(&info);
    return status;
}

/*
 * From the message read (raw) to a status: headers, recipients, the account,
 * then the queue (directly, through the service's committer c, or the
 * spool). Reasons go to diag().
 */
static int
sendmail_queue(const struct sendmail_args *args, const char *home, struct mo_buf *raw,
               struct queue_committer *c)
{
    struct mime_headers h;
    struct rcpt_list rcpts;
    struct submission sub;
    struct mo_error err;
    char hint[MIME_ADDRESS_MAX + 1] = "";
    int status;

    memset(&h, 0, sizeof(h));
    memset(&rcpts, 0, sizeof(rcpts));
    if (raw->len == 0 || memchr(raw->data, '\0', raw->len) != NULL) {
        status = fail(EX_DATAERR,
                      raw->len == 0 ? "the message is empty" : "the message holds a NUL byte");
        goto out;
    }
    if (mime_headers_parse(raw->data, raw->len, &h, &err) != 0) {
        status = fail_error(&err);
        goto out;
    }
    if ((status = recipients_from_args(args, &rcpts)) != 0)
        goto out;
    if (args->extract_recipients && (status = recipients_from_headers(&h, &rcpts)) != 0)
        goto out;
    if (rcpts.n == 0) {
        status = fail(EX_USAGE, "no recipients (give them as arguments, or use -t to take "
                                "them from To, Cc and Bcc)");
        goto out;
    }
    if ((status = sender_hint(args, &h, hint, sizeof(hint), &rcpts.needs_smtputf8)) != 0)
        goto out;
    memset(&sub, 0, sizeof(sub));
    sub.args = args;
    sub.home = home;
    sub.raw = raw->data;
    sub.raw_len = raw->len;
    sub.rcpts = &rcpts;
    sub.hint = hint;
    sub.needs_smtputf8 = rcpts.needs_smtputf8;
    sub.committer = c;
    if (sendmail_nothing_set_up(sub.home)) {
        status =
            fail(EX_CONFIG, "no account is set up in %s yet (mailout --home %s account set ...)",
                 sub.home, sub.home);
        goto out;
    }
    if (c != NULL) {
        status = submit_direct(&sub);
        if (status < 0)
            status = fail(EX_TEMPFAIL, "the service cannot open its accounts");
        goto out;
    }
    status = -1;
    if (sendmail_can_use_database(sub.home))
        status = submit_direct(&sub);
    if (status < 0)
        status = submit_spool(&sub);
out:
    mime_headers_clear(&h);
    rcpt_list_clear(&rcpts);
    return status;
}

int
cli_sendmail_main(int argc, char **argv)
{
    struct sendmail_args args;
    struct mo_buf raw;
    char why[512];
    int status;

    mo_buf_init(&raw, 1);
    status = sendmail_args_parse(argc, argv, &args, why, sizeof(why));
    if (status != 0) {
        fprintf(stderr, PROG ": %s\n", why);
        if (status == EX_USAGE)
            fputs("usage: mailout sendmail [-t] [-i] [-f FROM] [-F NAME] [--] [RCPT ...] "
                  "(--help for more)\n",
                  stderr);
        goto out;
    }
    if (args.help) {
        sendmail_usage(stdout);
        goto out;
    }
    mo_buf_init(&raw, sendmail_limit_bytes(&args) + 65536);
    status = sendmail_read_input(STDIN_FILENO, args.ignore_dots, sendmail_limit_bytes(&args),
                                 &raw, why, sizeof(why));
    if (status != 0) {
        fail(status, "%s", why);
        goto out;
    }
    /* A running service takes it through its socket (one group commit for many); else
     * this process queues it itself. */
    status = sendmail_client_submit(cli_home(), argc, argv, raw.data, raw.len, why, sizeof(why));
    if (status >= 0) {
        if (why[0] != '\0')
            fprintf(stderr, "%s\n", why);
        goto out;
    }
    status = sendmail_queue(&args, cli_home(), &raw, NULL);
out:
    mo_buf_free(&raw);
    sendmail_args_clear(&args);
    return status;
}

int
sendmail_serve_one(int fd, const char *home, struct queue_committer *c)
{
    struct sendmail_args args;
    struct mo_buf raw;
    char **argv = NULL;
    char *text = NULL;
    size_t text_len = 0;
    char why[512];
    int argc = 0;
    int status;

    memset(&args, 0, sizeof(args));
    mo_buf_init(&raw, 1);
    diag_out = open_memstream(&text, &text_len);
    if (diag_out == NULL)
        return -1;
    status = sendmail_request_read(fd, &argc, &argv, why, sizeof(why));
    if (status == 0)
        status = sendmail_args_parse(argc, argv, &args, why, sizeof(why));
    if (status == 0) {
        /* the client applied the "." rule already */
        mo_buf_init(&raw, sendmail_limit_bytes(&args) + 65536);
        status = sendmail_read_input(fd, true, sendmail_limit_bytes(&args), &raw, why,
                                     sizeof(why));
    }
    if (status != 0)
        fail(status, "%s", why);
    else
        status = sendmail_queue(&args, home, &raw, c);
    fclose(diag_out);
    diag_out = NULL;
    sendmail_reply_write(fd, status, text != NULL ? text : "");
    free(text);
    mo_buf_free(&raw);
    sendmail_args_clear(&args);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return status;
}

#endif /* SENDMAIL_PURE_ONLY */
