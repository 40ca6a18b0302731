/*
 * test_auth.c -- auth.h through its public header, plus the HMAC, random
 * and comparison calls it adds to hash.h.
 *
 * Roles: the whole permission matrix, every role against every
 * permission, compared with the table in docs/security.md (read from the
 * file, so the doc and the code cannot drift apart). Tokens: round trips
 * for HS256 and RS256, and one test per refusal, including the
 * algorithm-confusion forgery (an HS256 token whose HMAC key is the RS256
 * public key's PEM text) and "alg": "none". Hand-made tokens are built here
 * with a small base64url encoder and ch_hmac_sha256(), so that any header
 * and claims can be tried. Passwords: hash, verify, wrong password,
 * encodings that are not Argon2id, length limits. API keys and pseudonyms:
 * shape, parsing, and the RFC 4231 HMAC-SHA256 vectors. Out-of-memory
 * paths: every allocation of each scenario is failed in turn.
 *
 * jwt_verify_cost prints the measured cost of a verification with and
 * without the cache.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/auth.h"
#include "ch/buf.h"
#include "ch/err.h"
#include "ch/hash.h"
#include "../harness.h"

/* Test-only keys, generated once with `openssl genrsa 2048` (and `openssl
 * rsa -pubout`, `openssl genrsa 1024`, `openssl ecparam -name prime256v1
 * -genkey`) and pasted here. They protect nothing; never use them
 * anywhere else. */
