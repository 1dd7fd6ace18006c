/*
 * auth.c - the client side of the SASL mechanisms mailout speaks in SMTP
 * AUTH: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256 and XOAUTH2.
 *
 * Why: the session only moves base64 lines back and forth; everything a
 * mechanism computes lives here, pure (no I/O), so the RFC test vectors can
 * check it without a server.
 *
 * Follows RFC 4954 (SMTP AUTH: base64 on the wire, 334 challenges, an empty
 * line as an empty response), RFC 4616 (PLAIN, with an empty authzid),
 * RFC 2195 (CRAM-MD5), RFC 5802 and RFC 7677 (SCRAM-SHA-256, without channel
 * binding: gs2 header "n,,"), RFC 7628 3.2.3 (an OAuth error arrives as a
 * challenge holding JSON, answered with an empty response) and Google's
 * XOAUTH2 initial response format. LOGIN has no RFC (draft-murchison-sasl-
 * login): the username, then the password, whatever the prompts say.
 * Leaves out: SASLprep (RFC 4013) for SCRAM. ASCII passwords are unchanged
 * by it; a non-ASCII password is sent as its UTF-8 bytes unnormalized, so a
 * server that stores the NFKC form of a password typed in another
 * normalization will refuse it. Also left out: authorization identities,
 * channel binding (SCRAM-SHA-256-PLUS), security layers.
 * Hashes, HMAC, PBKDF2, randomness and base64 all come from OpenSSL.
 */
#include "smtp/smtp.h"

#include <assert.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest user name or secret accepted; keeps the AUTH line under RFC 4954's 12288 octets. */
#define AUTH_FIELD_MAX 8192
/* Longest challenge we decode; real ones are far below a reply line. */
#define AUTH_CHALLENGE_MAX 16384
/* Scratch buffers for one mechanism message. */
#define AUTH_MSG_MAX (4 * AUTH_FIELD_MAX)
#define AUTH_NONCE_MAX 128
/* Random bytes in a SCRAM client nonce: 18 give 24 base64 characters, no padding. */
#define AUTH_NONCE_BYTES 18
/*
 * SCRAM iteration counts above this are refused: the server picks the count
 * and PBKDF2 runs on our side, so an unbounded one is a free CPU burner.
 */
#define AUTH_SCRAM_ITER_MAX 1000000L
#define AUTH_SHA256_LEN 32

struct smtp_auth {
    enum smtp_auth_mech mech;
    char *user;     /* owned, wiped on free */
    char *secret;   /* owned, wiped on free */
    unsigned round; /* responses produced so far, the initial one included */
    bool has_nonce;
    char nonce[AUTH_NONCE_MAX + 1];
    struct mo_buf scram_first_bare; /* client-first-message-bare, for the AuthMessage */
    unsigned char scram_server_sig[AUTH_SHA256_LEN];
    bool scram_verified;
};

static const char *const auth_mech_names[SMTP_AUTH_COUNT] = {
    [SMTP_AUTH_AUTO] = "auto",
    [SMTP_AUTH_PLAIN] = "PLAIN",
    [SMTP_AUTH_LOGIN] = "LOGIN",
    [SMTP_AUTH_CRAM_MD5] = "CRAM-MD5",
    [SMTP_AUTH_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SMTP_AUTH_XOAUTH2] = "XOAUTH2",
};

const char *
smtp_auth_mech_name(enum smtp_auth_mech mech)
{
    if ((int)mech < 0 || mech >= SMTP_AUTH_COUNT)
        return "?";
    return auth_mech_names[mech];
}

int
smtp_auth_mech_parse(const char *name, enum smtp_auth_mech *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < SMTP_AUTH_COUNT; i++) {
        if (strcasecmp(name, auth_mech_names[i]) == 0) {
            *out = (enum smtp_auth_mech)i;
            return 0;
        }
    }
    return -1;
}

