/*
 * pgload: COPY into a service's PostgreSQL target for the initial sync;
 * see pgload.h.
 */
#include "sinks/pgload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

typedef struct pgload {
    sink_loader base;
    PGconn *conn;
    const sink_rel *rel;     /* the table being loaded */
    bool in_txn;
    bool copying;            /* in COPY IN mode */
} pgload;

static const char *first_line(PGconn *c)
{
    static _Thread_local char buf[512];
    const char *msg = PQerrorMessage(c);
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(msg, "\n"), msg);
    return buf;
}

/* fmt with the quoted schema and name of rel, then cols. */
static char *table_sql(PGconn *c, const char *fmt, const sink_rel *rel,
                       const char *cols)
{
    char *s = PQescapeIdentifier(c, rel->schema, strlen(rel->schema));
    char *n = PQescapeIdentifier(c, rel->name, strlen(rel->name));
    char *sql = NULL;
    if (s && n && asprintf(&sql, fmt, s, n, cols) < 0)
        sql = NULL;
    PQfreemem(s);
    PQfreemem(n);
    return sql;
}

static bool run(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *res = sql ? PQexec(c, sql) : NULL;
    bool ok = PQresultStatus(res) == want;
    PQclear(res);
    return ok;
}

/* Runs table_sql's statement. */
static bool run_table(PGconn *c, const char *fmt, const sink_rel *rel,
                      const char *cols, ExecStatusType want)
{
    char *sql = table_sql(c, fmt, rel, cols);
    bool ok = run(c, sql, want);
    free(sql);
    return ok;
}

/*
 * A yes-or-no question about rel ($1 its schema, $2 its name); no when
 * it cannot be answered.
 */
static bool ask(PGconn *c, const sink_rel *rel, const char *sql)
{
    const char *params[] = {rel->schema, rel->name};
    PGresult *res = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    bool yes = PQresultStatus(res) == PGRES_TUPLES_OK &&
               PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return yes;
}

/* The result of COPY once its data ended; later results are dropped. */
static bool copy_result(PGconn *c)
{
    PGresult *res = PQgetResult(c);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    while ((res = PQgetResult(c)) != NULL)
        PQclear(res);
    return ok;
}

/*
 * Whether DELETE should empty rel instead of TRUNCATE, which refuses a
 * table another table's foreign key points at: in the replica role the
 * keys' actions stay quiet (no CASCADE into the tables pointing in), as
 * PostgreSQL's own apply has them. Without the role, TRUNCATE it is, and
 * its refusal says why.
 */
static bool delete_instead(PGconn *c, const sink_rel *rel)
{
    return ask(c, rel,
        "SELECT current_setting('session_replication_role') = 'replica' "
        "AND EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_class t ON "
        "t.oid = k.confrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE k.contype = 'f' AND k.conrelid <> k.confrelid AND "
        "n.nspname = $1 AND t.relname = $2)");
}

/*
 * Rows already there go: left by a copy that committed before its table
 * was recorded done, or a table copied again (a resync). An empty table
 * is left alone.
 */
static bool empty_table(PGconn *c, const sink_rel *rel, bool partitioned)
{
    char *sql = table_sql(c, partitioned ? "SELECT 1 FROM %s.%s LIMIT 1"
                          : "SELECT 1 FROM ONLY %s.%s LIMIT 1", rel, "");
    PGresult *res = sql ? PQexec(c, sql) : NULL;
    free(sql);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    bool has_rows = ok && PQntuples(res) > 0;
    PQclear(res);
    if (!ok || !has_rows)
        return ok;
    if (delete_instead(c, rel))
        return run_table(c, partitioned ? "DELETE FROM %s.%s"
                         : "DELETE FROM ONLY %s.%s", rel, "",
                         PGRES_COMMAND_OK);
    return run_table(c, partitioned ? "TRUNCATE %s.%s"
                     : "TRUNCATE ONLY %s.%s", rel, "", PGRES_COMMAND_OK);
}

/*
 * Whether the table may be emptied by TRUNCATE and filled by COPY FREEZE
 * in one transaction: a plain table (not partitioned), this role allowed
 * to truncate it, and no other table's foreign key pointing at it (which
 * TRUNCATE refuses). Its rows then go in frozen and its pages marked
 * all-visible: no reader sets hint bits on every page after the copy
 * (the key's index build is the first), and no vacuum rewrites them to
 * freeze them later.
 */