static const char test_rsa_private[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC9W2uZKm2FNxJN\n"
    "pfcHsG0HYITmaC9NAa+3OqggrHvQ7q5KNsUkqNhtDdObQctY4oE5EP/5HJtHrGWl\n"
    "buNVhBa+4+FeF1q6ladJ80TPcc1SmFwqqec+/fQdMuyPC2NHpfsXT9RC3aXtkxRh\n"
    "XHk9qgnd4LUc6IPO7DOx2avJS+sdy5/ZllSFyCCuRUg0DbJWgc6WVSuTA6cDaFY9\n"
    "cfZUJ9aIc2HuIu+AtOZ7T+ZDPhIcM2ALn+ihKCCBHfwygmJsRBzRRjYkpQD/E/x1\n"
    "i3v+8wpxKLYSswwYDii3ieMaWvv6jGUqr+hHAzlqH7tEc9pOVVsxaVNH6/bdyXJP\n"
    "yA3SN76VAgMBAAECggEAAVsObgDda6Rm9J3aIxDcmMg+sCuJMwIOC40uX0WqJWv2\n"
    "rxrZDbrRGH/W9K5I92Y/S5Q96y42AWlcTQQx7AUBBZdDxqDnpepBqLwk6XIrST/L\n"
    "vQ47GuO+3ngoTOOdCh/dkFhB5Nv7MrRjswCPUUc2c3mmVyG8/lYJYI+JpCZSi0AN\n"
    "0cheeQgp8PI4YGNXK8aHm7nD07c1OH4vCpwwTb45L1+NtAgTYm2VR42hQziW0XZI\n"
    "W47Dp/TDeIb1xxw3OtrY5+Kfjlfke8xcX/Cnjj1US1zvlvLT/VX1rOVw1VlyuZld\n"
    "Yu7UJTga3h/bzHzeLQEXjROny7sQEUUwtoaOY9xD8QKBgQDsVlk8FEwrIP7vmZkT\n"
    "MN2UyzcMzBFmkGw24b3d4Jxv0w5dqM50tT8KgOQc1GEvjmawC3CQE/4B2Oud0fTI\n"
    "me2YNznUJZ85JuisMaewN5MTmFagnR2y6l+eTTaFQPMctb5+M18g6+FRO82Sb4g7\n"
    "/KW2pqKg+HntB5u2wR+NnzF2EwKBgQDNHHW9YHsJfmduXPekSEp3PCRAro99191z\n"
    "yq9Vx/rA1uv8QwAjNARpDLjrhEDH0oqs8BHMN4ia7R5/to5CajhNAPXqoXrpXefa\n"
    "VWe3Inh7eOfxqCXXwDK5ck1bqwfOScdqE8Z4+CD+rsoW5TE8xxyf5mA5VimYC+NF\n"
    "vSz2itkttwKBgQCPU7qgTer3iPYy1qLX2Z23vBoxn5y558JI8lRUOACHbKbctCAo\n"
    "9TY7J3mv5jjeP20VPIrSRd2YvzX9KzRZZ8iItI1UlFBgt7EJpL9+heWjT5LRqxc0\n"
    "xyCf/1GeNIp7kdjp7ju12nd17V+5e/xR7OGOyLX+C1LeJewQRETffXjgkwKBgBCH\n"
    "9K1Ys1HmkCuC7qqc8PN/M2TLLOF1nnGQqmT9gyY7rDVeqQotTRWyYs0IkbgJLggW\n"
    "KTkOWMIzzjt42SpdKUB7jVZlwWRBn0gnjf5iltdMvVTqunITGYN8xONYe36Sz7Gq\n"
    "+loRlYcxSzRhMIC3g4UXqjW0zhFlE+IxBwiv1CUtAoGAVvo7vqAfwTuRkUH8yWzE\n"
    "CxVOP7QrDwKcnI0hsP/gcIKIi8GEC9Wu66pj/g3sLFc2xtAY7LlNjqg8JX2UvqKW\n"
    "Tk1eoTQJ1YzPVoy5kYc20CMtbN8L+LOglpZ9mI1FJFoN8Vv+voNI5rFPXpRgCDv9\n"
    "ZPXIe7Upj2QvH+intAfjqPk=\n"
    "-----END PRIVATE KEY-----\n";

static const char test_rsa_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvVtrmSpthTcSTaX3B7Bt\n"
    "B2CE5mgvTQGvtzqoIKx70O6uSjbFJKjYbQ3Tm0HLWOKBORD/+RybR6xlpW7jVYQW\n"
    "vuPhXhdaupWnSfNEz3HNUphcKqnnPv30HTLsjwtjR6X7F0/UQt2l7ZMUYVx5PaoJ\n"
    "3eC1HOiDzuwzsdmryUvrHcuf2ZZUhcggrkVINA2yVoHOllUrkwOnA2hWPXH2VCfW\n"
    "iHNh7iLvgLTme0/mQz4SHDNgC5/ooSgggR38MoJibEQc0UY2JKUA/xP8dYt7/vMK\n"
    "cSi2ErMMGA4ot4njGlr7+oxlKq/oRwM5ah+7RHPaTlVbMWlTR+v23clyT8gN0je+\n"
    "lQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

/* A second 2048-bit public key, not matching test_rsa_private. */
static const char other_rsa_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyuncrk9XyvV52eALuKP1\n"
    "Y45AT1VmOSmSQzi154jQ/ge78OlyUkrLm2QxmxTSvWB60efZ76zuGVWPQ6LoH5MD\n"
    "Y7sClNUoqYDdU6Ut2gY0qs2Vh32VNm64PW8N+hB9BjM/PM9I26MvJx0D/Pux4CqG\n"
    "PYKg4ts+s7ZBchu5KZV0NbA8XVd75iyxcdvowBBXd6OUWWtgKmxA7IaAiZB8MrLU\n"
    "WHJ8s2Learkc3uSQGFHPfJuqPPfO0ijyFNCAsBZ9XpZHkQsbSPCeeyb3WXrjpD5b\n"
    "A7f5nUjDMh98rmuhmNlYSXNjXLNDvxCQFCcQX8VGr3LgNjk98f7FhsrzaxjTWkyv\n"
    "owIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

/* A 1024-bit public key: too small. */
static const char small_rsa_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDUkm9CSbiT0GVJz/1TajxSlQT5\n"
    "jGLPLTevaWBH6foFNo06uezo5lMjYF5l9X57+0w4LA31LxuuhP0RWbUG2Frn77l9\n"
    "UDZGoJAceYbkGdbDHqUJHVCU/RFHeIAIRZwQyL5QpSDWu+lLB7aYPUEn9BGlKZnS\n"
    "NftmuVkyldRMR9TZYQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

/* An EC P-256 public key: not RSA. */
static const char ec_public[] = "-----BEGIN PUBLIC KEY-----\n"
                                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEU/Hns5ugN6CEPfSy/Gj4JQciPdIE\n"
                                "157WdejBM3z9ISJALa8rHfJwfZXGbrwLossIsfL4u1crvTYE7LkmwZmbcw==\n"
                                "-----END PUBLIC KEY-----\n";

#define NOW    1700000000LL                       /* a fixed "now" for token tests, unix seconds */
#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

/* ------------------------------------------------------------------ */
/* Helpers.                                                            */
/* ------------------------------------------------------------------ */

static void hs_opts(ch_jwt_opts *o)
{
    ch_jwt_opts_default(o);
    o->secret = (const unsigned char *)SECRET;
    o->secret_len = strlen(SECRET);
}

static void rs_opts(ch_jwt_opts *o, int with_private)
{
    ch_jwt_opts_default(o);
    o->alg = "RS256";
    o->public_key_pem = test_rsa_public;
    o->private_key_pem = with_private ? test_rsa_private : NULL;
}

static ch_jwt *jwt_make(const ch_jwt_opts *o)
{
    ch_jwt *j = NULL;
    ch_error err = {0};
    ch_err rc = ch_jwt_new(o, &j, &err);
    if (rc != CH_OK)
        FAIL("ch_jwt_new: %s: %s", ch_strerror(rc), err.msg);
    return j;
}

/* Issues a token into 'out' (NUL-terminated, at most 'cap' bytes). */
static void issue(ch_jwt *j, const char *sub, ch_role role, int64_t now, char *out, size_t cap)
{
    ch_buf b;
    ch_error err = {0};
    ch_err rc;

    ch_buf_init(&b, 1 << 16);
    rc = ch_jwt_issue(j, sub, role, now, &b, &err);
    if (rc != CH_OK)
        FAIL("ch_jwt_issue: %s: %s", ch_strerror(rc), err.msg);
    ASSERT(b.len < cap);
    memcpy(out, b.data, b.len + 1);
    ch_buf_reset(&b);
}

static void b64url(const void *data, size_t n, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    size_t i;
    size_t o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = digits[v >> 18];
        out[o++] = digits[(v >> 12) & 63];
        out[o++] = digits[(v >> 6) & 63];
        out[o++] = digits[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = digits[v >> 18];
        out[o++] = digits[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = digits[v >> 18];
        out[o++] = digits[(v >> 12) & 63];
        out[o++] = digits[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* Makes "b64(header).b64(payload).b64(HMAC-SHA256(key, first two))" in
 * 'out' (room for 4096 bytes). */
static void forge(const void *key, size_t key_len, const char *header, const char *payload,
                  char *out)
{
    unsigned char mac[CH_HMAC_SHA256_LEN];
    size_t n;

    ASSERT(strlen(header) < 900 && strlen(payload) < 1800);
    b64url(header, strlen(header), out);
    n = strlen(out);
    out[n++] = '.';
    b64url(payload, strlen(payload), out + n);
    n = strlen(out);
    ASSERT_OK(ch_hmac_sha256(key, key_len, out, n, mac));
    out[n++] = '.';
    b64url(mac, sizeof mac, out + n);
}

static const char hs_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* A payload with the standard claims around NOW, and 'extra' spliced in
 * (or, when 'extra' starts with '{', 'extra' as the whole payload). */
static void payload(char *out, size_t cap, const char *extra)
{
    if (extra[0] == '{')
        snprintf(out, cap, "%s", extra);
    else
        snprintf(out, cap,
                 "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"alice\",\"role\":\"analyst\","
                 "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld%s%s}",
                 NOW, NOW, NOW + 600, extra[0] ? "," : "", extra);
}

/* Verifies 'tok' at NOW with 'j' and expects CH_EAUTH with 'why' in the
 * message. */
static void expect_deny(ch_jwt *j, const char *tok, const char *why)
{
    ch_principal who;
    ch_error err = {0};
    ch_err rc = ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err);
    if (rc != CH_EAUTH)
        FAIL("token %.60s...: expected CH_EAUTH (%s), got %s", tok, why, ch_strerror(rc));
    if (strstr(err.msg, why) == NULL)
        FAIL("token %.60s...: message \"%s\" lacks \"%s\"", tok, err.msg, why);
}

/* An HS256 token with standard claims plus 'extra', signed with SECRET,
 * verified at NOW. */
static ch_err try_claims(ch_jwt *j, const char *extra, ch_principal *who, ch_error *err)
{
    char pl[2048];
    char tok[4096];

    payload(pl, sizeof pl, extra);
    forge(SECRET, strlen(SECRET), hs_header, pl, tok);
    return ch_jwt_verify(j, tok, strlen(tok), NOW, who, err);
}

static void claims_deny(ch_jwt *j, const char *extra, const char *why)
{
    char pl[2048];
    char tok[4096];

    payload(pl, sizeof pl, extra);
    forge(SECRET, strlen(SECRET), hs_header, pl, tok);
    expect_deny(j, tok, why);
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ */
/* hash.h additions.                                                   */
/* ------------------------------------------------------------------ */

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

TEST(hmac_sha256_rfc4231)
{
    unsigned char mac[CH_HMAC_SHA256_LEN];
    unsigned char key1[20];
    unsigned char key6[131];
    char h[65];

    /* Test case 1. */
    memset(key1, 0x0b, sizeof key1);
    ASSERT_OK(ch_hmac_sha256(key1, sizeof key1, "Hi There", 8, mac));
    hex(mac, sizeof mac, h);
    ASSERT_STR_EQ(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* Test case 2: a key shorter than the block. */
    ASSERT_OK(ch_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac));
    hex(mac, sizeof mac, h);
    ASSERT_STR_EQ(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 6: a key longer than the block (hashed first). */
    memset(key6, 0xaa, sizeof key6);
    ASSERT_OK(ch_hmac_sha256(key6, sizeof key6,
                             "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac));
    hex(mac, sizeof mac, h);
    ASSERT_STR_EQ(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* Empty key and empty data are allowed (and well defined). */
    ASSERT_OK(ch_hmac_sha256(NULL, 0, NULL, 0, mac));
    hex(mac, sizeof mac, h);
    ASSERT_STR_EQ(h, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(random_and_ct_equal)
{
    unsigned char a[64], b[64];
    unsigned char big[100000];
    size_t zeros = 0;
    ch_error err = {0};

    ASSERT_OK(ch_random_bytes(a, sizeof a, &err));
    ASSERT_OK(ch_random_bytes(b, sizeof b, &err));
    ASSERT(!ch_ct_equal(a, b, sizeof a));
    ASSERT(ch_ct_equal(a, a, sizeof a));
    memcpy(b, a, sizeof a);
    ASSERT(ch_ct_equal(a, b, sizeof a));
    b[63] ^= 1;
    ASSERT(!ch_ct_equal(a, b, sizeof a));
    ASSERT(ch_ct_equal(a, b, 63));
    ASSERT(ch_ct_equal(a, b, 0));
    ASSERT_OK(ch_random_bytes(big, sizeof big, &err));
    for (size_t i = 0; i < sizeof big; i++)
        zeros += big[i] == 0;
    ASSERT(zeros < 1000); /* about 390 expected */
    ASSERT_OK(ch_random_bytes(NULL, 0, &err));
    ch_cleanse(a, sizeof a);
    memset(b, 0, sizeof b);
    ASSERT(ch_ct_equal(a, b, sizeof a));
}

/* ------------------------------------------------------------------ */
/* Roles and permissions.                                              */
/* ------------------------------------------------------------------ */

static const ch_role all_roles[] = {CH_ROLE_ADMIN, CH_ROLE_SCIENTIST, CH_ROLE_ANALYST,
                                    CH_ROLE_SERVICE};

TEST(role_names_round_trip)
{
    ASSERT_STR_EQ(ch_role_name(CH_ROLE_ADMIN), "admin");
    ASSERT_STR_EQ(ch_role_name(CH_ROLE_SCIENTIST), "scientist");
    ASSERT_STR_EQ(ch_role_name(CH_ROLE_ANALYST), "analyst");
    ASSERT_STR_EQ(ch_role_name(CH_ROLE_SERVICE), "service");
    ASSERT_STR_EQ(ch_role_name(CH_ROLE_NONE), "none");
    ASSERT_STR_EQ(ch_role_name((ch_role)99), "none");
    for (size_t i = 0; i < 4; i++)
        ASSERT_INT_EQ(ch_role_parse(ch_role_name(all_roles[i])), all_roles[i]);
    ASSERT_INT_EQ(ch_role_parse("none"), CH_ROLE_NONE);
    ASSERT_INT_EQ(ch_role_parse("Admin"), CH_ROLE_NONE);
    ASSERT_INT_EQ(ch_role_parse("admin "), CH_ROLE_NONE);
    ASSERT_INT_EQ(ch_role_parse(""), CH_ROLE_NONE);
    ASSERT_INT_EQ(ch_role_parse(NULL), CH_ROLE_NONE);
    ASSERT_STR_EQ(ch_perm_name(CH_PERM_PREDICT), "predict");
    ASSERT_STR_EQ(ch_perm_name(CH_PERM_FEEDBACK), "feedback");
    ASSERT_STR_EQ(ch_perm_name(CH_PERM_MODELS_READ), "models:read");
    ASSERT_STR_EQ(ch_perm_name(CH_PERM_MODELS_WRITE), "models:write");
    ASSERT_STR_EQ(ch_perm_name(CH_PERM_USERS), "users");
    ASSERT_STR_EQ(ch_perm_name(CH_PERM_AUDIT), "audit");
    ASSERT_STR_EQ(ch_perm_name(CH_PERM__COUNT), "unknown");
}

/* Splits a Markdown table row "| a | b |" into trimmed cells. Returns the
 * number of cells. */
static int split_row(char *line, char cells[][32], int max)
{
    int n = 0;
    char *p = strchr(line, '|');

    while (p != NULL && n < max) {
        char *q = strchr(p + 1, '|');
        char *s = p + 1;
        size_t len;
        if (q == NULL)
            break;
        while (s < q && *s == ' ')
            s++;
        len = (size_t)(q - s);
        while (len > 0 && s[len - 1] == ' ')
            len--;
        ASSERT(len < 32);
        memcpy(cells[n], s, len);
        cells[n][len] = '\0';
        n++;
        p = q;
    }
    return n;
}

TEST(permission_matrix_matches_docs)
{
    /* The matrix as the task states it, independent of the doc. */
    static const int want[4][CH_PERM__COUNT] = {
        {1, 1, 1, 1, 1, 1, 1, 1}, /* admin */
        {1, 1, 1, 1, 0, 1, 1, 1}, /* scientist */
        {1, 1, 1, 0, 0, 0, 1, 0}, /* analyst */
        {1, 1, 0, 0, 0, 0, 0, 0}, /* service */
    };
    FILE *f = fopen(ch_test_path("docs/security.md"), "r");
    char line[512];
    char cells[16][32];
    int in_table = 0;
    int rows = 0;
    int seen[4] = {0};

    /* Code against the stated matrix, every cell. */
    for (int r = 0; r < 4; r++) {
        for (int p = 0; p < CH_PERM__COUNT; p++)
            if (ch_role_allows(all_roles[r], (ch_perm)p) != want[r][p])
                FAIL("%s x %s: code says %d, expected %d", ch_role_name(all_roles[r]),
                     ch_perm_name((ch_perm)p), ch_role_allows(all_roles[r], (ch_perm)p),
                     want[r][p]);
    }
    for (int p = 0; p < CH_PERM__COUNT; p++)
        ASSERT_INT_EQ(ch_role_allows(CH_ROLE_NONE, (ch_perm)p), 0);
    ASSERT_INT_EQ(ch_role_allows(CH_ROLE_ADMIN, CH_PERM__COUNT), 0);
    ASSERT_INT_EQ(ch_role_allows((ch_role)7, CH_PERM_PREDICT), 0);

    /* Code against the table in docs/security.md, every cell. */
    if (f == NULL)
        FAIL("cannot open %s", ch_test_path("docs/security.md"));
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "<!-- permission-matrix") != NULL) {
            in_table = 1;
            continue;
        }
        if (!in_table)
            continue;
        if (line[0] != '|')
            break;
        int n = split_row(line, cells, 16);
        if (strcmp(cells[0], "Role") == 0) {
            ASSERT_INT_EQ(n, 1 + CH_PERM__COUNT);
            for (int p = 0; p < CH_PERM__COUNT; p++)
                ASSERT_STR_EQ(cells[1 + p], ch_perm_name((ch_perm)p));
            continue;
        }
        if (strncmp(cells[0], "---", 3) == 0)
            continue;
        ASSERT_INT_EQ(n, 1 + CH_PERM__COUNT);
        ch_role r = ch_role_parse(cells[0]);
        if (r == CH_ROLE_NONE)
            FAIL("docs/security.md: unknown role \"%s\"", cells[0]);
        seen[r - 1]++;
        for (int p = 0; p < CH_PERM__COUNT; p++) {
            int doc = strcmp(cells[1 + p], "yes") == 0;
            if (!doc && strcmp(cells[1 + p], "no") != 0)
                FAIL("docs/security.md: cell \"%s\" is neither yes nor no", cells[1 + p]);
            if (ch_role_allows(r, (ch_perm)p) != doc)
                FAIL("%s x %s: docs say %s, code says %d", cells[0], ch_perm_name((ch_perm)p),
                     cells[1 + p], ch_role_allows(r, (ch_perm)p));
        }
        rows++;
    }
    fclose(f);
    ASSERT_INT_EQ(rows, 4);
    for (int r = 0; r < 4; r++)
        ASSERT_INT_EQ(seen[r], 1);
}

/* ------------------------------------------------------------------ */
/* API keys.                                                           */
/* ------------------------------------------------------------------ */

TEST(api_key_new_and_parse)
{
    char key[CH_API_KEY_LEN + 1], key2[CH_API_KEY_LEN + 1];
    char id[CH_API_KEY_ID_LEN + 1], id2[CH_API_KEY_ID_LEN + 1], pid[CH_API_KEY_ID_LEN + 1];
    char sha[65], sha2[65], psha[65], want[65];
    ch_error err = {0};

    ASSERT_OK(ch_api_key_new(key, id, sha, &err));
    ASSERT_INT_EQ(strlen(key), CH_API_KEY_LEN);
    ASSERT_INT_EQ(strlen(id), CH_API_KEY_ID_LEN);
    ASSERT(strncmp(key, "chk_", 4) == 0);
    ASSERT(strncmp(key + 4, id, CH_API_KEY_ID_LEN) == 0);
    ASSERT(key[16] == '_');
    for (size_t i = 4; i < CH_API_KEY_LEN; i++)
        if (i != 16)
            ASSERT(strchr("0123456789abcdef", key[i]) != NULL);
    ASSERT_OK(ch_sha256_hex(key, strlen(key), want, NULL));
    ASSERT_STR_EQ(sha, want);

    ASSERT_OK(ch_api_key_parse(key, strlen(key), pid, psha, &err));
    ASSERT_STR_EQ(pid, id);
    ASSERT_STR_EQ(psha, sha);
    ASSERT(ch_ct_equal(psha, sha, 64));

    ASSERT_OK(ch_api_key_new(key2, id2, sha2, &err));
    ASSERT(strcmp(key, key2) != 0);
    ASSERT(strcmp(id, id2) != 0);
    ASSERT(strcmp(sha, sha2) != 0);
}

TEST(api_key_parse_rejects_other_shapes)
{
    char good[CH_API_KEY_LEN + 1];
    char id[CH_API_KEY_ID_LEN + 1], sha[65];
    char bad[128];
    ch_error err = {0};

    ASSERT_OK(ch_api_key_new(good, id, sha, &err));
    memcpy(id, "unchanged!!!", 13);
    memcpy(sha, "unchanged", 10);
    /* Lengths. */
    ASSERT_ERR(ch_api_key_parse(good, CH_API_KEY_LEN - 1, id, sha, &err), CH_EAUTH);
    ASSERT_CONTAINS(err.msg, "not an API key");
    ASSERT_ERR(ch_api_key_parse("", 0, id, sha, &err), CH_EAUTH);
    ASSERT_ERR(ch_api_key_parse(NULL, 0, id, sha, &err), CH_EAUTH);
    snprintf(bad, sizeof bad, "%sa", good);
    ASSERT_ERR(ch_api_key_parse(bad, strlen(bad), id, sha, &err), CH_EAUTH);
    /* One character off, at every position. */
    for (size_t i = 0; i < CH_API_KEY_LEN; i++) {
        static const char subs[] = {'A', 'g', '_', '-', ' ', '\0', 'F', '.'};
        for (size_t k = 0; k < sizeof subs; k++) {
            memcpy(bad, good, sizeof good);
            if (bad[i] == subs[k])
                continue;
            bad[i] = subs[k];
            if (ch_api_key_parse(bad, CH_API_KEY_LEN, id, sha, &err) != CH_EAUTH)
                FAIL("accepted a key with '%c' (0x%02x) at %zu", subs[k], subs[k], i);
        }
    }
    /* A JWT or a Bearer-prefixed key is not a key. */
    snprintf(bad, sizeof bad, "Bearer %s", good);
    ASSERT_ERR(ch_api_key_parse(bad, strlen(bad), id, sha, &err), CH_EAUTH);
    /* Nothing was written on failure. */
    ASSERT_STR_EQ(id, "unchanged!!!");
    ASSERT_STR_EQ(sha, "unchanged");
}

/* ------------------------------------------------------------------ */
/* Pseudonyms.                                                         */
/* ------------------------------------------------------------------ */

TEST(pseudonym_is_truncated_hmac)
{
    char p[CH_PSEUDONYM_LEN + 1], q[CH_PSEUDONYM_LEN + 1];
    const unsigned char *k = (const unsigned char *)"Jefe";
    ch_error err = {0};

    /* RFC 4231 test case 2, first 128 bits. */
    ASSERT_OK(ch_pseudonymize(k, 4, "what do ya want for nothing?", 28, p, &err));
    ASSERT_STR_EQ(p, "5bdcc146bf60754e6a042426089575c7");
    ASSERT_INT_EQ(strlen(p), CH_PSEUDONYM_LEN);

    ASSERT_OK(ch_pseudonymize((const unsigned char *)SECRET, 32, "7590-VHVEG", 10, p, &err));
    ASSERT_OK(ch_pseudonymize((const unsigned char *)SECRET, 32, "7590-VHVEG", 10, q, &err));
    ASSERT_STR_EQ(p, q);
    ASSERT_OK(ch_pseudonymize((const unsigned char *)SECRET, 31, "7590-VHVEG", 10, q, &err));
    ASSERT(strcmp(p, q) != 0);
    ASSERT_OK(ch_pseudonymize((const unsigned char *)SECRET, 32, "7590-VHVEH", 10, q, &err));
    ASSERT(strcmp(p, q) != 0);
    ASSERT_OK(ch_pseudonymize((const unsigned char *)SECRET, 32, "", 0, q, &err));
    ASSERT_INT_EQ(strlen(q), CH_PSEUDONYM_LEN);

    ASSERT_ERR(ch_pseudonymize(k, 0, "x", 1, p, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "key is empty");
    ASSERT_ERR(ch_pseudonymize(NULL, 4, "x", 1, p, &err), CH_EINVAL);
}

/* ------------------------------------------------------------------ */
/* Passwords.                                                          */
/* ------------------------------------------------------------------ */

TEST(password_hash_and_verify)
{
    char h1[CH_PASSWORD_HASH_MAX], h2[CH_PASSWORD_HASH_MAX];
    ch_error err = {0};

    ASSERT_OK(ch_password_hash("correct horse battery staple", h1, &err));
    ASSERT(strncmp(h1, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    ASSERT(strlen(h1) < CH_PASSWORD_HASH_MAX);
    ASSERT_OK(ch_password_verify(h1, "correct horse battery staple", &err));
    ASSERT_ERR(ch_password_verify(h1, "correct horse battery stapl", &err), CH_EAUTH);
    ASSERT_CONTAINS(err.msg, "wrong password");
    ASSERT_ERR(ch_password_verify(h1, "Correct horse battery staple", &err), CH_EAUTH);
    /* A fresh salt every time. */
    ASSERT_OK(ch_password_hash("correct horse battery staple", h2, &err));
    ASSERT(strcmp(h1, h2) != 0);
    ASSERT_OK(ch_password_verify(h2, "correct horse battery staple", &err));
}

TEST(password_length_limits)
{
    char h[CH_PASSWORD_HASH_MAX];
    char pw[1100];
    ch_error err = {0};

    memcpy(h, "unchanged", 10);
    ASSERT_ERR(ch_password_hash("1234567", h, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "shorter than 8");
    ASSERT_ERR(ch_password_hash("", h, &err), CH_EINVAL);
    ASSERT_ERR(ch_password_hash(NULL, h, &err), CH_EINVAL);
    memset(pw, 'x', 1025);
    pw[1025] = '\0';
    ASSERT_ERR(ch_password_hash(pw, h, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "longer than 1024");
    ASSERT_STR_EQ(h, "unchanged");

    ASSERT_OK(ch_password_hash("12345678", h, &err));
    ASSERT_OK(ch_password_verify(h, "12345678", &err));
    ASSERT_ERR(ch_password_verify(h, "1234567", &err), CH_EAUTH);
    ASSERT_ERR(ch_password_verify(h, NULL, &err), CH_EAUTH);

    pw[1024] = '\0';
    ASSERT_OK(ch_password_hash(pw, h, &err));
    ASSERT_OK(ch_password_verify(h, pw, &err));
    pw[1024] = 'x';
    ASSERT_ERR(ch_password_verify(h, pw, &err), CH_EAUTH);
}

/* Made by libargon2's own encoder, argon2id_hash_encoded(), with fixed
 * salts ("saltsaltsaltsalt"; "8bytesalt" with m=256, t=3, p=2 and a 24-byte
 * tag), so the encoder and parser here are checked against the reference
 * form. */
TEST(password_verifies_reference_hashes)
{
    static const char kat1[] = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                               "QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM";
    static const char kat2[] =
        "$argon2id$v=19$m=256,t=3,p=2$OGJ5dGVzYWx0$pLbWW371ahZx3paUCK+kllyWnRP1jwH4";
    char h[CH_PASSWORD_HASH_MAX];
    ch_error err = {0};

    ASSERT_OK(ch_password_verify(kat1, "correct horse battery staple", &err));
    ASSERT_ERR(ch_password_verify(kat1, "correct horse battery staplE", &err), CH_EAUTH);
    ASSERT_OK(ch_password_verify(kat2, "hunter2hunter2", &err));
    ASSERT_ERR(ch_password_verify(kat2, "hunter2hunter3", &err), CH_EAUTH);
    /* Our own hashes have the reference shape: 22 digits of salt, 43 of tag. */
    ASSERT_OK(ch_password_hash("correct horse battery staple", h, &err));
    ASSERT_INT_EQ(strlen(h), strlen(kat1));
    ASSERT(strncmp(h, kat1, 31) == 0);
    ASSERT_INT_EQ(h[31 + 22], '$');
}

typedef struct pw_worker {
    const char *hash;
    int ok, busy, other;
} pw_worker;

static void *pw_verify_worker(void *arg)
{
    pw_worker *w = arg;
    for (int i = 0; i < 2; i++) {
        ch_err rc = ch_password_verify(w->hash, "correct horse battery staple", NULL);
        if (rc == CH_OK)
            w->ok++;
        else if (rc == CH_EBUSY)
            w->busy++;
        else
            w->other++;
    }
    return NULL;
}

/* Reads a "VmRSS:"-style line of /proc/self/status, in KiB; -1 if absent. */
static long proc_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key), NULL, 10);
    fclose(f);
    return v;
}

/* Four threads verify at once: the gate runs them one at a time, so the
 * peak grows by one Argon2 block (19 MiB), not four, and the blocks go
 * back to the system afterwards. */
TEST(password_memory_is_bounded_and_returned)
{
    static const char kat1[] = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                               "QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM";
    const char *pre = getenv("LD_PRELOAD");
    pthread_t th[4];
    pw_worker w[4];
    long rss0, rss1, hwm;
    int ok = 0;

    rss0 = proc_status_kib("VmRSS:");
    for (int t = 0; t < 4; t++) {
        w[t] = (pw_worker){kat1, 0, 0, 0};
        ASSERT(pthread_create(&th[t], NULL, pw_verify_worker, &w[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ASSERT_INT_EQ(w[t].other, 0);
        ok += w[t].ok;
    }
    /* A slow machine (valgrind) may turn a few away with CH_EBUSY. */
    ASSERT(ok >= 1);
    rss1 = proc_status_kib("VmRSS:");
    hwm = proc_status_kib("VmHWM:");
    fprintf(stderr, "    RSS %ld KiB before, peak %ld KiB, %ld KiB after (%d of 8 verified)\n",
            rss0, hwm, rss1, ok);
    if (pre != NULL && strstr(pre, "vgpreload") != NULL)
        SKIP("memory figures are valgrind's own under valgrind");
#ifdef __SANITIZE_THREAD__
    SKIP("ThreadSanitizer shadows every mapping, inflating RSS");
#endif
    if (rss0 < 0 || hwm < 0)
        SKIP("no /proc/self/status");
    ASSERT(hwm - rss0 < 40 * 1024); /* one 19 MiB block at a time, not four */
    ASSERT(rss1 - rss0 < 8 * 1024); /* and it was given back */
}

TEST(password_verify_rejects_other_encodings)
{
    char h[CH_PASSWORD_HASH_MAX];
    char bad[CH_PASSWORD_HASH_MAX + 64];
    ch_error err = {0};
    static const char *const not_argon2id[] = {
        "",
        "password",
        "$2b$12$abcdefghijklmnopqrstuuH7cNVZ8qQjB6xkT8lh9mSyKJ1M9Ia7W", /* bcrypt */
        "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2d$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$v=16$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        /* Costs out of bounds: 4 GiB of memory, 1000 passes, 0 lanes. */
        "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$v=19$m=19456,t=1000,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$v=19$m=19456,t=2,p=0$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$v=19$m=019456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$v=19$t=2,m=19456,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        /* Salt too short, hash too short, missing hash, trailing junk. */
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZQ$qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$qfKs0kCM",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw$",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "qfKs0kCM+k6oDTWsYzW0z3m9GNv3fK4HgPnJ3jMpCLw=",
    };

    for (size_t i = 0; i < sizeof not_argon2id / sizeof not_argon2id[0]; i++) {
        ch_err rc = ch_password_verify(not_argon2id[i], "password123", &err);
        if (rc != CH_EFORMAT)
            FAIL("\"%s\": expected CH_EFORMAT, got %s (%s)", not_argon2id[i], ch_strerror(rc),
                 err.msg);
    }
    ASSERT_ERR(ch_password_verify(NULL, "password123", &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "not an Argon2id hash");
    /* Longer than any hash we make. */
    memset(bad, 'a', sizeof bad - 1);
    memcpy(bad, "$argon2id$", 10);
    bad[sizeof bad - 1] = '\0';
    ASSERT_ERR(ch_password_verify(bad, "password123", &err), CH_EFORMAT);

    /* Well formed, but the tag changed: a mismatch, not a format error. */
    ASSERT_OK(ch_password_hash("password123", h, &err));
    memcpy(bad, h, sizeof h);
    {
        size_t n = strlen(bad);
        bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    }
    ASSERT_ERR(ch_password_verify(bad, "password123", &err), CH_EAUTH);
    /* An Argon2i hash of the right password is still refused. */
    memcpy(bad, h, sizeof h);
    memmove(bad + 8, bad + 9, strlen(bad + 9) + 1); /* "$argon2id$" -> "$argon2i$" */
    ASSERT(strncmp(bad, "$argon2i$v=19", 13) == 0);
    ASSERT_ERR(ch_password_verify(bad, "password123", &err), CH_EFORMAT);
}

/* ------------------------------------------------------------------ */
/* JWT: construction.                                                  */
/* ------------------------------------------------------------------ */

static void expect_new_fails(const ch_jwt_opts *o, const char *why)
{
    ch_jwt *j = NULL;
    ch_error err = {0};
    ch_err rc = ch_jwt_new(o, &j, &err);
    if (rc != CH_EINVAL)
        FAIL("ch_jwt_new: expected CH_EINVAL (%s), got %s", why, ch_strerror(rc));
    ASSERT(j == NULL);
    if (strstr(err.msg, why) == NULL)
        FAIL("ch_jwt_new: message \"%s\" lacks \"%s\"", err.msg, why);
}

TEST(jwt_new_rejects_bad_options)
{
    ch_jwt_opts o;
    ch_jwt *j = NULL;

    ASSERT_ERR(ch_jwt_new(NULL, &j, NULL), CH_EINVAL);
    hs_opts(&o);
    o.alg = "none";
    expect_new_fails(&o, "unknown JWT alg");
    o.alg = "HS512";
    expect_new_fails(&o, "unknown JWT alg");
    o.alg = "hs256";
    expect_new_fails(&o, "unknown JWT alg");
    hs_opts(&o);
    o.secret_len = 31;
    expect_new_fails(&o, "shorter than 32");
    o.secret = NULL;
    o.secret_len = 40;
    expect_new_fails(&o, "shorter than 32");
    hs_opts(&o);
    o.issuer = "";
    expect_new_fails(&o, "issuer");
    hs_opts(&o);
    o.audience = NULL;
    expect_new_fails(&o, "audience");
    hs_opts(&o);
    o.ttl_s = 0;
    expect_new_fails(&o, "lifetime");
    hs_opts(&o);
    o.leeway_s = -1;
    expect_new_fails(&o, "leeway");
    hs_opts(&o);
    o.cache_entries = (size_t)1 << 21;
    expect_new_fails(&o, "cache");

    rs_opts(&o, 1);
    o.public_key_pem = NULL;
    expect_new_fails(&o, "needs a public key");
    rs_opts(&o, 0);
    o.public_key_pem = "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n";
    expect_new_fails(&o, "not a PEM public key");
    rs_opts(&o, 0);
    o.public_key_pem = test_rsa_private; /* a private key where a public one belongs */
    expect_new_fails(&o, "not a PEM public key");
    rs_opts(&o, 0);
    o.public_key_pem = small_rsa_public;
    expect_new_fails(&o, "1024 bits; need 2048");
    rs_opts(&o, 0);
    o.public_key_pem = ec_public;
    expect_new_fails(&o, "not an RSA key");
    rs_opts(&o, 1);
    o.private_key_pem = test_rsa_public;
    expect_new_fails(&o, "not a PEM private key");
    rs_opts(&o, 1);
    o.public_key_pem = other_rsa_public;
    expect_new_fails(&o, "does not match");
}

/* ------------------------------------------------------------------ */
/* JWT: round trips.                                                   */
/* ------------------------------------------------------------------ */

TEST(jwt_hs256_round_trip)
{
    ch_jwt_opts o;
    ch_jwt *j;
    char tok[4096];
    char hdr[64];
    ch_principal who;
    ch_error err = {0};

    hs_opts(&o);
    j = jwt_make(&o);
    issue(j, "alice", CH_ROLE_SCIENTIST, NOW, tok, sizeof tok);
    b64url(hs_header, strlen(hs_header), hdr);
    /* libjwt writes {"alg":"HS256","typ":"JWT"} in this order. */
    ASSERT(strncmp(tok, hdr, strlen(hdr)) == 0);
    memset(&who, 0x55, sizeof who);
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
    ASSERT_STR_EQ(who.name, "alice");
    ASSERT_INT_EQ(who.role, CH_ROLE_SCIENTIST);
    ASSERT_INT_EQ(who.expires, NOW + 3600);
    /* Every role survives the trip. */
    for (size_t i = 0; i < 4; i++) {
        issue(j, "bob", all_roles[i], NOW, tok, sizeof tok);
        ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW + 10, &who, &err));
        ASSERT_INT_EQ(who.role, all_roles[i]);
    }
    /* A 64-byte subject is the longest. */
    issue(j, "0123456789012345678901234567890123456789012345678901234567890123", CH_ROLE_ADMIN, NOW,
          tok, sizeof tok);
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
    ASSERT_INT_EQ(strlen(who.name), 64);
    /* Two tokens for the same claims differ (jti). */
    {
        char tok2[4096];
        issue(j, "alice", CH_ROLE_SCIENTIST, NOW, tok, sizeof tok);
        issue(j, "alice", CH_ROLE_SCIENTIST, NOW, tok2, sizeof tok2);
        ASSERT(strcmp(tok, tok2) != 0);
    }
    /* Another verifier with another secret refuses it. */
    {
        ch_jwt_opts o2;
        ch_jwt *j2;
        hs_opts(&o2);
        o2.secret = (const unsigned char *)"another secret, also 32+ bytes long";
        o2.secret_len = strlen((const char *)o2.secret);
        j2 = jwt_make(&o2);
        expect_deny(j2, tok, "bad signature");
        ch_jwt_free(j2);
    }
    ch_jwt_free(j);
    ch_jwt_free(NULL);
}

TEST(jwt_issue_rejects_bad_input)
{
    ch_jwt_opts o;
    ch_jwt *j;
    ch_buf b;
    ch_error err = {0};
    char sub[80];

    hs_opts(&o);
    j = jwt_make(&o);
    ch_buf_init(&b, 1 << 16);
    ASSERT_ERR(ch_jwt_issue(j, "", CH_ROLE_ADMIN, NOW, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_jwt_issue(j, NULL, CH_ROLE_ADMIN, NOW, &b, &err), CH_EINVAL);
    memset(sub, 'a', 65);
    sub[65] = '\0';
    ASSERT_ERR(ch_jwt_issue(j, sub, CH_ROLE_ADMIN, NOW, &b, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "subject");
    ASSERT_ERR(ch_jwt_issue(j, "key:0123456789ab", CH_ROLE_ADMIN, NOW, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_jwt_issue(j, "tab\there", CH_ROLE_ADMIN, NOW, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_jwt_issue(j, "alice", CH_ROLE_NONE, NOW, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_jwt_issue(j, "alice", (ch_role)9, NOW, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_jwt_issue(j, "alice", CH_ROLE_ADMIN, -1, &b, &err), CH_EINVAL);
    ASSERT_INT_EQ(b.len, 0);
    /* A cap too small for the token is the buffer's error. */
    {
        ch_buf small;
        ch_buf_init(&small, 16);
        ASSERT_ERR(ch_jwt_issue(j, "alice", CH_ROLE_ADMIN, NOW, &small, &err), CH_ELIMIT);
        ch_buf_reset(&small);
    }
    ch_buf_reset(&b);
    ch_jwt_free(j);
}

TEST(jwt_rs256_round_trip)
{
    ch_jwt_opts o;
    ch_jwt *issuer, *verifier;
    char tok[4096];
    ch_principal who;
    ch_buf b;
    ch_error err = {0};

    rs_opts(&o, 1);
    issuer = jwt_make(&o);
    rs_opts(&o, 0);
    verifier = jwt_make(&o);
    issue(issuer, "svc-crm", CH_ROLE_SERVICE, NOW, tok, sizeof tok);
    ASSERT(strncmp(tok, "eyJhbGciOiJSUzI1NiIs", 20) == 0); /* {"alg":"RS256", */
    ASSERT_OK(ch_jwt_verify(verifier, tok, strlen(tok), NOW, &who, &err));
    ASSERT_STR_EQ(who.name, "svc-crm");
    ASSERT_INT_EQ(who.role, CH_ROLE_SERVICE);
    ASSERT_OK(ch_jwt_verify(issuer, tok, strlen(tok), NOW, &who, &err));
    /* A verifier without the private key cannot issue. */
    ch_buf_init(&b, 1 << 16);
    ASSERT_ERR(ch_jwt_issue(verifier, "x", CH_ROLE_ADMIN, NOW, &b, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "private key");
    ch_buf_reset(&b);
    /* A verifier with another public key refuses it. */
    o.public_key_pem = other_rsa_public;
    {
        ch_jwt *other = jwt_make(&o);
        expect_deny(other, tok, "bad signature");
        ch_jwt_free(other);
    }
    ch_jwt_free(issuer);
    ch_jwt_free(verifier);
}

/* ------------------------------------------------------------------ */
/* JWT: attacks on the algorithm.                                      */
/* ------------------------------------------------------------------ */

TEST(jwt_alg_confusion_is_refused)
{
    ch_jwt_opts o;
    ch_jwt *rs, *forger, *hs;
    char tok[4096];
    char pl[2048];
    ch_principal who;
    ch_error err = {0};

    rs_opts(&o, 0);
    rs = jwt_make(&o);

    /* The attack: anyone can read the public key, so anyone can make an
     * HS256 token whose HMAC key is the public key's PEM text. A verifier
     * that lets the token pick the algorithm (libjwt 1.10 alone does) would
     * check that HMAC with the "key" it holds -- the same PEM -- and
     * accept an admin token nobody issued. Made two ways: through libjwt
     * (an HS256 ch_jwt whose secret is the PEM) and by hand. */
    hs_opts(&o);
    o.secret = (const unsigned char *)test_rsa_public;
    o.secret_len = strlen(test_rsa_public);
    forger = jwt_make(&o);
    issue(forger, "mallory", CH_ROLE_ADMIN, NOW, tok, sizeof tok);
    ASSERT_ERR(ch_jwt_verify(rs, tok, strlen(tok), NOW, &who, &err), CH_EAUTH);
    ASSERT_STR_EQ(err.msg, "unexpected alg HS256 (want RS256)");

    payload(pl, sizeof pl,
            "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"mallory\","
            "\"role\":\"admin\",\"exp\":1900000000}");
    forge(test_rsa_public, strlen(test_rsa_public), hs_header, pl, tok);
    expect_deny(rs, tok, "unexpected alg HS256");
    /* The same with the PEM's trailing newline dropped, and as a JWS with
     * no typ. */
    forge(test_rsa_public, strlen(test_rsa_public) - 1, "{\"alg\":\"HS256\"}", pl, tok);
    expect_deny(rs, tok, "unexpected alg HS256");
    /* Other HMAC and RSA flavours are refused before any key is used. */
    forge(test_rsa_public, strlen(test_rsa_public), "{\"alg\":\"HS512\"}", pl, tok);
    expect_deny(rs, tok, "unexpected alg HS512");
    forge(test_rsa_public, strlen(test_rsa_public), "{\"alg\":\"RS512\"}", pl, tok);
    expect_deny(rs, tok, "unexpected alg RS512");
    forge(test_rsa_public, strlen(test_rsa_public), "{\"alg\":\"rs256\"}", pl, tok);
    expect_deny(rs, tok, "unexpected alg rs256");

    /* The other direction: an HS256 verifier gets an RS256 token. */
    hs_opts(&o);
    hs = jwt_make(&o);
    {
        ch_jwt_opts ro;
        ch_jwt *ri;
        rs_opts(&ro, 1);
        ri = jwt_make(&ro);
        issue(ri, "alice", CH_ROLE_ADMIN, NOW, tok, sizeof tok);
        ch_jwt_free(ri);
    }
    expect_deny(hs, tok, "unexpected alg RS256 (want HS256)");

    ch_jwt_free(hs);
    ch_jwt_free(forger);
    ch_jwt_free(rs);
}

TEST(jwt_alg_none_is_refused)
{
    ch_jwt_opts o;
    ch_jwt *hs, *rs;
    char pl[2048];
    char tok[4096];
    char h[128], p[2048];
    static const char *const nones[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
                                        "{\"alg\":\"NONE\",\"typ\":\"JWT\"}", "{\"alg\":\"nOnE\"}"};

    hs_opts(&o);
    hs = jwt_make(&o);
    rs_opts(&o, 0);
    rs = jwt_make(&o);
    payload(pl, sizeof pl, "");
    for (size_t i = 0; i < sizeof nones / sizeof nones[0]; i++) {
        /* The unsigned form "h.p." has an empty third segment. */
        b64url(nones[i], strlen(nones[i]), h);
        b64url(pl, strlen(pl), p);
        snprintf(tok, sizeof tok, "%s.%s.", h, p);
        expect_deny(hs, tok, "malformed token (empty segment)");
        expect_deny(rs, tok, "malformed token (empty segment)");
        /* With something in it, the header check catches it. */
        forge(SECRET, strlen(SECRET), nones[i], pl, tok);
        expect_deny(hs, tok, "alg none not allowed");
        expect_deny(rs, tok, "alg none not allowed");
    }
    /* No alg at all, or alg not a string. */
    forge(SECRET, strlen(SECRET), "{\"typ\":\"JWT\"}", pl, tok);
    expect_deny(hs, tok, "token header has no alg");
    forge(SECRET, strlen(SECRET), "{\"alg\":null}", pl, tok);
    expect_deny(hs, tok, "token header has no alg");
    forge(SECRET, strlen(SECRET), "{\"alg\":[\"HS256\"]}", pl, tok);
    expect_deny(hs, tok, "token header has no alg");
    /* A weird alg is named only when it is short and alphanumeric. */
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\\n\"}", pl, tok);
    expect_deny(hs, tok, "unexpected alg");
    ch_jwt_free(hs);
    ch_jwt_free(rs);
}

TEST(jwt_header_checks)
{
    ch_jwt_opts o;
    ch_jwt *j;
    char pl[2048];
    char tok[4096];
    ch_principal who;
    ch_error err = {0};

    hs_opts(&o);
    j = jwt_make(&o);
    payload(pl, sizeof pl, "");
    /* Accepted: no typ, typ in another case, unknown harmless members. */
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", pl, tok);
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
    forge(SECRET, strlen(SECRET), "{\"typ\":\"jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}", pl, tok);
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
    /* Refused. */
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", pl, tok);
    expect_deny(j, tok, "unexpected typ");
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"typ\":1}", pl, tok);
    expect_deny(j, tok, "unexpected typ");
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", pl, tok);
    expect_deny(j, tok, "unsupported crit header");
    /* Duplicate members: the second "alg" must not sneak past the first. */
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\",\"alg\":\"none\"}", pl, tok);
    expect_deny(j, tok, "malformed token header");
    forge(SECRET, strlen(SECRET), "[\"HS256\"]", pl, tok);
    expect_deny(j, tok, "malformed token header");
    forge(SECRET, strlen(SECRET), "{\"alg\":\"HS256\"", pl, tok);
    expect_deny(j, tok, "malformed token header");
    forge(SECRET, strlen(SECRET), "\"HS256\"", pl, tok);
    expect_deny(j, tok, "malformed token header");
    ch_jwt_free(j);
}

/* ------------------------------------------------------------------ */
/* JWT: signatures, times and claims.                                  */
/* ------------------------------------------------------------------ */

TEST(jwt_bad_signatures)
{
    ch_jwt_opts o;
    ch_jwt *hs, *rsi;
    char tok[4096], bad[4096];
    char pl[2048];
    size_t n;

    hs_opts(&o);
    hs = jwt_make(&o);
    issue(hs, "alice", CH_ROLE_ANALYST, NOW, tok, sizeof tok);
    n = strlen(tok);
    /* Last signature character changed (keeping the base64url canonical:
     * the last of 43 digits carries 2 spare bits, so step by 4). */
    memcpy(bad, tok, n + 1);
    bad[n - 1] = bad[n - 1] == 'A' ? 'E' : 'A';
    expect_deny(hs, bad, "bad signature");
    /* First signature character changed. */
    memcpy(bad, tok, n + 1);
    {
        char *sig = strrchr(bad, '.') + 1;
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
    }
    expect_deny(hs, bad, "bad signature");
    /* Signature cut short or doubled. */
    memcpy(bad, tok, n + 1);
    bad[n - 4] = '\0';
    expect_deny(hs, bad, "bad signature");
    snprintf(bad, sizeof bad, "%s%s", tok, strrchr(tok, '.') + 1);
    expect_deny(hs, bad, "bad signature");
    /* Claims raised to admin under the old signature. */
    payload(pl, sizeof pl, "");
    forge(SECRET, strlen(SECRET), hs_header, pl, tok);
    {
        char admin[2048], forged[4096];
        char *sig = strrchr(tok, '.');
        payload(admin, sizeof admin,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"alice\",\"role\":\"admin\","
                "\"exp\":1900000000}");
        b64url(hs_header, strlen(hs_header), forged);
        n = strlen(forged);
        forged[n++] = '.';
        b64url(admin, strlen(admin), forged + n);
        n = strlen(forged);
        snprintf(forged + n, sizeof forged - n, "%s", sig);
        expect_deny(hs, forged, "bad signature");
    }
    /* Signed with the secret minus its last byte. */
    forge(SECRET, strlen(SECRET) - 1, hs_header, pl, tok);
    expect_deny(hs, tok, "bad signature");

    /* RS256: a flipped signature bit and a swapped payload. */
    rs_opts(&o, 1);
    rsi = jwt_make(&o);
    issue(rsi, "alice", CH_ROLE_ANALYST, NOW, tok, sizeof tok);
    n = strlen(tok);
    memcpy(bad, tok, n + 1);
    bad[n - 10] = bad[n - 10] == 'A' ? 'B' : 'A';
    expect_deny(rsi, bad, "bad signature");
    issue(rsi, "bob", CH_ROLE_ADMIN, NOW, bad, sizeof bad);
    {
        /* bob's header and payload with alice's signature. */
        char mix[4096];
        size_t cut = (size_t)(strrchr(bad, '.') - bad);
        memcpy(mix, bad, cut);
        snprintf(mix + cut, sizeof mix - cut, "%s", strrchr(tok, '.'));
        expect_deny(rsi, mix, "bad signature");
    }
    ch_jwt_free(rsi);
    ch_jwt_free(hs);
}

TEST(jwt_expiry_and_not_before)
{
    ch_jwt_opts o;
    ch_jwt *cached, *uncached;
    char tok[4096];
    ch_principal who;
    ch_error err = {0};
    ch_jwt *js[2];

    hs_opts(&o);
    cached = jwt_make(&o);
    o.cache_entries = 0;
    uncached = jwt_make(&o);
    js[0] = cached;
    js[1] = uncached;
    issue(cached, "alice", CH_ROLE_ANALYST, NOW, tok, sizeof tok); /* exp = NOW + 3600 */
    for (int k = 0; k < 2; k++) {
        ch_jwt *j = js[k];
        /* Fill the cache first, so later calls are hits for 'cached'. */
        ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
        ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW + 3600 + 29, &who, &err));
        ASSERT_ERR(ch_jwt_verify(j, tok, strlen(tok), NOW + 3600 + 30, &who, &err), CH_EAUTH);
        ASSERT_STR_EQ(err.msg, "token expired");
        ASSERT_ERR(ch_jwt_verify(j, tok, strlen(tok), NOW + 86400 * 365, &who, &err), CH_EAUTH);
        ASSERT_STR_EQ(err.msg, "token expired");
        /* Not before: nbf = NOW, leeway 30 s. */
        ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW - 30, &who, &err));
        ASSERT_ERR(ch_jwt_verify(j, tok, strlen(tok), NOW - 31, &who, &err), CH_EAUTH);
        ASSERT_STR_EQ(err.msg, "token not yet valid");
        ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW + 1, &who, &err));
    }
    /* The cached verifier answered from its cache and still said no. */
    {
        uint64_t hits = 0, misses = 0;
        ch_jwt_cache_stats(cached, &hits, &misses);
        ASSERT_INT_EQ(misses, 1);
        ASSERT_INT_EQ(hits, 6);
        ch_jwt_cache_stats(uncached, &hits, &misses);
        ASSERT_INT_EQ(hits + misses, 0);
    }
    /* A token first seen after it expired is never cached. */
    issue(cached, "bob", CH_ROLE_ANALYST, NOW - 7200, tok, sizeof tok);
    ASSERT_ERR(ch_jwt_verify(cached, tok, strlen(tok), NOW, &who, &err), CH_EAUTH);
    ASSERT_STR_EQ(err.msg, "token expired");
    ASSERT_ERR(ch_jwt_verify(cached, tok, strlen(tok), NOW - 7200, &who, &err), CH_OK);
    /* Leeway 0 is exact. */
    hs_opts(&o);
    o.leeway_s = 0;
    ch_jwt_free(uncached);
    uncached = jwt_make(&o);
    issue(uncached, "alice", CH_ROLE_ANALYST, NOW, tok, sizeof tok);
    ASSERT_OK(ch_jwt_verify(uncached, tok, strlen(tok), NOW + 3599, &who, &err));
    ASSERT_ERR(ch_jwt_verify(uncached, tok, strlen(tok), NOW + 3600, &who, &err), CH_EAUTH);
    ASSERT_ERR(ch_jwt_verify(uncached, tok, strlen(tok), NOW - 1, &who, &err), CH_EAUTH);
    ch_jwt_free(cached);
    ch_jwt_free(uncached);
}

TEST(jwt_claims_from_other_issuers)
{
    ch_jwt_opts o;
    ch_jwt *j;
    ch_principal who;
    ch_error err = {0};

    hs_opts(&o);
    j = jwt_make(&o);
    /* aud as an array holding ours; no nbf; fractional exp. */
    ASSERT_OK(try_claims(j,
                         "{\"iss\":\"churn\",\"aud\":[\"crm\",\"churn-api\"],\"sub\":\"carol\","
                         "\"role\":\"service\",\"exp\":1700000600.5}",
                         &who, &err));
    ASSERT_STR_EQ(who.name, "carol");
    ASSERT_INT_EQ(who.role, CH_ROLE_SERVICE);
    ASSERT_INT_EQ(who.expires, 1700000600);
    ASSERT_OK(try_claims(j, "\"x-extra\":{\"nested\":[1,2,3]}", &who, &err));
    ASSERT_OK(try_claims(j,
                         "{\"iss\":\"churn\",\"aud\":[\"churn-api\"],\"sub\":\"a\","
                         "\"role\":\"admin\",\"exp\":1700000600}",
                         &who, &err));
    /* UTF-8 subjects are fine. */
    ASSERT_OK(try_claims(j,
                         "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"j\\u00fcrgen\","
                         "\"role\":\"analyst\",\"exp\":1700000600}",
                         &who, &err));
    ASSERT_STR_EQ(who.name, "j\xc3\xbcrgen");
    ch_jwt_free(j);
}

TEST(jwt_claims_are_checked)
{
    ch_jwt_opts o;
    ch_jwt *j;
    char sub[200];

    hs_opts(&o);
    j = jwt_make(&o);
#define BASE "\"iat\":1700000000"
    /* exp, nbf. */
    claims_deny(j, "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\"}",
                "token has no exp");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":\"1900000000\"}",
                "bad exp claim");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1e300}",
                "bad exp claim");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":-5}",
                "bad exp claim");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1699999000}",
                "token expired");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000,\"nbf\":1700000100}",
                "token not yet valid");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000,\"nbf\":true}",
                "bad nbf claim");
    /* iss. */
    claims_deny(j, "{\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\",\"exp\":1900000000}",
                "token has no issuer");
    claims_deny(j,
                "{\"iss\":\"Churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong issuer");
    claims_deny(j,
                "{\"iss\":[\"churn\"],\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong issuer");
    claims_deny(j,
                "{\"iss\":\"churn \",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong issuer");
    /* aud. */
    claims_deny(j, "{\"iss\":\"churn\",\"sub\":\"a\",\"role\":\"admin\",\"exp\":1900000000}",
                "token has no audience");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong audience");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":[\"crm\",\"billing\"],\"sub\":\"a\",\"role\":"
                "\"admin\",\"exp\":1900000000}",
                "wrong audience");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":[],\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong audience");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":[[\"churn-api\"]],\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong audience");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":{\"churn-api\":1},\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong audience");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api-x\",\"sub\":\"a\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "wrong audience");
    /* sub. */
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"role\":\"admin\",\"exp\":1900000000}",
                "token has no subject");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":42,\"role\":\"admin\","
                "\"exp\":1900000000}",
                "token has no subject");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "bad subject");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"key:0123456789ab\","
                "\"role\":\"admin\",\"exp\":1900000000}",
                "bad subject");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\\nb\",\"role\":\"admin\","
                "\"exp\":1900000000}",
                "bad subject");
    memset(sub, 'a', 65);
    sub[65] = '\0';
    {
        char pl[512];
        snprintf(pl, sizeof pl,
                 "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"%s\",\"role\":\"admin\","
                 "\"exp\":1900000000}",
                 sub);
        claims_deny(j, pl, "bad subject");
    }
    /* role. */
    claims_deny(j, "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"exp\":1900000000}",
                "token has no role");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"root\","
                "\"exp\":1900000000}",
                "unknown role");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"none\","
                "\"exp\":1900000000}",
                "unknown role");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"Admin\","
                "\"exp\":1900000000}",
                "unknown role");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":1,"
                "\"exp\":1900000000}",
                "unknown role");
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":[\"admin\"],"
                "\"exp\":1900000000}",
                "unknown role");
    /* Payload shape: duplicates (a second role must not win), arrays. */
    claims_deny(j,
                "{\"iss\":\"churn\",\"aud\":\"churn-api\",\"sub\":\"a\",\"role\":\"service\","
                "\"role\":\"admin\",\"exp\":1900000000}",
                "malformed token payload");
    claims_deny(j, "[1,2]", "malformed token payload");
    claims_deny(j, "{\"a\":", "malformed token payload");
