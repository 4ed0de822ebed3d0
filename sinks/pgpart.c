/* pgpart: partitions made in a target from the source; see pgpart.h. */
#include "sinks/pgpart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbconn.h"
#include "common/log.h"

/*
 * Every partition under schema.table (levels below first their parents),
 * with its parent, its bound and, when partitioned itself, its key.
 */
static const char TREE_SQL[] =
    "SELECT pn.nspname, p.relname, an.nspname, a.relname,"
    " pg_catalog.pg_get_expr(p.relpartbound, p.oid),"
    " CASE WHEN p.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(p.oid) END"
    " FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass("
    "  pg_catalog.format('%I.%I', $1::text, $2::text))) t"
    " JOIN pg_catalog.pg_class p ON p.oid = t.relid"
    " JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace"
    " JOIN pg_catalog.pg_class a ON a.oid = t.parentrelid"
    " JOIN pg_catalog.pg_namespace an ON an.oid = a.relnamespace"
    " WHERE t.level > 0 AND p.relkind IN ('r', 'p')"
    " ORDER BY t.level, 1, 2";

static const char EXISTS_SQL[] =
    "SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text,"
    " $2::text)) IS NOT NULL";

enum { TR_SCHEMA, TR_NAME, TR_PSCHEMA, TR_PNAME, TR_BOUND, TR_KEY };

bool pgpart_missing(const PGresult *res)
{
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    return code && msg && strcmp(code, "23514") == 0 &&
           strncmp(msg, "no partition of relation", 24) == 0;
}

static void set_err(char *err, size_t errlen, const char *what, PGconn *c)
{
    const char *msg = c ? PQerrorMessage(c) : "out of memory";
    snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

static PGresult *run(PGconn *c, const char *sql, int n,
                     const char *const *params, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    set_err(err, errlen, n ? "reading the partitions" : sql, c);
    PQclear(res);
    return NULL;
}

/* The source's partition tree of schema.table, or NULL (err). */
static PGresult *read_tree(const char *dsn, const char *schema,
                           const char *table, char *err, size_t errlen)
{
    PGconn *src = dbconn_open(dsn, "cleave", "the source", err, errlen);
    if (!src)
        return NULL;
    const char *params[] = {schema, table};
    PGresult *res = run(src, TREE_SQL, 2, params, err, errlen);
    PQfinish(src);
    return res;
}

/* "s"."n", quoted for the target; NULL when out of memory. */
static char *quoted(PGconn *c, const char *schema, const char *name)
{
    char *s = PQescapeIdentifier(c, schema, strlen(schema));
    char *n = PQescapeIdentifier(c, name, strlen(name));
    char *q = NULL;
    if (s && n && asprintf(&q, "%s.%s", s, n) < 0)
        q = NULL;
    PQfreemem(s);
    PQfreemem(n);
    return q;
}

/* Makes row i of the tree in the target unless it is there; -1 on error. */
static int create_one(PGconn *tgt, const PGresult *tree, int i,
                      const char *service, char *err, size_t errlen)
{
    const char *params[] = {PQgetvalue(tree, i, TR_SCHEMA),
                            PQgetvalue(tree, i, TR_NAME)};
    PGresult *res = run(tgt, EXISTS_SQL, 2, params, err, errlen);
    if (!res)
        return -1;
    bool there = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (there)
        return 0;
    char *part = quoted(tgt, params[0], params[1]);
    char *parent = quoted(tgt, PQgetvalue(tree, i, TR_PSCHEMA),
                          PQgetvalue(tree, i, TR_PNAME));
    bool sub = !PQgetisnull(tree, i, TR_KEY);
    char *sql = NULL;
    if (part && parent &&
        asprintf(&sql, "CREATE TABLE %s PARTITION OF %s %s%s%s", part, parent,
                 PQgetvalue(tree, i, TR_BOUND), sub ? " PARTITION BY " : "",
                 sub ? PQgetvalue(tree, i, TR_KEY) : "") < 0)
        sql = NULL;
    res = sql ? run(tgt, sql, 0, NULL, err, errlen) : NULL;
    if (!sql)
        snprintf(err, errlen, "out of memory");
    if (res)
        log_info("event=partition_created service=%s table=%s.%s "
                 "partition=%s.%s bound=\"%s\"", service,
                 PQgetvalue(tree, i, TR_PSCHEMA), PQgetvalue(tree, i, TR_PNAME),
                 params[0], params[1], PQgetvalue(tree, i, TR_BOUND));
    PQclear(res);
    free(sql);
    free(part);
    free(parent);
    return res ? 1 : -1;
}

static bool exec_simple(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *res = run(c, sql, 0, NULL, err, errlen);
    PQclear(res);
    return res != NULL;
}

bool pgpart_create_missing(PGconn *target, const char *dsn,
                           const char *service, const char *schema,
                           const char *table, int *made, char *err,
                           size_t errlen)
{
    *made = 0;
    PGresult *tree = read_tree(dsn, schema, table, err, errlen);
    if (!tree)
        return false;
    bool ok = exec_simple(target, "BEGIN", err, errlen);
    for (int i = 0; ok && i < PQntuples(tree); i++) {
        int n = create_one(target, tree, i, service, err, errlen);
        ok = n >= 0;
        *made += n > 0;
    }
    PQclear(tree);
    if (ok)
        return exec_simple(target, "COMMIT", err, errlen);
    char ignored[64];
    exec_simple(target, "ROLLBACK", ignored, sizeof ignored);
    return false;
}
