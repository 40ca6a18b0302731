/*
 * json.c -- adapter over Jansson: the only file that includes jansson.h.
 *
 * ch_json nodes are json_t pointers in disguise; the root holds the only
 * reference. Jansson keeps object members in insertion order, which
 * ch_json_member() exposes so that config order (column order, feature
 * order) survives a round trip. Numbers: JSON_DECODE_INT_AS_REAL is not
 * used so that "3" and "3.0" stay distinguishable for integer checks.
 */
#include "ch/json.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"

#define J(v) ((json_t *)(v))

ch_err ch_json_parse(const char *text, size_t len, ch_json **out, ch_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return ch_error_set(err, CH_ENOMEM, "out of memory parsing JSON");
        return ch_error_set(err, CH_EFORMAT, "line %d, column %d: %s", je.line, je.column, je.text);
    }
    *out = (ch_json *)root;
    return CH_OK;
}

ch_err ch_json_load_file(const char *path, size_t max_bytes, ch_json **out, ch_error *err)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    size_t cap = 0;
    ch_err rc = CH_OK;

    if (f == NULL)
        return ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
    for (;;) {
        size_t n;
        if (len == cap) {
            size_t ncap = cap == 0 ? 65536 : cap * 2;
            char *p;
            if (cap >= max_bytes + 1)
                ncap = cap; /* cannot happen: checked below */
            p = ch_realloc(text, ncap);
            if (p == NULL) {
                rc = ch_error_set(err, CH_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            text = p;
            cap = ncap;
        }
        n = fread(text + len, 1, cap - len, f);
        len += n;
        if (len > max_bytes) {
            rc = ch_error_set(err, CH_ELIMIT, "%s: larger than the limit of %zu bytes", path,
                              max_bytes);
            goto done;
        }
        if (n == 0) {
            if (ferror(f))
                rc = ch_error_set(err, CH_EIO, "%s: read error", path);
            break;
        }
    }
    rc = ch_json_parse(text, len, out, err);
    if (rc != CH_OK)
        ch_error_prefix(err, "%s", path);
done:
    ch_free(text);
    fclose(f);
    return rc;
}

void ch_json_free(ch_json *root)
{
    if (root != NULL)
        json_decref(J(root));
}

ch_json_type ch_json_typeof(const ch_json *v)
{
    if (v == NULL)
        return CH_JSON_NULL;
    switch (json_typeof(J(v))) {
    case JSON_OBJECT:
        return CH_JSON_OBJECT;
    case JSON_ARRAY:
        return CH_JSON_ARRAY;
    case JSON_STRING:
        return CH_JSON_STRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return CH_JSON_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return CH_JSON_BOOL;
    case JSON_NULL:
        return CH_JSON_NULL;
    }
    return CH_JSON_NULL;
}

const char *ch_json_type_name(ch_json_type t)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < 6 ? names[t] : "?";
}

const ch_json *ch_json_get(const ch_json *obj, const char *key)
{
    if (obj == NULL || !json_is_object(J(obj)))
        return NULL;
    return (const ch_json *)json_object_get(J(obj), key);
}

size_t ch_json_len(const ch_json *v)
{
    if (v == NULL)
        return 0;
    if (json_is_array(J(v)))
        return json_array_size(J(v));
    if (json_is_object(J(v)))
        return json_object_size(J(v));
    return 0;
}

const ch_json *ch_json_at(const ch_json *arr, size_t i)
{
    if (arr == NULL || !json_is_array(J(arr)))
        return NULL;
    return (const ch_json *)json_array_get(J(arr), i);
}

const char *ch_json_member(const ch_json *obj, size_t i, const ch_json **val)
{
    void *it;
    size_t k = 0;
    if (obj == NULL || !json_is_object(J(obj)))
        return NULL;
    /* Objects in configs are small; a linear walk keeps the API simple. */
    for (it = json_object_iter(J(obj)); it != NULL; it = json_object_iter_next(J(obj), it), k++) {
        if (k == i) {
            if (val != NULL)
                *val = (const ch_json *)json_object_iter_value(it);
            return json_object_iter_key(it);
        }
    }
    return NULL;
}

const char *ch_json_str(const ch_json *v, size_t *len)
{
    if (v == NULL || !json_is_string(J(v)))
        return NULL;
    if (len != NULL)
        *len = json_string_length(J(v));
    return json_string_value(J(v));
}

int ch_json_num(const ch_json *v, double *out)
{
    if (v == NULL || !json_is_number(J(v)))
        return -1;
    *out = json_number_value(J(v));
    return 0;
}

int ch_json_bool(const ch_json *v, int *out)
{
    if (v == NULL || !json_is_boolean(J(v)))
        return -1;
    *out = json_is_true(J(v));
    return 0;
}

int ch_json_is_int(const ch_json *v)
{
    return v != NULL && json_is_integer(J(v));
}

/* Jansson's dump callback: appends to the ch_buf in 'data'. */
static int dump_cb(const char *buffer, size_t size, void *data)
{
    return ch_buf_append(data, buffer, size) == CH_OK ? 0 : -1;
}

ch_err ch_json_dump(const ch_json *v, ch_buf *b)
{
    if (v == NULL)
        return ch_buf_puts(b, "null");
    if (json_dump_callback(J(v), dump_cb, b,
                           JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)) != 0 &&
        ch_buf_status(b) == CH_OK)
        return CH_ENOMEM;
    return ch_buf_status(b);
}
