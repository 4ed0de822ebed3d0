/*
 * pgtables: configured tables (config.h's cfg_table) written for SQL, and
 * the queries around them, for the cut-over's modules that lock, fence
 * and read them (pgfence, pgseq).
 *
 * Every name is quoted by libpq whatever it holds, so a table named
 * `Weird "Name"` reaches the server as it is configured. Catalog queries
 * take the quoted names as parameters and turn them into relations with
 * to_regclass, which reads quoted names the way SQL does.
 */
#ifndef CLEAVE_SINKS_PGTABLES_H
#define CLEAVE_SINKS_PGTABLES_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config/config.h"

/*
 * "schema"."name" for each table: an array of n strings, or NULL when out
 * of memory or a name libpq cannot quote. Free with pgtables_free.
 */
char **pgtables_quoted(PGconn *c, const cfg_table *t, size_t n);
void pgtables_free(char **quoted, size_t n);

/* The quoted names joined by ", " (for LOCK TABLE). Caller frees. */
char *pgtables_join(char *const *quoted, size_t n);

/*
 * "ARRAY[$first, ..., $(first+n-1)]::text[]": n parameters read as one
 * text array; "ARRAY[]::text[]" when n is 0. Caller frees.
 */
char *pgtables_param_array(int first, size_t n);

/*
 * SQL for a relation (a regclass expression, NULL for a missing table)
 * and every partition below it, as rows of `relid`: pg_partition_tree
 * alone gives nothing for a table that is not partitioned.
 */
#define PGTABLES_TREE(rel) \
    "(SELECT " rel " AS relid UNION SELECT relid FROM pg_partition_tree(" \
    rel "))"

/*
 * "what: the server's message" in err: the primary message of res (no
 * "ERROR:", no newline), else the connection's.
 */
void pgtables_err(PGconn *c, const PGresult *res, const char *what,
                  char *err, size_t errlen);

/*
 * Runs a query with text parameters (NULL ones are SQL NULL); its rows,
 * or NULL with pgtables_err's reason in err. Caller PQclears.
 */
PGresult *pgtables_query(PGconn *c, const char *sql, const char *const *params,
                         size_t n, const char *what, char *err,
                         size_t errlen);

#endif
