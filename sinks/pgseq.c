/*
 * pgseq: sequences follow the writes; see pgseq.h.
 *
 * Both sides are read and written with one query each: the positions on
 * `from`, then on `to` one statement that compares and calls setval only
 * where it is behind, so the decision and the move see the same value.
 */
#include "sinks/pgseq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/pgtables.h"

/*
 * The sequences owned by the tables' columns (pg_depend, 'a' for serial
 * and OWNED BY, 'i' for identity) and those their defaults depend on;
 * both parts of each name always quoted, so the result reads back as it
 * is whatever the name.
 */
static const char OF_TABLES_SQL[] =
    "SELECT q FROM (SELECT DISTINCT '\"' || replace(n.nspname, '\"', '\"\"')"
    "  || '\".\"' || replace(k.relname, '\"', '\"\"') || '\"' AS q "
    "FROM unnest(%s) AS u(t)"
    " CROSS JOIN LATERAL " PGTABLES_TREE("u.t::regclass") " AS p"
    " CROSS JOIN LATERAL (SELECT d.objid AS seq FROM pg_depend d"
    "  WHERE d.classid = 'pg_class'::regclass"
    "   AND d.refclassid = 'pg_class'::regclass"
    "   AND d.refobjid = p.relid AND d.deptype IN ('a', 'i')"
    "  UNION SELECT d.refobjid FROM pg_attrdef ad JOIN pg_depend d"
    "   ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid"
    "   AND d.refclassid = 'pg_class'::regclass"
    "  WHERE ad.adrelid = p.relid) AS s"
    " JOIN pg_class k ON k.oid = s.seq AND k.relkind = 'S'"
    " JOIN pg_namespace n ON n.oid = k.relnamespace) AS x "
    "ORDER BY q COLLATE \"C\"";

/* Each sequence's last value, NULL when never called; in the given order. */
static const char POSITIONS_SQL[] =
    "SELECT u.n, s.seqrelid IS NULL, pg_sequence_last_value(s.seqrelid) "
    "FROM unnest(%s) WITH ORDINALITY AS u(n, i)"
    " LEFT JOIN pg_sequence s ON s.seqrelid = to_regclass(u.n) "
    "ORDER BY u.i";

/*
 * Names then the values to reach (NULL: nothing to reach). A sequence
 * never called stands one increment before its start; numeric so that
 * start - increment cannot overflow. No setval at all while any name is
 * missing, so a failed call changes nothing.
 */
static const char RAISE_SQL[] =
    "WITH x AS MATERIALIZED (SELECT u.i, u.n, s.seqrelid AS r,"
    "  u.v::numeric AS v, s.seqincrement AS inc,"
    "  coalesce(pg_sequence_last_value(s.seqrelid)::numeric,"
    "   s.seqstart::numeric - s.seqincrement) AS at"
    "  FROM unnest(%s, %s) WITH ORDINALITY AS u(n, v, i)"
    "  LEFT JOIN pg_sequence s ON s.seqrelid = to_regclass(u.n)) "
    "SELECT n, r IS NULL,"
    " CASE WHEN r IS NOT NULL AND v IS NOT NULL"
    "   AND NOT EXISTS (SELECT 1 FROM x WHERE r IS NULL)"
    "   AND CASE WHEN inc > 0 THEN at < v ELSE at > v END"
    "  THEN setval(r, v::bigint) IS NOT NULL ELSE false END "
    "FROM x ORDER BY i";

/* sprintf(fmt, ARRAY[$1..$n]) or with a second ARRAY[$n+1..$2n]. */
static char *with_arrays(const char *fmt, size_t n, int arrays)
{
    char *a = pgtables_param_array(1, n);
    char *b = pgtables_param_array((int)n + 1, n);
    size_t len = a && b ? strlen(fmt) + strlen(a) + strlen(b) : 0;
    char *sql = len ? malloc(len) : NULL;
    if (sql && arrays == 1)
        sprintf(sql, fmt, a);
    else if (sql)
        sprintf(sql, fmt, a, b);
    free(a);
    free(b);
    return sql;
}

/* ------------------------------------------------------------ of_tables */

