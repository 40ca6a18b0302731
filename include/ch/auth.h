/*
 * auth.h -- who may call the prediction service, and how they prove it.
 *
 * Four roles with a fixed permission matrix (docs/security.md), bearer
 * tokens (JWT, HS256 with a shared secret or RS256 with a key pair),
 * password hashes (Argon2id), service API keys (random, stored only as a
 * digest) and keyed pseudonyms for customer ids (HMAC-SHA256).
 *
 * The adapters are src/lib/jwt.c (the only file that includes libjwt) and
 * src/lib/password.c (the only file that includes argon2.h); random bytes
 * and HMAC come from hash.h (OpenSSL). Nothing here touches storage: users
 * and keys live in the registry store (registry.h).
 *
 * Workload: a token is verified on every request, so verification is
 * cached per token; passwords are hashed rarely and on purpose slowly.
 */
#ifndef CH_AUTH_H
#define CH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- roles and permissions ---------------------------------------------- */

typedef enum ch_role {
    CH_ROLE_NONE = 0,      /* not a role: parse failure, anonymous */
    CH_ROLE_ADMIN = 1,     /* everything, including users and keys */
    CH_ROLE_SCIENTIST = 2, /* models: read, promote, rollback; audit */
    CH_ROLE_ANALYST = 3,   /* predictions with reasons, feedback, read models */
    CH_ROLE_SERVICE = 4    /* machine clients: predictions and feedback */
} ch_role;

typedef enum ch_perm {
    CH_PERM_PREDICT = 0,      /* POST /v1/predict, /v1/predict/batch */
    CH_PERM_FEEDBACK = 1,     /* POST /v1/feedback */
    CH_PERM_MODELS_READ = 2,  /* GET /v1/models, /v1/models/{version} */
    CH_PERM_MODELS_WRITE = 3, /* promote, rollback */
    CH_PERM_USERS = 4,        /* users and API keys */
    CH_PERM_AUDIT = 5,        /* read the audit log */
    CH_PERM_MONITOR = 6,      /* GET /v1/monitor/...: drift, decay, estimate; jobs, rollouts */
    CH_PERM_OPERATE = 7,      /* start or cancel jobs; start, pause, resume, abort rollouts */
    CH_PERM__COUNT
} ch_perm;

/* "admin", "scientist", "analyst", "service"; "none" for CH_ROLE_NONE.
 * Static text. Thread-safe. */
CH_API const char *ch_role_name(ch_role r);
/* The role named 's' (exact, lowercase), or CH_ROLE_NONE. Thread-safe. */
CH_API ch_role ch_role_parse(const char *s);
/* Whether role 'r' holds permission 'p' (CH_ROLE_NONE holds none).
 * Thread-safe. */
CH_API int ch_role_allows(ch_role r, ch_perm p);
/* "predict", "feedback", "models:read", ... Static text. */
CH_API const char *ch_perm_name(ch_perm p);

/* Who made a request, once authenticated. */
typedef struct ch_principal {
    char name[65]; /* user name, or the API key's id ("key:<id>") */
    ch_role role;
    int64_t expires; /* unix seconds; 0 = no expiry (API keys) */
} ch_principal;

/* ---- JSON Web Tokens ------------------------------------------------------ */

typedef struct ch_jwt ch_jwt; /* immutable after ch_jwt_new(), plus a cache */

typedef struct ch_jwt_opts {
    const char *alg;             /* "HS256" (default) or "RS256" */
    const unsigned char *secret; /* HS256: the shared secret, >= 32 bytes */
    size_t secret_len;           /* bytes */
    const char *public_key_pem;  /* RS256: verifies; RSA >= 2048 bits */
    const char *private_key_pem; /* RS256: signs; NULL = cannot issue */
    const char *issuer;          /* "iss" written and required (default "churn") */
    const char *audience;        /* "aud" written and required (default "churn-api") */
    int64_t ttl_s;               /* lifetime of issued tokens (default 3600) */
    int64_t leeway_s;            /* clock skew allowed on exp/nbf (default 30) */
    size_t cache_entries;        /* verified tokens remembered (default 4096; 0 = none) */
} ch_jwt_opts;

