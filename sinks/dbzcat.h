/*
 * dbzcat: what Debezium's schemas need about a relation's types that the
 * stream does not say, read from the source catalog over a plain
 * connection of its own: an enum's labels (io.debezium.data.Enum's
 * `allowed`) and a domain's base type, which Debezium maps the domain's
 * columns to (a domain over numeric(12,2) is a Decimal, not a string).
 * Only columns of types that are not built in (OIDs from 16384 on) are
 * looked up.
 */
#ifndef CLEAVE_SINKS_DBZCAT_H
#define CLEAVE_SINKS_DBZCAT_H

#include <stdbool.h>
#include <stddef.h>

#include "sinks/sink.h"

typedef struct dbzcat_types {
    /*
     * A copy of the relation (its names copied too) whose domain columns
     * have their base type and typmod; NULL when nothing was resolved.
     */
    sink_rel *rel;
    char **allowed;          /* ncols entries: an enum's labels, or NULL */
    uint16_t ncols;
} dbzcat_types;

/* Whether rel has a column whose type is not built in. */
bool dbzcat_needed(const sink_rel *rel);

/*
 * Reads the types of rel's columns that are not built in from the source
 * at dsn into *t (cleared first). False with the reason in err when the
 * source cannot be read or memory runs out; *t is then empty.
 */
bool dbzcat_resolve(dbzcat_types *t, const char *dsn, const sink_rel *rel,
                    char *err, size_t errlen);
void dbzcat_clear(dbzcat_types *t);

#endif
