/*
 * fanout: one pipeline's sinks, their worker threads, and everything the
 * main thread keeps about each, in one place.
 *
 * Who owns what:
 * - The main thread (the run loop and the stream it drives) makes every
 *   fanout_ call below but fanout_figures_of. It alone touches the per-sink
 *   routing state kept here: the worker generation it took the sink on
 *   at, whether the sink accepts events now, whether the source
 *   transaction being read was begun on it, the end LSN of the last
 *   COMMIT it was sent, and the FIFO of events waiting for queue room
 *   (in source order across sinks, so no sink ever overtakes another).
 * - Each worker thread (worker.c) owns its sink: the sink's connection,
 *   its calls, its backoff. Only the worker calls the sink.
 * - Shared between them, through worker.h's calls only: the bounded
 *   queue (worker_push), the worker's state, generation, durable LSN,
 *   last error and counters (atomics or the worker's mutex), and the
 *   wake eventfd the workers write when they have news.
 * - fanout_figures_of may be called from any thread (the status server's):
 *   it reads only the shared, atomic figures.
 *
 * No other module touches a worker.
 */
#ifndef CLEAVE_DAEMON_FANOUT_H
#define CLEAVE_DAEMON_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "decoder/lsn.h"
#include "sinks/sink.h"

typedef struct fanout fanout;

/* Workers write wake_fd (an eventfd) when they have news for the loop. */
fanout *fanout_new(const cfg *config, int wake_fd, size_t queue_bytes);
/*
 * Takes s (a sink of one of config's services; destroyed with the
 * fanout, or at once when this fails) and starts its worker. `messages`:
 * the sink publishes the logical messages its service claims.
 */
bool fanout_add(fanout *fo, sink *s, bool messages);
/* Asks every worker to commit what it holds and stop, and joins them. */
void fanout_stop(fanout *fo);
/* Stops what still runs, frees the workers and destroys the sinks. */
void fanout_free(fanout *fo);

size_t fanout_size(const fanout *fo);
sink *fanout_sink(const fanout *fo, size_t i);
/* Some worker is still making its first attempt to open its sink. */
bool fanout_starting(const fanout *fo);

/* ---- routing, main thread ---------------------------------------------- */

/* A source transaction starts being read: its BEGIN goes out lazily. */
void fanout_txn_begin(fanout *fo, uint32_t xid, lsn_t commit_lsn,
                      int64_t commit_time);
/*
 * The index (in the configuration) of the service whose events sink i
 * takes now, or -1 while it takes none (failed, not yet taken on).
 */
int fanout_service_of(const fanout *fo, size_t i);
/* Sink i takes now the logical messages with this prefix. */
bool fanout_wants_message(const fanout *fo, size_t i, const char *prefix);
/*
 * Hands an event to sink i, sending the transaction's BEGIN first at its
 * first event; it waits in the FIFO while the queue is full. Takes ev
 * (NULL: out of memory, false). False only when out of memory.
 */
bool fanout_send(fanout *fo, size_t i, sink_event *ev);
/* COMMIT to every sink the transaction was begun on; false: no memory. */
bool fanout_txn_end(fanout *fo, lsn_t end_lsn, int64_t commit_time);

/* worker_hold_wakes on every worker. */
void fanout_hold_wakes(fanout *fo, bool hold);
/* Events wait for queue room: read no more until fanout_drain empties it. */
bool fanout_busy(const fanout *fo);
/* Moves waiting events into queues; true once none waits. */
bool fanout_drain(fanout *fo);

/*
 * Before the source (re)starts: rolls back sinks in the middle of a
 * transaction, drops waiting events, and takes on every ready worker at
 * its current generation.
 */
void fanout_restart(fanout *fo);
/*
 * Notices workers that failed (they get nothing more until the restart)
 * and says whether one came back and needs the stream replayed.
 */
bool fanout_needs_restart(fanout *fo);
/*
 * The lowest position every sink holds, starting from `upto`: a sink
 * with nothing pending holds all it was sent.
 */
lsn_t fanout_flush_lsn(const fanout *fo, lsn_t upto);
/* Where sink i stands: durable while it has something pending, else received. */
lsn_t fanout_position(const fanout *fo, size_t i, lsn_t received,
                      bool *pending);
/* Sink i's durable position is waited on: see worker_want_durable. */
void fanout_want_durable(fanout *fo, size_t i);

/* ---- figures, any thread ----------------------------------------------- */

typedef struct fanout_figures {
    bool failed;             /* the worker is backing off after a failure */
    int64_t commit_time;     /* of the transaction being applied, Unix µs */
    uint64_t failures;
    char last_error[512];
    int64_t last_error_time; /* Unix seconds, 0 when none */
} fanout_figures;

void fanout_figures_of(const fanout *fo, size_t i, fanout_figures *out);

#endif
