/*
 * dbzcat: enum labels and domains' base types for Debezium's schemas;
 * see dbzcat.h.
 */
#include "sinks/dbzcat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/dbconn.h"

/*
 * Each type asked for, with the base type under any stack of domains,
 * the innermost typmod a domain declares, and the labels of the base
 * type when it is an enum.
 */
static const char TYPES_SQL[] =
    "WITH RECURSIVE b(oid, base, typmod, depth) AS ("
    " SELECT t.oid, t.oid, -1, 0 FROM pg_catalog.pg_type t"
    "  WHERE t.oid = ANY ($1::pg_catalog.oid[])"
    " UNION ALL"
    " SELECT b.oid, t.typbasetype,"
    "  CASE WHEN b.typmod = -1 THEN t.typtypmod ELSE b.typmod END,"
    "  b.depth + 1"
    "  FROM b JOIN pg_catalog.pg_type t ON t.oid = b.base"
    "  WHERE t.typtype = 'd')"
    " SELECT DISTINCT ON (b.oid) b.oid, b.base, b.typmod,"
    "  (SELECT pg_catalog.string_agg(e.enumlabel::text, ','"
    "          ORDER BY e.enumsortorder)"
    "   FROM pg_catalog.pg_enum e WHERE e.enumtypid = b.base)"
    " FROM b ORDER BY b.oid, b.depth DESC";

/*
 * PostgreSQL's FirstNormalObjectId: built-in types are below it. Not
 * type_name, which a relation read from the catalog (the initial copy's)
 * does not set.
 */
#define DBZCAT_FIRST_USER_OID 16384

static bool user_type(const struct sink_col *c)
{
    return c->type_oid >= DBZCAT_FIRST_USER_OID;
}

bool dbzcat_needed(const sink_rel *rel)
{
    for (uint16_t i = 0; i < rel->ncols; i++)
        if (user_type(&rel->cols[i]))
            return true;
    return false;
}

void dbzcat_clear(dbzcat_types *t)
{
    if (t->rel) {
        for (uint16_t i = 0; i < t->rel->ncols; i++)
            free(t->rel->cols[i].name);
        free(t->rel->cols);
        free(t->rel->schema);
        free(t->rel->name);
        free(t->rel);
    }
    for (uint16_t i = 0; t->allowed && i < t->ncols; i++)
        free(t->allowed[i]);
    free(t->allowed);
    *t = (dbzcat_types){0};
}

/* rel's copy: names duplicated, type names dropped (not needed). */
static sink_rel *copy_rel(const sink_rel *rel)
{
    sink_rel *c = calloc(1, sizeof *c);
    bool ok = c != NULL;
    if (ok) {
        *c = (sink_rel){.oid = rel->oid, .version = rel->version,
                        .schema = strdup(rel->schema),
                        .name = strdup(rel->name),
                        .replident = rel->replident, .ncols = rel->ncols,
                        .cols = calloc(rel->ncols ? rel->ncols : 1,
                                       sizeof *c->cols)};
        atomic_init(&c->refs, 1);
        ok = c->schema && c->name && c->cols;
    }
    for (uint16_t i = 0; ok && i < rel->ncols; i++) {
        c->cols[i] = rel->cols[i];
        c->cols[i].type_name = NULL;
        ok = (c->cols[i].name = strdup(rel->cols[i].name)) != NULL;
    }
    if (ok)
        return c;
    dbzcat_types t = {.rel = c};
    dbzcat_clear(&t);
    return NULL;
}

/* "{oid,oid,...}" of the columns whose types are not built in. */
static char *oid_array(const sink_rel *rel)
{
    size_t cap = (size_t)rel->ncols * 11 + 3, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[n++] = '{';
    for (uint16_t i = 0; i < rel->ncols; i++)
        if (user_type(&rel->cols[i]))
            n += (size_t)snprintf(s + n, cap - n, "%s%" PRIu32,
                                  n > 1 ? "," : "", rel->cols[i].type_oid);
    snprintf(s + n, cap - n, "}");
    return s;
}

/* Applies one answer row (oid, base, typmod, labels) to the columns. */
static bool apply_row(dbzcat_types *t, PGresult *res, int row)
{
    uint32_t oid = (uint32_t)strtoul(PQgetvalue(res, row, 0), NULL, 10);
    uint32_t base = (uint32_t)strtoul(PQgetvalue(res, row, 1), NULL, 10);
    int32_t typmod = (int32_t)strtol(PQgetvalue(res, row, 2), NULL, 10);
    bool is_enum = !PQgetisnull(res, row, 3);
    for (uint16_t i = 0; i < t->rel->ncols; i++) {
        struct sink_col *c = &t->rel->cols[i];
        if (c->type_oid != oid)
            continue;
        if (base != oid) {               /* a domain */
            c->type_oid = base;
            if (c->typmod == -1)
                c->typmod = typmod;
        }
        if (is_enum && !(t->allowed[i] = strdup(PQgetvalue(res, row, 3))))
            return false;
    }
    return true;
}

static bool read_types(dbzcat_types *t, PGconn *conn, const sink_rel *rel,
                       char *err, size_t errlen)
{
    char *oids = oid_array(rel);
    const char *params[1] = {oids};
    PGresult *res;
    bool ok;
    if (!oids) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    res = PQexecParams(conn, TYPES_SQL, 1, NULL, params, NULL, NULL, 0);
    free(oids);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "reading the source's types: %s",
                 PQerrorMessage(conn));
    for (int r = 0; ok && r < PQntuples(res); r++)
        if (!(ok = apply_row(t, res, r)))
            snprintf(err, errlen, "out of memory");
    PQclear(res);
    return ok;
}

bool dbzcat_resolve(dbzcat_types *t, const char *dsn, const sink_rel *rel,
                    char *err, size_t errlen)
{
    PGconn *conn;
    bool ok;
    dbzcat_clear(t);
    t->rel = copy_rel(rel);
    t->ncols = rel->ncols;
    t->allowed = calloc(rel->ncols ? rel->ncols : 1, sizeof *t->allowed);
    if (!t->rel || !t->allowed) {
        dbzcat_clear(t);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (!(conn = dbconn_open(dsn ? dsn : "", "cleave", "the source", err,
                             errlen))) {
        dbzcat_clear(t);
        return false;
    }
    ok = read_types(t, conn, rel, err, errlen);
    PQfinish(conn);
    if (!ok)
        dbzcat_clear(t);
    return ok;
}
