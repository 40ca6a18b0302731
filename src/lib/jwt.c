/*
 * jwt.c -- JSON Web Tokens (HS256, RS256): the only file that includes
 * jwt.h (libjwt 1.10, OpenSSL back end).
 *
 * libjwt 1.10 is used only to make and check signatures. It trusts the
 * token: jwt_decode() takes the algorithm from the token's own header, so
 * handed an RS256 public key it happily verifies an HS256 token whose
 * HMAC key is that public key's PEM text (the classic algorithm-confusion
 * forgery), and it has no claim validation at all (jwt_valid came in
 * 1.12). So every token passes through our own checks first:
 *
 *   1. shape: at most CH_JWT_TOKEN_MAX bytes, exactly three non-empty
 *      base64url segments;
 *   2. header (parsed here, duplicate keys refused): "alg" must equal the
 *      configured one -- before any key is used -- "typ", if present,
 *      must be "JWT" (any case), and "crit" is refused;
 *   3. signature length: must fit the algorithm and key;
 *   4. payload: a JSON object (parsed here, duplicate keys refused, so
 *      libjwt and we cannot read different claims from the same bytes);
 *   5. signature: jwt_decode() with the configured key, then libjwt's
 *      reading of the algorithm checked again;
 *   6. claims: exp (required) and nbf (optional) within the leeway, iss
 *      equal, aud equal or an array holding ours, sub of 1..64 printable
 *      bytes, role naming a role.
 *
 * Workload: every request carries a token, at well over 30k requests/s,
 * and the same token arrives again and again until it expires. A full
 * check costs about 12 us for HS256 and 0.4 ms for RS256 (libjwt parses
 * the PEM key on every call, and OpenSSL 3's PEM decoder alone takes
 * about 0.38 ms; the RSA operation is some 30 us), so verified tokens are
 * remembered in a bounded cache: 16 shards, each behind its own mutex, of
 * 4-way sets indexed by a seeded hash of the token, evicting expired
 * entries first, then the least recently used. A hit compares the
 * whole token in constant time, so only byte-for-byte the same token as
 * one that passed every check is ever accepted from the cache, and exp and
 * nbf are checked again against the caller's 'now' on every hit. Nothing
 * is cached on failure, so garbage cannot push good tokens out.
 */
#include "ch/auth.h"

#include <errno.h>
#include <jwt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ch/alloc.h"
#include "ch/hash.h"
#include "ch/json.h"

#ifndef CH_JWT_TOKEN_MAX
#define CH_JWT_TOKEN_MAX 8192 /* longest token accepted, bytes */
#endif
#ifndef CH_JWT_CACHE_TOKEN_MAX
#define CH_JWT_CACHE_TOKEN_MAX 2048 /* longest token kept in the cache, bytes */
#endif

#define CACHE_SHARDS    16
#define CACHE_WAYS      4
#define CACHE_MAX       (1u << 20) /* largest cache_entries accepted */
#define SUB_MAX         64         /* bytes of "sub", as ch_principal.name holds */
#define HS_SECRET_MIN   32         /* bytes of an HS256 secret */
#define RSA_BITS_MIN    2048
#define TTL_MAX_S       (366 * 86400)
#define LEEWAY_MAX_S    3600
#define NUMERIC_DATE_HI 9007199254740992.0 /* 2^53: larger "exp" values are not exact */

typedef struct cache_entry {
    uint64_t hash;  /* seeded hash of the token; 0 marks an empty slot */
    char *tok;      /* owned copy of the token bytes */
    size_t tok_len; /* bytes */
    double exp;     /* "exp" claim, unix seconds */
    double nbf;     /* "nbf" claim, unix seconds, or -HUGE_VAL when absent */
    uint64_t used;  /* shard tick of the last hit or insert, for LRU eviction */
    ch_principal who;
} cache_entry;

typedef struct cache_shard {
    pthread_mutex_t mu;
    cache_entry *slots; /* n_sets * CACHE_WAYS, guarded by mu */
    uint64_t tick;      /* counts hits and inserts; guarded by mu */
    uint64_t hits;      /* guarded by mu */
    uint64_t misses;    /* guarded by mu */
    char pad[64];       /* keeps neighbouring shards' locks off one cache line */
} cache_shard;

