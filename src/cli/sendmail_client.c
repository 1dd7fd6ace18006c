/*
 * sendmail_client.c - handing a message to a running `mailout serve` through
 * its socket, home/sendmail.sock, and the wire format both ends share.
 *
 * Why: PHP starts one sendmail process per message. A process that opens
 * the database, reads the accounts and commits on its own loads four
 * libraries and pays a commit each; one that writes the message to the
 * service's socket needs libc alone, and the service commits many senders'
 * messages together (queue_committer). Without a service (or when it does
 * not answer) the caller queues the message itself, as before.
 *
 * The exchange, one message per connection:
 *   client: "mailout-sendmail 1 AAAAAAAAAA BBBBBBBBBB\n" (argc and the bytes
 *           of the arguments, ten digits each), the arguments (argv[0]
 *           included), each NUL-terminated, then the message to EOF
 *           (shutdown of the write side). The "." rule was applied already.
 *   server: "STATUS\n" (the sysexits code) and the text to print on stderr,
 *           empty when there is nothing to say, then it closes.
 * The service is the data folder's owner; whoever can reach the socket may
 * queue (it is 0666 inside the 0711 data folder, like spool/tmp; see
 * sendmail_socket.c), exactly as they could through the spool.
 * libc only: mailout-sendmail links this file without the libraries.
 */
#include "cli/sendmail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define HEADER_FMT SENDMAIL_PROTOCOL " %010d %010zu\n"
#define HEADER_LEN (sizeof(SENDMAIL_PROTOCOL) - 1 + 23)
#define ARG_BYTES_MAX (256 * 1024)
#define CLIENT_TIMEOUT_S 120

static int
write_all(int fd, const void *p, size_t len)
{
    const char *c = p;

    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
read_exact(int fd, void *p, size_t len)
{
    char *c = p;

    while (len > 0) {
        ssize_t n = read(fd, c, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

int
sendmail_socket_path(const char *home, char *out, size_t size)
{
    struct sockaddr_un sa;
    int n = snprintf(out, size, "%s/" SENDMAIL_SOCKET_NAME, home);

    return n > 0 && (size_t)n < size && (size_t)n < sizeof(sa.sun_path) ? 0 : -1;
}

int
sendmail_request_read(int fd, int *argc_out, char ***argv_out, char *why, size_t why_size)
{
    char header[HEADER_LEN + 1];
    char *args = NULL;
    char **argv = NULL;
    size_t bytes = 0;
    size_t pos = 0;
    int argc = 0;
    char nl = 0;

    *argc_out = 0;
    *argv_out = NULL;
    if (read_exact(fd, header, HEADER_LEN) != 0)
        goto bad;
    header[HEADER_LEN] = '\0';
    if (memcmp(header, SENDMAIL_PROTOCOL " ", sizeof(SENDMAIL_PROTOCOL)) != 0 ||
        sscanf(header + sizeof(SENDMAIL_PROTOCOL), "%10d %10zu%c", &argc, &bytes, &nl) != 3 ||
        nl != '\n' || argc < 1 || argc > 4096 || bytes > ARG_BYTES_MAX || bytes < (size_t)argc)
        goto bad;
    args = malloc(bytes);
    argv = calloc((size_t)argc + 1, sizeof(*argv));
    if (args == NULL || argv == NULL || read_exact(fd, args, bytes) != 0 || args[bytes - 1] != '\0')
        goto bad;
    for (int i = 0; i < argc; i++) {
        size_t len;

        if (pos >= bytes)
            goto bad;
        len = strlen(args + pos);
        argv[i] = strdup(args + pos);
        if (argv[i] == NULL)
            goto bad;
        pos += len + 1;
    }
    if (pos != bytes)
        goto bad;
    free(args);
    *argc_out = argc;
    *argv_out = argv;
    return 0;
bad:
    for (int i = 0; argv != NULL && i < argc; i++)
        free(argv[i]);
    free(argv);
    free(args);
    snprintf(why, why_size, "the request on %s is not one mailout-sendmail sends",
             SENDMAIL_SOCKET_NAME);
    return EX_PROTOCOL;
}

void
sendmail_reply_write(int fd, int status, const char *text)
{
    char head[16];
    size_t len = strlen(text);

    snprintf(head, sizeof(head), "%d\n", status);
    /* The text is stderr's: without its last newline (the client adds one). */
    while (len > 0 && text[len - 1] == '\n')
        len--;
    if (write_all(fd, head, strlen(head)) == 0)
        (void)write_all(fd, text, len);
}

/* Reads "STATUS\n" and the text up to EOF into why. -1: no whole reply. */
static int
reply_read(int fd, char *why, size_t why_size)
{
    char buf[4096];
    size_t len = 0;
    char *nl;
    long status;

    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0 || len + (size_t)n == sizeof(buf) - 1) {
            len += (size_t)(n > 0 ? n : 0);
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    nl = strchr(buf, '\n');
    if (nl == NULL)
        return -1;
    *nl = '\0';
    status = strtol(buf, NULL, 10);
    if (status < 0 || status > 255)
        return -1;
    snprintf(why, why_size, "%s", nl + 1);
    return (int)status;
}

int
sendmail_client_connect(const char *home)
{
    struct sockaddr_un sa;
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (sendmail_socket_path(home, sa.sun_path, sizeof(sa.sun_path)) != 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* No service (no socket, refused, not ours to reach): the caller queues it. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

int
sendmail_client_exchange(int fd, int argc, char *const *argv, const char *data, size_t len,
                         char *why, size_t why_size)
{
    char header[HEADER_LEN + 1];
    size_t arg_bytes = 0;
    int status;

    why[0] = '\0';
    for (int i = 0; i < argc; i++)
        arg_bytes += strlen(argv[i]) + 1;
    if (argc < 1 || arg_bytes > ARG_BYTES_MAX) {
        close(fd);
        return -1;
    }
    snprintf(header, sizeof(header), HEADER_FMT, argc, arg_bytes);
    if (write_all(fd, header, HEADER_LEN) != 0)
        goto reply; /* the service may have refused early: its reply says why */
    for (int i = 0; i < argc; i++)
        if (write_all(fd, argv[i], strlen(argv[i]) + 1) != 0)
            goto reply;
    if (write_all(fd, data, len) != 0)
        goto reply;
    (void)shutdown(fd, SHUT_WR);
reply:
    /*
     * No whole reply (the service stopped, or never said): -1, and the caller
     * queues the message itself. Should the service have committed it just
     * before it died, the message goes twice rather than not at all.
     */
    status = reply_read(fd, why, why_size);
    close(fd);
    return status;
}

int
sendmail_client_submit(const char *home, int argc, char *const *argv, const char *data, size_t len,
                       char *why, size_t why_size)
{
    int fd = sendmail_client_connect(home);

    why[0] = '\0';
    if (fd < 0)
        return -1;
    return sendmail_client_exchange(fd, argc, argv, data, len, why, why_size);
}
