/*
 * sandbox.c - the local test inbox's files: certificate, password, port, the
 * fault switch and the letters. See sandbox.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sandbox/sandbox.h"

#include "mime/mime.h"

#define SANDBOX_LIST_MAX 10000
#define SANDBOX_HEADER_SCAN 65536

static const char *const fault_names[SANDBOX_FAULT_COUNT] = {
    [SANDBOX_FAULT_NONE] = "none",
    [SANDBOX_FAULT_AUTH_535] = "auth-535",
    [SANDBOX_FAULT_AUTH_534] = "auth-534",
    [SANDBOX_FAULT_GREETING_421] = "greeting-421",
    [SANDBOX_FAULT_DATA_550_545] = "data-550-545",
    [SANDBOX_FAULT_DROP_MID_DATA] = "drop-mid-data",
    [SANDBOX_FAULT_STALL] = "stall",
};

const char *
sandbox_fault_name(enum sandbox_fault_kind kind)
{
    return kind < SANDBOX_FAULT_COUNT ? fault_names[kind] : "none";
}

int
sandbox_fault_parse(const char *name, enum sandbox_fault_kind *out)
{
    if (name == NULL)
        return -1;
    if (strcmp(name, "off") == 0) {
        *out = SANDBOX_FAULT_NONE;
        return 0;
    }
    for (int k = 0; k < SANDBOX_FAULT_COUNT; k++)
        if (strcmp(name, fault_names[k]) == 0) {
            *out = (enum sandbox_fault_kind)k;
            return 0;
        }
    return -1;
}

int
sandbox_path(const char *home, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/sandbox%s%s", home, name[0] ? "/" : "", name);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Writes data to HOME/sandbox/name through a temporary file and a rename. */
static int
write_file(const char *home, const char *name, const void *data, size_t len, mode_t mode,
           struct mo_error *err)
{
    char path[4096];
    char tmp[4200];
    int fd = -1;
    int rc = -1;

