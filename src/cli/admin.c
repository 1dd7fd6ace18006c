/*
 * admin.c - `mailout admin password`: sets the admin panel's password from
 * the terminal (the first time, or to replace a forgotten one).
 *
 * At a terminal it asks twice without echo; otherwise it reads one line
 * from standard input (scripts: `printf '%s\n' "$PW" | mailout admin
 * password`). The password is hashed with argon2id (admin_password_set);
 * setting it logs every panel session out. Any characters are fine, at
 * least 8.
 * Leaves out: several admins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cli/cli.h"

#define ADMIN_PASSWORD_READ_MAX 4096

static void
admin_usage(FILE *out)
{
    fputs("usage: mailout admin password\n"
          "\n"
          "Sets the admin panel's password (at least 8 characters, any characters).\n"
          "At a terminal it asks twice without showing it; otherwise it reads one line\n"
          "from standard input. Setting it logs every panel session out.\n",
          out);
}

/* One line without echo when stdin is a terminal; NULL at end of input. Caller wipes. */
static char *
read_secret_line(const char *prompt, bool tty)
{
    struct termios old, quiet;
    bool hidden = false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            hidden = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        }
    }
    n = getline(&line, &cap, stdin);
    if (hidden) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (n < 0 || n > ADMIN_PASSWORD_READ_MAX) {
        if (line != NULL)
            mo_wipe(line, cap);
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    return line;
}

static int
admin_password(void)
{
    bool tty = isatty(STDIN_FILENO) != 0;
    char *first = NULL;
    char *second = NULL;
    struct mo_error err;
    bool existed = false;
    int code = CLI_EXIT_USAGE;

    (void)admin_password_exists(cli_home(), &existed, NULL);
    first = read_secret_line("New admin password: ", tty);
    if (first == NULL) {
        fprintf(stderr, "mailout admin password: no password was given\n");
        goto out;
    }
    if (tty) {
        second = read_secret_line("The same again: ", tty);
        if (second == NULL || strcmp(first, second) != 0) {
            fprintf(stderr, "mailout admin password: the two passwords differ; nothing was "
                            "changed\n");
            goto out;
        }
    }
    if (admin_password_set(cli_home(), first, &err) != 0) {
        fprintf(stderr, "mailout admin password: %s\n", err.text);
        code = err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
        goto out;
    }
    printf("The admin password is %s%s.\n", existed ? "changed" : "set",
           existed ? "; every panel session was logged out" : "");
    code = CLI_EXIT_OK;
out:
    mo_free_secret(first);
    mo_free_secret(second);
    return code;
}

int
cli_admin_main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "password") == 0)
        return admin_password();
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
        admin_usage(stdout);
        return CLI_EXIT_OK;
    }
    admin_usage(stderr);
    return CLI_EXIT_USAGE;
}
