/*
 * server.c - the listener's life: options checked, the socket, the TLS
 * context, the accept loop, the connection cap, the per-client message rate,
 * and the orderly stop.
 *
 * Threads: one accept thread polls the listening socket and the stop pipe;
 * each accepted connection gets its own detached thread (session.c) as long
 * as fewer than max_connections run, otherwise a "421 4.7.0" and a close. A
 * session blocks in poll() with its timeouts, and in the committer while its
 * message is committed, so thread-per-connection keeps it plain; the cap
 * bounds the threads. listener_stop makes the stop pipe readable (every
 * session polls it too), joins the accept thread, waits until the last
 * session has ended, then stops the committer.
 *
 * The rate limit is a token bucket per client address (rate_per_minute
 * tokens, refilled continuously), taken at MAIL. Linear scan over at most
 * RATE_TABLE_MAX addresses (fine: this listener serves a few applications);
 * when the table is full, the entry idle longest is forgotten.
 * Leaves out: privilege dropping, socket activation, implicit TLS.
 * RFCs: 5321 3.1 and 4.2.5 (421 on a busy service), 3207 (STARTTLS), 8996
 * (TLS 1.2 at least).
 */
#include "listener/listener_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "sandbox/sandbox.h"

#define LISTEN_BACKLOG 512
#define RATE_TABLE_MAX 4096
#define SESSION_STACK_BYTES (512u * 1024)
#define DISK_MARGIN_BYTES (4u * 1024 * 1024)
#define DEFAULT_COMMAND_TIMEOUT_MS (5 * 60 * 1000)
#define DEFAULT_DATA_TIMEOUT_MS (10 * 60 * 1000)

struct listener_rate_entry {
    char ip[INET6_ADDRSTRLEN];
    double tokens;
    int64_t last_ms;
};

/* ---- rate and disk --------------------------------------------------------------- */

bool
listener_rate_take(struct listener_server *s, const char *ip)
{
    struct listener_rate_entry *e = NULL;
    const double cap = (double)s->rate_per_minute;
    int64_t now = mo_now_ms();
    bool ok;

    if (s->rate_per_minute == 0)
        return true;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_rate && e == NULL; i++)
        if (strcmp(s->rate[i].ip, ip) == 0)
            e = &s->rate[i];
    if (e == NULL) {
        if (s->n_rate < RATE_TABLE_MAX) {
            e = &s->rate[s->n_rate++];
        } else {
            e = &s->rate[0];
            for (size_t i = 1; i < s->n_rate; i++)
                if (s->rate[i].last_ms < e->last_ms)
                    e = &s->rate[i];
        }
        snprintf(e->ip, sizeof(e->ip), "%s", ip);
        e->tokens = cap;
        e->last_ms = now;
    }
    e->tokens += (double)(now - e->last_ms) * cap / 60000.0;
    if (e->tokens > cap)
        e->tokens = cap;
    e->last_ms = now;
    ok = e->tokens >= 1.0;
    if (ok)
        e->tokens -= 1.0;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool
listener_disk_short(const struct listener_server *s, uint64_t need)
{
    struct statvfs st;

    if (statvfs(s->home, &st) != 0)
        return false; /* the commit will say what is wrong */
    /* the message lands in the WAL first, then in the database: room for both */
    return (uint64_t)st.f_bavail * st.f_frsize < 2 * need + DISK_MARGIN_BYTES;
}

/* ---- TLS ------------------------------------------------------------------------- */

