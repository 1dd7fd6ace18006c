/*
 * test_worker.c - the worker without a server: how replies are judged
 * (table-driven, from real provider replies), the breaker's pause records,
 * the usage window behind the daily limit, and worker_run's decisions that
 * need no SMTP conversation (a missing account pauses it, a closed port
 * defers without a pause, a paused or over-limit account is not tried, *stop
 * ends the run before anything is claimed). Deliveries against real servers
 * are in tests/integration/test_worker.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "account/account.h"
#include "queue/queue.h"
#include "worker/worker.h"
#include "worker/worker_internal.h"

static char home[256];

static int
make_home(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mailout-test-worker-XXXXXX");
    return mkdtemp(home) != NULL ? 0 : -1;
}

static int
remove_home(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- classification tables ---------------------------------------------------- */

struct reply_row {
    int code;
    const char *enhanced;
    const char *text;
    bool temporary; /* worker_reply_is_temporary */
    bool quota;     /* worker_reply_is_quota: the breaker pauses the account */
};

/* Replies as providers send them (smtp-errors.md); text after the enhanced code. */
static const struct reply_row reply_rows[] = {
    /* Gmail's daily limit is a 5xx that means "tomorrow". */
    {550, "5.4.5", "Daily user sending limit exceeded. x - gsmtp", true, true},
    {550, "5.4.5", "Daily sending quota exceeded. x - gsmtp", true, true},
    {554, "5.4.5", "Daily user sending limit exceeded.", true, true},
    {550, "", "Daily user sending limit exceeded", true, true}, /* no enhanced codes */
    /* Final refusals. */
    {550, "5.1.1", "<nobody@example.org>: Recipient address rejected: User unknown", false, false},
    {552, "5.3.4", "Your message exceeded Google's message size limits.", false, false},
    {554, "5.7.1", "<addr>: Relay access denied", false, false},
    {553, "5.7.1", "Sender address rejected: not owned by auth user.", false, false},
    {550, "", "Request failed; Mailbox unavailable", false, false},
    {550, "5.7.60", "SMTP; Client does not have permissions to send as this sender", false, false},
    {552, "5.2.2", "The email account that you tried to reach is over quota.", false, false},
    {535, "5.7.8", "Username and Password not accepted.", false, false},
    /* 4xx are temporary anyway; some of them are the provider's brakes. */
    {421, "4.7.0", "Try again later, closing connection. (EHLO) x - gsmtp", true, true},
    {421, "4.3.2", "Service not available, closing transmission channel", true, false},
    {451, "4.3.0", "Mail server temporarily rejected message.", true, false},
    {451, "4.7.0", "Temporary server error. Please try again later", true, false},
    {454, "4.7.0", "Too many login attempts, please try again later. x - gsmtp", true, true},
    {451, "4.7.0", "Too many login attempts, please try again later.", true, true},
    {454, "", "Throttling failure: Maximum sending rate exceeded.", true, true},
    {454, "", "Throttling failure: Daily message quota exceeded.", true, true},
    {450, "", "Requested mail action not taken: mailbox unavailable", true, false},
    {452, "4.2.2", "The email account that you tried to reach is over quota.", true, false},
    /* Yahoo's lock after bad logins; an AUTH failure anyway, and a brake. */
    {535, "5.7.0", "(#AUTH005) Too many bad auth attempts.", true, true},
    /* A 5xx whose words say "later". */
    {550, "", "Failure sending mail. Try again later", true, false},
    /* No reply at all is never a quota reply, and is not "5xx temporary". */
    {0, "", "", false, false},
    {250, "2.0.0", "OK", false, false},
};

static void
test_reply_tables(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(reply_rows) / sizeof(reply_rows[0]); i++) {
        const struct reply_row *r = &reply_rows[i];
        bool temporary = worker_reply_is_temporary(r->code, r->enhanced, r->text);
        bool quota = worker_reply_is_quota(r->code, r->enhanced, r->text);
        if (temporary != r->temporary || quota != r->quota)
            fail_msg("%d %s %s: temporary %d (want %d), quota %d (want %d)", r->code, r->enhanced,
                     r->text, temporary, r->temporary, quota, r->quota);
    }
}

