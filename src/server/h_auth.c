/*
 * h_auth.c -- tokens, users, API keys and the audit log over HTTP.
 *
 * POST /v1/auth/token trades a user name and password for a JWT carrying
 * the user's stored role; nothing in a request can choose a role for
 * oneself. Users and keys are administered by admins only (the route
 * table says so), and every change is audited by the store.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

/* Argon2id hashing takes ~19 MiB for ~50 ms: one at a time keeps the
 * server's memory bounded whatever the number of concurrent logins. */
static pthread_mutex_t hash_mu = PTHREAD_MUTEX_INITIALIZER;
static char dummy_hash[CH_PASSWORD_HASH_MAX];

static int json_body(call *c, ch_json **doc)
{
    ch_error err = {0};
    const char *ct = http_header(c->rq, "Content-Type");
    *doc = NULL;
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        reply_error(c, 415, "unsupported_media_type", "send application/json", NULL);
        return 0;
    }
    if (ch_json_parse(c->rq->body, c->rq->body_len, doc, &err) != CH_OK) {
        ch_error_prefix(&err, "malformed JSON");
        reply_error(c, 400, "bad_request", err.msg, NULL);
        return 0;
    }
    if (ch_json_typeof(*doc) != CH_JSON_OBJECT) {
        reply_error(c, 400, "bad_request", "the body must be a JSON object", NULL);
        ch_json_free(*doc);
        *doc = NULL;
        return 0;
    }
    return 1;
}

/* A required string member; replies 400 and returns NULL when absent. */
static const char *need_str(call *c, const ch_json *doc, const char *key)
{
    const ch_json *v = ch_json_get(doc, key);
    const char *s = v != NULL ? ch_json_str(v, NULL) : NULL;
    if (s == NULL || s[0] == '\0') {
        char msg[96];
        snprintf(msg, sizeof msg, "'%s' is required and must be a non-empty string", key);
        reply_error(c, 400, "bad_request", msg, key);
        return NULL;
    }
    return s;
}

void h_auth_token(call *c)
{
    ch_json *doc = NULL;
    const char *user;
    const char *pw;
    ch_registry_user u;
    ch_error err = {0};
    ch_err rc;
    if (!json_body(c, &doc))
        return;
    user = need_str(c, doc, "username");
    pw = user != NULL ? need_str(c, doc, "password") : NULL;
    if (pw == NULL)
        goto done;
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_registry_user_get(c->a->reg, user, &u, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK && rc != CH_ENOTFOUND && rc != CH_EINVAL) {
        reply_err(c, rc, &err, NULL);
        goto done;
    }
    pthread_mutex_lock(&hash_mu);
    if (rc != CH_OK) {
        /* Unknown user: spend the same time as a wrong password, so that
         * timing does not tell which user names exist. */
        if (dummy_hash[0] == '\0' &&
            ch_password_hash("not a password 0", dummy_hash, &err) != CH_OK)
            dummy_hash[0] = '\0';
        if (dummy_hash[0] != '\0' && ch_password_verify(dummy_hash, pw, &err) == CH_OK)
            dummy_hash[0] = '\0'; /* cannot happen: the dummy is no one's password */
        rc = CH_EAUTH;
    } else {
        rc = ch_password_verify(u.password_hash, pw, &err);
    }
    pthread_mutex_unlock(&hash_mu);
    if (rc == CH_OK && (u.disabled || u.role == CH_ROLE_NONE))
        rc = CH_EAUTH;
    if (rc != CH_OK) {
        atomic_fetch_add(&c->a->m.auth_failures, 1);
        reply_error(c, 401, "unauthorized", "invalid user name or password", NULL);
        goto done;
    }
    c->rs->status = 200;
    ch_buf_puts(&c->rs->body, "{\"access_token\":\"");
    rc = ch_jwt_issue(c->a->jwt, user, u.role, unix_now(), &c->rs->body, &err);
    if (rc != CH_OK) {
        reply_err(c, rc, &err, NULL);
        goto done;
    }
    ch_buf_printf(&c->rs->body, "\",\"token_type\":\"Bearer\",\"expires_in\":%lld,\"role\":\"%s\"}",
                  (long long)c->a->o.token_ttl_s, ch_role_name(u.role));
    snprintf(c->rq->app_user, sizeof c->rq->app_user, "%s", user);
done:
    ch_json_free(doc);
}

void h_users_list(call *c)
{
    reply_store_json(c, ch_registry_users_json);
}

