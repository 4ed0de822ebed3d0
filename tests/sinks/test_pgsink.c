/*
 * pgsink against a real target: one throwaway cluster, a fresh database
 * per test, relation snapshots and change events built by hand the way
 * the stream loop builds them from pgoutput, and every claim checked with
 * SQL on the target; the initial sync's loader (pgload) likewise. Ends
 * with a throughput figure (printed, not asserted).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decoder/pgoutput.h"
#include "sinks/pgsink.h"
#include "tests/support/pgcluster.h"

static pgc_cluster *cluster;

/* ------------------------------------------------------------ fixture */

/*
 * How source transactions committed with more queued group into target
 * transactions; the sink's batch window is pinned so that the machine's
 * load never decides it. WHOLE (the default) keeps them in one until
 * none is queued; EACH commits each alone, as when the window closes
 * between every two; TIMED leaves the daemon's window.
 */
typedef enum grouping { WHOLE, EACH, TIMED } grouping;
/* After the name of a test's database: a test runs as WHOLE and EACH. */
static const char *const grouping_suffix[] = {"", "_each", ""};

enum { WINDOW_NEVER = 24 * 3600 * 1000 };   /* longer than any test */

typedef struct fixture {
    char db[64];
    grouping grouping;
    char *dsn;
    cfg config;
    cfg_service svc;
    sink *s;
    lsn_t opened_at;         /* durable as open() reported it */
} fixture;

/*
 * The target's own database stands in for the source: a column it lacks
 * is unknown there too, so it is added as the stream describes it
 * (nullable, no default). add_column_from_source has a source of its own.
 */
static void fx_new_sink(fixture *f, cfg_conflict policy)
{
    f->config = (cfg){.name = "test", .source.dsn = f->dsn};
    f->svc = (cfg_service){.name = f->db, .target_postgres = f->dsn,
                           .on_conflict = policy};
    f->s = pgsink_new(&f->config, &f->svc);
    ck_assert_ptr_nonnull(f->s);
    if (f->grouping != TIMED)
        pgsink_set_batch_ms(f->s, f->grouping == EACH ? 0 : WINDOW_NEVER);
}

static void fx_open(fixture *f)
{
    ck_assert_msg(f->s->ops->open(f->s, &f->opened_at), "open: %s",
                  f->s->error);
}

/* A fresh database `db` with `sql` run in it, and an open sink on it. */
static void fx_setup_as(fixture *f, grouping g, const char *db,
                        cfg_conflict policy, const char *sql)
{
    memset(f, 0, sizeof *f);
    f->grouping = g;
    snprintf(f->db, sizeof f->db, "%s%s", db, grouping_suffix[g]);
    ck_assert(pgc_createdb(cluster, f->db));
    if (sql)
        ck_assert(pgc_exec(cluster, f->db, sql));
    f->dsn = pgc_dsn(cluster, f->db);
    fx_new_sink(f, policy);
    fx_open(f);
}

static void fx_setup(fixture *f, const char *db, cfg_conflict policy,
                     const char *sql)
{
    fx_setup_as(f, WHOLE, db, policy, sql);
}

/*
 * The origin goes with the test: each holds one of the cluster's
 * max_replication_slots state slots for good otherwise.
 */
static void fx_done(fixture *f)
{
    f->s->ops->close(f->s);
    pgsink_free(f->s);
    char *origin = cfg_origin_name(&f->config, &f->svc);
    ck_assert_ptr_nonnull(origin);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT pg_replication_origin_drop(roname) "
             "FROM pg_replication_origin WHERE roname = '%s'", origin);
    (void)pgc_exec(cluster, f->db, sql);   /* some tests have no database */
    free(origin);
    free(f->dsn);
}

static void expect(const fixture *f, const char *sql, const char *want)
{
    char *got = pgc_query_value(cluster, f->db, sql);
    if (!want)
        ck_assert_msg(!got, "%s: got '%s', want NULL", sql, got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: got '%s', want '%s'",
                      sql, got ? got : "(null)", want);
    free(got);
}

/* A flush whose durable position is read now, not when due. */
static lsn_t flush_ok(fixture *f)
{
    lsn_t durable = 0;
    atomic_store(&f->s->want_durable, true);
    ck_assert_msg(f->s->ops->flush(f->s, &durable), "flush: %s", f->s->error);
    return durable;
}

/* ------------------------------------------------------------ relations */

typedef struct colspec {
    const char *name;
    uint32_t type_oid;
    bool key;
} colspec;

enum { INT4 = 23, INT8 = 20, TEXT = 25, JSON = 114, POINT = 600,
       FLOAT4 = 700, BPCHAR = 1042, NUMERIC = 1700, TIMESTAMPTZ = 1184 };
/* numeric(12,2): (precision << 16 | scale) + VARHDRSZ */
enum { NUMERIC_12_2 = (12 << 16 | 2) + 4 };

static uint64_t rel_version = 1;

/* What a Relation message would have described. */
static sink_rel *mkrel(uint32_t oid, const char *schema, const char *name,
                       char replident, const colspec *cols, int ncols)
{
    pgo_column pc[64];
    ck_assert_int_le(ncols, 64);
    for (int i = 0; i < ncols; i++)
        pc[i] = (pgo_column){.flags = cols[i].key ? PGO_COLUMN_KEY : 0,
                             .name = (char *)cols[i].name,
                             .type_oid = cols[i].type_oid, .typmod = -1};
    pgo_relation r = {.oid = oid, .nspname = (char *)schema,
                      .relname = (char *)name, .replident = replident,
                      .ncols = (uint16_t)ncols, .cols = pc};
    sink_rel *rel = sink_rel_from_pgo(&r, rel_version++, NULL);
    ck_assert_ptr_nonnull(rel);
    return rel;
}

/*
 * Column i's typmod, and the name a Type message gave its type (NULL for
 * a built-in one), before the snapshot is handed to the sink.
 */
static void set_type(sink_rel *rel, uint16_t i, int32_t typmod,
                     const char *type_name)
{
    ck_assert_uint_lt(i, rel->ncols);
    rel->cols[i].typmod = typmod;
    if (type_name) {
        rel->cols[i].type_name = strdup(type_name);
        ck_assert_ptr_nonnull(rel->cols[i].type_name);
    }
}

#define COLS(...) (const colspec[]){__VA_ARGS__}, \
    (int)(sizeof((const colspec[]){__VA_ARGS__}) / sizeof(colspec))

/* The relation as pgoutput would send it, read from the target catalog. */
static sink_rel *catalog_rel(const fixture *f, const char *qualified)
{
    PGconn *conn = pgc_connect(cluster, f->db);
    ck_assert_ptr_nonnull(conn);
    const char *params[] = {qualified};
    PGresult *res = PQexecParams(conn,
        "SELECT a.attname, a.atttypid, c.relreplident, c.oid, n.nspname, "
        "  c.relname, c.relreplident = 'f' OR EXISTS (SELECT 1 FROM pg_index i"
        "  WHERE i.indrelid = c.oid AND a.attnum = ANY (i.indkey) AND "
        "  ((c.relreplident = 'd' AND i.indisprimary) OR "
        "   (c.relreplident = 'i' AND i.indisreplident))), a.atttypmod "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.oid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "  AND a.attgenerated = '' ORDER BY a.attnum",
        1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0,
                  "%s: %s", qualified, PQerrorMessage(conn));
    colspec cols[64] = {{0}};
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        cols[i] = (colspec){PQgetvalue(res, i, 0),
                            (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10),
                            PQgetvalue(res, i, 6)[0] == 't'};
    sink_rel *rel = mkrel((uint32_t)strtoul(PQgetvalue(res, 0, 3), NULL, 10),
                          PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5),
                          PQgetvalue(res, 0, 2)[0], cols, n);
    for (int i = 0; i < n; i++)
        set_type(rel, (uint16_t)i,
                 (int32_t)strtol(PQgetvalue(res, i, 7), NULL, 10), NULL);
    PQclear(res);
    PQfinish(conn);
    return rel;
}

/* ------------------------------------------------------------ events */

/* In a value list: NULL is SQL NULL, U an unchanged TOAST value. */
static const char UNCHANGED[] = "(unchanged toast)";
#define U UNCHANGED
#define V(...) ((const char *const[]){__VA_ARGS__})

static pgo_tuple tuple(pgo_value *buf, const sink_rel *rel,
                       const char *const *vals)
{
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (!vals[i])
            buf[i] = (pgo_value){.kind = 'n'};
        else if (vals[i] == UNCHANGED)
            buf[i] = (pgo_value){.kind = 'u'};
        else
            buf[i] = (pgo_value){.kind = 't', .len = (uint32_t)strlen(vals[i]),
                                 .data = (const uint8_t *)vals[i]};
    }
    return (pgo_tuple){.ncols = rel->ncols, .cols = buf};
}

static sink_event *change(sink_op op, sink_rel *rel, char old_kind,
                          const char *const *oldv, const char *const *newv)
{
    pgo_value ob[64], nb[64];
    pgo_tuple ot = oldv ? tuple(ob, rel, oldv) : (pgo_tuple){0};
    pgo_tuple nt = newv ? tuple(nb, rel, newv) : (pgo_tuple){0};
    sink_event *ev = sink_event_change(op, rel, 0, old_kind,
                                       oldv ? &ot : NULL, newv ? &nt : NULL);
    ck_assert_ptr_nonnull(ev);
    return ev;
}

static sink_event *ins(sink_rel *rel, const char *const *vals)
{
    return change(SINK_INSERT, rel, 0, NULL, vals);
}

static sink_event *upd(sink_rel *rel, char old_kind, const char *const *oldv,
                       const char *const *newv)
{
    return change(SINK_UPDATE, rel, old_kind, oldv, newv);
}

static sink_event *del(sink_rel *rel, char old_kind, const char *const *oldv)
{
    return change(SINK_DELETE, rel, old_kind, oldv, NULL);
}

/* Source positions: each transaction gets the next commit and end LSN. */
static lsn_t lsn_next = 0x3000028;
static lsn_t last_commit, last_end;

/*
 * One source transaction through the sink (BEGIN, changes, COMMIT); the
 * events are freed. False where the sink refused, as the worker sees it.
 */
static bool run_txn(sink *s, bool more, sink_event **evs, int n)
{
    last_commit = lsn_next;
    last_end = lsn_next + 0x38;
    lsn_next += 0x1000;
    sink_event *b = sink_event_txn(SINK_BEGIN, 700, last_commit, 0,
                                   1700000000000000);
    bool ok = s->ops->begin(s, b);
    sink_event_free(b);
    for (int i = 0; i < n; i++) {
        evs[i]->commit_lsn = last_commit;
        ok = ok && s->ops->change(s, evs[i]);
        sink_event_free(evs[i]);
    }
    sink_event *c = sink_event_txn(SINK_COMMIT, 700, last_commit, last_end,
                                   1700000000123456);
    ok = ok && s->ops->commit(s, c, more);
    sink_event_free(c);
    return ok;
}

#define EVS(...) (sink_event *[]){__VA_ARGS__}, \
    (int)(sizeof((sink_event *[]){__VA_ARGS__}) / sizeof(sink_event *))
#define TXN(f, more, ...) \
    ck_assert_msg(run_txn((f)->s, more, EVS(__VA_ARGS__)), "%s", (f)->s->error)

static const char *lsn_text(lsn_t lsn)
{
    static char buf[LSN_STRLEN];
    return lsn_format(lsn, buf);
}

/* ------------------------------------------------------------ tests */

static const char ITEMS_SQL[] =
    "CREATE TABLE items (id int PRIMARY KEY, name text, qty int)";

static sink_rel *items_rel(void)
{
    return mkrel(16001, "public", "items", 'd',
                 COLS({"id", INT4, true}, {"name", TEXT, false},
                      {"qty", INT4, false}));
}

START_TEST(pk_insert_update_delete)
{
    fixture f;
    fx_setup(&f, "t_pk", CFG_CONFLICT_ERROR, ITEMS_SQL);
    ck_assert_uint_eq(f.opened_at, 0);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "apple", "3")), ins(r, V("2", "pear", NULL)));
    expect(&f, "SELECT string_agg(id || ':' || name || ':' || "
               "coalesce(qty::text, 'null'), ',' ORDER BY id) FROM items",
           "1:apple:3,2:pear:null");
    TXN(&f, false, upd(r, 0, NULL, V("1", "apple", "5")),
        del(r, 'K', V("2", NULL, NULL)));
    expect(&f, "SELECT string_agg(id || ':' || name || ':' || qty, ',') "
               "FROM items", "1:apple:5");
    ck_assert_uint_eq(flush_ok(&f), last_end);
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 4);
    ck_assert_uint_eq(atomic_load(&f.s->txns_applied), 2);
    ck_assert_uint_eq(atomic_load(&f.s->conflicts), 0);
    /* The position is the origin's, in the target's own catalog. */
    expect(&f, "SELECT remote_lsn FROM pg_replication_origin_status s JOIN "
               "pg_replication_origin o ON o.roident = s.local_id "
               "WHERE o.roname = 'cleave_test_t_pk'", lsn_text(last_end));
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(update_changes_key)
{
    fixture f;
    fx_setup(&f, "t_key", CFG_CONFLICT_ERROR,
             "CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b))");
    sink_rel *r = mkrel(16002, "public", "pairs", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true},
                             {"v", TEXT, false}));
    TXN(&f, false, ins(r, V("1", "1", "x")), ins(r, V("1", "2", "y")));
    TXN(&f, false, upd(r, 'K', V("1", "1", NULL), V("7", "8", "moved")));
    expect(&f, "SELECT string_agg(a || '/' || b || '=' || v, ',' ORDER BY a) "
               "FROM pairs", "1/2=y,7/8=moved");
    /* Only key columns, unchanged: nothing to set, but the row must exist. */
    sink_rel *k = mkrel(16003, "public", "pairs", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    ck_assert(pgc_exec(cluster, f.db, "ALTER TABLE pairs DROP COLUMN v"));
    TXN(&f, false, upd(k, 0, NULL, V("7", "8")));
    expect(&f, "SELECT count(*) FROM pairs", "2");
    sink_rel_unref(r);
    sink_rel_unref(k);
    fx_done(&f);
}
END_TEST

