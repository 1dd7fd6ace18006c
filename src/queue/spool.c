/*
 * spool.c - queueing without the database: programs that may not open
 * home/mailout.db (PHP's mail() running as the web server's user, cron jobs
 * of other users) leave their message as a file in home/spool; the service,
 * or `mailout queue run`, moves the files into the queue.
 *
 * Why: the web server's user must be able to queue mail without reading the
 * account's password or the database (which holds every queued message).
 *
 * Folders and permissions (the choice, and why):
 *   home             0711  owner only; others may pass through, not list.
 *   home/spool       0711  owner only.
 *   home/spool/tmp   1733  anyone may create files here, nobody else may list
 *   home/spool/new   1733  them; the sticky bit keeps users from renaming or
 *                          deleting each other's files.
 *   home/spool/cur   0700  files being imported (owner only).
 *   home/spool/bad   0700  files that could not be imported, kept for a look.
 *   spool files      0644  owned by their writer. The owner of the data folder
 *                          must read files written by www-data without being
 *                          root, and a 0600 file would not let it. 0644 is safe
 *                          here because nobody but the owner can list tmp/ or
 *                          new/, and a name holds 128 random bits: a file can
 *                          only be opened by one who knows its name, i.e. its
 *                          writer. (A group setup - spool folders 1730 with
 *                          group www-data - narrows who may queue at all; the
 *                          files work the same.)
 * The importer trusts nothing in a spool file: it opens it without following
 * symbolic links, refuses anything but a regular file with one link (a hard
 * link to someone else's file would otherwise be read with the owner's
 * rights), checks the size and a SHA-256 of the message, and parses every
 * line; whatever fails goes to spool/bad with a log line.
 *
 * Writing (queue_spool_write), durable when it returns:
 *   tmp/NAME created O_EXCL, written, fsync'd; renamed to new/NAME; new/ is
 *   fsync'd (a writer other than the owner cannot open new/ to fsync it, as
 *   it may not read the folder: then syncfs() on the file makes the rename
 *   durable instead).
 * NAME is "SSSSSSSSSSS.UUUUUU.PID.RANDOM": seconds and microseconds first so
 * that names sort oldest first, RANDOM 32 hex digits (OpenSSL's RAND_bytes).
 *
 * File format, version 1: text lines "key value" (values %XX-escaped for
 * '%', control characters and DEL), an empty line, then exactly `size`
 * bytes of the message:
 *   mailout-spool 1
 *   account NAME         (empty: choose by the sender when importing)
 *   from ADDRESS         (the envelope sender asked for, -f or From; may be empty)
 *   rcpt ADDRESS         (once per recipient; a bare local name such as
 *                         "root" goes to the account's own address)
 *   source sendmail
 *   smtputf8 0|1
 *   message-id ID        (optional)
 *   subject TEXT         (optional, for the log)
 *   header-from TEXT     (optional, for the log)
 *   size N
 *   sha256 HEX
 *
 * Importing (queue_spool_import), under an exclusive lock on spool/lock so
 * that the service and `mailout queue run` never import the same file:
 *   1. files left in cur/ by an import that was interrupted: each may already
 *      be in the queue (the crash came between the commit and the unlink);
 *      one that is (same Message-ID and size) is only deleted;
 *   2. files in new/, oldest first: renamed to cur/ (claimed), read, checked,
 *      completed with the account's sender (From and Message-ID when
 *      missing, bare local recipients), queued with queue_add (committed),
 *      then deleted. A file for which no account exists yet goes back to new/
 *      and waits (nothing accepted is lost);
 *   3. files in tmp/ older than a day (a writer died) go to bad/.
 * The Message-ID added at import is RANDOM@domain, from the file's name, so
 * an import repeated after a crash makes the same id and step 1 finds it.
 *
 * Leaves out: quotas per writer (any local user may queue, as with any
 * sendmail), batching imports into one transaction (one commit per file).
 */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "account/account.h"
#include "mime/mime.h"

#define SPOOL_MAGIC "mailout-spool 1"
#define SPOOL_RANDOM_BYTES 16
#define SPOOL_NAME_MAX 96
#define SPOOL_PATH_MAX 4096
#define SPOOL_FILE_MAX ((size_t)160 * 1024 * 1024) /* message + envelope; queue_add has its own */
#define SPOOL_HEADER_MAX ((size_t)16 * 1024 * 1024)
#define SPOOL_TMP_MAX_AGE_S (24 * 3600)
#define SPOOL_MAX_RCPTS 100000

