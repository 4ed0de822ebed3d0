/*
 * initsync: the initial sync, in threads of its own beside the stream.
 *
 * For every service whose tables are not all copied (syncstate.h): the
 * tables are created in the target from the source catalog (schema.h),
 * then copied, `copy_workers` at a time, each read once with COPY out of
 * the source inside one exported snapshot and streamed row by row into
 * each of the service's destinations through the sinks' loaders
 * (sink.h: COPY into the target, snapshot events to Kafka). The snapshot is the new slot's when `run` just made the slot, else
 * a temporary slot's made for the purpose: the tables it copies apply the
 * stream from its consistent point on. A table's copy is one target
 * transaction (TRUNCATE and COPY), so an interrupted one is simply copied
 * again. A table whose heap is larger than copy_split_size, or a
 * partitioned one, is copied in parts instead (block ranges of its heap,
 * read by TID range scans; or its leaf partitions, loaded through its
 * root): each part a job of its own, so the copy threads load one table's
 * parts at once in the same snapshot. The table is emptied before its
 * first part loads and recorded done after its last, so one interrupted
 * anywhere is emptied and copied whole again by the next round: its
 * parts cannot be resumed one by one, since the next round reads another
 * snapshot, and rows that moved between blocks in between would be
 * copied twice or not at all. Indexes other than the ones the table was
 * created with are built after its rows; foreign keys and sequence values once every table of
 * the service is in. The service is then finished and its sink replays
 * what it held (syncsink.h).
 *
 * A failure (a target down, say) is logged and the whole round is tried
 * again with backoff; the stream meanwhile keeps being held, so nothing
 * is lost. Until the service copies again, status shows it in error with
 * the reason.
 *
 * The copy sessions run in the replica role, as PostgreSQL's table sync
 * does: target tables a team created itself, foreign keys included, are
 * filled whatever order the copy takes.
 */
#ifndef CLEAVE_DAEMON_INITSYNC_H
#define CLEAVE_DAEMON_INITSYNC_H

#include <stdbool.h>

#include "config/config.h"
#include "daemon/snapshot.h"
#include "daemon/syncstate.h"

typedef struct initsync initsync;

/*
 * Whether service svc's stream is held with nothing of it still in flight
 * to a target, so that the copy's rows cannot land before older changes
 * (syncsink_settled). Called from the copy thread.
 */
typedef bool initsync_held_fn(void *arg, size_t svc);

/*
 * Starts the thread; takes `created` (the snapshot of the slot `run` just
 * made, or NULL). A round copies a service once held(held_arg, svc) says
 * so, waiting for it a while. NULL only when out of resources.
 */
initsync *initsync_start(const cfg *config, const cfg_source *source,
                         syncstate *ss, snap *created,
                         initsync_held_fn *held, void *held_arg);
/* Rows copied so far for service svc (for status; 0 when is is NULL). */
uint64_t initsync_rows(const initsync *is, size_t svc);
/*
 * The last failure of service svc's initial sync ("" and 0 when none),
 * kept after it passed, and how many there were; true while the service
 * has not copied since (status shows it in error). False when is is NULL.
 */
bool initsync_last_error(const initsync *is, size_t svc, char *buf,
                         size_t len, int64_t *when, uint64_t *failures);
/* Whether every service is finished (the thread has ended). */
bool initsync_done(initsync *is);
/*
 * Service svc was set to copy again (a resync: syncstate has its tables
 * pending): a round copies it in a snapshot of its own, the thread
 * started again if it had ended. Its rows count from 0. Main thread only;
 * false when the thread cannot be started.
 */
bool initsync_again(initsync *is, size_t svc);
/* Asks the copies to stop, waits for the threads, frees. */
void initsync_stop(initsync *is);

#endif