START_TEST(unchanged_toast_kept)
{
    fixture f;
    fx_setup(&f, "t_toast", CFG_CONFLICT_ERROR,
             "CREATE TABLE docs (id int PRIMARY KEY, body text, note text)");
    sink_rel *r = mkrel(16004, "public", "docs", 'd',
                        COLS({"id", INT4, true}, {"body", TEXT, false},
                             {"note", TEXT, false}));
    char *big = malloc(20001);
    for (int i = 0; i < 20000; i++)
        big[i] = (char)('a' + (i * 7919) % 26);
    big[20000] = '\0';
    TXN(&f, false, ins(r, V("1", big, "first")));
    TXN(&f, false, upd(r, 0, NULL, V("1", U, "second")));
    expect(&f, "SELECT length(body) || ' ' || note FROM docs", "20000 second");
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT substr(body, 19990) FROM docs");
    expect(&f, sql, big + 19989);
    free(big);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(full_identity_duplicates_and_nulls)
{
    fixture f;
    fx_setup(&f, "t_full", CFG_CONFLICT_ERROR,
             "CREATE TABLE log (a int, b text, c int);"
             "ALTER TABLE log REPLICA IDENTITY FULL");
    sink_rel *r = mkrel(16005, "public", "log", 'f',
                        COLS({"a", INT4, true}, {"b", TEXT, true},
                             {"c", INT4, true}));
    TXN(&f, false, ins(r, V("1", "x", NULL)), ins(r, V("1", "x", NULL)),
        ins(r, V("2", NULL, NULL)));
    /* Two identical rows: a DELETE takes exactly one. */
    TXN(&f, false, del(r, 'O', V("1", "x", NULL)));
    expect(&f, "SELECT count(*) FROM log WHERE a = 1", "1");
    /* NULLs match NULLs. */
    TXN(&f, false, upd(r, 'O', V("2", NULL, NULL), V("2", "y", NULL)));
    expect(&f, "SELECT b FROM log WHERE a = 2", "y");
    TXN(&f, false, ins(r, V("1", "x", NULL)),
        upd(r, 'O', V("1", "x", NULL), V("1", "x", "7")));
    expect(&f, "SELECT string_agg(coalesce(c::text, 'null'), ',' ORDER BY c) "
               "FROM log WHERE a = 1", "7,null");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(full_identity_json)
{
    fixture f;
    fx_setup(&f, "t_json", CFG_CONFLICT_ERROR,
             "CREATE TABLE events (id int, doc json, at point);"
             "ALTER TABLE events REPLICA IDENTITY FULL");
    sink_rel *r = mkrel(16006, "public", "events", 'f',
                        COLS({"id", INT4, true}, {"doc", JSON, true},
                             {"at", POINT, true}));
    TXN(&f, false, ins(r, V("1", "{\"a\": 1,  \"b\": [1, 2]}", "(1,2)")),
        ins(r, V("2", "{\"a\": 2}", NULL)));
    TXN(&f, false, upd(r, 'O', V("1", "{\"a\": 1,  \"b\": [1, 2]}", "(1,2)"),
                       V("1", "{\"a\":   9}", "(3,4)")));
    expect(&f, "SELECT doc::text || ' ' || at::text FROM events WHERE id = 1",
           "{\"a\":   9} (3,4)");
    TXN(&f, false, del(r, 'O', V("2", "{\"a\": 2}", NULL)));
    expect(&f, "SELECT count(*) FROM events", "1");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(truncate_restart_identity_cascade)
{
    fixture f;
    fx_setup(&f, "t_trunc", CFG_CONFLICT_ERROR,
             "CREATE TABLE seq_t (id serial PRIMARY KEY, v text);"
             "CREATE TABLE extra (id int PRIMARY KEY);"
             "CREATE TABLE child (id int PRIMARY KEY, "
             "  seq_id int REFERENCES seq_t (id));"
             "INSERT INTO seq_t (v) VALUES ('a'), ('b'), ('c');"
             "INSERT INTO extra VALUES (1), (2);"
             "INSERT INTO child VALUES (1, 1), (2, 3)");
    sink_rel *a = mkrel(16007, "public", "seq_t", 'd',
                        COLS({"id", INT4, true}, {"v", TEXT, false}));
    sink_rel *b = mkrel(16008, "public", "extra", 'd',
                        COLS({"id", INT4, true}));
    sink_rel *both[] = {a, b};
    TXN(&f, false, sink_event_truncate(0, PGO_TRUNCATE_RESTART_IDENTITY |
                                              PGO_TRUNCATE_CASCADE, both, 2));
    /* child was not listed: CASCADE reached it through its foreign key. */
    expect(&f, "SELECT (SELECT count(*) FROM seq_t) + "
               "(SELECT count(*) FROM extra) + (SELECT count(*) FROM child)",
           "0");
    ck_assert(pgc_exec(cluster, f.db, "INSERT INTO seq_t (v) VALUES ('new')"));
    expect(&f, "SELECT id FROM seq_t", "1");
    sink_rel_unref(a);
    sink_rel_unref(b);
    fx_done(&f);
}
END_TEST

START_TEST(hostile_names)
{
    fixture f;
    fx_setup(&f, "t_names", CFG_CONFLICT_ERROR,
             "CREATE SCHEMA \"We;ird \"\"Schema\"\"\";"
             "CREATE TABLE \"We;ird \"\"Schema\"\"\".\"Tab'le; DROP TABLE x--\" ("
             "  \"select\" int PRIMARY KEY, \"Mixed Case\" text,"
             "  \"quo\"\"te\" text, \"ñandú €\" text, \"a;b\" int)");
    sink_rel *r = mkrel(16009, "We;ird \"Schema\"", "Tab'le; DROP TABLE x--",
                        'd',
                        COLS({"select", INT4, true}, {"Mixed Case", TEXT, false},
                             {"quo\"te", TEXT, false}, {"ñandú €", TEXT, false},
                             {"a;b", INT4, false}));
    TXN(&f, false, ins(r, V("1", "'); DROP TABLE items; --", "\"q\"", "ü€",
                            "5")),
        ins(r, V("2", "x", NULL, NULL, NULL)));
    TXN(&f, false, upd(r, 'K', V("1", NULL, NULL, NULL, NULL),
                       V("10", "moved", "\"q\"", "ü€", "6")),
        del(r, 'K', V("2", NULL, NULL, NULL, NULL)));
    expect(&f, "SELECT \"select\" || '|' || \"Mixed Case\" || '|' || "
               "\"quo\"\"te\" || '|' || \"ñandú €\" || '|' || \"a;b\" FROM "
               "\"We;ird \"\"Schema\"\"\".\"Tab'le; DROP TABLE x--\"",
           "10|moved|\"q\"|ü€|6");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(batching_and_durable)
{
    fixture f;
    fx_setup(&f, "t_batch", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    for (int i = 0; i < 5; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", 2 * i);
        snprintf(b, sizeof b, "%d", 2 * i + 1);
        TXN(&f, true, ins(r, V(a, "n", "1")), ins(r, V(b, "n", "1")));
    }
    lsn_t batch_end = last_end;
    /* An empty source transaction still moves the position. */
    ck_assert(run_txn(f.s, true, NULL, 0));
    ck_assert_uint_gt(last_end, batch_end);
    /* One target transaction, still open while more are queued. */
    expect(&f, "SELECT count(*) FROM items", "0");
    ck_assert_uint_eq(atomic_load(&f.s->txns_applied), 0);
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT count(*) FROM items", "10");
    ck_assert_uint_eq(atomic_load(&f.s->txns_applied), 5);
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 10);
    /* Only empty transactions since: flush commits their position alone. */
    ck_assert(run_txn(f.s, false, NULL, 0));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A flush that reads the durable position only when due. */
static lsn_t lazy_flush(fixture *f)
{
    lsn_t durable = 0;
    ck_assert_msg(f->s->ops->flush(f->s, &durable), "flush: %s", f->s->error);
    return durable;
}

/*
 * A commit of a worker with nothing queued behind it does not flush the
 * target's WAL to read the durable position: the row is there at once,
 * the position follows when due (100 ms on), at once when someone
 * waits on it, and when the worker has been idle a while.
 */
START_TEST(durable_read_when_due_or_wanted)
{
    fixture f;
    fx_setup(&f, "t_lazy", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    /* The first commit after an open reads it (a new origin reads 0). */
    TXN(&f, false, ins(r, V("1", "a", "1")));
    ck_assert_uint_eq(lazy_flush(&f), last_end);
    double read_at = now_s();
    lsn_t first = last_end;
    TXN(&f, false, ins(r, V("2", "b", "1")));
    lsn_t durable = lazy_flush(&f);
    /* Only a test that took under the 100 ms can tell. */
    if (now_s() - read_at < 0.08)
        ck_assert_uint_eq(durable, first);
    expect(&f, "SELECT count(*) FROM items", "2");
    ck_assert_uint_eq(flush_ok(&f), last_end);   /* wanted */
    read_at = now_s();
    first = last_end;
    TXN(&f, false, ins(r, V("3", "c", "1")));
    durable = lazy_flush(&f);                    /* the wish was used up */
    if (now_s() - read_at < 0.08)
        ck_assert_uint_eq(durable, first);
    ck_assert_msg(f.s->ops->idle(f.s, &durable), "idle: %s", f.s->error);
    ck_assert_uint_eq(durable, last_end);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(reopen_is_exactly_once)
{
    fixture f;
    fx_setup(&f, "t_reopen", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "a", "1")));
    lsn_t first_commit = last_commit;
    TXN(&f, false, ins(r, V("2", "b", "1")));
    lsn_t durable = flush_ok(&f);
    ck_assert_uint_eq(durable, last_end);
    f.s->ops->close(f.s);
    fx_open(&f);
    ck_assert_uint_eq(f.opened_at, durable);
    /* A replay of what the target holds is recognised and skipped. */
    lsn_t saved = lsn_next;
    lsn_next = first_commit;
    TXN(&f, false, ins(r, V("1", "a", "1")));
    TXN(&f, false, ins(r, V("2", "b", "1")));
    lsn_next = saved;
    TXN(&f, false, ins(r, V("3", "c", "1")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT count(*) FROM items", "3");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/*
 * The source is lost after a transaction sent with more queued and half
 * of another: the rollback takes the open target transaction, with that
 * first one where it shares it (WHOLE); where the window committed it
 * alone (EACH) it stays, and the target's position with it.
 */
START_TEST(rollback_discards)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_rollback", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "kept", "1")));
    lsn_t durable = flush_ok(&f);
    TXN(&f, true, ins(r, V("2", "batched", "1")));
    lsn_t resume = g == WHOLE ? durable : last_end;
    sink_event *b = sink_event_txn(SINK_BEGIN, 9, lsn_next, 0, 0);
    ck_assert(f.s->ops->begin(f.s, b));
    sink_event *c = ins(r, V("3", "half", "1"));
    c->commit_lsn = lsn_next;
    ck_assert(f.s->ops->change(f.s, c));
    sink_event_free(b);
    sink_event_free(c);
    f.s->ops->rollback(f.s);
    ck_assert_uint_eq(flush_ok(&f), resume);
    expect(&f, "SELECT string_agg(name, ',' ORDER BY id) FROM items",
           g == WHOLE ? "kept" : "kept,batched");
    /* The next transaction starts afresh. */
    TXN(&f, false, ins(r, V("4", "after", "1")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(name, ',' ORDER BY id) FROM items",
           g == WHOLE ? "kept,after" : "kept,batched,after");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* The message names the table, the operation, the key and the LSN. */
static void assert_failure(const fixture *f, const char *op, const char *key,
                           const char *reason)
{
    const char *err = f->s->error;
    ck_assert_msg(strstr(err, "table=public.items"), "%s", err);
    ck_assert_msg(strstr(err, op), "%s", err);
    ck_assert_msg(strstr(err, key), "%s", err);
    ck_assert_msg(strstr(err, lsn_text(last_commit)), "%s", err);
    ck_assert_msg(strstr(err, reason), "%s", err);
    ck_assert_uint_eq(f->s->error_lsn, last_commit);
}

/*
 * A transaction that fails takes back the target transaction it is in:
 * with the one before it where they share it (WHOLE), alone where the
 * window committed that one first (EACH).
 */
START_TEST(conflict_error_duplicate)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_dup", CFG_CONFLICT_ERROR,
                "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
                "INSERT INTO items VALUES (1, 'there', 1)");
    sink_rel *r = items_rel();
    TXN(&f, true, ins(r, V("5", "batched", "1")));
    lsn_t resume = g == WHOLE ? 0 : last_end;
    ck_assert(!run_txn(f.s, false, EVS(ins(r, V("6", "same txn", "1")),
                                       ins(r, V("1", "dup", "1")))));
    assert_failure(&f, "op=INSERT", "key=(id=1)", "duplicate key");
    f.s->ops->close(f.s);
    fx_open(&f);
    ck_assert_uint_eq(f.opened_at, resume);
    expect(&f, "SELECT string_agg(name, ',' ORDER BY id) FROM items",
           g == WHOLE ? "there" : "there,batched");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* As conflict_error_duplicate, for an UPDATE and a DELETE. */
START_TEST(conflict_error_missing_row)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_missing", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "a", "1")));
    lsn_t durable = flush_ok(&f);
    TXN(&f, true, ins(r, V("7", "batched", "1")));
    lsn_t resume = g == WHOLE ? durable : last_end;
    ck_assert(!run_txn(f.s, false, EVS(upd(r, 0, NULL, V("42", "x", "1")))));
    assert_failure(&f, "op=UPDATE", "key=(id=42)", "no such row");
    f.s->ops->close(f.s);
    expect(&f, "SELECT string_agg(name, ',' ORDER BY id) FROM items",
           g == WHOLE ? "a" : "a,batched");
    fx_open(&f);
    ck_assert_uint_eq(f.opened_at, resume);
    ck_assert(!run_txn(f.s, false, EVS(del(r, 'K', V("43", NULL, NULL)))));
    assert_failure(&f, "op=DELETE", "key=(id=43)", "no such row");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* Fails a transaction of one change, then opens the sink again. */
static void refused(fixture *f, sink_event *ev)
{
    ck_assert(!run_txn(f->s, false, &ev, 1));
    ck_assert_msg(strstr(f->s->error, "no such row"), "%s", f->s->error);
    f->s->ops->close(f->s);
    fx_open(f);
}

/*
 * A missing row is refused whatever the statement's form: a whole-row
 * identity's UPDATE and DELETE, an UPDATE with nothing to set (a SELECT),
 * a keyed one of a table with a rule or a trigger. What matched is
 * applied and counted, and the rule and the trigger fire.
 */
START_TEST(missing_row_in_every_form)
{
    fixture f;
    fx_setup(&f, "t_missing_forms", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "CREATE TABLE log (a int, b text);"
             "ALTER TABLE log REPLICA IDENTITY FULL;"
             "CREATE TABLE seen (id int);"
             "CREATE TABLE ruled (id int PRIMARY KEY, v text);"
             "CREATE RULE keep AS ON UPDATE TO ruled "
             "  DO ALSO INSERT INTO seen VALUES (new.id);"
             "ALTER TABLE ruled ENABLE ALWAYS RULE keep;"
             "CREATE TABLE noted (id int PRIMARY KEY, v text);"
             "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS "
             "  $$BEGIN INSERT INTO seen VALUES (-new.id); RETURN new; END$$;"
             "CREATE TRIGGER note AFTER UPDATE ON noted "
             "  FOR EACH ROW EXECUTE FUNCTION note();"
             "ALTER TABLE noted ENABLE ALWAYS TRIGGER note");
    sink_rel *r = items_rel();
    sink_rel *l = mkrel(16005, "public", "log", 'f',
                        COLS({"a", INT4, true}, {"b", TEXT, true}));
    sink_rel *u = mkrel(16007, "public", "ruled", 'd',
                        COLS({"id", INT4, true}, {"v", TEXT, false}));
    sink_rel *t = mkrel(16008, "public", "noted", 'd',
                        COLS({"id", INT4, true}, {"v", TEXT, false}));
    TXN(&f, false, ins(r, V("1", "a", "1")), ins(l, V("1", "x")),
        ins(u, V("1", "a")), ins(t, V("2", "a")));
    refused(&f, upd(r, 0, NULL, V("42", U, U)));
    refused(&f, upd(l, 'O', V("2", "x"), V("2", "y")));
    refused(&f, del(l, 'O', V("1", "nope")));
    refused(&f, upd(u, 0, NULL, V("42", "b")));
    refused(&f, del(u, 'K', V("43", NULL)));
    refused(&f, upd(t, 0, NULL, V("42", "b")));
    TXN(&f, false, upd(r, 0, NULL, V("1", U, U)),
        upd(l, 'O', V("1", "x"), V("1", "y")), upd(u, 0, NULL, V("1", "b")),
        upd(t, 0, NULL, V("2", "b")));
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 8);
    expect(&f, "SELECT (SELECT b FROM log) || (SELECT v FROM ruled) || "
               "(SELECT v FROM noted) || (SELECT string_agg(id::text, ',' "
               "ORDER BY id) FROM seen)", "ybb-2,1");
    sink_rel_unref(t);
    sink_rel_unref(r);
    sink_rel_unref(l);
    sink_rel_unref(u);
    fx_done(&f);
}
END_TEST

/*
 * `n` inserts into items from id `first`, one of them (at `dup_at`, or
 * none when negative) the key 1 the target already has; `pad` bytes of
 * name each.
 */
static sink_event **run_of_inserts(sink_rel *r, int first, int n, int dup_at,
                                   size_t pad)
{
    sink_event **evs = calloc((size_t)n, sizeof *evs);
    char *name = malloc(pad + 1);
    ck_assert(evs && name);
    memset(name, 'x', pad);
    name[pad] = '\0';
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i == dup_at ? 1 : first + i);
        evs[i] = ins(r, V(id, name, "1"));
    }
    free(name);
    return evs;
}

static bool run_inserts(fixture *f, sink_rel *r, int n, int dup_at,
                        size_t pad)
{
    sink_event **evs = run_of_inserts(r, 100, n, dup_at, pad);
    lsn_t again = lsn_next;
    bool ok = run_txn(f->s, false, evs, n);
    lsn_next = again;        /* a replay brings the same transaction back */
    free(evs);
    return ok;
}

/*
 * A run of inserts goes as multi-row statements; one row of it that the
 * target refuses fails the transaction naming that row, as a statement
 * per row did, and the same transaction replayed once the target is
 * mended applies every row.
 */
START_TEST(run_with_failing_row)
{
    fixture f;
    fx_setup(&f, "t_run_fail", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (1, 'there', 1)");
    sink_rel *r = items_rel();
    ck_assert(!run_inserts(&f, r, 150, 70, 10));
    assert_failure(&f, "op=INSERT", "key=(id=1)", "duplicate key");
    ck_assert_msg(!strstr(f.s->error, "more rows"), "%s", f.s->error);
    f.s->ops->close(f.s);
    expect(&f, "SELECT count(*) FROM items", "1");
    ck_assert(pgc_exec(cluster, f.db, "DELETE FROM items"));
    fx_open(&f);
    ck_assert_msg(run_inserts(&f, r, 150, 70, 10), "%s", f.s->error);
    expect(&f, "SELECT count(*) || ':' || sum(id) FROM items",
           "150:26006");   /* 100..249 without 170, and 1 */
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 150);
    ck_assert_uint_eq(flush_ok(&f), last_end);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/*
 * Past the journal's bound (4 MB of changes) a failed run cannot be done
 * again in place: the sink fails at the run, and the replay goes a row at
 * a time, so the failure it reports then names the row.
 */
START_TEST(run_past_journal_fails_then_names_row)
{
    fixture f;
    fx_setup(&f, "t_run_big", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (1, 'there', 1)");
    sink_rel *r = items_rel();
    ck_assert(!run_inserts(&f, r, 120, 110, 100000));
    ck_assert_msg(strstr(f.s->error, "more rows in one INSERT"), "%s",
                  f.s->error);
    ck_assert_msg(strstr(f.s->error, "duplicate key"), "%s", f.s->error);
    f.s->ops->close(f.s);
    expect(&f, "SELECT count(*) FROM items", "1");
    fx_open(&f);
    ck_assert(!run_inserts(&f, r, 120, 110, 100000));
    assert_failure(&f, "op=INSERT", "key=(id=1)", "duplicate key");
    f.s->ops->close(f.s);
    ck_assert(pgc_exec(cluster, f.db, "DELETE FROM items"));
    fx_open(&f);
    ck_assert_msg(run_inserts(&f, r, 120, 110, 100000), "%s", f.s->error);
    expect(&f, "SELECT count(*) || ':' || sum(length(name)) FROM items",
           "120:12000000");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/*
 * Runs break where the table, the operation or the shape changes, so
 * changes of one key apply in their order: inserted, updated, deleted and
 * inserted again in one transaction, across tables, and across source
 * transactions that share a target one.
 */
START_TEST(run_keeps_order)
{
    fixture f;
    fx_setup(&f, "t_run_order", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "CREATE TABLE tags (a int, b int, PRIMARY KEY (a, b))");
    sink_rel *r = items_rel();
    sink_rel *t = mkrel(16012, "public", "tags", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    TXN(&f, true, ins(r, V("1", "a", "1")), ins(r, V("2", "b", "1")),
        ins(r, V("3", "c", NULL)), ins(t, V("1", "1")), ins(r, V("4", "d", "1")),
        upd(r, 0, NULL, V("2", "b2", "2")), del(r, 'K', V("3", NULL, NULL)),
        ins(r, V("3", "c2", "3")), ins(r, V("5", "e", "1")),
        upd(r, 0, NULL, V("5", "e2", "2")), del(r, 'K', V("1", NULL, NULL)),
        ins(t, V("1", "2")), del(t, 'K', V("1", "1")));
    TXN(&f, true, ins(r, V("6", "f", "1")), ins(r, V("1", "a2", "9")));
    TXN(&f, false, del(r, 'K', V("6", NULL, NULL)), ins(r, V("6", "f2", "6")),
        upd(r, 'K', V("4", NULL, NULL), V("7", "d", "1")));
    expect(&f, "SELECT string_agg(id || name || coalesce(qty::text, '-'), "
               "',' ORDER BY id) FROM items", "1a29,2b22,3c23,5e22,6f26,7d1");
    expect(&f, "SELECT string_agg(a || ':' || b, ',') FROM tags", "1:2");
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 18);
    ck_assert_uint_eq(flush_ok(&f), last_end);
    sink_rel_unref(r);
    sink_rel_unref(t);
    fx_done(&f);
}
END_TEST

/* n UPDATEs (qty = id * 2, name "u") or DELETEs of items first..first+n-1. */
static void updates_or_deletes(sink_event **evs, sink_rel *r, sink_op op,
                               int first, int n)
{
    for (int i = 0; i < n; i++) {
        char id[16], qty[16];
        snprintf(id, sizeof id, "%d", first + i);
        snprintf(qty, sizeof qty, "%d", 2 * (first + i));
        evs[i] = op == SINK_UPDATE ? upd(r, 0, NULL, V(id, "u", qty))
                                   : del(r, 'K', V(id, NULL, NULL));
    }
}

/*
 * Runs of UPDATEs and DELETEs by key go as one statement each; a key met
 * twice keeps its order (the later UPDATE wins), a missing row is named
 * as before, and a composite key of other types finds its rows too.
 */
START_TEST(run_of_updates_and_deletes)
{
    fixture f;
    fx_setup(&f, "t_run_upd", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items SELECT g, 'i', 0 FROM generate_series(1, 200) g;"
             "CREATE TABLE stock (sku text, wh bigint, n numeric(12,2), "
             "  PRIMARY KEY (sku, wh));"
             "INSERT INTO stock VALUES ('a', 1, 1), ('a', 2, 1), ('b', 1, 1)");
    sink_rel *r = items_rel();
    sink_rel *k = mkrel(16013, "public", "stock", 'd',
                        COLS({"sku", TEXT, true}, {"wh", INT8, true},
                             {"n", NUMERIC, false}));
    sink_event *evs[160];
    updates_or_deletes(evs, r, SINK_UPDATE, 1, 100);
    evs[100] = upd(r, 0, NULL, V("5", "again", "55"));
    updates_or_deletes(evs + 101, r, SINK_DELETE, 150, 50);
    evs[151] = upd(k, 0, NULL, V("a", "2", "7.125"));
    evs[152] = upd(k, 0, NULL, V("b", "1", "8"));
    evs[153] = del(k, 'K', V("a", "1", NULL));
    ck_assert_msg(run_txn(f.s, false, evs, 154), "%s", f.s->error);
    expect(&f, "SELECT count(*) || ':' || sum(qty) FROM items WHERE name = 'u'",
           "99:10090");   /* 2 * (1 + .. + 100) less id 5's 10 */
    expect(&f, "SELECT name || qty FROM items WHERE id = 5", "again55");
    expect(&f, "SELECT count(*) FROM items", "150");
    expect(&f, "SELECT string_agg(sku || wh || ':' || n, ',' ORDER BY sku) "
               "FROM stock", "a2:7.13,b1:8.00");
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 154);
    updates_or_deletes(evs, r, SINK_UPDATE, 1, 40);
    evs[40] = upd(r, 0, NULL, V("999", "nowhere", "1"));
    updates_or_deletes(evs + 41, r, SINK_UPDATE, 41, 20);
    ck_assert(!run_txn(f.s, false, evs, 61));
    assert_failure(&f, "op=UPDATE", "key=(id=999)", "no such row");
    f.s->ops->close(f.s);
    expect(&f, "SELECT count(*) FROM items WHERE qty = 1", "0");
    sink_rel_unref(r);
    sink_rel_unref(k);
    fx_done(&f);
}
END_TEST

/*
 * A target column of another type than the source's (a double for a
 * real, a text for a char(5)), as a team may have made it: a run of
 * UPDATEs stores what one UPDATE at a time does. Its parameters were
 * typed as the source's, so each value went through an assignment cast:
 * '0.3' became 0.300000011920929 and 'ab   ' lost its blanks.
 */
START_TEST(run_takes_the_target_types)
{
    fixture f;
    fx_setup(&f, "t_run_types", CFG_CONFLICT_ERROR,
             "CREATE TABLE meas (id int PRIMARY KEY, v double precision, "
             "c text)");
    sink_rel *r = mkrel(16014, "public", "meas", 'd',
                        COLS({"id", INT4, true}, {"v", FLOAT4, false},
                             {"c", BPCHAR, false}));
    set_type(r, 2, 5 + 4, NULL);
    TXN(&f, false, ins(r, V("1", "0.3", "ab   ")), ins(r, V("2", "1", "x")),
        ins(r, V("3", "1", "x")));
    TXN(&f, false, upd(r, 0, NULL, V("2", "0.3", "ab   ")),
        upd(r, 0, NULL, V("3", "0.3", "ab   ")));
    expect(&f, "SELECT string_agg(id || ':' || v || ':' || length(c), ',' "
               "ORDER BY id) FROM meas", "1:0.3:5,2:0.3:5,3:0.3:5");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------ binary values */

#define BIN_SQL                                                             \
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"                     \
    "CREATE DOMAIN mail AS varchar(40) CHECK (VALUE LIKE '%@%');"          \
    "CREATE TABLE bin_t (id int PRIMARY KEY, big int8, amount numeric(12,2),"\
    "  at timestamptz, doc jsonb, tags text[], raw bytea, m mood, addr mail,"\
    "  u uuid, ok bool, f float8)"

/* Rows of bin_t as SQL expressions: what pgoutput's binary form carries. */
static const char *const bin_rows[] = {
    "7, 9000000000, 12.5, '2024-02-29 23:59:59.999999+00', "
    "'{\"a\": [1, null, \"é\"]}', ARRAY['x', NULL, 'with \"quote\"'], "
    "'\\x00ff10', 'happy', 'a@b.c', '6ba7b810-9dad-11d1-80b4-00c04fd430c8', "
    "true, 'NaN'",
    "8, -1, -0.01, '1999-01-01 00:00:00+00', '[]', '{}', '', 'sad', "
    "'x@y', NULL, false, '-Infinity'",
    "7, NULL, 99999.99, 'infinity', 'null', ARRAY['€'], NULL, 'ok', "
    "NULL, NULL, NULL, 1.5e300",
};

/*
 * A change whose values are row `oldr` / `newr` of bin_rows (-1: none)
 * in the server's binary form, as a binary stream brings them; key_only
 * sends the old row's key alone.
 */
static sink_event *bin_change(const fixture *f, sink_op op, sink_rel *rel,
                              int oldr, int newr, bool key_only)
{
    PGconn *c = pgc_connect(cluster, f->db);
    ck_assert_ptr_nonnull(c);
    pgo_value vb[2][16];
    pgo_tuple t[2] = {{0}, {0}};
    PGresult *res[2] = {NULL, NULL};
    int rows[2] = {oldr, newr};
    for (int k = 0; k < 2; k++) {
        if (rows[k] < 0)
            continue;
        char sql[600];
        snprintf(sql, sizeof sql, "SELECT (ROW(%s)::bin_t).*", bin_rows[rows[k]]);
        res[k] = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
        ck_assert_msg(PQresultStatus(res[k]) == PGRES_TUPLES_OK, "%s: %s", sql,
                      PQerrorMessage(c));
        for (int i = 0; i < PQnfields(res[k]); i++)
            vb[k][i] = PQgetisnull(res[k], 0, i) || (key_only && k == 0 && i > 0)
                           ? (pgo_value){.kind = 'n'}
                           : (pgo_value){.kind = 'b',
                                         .len = (uint32_t)PQgetlength(res[k], 0, i),
                                         .data = (const uint8_t *)PQgetvalue(res[k], 0, i)};
        t[k] = (pgo_tuple){.ncols = (uint16_t)PQnfields(res[k]), .cols = vb[k]};
    }
    sink_event *ev = sink_event_change(op, rel, 0, oldr < 0 ? 0 : key_only ? 'K' : 'O',
                                       oldr < 0 ? NULL : &t[0],
                                       newr < 0 ? NULL : &t[1]);
    ck_assert_ptr_nonnull(ev);
    ck_assert(ev->binary);      /* every bin_t row has a value that is not null */
    PQclear(res[0]);
    PQclear(res[1]);
    PQfinish(c);
    return ev;
}

/* bin_t's row `id` reads as bin_rows[r] would. */
static void expect_bin_row(const fixture *f, int id, int r)
{
    char sql[800];
    snprintf(sql, sizeof sql, "SELECT (SELECT t::text FROM bin_t t WHERE id = "
             "%d) IS NOT DISTINCT FROM ROW(%s)::bin_t::text", id, bin_rows[r]);
    expect(f, sql, "t");
}

/*
 * Values in their binary form (pgoutput's `binary` option) go to the
 * target as binary parameters, alone and in runs, a built-in type, an
 * array, an enum and a domain among them, and read there as the source
 * had them; a missing row is named by its key in text.
 */
START_TEST(binary_values)
{
    fixture f;
    fx_setup(&f, "t_bin", CFG_CONFLICT_ERROR, BIN_SQL);
    sink_rel *r = catalog_rel(&f, "bin_t");
    TXN(&f, false, bin_change(&f, SINK_INSERT, r, -1, 0, false),
        bin_change(&f, SINK_INSERT, r, -1, 1, false));
    expect_bin_row(&f, 7, 0);
    expect_bin_row(&f, 8, 1);
    TXN(&f, false, bin_change(&f, SINK_UPDATE, r, -1, 2, false),
        bin_change(&f, SINK_UPDATE, r, -1, 1, false));
    expect_bin_row(&f, 7, 2);
    expect_bin_row(&f, 8, 1);
    TXN(&f, false, bin_change(&f, SINK_DELETE, r, 1, -1, true));
    expect(&f, "SELECT string_agg(id::text, ',') FROM bin_t", "7");
    sink_event *missing = bin_change(&f, SINK_UPDATE, r, -1, 1, false);
    ((sink_value *)missing->new_vals)[0].data = "\x00\x06\x79\x32";  /* 424242 */
    ck_assert(!run_txn(f.s, false, &missing, 1));
    ck_assert_msg(strstr(f.s->error, "key=(id=424242)") &&
                  strstr(f.s->error, "no such row"), "%s", f.s->error);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------ open runs */

static const char SHOP_SQL[] =
    "CREATE TABLE orders (id int PRIMARY KEY, state text, total int);"
    "CREATE TABLE order_items (order_id int, line int, sku text, "
    "  PRIMARY KEY (order_id, line));"
    "CREATE TABLE sessions (id int PRIMARY KEY, user_id int, seen int);"
    "INSERT INTO sessions SELECT g, g, 0 FROM generate_series(1, 40) g;";

static sink_rel *orders_rel(void)
{
    return mkrel(16020, "public", "orders", 'd',
                 COLS({"id", INT4, true}, {"state", TEXT, false},
                      {"total", INT4, false}));
}

static sink_rel *order_items_rel(void)
{
    return mkrel(16021, "public", "order_items", 'd',
                 COLS({"order_id", INT4, true}, {"line", INT4, true},
                      {"sku", TEXT, false}));
}

static sink_rel *sessions_rel(void)
{
    return mkrel(16022, "public", "sessions", 'd',
                 COLS({"id", INT4, true}, {"user_id", INT4, true},
                      {"seen", INT4, false}));
}

/* The target's log so far: where the statements of a test start. */
static long log_size(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/server.log", cluster->root);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/*
 * Statements the target executed since `from` (log_statement = all) that
 * name `what`, e.g. "INTO \"public\".\"orders\"".
 */
static int executed(long from, const char *what)
{
    char path[400], line[8192];
    snprintf(path, sizeof path, "%s/server.log", cluster->root);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    fseek(f, from, SEEK_SET);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "execute ") && strstr(line, what);
    fclose(f);
    return n;
}

/*
 * One order as a service writes it: the order, three lines, the order
 * again; a session opened and seen, an older one ended.
 */
static void shop_txn(fixture *f, bool more, int i, sink_rel *o, sink_rel *l,
                     sink_rel *s)
{
    char id[16], sid[16], old[16], total[16];
    snprintf(id, sizeof id, "%d", i);
    snprintf(sid, sizeof sid, "%d", 100 + i);
    snprintf(old, sizeof old, "%d", i);
    snprintf(total, sizeof total, "%d", 10 * i);
    TXN(f, more, ins(o, V(id, "new", "0")), ins(l, V(id, "1", "a")),
        ins(l, V(id, "2", "b")), ins(l, V(id, "3", "c")),
        upd(o, 0, NULL, V(id, "paid", total)), ins(s, V(sid, id, "0")),
        upd(s, 0, NULL, V(sid, id, "1")), del(s, 'K', V(old, id, NULL)));
}

/* Statements the target executed since `from` naming `what`: how many. */
static void expect_statements(long from, const char *what, int least,
                              int most)
{
    int n = executed(from, what);
    ck_assert_msg(n >= least && n <= most, "%d statements %s, want %d to %d",
                  n, what, least, most);
}

/*
 * Source transactions that move from table to table share a target
 * transaction (WHOLE); each table keeps its own run open across the
 * others, so the 120 order lines of 40 orders go in a few statements
 * (chunks of 64, 32, ... rows) rather than one per order (40), and every
 * table ends as the changes in order leave it. Within a table, runs of
 * INSERTs, UPDATEs and DELETEs of different keys stay open side by side:
 * a session's UPDATE goes into the INSERT of its row, waiting in a run,
 * and the DELETEs of other sessions run on. Where each source transaction
 * has a target transaction of its own (EACH), no run outlives it: a
 * statement or two per order and table, and the same rows.
 */
START_TEST(runs_span_tables)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_run_span", CFG_CONFLICT_ERROR, SHOP_SQL);
    char sql[200];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET log_statement = 'all'",
             f.db);
    ck_assert(pgc_exec(cluster, f.db, sql));
    f.s->ops->close(f.s);    /* the setting is for sessions from now on */
    fx_open(&f);
    sink_rel *o = orders_rel(), *l = order_items_rel(), *s = sessions_rel();
    long from = log_size();
    for (int i = 1; i <= 40; i++)
        shop_txn(&f, i < 40, i, o, l, s);
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT count(*) || ':' || sum(total) || ':' || "
               "count(*) FILTER (WHERE state = 'paid') FROM orders",
           "40:8200:40");
    expect(&f, "SELECT count(*) || ':' || sum(order_id * line) FROM "
               "order_items", "120:4920");
    expect(&f, "SELECT count(*) || ':' || min(id) || ':' || sum(seen) "
               "FROM sessions", "40:101:40");
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 320);
    bool whole = g == WHOLE;
    expect_statements(from, "INTO \"public\".\"order_items\"",
                      whole ? 2 : 40, whole ? 8 : 80);
    expect_statements(from, "DELETE FROM \"public\".\"sessions\"",
                      whole ? 1 : 40, whole ? 8 : 40);
    expect_statements(from, "UPDATE \"public\".\"sessions\"", 0, 8);
    /*
     * An INSERT takes the values of its row's UPDATE: one statement (but
     * for the first order, whose INSERT goes before the order lines'
     * table is first met).
     */
    expect_statements(from, "UPDATE \"public\".\"orders\"", 0, 1);
    expect_statements(from, "INTO \"public\".\"orders\"",
                      whole ? 1 : 40, whole ? 8 : 40);
    sink_rel_unref(o);
    sink_rel_unref(l);
    sink_rel_unref(s);
    fx_done(&f);
}
END_TEST

/*
 * A failure in a target transaction whose runs went out of stream order
 * is redone in order: the error names the row as a statement per change
 * would have, even where the failing statement held that row alone.
 */
START_TEST(reordered_failure_names_row)
{
    fixture f;
    fx_setup(&f, "t_run_reorder_fail", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (1, 'there', 1);"
             "CREATE TABLE tags (a int, b int, PRIMARY KEY (a, b))");
    sink_rel *r = items_rel();
    sink_rel *t = mkrel(16012, "public", "tags", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    ck_assert(!run_txn(f.s, false, EVS(ins(t, V("1", "1")),
                                       ins(r, V("5", "a", "1")),
                                       ins(t, V("1", "2")),
                                       ins(t, V("2", "1")),
                                       ins(r, V("1", "dup", "1")),
                                       ins(t, V("2", "2")))));
    assert_failure(&f, "op=INSERT", "key=(id=1)", "duplicate key");
    ck_assert_msg(!strstr(f.s->error, "more rows"), "%s", f.s->error);
    f.s->ops->close(f.s);
    expect(&f, "SELECT count(*) FROM tags", "0");
    expect(&f, "SELECT string_agg(name, ',') FROM items", "there");
    sink_rel_unref(r);
    sink_rel_unref(t);
    fx_done(&f);
}
END_TEST

/*
 * An INSERT waiting in a run takes the values of the UPDATEs of its row
 * (an unchanged TOAST value stays the INSERT's); a DELETE of it is not
 * folded in. Where the INSERT then fails, the error names it as the
 * changes one by one would.
 */
START_TEST(insert_takes_its_updates)
{
    fixture f;
    fx_setup(&f, "t_run_merge", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (1, 'there', 1);"
             "CREATE TABLE tags (a int, b int, PRIMARY KEY (a, b))");
    sink_rel *r = items_rel();
    sink_rel *t = mkrel(16012, "public", "tags", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    TXN(&f, true, ins(r, V("2", "long text", "1")), ins(t, V("1", "1")),
        upd(r, 0, NULL, V("2", U, "2")), ins(r, V("3", "c", "1")));
    TXN(&f, true, upd(r, 0, NULL, V("3", "c2", NULL)), ins(t, V("1", "2")),
        upd(r, 0, NULL, V("2", "b3", "3")), ins(r, V("4", "d", "1")),
        del(r, 'K', V("4", NULL, NULL)), upd(r, 0, NULL, V("1", "here", "5")));
    TXN(&f, false, ins(r, V("5", "e", "1")), upd(r, 0, NULL, V("5", U, "9")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(id || name || coalesce(qty::text, '-'), "
               "',' ORDER BY id) FROM items", "1here5,2b33,3c2-,5e9");
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 12);
    ck_assert(!run_txn(f.s, false, EVS(ins(r, V("6", "f", "1")),
                                       ins(r, V("1", "again", "1")),
                                       upd(r, 0, NULL, V("1", "x", "2")))));
    assert_failure(&f, "op=INSERT", "key=(id=1)", "duplicate key");
    f.s->ops->close(f.s);
    expect(&f, "SELECT name FROM items WHERE id = 1", "here");
    sink_rel_unref(r);
    sink_rel_unref(t);
    fx_done(&f);
}
END_TEST

/*
 * Runs of one table's kinds go out of order when their keys differ; a
 * unique index on another column can then refuse a row (B takes the
 * code A had, A deleted first in the source): the target transaction is
 * done again in the source's order, and applies with nothing reported,
 * even where the refused row went alone (the run of three INSERTs goes
 * as two rows, then one).
 */
START_TEST(reorder_refused_then_redone)
{
    fixture f;
    fx_setup(&f, "t_run_reorder_redo", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text UNIQUE, "
             "  qty int);"
             "INSERT INTO items VALUES (1, 'X', 1), (2, 'Y', 1);"
             "CREATE TABLE tags (a int, b int, PRIMARY KEY (a, b))");
    sink_rel *r = items_rel();
    sink_rel *t = mkrel(16012, "public", "tags", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    /* Both tables met first: meeting one sends every run. */
    TXN(&f, false, ins(r, V("9", "W", "1")), ins(t, V("0", "0")));
    TXN(&f, false, ins(r, V("10", "Z", "1")), ins(r, V("12", "V", "1")),
        ins(t, V("1", "1")), del(r, 'K', V("1", NULL, NULL)),
        ins(t, V("1", "2")), ins(r, V("11", "X", "2")),
        upd(r, 0, NULL, V("2", "Y", "5")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(id || name || qty, ',' ORDER BY id) "
               "FROM items", "2Y5,9W1,10Z1,11X2,12V1");
    expect(&f, "SELECT count(*) FROM tags", "3");
    ck_assert_uint_eq(atomic_load(&f.s->conflicts), 0);
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 9);
    sink_rel_unref(r);
    sink_rel_unref(t);
    fx_done(&f);
}
END_TEST

/*
 * A target table with a trigger that fires on apply (ENABLE ALWAYS) and
 * reads another table sees that table as the changes in order leave it:
 * every run goes before its change, and its change is not held.
 */
START_TEST(trigger_table_is_a_barrier)
{
    fixture f;
    fx_setup(&f, "t_run_barrier", CFG_CONFLICT_ERROR,
             "CREATE TABLE orders (id int PRIMARY KEY, state text, total int);"
             "CREATE TABLE order_items (order_id int, line int, sku text, "
             "  PRIMARY KEY (order_id, line));"
             "CREATE TABLE seen (order_id int, state text, lines bigint);"
             "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$"
             "BEGIN INSERT INTO seen SELECT NEW.id, NEW.state, count(*) "
             "  FROM order_items WHERE order_id = NEW.id; RETURN NEW; END$$;"
             "CREATE TRIGGER note AFTER INSERT OR UPDATE ON orders "
             "  FOR EACH ROW EXECUTE FUNCTION note();"
             "ALTER TABLE orders ENABLE ALWAYS TRIGGER note");
    sink_rel *o = orders_rel(), *l = order_items_rel();
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        TXN(&f, i < 5, ins(l, V(id, "1", "a")), ins(o, V(id, "new", "0")),
            ins(l, V(id, "2", "b")), ins(l, V(id, "3", "c")),
            upd(o, 0, NULL, V(id, "paid", "1")));
    }
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(order_id || state || lines, ',' "
               "ORDER BY order_id, state) FROM seen",
           "1new1,1paid3,2new1,2paid3,3new1,3paid3,4new1,4paid3,"
           "5new1,5paid3");
    expect(&f, "SELECT count(*) FROM order_items", "15");
    sink_rel_unref(o);
    sink_rel_unref(l);
    fx_done(&f);
}
END_TEST

/*
 * on_conflict: apply tells each row's outcome, so nothing is held: a row
 * the target has already, inserted and updated among other tables' rows,
 * ends as the source's and counts as one conflict, as before runs.
 */
START_TEST(conflict_apply_across_tables)
{
    fixture f;
    fx_setup(&f, "t_run_apply", CFG_CONFLICT_APPLY,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (1, 'old', 1);"
             "CREATE TABLE tags (a int, b int, PRIMARY KEY (a, b))");
    sink_rel *r = items_rel();
    sink_rel *t = mkrel(16012, "public", "tags", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    TXN(&f, true, ins(t, V("1", "1")), ins(r, V("1", "new", "2")),
        ins(t, V("1", "2")), upd(r, 0, NULL, V("1", "newer", "3")),
        ins(r, V("2", "fresh", "1")), ins(t, V("1", "3")));
    TXN(&f, false, upd(r, 0, NULL, V("2", "fresher", "2")),
        ins(t, V("2", "1")), del(r, 'K', V("7", NULL, NULL)));
    expect(&f, "SELECT string_agg(id || name || qty, ',' ORDER BY id) "
               "FROM items", "1newer3,2fresher2");
    expect(&f, "SELECT count(*) FROM tags", "4");
    ck_assert_uint_eq(atomic_load(&f.s->conflicts), 2);
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 8);
    ck_assert_uint_eq(flush_ok(&f), last_end);
    sink_rel_unref(r);
    sink_rel_unref(t);
    fx_done(&f);
}
END_TEST

START_TEST(conflict_apply)
{
    fixture f;
    fx_setup(&f, "t_apply", CFG_CONFLICT_APPLY,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (1, 'old', 1);"
             "CREATE TABLE tags (a int, b int, PRIMARY KEY (a, b));"
             "INSERT INTO tags VALUES (1, 1);"
             "CREATE TABLE log (a int, b text);"
             "ALTER TABLE log REPLICA IDENTITY FULL");
    sink_rel *r = items_rel();
    sink_rel *t = mkrel(16010, "public", "tags", 'd',
                        COLS({"a", INT4, true}, {"b", INT4, true}));
    sink_rel *l = mkrel(16011, "public", "log", 'f',
                        COLS({"a", INT4, true}, {"b", TEXT, true}));
    TXN(&f, false, ins(r, V("1", "new", "2")), ins(r, V("2", "fresh", "1")),
        upd(r, 0, NULL, V("99", "gone", "1")), del(r, 'K', V("98", NULL, NULL)),
        ins(t, V("1", "1")), ins(t, V("1", "2")), ins(l, V("1", "x")),
        ins(l, V("1", "x")));
    expect(&f, "SELECT count(*) FROM log", "2");
    expect(&f, "SELECT string_agg(id || name || qty, ',' ORDER BY id) "
               "FROM items", "1new2,2fresh1");
    expect(&f, "SELECT count(*) FROM tags", "2");
    ck_assert_uint_eq(atomic_load(&f.s->conflicts), 4);
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 6);
    ck_assert_uint_eq(flush_ok(&f), last_end);
    sink_rel_unref(r);
    sink_rel_unref(t);
    sink_rel_unref(l);
    fx_done(&f);
}
END_TEST

START_TEST(origin_in_use_is_reported)
{
    fixture f;
    fx_setup(&f, "t_busy", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink *other = pgsink_new(&f.config, &f.svc);
    lsn_t d;
    ck_assert(!other->ops->open(other, &d));
    ck_assert_msg(strstr(other->error, "in use by another session"), "%s",
                  other->error);
    ck_assert_msg(strstr(other->error, "cleave_test_t_busy"), "%s",
                  other->error);
    pgsink_free(other);
    fx_done(&f);
}
END_TEST

/* A failed connect names the target, never its password. */
START_TEST(connect_failure_hides_password)
{
    fixture f;
    memset(&f, 0, sizeof f);
    snprintf(f.db, sizeof f.db, "t_nowhere");
    f.dsn = strdup("host=/nonexistent port=1 dbname=x user=u password=s3cr3t");
    fx_new_sink(&f, CFG_CONFLICT_ERROR);
    lsn_t d;
    ck_assert(!f.s->ops->open(f.s, &d));
    ck_assert_msg(strstr(f.s->error, "cannot connect") &&
                  strstr(f.s->error, "********") &&
                  !strstr(f.s->error, "s3cr3t"), "%s", f.s->error);
    /* Every later call fails the same way until a reopen works. */
    ck_assert(!f.s->ops->flush(f.s, &d));
    fx_done(&f);
}
END_TEST

/* Without superuser: replica role is refused, the sink goes on. */
START_TEST(without_superuser)
{
    fixture f;
    memset(&f, 0, sizeof f);
    snprintf(f.db, sizeof f.db, "t_nosuper");
    ck_assert(pgc_createdb(cluster, f.db));
    ck_assert(pgc_exec(cluster, f.db,
        "CREATE ROLE app LOGIN;"
        "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
        "ALTER TABLE items OWNER TO app;"
        "CREATE TABLE orders (id int PRIMARY KEY, state text, total int);"
        "CREATE TABLE order_items (order_id int REFERENCES orders, line int,"
        "  sku text, PRIMARY KEY (order_id, line));"
        "ALTER TABLE orders OWNER TO app;"
        "ALTER TABLE order_items OWNER TO app;"
        "CREATE TABLE seen (order_id int, state text);"
        "ALTER TABLE seen OWNER TO app;"
        "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$"
        "BEGIN INSERT INTO seen VALUES (NEW.id, NEW.state); RETURN NEW; END$$;"
        "CREATE TRIGGER note AFTER UPDATE ON orders "
        "  FOR EACH ROW EXECUTE FUNCTION note();"
        "ALTER DATABASE t_nosuper SET log_statement = 'all';"
        "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text),"
        "  pg_replication_origin_session_setup(text),"
        "  pg_replication_origin_session_reset(),"
        "  pg_replication_origin_progress(text, boolean),"
        "  pg_replication_origin_xact_setup(pg_lsn, timestamptz) TO app"));
    char *dsn = pgc_dsn(cluster, f.db);
    char *at = strstr(dsn, "user=postgres");
    ck_assert_ptr_nonnull(at);
    strcpy(at, "user=app");
    f.dsn = dsn;
    fx_new_sink(&f, CFG_CONFLICT_ERROR);
    fx_open(&f);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "a", "1")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT count(*) FROM items", "1");
    /*
     * Foreign keys check every statement here: a table's run does not
     * stay open past another table's change (the order's lines would go
     * before the order, and the batch be redone). Plain triggers fire:
     * the orders' UPDATEs are not folded into their INSERTs.
     */
    sink_rel *o = orders_rel(), *l = order_items_rel();
    long from = log_size();
    TXN(&f, true, ins(o, V("0", "new", "0")));
    for (int i = 1; i <= 5; i++) {
        char id[16], prev[16];
        snprintf(id, sizeof id, "%d", i);
        snprintf(prev, sizeof prev, "%d", i - 1);
        TXN(&f, i < 5, ins(l, V(prev, "2", "b")), ins(o, V(id, "new", "0")),
            upd(o, 0, NULL, V(id, "paid", "1")), ins(l, V(id, "1", "a")));
    }
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT count(*) FROM order_items", "10");
    expect(&f, "SELECT string_agg(order_id || state, ',' ORDER BY order_id) "
               "FROM seen", "1paid,2paid,3paid,4paid,5paid");
    ck_assert_int_eq(executed(from, "ROLLBACK"), 0);
    sink_rel_unref(o);
    sink_rel_unref(l);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* Far more unanswered requests than the queue bound, rows wider than the socket buffers. */
START_TEST(large_transaction)
{
    fixture f;
    fx_setup(&f, "t_large", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    enum { N = 30000 };
    char *wide = malloc(2049);
    memset(wide, 'w', 2048);
    wide[2048] = '\0';
    sink_event *b = sink_event_txn(SINK_BEGIN, 1, lsn_next, 0, 0);
    ck_assert(f.s->ops->begin(f.s, b));
    sink_event_free(b);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        sink_event *ev = ins(r, V(id, wide, "1"));
        ev->commit_lsn = lsn_next;
        ck_assert_msg(f.s->ops->change(f.s, ev), "%s", f.s->error);
        sink_event_free(ev);
    }
    sink_event *c = sink_event_txn(SINK_COMMIT, 1, lsn_next, lsn_next + 8, 0);
    ck_assert_msg(f.s->ops->commit(f.s, c, false), "%s", f.s->error);
    ck_assert_uint_eq(flush_ok(&f), lsn_next + 8);
    sink_event_free(c);
    expect(&f, "SELECT count(*) || ' ' || sum(length(name)) FROM items",
           "30000 61440000");
    free(wide);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* A refusal deep inside a big transaction: found early, nothing kept. */
START_TEST(failure_mid_transaction)
{
    fixture f;
    fx_setup(&f, "t_midfail", CFG_CONFLICT_ERROR,
             "CREATE TABLE items (id int PRIMARY KEY, name text, qty int);"
             "INSERT INTO items VALUES (500, 'there', 1)");
    sink_rel *r = items_rel();
    sink_event *b = sink_event_txn(SINK_BEGIN, 1, lsn_next, 0, 0);
    ck_assert(f.s->ops->begin(f.s, b));
    sink_event_free(b);
    bool ok = true;
    int i;
    for (i = 0; ok && i < 20000; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        sink_event *ev = ins(r, V(id, "n", "1"));
        ev->commit_lsn = lsn_next;
        ok = f.s->ops->change(f.s, ev);
        sink_event_free(ev);
    }
    ck_assert_msg(!ok, "the duplicate went unnoticed for 20000 rows");
    ck_assert_msg(strstr(f.s->error, "key=(id=500)"), "%s", f.s->error);
    f.s->ops->rollback(f.s);
    f.s->ops->close(f.s);
    expect(&f, "SELECT count(*) FROM items", "1");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

START_TEST(missing_table_is_reported)
{
    fixture f;
    fx_setup(&f, "t_notable", CFG_CONFLICT_ERROR, NULL);
    sink_rel *r = items_rel();
    ck_assert(!run_txn(f.s, false, EVS(ins(r, V("1", "a", "1")))));
    ck_assert_msg(strstr(f.s->error, "table=public.items op=INSERT"), "%s",
                  f.s->error);
    ck_assert_msg(strstr(f.s->error, "table public.items does not exist in "
                         "the target"), "%s", f.s->error);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* A new Relation message (ADD COLUMN): statements of the old one go. */
START_TEST(relation_version_change)
{
    fixture f;
    fx_setup(&f, "t_version", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "a", "1")), upd(r, 0, NULL, V("1", "b", "2")));
    ck_assert(pgc_exec(cluster, f.db, "ALTER TABLE items ADD COLUMN note text"));
    sink_rel *r2 = mkrel(16001, "public", "items", 'd',
                         COLS({"id", INT4, true}, {"name", TEXT, false},
                              {"qty", INT4, false}, {"note", TEXT, false}));
    sink_rel_unref(r);
    TXN(&f, false, ins(r2, V("2", "c", "1", "hello")),
        upd(r2, 0, NULL, V("1", "b", "3", "x")));
    TXN(&f, false, ins(r2, V("3", "d", "1", NULL)));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(id::text || qty || coalesce(note, '-'), ',' "
               "ORDER BY id) FROM items", "13x,21hello,31-");
    sink_rel_unref(r2);
    fx_done(&f);
}
END_TEST

/* The target connection dies: the sink says so, and a reopen carries on. */
START_TEST(connection_lost)
{
    fixture f;
    fx_setup(&f, "t_lost", CFG_CONFLICT_ERROR, ITEMS_SQL);
    sink_rel *r = items_rel();
    TXN(&f, false, ins(r, V("1", "a", "1")));
    lsn_t durable = flush_ok(&f);
    expect(&f, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
               "WHERE application_name = 'cleave' AND datname = 't_lost'", "1");
    bool ok = run_txn(f.s, false, EVS(ins(r, V("2", "b", "1"))));
    ck_assert(!ok);
    ck_assert_msg(strstr(f.s->error, "target"), "%s", f.s->error);
    f.s->ops->close(f.s);
    fx_open(&f);
    ck_assert_uint_eq(f.opened_at, durable);
    TXN(&f, false, ins(r, V("2", "b", "1")));
    expect(&f, "SELECT count(*) FROM items", "2");
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------ layouts */

/* "name type notnull hasdefault, ..." of a target table's columns. */
static const char COLUMNS_OF[] =
    "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) "
    "  || ' ' || attnotnull || ' ' || atthasdef, ', ' ORDER BY attnum) "
    "FROM pg_attribute WHERE attrelid = '%s'::regclass AND attnum > 0 "
    "  AND NOT attisdropped";

static void expect_columns(const fixture *f, const char *table,
                           const char *want)
{
    char sql[512];
    snprintf(sql, sizeof sql, COLUMNS_OF, table);
    expect(f, sql, want);
}

/* ADD COLUMN on the source: the target gains it inside the batch. */
START_TEST(add_column_on_new_version)
{
    fixture f;
    fx_setup(&f, "t_addcol", CFG_CONFLICT_ERROR,
             "CREATE TABLE notes (id int PRIMARY KEY, a text);"
             "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    sink_rel *v1 = mkrel(16030, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false}));
    sink_rel *v2 = mkrel(16030, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false},
                              {"b", INT4, false}));
    /* The source's OID of its own enum: only the name means anything here. */
    sink_rel *v3 = mkrel(16030, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false},
                              {"b", INT4, false}, {"m", 91234, false}));
    set_type(v3, 3, -1, "\"public\".\"mood\"");
    /* One target transaction: v1's rows are in flight when v2 arrives. */
    TXN(&f, true, ins(v1, V("1", "one")), ins(v1, V("2", "two")));
    TXN(&f, true, ins(v2, V("3", "three", "30")),
        upd(v2, 0, NULL, V("1", "one", "10")));
    TXN(&f, true, ins(v3, V("4", "four", NULL, "happy")),
        upd(v3, 0, NULL, V("2", "two", "20", "sad")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect_columns(&f, "notes", "id integer true false, a text false false, "
                   "b integer false false, m mood false false");
    expect(&f, "SELECT string_agg(id || ':' || coalesce(b::text, '-') || ':' "
               "|| coalesce(m::text, '-'), ',' ORDER BY id) FROM notes",
           "1:10:-,2:20:sad,3:30:-,4:-:happy");
    ck_assert_uint_eq(atomic_load(&f.s->rows_applied), 6);
    ck_assert_uint_eq(atomic_load(&f.s->txns_applied), 3);
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    sink_rel_unref(v3);
    fx_done(&f);
}
END_TEST

/*
 * ADD COLUMN as the source defines it: NOT NULL, collation, the default,
 * and the value the rows already there read (the default when it was
 * added, not the one it has now). Nothing is added while the source
 * cannot be read.
 */
START_TEST(add_column_from_source)
{
    fixture f;
    fx_setup(&f, "t_adddef", CFG_CONFLICT_ERROR,
             "CREATE TABLE notes (id int PRIMARY KEY, a text)");
    ck_assert(pgc_createdb(cluster, "t_adddef_src"));
    ck_assert(pgc_exec(cluster, "t_adddef_src",
                       "CREATE TABLE notes (id int PRIMARY KEY, a text);"
                       "INSERT INTO notes VALUES (1, 'one');"
                       "ALTER TABLE notes ADD b int NOT NULL DEFAULT 7, "
                       "  ADD c text COLLATE \"C\";"
                       "ALTER TABLE notes ALTER b SET DEFAULT 8"));
    char *src = pgc_dsn(cluster, "t_adddef_src");
    char *gone = pgc_dsn(cluster, "t_adddef_no_such_db");
    sink_rel *v1 = mkrel(16040, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false}));
    sink_rel *v2 = mkrel(16040, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false},
                              {"b", INT4, false}, {"c", TEXT, false}));
    TXN(&f, false, ins(v1, V("1", "one")));
    f.config.source.dsn = gone;
    ck_assert(!run_txn(f.s, false, EVS(ins(v2, V("2", "two", "9", "x")))));
    ck_assert_msg(strstr(f.s->error, "table=public.notes") &&
                  strstr(f.s->error, "column \"b\" and others is new: "
                         "cannot define it as the source does: cannot "
                         "connect to the source"), "%s", f.s->error);
    f.s->ops->close(f.s);
    expect_columns(&f, "notes", "id integer true false, a text false false");
    f.config.source.dsn = src;
    fx_open(&f);
    TXN(&f, false, ins(v2, V("2", "two", "9", "x")));
    expect_columns(&f, "notes", "id integer true false, a text false false, "
                   "b integer true true, c text false false");
    expect(&f, "SELECT string_agg(id || ':' || b || ':' || coalesce(c, '-'), "
               "',' ORDER BY id) FROM notes", "1:7:-,2:9:x");
    expect(&f, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
               "WHERE adrelid = 'notes'::regclass", "8");
    expect(&f, "SELECT collname FROM pg_attribute a JOIN pg_collation c "
               "ON c.oid = a.attcollation WHERE attrelid = 'notes'::regclass "
               "AND attname = 'c'", "C");
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    fx_done(&f);
    free(src);
    free(gone);
}
END_TEST

/*
 * v2's first row adds its column, sent with more queued, then the source
 * is lost. A rolled-back batch takes its ALTER with it, and the replay
 * adds it again (WHOLE); an ALTER the window committed with its row stays
 * and is not made twice (EACH).
 */
START_TEST(add_column_rolled_back)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_addback", CFG_CONFLICT_ERROR,
                "CREATE TABLE notes (id int PRIMARY KEY, a text)");
    sink_rel *v1 = mkrel(16031, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false}));
    sink_rel *v2 = mkrel(16031, "public", "notes", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false},
                              {"c", TEXT, false}));
    TXN(&f, false, ins(v1, V("1", "one")));
    lsn_t durable = flush_ok(&f);
    TXN(&f, true, ins(v2, V("2", "two", "c2")));
    lsn_t resume = g == WHOLE ? durable : last_end;
    f.s->ops->rollback(f.s);
    ck_assert_uint_eq(flush_ok(&f), resume);
    expect_columns(&f, "notes", g == WHOLE
                   ? "id integer true false, a text false false"
                   : "id integer true false, a text false false, "
                     "c text false false");
    /* The same relation version again, on the same connection. */
    if (g == WHOLE)
        TXN(&f, false, ins(v2, V("2", "two", "c2")),
            upd(v2, 0, NULL, V("1", "one", "c1")));
    else
        TXN(&f, false, upd(v2, 0, NULL, V("1", "one", "c1")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(id || c, ',' ORDER BY id) FROM notes",
           "1c1,2c2");
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    fx_done(&f);
}
END_TEST

