/*
 * test_queue.c - the durable queue (src/queue): state names, the retry
 * delay, validation, the state machine through queue_finish, claims (due
 * times, accounts, leases), recovery, admin actions, list/search/paging,
 * counts, the group committer, and what must survive a crash or a full
 * disk: nothing that queue_add acknowledged is ever lost or half-written,
 * and a claim that died comes back as "uncertain", never as "queued".
 *
 * Most tests pin the queue's clock (queue_test_set_clock) so due times are
 * exact; the crash tests use the real clock and real processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "queue/queue_internal.h"

#define T0 ((int64_t)1700000000) /* 2023-11-14 22:13:20 UTC */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char home[256];

static int
make_home(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mailout-test-queue-XXXXXX");
    return mkdtemp(home) != NULL ? 0 : -1;
}

static long db_count(const char *dir, const char *sql);

/*
 * After every test: queue_state_counts (kept by triggers for inserts and deletes, and by
 * q_commit for changes of state) agrees with a full count of messages per state.
 */
static int
counts_agree(void)
{
    char path[300];
    struct stat st;
    long off;

    snprintf(path, sizeof(path), "%s/mailout.db", home);
    if (stat(path, &st) != 0)
        return 1;
    off = db_count(home, "SELECT count(*) FROM queue_state_counts c WHERE c.n <>"
                         " (SELECT count(*) FROM messages m WHERE m.state = c.state)");
    if (off != 0)
        fprintf(stderr, "queue_state_counts disagrees with messages for %ld states\n", off);
    return off == 0;
}

static int
remove_home(void **state)
{
    char cmd[300];
    (void)state;
    if (!counts_agree())
        return -1;
    /* A failed disk test may leave its tmpfs mounted. */
    snprintf(cmd, sizeof(cmd), "%s/tiny", home);
    umount2(cmd, MNT_DETACH);
    snprintf(cmd, sizeof(cmd), "%s/ro", home);
    umount2(cmd, MNT_DETACH);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

static struct queue *
open_queue(const char *dir)
{
    struct queue *q = NULL;
    struct mo_error err;

    mo_error_clear(&err);
    if (queue_open(dir, NULL, &q, &err) != 0)
        fail_msg("queue_open(%s): %s", dir, err.text);
    return q;
}

/* A message with n recipients r0@example.net ... */
static int64_t
add_message(struct queue *q, const char *account, size_t n_rcpts, const char *subject)
{
    static const char *const rcpts[] = {"r0@example.net", "r1@example.net", "r2@example.net",
                                        "r3@example.net"};
    static const char data[] = "From: Shop <shop@example.com>\r\nSubject: hi\r\n\r\nHello\r\n";
    struct queue_new_message m = {
        .account = account,
        .from = "shop@example.com",
        .rcpts = rcpts,
        .n_rcpts = n_rcpts,
        .data = data,
        .len = sizeof(data) - 1,
        .message_id = "id@shop.example",
        .subject = subject,
        .header_from = "Shop <shop@example.com>",
        .source = "api",
    };
    struct mo_error err;
    int64_t id = 0;

    if (queue_add(q, &m, &id, &err) != 0)
        fail_msg("queue_add: %s", err.text);
    return id;
}

/* Claims exactly the message id (by its unique account) and checks it came. */
static void
claim_one(struct queue *q, const char *account, int64_t id)
{
    struct queue_job *jobs = NULL;
    size_t n = 0;
    struct mo_error err;

    assert_int_equal(queue_claim(q, account, "test", 300, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0].id, id);
    queue_job_free(&jobs[0]);
    free(jobs);
}

static size_t
claim_count(struct queue *q, const char *account)
{
    struct queue_job *jobs = NULL;
    size_t n = 0;
    struct mo_error err;

    assert_int_equal(queue_claim(q, account, "test", 300, 100, &jobs, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        queue_job_free(&jobs[i]);
    free(jobs);
    return n;
}

static void
finish_all(struct queue *q, int64_t id, enum queue_rcpt_result all, int code, bool uncertain)
{
    struct queue_outcome o = {.id = id,
                              .all = all,
                              .code = code,
                              .uncertain = uncertain,
                              .text = code >= 400 ? "try later" : "ok"};
    struct mo_error err;

    if (queue_finish(q, &o, 1, &err) != 0)
        fail_msg("queue_finish: %s", err.text);
}

static enum queue_state
state_of(struct queue *q, int64_t id)
{
    struct queue_message_info info;
    struct mo_error err;
    enum queue_state s;

    if (queue_get(q, id, false, &info, &err) != 0)
        fail_msg("queue_get %lld: %s", (long long)id, err.text);
    s = info.state;
    queue_message_info_clear(&info);
    return s;
}

/* Runs one counting query on the database file with its own connection. */
static long
db_count(const char *dir, const char *sql)
{
    char path[300];
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    long n = -1;

    snprintf(path, sizeof(path), "%s/mailout.db", dir);
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

/* ---- schema 1 -> 2 ------------------------------------------------------ */

/* A queue made by schema 1 (full indexes) opens as schema 2: its messages keep their
 * states and stay claimable, and the partial indexes replace the full ones. */
static void
test_schema_1_is_migrated(void **state)
{
    static const char *const as_schema_1 =
        "DROP INDEX messages_waiting; DROP INDEX messages_waiting_account;"
        " DROP INDEX messages_busy; DROP INDEX messages_sent_at;"
        " CREATE INDEX messages_due ON messages(state, next_attempt_at);"
        " CREATE INDEX messages_account ON messages(account, state, next_attempt_at);"
        " CREATE INDEX messages_state_time ON messages(state, updated_at);"
        " UPDATE queue_meta SET value = '1' WHERE key = 'schema_version';"
        " CREATE TRIGGER messages_count_update AFTER UPDATE OF state ON messages"
        "  WHEN OLD.state <> NEW.state BEGIN"
        "  UPDATE queue_state_counts SET n = n - 1 WHERE state = OLD.state;"
        "  UPDATE queue_state_counts SET n = n + 1 WHERE state = NEW.state;"
        " END;"
        /* schema 1's CHECKs, as its CREATE TABLEs wrote them */
        " PRAGMA writable_schema=ON;"
        " UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, 'CHECK (') - 1)"
        "  || 'CHECK (state IN (''queued'', ''sending'', ''sent'', ''deferred'', ''failed'',"
        "    ''uncertain''))' || substr(sql, instr(sql, '),  prev_state') + 1)"
        "  WHERE type = 'table' AND name = 'messages';"
        " UPDATE sqlite_schema SET sql = substr(sql, 1, instr(sql, 'CHECK (') - 1)"
        "  || 'CHECK (state IN (''pending'', ''delivered'',    ''failed''))'"
        "  || substr(sql, instr(sql, '),  code') + 1)"
        "  WHERE type = 'table' AND name = 'recipients';"
        " PRAGMA schema_version=4242; PRAGMA writable_schema=OFF;";
    struct queue *q;
    struct queue_counts c;
    struct mo_error err;
    int64_t sent, waiting;
    (void)state;

    q = open_queue(home);
    sent = add_message(q, "shop", 1, "sent before");
    waiting = add_message(q, "other", 2, "waiting");
    claim_one(q, "shop", sent);
    finish_all(q, sent, QUEUE_RCPT_DELIVERED, 250, false);
    assert_int_equal(queue_test_exec(q, as_schema_1), SQLITE_OK);
    queue_close(q);
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                    " AND name = 'messages_due'"),
                     1);
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND sql LIKE '%CHECK (state IN (%'"),
                     2);

    q = open_queue(home);
    assert_int_equal(db_count(home, "SELECT value FROM queue_meta WHERE key = 'schema_version'"),
                     2);
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                    " AND name IN ('messages_due', 'messages_account',"
                                    " 'messages_state_time')"),
                     0);
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                    " AND name IN ('messages_waiting', 'messages_waiting_account',"
                                    " 'messages_busy', 'messages_sent_at')"),
                     4);
    /* changes of state are counted by q_commit now, not by a trigger per row */
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                                    " AND name = 'messages_count_update'"),
                     0);
    /* the CHECKs hold the same states, written without IN lists */
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND sql LIKE '%CHECK (state IN (%'"),
                     0);
    assert_int_equal(db_count(home, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND name IN ('messages', 'recipients')"
                                    " AND sql LIKE '%CHECK (state = %'"),
                     2);
    assert_int_not_equal(queue_test_exec(q, "UPDATE messages SET state = 'lost'"), SQLITE_OK);
    assert_int_not_equal(queue_test_exec(q, "UPDATE recipients SET state = 'lost'"), SQLITE_OK);
    assert_int_equal(db_count(home, "SELECT count(*) FROM pragma_integrity_check"
                                    " WHERE integrity_check <> 'ok'"),
                     0);
    assert_int_equal(state_of(q, sent), QUEUE_SENT);
    assert_int_equal(queue_count(q, &c, &err), 0);
    assert_int_equal(c.sent_today, 1);
    claim_one(q, "other", waiting);
    assert_int_equal(claim_count(q, NULL), 0);
    queue_close(q);
}

