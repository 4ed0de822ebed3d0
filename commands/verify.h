/*
 * verify: `cleave verify`, each owned table of the source compared with its
 * copy in the owning service's PostgreSQL target while replication runs
 * (PRODUCT.md §6).
 *
 * A table with a key (primary key, else the replica identity index) is
 * read in key order in chunks of VERIFY_CHUNK_ROWS: each chunk is hashed
 * inside the source (count and sum of per-row 64-bit hashes), the same
 * key range inside the target, and only the two hashes cross the wire.
 * A chunk whose hashes differ is compared again row by row (key, row md5
 * and row version) after the target has applied past the source's WAL
 * position of that look, with looks at the target before and after and
 * at the source after: a difference is reported only when a row version
 * that stayed through the looks proves it, so a change the stream had not
 * applied yet is never one (vtable.c says why). A table without a key is
 * compared as a multiset of rows the same way, in buckets of rows by md5.
 *
 * Output, on stdout: a line "verify: N table(s), ..." and, when no cleave
 * run streams the slot, a line "note: ..."; then one block per table as it
 * finishes (an ok line may add ", K chunk(s) re-checked"):
 *
 *   ok       SERVICE  SCHEMA.TABLE  N rows
 *   differs  SERVICE  SCHEMA.TABLE  N rows, K difference(s)
 *     missing in target: id=17
 *     extra in target: id=900001
 *     different: order_id=5, line_no=2
 *   error    SERVICE  SCHEMA.TABLE  why
 *   skipped  SERVICE  no PostgreSQL target
 *
 * A block may end with "unsettled: N row(s) ..." (rows that changed
 * between every two looks: not compared, not a difference) and "note:".
 * Then "summary: ..." with the totals and rows/s. Rows of a keyless table
 * are named by every column (values cut at 40 characters). Progress goes
 * to stderr every 3 s.
 */
#ifndef CLEAVE_COMMANDS_VERIFY_H
#define CLEAVE_COMMANDS_VERIFY_H

#include "config/config.h"

#define VERIFY_CHUNK_ROWS 4096

/*
 * Verifies the owned tables of `service` (NULL: every service), or only
 * `table` (as the configuration writes names; NULL: all). Returns 0 when
 * every table is equal, 3 when a difference remains, 1 when a table could
 * not be compared (and none differs), 2 for an unknown service or table.
 */
int verify_run(const cfg *config, const char *service, const char *table);

#endif