static int
tls_context(const struct listener_options *opt, SSL_CTX **out, struct mo_error *err)
{
    SSL_CTX *ctx = NULL;
    unsigned long e;
    char detail[256] = "";
    int rc = -1;

    *out = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot create a TLS context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, opt->cert_file) != 1) {
        e = ERR_peek_last_error();
        if (e != 0)
            ERR_error_string_n(e, detail, sizeof(detail));
        mo_error_set(err, MO_ERR_CONFIG, "smtp-cert",
                     "cannot read the certificate \"%s\" (missing, unreadable or not PEM: %s)",
                     opt->cert_file, detail);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opt->key_file, SSL_FILETYPE_PEM) != 1) {
        e = ERR_peek_last_error();
        if (e != 0)
            ERR_error_string_n(e, detail, sizeof(detail));
        mo_error_set(err, MO_ERR_CONFIG, "smtp-key",
                     "cannot read the private key \"%s\" (missing, unreadable, encrypted or not "
                     "PEM: %s)",
                     opt->key_file, detail);
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        mo_error_set(err, MO_ERR_CONFIG, "smtp-key",
                     "the private key \"%s\" does not belong to the certificate \"%s\"",
                     opt->key_file, opt->cert_file);
        goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    if (rc == 0)
        *out = ctx;
    else
        SSL_CTX_free(ctx);
    return rc;
}

/* ---- accepting ------------------------------------------------------------------- */

struct session_start {
    struct listener_server *s;
    int fd;
    struct sockaddr_storage peer;
    uint64_t id;
};

