/*
 * test_spool.c - the spool (src/queue/spool.c): a message written with
 * queue_spool_write is durable in home/spool/new and comes into the queue
 * with queue_spool_import, completed with the account's sender; nothing is
 * imported twice, not even after an import cut short between its commit and
 * its unlink; a damaged, cut, linked or foreign file goes to spool/bad and
 * never stops the import; a message for which no account exists yet waits;
 * a full disk is a temporary STORAGE error that leaves nothing behind.
 * Runs as root for the tmpfs test (skipped otherwise).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "account/account.h"
#include "mime/mime.h"
#include "queue/queue.h"

static char home[256];

/* ---- fixtures ----------------------------------------------------------------------- */

static void
put_account(const char *name, const char *email, const char *sender_name)
{
    struct account_store *st = NULL;
    struct account_settings s;
    struct mo_error err;

    memset(&s, 0, sizeof(s));
    s.name = (char *)name;
    s.email = (char *)email;
    s.sender_name = (char *)sender_name;
    s.host = (char *)"localhost";
    s.port = 2525;
    if (account_store_open(home, &st, &err) != 0 || account_store_put(st, &s, &err) != 0)
        fail_msg("account: %s", err.text);
    account_store_close(st);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/mailout-test-spool-XXXXXX");
    if (mkdtemp(home) == NULL)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    char cmd[300];

    (void)state;
    umount2(home, MNT_DETACH); /* the full-disk test's tmpfs, if it is still there */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

static struct queue *
open_queue(void)
{
    struct queue *q = NULL;
    struct mo_error err;

    if (queue_open(home, NULL, &q, &err) != 0)
        fail_msg("queue_open: %s", err.text);
    return q;
}

/* Imports and returns how many came in (the import itself must succeed). */
static size_t
import(struct queue *q)
{
    struct mo_error err;
    size_t n = 99;

    if (queue_spool_import(q, home, &n, &err) != 0)
        fail_msg("import: %s", err.text);
    return n;
}

/* The folders exist after an import with nothing to do (the owner makes them). */
static void
make_folders(void)
{
    struct queue *q = open_queue();

    assert_int_equal(import(q), 0);
    queue_close(q);
}

static const char *const RCPTS[] = {"bob@example.org", "root"};

static void
write_message(const char *from, const char *data, const char *const *rcpts, size_t n, char *name,
              size_t name_size)
{
    struct queue_new_message m;
    struct mo_error err;

    memset(&m, 0, sizeof(m));
    m.from = from;
    m.rcpts = rcpts;
    m.n_rcpts = n;
    m.data = data;
    m.len = strlen(data);
    m.source = "sendmail";
    if (queue_spool_write(home, &m, name, name_size, &err) != 0)
        fail_msg("spool write: %s", err.text);
}

static size_t
count_files(const char *sub)
{
    char cmd[400];
    FILE *p;
    size_t n = 0;
    char line[512];

    snprintf(cmd, sizeof(cmd), "ls -A '%s/spool/%s'", home, sub);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p) != NULL)
        n++;
    pclose(p);
    return n;
}

static size_t
queued_count(struct queue *q)
{
    struct queue_filter f;
    struct queue_message_info *list = NULL;
    size_t n = 0;
    struct mo_error err;

    memset(&f, 0, sizeof(f));
    f.state = -1;
    f.limit = 1000;
    if (queue_list(q, &f, &list, &n, &err) != 0)
        fail_msg("queue_list: %s", err.text);
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&list[i]);
    free(list);
    return n;
}

static void
file_path(char *out, size_t size, const char *sub, const char *name)
{
    snprintf(out, size, "%s/spool/%s/%s", home, sub, name);
}

static void
read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n + 1);
    assert_non_null(*data);
    assert_int_equal(fread(*data, 1, (size_t)n, f), (size_t)n);
    (*data)[n] = '\0';
    *len = (size_t)n;
    fclose(f);
}

