/*
 * pgload: the initial sync's loader into a service's PostgreSQL target
 * (sink.h, sink_loader): each table emptied and filled by COPY FROM
 * STDIN in one target transaction, so a table is all in or not at all
 * and an interrupted one is simply loaded again; where TRUNCATE may
 * empty it, with FREEZE, so its rows go in frozen. A table loaded in parts
 * (several loaders at once, one per copy thread) is emptied first, in a
 * transaction of its own; each part is then one COPY transaction, which
 * takes no lock but ROW EXCLUSIVE, so the parts load side by side. Until
 * the last part is in, the table is not recorded copied, and the next
 * copy empties it again.
 */
#ifndef CLEAVE_SINKS_PGLOAD_H
#define CLEAVE_SINKS_PGLOAD_H

#include "sinks/sink.h"

/*
 * A loader on `target`, the copy thread's open connection to the
 * service's database (the caller keeps and closes it). NULL with err
 * when out of memory.
 */
sink_loader *pgload_open(const cfg *config, const cfg_service *service,
                         struct pg_conn *target, char *err, size_t errlen);

#endif