/* Fills 'o' with the defaults above; no key is set. Never fails. */
CH_API void ch_jwt_opts_default(ch_jwt_opts *o);

/* Makes a verifier/issuer. Copies everything it needs from 'o' (keys are
 * wiped from memory on ch_jwt_free()). HS256 uses only 'secret'; RS256
 * uses only the PEM keys, which must be unencrypted RSA keys of at least
 * 2048 bits, and when both are given the private key must sign what the
 * public key verifies (checked here with one signature, about 1 ms).
 * 'issuer' and 'audience' must be non-empty, 'ttl_s' 1..366 days,
 * 'leeway_s' 0..3600, 'cache_entries' at most 2^20. Errors: CH_EINVAL
 * (any of these, with the reason), CH_EIO (no randomness for the cache
 * seed), CH_ENOMEM. Thread-safe (touches nothing shared). */
CH_API CH_NODISCARD ch_err ch_jwt_new(const ch_jwt_opts *o, ch_jwt **out, ch_error *err);
/* NULL is a no-op. Must not run concurrently with other calls on 'j'. */
CH_API void ch_jwt_free(ch_jwt *j);

/* Appends a signed token for 'sub' with 'role' ("role" claim), iat/nbf =
 * 'now', exp = now + ttl, iss, aud, and a random jti (128 bits, hex).
 * 'sub' must be 1..64 bytes without control characters and must not start
 * with "key:" (the prefix of API-key principals). On failure 'out' may
 * hold a sticky error (see buf.h). Errors: CH_EINVAL (RS256 without a
 * private key, bad 'sub', CH_ROLE_NONE or an unknown role, 'now' out of
 * range), CH_EIO (no randomness), CH_ENOMEM, CH_ELIMIT (past the cap of
 * 'out'). About 5 us for HS256, 1 ms for RS256. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_jwt_issue(ch_jwt *j, const char *sub, ch_role role, int64_t now,
                                        ch_buf *out, ch_error *err);

/* Verifies 'token' ('len' bytes, no "Bearer " prefix) at time 'now' (unix
 * seconds), in this order:
 *   - shape: 1..8192 bytes, three non-empty base64url segments;
 *   - header: "alg" must be the configured one, checked before any key is
 *     used (so "none" and HS256/RS256 confusion fail); "typ", if present,
 *     must be "JWT" (any case); "crit" must be absent; no duplicate keys;
 *   - signature length: must fit the alg and key;
 *   - payload: a JSON object without duplicate keys;
 *   - signature: must match (libjwt);
 *   - claims: now < exp + leeway (exp required), now + leeway >= nbf (nbf
 *     optional), iss equal to ours, aud equal to ours or an array holding
 *     ours, sub 1..64 printable bytes not starting with "key:", role
 *     naming a role.
 * On success fills '*out' (name = sub, role, expires = exp). Errors:
 * CH_EAUTH with a short reason ("no token", "token too long", "malformed
 * token (need 3 segments)", "alg none not allowed", "unexpected alg HS256
 * (want RS256)", "bad signature", "token expired", "token not yet valid",
 * "token has no exp", "wrong issuer", "token has no audience", "wrong
 * audience", "token has no subject", "bad subject", "token has no role",
 * "unknown role", ...), CH_ENOMEM.
 *
 * Thread-safe. Tokens that pass are cached (keyed by their exact bytes,
 * compared in constant time) until they are evicted (expired entries
 * first, then the least recently used); a cache hit skips the header,
 * signature and claim checks but re-checks exp and nbf against 'now', so
 * a cached token still expires on time. Tokens longer than 2048 bytes are
 * not cached. Cost: a hit about 0.2-0.6 us; a full check about 10 us for
 * HS256 and 0.3-0.5 ms for RS256 (libjwt parses the PEM key every time).
 *
 * There is no revocation: a token stays valid until exp even if its user
 * is deleted or changes role. Replacing the verifier (a new secret or key
 * pair) invalidates every token and the cache. */
CH_API CH_NODISCARD ch_err ch_jwt_verify(ch_jwt *j, const char *token, size_t len, int64_t now,
                                         ch_principal *out, ch_error *err);