enum smtp_auth_mech
smtp_auth_choose(unsigned offered, bool is_token)
{
    /* The connection is TLS, so PLAIN before LOGIN: one round trip instead of two. */
    static const enum smtp_auth_mech order[] = {
        SMTP_AUTH_SCRAM_SHA_256,
        SMTP_AUTH_CRAM_MD5,
        SMTP_AUTH_PLAIN,
        SMTP_AUTH_LOGIN,
    };

    if (is_token)
        return (offered & (1u << SMTP_AUTH_XOAUTH2)) ? SMTP_AUTH_XOAUTH2 : SMTP_AUTH_AUTO;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (offered & (1u << order[i]))
            return order[i];
    }
    return SMTP_AUTH_AUTO;
}

/* ---- helpers ------------------------------------------------------------ */

/* Empties out, wiping what it held: it may carry an encoded password. */
static void
auth_out_clear(struct mo_buf *out)
{
    mo_wipe(out->data, out->cap);
    mo_buf_reset(out);
}

/* Writes bytes from the server for an error message: printable ASCII, the rest escaped. */
static void
auth_show(const unsigned char *s, size_t len, char *dst, size_t dst_size)
{
    size_t used = 0;

    for (size_t i = 0; i < len; i++) {
        char piece[8];
        int w;

        if (s[i] >= 0x20 && s[i] < 0x7f)
            w = snprintf(piece, sizeof(piece), "%c", s[i]);
        else
            w = snprintf(piece, sizeof(piece), "\\x%02x", s[i]);
        if (w < 0 || (size_t)w + 4 > dst_size - used) {
            memcpy(dst + used, "...", 3);
            used += 3;
            break;
        }
        memcpy(dst + used, piece, (size_t)w);
        used += (size_t)w;
    }
    dst[used] = '\0';
}

static void
auth_unexpected(const struct smtp_auth *a, const char *challenge, struct mo_error *err)
{
    char shown[128];

    auth_show((const unsigned char *)challenge, strlen(challenge), shown, sizeof(shown));
    mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                 "the server sent an unexpected %s challenge: \"334 %s\"",
                 smtp_auth_mech_name(a->mech), shown);
}

/* Appends the base64 form of data (RFC 4648, padded, one line) to out. */
static int
auth_b64_append(struct mo_buf *out, const void *data, size_t len, struct mo_error *err)
{
    unsigned char *enc = NULL;
    size_t enc_size;
    int n;
    int rc = -1;

    if (len > AUTH_MSG_MAX) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "an AUTH message is too long to encode");
        goto out;
    }
    enc_size = 4 * ((len + 2) / 3) + 1;
    enc = malloc(enc_size);
    if (enc == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    n = EVP_EncodeBlock(enc, data, (int)len);
    if (n < 0 || (size_t)n >= enc_size) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "base64 encoding failed");
        goto out;
    }
    if (mo_buf_append(out, enc, (size_t)n, err) != 0)
        goto out;
    rc = 0;
out:
    if (enc != NULL) {
        mo_wipe(enc, enc_size);
        free(enc);
    }
    return rc;
}

static bool
auth_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/*
 * Decodes len bytes of strict base64 into out (appended, NUL-terminated by
 * mo_buf). EVP_DecodeBlock skips white space and counts padding as zero
 * bytes, so the shape is checked here first and the padding taken off after.
 */
static int
auth_b64_decode(const char *in, size_t len, struct mo_buf *out, struct mo_error *err)
{
    unsigned char *dec = NULL;
    size_t dec_size = 0;
    size_t pad = 0;
    int n;
    int rc = -1;

    if (len % 4 != 0 || len > AUTH_CHALLENGE_MAX)
        goto bad;
    for (size_t i = 0; i < len; i++) {
        if (auth_b64_char(in[i]))
            continue;
        /* '=' only as the last one or two characters. */
        if (in[i] == '=' && (i == len - 1 || (i == len - 2 && in[len - 1] == '=')))
            continue;
        goto bad;
    }
    if (len == 0) {
        rc = mo_buf_append(out, "", 0, err);
        goto out;
    }
    pad = (in[len - 1] == '=') + (in[len - 2] == '=');
    dec_size = len / 4 * 3 + 1;
    dec = malloc(dec_size);
    if (dec == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    n = EVP_DecodeBlock(dec, (const unsigned char *)in, (int)len);
    if (n < 0 || (size_t)n < pad)
        goto bad;
    if (mo_buf_append(out, dec, (size_t)n - pad, err) != 0)
        goto out;
    rc = 0;
    goto out;
bad:
    mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                 "the server sent an AUTH challenge that is not base64");
out:
    if (dec != NULL) {
        mo_wipe(dec, dec_size);
        free(dec);
    }
    return rc;
}