/* A type the target cannot take stops the sink until the target follows. */
START_TEST(type_mismatch_until_fixed)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_typemis", CFG_CONFLICT_ERROR,
                "CREATE TABLE orders (id int PRIMARY KEY, total integer);"
                "CREATE TABLE prices (id int PRIMARY KEY, amount integer)");
    /* From the first sight: numeric(12,2) into integer. */
    sink_rel *p = mkrel(16032, "public", "prices", 'd',
                        COLS({"id", INT4, true}, {"amount", NUMERIC, false}));
    set_type(p, 1, NUMERIC_12_2, NULL);
    ck_assert(!run_txn(f.s, false, EVS(ins(p, V("1", "9.99")))));
    ck_assert_msg(strstr(f.s->error, "table=public.prices") &&
                  strstr(f.s->error, "column \"amount\" is numeric(12,2) in "
                         "the source and integer in the target"),
                  "%s", f.s->error);
    f.s->ops->close(f.s);
    fx_open(&f);
    /* On the source: integer, then ALTER COLUMN total TYPE numeric(12,2). */
    sink_rel *v1 = mkrel(16033, "public", "orders", 'd',
                         COLS({"id", INT4, true}, {"total", INT4, false}));
    sink_rel *v2 = mkrel(16033, "public", "orders", 'd',
                         COLS({"id", INT4, true}, {"total", NUMERIC, false}));
    set_type(v2, 1, NUMERIC_12_2, NULL);
    TXN(&f, false, ins(v1, V("1", "5")));
    lsn_t durable = flush_ok(&f);
    /*
     * Row 2 is sent with more queued: WHOLE replays it before row 3;
     * EACH commits it alone, and replays from row 3.
     */
    lsn_t replay_from = lsn_next;
    TXN(&f, true, ins(v1, V("2", "6")));
    lsn_t resume = g == WHOLE ? durable : last_end;
    if (g == EACH)
        replay_from = lsn_next;
    ck_assert(!run_txn(f.s, false, EVS(ins(v2, V("3", "12.50")))));
    ck_assert_msg(strstr(f.s->error, "table=public.orders") &&
                  strstr(f.s->error, "column \"total\" is numeric(12,2) in "
                         "the source and integer in the target: change the "
                         "target to match"), "%s", f.s->error);
    ck_assert_uint_eq(f.s->error_lsn, last_commit);
    f.s->ops->close(f.s);
    expect(&f, "SELECT count(*) FROM orders", g == WHOLE ? "1" : "2");
    /* Still wrong on the next try: the catalog is read again. */
    fx_open(&f);
    ck_assert(!run_txn(f.s, false, EVS(ins(v2, V("3", "12.50")))));
    f.s->ops->close(f.s);
    ck_assert(pgc_exec(cluster, f.db,
                       "ALTER TABLE orders ALTER total TYPE numeric(12,2);"
                       "ALTER TABLE prices ALTER amount TYPE numeric(12,2)"));
    fx_open(&f);
    ck_assert_uint_eq(f.opened_at, resume);
    /* The replay: rows of the version before the change, then after. */
    lsn_next = replay_from;
    if (g == WHOLE)
        TXN(&f, true, ins(v1, V("2", "6")));
    TXN(&f, true, ins(v2, V("3", "12.50")), ins(p, V("1", "9.99")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(id || '=' || total, ',' ORDER BY id) "
               "FROM orders", "1=5.00,2=6.00,3=12.50");
    expect(&f, "SELECT amount FROM prices", "9.99");
    sink_rel_unref(p);
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    fx_done(&f);
}
END_TEST

