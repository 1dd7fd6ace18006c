/*
 * cli.h - the `mailout` command line: one entry point per command.
 * Each returns the process exit status (0 ok, 1 failed, 2 usage or invalid
 * input, 75 temporary failure, as sysexits' EX_TEMPFAIL).
 */
#ifndef MAILOUT_CLI_H
#define MAILOUT_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_TEMPFAIL 75

/* `mailout send ...`: argv[0] is "send". */
int cli_send_main(int argc, char **argv);

#endif
