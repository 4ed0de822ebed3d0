/*
 * cleave run with PostgreSQL 18 at both ends, on a schema of our own: a
 * range-partitioned table owned by one service, a table with a VIRTUAL
 * and a STORED generated column owned by another. Empty targets; cleave
 * creates, copies and streams, and every table reads the same on both
 * sides (each row in the same partition). PostgreSQL 18 comes from
 * tests/setup-pg.sh; the suite fails when it is missing, unless
 * CLEAVE_SKIP_PG18 is set (then it says so and is skipped).
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/runcmd.h"
#include "tests/support/shopenv.h"

static pgc_cluster *src, *tgt, *old_tgt;

static const char SCHEMA[] =
    "CREATE TABLE ledger (id bigint NOT NULL, booked date NOT NULL,"
    "  amount numeric(10,2) NOT NULL, note text, PRIMARY KEY (id, booked))"
    "  PARTITION BY RANGE (booked);"
    "CREATE TABLE ledger_2025 PARTITION OF ledger"
    "  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
    "CREATE TABLE ledger_2026 PARTITION OF ledger"
    "  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
    "CREATE TABLE ledger_rest PARTITION OF ledger DEFAULT;"
    "CREATE INDEX ledger_note ON ledger (note);"
    "CREATE TABLE item (id int PRIMARY KEY, price numeric(10,2) NOT NULL,"
    "  qty int NOT NULL,"
    "  total numeric GENERATED ALWAYS AS (price * qty) VIRTUAL,"
    "  label text GENERATED ALWAYS AS ('#' || id) STORED);"
    "INSERT INTO ledger SELECT g, DATE '2025-01-01' + (g % 700), g * 1.5,"
    "  'n' || g FROM generate_series(1, 1000) g;"
    "INSERT INTO item SELECT g, g * 0.25, g % 9 FROM generate_series(1, 200) g;";

/* Every change kind; ids 1 to 10 move from ledger_2025 to ledger_2026. */
static const char WORKLOAD[] =
    "INSERT INTO ledger SELECT g, DATE '2025-01-01' + (g % 700), g,"
    "  'w' || g FROM generate_series(1001, 1100) g;"
    "UPDATE ledger SET booked = '2026-06-01' WHERE id BETWEEN 1 AND 10;"
    "UPDATE ledger SET booked = '2031-01-01', note = 'rest' WHERE id = 12;"
    "UPDATE ledger SET amount = amount + 1 WHERE id % 7 = 0;"
    "DELETE FROM ledger WHERE id % 11 = 0;"
    "INSERT INTO item SELECT g, g, 2 FROM generate_series(201, 250) g;"
    "UPDATE item SET price = price * 2 WHERE id % 3 = 0;"
    "UPDATE item SET qty = qty + 1 WHERE id % 4 = 0;"
    "DELETE FROM item WHERE id % 5 = 0;";

