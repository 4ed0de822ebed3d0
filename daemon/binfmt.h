/*
 * binfmt: whether a replication stream may ask pgoutput for values in
 * their binary form (the `binary` option, PostgreSQL 14 and later), and
 * which columns it was checked for.
 *
 * Binary values spare the walsender the types' output functions and the
 * targets their input functions, but pgoutput sends every column with a
 * binary send function in binary, and such a value is only good to a
 * target whose column reads it the same way. So binary is asked for only
 * where every column of every table a service owns is safe: no Kafka
 * sink (its events are built from text), each target of the source's
 * major version (a type's binary form may change between them), and each
 * column, in the source and in the service's target, of one "binary
 * signature": the same built-in type (not reg*, whose binary form is an
 * OID; an array only of such), an enum (its binary form is its label), or
 * a domain over either (a domain sends its base type's form). Anything
 * else (a composite, an array of an enum, a type the team changed in the
 * target) sends the whole stream as text.
 *
 * The check holds for the catalogs at the stream's start. A Relation
 * message naming a column it did not check (ADD COLUMN, a new type, a
 * table given later) makes the stream start again in text: see
 * binfmt_takes and pipeline.c.
 */
#ifndef CLEAVE_DAEMON_BINFMT_H
#define CLEAVE_DAEMON_BINFMT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config/config.h"

struct pgo_relation;

typedef struct binfmt binfmt;

/*
 * Checks the publication's tables through src (a plain connection to
 * the source) against each service's PostgreSQL target (services whose
 * left[i] is true are skipped: their tables left the publication). The
 * columns checked when the stream may go binary; else NULL, with why it
 * may not in `why`, and *missing true when that was a table or column
 * the target does not have yet (the initial copy makes it).
 */
binfmt *binfmt_check(PGconn *src, const cfg *config, const bool *left,
                     char *why, size_t whylen, bool *missing);
/*
 * Whether every column of rel was checked, of that type: a Relation
 * message the binary stream may go on with.
 */
bool binfmt_takes(const binfmt *b, const struct pgo_relation *rel);
void binfmt_free(binfmt *b);

#endif
