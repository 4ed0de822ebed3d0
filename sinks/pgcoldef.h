/*
 * pgcoldef: the source's definitions of the columns a relation version
 * brings that the target lacks (ALTER TABLE ... ADD COLUMN on the source),
 * read from the source catalog over a plain connection of its own, so the
 * target adds them as the source has them: type (as the stream names it),
 * collation, default, NOT NULL, identity.
 *
 * The rows already there are what matters most. PostgreSQL stores the
 * value they read for a non-volatile default in the catalog
 * (attmissingval); that value is what the target's rows get, whatever the
 * default became since. Without one, the source computed each row itself
 * (a volatile default, an identity) or a rewrite has since written the
 * values into the rows, and the stream carries none of it: the target
 * then computes its own from the definition, and the column is flagged.
 */
#ifndef CLEAVE_SINKS_PGCOLDEF_H
#define CLEAVE_SINKS_PGCOLDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "sinks/pgstmt.h"
#include "sinks/sink.h"

/* How far the target's rows already there can be trusted, per column. */
typedef enum pgcoldef_note {
    PGCOLDEF_EXACT,          /* they read what the source's rows read */
    /*
     * The source has no such column any more (dropped, or re-made with
     * another type since): added nullable, without default, as the stream
     * describes it; the rows already there read NULL.
     */
    PGCOLDEF_GONE,
    /* The target computed their values; the source's may differ. */
    PGCOLDEF_COMPUTED,
} pgcoldef_note;

typedef struct pgcoldef_set {
    pgstmt_coldef *defs;     /* n, pointing into res and fills */
    pgcoldef_note *notes;
    int n;
    PGresult *res;
    char **fills;
} pgcoldef_set;

/*
 * Defines rel->cols[cols[i]] (types[i]: its SQL type on the target) from
 * the catalog of the source at `dsn`. False, with the reason in err, when
 * the source cannot be read (nothing is to be added then) or a column is
 * one the target could not take from the stream (generated on the source).
 */
bool pgcoldef_read(pgcoldef_set *set, const char *dsn, const sink_rel *rel,
                   const uint16_t *cols, const char *const *types, int n,
                   char *err, size_t errlen);
void pgcoldef_clear(pgcoldef_set *set);

#endif
