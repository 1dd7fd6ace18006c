/*
 * main.c - `mailout`: picks the command and hands over its arguments.
 * The data flow of every command starts here; see docs/ARCHITECTURE.md.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/common.h"

static void
usage(FILE *out)
{
    fputs("usage: mailout COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  send      compose and send one message now (or send ready-made files with --raw)\n"
          "\n"
          "Run `mailout COMMAND --help` for a command's options.\n",
          out);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("mailout 0.1.0");
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "send") == 0)
        return cli_send_main(argc - 1, argv + 1);
    fprintf(stderr, "mailout: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