/* Decodes a whole 334 challenge, tolerating trailing blanks. */
static int
auth_challenge_decode(const char *challenge, struct mo_buf *out, struct mo_error *err)
{
    size_t len = strnlen(challenge, AUTH_CHALLENGE_MAX + 1);

    while (len > 0 && (challenge[len - 1] == ' ' || challenge[len - 1] == '\t'))
        len--;
    return auth_b64_decode(challenge, len, out, err);
}

static int
auth_hmac(const EVP_MD *md, const void *key, size_t key_len, const void *data, size_t data_len,
          unsigned char *mac, struct mo_error *err)
{
    unsigned int mac_len = 0;

    if (key_len > INT_MAX || HMAC(md, key, (int)key_len, data, data_len, mac, &mac_len) == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "HMAC-%s failed in OpenSSL", EVP_MD_get0_name(md));
        return -1;
    }
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

struct smtp_auth *
smtp_auth_new(enum smtp_auth_mech mech, const char *user, const char *secret, struct mo_error *err)
{
    struct smtp_auth *a = NULL;
    struct smtp_auth *ret = NULL;

    if ((int)mech <= SMTP_AUTH_AUTO || mech >= SMTP_AUTH_COUNT) {
        mo_error_set(err, MO_ERR_CONFIG, "auth",
                     "the AUTH mechanism must be PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256 or "
                     "XOAUTH2 (\"auto\" is resolved before logging in)");
        goto out;
    }
    if (user == NULL || strnlen(user, AUTH_FIELD_MAX + 1) > AUTH_FIELD_MAX) {
        mo_error_set(err, MO_ERR_CONFIG, "username",
                     "the user name is missing or longer than %d bytes", AUTH_FIELD_MAX);
        goto out;
    }
    if (secret == NULL || strnlen(secret, AUTH_FIELD_MAX + 1) > AUTH_FIELD_MAX) {
        mo_error_set(err, MO_ERR_CONFIG, "password",
                     "the password or token is missing or longer than %d bytes", AUTH_FIELD_MAX);
        goto out;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    a->mech = mech;
    mo_buf_init(&a->scram_first_bare, AUTH_MSG_MAX);
    a->user = mo_strdup(user);
    a->secret = mo_strdup(secret);
    if (a->user == NULL || a->secret == NULL) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    ret = a;
    a = NULL;
out:
    smtp_auth_free(a);
    return ret;
}

void
smtp_auth_free(struct smtp_auth *a)
{
    if (a == NULL)
        return;
    mo_free_secret(a->user);
    mo_free_secret(a->secret);
    mo_buf_wipe_free(&a->scram_first_bare);
    mo_wipe(a, sizeof(*a));
    free(a);
}

int
smtp_auth_set_nonce(struct smtp_auth *a, const char *nonce)
{
    size_t len;

    if (a == NULL || nonce == NULL || a->mech != SMTP_AUTH_SCRAM_SHA_256 || a->round != 0)
        return -1;
    len = strnlen(nonce, AUTH_NONCE_MAX + 1);
    if (len == 0 || len > AUTH_NONCE_MAX)
        return -1;
    /* RFC 5802 "printable": 0x21-0x7E except ','. */
    for (size_t i = 0; i < len; i++) {
        if (nonce[i] < 0x21 || nonce[i] > 0x7e || nonce[i] == ',')
            return -1;
    }
    memcpy(a->nonce, nonce, len + 1);
    a->has_nonce = true;
    return 0;
}

/* ---- the first message of PLAIN, XOAUTH2 and SCRAM ---------------------- */

/* RFC 5802 5.1 saslname: ',' and '=' become "=2C" and "=3D"; all else unchanged. */
static int
auth_scram_append_saslname(struct mo_buf *b, const char *user, struct mo_error *err)
{
    for (const char *p = user; *p != '\0'; p++) {
        int rc;

        if (*p == ',')
            rc = mo_buf_append_str(b, "=2C", err);
        else if (*p == '=')
            rc = mo_buf_append_str(b, "=3D", err);
        else
            rc = mo_buf_append(b, p, 1, err);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int
auth_scram_first(struct smtp_auth *a, struct mo_buf *raw, struct mo_error *err)
{
    unsigned char rnd[AUTH_NONCE_BYTES];
    int rc = -1;

    if (!a->has_nonce) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "no random bytes for the SCRAM nonce");
            goto out;
        }
        /* 18 bytes -> exactly 24 characters; '+' and '/' are "printable" for RFC 5802. */
        if (EVP_EncodeBlock((unsigned char *)a->nonce, rnd, sizeof(rnd)) != 24) {
            mo_error_set(err, MO_ERR_INTERNAL, NULL, "base64 encoding failed");
            goto out;
        }
        a->has_nonce = true;
    }
    mo_buf_reset(&a->scram_first_bare);
    if (mo_buf_append_str(&a->scram_first_bare, "n=", err) != 0 ||
        auth_scram_append_saslname(&a->scram_first_bare, a->user, err) != 0 ||
        mo_buf_appendf(&a->scram_first_bare, err, ",r=%s", a->nonce) != 0)
        goto out;
    /* gs2 header "n,,": no channel binding, no authzid. */
    if (mo_buf_append_str(raw, "n,,", err) != 0 ||
        mo_buf_append(raw, a->scram_first_bare.data, a->scram_first_bare.len, err) != 0)
        goto out;
    rc = 0;
out:
    mo_wipe(rnd, sizeof(rnd));
    return rc;
}

