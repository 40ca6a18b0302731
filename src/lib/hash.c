/*
 * hash.c -- SHA-256 through OpenSSL's EVP interface: the only file that
 * includes OpenSSL headers in the library.
 *
 * EVP picks the CPU's SHA extensions when present, which keeps hashing far
 * cheaper than parsing in the ingestion pass.
 */
#include "ch/hash.h"

#include <openssl/evp.h>

struct ch_sha256 {
    EVP_MD_CTX *ctx;
};

#include "ch/alloc.h"

ch_err ch_sha256_new(ch_sha256 **out, ch_error *err)
{
    ch_sha256 *h = ch_malloc(sizeof *h);
    if (h == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory starting a hash");
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        ch_sha256_free(h);
        return ch_error_set(err, CH_ENOMEM, "cannot start a SHA-256 hash");
    }
    *out = h;
    return CH_OK;
}

void ch_sha256_update(ch_sha256 *h, const void *data, size_t len)
{
    if (len > 0)
        EVP_DigestUpdate(h->ctx, data, len);
}

void ch_sha256_final_hex(ch_sha256 *h, char hex[CH_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    unsigned int i;

    EVP_DigestFinal_ex(h->ctx, md, &n);
    for (i = 0; i < n && i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * i] = '\0';
}

void ch_sha256_free(ch_sha256 *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    ch_free(h);
}

ch_err ch_sha256_hex(const void *data, size_t len, char hex[CH_SHA256_HEX_LEN + 1], ch_error *err)
{
    ch_sha256 *h = NULL;
    ch_err rc = ch_sha256_new(&h, err);
    if (rc != CH_OK)
        return rc;
    ch_sha256_update(h, data, len);
    ch_sha256_final_hex(h, hex);
    ch_sha256_free(h);
    return CH_OK;
}
