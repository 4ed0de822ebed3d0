/*
 * pgcoldef: added columns defined from the source catalog; see pgcoldef.h.
 *
 * A connection is opened for each relation version that adds columns and
 * closed at once: ADD COLUMN is rare, and a connection held for it would
 * be one more thing to lose and retry.
 */
#include "sinks/pgcoldef.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbconn.h"

enum { DEF_NAME, DEF_TYPID, DEF_TYPMOD, DEF_NOTNULL, DEF_IDENTITY,
       DEF_GENERATED, DEF_DEFAULT, DEF_COLL_SCHEMA, DEF_COLL_NAME,
       DEF_MISSING };

/*
 * Every column of the table (a handful; the names are matched here). The
 * missing value comes as the text of a one-element array of the column's
 * type; the session's settings (below) make that text, and the default's,
 * mean the same to the target.
 */
static const char COLUMNS_SQL[] =
    "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, "
    "  a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid), "
    "  cn.nspname, co.collname, "
    "  CASE WHEN a.atthasmissing THEN a.attmissingval::text END "
    "FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
    "  AND NOT a.attisdropped "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
    "  AND a.attcollation <> t.typcollation "
    "LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace "
    "WHERE n.nspname = $1 AND c.relname = $2";

/*
 * search_path = pg_catalog makes pg_get_expr qualify every other name, so
 * a default reads the same in the target's session; the date, interval
 * and float styles make the missing value's text exact and unambiguous.
 */
static const char SETTINGS_SQL[] =
    "SET search_path = pg_catalog; SET datestyle = ISO; "
    "SET intervalstyle = postgres; SET extra_float_digits = 3";

static void trimmed(char *err, size_t errlen, const char *what,
                    const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

static PGconn *connect_source(const char *dsn, char *err, size_t errlen)
{
    if (!dsn) {
        snprintf(err, errlen, "no source.dsn to read it from");
        return NULL;
    }
    PGconn *conn = dbconn_connect(dsn, "cleave", DBCONN_PLAIN);
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, SETTINGS_SQL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            trimmed(err, errlen, "setting up the source session",
                    PQerrorMessage(conn));
        PQclear(res);
        if (ok)
            return conn;
    } else {
        dbconn_why(conn, dsn, "the source", err, errlen);
    }
    PQfinish(conn);
    return NULL;
}

/*
 * The one element of an array's text form, {x} or {"x \"y\""}, unquoted
 * (whatever the type's delimiter: there is only one). NULL when out of
 * memory or not such a form.
 */
static char *array_element(const char *text)
{
    size_t len = strlen(text);
    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        return NULL;
    const char *p = text + 1, *end = text + len - 1;
    char *out = malloc(len), *o = out;
    if (!out)
        return NULL;
    if (*p != '"') {
        memcpy(out, p, (size_t)(end - p));
        out[end - p] = '\0';
        return out;
    }
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

/* The source's row for the column the stream describes, or -1. */
static int source_row(const PGresult *res, const struct sink_col *c)
{
    for (int r = 0; r < PQntuples(res); r++)
        if (strcmp(PQgetvalue(res, r, DEF_NAME), c->name) == 0 &&
            strtoul(PQgetvalue(res, r, DEF_TYPID), NULL, 10) == c->type_oid &&
            strtol(PQgetvalue(res, r, DEF_TYPMOD), NULL, 10) == c->typmod)
            return r;
    return -1;
}

static const char *value_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static bool define(pgcoldef_set *set, int i, const sink_rel *rel,
                   char *err, size_t errlen)
{
    const PGresult *res = set->res;
    pgstmt_coldef *d = &set->defs[i];
    const char *name = rel->cols[d->col].name;
    int r = source_row(res, &rel->cols[d->col]);
    if (r < 0) {
        set->notes[i] = PGCOLDEF_GONE;
        return true;
    }
    if (PQgetvalue(res, r, DEF_GENERATED)[0]) {
        snprintf(err, errlen, "column \"%s\" is generated on the source, and "
                 "the publication sends its values, which cleave cannot "
                 "write into a generated column: add it to the target as a "
                 "plain column of type %s, cleave retries", name, d->type);
        return false;
    }
    d->notnull = PQgetvalue(res, r, DEF_NOTNULL)[0] == 't';
    d->identity = PQgetvalue(res, r, DEF_IDENTITY)[0];
    d->dflt = value_or_null(res, r, DEF_DEFAULT);
    d->coll_schema = value_or_null(res, r, DEF_COLL_SCHEMA);
    d->coll_name = value_or_null(res, r, DEF_COLL_NAME);
    const char *missing = value_or_null(res, r, DEF_MISSING);
    if (missing) {
        d->fill = set->fills[i] = array_element(missing);
        if (!d->fill) {
            snprintf(err, errlen, "column \"%s\": cannot read the value the "
                     "source's rows hold (out of memory?)", name);
            return false;
        }
    } else if (d->dflt || d->identity) {
        set->notes[i] = PGCOLDEF_COMPUTED;
    }
    return true;
}

static bool read_catalog(pgcoldef_set *set, const char *dsn,
                         const sink_rel *rel, char *err, size_t errlen)
{
    PGconn *conn = connect_source(dsn, err, errlen);
    if (!conn)
        return false;
    const char *params[] = {rel->schema, rel->name};
    set->res = PQexecParams(conn, COLUMNS_SQL, 2, NULL, params, NULL, NULL,
                            0);
    bool ok = PQresultStatus(set->res) == PGRES_TUPLES_OK;
    if (!ok)
        trimmed(err, errlen, "reading the source's catalog",
                PQerrorMessage(conn));
    PQfinish(conn);
    return ok;
}

bool pgcoldef_read(pgcoldef_set *set, const char *dsn, const sink_rel *rel,
                   const uint16_t *cols, const char *const *types, int n,
                   char *err, size_t errlen)
{
    memset(set, 0, sizeof *set);
    set->defs = calloc((size_t)n, sizeof *set->defs);
    set->notes = calloc((size_t)n, sizeof *set->notes);
    set->fills = calloc((size_t)n, sizeof *set->fills);
    if (!set->defs || !set->notes || !set->fills) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    set->n = n;
    for (int i = 0; i < n; i++)
        set->defs[i] = (pgstmt_coldef){.col = cols[i], .type = types[i]};
    if (!read_catalog(set, dsn, rel, err, errlen))
        return false;
    for (int i = 0; i < n; i++)
        if (!define(set, i, rel, err, errlen))
            return false;
    return true;
}

void pgcoldef_clear(pgcoldef_set *set)
{
    for (int i = 0; set->fills && i < set->n; i++)
        free(set->fills[i]);
    free(set->fills);
    free(set->defs);
    free(set->notes);
    PQclear(set->res);
    memset(set, 0, sizeof *set);
}
