/*
 * home.c - the data folder: `--home DIR`, else $MAILOUT_HOME, else
 * $XDG_DATA_HOME/mailout, else ~/.local/share/mailout. Opening the account
 * store from the command line goes through here so every command names the
 * folder the same way in its errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

static char home_path[4096];

void
cli_set_home(const char *dir)
{
    snprintf(home_path, sizeof(home_path), "%s", dir);
}

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

const char *
cli_home(void)
{
    const char *v;

    if (home_path[0] != '\0')
        return home_path;
    if ((v = getenv("MAILOUT_HOME")) != NULL && v[0] != '\0')
        snprintf(home_path, sizeof(home_path), "%s", v);
    else if ((v = getenv("XDG_DATA_HOME")) != NULL && v[0] != '\0')
        snprintf(home_path, sizeof(home_path), "%s/mailout", v);
    else if ((v = getenv("HOME")) != NULL && v[0] != '\0')
        snprintf(home_path, sizeof(home_path), "%s/.local/share/mailout", v);
    else
        snprintf(home_path, sizeof(home_path), "./mailout-data");
    return home_path;
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
