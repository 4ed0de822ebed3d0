/*
 * snapshot: a logical slot created with its snapshot exported, so the
 * initial copy reads exactly the data the slot's stream starts after.
 *
 * The slot is made on a replication connection of its own
 * (CREATE_REPLICATION_SLOT ... SNAPSHOT 'export'); the snapshot can be
 * imported (SET TRANSACTION SNAPSHOT) until that connection runs another
 * command or closes, so it stays open, idle, until every copy connection
 * has imported it. A temporary slot (for tables copied after the main
 * slot exists) disappears with the connection.
 *
 * Creating a slot waits for every transaction running at that moment,
 * a forgotten prepared transaction included: while it waits, the
 * sessions holding it up are logged every few seconds.
 */
#ifndef CLEAVE_DAEMON_SNAPSHOT_H
#define CLEAVE_DAEMON_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "decoder/lsn.h"

typedef struct snap snap;

/* Asked about once a second while waiting; true gives up. */
typedef bool snap_stop_fn(void *arg);

/*
 * Creates `slot` (pgoutput) and exports its snapshot. NULL with err on
 * failure or when stop said so.
 */
snap *snap_create(const cfg_source *source, const char *slot, bool temporary,
                  snap_stop_fn *stop, void *stop_arg, char *err, size_t errlen);
/* The name to give SET TRANSACTION SNAPSHOT. */
const char *snap_name(const snap *s);
/* The slot's consistent point: its stream holds every commit from here. */
lsn_t snap_lsn(const snap *s);
/* Closes the connection: no more imports (a temporary slot is dropped). */
void snap_release(snap *s);

#endif
