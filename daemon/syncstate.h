/*
 * syncstate: where the initial sync of each service stands, kept in
 * state_dir so a restart resumes it.
 *
 * Per owned table: pending (to be copied, again if it was interrupted)
 * or done at an LSN, the consistent point of the snapshot it was copied
 * in: the stream applies the table's changes committed from there on.
 * Per service: finished once every table is done and the foreign keys
 * and sequences are set; until then the service's stream is held in its
 * spool (syncsink.h). A new slot's file is written as soon as it is
 * opened.
 *
 * Shared by the copy threads (writers) and the sinks' threads (readers):
 * every call locks. The file is replaced atomically (write, fsync,
 * rename, fsync the directory) at every change.
 */
#ifndef CLEAVE_DAEMON_SYNCSTATE_H
#define CLEAVE_DAEMON_SYNCSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "decoder/lsn.h"

typedef enum sync_table_state {
    SYNC_UNKNOWN,   /* no record: the copy decides (first run, new table) */
    SYNC_PENDING,   /* to copy */
    SYNC_DONE,      /* copied; its changes apply from lsn on */
} sync_table_state;

typedef struct syncstate syncstate;

/*
 * Reads state_dir/initial_sync.json, which counts only for `slot` (kept,
 * not copied); `fresh` (the slot was just made) ignores what it says. Tables of the configuration it does not
 * list are SYNC_UNKNOWN; a service with one is not finished.
 */
syncstate *syncstate_open(const cfg *config, const char *slot, bool fresh,
                          char *err, size_t errlen);
void syncstate_free(syncstate *ss);

/* Table j of service i (config order). */
sync_table_state syncstate_table(syncstate *ss, size_t svc, size_t table,
                                 lsn_t *lsn);
/* Looks a table up by name: -1 when the service does not own it. */
int syncstate_find(const syncstate *ss, size_t svc, const char *schema,
                   const char *name);
bool syncstate_finished(syncstate *ss, size_t svc);
/* Changes counter: readers re-read only when it moved. */
uint64_t syncstate_generation(syncstate *ss);

/* Records and saves; false with err when the file cannot be written. */
bool syncstate_set_table(syncstate *ss, size_t svc, size_t table,
                         sync_table_state state, lsn_t lsn, char *err,
                         size_t errlen);
bool syncstate_set_finished(syncstate *ss, size_t svc, bool finished,
                            char *err, size_t errlen);

/*
 * A new slot's stream starts anew: every sink of every service must
 * forget the position it holds, which belongs to an earlier slot
 * (sink.forget_position). Per service and sink kind (sink_kind id), until
 * the sink did so; recorded in the file, so a restart in between still
 * forgets it.
 */
bool syncstate_must_forget(syncstate *ss, size_t svc, int kind);
/*
 * A slot of this name is about to be made: its file is written as a new
 * slot's (every table unknown, every sink to forget) before, so a crash
 * between the slot's creation and the next open does not leave an
 * earlier slot's records in force. syncstate_forget_all: the same for a
 * state already open (the slot made again while cleave runs), its
 * tables kept.
 */
bool syncstate_reset(const cfg *config, const char *slot, char *err,
                     size_t errlen);
bool syncstate_forget_all(syncstate *ss, char *err, size_t errlen);
bool syncstate_forgotten(syncstate *ss, size_t svc, int kind, char *err,
                         size_t errlen);

#endif