/* ---- names and delays --------------------------------------------------- */

static void
test_state_names(void **state)
{
    static const struct {
        enum queue_state state;
        const char *name;
    } cases[] = {
        {QUEUE_QUEUED, "queued"},     {QUEUE_SENDING, "sending"}, {QUEUE_SENT, "sent"},
        {QUEUE_DEFERRED, "deferred"}, {QUEUE_FAILED, "failed"},   {QUEUE_UNCERTAIN, "uncertain"},
    };
    enum queue_state parsed;
    (void)state;

    assert_int_equal(ARRAY_LEN(cases), QUEUE_STATE_COUNT);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assert_string_equal(queue_state_name(cases[i].state), cases[i].name);
        assert_int_equal(queue_state_parse(cases[i].name, &parsed), 0);
        assert_int_equal(parsed, cases[i].state);
    }
    assert_int_equal(queue_state_parse("Queued", &parsed), -1);
    assert_int_equal(queue_state_parse("", &parsed), -1);
    assert_int_equal(queue_state_parse(NULL, &parsed), -1);
    assert_string_equal(queue_state_name(QUEUE_STATE_COUNT), "unknown");
}

static void
test_delay_ranges(void **state)
{
    static const struct {
        int attempts;
        int64_t base;
    } cases[] = {
        {-1, 60},  {0, 60},   {1, 120},  {2, 240},   {3, 480},        {4, 960},
        {5, 1920}, {6, 3600}, {7, 3600}, {30, 3600}, {1000000, 3600},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int64_t lo = cases[i].base - cases[i].base / 5;
        int64_t hi = cases[i].base + cases[i].base / 5;
        int64_t min = INT64_MAX, max = 0;

        for (int k = 0; k < 2000; k++) {
            int64_t d = queue_next_delay_s(cases[i].attempts);
            if (d < lo || d > hi)
                fail_msg("attempts %d: delay %lld outside [%lld, %lld]", cases[i].attempts,
                         (long long)d, (long long)lo, (long long)hi);
            min = d < min ? d : min;
            max = d > max ? d : max;
        }
        /* The jitter is real: 2000 draws spread over most of the +-20 % band. */
        assert_true(min <= cases[i].base - cases[i].base / 10);
        assert_true(max >= cases[i].base + cases[i].base / 10);
    }
}

/* ---- adding ------------------------------------------------------------- */

