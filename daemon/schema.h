/*
 * schema: a service's owned tables, from the source catalog to its target
 * database, for the initial sync (PRODUCT.md §3 point 2).
 *
 * The work is split in phases around the copy of the rows, because a
 * table without indexes takes rows much faster, and a foreign key can only
 * be checked once both of its tables are full:
 *
 *   schema_read            source: every definition, in one go
 *   schema_prepare_target  target: schemas, types, sequences, bare tables
 *   (the caller copies the rows of each table)
 *   schema_finish_table    target: keys, indexes, replica identity
 *   schema_finish_service  target: in-service foreign keys, sequences
 *
 * Definitions come from PostgreSQL's own deparsers (format_type,
 * pg_get_expr, pg_get_constraintdef, pg_get_indexdef) run with
 * search_path = pg_catalog, so every name they print is schema-qualified;
 * the target statements run under the same search_path.
 *
 * A table this module creates carries a marker comment until its service
 * is finished, so that after a crash a half-built table is recognised as
 * its own and finished, instead of being "used as it is" without its keys.
 */
#ifndef CLEAVE_DAEMON_SCHEMA_H
#define CLEAVE_DAEMON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config/config.h"

typedef struct schema_plan schema_plan;

/*
 * Reads the definitions of `svc`'s owned tables (and every type, sequence,
 * index and constraint they need) from the source. `src` may be inside a
 * REPEATABLE READ transaction with an imported snapshot (the copy's): it
 * is only read from, never written or committed. Inside a transaction the
 * reads run in a savepoint that is rolled back at the end (which also
 * puts the search_path back, and keeps the transaction usable when a read
 * fails); outside one, in a READ ONLY transaction of their own. Sequence
 * values are read here: sequences are not transactional, so they are the
 * values at this call, at or past the snapshot's. NULL on error, with err
 * naming the service and the table.
 */
schema_plan *schema_read(PGconn *src, const cfg *config,
                         const cfg_service *svc, char *err, size_t errlen);
void schema_free(schema_plan *p);

size_t schema_ntables(const schema_plan *p);
/* The owned table i, in the order the configuration lists them. */
const cfg_table *schema_table(const schema_plan *p, size_t i);
/* The columns COPY carries (generated columns left out): "a", "b". */
const char *schema_copy_columns(const schema_plan *p, size_t i);
/*
 * Whether table i is partitioned: its rows are its partitions', so it is
 * read and emptied without ONLY.
 */
bool schema_table_partitioned(const schema_plan *p, size_t i);
/*
 * Size estimates from the source for ordering and progress: pg_table_size
 * (with TOAST) and reltuples; -1 when unknown (never analyzed).
 */
int64_t schema_table_bytes(const schema_plan *p, size_t i);
int64_t schema_table_rows(const schema_plan *p, size_t i);
/*
 * Foreign keys of the service's tables that point at tables it does not
 * own: they are never created, only logged by schema_finish_service.
 */
size_t schema_skipped_fks(const schema_plan *p);

typedef enum schema_outcome {
    SCHEMA_CREATED,       /* new and empty: copy the rows */
    SCHEMA_EXISTS_EMPTY,  /* there already, same shape, no rows */
    SCHEMA_EXISTS_ROWS,   /* there already, same shape, has rows */
} schema_outcome;

/*
 * Target, before any data, in one target transaction: schemas, types
 * (enums, domains, composites, in dependency order; one that exists by
 * name is reused), missing sequences, and each missing table with
 * its columns, defaults, NOT NULL, generated columns, identity, collations
 * and validated CHECK constraints, but no keys or indexes yet; a
 * partitioned table with its partitions (PARTITION OF, their bounds, and
 * their own partition keys). A VIRTUAL generated column is made STORED in
 * a target older than PostgreSQL 18 (event=virtual_columns_stored). A table
 * that exists is compared with the source (the same column names, types
 * as format_type prints them, NOT NULL and generated-ness): same shape
 * gives SCHEMA_EXISTS_EMPTY or SCHEMA_EXISTS_ROWS, another shape fails
 * with err naming the service, the table and the first difference. A
 * table left half-built by an earlier run (its marker comment) counts as
 * existing, but the finish calls still complete it. `outcome` has
 * schema_ntables(p) entries. On failure nothing is left behind.
 */
bool schema_prepare_target(PGconn *tgt, schema_plan *p,
                           schema_outcome *outcome, char *err, size_t errlen);

/*
 * After table i's rows are in, in one target transaction: primary key,
 * unique and exclusion constraints, the other indexes, NOT VALID CHECK
 * constraints, REPLICA IDENTITY (FULL, NOTHING or USING INDEX). Does
 * nothing for a table it did not create. Tables of a service may be
 * finished in parallel on separate connections.
 */
bool schema_finish_table(PGconn *tgt, const schema_plan *p, size_t i,
                         char *err, size_t errlen);

/*
 * After every table of the service, in one target transaction: the
 * foreign keys between the service's own tables (on tables it created),
 * each one to a table the service does not own logged as
 * event=foreign_key_skipped with the statement that would have made it,
 * and every sequence set to the value read from the source (setval with
 * is_called), tables created or not.
 */
bool schema_finish_service(PGconn *tgt, const schema_plan *p, char *err,
                           size_t errlen);

#endif
