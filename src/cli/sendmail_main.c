/*
 * sendmail_main.c - `mailout-sendmail`: the sendmail command alone, for
 * php.ini's sendmail_path and a /usr/sbin/sendmail link. It is `mailout
 * sendmail` without the service's libraries (HTTP, TLS server side), so the
 * one process that PHP starts per message loads less and starts faster.
 * Accepts a leading `--home DIR`, like `mailout`; otherwise MAILOUT_HOME.
 */
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

int
main(int argc, char **argv)
{
    umask(077); /* as mailout itself: what it creates is private */
    if (argc >= 3 && strcmp(argv[1], "--home") == 0) {
        cli_set_home(argv[2]);
        argv[2] = argv[0];
        return cli_sendmail_main(argc - 2, argv + 2);
    }
    return cli_sendmail_main(argc, argv);
}