void pgseq_free_names(char **names, size_t count)
{
    for (size_t i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
}

/* The first column of every row, copied. */
static char **take_column(const PGresult *res, size_t *count)
{
    size_t rows = (size_t)PQntuples(res);
    char **names = calloc(rows ? rows : 1, sizeof *names);
    for (size_t i = 0; names && i < rows; i++)
        if (!(names[i] = strdup(PQgetvalue(res, (int)i, 0)))) {
            pgseq_free_names(names, i);
            return NULL;
        }
    *count = rows;
    return names;
}

bool pgseq_of_tables(PGconn *c, const cfg_table *t, size_t n, char ***names,
                     size_t *count, char *err, size_t errlen)
{
    *names = NULL;
    *count = 0;
    char **quoted = pgtables_quoted(c, t, n);
    char *sql = quoted ? with_arrays(OF_TABLES_SQL, n, 1) : NULL;
    PGresult *res = NULL;
    if (!sql)
        snprintf(err, errlen, "sequences: out of memory or an unquotable "
                 "name");
    else
        res = pgtables_query(c, sql, (const char *const *)quoted, n,
                             "sequences", err, errlen);
    free(sql);
    pgtables_free(quoted, n);
    if (!res)
        return false;
    *names = take_column(res, count);
    PQclear(res);
    if (!*names)
        snprintf(err, errlen, "sequences: out of memory");
    return *names != NULL;
}

/* ------------------------------------------------------------ sync */

/* err = "no sequence NAME in database DB" if row r's is missing. */
static bool present(PGconn *c, const PGresult *res, int r, char *err,
                    size_t errlen)
{
    if (strcmp(PQgetvalue(res, r, 1), "t") != 0)
        return true;
    snprintf(err, errlen, "no sequence %s in database \"%s\"",
             PQgetvalue(res, r, 0), PQdb(c));
    return false;
}

/* Runs fmt over params (n names, then `arrays - 1` times n more). */
static PGresult *run(PGconn *c, const char *fmt, const char *const *params,
                     size_t n, int arrays, char *err, size_t errlen)
{
    char *sql = with_arrays(fmt, n, arrays);
    PGresult *res = NULL;
    if (!sql)
        snprintf(err, errlen, "sequences: out of memory");
    else
        res = pgtables_query(c, sql, params, n * (size_t)arrays, "sequences",
                             err, errlen);
    free(sql);
    return res;
}

/*
 * params[n + i] = from's last value of names[i] (NULL if never called),
 * pointing into the result kept in *res.
 */
static bool read_positions(PGconn *from, const char **params, size_t n,
                           PGresult **res, char *err, size_t errlen)
{
    *res = run(from, POSITIONS_SQL, params, n, 1, err, errlen);
    if (!*res)
        return false;
    for (int r = 0; r < PQntuples(*res); r++) {
        if (!present(from, *res, r, err, errlen))
            return false;
        params[n + (size_t)r] = PQgetisnull(*res, r, 2)
                                ? NULL : PQgetvalue(*res, r, 2);
    }
    return true;
}

/* Raises what is behind on `to`; counts the moves in *raised. */
static bool raise_behind(PGconn *to, const char *const *params, size_t n,
                         int *raised, char *err, size_t errlen)
{
    PGresult *res = run(to, RAISE_SQL, params, n, 2, err, errlen);
    bool ok = res != NULL;
    for (int r = 0; ok && r < PQntuples(res); r++)
        ok = present(to, res, r, err, errlen);
    for (int r = 0; ok && r < PQntuples(res); r++)
        *raised += strcmp(PQgetvalue(res, r, 2), "t") == 0;
    PQclear(res);
    return ok;
}

bool pgseq_sync(PGconn *from, PGconn *to, char **names, size_t n, int *raised,
                char *err, size_t errlen)
{
    *raised = 0;
    if (n == 0)
        return true;
    const char **params = calloc(2 * n, sizeof *params);
    if (!params) {
        snprintf(err, errlen, "sequences: out of memory");
        return false;
    }
    memcpy(params, names, n * sizeof *params);
    PGresult *from_res = NULL;
    bool ok = read_positions(from, params, n, &from_res, err, errlen) &&
              raise_behind(to, params, n, raised, err, errlen);
    PQclear(from_res);
    free(params);
    return ok;
}
