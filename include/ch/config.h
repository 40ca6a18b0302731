/*
 * config.h -- the project configuration (config/churn.json).
 *
 * Scalar settings are listed once, in the table behind ch_config_setting()
 * (name, type, default, range, environment variable, help). That table
 * drives the file parser, environment and command-line overrides, `churn
 * config show`, and docs/config.md. Adding a setting is one table line.
 *
 * Structured sections ("features", and sections later issues add) are
 * kept as JSON and handed to their modules, which validate them.
 *
 * The library does not read the environment: callers look up each
 * setting's 'env' name and pass the text to ch_config_set().
 */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include <stddef.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/json.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_config ch_config; /* opaque */

typedef enum ch_setting_type {
    CH_SET_STRING = 0,
    CH_SET_NUMBER = 1, /* a real number within [min, max] */
    CH_SET_INT = 2     /* a whole number within [min, max] */
} ch_setting_type;

/* One row of the settings table. */
typedef struct ch_setting {
    const char *name; /* dotted path in the file: "split.test_fraction" */
    ch_setting_type type;
    const char *def;  /* default, as text */
    double min, max;  /* for numbers */
    const char *env;  /* environment variable that overrides it, or NULL */
    const char *help; /* one line */
} ch_setting;

/* Row 'i' of the settings table, or NULL past the end. */
CH_API const ch_setting *ch_config_setting(size_t i);

/* A configuration holding only defaults. Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_config_new(ch_config **out, ch_error *err);

/* Loads 'path': every key must be a known setting or section. Errors:
 * CH_EIO, CH_EFORMAT (naming the key), CH_ERANGE, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_config_load(const char *path, ch_config **out, ch_error *err);

/* Like ch_config_load() on 'len' bytes of JSON text (messages carry no
 * path). */
CH_API CH_NODISCARD ch_err ch_config_parse(const char *text, size_t len, ch_config **out,
                                           ch_error *err);

/* NULL is a no-op. */
CH_API void ch_config_free(ch_config *c);

/* Sets setting 'name' from text (as from the environment or a flag).
 * Errors: CH_ENOTFOUND (no such setting), CH_EINVAL (bad value),
 * CH_ERANGE (out of range), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_config_set(ch_config *c, const char *name, const char *value,
                                         ch_error *err);

/* Current values. ch_config_str returns "" for an empty string setting;
 * both panic on an unknown name (a programming error). Borrowed. */
CH_API const char *ch_config_str(const ch_config *c, const char *name);
CH_API double ch_config_num(const ch_config *c, const char *name);

/* Where the value of 'name' came from: "default", "file", or "set". */
CH_API const char *ch_config_origin(const ch_config *c, const char *name);

/* A structured section ("features"), or NULL when absent. Borrowed. */
CH_API const ch_json *ch_config_section(const ch_config *c, const char *name);

/* The loaded file's path, or NULL for defaults only. */
CH_API const char *ch_config_path(const ch_config *c);

/* Writes the effective configuration as one JSON object: {"settings":
 * {name: value-as-text, ...}, "features": ..., "search": ...}. Its SHA-256
 * is the config hash recorded with every training run. */
CH_API ch_err ch_config_to_json(const ch_config *c, ch_buf *b);

/* Writes the settings table as a Markdown page (docs/config.md). */
CH_API ch_err ch_config_docs(ch_buf *b);

#ifdef __cplusplus
}
#endif
#endif /* CH_CONFIG_H */