/* A daemon restart: a new sink that remembers nothing, on the same target. */
static void fx_restart(fixture *f)
{
    f->s->ops->close(f->s);
    pgsink_free(f->s);
    fx_new_sink(f, f->svc.on_conflict);
    fx_open(f);
}

/*
 * Type changes on the source the target did not follow, fixed between
 * restarts: each time the replay brings rows of the version before the
 * change first, seen afresh, and the target (changed to match the version
 * after it) must take them too.
 */
START_TEST(type_change_replayed_after_restart)
{
    grouping g = (grouping)_i;
    fixture f;
    fx_setup_as(&f, g, "t_typmod", CFG_CONFLICT_ERROR,
                "CREATE TABLE tags (id int PRIMARY KEY, label varchar(5), "
                "  n int)");
    enum { VARCHAR = 1043, VARCHAR_5 = 5 + 4, VARCHAR_9 = 9 + 4 };
    sink_rel *v1 = mkrel(16034, "public", "tags", 'd',
                         COLS({"id", INT4, true}, {"label", VARCHAR, false},
                              {"n", INT4, false}));
    set_type(v1, 1, VARCHAR_5, NULL);
    /* ALTER label TYPE varchar(9), n TYPE bigint on the source. */
    sink_rel *v2 = mkrel(16034, "public", "tags", 'd',
                         COLS({"id", INT4, true}, {"label", VARCHAR, false},
                              {"n", INT8, false}));
    set_type(v2, 1, VARCHAR_9, NULL);
    TXN(&f, false, ins(v1, V("1", "short", "1")));
    lsn_t durable = flush_ok(&f);
    /*
     * Row 2 is sent with more queued: WHOLE replays it before row 3 each
     * time; EACH commits it alone, and replays from row 3.
     */
    lsn_t replay_from = lsn_next;
    TXN(&f, true, ins(v1, V("2", "five5", "2")));
    lsn_t resume = g == WHOLE ? durable : last_end;
    if (g == EACH)
        replay_from = lsn_next;
    ck_assert(!run_txn(f.s, false, EVS(ins(v2, V("3", "longer!", "3")))));
    ck_assert_msg(strstr(f.s->error, "column \"label\" is character "
                         "varying(9) in the source and character varying(5) "
                         "in the target"), "%s", f.s->error);
    ck_assert(pgc_exec(cluster, f.db,
                       "ALTER TABLE tags ALTER label TYPE varchar(9)"));
    fx_restart(&f);
    ck_assert_uint_eq(f.opened_at, resume);
    lsn_next = replay_from;
    if (g == WHOLE)
        TXN(&f, true, ins(v1, V("2", "five5", "2")));
    ck_assert(!run_txn(f.s, false, EVS(ins(v2, V("3", "longer!", "3")))));
    ck_assert_msg(strstr(f.s->error, "column \"n\" is bigint in the source "
                         "and integer in the target"), "%s", f.s->error);
    ck_assert(pgc_exec(cluster, f.db, "ALTER TABLE tags ALTER n TYPE bigint"));
    fx_restart(&f);
    ck_assert_uint_eq(f.opened_at, resume);
    lsn_next = replay_from;
    if (g == WHOLE)
        TXN(&f, true, ins(v1, V("2", "five5", "2")));
    TXN(&f, false, ins(v2, V("3", "longer!", "5000000000")));
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT string_agg(label || n, ',' ORDER BY id) FROM tags",
           "short1,five52,longer!5000000000");
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    fx_done(&f);
}
END_TEST

