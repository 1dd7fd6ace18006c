/*
 * queue.c - `mailout queue list|show|retry|drop|run`: the queue from the
 * command line. What waits, why it waits (an account paused by the breaker,
 * a provider's daily limit), what the server said on each attempt, and a
 * way to deliver what is due now from cron or by hand.
 *
 * `run` first moves the spool (messages written by programs that may not open
 * the database) into the queue, then delivers with the worker until nothing
 * is due (worker_run with once). SIGTERM/SIGINT finish the messages in flight
 * and stop; SIGHUP reloads the accounts.
 * Exit codes (cli.h): 0 done, 1 storage trouble, 2 bad usage or unknown id.
 * Leaves out: paging beyond --limit/--before, editing queued messages.
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "queue/queue.h"
#include "worker/worker.h"

static void
queue_usage(FILE *out)
{
    fputs("usage: mailout queue list [--state STATE] [--search TEXT] [--limit N] [--before ID]\n"
          "                          [--json]\n"
          "       mailout queue show ID [--json]\n"
          "       mailout queue retry ID | --all-deferred\n"
          "       mailout queue drop ID\n"
          "       mailout queue run [--timeout SECONDS] [--connections N] [--batch N]\n"
          "                         [--verbose] [--json]\n"
          "states: queued, sending, sent, deferred, failed, uncertain\n",
          out);
}

/* Maps an error to the exit status: bad input 2, the rest 1. */
static int
error_exit(const struct mo_error *err)
{
    return err->category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

static int
report_error(const struct mo_error *err, bool json)
{
    if (json)
        cli_json_print(json_pack("{s:b, s:o}", "ok", 0, "error", cli_error_json(err)));
    else
        fprintf(stderr, "mailout: %s\n", err->text);
    return error_exit(err);
}

static int
open_queue(struct queue **q, bool json)
{
    struct mo_error err;

    if (queue_open(cli_home(), NULL, q, &err) != 0)
        return report_error(&err, json);
    return CLI_EXIT_OK;
}

/* "2026-11-26 05:10:00 UTC", or "-" for 0. */
static const char *
when_text(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "-");
    return buf;
}

static const char *
account_label(const char *account)
{
    return account != NULL && account[0] ? account : "default";
}

/* Parses a message id argument. */
static int
parse_id(const char *s, int64_t *id)
{
    long v;

    if (s == NULL || mo_parse_long(s, 1, 0x7fffffffL, &v) != 0) {
        fprintf(stderr, "mailout: \"%s\" is not a message id (a positive number)\n",
                s != NULL ? s : "");
        return -1;
    }
    *id = v;
    return 0;
}

/* ---- why mail waits --------------------------------------------------------- */

/* What the breaker and the pacing say about one account. */
struct account_note {
    char name[256];
    struct worker_pause pause;
    struct worker_usage usage;
    bool known; /* both were read */
};

struct account_notes {
    struct account_note *items;
    size_t n;
};

static void
notes_clear(struct account_notes *ns)
{
    free(ns->items);
    ns->items = NULL;
    ns->n = 0;
}