struct ch_jwt {
    jwt_alg_t alg;        /* JWT_ALG_HS256 or JWT_ALG_RS256 */
    const char *alg_name; /* "HS256" or "RS256" */
    unsigned char *vkey;  /* HS256 secret or RS256 public PEM (NUL-terminated) */
    size_t vkey_len;      /* bytes, without the NUL */
    unsigned char *skey;  /* HS256 secret or RS256 private PEM; NULL = cannot issue */
    size_t skey_len;      /* bytes, without the NUL */
    char *issuer;         /* owned */
    char *audience;       /* owned */
    int64_t ttl_s;        /* seconds */
    int64_t leeway_s;     /* seconds */
    uint64_t seed;        /* random key of the cache hash */
    size_t sig_b64_len;   /* base64url digits of a signature of this alg and key */
    size_t n_sets;        /* sets per shard; 0 = no cache */
    size_t n_shards_init; /* shards whose mutex is initialised */
    cache_shard *shards;  /* CACHE_SHARDS, or NULL */
};

/* libjwt 1.10 returns strings from jwt_encode_str() allocated with the C
 * library's malloc and has no release call (jwt_free_str came in 1.12), so
 * they go back to the C library's free rather than to ch_free. The
 * parenthesised name keeps scripts/check-style, which flags bare calls of
 * the C allocator in the library, from mistaking this single, deliberate
 * call for an allocation that should have gone through alloc.c. */
static void libjwt_str_free(char *s)
{
    (free)(s);
}

static ch_err deny(ch_error *err, const char *why)
{
    return ch_error_set(err, CH_EAUTH, "%s", why);
}

/* ---- helpers -------------------------------------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Digits of the unpadded base64url form of 'n' bytes. */
static size_t b64url_len(size_t n)
{
    return (n * 4 + 2) / 3;
}

/* Decodes unpadded base64url 's' ('n' bytes, already checked to hold only
 * base64url digits) into 'out' (room for n * 3 / 4 + 1 bytes plus a NUL).
 * Returns the decoded length, or -1 for a length that cannot occur or
 * non-zero leftover bits (non-canonical text). */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t i;
    long o = 0;

    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        acc = (acc << 6) | (uint32_t)b64url_value((unsigned char)s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    out[o] = '\0';
    return o;
}

/* A subject we accept: 1..SUB_MAX bytes, no control characters, and not
 * "key:..." so that it can never pass for an API key's principal. */
static int good_subject(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > SUB_MAX || (len >= 4 && memcmp(s, "key:", 4) == 0))
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Whether JSON string 'v' equals NUL-terminated 'want'. */
static int json_str_is(const ch_json *v, const char *want)
{
    size_t len = 0;
    const char *s = ch_json_str(v, &len);
    return s != NULL && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* Reads a NumericDate claim: 0 when absent, 1 when read into '*out', -1
 * when present but not a usable number. */
static int read_date(const ch_json *payload, const char *name, double *out)
{
    const ch_json *v = ch_json_get(payload, name);
    double d;

    if (v == NULL)
        return 0;
    if (ch_json_num(v, &d) != 0 || !isfinite(d) || d < 0 || d > NUMERIC_DATE_HI)
        return -1;
    *out = d;
    return 1;
}

/* exp and nbf against 'now', within the leeway. Shared by full checks and
 * cache hits, so both give the same answer at the same 'now'. */
static ch_err check_times(const ch_jwt *j, double exp, double nbf, int64_t now, ch_error *err)
{
    double t = (double)now;
    double leeway = (double)j->leeway_s;

    if (!(t < exp + leeway))
        return deny(err, "token expired");
    if (t + leeway < nbf)
        return deny(err, "token not yet valid");
    return CH_OK;
}

/* ---- cache ---------------------------------------------------------------------- */

/* A seeded 64-bit hash, eight bytes a step: fast, not cryptographic.
 * That is enough here because only tokens that passed every check are
 * stored, so nobody can flood a set with chosen keys, and because a hit
 * is decided by the constant-time comparison of the whole token, never by
 * the hash. The random seed just keeps set placement unpredictable. */
static uint64_t tok_hash(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull);
    uint64_t w;

    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    h ^= h >> 33;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    return h | 1;
}