/* DROP COLUMN on the source: fine where the target can leave it empty. */
START_TEST(drop_column_on_source)
{
    fixture f;
    fx_setup(&f, "t_dropcol", CFG_CONFLICT_ERROR,
             "CREATE TABLE strict_t (id int PRIMARY KEY, a text, "
             "  x int NOT NULL);"
             "CREATE TABLE loose_t (id int PRIMARY KEY, y int, "
             "  z int NOT NULL DEFAULT 7)");
    sink_rel *s1 = mkrel(16035, "public", "strict_t", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false},
                              {"x", INT4, false}));
    sink_rel *s2 = mkrel(16035, "public", "strict_t", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false}));
    sink_rel *l1 = mkrel(16036, "public", "loose_t", 'd',
                         COLS({"id", INT4, true}, {"y", INT4, false},
                              {"z", INT4, false}));
    sink_rel *l2 = mkrel(16036, "public", "loose_t", 'd',
                         COLS({"id", INT4, true}));
    TXN(&f, false, ins(s1, V("1", "a", "1")), ins(l1, V("1", "1", "1")));
    /* Nullable, or with a default: goes on. */
    TXN(&f, false, ins(l2, V("2")));
    expect(&f, "SELECT string_agg(id || ':' || coalesce(y::text, '-') || ':' "
               "|| z, ',' ORDER BY id) FROM loose_t", "1:1:1,2:-:7");
    /* NOT NULL without a default: stops, until the target drops it too. */
    ck_assert(!run_txn(f.s, false, EVS(ins(s2, V("2", "b")))));
    ck_assert_msg(strstr(f.s->error, "table=public.strict_t") &&
                  strstr(f.s->error, "column \"x\" was dropped or renamed on "
                         "the source; apply the same change to the target"),
                  "%s", f.s->error);
    f.s->ops->close(f.s);
    fx_open(&f);
    ck_assert(!run_txn(f.s, false, EVS(ins(s2, V("2", "b")))));
    f.s->ops->close(f.s);
    ck_assert(pgc_exec(cluster, f.db, "ALTER TABLE strict_t DROP x"));
    fx_open(&f);
    TXN(&f, false, ins(s2, V("2", "b")));
    expect(&f, "SELECT string_agg(id || a, ',' ORDER BY id) FROM strict_t",
           "1a,2b");
    sink_rel_unref(s1);
    sink_rel_unref(s2);
    sink_rel_unref(l1);
    sink_rel_unref(l2);
    fx_done(&f);
}
END_TEST

