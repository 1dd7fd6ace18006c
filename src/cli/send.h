/*
 * send.h - private to src/cli: the options of `mailout send`, shared by the
 * compose path (send.c) and the ready-made-files path (send_raw.c), and the
 * small file helpers (io.c).
 */
#ifndef MAILOUT_CLI_SEND_H
#define MAILOUT_CLI_SEND_H

#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"
#include "smtp/smtp.h"

#define SEND_MAX_LIST 10000
#define SEND_MAX_MESSAGE (64u * 1024 * 1024)

struct send_opts {
    struct smtp_options smtp; /* secret owned here (wiped on exit) */
    const char *from;
    const char *to[SEND_MAX_LIST];
    size_t n_to;
    const char *cc[SEND_MAX_LIST];
    size_t n_cc;
    const char *bcc[SEND_MAX_LIST];
    size_t n_bcc;
    const char *subject;
    const char *text_file;
    const char *html_file;
    const char *attach[64];
    size_t n_attach;
    const char *raw_path;
    long connections;
    bool json;
};

/* Reads a whole file (max_bytes at most) into out. Errors: CONFIG with field. */
int io_read_file(const char *path, size_t max_bytes, const char *field, struct mo_buf *out,
                 struct mo_error *err);
/* Reads a secret from fd: everything, minus one trailing newline. Caller frees with
 * mo_free_secret. Errors: CONFIG (field "password"). */
char *io_read_secret_fd(int fd, struct mo_error *err);

/* `--raw`: sends each file under o->raw_path. Returns the exit status. */
int send_raw_run(const struct send_opts *o);

/* Maps an error to the exit status: 75 for temporary, 2 for CONFIG, else 1. */
int send_exit_code(const struct mo_error *err);

#endif