/* Rows as a multiset, each with the partition that holds it. */
static char *digest(const pgc_cluster *c, const char *db, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ' ' || coalesce(md5(string_agg(r, '|' "
             "ORDER BY r)), '-') FROM (SELECT t.tableoid::regclass::text "
             "|| t::text AS r FROM %s t) s", table);
    return pgc_query_value(c, db, sql);
}

/* Polls until the target's table reads as the source's, or the deadline. */
static bool wait_equal(const shop_env *env, const pgc_cluster *target,
                       const char *db, const char *table, double timeout_s)
{
    double deadline = shop_now_s() + timeout_s;
    for (;;) {
        char *a = digest(src, env->srcdb, table);
        char *b = digest(target, db, table);
        bool eq = a && b && strcmp(a, b) == 0;
        if (!eq && shop_now_s() > deadline)
            fprintf(stderr, "%s differs: source %s, target %s\n", table,
                    a ? a : "?", b ? b : "?");
        free(a);
        free(b);
        if (eq)
            return true;
        if (shop_now_s() > deadline)
            return false;
        struct timespec ts = {0, 100 * 1000 * 1000};  /* polling a deadline */
        nanosleep(&ts, NULL);
    }
}

/*
 * A source database with the schema, a database per service on `target`
 * (books owns `books`, a list of tables or NULL for no such service; stock
 * owns item), the configuration.
 */
static void setup(shop_env *env, const char *name, pgc_cluster *target,
                  const char *books)
{
    memset(env, 0, sizeof *env);
    env->src = src;
    env->tgt = target;
    snprintf(env->name, sizeof env->name, "%s", name);
    snprintf(env->srcdb, sizeof env->srcdb, "%s_src", name);
    snprintf(env->dbs[0], sizeof env->dbs[0], "%s_books", name);
    snprintf(env->dbs[1], sizeof env->dbs[1], "%s_stock", name);
    snprintf(env->state_dir, sizeof env->state_dir, "%s/state_%s", src->root,
             name);
    snprintf(env->config, sizeof env->config, "%s/%s.yaml", src->root, name);
    snprintf(env->log, sizeof env->log, "%s/%s.log", src->root, name);
    ck_assert(pgc_createdb(src, env->srcdb));
    ck_assert(pgc_exec(src, env->srcdb, SCHEMA));
    ck_assert(pgc_createdb(target, env->dbs[0]));
    ck_assert(pgc_createdb(target, env->dbs[1]));
    char *sdsn = pgc_dsn(src, env->srcdb);
    char *bdsn = pgc_dsn(target, env->dbs[0]);
    char *tdsn = pgc_dsn(target, env->dbs[1]);
    FILE *f = fopen(env->config, "w");
    ck_assert(f);
    fprintf(f, "name: %s\nsource:\n  dsn: \"%s\"\nstate_dir: %s\n"
            "status_socket: %s/status.sock\nlog_level: debug\nservices:\n",
            name, sdsn, env->state_dir, env->state_dir);
    if (books)
        fprintf(f, "  books:\n    owned_tables: [%s]\n    target:\n"
                "      postgres: \"%s\"\n", books, bdsn);
    fprintf(f, "  stock:\n    owned_tables: [item]\n    target:\n"
            "      postgres: \"%s\"\n", tdsn);
    ck_assert(fclose(f) == 0);
    free(sdsn);
    free(bdsn);
    free(tdsn);
}

static json_t *analyze_json(const shop_env *env, int want_rc)
{
    char *argv[] = {(char *)shop_cleave_bin(), "analyze", "-c", (char *)env->config,
                    "--json", NULL};
    rc_result r;
    ck_assert(rc_run(argv, &r));
    ck_assert_msg(r.status == want_rc, "analyze exit %d, want %d: %s%s",
                  r.status, want_rc, r.err, r.out);
    json_t *root = json_loads(r.out, 0, NULL);
    ck_assert_msg(root, "not JSON: %s", r.out);
    rc_free(&r);
    return root;
}

/* The detail of the first item of `section` whose detail mentions `text`. */
static const char *find_detail(json_t *root, const char *section,
                               const char *text, const char *status)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(root, section), i, item) {
        const char *d = json_string_value(json_object_get(item, "detail"));
        const char *st = json_string_value(json_object_get(item, "status"));
        if (d && st && strstr(d, text) && strcmp(st, status) == 0)
            return d;
    }
    return NULL;
}

static void expect_value(const pgc_cluster *c, const char *db,
                         const char *sql, const char *want)
{
    char *v = pgc_query_value(c, db, sql);
    ck_assert_msg(v && strcmp(v, want) == 0, "%s: got %s, want %s", sql,
                  v ? v : "NULL", want);
    free(v);
}

static const char PARTITIONS_SQL[] =
    "SELECT string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid),"
    " ', ' ORDER BY c.relname) FROM pg_inherits i"
    " JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE i.inhparent = 'ledger'::regclass";

static const char GENERATED_SQL[] =
    "SELECT string_agg(attname || '=' || attgenerated::text, ','"
    " ORDER BY attnum)"
    " FROM pg_attribute WHERE attrelid = 'item'::regclass AND attnum > 0"
    " AND attgenerated <> ''";

/* Created, copied, streamed; the tables equal after each step. */
static void run_and_compare(shop_env *env)
{
    ck_assert(shop_start(env));
    bool ok = wait_equal(env, tgt, env->dbs[0], "ledger", 60) &&
              wait_equal(env, tgt, env->dbs[1], "item", 30);
    if (ok) {
        ck_assert(pgc_exec(src, env->srcdb, WORKLOAD));
        ok = wait_equal(env, tgt, env->dbs[0], "ledger", 60) &&
             wait_equal(env, tgt, env->dbs[1], "item", 30);
    }
    if (!ok)
        shop_log_tail(env, 40);
    ck_assert_msg(ok, "the targets never read as the source");
    char *parts = pgc_query_value(src, env->srcdb, PARTITIONS_SQL);
    ck_assert(parts);
    expect_value(tgt, env->dbs[0], PARTITIONS_SQL, parts);
    free(parts);
    expect_value(tgt, env->dbs[0], "SELECT count(*) FROM ledger_2026 "
                 "WHERE id <= 10", "10");
    expect_value(tgt, env->dbs[1], GENERATED_SQL, "total=v,label=s");
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT pubviaroot FROM pg_publication "
             "WHERE pubname = 'cleave_%s'", env->name);
    expect_value(src, env->srcdb, sql, "t");
    ck_assert_int_eq(shop_stop(env, SIGTERM, 30), 0);
}