/* A column cleave wrote that the target lost is not quietly re-created. */
START_TEST(target_lost_column)
{
    fixture f;
    fx_setup(&f, "t_lostcol", CFG_CONFLICT_ERROR,
             "CREATE TABLE t (id int PRIMARY KEY, a text, g int "
             "  GENERATED ALWAYS AS (id * 2) STORED)");
    sink_rel *v1 = mkrel(16037, "public", "t", 'd',
                         COLS({"id", INT4, true}, {"a", TEXT, false}));
    TXN(&f, false, ins(v1, V("1", "a")));
    ck_assert(pgc_exec(cluster, f.db, "ALTER TABLE t DROP a"));
    f.s->ops->close(f.s);
    fx_open(&f);
    ck_assert(!run_txn(f.s, false, EVS(ins(v1, V("2", "b")))));
    ck_assert_msg(strstr(f.s->error, "column \"a\" is missing in the target"),
                  "%s", f.s->error);
    f.s->ops->close(f.s);
    /* A source column the target computes itself cannot be written. */
    sink_rel *v2 = mkrel(16037, "public", "t", 'd',
                         COLS({"id", INT4, true}, {"g", INT4, false}));
    fx_open(&f);
    ck_assert(!run_txn(f.s, false, EVS(ins(v2, V("2", "4")))));
    ck_assert_msg(strstr(f.s->error, "column \"g\" is generated in the "
                         "target"), "%s", f.s->error);
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    fx_done(&f);
}
END_TEST

