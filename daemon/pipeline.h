/*
 * pipeline: one replication stream end to end. Its source (the control
 * and replication connections to one database, its slot and publication:
 * a cfg_source of its own), the decoder and routing (stream), the fan-out
 * to its sinks' workers, the initial sync that fills those sinks, and its
 * state paths (the spool of streamed transactions, the hold of each
 * service's stream during its copy, the copy's progress).
 *
 * The runner holds any number of pipelines and drives them from its one
 * loop; today there is one, the shared database to the services. Every
 * call is the main thread's.
 */
#ifndef CLEAVE_DAEMON_PIPELINE_H
#define CLEAVE_DAEMON_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon/fanout.h"
#include "daemon/initsync.h"
#include "daemon/snapshot.h"
#include "daemon/stream.h"
#include "daemon/syncstate.h"

typedef struct pipeline pipeline;

/*
 * A pipeline reading `settings` (kept, not copied) for config's services,
 * its state under state_dir. Workers write wake_fd when they have news.
 * NULL when its directories cannot be made or memory is short.
 */
pipeline *pipeline_new(const cfg *config, const cfg_source *settings,
                       const char *state_dir, int wake_fd);
/* Stops what still runs (pipeline_stop) and frees everything. */
void pipeline_free(pipeline *p);

/*
 * One try at making the publication and the slot ready (`stop` is asked
 * while a slot's creation waits). False with the reason in err, and the
 * wait before the next try in *retry_ms.
 */
bool pipeline_prepare(pipeline *p, snap_stop_fn *stop, void *stop_arg,
                      int *retry_ms, char *err, size_t errlen);
/*
 * After a prepare that worked: the initial sync's progress (forgotten when
 * the slot is new), a sink and worker for every target of every service,
 * and the stream. False when that fails (logged).
 */
bool pipeline_open(pipeline *p);
/* Some sink is still making its first attempt to open. */
bool pipeline_starting(const pipeline *p);
/*
 * Instead of an initial sync: every table counts as copied, its changes
 * applied from the slot's start (a reverse stream, whose target already
 * holds the rows). False when the state cannot be saved (logged).
 */
bool pipeline_skip_copy(pipeline *p);
/* The source's slot is never made here: see source_forbid_new_slot. */
void pipeline_forbid_new_slot(pipeline *p);
/*
 * Service svc's move is complete: its tables stay out of the publication,
 * and from the next pipeline_open on nothing is copied into it either.
 */
void pipeline_leave(pipeline *p, size_t svc);
/* Starts the initial sync (the services not copied yet). */
bool pipeline_start_copy(pipeline *p);

/*
 * `cleave resync`: service svc's owned table `table` (config order; -1:
 * all of them) copied again inside a fresh snapshot while the other
 * services stream on: its sync state goes back to pending, so its sinks
 * hold its stream from their next transaction, and a new initial-sync
 * round empties the tables and copies them, then the held stream is
 * replayed. Refused (false with err, nothing changed) while the service
 * is still being copied or replaying what it held.
 */
bool pipeline_resync(pipeline *p, size_t svc, int table, char *err,
                     size_t errlen);

/* ---- the loop ---------------------------------------------------------- */

/*
 * (Re)starts streaming when the source is down and its retry is due; true
 * when it has just started.
 */
bool pipeline_try_start(pipeline *p, snap_stop_fn *stop, void *stop_arg);
/*
 * The slot was made again while cleave ran: every sink must forget its
 * position (syncstate_forget_all), which it does when it opens.
 */
bool pipeline_slot_made_again(const pipeline *p);
/* Status says so (the source's last_error), also after that restart. */
void pipeline_say_slot_made_again(pipeline *p);
/* The socket to wait on for frames, or -1 (down, or the sinks push back). */
int pipeline_fd(const pipeline *p);
/* A worker had news: a sink that came back gets the slot replayed. */
void pipeline_wake(pipeline *p);
/* Frames, replays, standby status and heartbeats, as far as they go now. */
void pipeline_turn(pipeline *p);
/* When the pipeline next needs a turn (monotonic ms), at the latest `by`. */
int64_t pipeline_deadline(const pipeline *p, int64_t by);
/*
 * Commits what the sinks hold, stops their workers and the copy, and
 * reports the final position to the source.
 */
void pipeline_stop(pipeline *p);

/* ---- for the status socket --------------------------------------------- */

const cfg_source *pipeline_settings(const pipeline *p);
bool pipeline_streaming(const pipeline *p);
const fanout *pipeline_fanout(const pipeline *p);
const stream *pipeline_stream(const pipeline *p);
syncstate *pipeline_syncstate(const pipeline *p);
const initsync *pipeline_initsync(const pipeline *p);
/*
 * The cut-over's wait: the stream has read the mark carrying `token` and
 * service svc's PostgreSQL sink holds everything before it.
 */
bool pipeline_mark_applied(const pipeline *p, size_t svc, const char *token);
/* The flush LSN last sent to the source. */
lsn_t pipeline_flush_sent(const pipeline *p);
/*
 * The source's last failure since start ("" and *when 0 when none; kept
 * after it streams again, as a sink's last error is), Unix seconds.
 */
const char *pipeline_source_error(const pipeline *p, int64_t *when);

#endif