    if (sandbox_path(home, name, path, sizeof(path)) != 0 ||
        snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        fd = -1;
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Reads a small file of HOME/sandbox into out (NUL-terminated, trailing space cut). */
static int
read_small(const char *home, const char *name, char *out, size_t size)
{
    char path[4096];
    FILE *f;
    size_t n;

    if (sandbox_path(home, name, path, sizeof(path)) != 0 || (f = fopen(path, "re")) == NULL)
        return -1;
    n = fread(out, 1, size - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    return 0;
}

static int
make_dir(const char *path, struct mo_error *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot make %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int
add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* A self-signed EC P-256 certificate for localhost and 127.0.0.1, good for 10 years. */
static int
make_certificate(const char *home, struct mo_error *err)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    X509_NAME *name = NULL;
    BIO *kb = NULL;
    BIO *cb = NULL;
    char *kdata = NULL;
    char *cdata = NULL;
    long klen;
    long clen;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int rc = -1;

    key = EVP_EC_gen("P-256");
    cert = X509_new();
    kb = BIO_new(BIO_s_mem());
    cb = BIO_new(BIO_s_mem());
    if (key == NULL || cert == NULL || kb == NULL || cb == NULL ||
        RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    name = X509_get_subject_name(cert);
    if (bn == NULL || X509_set_version(cert, 2) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600) == NULL ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   (const unsigned char *)"mailout sandbox", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(cert, name) != 1 || X509_set_pubkey(cert, key) != 1 ||
        add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(cert, NID_key_usage, "critical,digitalSignature,keyCertSign") != 0 ||
        add_ext(cert, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0 ||
        X509_sign(cert, key, EVP_sha256()) == 0 ||
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(cb, cert) != 1)
        goto fail;
    klen = BIO_get_mem_data(kb, &kdata);
    clen = BIO_get_mem_data(cb, &cdata);
    if (write_file(home, "key.pem", kdata, (size_t)klen, 0600, err) != 0 ||
        write_file(home, "cert.pem", cdata, (size_t)clen, 0644, err) != 0)
        goto out;
    rc = 0;
    goto out;
fail:
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "cannot make the sandbox's certificate");
out:
    BN_free(bn);
    BIO_free(kb); /* BIO_free cleanses nothing, but the key stays on disk anyway */
    BIO_free(cb);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

int
sandbox_prepare(const char *home, struct mo_error *err)
{
    char path[4096];
    char path2[4096];
    unsigned char raw[18];
    char pw[64];
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    int rc = -1;

    if (sandbox_path(home, "", path, sizeof(path)) != 0 || make_dir(path, err) != 0 ||
        sandbox_path(home, "inbox", path, sizeof(path)) != 0 || make_dir(path, err) != 0)
        goto out;
    if (sandbox_path(home, "cert.pem", path, sizeof(path)) != 0 ||
        sandbox_path(home, "key.pem", path2, sizeof(path2)) != 0)
        goto out;
    if ((access(path, R_OK) != 0 || access(path2, R_OK) != 0) && make_certificate(home, err) != 0)
        goto out;
    if (sandbox_path(home, "password", path, sizeof(path)) != 0)
        goto out;
    if (access(path, R_OK) != 0) {
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "no random bytes");
            goto out;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
            pw[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
        pw[sizeof(raw)] = '\n';
        if (write_file(home, "password", pw, sizeof(raw) + 1, 0600, err) != 0)
            goto out;
    }
    rc = 0;
out:
    mo_wipe(raw, sizeof(raw));
    mo_wipe(pw, sizeof(pw));
    if (rc != 0 && err != NULL && err->category == MO_ERR_NONE)
        mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
    return rc;
}

int
sandbox_password(const char *home, char *out, size_t size, struct mo_error *err)
{
    if (read_small(home, "password", out, size) != 0 || out[0] == '\0') {
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot read %s/sandbox/password", home);
        return -1;
    }
    return 0;
}

unsigned
sandbox_port_read(const char *home)
{
    char text[32];
    long v;

    if (read_small(home, "port", text, sizeof(text)) != 0 || mo_parse_long(text, 1, 65535, &v) != 0)
        return SANDBOX_DEFAULT_PORT;
    return (unsigned)v;
}

int
sandbox_port_write(const char *home, unsigned port, struct mo_error *err)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%u\n", port);

    return write_file(home, "port", text, (size_t)n, 0644, err);
}

/* ---- faults ------------------------------------------------------------------------- */

static void
fault_parse_text(const char *text, struct sandbox_fault *out)
{
    char kind[32] = "";
    char mode[16] = "";
    unsigned value = 0;

    memset(out, 0, sizeof(*out));
    if (sscanf(text, "%31s %15s %u", kind, mode, &value) != 3 ||
        sandbox_fault_parse(kind, &out->kind) != 0 || value == 0 ||
        (strcmp(mode, "next") != 0 && strcmp(mode, "share") != 0)) {
        out->kind = SANDBOX_FAULT_NONE;
        return;
    }
    out->is_share = strcmp(mode, "share") == 0;
    out->value = out->is_share && value > 100 ? 100 : value;
}

int
sandbox_fault_set(const char *home, const struct sandbox_fault *f, struct mo_error *err)
{
    char text[96];
    int n;

    if (f->kind == SANDBOX_FAULT_NONE || f->value == 0)
        n = snprintf(text, sizeof(text), "none\n");
    else
        n = snprintf(text, sizeof(text), "%s %s %u\n", sandbox_fault_name(f->kind),
                     f->is_share ? "share" : "next", f->value);
    return write_file(home, "fault", text, (size_t)n, 0644, err);
}

void
sandbox_fault_get(const char *home, struct sandbox_fault *out)
{
    char text[96];

    if (read_small(home, "fault", text, sizeof(text)) != 0)
        text[0] = '\0';
    fault_parse_text(text, out);
}

enum sandbox_fault_kind
sandbox_fault_draw(const char *home)
{
    char path[4096];
    struct sandbox_fault f;
    enum sandbox_fault_kind kind = SANDBOX_FAULT_NONE;
    int fd;

    if (sandbox_path(home, "fault.lock", path, sizeof(path)) != 0)
        return SANDBOX_FAULT_NONE;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        if (fd >= 0)
            close(fd);
        return SANDBOX_FAULT_NONE;
    }
    sandbox_fault_get(home, &f);
    if (f.kind != SANDBOX_FAULT_NONE) {
        if (f.is_share) {
            unsigned r = 0;

            if (RAND_bytes((unsigned char *)&r, sizeof(r)) == 1 && r % 100 < f.value)
                kind = f.kind;
        } else {
            kind = f.kind;
            f.value--;
            if (sandbox_fault_set(home, &f, NULL) != 0)
                mo_log(MO_LOG_WARN, "sandbox: cannot count the fault down");
        }
    }
    close(fd); /* releases the lock */
    return kind;
}

/* ---- letters ------------------------------------------------------------------------- */

static bool
id_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n >= SANDBOX_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') || id[i] == '-'))
            return false;
    return true;
}

int
sandbox_store(const char *home, const char *data, size_t len, char id_out[SANDBOX_ID_MAX],
              struct mo_error *err)
{
    struct timespec ts;
    unsigned char r[4];
    char name[SANDBOX_ID_MAX + 16];

    clock_gettime(CLOCK_REALTIME, &ts);
    if (RAND_bytes(r, sizeof(r)) != 1) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "no random bytes");
        return -1;
    }
    snprintf(id_out, SANDBOX_ID_MAX, "%013lld-%02x%02x%02x%02x",
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, r[0], r[1], r[2], r[3]);
    snprintf(name, sizeof(name), "inbox/%s.eml", id_out);
    return write_file(home, name, data, len, 0600, err);
}