void h_users_add(call *c)
{
    ch_json *doc = NULL;
    const char *name;
    const char *role;
    const char *pw;
    char hash[CH_PASSWORD_HASH_MAX];
    ch_error err = {0};
    ch_err rc;
    if (!json_body(c, &doc))
        return;
    name = need_str(c, doc, "name");
    role = name != NULL ? need_str(c, doc, "role") : NULL;
    pw = role != NULL ? need_str(c, doc, "password") : NULL;
    if (pw == NULL)
        goto done;
    if (ch_role_parse(role) == CH_ROLE_NONE) {
        reply_error(c, 400, "bad_request", "'role' must be admin, scientist, analyst or service",
                    "role");
        goto done;
    }
    pthread_mutex_lock(&hash_mu);
    rc = ch_password_hash(pw, hash, &err);
    pthread_mutex_unlock(&hash_mu);
    if (rc != CH_OK) {
        reply_err(c, rc, &err, "password");
        goto done;
    }
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_registry_user_add(c->a->reg, name, role, hash, c->who.name, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK) {
        reply_err(c, rc == CH_EINVAL && strstr(err.msg, "exists") != NULL ? CH_EDATA : rc, &err,
                  "name");
        goto done;
    }
    c->rs->status = 201;
    ch_buf_puts(&c->rs->body, "{\"name\":");
    ch_buf_json_str(&c->rs->body, name, strlen(name));
    ch_buf_printf(&c->rs->body, ",\"role\":\"%s\"}", ch_role_name(ch_role_parse(role)));
done:
    ch_json_free(doc);
}

void h_keys_list(call *c)
{
    reply_store_json(c, ch_registry_keys_json);
}

void h_keys_create(call *c)
{
    ch_json *doc = NULL;
    const char *role;
    const ch_json *lv;
    const char *label = "";
    char key[CH_API_KEY_LEN + 1];
    char id[CH_API_KEY_ID_LEN + 1];
    char sha[65];
    ch_error err = {0};
    ch_err rc;
    if (!json_body(c, &doc))
        return;
    role = need_str(c, doc, "role");
    if (role == NULL)
        goto done;
    if (ch_role_parse(role) == CH_ROLE_NONE) {
        reply_error(c, 400, "bad_request", "'role' must be admin, scientist, analyst or service",
                    "role");
        goto done;
    }
    lv = ch_json_get(doc, "label");
    if (lv != NULL && ch_json_str(lv, NULL) == NULL) {
        reply_error(c, 400, "bad_request", "'label' must be a string", "label");
        goto done;
    }
    if (lv != NULL)
        label = ch_json_str(lv, NULL);
    rc = ch_api_key_new(key, id, sha, &err);
    if (rc == CH_OK) {
        pthread_mutex_lock(&c->a->reg_mu);
        rc = ch_registry_key_add(c->a->reg, id, sha, role, label, c->who.name, &err);
        pthread_mutex_unlock(&c->a->reg_mu);
    }
    if (rc != CH_OK) {
        reply_err(c, rc, &err, NULL);
        goto done;
    }
    c->rs->status = 201;
    ch_buf_printf(&c->rs->body, "{\"id\":\"%s\",\"key\":\"%s\",\"role\":\"%s\",\"label\":", id, key,
                  ch_role_name(ch_role_parse(role)));
    ch_buf_json_str(&c->rs->body, label, strlen(label));
    ch_buf_puts(&c->rs->body, ",\"note\":\"the key is shown only once\"}");
done:
    ch_json_free(doc);
}

void h_keys_revoke(call *c)
{
    ch_error err = {0};
    ch_err rc;
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_registry_key_revoke(c->a->reg, c->param, c->who.name, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK) {
        reply_err(c, rc, &err, "id");
        return;
    }
    server_forget_keys();
    c->rs->status = 200;
    ch_buf_printf(&c->rs->body, "{\"id\":");
    ch_buf_json_str(&c->rs->body, c->param, strlen(c->param));
    ch_buf_puts(&c->rs->body, ",\"revoked\":true}");
}

void h_audit_list(call *c)
{
    size_t limit;
    ch_error err = {0};
    ch_err rc;
    if (!query_limit(c, 100, 100000, &limit))
        return;
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_registry_audit_tail_json(c->a->reg, limit, &c->rs->body, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK)
        reply_err(c, rc, &err, NULL);
    else
        c->rs->status = 200;
}