/* The note for account, read on first use (NULL when it cannot be). */
static const struct account_note *
notes_get(struct account_notes *ns, const char *account)
{
    const char *name = account_label(account);
    struct account_note *grown;
    struct account_note *n;
    struct mo_error err;

    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->items[i].name, name) == 0)
            return &ns->items[i];
    grown = realloc(ns->items, (ns->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    ns->items = grown;
    n = &ns->items[ns->n++];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->known = worker_account_pause(cli_home(), name, &n->pause, &err) == 0 &&
               worker_account_usage(cli_home(), name, &n->usage, &err) == 0;
    return n;
}

/* Why a waiting message of this account is not being sent, or "" when nothing holds it. */
static const char *
hold_text(const struct account_note *n, char *buf, size_t size)
{
    char when[64];

    buf[0] = '\0';
    if (n == NULL || !n->known)
        return buf;
    if (n->pause.paused)
        snprintf(buf, size, "account \"%s\" is paused until %s: %s", n->name,
                 when_text(n->pause.until, when, sizeof(when)), n->pause.reason);
    else if (n->usage.is_limited)
        snprintf(buf, size,
                 "account \"%s\" reached its provider's daily limit (%lld of %u messages in 24 "
                 "hours)",
                 n->name, (long long)n->usage.sent_24h, n->usage.daily_limit);
    return buf;
}

static bool
is_waiting(enum queue_state s)
{
    return s == QUEUE_QUEUED || s == QUEUE_DEFERRED || s == QUEUE_UNCERTAIN;
}

static json_t *
note_json(const struct account_note *n)
{
    return json_pack(
        "{s:s, s:b, s:o, s:s?, s:I, s:o, s:b}", "name", n->name, "paused", n->pause.paused,
        "paused_until", cli_json_int_or_null(n->pause.paused ? n->pause.until : 0), "pause_reason",
        n->pause.paused ? n->pause.reason : NULL, "sent_24h", (json_int_t)n->usage.sent_24h,
        "daily_limit", cli_json_int_or_null(n->usage.daily_limit), "limited", n->usage.is_limited);
}

/* ---- list and show ---------------------------------------------------------- */

static json_t *
message_json(const struct queue_message_info *m, struct account_notes *ns)
{
    char hold[700];
    json_t *rcpts = json_array();
    json_t *o;

    for (size_t i = 0; i < m->n_rcpts; i++)
        json_array_append_new(rcpts, json_pack("{s:s, s:s, s:o, s:s?}", "address",
                                               m->rcpts[i].address, "state", m->rcpts[i].state,
                                               "code", cli_json_int_or_null(m->rcpts[i].code),
                                               "reply", m->rcpts[i].reply));
    o = json_pack("{s:I, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:o, s:i, s:o, s:s?,"
                  " s:I, s:o}",
                  "id", (json_int_t)m->id, "state", queue_state_name(m->state), "account",
                  account_label(m->account), "from", m->from != NULL ? m->from : "", "header_from",
                  m->header_from, "subject", m->subject, "message_id", m->message_id, "source",
                  m->source, "created_at", (json_int_t)m->created_at, "updated_at",
                  (json_int_t)m->updated_at, "next_attempt_at",
                  cli_json_int_or_null(is_waiting(m->state) ? m->next_attempt_at : 0), "attempts",
                  m->attempts, "last_code", cli_json_int_or_null(m->last_code), "last_reply",
                  m->last_reply, "size", (json_int_t)m->size, "recipients", rcpts);
    if (o != NULL && is_waiting(m->state)) {
        hold_text(notes_get(ns, m->account), hold, sizeof(hold));
        json_object_set_new(o, "held", hold[0] ? json_string(hold) : json_null());
    }
    return o;
}

static void
print_message_line(const struct queue_message_info *m, struct account_notes *ns)
{
    char created[64];
    char next[64];
    char hold[700];

    printf(
        "%-7lld %-9s %2d  %s  %-10s %s -> %s%s  %s\n", (long long)m->id, queue_state_name(m->state),
        m->attempts, when_text(m->created_at, created, sizeof(created)), account_label(m->account),
        m->from != NULL && m->from[0] ? m->from : "<>", m->n_rcpts > 0 ? m->rcpts[0].address : "?",
        m->n_rcpts > 1 ? " (+more)" : "", m->subject != NULL ? m->subject : "");
    if (is_waiting(m->state) && m->next_attempt_at > 0 && m->state != QUEUE_QUEUED)
        printf("        next attempt %s\n", when_text(m->next_attempt_at, next, sizeof(next)));
    if (m->last_reply != NULL && m->last_reply[0])
        printf("        last reply: %s\n", m->last_reply);
    if (is_waiting(m->state) && hold_text(notes_get(ns, m->account), hold, sizeof(hold))[0])
        printf("        held: %s\n", hold);
}

static int
queue_list_cmd(int argc, char **argv)
{
    enum { O_STATE = 500, O_SEARCH, O_LIMIT, O_BEFORE, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"state", required_argument, NULL, O_STATE},
        {"search", required_argument, NULL, O_SEARCH},
        {"limit", required_argument, NULL, O_LIMIT},
        {"before", required_argument, NULL, O_BEFORE},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct queue_filter f;
    struct queue *q = NULL;
    struct queue_message_info *ms = NULL;
    struct account_notes ns = {NULL, 0};
    struct mo_error err;
    size_t n = 0;
    bool json = false;
    enum queue_state state;
    long v;
    int code;
    int c;

    memset(&f, 0, sizeof(f));
    f.state = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_STATE && queue_state_parse(optarg, &state) == 0)
            f.state = (int)state;
        else if (c == O_SEARCH)
            f.search = optarg;
        else if (c == O_LIMIT && mo_parse_long(optarg, 1, 10000, &v) == 0)
            f.limit = (size_t)v;
        else if (c == O_BEFORE && mo_parse_long(optarg, 1, 0x7fffffffL, &v) == 0)
            f.before_id = v;
        else if (c == O_JSON)
            json = true;
        else {
            if (c == O_STATE)
                fprintf(stderr, "mailout: unknown state \"%s\"\n", optarg);
            queue_usage(c == O_HELP ? stdout : stderr);
            return c == O_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        queue_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    code = open_queue(&q, json);
    if (code != CLI_EXIT_OK)
        return code;
    if (queue_list(q, &f, &ms, &n, &err) != 0) {
        code = report_error(&err, json);
        goto out;
    }
    if (json) {
        json_t *list = json_array();
        json_t *accounts = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, message_json(&ms[i], &ns));
        for (size_t i = 0; i < ns.n; i++)
            json_array_append_new(accounts, note_json(&ns.items[i]));
        cli_json_print(json_pack(
            "{s:b, s:o, s:o, s:o}", "ok", 1, "messages", list, "accounts", accounts, "next_before",
            cli_json_int_or_null(n > 0 && n == (f.limit ? f.limit : 50) ? ms[n - 1].id : 0)));
    } else {
        if (n == 0)
            printf("no messages%s\n", f.state >= 0 || f.search != NULL ? " match" : "");
        else
            printf("%-7s %-9s %s  %-23s  %-10s %s\n", "ID", "STATE", "TRIES", "CREATED", "ACCOUNT",
                   "FROM -> TO  SUBJECT");
        for (size_t i = 0; i < n; i++)
            print_message_line(&ms[i], &ns);
    }
    code = CLI_EXIT_OK;
out:
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&ms[i]);
    free(ms);
    notes_clear(&ns);
    queue_close(q);
    return code;
}