/* The raw (not yet base64) first message of the mechanisms that have one. */
static int
auth_first_message(struct smtp_auth *a, struct mo_buf *raw, struct mo_error *err)
{
    switch (a->mech) {
    case SMTP_AUTH_PLAIN:
        /* RFC 4616: authzid (empty) NUL authcid NUL passwd. */
        if (mo_buf_append(raw, "", 1, err) != 0 || mo_buf_append_str(raw, a->user, err) != 0 ||
            mo_buf_append(raw, "", 1, err) != 0 || mo_buf_append_str(raw, a->secret, err) != 0)
            return -1;
        return 0;
    case SMTP_AUTH_XOAUTH2:
        if (mo_buf_append_str(raw, "user=", err) != 0 ||
            mo_buf_append_str(raw, a->user, err) != 0 ||
            mo_buf_append_str(raw, "\001auth=Bearer ", err) != 0 ||
            mo_buf_append_str(raw, a->secret, err) != 0 ||
            mo_buf_append_str(raw, "\001\001", err) != 0)
            return -1;
        return 0;
    case SMTP_AUTH_SCRAM_SHA_256:
        return auth_scram_first(a, raw, err);
    case SMTP_AUTH_AUTO:
    case SMTP_AUTH_LOGIN:
    case SMTP_AUTH_CRAM_MD5:
    case SMTP_AUTH_COUNT:
        break;
    }
    assert(!"only PLAIN, XOAUTH2 and SCRAM have a first message");
    mo_error_set(err, MO_ERR_INTERNAL, NULL, "%s has no initial response",
                 smtp_auth_mech_name(a->mech));
    return -1;
}

static bool
auth_has_initial(enum smtp_auth_mech mech)
{
    return mech == SMTP_AUTH_PLAIN || mech == SMTP_AUTH_XOAUTH2 || mech == SMTP_AUTH_SCRAM_SHA_256;
}

/* Builds the first message into out as base64 and counts the round. */
static int
auth_send_first(struct smtp_auth *a, struct mo_buf *out, struct mo_error *err)
{
    struct mo_buf raw;
    int rc = -1;

    mo_buf_init(&raw, AUTH_MSG_MAX);
    if (auth_first_message(a, &raw, err) != 0 || auth_b64_append(out, raw.data, raw.len, err) != 0)
        goto out;
    a->round++;
    rc = 0;
out:
    mo_buf_wipe_free(&raw);
    return rc;
}

