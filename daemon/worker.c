/*
 * worker: a sink's thread and its bounded queue; see worker.h.
 */
#include "daemon/worker.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/backoff.h"
#include "common/log.h"

/* How often a busy worker makes its batch durable and reports it, unless
 * the sink says otherwise. */
#define FLUSH_EVERY_MS 1000
/* Changes applied between two looks at the clock inside a transaction. */
#define CLOCK_EVERY 64

struct worker {
    sink *sink;
    int wake_fd;
    size_t max_bytes;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    sink_event *head, *tail;      /* the queue, under mu */
    sink_event *last_commit;      /* under mu: the queue's last COMMIT */
    /* Queued or taken but not yet applied: what the bound counts. */
    atomic_size_t bytes;
    bool stop;                    /* under mu */
    bool waiting;                 /* under mu: the thread waits for events */
    bool kicked;                  /* under mu: and was told to take them */
    bool held;                    /* under mu: see worker_hold_wakes */
    bool joined;                  /* the stream loop's: thread is gone */
    char error[512];              /* under mu */
    lsn_t error_lsn;              /* under mu */
    int64_t error_time;           /* under mu: Unix seconds */
    atomic_uint_fast64_t failures;
    atomic_int_fast64_t commit_time;   /* source time of the last txn begun */
    _Atomic int state;            /* written under mu */
    atomic_uint generation;       /* one more at every successful open */
    atomic_uint_least64_t durable;
    atomic_bool main_waits;       /* the stream loop waits for room */
    /* Thread-only. */
    lsn_t last_end;               /* end LSN of the last transaction held */
    bool skipping;                /* inside a transaction already held */
    bool dirty;                   /* applied something not yet flushed */
    long flush_every_ms;
    unsigned since_clock;         /* changes since the clock was read */
    struct timespec last_flush;
    backoff backoff;
    int retry_ms;            /* the wait after the last failure */
    lsn_t opened_at;         /* durable at the last open: see note_durable */
    struct timespec open_time;
};

static void wake_main(worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warning("event=wake_failed error=\"%s\"", strerror(errno));
}

static long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/*
 * Under the queue lock, so that no push can slip in between a failure and
 * the queue being dropped, nor land after a reopen from before it.
 */
static void set_state(worker *w, worker_state st)
{
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->state, st);
    if (st == WORKER_READY)
        atomic_fetch_add(&w->generation, 1);
    pthread_mutex_unlock(&w->mu);
    wake_main(w);
}

static void free_list(worker *w, sink_event *ev)
{
    while (ev) {
        sink_event *next = ev->next;
        atomic_fetch_sub(&w->bytes, ev->size);
        sink_event_free(ev);
        ev = next;
    }
}

/* Drops everything queued (after a failure: the replay brings it back). */
static void drop_queue(worker *w)
{
    pthread_mutex_lock(&w->mu);
    sink_event *ev = w->head;
    w->head = w->tail = w->last_commit = NULL;
    pthread_mutex_unlock(&w->mu);
    free_list(w, ev);
}

/* Waits up to ms on the condition, or until stop; false when stopping. */
static bool wait_ms(worker *w, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->mu, &until) == 0)
        ;
    bool go_on = !w->stop;
    pthread_mutex_unlock(&w->mu);
    return go_on;
}

static void record_failure(worker *w)
{
    sink *s = w->sink;
    w->retry_ms = backoff_next(&w->backoff);
    pthread_mutex_lock(&w->mu);
    snprintf(w->error, sizeof w->error, "%s", s->error);
    w->error_lsn = s->error_lsn;
    w->error_time = (int64_t)time(NULL);
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_add(&w->failures, 1);
    char lsn[LSN_STRLEN];
    log_error("event=sink_failed service=%s sink=%s lsn=%s error=\"%s\" retry_in=%ds",
              s->service->name, s->ops->kind, lsn_format(s->error_lsn, lsn),
              s->error, w->retry_ms / 1000);
}

