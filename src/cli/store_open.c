/*
 * store_open.c - opening the account store from the command line, making the
 * data folder first, so every command names the folder the same way in its
 * errors.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

/* Creates every missing folder of path (like mkdir -p). */
static int
make_dirs(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int
cli_open_store(struct account_store **out)
{
    struct mo_error err;
    const char *home = cli_home();

    if (make_dirs(home) != 0) {
        fprintf(stderr, "mailout: cannot create the data folder %s: %s\n", home, strerror(errno));
        return CLI_EXIT_FAILED;
    }
    if (account_store_open(home, out, &err) != 0) {
        fprintf(stderr, "mailout: %s\n", err.text);
        return err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}