static bool freezable(PGconn *c, const sink_rel *rel)
{
    return ask(c, rel,
        "SELECT has_table_privilege(c.oid, 'TRUNCATE') AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint k WHERE k.contype = 'f' AND "
        "k.confrelid = c.oid AND k.conrelid <> c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
        "n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'");
}

/* COPY FROM STDIN's statement, by [binary][freeze]. */
static const char *const copy_in_sql[2][2] = {
    {"COPY %s.%s (%s) FROM STDIN", "COPY %s.%s (%s) FROM STDIN (FREEZE)"},
    {"COPY %s.%s (%s) FROM STDIN (FORMAT binary)",
     "COPY %s.%s (%s) FROM STDIN (FORMAT binary, FREEZE)"},
};

/* Empties the table ahead of its COPY, in the COPY's transaction. */
static bool empty_for_copy(PGconn *c, const sink_load_table *t, bool freeze)
{
    if (t->part)
        return true;
    if (freeze)
        return run_table(c, "TRUNCATE ONLY %s.%s", t->rel, "",
                         PGRES_COMMAND_OK);
    return empty_table(c, t->rel, t->partitioned);
}

/* Emptying and COPY in one target transaction: all of the table or none. */
static bool pl_begin(sink_loader *l, const sink_load_table *t)
{
    pgload *pl = l->impl;
    const sink_rel *rel = pl->rel = t->rel;
    char *cols = sink_rel_columns(pl->conn, rel);
    bool oom = !cols;
    bool freeze = !oom && !t->part && !t->partitioned &&
                  freezable(pl->conn, rel);
    pl->in_txn = !oom && run(pl->conn, "BEGIN", PGRES_COMMAND_OK);
    pl->copying = pl->in_txn && empty_for_copy(pl->conn, t, freeze) &&
                  run_table(pl->conn, copy_in_sql[t->binary][freeze], rel,
                            cols, PGRES_COPY_IN);
    free(cols);
    if (pl->copying)
        return true;
    return sink_loader_fail(l, "cannot start copying %s.%s into the target: "
                            "%s", rel->schema, rel->name,
                            oom ? "out of memory" : first_line(pl->conn));
}

/* Ahead of the parts, each loaded in a transaction of its own. */
static bool pl_empty(sink_loader *l, const sink_load_table *t)
{
    pgload *pl = l->impl;
    if (empty_table(pl->conn, t->rel, t->partitioned))
        return true;
    return sink_loader_fail(l, "cannot empty %s.%s in the target: %s",
                            t->rel->schema, t->rel->name,
                            first_line(pl->conn));
}

static bool pl_row(sink_loader *l, const char *line, size_t len)
{
    pgload *pl = l->impl;
    if (PQputCopyData(pl->conn, line, (int)len) == 1)
        return true;
    return sink_loader_fail(l, "copying %s.%s into the target: %s",
                            pl->rel->schema, pl->rel->name,
                            first_line(pl->conn));
}

static bool pl_end(sink_loader *l, bool last)
{
    (void)last;
    pgload *pl = l->impl;
    pl->copying = false;
    if (PQputCopyEnd(pl->conn, NULL) == 1 && copy_result(pl->conn) &&
        run(pl->conn, "COMMIT", PGRES_COMMAND_OK)) {
        pl->in_txn = false;
        return true;
    }
    return sink_loader_fail(l, "copying %s.%s: %s", pl->rel->schema,
                            pl->rel->name, first_line(pl->conn));
}

static void pl_abort(sink_loader *l)
{
    pgload *pl = l->impl;
    if (pl->copying && PQputCopyEnd(pl->conn, "cleave stopped the copy") == 1)
        copy_result(pl->conn);
    if (pl->in_txn)
        run(pl->conn, "ROLLBACK", PGRES_COMMAND_OK);
    pl->copying = pl->in_txn = false;
}

static void pl_close(sink_loader *l)
{
    pl_abort(l);
    free(l->impl);
}

static const sink_loader_ops pgload_ops = {
    .kind = "postgres",
    .binary = true,
    .begin = pl_begin,
    .row = pl_row,
    .end = pl_end,
    .abort = pl_abort,
    .close = pl_close,
    .empty = pl_empty,
};

sink_loader *pgload_open(const cfg *config, const cfg_service *service,
                         PGconn *target, char *err, size_t errlen)
{
    pgload *pl = calloc(1, sizeof *pl);
    if (!pl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pl->base = (sink_loader){.ops = &pgload_ops, .config = config,
                             .service = service, .impl = pl};
    pl->conn = target;
    return &pl->base;
}