/* Opens the sink, retrying with backoff; false when told to stop. */
static bool open_sink(worker *w)
{
    for (;;) {
        lsn_t durable = 0;
        if (w->sink->ops->open(w->sink, &durable)) {
            char lsn[LSN_STRLEN];
            atomic_store(&w->durable, durable);
            w->opened_at = durable;
            clock_gettime(CLOCK_MONOTONIC, &w->open_time);
            w->last_end = durable;
            w->skipping = false;
            w->dirty = false;
            clock_gettime(CLOCK_MONOTONIC, &w->last_flush);
            log_info("event=sink_ready service=%s sink=%s durable_lsn=%s",
                     w->sink->service->name, w->sink->ops->kind,
                     lsn_format(durable, lsn));
            set_state(w, WORKER_READY);
            return true;
        }
        record_failure(w);
        set_state(w, WORKER_ERROR);
        w->sink->ops->close(w->sink);
        if (!wait_ms(w, w->retry_ms))
            return false;
    }
}

/*
 * The backoff starts again once the sink holds more than when it opened
 * (or stayed up a while: see fail), not at the open itself: a sink that
 * opens and then fails at the same change each time (a row its target
 * refuses, a message too large for the brokers) waits longer at each
 * try, and restarts the stream for every service less often.
 */
static void note_durable(worker *w, lsn_t durable)
{
    atomic_store(&w->durable, durable);
    if (durable > w->opened_at) {
        backoff_reset(&w->backoff);
        w->opened_at = durable;
    }
}

static bool flush_sink(worker *w)
{
    lsn_t durable;
    if (!w->sink->ops->flush(w->sink, &durable))
        return false;
    note_durable(w, durable);
    w->dirty = false;
    clock_gettime(CLOCK_MONOTONIC, &w->last_flush);
    wake_main(w);
    return true;
}

/* Stopping: what is in flight becomes durable (see sink_ops.drain). */
static bool drain_sink(worker *w)
{
    lsn_t durable;
    if (!w->sink->ops->drain)
        return flush_sink(w);
    if (!w->sink->ops->drain(w->sink, &durable))
        return false;
    note_durable(w, durable);
    wake_main(w);
    return true;
}

/* Nothing came: the sink may have work of its own (see sink_ops.idle). */
static bool idle_sink(worker *w)
{
    lsn_t durable;
    if (!w->sink->ops->idle || w->skipping)
        return true;
    if (!w->sink->ops->idle(w->sink, &durable))
        return false;
    lsn_t was = atomic_load(&w->durable);
    note_durable(w, durable);
    if (durable != was)
        wake_main(w);
    return true;
}

static bool queue_empty(worker *w)
{
    pthread_mutex_lock(&w->mu);
    bool empty = w->head == NULL;
    pthread_mutex_unlock(&w->mu);
    return empty;
}

/*
 * Applies one event; false when the sink failed. `more`: a later commit is
 * in hand, so a commit may leave the sink's batch open.
 */
static bool apply(worker *w, const sink_event *ev, bool more)
{
    sink *s = w->sink;
    switch (ev->op) {
    case SINK_BEGIN:
        w->skipping = sink_holds(w->last_end, ev->commit_lsn);
        if (!w->skipping)
            atomic_store_explicit(&w->commit_time, ev->commit_time,
                                  memory_order_relaxed);
        return w->skipping || s->ops->begin(s, ev);
    case SINK_INSERT:
    case SINK_UPDATE:
    case SINK_DELETE:
    case SINK_TRUNCATE:
    case SINK_MESSAGE:
        w->dirty = w->dirty || !w->skipping;
        return w->skipping || s->ops->change(s, ev);
    case SINK_COMMIT:
        if (w->skipping) {
            w->skipping = false;
            return true;
        }
        if (!s->ops->commit(s, ev, more))
            return false;
        w->last_end = ev->end_lsn;
        w->dirty = true;
        return true;
    case SINK_ROLLBACK:
        w->skipping = false;
        s->ops->rollback(s);
        /* What survived the rollback is what the target committed. */
        if (!flush_sink(w))
            return false;
        w->last_end = atomic_load(&w->durable);
        return true;
    }
    return true;
}

/*
 * Takes everything queued, waiting up to ms for something; NULL on
 * timeout or stop. One lock per batch, not per event. *end: the list's
 * last commit (NULL: none), as pushed, which spares a walk down a list
 * whose every event is still in the other core's cache.
 */
static sink_event *take_all(worker *w, long ms, bool *stopping,
                            const sink_event **end)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += ms * 1000000;
    until.tv_sec += until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    pthread_mutex_lock(&w->mu);
    /*
     * What came while the thread was busy is taken at once; from an empty
     * queue, a batch worth waking for is a whole transaction (see
     * worker_push).
     */
    w->waiting = w->head == NULL;
    while (w->waiting && !w->kicked && !w->stop &&
           pthread_cond_timedwait(&w->cond, &w->mu, &until) == 0)
        ;
    w->waiting = false;
    w->kicked = false;
    sink_event *list = w->head;
    *end = w->last_commit;
    w->head = w->tail = w->last_commit = NULL;
    *stopping = w->stop;
    pthread_mutex_unlock(&w->mu);
    return list;
}

