/*
 * hash.h -- SHA-256 content hashes for datasets, configs and bundles, and
 * the few other cryptographic primitives the library needs: HMAC-SHA256,
 * random bytes, constant-time comparison and RSA key checks.
 *
 * Streaming: feed bytes as they are read so that a dataset is hashed in
 * the same pass that parses it. src/lib/hash.c is the only file that
 * includes OpenSSL headers, so everything that needs OpenSSL directly
 * (rather than through libjwt) is declared here.
 */
#ifndef CH_HASH_H
#define CH_HASH_H

#include <stddef.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_sha256 ch_sha256; /* opaque streaming state */

#define CH_SHA256_HEX_LEN 64 /* hex digits, without the NUL */

/* Starts a hash. Free with ch_sha256_free(). Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_sha256_new(ch_sha256 **out, ch_error *err);

/* Adds 'len' bytes. Never fails once the state exists. */
CH_API void ch_sha256_update(ch_sha256 *h, const void *data, size_t len);

/* Writes the digest as 64 lowercase hex digits plus NUL into 'hex' and
 * leaves 'h' finished (a further update is a bug). */
CH_API void ch_sha256_final_hex(ch_sha256 *h, char hex[CH_SHA256_HEX_LEN + 1]);

/* NULL is a no-op. */
CH_API void ch_sha256_free(ch_sha256 *h);

/* One-shot digest of a memory block. Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_sha256_hex(const void *data, size_t len,
                                         char hex[CH_SHA256_HEX_LEN + 1], ch_error *err);

/* ---- keyed hashes, randomness, comparison --------------------------------- */

#define CH_HMAC_SHA256_LEN 32 /* bytes of an HMAC-SHA256 tag */

/* Writes HMAC-SHA256('key', 'data') into 'out'. 'key' has 'key_len'
 * bytes (any length, including 0), 'data' has 'len' bytes (may be NULL
 * when 'len' is 0). '*out' is written only on success. Errors: CH_EINVAL
 * ('key_len' over INT_MAX), CH_ENOMEM (OpenSSL could not allocate). No
 * detail buffer: callers add their own message. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_hmac_sha256(const void *key, size_t key_len, const void *data,
                                          size_t len, unsigned char out[CH_HMAC_SHA256_LEN]);

/* Fills 'buf' with 'n' bytes from OpenSSL's CSPRNG (RAND_bytes), for keys,
 * salts, token ids and API keys. Errors: CH_EIO (the generator is not
 * seeded or failed). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_random_bytes(void *buf, size_t n, ch_error *err);

/* 1 when the 'n' bytes at 'a' and 'b' are equal, else 0, in time that
 * depends only on 'n' (CRYPTO_memcmp), for comparing secrets, digests and
 * MACs. Thread-safe. */
CH_API int ch_ct_equal(const void *a, const void *b, size_t n);

/* Overwrites 'n' bytes at 'p' with zeros in a way the compiler cannot
 * drop (OPENSSL_cleanse), for wiping secrets. NULL with 0 is a no-op. */
CH_API void ch_cleanse(void *p, size_t n);

/* Checks that 'pem' (NUL-terminated) holds an RSA key of at least
 * 'min_bits' bits: a private key when 'is_private' is non-zero ("BEGIN
 * PRIVATE KEY" or "BEGIN RSA PRIVATE KEY", unencrypted), else a public key
 * ("BEGIN PUBLIC KEY"). On success writes the modulus size in bits to
 * '*bits' (may be NULL). Used to reject bad RS256 keys when a verifier is
 * made rather than on the first request. Errors: CH_EINVAL ("not a PEM
 * public key", "not an RSA key", "RSA public key of 1024 bits; need
 * 2048"), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_rsa_pem_check(const char *pem, int is_private, int min_bits,
                                            int *bits, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_HASH_H */
