/*
 * schema against real PostgreSQL: the shop fixtures (with data and
 * cross-service foreign keys) read per service from one source database
 * and built in a fresh target database, the rows copied in between the way
 * the initial sync does; then the target's catalog is compared with the
 * source's through PostgreSQL's own deparsers. Also: names chosen to break
 * quoting, targets that already exist (same shape, another shape, left
 * half-built by a crash), and source tables that cannot be used.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/schema.h"
#include "tests/support/pgcluster.h"

static pgc_cluster *cluster;
static cfg *shop;

#define SHOP_DB "shop"

/* ------------------------------------------------------------ queries */

/*
 * The first value of a query run with search_path = pg_catalog (as the
 * schema module prints definitions), "(null)" for SQL NULL. Caller frees.
 */
static char *q(const char *db, const char *sql, const char *p1, const char *p2)
{
    PGconn *conn = pgc_connect(cluster, db);
    ck_assert_ptr_nonnull(conn);
    PQclear(PQexec(conn, "SET search_path = pg_catalog"));
    const char *params[] = {p1, p2};
    PGresult *res = PQexecParams(conn, sql, p2 ? 2 : p1 ? 1 : 0, NULL, params,
                                 NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1,
                  "%s on %s: %s", sql, db, PQerrorMessage(conn));
    char *v = strdup(PQgetisnull(res, 0, 0) ? "(null)" : PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    return v;
}

/* The query answers the same in both databases (and says what). */
static void same(const char *src, const char *tgt, const char *what,
                 const char *sql, const char *p1, const char *p2)
{
    char *a = q(src, sql, p1, p2), *b = q(tgt, sql, p1, p2);
    ck_assert_msg(strcmp(a, b) == 0, "%s %s differs:\n source: %s\n target: %s",
                  what, p1 ? p1 : "", a, b);
    free(a);
    free(b);
}

static void expect(const char *db, const char *sql, const char *p1,
                   const char *want)
{
    char *v = q(db, sql, p1, NULL);
    ck_assert_msg(strcmp(v, want) == 0, "%s (%s) on %s: got '%s', want '%s'",
                  sql, p1 ? p1 : "", db, v, want);
    free(v);
}

static void run(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK ||
                  PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(conn));
    PQclear(res);
}

/* Catalog signatures of one table ($1, a regclass). */
static const char COLUMNS_SIG[] =
    "SELECT string_agg(format('%I %s nn=%s id=%s gen=%s def=%s coll=%s',"
    "  a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    "  a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid),"
    "  a.attcollation::regcollation), ', ' ORDER BY a.attnum) "
    "FROM pg_attribute a LEFT JOIN pg_attrdef d"
    "  ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped";
static const char CONSTRAINTS_SIG[] =
    "SELECT string_agg(format('%I %s %s valid=%s', conname, contype,"
    "  pg_get_constraintdef(oid), convalidated), '; ' ORDER BY conname) "
    "FROM pg_constraint WHERE conrelid = $1::regclass AND contype <> 'f'";
static const char INDEXES_SIG[] =
    "SELECT string_agg(pg_get_indexdef(indexrelid) || ' ri=' || indisreplident,"
    "  '; ' ORDER BY pg_get_indexdef(indexrelid)) "
    "FROM pg_index WHERE indrelid = $1::regclass";
static const char IDENTITY_SIG[] =
    "SELECT relreplident FROM pg_class WHERE oid = $1::regclass";
static const char FKS_ALL[] =
    "SELECT string_agg(format('%I %s', conname, pg_get_constraintdef(oid)),"
    "  '; ' ORDER BY conname) "
    "FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'";
/* $2: the regclass[] of the service's tables. */
static const char FKS_WITHIN[] =
    "SELECT string_agg(format('%I %s', conname, pg_get_constraintdef(oid)),"
    "  '; ' ORDER BY conname) "
    "FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'"
    "  AND confrelid = ANY ($2::regclass[])";
/* The table's row count: a name cannot be a parameter, but can be text. */
static const char ROWS_SIG[] =
    "SELECT (xpath('/row/n/text()', query_to_xml(format("
    "  'SELECT count(*) AS n FROM %s', $1::regclass), false, true, '')))[1]"
    "  ::text";
static const char COMMENT_SIG[] =
    "SELECT obj_description($1::regclass, 'pg_class')";
/* Parameters and value of one sequence. */
static const char SEQUENCE_SIG[] =
    "SELECT format('%s %s %s %s %s %s %s', seqtypid::regtype, seqincrement,"
    "  seqmin, seqmax, seqstart, seqcache, seqcycle) "
    "FROM pg_sequence WHERE seqrelid = $1::regclass";
static const char ENUM_SIG[] =
    "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) "
    "FROM pg_enum WHERE enumtypid = $1::regtype";