static void fail(worker *w)
{
    if (ms_since(&w->open_time) >= BACKOFF_MAX_MS)
        backoff_reset(&w->backoff);
    record_failure(w);
    set_state(w, WORKER_ERROR);
    drop_queue(w);
    w->sink->ops->rollback(w->sink);
    w->sink->ops->close(w->sink);
    wait_ms(w, w->retry_ms);
}

/*
 * The stream loop found the queue full: it is woken once half of it has
 * drained, not at every event applied, which would cost it a turn and
 * both threads a context switch per event while the queue stays full.
 */
static void room_for_main(worker *w)
{
    if (atomic_load_explicit(&w->main_waits, memory_order_relaxed) &&
        atomic_load(&w->bytes) <= w->max_bytes / 2 &&
        atomic_exchange(&w->main_waits, false))
        wake_main(w);
}

/*
 * Whether a batch applied is due to be flushed. The clock is read at
 * commits and every CLOCK_EVERY changes inside a large transaction, not
 * for every event.
 */
static bool flush_due(worker *w, sink_op op)
{
    if (!w->dirty ||
        (op != SINK_COMMIT && ++w->since_clock < CLOCK_EVERY))
        return false;
    w->since_clock = 0;
    return ms_since(&w->last_flush) >= w->flush_every_ms;
}

/*
 * Applies one batch taken from the queue, end its last commit (the end of
 * the last transaction in hand); false when the sink failed.
 * A commit may leave the sink's batch open only while a later commit is
 * already in hand: what arrives meanwhile, or the start of a transaction
 * still on its way, must not hold back one that is complete (that
 * wait is the latency of every transaction in the batch).
 */
static bool apply_list(worker *w, sink_event *list,
                       const sink_event *end)
{
    bool in_hand = end != NULL;
    while (list) {
        sink_event *ev = list;
        list = ev->next;
        if (ev == end)
            in_hand = false;
        bool ok = apply(w, ev, in_hand);
        bool due = flush_due(w, ev->op);
        atomic_fetch_sub(&w->bytes, ev->size);
        sink_event_free(ev);
        if (ok && due)
            ok = flush_sink(w);
        if (!ok) {
            free_list(w, list);
            return false;
        }
        room_for_main(w);
    }
    return true;
}

/* Applies events until the sink fails or the worker is told to stop. */
static bool run_ready(worker *w)
{
    for (;;) {
        bool stopping;
        const sink_event *end;
        sink_event *list = take_all(w, 100, &stopping, &end);
        if (!list && stopping)
            return drain_sink(w) || true;
        if (!list && !idle_sink(w))
            return false;
        if (!apply_list(w, list, end))
            return false;
        if (w->dirty && queue_empty(w) && !flush_sink(w))
            return false;
    }
}

/*
 * A Kafka producer's threads start from its worker and inherit its
 * policy: they stay under the normal one (run.c puts cleave's under
 * SCHED_BATCH). Each message crosses them and the broker in several
 * hand-offs, and a wake-up that waits for a tick at each doubled the
 * p99 latency into Kafka (24 to 48 ms at 1,000 transactions/s).
 */
static void keep_producer_prompt(const worker *w)
{
    struct sched_param none = {0};
    if (w->sink->ops->id == SINK_KIND_KAFKA &&
        sched_getscheduler(0) == SCHED_BATCH &&
        sched_setscheduler(0, SCHED_OTHER, &none) != 0)
        log_warning("event=sched_other_failed error=\"%s\"", strerror(errno));
}

static void *thread_main(void *arg)
{
    worker *w = arg;
    keep_producer_prompt(w);
    backoff_init(&w->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    while (open_sink(w)) {
        if (run_ready(w))
            break;
        fail(w);
    }
    drop_queue(w);
    w->sink->ops->close(w->sink);
    set_state(w, WORKER_STOPPED);
    return NULL;
}

worker *worker_start(sink *s, int wake_fd, size_t max_queue_bytes)
{
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->sink = s;
    atomic_store(&s->stopping, false);
    w->wake_fd = wake_fd;
    w->flush_every_ms = s->ops->flush_every_ms > 0 ? s->ops->flush_every_ms
                                                   : FLUSH_EVERY_MS;
    w->max_bytes = max_queue_bytes;
    atomic_init(&w->state, WORKER_STARTING);
    atomic_init(&w->durable, 0);
    atomic_init(&w->generation, 0);
    atomic_init(&w->main_waits, false);
    atomic_init(&w->bytes, 0);
    atomic_init(&w->failures, 0);
    atomic_init(&w->commit_time, 0);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, thread_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
    }
    return w;
}