#undef BASE
    ch_jwt_free(j);
}

TEST(jwt_malformed_tokens)
{
    ch_jwt_opts o;
    ch_jwt *j;
    char good[4096];
    char *huge;
    char h[128];
    ch_principal who;
    ch_error err = {0};
    size_t n;

    hs_opts(&o);
    j = jwt_make(&o);
    issue(j, "alice", CH_ROLE_ANALYST, NOW, good, sizeof good);

    ASSERT_ERR(ch_jwt_verify(j, "", 0, NOW, &who, &err), CH_EAUTH);
    ASSERT_STR_EQ(err.msg, "no token");
    ASSERT_ERR(ch_jwt_verify(j, NULL, 0, NOW, &who, &err), CH_EAUTH);
    expect_deny(j, "garbage", "malformed token (need 3 segments)");
    expect_deny(j, "a.b", "malformed token (need 3 segments)");
    expect_deny(j, "a.b.c.d", "malformed token (too many segments)");
    expect_deny(j, "..", "malformed token (empty segment)");
    expect_deny(j, "a..c", "malformed token (empty segment)");
    expect_deny(j, ".b.c", "malformed token (empty segment)");
    expect_deny(j, "a b.c.d", "malformed token (not base64url)");
    expect_deny(j, "eyJ+.eyJ.sig", "malformed token (not base64url)");
    expect_deny(j, "eyJh=.eyJ.sig", "malformed token (not base64url)");
    expect_deny(j, "Bearer eyJ.eyJ.sig", "malformed token (not base64url)");
    /* Base64url of impossible length, or with stray low bits. */
    expect_deny(j, "eyJhb.eyJ9.sig", "malformed token (bad base64url)");
    expect_deny(j, "e3.e30.sig", "malformed token (bad base64url)");
    /* A header that is not JSON. */
    b64url("not json", 8, h);
    {
        char t[256];
        snprintf(t, sizeof t, "%s.e30.c2ln", h);
        expect_deny(j, t, "malformed token header");
    }

    /* The good token with a NUL inside, and cut short by one byte. */
    n = strlen(good);
    ASSERT_ERR(ch_jwt_verify(j, good, n + 1, NOW, &who, &err), CH_EAUTH);
    ASSERT_ERR(ch_jwt_verify(j, good, n - 1, NOW, &who, &err), CH_EAUTH);
    ASSERT_OK(ch_jwt_verify(j, good, n, NOW, &who, &err));
    /* The good token followed by a newline or a space. */
    {
        char t[4100];
        snprintf(t, sizeof t, "%s\n", good);
        expect_deny(j, t, "malformed token");
        snprintf(t, sizeof t, "%s ", good);
        expect_deny(j, t, "malformed token");
    }

    /* Huge: refused on length alone, before anything is read. */
    huge = ch_malloc(1 << 20);
    ASSERT(huge != NULL);
    memset(huge, 'A', 1 << 20);
    huge[100] = '.';
    huge[200] = '.';
    ASSERT_ERR(ch_jwt_verify(j, huge, 1 << 20, NOW, &who, &err), CH_EAUTH);
    ASSERT_STR_EQ(err.msg, "token too long");
    ASSERT_ERR(ch_jwt_verify(j, huge, 8193, NOW, &who, &err), CH_EAUTH);
    ASSERT_STR_EQ(err.msg, "token too long");
    /* 8192 bytes is read and refused for what it is. */
    ASSERT_ERR(ch_jwt_verify(j, huge, 8192, NOW, &who, &err), CH_EAUTH);
    ASSERT_CONTAINS(err.msg, "malformed token");
    ch_free(huge);
    ch_jwt_free(j);
}

