/*
 * store_open.c - opening the account store from the command line, making the
 * data folder first, so every command names the folder the same way in its
 * errors; and the process settings of the commands that run the queue.
 */
#include <errno.h>
#include <malloc.h>
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

void
cli_service_init(void)
{
    /* glibc gives freed memory back to the kernel as soon as 128 KB sit free at the top of
     * a heap: the delivery threads, which free a batch's messages and claim the next, then
     * paid ~2 madvise calls (and TLB shootdowns on the other threads) per message. Keeping
     * up to 8 MB per heap costs little beside that (bench/queue: -40% CPU). */
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    mo_db_init();
}