static void
write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void
test_write_then_import(void **state)
{
    const char *msg = "To: Bob <bob@example.org>\r\nSubject: hi\r\n"
                      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nHello\r\n";
    char name[128];
    char path[512];
    struct stat st;
    struct queue *q;
    struct queue_message_info info;
    struct mo_error err;
    char *data = NULL;
    size_t len = 0;
    struct queue_filter f;
    struct queue_message_info *list = NULL;
    size_t n = 0;

    (void)state;
    put_account("default", "shop@example.test", "The Shop");
    make_folders();
    write_message("", msg, RCPTS, 2, name, sizeof(name));
    /* durable and readable by the owner, in new/ and nowhere else */
    file_path(path, sizeof(path), "new", name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(count_files("tmp"), 0);
    /* the folders: others may create in tmp/ and new/, never list them */
    file_path(path, sizeof(path), "new", "");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 01733);
    file_path(path, sizeof(path), "cur", "");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    q = open_queue();
    assert_int_equal(import(q), 1);
    assert_int_equal(count_files("new"), 0);
    assert_int_equal(count_files("cur"), 0);
    assert_int_equal(count_files("bad"), 0);
    memset(&f, 0, sizeof(f));
    f.state = -1;
    assert_int_equal(queue_list(q, &f, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(queue_get(q, list[0].id, false, &info, &err), 0);
    /* the queue spells the default account NULL */
    assert_true(info.account == NULL || strcmp(info.account, "default") == 0);
    assert_string_equal(info.from, "shop@example.test");
    assert_string_equal(info.source, "sendmail");
    assert_string_equal(info.subject, "hi");
    /* the Message-ID comes from the file's name: the same after a repeated import */
    assert_non_null(info.message_id);
    assert_int_equal(strncmp(info.message_id, strrchr(name, '.') + 1, 32), 0);
    assert_string_equal(info.message_id + 32, "@example.test");
    /* root went to the account's own address */
    assert_int_equal(info.n_rcpts, 2);
    assert_string_equal(info.rcpts[0].address, "bob@example.org");
    assert_string_equal(info.rcpts[1].address, "shop@example.test");
    assert_int_equal(queue_get_data(q, list[0].id, &data, &len, &err), 0);
    assert_non_null(strstr(data, "From: The Shop <shop@example.test>\r\n"));
    assert_non_null(strstr(data, "Message-ID: <"));
    assert_non_null(strstr(data, "Date: Mon, 1 Jan 2024"));
    assert_non_null(strstr(data, "\r\n\r\nHello\r\n"));
    free(data);
    queue_message_info_clear(&info);
    queue_message_info_clear(&list[0]);
    free(list);

    /* nothing is imported twice */
    assert_int_equal(import(q), 0);
    assert_int_equal(queued_count(q), 1);
    queue_close(q);
}

static void
test_interrupted_import_is_not_repeated(void **state)
{
    const char *msg = "To: bob@example.org\r\nSubject: crash\r\n\r\nbody\r\n";
    char name[128];
    char path[512];
    char cur[512];
    char *copy = NULL;
    size_t len = 0;
    struct queue *q;

    (void)state;
    put_account("default", "shop@example.test", NULL);
    make_folders();
    write_message("", msg, RCPTS, 1, name, sizeof(name));
    file_path(path, sizeof(path), "new", name);
    read_file(path, &copy, &len);
    q = open_queue();
    assert_int_equal(import(q), 1);
    /* the crash: committed, but the file was still in cur/ */
    file_path(cur, sizeof(cur), "cur", name);
    write_file(cur, copy, len);
    assert_int_equal(import(q), 0);
    assert_int_equal(queued_count(q), 1);
    assert_int_equal(count_files("cur"), 0);
    /* a file in cur/ that never reached the queue (the crash came before the commit) */
    write_message("", "To: bob@example.org\r\nSubject: other\r\n\r\nx\r\n", RCPTS, 1, name,
                  sizeof(name));
    file_path(path, sizeof(path), "new", name);
    file_path(cur, sizeof(cur), "cur", name);
    assert_int_equal(rename(path, cur), 0);
    assert_int_equal(import(q), 1);
    assert_int_equal(queued_count(q), 2);
    free(copy);
    queue_close(q);
}

static void
test_bad_files_are_set_aside(void **state)
{
    const char *msg = "To: bob@example.org\r\nSubject: s\r\n\r\nbody\r\n";
    char name[128];
    char path[512];
    char other[512];
    char *data = NULL;
    size_t len = 0;
    struct queue *q;

    (void)state;
    put_account("default", "shop@example.test", NULL);
    make_folders();
    /* cut short */
    write_message("", msg, RCPTS, 1, name, sizeof(name));
    file_path(path, sizeof(path), "new", name);
    assert_int_equal(truncate(path, 200), 0);
    /* damaged: one byte of the message changed */
    write_message("", msg, RCPTS, 1, name, sizeof(name));
    file_path(path, sizeof(path), "new", name);
    read_file(path, &data, &len);
    data[len - 3] ^= 1;
    write_file(path, data, len);
    free(data);
    /* not a spool file at all, under a spool name and under another name */
    file_path(path, sizeof(path), "new", "00000000001.000001.1.0123456789abcdef0123456789abcdef");
    write_file(path, "GET / HTTP/1.0\r\n\r\n", 18);
    file_path(path, sizeof(path), "new", "whatever");
    write_file(path, "x", 1);
    /* a symbolic link and a hard link to files the writer does not own */
    file_path(path, sizeof(path), "new", "00000000001.000002.1.0123456789abcdef0123456789abcde0");
    assert_int_equal(symlink("/etc/hostname", path), 0);
    write_message("", msg, RCPTS, 1, name, sizeof(name));
    file_path(path, sizeof(path), "new", name);
    snprintf(other, sizeof(other), "%s/elsewhere", home);
    assert_int_equal(link(path, other), 0);
    /* and one good file among them */
    write_message("", msg, RCPTS, 1, name, sizeof(name));

    q = open_queue();
    assert_int_equal(import(q), 1);
    assert_int_equal(queued_count(q), 1);
    assert_int_equal(count_files("bad"), 6);
    assert_int_equal(count_files("new"), 0);
    assert_int_equal(count_files("cur"), 0);
    /* the bad ones stay out: the next import has nothing to do */
    assert_int_equal(import(q), 0);
    queue_close(q);
}

static void
test_account_chosen_by_sender(void **state)
{
    const char *msg = "From: Other Shop <b@example.test>\r\nTo: bob@example.org\r\n\r\nx\r\n";
    char name[128];
    struct queue *q;
    struct queue_filter f;
    struct queue_message_info *list = NULL;
    size_t n = 0;
    struct mo_error err;

    (void)state;
    put_account("default", "a@example.test", NULL);
    put_account("second", "b@example.test", NULL);
    make_folders();
    write_message("b@example.test", msg, RCPTS, 1, name, sizeof(name));
    write_message("stranger@example.org", "To: bob@example.org\r\n\r\ny\r\n", RCPTS, 1, name,
                  sizeof(name));
    q = open_queue();
    assert_int_equal(import(q), 2);
    memset(&f, 0, sizeof(f));
    f.state = -1;
    assert_int_equal(queue_list(q, &f, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    /* newest first: the stranger's went to "default", with its sender */
    assert_true(list[0].account == NULL || strcmp(list[0].account, "default") == 0);
    assert_string_equal(list[0].from, "a@example.test");
    assert_string_equal(list[1].account, "second");
    assert_string_equal(list[1].from, "b@example.test");
    for (size_t i = 0; i < n; i++)
        queue_message_info_clear(&list[i]);
    free(list);
    queue_close(q);
}

static void
test_waits_for_an_account(void **state)
{
    char name[128];
    struct queue *q;

    (void)state;
    make_folders();
    write_message("", "To: bob@example.org\r\n\r\nx\r\n", RCPTS, 1, name, sizeof(name));
    q = open_queue();
    assert_int_equal(import(q), 0);
    assert_int_equal(count_files("new"), 1);
    assert_int_equal(count_files("bad"), 0);
    put_account("default", "shop@example.test", NULL);
    assert_int_equal(import(q), 1);
    assert_int_equal(count_files("new"), 0);
    queue_close(q);
}

static void
test_old_tmp_files_are_swept(void **state)
{
    char path[512];
    struct timeval old[2] = {{1000000000, 0}, {1000000000, 0}};
    struct queue *q;

    (void)state;
    put_account("default", "shop@example.test", NULL);
    make_folders();
    file_path(path, sizeof(path), "tmp", "00000000001.000001.1.0123456789abcdef0123456789abcdef");
    write_file(path, "half", 4);
    assert_int_equal(utimes(path, old), 0);
    file_path(path, sizeof(path), "tmp", "99999999999.000001.1.0123456789abcdef0123456789abcdef");
    write_file(path, "being written", 13);
    q = open_queue();
    assert_int_equal(import(q), 0);
    assert_int_equal(count_files("tmp"), 1);
    assert_int_equal(count_files("bad"), 1);
    queue_close(q);
}

static void
test_write_errors(void **state)
{
    struct queue_new_message m;
    struct mo_error err;
    const char *ctl[] = {"bob@example.org\r\nX"};

    (void)state;
    memset(&m, 0, sizeof(m));
    m.from = "";
    m.rcpts = RCPTS;
    m.n_rcpts = 1;
    m.data = "x";
    m.len = 1;
    /* no spool yet: the owner has not run the service or `queue run` */
    assert_int_equal(queue_spool_write(home, &m, NULL, 0, &err), -1);
    assert_int_equal(err.category, MO_ERR_STORAGE);
    assert_non_null(strstr(err.text, "queue run"));
    make_folders();
    m.n_rcpts = 0;
    assert_int_equal(queue_spool_write(home, &m, NULL, 0, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    m.rcpts = ctl;
    m.n_rcpts = 1;
    assert_int_equal(queue_spool_write(home, &m, NULL, 0, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    m.rcpts = RCPTS;
    m.len = 0;
    assert_int_equal(queue_spool_write(home, &m, NULL, 0, &err), -1);
    assert_int_equal(err.category, MO_ERR_CONFIG);
    assert_int_equal(count_files("tmp") + count_files("new"), 0);
}

static void
test_full_disk(void **state)
{
    struct queue_new_message m;
    struct mo_error err;
    char *big;
    char name[128];

    (void)state;
    if (geteuid() != 0 || mount("tmpfs", home, "tmpfs", 0, "size=256k") != 0) {
        skip(); /* needs root for a small tmpfs */
        return;
    }
    make_folders();
    big = malloc(1024 * 1024);
    assert_non_null(big);
    memset(big, 'a', 1024 * 1024 - 1);
    big[1024 * 1024 - 1] = '\0';
    memset(&m, 0, sizeof(m));
    m.from = "";
    m.rcpts = RCPTS;
    m.n_rcpts = 1;
    m.data = big;
    m.len = strlen(big);
    assert_int_equal(queue_spool_write(home, &m, name, sizeof(name), &err), -1);
    assert_int_equal(err.category, MO_ERR_STORAGE);
    assert_true(err.temporary);
    assert_non_null(strstr(err.text, "the disk is full"));
    /* nothing half-written stays behind */
    assert_int_equal(count_files("tmp") + count_files("new"), 0);
    free(big);
    assert_int_equal(umount2(home, MNT_DETACH), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_then_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_import_is_not_repeated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files_are_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_chosen_by_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_an_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_tmp_files_are_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
    };

    mo_log_init(MO_LOG_ERROR); /* the bad files' warnings are expected */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