int
smtp_auth_initial(struct smtp_auth *a, struct mo_buf *out, bool *has_initial, struct mo_error *err)
{
    int rc = -1;

    auth_out_clear(out);
    *has_initial = false;
    if (a->round != 0) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "the AUTH exchange has already started");
        goto out;
    }
    if (!auth_has_initial(a->mech)) {
        rc = 0;
        goto out;
    }
    if (auth_send_first(a, out, err) != 0)
        goto out;
    *has_initial = true;
    rc = 0;
out:
    if (rc != 0)
        auth_out_clear(out);
    return rc;
}

/* ---- the challenges ----------------------------------------------------- */

static int
auth_login_step(struct smtp_auth *a, const char *challenge, struct mo_buf *out,
                struct mo_error *err)
{
    /* The prompts ("Username:", "Password:") vary and some are not even base64: ignore them. */
    const char *answer = a->round == 0 ? a->user : a->round == 1 ? a->secret : NULL;

    if (answer == NULL) {
        auth_unexpected(a, challenge, err);
        return -1;
    }
    if (auth_b64_append(out, answer, strlen(answer), err) != 0)
        return -1;
    a->round++;
    return 0;
}

static int
auth_cram_step(struct smtp_auth *a, const char *challenge, struct mo_buf *out, struct mo_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    struct mo_buf chal;
    struct mo_buf raw;
    const EVP_MD *md5 = EVP_md5();
    int rc = -1;

    mo_buf_init(&chal, AUTH_CHALLENGE_MAX);
    mo_buf_init(&raw, AUTH_MSG_MAX);
    if (a->round != 0) {
        auth_unexpected(a, challenge, err);
        goto out;
    }
    if (auth_challenge_decode(challenge, &chal, err) != 0)
        goto out;
    if (chal.len == 0) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server sent an empty CRAM-MD5 challenge");
        goto out;
    }
    /* RFC 2195: user SP hex(HMAC-MD5(secret, challenge)), lower case. */
    if (auth_hmac(md5, a->secret, strlen(a->secret), chal.data, chal.len, mac, err) != 0)
        goto out;
    if (mo_buf_append_str(&raw, a->user, err) != 0 || mo_buf_append(&raw, " ", 1, err) != 0)
        goto out;
    for (int i = 0; i < EVP_MD_get_size(md5); i++) {
        char pair[2] = {hex[mac[i] >> 4], hex[mac[i] & 0x0f]};
        if (mo_buf_append(&raw, pair, 2, err) != 0)
            goto out;
    }
    if (auth_b64_append(out, raw.data, raw.len, err) != 0)
        goto out;
    a->round++;
    rc = 0;
out:
    mo_wipe(mac, sizeof(mac));
    mo_buf_wipe_free(&chal);
    mo_buf_wipe_free(&raw);
    return rc;
}

/* One "x=value" attribute of a SCRAM message, value up to the next ',' or the end. */
static bool
auth_scram_attr(const char **p, const char *end, char name, const char **value, size_t *len)
{
    const char *s = *p;
    const char *comma;

    if (end - s < 2 || s[0] != name || s[1] != '=')
        return false;
    s += 2;
    comma = memchr(s, ',', (size_t)(end - s));
    *value = s;
    *len = (size_t)((comma != NULL ? comma : end) - s);
    *p = comma != NULL ? comma + 1 : end;
    return true;
}

/*
 * An "e=" message (RFC 5802 7 server-error): true, with err filled, when the
 * message is one. "unknown-user" blames the name, every other value the password.
 */
static bool
auth_scram_server_error(const char *p, const char *end, struct mo_error *err)
{
    const char *value;
    size_t value_len;
    char shown[128];

    if (!auth_scram_attr(&p, end, 'e', &value, &value_len))
        return false;
    auth_show((const unsigned char *)value, value_len, shown, sizeof(shown));
    mo_error_set(err, MO_ERR_AUTH,
                 value_len == 12 && memcmp(value, "unknown-user", 12) == 0 ? "username"
                                                                           : "password",
                 "the server refused the SCRAM-SHA-256 login: %s", shown);
    return true;
}