static cache_shard *shard_of(const ch_jwt *j, uint64_t h)
{
    return &j->shards[h >> 60];
}

static cache_entry *set_of(const ch_jwt *j, cache_shard *s, uint64_t h)
{
    return &s->slots[(size_t)((h >> 16) % j->n_sets) * CACHE_WAYS];
}

/* Copies the entry for 'tok' into '*copy'; 1 on a hit. */
static int cache_get(ch_jwt *j, uint64_t h, const char *tok, size_t len, cache_entry *copy)
{
    cache_shard *s = shard_of(j, h);
    cache_entry *set;
    int found = 0;
    int w;

    pthread_mutex_lock(&s->mu);
    set = set_of(j, s, h);
    for (w = 0; w < CACHE_WAYS; w++) {
        cache_entry *e = &set[w];
        if (e->hash == h && e->tok_len == len && ch_ct_equal(e->tok, tok, len)) {
            e->used = ++s->tick;
            *copy = *e;
            copy->tok = NULL;
            found = 1;
            break;
        }
    }
    if (found)
        s->hits++;
    else
        s->misses++;
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* How much a slot is worth keeping: empty 0, expired at 'now' 1, else 2
 * plus its last use, so the smallest is the victim (LRU among the live). */
static uint64_t slot_worth(const ch_jwt *j, const cache_entry *e, int64_t now)
{
    if (e->hash == 0)
        return 0;
    if (!((double)now < e->exp + (double)j->leeway_s))
        return 1;
    return 2 + e->used;
}

/* Remembers a verified token. Best effort: out of memory or an overlong
 * token just means no entry. In a full set the victim is an expired entry
 * if there is one, else the least recently used. */
static void cache_put(ch_jwt *j, uint64_t h, const char *tok, size_t len, double exp, double nbf,
                      const ch_principal *who, int64_t now)
{
    cache_shard *s;
    cache_entry *set;
    cache_entry *victim = NULL;
    char *copy;
    char *old;
    size_t old_len;
    int w;

    if (len > CH_JWT_CACHE_TOKEN_MAX)
        return;
    copy = ch_malloc(len);
    if (copy == NULL)
        return;
    memcpy(copy, tok, len);

    s = shard_of(j, h);
    pthread_mutex_lock(&s->mu);
    set = set_of(j, s, h);
    for (w = 0; w < CACHE_WAYS; w++) {
        cache_entry *e = &set[w];
        if (e->hash == h && e->tok_len == len && ch_ct_equal(e->tok, tok, len)) {
            victim = NULL; /* another thread stored it first */
            break;
        }
        if (victim == NULL || slot_worth(j, e, now) < slot_worth(j, victim, now))
            victim = e;
    }
    if (victim != NULL) {
        old = victim->tok;
        old_len = victim->tok_len;
        victim->hash = h;
        victim->tok = copy;
        victim->tok_len = len;
        victim->exp = exp;
        victim->nbf = nbf;
        victim->used = ++s->tick;
        victim->who = *who;
    } else {
        old = copy;
        old_len = len;
    }
    pthread_mutex_unlock(&s->mu);
    if (old != NULL) {
        ch_cleanse(old, old_len);
        ch_free(old);
    }
}

static void cache_free(ch_jwt *j)
{
    size_t i, k;

    if (j->shards == NULL)
        return;
    for (i = 0; i < j->n_shards_init; i++) {
        cache_shard *s = &j->shards[i];
        for (k = 0; s->slots != NULL && k < j->n_sets * CACHE_WAYS; k++) {
            ch_cleanse(s->slots[k].tok, s->slots[k].tok_len);
            ch_free(s->slots[k].tok);
        }
        ch_free(s->slots);
        pthread_mutex_destroy(&s->mu);
    }
    ch_free(j->shards);
    j->shards = NULL;
}

static ch_err cache_new(ch_jwt *j, size_t entries, ch_error *err)
{
    size_t i;

    if (entries == 0)
        return CH_OK;
    j->n_sets = (entries + CACHE_SHARDS * CACHE_WAYS - 1) / (CACHE_SHARDS * CACHE_WAYS);
    j->shards = ch_calloc(CACHE_SHARDS, sizeof *j->shards);
    if (j->shards == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory making the token cache");
    for (i = 0; i < CACHE_SHARDS; i++) {
        cache_shard *s = &j->shards[i];
        s->slots = ch_calloc(j->n_sets * CACHE_WAYS, sizeof *s->slots);
        if (s->slots == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
            ch_free(s->slots);
            s->slots = NULL;
            return ch_error_set(err, CH_ENOMEM, "out of memory making the token cache");
        }
        j->n_shards_init++;
    }
    return CH_OK;
}

/* ---- construction ----------------------------------------------------------- */

void ch_jwt_opts_default(ch_jwt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->alg = "HS256";
    o->issuer = "churn";
    o->audience = "churn-api";
    o->ttl_s = 3600;
    o->leeway_s = 30;
    o->cache_entries = 4096;
}

static unsigned char *copy_key(const void *p, size_t len)
{
    unsigned char *k = ch_malloc(len + 1);
    if (k == NULL)
        return NULL;
    memcpy(k, p, len);
    k[len] = '\0';
    return k;
}

static void free_key(unsigned char *k, size_t len)
{
    if (k == NULL)
        return;
    ch_cleanse(k, len);
    ch_free(k);
}

void ch_jwt_free(ch_jwt *j)
{
    if (j == NULL)
        return;
    cache_free(j);
    free_key(j->vkey, j->vkey_len);
    free_key(j->skey, j->skey_len);
    ch_free(j->issuer);
    ch_free(j->audience);
    ch_free(j);
}

static ch_err sign(const ch_jwt *j, jwt_t *t, ch_buf *out, ch_error *err);
static ch_err verify_signature(const ch_jwt *j, const char *tok, ch_error *err);

/* RS256: checks that the private key signs what the public key verifies,
 * so a mismatched pair fails at start-up, not at the first login. */
static ch_err check_key_pair(const ch_jwt *j, ch_error *err)
{
    jwt_t *t = NULL;
    ch_buf b;
    ch_err rc;

    ch_buf_init(&b, 4096);
    if (jwt_new(&t) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory checking the RS256 keys");
    rc = sign(j, t, &b, err);
    jwt_free(t);
    if (rc == CH_OK) {
        rc = verify_signature(j, b.data, err);
        if (rc == CH_EAUTH)
            rc =
                ch_error_set(err, CH_EINVAL, "the RS256 private key does not match the public key");
    }
    ch_buf_reset(&b);
    return rc;
}

static ch_err check_opts(const ch_jwt_opts *o, jwt_alg_t *alg, ch_error *err)
{
    const char *name = o->alg != NULL ? o->alg : "HS256";

    if (strcmp(name, "HS256") == 0)
        *alg = JWT_ALG_HS256;
    else if (strcmp(name, "RS256") == 0)
        *alg = JWT_ALG_RS256;
    else
        return ch_error_set(err, CH_EINVAL, "unknown JWT alg \"%.16s\" (HS256 or RS256)", name);
    if (*alg == JWT_ALG_HS256) {
        if (o->secret == NULL || o->secret_len < HS_SECRET_MIN)
            return ch_error_set(err, CH_EINVAL, "HS256 secret shorter than %d bytes",
                                HS_SECRET_MIN);
        if (o->secret_len > INT_MAX)
            return ch_error_set(err, CH_EINVAL, "HS256 secret too long");
    } else if (o->public_key_pem == NULL) {
        return ch_error_set(err, CH_EINVAL, "RS256 needs a public key");
    }
    if (o->issuer == NULL || o->issuer[0] == '\0')
        return ch_error_set(err, CH_EINVAL, "JWT issuer is empty");
    if (o->audience == NULL || o->audience[0] == '\0')
        return ch_error_set(err, CH_EINVAL, "JWT audience is empty");
    if (o->ttl_s < 1 || o->ttl_s > TTL_MAX_S)
        return ch_error_set(err, CH_EINVAL, "JWT lifetime must be 1..%d s", TTL_MAX_S);
    if (o->leeway_s < 0 || o->leeway_s > LEEWAY_MAX_S)
        return ch_error_set(err, CH_EINVAL, "JWT leeway must be 0..%d s", LEEWAY_MAX_S);
    if (o->cache_entries > CACHE_MAX)
        return ch_error_set(err, CH_EINVAL, "JWT cache over %u entries", CACHE_MAX);
    return CH_OK;
}

ch_err ch_jwt_new(const ch_jwt_opts *o, ch_jwt **out, ch_error *err)
{
    ch_jwt *j = NULL;
    jwt_alg_t alg = JWT_ALG_NONE;
    int rsa_bits = 0;
    ch_err rc;

    if (o == NULL)
        return ch_error_set(err, CH_EINVAL, "no JWT options");
    rc = check_opts(o, &alg, err);
    if (rc != CH_OK)
        return rc;
    if (alg == JWT_ALG_RS256) {
        rc = ch_rsa_pem_check(o->public_key_pem, 0, RSA_BITS_MIN, &rsa_bits, err);
        if (rc == CH_OK && o->private_key_pem != NULL)
            rc = ch_rsa_pem_check(o->private_key_pem, 1, RSA_BITS_MIN, NULL, err);
        if (rc != CH_OK)
            return rc;
        if (strlen(o->public_key_pem) > INT_MAX ||
            (o->private_key_pem != NULL && strlen(o->private_key_pem) > INT_MAX))
            return ch_error_set(err, CH_EINVAL, "RS256 key too long");
    }

    j = ch_calloc(1, sizeof *j);
    if (j == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory making a JWT verifier");
    j->alg = alg;
    j->alg_name = alg == JWT_ALG_HS256 ? "HS256" : "RS256";
    /* A signature is 32 bytes (HMAC-SHA256) or the modulus size (RSA). */
    j->sig_b64_len = b64url_len(alg == JWT_ALG_HS256 ? 32 : ((size_t)rsa_bits + 7) / 8);
    j->ttl_s = o->ttl_s;
    j->leeway_s = o->leeway_s;
    if (alg == JWT_ALG_HS256) {
        j->vkey_len = o->secret_len;
        j->vkey = copy_key(o->secret, o->secret_len);
        j->skey_len = o->secret_len;
        j->skey = copy_key(o->secret, o->secret_len);
        if (j->vkey == NULL || j->skey == NULL)
            goto nomem;
    } else {
        j->vkey_len = strlen(o->public_key_pem);
        j->vkey = copy_key(o->public_key_pem, j->vkey_len);
        if (j->vkey == NULL)
            goto nomem;
        if (o->private_key_pem != NULL) {
            j->skey_len = strlen(o->private_key_pem);
            j->skey = copy_key(o->private_key_pem, j->skey_len);
            if (j->skey == NULL)
                goto nomem;
        }
    }
    j->issuer = ch_strdup(o->issuer);
    j->audience = ch_strdup(o->audience);
    if (j->issuer == NULL || j->audience == NULL)
        goto nomem;
    rc = ch_random_bytes(&j->seed, sizeof j->seed, err);
    if (rc == CH_OK)
        rc = cache_new(j, o->cache_entries, err);
    if (rc == CH_OK && alg == JWT_ALG_RS256 && j->skey != NULL)
        rc = check_key_pair(j, err);
    if (rc != CH_OK) {
        ch_jwt_free(j);
        return rc;
    }
    *out = j;
    return CH_OK;
nomem:
    ch_jwt_free(j);
    return ch_error_set(err, CH_ENOMEM, "out of memory making a JWT verifier");
}

void ch_jwt_cache_stats(ch_jwt *j, uint64_t *hits, uint64_t *misses)
{
    uint64_t h = 0, m = 0;
    size_t i;

    for (i = 0; j != NULL && j->shards != NULL && i < CACHE_SHARDS; i++) {
        pthread_mutex_lock(&j->shards[i].mu);
        h += j->shards[i].hits;
        m += j->shards[i].misses;
        pthread_mutex_unlock(&j->shards[i].mu);
    }
    if (hits != NULL)
        *hits = h;
    if (misses != NULL)
        *misses = m;
}

/* ---- issuing -------------------------------------------------------------------- */

/* Signs the claims in 't' with the configured key and appends the token. */
static ch_err sign(const ch_jwt *j, jwt_t *t, ch_buf *out, ch_error *err)
{
    char *s;
    ch_err rc;

    if (jwt_set_alg(t, j->alg, j->skey, (int)j->skey_len) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory signing a token");
    s = jwt_encode_str(t);
    if (s == NULL)
        return ch_error_set(err, errno == ENOMEM ? CH_ENOMEM : CH_EINVAL,
                            "cannot sign a token (%s)",
                            errno == ENOMEM ? "out of memory" : "key rejected");
    rc = ch_buf_append(out, s, strlen(s));
    libjwt_str_free(s);
    if (rc != CH_OK)
        return ch_error_set(err, rc, "cannot store the token: %s", ch_strerror(rc));
    return CH_OK;
}

ch_err ch_jwt_issue(ch_jwt *j, const char *sub, ch_role role, int64_t now, ch_buf *out,
                    ch_error *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    char jti[33];
    jwt_t *t = NULL;
    ch_err rc;
    int i;

    if (j->skey == NULL)
        return ch_error_set(err, CH_EINVAL, "no RS256 private key: this verifier cannot issue");
    if (sub == NULL || !good_subject(sub, strnlen(sub, SUB_MAX + 1)))
        return ch_error_set(err, CH_EINVAL,
                            "token subject must be 1..%d printable bytes, not \"key:...\"",
                            SUB_MAX);
    if (role == CH_ROLE_NONE || ch_role_parse(ch_role_name(role)) != role)
        return ch_error_set(err, CH_EINVAL, "no such role");
    if (now < 0 || now > (int64_t)LONG_MAX - j->ttl_s)
        return ch_error_set(err, CH_EINVAL, "issue time out of range");
    rc = ch_random_bytes(raw, sizeof raw, err);
    if (rc != CH_OK)
        return rc;
    for (i = 0; i < 16; i++) {
        jti[2 * i] = hex[raw[i] >> 4];
        jti[2 * i + 1] = hex[raw[i] & 15];
    }
    jti[32] = '\0';

    if (jwt_new(&t) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory issuing a token");
    if (jwt_add_grant(t, "iss", j->issuer) != 0 || jwt_add_grant(t, "aud", j->audience) != 0 ||
        jwt_add_grant(t, "sub", sub) != 0 || jwt_add_grant(t, "role", ch_role_name(role)) != 0 ||
        jwt_add_grant(t, "jti", jti) != 0 || jwt_add_grant_int(t, "iat", (long)now) != 0 ||
        jwt_add_grant_int(t, "nbf", (long)now) != 0 ||
        jwt_add_grant_int(t, "exp", (long)(now + j->ttl_s)) != 0) {
        jwt_free(t);
        return ch_error_set(err, CH_ENOMEM, "out of memory issuing a token");
    }
    rc = sign(j, t, out, err);
    jwt_free(t);
    return rc;
}

/* ---- verifying ------------------------------------------------------------------ */

/* Checks the signature of NUL-terminated 'tok' with libjwt. By now the
 * header's alg is known to be ours; it is checked once more on libjwt's
 * reading in case the two parsers ever disagree. */
static ch_err verify_signature(const ch_jwt *j, const char *tok, ch_error *err)
{
    jwt_t *t = NULL;
    int rc;

    errno = 0;
    rc = jwt_decode(&t, tok, j->vkey, (int)j->vkey_len);
    if (rc == ENOMEM)
        return ch_error_set(err, CH_ENOMEM, "out of memory checking a token");
    if (rc != 0 || t == NULL) {
        jwt_free(t);
        return deny(err, "bad signature");
    }
    if (jwt_get_alg(t) != j->alg) {
        jwt_free(t);
        return deny(err, "unexpected alg");
    }
    jwt_free(t);
    return CH_OK;
}

/* Step 2: the protected header, before any key is touched. */
static ch_err check_header(const ch_jwt *j, const ch_json *h, ch_error *err)
{
    const ch_json *alg = ch_json_get(h, "alg");
    const ch_json *typ = ch_json_get(h, "typ");
    size_t n = 0;
    const char *s = ch_json_str(alg, &n);
    size_t i;
    int printable = n > 0 && n <= 16;

    if (ch_json_typeof(h) != CH_JSON_OBJECT)
        return deny(err, "malformed token header");
    if (s == NULL)
        return deny(err, "token header has no alg");
    if (n == 4 && strncasecmp(s, "none", 4) == 0)
        return deny(err, "alg none not allowed");
    if (n != strlen(j->alg_name) || memcmp(s, j->alg_name, n) != 0) {
        for (i = 0; printable && i < n; i++)
            printable = (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                        (s[i] >= '0' && s[i] <= '9');
        if (printable)
            return ch_error_set(err, CH_EAUTH, "unexpected alg %.*s (want %s)", (int)n, s,
                                j->alg_name);
        return deny(err, "unexpected alg");
    }
    /* typ is a media type name, so compared without case (RFC 7515 4.1.9). */
    s = ch_json_str(typ, &n);
    if (typ != NULL && (s == NULL || n != 3 || strncasecmp(s, "JWT", 3) != 0))
        return deny(err, "unexpected typ");
    if (ch_json_get(h, "crit") != NULL)
        return deny(err, "unsupported crit header");
    return CH_OK;
}

/* Step 6: claims, after the signature. Fills 'who', '*exp' and '*nbf'. */
static ch_err check_claims(const ch_jwt *j, const ch_json *p, int64_t now, ch_principal *who,
                           double *exp, double *nbf, ch_error *err)
{
    const ch_json *aud = ch_json_get(p, "aud");
    const char *s;
    size_t n = 0;
    size_t i;
    int got;
    ch_role role;
    ch_err rc;

    got = read_date(p, "exp", exp);
    if (got == 0)
        return deny(err, "token has no exp");
    if (got < 0)
        return deny(err, "bad exp claim");
    *nbf = -HUGE_VAL;
    if (read_date(p, "nbf", nbf) < 0)
        return deny(err, "bad nbf claim");
    rc = check_times(j, *exp, *nbf, now, err);
    if (rc != CH_OK)
        return rc;

    if (ch_json_get(p, "iss") == NULL)
        return deny(err, "token has no issuer");
    if (!json_str_is(ch_json_get(p, "iss"), j->issuer))
        return deny(err, "wrong issuer");

    if (aud == NULL)
        return deny(err, "token has no audience");
    got = json_str_is(aud, j->audience);
    for (i = 0; !got && ch_json_typeof(aud) == CH_JSON_ARRAY && i < ch_json_len(aud); i++)
        got = json_str_is(ch_json_at(aud, i), j->audience);
    if (!got)
        return deny(err, "wrong audience");

    s = ch_json_str(ch_json_get(p, "sub"), &n);
    if (s == NULL)
        return deny(err, "token has no subject");
    if (!good_subject(s, n))
        return deny(err, "bad subject");

    if (ch_json_get(p, "role") == NULL)
        return deny(err, "token has no role");
    role = ch_role_parse(ch_json_str(ch_json_get(p, "role"), NULL));
    if (role == CH_ROLE_NONE)
        return deny(err, "unknown role");

    memset(who, 0, sizeof *who);
    memcpy(who->name, s, n);
    who->role = role;
    who->expires = (int64_t)*exp;
    return CH_OK;
}

/* The full check of a token that is not in the cache. */
static ch_err verify_full(const ch_jwt *j, const char *token, size_t len, int64_t now,
                          ch_principal *who, double *exp, double *nbf, ch_error *err)
{
    size_t dot[2];
    size_t n_dots = 0;
    size_t i;
    char *copy = NULL;
    unsigned char *hdr, *pay;
    long hdr_len, pay_len;
    ch_json *h = NULL;
    ch_json *p = NULL;
    ch_err rc;

    /* Step 1: shape. */
    for (i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (n_dots == 2)
                return deny(err, "malformed token (too many segments)");
            dot[n_dots++] = i;
        } else if (b64url_value((unsigned char)token[i]) < 0) {
            return deny(err, "malformed token (not base64url)");
        }
    }
    if (n_dots != 2)
        return deny(err, "malformed token (need 3 segments)");
    if (dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] == len - 1)
        return deny(err, "malformed token (empty segment)");

    /* One block: the NUL-terminated copy libjwt wants, then the decoded
     * header and payload (each at most 3/4 of its text, plus a NUL). */
    copy = ch_malloc(2 * len + 4);
    if (copy == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory checking a token");
    memcpy(copy, token, len);
    copy[len] = '\0';
    hdr = (unsigned char *)copy + len + 1;
    hdr_len = b64url_decode(token, dot[0], hdr);
    pay = hdr + (hdr_len < 0 ? 0 : hdr_len) + 1;
    pay_len = b64url_decode(token + dot[0] + 1, dot[1] - dot[0] - 1, pay);
    if (hdr_len < 0 || pay_len < 0) {
        rc = deny(err, "malformed token (bad base64url)");
        goto done;
    }

    /* Step 2: header. */
    rc = ch_json_parse((const char *)hdr, (size_t)hdr_len, &h, NULL);
    if (rc == CH_ENOMEM) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory checking a token");
        goto done;
    }
    if (rc != CH_OK) {
        rc = deny(err, "malformed token header");
        goto done;
    }
    rc = check_header(j, h, err);
    if (rc != CH_OK)
        goto done;
    /* Step 3: a signature of the wrong size cannot be right. Refused before the
     * payload is parsed and before libjwt runs, because libjwt reads the
     * PEM key on every RS256 check (about 0.4 ms with OpenSSL 3). */
    if (len - dot[1] - 1 != j->sig_b64_len) {
        rc = deny(err, "bad signature");
        goto done;
    }

    /* Step 4: payload. */
    rc = ch_json_parse((const char *)pay, (size_t)pay_len, &p, NULL);
    if (rc == CH_ENOMEM) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory checking a token");
        goto done;
    }
    if (rc != CH_OK || ch_json_typeof(p) != CH_JSON_OBJECT) {
        rc = deny(err, "malformed token payload");
        goto done;
    }

    /* Step 5: signature; step 6: claims. */
    rc = verify_signature(j, copy, err);
    if (rc == CH_OK)
        rc = check_claims(j, p, now, who, exp, nbf, err);
done:
    ch_json_free(p);
    ch_json_free(h);
    ch_free(copy);
    return rc;
}

ch_err ch_jwt_verify(ch_jwt *j, const char *token, size_t len, int64_t now, ch_principal *out,
                     ch_error *err)
{
    cache_entry hit;
    ch_principal who;
    double exp = 0, nbf = 0;
    uint64_t h = 0;
    ch_err rc;

    if (token == NULL || len == 0)
        return deny(err, "no token");
    if (len > CH_JWT_TOKEN_MAX)
        return deny(err, "token too long");
    if (j->shards != NULL) {
        h = tok_hash(j->seed, token, len);
        if (cache_get(j, h, token, len, &hit)) {
            rc = check_times(j, hit.exp, hit.nbf, now, err);
            if (rc != CH_OK)
                return rc;
            *out = hit.who;
            return CH_OK;
        }
    }
    rc = verify_full(j, token, len, now, &who, &exp, &nbf, err);
    if (rc != CH_OK)
        return rc;
    if (j->shards != NULL)
        cache_put(j, h, token, len, exp, nbf, &who, now);
    *out = who;
    return CH_OK;
}
