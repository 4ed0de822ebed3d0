/* binfmt: when a stream may take pgoutput's binary values; see binfmt.h. */
#include "daemon/binfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbconn.h"
#include "decoder/pgoutput.h"

/*
 * Each column's binary signature (NULL: not safe in binary): an enum's
 * label, or a built-in type's OID where its binary form holds no OID of
 * the server's own (reg*, a composite's fields, an array of either); a
 * domain stands for its base type, as pgoutput sends it. Sorted as
 * strcmp sorts, for find_row.
 */
#define SIGNATURE_SQL                                                         \
    "SELECT n.nspname, c.relname, a.attname, a.atttypid::int8, "              \
    "  CASE WHEN b.typtype = 'e' THEN 'enum' "                                \
    "    WHEN b.oid < 16384 AND b.typtype IN ('b', 'r', 'm') "                \
    "      AND b.typsend::oid <> 0 AND b.typreceive::oid <> 0 "               \
    "      AND b.typname NOT LIKE 'reg%' AND (e.oid IS NULL OR "              \
    "        (e.typtype IN ('b', 'r', 'm') AND e.typname NOT LIKE 'reg%')) "  \
    "    THEN b.oid::text END "                                               \
    "FROM pg_catalog.pg_class c "                                             \
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "               \
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "                   \
    "  AND a.attnum > 0 AND NOT a.attisdropped "                              \
    "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "                        \
    "JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' "         \
    "  THEN t.typbasetype ELSE t.oid END "                                    \
    "LEFT JOIN pg_catalog.pg_type e ON e.oid = b.typelem AND b.typelem <> 0 "

#define ORDER_SQL                                                             \
    " ORDER BY n.nspname COLLATE \"C\", c.relname COLLATE \"C\", "            \
    "a.attname COLLATE \"C\""

/* The source: the publication's tables (a partitioned one by its root). */
static const char source_sql[] =
    SIGNATURE_SQL
    "WHERE (n.nspname, c.relname) IN (SELECT schemaname, tablename "
    "  FROM pg_catalog.pg_publication_tables WHERE pubname = $1)" ORDER_SQL;

/* A target: every table it has. */
static const char target_sql[] =
    SIGNATURE_SQL
    "WHERE c.relkind IN ('r', 'p') "
    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema')" ORDER_SQL;

enum { COL_SCHEMA, COL_TABLE, COL_NAME, COL_TYPE, COL_SIGNATURE };

struct binfmt {
    PGresult *cols;          /* source_sql's rows */
    bool *checked;           /* per row: a service's table, safe */
    bool missing;            /* the check failed on a column not in a target */
};

void binfmt_free(binfmt *b)
{
    if (!b)
        return;
    PQclear(b->cols);
    free(b->checked);
    free(b);
}

static int cmp_row(const PGresult *res, int row, const char *schema,
                   const char *table, const char *col)
{
    int c = strcmp(PQgetvalue(res, row, COL_SCHEMA), schema);
    if (c == 0)
        c = strcmp(PQgetvalue(res, row, COL_TABLE), table);
    return c ? c : strcmp(PQgetvalue(res, row, COL_NAME), col);
}