static const char DOMAIN_SIG[] =
    "SELECT format('%s nn=%s def=%s %s', format_type(typbasetype, typtypmod),"
    "  typnotnull, typdefault, (SELECT string_agg(format('%I %s valid=%s',"
    "  conname, pg_get_constraintdef(c.oid), convalidated), '; '"
    "  ORDER BY conname)"
    "  FROM pg_constraint c WHERE c.contypid = t.oid)) "
    "FROM pg_type t WHERE oid = $1::regtype";
static const char COMPOSITE_SIG[] =
    "SELECT string_agg(format('%I %s', attname,"
    "  format_type(atttypid, atttypmod)),"
    "  ', ' ORDER BY attnum) FROM pg_attribute "
    "WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = $1::regtype)"
    "  AND attnum > 0";
static const char MARKERS[] =
    "SELECT count(*) FROM pg_description WHERE description LIKE 'cleave:%'";

/* The value of a sequence ($1) as "last_value/is_called". */
static char *seq_value(const char *db, const char *seq)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT last_value || '/' || is_called FROM %s",
             seq);
    return q(db, sql, NULL, NULL);
}

/* ------------------------------------------------------------ a sync */

static char *qname(PGconn *conn, const cfg_table *t)
{
    char *s = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
    char *n = PQescapeIdentifier(conn, t->name, strlen(t->name));
    char *out = NULL;
    ck_assert_int_ge(asprintf(&out, "%s.%s", s, n), 0);
    PQfreemem(s);
    PQfreemem(n);
    return out;
}

/* COPY table i's rows from src to tgt, as the copy module will. */
static void copy_rows(PGconn *src, PGconn *tgt, const schema_plan *p, size_t i)
{
    char *name = qname(src, schema_table(p, i));
    char *out = NULL, *in = NULL;
    ck_assert_int_ge(asprintf(&out, "COPY %s (%s) TO STDOUT", name,
                              schema_copy_columns(p, i)), 0);
    ck_assert_int_ge(asprintf(&in, "COPY %s (%s) FROM STDIN", name,
                              schema_copy_columns(p, i)), 0);
    PGresult *res = PQexec(src, out);
    ck_assert_msg(PQresultStatus(res) == PGRES_COPY_OUT, "%s: %s", out,
                  PQerrorMessage(src));
    PQclear(res);
    res = PQexec(tgt, in);
    ck_assert_msg(PQresultStatus(res) == PGRES_COPY_IN, "%s: %s", in,
                  PQerrorMessage(tgt));
    PQclear(res);
    char *buf;
    int n;
    while ((n = PQgetCopyData(src, &buf, 0)) > 0) {
        ck_assert_int_eq(PQputCopyData(tgt, buf, n), 1);
        PQfreemem(buf);
    }
    ck_assert_int_eq(n, -1);
    PQclear(PQgetResult(src));
    ck_assert_int_eq(PQputCopyEnd(tgt, NULL), 1);
    res = PQgetResult(tgt);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", in,
                  PQerrorMessage(tgt));
    PQclear(res);
    PQclear(PQgetResult(tgt));
    free(name);
    free(out);
    free(in);
}

/* stderr into a file for the duration of a call, to read the log back. */
static int capture_begin(int *saved)
{
    char path[] = "/tmp/cleave-schema-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    *saved = dup(2);
    ck_assert_int_ge(dup2(fd, 2), 0);
    return fd;
}

static char *capture_end(int fd, int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    fputs(text, stderr);
    return text;
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *s = text; (s = strstr(s, needle)); s += strlen(needle))
        n++;
    return n;
}

typedef struct sync_opts {
    bool src_in_txn;         /* read inside a REPEATABLE READ transaction */
    bool copy;               /* copy rows into the tables it created */
    bool finish;             /* run the finish phases */
} sync_opts;

/*
 * One service through every phase, asserting each succeeds; returns the
 * plan, the outcomes and (when finishing) what finish_service logged.
 */
