/*
 * pgseq: sequences follow the writes. When a cut-over moves a service's
 * writes to the other database, the sequences its tables draw on there
 * must stand at least where they stood on the side that wrote until now,
 * or the next insert would hand out a number already used.
 *
 * Names are quoted qualified names, `"public"."orders_id_seq"`, the form
 * pgseq_of_tables returns (any name works: both parts always quoted).
 * Connections are blocking, not in pipeline mode. Neither call opens,
 * commits or rolls back a transaction; both work inside one the caller
 * opened. setval is not transactional: a sequence pgseq_sync raised
 * stays raised if the caller then rolls back, which is harmless, since a
 * sequence ahead of its table only skips numbers.
 */
#ifndef CLEAVE_SINKS_PGSEQ_H
#define CLEAVE_SINKS_PGSEQ_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config/config.h"

/*
 * The sequences the tables (and their partitions) use: those owned by
 * their columns (serial, identity, OWNED BY) and those their column
 * defaults name (nextval('x'), a sequence shared between tables). On
 * success *names is an array of *count quoted qualified names, each once,
 * sorted by byte value; free it with pgseq_free_names. One round trip. A
 * missing table is an error.
 */
bool pgseq_of_tables(PGconn *c, const cfg_table *t, size_t n, char ***names,
                     size_t *count, char *err, size_t errlen);
void pgseq_free_names(char **names, size_t count);

/*
 * Raises every sequence on `to` that is behind the same-named sequence on
 * `from` to from's last value (the next nextval on `to` then gives a
 * number from never gave); never lowers one. One round trip on each side.
 * A sequence never called on `from` has given nothing and is left alone;
 * one never called on `to` stands just below its start value. For a
 * descending sequence "behind" means above. *raised is how many moved.
 *
 * A name missing on either side (or not a sequence there) is an error
 * naming it and the database, and then nothing on `to` is changed.
 * Nothing else must advance the sequences on `to` meanwhile (in the
 * cut-over, its tables are fenced): a nextval between the read and the
 * setval could be set back.
 */
bool pgseq_sync(PGconn *from, PGconn *to, char **names, size_t n, int *raised,
                char *err, size_t errlen);

#endif
