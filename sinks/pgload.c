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
 * Rows left by a copy that committed before its table was recorded done
 * go. An empty table is not truncated: TRUNCATE refuses a table other
 * tables reference, which a service's own tables may do.
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
    return ok && (!has_rows ||
                  run_table(c, partitioned ? "TRUNCATE %s.%s"
                            : "TRUNCATE ONLY %s.%s", rel, "",
                            PGRES_COMMAND_OK));
}

/* Emptying and COPY in one target transaction: all of the table or none. */
static bool pl_begin(sink_loader *l, const sink_load_table *t)
{
    pgload *pl = l->impl;
    const sink_rel *rel = pl->rel = t->rel;
    char *cols = sink_rel_columns(pl->conn, rel);
    bool oom = !cols;
    pl->in_txn = !oom && run(pl->conn, "BEGIN", PGRES_COMMAND_OK);
    pl->copying = pl->in_txn && empty_table(pl->conn, rel, t->partitioned) &&
                  run_table(pl->conn, "COPY %s.%s (%s) FROM STDIN", rel,
                            cols, PGRES_COPY_IN);
    free(cols);
    if (pl->copying)
        return true;
    return sink_loader_fail(l, "cannot start copying %s.%s into the target: "
                            "%s", rel->schema, rel->name,
                            oom ? "out of memory" : first_line(pl->conn));
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
    .begin = pl_begin,
    .row = pl_row,
    .end = pl_end,
    .abort = pl_abort,
    .close = pl_close,
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