static void *
session_main(void *arg)
{
    struct session_start st = *(struct session_start *)arg;
    struct listener_server *s = st.s;

    free(arg);
    listener_session_run(s, st.fd, &st.peer, st.id);
    pthread_mutex_lock(&s->lock);
    s->n_sessions--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* One short line to a client we will not serve; best effort, never blocks. */
static void
refuse(const struct listener_server *s, int fd, const char *what)
{
    char line[400];
    int n = snprintf(line, sizeof(line), "421 4.7.0 %s %s\r\n", s->hostname, what);

    if (n > 0 && (size_t)n < sizeof(line))
        (void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void
accept_one(struct listener_server *s)
{
    struct session_start *st = NULL;
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    pthread_attr_t attr;
    pthread_t tid;
    int one = 1;
    int fd;
    bool started = false;

    fd = accept4(s->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            struct timespec ts = {0, 100 * 1000 * 1000};

            mo_log(MO_LOG_WARN, "smtp-in: cannot accept: %s", strerror(errno));
            nanosleep(&ts, NULL); /* not a busy loop while the descriptors are used up */
        }
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pthread_mutex_lock(&s->lock);
    if (s->n_sessions >= s->max_connections) {
        pthread_mutex_unlock(&s->lock);
        mo_log(MO_LOG_WARN, "smtp-in: %u sessions open already: refusing a connection",
               s->max_connections);
        refuse(s, fd, "Too many connections, try again later");
        return;
    }
    s->n_sessions++;
    s->next_session_id++;
    pthread_mutex_unlock(&s->lock);

    st = malloc(sizeof(*st));
    if (st != NULL && pthread_attr_init(&attr) == 0) {
        st->s = s;
        st->fd = fd;
        st->peer = peer;
        st->id = s->next_session_id;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, SESSION_STACK_BYTES);
        started = pthread_create(&tid, &attr, session_main, st) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        free(st);
        pthread_mutex_lock(&s->lock);
        s->n_sessions--;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
        mo_log(MO_LOG_ERROR, "smtp-in: cannot start a session thread");
        refuse(s, fd, "Cannot serve now, try again later");
    }
}

static void *
accept_main(void *arg)
{
    struct listener_server *s = arg;

    while (!atomic_load(&s->stopping)) {
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            mo_log(MO_LOG_ERROR, "smtp-in: poll failed: %s", strerror(errno));
            break;
        }
        if (p[1].revents != 0)
            break;
        if (p[0].revents & POLLIN)
            accept_one(s);
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------- */

static int
listen_socket(struct listener_server *s, const struct listener_options *opt, struct mo_error *err)
{
    struct sockaddr_storage addr;
    socklen_t len = 0;
    int one = 1;

    if (listener_listen_parse(opt->listen, &addr, &len, &s->listen_loopback, err) != 0)
        return -1;
    s->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        mo_error_set(err, MO_ERR_CONFIG, "smtp", "cannot make a socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->fd, (struct sockaddr *)&addr, len) != 0) {
        int e = errno;

        if (e == EADDRINUSE)
            mo_error_set(err, MO_ERR_CONFIG, "smtp",
                         "cannot listen on %s: the port is in use (another mail server?); "
                         "choose another port with --smtp",
                         opt->listen != NULL ? opt->listen : LISTENER_DEFAULT_LISTEN);
        else if (e == EACCES)
            mo_error_set(err, MO_ERR_CONFIG, "smtp",
                         "cannot listen on %s: not permitted (ports below 1024 need root); "
                         "use a port such as 2525",
                         opt->listen != NULL ? opt->listen : LISTENER_DEFAULT_LISTEN);
        else
            mo_error_set(err, MO_ERR_CONFIG, "smtp", "cannot listen on %s: %s",
                         opt->listen != NULL ? opt->listen : LISTENER_DEFAULT_LISTEN, strerror(e));
        return -1;
    }
    if (listen(s->fd, LISTEN_BACKLOG) != 0) {
        mo_error_set(err, MO_ERR_CONFIG, "smtp", "cannot listen: %s", strerror(errno));
        return -1;
    }
    len = sizeof(addr);
    if (getsockname(s->fd, (struct sockaddr *)&addr, &len) == 0)
        s->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                   : ((struct sockaddr_in *)&addr)->sin_port);
    return 0;
}

/* Our name: given, else the host's (a FQDN when it has one), sanitised for the wire. */
static void
set_hostname(struct listener_server *s, const char *given)
{
    char buf[256] = "";
    size_t j = 0;

    if (given != NULL && given[0] != '\0')
        snprintf(buf, sizeof(buf), "%s", given);
    else if (gethostname(buf, sizeof(buf)) != 0)
        buf[0] = '\0';
    buf[sizeof(buf) - 1] = '\0';
    for (size_t i = 0; buf[i] != '\0' && j + 1 < sizeof(s->hostname); i++) {
        unsigned char c = (unsigned char)buf[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == '_' || c == '[' || c == ']' || c == ':')
            s->hostname[j++] = (char)c;
    }
    s->hostname[j] = '\0';
    if (j == 0)
        snprintf(s->hostname, sizeof(s->hostname), "localhost");
}

static void
server_free(struct listener_server *s)
{
    if (s == NULL)
        return;
    queue_committer_stop(s->committer);
    listener_accounts_close(s->accounts);
    admin_keyring_close(s->keyring);
    SSL_CTX_free(s->tls);
    mo_wipe(s->sandbox_password, sizeof(s->sandbox_password));
    if (s->fd >= 0)
        close(s->fd);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s->rate);
    free(s->home);
    free(s);
}

static int
server_start(const struct listener_options *opt, struct listener_server **out, struct mo_error *err)
{
    struct listener_server *s = NULL;
    bool has_cert = opt->cert_file != NULL && opt->cert_file[0] != '\0';
    bool has_key = opt->key_file != NULL && opt->key_file[0] != '\0';
    int rc = -1;

    *out = NULL;
    if (opt->home == NULL || opt->home[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "home", "no data folder was given");
        return -1;
    }
    if (has_cert != has_key) {
        mo_error_set(err, MO_ERR_CONFIG, has_cert ? "smtp-key" : "smtp-cert",
                     "STARTTLS needs both a certificate (--smtp-cert) and its private key "
                     "(--smtp-key)");
        return -1;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    s->fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0 || pthread_cond_init(&s->idle, NULL) != 0) {
        free(s);
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a lock");
        return -1;
    }
    atomic_init(&s->stopping, false);
    s->home = strdup(opt->home);
    s->rate = calloc(RATE_TABLE_MAX, sizeof(*s->rate));
    if (s->home == NULL || s->rate == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    set_hostname(s, opt->hostname);
    s->max_message_bytes =
        opt->max_message_bytes ? opt->max_message_bytes : LISTENER_DEFAULT_MAX_BYTES;
    s->max_recipients = opt->max_recipients ? opt->max_recipients : LISTENER_DEFAULT_MAX_RECIPIENTS;
    s->max_connections =
        opt->max_connections ? opt->max_connections : LISTENER_DEFAULT_MAX_CONNECTIONS;
    s->rate_per_minute = opt->rate_per_minute;
    s->command_timeout_ms =
        opt->command_timeout_ms > 0 ? opt->command_timeout_ms : DEFAULT_COMMAND_TIMEOUT_MS;
    s->data_timeout_ms = opt->data_timeout_ms > 0 ? opt->data_timeout_ms : DEFAULT_DATA_TIMEOUT_MS;

    /* A dropped client must be an error we see, not a SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (listen_socket(s, opt, err) != 0)
        goto out;
    /* No open relay: off loopback, AUTH is required, and AUTH only after STARTTLS. */
    s->require_tls = !s->listen_loopback;
    s->require_auth = opt->require_auth || !s->listen_loopback;
    if (opt->is_sandbox) {
        /* the same conversation as with Gmail: STARTTLS, then AUTH, then the letter */
        s->is_sandbox = true;
        s->require_tls = true;
        s->require_auth = true;
        if (sandbox_password(s->home, s->sandbox_password, sizeof(s->sandbox_password), err) != 0)
            goto out;
    }
    if (!s->listen_loopback && !has_cert) {
        mo_error_set(err, MO_ERR_CONFIG, "smtp",
                     "%s is not a loopback address: there, clients must use STARTTLS and "
                     "AUTH with an API key, so give --smtp-cert FILE and --smtp-key FILE (or "
                     "listen on 127.0.0.1)",
                     opt->listen);
        goto out;
    }
    if (has_cert && tls_context(opt, &s->tls, err) != 0)
        goto out;
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make a pipe: %s", strerror(errno));
        goto out;
    }
    if (admin_keyring_open(s->home, &s->keyring, err) != 0 ||
        listener_accounts_open(s->home, &s->accounts, err) != 0 ||
        queue_committer_start(s->home, NULL, "smtp-in", &s->committer, err) != 0)
        goto out;
    if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot start the accept thread");
        goto out;
    }
    s->accept_started = true;
    mo_log(MO_LOG_INFO,
           "smtp-in: listening on port %u (%s; STARTTLS %s; AUTH %s; at most %zu bytes, %u "
           "recipients, %u connections%s)",
           s->port, s->listen_loopback ? "loopback" : "not loopback",
           s->tls != NULL ? "offered" : "not offered",
           s->require_auth ? (s->require_tls ? "required after STARTTLS" : "required") : "optional",
           s->max_message_bytes, s->max_recipients, s->max_connections,
           s->rate_per_minute ? ", a rate limit per client" : "");
    rc = 0;
out:
    if (rc == 0)
        *out = s;
    else
        server_free(s);
    return rc;
}