/* ------------------------------------------------------------------ */
/* JWT: the cache.                                                     */
/* ------------------------------------------------------------------ */

TEST(jwt_cache_accepts_only_verified_tokens)
{
    ch_jwt_opts o;
    ch_jwt *j;
    char tok[4096], bad[4096];
    char pl[2048];
    ch_principal who;
    ch_error err = {0};
    uint64_t hits, misses;
    size_t n;

    hs_opts(&o);
    j = jwt_make(&o);
    issue(j, "alice", CH_ROLE_ANALYST, NOW, tok, sizeof tok);
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err));
    ch_jwt_cache_stats(j, &hits, &misses);
    ASSERT_INT_EQ(hits, 1);
    ASSERT_INT_EQ(misses, 1);

    /* Same length, one byte different, anywhere: never a hit. */
    n = strlen(tok);
    for (size_t i = 0; i < n; i += 7) {
        memcpy(bad, tok, n + 1);
        if (bad[i] == '.')
            continue;
        bad[i] = bad[i] == 'Q' ? 'R' : 'Q';
        ASSERT_ERR(ch_jwt_verify(j, bad, n, NOW, &who, &err), CH_EAUTH);
    }
    ch_jwt_cache_stats(j, &hits, &misses);
    ASSERT_INT_EQ(hits, 1);

    /* A prefix of a cached token is not that token. */
    ASSERT_ERR(ch_jwt_verify(j, tok, n - 1, NOW, &who, &err), CH_EAUTH);

    /* A well-signed token that fails a claim is refused every time: it
     * was never cached. */
    payload(pl, sizeof pl, "\"x\":1");
    pl[strlen("{\"iss\":\"")] = 'C'; /* iss "Churn" */
    forge(SECRET, strlen(SECRET), hs_header, pl, bad);
    for (int k = 0; k < 3; k++)
        expect_deny(j, bad, "wrong issuer");
    ch_jwt_cache_stats(j, &hits, &misses);
    ASSERT_INT_EQ(hits, 1);

    /* The principal from a hit is the one from the check. */
    memset(&who, 0, sizeof who);
    ASSERT_OK(ch_jwt_verify(j, tok, strlen(tok), NOW + 5, &who, &err));
    ASSERT_STR_EQ(who.name, "alice");
    ASSERT_INT_EQ(who.role, CH_ROLE_ANALYST);
    ASSERT_INT_EQ(who.expires, NOW + 3600);
    ch_jwt_free(j);
}

