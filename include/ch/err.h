/*
 * err.h -- error codes and the caller-owned error detail buffer.
 *
 * Every fallible function in the library returns a ch_err. CH_OK is zero;
 * every other value has a stable number that is never reused. Detail goes
 * into an optional ch_error that the caller owns: it needs no allocation,
 * so it is safe on the out-of-memory path and across threads (the same idea
 * as curl's CURLOPT_ERRORBUFFER).
 */
#ifndef CH_ERR_H
#define CH_ERR_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CH_API
#define CH_API __attribute__((visibility("default")))
#endif
#define CH_NODISCARD    __attribute__((warn_unused_result))
#define CH_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef enum ch_err {
    CH_OK = 0,         /* success */
    CH_ENOMEM = 1,     /* an allocation failed */
    CH_EINVAL = 2,     /* bad argument or bad user input (usage) */
    CH_EIO = 3,        /* a read, write or open failed */
    CH_EFORMAT = 4,    /* malformed input file: CSV, JSON, bundle */
    CH_ENOTFOUND = 5,  /* a named thing does not exist */
    CH_EDB = 6,        /* the tracking store failed */
    CH_EMODEL = 7,     /* a model could not be trained, loaded or used */
    CH_EBUSY = 8,      /* a resource is held by someone else */
    CH_ERANGE = 9,     /* a value is outside its allowed range */
    CH_ELIMIT = 10,    /* a configured limit was exceeded (size, reject rate) */
    CH_ESCHEMA = 11,   /* data does not match its schema */
    CH_EDATA = 12,     /* data is valid but unusable (for example one class only) */
    CH_EAUTH = 13,     /* credentials missing, malformed, expired or wrong */
    CH_EDENIED = 14,   /* authenticated, but the role does not allow it */
    CH_ECANCELLED = 15 /* the caller asked a long operation to stop, and it did */
} ch_err;

/* Detail for the last error. 'msg' is always NUL-terminated. */
typedef struct ch_error {
    ch_err code;   /* the code that was returned */
    char msg[256]; /* human-readable text, with location where known */
} ch_error;

/* Static text for 'code' ("out of memory", ...). Never NULL. Thread-safe. */
CH_API const char *ch_strerror(ch_err code);

/* Sets 'err' (which may be NULL) to 'code' and a formatted message, and
 * returns 'code' so that callers can write `return ch_error_set(...)`.
 * Thread-safe as long as 'err' is not shared. */
CH_API ch_err ch_error_set(ch_error *err, ch_err code, const char *fmt, ...) CH_PRINTF(3, 4);

/* Like ch_error_set() but with a va_list. */
CH_API ch_err ch_error_vset(ch_error *err, ch_err code, const char *fmt, va_list ap);

/* Prepends context to the message already in 'err', separated by ": ".
 * Text that no longer fits is cut. A NULL 'err' is a no-op. */
CH_API void ch_error_prefix(ch_error *err, const char *fmt, ...) CH_PRINTF(2, 3);

/* Clears 'err' to CH_OK with an empty message. NULL is a no-op. */
CH_API void ch_error_clear(ch_error *err);

/* Reports a broken internal invariant with file and line, then aborts.
 * Only for bugs; data and user errors return codes. */
CH_API void ch_panic_at(const char *file, int line, const char *fmt, ...) CH_PRINTF(3, 4)
    __attribute__((noreturn));
#define ch_panic(...) ch_panic_at(__FILE__, __LINE__, __VA_ARGS__)

#ifndef CH_NO_ASSERT
#define CH_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ch_panic_at(__FILE__, __LINE__, "assertion failed: %s", #cond);                        \
    } while (0)
#else
#define CH_ASSERT(cond) ((void)0)
#endif

#ifdef __cplusplus
}
#endif
#endif /* CH_ERR_H */
