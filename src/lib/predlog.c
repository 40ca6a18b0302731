/*
 * predlog.c -- the prediction log: a bounded ring of fixed-size records,
 * filled by many request threads and drained by one writer thread into a
 * sink, in batches.
 *
 * Workload: every prediction pushes one record (tens of thousands a
 * second from a handful of HTTP workers); the sink writes a batch per
 * transaction, a few times a second. push() is on the request path, so it
 * does as little as possible: one lock, one copy of the record's fixed
 * fields (176 bytes) and of the input bytes it uses (about 90 for Telco,
 * not the whole 320-byte array), a few counter updates, and a condition
 * signal only when the writer is asleep and a full batch is ready.
 *
 * One mutex guards everything. A lock-free ring would save little here:
 * the critical section is a copy that takes tens of nanoseconds, the
 * writer takes the lock only twice per batch (not per record), and a
 * mutex makes stats_get() a consistent snapshot for free.
 *
 * The ring: 'count' slots from 'head' (wrapping at 'capacity') hold
 * records that are queued and not yet finished. The writer hands the sink
 * a pointer straight into the ring ('recs' = &ring[head], n contiguous
 * slots) and releases the lock while the sink runs. Those slots stay
 * counted in 'count' until the sink returns, so no producer can reuse
 * them; there is no batch buffer and no second copy, and the lock is never
 * held across the sink or a backoff sleep. The price is that a batch in
 * flight occupies its slots, which is also what 'depth' reports.
 *
 * Sequence numbers: 'queued' counts accepted pushes and 'done' counts
 * queued records handed to the sink for the last time (written or
 * dropped). Records finish in queue order, so "every record pushed
 * before sync() began is finished" is simply done >= queued-at-call;
 * queued == done + count always holds.
 *
 * Lifetime: close() sets 'closing', which refuses new pushes and wakes
 * blocked ones, lets the writer drain the ring, joins it, then waits for
 * any thread still inside a wait (a sync() or a refused blocked push that
 * has been woken but has not yet left the lock) before freeing.
 */
#include "ch/predlog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"

#define DEFAULT_CAPACITY  32768 /* 496-byte records: about 16 MB */
#define DEFAULT_BATCH_MAX 1024
#define DEFAULT_FLUSH_MS  200
#define DEFAULT_RETRIES   3
#define BACKOFF_FIRST_MS  10   /* first wait after a failed sink call; doubles */
#define BACKOFF_MAX_MS    1000 /* ceiling for the doubling */

struct ch_predlog {
    pthread_mutex_t mu;     /* guards every field below except the constants */
    pthread_cond_t wake;    /* writer: batch ready, sync wanted, or closing */
    pthread_cond_t room;    /* block-mode producers: slots freed, or closing */
    pthread_cond_t done_cv; /* sync() callers: 'done' advanced */
    pthread_cond_t idle_cv; /* close(): the last waiter has left */
    pthread_t writer;

    /* Constants after open(). */
    ch_prediction_rec *ring; /* 'capacity' slots */
    size_t capacity;         /* slots */
    size_t batch_max;        /* records per sink call, <= capacity */
    int flush_ms;            /* writer tick, ms */
    int block;               /* push() waits for room */
    int retries;             /* extra sink calls per failing batch */
    ch_predlog_sink_fn sink;
    void *ctx;

    /* Queue state. */
    size_t head;  /* slot of the oldest unfinished record */
    size_t count; /* unfinished records, including a batch in flight */
    int closing;  /* close() has begun: refuse pushes, drain, exit */

    /* Sequence numbers and counters (records unless said). */
    uint64_t queued;      /* accepted pushes: the push sequence */
    uint64_t done;        /* queued records finished: written + dropped by the sink */
    uint64_t sync_target; /* the highest 'queued' a sync() waits for */
    uint64_t written;
    uint64_t dropped; /* by push() and by the sink */
    uint64_t sink_errors;
    uint64_t inputs_skipped; /* queued without input values */

    /* Wake-up bookkeeping, so that push() signals only when it matters. */
    int writer_asleep;  /* the writer waits on 'wake' and nobody signalled yet */
    size_t n_waiters;   /* threads inside a wait on 'room' or 'done_cv' */
    size_t n_room_wait; /* of which blocked producers */
    size_t n_sync_wait; /* of which sync() callers */