static schema_plan *sync_service(const char *srcdb, const char *tgtdb,
                                 const cfg *c, const cfg_service *svc,
                                 sync_opts o, schema_outcome *out, char **log)
{
    char err[1024];
    PGconn *src = pgc_connect(cluster, srcdb);
    PGconn *tgt = pgc_connect(cluster, tgtdb);
    ck_assert(src && tgt);
    if (o.src_in_txn)
        run(src, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    PGresult *res = PQexec(src, "SHOW search_path");
    char *path_before = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    schema_plan *p = schema_read(src, c, svc, err, sizeof err);
    ck_assert_msg(p, "schema_read: %s", err);
    /* The caller's transaction goes on as it was. */
    ck_assert_int_eq(PQtransactionStatus(src),
                     o.src_in_txn ? PQTRANS_INTRANS : PQTRANS_IDLE);
    res = PQexec(src, "SHOW search_path");
    ck_assert_str_eq(PQgetvalue(res, 0, 0), path_before);
    PQclear(res);
    free(path_before);
    ck_assert_msg(schema_prepare_target(tgt, p, out, err, sizeof err),
                  "prepare: %s", err);
    ck_assert_int_eq(PQtransactionStatus(tgt), PQTRANS_IDLE);
    for (size_t i = 0; o.copy && i < schema_ntables(p); i++)
        if (out[i] == SCHEMA_CREATED || out[i] == SCHEMA_EXISTS_EMPTY)
            copy_rows(src, tgt, p, i);
    for (size_t i = 0; o.finish && i < schema_ntables(p); i++)
        ck_assert_msg(schema_finish_table(tgt, p, i, err, sizeof err),
                      "finish_table: %s", err);
    if (o.finish) {
        int saved, fd = capture_begin(&saved);
        bool ok = schema_finish_service(tgt, p, err, sizeof err);
        char *text = capture_end(fd, saved);
        ck_assert_msg(ok, "finish_service: %s", err);
        if (log)
            *log = text;
        else
            free(text);
    }
    if (o.src_in_txn)
        run(src, "COMMIT");
    PQfinish(src);
    PQfinish(tgt);
    return p;
}

static const cfg_service *shop_service(const char *name)
{
    for (size_t i = 0; i < shop->n_services; i++)
        if (strcmp(shop->services[i].name, name) == 0)
            return &shop->services[i];
    ck_abort_msg("no service %s", name);
    return NULL;
}

/* "public.a" style names of a service's tables, and as a regclass[]. */
static void table_names(const cfg_service *svc, char names[][128],
                        char *array, size_t len)
{
    snprintf(array, len, "{");
    for (size_t i = 0; i < svc->n_owned; i++) {
        snprintf(names[i], 128, "%s.%s", svc->owned[i].schema,
                 svc->owned[i].name);
        size_t used = strlen(array);
        snprintf(array + used, len - used, "%s%s", i ? "," : "", names[i]);
    }
    size_t used = strlen(array);
    snprintf(array + used, len - used, "}");
}

/* ------------------------------------------------------------ the shop */

typedef struct shop_case {
    const char *service;
    size_t skipped;          /* the fixture's cross-service foreign keys */
    const char *types;       /* user types its tables use */
} shop_case;

static const shop_case shop_cases[] = {
    {"user_service", 0, "public.email_address"},
    {"order_service", 2, "public.order_status"},
    {"payment_service", 3, "public.payment_status"},
    {"inventory_service", 0, "(null)"},
    {"notification_service", 1, "public.notification_channel"},
};

static void check_tables(const char *tgtdb, const cfg_service *svc)
{
    char names[16][128], array[2048], n[16];
    table_names(svc, names, array, sizeof array);
    for (size_t i = 0; i < svc->n_owned; i++) {
        same(SHOP_DB, tgtdb, "columns", COLUMNS_SIG, names[i], NULL);
        same(SHOP_DB, tgtdb, "constraints", CONSTRAINTS_SIG, names[i], NULL);
        same(SHOP_DB, tgtdb, "indexes", INDEXES_SIG, names[i], NULL);
        same(SHOP_DB, tgtdb, "replica identity", IDENTITY_SIG, names[i], NULL);
        same(SHOP_DB, tgtdb, "comment", COMMENT_SIG, names[i], NULL);
        /* In-service foreign keys are there, the others are not. */
        char *want = q(SHOP_DB, FKS_WITHIN, names[i], array);
        expect(tgtdb, FKS_ALL, names[i], want);
        free(want);
    }
    /* Only the owned tables. */
    snprintf(n, sizeof n, "%zu", svc->n_owned);
    expect(tgtdb, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND "
           "relnamespace = 'public'::regnamespace", NULL, n);
    expect(tgtdb, MARKERS, NULL, "0");
}

/* The sequences the tables use, with the same parameters and values. */
static void check_sequences(const char *tgtdb, const cfg_service *svc)
{
    char names[16][128], array[2048];
    table_names(svc, names, array, sizeof array);
    char *want = q(SHOP_DB,
        "SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT DISTINCT "
        "  d.objid::regclass::text s FROM pg_depend d JOIN pg_class c "
        "  ON c.oid = d.objid AND c.relkind = 'S' "
        "  WHERE d.refobjid = ANY ($1::regclass[])"
        "    AND d.deptype IN ('a', 'i')) x",
        array, NULL);
    char *got = q(tgtdb, "SELECT string_agg(oid::regclass::text, ',' ORDER BY "
                  "oid::regclass::text) FROM pg_class WHERE relkind = 'S'",
                  NULL, NULL);
    ck_assert_str_eq(got, want);
    for (char *s = got, *end; strcmp(got, "(null)") != 0 && *s; s = end) {
        end = s + strcspn(s, ",");
        char seq[128];
        snprintf(seq, sizeof seq, "%.*s", (int)(end - s), s);
        end += *end == ',';
        same(SHOP_DB, tgtdb, "sequence", SEQUENCE_SIG, seq, NULL);
        char *a = seq_value(SHOP_DB, seq), *b = seq_value(tgtdb, seq);
        ck_assert_msg(strcmp(a, b) == 0, "%s: source %s, target %s", seq, a, b);
        free(a);
        free(b);
    }
    free(want);
    free(got);
}

static void check_types(const char *tgtdb, const shop_case *sc)
{
    expect(tgtdb, "SELECT string_agg(oid::regtype::text, ',' ORDER BY "
           "oid::regtype::text) FROM pg_type WHERE typtype IN ('e', 'd', 'c') "
           "AND typnamespace = 'public'::regnamespace AND typrelid = 0",
           NULL, sc->types);
    if (strcmp(sc->types, "(null)") == 0)
        return;
    same(SHOP_DB, tgtdb, "enum", ENUM_SIG, sc->types, NULL);
    same(SHOP_DB, tgtdb, "domain", DOMAIN_SIG, sc->types, NULL);
}

/* Every service of the shop into its own empty database. */
START_TEST(shop_service_created)
{
    const shop_case *sc = &shop_cases[_i];
    const cfg_service *svc = shop_service(sc->service);
    char tgtdb[64], *log = NULL;
    snprintf(tgtdb, sizeof tgtdb, "t_%s", sc->service);
    ck_assert(pgc_createdb(cluster, tgtdb));
    schema_outcome out[16];
    sync_opts o = {.src_in_txn = true, .copy = true, .finish = true};
    schema_plan *p = sync_service(SHOP_DB, tgtdb, shop, svc, o, out, &log);

    ck_assert_uint_eq(schema_ntables(p), svc->n_owned);
    for (size_t i = 0; i < schema_ntables(p); i++) {
        ck_assert_int_eq(out[i], SCHEMA_CREATED);
        ck_assert_str_eq(schema_table(p, i)->name, svc->owned[i].name);
        ck_assert_int_gt(schema_table_bytes(p, i), 0);
        ck_assert_int_gt(schema_table_rows(p, i), 0);
    }
    check_tables(tgtdb, svc);
    check_sequences(tgtdb, svc);
    check_types(tgtdb, sc);
    /* Every row arrived, and the keys held over them. */
    for (size_t i = 0; i < svc->n_owned; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM public.%s",
                 svc->owned[i].name);
        char *want = q(SHOP_DB, sql, NULL, NULL);
        expect(tgtdb, sql, NULL, want);
        free(want);
    }
    ck_assert_uint_eq(schema_skipped_fks(p), sc->skipped);
    ck_assert_uint_eq(count_of(log, "event=foreign_key_skipped"), sc->skipped);
    ck_assert_uint_eq(count_of(log, "statement=\"ALTER TABLE public."),
                      sc->skipped);
    free(log);
    schema_free(p);
}
END_TEST