static int
queue_show_cmd(int argc, char **argv)
{
    enum { O_JSON = 520, O_HELP };
    static const struct option opts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct queue *q = NULL;
    struct queue_message_info m;
    struct account_notes ns = {NULL, 0};
    struct mo_error err;
    bool json = false;
    int64_t id = 0;
    int code;
    int c;

    memset(&m, 0, sizeof(m));
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_JSON) {
            json = true;
        } else {
            queue_usage(c == O_HELP ? stdout : stderr);
            return c == O_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        queue_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (parse_id(argv[optind], &id) != 0)
        return CLI_EXIT_USAGE;
    code = open_queue(&q, json);
    if (code != CLI_EXIT_OK)
        return code;
    if (queue_get(q, id, true, &m, &err) != 0) {
        code = report_error(&err, json);
        goto out;
    }
    if (json) {
        json_t *o = message_json(&m, &ns);
        json_t *log = json_array();
        for (size_t i = 0; i < m.n_attempt_log; i++) {
            const struct queue_attempt_info *a = &m.attempt_log[i];
            json_array_append_new(log,
                                  json_pack("{s:I, s:s, s:o, s:s?, s:s?}", "at", (json_int_t)a->at,
                                            "result", a->result != NULL ? a->result : "?", "code",
                                            cli_json_int_or_null(a->code), "reply", a->reply,
                                            "transcript", a->transcript));
        }
        json_object_set_new(o, "attempt_log", log);
        cli_json_print(json_pack("{s:b, s:o}", "ok", 1, "message", o));
    } else {
        char t[64];
        char hold[700];
        printf("message %lld: %s\n", (long long)m.id, queue_state_name(m.state));
        printf("  account      %s\n", account_label(m.account));
        printf("  from         %s\n", m.from != NULL && m.from[0] ? m.from : "<>");
        if (m.header_from != NULL)
            printf("  From:        %s\n", m.header_from);
        if (m.subject != NULL)
            printf("  subject      %s\n", m.subject);
        if (m.message_id != NULL)
            printf("  Message-ID   <%s>\n", m.message_id);
        printf("  size         %zu bytes\n", m.size);
        printf("  source       %s\n", m.source != NULL ? m.source : "-");
        printf("  created      %s\n", when_text(m.created_at, t, sizeof(t)));
        printf("  attempts     %d\n", m.attempts);
        if (is_waiting(m.state) && m.state != QUEUE_QUEUED)
            printf("  next attempt %s\n", when_text(m.next_attempt_at, t, sizeof(t)));
        if (m.last_reply != NULL)
            printf("  last reply   %s\n", m.last_reply);
        if (is_waiting(m.state) && hold_text(notes_get(&ns, m.account), hold, sizeof(hold))[0])
            printf("  held         %s\n", hold);
        printf("  recipients\n");
        for (size_t i = 0; i < m.n_rcpts; i++)
            printf("    %-9s %s%s%s\n", m.rcpts[i].state, m.rcpts[i].address,
                   m.rcpts[i].reply != NULL ? "  " : "",
                   m.rcpts[i].reply != NULL ? m.rcpts[i].reply : "");
        for (size_t i = 0; i < m.n_attempt_log; i++) {
            const struct queue_attempt_info *a = &m.attempt_log[i];
            printf("\nattempt %zu at %s: %s%s%s\n", i + 1, when_text(a->at, t, sizeof(t)),
                   a->result != NULL ? a->result : "?", a->reply != NULL ? ", " : "",
                   a->reply != NULL ? a->reply : "");
            if (a->transcript != NULL && a->transcript[0]) {
                /* Indent each transcript line. */
                const char *p = a->transcript;
                while (*p) {
                    const char *nl = strchr(p, '\n');
                    size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
                    printf("  %.*s\n", (int)len, p);
                    p += len + (nl != NULL ? 1 : 0);
                }
            }
        }
    }
    code = CLI_EXIT_OK;
out:
    queue_message_info_clear(&m);
    notes_clear(&ns);
    queue_close(q);
    return code;
}

