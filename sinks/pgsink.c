/*
 * pgsink: the PostgreSQL target of one service; see pgsink.h for what it
 * promises. This file holds the transaction logic: when a target
 * transaction opens, what is checked before it commits, how the origin
 * records the position, what a failure leaves behind, and how a new
 * relation version is fitted to the target table (layouts). Statements
 * come from pgstmt, the pipeline traffic goes through pgpipe.
 *
 * Nothing is committed before every result of the batch has been read and
 * found good: a refused change or a missing row rolls the whole target
 * transaction back, so the target never holds part of a source
 * transaction, and its origin never claims a position it does not hold.
 *
 * Changes of one table, one operation and one shape go to the server as
 * one multi-row statement (a run, see pgrun.h), which spares the target a
 * Bind/Execute and an executor start per row. Each table keeps its run
 * open while changes of other tables pass it, so a service whose
 * transactions go from table to table still gets long runs. That order
 * across tables cannot show once the target transaction commits: the
 * session runs with session_replication_role = replica, so foreign keys
 * do not check each statement (without it one run is open at a time),
 * and unique, check and not-null constraints are each table's own.
 * Within a table found by a key, runs of INSERTs, UPDATEs and DELETEs
 * stay open side by side while their keys differ: changes of different
 * rows commute; a change meeting a row another run holds sends that run
 * first, but for an UPDATE keeping its key, which the row's INSERT
 * waiting in a run takes in (see merge_update). A table whose triggers
 * or rules fire on apply could look at another table, or tell an UPDATE
 * from an INSERT: it is a barrier, every run goes before its change and
 * its change is not held (read with the table's columns, once per
 * relation version and connection). Anything that needs the order across tables (the
 * COMMIT, a TRUNCATE, a relation version met, the journal trimmed) sends
 * every run first.
 *
 * The changes of the open target transaction are kept in stream order
 * (the journal, bounded): when a multi-row statement fails, or any
 * statement after changes went out of stream order, the transaction is
 * rolled back and done again one change per statement in that order, so
 * the failure is the one the order gives and names its row exactly as
 * before. Past the journal's bound a failed run cannot be redone in
 * place: the sink fails, and the replay that follows goes one row at a
 * time up to where it failed.
 */
#include "sinks/pgsink.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/dbconn.h"
#include "common/log.h"
#include "sinks/pgcoldef.h"
#include "sinks/pgpart.h"
#include "sinks/pgpipe.h"
#include "sinks/pgrun.h"
#include "sinks/pgstmt.h"

enum {
    BATCH_ROWS = 5000,       /* a target transaction holds about this many */
    BATCH_MS = 100,          /* ... or this much time: pgsink_set_batch_ms */
    /*
     * Read durable at most this often (durable_due). The cut-over refuses
     * a stream whose durable position lags by over 1 MB: at 500 ms a
     * paced writer's stream came back refused 3 times in 10.
     */
    PROGRESS_MS = 100,
    SERVICE_EVERY = 256,     /* changes between looks at the socket */
    QUEUE_HIGH = 8192,       /* unanswered requests before we wait ... */
    QUEUE_LOW = 4096,        /* ... until this few are left */
    CLOSE_WAIT_MS = 2000,
    RUN_ROWS = PGRUN_ROWS,   /* changes of one shape in one statement */
    RUN_PARAMS = 65535,      /* the protocol's limit per statement */
    JOURNAL_BYTES = 4 << 20, /* changes kept to redo a target transaction */
    ORIGIN_BUSY_MS = 5000,   /* our previous session may still be exiting */
};

static const char WHAT_COMMIT[] = "COMMIT";
static const char WHAT_COLUMNS[] = "reading the target table's columns";
static const char WHAT_TYPES[] = "naming the source's types on the target";

typedef struct pgsink {
    sink base;
    PGconn *conn;
    pgpipe pipe;
    pgstmt_cache stmts;
    pgstmt_plan plan;
    char *origin;
    bool broken;             /* the connection is unusable until reopened */
    bool failed;             /* this call failed; base.error says why */
    bool discarding;         /* draining after a failure: results mean nothing */
    bool txn_open;           /* a target transaction is open */
    bool in_source;          /* between a source BEGIN and its COMMIT */
    bool skipping;           /* that source transaction is already applied */
    bool force_progress;     /* read durable at the next chance */
    /*
     * The batch's results are read before its COMMIT is sent: an UPDATE or
     * DELETE whose missing row fails, or a multi-row statement, which is
     * done again a row at a time when it fails.
     */
    bool batch_veto;
    bool role_warned;
    /*
     * Runs held open at once: PGRUN_OPEN under session_replication_role
     * = replica; one without it, as foreign keys then check each
     * statement against the other tables.
     */
    int runs_max;
    uint32_t source_rows;    /* changes of the source transaction in flight */
    uint32_t batch_rows;     /* changes sent in the open target transaction */
    uint32_t batch_txns;
    uint64_t batch_applied;
    uint64_t batch_conflicts;
    unsigned since_service;
    lsn_t last_end;          /* end LSN of the last complete source txn */
    int64_t last_time;
    lsn_t recorded;          /* the last end LSN committed with the origin */
    lsn_t durable;           /* what the origin says the target flushed */
    int64_t batch_start_ms;
    int batch_ms;            /* BATCH_MS but where a test pins it */
    int64_t progress_ms;
    struct layout_ent *layouts; /* each relation's columns: see layouts */
    size_t nlayouts, layouts_cap;
    bool layouts_in_batch;   /* some were checked in the open transaction */
    PGresult *cat_cols;      /* catalog answers, during a check */
    PGresult *cat_types;
    char alter_what[300];    /* names the ALTER TABLE in flight */
    /* A table a row found no partition of: made from the source at open. */
    char *part_schema, *part_table;
    /* The journal: copies of the open target transaction's changes. */
    sink_event **jrows;
    size_t jn, jcap, jbytes;
    bool jcomplete;          /* it holds every change since the BEGIN */
    pgrun_set runs;          /* changes held for multi-row statements */
    pgstmt_plan run_plan;    /* scratch for their rows, apart from plan */
    /* A change went out of stream order: any failure is redone in order. */
    bool reordered;
    pgstmt_plan chunk;       /* a multi-row statement's parameters */
    bool batch_failed;       /* the call's first failure was a run's */
    bool redoing;            /* sending the journal again, a row at a time */
    lsn_t last_row_lsn;      /* commit LSN of the last change sent */
    lsn_t rowwise_until;     /* replayed changes up to here: one at a time */
} pgsink;

static void forget_batch(pgsink *ps);
static bool fail_batch(pgsink *ps);
static bool recover(pgsink *ps);

static const char *svc_name(const pgsink *ps)
{
    return ps->base.service->name;
}

/* ------------------------------------------------------------ failures */

/* Records the first failure of a call; later ones only follow from it. */
__attribute__((format(printf, 3, 4)))
static bool fail_once(pgsink *ps, lsn_t lsn, const char *fmt, ...)
{
    if (ps->failed)
        return false;
    char msg[sizeof ps->base.error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ps->failed = true;
    return sink_fail(&ps->base, lsn, "%s", msg);
}

/* The connection itself failed (pgpipe says how): nothing more to do on it. */
static bool lost(pgsink *ps)
{
    ps->broken = true;
    return fail_once(ps, 0, "service=%s target: %s", svc_name(ps),
                     ps->pipe.error[0] ? ps->pipe.error : "connection failed");
}

static bool out_of_memory(pgsink *ps)
{
    ps->broken = true;
    return fail_once(ps, 0, "service=%s: out of memory", svc_name(ps));
}

/* The server's message without its trailing newline. */
static const char *result_message(const PGresult *res, char *buf, size_t len)
{
    if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
        return "not run: an earlier statement failed";
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!msg)
        msg = PQresultErrorMessage(res);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        n--;
    if (code)
        snprintf(buf, len, "%.*s (SQLSTATE %s)", (int)n, msg, code);
    else
        snprintf(buf, len, "%.*s", (int)n, msg);
    return buf;
}

static const char *op_name(char op)
{
    switch (op) {
    case 'I': return "INSERT";
    case 'U': return "UPDATE";
    case 'D': return "DELETE";
    default: return "TRUNCATE";
    }
}

/* "service=.. table=.. op=.. key=(..) lsn=..", the context of a change. */
static void row_context(const pgsink *ps, char op, const sink_rel *rel,
                        const char *key, lsn_t lsn, char *buf, size_t len)
{
    char at[LSN_STRLEN];
    lsn_format(lsn, at);
    if (op == 'T')
        snprintf(buf, len, "service=%s op=TRUNCATE tables=(%s) lsn=%s",
                 svc_name(ps), key, at);
    else
        snprintf(buf, len, "service=%s table=%s.%s op=%s key=(%s) lsn=%s",
                 svc_name(ps), rel->schema, rel->name, op_name(op), key, at);
}

static void entry_context(const pgsink *ps, const pgpipe_entry *e,
                          char *buf, size_t len)
{
    row_context(ps, e->op, e->stmt ? e->stmt->rel : NULL, e->key, e->lsn,
                buf, len);
}

static char event_op(const sink_event *ev)
{
    switch (ev->op) {
    case SINK_INSERT: return 'I';
    case SINK_UPDATE: return 'U';
    case SINK_DELETE: return 'D';
    default: return 'T';
    }
}

