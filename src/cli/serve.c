/*
 * serve.c - `mailout serve`: the long-running service. It starts the HTTP
 * side (API now, admin panel next) on a loopback address, runs the delivery
 * worker in its own thread, and moves spooled messages (from `mailout
 * sendmail` run by users without access to the database) into the queue.
 *
 * Signals: SIGTERM and SIGINT finish the messages in flight and stop;
 * SIGHUP reloads the accounts. Leaves out: daemonising (run it under systemd
 * or a process supervisor) and privilege dropping.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "cli/sendmail.h"
#include "listener/listener.h"
#include "sandbox/sandbox.h"
#include "queue/queue.h"
#include "worker/worker.h"

#define SERVE_DEFAULT_HTTP "127.0.0.1:8025"
#define SERVE_SPOOL_INTERVAL_MS 200

static volatile sig_atomic_t serve_stop;
static volatile sig_atomic_t serve_reload;

static void
on_stop(int sig)
{
    (void)sig;
    serve_stop = 1;
}

static void
on_reload(int sig)
{
    (void)sig;
    serve_reload = 1;
}

struct worker_thread {
    struct worker_options opt;
    struct mo_error err;
    int rc;
};

static void *
worker_main(void *arg)
{
    struct worker_thread *w = arg;

    w->rc = worker_run(&w->opt, &w->err);
    if (w->rc != 0)
        serve_stop = 1; /* without delivery the service is no use: stop and say why */
    return NULL;
}

static void
serve_usage(FILE *out)
{
    fputs("usage: mailout serve [--http ADDR:PORT | --no-http] [--no-worker]\n"
          "                     [--max-body BYTES] [--timeout SECONDS] [--quiet]\n"
          "                     [--connections N] [--lease SECONDS] [--uncertain-grace SECONDS]\n"
          "                     [--smtp ADDR:PORT [--smtp-cert FILE --smtp-key FILE]\n"
          "                      [--smtp-require-auth] [--smtp-max-size BYTES]\n"
          "                      [--smtp-max-recipients N] [--smtp-max-connections N]\n"
          "                      [--smtp-rate N]]\n"
          "                     [--sandbox ADDR:PORT | --no-sandbox]\n"
          "\n"
          "Runs the service: the HTTP API and admin panel (default " SERVE_DEFAULT_HTTP "),\n"
          "the delivery worker, and the spool import. SIGTERM stops it after the messages\n"
          "in flight; SIGHUP reloads the accounts.\n"
          "--connections: per account at once (2); --lease: how long a claim lasts before a\n"
          "crashed worker's messages count as in flight (300 s); --uncertain-grace: when\n"
          "such a message is sent again (1800 s).\n"
          "\n"
          "--smtp ADDR:PORT also accepts mail over SMTP (off unless given), e.g.\n"
          "127.0.0.1:2525: each message is queued before the 250. AUTH PLAIN/LOGIN takes an\n"
          "API key as the password (any user name); on loopback it is optional unless\n"
          "--smtp-require-auth. Any other address needs --smtp-cert and --smtp-key:\n"
          "clients there must use STARTTLS and AUTH. Limits: --smtp-max-size (default 25 MB),\n"
          "--smtp-max-recipients (1000), --smtp-max-connections (100), --smtp-rate\n"
          "(messages per minute per client address; default no limit).\n"
          "\n"
          "The sandbox receiver (on unless --no-sandbox) keeps the letters of accounts with\n"
          "provider \"sandbox\" in the data folder (see `mailout sandbox`); it listens on\n"
          "--sandbox ADDR:PORT, default a free port on 127.0.0.1, recorded in the data folder.\n",
          out);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !serve_stop)
        ;
}