TEST(jwt_cache_is_bounded_and_evicts)
{
    ch_jwt_opts o;
    ch_jwt *j;
    enum { N = 600 };
    char(*toks)[1024];
    ch_principal who;
    ch_error err = {0};
    uint64_t hits, misses;

    hs_opts(&o);
    o.cache_entries = 64; /* 16 shards x 1 set x 4 ways */
    j = jwt_make(&o);
    toks = ch_malloc(sizeof *toks * N);
    ASSERT(toks != NULL);
    for (int i = 0; i < N; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "user%d", i);
        /* Varied expiry, so eviction has choices to make. */
        issue(j, sub, CH_ROLE_SERVICE, NOW - (i % 50) * 60, toks[i], sizeof toks[i]);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            char want[32];
            snprintf(want, sizeof want, "user%d", i);
            ASSERT_OK(ch_jwt_verify(j, toks[i], strlen(toks[i]), NOW, &who, &err));
            ASSERT_STR_EQ(who.name, want);
        }
    }
    ch_jwt_cache_stats(j, &hits, &misses);
    ASSERT_INT_EQ(hits + misses, 3 * N);
    ASSERT(misses >= N);          /* the first round misses every time */
    ASSERT(misses > 2 * N - 128); /* 600 tokens cannot all stay in 64 slots */
    /* A working set of 4 (which fits in any one set, wherever the seeded
     * hash puts it) stays cached among 600 stale tokens, although these
     * 4 expire before most of them: eviction is LRU, not by expiry. */
    for (int round = 0; round < 10; round++)
        for (int i = 6; i < 10; i++)
            ASSERT_OK(ch_jwt_verify(j, toks[i], strlen(toks[i]), NOW, &who, &err));
    {
        uint64_t h2, m2;
        ch_jwt_cache_stats(j, &h2, &m2);
        ASSERT(h2 - hits >= 36);
    }
    /* Expired entries go first: at a 'now' where every stored token has
     * expired, new ones replace them instead of each other. */
    {
        int64_t later = NOW + 7200;
        char fresh[8][1024];
        uint64_t h2, m2, h3, m3;
        for (int i = 0; i < 8; i++) {
            char sub[32];
            snprintf(sub, sizeof sub, "late%d", i);
            issue(j, sub, CH_ROLE_SERVICE, later, fresh[i], sizeof fresh[i]);
            ASSERT_OK(ch_jwt_verify(j, fresh[i], strlen(fresh[i]), later, &who, &err));
        }
        ch_jwt_cache_stats(j, &h2, &m2);
        for (int i = 0; i < 8; i++)
            ASSERT_OK(ch_jwt_verify(j, fresh[i], strlen(fresh[i]), later, &who, &err));
        ch_jwt_cache_stats(j, &h3, &m3);
        ASSERT_INT_EQ(h3 - h2, 8);
    }
    ch_free(toks);
    ch_jwt_free(j);
}