/* A change this sink cannot apply at all. */
static bool refuse(pgsink *ps, const sink_event *ev, const char *why)
{
    char key[PGPIPE_KEYLEN], ctx[400];
    pgstmt_describe(ev, key, sizeof key);
    row_context(ps, event_op(ev), ev->rel, key, ev->commit_lsn, ctx,
                sizeof ctx);
    return fail_once(ps, ev->commit_lsn, "%s: %s", ctx, why);
}

/* ------------------------------------------------------------ results */

/*
 * A change's failure after others went out of stream order may be the
 * order's doing: the target transaction is done again in the journal's
 * order (recover), where a failure is the change's own.
 */
__attribute__((format(printf, 3, 4)))
static void fail_reordered(pgsink *ps, lsn_t lsn, const char *fmt, ...)
{
    if (ps->failed)
        return;
    char msg[sizeof ps->base.error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ps->batch_failed = ps->reordered;
    fail_once(ps, lsn, "%s", msg);
}

static void conflict(pgsink *ps, const pgpipe_entry *e, const char *what)
{
    char ctx[400];
    entry_context(ps, e, ctx, sizeof ctx);
    ps->batch_conflicts++;
    log_warning("event=conflict %s reason=\"%s\"", ctx, what);
}

/*
 * A multi-row UPDATE or DELETE that matched another number of rows: one
 * is missing (or a key is not unique on the target); done again a row at
 * a time, each tells.
 */
static void run_short(pgsink *ps, const pgpipe_entry *e, PGresult *res)
{
    char ctx[400];
    entry_context(ps, e, ctx, sizeof ctx);
    if (!ps->failed)
        ps->batch_failed = true;
    fail_once(ps, e->lsn, "%s and %u more rows in one %s: %s rows matched",
              ctx, e->rows - 1u, op_name(e->op), PQcmdTuples(res));
}

static void row_ok(pgsink *ps, const pgpipe_entry *e, PGresult *res)
{
    if (e->op == 'I' && e->stmt->returning) {
        /* No row back: DO NOTHING kept the existing one; 't': updated it. */
        if (PQntuples(res) == 0)
            conflict(ps, e, "the row exists; kept the target's");
        else if (PQgetvalue(res, 0, 0)[0] == 't')
            conflict(ps, e, "the row exists; updated it");
        ps->batch_applied++;
        return;
    }
    if (e->rows > 1) {
        if (e->op != 'I' && strtoul(PQcmdTuples(res), NULL, 10) != e->rows)
            run_short(ps, e, res);
        else
            ps->batch_applied += e->rows;
        return;
    }
    if ((e->op == 'U' || e->op == 'D') && strcmp(PQcmdTuples(res), "0") == 0) {
        char ctx[400];
        entry_context(ps, e, ctx, sizeof ctx);
        if (ps->base.service->on_conflict == CFG_CONFLICT_ERROR)
            fail_reordered(ps, e->lsn, "%s: no such row on the target", ctx);
        else
            conflict(ps, e, "no such row on the target; ignored");
        return;
    }
    ps->batch_applied++;
}

/* Remembers the first table whose row had no partition: see pgpart.h. */
static void note_missing_partition(pgsink *ps, const pgpipe_entry *e,
                                   const PGresult *res)
{
    const sink_rel *rel = e->stmt ? e->stmt->rel : NULL;
    if (!rel || ps->part_table || !pgpart_missing(res))
        return;
    ps->part_schema = strdup(rel->schema);
    ps->part_table = strdup(rel->name);
}

static void row_failed(pgsink *ps, const pgpipe_entry *e, const PGresult *res)
{
    char ctx[400], msg[300];
    note_missing_partition(ps, e, res);
    entry_context(ps, e, ctx, sizeof ctx);
    if (e->rows > 1 && !ps->failed) {
        ps->batch_failed = true;
        fail_once(ps, e->lsn, "%s and %u more rows in one %s: %s", ctx,
                  e->rows - 1u, op_name(e->op),
                  result_message(res, msg, sizeof msg));
        return;
    }
    fail_reordered(ps, e->lsn, "%s: %s", ctx,
                   result_message(res, msg, sizeof msg));
}

static void progress_read(pgsink *ps, const PGresult *res)
{
    lsn_t lsn = 0;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
        !lsn_parse(PQgetvalue(res, 0, 0), &lsn)) {
        fail_once(ps, 0, "service=%s target: unreadable origin progress '%s'",
                  svc_name(ps), PQgetvalue(res, 0, 0));
        return;
    }
    ps->durable = lsn;
}

static void catalog_clear(pgsink *ps)
{
    PQclear(ps->cat_cols);
    PQclear(ps->cat_types);
    ps->cat_cols = ps->cat_types = NULL;
}

/* The answer outlives the callback: pgpipe clears its own. */
static void catalog_read(pgsink *ps, const pgpipe_entry *e,
                         const PGresult *res)
{
    PGresult **slot = e->what == WHAT_COLUMNS ? &ps->cat_cols
                                              : &ps->cat_types;
    PQclear(*slot);
    *slot = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
    if (!*slot)
        out_of_memory(ps);
}

static void command_done(pgsink *ps, const pgpipe_entry *e, PGresult *res,
                         bool ok)
{
    char msg[300];
    if (!ok) {
        fail_once(ps, 0, "service=%s target: %s failed: %s", svc_name(ps),
                  e->what, result_message(res, msg, sizeof msg));
        return;
    }
    /* COMMIT of a transaction that had failed answers ROLLBACK. */
    if (e->what == WHAT_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") != 0)
        fail_once(ps, 0, "service=%s target: COMMIT rolled back",
                  svc_name(ps));
}

static void prepare_done(pgsink *ps, pgpipe_entry *e, const PGresult *res)
{
    char ctx[400], msg[300];
    entry_context(ps, e, ctx, sizeof ctx);
    if (e->stmt->rows > 1 && !ps->failed)
        ps->batch_failed = true;   /* the rows can still go one by one */
    fail_once(ps, e->lsn, "%s: cannot prepare the statement: %s", ctx,
              result_message(res, msg, sizeof msg));
}

static void on_result(void *arg, pgpipe_entry *e, PGresult *res)
{
    pgsink *ps = arg;
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    /* Even while discarding: the cache must know what the server holds. */
    if (e->kind == PGPIPE_PREPARE && !ok)
        e->stmt->prepared = false;
    if (ps->discarding)
        return;
    switch (e->kind) {
    case PGPIPE_ROW:
        if (ok)
            row_ok(ps, e, res);
        else
            row_failed(ps, e, res);
        break;
    case PGPIPE_PREPARE:
        if (!ok)
            prepare_done(ps, e, res);
        break;
    case PGPIPE_PROGRESS:
        if (ok)
            progress_read(ps, res);
        else
            command_done(ps, e, res, false);
        break;
    case PGPIPE_CATALOG:
        if (ok)
            catalog_read(ps, e, res);
        else
            command_done(ps, e, res, false);
        break;
    default:
        command_done(ps, e, res, ok);
        break;
    }
}

/* Routine chatter (NOTICE) is dropped; warnings get one line each. */
static void on_notice(void *arg, const PGresult *res)
{
    const pgsink *ps = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!sev || strcmp(sev, "WARNING") != 0 || !msg)
        return;
    /* Our own ROLLBACK after a transaction that had already ended. */
    if (code && strcmp(code, "25P01") == 0)
        return;
    log_warning("event=target_notice service=%s message=\"%s\"", svc_name(ps), msg);
}

/* ------------------------------------------------------------ sending */

/*
 * The origin's advance (every target transaction) and progress (when
 * durable_due), prepared once per session (prepare_fixed): parsed,
 * analysed and planned anew each time, they cost the target backend
 * about 35 us each (pgbench, extended against prepared).
 */
#define ADVANCE_STMT "cleave_advance"
#define PROGRESS_STMT "cleave_progress"
static const char advance_sql[] =
    "SELECT pg_replication_origin_xact_setup($1::pg_lsn, "
    "'epoch'::timestamptz + $2::bigint * interval '1 us'), txid_current()";
static const char progress_sql[] =
    "SELECT pg_replication_origin_progress($1, true)";

/* `stmt`: a statement prepared under that name, else `sql` is parsed. */
static bool send_stmt(pgsink *ps, pgpipe_kind kind, const char *what,
                      const char *stmt, const char *sql, int nparams,
                      const char *const *params)
{
    pgpipe_entry *e = pgpipe_add(&ps->pipe);
    if (!e)
        return out_of_memory(ps);
    e->kind = kind;
    e->what = what;
    int sent = stmt ? PQsendQueryPrepared(ps->conn, stmt, nparams, params,
                                          NULL, NULL, 0)
                    : PQsendQueryParams(ps->conn, sql, nparams, NULL, params,
                                        NULL, NULL, 0);
    if (!sent) {
        pgpipe_fail(&ps->pipe, what);
        return lost(ps);
    }
    return true;
}

static bool send_query(pgsink *ps, pgpipe_kind kind, const char *what,
                       const char *sql, int nparams,
                       const char *const *params)
{
    return send_stmt(ps, kind, what, NULL, sql, nparams, params);
}

static bool send_command(pgsink *ps, const char *what)
{
    return send_query(ps, PGPIPE_COMMAND, what, what, 0, NULL);
}

static bool send_sync(pgsink *ps)
{
    return pgpipe_sync(&ps->pipe) || lost(ps);
}

static bool wait_all(pgsink *ps, int timeout_ms)
{
    return pgpipe_wait(&ps->pipe, 0, timeout_ms) || lost(ps);
}

