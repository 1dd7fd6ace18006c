/*
 * wipe.c - forgetting secrets: overwrites that the compiler keeps
 * (OpenSSL's cleanse). Apart from util.c so that the libc-only sendmail
 * client does not load libcrypto.
 */
#include "common/common.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

void
mo_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void
mo_free_secret(char *s)
{
    if (s == NULL)
        return;
    mo_wipe(s, strlen(s));
    free(s);
}

void
mo_buf_wipe_free(struct mo_buf *b)
{
    if (b->data != NULL)
        mo_wipe(b->data, b->cap);
    mo_buf_free(b);
}
