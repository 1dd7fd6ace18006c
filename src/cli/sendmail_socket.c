/*
 * sendmail_socket.c - `mailout serve`'s end of home/sendmail.sock: a few
 * threads accept mailout-sendmail clients and queue each message through one
 * group committer (the wire format is in sendmail_client.c).
 *
 * Why a socket: PHP's mail() starts one sendmail per message; handing the
 * message to the service spares that process the libraries, the database
 * and a commit of its own, and the service commits concurrent senders
 * together. The web server's user needs no access to the database or keys.
 *
 * The socket file is 0666 in the data folder (0711: others may pass, not
 * list), the same reach as spool/tmp (1733): whoever could drop a file in
 * the spool may queue here. A group setup narrows both (README). A second
 * service on the same folder finds the socket answering and leaves it.
 * Each connection gets SOCKET_TIMEOUT_S to send its message.
 */
#include "cli/sendmail.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "queue/queue.h"

#define SOCKET_THREADS 8
#define SOCKET_BACKLOG 128
#define SOCKET_TIMEOUT_S 60

struct sendmail_socket {
    char home[4096];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int fd;
    struct queue_committer *committer;
    pthread_t threads[SOCKET_THREADS];
    size_t n_threads;
};

/*
 * After the reply: reads what the client still sends (a refused message's
 * rest) before closing, so its writes end and it reads the reply; closing
 * with unread data would reset the connection and lose the reply.
 */
static void
drain_and_close(int c)
{
    char buf[16384];

    (void)shutdown(c, SHUT_WR);
    while (read(c, buf, sizeof(buf)) > 0)
        ;
    close(c);
}

static void *
accept_loop(void *arg)
{
    struct sendmail_socket *s = arg;
    struct timeval tv = {.tv_sec = SOCKET_TIMEOUT_S};

    for (;;) {
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* shut down (EINVAL) or closed */
        }
        (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void)sendmail_serve_one(c, s->home, s->committer);
        drain_and_close(c);
    }
    return NULL;
}

/* Whether a service already answers on path. */
static bool
someone_listens(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool yes;

    if (fd < 0)
        return false;
    yes = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
    close(fd);
    return yes;
}

int
sendmail_socket_start(const char *home, struct sendmail_socket **out, struct mo_error *err)
{
    struct sendmail_socket *s;
    struct sockaddr_un sa;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    s->fd = -1;
    snprintf(s->home, sizeof(s->home), "%s", home);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (sendmail_socket_path(home, sa.sun_path, sizeof(sa.sun_path)) != 0) {
        mo_error_set(err, MO_ERR_CONFIG, "home",
                     "the data folder's path is too long for %s (at most %zu characters)",
                     SENDMAIL_SOCKET_NAME, sizeof(sa.sun_path) - sizeof(SENDMAIL_SOCKET_NAME) - 1);
        goto fail;
    }
    memcpy(s->path, sa.sun_path, sizeof(s->path));
    if (someone_listens(&sa)) {
        mo_error_set(err, MO_ERR_CONFIG, "home",
                     "another mailout serve already takes sendmail's messages on %s", s->path);
        goto fail;
    }
    (void)unlink(s->path); /* left by a service that was killed */
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        chmod(s->path, 0666) != 0 || listen(s->fd, SOCKET_BACKLOG) != 0) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot listen on %s: %s", s->path,
                     strerror(errno));
        goto fail;
    }
    if (queue_committer_start(home, NULL, "sendmail", &s->committer, err) != 0)
        goto fail;
    for (; s->n_threads < SOCKET_THREADS; s->n_threads++)
        if (pthread_create(&s->threads[s->n_threads], NULL, accept_loop, s) != 0)
            break;
    if (s->n_threads == 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot start the sendmail socket's threads");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    sendmail_socket_stop(s);
    return -1;
}

void
sendmail_socket_stop(struct sendmail_socket *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0) {
        /* New senders find no socket and queue by themselves; accept() returns. */
        if (s->path[0] != '\0' && s->n_threads > 0)
            (void)unlink(s->path);
        (void)shutdown(s->fd, SHUT_RDWR);
    }
    for (size_t i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    if (s->fd >= 0)
        close(s->fd);
    queue_committer_stop(s->committer);
    free(s);
}