/* The row of that column in a sorted result, or -1. */
static int find_row(const PGresult *res, const char *schema,
                    const char *table, const char *col)
{
    int lo = 0, hi = PQntuples(res) - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = cmp_row(res, mid, schema, table, col);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static PGresult *catalog(PGconn *conn, const char *sql, const char *param,
                         const char *what, char *why, size_t whylen)
{
    PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    snprintf(why, whylen, "cannot read the columns' types in %s: %s", what,
             PQerrorMessage(conn));
    PQclear(res);
    return NULL;
}

/* Why source row r cannot travel binary to a target (tgt's rows), or NULL. */
static const char *column_unsafe(binfmt *b, int r, const PGresult *tgt)
{
    const PGresult *src = b->cols;
    if (PQgetisnull(src, r, COL_SIGNATURE))
        return "its type has no binary form the same in every database";
    int t = find_row(tgt, PQgetvalue(src, r, COL_SCHEMA),
                     PQgetvalue(src, r, COL_TABLE), PQgetvalue(src, r, COL_NAME));
    b->missing = t < 0;
    if (t < 0)
        return "the target has no such column yet";
    if (PQgetisnull(tgt, t, COL_SIGNATURE) ||
        strcmp(PQgetvalue(src, r, COL_SIGNATURE),
               PQgetvalue(tgt, t, COL_SIGNATURE)) != 0)
        return "the target's type differs";
    return NULL;
}

/* Marks service svc's columns checked; false with why on one unsafe. */
static bool check_service(binfmt *b, const cfg *config, size_t svc,
                          const PGresult *tgt, char *why, size_t whylen)
{
    const PGresult *src = b->cols;
    for (int r = 0; r < PQntuples(src); r++) {
        const cfg_service *owner = cfg_owner(
            config, PQgetvalue(src, r, COL_SCHEMA), PQgetvalue(src, r, COL_TABLE));
        if (owner != &config->services[svc])
            continue;
        const char *unsafe = column_unsafe(b, r, tgt);
        if (unsafe) {
            snprintf(why, whylen, "column %s.%s.%s of service %s: %s",
                     PQgetvalue(src, r, COL_SCHEMA),
                     PQgetvalue(src, r, COL_TABLE),
                     PQgetvalue(src, r, COL_NAME), owner->name, unsafe);
            return false;
        }
        b->checked[r] = true;
    }
    return true;
}

/* Connecting to every target at once, a stream start waits no longer. */
#define CONNECT_MS 2000

/* Service svc's target (tgt, the attempt or NULL) against the source's columns. */
static bool check_target(binfmt *b, PGconn *src, const cfg *config,
                         size_t svc, PGconn *tgt, char *why, size_t whylen)
{
    const cfg_service *s = &config->services[svc];
    char what[300];
    snprintf(what, sizeof what, "service %s's target", s->name);
    if (!s->target_postgres) {
        snprintf(why, whylen, "service %s has no PostgreSQL target", s->name);
        return false;
    }
    if (!tgt) {
        snprintf(why, whylen, "cannot connect to %s within %d ms", what,
                 CONNECT_MS);
        return false;
    }
    if (PQstatus(tgt) != CONNECTION_OK) {
        dbconn_why(tgt, s->target_postgres, what, why, whylen);
        return false;
    }
    if (PQserverVersion(tgt) / 10000 != PQserverVersion(src) / 10000) {
        snprintf(why, whylen, "%s runs PostgreSQL %d, the source %d", what,
                 PQserverVersion(tgt) / 10000, PQserverVersion(src) / 10000);
        return false;
    }
    PGresult *cols = catalog(tgt, target_sql, NULL, s->name, why, whylen);
    bool ok = cols && check_service(b, config, svc, cols, why, whylen);
    PQclear(cols);
    return ok;
}

/* Every service's target that has not left, each checked. */
static bool check_targets(binfmt *b, PGconn *src, const cfg *config,
                          const bool *left, char *why, size_t whylen)
{
    size_t n = config->n_services;
    const char **dsns = calloc(n + 1, sizeof *dsns);
    PGconn **conns = calloc(n + 1, sizeof *conns);
    bool ok = dsns && conns;
    if (!ok)
        snprintf(why, whylen, "out of memory");
    for (size_t i = 0; ok && i < n; i++)
        dsns[i] = left[i] ? NULL : config->services[i].target_postgres;
    if (ok)
        dbconn_connect_many(dsns, n, "cleave", CONNECT_MS, conns);
    for (size_t i = 0; ok && i < n; i++)
        ok = left[i] || check_target(b, src, config, i, conns[i], why, whylen);
    for (size_t i = 0; conns && i < n; i++)
        PQfinish(conns[i]);
    free(dsns);
    free(conns);
    return ok;
}

static bool check_all(binfmt *b, PGconn *src, const cfg *config,
                      const bool *left, char *why, size_t whylen)
{
    if (config->has_kafka) {
        snprintf(why, whylen, "Kafka events are built from text");
        return false;
    }
    if (PQserverVersion(src) < 140000) {
        snprintf(why, whylen, "the source runs PostgreSQL %d (14 or later "
                 "sends binary values)", PQserverVersion(src) / 10000);
        return false;
    }
    b->cols = catalog(src, source_sql, config->source.publication,
                      "the source", why, whylen);
    b->checked = b->cols ? calloc((size_t)PQntuples(b->cols) + 1, 1) : NULL;
    if (b->cols && !b->checked)
        snprintf(why, whylen, "out of memory");
    return b->checked && check_targets(b, src, config, left, why, whylen);
}

binfmt *binfmt_check(PGconn *src, const cfg *config, const bool *left,
                     char *why, size_t whylen, bool *missing)
{
    binfmt *b = calloc(1, sizeof *b);
    *missing = false;
    if (!b) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (!check_all(b, src, config, left, why, whylen)) {
        *missing = b->missing;
        binfmt_free(b);
        return NULL;
    }
    return b;
}

bool binfmt_takes(const binfmt *b, const pgo_relation *rel)
{
    for (uint16_t i = 0; i < rel->ncols; i++) {
        const pgo_column *col = &rel->cols[i];
        int r = find_row(b->cols, rel->nspname, rel->relname, col->name);
        if (r < 0 || !b->checked[r] ||
            strtoul(PQgetvalue(b->cols, r, COL_TYPE), NULL, 10) != col->type_oid)
            return false;
    }
    return true;
}