/* Cache counters since ch_jwt_new(), summed over shards (each shard is
 * locked in turn, so the sums are not one instant's snapshot). NULL
 * out-parameters are skipped; with no cache both are 0. Thread-safe. */
CH_API void ch_jwt_cache_stats(ch_jwt *j, uint64_t *hits, uint64_t *misses);

/* ---- passwords (Argon2id) ------------------------------------------------- */

#define CH_PASSWORD_HASH_MAX 160 /* bytes of an encoded hash, NUL included */

/* Hashes 'password' with Argon2id (m = 19456 KiB, t = 2, p = 1, 16-byte
 * random salt, 32-byte tag) into 'out' in the standard encoded form
 * ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"); 'out' is written only
 * on success. Passwords shorter than 8 or longer than 1024 bytes are
 * refused. Takes about 20-40 ms and 19 MiB. Errors: CH_EINVAL, CH_EIO (no
 * randomness), CH_EBUSY (see below), CH_ENOMEM.
 *
 * Thread-safe. To bound memory, Argon2 computations (hash and verify
 * together) run one at a time process-wide, in memory mapped for the call
 * and unmapped after it; a caller that cannot start within 2 s gets
 * CH_EBUSY, so a login flood cannot hold every thread. */
CH_API CH_NODISCARD ch_err ch_password_hash(const char *password, char out[CH_PASSWORD_HASH_MAX],
                                            ch_error *err);

/* Checks 'password' against 'encoded' (from ch_password_hash()), in time
 * independent of where they differ. 'encoded' must be Argon2id, version
 * 19, with m <= 32768 KiB, t <= 10, p <= 16 (so a corrupt stored hash
 * cannot demand unbounded work); it is checked before the password. A
 * password outside 8..1024 bytes fails at once with CH_EAUTH. Errors:
 * CH_EAUTH ("wrong password"), CH_EFORMAT ('encoded' is not such an
 * Argon2id hash), CH_EBUSY, CH_ENOMEM. Thread-safe, gated as above.
 * Callers should also run a verify against a fixed dummy hash when the
 * user does not exist, so that response time does not reveal user names. */
CH_API CH_NODISCARD ch_err ch_password_verify(const char *encoded, const char *password,
                                              ch_error *err);

/* ---- API keys ------------------------------------------------------------- */

/* A key reads "chk_<id>_<secret>": 12 hex digits of id (public, shown in
 * listings) and 40 hex digits of secret. Only the SHA-256 of the whole key
 * is stored. */
#define CH_API_KEY_LEN    57 /* characters, without the NUL */
#define CH_API_KEY_ID_LEN 12

/* Makes a new random key (240 random bits: 48 in the id, 160 in the
 * secret, lowercase hex) into 'key', its id into 'id' and the hex digest
 * to store into 'sha256'. Outputs are written only on success. Errors:
 * CH_EIO (no randomness), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_api_key_new(char key[CH_API_KEY_LEN + 1],
                                          char id[CH_API_KEY_ID_LEN + 1], char sha256[65],
                                          ch_error *err);

/* Checks the exact shape of 'key' ('len' bytes: "chk_", 12 lowercase hex,
 * "_", 40 lowercase hex) before hashing anything, then writes its id and
 * the hex SHA-256 of the whole key. The caller looks the id up and
 * compares digests with ch_ct_equal() (hash.h). Errors: CH_EAUTH ("not an
 * API key"), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_api_key_parse(const char *key, size_t len,
                                            char id[CH_API_KEY_ID_LEN + 1], char sha256[65],
                                            ch_error *err);

/* ---- pseudonyms ------------------------------------------------------------ */

#define CH_PSEUDONYM_LEN 32 /* hex digits, without the NUL */

/* Writes the pseudonym of customer id 'id' ('len' bytes; may be empty)
 * under 'key': the first 128 bits of HMAC-SHA256(key, id) in lowercase
 * hex. Stable for a key, not reversible without it. About 1 us. Errors:
 * CH_EINVAL (empty key), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_pseudonymize(const unsigned char *key, size_t key_len, const char *id,
                                           size_t len, char out[CH_PSEUDONYM_LEN + 1],
                                           ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_AUTH_H */