static bool send_progress(pgsink *ps)
{
    const char *params[] = {ps->origin};
    return send_stmt(ps, PGPIPE_PROGRESS, "reading the origin's progress",
                     PROGRESS_STMT, NULL, 1, params);
}

/*
 * The position goes into the same transaction as the changes, so the
 * target can never hold one without the other. A transaction that wrote
 * nothing (empty source transactions, ignored rows) has no xid and its
 * commit records no origin: txid_current() gives it one.
 */
static bool send_origin_advance(pgsink *ps)
{
    char lsn[LSN_STRLEN], time[24];
    lsn_format(ps->last_end, lsn);
    snprintf(time, sizeof time, "%" PRId64, ps->last_time);
    const char *params[] = {lsn, time};
    return send_stmt(ps, PGPIPE_COMMAND, "recording the origin position",
                     ADVANCE_STMT, NULL, 2, params);
}

/* ------------------------------------------------------------ layouts */

/*
 * A relation version meets the target table before its first statement
 * is prepared on a connection: one round trip reads the table's columns
 * and names the version's types the target's way. Columns the target
 * lacks are added, defined as the source's catalog has them (pgcoldef),
 * inside the open target transaction, ahead of the change that needs
 * them, so the ALTER commits or rolls back with the batch; a
 * different type, or a column the source dropped that the target still
 * insists on, stops the service with the reason until the target is
 * changed to match. What each relation looked like survives reconnects
 * (it tells a column the source added from one the target lost, and
 * shows which the source dropped); the target's catalog is read again on
 * every connection.
 */
typedef struct layout_ent {
    uint32_t oid;
    bool checked;            /* `known` was checked on this connection */
    bool in_batch;           /* ... in the open target transaction */
    sink_rel *known;         /* the last version found to fit the target */
    sink_rel *committed;     /* ... as of the last target commit */
    uint32_t *types;         /* known's column types, the target's OIDs */
    bool barrier;            /* the target table has triggers or rules */
} layout_ent;

static layout_ent *layout_find(const pgsink *ps, uint32_t oid)
{
    for (size_t i = 0; i < ps->nlayouts; i++)
        if (ps->layouts[i].oid == oid)
            return &ps->layouts[i];
    return NULL;
}

static layout_ent *layout_get(pgsink *ps, uint32_t oid)
{
    layout_ent *found = layout_find(ps, oid);
    if (found)
        return found;
    if (ps->nlayouts == ps->layouts_cap) {
        size_t cap = ps->layouts_cap ? 2 * ps->layouts_cap : 16;
        layout_ent *grown = realloc(ps->layouts, cap * sizeof *grown);
        if (!grown)
            return NULL;
        ps->layouts = grown;
        ps->layouts_cap = cap;
    }
    layout_ent *se = &ps->layouts[ps->nlayouts++];
    *se = (layout_ent){.oid = oid};
    return se;
}

static void layout_set(sink_rel **slot, sink_rel *rel)
{
    sink_rel_ref(rel);
    sink_rel_unref(*slot);
    *slot = rel;
}

static void layouts_commit(pgsink *ps)
{
    for (size_t i = 0; ps->layouts_in_batch && i < ps->nlayouts; i++) {
        layout_ent *se = &ps->layouts[i];
        if (se->in_batch)
            layout_set(&se->committed, se->known);
        se->in_batch = false;
    }
    ps->layouts_in_batch = false;
}

/*
 * The batch is gone, and with it any column it added: those relations are
 * checked again, and their statements prepared again after that.
 */
static void layouts_revert(pgsink *ps)
{
    for (size_t i = 0; ps->layouts_in_batch && i < ps->nlayouts; i++) {
        layout_ent *se = &ps->layouts[i];
        if (!se->in_batch)
            continue;
        layout_set(&se->known, se->committed);
        se->checked = false;
        se->in_batch = false;
        pgstmt_retire_rel(&ps->stmts, se->oid);
    }
    ps->layouts_in_batch = false;
}

/* A new connection reads the target's catalog afresh. */
static void layouts_unchecked(pgsink *ps)
{
    for (size_t i = 0; i < ps->nlayouts; i++)
        ps->layouts[i].checked = false;
}

static void layouts_free(pgsink *ps)
{
    for (size_t i = 0; i < ps->nlayouts; i++) {
        sink_rel_unref(ps->layouts[i].known);
        sink_rel_unref(ps->layouts[i].committed);
        free(ps->layouts[i].types);
    }
    free(ps->layouts);
    ps->layouts = NULL;
    ps->nlayouts = ps->layouts_cap = 0;
}

/*
 * Both queries go behind whatever the batch has in flight, and the wait
 * takes every answer up to theirs: the catalog as this transaction sees
 * it, columns added earlier in the batch included.
 */
static bool layout_fetch(pgsink *ps, const sink_rel *rel)
{
    const char *names[] = {rel->schema, rel->name};
    const char **params = malloc((2 + 2 * (size_t)rel->ncols) *
                                 sizeof *params);
    int nparams = 0;
    char *sql = params ? pgstmt_types_sql(rel, params, &nparams) : NULL;
    if (!params || (!sql && rel->ncols > 0)) {
        free(params);
        return out_of_memory(ps);
    }
    bool ok = send_query(ps, PGPIPE_CATALOG, WHAT_COLUMNS, pgstmt_columns_sql,
                         2, names) &&
              (!sql || send_query(ps, PGPIPE_CATALOG, WHAT_TYPES, sql,
                                  nparams, params)) &&
              wait_all(ps, -1);
    free(sql);
    free(params);
    if (!ok || ps->failed)
        return false;
    if (!ps->cat_cols || (rel->ncols > 0 && (!ps->cat_types ||
                          PQntuples(ps->cat_types) != rel->ncols)))
        return fail_once(ps, 0, "service=%s target: a catalog query gave "
                         "no usable answer", svc_name(ps));
    return true;
}

/* The target's row for a column, or -1. */
static int target_col(const PGresult *cols, const char *name)
{
    for (int r = 0; r < PQntuples(cols); r++)
        if (!PQgetisnull(cols, r, PGSTMT_COL_NAME) &&
            strcmp(PQgetvalue(cols, r, PGSTMT_COL_NAME), name) == 0)
            return r;
    return -1;
}

static bool col_flag(const PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col)[0] == 't';
}

static const struct sink_col *rel_col(const sink_rel *rel, const char *name)
{
    for (uint16_t i = 0; rel && i < rel->ncols; i++)
        if (strcmp(rel->cols[i].name, name) == 0)
            return &rel->cols[i];
    return NULL;
}

static bool same_source_type(const struct sink_col *a,
                             const struct sink_col *b)
{
    if (a->type_name || b->type_name)
        return a->type_name && b->type_name &&
               strcmp(a->type_name, b->type_name) == 0 &&
               a->typmod == b->typmod;
    return a->type_oid == b->type_oid && a->typmod == b->typmod;
}

/*
 * Whether the target's column takes the source's values (the query says,
 * see pgstmt_types_sql); a typmod the source changed must be followed,
 * unless the target's has none. Lenient on purpose: a replay brings rows
 * of the version before a type change after the target was changed to
 * match the one after it, and those must go in too.
 */
static bool type_fits(const pgsink *ps, const struct sink_col *col,
                      const struct sink_col *prev, uint16_t i, int row)
{
    const PGresult *t = ps->cat_types, *c = ps->cat_cols;
    if (!col_flag(t, i, PGSTMT_TYPE_TAKES))
        return false;
    if (!prev || strcmp(PQgetvalue(t, i, PGSTMT_TYPE_OID),
                        PQgetvalue(c, row, PGSTMT_COL_TYPID)) != 0)
        return true;
    long typmod = strtol(PQgetvalue(c, row, PGSTMT_COL_TYPMOD), NULL, 10);
    return typmod == -1 || typmod == col->typmod || typmod != prev->typmod;
}

/* The source's type as the target prints it, else as the stream named it. */
static const char *source_type(const pgsink *ps, const struct sink_col *col,
                               uint16_t i, char *buf, size_t len)
{
    if (!PQgetisnull(ps->cat_types, i, PGSTMT_TYPE_OID))
        return PQgetvalue(ps->cat_types, i, PGSTMT_TYPE_TEXT);
    if (col->type_name)
        return col->type_name;
    snprintf(buf, len, "type OID %" PRIu32, col->type_oid);
    return buf;
}

/*
 * Each column of the version against the target's. One the target lacks
 * is to be added (add[] and its type text from the target in types[]),
 * unless cleave had it there before: then the target lost it. One the
 * target has must be writable, and take the source's type unless that
 * passed before unchanged (what the operator did to it since, the rows
 * will tell).
 */