static void
test_verdicts(void **state)
{
    static const struct {
        int code;
        const char *enhanced;
        const char *text;
        enum worker_verdict want;
    } rows[] = {
        {250, "2.0.0", "OK: queued as 12", WORKER_DELIVERED},
        {251, "", "User not local; will forward", WORKER_DELIVERED},
        {450, "4.2.0", "mailbox busy", WORKER_DEFER},
        {550, "5.1.1", "user unknown", WORKER_FAIL},
        {550, "5.4.5", "Daily user sending limit exceeded.", WORKER_DEFER},
        {552, "5.3.4", "too large", WORKER_FAIL},
        {0, "", "", WORKER_DEFER}, /* never answered: try again */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (worker_reply_verdict(rows[i].code, rows[i].enhanced, rows[i].text) != rows[i].want)
            fail_msg("%d %s %s: verdict %d, want %d", rows[i].code, rows[i].enhanced, rows[i].text,
                     (int)worker_reply_verdict(rows[i].code, rows[i].enhanced, rows[i].text),
                     (int)rows[i].want);
}

/* ---- breaker ------------------------------------------------------------------- */

static void
test_pause_resume(void **state)
{
    struct breaker *b = NULL;
    struct worker_pause p;
    struct mo_error err;
    int64_t now = (int64_t)time(NULL);
    (void)state;

    /* Nothing recorded: not paused (the table is made on first use). */
    assert_int_equal(worker_account_pause(home, "shop", &p, &err), 0);
    assert_false(p.paused);
    assert_int_equal(breaker_open(home, &b, &err), 0);
    assert_int_equal(breaker_pause(b, "shop", now + 600,
                                   "the server refused the login: 535 5.7.8 Username and "
                                   "Password not accepted.",
                                   &err),
                     0);
    breaker_close(b);
    assert_int_equal(worker_account_pause(home, "shop", &p, &err), 0);
    assert_true(p.paused);
    assert_int_equal(p.until, now + 600);
    assert_non_null(strstr(p.reason, "535 5.7.8"));
    /* Other accounts are not affected. */
    assert_int_equal(worker_account_pause(home, "other", &p, &err), 0);
    assert_false(p.paused);
    /* A passing check resumes it. */
    assert_int_equal(worker_account_resume(home, "shop", &err), 0);
    assert_int_equal(worker_account_pause(home, "shop", &p, &err), 0);
    assert_false(p.paused);
    assert_int_equal(p.until, 0);
    assert_string_equal(p.reason, "");
    /* Resuming an account never paused is fine. */
    assert_int_equal(worker_account_resume(home, "never", &err), 0);
}

static void
test_pause_ends_by_itself(void **state)
{
    struct breaker *b = NULL;
    struct worker_pause p;
    struct mo_error err;
    int64_t now = (int64_t)time(NULL);
    char long_reason[1000];
    (void)state;

    memset(long_reason, 'x', sizeof(long_reason) - 1);
    long_reason[sizeof(long_reason) - 1] = '\0';
    assert_int_equal(breaker_open(home, &b, &err), 0);
    assert_int_equal(breaker_pause(b, NULL, now - 1, "over", &err), 0);
    assert_int_equal(breaker_get(b, "default", now, &p, &err), 0);
    assert_false(p.paused); /* the cool-down is over */
    /* NULL, "" and "default" are one account. */
    assert_int_equal(breaker_pause(b, "", now + 60, long_reason, &err), 0);
    assert_int_equal(breaker_get(b, NULL, now, &p, &err), 0);
    assert_true(p.paused);
    assert_int_equal(strlen(p.reason), sizeof(p.reason) - 1); /* cut, not overflowed */
    assert_int_equal(breaker_get(b, "default", now + 60, &p, &err), 0);
    assert_false(p.paused); /* paused_until == now: over */
    breaker_close(b);
}

static void
test_usage_window(void **state)
{
    struct breaker *b = NULL;
    struct mo_error err;
    int64_t now = 1800000000; /* a fixed clock: hours are whole */
    int64_t n = -1;
    (void)state;

    assert_int_equal(breaker_open(home, &b, &err), 0);
    assert_int_equal(breaker_usage_count(b, "shop", now, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(breaker_usage_add(b, "shop", now, 3, &err), 0);
    assert_int_equal(breaker_usage_add(b, "shop", now, 2, &err), 0);
    assert_int_equal(breaker_usage_add(b, "shop", now - 23 * 3600, 7, &err), 0);   /* inside */
    assert_int_equal(breaker_usage_add(b, "shop", now - 25 * 3600, 100, &err), 0); /* outside */
    assert_int_equal(breaker_usage_add(b, "other", now, 1000, &err), 0);
    assert_int_equal(breaker_usage_add(b, "shop", now, 0, &err), 0); /* nothing to add */
    assert_int_equal(breaker_usage_count(b, "shop", now, &n, &err), 0);
    assert_int_equal(n, 12);
    /* A day later the old hours have left the window. */
    assert_int_equal(breaker_usage_count(b, "shop", now + 24 * 3600, &n, &err), 0);
    assert_int_equal(n, 0);
    breaker_close(b);
}

/* ---- worker_run without a server ------------------------------------------------ */

/* A loopback port nothing listens on. */
static unsigned
closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void
put_account(const char *name, const char *provider, unsigned port)
{
    struct account_store *st = NULL;
    struct account_settings s;
    struct mo_error err;

    memset(&s, 0, sizeof(s));
    s.name = (char *)name;
    s.provider_id = (char *)provider;
    s.email = (char *)"shop@example.test";
    s.host = (char *)"127.0.0.1";
    s.port = port;
    s.security = SMTP_SECURITY_NONE;
    s.has_security = true;
    assert_int_equal(account_store_open(home, &st, &err), 0);
    assert_int_equal(account_store_put(st, &s, &err), 0);
    account_store_close(st);
}

static int64_t
add_message(const char *account)
{
    static const char data[] = "From: shop@example.test\r\nTo: bob@example.org\r\n"
                               "Subject: worker test\r\n\r\nHello.\r\n";
    const char *rcpts[] = {"bob@example.org"};
    struct queue_new_message m;
    struct queue *q = NULL;
    struct mo_error err;
    int64_t id = 0;

    memset(&m, 0, sizeof(m));
    m.account = account;
    m.from = "shop@example.test";
    m.rcpts = rcpts;
    m.n_rcpts = 1;
    m.data = data;
    m.len = sizeof(data) - 1;
    m.subject = "worker test";
    m.source = "cli";
    assert_int_equal(queue_open(home, NULL, &q, &err), 0);
    assert_int_equal(queue_add(q, &m, &id, &err), 0);
    queue_close(q);
    return id;
}

static void
get_message(int64_t id, struct queue_message_info *m)
{
    struct queue *q = NULL;
    struct mo_error err;

    assert_int_equal(queue_open(home, NULL, &q, &err), 0);
    assert_int_equal(queue_get(q, id, true, m, &err), 0);
    queue_close(q);
}

static int
run_once(struct worker_stats *stats, volatile sig_atomic_t *stop)
{
    struct worker_options o;
    struct mo_error err;

    memset(&o, 0, sizeof(o));
    o.home = home;
    o.once = true;
    o.timeout_s = 5;
    o.stop = stop;
    o.stats = stats;
    return worker_run(&o, &err);
}

static void
test_run_empty_queue(void **state)
{
    struct worker_stats st;
    (void)state;

    memset(&st, 0xff, sizeof(st));
    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 0);
    assert_int_equal(st.connections, 0);
}

static void
test_run_missing_account_pauses(void **state)
{
    struct worker_stats st;
    struct worker_pause p;
    struct queue_message_info m;
    struct mo_error err;
    int64_t id = add_message("nosuch");
    (void)state;

    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.deferred, 1);
    assert_int_equal(st.pauses, 1);
    assert_int_equal(st.connections + st.open_failures, 0); /* never connected */
    assert_int_equal(worker_account_pause(home, "nosuch", &p, &err), 0);
    assert_true(p.paused);
    assert_non_null(strstr(p.reason, "nosuch"));
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.state, QUEUE_DEFERRED);
    assert_int_equal(m.attempts, 1);
    assert_true(m.next_attempt_at >= p.until); /* not before the pause ends */
    queue_message_info_clear(&m);
    /* A second run leaves the paused account alone. */
    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 0);
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.attempts, 1);
    queue_message_info_clear(&m);
}

