/*
 * hash.h -- SHA-256 content hashes for datasets, configs and bundles.
 *
 * Streaming: feed bytes as they are read so that a dataset is hashed in
 * the same pass that parses it. src/lib/hash.c is the only file that
 * includes OpenSSL headers.
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

#ifdef __cplusplus
}
#endif
#endif /* CH_HASH_H */