int
listener_start(const struct listener_options *opt, struct listener_server **out,
               struct mo_error *err)
{
    struct listener_options sopt;
    char cert[4096];
    char key[4096];

    if (!opt->is_sandbox)
        return server_start(opt, out, err);
    *out = NULL;
    if (opt->home == NULL || opt->home[0] == '\0') {
        mo_error_set(err, MO_ERR_CONFIG, "home", "no data folder was given");
        return -1;
    }
    if (sandbox_prepare(opt->home, err) != 0 ||
        sandbox_path(opt->home, "cert.pem", cert, sizeof(cert)) != 0 ||
        sandbox_path(opt->home, "key.pem", key, sizeof(key)) != 0) {
        if (err != NULL && err->category == MO_ERR_NONE)
            mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
        return -1;
    }
    sopt = *opt;
    sopt.listen =
        opt->listen != NULL && opt->listen[0] != '\0' ? opt->listen : SANDBOX_DEFAULT_LISTEN;
    sopt.cert_file = cert;
    sopt.key_file = key;
    sopt.rate_per_minute = 0;
    return server_start(&sopt, out, err);
}

void
listener_stop(struct listener_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    if (s->stop_pipe[1] >= 0)
        (void)!write(s->stop_pipe[1], "x", 1);
    if (s->accept_started)
        pthread_join(s->accept_thread, NULL);
    /* sessions see the pipe: idle ones say 421 and end; a commit in progress finishes */
    pthread_mutex_lock(&s->lock);
    while (s->n_sessions > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    server_free(s);
}

unsigned
listener_port(const struct listener_server *s)
{
    return s != NULL ? s->port : 0;
}