/* Copies the decoded value of the first field called name into out (cut to fit). */
static void
header_value(const struct mime_headers *h, const char *name, char *out, size_t size)
{
    const struct mime_header_field *f = mime_headers_find(h, name);
    struct mo_buf decoded;
    size_t n;

    out[0] = '\0';
    if (f == NULL)
        return;
    mo_buf_init(&decoded, 4096);
    if (mime_decode_words(f->value, &decoded, NULL) == 0) {
        n = decoded.len < size - 1 ? decoded.len : size - 1;
        memcpy(out, decoded.data, n);
        out[n] = '\0';
    }
    mo_buf_free(&decoded);
}

static int
letter_cmp(const void *a, const void *b)
{
    return -strcmp(((const struct sandbox_letter *)a)->id, ((const struct sandbox_letter *)b)->id);
}

int
sandbox_list(const char *home, struct sandbox_letter **out, size_t *n_out, struct mo_error *err)
{
    char path[4096];
    char file[4400];
    struct sandbox_letter *v = NULL;
    size_t n = 0;
    DIR *d = NULL;
    struct dirent *e;
    char *head = NULL;
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    if (sandbox_path(home, "inbox", path, sizeof(path)) != 0) {
        mo_error_set(err, MO_ERR_STORAGE, "home", "the data folder's path is too long");
        goto out;
    }
    d = opendir(path);
    if (d == NULL) {
        rc = errno == ENOENT ? 0 : -1;
        if (rc != 0)
            mo_error_set(err, MO_ERR_STORAGE, "home", "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    v = calloc(SANDBOX_LIST_MAX, sizeof(*v));
    head = malloc(SANDBOX_HEADER_SCAN);
    if (v == NULL || head == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    while ((e = readdir(d)) != NULL && n < SANDBOX_LIST_MAX) {
        size_t len = strlen(e->d_name);
        struct sandbox_letter *l = &v[n];
        struct stat st;
        FILE *f;
        size_t got;

        if (len < 5 || len - 4 >= SANDBOX_ID_MAX || strcmp(e->d_name + len - 4, ".eml") != 0)
            continue;
        memcpy(l->id, e->d_name, len - 4);
        l->id[len - 4] = '\0';
        if (!id_valid(l->id) ||
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name) >= (int)sizeof(file) ||
            (f = fopen(file, "re")) == NULL)
            continue;
        got = fread(head, 1, SANDBOX_HEADER_SCAN, f);
        if (fstat(fileno(f), &st) == 0)
            l->size = (size_t)st.st_size;
        fclose(f);
        l->received_ms = strtoll(l->id, NULL, 10);
        {
            struct mime_headers h;

            memset(&h, 0, sizeof(h));
            if (mime_headers_parse(head, got, &h, NULL) == 0) {
                header_value(&h, "From", l->from, sizeof(l->from));
                header_value(&h, "To", l->to, sizeof(l->to));
                header_value(&h, "Subject", l->subject, sizeof(l->subject));
            }
            mime_headers_clear(&h);
        }
        n++;
    }
    qsort(v, n, sizeof(*v), letter_cmp);
    rc = 0;
out:
    if (d != NULL)
        closedir(d);
    free(head);
    if (rc == 0 && n > 0) {
        *out = v;
        *n_out = n;
    } else {
        free(v);
    }
    return rc;
}

int
sandbox_read(const char *home, const char *id, char **data, size_t *len, struct mo_error *err)
{
    char name[SANDBOX_ID_MAX + 16];
    char path[4200];
    FILE *f = NULL;
    struct stat st;
    char *buf = NULL;
    int rc = -1;

    *data = NULL;
    *len = 0;
    if (id == NULL || !id_valid(id)) {
        mo_error_set(err, MO_ERR_CONFIG, "id", "no letter with that id in the sandbox");
        return -1;
    }
    snprintf(name, sizeof(name), "inbox/%s.eml", id);
    if (sandbox_path(home, name, path, sizeof(path)) != 0 || (f = fopen(path, "re")) == NULL) {
        mo_error_set(err, MO_ERR_CONFIG, "id", "no letter with that id in the sandbox");
        goto out;
    }
    if (fstat(fileno(f), &st) != 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL ||
        fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        mo_error_set(err, MO_ERR_STORAGE, NULL, "cannot read %s", path);
        goto out;
    }
    buf[st.st_size] = '\0';
    *data = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    free(buf);
    return rc;
}

int
sandbox_clear(const char *home, size_t *n_removed, struct mo_error *err)
{
    char path[4096];
    char file[4400];
    DIR *d;
    struct dirent *e;
    size_t n = 0;

    if (n_removed != NULL)
        *n_removed = 0;
    if (sandbox_path(home, "inbox", path, sizeof(path)) != 0)
        return 0;
    d = opendir(path);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        mo_error_set(err, MO_ERR_STORAGE, "home", "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0 ||
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name) >= (int)sizeof(file))
            continue;
        if (unlink(file) == 0)
            n++;
    }
    closedir(d);
    if (n_removed != NULL)
        *n_removed = n;
    return 0;
}
