/*
 * syncsink: a service's sink during and after its initial sync.
 *
 * It wraps the service's real sink. While the service's tables are being
 * copied (syncstate says not finished) every source transaction routed to
 * it is appended to a spool in state_dir/hold/ and made durable there, so
 * the slot moves on and the source keeps no WAL for a long copy. Once the
 * copy is finished, the spool is replayed into the real sink in commit
 * order, then the stream goes straight through. Each change is applied
 * only when its table's copy is done and the change committed at or
 * after the LSN of the snapshot the table was copied in: what the copy
 * already holds is never applied twice.
 *
 * The spool keeps commit order, so the real sink's own position (its
 * replication origin) says how much of a replay it holds: a restart in
 * the middle of one replays only the rest. The spool is removed once the
 * real sink holds all of it durably.
 */
#ifndef CLEAVE_DAEMON_SYNCSINK_H
#define CLEAVE_DAEMON_SYNCSINK_H

#include "daemon/syncstate.h"
#include "sinks/sink.h"

typedef enum syncsink_phase {
    SYNCSINK_INITIAL_COPY,   /* holding the stream in the spool */
    SYNCSINK_CATCHING_UP,    /* replaying the spool */
    SYNCSINK_STREAMING,
} syncsink_phase;

/*
 * Takes `inner` (destroyed with the wrapper, or at once when this fails);
 * `svc` is the service's index in the configuration. Ended with
 * sink_destroy.
 */
sink *syncsink_new(sink *inner, syncstate *ss, size_t svc);
/* Read from any thread. */
syncsink_phase syncsink_get_phase(const sink *s);
/*
 * Whether everything the real sink was given before the hold is durable
 * there, the hold begun: a copy's snapshot events may go out, since no
 * older event of the stream is still in flight to land after them (a
 * Kafka target's copy goes through a producer of its own). True before
 * the first open too; false while the sink is closed, since a shared
 * producer may still deliver what it was given. Any thread.
 */
bool syncsink_settled(const sink *s);
const char *syncsink_phase_name(syncsink_phase phase);

#endif
