/*
 * password.c -- Argon2id password hashes: the only file that includes
 * argon2.h (libargon2, the reference implementation).
 *
 * Parameters are OWASP's minimum for Argon2id: m = 19456 KiB, t = 2,
 * p = 1, a 16-byte random salt and a 32-byte tag, written in the standard
 * PHC form "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>" (unpadded
 * base64), the same text argon2id_hash_encoded() makes.
 *
 * Memory is the cost that matters: the service must stay under 64 MB RSS
 * and every hash or verify holds 19 MiB for about 20-40 ms. Two measures:
 *
 *   - At most CH_PASSWORD_MAX_PARALLEL computations run at once (one by
 *     default). Callers beyond that wait up to CH_PASSWORD_WAIT_MS and
 *     then get CH_EBUSY, so that a flood of logins cannot hold every
 *     server thread.
 *   - The 19 MiB come straight from mmap and go straight back with munmap
 *     (libargon2's allocation callbacks). With the default malloc,
 *     argon2id_hash_encoded()/argon2id_verify() leave the block in glibc's
 *     per-thread arenas: after the first free glibc raises its mmap
 *     threshold to the block's size, later blocks land in each thread's
 *     arena, and arenas do not shrink. Measured: 8 threads doing 5 verifies
 *     each, one at a time, ended at 122 MB RSS that way; with mmap they
 *     peak at 25 MB and return to 5 MB. The callbacks only exist on the
 *     argon2id_ctx() interface, so this file writes and parses the encoded
 *     form itself (strictly) instead of calling argon2id_hash_encoded()
 *     and argon2id_verify(). The unit test checks the result against
 *     hashes made by argon2id_hash_encoded().
 *
 * Stored hashes are parsed strictly: only Argon2id version 19 with
 * bounded costs and lengths is accepted, so a corrupt or planted hash
 * cannot make a verify allocate gigabytes or spin for minutes.
 *
 * Workload: rare (logins and user administration) and slow on purpose.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include "ch/auth.h"

#include <argon2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ch/hash.h"

#ifndef CH_PASSWORD_M_KIB
#define CH_PASSWORD_M_KIB 19456 /* memory cost of new hashes, KiB */
#endif
#ifndef CH_PASSWORD_T
#define CH_PASSWORD_T 2 /* passes over memory */
#endif
#ifndef CH_PASSWORD_P
#define CH_PASSWORD_P 1 /* lanes */
#endif
#ifndef CH_PASSWORD_MAX_M_KIB
#define CH_PASSWORD_MAX_M_KIB 32768 /* largest memory cost a stored hash may ask for, KiB */
#endif
#ifndef CH_PASSWORD_MAX_T
#define CH_PASSWORD_MAX_T 10 /* largest time cost a stored hash may ask for */
#endif
#ifndef CH_PASSWORD_MAX_PARALLEL
#define CH_PASSWORD_MAX_PARALLEL 1 /* Argon2 computations at once, process-wide */
#endif
#ifndef CH_PASSWORD_WAIT_MS
#define CH_PASSWORD_WAIT_MS 2000 /* longest wait for a free slot before CH_EBUSY */
#endif

#define SALT_LEN   16   /* bytes, new hashes */
#define TAG_LEN    32   /* bytes, new hashes */
#define SALT_MIN   8    /* bytes, stored hashes (libargon2's minimum) */
#define TAG_MIN    16   /* bytes, stored hashes */
#define FIELD_MAX  64   /* bytes of a stored salt or tag */
#define P_MAX      16   /* lanes of a stored hash */
#define PW_MIN_LEN 8    /* bytes */
#define PW_MAX_LEN 1024 /* bytes */
#define ID_PREFIX  "$argon2id$v=19$"

/* A decoded hash: costs, salt and tag. */
typedef struct phc {
    uint32_t m, t, p;
    unsigned char salt[FIELD_MAX];
    size_t salt_len; /* bytes */
    unsigned char tag[FIELD_MAX];
    size_t tag_len; /* bytes */
} phc;

/* ---- the concurrency gate --------------------------------------------------- */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_busy; /* computations running, guarded by gate_mu */

static ch_err gate_enter(ch_error *err)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CH_PASSWORD_WAIT_MS / 1000;
    until.tv_nsec += (long)(CH_PASSWORD_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&gate_mu);
    while (gate_busy >= CH_PASSWORD_MAX_PARALLEL && rc == 0) /* stop on ETIMEDOUT */
        rc = pthread_cond_timedwait(&gate_cv, &gate_mu, &until);
    if (gate_busy >= CH_PASSWORD_MAX_PARALLEL) {
        pthread_mutex_unlock(&gate_mu);
        return ch_error_set(err, CH_EBUSY, "too many password checks at once; try again");
    }
    gate_busy++;
    pthread_mutex_unlock(&gate_mu);
    return CH_OK;
}