typedef struct worker {
    ch_jwt *j;
    char (*toks)[1024];
    int n_toks;
    const char *bad;
    int failures;
    unsigned seed;
} worker;

static void *verify_worker(void *arg)
{
    worker *w = arg;
    ch_principal who;
    ch_error err;

    for (int i = 0; i < 4000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        int k = (int)((w->seed >> 8) % (unsigned)(w->n_toks + 1));
        if (k == w->n_toks) {
            if (ch_jwt_verify(w->j, w->bad, strlen(w->bad), NOW, &who, &err) != CH_EAUTH)
                w->failures++;
            continue;
        }
        char want[32];
        snprintf(want, sizeof want, "user%d", k);
        if (ch_jwt_verify(w->j, w->toks[k], strlen(w->toks[k]), NOW, &who, &err) != CH_OK ||
            strcmp(who.name, want) != 0)
            w->failures++;
    }
    return NULL;
}

TEST(jwt_verify_from_many_threads)
{
    ch_jwt_opts o;
    ch_jwt *j;
    enum { N = 48, T = 4 };
    static char toks[N][1024];
    char bad[4096];
    pthread_t th[T];
    worker w[T];
    uint64_t hits, misses;

    hs_opts(&o);
    o.cache_entries = 32; /* smaller than the working set: constant eviction */
    j = jwt_make(&o);
    for (int i = 0; i < N; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "user%d", i);
        issue(j, sub, CH_ROLE_SERVICE, NOW, toks[i], sizeof toks[i]);
    }
    memcpy(bad, toks[0], strlen(toks[0]) + 1);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'E' : 'A';
    for (int t = 0; t < T; t++) {
        w[t] = (worker){j, toks, N, bad, 0, (unsigned)t * 7919u + 1u};
        ASSERT(pthread_create(&th[t], NULL, verify_worker, &w[t]) == 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        ASSERT_INT_EQ(w[t].failures, 0);
    }
    ch_jwt_cache_stats(j, &hits, &misses);
    ASSERT_INT_EQ(hits + misses, T * 4000);
    ch_jwt_free(j);
}

