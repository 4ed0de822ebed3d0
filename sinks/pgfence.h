/*
 * pgfence: the write fence of a cut-over (PRODUCT.md section 8), and the
 * lock taken on the shared database before it moves.
 *
 * A fenced table refuses application INSERT, UPDATE, DELETE and TRUNCATE
 * with SQLSTATE 25006 (read_only_sql_transaction):
 *
 *   ERROR:  table public.orders is fenced: its writes go to database
 *           "order_service_db"
 *   HINT:   cleave fenced it for a cut-over ...
 *
 * Reads are never refused. The fence is one statement-level BEFORE
 * trigger `cleave_fence` per table (INSERT OR UPDATE OR DELETE OR
 * TRUNCATE) calling cleave.fence() with the owner's database name as its
 * argument. Ordinary triggers do not fire in a session with
 * session_replication_role = replica, which is how cleave's own apply
 * runs: cleave writes through its fence, applications do not.
 *
 * A partitioned table is fenced at its root and at every partition below
 * it (pg_partition_tree), since a write straight into a partition fires
 * only the partition's triggers. A partition attached later is not fenced
 * until pgfence_set runs again.
 *
 * Every call takes an open connection (blocking, not in pipeline mode)
 * to the database holding the tables, the tables as configured (names
 * quoted by libpq, so any name works), and on failure leaves the reason
 * in err. None of them opens, commits or
 * rolls back a transaction: each runs inside the caller's transaction if
 * one is open (a failure then aborts it, and the caller rolls back), or
 * in a transaction of its own otherwise. n == 0 does nothing.
 */
#ifndef CLEAVE_SINKS_PGFENCE_H
#define CLEAVE_SINKS_PGFENCE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "config/config.h"

/* The trigger on every fenced table, and the function it calls. */
#define PGFENCE_TRIGGER "cleave_fence"
#define PGFENCE_FUNCTION "cleave.fence()"

/*
 * Fences the tables for writes that go to database `owner`: creates
 * schema cleave if missing, (re)creates cleave.fence(), and creates or
 * replaces the trigger on each table and partition, so a second call
 * changes the owner named. One round trip. A missing table is an error.
 * CREATE TRIGGER takes SHARE ROW EXCLUSIVE on each table: inside the
 * cut-over's transaction, which already holds it, it never waits.
 */
bool pgfence_set(PGconn *c, const cfg_table *t, size_t n, const char *owner,
                 char *err, size_t errlen);

/*
 * Disables the triggers of the tables and their partitions (a table or a
 * trigger that is not there, or disabled already, is skipped); set
 * enables them again. One round trip. DISABLE TRIGGER takes SHARE ROW
 * EXCLUSIVE on each table: it waits for writers in progress (cleave's
 * own apply, on a fenced side), never for readers or foreign-key checks,
 * and blocks neither; a caller that must not wait long sets lock_timeout
 * first.
 */
bool pgfence_clear(PGconn *c, const cfg_table *t, size_t n, char *err,
                   size_t errlen);

enum {
    PGFENCE_NONE = 0,  /* no table fenced */
    PGFENCE_ALL,       /* every table fenced, root and partitions */
    PGFENCE_SOME,      /* anything in between */
};

/*
 * How fenced the tables are: PGFENCE_NONE, PGFENCE_ALL or PGFENCE_SOME,
 * or -1 on error. A table counts as fenced when it and every partition
 * below it carry an enabled cleave_fence trigger calling cleave.fence().
 * A missing table counts as not fenced (nothing would stop writes to it
 * once created), so a list holding one is never PGFENCE_ALL.
 */
int pgfence_state(PGconn *c, const cfg_table *t, size_t n, char *err,
                  size_t errlen);

/*
 * Locks the tables (and, as LOCK TABLE does, their partitions) IN SHARE
 * ROW EXCLUSIVE MODE inside the caller's open transaction (refused
 * outside one, where the lock would end with the statement). That mode
 * stops writes to them but not reads, nor ROW SHARE, which is what the
 * foreign key checks of inserts into other tables take on these: other
 * services' writes that point here go on.
 *
 * Waits at most timeout_ms (> 0) in all: lock_timeout bounds each table's
 * wait on the server, and the statement is cancelled when the total runs
 * out. lock_timeout = timeout_ms stays set for the rest of the caller's
 * transaction, so its later statements do not wait longer on a lock
 * either. False with err starting "lock not obtained" when the time ran
 * out (SQLSTATE 55P03, or the cancel): the transaction is then aborted and
 * the caller rolls back, and pgfence_lock_holders says who was in the way.
 */
bool pgfence_lock(PGconn *c, const cfg_table *t, size_t n, int timeout_ms,
                  char *err, size_t errlen);

/*
 * After pgfence_lock failed (on a new transaction or none, since the
 * failed one is aborted): the sessions holding locks on the tables or
 * their partitions that conflict with SHARE ROW EXCLUSIVE, this session
 * excepted, one per line joined by "; ":
 *
 *   pid=123 state=idle in transaction xact_start=2026-12-06 05:13:31+00
 *   query="UPDATE orders SET ..."
 *
 * (on one line), the query's white space squeezed and cut to 120
 * characters. A prepared transaction shows as pid=- state=prepared. True
 * with out empty when nobody holds one any more; false with the reason in
 * out when the query failed. out is cut to fit outlen.
 */
bool pgfence_lock_holders(PGconn *c, const cfg_table *t, size_t n, char *out,
                          size_t outlen);

#endif