static bool layout_columns(pgsink *ps, const sink_event *ev,
                          const sink_rel *known, uint16_t *add,
                          const char **types, int *nadd)
{
    const sink_rel *rel = ev->rel;
    const PGresult *cols = ps->cat_cols;
    char why[400], tbuf[40];
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const struct sink_col *col = &rel->cols[i];
        const struct sink_col *prev = rel_col(known, col->name);
        int row = target_col(cols, col->name);
        const char *src = source_type(ps, col, i, tbuf, sizeof tbuf);
        if (row >= 0 && col_flag(cols, row, PGSTMT_COL_GENERATED))
            snprintf(why, sizeof why, "column \"%s\" is generated in the "
                     "target, cleave cannot write it: make it a plain "
                     "column, cleave retries", col->name);
        else if (row >= 0 && prev && same_source_type(prev, col))
            continue;
        else if (row >= 0 && !type_fits(ps, col, prev, i, row))
            snprintf(why, sizeof why, "column \"%s\" is %s in the source "
                     "and %s in the target: change the target to match, "
                     "cleave retries", col->name, src,
                     PQgetvalue(cols, row, PGSTMT_COL_TYPE));
        else if (row >= 0)
            continue;
        else if (prev)
            snprintf(why, sizeof why, "column \"%s\" is missing in the "
                     "target, where cleave has written it before: add it "
                     "back, cleave retries", col->name);
        else if (PQgetisnull(ps->cat_types, i, PGSTMT_TYPE_OID))
            snprintf(why, sizeof why, "column \"%s\" is missing in the "
                     "target and its type %s is too: create the type there, "
                     "cleave retries", col->name, src);
        else {
            add[*nadd] = i;
            types[(*nadd)++] = src;
            continue;
        }
        return refuse(ps, ev, why);
    }
    return true;
}

/*
 * Columns the previous version had and this one lacks are gone from the
 * source (dropped or renamed). New rows leave the target's column NULL
 * or default, which NOT NULL without a default refuses. First called to
 * refuse, then (everything else being fine) to warn.
 */
static bool layout_drops(pgsink *ps, const sink_event *ev,
                        const sink_rel *known, bool warn)
{
    const sink_rel *rel = ev->rel;
    const PGresult *cols = ps->cat_cols;
    for (uint16_t i = 0; known && i < known->ncols; i++) {
        const char *name = known->cols[i].name;
        int row = rel_col(rel, name) ? -1 : target_col(cols, name);
        if (row < 0)
            continue;
        bool refuses = col_flag(cols, row, PGSTMT_COL_NOTNULL) &&
                       !col_flag(cols, row, PGSTMT_COL_DEFAULT);
        if (refuses && !warn) {
            char why[400];
            snprintf(why, sizeof why, "column \"%s\" was dropped or renamed "
                     "on the source; apply the same change to the target "
                     "(it is NOT NULL there, without a default), cleave "
                     "retries", name);
            return refuse(ps, ev, why);
        }
        if (!refuses && warn)
            log_warning("event=column_left service=%s table=%s.%s column=%s "
                        "note=\"dropped or renamed on the source; the "
                        "target keeps it, new rows leave it NULL or "
                        "default\"", svc_name(ps), rel->schema, rel->name,
                        name);
    }
    return true;
}