/* ---- paths and folders ---------------------------------------------------- */

static int
spool_path(char *out, size_t size, const char *home, const char *sub, const char *name,
           struct mo_error *err)
{
    int n;

    if (name != NULL)
        n = snprintf(out, size, "%s/spool/%s/%s", home, sub, name);
    else if (sub != NULL)
        n = snprintf(out, size, "%s/spool/%s", home, sub);
    else
        n = snprintf(out, size, "%s/spool", home);
    if (n < 0 || (size_t)n >= size) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
        return -1;
    }
    return 0;
}

/* A STORAGE error in plain words for errno e while doing what on path. */
static void
spool_errno_error(struct mo_error *err, int e, const char *what, const char *path)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        mo_error_set(err, MO_ERR_STORAGE, NULL, "the disk is full (%s %s)", what, path);
        if (err != NULL)
            err->temporary = true; /* free some space and it works again */
        break;
    case EACCES:
    case EPERM:
        mo_error_set(err, MO_ERR_STORAGE, "home",
                     "no permission (%s %s): the data folder's owner must open the spool to "
                     "this user (see the README: PHP and cron)",
                     what, path);
        break;
    case EROFS:
        mo_error_set(err, MO_ERR_STORAGE, "home", "the file system is read-only (%s %s)", what,
                     path);
        break;
    case ENOENT:
        mo_error_set(err, MO_ERR_STORAGE, "home",
                     "%s is missing (%s): the data folder's owner creates the spool with "
                     "`mailout queue run` or the service",
                     path, what);
        break;
    case EIO:
        mo_error_set(err, MO_ERR_STORAGE, NULL, "the disk reported an I/O error (%s %s)", what,
                     path);
        break;
    default:
        mo_error_set(err, MO_ERR_STORAGE, NULL, "cannot %s %s: %s", what, path, strerror(e));
        break;
    }
}

/* Creates dir with mode (exactly, whatever the umask) unless it exists. */
static int
spool_mkdir(const char *path, mode_t mode, const struct stat *home_st, struct mo_error *err)
{
    if (mkdir(path, mode) != 0) {
        if (errno == EEXIST)
            return 0;
        spool_errno_error(err, errno, "create the folder", path);
        return -1;
    }
    if (chmod(path, mode) != 0) {
        spool_errno_error(err, errno, "set the mode of", path);
        return -1;
    }
    /* root importing for a data folder owned by someone else: the folder is theirs */
    if (geteuid() == 0 && home_st->st_uid != 0 &&
        chown(path, home_st->st_uid, home_st->st_gid) != 0) {
        spool_errno_error(err, errno, "give the folder to the data folder's owner:", path);
        return -1;
    }
    return 0;
}