/* Median-free but steady enough: the best of 5 runs of 'n' calls. */
static double verify_us(ch_jwt *j, const char *tok, int n)
{
    double best = 1e30;
    ch_principal who;
    ch_error err;

    for (int r = 0; r < 5; r++) {
        double t0 = seconds();
        for (int i = 0; i < n; i++)
            if (ch_jwt_verify(j, tok, strlen(tok), NOW, &who, &err) != CH_OK)
                FAIL("verify failed: %s", err.msg);
        double us = (seconds() - t0) / n * 1e6;
        if (us < best)
            best = us;
    }
    return best;
}

TEST(jwt_verify_cost)
{
    ch_jwt_opts o;
    ch_jwt *hs, *hs_nc, *rs, *rs_nc;
    char hs_tok[4096], rs_tok[4096];
    double hs_hit, hs_full, rs_hit, rs_full;

    hs_opts(&o);
    hs = jwt_make(&o);
    o.cache_entries = 0;
    hs_nc = jwt_make(&o);
    rs_opts(&o, 1);
    rs = jwt_make(&o);
    o.cache_entries = 0;
    rs_nc = jwt_make(&o);
    issue(hs, "alice", CH_ROLE_ANALYST, NOW, hs_tok, sizeof hs_tok);
    issue(rs, "alice", CH_ROLE_ANALYST, NOW, rs_tok, sizeof rs_tok);

    hs_full = verify_us(hs_nc, hs_tok, 2000);
    hs_hit = verify_us(hs, hs_tok, 20000);
    rs_full = verify_us(rs_nc, rs_tok, 200);
    rs_hit = verify_us(rs, rs_tok, 20000);
    fprintf(stderr,
            "    verify cost per call (token %zu/%zu bytes):\n"
            "      HS256 no cache %8.2f us   cached %6.3f us\n"
            "      RS256 no cache %8.2f us   cached %6.3f us\n",
            strlen(hs_tok), strlen(rs_tok), hs_full, hs_hit, rs_full, rs_hit);
    /* Loose bounds: the cache must win clearly, even on a busy machine. */
    ASSERT(hs_hit < hs_full);
    ASSERT(rs_hit * 10 < rs_full);
    ch_jwt_free(hs);
    ch_jwt_free(hs_nc);
    ch_jwt_free(rs);
    ch_jwt_free(rs_nc);
}

