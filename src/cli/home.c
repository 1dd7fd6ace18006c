/*
 * home.c - the data folder: `--home DIR`, else $MAILOUT_HOME, else
 * $XDG_DATA_HOME/mailout, else ~/.local/share/mailout. libc only: the
 * sendmail client links it (store_open.c opens the account store).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static char home_path[4096];

void
cli_set_home(const char *dir)
{
    snprintf(home_path, sizeof(home_path), "%s", dir);
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