/* The exact statement a skipped foreign key is logged with. */
START_TEST(shop_skipped_fk_statement)
{
    char *log = NULL;
    schema_outcome out[16];
    ck_assert(pgc_createdb(cluster, "t_logged"));
    sync_opts o = {.finish = true};
    schema_plan *p = sync_service(SHOP_DB, "t_logged", shop,
                                  shop_service("order_service"), o, out, &log);
    ck_assert_ptr_nonnull(strstr(log,
        "event=foreign_key_skipped service=order_service table=public.orders "
        "constraint=orders_user_id_fkey references=public.users "
        "owner=user_service statement=\"ALTER TABLE public.orders ADD "
        "CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES "
        "public.users(id)\""));
    /* In-service ones are created, not logged. */
    ck_assert_ptr_null(strstr(log, "orders_shipping_address_id_fkey"));
    expect("t_logged", "SELECT count(*) FROM pg_constraint WHERE conname = "
           "'orders_shipping_address_id_fkey'", NULL, "1");
    free(log);
    schema_free(p);
}
END_TEST

/* Catalog counts that a second run must not change. */
static char *target_counts(const char *db)
{
    return q(db, "SELECT format('%s constraints, %s indexes, %s types, "
             "%s sequences, %s tables', "
             "(SELECT count(*) FROM pg_constraint c JOIN pg_namespace n"
             "  ON n.oid = c.connamespace WHERE n.nspname = 'public'),"
             "(SELECT count(*) FROM pg_class WHERE relkind = 'i'"
             "  AND relnamespace = 'public'::regnamespace),"
             "(SELECT count(*) FROM pg_type WHERE typnamespace = "
             "  'public'::regnamespace),"
             "(SELECT count(*) FROM pg_class WHERE relkind = 'S'),"
             "(SELECT count(*) FROM pg_class WHERE relkind = 'r'"
             "  AND relnamespace = 'public'::regnamespace))", NULL, NULL);
}

