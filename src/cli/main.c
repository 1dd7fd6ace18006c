/*
 * main.c - `mailout`: takes the global options (--home), picks the command
 * and hands over its arguments. The data flow of every command starts here;
 * see docs/ARCHITECTURE.md.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/common.h"

static void
usage(FILE *out)
{
    fputs("usage: mailout [--home DIR] COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  setup        set up a sender account step by step (interactive)\n"
          "  account      set, show, list, remove or check sender accounts\n"
          "  test         send the confirmation letter with an account's settings\n"
          "  providers    list the mail services mailout knows\n"
          "  detect       tell which mail service and server an address uses\n"
          "  send         compose and send one message now (or ready-made files with --raw)\n"
          "  serve        run the service: admin panel and API, delivery of queued mail\n"
          "  queue        list, show, retry or drop queued messages; run delivery once\n"
          "  sendmail     queue a message like sendmail does (PHP's mail(), cron)\n"
          "  apikey       create, list or revoke API keys for the HTTP API\n"
          "  admin        set the admin panel's password (admin password)\n"
          "\n"
          "--home DIR (or MAILOUT_HOME) is the data folder; default ~/.local/share/mailout.\n"
          "Run `mailout COMMAND --help` for a command's options.\n",
          out);
}

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"send", cli_send_main},   {"account", cli_account_main}, {"test", cli_test_main},
    {"setup", cli_setup_main}, {"detect", cli_detect_main},   {"providers", cli_providers_main},
    {"serve", cli_serve_main}, {"queue", cli_queue_main},     {"sendmail", cli_sendmail_main},
    {"apikey", cli_apikey_main}, {"admin", cli_admin_main},
    {"sandbox", cli_sandbox_main},
};

/* Invoked as `sendmail` (a symlink), mailout is the sendmail command itself. */
static bool
invoked_as_sendmail(const char *argv0)
{
    const char *base = strrchr(argv0, '/');

    base = base != NULL ? base + 1 : argv0;
    return strcmp(base, "sendmail") == 0 || strcmp(base, "mailout-sendmail") == 0;
}

int
main(int argc, char **argv)
{
    int i = 1;

    /* Everything mailout creates (the database, its WAL, the key) is private unless a
     * command opens it up on purpose (the spool folders). */
    umask(077);

    if (argc > 0 && invoked_as_sendmail(argv[0]))
        return cli_sendmail_main(argc, argv);

    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
            cli_set_home(argv[i + 1]);
            i += 2;
        } else if (strncmp(argv[i], "--home=", 7) == 0) {
            cli_set_home(argv[i] + 7);
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            puts("mailout 0.1.0");
            return CLI_EXIT_OK;
        } else {
            fprintf(stderr, "mailout: unknown option \"%s\"\n", argv[i]);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            return commands[k].run(argc - i, argv + i);
    fprintf(stderr, "mailout: unknown command \"%s\"\n", argv[i]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