static void gate_leave(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_busy--;
    pthread_cond_signal(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

/* ---- encoded hashes --------------------------------------------------------- */

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Writes 'n' bytes as unpadded base64 plus a NUL; returns the digits. */
static size_t b64_encode(const unsigned char *p, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64_digits[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64_digits[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Decodes the run of unpadded base64 at '*s' into 'out' (at most 'cap'
 * bytes) and moves past it. Returns the byte count, or -1 for a run that
 * is too long, of impossible length or with stray low bits. */
static long b64_decode(const char **s, unsigned char *out, size_t cap)
{
    const char *p = *s;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    size_t n = 0;

    for (; b64_value((unsigned char)p[n]) >= 0; n++) {
        acc = (acc << 6) | (uint32_t)b64_value((unsigned char)p[n]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (n % 4 == 1 || acc != 0)
        return -1;
    *s = p + n;
    return (long)o;
}

/* Reads a decimal in [lo, hi] at '*p' and moves past it; -1 if absent,
 * out of range or with a leading zero. */
static long read_param(const char **p, long lo, long hi)
{
    const char *s = *p;
    long v = 0;

    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return -1;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > hi)
            return -1;
        s++;
    }
    if (v < lo)
        return -1;
    *p = s;
    return v;
}

/* Parses 'e' as "$argon2id$v=19$m=M,t=T,p=P$salt$tag" with costs and
 * lengths within the limits above. */
static ch_err parse_encoded(const char *e, phc *h, ch_error *err)
{
    const char *s;
    long m, t, p, n;

    if (e == NULL || strnlen(e, CH_PASSWORD_HASH_MAX) >= CH_PASSWORD_HASH_MAX ||
        strncmp(e, "$argon2id$", 10) != 0)
        return ch_error_set(err, CH_EFORMAT, "not an Argon2id hash");
    if (strncmp(e, ID_PREFIX, strlen(ID_PREFIX)) != 0)
        return ch_error_set(err, CH_EFORMAT, "unsupported Argon2 version (need v=19)");
    s = e + strlen(ID_PREFIX);
    if (strncmp(s, "m=", 2) != 0)
        return ch_error_set(err, CH_EFORMAT, "malformed Argon2id parameters");
    s += 2;
    m = read_param(&s, 8, CH_PASSWORD_MAX_M_KIB);
    if (m < 0 || strncmp(s, ",t=", 3) != 0)
        return ch_error_set(err, CH_EFORMAT, "Argon2id memory cost missing or over %d KiB",
                            CH_PASSWORD_MAX_M_KIB);
    s += 3;
    t = read_param(&s, 1, CH_PASSWORD_MAX_T);
    if (t < 0 || strncmp(s, ",p=", 3) != 0)
        return ch_error_set(err, CH_EFORMAT, "Argon2id time cost missing or over %d",
                            CH_PASSWORD_MAX_T);
    s += 3;
    p = read_param(&s, 1, P_MAX);
    if (p < 0 || m < 8 * p || *s != '$')
        return ch_error_set(err, CH_EFORMAT, "malformed Argon2id parameters");
    s++;
    n = b64_decode(&s, h->salt, sizeof h->salt);
    if (n < SALT_MIN || *s != '$')
        return ch_error_set(err, CH_EFORMAT, "malformed Argon2id salt");
    h->salt_len = (size_t)n;
    s++;
    n = b64_decode(&s, h->tag, sizeof h->tag);
    if (n < TAG_MIN || *s != '\0')
        return ch_error_set(err, CH_EFORMAT, "malformed Argon2id hash");
    h->tag_len = (size_t)n;
    h->m = (uint32_t)m;
    h->t = (uint32_t)t;
    h->p = (uint32_t)p;
    return CH_OK;
}

/* ---- computing ------------------------------------------------------------- */

/* libargon2 checks '*memory', not the return value, so NULL it on failure. */
static int map_blocks(uint8_t **memory, size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *memory = p == MAP_FAILED ? NULL : p;
    return p == MAP_FAILED ? ARGON2_MEMORY_ALLOCATION_ERROR : ARGON2_OK;
}

static void unmap_blocks(uint8_t *memory, size_t n)
{
    munmap(memory, n);
}

static ch_err argon2_to_err(int rc, ch_error *err)
{
    if (rc == ARGON2_OK)
        return CH_OK;
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
        return ch_error_set(err, CH_ENOMEM, "out of memory hashing a password");
    return ch_error_set(err, CH_EINVAL, "Argon2id failed: %s", argon2_error_message(rc));
}

/* Computes the tag of 'password' ('len' bytes) with the costs and salt of
 * 'h' into 'out' ('h->tag_len' bytes), inside the gate. */
static ch_err compute(const phc *h, const char *password, size_t len, unsigned char *out,
                      ch_error *err)
{
    argon2_context ctx;
    ch_err rc;
    int arc;

    memset(&ctx, 0, sizeof ctx);
    ctx.out = out;
    ctx.outlen = (uint32_t)h->tag_len;
    /* libargon2 writes to the password only with ARGON2_FLAG_CLEAR_PASSWORD,
     * which is not set, so the cast away from const is safe. */
    ctx.pwd = (uint8_t *)(uintptr_t)password;
    ctx.pwdlen = (uint32_t)len;
    ctx.salt = (uint8_t *)(uintptr_t)h->salt;
    ctx.saltlen = (uint32_t)h->salt_len;
    ctx.t_cost = h->t;
    ctx.m_cost = h->m;
    ctx.lanes = h->p;
    ctx.threads = 1; /* lanes are computed in turn: no threads in the server */
    ctx.version = ARGON2_VERSION_13;
    ctx.allocate_cbk = map_blocks;
    ctx.free_cbk = unmap_blocks;
    ctx.flags = ARGON2_DEFAULT_FLAGS;

    rc = gate_enter(err);
    if (rc != CH_OK)
        return rc;
    arc = argon2id_ctx(&ctx);
    gate_leave();
    return argon2_to_err(arc, err);
}

/* ---- public calls ------------------------------------------------------------- */

ch_err ch_password_hash(const char *password, char out[CH_PASSWORD_HASH_MAX], ch_error *err)
{
    phc h;
    char enc[CH_PASSWORD_HASH_MAX];
    char salt64[FIELD_MAX * 4 / 3 + 4], tag64[FIELD_MAX * 4 / 3 + 4];
    unsigned char tag[TAG_LEN];
    size_t len;
    int n;
    ch_err rc;

    if (password == NULL)
        return ch_error_set(err, CH_EINVAL, "no password");
    len = strnlen(password, PW_MAX_LEN + 1);
    if (len < PW_MIN_LEN)
        return ch_error_set(err, CH_EINVAL, "password shorter than %d bytes", PW_MIN_LEN);
    if (len > PW_MAX_LEN)
        return ch_error_set(err, CH_EINVAL, "password longer than %d bytes", PW_MAX_LEN);
    memset(&h, 0, sizeof h);
    h.m = CH_PASSWORD_M_KIB;
    h.t = CH_PASSWORD_T;
    h.p = CH_PASSWORD_P;
    h.salt_len = SALT_LEN;
    h.tag_len = TAG_LEN;
    rc = ch_random_bytes(h.salt, SALT_LEN, err);
    if (rc != CH_OK)
        return rc;
    rc = compute(&h, password, len, tag, err);
    if (rc != CH_OK)
        return rc;
    b64_encode(h.salt, SALT_LEN, salt64);
    b64_encode(tag, TAG_LEN, tag64);
    ch_cleanse(tag, sizeof tag);
    n = snprintf(enc, sizeof enc, "%sm=%u,t=%u,p=%u$%s$%s", ID_PREFIX, (unsigned)h.m, (unsigned)h.t,
                 (unsigned)h.p, salt64, tag64);
    if (n < 0 || (size_t)n >= sizeof enc)
        ch_panic("encoded Argon2id hash does not fit %d bytes", CH_PASSWORD_HASH_MAX);
    memcpy(out, enc, sizeof enc);
    return CH_OK;
}

ch_err ch_password_verify(const char *encoded, const char *password, ch_error *err)
{
    phc h;
    unsigned char tag[FIELD_MAX];
    size_t len;
    int same;
    ch_err rc;

    rc = parse_encoded(encoded, &h, err);
    if (rc != CH_OK)
        return rc;
    /* No stored hash can match a password that ch_password_hash() would
     * refuse, and refusing early bounds the work an attacker can ask for. */
    len = password == NULL ? 0 : strnlen(password, PW_MAX_LEN + 1);
    if (len < PW_MIN_LEN || len > PW_MAX_LEN)
        return ch_error_set(err, CH_EAUTH, "wrong password");
    rc = compute(&h, password, len, tag, err);
    if (rc != CH_OK)
        return rc;
    same = ch_ct_equal(tag, h.tag, h.tag_len);
    ch_cleanse(tag, sizeof tag);
    if (!same)
        return ch_error_set(err, CH_EAUTH, "wrong password");
    return CH_OK;
}