static void
test_add_validation(void **state)
{
    static const char *const one[] = {"a@example.net"};
    static const char *const with_crlf[] = {"a@example.net\r\nRCPT TO:<b@example.net>"};
    static const char *const with_empty[] = {"a@example.net", ""};
    static const char big[2048] = "x";
    const struct {
        const char *name;
        const char *from;
        const char *const *rcpts;
        size_t n_rcpts;
        size_t len;
        const char *field;
    } cases[] = {
        {"no recipient", "s@example.com", one, 0, 10, "recipient"},
        {"recipient list NULL", "s@example.com", NULL, 1, 10, "recipient"},
        {"empty recipient", "s@example.com", with_empty, 2, 10, "recipient"},
        {"CRLF in a recipient", "s@example.com", with_crlf, 1, 10, "recipient"},
        {"no sender", NULL, one, 1, 10, "sender"},
        {"CR in the sender", "s@example.com\r", one, 1, 10, "sender"},
        {"empty message", "s@example.com", one, 1, 0, "size"},
        {"too large", "s@example.com", one, 1, 1025, "size"},
    };
    struct queue_options opt = {.max_message_bytes = 1024};
    struct queue *q = NULL;
    struct mo_error err;
    int64_t id = 77;
    (void)state;

    assert_int_equal(queue_open(home, &opt, &q, &err), 0);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct queue_new_message m = {.from = cases[i].from,
                                      .rcpts = cases[i].rcpts,
                                      .n_rcpts = cases[i].n_rcpts,
                                      .data = big,
                                      .len = cases[i].len};
        const struct queue_new_message *batch[2] = {&m, &m};
        int64_t ids[2] = {5, 5};

        mo_error_clear(&err);
        if (queue_add(q, &m, &id, &err) != -1)
            fail_msg("%s: accepted", cases[i].name);
        assert_int_equal(err.category, MO_ERR_CONFIG);
        assert_non_null(err.field);
        assert_string_equal(err.field, cases[i].field);
        assert_true(err.text[0] != '\0');
        assert_int_equal(queue_add_batch(q, batch, 2, ids, &err), -1);
        assert_int_equal(err.category, MO_ERR_CONFIG);
        assert_non_null(strstr(err.text, "message 1 of 2"));
    }
    /* The limit itself is fine. */
    {
        struct queue_new_message m = {
            .from = "", .rcpts = one, .n_rcpts = 1, .data = big, .len = 1024};
        assert_int_equal(queue_add(q, &m, &id, &err), 0);
    }
    assert_int_equal(db_count(home, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(db_count(home, "SELECT count(*) FROM recipients"), 1);
    queue_close(q);
}

static void
test_add_get_round_trip(void **state)
{
    static const char *const rcpts[] = {"a@example.net", "b@example.org", "a@example.net"};
    /* Binary-safe: a NUL and 8-bit bytes inside. */
    static const char data[] = "Subject: caf\xc3\xa9\r\n\r\nline\0with nul\r\n";
    struct queue_new_message m = {
        .account = "", /* "" is the default account too */
        .from = "",
        .rcpts = rcpts,
        .n_rcpts = 3,
        .data = data,
        .len = sizeof(data) - 1,
        .message_id = "abc@shop.example",
        .subject = "café",
        .header_from = "Shop <shop@example.com>",
        .source = "sendmail",
        .needs_smtputf8 = true,
    };
    struct queue_message_info info;
    struct queue_job *jobs = NULL;
    struct mo_error err;
    struct queue *q = open_queue(home);
    char *got = NULL;
    size_t len = 0, n = 0;
    int64_t id = 0;
    (void)state;

    queue_test_set_clock(q, T0);
    assert_int_equal(queue_add(q, &m, &id, &err), 0);
    assert_true(id > 0);
    assert_int_equal(queue_get(q, id, true, &info, &err), 0);
    assert_int_equal(info.id, id);
    assert_int_equal(info.state, QUEUE_QUEUED);
    assert_null(info.account);
    assert_string_equal(info.from, "");
    assert_string_equal(info.subject, "café");
    assert_string_equal(info.message_id, "abc@shop.example");
    assert_string_equal(info.header_from, "Shop <shop@example.com>");
    assert_string_equal(info.source, "sendmail");
    assert_int_equal(info.created_at, T0);
    assert_int_equal(info.updated_at, T0);
    assert_int_equal(info.next_attempt_at, T0);
    assert_int_equal(info.attempts, 0);
    assert_int_equal(info.size, sizeof(data) - 1);
    assert_int_equal(info.n_rcpts, 3);
    assert_string_equal(info.rcpts[1].address, "b@example.org");
    assert_string_equal(info.rcpts[2].state, "pending");
    assert_int_equal(info.n_attempt_log, 0);
    queue_message_info_clear(&info);

    assert_int_equal(queue_get_data(q, id, &got, &len, &err), 0);
    assert_int_equal(len, sizeof(data) - 1);
    assert_memory_equal(got, data, len);
    free(got);

    assert_int_equal(queue_claim(q, NULL, "w", 60, 5, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_null(jobs[0].account);
    assert_string_equal(jobs[0].from, "");
    assert_int_equal(jobs[0].n_rcpts, 3);
    assert_int_equal(jobs[0].len, sizeof(data) - 1);
    assert_memory_equal(jobs[0].data, data, jobs[0].len);
    assert_true(jobs[0].needs_smtputf8);
    assert_string_equal(jobs[0].message_id, "abc@shop.example");
    assert_int_equal(jobs[0].created_at, T0);
    queue_job_free(&jobs[0]);
    free(jobs);

    /* Unknown ids are a CONFIG error on the "id" field. */
    assert_int_equal(queue_get(q, id + 100, false, &info, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "id");
    assert_int_equal(queue_get_data(q, id + 100, &got, &len, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_null(got);
    queue_close(q);
}

static void
test_add_batch_all_or_none(void **state)
{
    static const char *const rcpt[] = {"a@example.net"};
    struct queue_new_message m = {
        .from = "s@example.com", .rcpts = rcpt, .n_rcpts = 1, .data = "x\r\n", .len = 3};
    struct queue_new_message bad = m;
    const struct queue_new_message *batch[100];
    int64_t ids[100];
    struct queue *q = open_queue(home);
    struct mo_error err;
    (void)state;

    for (size_t i = 0; i < 100; i++)
        batch[i] = &m;
    assert_int_equal(queue_add_batch(q, batch, 100, ids, &err), 0);
    for (size_t i = 1; i < 100; i++)
        assert_true(ids[i] > ids[i - 1]);
    /* One bad message: none of the batch is queued, and ids are cleared. */
    bad.n_rcpts = 0;
    batch[57] = &bad;
    assert_int_equal(queue_add_batch(q, batch, 100, ids, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "recipient");
    assert_non_null(strstr(err.text, "message 58 of 100"));
    assert_int_equal(ids[0], 0);
    assert_int_equal(db_count(home, "SELECT count(*) FROM messages"), 100);
    assert_int_equal(queue_add_batch(q, batch, 0, ids, &err), 0);
    queue_close(q);
}

/* ---- the state machine through queue_finish -------------------------------- */

#define WHOLE (-1) /* the outcome has no per-recipient list */
#define D QUEUE_RCPT_DELIVERED
#define F QUEUE_RCPT_FAIL
#define P QUEUE_RCPT_DEFER

static void
test_finish_transitions(void **state)
{
    static const struct {
        const char *name;
        int results[3];             /* per recipient, or WHOLE */
        enum queue_rcpt_result all; /* with WHOLE */
        int code;
        bool uncertain;
        int64_t defer_until_in; /* seconds from now, 0: none */
        int64_t age;            /* message age at finish */
        enum queue_state want;
        const char *want_rcpts[3];
        int64_t next_lo, next_hi; /* from now; 0, 0: no next attempt */
        const char *reply_prefix;
    } cases[] = {
        /* clang-format off */
        /* name, per-recipient results | WHOLE + all, code, uncertain, defer_until_in, age,
           want state, want recipients, next attempt window, last reply prefix */
        {"all delivered", {D, D, D}, 0, 250, false, 0, 10,
         QUEUE_SENT, {"delivered", "delivered", "delivered"}, 0, 0, "250"},
        {"one of three refused", {D, F, D}, 0, 250, false, 0, 10,
         QUEUE_SENT, {"delivered", "failed", "delivered"}, 0, 0, "250"},
        {"all refused", {F, F, F}, 0, 550, false, 0, 10,
         QUEUE_FAILED, {"failed", "failed", "failed"}, 0, 0, "550"},
        {"5xx for the whole attempt", {WHOLE}, F, 554, false, 0, 10,
         QUEUE_FAILED, {"failed", "failed", "failed"}, 0, 0, "554"},
        {"4xx for the whole attempt", {WHOLE}, P, 421, false, 0, 10,
         QUEUE_DEFERRED, {"pending", "pending", "pending"}, 48, 72, "421"},
        {"one deferred, two delivered", {D, P, D}, 0, 250, false, 0, 10,
         QUEUE_DEFERRED, {"delivered", "pending", "delivered"}, 48, 72, "250"},
        {"defer_until beats the backoff", {WHOLE}, P, 421, false, 7200, 10,
         QUEUE_DEFERRED, {"pending", "pending", "pending"}, 7200, 7200, "421"},
        {"max age: gives up with the last reply", {WHOLE}, P, 451, false, 0, 5 * 86400 - 30,
         QUEUE_FAILED, {"failed", "failed", "failed"}, 0, 0, "gave up after 5 days: 451"},
        {"max age: pacing past it gives up too", {WHOLE}, P, 421, false, 86400, 4 * 86400 + 3600,
         QUEUE_FAILED, {"failed", "failed", "failed"}, 0, 0, "gave up after 5 days: 421"},
        {"uncertain", {WHOLE}, D, 0, true, 0, 10,
         QUEUE_UNCERTAIN, {"pending", "pending", "pending"}, 1800, 1800, NULL},
        {"uncertain past max age gives up", {WHOLE}, D, 0, true, 0, 5 * 86400 - 60,
         QUEUE_FAILED, {"failed", "failed", "failed"}, 0, 0,
         "gave up after 5 days: connection lost"},
        {"uncertain keeps a refusal", {D, F, D}, 0, 0, true, 0, 10,
         QUEUE_UNCERTAIN, {"pending", "failed", "pending"}, 1800, 1800, NULL},
        /* clang-format on */
    };
    struct queue *q = open_queue(home);
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct queue_rcpt_outcome rcpts[3];
        struct queue_outcome o = {0};
        struct queue_message_info info;
        struct mo_error err;
        char account[32];
        int64_t now = T0 + (int64_t)i * 100000;
        int64_t id;

        snprintf(account, sizeof(account), "case%zu", i);
        queue_test_set_clock(q, now - cases[i].age);
        id = add_message(q, account, 3, cases[i].name);
        queue_test_set_clock(q, now);
        claim_one(q, account, id);

        o.id = id;
        o.code = cases[i].code;
        o.text = cases[i].uncertain ? "connection lost after the final dot" : "reply text";
        o.enhanced = cases[i].code >= 500 ? "5.0.0" : NULL;
        o.uncertain = cases[i].uncertain;
        o.transcript = "C: EHLO x\nS: 250 ok";
        o.defer_until = cases[i].defer_until_in > 0 ? now + cases[i].defer_until_in : 0;
        if (cases[i].results[0] == WHOLE) {
            o.all = cases[i].all;
        } else {
            for (int r = 0; r < 3; r++) {
                rcpts[r] = (struct queue_rcpt_outcome){0};
                rcpts[r].address =
                    r == 0 ? "r0@example.net" : (r == 1 ? "r1@example.net" : "r2@example.net");
                rcpts[r].result = (enum queue_rcpt_result)cases[i].results[r];
                rcpts[r].code = rcpts[r].result == QUEUE_RCPT_DELIVERED
                                    ? 250
                                    : (rcpts[r].result == QUEUE_RCPT_FAIL ? 550 : 452);
                rcpts[r].enhanced = rcpts[r].result == QUEUE_RCPT_FAIL ? "5.1.1" : NULL;
                rcpts[r].text = rcpts[r].result == QUEUE_RCPT_FAIL ? "no such user" : "ok";
            }
            o.rcpts = rcpts;
            o.n_rcpts = 3;
        }
        if (queue_finish(q, &o, 1, &err) != 0)
            fail_msg("%s: %s", cases[i].name, err.text);
        assert_int_equal(queue_get(q, id, true, &info, &err), 0);
        if (info.state != cases[i].want)
            fail_msg("%s: state %s, want %s", cases[i].name, queue_state_name(info.state),
                     queue_state_name(cases[i].want));
        assert_int_equal(info.attempts, 1);
        assert_int_equal(info.updated_at, now);
        for (int r = 0; r < 3; r++)
            if (strcmp(info.rcpts[r].state, cases[i].want_rcpts[r]) != 0)
                fail_msg("%s: recipient %d is %s, want %s", cases[i].name, r, info.rcpts[r].state,
                         cases[i].want_rcpts[r]);
        if (cases[i].next_hi > 0) {
            if (info.next_attempt_at < now + cases[i].next_lo ||
                info.next_attempt_at > now + cases[i].next_hi)
                fail_msg("%s: next attempt in %lld s", cases[i].name,
                         (long long)(info.next_attempt_at - now));
        }
        if (cases[i].reply_prefix != NULL &&
            strncmp(info.last_reply, cases[i].reply_prefix, strlen(cases[i].reply_prefix)) != 0)
            fail_msg("%s: last reply \"%s\"", cases[i].name, info.last_reply);
        assert_int_equal(info.n_attempt_log, 1);
        assert_string_equal(info.attempt_log[0].result, queue_state_name(cases[i].want));
        assert_string_equal(info.attempt_log[0].transcript, "C: EHLO x\nS: 250 ok");
        assert_int_equal(info.attempt_log[0].at, now);
        queue_message_info_clear(&info);
        /* Final and waiting states leave no lease behind. */
        assert_int_equal(claim_count(q, account), 0);
    }
    queue_close(q);
}

#undef D
#undef F
#undef P

static void
test_finish_records_refusal_and_resends_pending_only(void **state)
{
    struct queue_rcpt_outcome rcpts[3] = {
        {.address = "r0@example.net", .result = QUEUE_RCPT_DELIVERED, .code = 250},
        {.address = "r1@example.net",
         .result = QUEUE_RCPT_FAIL,
         .code = 550,
         .enhanced = "5.1.1",
         .text = "no such user"},
        {.address = "r2@example.net",
         .result = QUEUE_RCPT_DEFER,
         .code = 452,
         .text = "mailbox busy"},
    };
    struct queue_outcome o = {.rcpts = rcpts, .n_rcpts = 3, .code = 250};
    struct queue_message_info info;
    struct queue_job *jobs = NULL;
    struct mo_error err;
    struct queue *q = open_queue(home);
    size_t n = 0;
    int64_t id;
    (void)state;

    queue_test_set_clock(q, T0);
    id = add_message(q, NULL, 3, "partial");
    claim_one(q, NULL, id);
    o.id = id;
    assert_int_equal(queue_finish(q, &o, 1, &err), 0);
    assert_int_equal(queue_get(q, id, false, &info, &err), 0);
    assert_int_equal(info.state, QUEUE_DEFERRED);
    assert_int_equal(info.rcpts[1].code, 550);
    assert_string_equal(info.rcpts[1].reply, "5.1.1 no such user");
    assert_string_equal(info.rcpts[2].reply, "mailbox busy");
    queue_message_info_clear(&info);

    queue_test_set_clock(q, T0 + 3600);
    assert_int_equal(queue_claim(q, NULL, "w", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0].attempts, 1);
    assert_int_equal(jobs[0].n_rcpts, 1);
    assert_string_equal(jobs[0].rcpts[0], "r2@example.net");
    queue_job_free(&jobs[0]);
    free(jobs);

    /* Second deferral: the backoff grows (60 s * 2^1, +-20 %). */
    finish_all(q, id, QUEUE_RCPT_DEFER, 421, false);
    assert_int_equal(queue_get(q, id, true, &info, &err), 0);
    assert_int_equal(info.attempts, 2);
    assert_true(info.next_attempt_at >= T0 + 3600 + 96);
    assert_true(info.next_attempt_at <= T0 + 3600 + 144);
    assert_int_equal(info.n_attempt_log, 2);
    queue_message_info_clear(&info);

    /* An outcome for a message that is already final changes nothing. */
    queue_test_set_clock(q, T0 + 7200);
    claim_one(q, NULL, id);
    finish_all(q, id, QUEUE_RCPT_DELIVERED, 250, false);
    assert_int_equal(state_of(q, id), QUEUE_SENT);
    finish_all(q, id, QUEUE_RCPT_FAIL, 550, false);
    assert_int_equal(state_of(q, id), QUEUE_SENT);
    /* ... and one for a message that is gone is ignored without failing the batch. */
    finish_all(q, id + 1000, QUEUE_RCPT_DELIVERED, 250, false);
    queue_close(q);
}

/* ---- claims --------------------------------------------------------------- */

static void
test_claim_due_times_and_order(void **state)
{
    struct queue_job *jobs = NULL;
    struct queue_message_info info;
    struct mo_error err;
    struct queue *q = open_queue(home);
    size_t n = 0;
    int64_t a, b, c, d, next;
    (void)state;

    queue_test_set_clock(q, T0);
    a = add_message(q, NULL, 1, "a");
    claim_one(q, NULL, a);
    finish_all(q, a, QUEUE_RCPT_DEFER, 421, false);
    assert_int_equal(queue_get(q, a, false, &info, &err), 0);
    next = info.next_attempt_at;
    queue_message_info_clear(&info);

    queue_test_set_clock(q, T0 + 10);
    b = add_message(q, NULL, 1, "b");
    queue_test_set_clock(q, T0 + 20);
    c = add_message(q, NULL, 1, "c");
    queue_test_set_clock(q, next + 5);
    d = add_message(q, NULL, 1, "d");

    /* Before a's next attempt: a is not due. */
    queue_test_set_clock(q, next - 1);
    assert_int_equal(queue_claim(q, NULL, "w", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(jobs[0].id, b);
    assert_int_equal(jobs[1].id, c);
    assert_int_equal(jobs[2].id, d);
    for (size_t i = 0; i < n; i++)
        queue_job_free(&jobs[i]);
    free(jobs);
    queue_test_set_clock(q, next + 10);
    {
        int64_t ids[3] = {b, c, d};
        assert_int_equal(queue_release(q, ids, 3, &err), 0);
    }
    /* Now a is due, and it waited longest (since next); then b, c; d after. */
    assert_int_equal(queue_claim(q, NULL, "w", 60, 2, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0].id, b);
    assert_int_equal(jobs[1].id, c);
    for (size_t i = 0; i < n; i++)
        queue_job_free(&jobs[i]);
    free(jobs);
    assert_int_equal(queue_claim(q, NULL, "w", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0].id, a);
    assert_int_equal(jobs[0].attempts, 1);
    assert_int_equal(jobs[1].id, d);
    for (size_t i = 0; i < n; i++)
        queue_job_free(&jobs[i]);
    free(jobs);
    assert_int_equal(queue_claim(q, NULL, "w", 60, 0, &jobs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(jobs);
    queue_close(q);
}

static void
test_claim_accounts(void **state)
{
    struct queue_job *jobs = NULL;
    char **accounts = NULL;
    struct mo_error err;
    struct queue *q = open_queue(home);
    size_t n = 0;
    int64_t d1, d2, s1, o1;
    (void)state;

    queue_test_set_clock(q, T0);
    assert_int_equal(queue_due_accounts(q, &accounts, &n, &err), 0);
    assert_int_equal(n, 0);
    d1 = add_message(q, NULL, 1, "default");
    s1 = add_message(q, "shop", 1, "shop");
    o1 = add_message(q, "other", 1, "other");
    d2 = add_message(q, "", 1, "default too");

    assert_int_equal(queue_due_accounts(q, &accounts, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_null(accounts[0]); /* the default account */
    assert_string_equal(accounts[1], "other");
    assert_string_equal(accounts[2], "shop");
    for (size_t i = 0; i < n; i++)
        free(accounts[i]);
    free(accounts);

    assert_int_equal(queue_claim(q, "shop", "w", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0].id, s1);
    assert_string_equal(jobs[0].account, "shop");
    queue_job_free(&jobs[0]);
    free(jobs);

    /* "" means the default account, not any. */
    assert_int_equal(queue_claim(q, "", "w", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0].id, d1);
    assert_int_equal(jobs[1].id, d2);
    assert_null(jobs[0].account);
    assert_null(jobs[1].account);
    for (size_t i = 0; i < n; i++)
        queue_job_free(&jobs[i]);
    free(jobs);

    assert_int_equal(queue_due_accounts(q, &accounts, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(accounts[0], "other");
    free(accounts[0]);
    free(accounts);

    assert_int_equal(claim_count(q, "nobody"), 0);
    assert_int_equal(queue_claim(q, NULL, "w", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0].id, o1);
    queue_job_free(&jobs[0]);
    free(jobs);
    assert_int_equal(queue_due_accounts(q, &accounts, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(accounts);
    queue_close(q);
}

static void
test_claim_lease_recover_grace(void **state)
{
    struct queue_message_info info;
    struct queue_job *jobs = NULL;
    struct mo_error err;
    struct queue *q = open_queue(home);
    struct queue *other = open_queue(home); /* a second worker's connection */
    size_t n = 0;
    int64_t id, live;
    (void)state;

    queue_test_set_clock(q, T0);
    queue_test_set_clock(other, T0);
    id = add_message(q, NULL, 2, "leased");
    assert_int_equal(queue_claim(q, NULL, "w1", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    queue_job_free(&jobs[0]);
    free(jobs);
    assert_int_equal(state_of(q, id), QUEUE_SENDING);
    /* Claimed: nobody else gets it, before or after the lease ran out ... */
    assert_int_equal(claim_count(other, NULL), 0);
    queue_test_set_clock(other, T0 + 61);
    assert_int_equal(claim_count(other, NULL), 0);
    /* ... and a live lease is not recovered. */
    queue_test_set_clock(other, T0 + 60);
    assert_int_equal(queue_recover(other, &n, &err), 0);
    assert_int_equal(n, 0);

    queue_test_set_clock(other, T0 + 30);
    live = add_message(other, NULL, 1, "live");
    claim_one(other, NULL, live); /* lease until T0 + 330 */
    queue_test_set_clock(other, T0 + 61);
    assert_int_equal(queue_recover(other, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(state_of(other, id), QUEUE_UNCERTAIN);
    assert_int_equal(state_of(other, live), QUEUE_SENDING);
    assert_int_equal(queue_get(other, id, true, &info, &err), 0);
    assert_int_equal(info.attempts, 1);
    assert_int_equal(info.updated_at, T0 + 61);
    assert_int_equal(info.next_attempt_at, T0 + 61 + 1800);
    assert_string_equal(info.rcpts[0].state, "pending");
    assert_int_equal(info.n_attempt_log, 1);
    assert_string_equal(info.attempt_log[0].result, "uncertain");
    assert_non_null(strstr(info.attempt_log[0].reply, "service stopped"));
    assert_non_null(strstr(info.last_reply, "may have arrived"));
    queue_message_info_clear(&info);

    /* Uncertain waits out the grace period before a resend. */
    queue_test_set_clock(other, T0 + 61 + 1799);
    assert_int_equal(claim_count(other, NULL), 0);
    assert_int_equal(queue_next_due(other), T0 + 61 + 1800);
    queue_test_set_clock(other, T0 + 61 + 1800);
    assert_int_equal(queue_claim(other, NULL, "w2", 60, 10, &jobs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0].id, id);
    assert_int_equal(jobs[0].n_rcpts, 2);
    assert_int_equal(jobs[0].attempts, 1);
    queue_job_free(&jobs[0]);
    free(jobs);
    queue_close(other);
    queue_close(q);
}

static void
test_release(void **state)
{
    struct queue_message_info info;
    struct mo_error err;
    struct queue *q = open_queue(home);
    int64_t a, b, ids[2];
    (void)state;

    queue_test_set_clock(q, T0);
    a = add_message(q, "x", 1, "a");
    b = add_message(q, "y", 1, "b");
    claim_one(q, "y", b);
    finish_all(q, b, QUEUE_RCPT_DEFER, 421, false);
    queue_test_set_clock(q, T0 + 1000);
    claim_one(q, "x", a);
    claim_one(q, "y", b);
    ids[0] = a;
    ids[1] = b;
    assert_int_equal(queue_release(q, ids, 2, &err), 0);
    assert_int_equal(queue_get(q, a, false, &info, &err), 0);
    assert_int_equal(info.state, QUEUE_QUEUED);
    assert_int_equal(info.attempts, 0);
    queue_message_info_clear(&info);
    assert_int_equal(queue_get(q, b, true, &info, &err), 0);
    assert_int_equal(info.state, QUEUE_DEFERRED);
    assert_int_equal(info.attempts, 1);
    assert_int_equal(info.n_attempt_log, 1);
    queue_message_info_clear(&info);
    /* Both are due again at once. */
    assert_int_equal(claim_count(q, NULL), 2);
    /* Releasing what is no longer claimed changes nothing. */
    finish_all(q, a, QUEUE_RCPT_DELIVERED, 250, false);
    assert_int_equal(queue_release(q, ids, 2, &err), 0);
    assert_int_equal(state_of(q, a), QUEUE_SENT);
    assert_int_equal(state_of(q, b), QUEUE_DEFERRED);
    queue_close(q);
}

/* ---- admin actions -------------------------------------------------------- */

/* Makes a message in the given state (clock T0). */
static int64_t
message_in_state(struct queue *q, enum queue_state s, const char *account)
{
    int64_t id = add_message(q, account, 2, "state");

    switch (s) {
    case QUEUE_QUEUED:
        break;
    case QUEUE_SENDING:
        claim_one(q, account, id);
        break;
    case QUEUE_SENT:
        claim_one(q, account, id);
        finish_all(q, id, QUEUE_RCPT_DELIVERED, 250, false);
        break;
    case QUEUE_DEFERRED:
        claim_one(q, account, id);
        finish_all(q, id, QUEUE_RCPT_DEFER, 421, false);
        break;
    case QUEUE_FAILED:
        claim_one(q, account, id);
        finish_all(q, id, QUEUE_RCPT_FAIL, 550, false);
        break;
    case QUEUE_UNCERTAIN:
        claim_one(q, account, id);
        finish_all(q, id, QUEUE_RCPT_DELIVERED, 0, true);
        break;
    case QUEUE_STATE_COUNT:
        fail();
    }
    assert_int_equal(state_of(q, id), s);
    return id;
}

static void
test_retry_and_drop_rules(void **state)
{
    static const struct {
        enum queue_state from;
        bool retry_ok;
        bool drop_ok;
    } cases[] = {
        {QUEUE_QUEUED, true, true},   {QUEUE_SENDING, false, false}, {QUEUE_SENT, false, true},
        {QUEUE_DEFERRED, true, true}, {QUEUE_FAILED, true, true},    {QUEUE_UNCERTAIN, true, true},
    };
    struct queue *q = open_queue(home);
    struct mo_error err;
    (void)state;

    queue_test_set_clock(q, T0);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char account[32];
        struct queue_message_info info;
        int64_t id;

        snprintf(account, sizeof(account), "retry%zu", i);
        id = message_in_state(q, cases[i].from, account);
        mo_error_clear(&err);
        if (!cases[i].retry_ok) {
            assert_int_equal(queue_retry(q, id, &err), -1);
            assert_int_equal(err.category, MO_ERR_CONFIG);
            assert_null(err.field);
            assert_int_equal(state_of(q, id), cases[i].from);
        } else {
            if (queue_retry(q, id, &err) != 0)
                fail_msg("retry from %s: %s", queue_state_name(cases[i].from), err.text);
            /* Due now, with every undelivered recipient to try. */
            assert_int_equal(queue_get(q, id, false, &info, &err), 0);
            assert_int_equal(info.state, QUEUE_QUEUED);
            assert_int_equal(info.next_attempt_at, T0);
            assert_string_equal(info.rcpts[0].state, "pending");
            assert_string_equal(info.rcpts[1].state, "pending");
            queue_message_info_clear(&info);
            assert_int_equal(queue_next_due(q), T0);
            claim_one(q, account, id);
            finish_all(q, id, QUEUE_RCPT_DEFER, 421, false); /* out of sending for the drop */
        }

        snprintf(account, sizeof(account), "drop%zu", i);
        id = message_in_state(q, cases[i].from, account);
        if (!cases[i].drop_ok) {
            assert_int_equal(queue_drop(q, id, &err), -1);
            assert_int_equal(err.category, MO_ERR_CONFIG);
            assert_int_equal(state_of(q, id), cases[i].from);
        } else {
            assert_int_equal(queue_drop(q, id, &err), 0);
            assert_int_equal(queue_get(q, id, false, &info, &err), -1);
            assert_string_equal(err.field, "id");
        }
    }
    assert_int_equal(queue_retry(q, 999999, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "id");
    assert_int_equal(queue_drop(q, 999999, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_string_equal(err.field, "id");
    queue_close(q);
}

static void
test_retry_all_deferred(void **state)
{
    struct queue *q = open_queue(home);
    struct mo_error err;
    size_t n = 99;
    int64_t d[3], f;
    (void)state;

    queue_test_set_clock(q, T0);
    for (int i = 0; i < 3; i++) {
        char account[16];
        snprintf(account, sizeof(account), "d%d", i);
        d[i] = message_in_state(q, QUEUE_DEFERRED, account);
    }
    f = message_in_state(q, QUEUE_FAILED, "f");
    message_in_state(q, QUEUE_SENT, "s");
    assert_int_equal(claim_count(q, NULL), 0);
    assert_int_equal(queue_retry_all_deferred(q, &n, &err), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(state_of(q, d[i]), QUEUE_QUEUED);
    assert_int_equal(state_of(q, f), QUEUE_FAILED);
    assert_int_equal(claim_count(q, NULL), 3);
    assert_int_equal(queue_retry_all_deferred(q, &n, &err), 0);
    assert_int_equal(n, 0);
    queue_close(q);
}

static void
test_drop_removes_everything(void **state)
{
    struct queue *q = open_queue(home);
    struct mo_error err;
    int64_t id, keep;
    char sql[512];
    (void)state;

    queue_test_set_clock(q, T0);
    id = message_in_state(q, QUEUE_DEFERRED, "gone");
    keep = message_in_state(q, QUEUE_DEFERRED, "kept");
    assert_int_equal(queue_drop(q, id, &err), 0);
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM recipients WHERE message_id = %lld)"
             " + (SELECT count(*) FROM attempts WHERE message_id = %lld)"
             " + (SELECT count(*) FROM message_data WHERE id = %lld)"
             " + (SELECT count(*) FROM message_search WHERE id = %lld)",
             (long long)id, (long long)id, (long long)id, (long long)id);
    assert_int_equal(db_count(home, sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM recipients WHERE message_id = %lld)"
             " + (SELECT count(*) FROM attempts WHERE message_id = %lld)"
             " + (SELECT count(*) FROM message_data WHERE id = %lld)"
             " + (SELECT count(*) FROM message_search WHERE id = %lld)",
             (long long)keep, (long long)keep, (long long)keep, (long long)keep);
    assert_int_equal(db_count(home, sql), 2 + 1 + 1 + 1);
    queue_close(q);
}

/* ---- list, search, counts ------------------------------------------------- */

static int64_t
add_listed(struct queue *q, int i, const char *subject, const char *rcpt)
{
    char rbuf[64], mid[64], subj[64];
    const char *rcpts[2];
    struct queue_new_message m = {.from = "shop@example.com",
                                  .rcpts = rcpts,
                                  .n_rcpts = 2,
                                  .data = "x\r\n",
                                  .len = 3,
                                  .header_from = "Shop <s@example.com>"};
    struct mo_error err;
    int64_t id = 0;

    snprintf(rbuf, sizeof(rbuf), "customer%d@example.net", i);
    snprintf(mid, sizeof(mid), "%d.abc@shop.example", i);
    snprintf(subj, sizeof(subj), "Order #%d shipped", i);
    rcpts[0] = rbuf;
    rcpts[1] = rcpt != NULL ? rcpt : "copy@example.net";
    m.message_id = mid;
    m.subject = subject != NULL ? subject : subj;
    if (queue_add(q, &m, &id, &err) != 0)
        fail_msg("queue_add: %s", err.text);
    return id;
}

static size_t
search_count(struct queue *q, const char *term, int st)
{
    struct queue_filter f = {.state = st, .search = term, .limit = 1000};
    struct queue_message_info *list = NULL;
    struct mo_error err;
    size_t n = 0;

    if (queue_list(q, &f, &list, &n, &err) != 0)
        fail_msg("search \"%s\": %s", term, err.text);
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&list[i]);
    free(list);
    return n;
}

static void
test_list_search_paging(void **state)
{
    static const struct {
        const char *term;
        size_t want;
    } searches[] = {
        {"customer42@", 1},            /* recipient, not customer142 */
        {"CUSTOMER42@EXAMPLE.NET", 1}, /* case-insensitive */
        {"special.person@example.org", 1},
        {"17.abc@shop", 1}, /* Message-ID */
        {"order #99 ", 1},  /* subject */
        {"100%", 1},        /* % is literal */
        {"%", 1},           /* alone, too */
        {"a_", 1},          /* _ is literal */
        {"_", 1},
        {"\\", 1},
        {"s@example.com", 121}, /* header From of every message */
        {"example.net", 121},
        {"nowhere", 0},
        {"x\"y", 0}, /* quotes are plain characters */
        {"'", 0},
        {"a OR b", 0}, /* no operators either */
        {"é", 1},      /* UTF-8 */
        {"déjà", 1},
        {"DÉJÀ", 0}, /* case folds for ASCII letters only */
        {"CAFé", 1},
    };
    struct queue_message_info *list = NULL;
    struct queue_filter f = {.state = -1};
    struct mo_error err;
    struct queue *q = open_queue(home);
    int64_t ids[121];
    int64_t seen_prev = INT64_MAX;
    size_t n = 0, total = 0;
    (void)state;

    queue_test_set_clock(q, T0);
    for (int i = 0; i < 117; i++)
        ids[i] = add_listed(q, i, NULL, NULL);
    ids[117] = add_listed(q, 1000, "Save 100% today", NULL);
    ids[118] = add_listed(q, 1001, "a_b", "Special.Person@Example.ORG");
    ids[119] = add_listed(q, 1002, "back\\slash", NULL);
    ids[120] = add_listed(q, 1003, "Café déjà vu", NULL);

    /* Default page: 50, newest first, with recipients. */
    assert_int_equal(queue_list(q, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 50);
    assert_int_equal(list[0].id, ids[120]);
    assert_int_equal(list[1].id, ids[119]);
    assert_int_equal(list[0].n_rcpts, 2);
    assert_string_equal(list[0].rcpts[0].address, "customer1003@example.net");
    assert_null(list[0].attempt_log);
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&list[i]);
    free(list);

    /* Paging by before_id visits every message once, newest first. */
    f.limit = 17;
    for (;;) {
        assert_int_equal(queue_list(q, &f, &list, &n, &err), 0);
        if (n == 0)
            break;
        assert_true(n <= 17);
        for (size_t i = 0; i < n; i++) {
            assert_true(list[i].id < seen_prev);
            seen_prev = list[i].id;
            queue_message_info_clear(&list[i]);
        }
        total += n;
        f.before_id = seen_prev;
        free(list);
    }
    assert_null(list);
    assert_int_equal(total, 121);

    for (size_t i = 0; i < ARRAY_LEN(searches); i++) {
        size_t got = search_count(q, searches[i].term, -1);
        if (got != searches[i].want)
            fail_msg("search \"%s\": %zu, want %zu", searches[i].term, got, searches[i].want);
    }

    /* State filter, and a search within a state, paged: defer ids[5] and ids[6]. */
    {
        struct queue_job *jobs = NULL;
        int64_t back[121];
        size_t nb = 0;

        assert_int_equal(queue_claim(q, NULL, "w", 60, 500, &jobs, &n, &err), 0);
        assert_int_equal(n, 121);
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].id == ids[5] || jobs[i].id == ids[6])
                finish_all(q, jobs[i].id, QUEUE_RCPT_DEFER, 421, false);
            else
                back[nb++] = jobs[i].id;
            queue_job_free(&jobs[i]);
        }
        free(jobs);
        assert_int_equal(queue_release(q, back, nb, &err), 0);
    }
    assert_int_equal(search_count(q, NULL, QUEUE_DEFERRED), 2);
    assert_int_equal(search_count(q, "customer5@", QUEUE_DEFERRED), 1);
    assert_int_equal(search_count(q, "customer5@", QUEUE_QUEUED), 0);
    assert_int_equal(search_count(q, NULL, QUEUE_QUEUED), 119);
    f = (struct queue_filter){
        .state = QUEUE_QUEUED, .search = "example.net", .limit = 10, .before_id = ids[100]};
    assert_int_equal(queue_list(q, &f, &list, &n, &err), 0);
    assert_int_equal(n, 10);
    assert_int_equal(list[0].id, ids[99]);
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&list[i]);
    free(list);
    f = (struct queue_filter){.state = QUEUE_STATE_COUNT};
    assert_int_equal(queue_list(q, &f, &list, &n, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    queue_close(q);
}

static void
test_counts(void **state)
{
    struct queue_counts c;
    struct mo_error err;
    struct queue *q = open_queue(home);
    int64_t failed;
    (void)state;

    assert_int_equal(queue_count(q, &c, &err), 0);
    for (int s = 0; s < QUEUE_STATE_COUNT; s++)
        assert_int_equal(c.by_state[s], 0);
    assert_int_equal(c.sent_today, 0);

    /* Sent two days ago: not today. */
    queue_test_set_clock(q, T0 - 2 * 86400);
    message_in_state(q, QUEUE_SENT, "old");
    queue_test_set_clock(q, T0);
    message_in_state(q, QUEUE_SENT, "s1");
    message_in_state(q, QUEUE_SENT, "s2");
    message_in_state(q, QUEUE_DEFERRED, "d");
    failed = message_in_state(q, QUEUE_FAILED, "f");
    message_in_state(q, QUEUE_UNCERTAIN, "u");
    message_in_state(q, QUEUE_SENDING, "w");
    message_in_state(q, QUEUE_QUEUED, "q1");
    message_in_state(q, QUEUE_QUEUED, "q2");

    assert_int_equal(queue_count(q, &c, &err), 0);
    assert_int_equal(c.by_state[QUEUE_QUEUED], 2);
    assert_int_equal(c.by_state[QUEUE_SENDING], 1);
    assert_int_equal(c.by_state[QUEUE_SENT], 3);
    assert_int_equal(c.by_state[QUEUE_DEFERRED], 1);
    assert_int_equal(c.by_state[QUEUE_FAILED], 1);
    assert_int_equal(c.by_state[QUEUE_UNCERTAIN], 1);
    assert_int_equal(c.sent_today, 2);

    assert_int_equal(queue_drop(q, failed, &err), 0);
    assert_int_equal(queue_retry_all_deferred(q, NULL, &err), 0);
    assert_int_equal(queue_count(q, &c, &err), 0);
    assert_int_equal(c.by_state[QUEUE_FAILED], 0);
    assert_int_equal(c.by_state[QUEUE_DEFERRED], 0);
    assert_int_equal(c.by_state[QUEUE_QUEUED], 3);
    /* The counters agree with a full count. */
    assert_int_equal(db_count(home, "SELECT count(*) FROM messages WHERE state = 'queued'"), 3);
    assert_int_equal(db_count(home, "SELECT sum(n) FROM queue_state_counts"),
                     db_count(home, "SELECT count(*) FROM messages"));
    queue_close(q);
}

static void
test_next_due(void **state)
{
    struct queue_message_info info;
    struct mo_error err;
    struct queue *q = open_queue(home);
    int64_t id;
    (void)state;

    queue_test_set_clock(q, T0);
    assert_int_equal(queue_next_due(q), 0);
    id = message_in_state(q, QUEUE_DEFERRED, "a");
    assert_int_equal(queue_get(q, id, false, &info, &err), 0);
    assert_int_equal(queue_next_due(q), info.next_attempt_at);
    queue_message_info_clear(&info);
    message_in_state(q, QUEUE_UNCERTAIN, "b");
    assert_true(queue_next_due(q) < T0 + 1800);
    queue_test_set_clock(q, T0 + 5);
    message_in_state(q, QUEUE_QUEUED, "c");
    assert_int_equal(queue_next_due(q), T0 + 5);
    message_in_state(q, QUEUE_SENT, "d");
    queue_close(q);
}

/* ---- concurrency, crashes, full disks --------------------------------------- */

struct adder_arg {
    int n;
    int failures;
};

static void *
adder_thread(void *p)
{
    struct adder_arg *a = p;
    struct queue *q = NULL;
    struct mo_error err;

    if (queue_open(home, NULL, &q, &err) != 0) {
        a->failures = a->n;
        return NULL;
    }
    for (int i = 0; i < a->n; i++) {
        static const char *const rcpt[] = {"t@example.net"};
        struct queue_new_message m = {
            .from = "s@example.com", .rcpts = rcpt, .n_rcpts = 1, .data = "x\r\n", .len = 3};
        if (queue_add(q, &m, NULL, &err) != 0)
            a->failures++;
    }
    queue_close(q);
    return NULL;
}

static void
test_concurrent_writers_and_claimers(void **state)
{
    enum { THREADS = 4, PER_THREAD = 40, CLAIMERS = 3 };
    struct adder_arg args[THREADS];
    pthread_t threads[THREADS];
    struct queue *q;
    int pipefd[2];
    pid_t kids[CLAIMERS];
    unsigned char seen[THREADS * PER_THREAD + 1] = {0};
    int64_t id;
    (void)state;

    /* Writers: every connection commits; busy waits are absorbed by busy_timeout. */
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct adder_arg){.n = PER_THREAD};
        assert_int_equal(pthread_create(&threads[i], NULL, adder_thread, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(db_count(home, "SELECT count(*) FROM messages"), THREADS * PER_THREAD);

    /* Claimers in separate processes: no message is handed out twice. */
    assert_int_equal(pipe(pipefd), 0);
    for (int k = 0; k < CLAIMERS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            struct queue *cq = NULL;
            struct mo_error err;
            close(pipefd[0]);
            if (queue_open(home, NULL, &cq, &err) != 0)
                _exit(2);
            for (;;) {
                struct queue_job *jobs = NULL;
                size_t n = 0;
                if (queue_claim(cq, NULL, "kid", 60, 3, &jobs, &n, &err) != 0)
                    _exit(3);
                if (n == 0)
                    break;
                for (size_t i = 0; i < n; i++) {
                    struct queue_outcome o = {
                        .id = jobs[i].id, .all = QUEUE_RCPT_DELIVERED, .code = 250};
                    if (write(pipefd[1], &jobs[i].id, sizeof(jobs[i].id)) !=
                            (ssize_t)sizeof(jobs[i].id) ||
                        queue_finish(cq, &o, 1, &err) != 0)
                        _exit(4);
                    queue_job_free(&jobs[i]);
                }
                free(jobs);
            }
            queue_close(cq);
            _exit(0);
        }
    }
    close(pipefd[1]);
    while (read(pipefd[0], &id, sizeof(id)) == (ssize_t)sizeof(id)) {
        assert_true(id >= 1 && id <= THREADS * PER_THREAD);
        if (seen[id])
            fail_msg("message %lld was claimed twice", (long long)id);
        seen[id] = 1;
    }
    close(pipefd[0]);
    for (int k = 0; k < CLAIMERS; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int i = 1; i <= THREADS * PER_THREAD; i++)
        assert_true(seen[i]);
    q = open_queue(home);
    assert_int_equal(claim_count(q, NULL), 0);
    queue_close(q);
    assert_int_equal(db_count(home, "SELECT count(*) FROM messages WHERE state = 'sent'"),
                     THREADS * PER_THREAD);
}

/* ---- the group committer (committer.c) ------------------------------------- */

enum { COMMIT_THREADS = 8, COMMIT_PER_THREAD = 25 };

struct committer_arg {
    struct queue_committer *c;
    int64_t ids[COMMIT_PER_THREAD];
    int rcs[COMMIT_PER_THREAD];
    struct mo_error errs[COMMIT_PER_THREAD];
};

/* Every fifth message has no recipient: its CONFIG error must not spoil its batch. */
static void *
committer_thread(void *p)
{
    struct committer_arg *a = p;
    static const char *const rcpt[] = {"t@example.net"};

    for (int i = 0; i < COMMIT_PER_THREAD; i++) {
        struct queue_new_message m = {.from = "s@example.com",
                                      .rcpts = rcpt,
                                      .n_rcpts = i % 5 == 4 ? 0 : 1,
                                      .data = "x\r\n",
                                      .len = 3};
        mo_error_clear(&a->errs[i]);
        a->rcs[i] = queue_committer_add(a->c, &m, &a->ids[i], &a->errs[i]);
    }
    return NULL;
}

static void
test_committer_group_commit(void **state)
{
    static struct committer_arg args[COMMIT_THREADS];
    pthread_t threads[COMMIT_THREADS];
    struct queue_committer *c = NULL;
    unsigned char seen[COMMIT_THREADS * COMMIT_PER_THREAD + 1] = {0};
    struct mo_error err;
    int good = 0;
    (void)state;

    queue_committer_stop(NULL); /* a no-op */
    mo_error_clear(&err);
    if (queue_committer_start(home, NULL, "test", &c, &err) != 0)
        fail_msg("queue_committer_start: %s", err.text);
    for (int t = 0; t < COMMIT_THREADS; t++) {
        memset(&args[t], 0, sizeof(args[t]));
        args[t].c = c;
        assert_int_equal(pthread_create(&threads[t], NULL, committer_thread, &args[t]), 0);
    }
    for (int t = 0; t < COMMIT_THREADS; t++)
        pthread_join(threads[t], NULL);
    queue_committer_stop(c);

    for (int t = 0; t < COMMIT_THREADS; t++) {
        for (int i = 0; i < COMMIT_PER_THREAD; i++) {
            if (i % 5 == 4) {
                assert_int_equal(args[t].rcs[i], -1);
                assert_int_equal(args[t].errs[i].category, MO_ERR_CONFIG);
                assert_string_equal(args[t].errs[i].field, "recipient");
                continue;
            }
            assert_int_equal(args[t].rcs[i], 0);
            assert_true(args[t].ids[i] >= 1 &&
                        args[t].ids[i] <= COMMIT_THREADS * COMMIT_PER_THREAD);
            if (seen[args[t].ids[i]])
                fail_msg("id %lld handed out twice", (long long)args[t].ids[i]);
            seen[args[t].ids[i]] = 1;
            good++;
        }
    }
    /* committed means on disk: a fresh connection sees every acknowledged message */
    assert_int_equal(db_count(home, "SELECT count(*) FROM messages"), good);
    assert_int_equal(good, COMMIT_THREADS * COMMIT_PER_THREAD * 4 / 5);
}

/* A read-only folder: start fails with STORAGE and leaves nothing running. */
static void
test_committer_start_fails_cleanly(void **state)
{
    struct queue_committer *c = (struct queue_committer *)1;
    struct mo_error err;
    (void)state;

    mo_error_clear(&err);
    assert_int_equal(queue_committer_start("/nonexistent/mailout-home", NULL, NULL, &c, &err), -1);
    assert_null(c);
    assert_int_equal(err.category, MO_ERR_STORAGE);
}

static void
test_crash_during_claim_becomes_uncertain(void **state)
{
    struct queue_message_info info;
    struct mo_error err;
    struct queue *q = open_queue(home);
    int pipefd[2];
    size_t claimed = 0, recovered = 99;
    int64_t ids[10];
    pid_t kid;
    int status = 0;
    time_t after;
    (void)state;

    for (int i = 0; i < 10; i++)
        ids[i] = add_message(q, NULL, 2, "crash");
    queue_close(q);

    assert_int_equal(pipe(pipefd), 0);
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        struct queue *cq = NULL;
        struct queue_job *jobs = NULL;
        size_t n = 0;
        close(pipefd[0]);
        if (queue_open(home, NULL, &cq, &err) != 0 ||
            queue_claim(cq, NULL, "doomed", 1, 100, &jobs, &n, &err) != 0)
            _exit(2);
        if (write(pipefd[1], &n, sizeof(n)) != (ssize_t)sizeof(n))
            _exit(3);
        _exit(0); /* like kill -9: no finish, no release, no close */
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &claimed, sizeof(claimed)), (ssize_t)sizeof(claimed));
    close(pipefd[0]);
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(claimed, 10);
    after = time(NULL);

    q = open_queue(home);
    /* The lease (1 s) still runs: nothing to recover, nothing to claim. */
    assert_int_equal(queue_recover(q, &recovered, &err), 0);
    assert_int_equal(recovered, 0);
    assert_int_equal(claim_count(q, NULL), 0);
    while (time(NULL) < after + 2)
        usleep(100 * 1000);
    assert_int_equal(queue_recover(q, &recovered, &err), 0);
    assert_int_equal(recovered, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(queue_get(q, ids[i], true, &info, &err), 0);
        assert_int_equal(info.state, QUEUE_UNCERTAIN);
        assert_int_equal(info.attempts, 1);
        assert_int_equal(info.n_rcpts, 2);
        assert_string_equal(info.rcpts[0].state, "pending");
        assert_int_equal(info.n_attempt_log, 1);
        assert_non_null(strstr(info.attempt_log[0].reply, "it may have arrived"));
        queue_message_info_clear(&info);
    }
    /* Not resent before the grace period. */
    assert_int_equal(claim_count(q, NULL), 0);
    queue_close(q);
}

struct acked {
    int64_t id;
    uint32_t len;
    uint32_t n_rcpts;
    uint32_t sum;
    uint32_t pad;
};

static uint32_t
checksum(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* The child adds messages until killed; it reports each only after queue_add returned. */
static void
adder_until_killed(int fd, unsigned seed)
{
    static const char *const rcpts[] = {"a@example.net", "b@example.net", "c@example.net",
                                        "d@example.net", "e@example.net"};
    struct queue *q = NULL;
    struct mo_error err;
    char *data = malloc(65536);

    if (data == NULL || queue_open(home, NULL, &q, &err) != 0)
        _exit(2);
    srand(seed);
    for (unsigned seq = 0;; seq++) {
        struct queue_new_message m = {.from = "s@example.com", .rcpts = rcpts};
        struct acked a = {0};
        size_t len = 200 + (size_t)(rand() % 60000);

        for (size_t i = 0; i < len; i++)
            data[i] = (char)('a' + (seq + i * 7) % 26);
        m.data = data;
        m.len = len;
        m.n_rcpts = 1 + (size_t)(rand() % 5);
        if (queue_add(q, &m, &a.id, &err) != 0)
            _exit(3);
        a.len = (uint32_t)len;
        a.n_rcpts = (uint32_t)m.n_rcpts;
        a.sum = checksum(data, len);
        if (write(fd, &a, sizeof(a)) != (ssize_t)sizeof(a)) /* atomic: < PIPE_BUF */
            _exit(4);
    }
}

static void
test_kill_during_add_loses_nothing_acknowledged(void **state)
{
    struct queue *q;
    struct mo_error err;
    size_t total_acked = 0;
    (void)state;

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int round = 0; round < 4; round++) {
        struct acked a;
        int pipefd[2];
        int status = 0;
        pid_t kid;
        size_t acked = 0;

        assert_int_equal(pipe(pipefd), 0);
        kid = fork();
        assert_true(kid >= 0);
        if (kid == 0) {
            close(pipefd[0]);
            adder_until_killed(pipefd[1], (unsigned)rand());
        }
        close(pipefd[1]);
        usleep((useconds_t)(100000 + rand() % 300000)); /* a random moment */
        kill(kid, SIGKILL);
        assert_int_equal(waitpid(kid, &status, 0), kid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        q = open_queue(home);
        while (read(pipefd[0], &a, sizeof(a)) == (ssize_t)sizeof(a)) {
            struct queue_message_info info;
            char *data = NULL;
            size_t len = 0;

            if (queue_get(q, a.id, false, &info, &err) != 0)
                fail_msg("round %d: acknowledged message %lld is lost: %s", round, (long long)a.id,
                         err.text);
            assert_int_equal(info.n_rcpts, a.n_rcpts);
            assert_int_equal(info.size, a.len);
            queue_message_info_clear(&info);
            assert_int_equal(queue_get_data(q, a.id, &data, &len, &err), 0);
            assert_int_equal(len, a.len);
            assert_int_equal(checksum(data, len), a.sum);
            free(data);
            acked++;
        }
        close(pipefd[0]);
        total_acked += acked;
        /* Whatever is there is whole: each message has its body and recipients. */
        assert_int_equal(db_count(home, "SELECT count(*) FROM messages m WHERE NOT EXISTS"
                                        " (SELECT 1 FROM message_data d WHERE d.id = m.id)"
                                        " OR NOT EXISTS (SELECT 1 FROM recipients r"
                                        " WHERE r.message_id = m.id)"),
                         0);
        queue_close(q);
    }
    assert_true(total_acked > 0);
    assert_true((size_t)db_count(home, "SELECT count(*) FROM messages") >= total_acked);
    assert_int_equal(db_count(home, "SELECT count(*) FROM pragma_integrity_check"
                                    " WHERE integrity_check <> 'ok'"),
                     0);
}

/* Adds 20 KB messages until the disk is full; checks the error and what remains. */
static void
fill_until_full(struct queue *q, const char *dir)
{
    static const char *const rcpts[] = {"a@example.net", "b@example.net"};
    static char data[20000];
    struct queue_new_message m = {.from = "s@example.com",
                                  .rcpts = rcpts,
                                  .n_rcpts = 2,
                                  .data = data,
                                  .len = sizeof(data),
                                  .subject = "full"};
    const struct queue_new_message *batch[5] = {&m, &m, &m, &m, &m};
    struct queue_message_info *list = NULL;
    struct queue_filter f = {.state = -1, .limit = 1000};
    struct mo_error err;
    int64_t ids[200];
    int64_t batch_ids[5];
    size_t ok = 0, n = 0;

    memset(data, 'x', sizeof(data));
    for (;;) {
        assert_true(ok < ARRAY_LEN(ids));
        mo_error_clear(&err);
        if (queue_add(q, &m, &ids[ok], &err) != 0)
            break;
        ok++;
    }
    assert_int_equal(err.category, MO_ERR_STORAGE);
    assert_non_null(strstr(err.text, "the disk is full"));
    assert_non_null(strstr(err.text, "NOT queued"));
    assert_true(ok > 0);
    /* A batch fails whole too. */
    assert_int_equal(queue_add_batch(q, batch, 5, batch_ids, &err), -1);
    assert_int_equal(err.category, MO_ERR_STORAGE);
    assert_int_equal(batch_ids[0], 0);

    /* Nothing half-written: exactly the acknowledged messages, each complete. */
    assert_int_equal(queue_list(q, &f, &list, &n, &err), 0);
    assert_int_equal(n, ok);
    for (size_t i = 0; i < n; i++) {
        char *got = NULL;
        size_t len = 0;

        assert_int_equal(list[i].id, ids[ok - 1 - i]);
        assert_int_equal(list[i].n_rcpts, 2);
        assert_int_equal(queue_get_data(q, list[i].id, &got, &len, &err), 0);
        assert_int_equal(len, sizeof(data));
        free(got);
        queue_message_info_clear(&list[i]);
    }
    free(list);
    assert_int_equal(db_count(dir, "SELECT count(*) FROM recipients"), 2 * (long)ok);
    assert_int_equal(db_count(dir, "SELECT count(*) FROM message_data"), (long)ok);
    assert_int_equal(db_count(dir, "SELECT sum(n) FROM queue_state_counts"), (long)ok);
}

static void
test_disk_full_tmpfs(void **state)
{
    char dir[300];
    struct queue *q;
    (void)state;

    snprintf(dir, sizeof(dir), "%s/tiny", home);
    assert_int_equal(mkdir(dir, 0700), 0);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=300k") != 0) {
        print_message("mount tmpfs: %s; the max_page_count test covers this\n", strerror(errno));
        skip();
    }
    q = open_queue(dir);
    fill_until_full(q, dir);
    queue_close(q);
    /* Reopened, the queue still has exactly what it acknowledged. */
    q = open_queue(dir);
    {
        struct queue_counts c;
        struct mo_error err;
        assert_int_equal(queue_count(q, &c, &err), 0);
        assert_true(c.by_state[QUEUE_QUEUED] > 0);
    }
    queue_close(q);
    assert_int_equal(umount2(dir, MNT_DETACH), 0);
}

static void
test_disk_full_max_page_count(void **state)
{
    struct queue *q = open_queue(home);
    char sql[100];
    long pages = db_count(home, "PRAGMA page_count");
    (void)state;

    assert_true(pages > 0);
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %ld", pages + 60);
    assert_int_equal(queue_test_exec(q, sql), SQLITE_OK);
    fill_until_full(q, home);
    queue_close(q);
}

static void
test_read_only_folder(void **state)
{
    char dir[300];
    struct queue *q = NULL;
    struct mo_error err;
    (void)state;

    snprintf(dir, sizeof(dir), "%s/ro", home);
    assert_int_equal(mkdir(dir, 0700), 0);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0)
        skip();
    q = open_queue(dir);
    add_message(q, NULL, 1, "before");
    queue_close(q);
    assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=2m"), 0);
    assert_int_equal(queue_open(dir, NULL, &q, &err), -1);
    assert_null(q);
    assert_int_equal(err.category, MO_ERR_STORAGE);
    assert_string_equal(err.field, "home");
    assert_non_null(strstr(err.text, "read-only"));
    assert_int_equal(umount2(dir, MNT_DETACH), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_delay_ranges),
        cmocka_unit_test_setup_teardown(test_add_validation, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_add_get_round_trip, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_add_batch_all_or_none, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_finish_transitions, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_finish_records_refusal_and_resends_pending_only,
                                        make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_claim_due_times_and_order, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_claim_accounts, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_claim_lease_recover_grace, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_release, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_retry_and_drop_rules, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_retry_all_deferred, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_drop_removes_everything, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_list_search_paging, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_counts, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_next_due, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_schema_1_is_migrated, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_committer_group_commit, make_home, remove_home),
        cmocka_unit_test(test_committer_start_fails_cleanly),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_and_claimers, make_home,
                                        remove_home),
        cmocka_unit_test_setup_teardown(test_crash_during_claim_becomes_uncertain, make_home,
                                        remove_home),
        cmocka_unit_test_setup_teardown(test_kill_during_add_loses_nothing_acknowledged, make_home,
                                        remove_home),
        cmocka_unit_test_setup_teardown(test_disk_full_tmpfs, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_disk_full_max_page_count, make_home, remove_home),
        cmocka_unit_test_setup_teardown(test_read_only_folder, make_home, remove_home),
    };

    mo_log_init(MO_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
