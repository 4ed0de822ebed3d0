/*
 * pgpart: partitions the source has and a target lacks, made in the
 * target from the source catalog.
 *
 * A partitioned table replicates as its root, and its partitions are
 * made with it in the target at the initial sync. A partition added on
 * the source later (CREATE TABLE ... PARTITION OF, or ATTACH PARTITION)
 * is no change in the stream: the target learns of it when a row it
 * should hold is refused ("no partition of relation ... found for row").
 * The sink then makes every partition of that table the target lacks, as
 * the source has it now (name, bounds, sub-partitioning; columns, keys
 * and indexes come from the parent), and applies again. Rows a table
 * held before it was attached never were in the stream, and a DETACH is
 * not either: docs/run.md says what to do for both.
 */
#ifndef CLEAVE_SINKS_PGPART_H
#define CLEAVE_SINKS_PGPART_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* Whether a target's error is a row for which no partition exists. */
bool pgpart_missing(const PGresult *res);

/*
 * Makes in `target` (a plain connection, no transaction open) the
 * partitions of schema.table that the source at `dsn` has and the target
 * lacks, in one transaction, logging each; *made says how many. False
 * with the reason in err.
 */
bool pgpart_create_missing(PGconn *target, const char *dsn,
                           const char *service, const char *schema,
                           const char *table, int *made, char *err,
                           size_t errlen);

#endif