static void
test_run_closed_port_defers(void **state)
{
    struct worker_stats st;
    struct worker_pause p;
    struct queue_message_info m;
    struct mo_error err;
    int64_t id;
    (void)state;

    put_account("default", NULL, closed_port());
    id = add_message(NULL);
    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.deferred, 1);
    assert_int_equal(st.open_failures, 2); /* one retry, then the batch waits */
    assert_int_equal(st.pauses, 0);        /* passing trouble: no pause */
    assert_int_equal(worker_account_pause(home, NULL, &p, &err), 0);
    assert_false(p.paused);
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.state, QUEUE_DEFERRED);
    assert_true(m.next_attempt_at > (int64_t)time(NULL));
    assert_non_null(m.last_reply);
    assert_int_equal(m.n_attempt_log, 1);
    assert_non_null(m.attempt_log[0].transcript); /* the failed connect is kept */
    queue_message_info_clear(&m);
}

static void
test_run_paused_account_waits(void **state)
{
    struct breaker *b = NULL;
    struct worker_stats st;
    struct queue_message_info m;
    struct mo_error err;
    int64_t id;
    (void)state;

    put_account("default", NULL, closed_port());
    assert_int_equal(breaker_open(home, &b, &err), 0);
    assert_int_equal(breaker_pause(b, NULL, (int64_t)time(NULL) + 3600, "535 test", &err), 0);
    breaker_close(b);
    id = add_message(NULL);
    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 0);
    assert_int_equal(st.open_failures, 0);
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.state, QUEUE_QUEUED); /* waits, not failed */
    queue_message_info_clear(&m);
    /* Resumed: the next run tries (and, the port being closed, defers). */
    assert_int_equal(worker_account_resume(home, NULL, &err), 0);
    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 1);
}

