/*
 * initsync: the initial sync, in threads of its own beside the stream.
 *
 * For every service whose tables are not all copied (syncstate.h): the
 * tables are created in the target from the source catalog (schema.h),
 * then copied, `copy_workers` at a time, each with COPY out of the source
 * inside one exported snapshot and COPY into the target, streamed row by
 * row. The snapshot is the new slot's when `run` just made the slot, else
 * a temporary slot's made for the purpose: the tables it copies apply the
 * stream from its consistent point on. A table's copy is one target
 * transaction (TRUNCATE and COPY), so an interrupted one is simply copied
 * again. Indexes other than the ones the table was created with are built
 * after its rows; foreign keys and sequence values once every table of
 * the service is in. The service is then finished and its sink replays
 * what it held (syncsink.h).
 *
 * A failure (a target down, say) is logged and the whole round is tried
 * again with backoff; the stream meanwhile keeps being held, so nothing
 * is lost.
 */
#ifndef CLEAVE_DAEMON_INITSYNC_H
#define CLEAVE_DAEMON_INITSYNC_H

#include <stdbool.h>

#include "config/config.h"
#include "daemon/snapshot.h"
#include "daemon/syncstate.h"

typedef struct initsync initsync;

/*
 * Starts the thread; takes `created` (the snapshot of the slot `run` just
 * made, or NULL). NULL only when out of resources.
 */
initsync *initsync_start(const cfg *config, const cfg_source *source,
                         syncstate *ss, snap *created);
/* Rows copied so far for service svc (for status; 0 when is is NULL). */
uint64_t initsync_rows(const initsync *is, size_t svc);
/* Whether every service is finished (the thread has ended). */
bool initsync_done(initsync *is);
/* Asks the copies to stop, waits for the threads, frees. */
void initsync_stop(initsync *is);

#endif
