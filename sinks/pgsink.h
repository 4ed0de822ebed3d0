/*
 * pgsink: applies a service's changes to its own PostgreSQL database,
 * exactly once.
 *
 * Each source transaction's changes go through prepared statements per
 * relation, in libpq pipeline mode (no round trip per row), consecutive
 * changes of one shape several to a statement; several whole source
 * transactions may share one target transaction. Before each
 * target commit the end LSN of the last source transaction in it is
 * recorded with the service's replication origin
 * (pg_replication_origin_xact_setup), in the same transaction, so what
 * the target holds and the position it records can never disagree. The
 * target commits asynchronously; `durable` comes from
 * pg_replication_origin_progress(origin, true), which covers only what
 * the target has flushed.
 */
#ifndef CLEAVE_SINKS_PGSINK_H
#define CLEAVE_SINKS_PGSINK_H

#include "sinks/sink.h"

/* A sink for service->target_postgres; NULL when out of memory. */
sink *pgsink_new(const cfg *config, const cfg_service *service);
void pgsink_free(sink *s);

/*
 * For tests and benchmarks: while more source transactions are queued,
 * a target transaction takes them for up to `ms` milliseconds (100 by
 * default) or about 5000 changes. Whether the window closes between two
 * source transactions is otherwise up to the machine's load; 0 commits
 * each source transaction alone, a window longer than the test keeps
 * them together until none is queued.
 */
void pgsink_set_batch_ms(sink *s, int ms);

#endif