static void
test_run_daily_limit_waits(void **state)
{
    struct breaker *b = NULL;
    struct worker_stats st;
    struct worker_usage u;
    struct queue_message_info m;
    struct mo_error err;
    int64_t id;
    (void)state;

    put_account("default", "gmail", closed_port());
    assert_int_equal(worker_account_usage(home, NULL, &u, &err), 0);
    assert_int_equal(u.daily_limit, account_provider_find("gmail")->daily_limit);
    assert_true(u.daily_limit > 0);
    assert_false(u.is_limited);
    assert_int_equal(breaker_open(home, &b, &err), 0);
    assert_int_equal(breaker_usage_add(b, NULL, (int64_t)time(NULL), u.daily_limit, &err), 0);
    breaker_close(b);
    assert_int_equal(worker_account_usage(home, NULL, &u, &err), 0);
    assert_true(u.is_limited);
    id = add_message(NULL);
    assert_int_equal(run_once(&st, NULL), 0);
    assert_int_equal(st.attempts, 0);
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.state, QUEUE_QUEUED);
    queue_message_info_clear(&m);
    /* A custom server has no known limit. */
    assert_int_equal(worker_account_usage(home, "nosuch", &u, &err), 0);
    assert_int_equal(u.daily_limit, 0);
    assert_false(u.is_limited);
}

static void
test_run_stop_claims_nothing(void **state)
{
    volatile sig_atomic_t stop = 1;
    struct worker_stats st;
    struct queue_message_info m;
    int64_t id;
    (void)state;

    put_account("default", NULL, closed_port());
    id = add_message(NULL);
    assert_int_equal(run_once(&st, &stop), 0);
    assert_int_equal(st.attempts, 0);
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.state, QUEUE_QUEUED);
    queue_message_info_clear(&m);
}

struct daemon_run {
    struct worker_options o;
    struct worker_stats stats;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t reload;
    int rc;
};

static void *
daemon_thread(void *arg)
{
    struct daemon_run *r = arg;
    struct mo_error err;

    r->rc = worker_run(&r->o, &err);
    return NULL;
}

/* The service's mode: runs until *stop, takes new mail as it comes, clears *reload. */
static void
test_run_daemon_until_stop(void **state)
{
    static struct daemon_run r;
    struct queue_message_info m;
    pthread_t tid;
    int64_t t0;
    int64_t id;
    (void)state;

    put_account("default", NULL, closed_port());
    memset(&r, 0, sizeof(r));
    r.o.home = home;
    r.o.timeout_s = 5;
    r.o.stop = &r.stop;
    r.o.reload = &r.reload;
    r.o.stats = &r.stats;
    assert_int_equal(pthread_create(&tid, NULL, daemon_thread, &r), 0);
    usleep(300 * 1000);
    id = add_message(NULL); /* arrives while the worker runs */
    __atomic_store_n(&r.reload, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 100; i++) {
        memset(&m, 0, sizeof(m));
        get_message(id, &m);
        bool done = m.state == QUEUE_DEFERRED;
        queue_message_info_clear(&m);
        if (done && __atomic_load_n(&r.reload, __ATOMIC_RELAXED) == 0)
            break;
        usleep(100 * 1000);
    }
    assert_int_equal(__atomic_load_n(&r.reload, __ATOMIC_RELAXED), 0); /* taken */
    memset(&m, 0, sizeof(m));
    get_message(id, &m);
    assert_int_equal(m.state, QUEUE_DEFERRED); /* tried without anyone asking */
    queue_message_info_clear(&m);
    t0 = mo_now_ms();
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    assert_int_equal(pthread_join(tid, NULL), 0);
    assert_true(mo_now_ms() - t0 < 3000); /* idle: stops within the loop's second */
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.stats.attempts, 1);
}

static void
test_run_bad_home(void **state)
{
    struct worker_options o;
    struct mo_error err;
    (void)state;

    memset(&o, 0, sizeof(o));
    o.home = "/proc/no-such-folder/mailout";
    o.once = true;
    assert_int_equal(worker_run(&o, &err), -1);
    assert_int_equal(err.category, MO_ERR_STORAGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_tables),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test_setup_teardown(test_pause_resume, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_pause_ends_by_itself, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_usage_window, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_empty_queue, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_missing_account_pauses, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_closed_port_defers, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_paused_account_waits, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_daily_limit_waits, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_stop_claims_nothing, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_run_daemon_until_stop, make_home, remove_home),
        cmocka_unit_test(test_run_bad_home),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
