/*
 * mover: the cut-over, the rollback and the end of a move (PRODUCT.md
 * §8), carried out by the running daemon, which owns the streams and
 * knows what each sink holds.
 *
 * `cleave resync` asks the same way; the loop does the copy (pipeline.h).
 *
 * Threads: `cleave cutover|rollback|complete` asks over the status socket;
 * the status server hands the connection over (mover_control) and the
 * mover's own thread carries the move out, one at a time, writing each
 * step to that connection as a JSON line. Between moves the same thread
 * runs the keeper (keeper.h), which keeps both sides ready for a switch.
 *
 * The mover never touches a pipeline: when it needs the loop (start or
 * stop a reverse stream, see whether a sink holds everything before the
 * switch's mark) it posts the question, wakes the loop, and waits on its
 * answer; the loop asks mover_asked / mover_mark_wanted each turn.
 */
#ifndef CLEAVE_DAEMON_MOVER_H
#define CLEAVE_DAEMON_MOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "daemon/status.h"

typedef struct mover mover;

/* NULL with err when the journal cannot be read. */
mover *mover_new(const cfg *config, int wake_fd, char *err, size_t errlen);
/* Stops the thread (a move under way gives up: nothing changes). */
void mover_stop(mover *m);
/*
 * Stops it and frees it, with the reverse configurations: after the
 * pipelines that read them are freed.
 */
void mover_free(mover *m);

/*
 * Before any pipeline opens: finishes or undoes a move a crash or a stop
 * interrupted (the fences say which, and the log), so each service has
 * one writable side. False when a database cannot be asked (logged):
 * that service's move stays as journaled and the mover's thread tries
 * again every few seconds; the other services need not wait for it.
 */
bool mover_recover(mover *m);
/* Service svc's writes go to its own database: its reverse stream runs. */
bool mover_reverse(const mover *m, size_t svc);
/* Service svc's move is complete: nothing of it is streamed any more. */
bool mover_complete(const mover *m, size_t svc);
/*
 * The next owned table of a completed service, from index *from on, that
 * its move did not switch (given to it since, refused), or NULL; `why`
 * says so (see journal_not_moved).
 */
const cfg_table *mover_given_after_complete(const mover *m, size_t svc,
                                            size_t *from, char *why,
                                            size_t len);
/* svc's reverse stream's configuration, made once and kept. */
const cfg *mover_reverse_cfg(mover *m, size_t svc);

/*
 * Starts the thread. fill/arg: the status figures (a sink's state and
 * lag decide whether a move may start).
 */
bool mover_start(mover *m, status_fill_fn fill, void *arg, size_t max_sinks);
/* status_control_fn: arg is the mover. */
void mover_control(void *arg, int fd, const char *request);
/* Each service's direction and last pause, for the status socket. */
void mover_fill(mover *m, status_snapshot *out);

/* ---- the loop's side, main thread -------------------------------------- */

typedef enum mover_ask {
    MOVER_ASK_NONE,
    MOVER_ASK_START,         /* start svc's reverse pipeline */
    MOVER_ASK_STOP,          /* stop and free it */
    MOVER_ASK_RESYNC,        /* copy svc again (mover_asked_table) */
    MOVER_ASK_LEAVE,         /* the forward stream lets go of svc's tables */
} mover_ask;

mover_ask mover_asked(mover *m, size_t *svc);
void mover_answer(mover *m, bool ok);
/* MOVER_ASK_RESYNC: the owned table's index in svc, -1 for all. */
int mover_asked_table(mover *m);
/* A refusal, with the reason the command prints. */
void mover_refuse(mover *m, const char *why);
/*
 * The switch waits for service svc's sink (of the reverse pipeline when
 * *reverse) to hold everything before the mark carrying `token`.
 */
bool mover_mark_wanted(mover *m, size_t *svc, bool *reverse, char *token,
                       size_t len);
void mover_mark_reached(mover *m);

#endif