/* Quoting: the table, the new column, and a named type. */
START_TEST(add_column_hostile_names)
{
    fixture f;
    fx_setup(&f, "t_addnames", CFG_CONFLICT_ERROR,
             "CREATE SCHEMA \"S;c \"\"h\"\"\";"
             "CREATE TYPE \"S;c \"\"h\"\"\".\"we\"\"ird; type\" AS ENUM "
             "  ('x', 'y''z');"
             "CREATE TABLE \"S;c \"\"h\"\"\".\"Tab'le \"\"x\"\"\" "
             "  (id int PRIMARY KEY)");
    sink_rel *v1 = mkrel(16038, "S;c \"h\"", "Tab'le \"x\"", 'd',
                         COLS({"id", INT4, true}));
    sink_rel *v2 = mkrel(16038, "S;c \"h\"", "Tab'le \"x\"", 'd',
                         COLS({"id", INT4, true}, {"Odd \"Col", TEXT, false},
                              {"e; DROP TABLE x", 91235, false}));
    set_type(v2, 2, -1, "\"S;c \"\"h\"\"\".\"we\"\"ird; type\"");
    TXN(&f, false, ins(v1, V("1")));
    TXN(&f, false, ins(v2, V("2", "it's \"odd\"", "y'z")));
    expect(&f, "SELECT string_agg(id || ':' || coalesce(\"Odd \"\"Col\", '-') "
               "|| ':' || coalesce(\"e; DROP TABLE x\"::text, '-'), ',' "
               "ORDER BY id) FROM \"S;c \"\"h\"\"\".\"Tab'le \"\"x\"\"\"",
           "1:-:-,2:it's \"odd\":y'z");
    expect(&f, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
               "WHERE attname = 'e; DROP TABLE x'",
           "\"S;c \"\"h\"\"\".\"we\"\"ird; type\"");
    sink_rel_unref(v1);
    sink_rel_unref(v2);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------ shop */

typedef struct shop_row {
    const char *table;
    int ncols;
    const char *const *vals;
} shop_row;

#define ROW(t, ...) {t, (int)(sizeof(V(__VA_ARGS__)) / sizeof(char *)), \
                     V(__VA_ARGS__)}

static const shop_row shop_rows[] = {
    ROW("users", "1", "8f14e45f-ceea-467f-a0e6-6fb4a1c2d6c1",
        "ana.muller@example.com", "Ana Müller", NULL,
        "Likes \"quotes\", commas, and 'apostrophes'; and \\backslashes\\",
        "\\x89504e470d0a1a0a", "1990-02-28", "t", "3",
        "{vip,NULL,\"with space\",\"comma,inside\",\"q\\\"uote\"}",
        "2024-05-01 12:00:00+02", "2024-01-01 00:00:00+00",
        "2024-05-01 12:00:00.123456+00"),
    ROW("user_preferences", "1", "de_DE", "Europe/Berlin", "f", "2",
        "{\"digest\": \"weekly\", \"muted\": [1, 2, null]}",
        "2024-05-01 12:00:00+00"),
    ROW("user_sessions", "b1946ac9-2b5f-4e6c-9a1a-3c1f2e0d8a77", "1",
        "2001:db8::1", "Mozilla/5.0 (X11; Linux x86_64)",
        "2024-05-01 12:00:00+00", "2024-05-02 12:00:00+00", NULL),
    ROW("shipping_addresses", "1", "1", "Ana Müller", "Hauptstraße 5",
        NULL, "Köln", "50667", "DE", "t", "2024-01-02 00:00:00+00"),
    ROW("orders", "1", "0b9d3e9a-1e4f-4a53-9a36-2f8f4fd0c0de", "1", "1",
        "paid", "1234.50", "EUR", "2", "leave at the door; ring twice",
        "2024-05-01 12:00:00+00", NULL, "2024-05-01 12:00:00+00"),
    ROW("order_items", "1", "1", "1", "2", "617.25", NULL,
        "{\"color\": \"red\", \"sizes\": [\"S\", \"M\"]}"),
    ROW("payment_methods", "1", "1", "card", "visa", "4242", "\\xdeadbeef",
        "2027-12-31", "t", "2024-01-01 00:00:00+00"),
    ROW("payments", "1", "5f2b7d2e-6a4c-4e1e-8f3a-0c2d9b8e7f61", "1", "1",
        "1", "1234.50", "EUR", "captured", "ch_3Nk",
        "{ \"id\" : \"ch_3Nk\",  \"ok\": true }", "2024-05-01 12:00:05+00",
        "2024-05-01 12:00:00+00"),
    ROW("refunds", "1", "1", "10.00", "damaged box", NULL,
        "2024-05-03 09:00:00+00"),
    ROW("warehouses", "1", "KOE-1", "Köln Nord", "Köln", "DE", "50.9375",
        "6.9603", "17:30:00", "12000", "t", "2019-03-01"),
    ROW("products", "1", "SKU-0001", "Mug \"Classic\"", "A mug.", "12.90",
        "NaN", "350", "{kitchen,NULL}", "{\"dishwasher\": true}",
        "\\x00ff10", "t", "2024-01-01 00:00:00+00",
        "2024-01-01 00:00:00+00"),
    ROW("inventory", "1", "1", "1", "120", "4", "10", "Infinity",
        "2024-04-30", "2024-05-01 00:00:00+00"),
    ROW("notification_templates", "1", "order_shipped", "email", "en_US",
        "Your order shipped", "Hello {{name}},\nit is on its way.", "3",
        "1 day 02:30:00", "t", "2024-01-01 00:00:00+00"),
    ROW("notifications", "1", "1", "1", "email",
        "{\"order_id\": 1, \"tracking\": null}", "sent", "1",
        "2024-05-01 12:00:00+00", "2024-05-01 12:00:01+00", NULL),
};