/*
 * server-first-message -> client-final-message (RFC 5802 3):
 *   SaltedPassword  := Hi(password, salt, i)          (PBKDF2-HMAC-SHA-256)
 *   ClientKey       := HMAC(SaltedPassword, "Client Key")
 *   StoredKey       := H(ClientKey)
 *   AuthMessage     := client-first-bare "," server-first "," client-final-without-proof
 *   ClientProof     := ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage), kept for later
 */
static int
auth_scram_server_first(struct smtp_auth *a, const char *challenge, struct mo_buf *out,
                        struct mo_error *err)
{
    unsigned char salted[AUTH_SHA256_LEN];
    unsigned char client_key[EVP_MAX_MD_SIZE];
    unsigned char stored_key[EVP_MAX_MD_SIZE];
    unsigned char client_sig[EVP_MAX_MD_SIZE];
    unsigned char server_key[EVP_MAX_MD_SIZE];
    unsigned char proof[AUTH_SHA256_LEN];
    unsigned int stored_len = 0;
    struct mo_buf msg;
    struct mo_buf salt;
    struct mo_buf final;
    struct mo_buf auth_msg;
    const char *p;
    const char *end;
    const char *nonce;
    const char *salt_b64;
    const char *iter_s;
    size_t nonce_len;
    size_t salt_len;
    size_t iter_len;
    size_t cnonce_len = strlen(a->nonce);
    char iter_buf[16];
    long iter = 0;
    int rc = -1;

    mo_buf_init(&msg, AUTH_CHALLENGE_MAX);
    mo_buf_init(&salt, AUTH_CHALLENGE_MAX);
    mo_buf_init(&final, AUTH_MSG_MAX);
    mo_buf_init(&auth_msg, AUTH_MSG_MAX);