static int
spool_make_folders(const char *home, struct stat *home_st, struct mo_error *err)
{
    static const struct {
        const char *sub;
        mode_t mode;
    } dirs[] = {{NULL, 0711}, {"tmp", 01733}, {"new", 01733}, {"cur", 0700}, {"bad", 0700}};
    char path[SPOOL_PATH_MAX];

    if (stat(home, home_st) != 0) {
        spool_errno_error(err, errno, "open the data folder", home);
        return -1;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (spool_path(path, sizeof(path), home, dirs[i].sub, NULL, err) != 0 ||
            spool_mkdir(path, dirs[i].mode, home_st, err) != 0)
            return -1;
    return 0;
}

static int
fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- the text of a spool file ---------------------------------------------- */

static int
put_value(struct mo_buf *b, const char *key, const char *value, struct mo_error *err)
{
    static const char hex[] = "0123456789ABCDEF";

    if (mo_buf_append_str(b, key, err) != 0 || mo_buf_append(b, " ", 1, err) != 0)
        return -1;
    for (const char *p = value != NULL ? value : ""; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '%' || c < 0x20 || c == 0x7f) {
            char esc[3] = {'%', hex[c >> 4], hex[c & 0x0f]};

            if (mo_buf_append(b, esc, 3, err) != 0)
                return -1;
        } else if (mo_buf_append(b, p, 1, err) != 0) {
            return -1;
        }
    }
    return mo_buf_append(b, "\n", 1, err);
}

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Undoes put_value's escaping in place; false on a bad escape or a NUL. */
static bool
unescape(char *s)
{
    char *w = s;

    for (char *r = s; *r != '\0'; r++) {
        if (*r == '%') {
            int hi = hex_digit(r[1]);
            int lo = hi >= 0 ? hex_digit(r[2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return true;
}

static int
sha256_hex(const char *data, size_t len, char out[65], struct mo_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed");
        return -1;
    }
    for (unsigned i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[64] = '\0';
    return 0;
}

static bool
has_control(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int
spool_header(const struct queue_new_message *m, struct mo_buf *b, struct mo_error *err)
{
    char sha[65];

    if (sha256_hex(m->data, m->len, sha, err) != 0 ||
        mo_buf_append_str(b, SPOOL_MAGIC "\n", err) != 0 ||
        put_value(b, "account", m->account, err) != 0 || put_value(b, "from", m->from, err) != 0)
        return -1;
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (put_value(b, "rcpt", m->rcpts[i], err) != 0)
            return -1;
    if (put_value(b, "source", m->source != NULL ? m->source : "sendmail", err) != 0 ||
        put_value(b, "smtputf8", m->needs_smtputf8 ? "1" : "0", err) != 0 ||
        (m->message_id != NULL && put_value(b, "message-id", m->message_id, err) != 0) ||
        (m->subject != NULL && put_value(b, "subject", m->subject, err) != 0) ||
        (m->header_from != NULL && put_value(b, "header-from", m->header_from, err) != 0) ||
        mo_buf_appendf(b, err, "size %zu\nsha256 %s\n\n", m->len, sha) != 0)
        return -1;
    return 0;
}

/* ---- writing ---------------------------------------------------------------- */

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
spool_new_name(char *out, size_t size, struct mo_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[SPOOL_RANDOM_BYTES];
    char rhex[2 * SPOOL_RANDOM_BYTES + 1];
    struct timeval tv;
    int n;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the random generator failed");
        return -1;
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        rhex[2 * i] = hex[rnd[i] >> 4];
        rhex[2 * i + 1] = hex[rnd[i] & 0x0f];
    }
    rhex[sizeof(rhex) - 1] = '\0';
    gettimeofday(&tv, NULL);
    n = snprintf(out, size, "%011lld.%06ld.%ld.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                 (long)getpid(), rhex);
    if (n < 0 || (size_t)n >= size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the spool file name does not fit");
        return -1;
    }
    return 0;
}

int
queue_spool_write(const char *home, const struct queue_new_message *m, char *name_out,
                  size_t name_size, struct mo_error *err)
{
    struct mo_buf head;
    char name[SPOOL_NAME_MAX];
    char tmp_path[SPOOL_PATH_MAX];
    char new_path[SPOOL_PATH_MAX];
    char new_dir[SPOOL_PATH_MAX];
    bool created = false;
    bool renamed = false;
    int fd = -1;
    int rc = -1;

    mo_buf_init(&head, SPOOL_HEADER_MAX);
    if (m == NULL || m->data == NULL || m->len == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "message", "the message is empty");
        goto out;
    }
    if (m->n_rcpts == 0) {
        mo_error_set(err, MO_ERR_CONFIG, "recipient", "the message has no recipient");
        goto out;
    }
    if (m->n_rcpts > SPOOL_MAX_RCPTS) {
        mo_error_set(err, MO_ERR_CONFIG, "recipient", "more than %d recipients", SPOOL_MAX_RCPTS);
        goto out;
    }
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (m->rcpts[i] == NULL || m->rcpts[i][0] == '\0' || has_control(m->rcpts[i])) {
            mo_error_set(err, MO_ERR_CONFIG, "recipient",
                         "recipient %zu is empty or holds a control character", i + 1);
            goto out;
        }
    }
    if (has_control(m->from) || has_control(m->account)) {
        mo_error_set(err, MO_ERR_CONFIG, "sender", "the sender holds a control character");
        goto out;
    }
    if (spool_header(m, &head, err) != 0 || spool_new_name(name, sizeof(name), err) != 0 ||
        spool_path(tmp_path, sizeof(tmp_path), home, "tmp", name, err) != 0 ||
        spool_path(new_path, sizeof(new_path), home, "new", name, err) != 0 ||
        spool_path(new_dir, sizeof(new_dir), home, "new", NULL, err) != 0)
        goto out;
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        spool_errno_error(err, errno, "create a file in", tmp_path);
        goto out;
    }
    created = true;
    /* 0644 whatever the writer's umask: the data folder's owner must read it */
    if (fchmod(fd, 0644) != 0) {
        spool_errno_error(err, errno, "set the mode of", tmp_path);
        goto out;
    }
    if (write_all(fd, head.data, head.len) != 0 || write_all(fd, m->data, m->len) != 0) {
        spool_errno_error(err, errno, "write", tmp_path);
        goto out;
    }
    if (fsync(fd) != 0) {
        spool_errno_error(err, errno, "write (fsync)", tmp_path);
        goto out;
    }
    if (rename(tmp_path, new_path) != 0) {
        spool_errno_error(err, errno, "move the file into", new_dir);
        goto out;
    }
    renamed = true;
    /* The rename must be on disk too. Only a reader of new/ can fsync it;
     * others (new/ is not readable for them) flush the file system instead. */
    if (fsync_dir(new_dir) != 0 && (errno != EACCES || syncfs(fd) != 0)) {
        spool_errno_error(err, errno, "sync the folder", new_dir);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        spool_errno_error(err, errno, "close", new_path);
        goto out;
    }
    fd = -1;
    if (name_out != NULL && name_size > 0)
        snprintf(name_out, name_size, "%s", name);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && created)
        (void)unlink(renamed ? new_path : tmp_path); /* not acknowledged: not queued */
    mo_buf_free(&head);
    return rc;
}

/* ---- reading a spool file ---------------------------------------------------- */

struct spool_file {
    char *account;
    char *from;
    char **rcpts;
    size_t n_rcpts;
    char *source;
    char *message_id;
    char *subject;
    char *header_from;
    bool smtputf8;
    const char *data; /* into buf */
    size_t len;
    struct mo_buf buf;
};

static void
spool_file_clear(struct spool_file *f)
{
    free(f->account);
    free(f->from);
    for (size_t i = 0; i < f->n_rcpts; i++)
        free(f->rcpts[i]);
    free(f->rcpts);
    free(f->source);
    free(f->message_id);
    free(f->subject);
    free(f->header_from);
    mo_buf_free(&f->buf);
    memset(f, 0, sizeof(*f));
}

/* Sets *slot to a copy of value unless it was set already (a key given twice is bad). */
static int
set_once(char **slot, const char *value, char *why, size_t why_size, const char *key)
{
    if (*slot != NULL) {
        snprintf(why, why_size, "\"%s\" is given twice", key);
        return -1;
    }
    *slot = mo_strdup(value);
    if (*slot == NULL) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    return 0;
}

/*
 * Parses f->buf. Returns 0, or -1 with why filled (the file is bad) or -2
 * (out of memory).
 */
static int
spool_parse(struct spool_file *f, char *why, size_t why_size)
{
    char *p = f->buf.data;
    char *end = p + f->buf.len;
    bool have_size = false;
    bool have_sha = false;
    bool have_utf8 = false;
    size_t size = 0;
    char sha[65] = "";
    char got[65];
    bool first = true;

    for (;;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *sp;
        char *key;
        char *value;

        if (nl == NULL) {
            snprintf(why, why_size, "the envelope is cut short (no empty line)");
            return -1;
        }
        *nl = '\0';
        if (first) {
            if (strcmp(p, SPOOL_MAGIC) != 0) {
                snprintf(why, why_size, "not a spool file of version 1");
                return -1;
            }
            first = false;
            p = nl + 1;
            continue;
        }
        if (*p == '\0') {
            p = nl + 1;
            break;
        }
        key = p;
        sp = strchr(p, ' ');
        if (sp == NULL) {
            snprintf(why, why_size, "a line of the envelope has no value");
            return -1;
        }
        *sp = '\0';
        value = sp + 1;
        p = nl + 1;
        if (!unescape(value)) {
            snprintf(why, why_size, "a bad escape in \"%s\"", key);
            return -1;
        }
        if (strcmp(key, "rcpt") == 0) {
            char **r;

            if (value[0] == '\0' || f->n_rcpts >= SPOOL_MAX_RCPTS) {
                snprintf(why, why_size, "an empty recipient, or too many");
                return -1;
            }
            r = realloc(f->rcpts, (f->n_rcpts + 1) * sizeof(*r));
            if (r == NULL)
                return -2;
            f->rcpts = r;
            if ((r[f->n_rcpts] = mo_strdup(value)) == NULL)
                return -2;
            f->n_rcpts++;
        } else if (strcmp(key, "account") == 0) {
            if (set_once(&f->account, value, why, why_size, key) != 0)
                return -1;
        } else if (strcmp(key, "from") == 0) {
            if (set_once(&f->from, value, why, why_size, key) != 0)
                return -1;
        } else if (strcmp(key, "source") == 0) {
            if (set_once(&f->source, value, why, why_size, key) != 0)
                return -1;
        } else if (strcmp(key, "message-id") == 0) {
            if (set_once(&f->message_id, value, why, why_size, key) != 0)
                return -1;
        } else if (strcmp(key, "subject") == 0) {
            if (set_once(&f->subject, value, why, why_size, key) != 0)
                return -1;
        } else if (strcmp(key, "header-from") == 0) {
            if (set_once(&f->header_from, value, why, why_size, key) != 0)
                return -1;
        } else if (strcmp(key, "smtputf8") == 0) {
            if (have_utf8 || (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)) {
                snprintf(why, why_size, "a bad smtputf8 line");
                return -1;
            }
            have_utf8 = true;
            f->smtputf8 = value[0] == '1';
        } else if (strcmp(key, "size") == 0) {
            long v;

            if (have_size || mo_parse_long(value, 1, (long)SPOOL_FILE_MAX, &v) != 0) {
                snprintf(why, why_size, "a bad size line");
                return -1;
            }
            have_size = true;
            size = (size_t)v;
        } else if (strcmp(key, "sha256") == 0) {
            if (have_sha || strlen(value) != 64) {
                snprintf(why, why_size, "a bad sha256 line");
                return -1;
            }
            have_sha = true;
            memcpy(sha, value, 65);
        } else {
            snprintf(why, why_size, "an unknown line \"%.40s\"", key);
            return -1;
        }
    }
    if (!have_size || !have_sha || f->n_rcpts == 0 || f->from == NULL) {
        snprintf(why, why_size, "the envelope lacks size, sha256, from or a recipient");
        return -1;
    }
    if ((size_t)(end - p) != size) {
        snprintf(why, why_size, "the message is %zu bytes, the envelope says %zu (cut short?)",
                 (size_t)(end - p), size);
        return -1;
    }
    f->data = p;
    f->len = size;
    if (sha256_hex(f->data, f->len, got, NULL) != 0 || strcasecmp(got, sha) != 0) {
        snprintf(why, why_size, "the message does not match its SHA-256 (damaged)");
        return -1;
    }
    return 0;
}

/*
 * Reads cur/NAME into f. 0 ok; -1 bad (why filled); -3 vanished (ENOENT);
 * -2 STORAGE trouble (err).
 */
static int
spool_read(const char *path, struct spool_file *f, char *why, size_t why_size, struct mo_error *err)
{
    struct stat st;
    size_t got = 0;
    int fd;
    int rc = -1;

    memset(f, 0, sizeof(*f));
    mo_buf_init(&f->buf, SPOOL_FILE_MAX);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return -3;
        /* ELOOP: a symbolic link, which a writer may not slip in */
        snprintf(why, why_size, "cannot open it: %s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "not a regular file");
        goto out;
    }
    if (st.st_nlink != 1) {
        snprintf(why, why_size, "it has %lu links (a hard link to another file?)",
                 (unsigned long)st.st_nlink);
        goto out;
    }
    if ((size_t)st.st_size > SPOOL_FILE_MAX || st.st_size == 0) {
        snprintf(why, why_size, "its size (%lld bytes) is out of bounds", (long long)st.st_size);
        goto out;
    }
    if (mo_buf_reserve(&f->buf, (size_t)st.st_size, err) != 0) {
        rc = -2;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, f->buf.data + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            spool_errno_error(err, errno, "read", path);
            rc = -2;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    f->buf.len = got;
    f->buf.data[got] = '\0';
    rc = spool_parse(f, why, why_size);
    if (rc == -2)
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
out:
    close(fd);
    return rc;
}

/* ---- importing ------------------------------------------------------------------ */

struct spool_import {
    struct queue *q;
    const char *home;
    struct account_store *store;
    bool store_failed;
    size_t imported;
};

/* Whether a is one of the addresses an account sends as (case-insensitive). */
/*
 * The account for a message: named, or the one that sends as hint
 * (account_store_find_sender). 1 found (*out filled, without the password),
 * 0 none, -1 STORAGE.
 */
static int
spool_find_account(struct spool_import *im, const char *name, const char *hint,
                   struct account_settings *out, bool *hint_matches, struct mo_error *err)
{
    *hint_matches = false;
    memset(out, 0, sizeof(*out));
    if (im->store == NULL && !im->store_failed &&
        account_store_open(im->home, &im->store, err) != 0) {
        im->store_failed = true;
        return -1;
    }
    if (im->store == NULL)
        return -1;
    if (name != NULL && name[0] != '\0') {
        if (account_store_get(im->store, name, false, out, NULL) != 0)
            return 0;
        *hint_matches = account_sends_as(out, hint);
        return 1;
    }
    return account_store_find_sender(im->store, hint, out, hint_matches, err);
}

/* Moves cur/NAME (or another folder's) into bad/ and says why in the log. */
static void
spool_set_aside(const char *home, const char *from_sub, const char *name, const char *why)
{
    char from[SPOOL_PATH_MAX];
    char to[SPOOL_PATH_MAX];

    if (spool_path(from, sizeof(from), home, from_sub, name, NULL) != 0 ||
        spool_path(to, sizeof(to), home, "bad", name, NULL) != 0)
        return;
    if (rename(from, to) != 0) {
        mo_log(MO_LOG_ERROR, "spool: %s/%s could not be set aside (%s): %s", from_sub, name,
               strerror(errno), why);
        (void)unlink(from); /* never import it again */
        return;
    }
    mo_log(MO_LOG_WARN, "spool: %s moved to %s/spool/bad: %s", name, home, why);
}

/* The random part of a spool file name (after the last '.'), or NULL. */
static const char *
name_token(const char *name)
{
    const char *dot = strrchr(name, '.');

    if (dot == NULL || strlen(dot + 1) != 2 * SPOOL_RANDOM_BYTES ||
        strspn(dot + 1, "0123456789abcdef") != 2 * SPOOL_RANDOM_BYTES)
        return NULL;
    return dot + 1;
}

/* Whether the queue already holds this message (an import cut short after its commit). */
static int
already_queued(struct queue *q, const char *message_id, size_t len, bool *yes, struct mo_error *err)
{
    struct queue_filter filter;
    struct queue_message_info *list = NULL;
    size_t n = 0;

    *yes = false;
    if (message_id == NULL || message_id[0] == '\0')
        return 0;
    memset(&filter, 0, sizeof(filter));
    filter.state = -1;
    filter.search = message_id;
    filter.limit = 50;
    if (queue_list(q, &filter, &list, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (list[i].message_id != NULL && strcmp(list[i].message_id, message_id) == 0 &&
            list[i].size == len)
            *yes = true;
        queue_message_info_clear(&list[i]);
    }
    free(list);
    return 0;
}

enum import_result {
    IMPORT_DONE,    /* queued (or found queued) and deleted */
    IMPORT_BAD,     /* set aside */
    IMPORT_WAIT,    /* no account yet: back to new/ */
    IMPORT_GONE,    /* another importer took it */
    IMPORT_STORAGE, /* stop: err filled */
};

/* The envelope and message of one spool file, completed with the account. */
static enum import_result
import_one(struct spool_import *im, const char *name, bool maybe_queued, struct mo_error *err)
{
    struct spool_file f;
    struct account_settings acct;
    struct mime_address sender;
    struct mime_prepare_options opt;
    struct mime_prepared info;
    struct queue_new_message m;
    struct mo_buf out;
    struct mo_error perr;
    char path[SPOOL_PATH_MAX];
    char why[MO_ERROR_TEXT_MAX + 256] = "";
    char sender_env[MIME_ADDRESS_MAX + 1];
    char message_id[MIME_ADDRESS_MAX + 64];
    const char **rcpts = NULL;
    size_t n_rcpts = 0;
    const char *token = name_token(name);
    bool hint_matches = false;
    bool utf8 = false;
    int found;
    int r;
    enum import_result result = IMPORT_BAD;

    memset(&acct, 0, sizeof(acct));
    memset(&sender, 0, sizeof(sender));
    memset(&info, 0, sizeof(info));
    memset(&f, 0, sizeof(f));
    mo_buf_init(&out, 1);
    if (spool_path(path, sizeof(path), im->home, "cur", name, err) != 0)
        return IMPORT_STORAGE;
    if (token == NULL) {
        spool_set_aside(im->home, "cur", name, "the file's name is not a spool name");
        return IMPORT_BAD;
    }
    r = spool_read(path, &f, why, sizeof(why), err);
    if (r == -3)
        return IMPORT_GONE;
    if (r == -2) {
        result = IMPORT_STORAGE;
        goto out;
    }
    if (r != 0) {
        spool_set_aside(im->home, "cur", name, why);
        goto out;
    }
    found = spool_find_account(im, f.account, f.from, &acct, &hint_matches, err);
    if (found < 0) {
        result = IMPORT_STORAGE;
        goto out;
    }
    if (found == 0) {
        char back[SPOOL_PATH_MAX];

        mo_log(MO_LOG_WARN,
               "spool: %s waits: no account \"%s\" (set one up with `mailout account set`)", name,
               f.account != NULL && f.account[0] ? f.account : "default");
        if (spool_path(back, sizeof(back), im->home, "new", name, err) != 0 ||
            rename(path, back) != 0) {
            mo_error_set(err, MO_ERR_STORAGE, NULL, "cannot move %s back to spool/new", name);
            result = IMPORT_STORAGE;
            goto out;
        }
        result = IMPORT_WAIT;
        goto out;
    }
    {
        const char *s = acct.sender != NULL ? acct.sender : acct.email;

        if (mime_address_parse(s, "sender", &sender, &perr) != 0 ||
            mime_address_envelope(&sender, sender_env, sizeof(sender_env), &perr) != 0) {
            snprintf(why, sizeof(why), "the account \"%.200s\" has no usable sender: %s", acct.name,
                     perr.text);
            spool_set_aside(im->home, "cur", name, why);
            goto out;
        }
        if (acct.sender_name != NULL && acct.sender_name[0] != '\0') {
            free(sender.display_name);
            sender.display_name = mo_strdup(acct.sender_name);
        }
    }
    snprintf(message_id, sizeof(message_id), "%s@%s", token, sender.domain_ascii);
    memset(&opt, 0, sizeof(opt));
    opt.from = &sender;
    opt.add_date = true;
    opt.add_message_id = true;
    opt.message_id = sender.domain_ascii[0] != '[' ? message_id : NULL;
    opt.remove_bcc = true;
    opt.encode_8bit = true;
    mo_buf_init(&out, 2 * f.len + 64 * 1024);
    if (mime_message_prepare(f.data, f.len, &opt, &out, &info, &perr) != 0) {
        if (perr.category == MO_ERR_INTERNAL && strstr(perr.text, "memory") != NULL) {
            *err = perr;
            result = IMPORT_STORAGE;
            goto out;
        }
        snprintf(why, sizeof(why), "the message cannot be prepared: %s", perr.text);
        spool_set_aside(im->home, "cur", name, why);
        goto out;
    }
    /* Bare local names ("root") go to the account's own address. */
    rcpts = calloc(f.n_rcpts, sizeof(*rcpts));
    if (rcpts == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        result = IMPORT_STORAGE;
        goto out;
    }
    for (size_t i = 0; i < f.n_rcpts; i++) {
        const char *rc = strchr(f.rcpts[i], '@') != NULL ? f.rcpts[i] : acct.email;
        bool dup = false;

        for (size_t k = 0; k < n_rcpts && !dup; k++)
            dup = strcasecmp(rcpts[k], rc) == 0;
        if (!dup && rc != NULL)
            rcpts[n_rcpts++] = rc;
    }
    utf8 = f.smtputf8 || sender.has_utf8_local;
    memset(&m, 0, sizeof(m));
    m.account = acct.name;
    m.from = hint_matches && f.from[0] != '\0' ? f.from : sender_env;
    m.rcpts = rcpts;
    m.n_rcpts = n_rcpts;
    m.data = out.data;
    m.len = out.len;
    m.message_id = info.message_id[0] ? info.message_id : NULL;
    m.subject = info.subject;
    m.header_from = info.header_from;
    m.source = f.source != NULL ? f.source : "sendmail";
    m.needs_smtputf8 = utf8;
    if (maybe_queued) {
        bool yes = false;

        if (already_queued(im->q, m.message_id, m.len, &yes, err) != 0) {
            result = IMPORT_STORAGE;
            goto out;
        }
        if (yes) {
            (void)unlink(path);
            mo_log(MO_LOG_INFO, "spool: %s was queued before an interruption; removed", name);
            result = IMPORT_DONE;
            goto out;
        }
    }
    if (queue_add(im->q, &m, NULL, &perr) != 0) {
        if (perr.category == MO_ERR_CONFIG) {
            snprintf(why, sizeof(why), "the queue refused it: %s", perr.text);
            spool_set_aside(im->home, "cur", name, why);
            goto out;
        }
        *err = perr;
        result = IMPORT_STORAGE;
        goto out;
    }
    /* Committed. Deleting can fail without harm: step 1 of the next import finds it queued. */
    if (unlink(path) != 0)
        mo_log(MO_LOG_WARN, "spool: cannot remove %s after queueing it: %s", path, strerror(errno));
    im->imported++;
    result = IMPORT_DONE;
out:
    free(rcpts);
    mo_buf_free(&out);
    mime_prepared_clear(&info);
    mime_address_clear(&sender);
    account_settings_clear(&acct);
    spool_file_clear(&f);
    return result;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in home/spool/sub (no dot files), sorted. Caller frees each and the array. */
static int
list_names(const char *home, const char *sub, char ***out, size_t *n_out, struct mo_error *err)
{
    char path[SPOOL_PATH_MAX];
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (spool_path(path, sizeof(path), home, sub, NULL, err) != 0)
        return -1;
    d = opendir(path);
    if (d == NULL) {
        spool_errno_error(err, errno, "list", path);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 64;
            char **p = realloc(names, new_cap * sizeof(*p));

            if (p == NULL) {
                mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
                goto out;
            }
            names = p;
            cap = new_cap;
        }
        if ((names[n] = mo_strdup(e->d_name)) == NULL) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof(*names), name_cmp);
    *out = names;
    *n_out = n;
    names = NULL;
    n = 0;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static void
free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Writers that died between create and rename leave files in tmp/: after a day, to bad/. */
static void
sweep_tmp(const char *home)
{
    char **names = NULL;
    size_t n = 0;
    time_t now = time(NULL);

    if (list_names(home, "tmp", &names, &n, NULL) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char path[SPOOL_PATH_MAX];
        struct stat st;

        if (spool_path(path, sizeof(path), home, "tmp", names[i], NULL) != 0 ||
            lstat(path, &st) != 0 || now - st.st_mtime < SPOOL_TMP_MAX_AGE_S)
            continue;
        spool_set_aside(home, "tmp", names[i], "left unfinished in spool/tmp for over a day");
    }
    free_names(names, n);
}

/* Runs the files of one folder: cur/ (maybe queued already) or new/ (claimed first). */
static int
import_folder(struct spool_import *im, const char *sub, struct mo_error *err)
{
    char **names = NULL;
    size_t n = 0;
    int rc = -1;
    bool from_cur = strcmp(sub, "cur") == 0;

    if (list_names(im->home, sub, &names, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!from_cur) {
            char src[SPOOL_PATH_MAX];
            char dst[SPOOL_PATH_MAX];

            if (spool_path(src, sizeof(src), im->home, "new", names[i], err) != 0 ||
                spool_path(dst, sizeof(dst), im->home, "cur", names[i], err) != 0)
                goto out;
            if (rename(src, dst) != 0) {
                if (errno == ENOENT)
                    continue;
                spool_errno_error(err, errno, "claim", src);
                goto out;
            }
        }
        if (import_one(im, names[i], from_cur, err) == IMPORT_STORAGE)
            goto out;
    }
    rc = 0;
out:
    free_names(names, n);
    return rc;
}

int
queue_spool_import(struct queue *q, const char *home, size_t *n, struct mo_error *err)
{
    struct spool_import im;
    struct stat home_st;
    char lock_path[SPOOL_PATH_MAX];
    char cur_dir[SPOOL_PATH_MAX];
    int lock_fd = -1;
    int rc = -1;

    memset(&im, 0, sizeof(im));
    im.q = q;
    im.home = home;
    if (n != NULL)
        *n = 0;
    if (spool_make_folders(home, &home_st, err) != 0 ||
        spool_path(lock_path, sizeof(lock_path), home, "lock", NULL, err) != 0 ||
        spool_path(cur_dir, sizeof(cur_dir), home, "cur", NULL, err) != 0)
        goto out;
    /* home/spool/lock: only the owner may create files in home/spool */
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
        spool_errno_error(err, errno, "open the lock", lock_path);
        goto out;
    }
    /* made by root for a folder someone else owns: theirs, or their service cannot lock */
    if (geteuid() == 0 && home_st.st_uid != 0 &&
        fchown(lock_fd, home_st.st_uid, home_st.st_gid) != 0) {
        spool_errno_error(err, errno, "give the lock to the data folder's owner:", lock_path);
        goto out;
    }
    while (flock(lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            spool_errno_error(err, errno, "lock", lock_path);
            goto out;
        }
    }
    if (import_folder(&im, "cur", err) != 0 || import_folder(&im, "new", err) != 0)
        goto out;
    (void)fsync_dir(cur_dir); /* the unlinks; losing them is harmless (see step 1) */
    sweep_tmp(home);
    rc = 0;
out:
    if (n != NULL)
        *n = im.imported;
    if (lock_fd >= 0)
        close(lock_fd); /* releases the lock */
    account_store_close(im.store);
    return rc;
}