/* cleave makes the publication; analyze has nothing against the schema. */
START_TEST(created_publication)
{
    shop_env env;
    setup(&env, "p18_new", tgt, "ledger");
    json_t *root = analyze_json(&env, 0);
    ck_assert_msg(find_detail(root, "definitions", "partitioned", "ok"),
                  "analyze does not mention the partitioned table");
    ck_assert_msg(find_detail(root, "definitions", "VIRTUAL", "ok"),
                  "analyze does not mention the VIRTUAL column");
    json_decref(root);
    run_and_compare(&env);
    shop_teardown(&env);
}
END_TEST

/*
 * A publication made beforehand lists ledger by its partitions (and lacks
 * item): cleave sees ledger is in it, adds item, publishes via the root.
 */
START_TEST(existing_publication)
{
    shop_env env;
    setup(&env, "p18_old", tgt, "ledger");
    ck_assert(pgc_exec(src, env.srcdb,
                       "CREATE PUBLICATION cleave_p18_old FOR TABLE ledger"));
    json_t *root = analyze_json(&env, 0);
    ck_assert_msg(find_detail(root, "settings", "publish_via_partition_root",
                              "warn"),
                  "analyze does not say run publishes ledger via its root");
    json_decref(root);
    run_and_compare(&env);
    shop_teardown(&env);
}
END_TEST

/* A target older than 18 gets the VIRTUAL column as STORED. */
START_TEST(older_target)
{
    shop_env env;
    setup(&env, "p18_to15", old_tgt, NULL);
    ck_assert(shop_start(&env));
    bool ok = wait_equal(&env, old_tgt, env.dbs[1], "item", 60);
    if (ok) {
        ck_assert(pgc_exec(src, env.srcdb, WORKLOAD));
        ok = wait_equal(&env, old_tgt, env.dbs[1], "item", 30);
    }
    if (!ok)
        shop_log_tail(&env, 40);
    ck_assert_msg(ok, "the target never read as the source");
    expect_value(old_tgt, env.dbs[1], GENERATED_SQL, "total=s,label=s");
    ck_assert_int_eq(shop_stop(&env, SIGTERM, 30), 0);
    shop_teardown(&env);
}
END_TEST

/* What run cannot create, a foreign partition, analyze names as blocking. */
START_TEST(analyze_names_foreign_partition)
{
    shop_env env;
    setup(&env, "p18_fdw", tgt, "ledger, archive");
    ck_assert(pgc_exec(src, env.srcdb,
        "CREATE TABLE archive (id int, at date) PARTITION BY RANGE (at);"
        "CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER "
        "file_fdw; CREATE FOREIGN TABLE archive_2000 PARTITION OF archive "
        "FOR VALUES FROM ('2000-01-01') TO ('2001-01-01') SERVER files "
        "OPTIONS (filename '/dev/null')"));
    json_t *root = analyze_json(&env, 3);
    ck_assert_msg(find_detail(root, "definitions", "archive_2000", "block"),
                  "analyze does not name the foreign partition");
    json_decref(root);
}
END_TEST

int main(void)
{
    if (getenv("CLEAVE_SKIP_PG18")) {
        printf("pg18: skipped, CLEAVE_SKIP_PG18 says PostgreSQL 18 is not "
               "installed (tests/setup-pg.sh 18 installs it)\n");
        return 77;
    }
    Suite *s = suite_create("pg18");
    shop_add_case(s, "created_publication", created_publication, 180);
    shop_add_case(s, "existing_publication", existing_publication, 180);
    shop_add_case(s, "older_target", older_target, 180);
    shop_add_case(s, "analyze_names_foreign_partition",
                  analyze_names_foreign_partition, 60);
    SRunner *sr = srunner_create(s);
    src = pgc_start_version(18, NULL);
    tgt = src ? pgc_start_version(18, NULL) : NULL;
    old_tgt = tgt ? pgc_start_version(15, NULL) : NULL;
    int failed = 1;
    if (old_tgt) {
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
    }
    srunner_free(sr);
    pgc_stop(old_tgt);
    pgc_stop(tgt);
    pgc_stop(src);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
