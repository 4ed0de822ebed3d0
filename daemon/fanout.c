/* fanout: sinks, workers and the main thread's view of them; see fanout.h. */
#include "daemon/fanout.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/worker.h"

typedef struct target {
    worker *w;
    sink *s;
    int service_index;
    bool messages;
    unsigned generation;     /* the worker's, when the stream took it on */
    bool accepting;
    bool in_txn;             /* BEGIN sent for the transaction being read */
    lsn_t routed_end;        /* end LSN of the last COMMIT sent */
} target;

typedef struct held {
    size_t target;
    sink_event *ev;
} held;

struct fanout {
    const cfg *config;
    int wake_fd;
    size_t queue_bytes;
    target *t;
    size_t n, cap;
    /* The source transaction being read: its BEGIN, sent lazily. */
    uint32_t xid;
    lsn_t commit_lsn;
    int64_t commit_time;
    /* Events waiting for queue room, in order. */
    held *fifo;
    size_t fifo_head, fifo_n, fifo_cap;
};

fanout *fanout_new(const cfg *config, int wake_fd, size_t queue_bytes)
{
    fanout *fo = calloc(1, sizeof *fo);
    if (!fo)
        return NULL;
    fo->config = config;
    fo->wake_fd = wake_fd;
    fo->queue_bytes = queue_bytes;
    return fo;
}

static bool grow(fanout *fo)
{
    if (fo->n < fo->cap)
        return true;
    size_t ncap = fo->cap ? fo->cap * 2 : 8;
    target *t = realloc(fo->t, ncap * sizeof *t);
    if (!t)
        return false;
    fo->t = t;
    fo->cap = ncap;
    return true;
}

bool fanout_add(fanout *fo, sink *s, bool messages)
{
    worker *w = s && grow(fo) ? worker_start(s, fo->wake_fd, fo->queue_bytes)
                              : NULL;
    if (!w) {
        sink_destroy(s);
        return false;
    }
    fo->t[fo->n++] = (target){
        .w = w,
        .s = s,
        .service_index = (int)(s->service - fo->config->services),
        .messages = messages,
    };
    return true;
}

/* ---- the FIFO ---------------------------------------------------------- */

static bool fifo_push(fanout *fo, size_t i, sink_event *ev)
{
    if (fo->fifo_n == fo->fifo_cap) {
        size_t ncap = fo->fifo_cap ? fo->fifo_cap * 2 : 16;
        held *n = malloc(ncap * sizeof *n);
        if (!n)
            return false;
        for (size_t k = 0; k < fo->fifo_n; k++)
            n[k] = fo->fifo[(fo->fifo_head + k) % fo->fifo_cap];
        free(fo->fifo);
        fo->fifo = n;
        fo->fifo_cap = ncap;
        fo->fifo_head = 0;
    }
    fo->fifo[(fo->fifo_head + fo->fifo_n++) % fo->fifo_cap] = (held){i, ev};
    return true;
}

static void fifo_drop(fanout *fo)
{
    for (; fo->fifo_n > 0; fo->fifo_n--) {
        sink_event_free(fo->fifo[fo->fifo_head].ev);
        fo->fifo_head = (fo->fifo_head + 1) % fo->fifo_cap;
    }
    fo->fifo_head = 0;
}

void fanout_hold_wakes(fanout *fo, bool hold)
{
    for (size_t i = 0; i < fo->n; i++)
        worker_hold_wakes(fo->t[i].w, hold);
}

bool fanout_busy(const fanout *fo)
{
    return fo->fifo_n > 0;
}

bool fanout_drain(fanout *fo)
{
    while (fo->fifo_n > 0) {
        held *h = &fo->fifo[fo->fifo_head];
        target *t = &fo->t[h->target];
        if (!worker_push(t->w, t->generation, h->ev))
            return false;
        fo->fifo_head = (fo->fifo_head + 1) % fo->fifo_cap;
        fo->fifo_n--;
    }
    return true;
}

/* ---- routing ----------------------------------------------------------- */

/* To the worker, or behind the events already waiting. */
static bool push(fanout *fo, size_t i, sink_event *ev)
{
    target *t = &fo->t[i];
    if (!ev)
        return false;
    if (fo->fifo_n == 0 && worker_push(t->w, t->generation, ev))
        return true;
    if (fifo_push(fo, i, ev))
        return true;
    sink_event_free(ev);
    return false;
}

void fanout_txn_begin(fanout *fo, uint32_t xid, lsn_t commit_lsn,
                      int64_t commit_time)
{
    fo->xid = xid;
    fo->commit_lsn = commit_lsn;
    fo->commit_time = commit_time;
}

int fanout_service_of(const fanout *fo, size_t i)
{
    return fo->t[i].accepting ? fo->t[i].service_index : -1;
}