    if (auth_challenge_decode(challenge, &msg, err) != 0)
        goto out;
    if (strlen(mo_buf_cstr(&msg)) != msg.len) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server's SCRAM message holds a NUL byte");
        goto out;
    }
    p = mo_buf_cstr(&msg);
    end = p + msg.len;
    /* Not in RFC 5802's grammar here, but some servers end the exchange this early. */
    if (auth_scram_server_error(p, end, err))
        goto out;
    if (end - p >= 2 && p[0] == 'm' && p[1] == '=') {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                     "the server requires a SCRAM extension mailout does not know");
        goto out;
    }
    if (!auth_scram_attr(&p, end, 'r', &nonce, &nonce_len) ||
        !auth_scram_attr(&p, end, 's', &salt_b64, &salt_len) ||
        !auth_scram_attr(&p, end, 'i', &iter_s, &iter_len)) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                     "the server's first SCRAM message lacks the nonce, salt or iteration count");
        goto out;
    }
    /* The server extends our nonce; anything else is a replay or a confused server. */
    if (nonce_len < cnonce_len || memcmp(nonce, a->nonce, cnonce_len) != 0) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                     "the server's SCRAM nonce does not start with the one mailout sent");
        goto out;
    }
    for (size_t i = 0; i < nonce_len; i++) {
        if (nonce[i] < 0x21 || nonce[i] > 0x7e) {
            mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server's SCRAM nonce is not printable");
            goto out;
        }
    }
    if (auth_b64_decode(salt_b64, salt_len, &salt, err) != 0 || salt.len == 0) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server's SCRAM salt is not base64");
        goto out;
    }
    if (iter_len == 0 || iter_len >= sizeof(iter_buf)) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server's SCRAM iteration count is invalid");
        goto out;
    }
    memcpy(iter_buf, iter_s, iter_len);
    iter_buf[iter_len] = '\0';
    if (mo_parse_long(iter_buf, 1, LONG_MAX, &iter) != 0) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL, "the server's SCRAM iteration count is invalid");
        goto out;
    }
    if (iter > AUTH_SCRAM_ITER_MAX) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                     "the server asks for %ld SCRAM iterations; mailout allows at most %ld", iter,
                     AUTH_SCRAM_ITER_MAX);
        goto out;
    }

    /* client-final-message-without-proof; "biws" is base64("n,,"). */
    if (mo_buf_append_str(&final, "c=biws,r=", err) != 0 ||
        mo_buf_append(&final, nonce, nonce_len, err) != 0)
        goto out;
    if (mo_buf_append(&auth_msg, a->scram_first_bare.data, a->scram_first_bare.len, err) != 0 ||
        mo_buf_append(&auth_msg, ",", 1, err) != 0 ||
        mo_buf_append(&auth_msg, msg.data, msg.len, err) != 0 ||
        mo_buf_append(&auth_msg, ",", 1, err) != 0 ||
        mo_buf_append(&auth_msg, final.data, final.len, err) != 0)
        goto out;

    if (PKCS5_PBKDF2_HMAC(a->secret, (int)strlen(a->secret), (const unsigned char *)salt.data,
                          (int)salt.len, (int)iter, EVP_sha256(), sizeof(salted), salted) != 1) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "PBKDF2 failed in OpenSSL");
        goto out;
    }
    if (auth_hmac(EVP_sha256(), salted, sizeof(salted), "Client Key", 10, client_key, err) != 0)
        goto out;
    if (EVP_Digest(client_key, AUTH_SHA256_LEN, stored_key, &stored_len, EVP_sha256(), NULL) != 1) {
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "SHA-256 failed in OpenSSL");
        goto out;
    }
    if (auth_hmac(EVP_sha256(), stored_key, AUTH_SHA256_LEN, auth_msg.data, auth_msg.len,
                  client_sig, err) != 0 ||
        auth_hmac(EVP_sha256(), salted, sizeof(salted), "Server Key", 10, server_key, err) != 0 ||
        auth_hmac(EVP_sha256(), server_key, AUTH_SHA256_LEN, auth_msg.data, auth_msg.len,
                  a->scram_server_sig, err) != 0)
        goto out;
    for (size_t i = 0; i < sizeof(proof); i++)
        proof[i] = client_key[i] ^ client_sig[i];

    if (mo_buf_append_str(&final, ",p=", err) != 0 ||
        auth_b64_append(&final, proof, sizeof(proof), err) != 0 ||
        auth_b64_append(out, final.data, final.len, err) != 0)
        goto out;
    a->round++;
    rc = 0;
out:
    mo_wipe(salted, sizeof(salted));
    mo_wipe(client_key, sizeof(client_key));
    mo_wipe(stored_key, sizeof(stored_key));
    mo_wipe(client_sig, sizeof(client_sig));
    mo_wipe(server_key, sizeof(server_key));
    mo_wipe(proof, sizeof(proof));
    mo_buf_wipe_free(&msg);
    mo_buf_wipe_free(&salt);
    mo_buf_wipe_free(&final);
    mo_buf_wipe_free(&auth_msg);
    return rc;
}

/*
 * server-final-message: "v=" the server's signature, which proves it knows
 * the password too, or "e=" an error. A verified one is answered with an
 * empty response (RFC 4954 4: the server sends it as a last challenge).
 */
static int
auth_scram_server_final(struct smtp_auth *a, const char *challenge, struct mo_error *err)
{
    struct mo_buf msg;
    struct mo_buf sig;
    const char *p;
    const char *end;
    const char *value;
    size_t value_len;
    int rc = -1;

    mo_buf_init(&msg, AUTH_CHALLENGE_MAX);
    mo_buf_init(&sig, AUTH_CHALLENGE_MAX);
    if (auth_challenge_decode(challenge, &msg, err) != 0)
        goto out;
    p = mo_buf_cstr(&msg);
    end = p + msg.len;
    if (auth_scram_server_error(p, end, err))
        goto out;
    if (!auth_scram_attr(&p, end, 'v', &value, &value_len)) {
        mo_error_set(err, MO_ERR_PROTOCOL, NULL,
                     "the server's final SCRAM message has neither a signature nor an error");
        goto out;
    }
    if (auth_b64_decode(value, value_len, &sig, NULL) != 0 || sig.len != AUTH_SHA256_LEN ||
        CRYPTO_memcmp(sig.data, a->scram_server_sig, AUTH_SHA256_LEN) != 0) {
        mo_error_set(err, MO_ERR_AUTH, "password",
                     "the server could not prove that it knows the password (wrong SCRAM "
                     "signature): it may not be the server it claims to be");
        goto out;
    }
    a->scram_verified = true;
    a->round++;
    rc = 0;
out:
    mo_buf_wipe_free(&msg);
    mo_buf_wipe_free(&sig);
    return rc;
}