/* ------------------------------------------------------------------ */
/* Out of memory: every allocation of each scenario fails in turn.     */
/* ------------------------------------------------------------------ */

/* Runs 'scenario' with allocation n failing, for n = 1, 2, ... until a run
 * makes no failing allocation; each run must succeed or return
 * CH_ENOMEM. valgrind (make valgrind) checks that nothing leaks. */
static void torture(const char *name, ch_err (*scenario)(void))
{
    for (long n = 1; n < 10000; n++) {
        ch_alloc_fail_after(n);
        ch_err rc = scenario();
        long used = ch_alloc_count();
        ch_alloc_fail_after(0);
        if (rc != CH_OK && rc != CH_ENOMEM)
            FAIL("%s, allocation %ld failing: %s", name, n, ch_strerror(rc));
        if (used < n) {
            if (rc != CH_OK)
                FAIL("%s: %s with no allocation failing", name, ch_strerror(rc));
            return;
        }
    }
    FAIL("%s: did not finish", name);
}

static ch_err sc_hs(void)
{
    ch_jwt_opts o;
    ch_jwt *j = NULL;
    ch_buf b;
    ch_principal who;
    ch_err rc;

    hs_opts(&o);
    o.cache_entries = 64;
    rc = ch_jwt_new(&o, &j, NULL);
    if (rc != CH_OK)
        return rc;
    ch_buf_init(&b, 1 << 16);
    rc = ch_jwt_issue(j, "alice", CH_ROLE_ADMIN, NOW, &b, NULL);
    /* Verify twice: a miss (with a cache insert) and then a hit. */
    if (rc == CH_OK)
        rc = ch_jwt_verify(j, b.data, b.len, NOW, &who, NULL);
    if (rc == CH_OK)
        rc = ch_jwt_verify(j, b.data, b.len, NOW, &who, NULL);
    if (rc == CH_OK && strcmp(who.name, "alice") != 0)
        rc = CH_EINVAL;
    ch_buf_reset(&b);
    ch_jwt_free(j);
    return rc;
}

static ch_err sc_rs(void)
{
    ch_jwt_opts o;
    ch_jwt *j = NULL;
    ch_buf b;
    ch_principal who;
    ch_err rc;

    rs_opts(&o, 1);
    rc = ch_jwt_new(&o, &j, NULL);
    if (rc != CH_OK)
        return rc;
    ch_buf_init(&b, 1 << 16);
    rc = ch_jwt_issue(j, "alice", CH_ROLE_ADMIN, NOW, &b, NULL);
    if (rc == CH_OK)
        rc = ch_jwt_verify(j, b.data, b.len, NOW, &who, NULL);
    ch_buf_reset(&b);
    ch_jwt_free(j);
    return rc;
}

static ch_err sc_keys(void)
{
    char key[CH_API_KEY_LEN + 1], id[CH_API_KEY_ID_LEN + 1], sha[65];
    char pid[CH_API_KEY_ID_LEN + 1], psha[65], ps[CH_PSEUDONYM_LEN + 1];
    ch_err rc = ch_api_key_new(key, id, sha, NULL);
    if (rc == CH_OK)
        rc = ch_api_key_parse(key, strlen(key), pid, psha, NULL);
    if (rc == CH_OK)
        rc = ch_pseudonymize((const unsigned char *)SECRET, 32, "7590-VHVEG", 10, ps, NULL);
    return rc;
}

TEST(out_of_memory_everywhere)
{
    torture("HS256 new/issue/verify", sc_hs);
    torture("RS256 new/issue/verify", sc_rs);
    torture("API keys and pseudonyms", sc_keys);
}

TEST_MAIN(T(hmac_sha256_rfc4231), T(random_and_ct_equal), T(role_names_round_trip),
          T(permission_matrix_matches_docs), T(api_key_new_and_parse),
          T(api_key_parse_rejects_other_shapes), T(pseudonym_is_truncated_hmac),
          T(password_hash_and_verify), T(password_length_limits),
          T(password_verifies_reference_hashes), T(password_memory_is_bounded_and_returned),
          T(password_verify_rejects_other_encodings), T(jwt_new_rejects_bad_options),
          T(jwt_hs256_round_trip), T(jwt_issue_rejects_bad_input), T(jwt_rs256_round_trip),
          T(jwt_alg_confusion_is_refused), T(jwt_alg_none_is_refused), T(jwt_header_checks),
          T(jwt_bad_signatures), T(jwt_expiry_and_not_before), T(jwt_claims_from_other_issuers),
          T(jwt_claims_are_checked), T(jwt_malformed_tokens),
          T(jwt_cache_accepts_only_verified_tokens), T(jwt_cache_is_bounded_and_evicts),
          T(jwt_verify_from_many_threads), T(jwt_verify_cost), T(out_of_memory_everywhere))