/* ---- retry and drop ---------------------------------------------------------- */

static int
queue_retry_cmd(int argc, char **argv)
{
    struct queue *q = NULL;
    struct queue_message_info m;
    struct account_notes ns = {NULL, 0};
    struct mo_error err;
    bool all = false;
    int64_t id = 0;
    size_t n = 0;
    int code;

    memset(&m, 0, sizeof(m));
    if (argc == 2 && strcmp(argv[1], "--all-deferred") == 0) {
        all = true;
    } else if (argc == 2 && (strcmp(argv[1], "--help") == 0)) {
        queue_usage(stdout);
        return CLI_EXIT_OK;
    } else if (argc != 2 || parse_id(argv[1], &id) != 0) {
        queue_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    code = open_queue(&q, false);
    if (code != CLI_EXIT_OK)
        return code;
    if (all) {
        if (queue_retry_all_deferred(q, &n, &err) != 0) {
            code = report_error(&err, false);
            goto out;
        }
        printf("%zu deferred message%s due now; `mailout queue run` sends them\n", n,
               n == 1 ? " is" : "s are");
    } else {
        char hold[700];
        if (queue_retry(q, id, &err) != 0) {
            code = report_error(&err, false);
            goto out;
        }
        printf("message %lld is due now; `mailout queue run` sends it\n", (long long)id);
        if (queue_get(q, id, false, &m, &err) == 0 &&
            hold_text(notes_get(&ns, m.account), hold, sizeof(hold))[0])
            printf("note: %s; it waits until then (a passing `mailout account check` ends a "
                   "pause)\n",
                   hold);
    }
    code = CLI_EXIT_OK;
out:
    queue_message_info_clear(&m);
    notes_clear(&ns);
    queue_close(q);
    return code;
}

static int
queue_drop_cmd(int argc, char **argv)
{
    struct queue *q = NULL;
    struct mo_error err;
    int64_t id = 0;
    int code;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        queue_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc != 2 || parse_id(argv[1], &id) != 0) {
        queue_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    code = open_queue(&q, false);
    if (code != CLI_EXIT_OK)
        return code;
    if (queue_drop(q, id, &err) != 0)
        code = report_error(&err, false);
    else
        printf("message %lld dropped\n", (long long)id);
    queue_close(q);
    return code;
}

/* ---- run --------------------------------------------------------------------- */

static volatile sig_atomic_t run_stop;
static volatile sig_atomic_t run_reload;

static void
on_stop(int sig)
{
    (void)sig;
    run_stop = 1;
}

static void
on_reload(int sig)
{
    (void)sig;
    run_reload = 1;
}

static json_t *
stats_json(const struct worker_stats *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "attempts",
                     (json_int_t)s->attempts, "sent", (json_int_t)s->sent, "deferred",
                     (json_int_t)s->deferred, "failed", (json_int_t)s->failed, "uncertain",
                     (json_int_t)s->uncertain, "released", (json_int_t)s->released, "connections",
                     (json_int_t)s->connections, "open_failures", (json_int_t)s->open_failures,
                     "reconnects", (json_int_t)s->reconnects, "pauses", (json_int_t)s->pauses);
}