/* A log field's value in quotes, cut to fit. */
static const char *log_quoted(const char *v, char *buf, size_t len)
{
    size_t o = 0;
    buf[o++] = '"';
    for (; *v && o + 4 < len; v++) {
        if (*v == '"' || *v == '\\')
            buf[o++] = '\\';
        buf[o++] = *v == '\n' ? ' ' : *v;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* What was added, and where the rows already there deserve a look. */
static void log_added(const pgsink *ps, const sink_rel *rel,
                      const pgcoldef_set *set)
{
    static const char *const notes[] = {
        [PGCOLDEF_GONE] = "event=column_definition_gone",
        [PGCOLDEF_COMPUTED] = "event=column_values_unknown",
    };
    static const char *const why[] = {
        [PGCOLDEF_GONE] = "the source no longer has the column the stream "
            "describes (dropped, or made again with another type): added "
            "nullable without a default; the rows already there read NULL",
        [PGCOLDEF_COMPUTED] = "the source keeps no value for the rows "
            "already there (a volatile default or an identity made it "
            "compute each row, or the table was rewritten since) and the "
            "stream carries none: the target computed its own, which may "
            "differ; compare with cleave verify",
    };
    for (int i = 0; i < set->n; i++) {
        const pgstmt_coldef *d = &set->defs[i];
        char type[200], dflt[300];
        log_info("event=column_added service=%s table=%s.%s column=%s "
                 "type=%s not_null=%s default=%s", svc_name(ps), rel->schema,
                 rel->name, rel->cols[d->col].name,
                 log_quoted(d->type, type, sizeof type),
                 d->notnull ? "true" : "false",
                 log_quoted(d->identity ? "identity" : d->dflt ? d->dflt : "",
                            dflt, sizeof dflt));
        if (set->notes[i] != PGCOLDEF_EXACT)
            log_warning("%s service=%s table=%s.%s column=%s note=\"%s\"",
                        notes[set->notes[i]], svc_name(ps), rel->schema,
                        rel->name, rel->cols[d->col].name,
                        why[set->notes[i]]);
    }
}

/*
 * One ALTER TABLE for all the columns (and one more for the defaults of
 * those added with their rows' value), in the pipeline ahead of the
 * statement that needs them. Their description must live until their
 * results are read: the next one is written only after a catalog wait,
 * which reads every result before it.
 */
static bool alter_send(pgsink *ps, const sink_event *ev,
                       const pgcoldef_set *set)
{
    const sink_rel *rel = ev->rel;
    char *fill = NULL;
    char *sql = pgstmt_add_columns_sql(ps->conn, rel, set->defs, set->n);
    if (!sql || !pgstmt_fill_defaults_sql(ps->conn, rel, set->defs, set->n,
                                          &fill)) {
        free(sql);
        return refuse(ps, ev, "cannot build the ALTER TABLE (out of memory, "
                              "or a name libpq cannot quote)");
    }
    snprintf(ps->alter_what, sizeof ps->alter_what,
             "adding column \"%s\"%s to table %s.%s",
             rel->cols[set->defs[0].col].name, set->n > 1 ? " and others" : "",
             rel->schema, rel->name);
    bool sent = send_query(ps, PGPIPE_COMMAND, ps->alter_what, sql, 0, NULL) &&
                (!fill || send_query(ps, PGPIPE_COMMAND, ps->alter_what, fill,
                                     0, NULL));
    free(sql);
    free(fill);
    return sent;
}

/*
 * The columns as the source defines them, or nothing at all: a column
 * added without its default would leave the rows already there NULL
 * where the source's read the default.
 */
static bool layout_alter(pgsink *ps, const sink_event *ev,
                         const uint16_t *add, const char *const *types, int n)
{
    if (n == 0)
        return true;
    const sink_rel *rel = ev->rel;
    pgcoldef_set set;
    char err[300], why[400];
    if (!pgcoldef_read(&set, ps->base.config->source.dsn, rel, add, types, n,
                       err, sizeof err)) {
        pgcoldef_clear(&set);
        snprintf(why, sizeof why, "column \"%s\"%s is new: cannot define "
                 "it as the source does: %s", rel->cols[add[0]].name,
                 n > 1 ? " and others" : "", err);
        return refuse(ps, ev, why);
    }
    bool ok = alter_send(ps, ev, &set);
    if (ok)
        log_added(ps, rel, &set);
    pgcoldef_clear(&set);
    return ok;
}

/*
 * For multi-row statements' parameters; none when out of memory. The
 * target column's own type, as a one-row statement's untyped parameter
 * takes: typed as the source's, a value would go through an assignment
 * cast where the target's type differs (a real's '0.3' into a double
 * became 0.300000011920929, a char(5)'s trailing blanks were cut into a
 * text) and a batch would store other values than one row at a time. A
 * column just added was added with the source's type.
 */
static void layout_types(pgsink *ps, layout_ent *se, const sink_rel *rel)
{
    free(se->types);
    se->types = calloc(rel->ncols + 1u, sizeof *se->types);
    for (uint16_t i = 0; se->types && i < rel->ncols; i++) {
        int row = target_col(ps->cat_cols, rel->cols[i].name);
        const PGresult *res = row >= 0 ? ps->cat_cols : ps->cat_types;
        int r = row >= 0 ? row : i;
        int col = row >= 0 ? PGSTMT_COL_TYPID : PGSTMT_TYPE_OID;
        if (!PQgetisnull(res, r, col))
            se->types[i] = (uint32_t)strtoul(PQgetvalue(res, r, col), NULL,
                                             10);
    }
}

/* The target's OIDs of a checked relation version's types, or NULL. */
static const uint32_t *layout_types_of(pgsink *ps, const sink_rel *rel)
{
    for (size_t i = 0; i < ps->nlayouts; i++)
        if (ps->layouts[i].oid == rel->oid)
            return ps->layouts[i].checked && ps->layouts[i].known == rel
                       ? ps->layouts[i].types : NULL;
    return NULL;
}

static bool layout_check(pgsink *ps, const sink_event *ev, layout_ent *se)
{
    const sink_rel *rel = ev->rel;
    size_t n = rel->ncols + 1u;
    uint16_t *add = malloc(n * sizeof *add);
    const char **types = malloc(n * sizeof *types);
    int nadd = 0;
    bool ok = (add && types) || out_of_memory(ps);
    ok = ok && layout_fetch(ps, rel);
    if (ok && PQntuples(ps->cat_cols) == 0) {
        char why[300];
        snprintf(why, sizeof why, "table %s.%s does not exist in the "
                 "target: create it, cleave retries", rel->schema, rel->name);
        ok = refuse(ps, ev, why);
    }
    ok = ok && layout_columns(ps, ev, se->known, add, types, &nadd) &&
         layout_drops(ps, ev, se->known, false) &&
         layout_alter(ps, ev, add, types, nadd);
    if (ok) {
        layout_drops(ps, ev, se->known, true);
        layout_types(ps, se, rel);
        se->barrier = col_flag(ps->cat_cols, 0, PGSTMT_COL_BARRIER);
        layout_set(&se->known, ev->rel);
        se->checked = true;
        se->in_batch = true;
        ps->layouts_in_batch = true;
    }
    catalog_clear(ps);
    free(add);
    free(types);
    return ok;
}

/* per_row: the parameters of one change, as its plan has them. */
static bool send_prepare(pgsink *ps, pgstmt *st, const sink_event *ev,
                         int per_row)
{
    int nparams;
    char *sql = pgstmt_sql(ps->conn, st, ps->stmts.upsert, &nparams);
    if (!sql)
        return refuse(ps, ev, "cannot build the statement (out of memory, "
                              "or a name libpq cannot quote)");
    if (nparams != per_row * st->rows) {
        free(sql);
        return refuse(ps, ev, "statement and plan disagree on parameters");
    }
    pgpipe_entry *e = pgpipe_add(&ps->pipe);
    if (!e) {
        free(sql);
        return out_of_memory(ps);
    }
    e->kind = PGPIPE_PREPARE;
    e->op = event_op(ev);
    e->stmt = st;
    e->lsn = ev->commit_lsn;
    pgstmt_describe(ev, e->key, sizeof e->key);
    Oid *types = NULL;
    if (pgstmt_typed(st)) {
        const uint32_t *cols = layout_types_of(ps, st->rel);
        types = malloc((size_t)nparams * sizeof *types);
        if (!types || !cols ||
            !pgstmt_param_types(st, cols, types, nparams)) {
            free(types);
            free(sql);
            return refuse(ps, ev, "the target's types of the columns are "
                                  "not known");
        }
    }
    int sent = PQsendPrepare(ps->conn, st->name, sql, nparams, types);
    free(types);
    free(sql);
    if (!sent) {
        pgpipe_fail(&ps->pipe, "cannot send a statement");
        return lost(ps);
    }
    st->prepared = true;
    st->returning = st->shape[0] == 'I' && ps->stmts.upsert;
    return true;
}

/*
 * One statement execution: a change, or a run's `rows` changes. formats
 * NULL: every parameter is text.
 */
static bool send_exec(pgsink *ps, pgstmt *st, const sink_event *ev,
                      const char *const *params, const int *lengths,
                      const int *formats, int nparams)
{
    pgpipe_entry *e = pgpipe_add(&ps->pipe);
    if (!e)
        return out_of_memory(ps);
    e->kind = PGPIPE_ROW;
    e->op = event_op(ev);
    pgpipe_set_rows(&ps->pipe, e, st->rows);
    e->stmt = st;
    e->lsn = ev->commit_lsn;
    pgstmt_describe(ev, e->key, sizeof e->key);
    if (!PQsendQueryPrepared(ps->conn, st->name, nparams, params,
                             formats ? lengths : NULL, formats, 0)) {
        pgpipe_fail(&ps->pipe, "cannot send a change");
        return lost(ps);
    }
    return true;
}

/* ------------------------------------------------------------ runs */

static void journal_clear(pgsink *ps)
{
    pgrun_clear(&ps->runs);  /* they point into it */
    for (size_t i = 0; i < ps->jn; i++)
        sink_event_free(ps->jrows[i]);
    ps->jn = ps->jbytes = 0;
}

static sink_event *copy_change(const sink_event *ev)
{
    return sink_event_at(
        sink_event_change_values(ev->op, ev->rel, ev->commit_lsn,
                                 ev->old_kind, ev->old_vals, ev->new_vals),
        ev->lsn);
}

static bool journal_add(pgsink *ps, const sink_event *ev)
{
    if (ps->jn == ps->jcap) {
        size_t cap = ps->jcap ? 2 * ps->jcap : 256;
        sink_event **rows = realloc(ps->jrows, cap * sizeof *rows);
        if (!rows)
            return out_of_memory(ps);
        ps->jrows = rows;
        ps->jcap = cap;
    }
    sink_event *copy = copy_change(ev);
    if (!copy)
        return out_of_memory(ps);
    ps->jrows[ps->jn++] = copy;
    ps->jbytes += copy->size;
    return true;
}

/* One execution of the parameters in pl. */
static bool send_plan(pgsink *ps, pgstmt *st, const sink_event *ev,
                      const pgstmt_plan *pl)
{
    return send_exec(ps, st, ev, pl->params, pl->lengths,
                     pl->binary ? pl->formats : NULL, pl->nparams);
}

/* `rows` changes of a run as one statement. */
static bool send_chunk(pgsink *ps, pgstmt *one, sink_event *const *evs,
                       uint16_t rows)
{
    const char *why = NULL;
    int per_row = 0;
    ps->chunk.nparams = 0;
    ps->chunk.binary = false;
    for (uint16_t r = 0; r < rows; r++) {
        if (!pgstmt_plan_change(&ps->run_plan, evs[r], &why))
            return refuse(ps, evs[r], why);
        per_row = ps->run_plan.nparams;
        if (!pgstmt_plan_add_params(&ps->chunk, &ps->run_plan))
            return out_of_memory(ps);
    }
    pgstmt *st = rows == 1 ? one
                           : pgstmt_lookup_rows(&ps->stmts, evs[0]->rel,
                                                &ps->run_plan, rows);
    if (!st)
        return out_of_memory(ps);
    ps->batch_veto |= rows > 1;
    if (!st->prepared && !send_prepare(ps, st, evs[0], per_row))
        return false;
    return send_plan(ps, st, evs[0], &ps->chunk);
}

/* The largest power of two rows that fits in what is left and the limits. */
static uint16_t chunk_rows(size_t left, int per_row)
{
    uint16_t rows = RUN_ROWS;
    while (rows > 1 && (rows > left || (size_t)rows * per_row > RUN_PARAMS))
        rows /= 2;
    return rows;
}

/*
 * Sends an open run, in chunks of a few fixed sizes so that a shape has
 * few prepared statements, and closes it.
 */
static bool run_send(pgsink *ps, pgrun *run)
{
    int per_row = run->st->shape_len;  /* at least its parameters */
    /* Without the target's types a VALUES list of keys cannot be typed. */
    bool typed = run->op == 'I' || layout_types_of(ps, run->rel);
    bool ok = true;
    for (uint16_t done = 0, rows; ok && done < run->n; done += rows) {
        rows = typed ? chunk_rows(run->n - done, per_row) : 1;
        ok = send_chunk(ps, run->st, run->rows + done, rows);
    }
    pgrun_close(&ps->runs, run);
    return ok;
}

/* The open runs of rel (NULL: all of them), oldest first. */
static bool runs_send(pgsink *ps, const sink_rel *rel)
{
    pgrun *run;
    while ((run = pgrun_oldest(&ps->runs, rel)))
        if (!run_send(ps, run))
            return false;
    return true;
}

/*
 * The journal is full: once every result so far is in and good, nothing
 * sent can fail any more and the copies can go; a failure is redone now.
 */
static bool journal_trim(pgsink *ps)
{
    if (!runs_send(ps, NULL) || !send_sync(ps) || !wait_all(ps, -1))
        return false;
    if (ps->failed && !recover(ps))
        return false;
    journal_clear(ps);
    ps->jcomplete = false;
    return true;
}

/*
 * The journal's bound holds for the changes it keeps, and past it for
 * the copies the runs keep: a full one goes first.
 */
static bool room_for(pgsink *ps, const sink_event *ev)
{
    if (ps->redoing)
        return true;
    if (ps->jcomplete)
        return ps->jbytes + ps->runs.owned_bytes + ev->size <= JOURNAL_BYTES ||
               journal_trim(ps);
    return ps->runs.owned_bytes + ev->size <= JOURNAL_BYTES ||
           runs_send(ps, NULL);
}

/*
 * A table with triggers or rules of its own that fire on apply (see
 * layout_check) may look at other tables: its changes are not held,
 * and every run goes before them.
 */
static bool barrier(const pgsink *ps, const sink_rel *rel)
{
    const layout_ent *se = layout_find(ps, rel->oid);
    return !se || se->barrier;
}

/*
 * A relation version meets the target table before its first statement
 * is prepared; a check (catalog wait, maybe an ALTER) comes after every
 * change held so far, as it would have without runs.
 */
static bool prepare(pgsink *ps, pgstmt *st, const sink_event *ev)
{
    layout_ent *se = layout_get(ps, ev->rel->oid);
    if (!se)
        return out_of_memory(ps);
    if (!(se->checked && se->known == ev->rel) &&
        (!runs_send(ps, NULL) || !layout_check(ps, ev, se)))
        return false;
    return send_prepare(ps, st, ev, ps->plan.nparams);
}

/*
 * The run ev joins: runs of its table it must not pass go first, and its
 * own when full, of another shape, or already meeting its row (one
 * statement must not meet a row twice: a second UPDATE of a key would
 * find the row as it was before the statement, not after the first).
 */
static pgrun *run_for(pgsink *ps, const sink_event *ev, pgstmt *st,
                      uint64_t key)
{
    char op = st->shape[0];
    pgrun *run;
    while ((run = pgrun_in_the_way(&ps->runs, ev->rel, op, key)))
        if (!run_send(ps, run))
            return NULL;
    run = pgrun_find(&ps->runs, ev->rel, op);
    if (run && (run->st != st || run->n == RUN_ROWS ||
                (op != 'I' && pgrun_has_key(run, key))) &&
        !run_send(ps, run))
        return NULL;
    run = pgrun_find(&ps->runs, ev->rel, op);
    if (!run && ps->runs.open >= ps->runs_max &&
        !run_send(ps, pgrun_oldest(&ps->runs, NULL)))
        return NULL;
    if (!run)
        run = pgrun_open(&ps->runs, ev->rel, op, st, !ps->jcomplete);
    return run;
}

/*
 * Changes of other tables stay held past a change that is: their order
 * across tables does not show once the target transaction commits, and
 * a failure is redone in the journal's order (see recover).
 */
static void note_order(pgsink *ps, int others)
{
    if (others > 0 && !ps->reordered) {
        ps->reordered = true;
        ps->batch_veto = true;
    }
}

/* The INSERT ins with the values upd gives its row. */
static sink_event *merged_insert(const sink_event *ins, const sink_event *upd)
{
    uint16_t n = ins->rel->ncols;
    sink_value *vals = malloc((n + 1u) * sizeof *vals);
    if (!vals)
        return NULL;
    for (uint16_t i = 0; i < n; i++)
        vals[i] = upd->new_vals[i].kind == 'u' ? ins->new_vals[i]
                                               : upd->new_vals[i];
    sink_event *row = sink_event_change_values(SINK_INSERT, ins->rel,
                                               ins->commit_lsn, 0, NULL,
                                               vals);
    free(vals);
    return row;
}

/*
 * An UPDATE that keeps its row's key, of a row whose INSERT still waits
 * in a run: the INSERT takes the UPDATE's values (an unchanged TOAST
 * value stays the INSERT's), one statement for both; the journal keeps
 * both for a redo. 1 when so, 0 when not, -1 on failure. Not an INSERT
 * and a DELETE, nor two UPDATEs: on_conflict: apply tells each row of
 * those on a row the target had already (it holds nothing anyway).
 */
static int merge_update(pgsink *ps, const sink_event *ev, uint64_t key)
{
    pgrun *run = pgrun_find(&ps->runs, ev->rel, 'I');
    int at = run && ev->op == SINK_UPDATE && ev->old_kind == 0
                 ? pgrun_key_at(run, key) : -1;
    if (at < 0)
        return 0;
    sink_event *row = merged_insert(run->rows[at], ev);
    if (!row || (ps->jcomplete && !journal_add(ps, ev))) {
        sink_event_free(row);
        out_of_memory(ps);
        return -1;
    }
    pgrun_replace(&ps->runs, run, at, row);
    note_order(ps, 1);           /* a failure is redone change by change */
    ps->batch_applied++;         /* the UPDATE, applied with its INSERT */
    return 1;
}

static bool hold(pgsink *ps, const sink_event *ev, pgstmt *st)
{
    uint64_t key = pgrun_key(ev);
    int merged = merge_update(ps, ev, key);
    if (merged != 0)
        return merged > 0;
    pgrun *run = run_for(ps, ev, st, key);
    if (!run)
        return ps->failed ? false : out_of_memory(ps);
    note_order(ps, ps->runs.open - 1);
    sink_event *row;
    if (ps->jcomplete) {
        if (!journal_add(ps, ev))
            return false;
        row = ps->jrows[ps->jn - 1];
    } else if (!(row = copy_change(ev)))
        return out_of_memory(ps);
    pgrun_add(&ps->runs, run, row, key);
    return true;
}

static bool send_row(pgsink *ps, const sink_event *ev)
{
    const char *why = NULL;
    if (!room_for(ps, ev))
        return false;
    /* Before the lookup: a new relation version retires the old statements. */
    if (pgrun_other_version(&ps->runs, ev->rel) && !runs_send(ps, NULL))
        return false;
    if (!pgstmt_plan_change(&ps->plan, ev, &why))
        return refuse(ps, ev, why);
    pgstmt *st = pgstmt_lookup(&ps->stmts, ev->rel, &ps->plan);
    if (!st)
        return out_of_memory(ps);
    /* A statement to prepare: a new relation version, or a new session. */
    if (!st->prepared && !prepare(ps, st, ev))
        return false;
    ps->last_row_lsn = ev->commit_lsn;
    if (ps->redoing)
        return send_plan(ps, st, ev, &ps->plan);
    bool held_table = pgrun_oldest(&ps->runs, ev->rel) != NULL;
    bool wall = !held_table && barrier(ps, ev->rel);
    if (!wall && ev->commit_lsn > ps->rowwise_until &&
        pgstmt_batchable(&ps->stmts, ev->rel, &ps->plan))
        return hold(ps, ev, st);
    if (!runs_send(ps, wall ? NULL : ev->rel))
        return false;
    note_order(ps, ps->runs.open);
    if (ps->jcomplete && !journal_add(ps, ev))
        return false;
    return send_plan(ps, st, ev, &ps->plan);
}

static bool send_truncate(pgsink *ps, const sink_event *ev)
{
    if (!runs_send(ps, NULL))
        return false;
    ps->last_row_lsn = ev->commit_lsn;
    /* The journal keeps rows only: a TRUNCATE ends what it can redo. */
    if (ps->jcomplete && !ps->redoing && !journal_trim(ps))
        return false;
    char *sql = pgstmt_truncate_sql(ps->conn, ev);
    if (!sql)
        return refuse(ps, ev, "cannot build the statement");
    pgpipe_entry *e = pgpipe_add(&ps->pipe);
    if (!e) {
        free(sql);
        return out_of_memory(ps);
    }
    e->kind = PGPIPE_ROW;
    e->op = 'T';
    e->lsn = ev->commit_lsn;
    pgstmt_describe(ev, e->key, sizeof e->key);
    int sent = PQsendQueryParams(ps->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    free(sql);
    if (!sent) {
        pgpipe_fail(&ps->pipe, "cannot send a TRUNCATE");
        return lost(ps);
    }
    return true;
}

/* ------------------------------------------------------------ batches */

/* Statements of replaced relation versions, once nothing refers to them. */
static void drop_retired(pgsink *ps)
{
    pgstmt *st = pgstmt_take_retired(&ps->stmts);
    while (st) {
        pgstmt *next = st->next;
        if (st->prepared && !ps->broken) {
            char sql[48];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
            send_query(ps, PGPIPE_COMMAND, "DEALLOCATE", sql, 0, NULL);
        }
        pgstmt_free(st);
        st = next;
    }
}

static void forget_batch(pgsink *ps)
{
    layouts_revert(ps);
    ps->txn_open = false;
    ps->in_source = false;
    ps->skipping = false;
    ps->source_rows = 0;
    ps->batch_rows = 0;
    ps->batch_txns = 0;
    ps->batch_applied = 0;
    ps->batch_conflicts = 0;
    ps->batch_veto = false;
    ps->last_end = ps->recorded;
    journal_clear(ps);
    ps->jcomplete = false;
    ps->batch_failed = false;
    ps->reordered = false;
    ps->redoing = false;
}

/*
 * Throws the target transaction away: drain what is in flight (a failed
 * statement aborted the rest of the pipeline up to the next sync), then
 * roll back. Whatever went wrong first stays in base.error.
 */
static bool rollback_target(pgsink *ps)
{
    ps->discarding = true;
    bool ok = pgpipe_sync(&ps->pipe) && pgpipe_wait(&ps->pipe, 0, -1) &&
              send_command(ps, "ROLLBACK") && pgpipe_sync(&ps->pipe) &&
              pgpipe_wait(&ps->pipe, 0, -1);
    ps->discarding = false;
    if (!ok)
        return lost(ps);
    drop_retired(ps);
    return true;
}

static void abort_batch(pgsink *ps)
{
    /* The replay must not fail the same run again without naming the row. */
    if (ps->batch_failed && ps->last_row_lsn > ps->rowwise_until)
        ps->rowwise_until = ps->last_row_lsn;
    if (ps->conn && !ps->broken)
        rollback_target(ps);
    forget_batch(ps);
}

static bool fail_batch(pgsink *ps)
{
    abort_batch(ps);
    return false;
}

static bool open_txn(pgsink *ps);

/*
 * A run failed (a row of it refused, or the server gave up on it): the
 * target transaction is rolled back and its changes, all in the journal,
 * sent again one per statement, so a row that fails is named as before
 * and one that does not is applied as before. Anything else fails as it
 * always did.
 */
static bool recover(pgsink *ps)
{
    if (!ps->batch_failed || !ps->jcomplete || ps->redoing || ps->broken)
        return fail_batch(ps);
    log_info("event=run_redone service=%s reason=\"%s\" rows=%zu",
             svc_name(ps), ps->base.error, ps->jn);
    if (!rollback_target(ps))
        return fail_batch(ps);
    layouts_revert(ps);
    ps->txn_open = false;
    ps->batch_applied = ps->batch_conflicts = 0;
    ps->failed = ps->batch_failed = false;
    pgrun_clear(&ps->runs);
    ps->reordered = false;
    if (!open_txn(ps))
        return fail_batch(ps);
    ps->redoing = true;
    bool ok = true;
    for (size_t i = 0; ok && i < ps->jn; i++)
        ok = send_row(ps, ps->jrows[i]) &&
             (pgpipe_rows(&ps->pipe) <= QUEUE_HIGH ||
              pgpipe_wait_rows(&ps->pipe, QUEUE_LOW) || lost(ps));
    ok = ok && send_sync(ps) && wait_all(ps, -1);
    ps->redoing = false;
    if (!ok || ps->failed)
        return fail_batch(ps);
    return true;
}

static bool open_txn(pgsink *ps)
{
    if (!send_command(ps, "BEGIN"))
        return false;
    ps->txn_open = true;
    ps->jcomplete = true;
    ps->batch_start_ms = clock_ms();
    return true;
}

static void batch_committed(pgsink *ps, bool read_progress)
{
    atomic_fetch_add_explicit(&ps->base.rows_applied, ps->batch_applied,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->base.txns_applied, ps->batch_txns,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->base.conflicts, ps->batch_conflicts,
                              memory_order_relaxed);
    ps->recorded = ps->last_end;
    layouts_commit(ps);
    if (read_progress) {
        ps->progress_ms = clock_ms();
        ps->force_progress = false;
    }
    forget_batch(ps);
    drop_retired(ps);
}

/*
 * Whether to read the durable position now. Reading it flushes the
 * target's WAL up to our last commit, a wait on the disk that the
 * commits themselves (asynchronous) never make: read at every commit of
 * an idle worker, it took a third to nearly half of a small
 * transaction's round trip with fsync on (bench/latency.sh,
 * BENCH_FSYNC=on). So, as native apply reports what the WAL writer has
 * flushed, it is read at most every PROGRESS_MS, unless someone waits on
 * it (a cut-over's catch-up: sink_durable_wanted), the worker is idle, or
 * an open, a rollback or a drain must know it.
 */
static bool durable_due(pgsink *ps)
{
    return sink_durable_wanted(&ps->base) || ps->force_progress ||
           clock_ms() - ps->progress_ms >= PROGRESS_MS;
}

/*
 * Where an UPDATE or DELETE of the batch must fail on a missing row (no
 * server error, so only we can refuse to commit), or a multi-row statement
 * may have to be done again a row at a time, two round trips: first
 * every result is read and checked, then the position is recorded and the
 * transaction committed. Otherwise any failure is the server's, which
 * aborts the transaction and skips the COMMIT behind it: one round trip,
 * one wake-up less of the target and of this thread per batch. A durable
 * position due is read in the same round trip.
 */
static bool commit_batch(pgsink *ps)
{
    if (!runs_send(ps, NULL))
        return fail_batch(ps);
    if (ps->batch_veto && (!send_sync(ps) || !wait_all(ps, -1)))
        return false;
    if (ps->failed && !recover(ps))
        return false;
    bool progress = durable_due(ps);
    if (!send_origin_advance(ps) || !send_command(ps, WHAT_COMMIT) ||
        (progress && !send_progress(ps)) || !send_sync(ps) ||
        !wait_all(ps, -1))
        return false;
    if (ps->failed)
        return fail_batch(ps);
    batch_committed(ps, progress);
    return true;
}

/* Keeps both directions of the socket moving without waiting on it. */
static bool keep_flowing(pgsink *ps)
{
    if (++ps->since_service >= SERVICE_EVERY) {
        ps->since_service = 0;
        if (!pgpipe_service(&ps->pipe))
            return lost(ps);
    }
    /*
     * A huge source transaction must not queue without bound: counted in
     * changes, as a run's request carries many.
     */
    if (pgpipe_rows(&ps->pipe) > QUEUE_HIGH &&
        !pgpipe_wait_rows(&ps->pipe, QUEUE_LOW))
        return lost(ps);
    if (ps->failed)
        return recover(ps);
    return true;
}

/* ------------------------------------------------------------ sink ops */

/* Starts a call: false if the connection is not there to use. */
static bool usable(pgsink *ps)
{
    if (ps->broken)
        return false;
    ps->failed = false;
    if (!ps->conn)
        return fail_once(ps, 0, "service=%s: the target is not open",
                         svc_name(ps));
    return true;
}

static bool pg_begin(sink *s, const sink_event *ev)
{
    pgsink *ps = s->impl;
    if (!usable(ps))
        return false;
    if (ps->in_source) {
        fail_once(ps, ev->commit_lsn, "service=%s: BEGIN inside an "
                  "unfinished source transaction", svc_name(ps));
        return fail_batch(ps);
    }
    ps->in_source = true;
    ps->source_rows = 0;
    /* A replay may bring back what the target already committed. */
    ps->skipping = sink_holds(ps->recorded, ev->commit_lsn);
    return true;
}

static bool pg_change(sink *s, const sink_event *ev)
{
    pgsink *ps = s->impl;
    if (ev->op == SINK_MESSAGE)
        return true;         /* messages are for Kafka */
    if (!usable(ps))
        return false;
    if (ps->skipping)
        return true;
    if (!ps->txn_open && !open_txn(ps))
        return false;
    bool sent = ev->op == SINK_TRUNCATE ? send_truncate(ps, ev)
                                        : send_row(ps, ev);
    if (!sent)
        return fail_batch(ps);
    ps->batch_veto = ps->batch_veto ||
        ((ev->op == SINK_UPDATE || ev->op == SINK_DELETE) &&
         ps->base.service->on_conflict == CFG_CONFLICT_ERROR);
    ps->source_rows++;
    ps->batch_rows++;
    return keep_flowing(ps);
}

static bool pg_commit(sink *s, const sink_event *ev, bool more)
{
    pgsink *ps = s->impl;
    if (!usable(ps))
        return false;
    ps->in_source = false;
    if (ps->skipping) {
        ps->skipping = false;
        return true;
    }
    /*
     * An empty source transaction still moves the position: the next
     * target commit records it, or flush() commits it on its own.
     */
    ps->last_end = ev->end_lsn;
    ps->last_time = ev->commit_time;
    ps->batch_txns += ps->source_rows > 0;
    ps->source_rows = 0;
    if (!ps->txn_open)
        return true;
    if (more && ps->batch_rows < BATCH_ROWS &&
        clock_ms() - ps->batch_start_ms < ps->batch_ms)
        return true;
    return commit_batch(ps);
}

static bool read_progress_now(pgsink *ps)
{
    if (!send_progress(ps) || !send_sync(ps) || !wait_all(ps, -1))
        return false;
    if (ps->failed)
        return ps->txn_open ? fail_batch(ps) : false;
    ps->force_progress = false;
    ps->progress_ms = clock_ms();
    return true;
}

/* Commits are asynchronous: what was read may lag what is recorded. */
static bool refresh_durable(pgsink *ps, lsn_t *durable)
{
    if (ps->durable < ps->recorded && durable_due(ps) &&
        !read_progress_now(ps))
        return false;
    *durable = ps->durable;
    return true;
}

static bool pg_flush(sink *s, lsn_t *durable)
{
    pgsink *ps = s->impl;
    if (!usable(ps))
        return false;
    /* Half a source transaction can never be committed. */
    if (!ps->in_source) {
        if (ps->last_end > ps->recorded && !ps->txn_open && !open_txn(ps))
            return false;
        if (ps->txn_open && !commit_batch(ps))
            return false;
    }
    return refresh_durable(ps, durable);
}

/*
 * No event for about 100 ms (or the position is wanted): a read now
 * keeps no transaction waiting, and the position is exact again soon
 * after the load stops (the lag a cut-over checks, the status).
 */
static bool pg_idle(sink *s, lsn_t *durable)
{
    pgsink *ps = s->impl;
    if (!usable(ps))
        return false;
    ps->force_progress = ps->force_progress || ps->durable < ps->recorded;
    return refresh_durable(ps, durable);
}

/* Stopping: the position reported last is the one the target holds. */
static bool pg_drain(sink *s, lsn_t *durable)
{
    pgsink *ps = s->impl;
    ps->force_progress = true;
    return pg_flush(s, durable);
}

/* The worker goes back to the durable position: it must be current. */
static void pg_rollback(sink *s)
{
    pgsink *ps = s->impl;
    ps->failed = false;
    ps->force_progress = true;
    abort_batch(ps);
}

/*
 * Hands the origin back at once: left to the backend's exit, it could
 * still look taken when the worker reopens a moment later.
 */
static void release_origin(pgsink *ps)
{
    ps->discarding = true;
    bool ok = pgpipe_sync(&ps->pipe) && send_command(ps, "ROLLBACK") &&
              send_query(ps, PGPIPE_COMMAND, "releasing the origin",
                         "SELECT pg_replication_origin_session_reset()", 0,
                         NULL) &&
              pgpipe_sync(&ps->pipe);
    if (ok)
        pgpipe_wait(&ps->pipe, 0, CLOSE_WAIT_MS);
    ps->discarding = false;
}

static void pg_close(sink *s)
{
    pgsink *ps = s->impl;
    if (ps->conn) {
        if (!ps->broken)
            release_origin(ps);
        PQfinish(ps->conn);
        ps->conn = NULL;
    }
    pgpipe_reset(&ps->pipe);
    pgstmt_cache_clear(&ps->stmts);
    forget_batch(ps);
    ps->broken = false;
    ps->since_service = 0;
}

/* ------------------------------------------------------------ open */

static void trim_newline(char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
}

static bool connect_target(pgsink *ps)
{
    const char *dsn = ps->base.service->target_postgres;
    if (!dsn)
        return fail_once(ps, 0, "service=%s: no target.postgres to open",
                         svc_name(ps));
    ps->conn = dbconn_connect(dsn, "cleave", DBCONN_PLAIN);
    if (!ps->conn)
        return out_of_memory(ps);
    if (PQstatus(ps->conn) == CONNECTION_OK) {
        PQsetNoticeReceiver(ps->conn, on_notice, ps);
        return true;
    }
    /* The DSN goes into the message only with its password blanked. */
    char *shown = cfg_dsn_redacted(dsn);
    char msg[300];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(ps->conn));
    trim_newline(msg);
    fail_once(ps, 0, "service=%s: cannot connect to the target (%s): %s",
              svc_name(ps), shown ? shown : "?", msg);
    free(shown);
    return false;
}

/* One blocking statement during open(); false with the result kept. */
static bool exec_ok(pgsink *ps, const char *sql, int nparams,
                    const char *const *params, PGresult **out)
{
    PGresult *res = PQexecParams(ps->conn, sql, nparams, NULL, params, NULL,
                                 NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    *out = res;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static bool has_sqlstate(const PGresult *res, const char *code)
{
    const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return got && strcmp(got, code) == 0;
}

static bool open_failed(pgsink *ps, const char *what, PGresult *res)
{
    char msg[300];
    fail_once(ps, 0, "service=%s target: %s: %s", svc_name(ps), what,
              result_message(res, msg, sizeof msg));
    PQclear(res);
    return false;
}

/*
 * As PostgreSQL's own apply does: replica role keeps user and foreign-key
 * triggers quiet. It takes a superuser; without one we go on, and say so.
 */
static bool set_session(pgsink *ps)
{
    PGresult *res;
    if (!exec_ok(ps, "SET synchronous_commit = off", 0, NULL, &res))
        return open_failed(ps, "SET synchronous_commit", res);
    PQclear(res);
    /*
     * Our statements find rows by key: a custom plan per execution (which
     * the plan cache may keep choosing) only costs planning time.
     */
    if (!exec_ok(ps, "SET plan_cache_mode = force_generic_plan", 0, NULL,
                 &res))
        return open_failed(ps, "SET plan_cache_mode", res);
    PQclear(res);
    ps->runs_max = PGRUN_OPEN;
    if (exec_ok(ps, "SET session_replication_role = replica", 0, NULL, &res)) {
        PQclear(res);
        return true;
    }
    ps->runs_max = 1;
    if (!has_sqlstate(res, "42501"))
        return open_failed(ps, "SET session_replication_role", res);
    if (!ps->role_warned) {
        log_warning("event=replica_role_refused service=%s note=\"not a "
                    "superuser: triggers and foreign keys on the target "
                    "will fire\"", svc_name(ps));
        ps->role_warned = true;
    }
    PQclear(res);
    return true;
}

static bool create_origin(pgsink *ps)
{
    const char *params[] = {ps->origin};
    PGresult *res;
    if (!exec_ok(ps, "SELECT 1 FROM pg_replication_origin WHERE roname = $1",
                 1, params, &res))
        return open_failed(ps, "looking up the replication origin", res);
    bool exists = PQntuples(res) > 0;
    PQclear(res);
    if (exists)
        return true;
    /* Another session creating it at the same moment is as good. */
    if (!exec_ok(ps, "SELECT pg_replication_origin_create($1)", 1, params,
                 &res) && !has_sqlstate(res, "23505"))
        return open_failed(ps, "creating the replication origin", res);
    PQclear(res);
    return true;
}

/*
 * See sink.forget_position; before the session takes the origin. Only an
 * origin with progress: a new one has no state slot yet, and the advance
 * would take one of max_replication_slots for nothing.
 */
static bool forget_origin(pgsink *ps)
{
    const char *params[] = {ps->origin};
    PGresult *res;
    if (!ps->base.forget_position)
        return true;
    if (!exec_ok(ps, "SELECT pg_replication_origin_advance($1, '0/0') "
                 "WHERE pg_replication_origin_progress($1, false) <> '0/0'",
                 1, params, &res))
        return open_failed(ps, "forgetting an earlier slot's progress", res);
    if (PQntuples(res) > 0)
        log_info("event=position_forgotten service=%s sink=postgres "
                 "reason=\"the slot is new\"", svc_name(ps));
    PQclear(res);
    return true;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/*
 * An origin in use is another session applying to this target (a second
 * cleave, or our own previous session still exiting: hence the retries).
 */
static bool claim_origin(pgsink *ps)
{
    const char *params[] = {ps->origin};
    int64_t deadline = clock_ms() + ORIGIN_BUSY_MS;
    PGresult *res;
    while (!exec_ok(ps, "SELECT pg_replication_origin_session_setup($1)", 1,
                    params, &res)) {
        if (!has_sqlstate(res, "55006"))
            return open_failed(ps, "setting up the replication origin", res);
        if (clock_ms() >= deadline) {
            char what[200];
            snprintf(what, sizeof what, "replication origin \"%s\" is in "
                     "use by another session (another cleave applying to "
                     "this database?)", ps->origin);
            return open_failed(ps, what, res);
        }
        PQclear(res);
        sleep_ms(100);
    }
    PQclear(res);
    return true;
}

static bool read_durable(pgsink *ps)
{
    const char *params[] = {ps->origin};
    PGresult *res;
    if (!exec_ok(ps, progress_sql, 1, params, &res))
        return open_failed(ps, "reading the origin's progress", res);
    ps->failed = false;
    progress_read(ps, res);
    PQclear(res);
    if (ps->failed)
        return false;
    ps->force_progress = false;
    ps->progress_ms = clock_ms();
    return true;
}

static bool prepare_fixed(pgsink *ps)
{
    PGresult *res = PQprepare(ps->conn, ADVANCE_STMT, advance_sql, 2, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return open_failed(ps, "preparing the origin's advance", res);
    PQclear(res);
    res = PQprepare(ps->conn, PROGRESS_STMT, progress_sql, 1, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return open_failed(ps, "preparing the origin's progress", res);
    PQclear(res);
    return true;
}

static bool enter_pipeline(pgsink *ps)
{
    if (PQsetnonblocking(ps->conn, 1) != 0 || !PQenterPipelineMode(ps->conn)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(ps->conn));
        trim_newline(msg);
        return fail_once(ps, 0, "service=%s target: cannot enter pipeline "
                         "mode: %s", svc_name(ps), msg);
    }
    pgpipe_attach(&ps->pipe, ps->conn);
    return true;
}

static void forget_partitions(pgsink *ps)
{
    free(ps->part_schema);
    free(ps->part_table);
    ps->part_schema = ps->part_table = NULL;
}

/* The partitions a refused row lacked, made before anything is applied. */
static bool add_partitions(pgsink *ps)
{
    if (!ps->part_table)
        return true;
    char err[512];
    int made;
    if (!ps->part_schema ||
        !pgpart_create_missing(ps->conn, ps->base.config->source.dsn,
                               svc_name(ps), ps->part_schema, ps->part_table,
                               &made, err, sizeof err))
        return fail_once(ps, 0, "service=%s table=%s.%s: making the "
                         "partitions the source added: %s", svc_name(ps),
                         ps->part_schema ? ps->part_schema : "?",
                         ps->part_table, ps->part_schema ? err
                         : "out of memory");
    if (made == 0)
        log_warning("event=partition_missing service=%s table=%s.%s "
                    "error=\"a row has no partition in the target, and the "
                    "source has none the target lacks\"", svc_name(ps),
                    ps->part_schema, ps->part_table);
    forget_partitions(ps);
    return true;
}

static bool pg_open(sink *s, lsn_t *durable)
{
    pgsink *ps = s->impl;
    if (ps->conn)
        pg_close(s);
    ps->failed = false;
    ps->broken = false;
    if (!connect_target(ps) || !set_session(ps) || !create_origin(ps) ||
        !forget_origin(ps) || !claim_origin(ps) || !read_durable(ps) || !prepare_fixed(ps) ||
        !add_partitions(ps) || !enter_pipeline(ps)) {
        PQfinish(ps->conn);
        ps->conn = NULL;
        ps->broken = false;
        return false;
    }
    ps->recorded = ps->durable;
    /* A new origin reads 0: its first commit says where it stands. */
    ps->force_progress = true;
    forget_batch(ps);
    layouts_unchecked(ps);
    *durable = ps->durable;
    return true;
}

static const sink_ops pgsink_ops = {
    .kind = "postgres",
    .id = SINK_KIND_POSTGRES,
    .destroy = pgsink_free,
    .open = pg_open,
    .begin = pg_begin,
    .change = pg_change,
    .commit = pg_commit,
    .flush = pg_flush,
    .idle = pg_idle,
    .drain = pg_drain,
    .rollback = pg_rollback,
    .close = pg_close,
};

sink *pgsink_new(const cfg *config, const cfg_service *service)
{
    pgsink *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->base.ops = &pgsink_ops;
    ps->base.config = config;
    ps->base.service = service;
    ps->base.impl = ps;
    atomic_init(&ps->base.rows_applied, 0);
    atomic_init(&ps->base.txns_applied, 0);
    atomic_init(&ps->base.conflicts, 0);
    ps->origin = cfg_origin_name(config, service);
    if (!ps->origin) {
        free(ps);
        return NULL;
    }
    pgpipe_init(&ps->pipe, on_result, ps);
    ps->stmts.upsert = service->on_conflict == CFG_CONFLICT_APPLY;
    ps->batch_ms = BATCH_MS;
    return &ps->base;
}

void pgsink_set_batch_ms(sink *s, int ms)
{
    pgsink *ps = s->impl;
    ps->batch_ms = ms;
}

void pgsink_free(sink *s)
{
    if (!s)
        return;
    pgsink *ps = s->impl;
    pg_close(s);
    pgpipe_free(&ps->pipe);
    pgstmt_plan_free(&ps->plan);
    pgstmt_plan_free(&ps->run_plan);
    free(ps->jrows);
    pgstmt_plan_free(&ps->chunk);
    layouts_free(ps);
    catalog_clear(ps);
    forget_partitions(ps);
    free(ps->origin);
    free(ps);
}