/* Existing tables of the same shape are used as they are. */
START_TEST(second_run_uses_existing)
{
    const cfg_service *svc = shop_service("order_service");
    schema_outcome out[16];
    ck_assert(pgc_createdb(cluster, "t_again"));
    sync_opts o = {.src_in_txn = true, .copy = true, .finish = true};
    schema_free(sync_service(SHOP_DB, "t_again", shop, svc, o, out, NULL));
    char *before = target_counts("t_again");
    ck_assert(pgc_exec(cluster, "t_again", "TRUNCATE public.order_items; "
                       "SELECT setval('public.shipping_addresses_id_seq', 1)"));

    schema_plan *p = sync_service(SHOP_DB, "t_again", shop, svc, o, out, NULL);
    ck_assert_str_eq(schema_table(p, 1)->name, "order_items");
    ck_assert_int_eq(out[0], SCHEMA_EXISTS_ROWS);
    ck_assert_int_eq(out[1], SCHEMA_EXISTS_EMPTY);
    ck_assert_int_eq(out[2], SCHEMA_EXISTS_ROWS);
    char *after = target_counts("t_again");
    ck_assert_str_eq(after, before);
    /* Sequences are set again all the same. */
    check_sequences("t_again", svc);
    check_tables("t_again", svc);
    free(before);
    free(after);
    schema_free(p);
}
END_TEST

/* A target table of another shape fails the service and creates nothing. */
START_TEST(other_shape_is_an_error)
{
    static const struct {
        const char *change;
        const char *undo;
        const char *diff;
    } cases[] = {
        {"ALTER TABLE public.user_sessions ALTER user_agent TYPE varchar(100)",
         "ALTER TABLE public.user_sessions ALTER user_agent TYPE text",
         "column \"user_agent\" is text in the source, character varying(100) "
         "in the target"},
        {"ALTER TABLE public.user_sessions ALTER user_agent SET NOT NULL",
         "ALTER TABLE public.user_sessions ALTER user_agent DROP NOT NULL",
         "column \"user_agent\" is nullable in the source, NOT NULL in the "
         "target"},
        {"ALTER TABLE public.user_sessions ADD \"Extra\" int",
         "ALTER TABLE public.user_sessions DROP \"Extra\"",
         "column \"Extra\" exists only in the target"},
        {"ALTER TABLE public.user_sessions DROP last_seen_at",
         "ALTER TABLE public.user_sessions ADD last_seen_at timestamptz",
         "column \"last_seen_at\" is missing in the target"},
    };
    const cfg_service *svc = shop_service("user_service");
    schema_outcome out[16];
    char err[1024], want[512];
    ck_assert(pgc_createdb(cluster, "t_shape"));
    sync_opts o = {.finish = true};
    schema_free(sync_service(SHOP_DB, "t_shape", shop, svc, o, out, NULL));
    /* users is missing: a failed prepare must not leave it created. */
    ck_assert(pgc_exec(cluster, "t_shape", "DROP TABLE public.users CASCADE"));
    PGconn *src = pgc_connect(cluster, SHOP_DB);
    PGconn *tgt = pgc_connect(cluster, "t_shape");
    schema_plan *p = schema_read(src, shop, svc, err, sizeof err);
    ck_assert_msg(p, "%s", err);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(tgt, cases[i].change);
        ck_assert(!schema_prepare_target(tgt, p, out, err, sizeof err));
        snprintf(want, sizeof want, "service user_service: table "
                 "public.user_sessions exists in the target with another "
                 "shape: %s", cases[i].diff);
        ck_assert_str_eq(err, want);
        ck_assert_int_eq(PQtransactionStatus(tgt), PQTRANS_IDLE);
        expect("t_shape", "SELECT to_regclass('public.users') IS NULL", NULL,
               "t");
        run(tgt, cases[i].undo);
    }
    /* Put right, the same plan goes through. */
    ck_assert_msg(schema_prepare_target(tgt, p, out, err, sizeof err), "%s",
                  err);
    ck_assert_int_eq(out[0], SCHEMA_CREATED);
    ck_assert_int_eq(out[2], SCHEMA_EXISTS_EMPTY);
    schema_free(p);
    PQfinish(src);
    PQfinish(tgt);
}
END_TEST

/*
 * A crash between prepare and the finish phases: the next run finds its
 * own half-built tables by their marker and completes them.
 */