int
cli_serve_main(int argc, char **argv)
{
    enum {
        O_HTTP = 600,
        O_NO_HTTP,
        O_NO_WORKER,
        O_MAX_BODY,
        O_TIMEOUT,
        O_LEASE,
        O_GRACE,
        O_CONNECTIONS,
        O_QUIET,
        O_HELP,
        O_SMTP,
        O_SMTP_CERT,
        O_SMTP_KEY,
        O_SMTP_REQUIRE_AUTH,
        O_SMTP_MAX_SIZE,
        O_SMTP_MAX_RCPTS,
        O_SMTP_MAX_CONNS,
        O_SMTP_RATE,
        O_SANDBOX,
        O_NO_SANDBOX,
    };
    static const struct option opts[] = {
        {"http", required_argument, NULL, O_HTTP},
        {"no-http", no_argument, NULL, O_NO_HTTP},
        {"no-worker", no_argument, NULL, O_NO_WORKER},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"lease", required_argument, NULL, O_LEASE},
        {"uncertain-grace", required_argument, NULL, O_GRACE},
        {"connections", required_argument, NULL, O_CONNECTIONS},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {"smtp", required_argument, NULL, O_SMTP},
        {"smtp-cert", required_argument, NULL, O_SMTP_CERT},
        {"smtp-key", required_argument, NULL, O_SMTP_KEY},
        {"smtp-require-auth", no_argument, NULL, O_SMTP_REQUIRE_AUTH},
        {"smtp-max-size", required_argument, NULL, O_SMTP_MAX_SIZE},
        {"smtp-max-recipients", required_argument, NULL, O_SMTP_MAX_RCPTS},
        {"smtp-max-connections", required_argument, NULL, O_SMTP_MAX_CONNS},
        {"smtp-rate", required_argument, NULL, O_SMTP_RATE},
        {"sandbox", required_argument, NULL, O_SANDBOX},
        {"no-sandbox", no_argument, NULL, O_NO_SANDBOX},
        {NULL, 0, NULL, 0},
    };
    struct admin_options aopt;
    struct admin_server *admin = NULL;
    struct listener_options lopt;
    struct listener_server *listener = NULL;
    struct listener_options sbopt;
    struct listener_server *sandbox = NULL;
    bool with_sandbox = true;
    struct worker_thread wt;
    struct account_store *st = NULL;
    struct queue *q = NULL;
    struct sendmail_socket *smsock = NULL;
    struct mo_error err;
    struct sigaction sa;
    pthread_t worker_tid;
    bool worker_started = false;
    bool with_worker = true;
    bool quiet = false;
    const char *http = SERVE_DEFAULT_HTTP;
    long v;
    int code = CLI_EXIT_FAILED;
    int c;

    cli_service_init();
    memset(&aopt, 0, sizeof(aopt));
    memset(&lopt, 0, sizeof(lopt));
    memset(&sbopt, 0, sizeof(sbopt));
    sbopt.is_sandbox = true;
    memset(&wt, 0, sizeof(wt));
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SANDBOX:
            sbopt.listen = optarg;
            break;
        case O_NO_SANDBOX:
            with_sandbox = false;
            break;
        case O_HTTP:
            http = optarg;
            break;
        case O_NO_HTTP:
            http = NULL;
            break;
        case O_NO_WORKER:
            with_worker = false;
            break;
        case O_MAX_BODY:
            if (mo_parse_long(optarg, 1024, 1L << 30, &v) != 0) {
                fprintf(stderr, "mailout serve: --max-body must be 1024 to 1073741824 bytes\n");
                return CLI_EXIT_USAGE;
            }
            aopt.max_body_bytes = (size_t)v;
            break;
        case O_TIMEOUT:
            if (mo_parse_long(optarg, 1, 3600, &v) != 0) {
                fprintf(stderr, "mailout serve: --timeout must be 1 to 3600 seconds\n");
                return CLI_EXIT_USAGE;
            }
            wt.opt.timeout_s = (int)v;
            break;
        case O_LEASE:
            if (mo_parse_long(optarg, 3, 86400, &v) != 0) {
                fprintf(stderr, "mailout serve: --lease must be 3 to 86400 seconds\n");
                return CLI_EXIT_USAGE;
            }
            wt.opt.lease_s = (int)v;
            break;
        case O_GRACE:
            if (mo_parse_long(optarg, 1, 30L * 86400, &v) != 0) {
                fprintf(stderr, "mailout serve: --uncertain-grace must be 1 s to 30 days\n");
                return CLI_EXIT_USAGE;
            }
            wt.opt.uncertain_grace_s = v;
            break;
        case O_CONNECTIONS:
            if (mo_parse_long(optarg, 1, 64, &v) != 0) {
                fprintf(stderr, "mailout serve: --connections must be 1 to 64\n");
                return CLI_EXIT_USAGE;
            }
            wt.opt.max_connections = (int)v;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case O_HELP:
            serve_usage(stdout);
            return CLI_EXIT_OK;
        case O_SMTP:
            lopt.listen = optarg;
            break;
        case O_SMTP_CERT:
            lopt.cert_file = optarg;
            break;
        case O_SMTP_KEY:
            lopt.key_file = optarg;
            break;
        case O_SMTP_REQUIRE_AUTH:
            lopt.require_auth = true;
            break;
        case O_SMTP_MAX_SIZE:
            /* the queue takes at most 50 MB (queue.h); leave room for the added headers */
            if (mo_parse_long(optarg, 1024, 50000000, &v) != 0) {
                fprintf(stderr, "mailout serve: --smtp-max-size must be 1024 to 50000000 bytes\n");
                return CLI_EXIT_USAGE;
            }
            lopt.max_message_bytes = (size_t)v;
            break;
        case O_SMTP_MAX_RCPTS:
        case O_SMTP_MAX_CONNS:
        case O_SMTP_RATE:
            if (mo_parse_long(optarg, 1, 100000, &v) != 0) {
                fprintf(stderr, "mailout serve: --%s must be a number from 1 to 100000\n",
                        c == O_SMTP_MAX_RCPTS   ? "smtp-max-recipients"
                        : c == O_SMTP_MAX_CONNS ? "smtp-max-connections"
                                                : "smtp-rate");
                return CLI_EXIT_USAGE;
            }
            if (c == O_SMTP_MAX_RCPTS)
                lopt.max_recipients = (unsigned)v;
            else if (c == O_SMTP_MAX_CONNS)
                lopt.max_connections = (unsigned)v;
            else
                lopt.rate_per_minute = (unsigned)v;
            break;
        default:
            serve_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (lopt.listen == NULL &&
        (lopt.cert_file != NULL || lopt.key_file != NULL || lopt.require_auth ||
         lopt.max_message_bytes != 0 || lopt.max_recipients != 0 || lopt.max_connections != 0 ||
         lopt.rate_per_minute != 0)) {
        fprintf(stderr, "mailout serve: the --smtp-... options need --smtp ADDR:PORT\n");
        return CLI_EXIT_USAGE;
    }
    mo_log_init(quiet ? MO_LOG_WARN : MO_LOG_INFO);

    /* The data folder, its database and key are made here if this is the first start. */
    code = cli_open_store(&st);
    if (code != CLI_EXIT_OK)
        return code;
    account_store_close(st);
    if (queue_open(cli_home(), NULL, &q, &err) != 0) {
        fprintf(stderr, "mailout serve: %s\n", err.text);
        return CLI_EXIT_FAILED;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (with_sandbox) {
        /* the local test inbox: started before the worker, so sandbox accounts have its port */
        sbopt.home = cli_home();
        if (listener_start(&sbopt, &sandbox, &err) != 0 ||
            sandbox_port_write(cli_home(), listener_port(sandbox), &err) != 0 ||
            sandbox_accounts_update(cli_home(), listener_port(sandbox), &err) != 0) {
            fprintf(stderr, "mailout serve: --sandbox: %s\n", err.text);
            code = err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
            goto out;
        }
    }
    /* mailout-sendmail hands its messages over here (else it queues them itself). */
    if (sendmail_socket_start(cli_home(), &smsock, &err) != 0)
        mo_log(MO_LOG_WARN, "sendmail socket: %s; sendmail queues by itself", err.text);
    if (http != NULL) {
        aopt.home = cli_home();
        aopt.listen = http;
        if (admin_start(&aopt, &admin, &err) != 0) {
            fprintf(stderr, "mailout serve: %s\n", err.text);
            code = err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
            goto out;
        }
    }
    if (lopt.listen != NULL) {
        lopt.home = cli_home();
        if (listener_start(&lopt, &listener, &err) != 0) {
            fprintf(stderr, "mailout serve: --%s: %s\n", err.field != NULL ? err.field : "smtp",
                    err.text);
            code = err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
            goto out;
        }
    }
    if (with_worker) {
        wt.opt.home = cli_home();
        wt.opt.stop = &serve_stop;
        wt.opt.reload = &serve_reload;
        if (pthread_create(&worker_tid, NULL, worker_main, &wt) != 0) {
            fprintf(stderr, "mailout serve: cannot start the delivery worker\n");
            goto out;
        }
        worker_started = true;
    }
    printf("mailout serve: data folder %s\n", cli_home());
    if (http != NULL)
        printf("mailout serve: admin panel and API on http://%s/\n", http);
    if (listener != NULL)
        printf("mailout serve: SMTP submission on %s (port %u)\n", lopt.listen,
               listener_port(listener));
    if (sandbox != NULL)
        printf("mailout serve: sandbox inbox receiving on 127.0.0.1 port %u\n",
               listener_port(sandbox));
    printf("mailout serve: %s; stop with Ctrl-C or SIGTERM\n",
           with_worker ? "delivering queued mail" : "not delivering (--no-worker)");
    fflush(stdout);

    while (!serve_stop) {
        size_t n = 0;

        if (queue_spool_import(q, cli_home(), &n, &err) != 0)
            mo_log(MO_LOG_WARN, "spool: %s", err.text);
        else if (n > 0)
            mo_log(MO_LOG_INFO, "spool: %zu message%s moved into the queue", n, n == 1 ? "" : "s");
        sleep_ms(SERVE_SPOOL_INTERVAL_MS);
    }
    printf("mailout serve: stopping after the messages in flight...\n");
    fflush(stdout);
    code = CLI_EXIT_OK;
out:
    serve_stop = 1;
    sendmail_socket_stop(smsock);
    listener_stop(listener);
    listener_stop(sandbox);
    admin_stop(admin);
    if (worker_started) {
        pthread_join(worker_tid, NULL);
        if (wt.rc != 0) {
            fprintf(stderr, "mailout serve: delivery stopped: %s\n", wt.err.text);
            code = CLI_EXIT_FAILED;
        }
    }
    queue_close(q);
    return code;
}