void worker_stop(worker *w)
{
    if (!w || w->joined)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->sink->stopping, true);
    pthread_join(w->thread, NULL);
    w->joined = true;
}

void worker_free(worker *w)
{
    if (!w)
        return;
    worker_stop(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
}

bool worker_has_room(const worker *w, size_t bytes)
{
    worker *mw = (worker *)w;
    size_t used = atomic_load(&mw->bytes);
    bool room = used == 0 || used + bytes <= mw->max_bytes;
    if (!room)
        atomic_store(&mw->main_waits, true);
    return room;
}

bool worker_push(worker *w, unsigned generation, sink_event *ev)
{
    pthread_mutex_lock(&w->mu);
    if (atomic_load(&w->state) != WORKER_READY ||
        atomic_load(&w->generation) != generation) {
        /* Sent to a sink that failed since: the replay brings it again. */
        pthread_mutex_unlock(&w->mu);
        sink_event_free(ev);
        return true;
    }
    /* A rollback must get through: it is what makes a restart clean. */
    size_t bytes = atomic_load(&w->bytes);
    if (ev->op != SINK_ROLLBACK && bytes != 0 && bytes + ev->size > w->max_bytes) {
        atomic_store(&w->main_waits, true);
        pthread_mutex_unlock(&w->mu);
        return false;
    }
    ev->next = NULL;
    bytes = atomic_fetch_add(&w->bytes, ev->size) + ev->size;
    if (w->tail)
        w->tail->next = ev;
    else
        w->head = ev;
    w->tail = ev;
    if (ev->op == SINK_COMMIT)
        w->last_commit = ev;
    /*
     * Waking the thread for every event would cost a context switch each
     * when it keeps up: it is woken for whole transactions, or once a
     * large one has filled part of the queue.
     */
    if (w->waiting && !w->kicked &&
        ((ev->op == SINK_COMMIT && !w->held) || ev->op == SINK_ROLLBACK ||
         bytes >= w->max_bytes / 8)) {
        w->kicked = true;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
    return true;
}

void worker_want_durable(worker *w)
{
    atomic_store(&w->sink->want_durable, true);
    pthread_mutex_lock(&w->mu);
    if (w->waiting && !w->kicked) {
        w->kicked = true;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
}

void worker_hold_wakes(worker *w, bool hold)
{
    pthread_mutex_lock(&w->mu);
    w->held = hold;
    if (!hold && w->waiting && !w->kicked && w->last_commit) {
        w->kicked = true;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
}

worker_state worker_get_state(const worker *w)
{
    return (worker_state)atomic_load(&((worker *)w)->state);
}

lsn_t worker_durable(const worker *w)
{
    return atomic_load(&((worker *)w)->durable);
}

unsigned worker_generation(const worker *w)
{
    return atomic_load(&((worker *)w)->generation);
}

void worker_last_error(const worker *w, char *buf, size_t len, lsn_t *lsn)
{
    worker_error_info(w, buf, len, lsn, NULL);
}

void worker_error_info(const worker *w, char *buf, size_t len, lsn_t *lsn,
                       int64_t *when)
{
    worker *mw = (worker *)w;
    pthread_mutex_lock(&mw->mu);
    snprintf(buf, len, "%s", mw->error);
    if (lsn)
        *lsn = mw->error_lsn;
    if (when)
        *when = mw->error_time;
    pthread_mutex_unlock(&mw->mu);
}

uint64_t worker_failures(const worker *w)
{
    return atomic_load(&((worker *)w)->failures);
}

int64_t worker_commit_time(const worker *w)
{
    return atomic_load_explicit(&((worker *)w)->commit_time,
                                memory_order_relaxed);
}

sink *worker_sink(worker *w)
{
    return w->sink;
}

const char *worker_state_name(worker_state state)
{
    static const char *const names[] = {"starting", "streaming", "error",
                                        "stopped"};
    return state <= WORKER_STOPPED ? names[state] : "unknown";
}
