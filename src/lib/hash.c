/*
 * hash.c -- SHA-256 through OpenSSL's EVP interface, plus HMAC-SHA256,
 * random bytes, constant-time comparison and RSA key checks: the only file
 * that includes OpenSSL headers in the library.
 *
 * EVP picks the CPU's SHA extensions when present, which keeps hashing far
 * cheaper than parsing in the ingestion pass. The keyed functions serve
 * auth.c and jwt.c and the prediction service, which pseudonymizes a
 * customer id and digests the input of every request.
 *
 * OpenSSL 3 looks an algorithm up by name ("fetches" it) on every
 * EVP_sha256() init and every one-shot HMAC(); at tens of thousands of
 * requests a second that lookup costs more than the hashing. So SHA-256
 * is fetched once, and HMAC is computed from it directly (RFC 2104:
 * H(K^opad || H(K^ipad || m))), which is exact and needs no MAC object.
 */
#include "ch/hash.h"

#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

struct ch_sha256 {
    EVP_MD_CTX *ctx;
};

#include <pthread.h>

#include "ch/alloc.h"

static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The SHA-256 implementation, fetched once; the legacy handle if the
 * fetch failed (it then works as before, only slower). */
static const EVP_MD *sha256_md(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_fetched != NULL ? sha256_fetched : EVP_sha256();
}

ch_err ch_sha256_new(ch_sha256 **out, ch_error *err)
{
    ch_sha256 *h = ch_malloc(sizeof *h);
    if (h == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory starting a hash");
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, sha256_md(), NULL) != 1) {
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

ch_err ch_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                      unsigned char out[CH_HMAC_SHA256_LEN])
{
    unsigned char k[64];
    unsigned char pad[64];
    unsigned char inner[32];
    unsigned int n = 0;
    EVP_MD_CTX *ctx;
    const EVP_MD *md = sha256_md();
    int ok;

    if (key_len > INT_MAX)
        return CH_EINVAL;
    /* The key, hashed first when longer than a block, zero-padded. */
    memset(k, 0, sizeof k);
    if (key_len > sizeof k) {
        if (EVP_Digest(key, key_len, k, &n, md, NULL) != 1) {
            ERR_clear_error();
            return CH_ENOMEM;
        }
    } else if (key_len > 0) {
        memcpy(k, key, key_len);
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return CH_ENOMEM;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (unsigned char)(k[i] ^ 0x36);
    ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof pad) == 1 &&
         (len == 0 || EVP_DigestUpdate(ctx, data, len) == 1) &&
         EVP_DigestFinal_ex(ctx, inner, &n) == 1 && n == 32;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (unsigned char)(k[i] ^ 0x5c);
    ok = ok && EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
         EVP_DigestUpdate(ctx, pad, sizeof pad) == 1 &&
         EVP_DigestUpdate(ctx, inner, sizeof inner) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
         n == 32;
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    if (!ok) {
        ERR_clear_error();
        return CH_ENOMEM;
    }
    return CH_OK;
}

ch_err ch_random_bytes(void *buf, size_t n, ch_error *err)
{
    unsigned char *p = buf;

    /* RAND_bytes takes an int; ask in chunks so any size_t works. */
    while (n > 0) {
        int chunk = n > (size_t)1 << 30 ? 1 << 30 : (int)n;
        if (RAND_bytes(p, chunk) != 1) {
            ERR_clear_error();
            return ch_error_set(err, CH_EIO, "no random bytes from the system generator");
        }
        p += chunk;
        n -= (size_t)chunk;
    }
    return CH_OK;
}

int ch_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void ch_cleanse(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

/* Passphrase callback that refuses: without it OpenSSL would prompt on the
 * terminal for an encrypted key, and so would libjwt on every signature,
 * since it reads keys with the default callback. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

ch_err ch_rsa_pem_check(const char *pem, int is_private, int min_bits, int *bits_out, ch_error *err)
{
    const char *what = is_private ? "private" : "public";
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    ch_err rc = CH_OK;
    int bits;

    if (pem == NULL || pem[0] == '\0')
        return ch_error_set(err, CH_EINVAL, "no PEM %s key", what);
    bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory reading a PEM key");
        goto done;
    }
    pkey = is_private ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                      : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        rc = ch_error_set(err, CH_EINVAL, "not a PEM %s key%s", what,
                          is_private ? " (or it is encrypted)" : "");
        goto done;
    }
    /* RSA only: RSA-PSS keys and EC keys cannot make RS256 signatures. */
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        rc = ch_error_set(err, CH_EINVAL, "the %s key is not an RSA key", what);
        goto done;
    }
    bits = EVP_PKEY_get_bits(pkey);
    if (bits < min_bits) {
        rc = ch_error_set(err, CH_EINVAL, "RSA %s key of %d bits; need %d", what, bits, min_bits);
        goto done;
    }
    if (bits_out != NULL)
        *bits_out = bits;
done:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}