START_TEST(half_built_tables_are_finished)
{
    const cfg_service *svc = shop_service("user_service");
    schema_outcome out[16];
    char err[1024];
    ck_assert(pgc_createdb(cluster, "t_resume"));
    PGconn *src = pgc_connect(cluster, SHOP_DB);
    PGconn *tgt = pgc_connect(cluster, "t_resume");
    schema_plan *p = schema_read(src, shop, svc, err, sizeof err);
    ck_assert_msg(p && schema_prepare_target(tgt, p, out, err, sizeof err),
                  "%s", err);
    copy_rows(src, tgt, p, 0);
    ck_assert_msg(schema_finish_table(tgt, p, 0, err, sizeof err), "%s", err);
    copy_rows(src, tgt, p, 1);
    schema_free(p);                     /* the crash */
    PQfinish(src);
    PQfinish(tgt);
    expect("t_resume", MARKERS, NULL, "3");
    expect("t_resume", "SELECT count(*) FROM pg_index WHERE indrelid = "
           "'public.user_preferences'::regclass", NULL, "0");

    sync_opts o = {.copy = true, .finish = true};
    p = sync_service(SHOP_DB, "t_resume", shop, svc, o, out, NULL);
    ck_assert_int_eq(out[0], SCHEMA_EXISTS_ROWS);
    ck_assert_int_eq(out[1], SCHEMA_EXISTS_ROWS);
    ck_assert_int_eq(out[2], SCHEMA_EXISTS_EMPTY);
    check_tables("t_resume", svc);
    check_sequences("t_resume", svc);
    schema_free(p);
}
END_TEST

/* Source tables that cannot be synced are named, and the caller's
 * transaction survives the failed reads. */
