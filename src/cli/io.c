/*
 * io.c - reading files and secrets for the command line, with limits and
 * errors that name the option at fault.
 */
#include "cli/send.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
read_fd(int fd, size_t max_bytes, struct mo_buf *out, struct mo_error *err)
{
    char chunk[65536];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            mo_error_set(err, MO_ERR_CONFIG, NULL, "read failed: %s", strerror(errno));
            return -1;
        }
        if (out->len + (size_t)n > max_bytes) {
            mo_error_set(err, MO_ERR_CONFIG, NULL, "larger than the limit of %zu bytes", max_bytes);
            return -1;
        }
        if (mo_buf_append(out, chunk, (size_t)n, err) != 0)
            return -1;
    }
}

int
io_read_file(const char *path, size_t max_bytes, const char *field, struct mo_buf *out,
             struct mo_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = -1;

    if (fd < 0) {
        mo_error_set(err, MO_ERR_CONFIG, field, "cannot open \"%s\": %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        /* A regular file: one buffer of the right size, read straight into it. */
        size_t size = (size_t)st.st_size;
        size_t got = 0;

        if (size > max_bytes) {
            mo_error_set(err, MO_ERR_CONFIG, field, "\"%s\" is larger than the limit of %zu bytes",
                         path, max_bytes);
            goto out;
        }
        if (mo_buf_reserve(out, size, err) != 0)
            goto out;
        while (got < size) {
            ssize_t n = read(fd, out->data + out->len + got, size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        out->len += got;
        out->data[out->len] = '\0';
        rc = 0;
        goto out;
    }
    rc = read_fd(fd, max_bytes, out, err);
    if (rc != 0) {
        if (err != NULL)
            err->field = field;
        mo_error_prefix(err, "\"%s\"", path);
    }
out:
    close(fd);
    return rc;
}

char *
io_read_secret_fd(int fd, struct mo_error *err)
{
    struct mo_buf b;
    char *secret = NULL;

    mo_buf_init(&b, 64 * 1024);
    if (read_fd(fd, b.max_bytes, &b, err) != 0) {
        if (err != NULL)
            err->field = "password";
        goto out;
    }
    /* One trailing newline is the end of the line typed or echoed, not the secret. */
    if (b.len > 0 && b.data[b.len - 1] == '\n') {
        b.len--;
        if (b.len > 0 && b.data[b.len - 1] == '\r')
            b.len--;
    }
    if (b.len == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "password", "the password is empty");
        goto out;
    }
    if (memchr(b.data, '\0', b.len) != NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "password", "the password contains a NUL byte");
        goto out;
    }
    secret = malloc(b.len + 1);
    if (secret == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    memcpy(secret, b.data, b.len);
    secret[b.len] = '\0';
out:
    mo_buf_wipe_free(&b);
    return secret;
}