bool fanout_wants_message(const fanout *fo, size_t i, const char *prefix)
{
    const target *t = &fo->t[i];
    return t->messages && t->accepting &&
           cfg_wants_message(t->s->service, prefix);
}

bool fanout_send(fanout *fo, size_t i, sink_event *ev)
{
    target *t = &fo->t[i];
    if (ev && !t->in_txn) {
        t->in_txn = true;
        if (!push(fo, i, sink_event_txn(SINK_BEGIN, fo->xid, fo->commit_lsn,
                                        0, fo->commit_time))) {
            sink_event_free(ev);
            return false;
        }
    }
    return push(fo, i, ev);
}

bool fanout_txn_end(fanout *fo, lsn_t end_lsn, int64_t commit_time)
{
    bool ok = true;
    for (size_t i = 0; i < fo->n; i++) {
        target *t = &fo->t[i];
        if (!t->in_txn)
            continue;
        t->in_txn = false;
        t->routed_end = end_lsn;
        ok = push(fo, i, sink_event_txn(SINK_COMMIT, fo->xid, fo->commit_lsn,
                                        end_lsn, commit_time)) && ok;
    }
    return ok;
}

/* ---- restarts and positions -------------------------------------------- */

void fanout_restart(fanout *fo)
{
    /*
     * An event still waiting for room, a COMMIT above all, leaves the
     * transaction before it open in its worker: it is rolled back there
     * like one cut short while being read, or the replay's BEGIN of it
     * would come inside it.
     */
    for (size_t k = 0; k < fo->fifo_n; k++)
        fo->t[fo->fifo[(fo->fifo_head + k) % fo->fifo_cap].target].in_txn =
            true;
    fifo_drop(fo);
    for (size_t i = 0; i < fo->n; i++) {
        target *t = &fo->t[i];
        if (t->in_txn && t->accepting)
            worker_push(t->w, t->generation,
                        sink_event_txn(SINK_ROLLBACK, 0, 0, 0, 0));
        t->in_txn = false;
        t->accepting = worker_get_state(t->w) == WORKER_READY;
        t->generation = worker_generation(t->w);
    }
}

bool fanout_needs_restart(fanout *fo)
{
    bool restart = false;
    for (size_t i = 0; i < fo->n; i++) {
        target *t = &fo->t[i];
        /*
         * A worker that failed and reopened since the stream took it on
         * has a new generation: it missed events and needs the replay even
         * if it looks ready now.
         */
        if (t->accepting && (worker_get_state(t->w) != WORKER_READY ||
                             worker_generation(t->w) != t->generation))
            t->accepting = false;
        if (!t->accepting && worker_get_state(t->w) == WORKER_READY)
            restart = true;
    }
    return restart;
}

lsn_t fanout_position(const fanout *fo, size_t i, lsn_t received,
                      bool *pending)
{
    const target *t = &fo->t[i];
    lsn_t durable = worker_durable(t->w);
    *pending = !t->accepting || durable < t->routed_end;
    return *pending ? durable : received;
}

void fanout_want_durable(fanout *fo, size_t i)
{
    worker_want_durable(fo->t[i].w);
}

lsn_t fanout_flush_lsn(const fanout *fo, lsn_t upto)
{
    lsn_t flush = upto;
    for (size_t i = 0; i < fo->n; i++) {
        bool pending;
        lsn_t pos = fanout_position(fo, i, upto, &pending);
        if (pending && pos < flush)
            flush = pos;
    }
    return flush;
}

/* ---- life and figures -------------------------------------------------- */

size_t fanout_size(const fanout *fo)
{
    return fo ? fo->n : 0;
}

sink *fanout_sink(const fanout *fo, size_t i)
{
    return fo->t[i].s;
}

bool fanout_starting(const fanout *fo)
{
    for (size_t i = 0; i < fo->n; i++)
        if (worker_get_state(fo->t[i].w) == WORKER_STARTING)
            return true;
    return false;
}

void fanout_figures_of(const fanout *fo, size_t i, fanout_figures *out)
{
    const worker *w = fo->t[i].w;
    out->failed = worker_get_state(w) == WORKER_ERROR;
    out->commit_time = worker_commit_time(w);
    out->failures = worker_failures(w);
    worker_error_info(w, out->last_error, sizeof out->last_error, NULL,
                      &out->last_error_time);
}

void fanout_stop(fanout *fo)
{
    for (size_t i = 0; fo && i < fo->n; i++)
        worker_stop(fo->t[i].w);
}

void fanout_free(fanout *fo)
{
    if (!fo)
        return;
    fifo_drop(fo);
    free(fo->fifo);
    for (size_t i = 0; i < fo->n; i++) {
        worker_free(fo->t[i].w);
        sink_destroy(fo->t[i].s);
    }
    free(fo->t);
    free(fo);
}