START_TEST(unusable_source_tables)
{
    static const char yaml[] =
        "name: misc\n"
        "source:\n  dsn: \"dbname=misc\"\n"
        "services:\n"
        "  a:\n    owned_tables: [nope]\n"
        "    target:\n      postgres: \"dbname=a\"\n"
        "  b:\n    owned_tables: [parted]\n"
        "    target:\n      postgres: \"dbname=b\"\n"
        "  c:\n    owned_tables: [\"\\\"A View\\\"\"]\n"
        "    target:\n      postgres: \"dbname=c\"\n";
    static const char *const want[] = {
        "service a: table public.nope: does not exist in the source",
        "service b: table public.parted: has partition public.parted_f, "
        "which is not a table (relkind 'f') and which cleave cannot create",
        "service c: table public.\"A View\": is not a table in the source "
        "(relkind 'v')",
    };
    char err[1024];
    cfg *c = cfg_parse(yaml, strlen(yaml), "misc.yaml", err, sizeof err);
    ck_assert_msg(c, "%s", err);
    ck_assert(pgc_createdb(cluster, "misc"));
    ck_assert(pgc_exec(cluster, "misc",
                       "CREATE TABLE parted (id int) PARTITION BY RANGE (id);"
                       "CREATE EXTENSION file_fdw;"
                       "CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;"
                       "CREATE FOREIGN TABLE parted_f PARTITION OF parted "
                       "FOR VALUES FROM (0) TO (10) SERVER files "
                       "OPTIONS (filename '/dev/null');"
                       "CREATE VIEW \"A View\" AS SELECT 1 AS x"));
    PGconn *src = pgc_connect(cluster, "misc");
    run(src, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    for (size_t i = 0; i < c->n_services; i++) {
        ck_assert_ptr_null(schema_read(src, c, &c->services[i], err,
                                       sizeof err));
        ck_assert_str_eq(err, want[i]);
        ck_assert_int_eq(PQtransactionStatus(src), PQTRANS_INTRANS);
        run(src, "SELECT 1");
    }
    run(src, "COMMIT");
    PQfinish(src);
    cfg_free(c);
}
END_TEST

/* ------------------------------------------------------------ hostile */

static const char odd_schema[] =
    "CREATE SCHEMA \"Odd \"\"Schema\";"
    "CREATE TYPE \"Odd \"\"Schema\".\"Mood Type\" AS ENUM "
    "  ('sad', 'o''k', 'Happy Days');"
    "CREATE DOMAIN public.\"Pos'Int\" AS integer DEFAULT 1 NOT NULL "
    "  CONSTRAINT \"pos \"\"check\"\"\" CHECK (VALUE > 0);"
    "CREATE TYPE \"Odd \"\"Schema\".pair AS "
    "  (lo public.\"Pos'Int\", moods \"Odd \"\"Schema\".\"Mood Type\"[]);"
    "CREATE SEQUENCE \"Odd \"\"Schema\".\"Tick Seq\" AS integer "
    "  INCREMENT BY 5 START WITH 100 MAXVALUE 100000 CYCLE;"
    "CREATE TABLE \"Odd \"\"Schema\".\"We'ird T\" ("
    "  id serial PRIMARY KEY,"
    "  \"select\" text COLLATE \"C\" NOT NULL DEFAULT 'it''s',"
    "  mood \"Odd \"\"Schema\".\"Mood Type\" DEFAULT 'o''k',"
    "  moods \"Odd \"\"Schema\".\"Mood Type\"[],"
    "  p \"Odd \"\"Schema\".pair,"
    "  n public.\"Pos'Int\","
    "  tick integer DEFAULT nextval('\"Odd \"\"Schema\".\"Tick Seq\"'),"
    "  \"Twice N\" integer GENERATED ALWAYS AS (n * 2) STORED,"
    "  CONSTRAINT \"sel \"\"unique\"\"\" UNIQUE (\"select\"),"
    "  CONSTRAINT \"n small\" CHECK (n < 1000));"
    "CREATE INDEX \"lower sel\" ON \"Odd \"\"Schema\".\"We'ird T\" "
    "  (lower(\"select\"));"
    "CREATE UNIQUE INDEX \"mood id\" ON \"Odd \"\"Schema\".\"We'ird T\" "
    "  (mood, id) WHERE mood IS NOT NULL;"
    "ALTER TABLE \"Odd \"\"Schema\".\"We'ird T\" REPLICA IDENTITY "
    "  USING INDEX \"sel \"\"unique\"\"\";"
    "INSERT INTO \"Odd \"\"Schema\".\"We'ird T\""
    "  (\"select\", mood, moods, p, n)"
    "  VALUES ('ab', 'sad', '{sad,\"Happy Days\"}', ROW(3, '{o''k}'), 7),"
    "         ('quote''s', NULL, NULL, NULL, 9);"
    /* Both broken by the rows above: they must wait for the data. */
    "ALTER TABLE \"Odd \"\"Schema\".\"We'ird T\" ADD CONSTRAINT \"long sel\" "
    "  CHECK (length(\"select\") > 3) NOT VALID;"
    "ALTER DOMAIN public.\"Pos'Int\" ADD CONSTRAINT \"under 8\" "
    "  CHECK (VALUE < 8) NOT VALID;"
    "CREATE TABLE \"Odd \"\"Schema\".\"Child Tab\" ("
    "  id bigint GENERATED ALWAYS AS IDENTITY (START WITH 7 INCREMENT BY 3) "
    "    PRIMARY KEY,"
    "  \"Parent\" integer NOT NULL REFERENCES \"Odd \"\"Schema\".\"We'ird T\" "
    "    (id) ON DELETE CASCADE,"
    "  note text);"
    "INSERT INTO \"Odd \"\"Schema\".\"Child Tab\" (\"Parent\", note) "
    "  VALUES (1, 'x'), (2, NULL), (1, 'z');"
    "COMMENT ON TABLE \"Odd \"\"Schema\".\"Child Tab\" IS 'children''s table';"
    "SELECT nextval('\"Odd \"\"Schema\".\"Tick Seq\"') "
    "  FROM generate_series(1, 4);";

static const char odd_yaml[] =
    "name: odd\n"
    "source:\n  dsn: \"dbname=odd\"\n"
    "services:\n"
    "  odd_service:\n"
    "    owned_tables: ['\"Odd \"\"Schema\".\"We''ird T\"',"
    " '\"Odd \"\"Schema\".\"Child Tab\"']\n"
    "    target:\n      postgres: \"dbname=odd_target\"\n";

#define ODD_T "\"Odd \"\"Schema\".\"We'ird T\""
#define ODD_CHILD "\"Odd \"\"Schema\".\"Child Tab\""

START_TEST(hostile_names)
{
    char err[1024];
    cfg *c = cfg_parse(odd_yaml, strlen(odd_yaml), "odd.yaml", err, sizeof err);
    ck_assert_msg(c, "%s", err);
    const cfg_service *svc = &c->services[0];
    ck_assert_str_eq(svc->owned[0].schema, "Odd \"Schema");
    ck_assert_str_eq(svc->owned[0].name, "We'ird T");
    ck_assert(pgc_createdb(cluster, "odd") && pgc_createdb(cluster, "odd_t"));
    ck_assert(pgc_exec(cluster, "odd", odd_schema));

    schema_outcome out[2];
    sync_opts o = {.copy = true, .finish = true};
    schema_plan *p = sync_service("odd", "odd_t", c, svc, o, out, NULL);
    ck_assert_int_eq(out[0], SCHEMA_CREATED);
    ck_assert_int_eq(out[1], SCHEMA_CREATED);
    ck_assert_str_eq(schema_copy_columns(p, 0),
                     "\"id\", \"select\", \"mood\", \"moods\", \"p\", \"n\", "
                     "\"tick\"");
    ck_assert_uint_eq(schema_skipped_fks(p), 0);
    const char *tables[] = {ODD_T, ODD_CHILD};
    for (int i = 0; i < 2; i++) {
        same("odd", "odd_t", "columns", COLUMNS_SIG, tables[i], NULL);
        same("odd", "odd_t", "constraints", CONSTRAINTS_SIG, tables[i], NULL);
        same("odd", "odd_t", "indexes", INDEXES_SIG, tables[i], NULL);
        same("odd", "odd_t", "replica identity", IDENTITY_SIG, tables[i], NULL);
        same("odd", "odd_t", "foreign keys", FKS_ALL, tables[i], NULL);
        same("odd", "odd_t", "comment", COMMENT_SIG, tables[i], NULL);
        same("odd", "odd_t", "rows", ROWS_SIG, tables[i], NULL);
    }
    expect("odd_t", IDENTITY_SIG, ODD_T, "i");
    expect("odd_t", "SELECT count(*) FROM pg_constraint WHERE conname = "
           "'long sel' AND NOT convalidated", NULL, "1");
    same("odd", "odd_t", "enum", ENUM_SIG,
         "\"Odd \"\"Schema\".\"Mood Type\"", NULL);
    same("odd", "odd_t", "domain", DOMAIN_SIG, "public.\"Pos'Int\"", NULL);
    same("odd", "odd_t", "composite", COMPOSITE_SIG,
         "\"Odd \"\"Schema\".pair", NULL);
    const char *seqs[] = {"\"Odd \"\"Schema\".\"Tick Seq\"",
                          "\"Odd \"\"Schema\".\"We'ird T_id_seq\"",
                          "\"Odd \"\"Schema\".\"Child Tab_id_seq\""};
    for (int i = 0; i < 3; i++) {
        same("odd", "odd_t", "sequence", SEQUENCE_SIG, seqs[i], NULL);
        char *a = seq_value("odd", seqs[i]), *b = seq_value("odd_t", seqs[i]);
        ck_assert_msg(strcmp(a, b) == 0, "%s: %s vs %s", seqs[i], a, b);
        free(a);
        free(b);
    }
    /* The serial column's sequence belongs to it, as in the source. */
    expect("odd_t", "SELECT pg_get_serial_sequence($1, 'id')", ODD_T,
           "\"Odd \"\"Schema\".\"We'ird T_id_seq\"");
    /* Defaults and the generated column work in the target. */
    ck_assert(pgc_exec(cluster, "odd_t",
                       "INSERT INTO " ODD_T " (n) VALUES (5)"));
    expect("odd_t", "SELECT format('%s %s %s %s', \"select\", mood, tick,"
           " \"Twice N\") FROM " ODD_T " WHERE n = 5", NULL, "it's o'k 130 10");
    schema_free(p);

    /* Again: everything is there, nothing is made twice. */
    p = sync_service("odd", "odd_t", c, svc, o, out, NULL);
    ck_assert_int_eq(out[0], SCHEMA_EXISTS_ROWS);
    ck_assert_int_eq(out[1], SCHEMA_EXISTS_ROWS);
    schema_free(p);
    cfg_free(c);
}
END_TEST

int main(void)
{
    char path[1024], err[512];
    cluster = pgc_start(NULL);
    if (!cluster)
        return EXIT_FAILURE;
    snprintf(path, sizeof path, "%s/config/examples/shop.yaml", pgc_srcdir());
    shop = cfg_load(path, err, sizeof err);
    if (!shop) {
        fprintf(stderr, "%s\n", err);
        pgc_stop(cluster);
        return EXIT_FAILURE;
    }
    /* Sequences away from their start, one not called yet. */
    if (!pgc_load_shop(cluster, SHOP_DB, 1, true) ||
        !pgc_exec(cluster, SHOP_DB,
                  "SELECT nextval('shipping_addresses_id_seq') "
                  "  FROM generate_series(1, 3);"
                  "SELECT nextval(pg_get_serial_sequence('users', 'id')) "
                  "  FROM generate_series(1, 5);"
                  "SELECT setval('notification_templates_id_seq', 77, false);"
                  "ANALYZE")) {
        pgc_stop(cluster);
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("sync");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, shop_service_created, 0,
                        (int)(sizeof shop_cases / sizeof shop_cases[0]));
    tcase_add_test(tc, shop_skipped_fk_statement);
    tcase_add_test(tc, second_run_uses_existing);
    tcase_add_test(tc, other_shape_is_an_error);
    tcase_add_test(tc, half_built_tables_are_finished);
    tcase_add_test(tc, unusable_source_tables);
    tcase_add_test(tc, hostile_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cfg_free(shop);
    pgc_stop(cluster);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
