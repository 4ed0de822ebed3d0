/*
 * analyze: the configuration's map of who owns what, checked against the
 * source catalog (PRODUCT.md §6), printed as a checklist a person acts on,
 * or as JSON for scripts.
 */
#ifndef CLEAVE_COMMANDS_ANALYZE_H
#define CLEAVE_COMMANDS_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config/config.h"

/*
 * Connects to the source, prints the checklist (or JSON) on stdout.
 * Returns 0 when nothing blocks `run`, 3 when something does, 1 when the
 * source cannot be read (why on stderr).
 */
int analyze_run(const cfg *config, bool json);

/* The columns of analyze_foreign_keys' rows. */
enum {
    ANALYZE_FK_NAME,          /* the constraint */
    ANALYZE_FK_FROM_SCHEMA,   /* the referencing table, raw names */
    ANALYZE_FK_FROM_TABLE,
    ANALYZE_FK_TO_SCHEMA,     /* the referenced table */
    ANALYZE_FK_TO_TABLE,
    ANALYZE_FK_FROM_COLUMNS,  /* JSON arrays of column names, in key order */
    ANALYZE_FK_TO_COLUMNS,
    ANALYZE_FK_DROP,          /* ALTER TABLE ... DROP CONSTRAINT ...; */
};

/*
 * Every foreign key between user tables of conn's database, one row each
 * (a partition's copy of its parent's key not repeated), ordered by the
 * referencing table. `analyze` reports those between two services;
 * `complete --drop-tables` refuses while one points at a table it drops.
 * NULL with err on failure; the caller PQclears.
 */
PGresult *analyze_foreign_keys(PGconn *conn, char *err, size_t errlen);

#endif