/*
 * After the initial response, an XOAUTH2 challenge is always the server's
 * JSON error (RFC 7628 3.2.3), e.g. {"status":"400","schemes":"Bearer",
 * "scope":"https://mail.google.com/"}. It is shown as it came, escaped:
 * jansson is not linked into the library, and the few fields are readable.
 */
static int
auth_xoauth2_error(const char *challenge, struct mo_error *err)
{
    struct mo_buf json;
    char shown[256];

    mo_buf_init(&json, AUTH_CHALLENGE_MAX);
    if (auth_challenge_decode(challenge, &json, err) == 0) {
        if (json.len == 0)
            snprintf(shown, sizeof(shown), "(no details given)");
        else
            auth_show((const unsigned char *)mo_buf_cstr(&json), json.len, shown, sizeof(shown));
        mo_error_set(err, MO_ERR_AUTH, "password",
                     "the server refused the OAuth token (expired, revoked or without the mail "
                     "scope): %s",
                     shown);
    }
    mo_buf_free(&json);
    return -1;
}

int
smtp_auth_step(struct smtp_auth *a, const char *challenge_b64, struct mo_buf *out,
               struct mo_error *err)
{
    const char *challenge = challenge_b64 != NULL ? challenge_b64 : "";
    int rc = -1;

    auth_out_clear(out);
    /*
     * A server may answer "AUTH MECH" without an initial response with an
     * empty 334 (RFC 4954 4); the first message then goes here.
     */
    if (a->round == 0 && auth_has_initial(a->mech)) {
        if (challenge[0] != '\0') {
            auth_unexpected(a, challenge, err);
            goto out;
        }
        rc = auth_send_first(a, out, err);
        goto out;
    }
    switch (a->mech) {
    case SMTP_AUTH_LOGIN:
        rc = auth_login_step(a, challenge, out, err);
        break;
    case SMTP_AUTH_CRAM_MD5:
        rc = auth_cram_step(a, challenge, out, err);
        break;
    case SMTP_AUTH_SCRAM_SHA_256:
        if (a->round == 1)
            rc = auth_scram_server_first(a, challenge, out, err);
        else if (a->round == 2)
            rc = auth_scram_server_final(a, challenge, err);
        else
            auth_unexpected(a, challenge, err);
        break;
    case SMTP_AUTH_XOAUTH2:
        if (a->round == 1)
            rc = auth_xoauth2_error(challenge, err);
        else
            auth_unexpected(a, challenge, err);
        break;
    case SMTP_AUTH_PLAIN:
        auth_unexpected(a, challenge, err);
        break;
    case SMTP_AUTH_AUTO:
    case SMTP_AUTH_COUNT:
        mo_error_set(err, MO_ERR_INTERNAL, NULL, "no SASL mechanism");
        break;
    }
out:
    if (rc != 0)
        auth_out_clear(out);
    return rc;
}

int
smtp_auth_finish(struct smtp_auth *a, struct mo_error *err)
{
    if (a->mech == SMTP_AUTH_SCRAM_SHA_256 && !a->scram_verified) {
        /* RFC 5802 3: a client that skips this check has no mutual authentication. */
        mo_error_set(err, MO_ERR_AUTH, NULL,
                     "the server accepted the SCRAM-SHA-256 login without proving that it knows "
                     "the password");
        return -1;
    }
    return 0;
}
