/*
 * source: cleave's two connections to the shared database.
 *
 * The control connection (a normal one) creates the publication and the
 * slot when missing, tells the server's version, and writes heartbeats.
 * The replication connection streams the slot (START_REPLICATION ...
 * LOGICAL with pgoutput) and carries standby status updates back.
 */
#ifndef CLEAVE_DAEMON_SOURCE_H
#define CLEAVE_DAEMON_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon/snapshot.h"
#include "decoder/lsn.h"
#include "sinks/sink.h"

typedef struct source source;

/*
 * Reads from `settings` (a pipeline's source; kept, not copied) and
 * publishes the tables config's services own.
 */
source *source_new(const cfg *config, const cfg_source *settings);
void source_free(source *src);

/*
 * Connects the control connection if needed, then makes sure the
 * publication (FOR TABLE every owned table, adding tables it lacks) and
 * the slot exist. A slot it creates keeps its exported snapshot for the
 * initial copy: see source_take_snapshot. `stop` is asked while a slot's
 * creation waits for running transactions.
 */
bool source_prepare(source *src, snap_stop_fn *stop, void *stop_arg, char *err,
                    size_t errlen);
/*
 * Service svc's move is complete: prepare never adds its tables to the
 * publication again (the move took them out). Any thread.
 */
void source_leave(source *src, size_t svc);
/*
 * The slot is made elsewhere (a reverse stream's, by reverse_prepare
 * before its cut-over): prepare never makes it, and a missing slot is an
 * error saying what was lost, since a new one would start after it.
 */
void source_forbid_new_slot(source *src);
/*
 * Called by prepare just before it makes the slot, so that what belongs
 * to an earlier slot of that name stops counting first (false with err:
 * the slot is not made).
 */
typedef bool source_new_slot_fn(void *arg, char *err, size_t errlen);
void source_on_new_slot(source *src, source_new_slot_fn *fn, void *arg);
/* Whether service svc left (source_leave). Any thread. */
bool source_left(const source *src, size_t svc);
/* The snapshot of the slot prepare created (yours), or NULL. */
snap *source_take_snapshot(source *src);
/* The protocol version agreed with this server (after prepare). */
int source_proto_version(const source *src);

/*
 * Opens the replication connection and starts streaming the slot. A slot
 * the server invalidated is an error with the way back in err, and is
 * never made again by prepare while this source lives.
 */
bool source_start(source *src, char *err, size_t errlen);
/*
 * Whether the next start may ask for binary values at all (where
 * source.binary_values and binfmt's check allow): the pipeline says no
 * for a while after a Relation message the check did not cover.
 */
void source_allow_binary(source *src, bool allow);
/*
 * The columns checked for binary values when the stream asked for them,
 * else NULL; the source's, valid until the next start.
 */
const struct binfmt *source_binfmt(const source *src);
/* Text values only because a target lacked a table at the last start. */
bool source_binary_missing(const source *src);
/* Why the server invalidated the slot, or NULL while it has not. */
const char *source_slot_lost(const source *src);
/* Closes the replication connection (if open). */
void source_stop(source *src);
bool source_streaming(const source *src);
/*
 * Whether the replication socket has the small receive window of a
 * source on this host (loopback TCP, set at each start).
 */
bool source_small_window(const source *src);
int source_fd(const source *src);

/*
 * The next CopyData message: 1 with buf and len set (valid until the next
 * call), 0 when none is ready, -1 when the stream ended or failed (err).
 */
int source_read(source *src, const uint8_t **buf, size_t *len, char *err,
                size_t errlen);
/* Sends a standby status update. */
bool source_send_status(source *src, lsn_t written, lsn_t flushed,
                        bool reply_requested);

/* Writes a non-transactional logical message so the slot can move. */
bool source_heartbeat(source *src, char *err, size_t errlen);

/*
 * What the source's catalog says now of a relation the stream met under
 * a name no service owns (see source_owner_of).
 */
typedef struct source_owner {
    int service;                /* whose owned table has that oid, or -1 */
    const cfg_table *table;     /* that table, as configured */
    int missing_service;        /* a service with a table the catalog lacks */
    const cfg_table *missing;   /* the first such table, or NULL */
} source_owner;
/*
 * Looks up, by the names configured, the oids of the tables of services
 * still publishing: which one (if any) has oid, and which is missing.
 */
bool source_owner_of(source *src, uint32_t oid, source_owner *out, char *err,
                     size_t errlen);

/*
 * Marks the columns of rel's primary key (sink_col.pk) as the source's
 * catalog has them now, none without one; false with err when it cannot
 * be asked.
 */
bool source_mark_primary_key(source *src, sink_rel *rel, char *err,
                             size_t errlen);

#endif
