/*
 * worker: one thread per sink, fed through a bounded queue.
 *
 * The stream loop pushes events in source commit order; the worker
 * applies them through the sink's interface. It skips a source
 * transaction it already holds (its commit LSN lies before the end LSN
 * of the last transaction the sink committed), which makes replaying the
 * slot after any restart exact for every sink at once.
 *
 * When the sink fails, the worker drops what is queued, closes the sink,
 * backs off (1 s doubling to 60 s) and reopens it; each open starts a new
 * generation, and the stream loop restarts the source from the slot when
 * it sees one (events meant for an older generation are dropped). While a
 * worker is not ready, the stream loop holds the slot at the worker's
 * durable LSN.
 */
#ifndef CLEAVE_DAEMON_WORKER_H
#define CLEAVE_DAEMON_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sinks/sink.h"

typedef enum worker_state {
    WORKER_STARTING,     /* opening the sink */
    WORKER_READY,        /* applying */
    WORKER_ERROR,        /* failed; retrying with backoff */
    WORKER_STOPPED,
} worker_state;

typedef struct worker worker;

/*
 * Starts the thread. `wake_fd` (an eventfd) is written whenever the
 * worker has news for the stream loop: ready after (re)opening, durable
 * moved, half of a queue that was full freed, failed.
 */
worker *worker_start(sink *s, int wake_fd, size_t max_queue_bytes);
/*
 * Asks the thread to commit what it holds and stop, and joins it; the
 * worker's figures (worker_durable) stay readable until worker_free.
 */
void worker_stop(worker *w);
void worker_free(worker *w);

/*
 * Queues an event for the sink as it was at `generation` (read when the
 * stream was started for it). An event for an older generation, or for a
 * worker that is not ready, is freed: the replay after the reopen brings
 * it again. False only when the queue is full (the event stays yours).
 */
bool worker_push(worker *w, unsigned generation, sink_event *ev);
/*
 * While held, a push wakes the thread only for a queue filling up, not
 * for each transaction; the release wakes it for what came meanwhile.
 * Stream loop: one wake-up per burst read, not per transaction in it.
 */
void worker_hold_wakes(worker *w, bool hold);
/*
 * Something waits on worker_durable (a cut-over's catch-up): the sink
 * reads its durable position at its next chance rather than when due,
 * and an idle thread is woken for it.
 */
void worker_want_durable(worker *w);
/* Counts successful opens of the sink. */
unsigned worker_generation(const worker *w);
/* Queue room for at least `bytes` more. */
bool worker_has_room(const worker *w, size_t bytes);

worker_state worker_get_state(const worker *w);
/* The LSN up to which the sink holds everything durably. */
lsn_t worker_durable(const worker *w);
/* Copies the last error (empty when none) and the LSN it happened at. */
void worker_last_error(const worker *w, char *buf, size_t len, lsn_t *lsn);
/* The same with its time (Unix seconds, 0 when none); lsn, when may be NULL. */
void worker_error_info(const worker *w, char *buf, size_t len, lsn_t *lsn,
                       int64_t *when);
/* Failures since the start. */
uint64_t worker_failures(const worker *w);
/*
 * Source commit time (Unix µs) of the transaction being applied, or of
 * the last one; 0 if none yet. What lag in seconds is measured from.
 */
int64_t worker_commit_time(const worker *w);
sink *worker_sink(worker *w);

const char *worker_state_name(worker_state state);

#endif
