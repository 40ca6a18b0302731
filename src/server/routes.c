/*
 * routes.c -- the route table of the prediction service.
 *
 * Adding an endpoint is one line here, one handler, and its entry in
 * openapi.json (a test checks that the two list the same operations).
 * Each route names the permission it needs (auth.h); ROUTE_PUBLIC routes
 * need no credentials. A path has at most one {param} segment.
 */
#include <stdio.h>
#include <string.h>

#include "server.h"

const route routes[] = {
    {"POST", "/v1/predict", h_predict_one, CH_PERM_PREDICT},
    {"POST", "/v1/predict/batch", h_predict_batch, CH_PERM_PREDICT},
    {"POST", "/v1/feedback", h_feedback_add, CH_PERM_FEEDBACK},
    {"GET", "/v1/models", h_models_list, CH_PERM_MODELS_READ},
    {"GET", "/v1/models/{version}", h_models_show, CH_PERM_MODELS_READ},
    {"POST", "/v1/models/{version}/promote", h_models_promote, CH_PERM_MODELS_WRITE},
    {"POST", "/v1/models/rollback", h_models_rollback, CH_PERM_MODELS_WRITE},
    {"POST", "/v1/auth/token", h_auth_token, ROUTE_PUBLIC},
    {"GET", "/v1/users", h_users_list, CH_PERM_USERS},
    {"POST", "/v1/users", h_users_add, CH_PERM_USERS},
    {"GET", "/v1/keys", h_keys_list, CH_PERM_USERS},
    {"POST", "/v1/keys", h_keys_create, CH_PERM_USERS},
    {"POST", "/v1/keys/{id}/revoke", h_keys_revoke, CH_PERM_USERS},
    {"GET", "/v1/audit", h_audit_list, CH_PERM_AUDIT},
    {"GET", "/v1/monitor/{kind}", h_monitor_get, CH_PERM_MONITOR},
    {"POST", "/v1/monitor/run", h_monitor_run, CH_PERM_MODELS_WRITE},
    {"GET", "/v1/rollouts", h_rollouts_list, CH_PERM_MONITOR},
    {"POST", "/v1/rollouts", h_rollouts_start, CH_PERM_OPERATE},
    {"GET", "/v1/rollouts/{id}", h_rollouts_show, CH_PERM_MONITOR},
    {"POST", "/v1/rollouts/{id}/pause", h_rollouts_pause, CH_PERM_OPERATE},
    {"POST", "/v1/rollouts/{id}/resume", h_rollouts_resume, CH_PERM_OPERATE},
    {"POST", "/v1/rollouts/{id}/abort", h_rollouts_abort, CH_PERM_OPERATE},
    {"GET", "/v1/jobs", h_jobs_list, CH_PERM_MONITOR},
    {"POST", "/v1/jobs", h_jobs_start, CH_PERM_OPERATE},
    {"GET", "/v1/jobs/{id}", h_jobs_show, CH_PERM_MONITOR},
    {"POST", "/v1/jobs/{id}/cancel", h_jobs_cancel, CH_PERM_OPERATE},
    {"POST", "/v1/hooks/alertmanager", h_hooks_alertmanager, ROUTE_PUBLIC},
    {"GET", "/healthz", h_ops_healthz, ROUTE_PUBLIC},
    {"GET", "/readyz", h_ops_readyz, ROUTE_PUBLIC},
    {"GET", "/metrics", h_ops_metrics, ROUTE_PUBLIC},
    {"GET", "/openapi.json", h_ops_openapi, ROUTE_PUBLIC},
    {"GET", "/v1/schema", h_schema_get, CH_PERM_PREDICT},
    /* The UI's static files are public; every API call the page makes
     * carries the user's token and is checked here like any other. */
    {"GET", "/", h_ui_index, ROUTE_PUBLIC},
    {"GET", "/ui/{file}", h_ui_file, ROUTE_PUBLIC},
};
const size_t n_routes = sizeof routes / sizeof routes[0];

/* Whether 'path' matches 'pattern'; a {param} segment matches one
 * non-empty segment of at most 63 bytes, copied into 'param'. */
static int match(const char *pattern, const char *path, char param[64])
{
    while (*pattern != '\0' && *path != '\0') {
        if (*pattern == '{') {
            size_t n = strcspn(path, "/");
            const char *close = strchr(pattern, '}');
            if (n == 0 || n > 63 || close == NULL)
                return 0;
            memcpy(param, path, n);
            param[n] = '\0';
            path += n;
            pattern = close + 1;
            continue;
        }
        if (*pattern != *path)
            return 0;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

int route_find(const char *method, const char *path, char param[64], int *path_known)
{
    char tmp[64];
    *path_known = 0;
    /* Literal routes win over patterns ("/v1/models/rollback" is not a
     * version), so try exact matches first. */
    for (size_t i = 0; i < n_routes; i++) {
        if (strchr(routes[i].path, '{') == NULL && strcmp(routes[i].path, path) == 0) {
            if (strcmp(routes[i].method, method) == 0)
                return (int)i;
            *path_known = 1;
        }
    }
    if (*path_known)
        return -1;
    for (size_t i = 0; i < n_routes; i++) {
        if (strchr(routes[i].path, '{') != NULL && match(routes[i].path, path, tmp)) {
            if (strcmp(routes[i].method, method) == 0) {
                memcpy(param, tmp, sizeof tmp);
                return (int)i;
            }
            *path_known = 1;
        }
    }
    return -1;
}

void route_allow(const char *path, char *out, size_t cap)
{
    char tmp[64];
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n_routes; i++) {
        int hit = strchr(routes[i].path, '{') == NULL ? strcmp(routes[i].path, path) == 0
                                                      : match(routes[i].path, path, tmp);
        if (hit && len + strlen(routes[i].method) + 3 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? ", " : "",
                                    routes[i].method);
    }
}
