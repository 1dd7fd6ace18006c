/*
 * sendmail_main.c - `mailout-sendmail`: the sendmail command for php.ini's
 * sendmail_path and a /usr/sbin/sendmail link, built to start fast: it links
 * libc alone, reads the message and hands it to the running service through
 * home/sendmail.sock (sendmail_client.c). When no service answers, or for
 * --help and command-line errors, it becomes `mailout [--home DIR] sendmail
 * ...` (the mailout binary beside it), which queues by itself; should the
 * service fail after the message was read, the message goes to it through a
 * pipe.
 * Accepts a leading `--home DIR`, like `mailout`; otherwise MAILOUT_HOME.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sendmail.h"

/* Runs the mailout binary beside this one as `mailout --home HOME sendmail ARGS...`. */
static int
become_mailout(int argc, char **argv)
{
    char self[PATH_MAX];
    char path[PATH_MAX + 16];
    char **args = calloc((size_t)argc + 4, sizeof(*args));
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (args == NULL || n <= 0) {
        fprintf(stderr, "mailout sendmail: cannot find the mailout program: %s\n", strerror(errno));
        return EX_OSERR;
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash != NULL)
        slash[1] = '\0';
    snprintf(path, sizeof(path), "%smailout", slash != NULL ? self : "./");
    args[0] = "mailout";
    args[1] = "--home";
    args[2] = (char *)cli_home();
    args[3] = "sendmail";
    for (int i = 1; i < argc; i++)
        args[3 + i] = argv[i];
    execv(path, args);
    fprintf(stderr, "mailout sendmail: cannot run %s: %s: the message was not queued\n", path,
            strerror(errno));
    free(args);
    return EX_UNAVAILABLE;
}

/* As become_mailout, with data (already read from stdin) as its standard input. */
static int
become_mailout_with(int argc, char **argv, const char *data, size_t len)
{
    int pipefd[2];
    pid_t pid;

    if (pipe(pipefd) != 0) {
        fprintf(stderr, "mailout sendmail: %s: the message was not queued\n", strerror(errno));
        return EX_OSERR;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mailout sendmail: %s: the message was not queued\n", strerror(errno));
        return EX_OSERR;
    }
    if (pid == 0) {
        /* the writer: the message, then EOF */
        close(pipefd[0]);
        while (len > 0) {
            ssize_t n = write(pipefd[1], data, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(1);
            data += n;
            len -= (size_t)n;
        }
        _exit(0);
    }
    close(pipefd[1]);
    if (dup2(pipefd[0], STDIN_FILENO) < 0) {
        fprintf(stderr, "mailout sendmail: %s: the message was not queued\n", strerror(errno));
        return EX_OSERR;
    }
    close(pipefd[0]);
    return become_mailout(argc, argv);
}

int
main(int argc, char **argv)
{
    struct sendmail_args args;
    struct mo_buf raw;
    char why[4096];
    int status;
    int fd;

    umask(077); /* as mailout itself: what it creates is private */
    if (argc >= 3 && strcmp(argv[1], "--home") == 0) {
        cli_set_home(argv[2]);
        argv[2] = argv[0];
        argc -= 2;
        argv += 2;
    }
    if (sendmail_args_parse(argc, argv, &args, why, sizeof(why)) != 0 || args.help) {
        sendmail_args_clear(&args);
        return become_mailout(argc, argv); /* it says what is wrong, or prints the help */
    }
    /* Without a service the mailout beside us reads standard input itself, untouched. */
    fd = sendmail_client_connect(cli_home());
    if (fd < 0) {
        sendmail_args_clear(&args);
        return become_mailout(argc, argv);
    }
    mo_buf_init(&raw, sendmail_limit_bytes(&args) + 65536);
    status = sendmail_read_input(STDIN_FILENO, args.ignore_dots, sendmail_limit_bytes(&args), &raw,
                                 why, sizeof(why));
    sendmail_args_clear(&args);
    if (status != 0) {
        fprintf(stderr, "mailout sendmail: %s: the message was not queued\n", why);
        close(fd);
        mo_buf_free(&raw);
        return status;
    }
    status = sendmail_client_exchange(fd, argc, argv, mo_buf_cstr(&raw), raw.len, why, sizeof(why));
    if (status >= 0) {
        if (why[0] != '\0')
            fprintf(stderr, "%s\n", why);
        mo_buf_free(&raw);
        return status;
    }
    return become_mailout_with(argc, argv, mo_buf_cstr(&raw), raw.len);
}
