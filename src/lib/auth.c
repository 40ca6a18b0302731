/*
 * auth.c -- roles and their permission matrix, service API keys and keyed
 * pseudonyms for customer ids. Tokens live in jwt.c, password hashes in
 * password.c; this file needs no third-party header.
 *
 * The permission matrix is one static table, the single source for
 * ch_role_allows(); docs/security.md shows the same table and
 * tests/unit/test_auth.c checks every cell against it. Everything here is
 * pure or uses only thread-safe primitives (hash.h), so all functions are
 * thread-safe.
 *
 * API keys are checked on every request from machine clients, so parsing
 * is a fixed-shape scan plus one SHA-256; the shape is validated before
 * anything is hashed so that junk never reaches the store lookup.
 */
#include "ch/auth.h"

#include <string.h>

#include "ch/hash.h"

/* ---- roles and permissions ------------------------------------------------ */

static const char *const role_names[] = {"none", "admin", "scientist", "analyst", "service"};
#define N_ROLES (sizeof role_names / sizeof role_names[0])

static const char *const perm_names[CH_PERM__COUNT] = {
    "predict", "feedback", "models:read", "models:write", "users", "audit", "monitor", "operate",
};

/* Row per role, column per permission, in enum order. Keep in step with
 * the table in docs/security.md (the unit test holds a copy of it). */
static const unsigned char matrix[N_ROLES][CH_PERM__COUNT] = {
    /*                predict feedback m:read m:write users audit monitor operate */
    [CH_ROLE_NONE] = {0, 0, 0, 0, 0, 0, 0, 0},      [CH_ROLE_ADMIN] = {1, 1, 1, 1, 1, 1, 1, 1},
    [CH_ROLE_SCIENTIST] = {1, 1, 1, 1, 0, 1, 1, 1}, [CH_ROLE_ANALYST] = {1, 1, 1, 0, 0, 0, 1, 0},
    [CH_ROLE_SERVICE] = {1, 1, 0, 0, 0, 0, 0, 0},
};

const char *ch_role_name(ch_role r)
{
    if ((unsigned)r >= N_ROLES)
        return "none";
    return role_names[r];
}

ch_role ch_role_parse(const char *s)
{
    size_t i;

    if (s == NULL)
        return CH_ROLE_NONE;
    /* From 1: "none" names no role, so it parses as CH_ROLE_NONE anyway. */
    for (i = 1; i < N_ROLES; i++) {
        if (strcmp(s, role_names[i]) == 0)
            return (ch_role)i;
    }
    return CH_ROLE_NONE;
}

int ch_role_allows(ch_role r, ch_perm p)
{
    if ((unsigned)r >= N_ROLES || (unsigned)p >= CH_PERM__COUNT)
        return 0;
    return matrix[r][p];
}

const char *ch_perm_name(ch_perm p)
{
    if ((unsigned)p >= CH_PERM__COUNT)
        return "unknown";
    return perm_names[p];
}

/* ---- API keys --------------------------------------------------------------- */

#define KEY_PREFIX     "chk_"
#define KEY_PREFIX_LEN 4
#define KEY_SECRET_LEN 40 /* hex digits: 160 bits */

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 15];
    }
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

ch_err ch_api_key_new(char key[CH_API_KEY_LEN + 1], char id[CH_API_KEY_ID_LEN + 1], char sha256[65],
                      ch_error *err)
{
    unsigned char raw[CH_API_KEY_ID_LEN / 2 + KEY_SECRET_LEN / 2];
    char k[CH_API_KEY_LEN + 1];
    char digest[CH_SHA256_HEX_LEN + 1];
    ch_err rc;

    rc = ch_random_bytes(raw, sizeof raw, err);
    if (rc != CH_OK)
        return rc;
    memcpy(k, KEY_PREFIX, KEY_PREFIX_LEN);
    to_hex(raw, CH_API_KEY_ID_LEN / 2, k + KEY_PREFIX_LEN);
    k[KEY_PREFIX_LEN + CH_API_KEY_ID_LEN] = '_';
    to_hex(raw + CH_API_KEY_ID_LEN / 2, KEY_SECRET_LEN / 2,
           k + KEY_PREFIX_LEN + CH_API_KEY_ID_LEN + 1);
    k[CH_API_KEY_LEN] = '\0';
    ch_cleanse(raw, sizeof raw);

    rc = ch_sha256_hex(k, CH_API_KEY_LEN, digest, err);
    if (rc != CH_OK) {
        ch_cleanse(k, sizeof k);
        return rc;
    }
    memcpy(key, k, sizeof k);
    memcpy(id, k + KEY_PREFIX_LEN, CH_API_KEY_ID_LEN);
    id[CH_API_KEY_ID_LEN] = '\0';
    memcpy(sha256, digest, sizeof digest);
    ch_cleanse(k, sizeof k);
    return CH_OK;
}

ch_err ch_api_key_parse(const char *key, size_t len, char id[CH_API_KEY_ID_LEN + 1],
                        char sha256[65], ch_error *err)
{
    char digest[CH_SHA256_HEX_LEN + 1];
    size_t i;
    ch_err rc;

    /* Shape first: "chk_", 12 lowercase hex, "_", 40 lowercase hex. */
    if (key == NULL || len != CH_API_KEY_LEN || memcmp(key, KEY_PREFIX, KEY_PREFIX_LEN) != 0 ||
        key[KEY_PREFIX_LEN + CH_API_KEY_ID_LEN] != '_')
        return ch_error_set(err, CH_EAUTH, "not an API key");
    for (i = KEY_PREFIX_LEN; i < CH_API_KEY_LEN; i++) {
        if (i != KEY_PREFIX_LEN + CH_API_KEY_ID_LEN && !is_lower_hex(key[i]))
            return ch_error_set(err, CH_EAUTH, "not an API key");
    }
    rc = ch_sha256_hex(key, len, digest, err);
    if (rc != CH_OK)
        return rc;
    memcpy(id, key + KEY_PREFIX_LEN, CH_API_KEY_ID_LEN);
    id[CH_API_KEY_ID_LEN] = '\0';
    memcpy(sha256, digest, sizeof digest);
    return CH_OK;
}

/* ---- pseudonyms ------------------------------------------------------------- */

ch_err ch_pseudonymize(const unsigned char *key, size_t key_len, const char *id, size_t len,
                       char out[CH_PSEUDONYM_LEN + 1], ch_error *err)
{
    unsigned char tag[CH_HMAC_SHA256_LEN];
    ch_err rc;

    if (key == NULL || key_len == 0)
        return ch_error_set(err, CH_EINVAL, "pseudonym key is empty");
    if (id == NULL && len > 0)
        return ch_error_set(err, CH_EINVAL, "customer id is NULL");
    rc = ch_hmac_sha256(key, key_len, id, len, tag);
    if (rc != CH_OK)
        return ch_error_set(err, rc, "cannot compute a pseudonym (HMAC-SHA256 failed)");
    to_hex(tag, CH_PSEUDONYM_LEN / 2, out);
    out[CH_PSEUDONYM_LEN] = '\0';
    return CH_OK;
}