static int
queue_run_cmd(int argc, char **argv)
{
    enum { O_TIMEOUT = 540, O_CONNECTIONS, O_BATCH, O_VERBOSE, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"connections", required_argument, NULL, O_CONNECTIONS},
        {"batch", required_argument, NULL, O_BATCH},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct worker_options wo;
    struct worker_stats stats;
    struct sigaction sa;
    struct sigaction old_term;
    struct sigaction old_int;
    struct sigaction old_hup;
    struct queue *q = NULL;
    struct mo_error err;
    size_t imported = 0;
    bool json = false;
    bool verbose = false;
    long timeout = 0;
    long connections = 0;
    long batch = 0;
    int code;
    int c;

    memset(&wo, 0, sizeof(wo));
    memset(&stats, 0, sizeof(stats));
    optind = 1;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        if (c == O_TIMEOUT && mo_parse_long(optarg, 1, 3600, &timeout) == 0)
            continue;
        if (c == O_CONNECTIONS && mo_parse_long(optarg, 1, 64, &connections) == 0)
            continue;
        if (c == O_BATCH && mo_parse_long(optarg, 1, 10000, &batch) == 0)
            continue;
        if (c == O_VERBOSE || c == 'v')
            verbose = true;
        else if (c == O_JSON)
            json = true;
        else {
            queue_usage(c == O_HELP ? stdout : stderr);
            return c == O_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        queue_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (verbose)
        mo_log_init(MO_LOG_INFO);
    code = open_queue(&q, json);
    if (code != CLI_EXIT_OK)
        return code;
    if (queue_spool_import(q, cli_home(), &imported, &err) != 0) {
        /* What could not be moved stays in the spool for the next run; deliver the rest. */
        fprintf(stderr, "mailout: the spool: %s\n", err.text);
    }
    queue_close(q);
    q = NULL;

    run_stop = 0;
    run_reload = 0;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, &old_hup);

    wo.home = cli_home();
    wo.once = true;
    wo.timeout_s = (int)timeout;
    wo.max_connections = (int)connections;
    wo.batch = (int)batch;
    wo.stop = &run_stop;
    wo.reload = &run_reload;
    wo.stats = &stats;
    if (worker_run(&wo, &err) != 0) {
        code = report_error(&err, json);
    } else {
        code = CLI_EXIT_OK;
        if (json) {
            cli_json_print(json_pack("{s:b, s:I, s:o, s:b}", "ok", 1, "imported",
                                     (json_int_t)imported, "stats", stats_json(&stats), "stopped",
                                     run_stop != 0));
        } else {
            if (imported > 0)
                printf("moved %zu message%s from the spool into the queue\n", imported,
                       imported == 1 ? "" : "s");
            printf("%llu attempt%s: %llu sent, %llu deferred, %llu failed, %llu uncertain",
                   (unsigned long long)stats.attempts, stats.attempts == 1 ? "" : "s",
                   (unsigned long long)stats.sent, (unsigned long long)stats.deferred,
                   (unsigned long long)stats.failed, (unsigned long long)stats.uncertain);
            if (stats.pauses > 0)
                printf("; %llu account pause%s (see mailout queue list)",
                       (unsigned long long)stats.pauses, stats.pauses == 1 ? "" : "s");
            printf("\n");
        }
    }
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    return code;
}

int
cli_queue_main(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    cli_service_init();
    if (sub == NULL) {
        queue_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(sub, "list") == 0)
        return queue_list_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0)
        return queue_show_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "retry") == 0)
        return queue_retry_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "drop") == 0)
        return queue_drop_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "run") == 0)
        return queue_run_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        queue_usage(stdout);
        return CLI_EXIT_OK;
    }
    fprintf(stderr, "mailout: unknown queue command \"%s\"\n", sub);
    queue_usage(stderr);
    return CLI_EXIT_USAGE;
}
