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

#include "account/account.h"

/* `mailout send ...`: argv[0] is "send". */
int cli_send_main(int argc, char **argv);
/* `mailout account set|show|list|remove|check ...`: argv[0] is "account". */
int cli_account_main(int argc, char **argv);
/* `mailout test ...`: sends the confirmation letter. */
int cli_test_main(int argc, char **argv);
/* `mailout account check ...` (argv[0] is "check"). */
int cli_check_main(int argc, char **argv);
/* `mailout setup`: the interactive wizard. */
int cli_setup_main(int argc, char **argv);
/* `mailout detect EMAIL ...` and `mailout providers ...`. */
int cli_detect_main(int argc, char **argv);
int cli_providers_main(int argc, char **argv);
/* `mailout serve`: the service (HTTP API and panel, delivery, spool import). */
int cli_serve_main(int argc, char **argv);
/* `mailout queue list|show|retry|drop|run`. */
int cli_queue_main(int argc, char **argv);
/* `mailout sendmail ...` and the program invoked as `sendmail`. */
int cli_sendmail_main(int argc, char **argv);
/* `mailout apikey create|list|revoke`. */
int cli_apikey_main(int argc, char **argv);
/* `mailout admin password`: sets the admin panel's password. */
int cli_admin_main(int argc, char **argv);
/* `mailout sandbox ensure-account|list|show|clear|fault`: the local test inbox. */
int cli_sandbox_main(int argc, char **argv);

/* JSON shapes shared by the commands (json.c). */
#include <jansson.h>
json_t *cli_json_int_or_null(long long v);
json_t *cli_error_json(const struct mo_error *err);
json_t *cli_steps_json(const struct smtp_step *steps, size_t n);
/* Prints o (indented, ASCII) and releases it. */
void cli_json_print(json_t *o);

/* The data folder (home.c): set once from --home, else from the environment. */
void cli_set_home(const char *dir);
/* Process settings for the commands that run the queue (serve, queue): before any database. */
void cli_service_init(void);
const char *cli_home(void);
/* Opens the account store in the data folder, printing any error; returns an exit status. */
int cli_open_store(struct account_store **out);

#endif