START_TEST(shop_tables)
{
    fixture f;
    memset(&f, 0, sizeof f);
    snprintf(f.db, sizeof f.db, "t_shop");
    ck_assert(pgc_load_shop(cluster, f.db, 0, false));
    f.dsn = pgc_dsn(cluster, f.db);
    fx_new_sink(&f, CFG_CONFLICT_ERROR);
    fx_open(&f);
    size_t n = sizeof shop_rows / sizeof shop_rows[0];
    sink_rel *rels[16];
    for (size_t i = 0; i < n; i++) {
        char name[80];
        snprintf(name, sizeof name, "public.%s", shop_rows[i].table);
        rels[i] = catalog_rel(&f, name);
        ck_assert_msg(rels[i]->ncols == shop_rows[i].ncols,
                      "%s has %u columns, the test row %d", name,
                      rels[i]->ncols, shop_rows[i].ncols);
        TXN(&f, true, ins(rels[i], shop_rows[i].vals));
    }
    ck_assert_uint_eq(flush_ok(&f), last_end);
    expect(&f, "SELECT tags[2] IS NULL AND tags[4] = 'comma,inside' AND "
               "avatar = '\\x89504e470d0a1a0a'::bytea FROM users", "t");
    expect(&f, "SELECT settings->'muted'->>2 IS NULL FROM user_preferences",
           "t");
    expect(&f, "SELECT line_total FROM order_items", "1234.50");
    expect(&f, "SELECT provider_response::text FROM payments",
           "{ \"id\" : \"ch_3Nk\",  \"ok\": true }");
    expect(&f, "SELECT avg_rating::text FROM products", "NaN");
    expect(&f, "SELECT turnover_ratio::text FROM inventory", "Infinity");
    expect(&f, "SELECT retry_after = interval '1 day 2 hours 30 minutes' "
               "FROM notification_templates", "t");
    /* Updates: an identity key (GENERATED ALWAYS), a FULL table. */
    const shop_row *u = &shop_rows[0], *s = &shop_rows[2];
    const char *nu[16], *ns[16];
    memcpy(nu, u->vals, sizeof(char *) * (size_t)u->ncols);
    memcpy(ns, s->vals, sizeof(char *) * (size_t)s->ncols);
    nu[5] = U;
    nu[9] = "4";
    ns[6] = "2024-05-01 13:00:00+00";
    TXN(&f, false, upd(rels[0], 0, NULL, nu), upd(rels[2], 'O', s->vals, ns));
    char want[32];
    snprintf(want, sizeof want, "4 %zu", strlen(u->vals[5]));
    expect(&f, "SELECT login_count || ' ' || length(bio) FROM users", want);
    expect(&f, "SELECT last_seen_at IS NOT NULL FROM user_sessions", "t");
    TXN(&f, false, del(rels[2], 'O', ns), del(rels[13], 'K', shop_rows[13].vals));
    expect(&f, "SELECT (SELECT count(*) FROM user_sessions) + "
               "(SELECT count(*) FROM notifications)", "0");
    for (size_t i = 0; i < n; i++)
        sink_rel_unref(rels[i]);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------ the loader */

/*
 * The initial sync's postgres loader on a connection of the test's own,
 * as a copy thread has: a table with hostile names and a generated
 * column, its relation read from the catalog as the copy reads it.
 */
typedef struct loadfx {
    fixture f;               /* its database and configuration; no sink */
    PGconn *conn;
    sink_rel *rel;
    sink_loader *l;
} loadfx;

#define LOAD_SCHEMA "we\"ird"
#define LOAD_TABLE "T a\"b"

static void load_setup(loadfx *x, const char *db)
{
    memset(&x->f, 0, sizeof x->f);
    snprintf(x->f.db, sizeof x->f.db, "%s", db);
    ck_assert(pgc_createdb(cluster, db));
    x->f.dsn = pgc_dsn(cluster, db);
    x->f.config = (cfg){.name = "test", .source.dsn = x->f.dsn};
    x->f.svc = (cfg_service){.name = x->f.db, .target_postgres = x->f.dsn};
    ck_assert(pgc_exec(cluster, db, "CREATE SCHEMA \"we\"\"ird\"; "
                       "CREATE TABLE \"we\"\"ird\".\"T a\"\"b\" (id int "
                       "PRIMARY KEY, note text, twice int GENERATED ALWAYS "
                       "AS (id * 2) STORED); INSERT INTO "
                       "\"we\"\"ird\".\"T a\"\"b\" VALUES (1, 'old')"));
    x->conn = pgc_connect(cluster, db);
    ck_assert_ptr_nonnull(x->conn);
    char err[256];
    /* Under FULL every column is identity; the primary key is still id. */
    ck_assert(pgc_exec(cluster, db, "ALTER TABLE \"we\"\"ird\".\"T a\"\"b\" "
                       "REPLICA IDENTITY FULL"));
    sink_rel *full = sink_rel_read(x->conn, LOAD_SCHEMA, LOAD_TABLE, err,
                                   sizeof err);
    ck_assert_msg(full && full->replident == 'f' && full->cols[1].key &&
                  full->cols[0].pk && !full->cols[1].pk, "FULL: %s", err);
    sink_rel_unref(full);
    ck_assert(pgc_exec(cluster, db, "ALTER TABLE \"we\"\"ird\".\"T a\"\"b\" "
                       "REPLICA IDENTITY DEFAULT"));
    x->rel = sink_rel_read(x->conn, LOAD_SCHEMA, LOAD_TABLE, err, sizeof err);
    ck_assert_msg(x->rel, "sink_rel_read: %s", err);
    ck_assert(x->rel->cols[0].key && x->rel->cols[0].pk);
    ck_assert(!x->rel->cols[1].key && !x->rel->cols[1].pk);
    x->l = sink_loader_open(SINK_KIND_POSTGRES, &x->f.config, &x->f.svc,
                            x->conn, err, sizeof err);
    ck_assert_msg(x->l, "sink_loader_open: %s", err);
}

static void load_done(loadfx *x)
{
    sink_loader_close(x->l);
    sink_rel_unref(x->rel);
    PQfinish(x->conn);
    free(x->f.dsn);
}

static bool load_rows(loadfx *x, const char *const *rows)
{
    sink_load_table t = {x->rel, false, 0, false, false};
    if (!x->l->ops->begin(x->l, &t))
        return false;
    for (const char *const *r = rows; *r; r++)
        if (!x->l->ops->row(x->l, *r, strlen(*r)))
            return false;
    return true;
}

static const char load_rows_sql[] =
    "SELECT string_agg(id || ':' || coalesce(note, 'NULL') || ':' || twice, "
    "',' ORDER BY id) FROM \"we\"\"ird\".\"T a\"\"b\"";

/* Read as pgoutput describes it; loaded in place of what was there. */
START_TEST(loader_replaces_rows)
{
    loadfx x;
    load_setup(&x, "t_load");
    ck_assert_uint_eq(x.rel->ncols, 2);
    ck_assert_str_eq(x.rel->cols[0].name, "id");
    ck_assert(x.rel->cols[0].key && !x.rel->cols[1].key);
    ck_assert_int_eq(x.rel->replident, 'd');
    static const char *const rows[] = {"2\tnew\n", "3\t\\N\n", "4\ttab\\there",
                                       NULL};
    ck_assert_msg(load_rows(&x, rows) && x.l->ops->end(x.l, true), "%s",
                  x.l->error);
    expect(&x.f, load_rows_sql, "2:new:4,3:NULL:6,4:tab\there:8");
    load_done(&x);
}
END_TEST

/*
 * A table given up, or refused by the target, keeps what it had, and
 * the connection loads the next one.
 */
START_TEST(loader_abort_keeps_rows)
{
    loadfx x;
    load_setup(&x, "t_load_abort");
    static const char *const rows[] = {"2\tgone\n", NULL};
    ck_assert(load_rows(&x, rows));
    x.l->ops->abort(x.l);
    expect(&x.f, load_rows_sql, "1:old:2");
    static const char *const bad[] = {"2\tok\n", "x\tnot a number\n", NULL};
    bool ok = load_rows(&x, bad) && x.l->ops->end(x.l, false);
    ck_assert(!ok);
    ck_assert_msg(strstr(x.l->error, LOAD_TABLE) &&
                  strstr(x.l->error, "integer"), "%s", x.l->error);
    x.l->ops->abort(x.l);
    expect(&x.f, load_rows_sql, "1:old:2");
    static const char *const good[] = {"5\tlast\n", NULL};
    ck_assert_msg(load_rows(&x, good) && x.l->ops->end(x.l, false), "%s",
                  x.l->error);
    expect(&x.f, load_rows_sql, "5:last:10");
    load_done(&x);
}
END_TEST

static const char load_frozen_sql[] =
    "SELECT bool_and(all_frozen) FROM pg_visibility_map("
    "'\"we\"\"ird\".\"T a\"\"b\"')";

/*
 * A whole table goes in by TRUNCATE and COPY FREEZE: its pages come out
 * frozen. Not where TRUNCATE would be refused (another table's foreign
 * key points at it), nor a part of a split table (emptied before, in a
 * transaction of its own); their rows are right all the same.
 */
START_TEST(loader_freezes_whole_tables)
{
    loadfx x;
    load_setup(&x, "t_load_freeze");
    ck_assert(pgc_exec(cluster, x.f.db, "CREATE EXTENSION pg_visibility"));
    static const char *const rows[] = {"2\tnew\n", "3\tthree\n", NULL};
    ck_assert_msg(load_rows(&x, rows) && x.l->ops->end(x.l, true), "%s",
                  x.l->error);
    expect(&x.f, load_rows_sql, "2:new:4,3:three:6");
    expect(&x.f, load_frozen_sql, "t");

    sink_load_table part = {x.rel, false, 0, true, false};
    static const char *const more[] = {"7\tpart\n", NULL};
    ck_assert(x.l->ops->begin(x.l, &part));
    ck_assert(x.l->ops->row(x.l, more[0], strlen(more[0])));
    ck_assert_msg(x.l->ops->end(x.l, true), "%s", x.l->error);
    expect(&x.f, load_rows_sql, "2:new:4,3:three:6,7:part:14");
    expect(&x.f, load_frozen_sql, "f");

    ck_assert(pgc_exec(cluster, x.f.db, "CREATE TABLE refs (id int "
                       "REFERENCES \"we\"\"ird\".\"T a\"\"b\")"));
    /* As a copy thread runs: DELETE empties a table pointed at. */
    PQclear(PQexec(x.conn, "SET session_replication_role = replica"));
    static const char *const again[] = {"4\tkept\n", NULL};
    ck_assert_msg(load_rows(&x, again) && x.l->ops->end(x.l, true), "%s",
                  x.l->error);
    expect(&x.f, load_rows_sql, "4:kept:8");
    expect(&x.f, load_frozen_sql, "f");
    load_done(&x);
}
END_TEST

/* A table that is not there is named, not loaded. */
START_TEST(loader_missing_table)
{
    loadfx x;
    load_setup(&x, "t_load_missing");
    char err[256];
    ck_assert_ptr_null(sink_rel_read(x.conn, "public", "nope", err,
                                     sizeof err));
    ck_assert_str_eq(err, "no such table");
    load_done(&x);
}
END_TEST

/* ------------------------------------------------------------ throughput */

START_TEST(throughput)
{
    fixture f;
    /* The daemon's batch window: the figure is what it would do. */
    fx_setup_as(&f, TIMED, "t_speed", CFG_CONFLICT_ERROR,
                "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, "
                "status text, total numeric(12,2), note text, "
                "placed_at timestamptz)");
    sink_rel *r = mkrel(16020, "public", "orders", 'd',
                        COLS({"id", INT8, true}, {"user_id", INT8, false},
                             {"status", TEXT, false}, {"total", NUMERIC, false},
                             {"note", TEXT, false},
                             {"placed_at", TIMESTAMPTZ, false}));
    set_type(r, 3, NUMERIC_12_2, NULL);
    enum { TXNS = 1000, ROWS = 100 };
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int t = 0; t < TXNS; t++) {
        sink_event *evs[ROWS];
        for (int i = 0; i < ROWS; i++) {
            char id[24], user[24];
            snprintf(id, sizeof id, "%d", t * ROWS + i + 1);
            snprintf(user, sizeof user, "%d", (t * 31 + i) % 5000);
            evs[i] = ins(r, V(id, user, "paid", "149.90",
                              "leave it with the neighbours",
                              "2024-05-01 12:00:00+00"));
        }
        ck_assert_msg(run_txn(f.s, t + 1 < TXNS, evs, ROWS), "%s",
                      f.s->error);
    }
    ck_assert_uint_eq(flush_ok(&f), last_end);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) +
                 (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    expect(&f, "SELECT count(*) FROM orders", "100000");
    printf("pgsink throughput: %d rows in %d transactions, %.2f s, "
           "%.0f rows/s (client CPU %.2f s)\n", TXNS * ROWS, TXNS, secs,
           TXNS * ROWS / secs, cpu);
    fflush(stdout);
    sink_rel_unref(r);
    fx_done(&f);
}
END_TEST

int main(void)
{
    cluster = pgc_start(NULL);
    if (!cluster)
        return EXIT_FAILURE;
    Suite *s = suite_create("pgsink");
    TCase *tc = tcase_create("apply");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pk_insert_update_delete);
    tcase_add_test(tc, update_changes_key);
    tcase_add_test(tc, unchanged_toast_kept);
    tcase_add_test(tc, full_identity_duplicates_and_nulls);
    tcase_add_test(tc, full_identity_json);
    tcase_add_test(tc, truncate_restart_identity_cascade);
    tcase_add_test(tc, hostile_names);
    tcase_add_test(tc, batching_and_durable);
    tcase_add_test(tc, durable_read_when_due_or_wanted);
    tcase_add_test(tc, reopen_is_exactly_once);
    tcase_add_loop_test(tc, rollback_discards, WHOLE, EACH + 1);
    tcase_add_loop_test(tc, conflict_error_duplicate, WHOLE, EACH + 1);
    tcase_add_loop_test(tc, conflict_error_missing_row, WHOLE, EACH + 1);
    tcase_add_test(tc, binary_values);
    tcase_add_test(tc, missing_row_in_every_form);
    tcase_add_test(tc, conflict_apply);
    tcase_add_test(tc, run_with_failing_row);
    tcase_add_test(tc, run_past_journal_fails_then_names_row);
    tcase_add_test(tc, run_keeps_order);
    tcase_add_test(tc, run_of_updates_and_deletes);
    tcase_add_test(tc, run_takes_the_target_types);
    tcase_add_loop_test(tc, runs_span_tables, WHOLE, EACH + 1);
    tcase_add_test(tc, reordered_failure_names_row);
    tcase_add_test(tc, reorder_refused_then_redone);
    tcase_add_test(tc, insert_takes_its_updates);
    tcase_add_test(tc, trigger_table_is_a_barrier);
    tcase_add_test(tc, conflict_apply_across_tables);
    tcase_add_test(tc, origin_in_use_is_reported);
    tcase_add_test(tc, connect_failure_hides_password);
    tcase_add_test(tc, without_superuser);
    tcase_add_test(tc, large_transaction);
    tcase_add_test(tc, failure_mid_transaction);
    tcase_add_test(tc, missing_table_is_reported);
    tcase_add_test(tc, relation_version_change);
    tcase_add_test(tc, connection_lost);
    tcase_add_test(tc, add_column_on_new_version);
    tcase_add_test(tc, add_column_from_source);
    tcase_add_loop_test(tc, add_column_rolled_back, WHOLE, EACH + 1);
    tcase_add_loop_test(tc, type_mismatch_until_fixed, WHOLE, EACH + 1);
    tcase_add_loop_test(tc, type_change_replayed_after_restart, WHOLE,
                        EACH + 1);
    tcase_add_test(tc, drop_column_on_source);
    tcase_add_test(tc, target_lost_column);
    tcase_add_test(tc, add_column_hostile_names);
    tcase_add_test(tc, shop_tables);
    tcase_add_test(tc, loader_replaces_rows);
    tcase_add_test(tc, loader_abort_keeps_rows);
    tcase_add_test(tc, loader_freezes_whole_tables);
    tcase_add_test(tc, loader_missing_table);
    tcase_add_test(tc, throughput);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    pgc_stop(cluster);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