    /* The error of the last batch dropped after close() began. */
    ch_err drain_rc;
    ch_error drain_err;
};

void ch_predlog_opts_default(ch_predlog_opts *o)
{
    memset(o, 0, sizeof *o);
    o->capacity = DEFAULT_CAPACITY;
    o->batch_max = DEFAULT_BATCH_MAX;
    o->flush_ms = DEFAULT_FLUSH_MS;
    o->block = 0;
    o->retries = DEFAULT_RETRIES;
}

/* The monotonic time 'ms' milliseconds from now, for pthread_cond_timedwait
 * on a condition variable set to CLOCK_MONOTONIC (wall-clock steps must not
 * stretch or cut a flush tick or a sync() timeout). */
static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void sleep_ms(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Leaves a wait loop: the last waiter out while closing lets close() free. */
static void waiter_leave(ch_predlog *pl)
{
    pl->n_waiters--;
    if (pl->closing && pl->n_waiters == 0)
        pthread_cond_signal(&pl->idle_cv);
}

/* Whether the writer has work now, without waiting for its tick. */
static int batch_ready(const ch_predlog *pl)
{
    return pl->count >= pl->batch_max || pl->closing || pl->sync_target > pl->done;
}

/* Calls the sink for 'recs' (n records) until it succeeds or has failed
 * 1 + retries times, sleeping 10, 20, 40 ... ms between calls. Runs
 * without the lock except to count each failure, so that stats show a
 * struggling sink while it is still being retried. Returns the last
 * result, with the sink's detail in 'e'. */
static ch_err write_batch(ch_predlog *pl, const ch_prediction_rec *recs, size_t n, ch_error *e)
{
    int backoff_ms = BACKOFF_FIRST_MS;
    for (int attempt = 0;; attempt++) {
        ch_err rc;
        ch_error_clear(e);
        rc = pl->sink(pl->ctx, recs, n, e);
        if (rc == CH_OK)
            return CH_OK;
        pthread_mutex_lock(&pl->mu);
        pl->sink_errors++;
        pthread_mutex_unlock(&pl->mu);
        if (attempt >= pl->retries) {
            e->code = rc;
            if (e->msg[0] == '\0')
                ch_error_set(e, rc, "sink failed: %s", ch_strerror(rc));
            return rc;
        }
        sleep_ms(backoff_ms);
        backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
    }
}

/* The writer thread: waits for a full batch, a sync() request, close() or
 * its flush tick, then hands the sink the oldest records (at most
 * batch_max, and no further than the end of the ring so that they are
 * contiguous), and repeats. Exits once closing and empty. */
static void *writer_main(void *arg)
{
    ch_predlog *pl = arg;

    pthread_mutex_lock(&pl->mu);
    for (;;) {
        struct timespec tick = deadline_in(pl->flush_ms);
        const ch_prediction_rec *recs;
        size_t n;
        int closing;
        ch_err rc;
        ch_error e;

        while (!batch_ready(pl)) {
            int wrc;
            pl->writer_asleep = 1;
            wrc = pthread_cond_timedwait(&pl->wake, &pl->mu, &tick);
            pl->writer_asleep = 0;
            if (wrc == ETIMEDOUT)
                break;
        }
        if (pl->count == 0) {
            if (pl->closing)
                break;
            continue;
        }
        n = pl->count < pl->batch_max ? pl->count : pl->batch_max;
        if (n > pl->capacity - pl->head)
            n = pl->capacity - pl->head;
        recs = &pl->ring[pl->head];
        closing = pl->closing;
        pthread_mutex_unlock(&pl->mu);

        /* The slots [head, head + n) stay in 'count', so no producer writes
         * them while the sink reads them; the lock hand-over orders the
         * producers' copies before this read. */
        rc = write_batch(pl, recs, n, &e);

        pthread_mutex_lock(&pl->mu);
        if (rc == CH_OK) {
            pl->written += n;
        } else {
            pl->dropped += n;
            if (closing || pl->closing) {
                pl->drain_rc = rc;
                pl->drain_err = e;
            }
        }
        pl->head += n;
        if (pl->head == pl->capacity)
            pl->head = 0;
        pl->count -= n;
        pl->done += n;
        if (pl->n_room_wait > 0)
            pthread_cond_broadcast(&pl->room);
        if (pl->n_sync_wait > 0)
            pthread_cond_broadcast(&pl->done_cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* Starts the writer with every signal blocked, so that process signals
 * (SIGTERM, SIGINT, SIGPIPE) are delivered to the server's own threads
 * and never run a handler on the writer. */
static int start_writer(ch_predlog *pl)
{
    sigset_t all, old;
    int rc;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&pl->writer, NULL, writer_main, pl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Initializes the lock and condition variables; on failure destroys what
 * was made and returns the pthread error number. */
static int init_sync(ch_predlog *pl)
{
    pthread_condattr_t ca;
    pthread_cond_t *cvs[4];
    int made = 0;
    int rc;

    cvs[0] = &pl->wake;
    cvs[1] = &pl->room;
    cvs[2] = &pl->done_cv;
    cvs[3] = &pl->idle_cv;
    rc = pthread_mutex_init(&pl->mu, NULL);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_init(&ca);
    if (rc != 0)
        goto fail_mutex;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    while (rc == 0 && made < 4) {
        rc = pthread_cond_init(cvs[made], &ca);
        if (rc == 0)
            made++;
    }
    pthread_condattr_destroy(&ca);
    if (rc == 0)
        return 0;
    while (made > 0)
        pthread_cond_destroy(cvs[--made]);
fail_mutex:
    pthread_mutex_destroy(&pl->mu);
    return rc;
}

static void destroy_sync(ch_predlog *pl)
{
    pthread_cond_destroy(&pl->idle_cv);
    pthread_cond_destroy(&pl->done_cv);
    pthread_cond_destroy(&pl->room);
    pthread_cond_destroy(&pl->wake);
    pthread_mutex_destroy(&pl->mu);
}

ch_err ch_predlog_open(const ch_predlog_opts *o, ch_predlog_sink_fn sink, void *ctx,
                       ch_predlog **out, ch_error *err)
{
    ch_predlog_opts def;
    ch_predlog *pl = NULL;
    ch_err rc = CH_OK;
    int prc;

    if (o == NULL) {
        ch_predlog_opts_default(&def);
        o = &def;
    }
    if (sink == NULL || out == NULL)
        return ch_error_set(err, CH_EINVAL, "predlog: %s is NULL", sink == NULL ? "sink" : "out");
    if (o->capacity == 0 || o->batch_max == 0)
        return ch_error_set(err, CH_EINVAL, "predlog: %s must be at least 1",
                            o->capacity == 0 ? "capacity" : "batch_max");
    if (o->flush_ms < 1 || o->retries < 0)
        return ch_error_set(err, CH_EINVAL, "predlog: %s out of range (%d)",
                            o->flush_ms < 1 ? "flush_ms" : "retries",
                            o->flush_ms < 1 ? o->flush_ms : o->retries);

    pl = ch_calloc(1, sizeof *pl);
    if (pl == NULL)
        return ch_error_set(err, CH_ENOMEM, "predlog: out of memory");
    pl->ring = ch_malloc_array(o->capacity, sizeof *pl->ring);
    if (pl->ring == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "predlog: no memory for %zu records", o->capacity);
        goto fail_free;
    }
    pl->capacity = o->capacity;
    /* A batch larger than the ring could never be "ready"; cap it. */
    pl->batch_max = o->batch_max < o->capacity ? o->batch_max : o->capacity;
    pl->flush_ms = o->flush_ms;
    pl->block = o->block != 0;
    pl->retries = o->retries;
    pl->sink = sink;
    pl->ctx = ctx;
    pl->drain_rc = CH_OK;

    prc = init_sync(pl);
    if (prc != 0) {
        rc = ch_error_set(err, prc == ENOMEM ? CH_ENOMEM : CH_EIO,
                          "predlog: cannot create a lock: %s", strerror(prc));
        goto fail_free;
    }
    prc = start_writer(pl);
    if (prc != 0) {
        rc =
            ch_error_set(err, CH_EIO, "predlog: cannot start the writer thread: %s", strerror(prc));
        destroy_sync(pl);
        goto fail_free;
    }
    *out = pl;
    return CH_OK;

fail_free:
    ch_free(pl->ring);
    ch_free(pl);
    return rc;
}

/* Copies 'rec' into 'dst': the fixed fields, then only the bytes of
 * 'inputs' in use. A Telco record uses under a third of the array, and
 * the copy is made under the queue's lock, so copying the whole record
 * would nearly double the time every push() holds it. Returns whether
 * the record carries inputs. */
static int copy_rec(ch_prediction_rec *dst, const ch_prediction_rec *rec)
{
    size_t n = rec->inputs_len;
    memcpy(dst, rec, offsetof(ch_prediction_rec, inputs));
    if (n > CH_PREDLOG_INPUTS_MAX)
        n = 0; /* a caller bug; the store would refuse the whole batch */
    dst->inputs_len = (uint16_t)n;
    memcpy(dst->inputs, rec->inputs, n);
    return n > 0;
}

int ch_predlog_push(ch_predlog *pl, const ch_prediction_rec *rec)
{
    size_t slot;

    pthread_mutex_lock(&pl->mu);
    if (pl->count == pl->capacity && pl->block && !pl->closing) {
        pl->n_waiters++;
        pl->n_room_wait++;
        while (pl->count == pl->capacity && !pl->closing)
            pthread_cond_wait(&pl->room, &pl->mu);
        pl->n_room_wait--;
        waiter_leave(pl);
    }
    if (pl->closing || pl->count == pl->capacity) {
        pl->dropped++;
        pthread_mutex_unlock(&pl->mu);
        return 0;
    }
    slot = pl->head + pl->count;
    if (slot >= pl->capacity)
        slot -= pl->capacity;
    if (!copy_rec(&pl->ring[slot], rec))
        pl->inputs_skipped++;
    pl->count++;
    pl->queued++;
    /* Signal only a sleeping writer, once: pushes that follow before it
     * wakes would only make futile calls. */
    if (pl->writer_asleep && pl->count >= pl->batch_max) {
        pl->writer_asleep = 0;
        pthread_cond_signal(&pl->wake);
    }
    pthread_mutex_unlock(&pl->mu);
    return 1;
}

int ch_predlog_sync(ch_predlog *pl, int timeout_ms)
{
    struct timespec deadline;
    uint64_t target;
    int ok;

    pthread_mutex_lock(&pl->mu);
    target = pl->queued;
    if (pl->done >= target || timeout_ms <= 0) {
        ok = pl->done >= target;
        pthread_mutex_unlock(&pl->mu);
        return ok;
    }
    if (target > pl->sync_target)
        pl->sync_target = target;
    pthread_cond_signal(&pl->wake);
    deadline = deadline_in(timeout_ms);
    pl->n_waiters++;
    pl->n_sync_wait++;
    while (pl->done < target) {
        if (pthread_cond_timedwait(&pl->done_cv, &pl->mu, &deadline) == ETIMEDOUT)
            break;
    }
    ok = pl->done >= target;
    pl->n_sync_wait--;
    waiter_leave(pl);
    pthread_mutex_unlock(&pl->mu);
    return ok;
}

void ch_predlog_stats_get(ch_predlog *pl, ch_predlog_stats *out)
{
    pthread_mutex_lock(&pl->mu);
    out->queued = pl->queued;
    out->written = pl->written;
    out->dropped = pl->dropped;
    out->sink_errors = pl->sink_errors;
    out->inputs_skipped = pl->inputs_skipped;
    out->depth = pl->count;
    out->capacity = pl->capacity;
    pthread_mutex_unlock(&pl->mu);
}

ch_err ch_predlog_close(ch_predlog *pl, ch_error *err)
{
    ch_err rc;

    if (pl == NULL)
        return CH_OK;
    pthread_mutex_lock(&pl->mu);
    pl->closing = 1;
    pthread_cond_broadcast(&pl->room);
    pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->mu);

    pthread_join(pl->writer, NULL);

    /* The writer has finished every record, so each sync() is satisfied
     * and each blocked push refused; wait until they have all left the
     * lock before destroying it. */
    pthread_mutex_lock(&pl->mu);
    pthread_cond_broadcast(&pl->done_cv);
    while (pl->n_waiters > 0)
        pthread_cond_wait(&pl->idle_cv, &pl->mu);
    rc = pl->drain_rc;
    pthread_mutex_unlock(&pl->mu);

    if (rc != CH_OK && err != NULL) {
        *err = pl->drain_err;
        err->code = rc;
        ch_error_prefix(err, "predlog: a batch was dropped while closing");
    }
    destroy_sync(pl);
    ch_free(pl->ring);
    ch_free(pl);
    return rc;
}
